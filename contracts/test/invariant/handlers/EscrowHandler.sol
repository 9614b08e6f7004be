// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {NodeRegistry} from "../../../src/NodeRegistry.sol";
import {RenderEscrow} from "../../../src/RenderEscrow.sol";
import {INodeRegistry} from "../../../src/interfaces/INodeRegistry.sol";
import {IRenderEscrow} from "../../../src/interfaces/IRenderEscrow.sol";
import {MockERC20} from "../../mocks/MockERC20.sol";
import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {Vm} from "forge-std/Vm.sol";

/// @notice Drives the escrow and the registry with random but mostly valid actions of several actors and
///         keeps ghost accounting for the invariants.
contract EscrowHandler is CommonBase, StdCheats, StdUtils {
    uint256 internal constant MAX_FRAMES = 600; // three bitmap words, the last one partial

    RenderEscrow public immutable escrow;
    NodeRegistry public immutable registry;
    MockERC20 public immutable token;
    address public immutable settler;
    address public immutable treasury;
    address public immutable outsider;

    address[] public artists;
    address[] public owners;
    address[] public nodes;
    uint256[] internal nodeKeys;
    uint256[] public jobIds;

    // ------------------------------------------------------------------ ghosts
    mapping(uint256 jobId => uint256) public ghostLocked;
    mapping(uint256 jobId => uint256) public ghostReleased;
    mapping(uint256 jobId => uint256) public ghostRefunded;
    mapping(uint256 jobId => uint256) public ghostFramesPaid;
    mapping(uint256 jobId => mapping(uint256 word => uint256)) public ghostBitmap;
    mapping(uint256 jobId => uint256) public ghostBudget;
    /// The terms each job was opened with (read without a call, so that `vm.prank` reaches the settle call).
    mapping(uint256 jobId => IRenderEscrow.JobTerms) internal termsOf;
    mapping(uint256 jobId => uint256) public ghostVerificationsPaid;
    mapping(uint256 jobId => mapping(uint256 word => uint256)) public ghostVerified;
    /// Set when a verification render is paid for an unpaid frame, twice, or beyond the job's budget.
    bool public ghostBadVerification;
    /// Set when a node bound at or after a job opened is paid for it.
    bool public ghostPaidLateNode;
    /// Set when a FramesReleased event names a frame that was already paid, or a repeat release succeeds.
    bool public ghostDoublePay;
    /// Set when a release, close or slash from anyone but the settler succeeds.
    bool public ghostUnauthorizedSuccess;
    /// Set when a refund paid something other than the job's remaining amount, or not to the artist.
    bool public ghostBadRefund;
    uint256 public ghostUnauthorizedAttempts;
    uint256 public ghostReleaseCalls;
    uint256 public ghostVerificationCalls;
    uint256 public ghostRefundCalls;
    uint256 public ghostSlashCalls;
    uint256 public ghostClosingSettles;
    uint256 public ghostManyCalls;

    mapping(bytes32 => uint256) public calls;

    constructor(
        RenderEscrow escrow_,
        NodeRegistry registry_,
        MockERC20 token_,
        address settler_,
        address treasury_,
        address[] memory artists_,
        address[] memory owners_,
        uint256[] memory nodeKeys_
    ) {
        escrow = escrow_;
        registry = registry_;
        token = token_;
        settler = settler_;
        treasury = treasury_;
        outsider = makeAddr("outsider");
        artists = artists_;
        owners = owners_;
        nodeKeys = nodeKeys_;
        for (uint256 i; i < nodeKeys_.length; ++i) {
            nodes.push(vm.addr(nodeKeys_[i]));
        }
    }

    modifier countCall(bytes32 name) {
        ++calls[name];
        _;
    }

    // ------------------------------------------------------------------ views for the invariants

    function jobCount() external view returns (uint256) {
        return jobIds.length;
    }

    function artistCount() external view returns (uint256) {
        return artists.length;
    }

    function ownerCount() external view returns (uint256) {
        return owners.length;
    }

    function nodeCount() external view returns (uint256) {
        return nodes.length;
    }

    function jobTerms(uint256 jobId) external view returns (IRenderEscrow.JobTerms memory) {
        return termsOf[jobId];
    }

    // ------------------------------------------------------------------ escrow actions

    function openJob(
        uint256 artistSeed,
        bool useToken,
        uint256 frames,
        uint256 price,
        uint256 duration,
        uint256 budget
    ) external countCall("openJob") {
        address artist = artists[artistSeed % artists.length];
        frames = _bound(frames, 1, MAX_FRAMES);
        price = _bound(price, 1, 1e18);
        duration = _bound(duration, 1 hours, 2 days);
        // Mostly a partial budget, so that it runs out and over-budget releases are tried.
        budget = _bound(budget, 0, frames / 2);
        uint256 amount = (frames + budget) * price;
        uint64 deadline = uint64(block.timestamp + duration);
        bytes32 spec = keccak256(abi.encode(artist, frames, price, jobIds.length));
        uint256 jobId;
        if (useToken) {
            token.mint(artist, amount);
            vm.startPrank(artist);
            token.approve(address(escrow), amount);
            jobId = escrow.openJob(
                spec, address(token), uint128(price), uint32(frames), uint32(budget), deadline
            );
            vm.stopPrank();
        } else {
            vm.deal(artist, artist.balance + amount);
            vm.prank(artist);
            jobId = escrow.openJob{value: amount}(
                spec, address(0), uint128(price), uint32(frames), uint32(budget), deadline
            );
        }
        jobIds.push(jobId);
        ghostLocked[jobId] = amount;
        ghostBudget[jobId] = budget;
        termsOf[jobId] = IRenderEscrow.JobTerms({
            specHash: spec,
            artist: artist,
            token: useToken ? address(token) : address(0),
            pricePerFrame: uint128(price),
            frameCount: uint32(frames),
            verifications: uint32(budget),
            deadline: deadline,
            openedAt: uint64(block.timestamp),
            feeBps: escrow.feeBps()
        });
    }

    function release(uint256 jobSeed, uint256 nodeSeed, uint256 bitsSeed, uint256 setCount)
        external
        countCall("release")
    {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        bool releasable = _live(jobId);
        IRenderEscrow.FrameSet[] memory sets =
            _buildSets(jobId, termsOf[jobId].frameCount, nodeSeed, bitsSeed, _bound(setCount, 1, 4));
        if (sets.length == 0) return;
        if (!releasable) {
            vm.prank(settler);
            try escrow.settle(jobId, termsOf[jobId], sets, _none(), false) {
                ghostDoublePay = true; // a closed or refunded job paid out
            } catch {}
            return;
        }
        vm.recordLogs();
        vm.prank(settler);
        escrow.settle(jobId, termsOf[jobId], sets, _none(), false);
        ++ghostReleaseCalls;
        _recordReleases(vm.getRecordedLogs());
    }

    /// @dev Settler tries to pay an already-paid frame again; must revert.
    function releaseAgain(uint256 jobSeed, uint256 nodeSeed, uint256 frameSeed)
        external
        countCall("releaseAgain")
    {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        uint256 w = frameSeed % 3;
        uint256 paid = ghostBitmap[jobId][w];
        if (paid == 0) return;
        uint256 bit = paid & (~paid + 1);
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](1);
        sets[0] =
            IRenderEscrow.FrameSet({node: nodes[nodeSeed % nodes.length], wordIndex: uint32(w), bits: bit});
        vm.prank(settler);
        try escrow.settle(jobId, termsOf[jobId], sets, _none(), false) {
            ghostDoublePay = true;
        } catch {}
    }

    /// @dev Settler pays verification renders of some paid frames. Over the budget, of a closed job, or of a
    ///      frame already verified it must revert; otherwise it must succeed.
    function releaseVerifications(uint256 jobSeed, uint256 nodeSeed, uint256 bitsSeed)
        external
        countCall("releaseVerifications")
    {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        IRenderEscrow.JobState memory job = escrow.getJob(jobId, termsOf[jobId]);
        uint256 w = bitsSeed % 3;
        uint256 r = uint256(keccak256(abi.encode(bitsSeed)));
        // Usually frames not yet verified; one time in four some that were (must revert).
        uint256 pool =
            bitsSeed % 4 == 0 ? ghostBitmap[jobId][w] : ghostBitmap[jobId][w] & ~ghostVerified[jobId][w];
        uint256 bits = pool & (r | uint256(keccak256(abi.encode(r))));
        if (bits == 0) return;
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](1);
        address node = _payableNode(jobId, nodeSeed, 0);
        if (node == address(0)) return;
        sets[0] = IRenderEscrow.FrameSet({node: node, wordIndex: uint32(w), bits: bits});
        bool valid =
            (job.status == IRenderEscrow.JobStatus.Open || job.status == IRenderEscrow.JobStatus.Cancelled)
                && ghostVerified[jobId][w] & bits == 0 && _popcount(bits) <= job.verificationsLeft;
        vm.recordLogs();
        vm.prank(settler);
        if (valid) {
            escrow.settle(jobId, termsOf[jobId], _none(), sets, false);
            ++ghostVerificationCalls;
            _recordReleases(vm.getRecordedLogs());
        } else {
            try escrow.settle(jobId, termsOf[jobId], _none(), sets, false) {
                ghostBadVerification = true;
            } catch {}
        }
    }

    /// @dev Settler tries to pay a node bound at or after the job opened (re-registered since); must revert.
    function releaseToLateNode(uint256 jobSeed, uint256 nodeSeed) external countCall("releaseToLateNode") {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        uint64 openedAt = termsOf[jobId].openedAt;
        for (uint256 k; k < nodes.length; ++k) {
            address node = _node(nodeSeed, k);
            (, uint40 boundAt) = registry.bindingOf(node);
            if (boundAt < openedAt) continue;
            uint256 unpaid = _validMask(termsOf[jobId].frameCount, 0) & ~ghostBitmap[jobId][0];
            if (unpaid == 0) return;
            IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](1);
            sets[0] = IRenderEscrow.FrameSet({node: node, wordIndex: 0, bits: unpaid & (~unpaid + 1)});
            vm.prank(settler);
            try escrow.settle(jobId, termsOf[jobId], sets, new IRenderEscrow.FrameSet[](0), false) {
                ghostPaidLateNode = true;
            } catch {}
            return;
        }
    }

    /// @dev Settler tries to pay the verification render of a frame that was never paid; must revert.
    function verifyUnpaid(uint256 jobSeed, uint256 nodeSeed, uint256 frameSeed)
        external
        countCall("verifyUnpaid")
    {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        uint256 w = frameSeed % 3;
        uint256 unpaid = _validMask(termsOf[jobId].frameCount, w) & ~ghostBitmap[jobId][w];
        if (unpaid == 0) return;
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](1);
        sets[0] = IRenderEscrow.FrameSet({
            node: _node(nodeSeed, 0), wordIndex: uint32(w), bits: unpaid & (~unpaid + 1)
        });
        vm.prank(settler);
        try escrow.settle(jobId, termsOf[jobId], _none(), sets, false) {
            ghostBadVerification = true;
        } catch {}
    }

    function cancel(uint256 jobSeed, uint256 callerSeed) external countCall("cancel") {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        IRenderEscrow.JobTerms memory t = termsOf[jobId];
        IRenderEscrow.JobStatus status = escrow.jobStatus(jobId);
        // Mostly the artist, sometimes someone else (must fail).
        address caller = callerSeed % 4 == 0 ? artists[callerSeed % artists.length] : t.artist;
        vm.prank(caller);
        try escrow.cancel(jobId, t) {
            if (caller != t.artist || status != IRenderEscrow.JobStatus.Open) ghostBadRefund = true;
        } catch {}
    }

    /// @dev The settler closes a job, refunding its rest to the artist in the same call; with `pay`, the same
    ///      call pays random unpaid frames and verification renders of frames paid before or in it (the path
    ///      that writes no bitmaps).
    function close(uint256 jobSeed, uint256 nodeSeed, uint256 bitsSeed, bool pay)
        external
        countCall("close")
    {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        IRenderEscrow.JobTerms memory t = termsOf[jobId];
        IRenderEscrow.JobState memory job = escrow.getJob(jobId, t);
        bool live = _live(jobId);
        IRenderEscrow.FrameSet[] memory sets = _none();
        IRenderEscrow.FrameSet[] memory checks = _none();
        if (pay && live) {
            sets = _buildSets(jobId, t.frameCount, nodeSeed, bitsSeed, 3);
            checks = _buildChecks(jobId, sets, ~nodeSeed, bitsSeed, job.verificationsLeft);
        }
        uint256 before = _balance(t.token, t.artist);
        vm.recordLogs();
        vm.prank(settler);
        try escrow.settle(jobId, t, sets, checks, true) {
            if (!live) ghostDoublePay = true; // a closed or refunded job was closed again
            uint256 released = _recordReleases(vm.getRecordedLogs());
            uint256 got = _balance(t.token, t.artist) - before;
            if (got != job.remaining - released) ghostBadRefund = true;
            ghostRefunded[jobId] += got;
            ++ghostClosingSettles;
        } catch {
            if (live) ghostBadRefund = true; // closing a live job (with valid payments) must succeed
        }
    }

    /// @dev The settler settles two jobs in one `settleMany` call: pays random unpaid frames of each, and
    ///      closes each with probability one half. Must succeed when both are live and distinct.
    function settleMany(uint256 jobSeed, uint256 nodeSeed, uint256 bitsSeed, uint256 closeSeed)
        external
        countCall("settleMany")
    {
        if (jobIds.length < 2) return;
        uint256 n = jobIds.length;
        uint256 a = jobIds[jobSeed % n];
        // An offset in 1..n-1: another job.
        uint256 b = jobIds[(jobSeed % n + 1 + (jobSeed >> 128) % (n - 1)) % n];
        bool live = _live(a) && _live(b);
        IRenderEscrow.Settlement[] memory batch = new IRenderEscrow.Settlement[](2);
        batch[0] = _entry(a, nodeSeed, bitsSeed, closeSeed & 1 == 1, live);
        batch[1] = _entry(b, ~nodeSeed, ~bitsSeed, closeSeed & 2 == 2, live);
        vm.recordLogs();
        vm.prank(settler);
        try escrow.settleMany(batch) {
            if (!live) ghostDoublePay = true;
            Vm.Log[] memory logs = vm.getRecordedLogs();
            _recordReleases(logs);
            for (uint256 k; k < 2; ++k) {
                if (batch[k].close) ghostRefunded[batch[k].jobId] += _refundedIn(logs, batch[k].jobId);
            }
            ++ghostManyCalls;
        } catch {
            if (live) ghostBadRefund = true;
        }
    }

    function _entry(uint256 id, uint256 nodeSeed, uint256 bitsSeed, bool closing, bool live)
        internal
        view
        returns (IRenderEscrow.Settlement memory entry)
    {
        IRenderEscrow.JobTerms memory t = termsOf[id];
        IRenderEscrow.FrameSet[] memory sets =
            live ? _buildSets(id, t.frameCount, nodeSeed, bitsSeed, 2) : _none();
        entry = IRenderEscrow.Settlement({
            jobId: id, terms: t, frames: sets, verifications: _none(), close: closing || sets.length == 0
        });
    }

    /// @dev The settler names another spec than the job's: nothing may move.
    function settleWrongSpec(uint256 jobSeed, uint256 nodeSeed) external countCall("settleWrongSpec") {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](1);
        sets[0] = IRenderEscrow.FrameSet({node: _node(nodeSeed, 0), wordIndex: 0, bits: 1});
        IRenderEscrow.JobTerms memory wrong = termsOf[jobId];
        wrong.specHash = keccak256(abi.encode(wrong.specHash));
        vm.prank(settler);
        try escrow.settle(jobId, wrong, sets, new IRenderEscrow.FrameSet[](0), true) {
            ghostDoublePay = true;
        } catch {}
    }

    function refund(uint256 jobSeed, uint256 callerSeed) external countCall("refund") {
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        IRenderEscrow.JobTerms memory t = termsOf[jobId];
        IRenderEscrow.JobState memory job = escrow.getJob(jobId, t);
        address caller = callerSeed % 2 == 0 ? outsider : artists[callerSeed % artists.length];
        uint256 before = _balance(t.token, t.artist);
        vm.prank(caller);
        try escrow.refund(jobId, t) {
            uint256 got = _balance(t.token, t.artist) - before;
            if (got != job.remaining) ghostBadRefund = true;
            ghostRefunded[jobId] += got;
            ++ghostRefundCalls;
        } catch {}
    }

    function withdraw(uint256 ownerSeed, bool useToken) external countCall("withdraw") {
        address owner = owners[ownerSeed % owners.length];
        address t = useToken ? address(token) : address(0);
        uint256 credit = escrow.credits(owner, t);
        if (credit == 0) return;
        uint256 before = _balance(t, owner);
        vm.prank(owner);
        escrow.withdraw(t);
        if (_balance(t, owner) - before != credit) ghostBadRefund = true;
    }

    /// Anyone opens credit and fee slots for anyone: balances must not move.
    function openAccounts(uint256 accountSeed, bool useToken) external countCall("openAccounts") {
        address account = accountSeed % 2 == 0
            ? owners[accountSeed % owners.length]
            : artists[accountSeed % artists.length];
        address t = useToken ? address(token) : address(0);
        uint256 credit = escrow.credits(account, t);
        uint256 fee = escrow.fees(t);
        vm.startPrank(outsider);
        escrow.openAccount(account, t);
        escrow.openFees(t);
        vm.stopPrank();
        if (escrow.credits(account, t) != credit || escrow.fees(t) != fee) ghostBadRefund = true;
    }

    function withdrawFees(bool useToken) external countCall("withdrawFees") {
        address t = useToken ? address(token) : address(0);
        if (escrow.fees(t) == 0) return;
        vm.prank(outsider);
        escrow.withdrawFees(t);
    }

    function warp(uint256 secs) external countCall("warp") {
        vm.warp(block.timestamp + _bound(secs, 1, 2 days));
    }

    // ------------------------------------------------------------------ registry actions

    function slash(uint256 nodeSeed, uint256 amount, uint256 recipientSeed) external countCall("slash") {
        address node = nodes[nodeSeed % nodes.length];
        INodeRegistry.NodeInfo memory info = registry.nodeInfo(node);
        uint256 available = info.stake + info.unbonding;
        if (available == 0) return;
        amount = _bound(amount, 1, available);
        // To the artist of a job, or (job 0) the treasury.
        uint256 jobId =
            recipientSeed % 4 == 0 || jobIds.length == 0 ? 0 : jobIds[recipientSeed % jobIds.length];
        IRenderEscrow.JobTerms memory t = termsOf[jobId];
        vm.prank(settler);
        registry.slash(node, amount, jobId, t, keccak256(abi.encode(node, amount, ghostSlashCalls)));
        ++ghostSlashCalls;
    }

    function addStake(uint256 nodeSeed, uint256 amount) external countCall("addStake") {
        address node = nodes[nodeSeed % nodes.length];
        if (!registry.isActive(node)) return;
        address owner = registry.ownerOf(node);
        amount = _bound(amount, 1, 10 ether);
        vm.deal(owner, owner.balance + amount);
        vm.prank(owner);
        registry.addStake{value: amount}(node);
    }

    function requestUnstake(uint256 nodeSeed, uint256 amount) external countCall("requestUnstake") {
        address node = nodes[nodeSeed % nodes.length];
        uint256 stake = registry.nodeInfo(node).stake;
        if (stake == 0) return;
        vm.prank(registry.ownerOf(node));
        registry.requestUnstake(node, _bound(amount, 1, stake));
    }

    function withdrawStake(uint256 nodeSeed) external countCall("withdrawStake") {
        address node = nodes[nodeSeed % nodes.length];
        INodeRegistry.NodeInfo memory info = registry.nodeInfo(node);
        if (info.unbonding == 0 || block.timestamp < info.unbondingAt) return;
        vm.prank(info.owner);
        registry.withdrawStake(node);
    }

    function deregister(uint256 nodeSeed) external countCall("deregister") {
        address node = nodes[nodeSeed % nodes.length];
        if (!registry.isActive(node)) return;
        vm.prank(registry.ownerOf(node));
        registry.deregister(node);
    }

    /// @dev Re-registers an inactive node to its previous owner with fresh stake.
    function reRegister(uint256 nodeSeed, uint256 stake) external countCall("reRegister") {
        uint256 i = nodeSeed % nodes.length;
        address node = nodes[i];
        if (registry.isActive(node)) return;
        address owner = registry.ownerOf(node);
        stake = _bound(stake, 0, 5 ether);
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 digest = registry.bindDigest(node, owner, registry.nonces(node), deadline);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(nodeKeys[i], digest);
        vm.deal(owner, owner.balance + stake);
        vm.prank(owner);
        registry.register{value: stake}(node, deadline, abi.encodePacked(r, s, v));
    }

    function withdrawClaimable(uint256 recipientSeed) external countCall("withdrawClaimable") {
        address account = recipientSeed % 4 == 0 ? treasury : artists[recipientSeed % artists.length];
        if (registry.claimable(account) == 0) return;
        vm.prank(account);
        registry.withdrawClaimable();
    }

    // ------------------------------------------------------------------ unauthorized attempts

    function unauthorizedSettlement(uint256 callerSeed, uint256 jobSeed, uint256 action)
        external
        countCall("unauthorized")
    {
        address[4] memory callers = [
            outsider, artists[callerSeed % artists.length], owners[callerSeed % owners.length], treasury
        ];
        address caller = callers[callerSeed % 4];
        ++ghostUnauthorizedAttempts;
        if (action % 3 == 0) {
            address node = nodes[callerSeed % nodes.length];
            vm.prank(caller);
            IRenderEscrow.JobTerms memory none;
            try registry.slash(node, 1, 0, none, keccak256("evidence")) {
                ghostUnauthorizedSuccess = true;
            } catch {}
            return;
        }
        if (jobIds.length == 0) return;
        uint256 jobId = jobIds[jobSeed % jobIds.length];
        if (action % 3 == 1) {
            IRenderEscrow.FrameSet[] memory none = new IRenderEscrow.FrameSet[](0);
            IRenderEscrow.Settlement[] memory many = new IRenderEscrow.Settlement[](1);
            many[0] = IRenderEscrow.Settlement({
                jobId: jobId, terms: termsOf[jobId], frames: none, verifications: none, close: true
            });
            vm.prank(caller);
            try escrow.settleMany(many) {
                ghostUnauthorizedSuccess = true;
            } catch {}
            return;
        }
        uint256 frameCount = termsOf[jobId].frameCount;
        uint256 bits = _validMask(uint32(frameCount), 0) & ~ghostBitmap[jobId][0];
        if (bits == 0) return;
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](1);
        sets[0] = IRenderEscrow.FrameSet({
            node: nodes[jobSeed % nodes.length], wordIndex: 0, bits: bits & (~bits + 1)
        });
        vm.prank(caller);
        try escrow.settle(jobId, termsOf[jobId], sets, _none(), false) {
            ghostUnauthorizedSuccess = true;
        } catch {}
    }

    // ------------------------------------------------------------------ internal

    /// @dev Books the payments in `logs` into the ghosts; returns the amount they released.
    function _recordReleases(Vm.Log[] memory logs) internal returns (uint256 released) {
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(escrow) || log.topics[0] != IRenderEscrow.FramesReleased.selector) {
                continue;
            }
            uint256 jobId = uint256(log.topics[1]);
            (IRenderEscrow.FrameSet[] memory frames, IRenderEscrow.FrameSet[] memory checks) =
                abi.decode(log.data, (IRenderEscrow.FrameSet[], IRenderEscrow.FrameSet[]));
            // Frames first: a verification render may be paid with its frame, in the same call.
            for (uint256 k; k < frames.length; ++k) {
                released += _recordRelease(jobId, frames[k], false);
            }
            for (uint256 k; k < checks.length; ++k) {
                released += _recordRelease(jobId, checks[k], true);
            }
        }
    }

    /// @dev Books one `FramesReleased` entry; returns the amount it released (the event leaves it to the terms).
    function _recordRelease(uint256 jobId, IRenderEscrow.FrameSet memory r, bool verification)
        internal
        returns (uint256 amount)
    {
        uint32 w = r.wordIndex;
        uint256 bits = r.bits;
        amount = _popcount(bits) * termsOf[jobId].pricePerFrame;
        (, uint40 boundAt) = registry.bindingOf(r.node);
        if (boundAt >= termsOf[jobId].openedAt) ghostPaidLateNode = true;
        if (verification) {
            if (ghostVerified[jobId][w] & bits != 0 || bits & ~ghostBitmap[jobId][w] != 0) {
                ghostBadVerification = true;
            }
            ghostVerified[jobId][w] |= bits;
            ghostVerificationsPaid[jobId] += _popcount(bits);
            if (ghostVerificationsPaid[jobId] > ghostBudget[jobId]) ghostBadVerification = true;
        } else {
            if (ghostBitmap[jobId][w] & bits != 0) ghostDoublePay = true;
            ghostBitmap[jobId][w] |= bits;
            ghostFramesPaid[jobId] += _popcount(bits);
        }
        ghostReleased[jobId] += amount;
    }

    /// @dev Up to `setCount` sets of sparse random unpaid frames (about 1 in 8 bits) so frames remain for later.
    function _buildSets(
        uint256 jobId,
        uint32 frameCount,
        uint256 nodeSeed,
        uint256 bitsSeed,
        uint256 setCount
    ) internal view returns (IRenderEscrow.FrameSet[] memory sets) {
        uint256 words = (uint256(frameCount) + 255) / 256;
        sets = new IRenderEscrow.FrameSet[](setCount);
        uint256 used;
        uint256[3] memory taken; // frames picked in this call, per word
        for (uint256 i; i < setCount; ++i) {
            uint256 r = uint256(keccak256(abi.encode(bitsSeed, i)));
            uint256 w = r % words;
            uint256 bits = r & uint256(keccak256(abi.encode(r))) & uint256(keccak256(abi.encode(r, 1)));
            bits &= _validMask(frameCount, w) & ~ghostBitmap[jobId][w] & ~taken[w];
            if (bits == 0) continue;
            taken[w] |= bits;
            address node = _payableNode(jobId, nodeSeed, i);
            if (node == address(0)) continue;
            sets[used++] = IRenderEscrow.FrameSet({node: node, wordIndex: uint32(w), bits: bits});
        }
        // Shrink the array to the sets actually filled.
        assembly ("memory-safe") {
            mstore(sets, used)
        }
    }

    /// @dev Verification renders for frames of `sets` (paid in the same call) and frames paid before, not yet
    ///      verified, at most `left` of them, one set per word of `sets`, by another node.
    function _buildChecks(
        uint256 jobId,
        IRenderEscrow.FrameSet[] memory sets,
        uint256 nodeSeed,
        uint256 bitsSeed,
        uint256 left
    ) internal view returns (IRenderEscrow.FrameSet[] memory checks) {
        checks = new IRenderEscrow.FrameSet[](sets.length);
        uint256 used;
        uint256[3] memory taken;
        for (uint256 i; i < sets.length; ++i) {
            uint256 w = sets[i].wordIndex;
            uint256 pool = (sets[i].bits | ghostBitmap[jobId][w]) & ~ghostVerified[jobId][w] & ~taken[w];
            uint256 bits = pool & uint256(keccak256(abi.encode(bitsSeed, i, "check")));
            // Keep within the budget: drop the highest bits until it fits.
            while (bits != 0 && _popcount(bits) > left) {
                bits &= bits - 1;
            }
            if (bits == 0) continue;
            address node = _payableNode(jobId, nodeSeed, i);
            if (node == address(0)) continue;
            left -= _popcount(bits);
            taken[w] |= bits;
            checks[used++] = IRenderEscrow.FrameSet({node: node, wordIndex: uint32(w), bits: bits});
        }
        assembly ("memory-safe") {
            mstore(checks, used)
        }
    }

    /// @dev The amount the `JobRefunded` event of `jobId` in `logs` names (0 if none).
    function _refundedIn(Vm.Log[] memory logs, uint256 jobId) internal view returns (uint256) {
        for (uint256 i; i < logs.length; ++i) {
            if (
                logs[i].emitter == address(escrow) && logs[i].topics[0] == IRenderEscrow.JobRefunded.selector
                    && uint256(logs[i].topics[1]) == jobId
            ) return abi.decode(logs[i].data, (uint256));
        }
        return 0;
    }

    function _live(uint256 jobId) internal view returns (bool) {
        IRenderEscrow.JobStatus status = escrow.jobStatus(jobId);
        return status == IRenderEscrow.JobStatus.Open || status == IRenderEscrow.JobStatus.Cancelled;
    }

    /// @dev No frame sets (the unused list of a `release`).
    function _none() internal pure returns (IRenderEscrow.FrameSet[] memory) {
        return new IRenderEscrow.FrameSet[](0);
    }

    function _node(uint256 seed, uint256 offset) internal view returns (address) {
        return nodes[(seed % nodes.length + offset) % nodes.length];
    }

    /// @dev The first node from `_node(seed, offset)` on that was bound before job `jobId` opened (only those
    ///      can be paid for it); zero if none is.
    function _payableNode(uint256 jobId, uint256 seed, uint256 offset) internal view returns (address) {
        uint64 openedAt = termsOf[jobId].openedAt;
        for (uint256 k; k < nodes.length; ++k) {
            address node = _node(seed, offset + k);
            (, uint40 boundAt) = registry.bindingOf(node);
            if (boundAt < openedAt) return node;
        }
        return address(0);
    }

    function _validMask(uint32 frameCount, uint256 w) internal pure returns (uint256) {
        uint256 base = w * 256;
        if (frameCount <= base) return 0;
        uint256 valid = frameCount - base;
        return valid >= 256 ? type(uint256).max : (uint256(1) << valid) - 1;
    }

    function _balance(address t, address account) internal view returns (uint256) {
        return t == address(0) ? account.balance : MockERC20(t).balanceOf(account);
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        while (x != 0) {
            x &= x - 1;
            ++c;
        }
    }
}
