// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {IRenderEscrow} from "./interfaces/IRenderEscrow.sol";
import {ISettlerTimelock} from "./interfaces/ISettlerTimelock.sol";
import {SettlerTimelock} from "./utils/SettlerTimelock.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title RenderEscrow
/// @notice Per-frame escrow of Lumen render jobs. See {IRenderEscrow}.
/// @dev Admin is an Ownable2Step owner. Payouts are credited (pull payment); only the artist refund is
///      pushed, and it always goes to the job's artist. Native coin sent without calling `openJob` is
///      rejected (no receive/fallback function).
contract RenderEscrow is IRenderEscrow, SettlerTimelock, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @inheritdoc IRenderEscrow
    uint16 public constant MAX_FEE_BPS = 1000;
    /// @inheritdoc IRenderEscrow
    uint32 public constant MAX_FRAMES = 1_048_576;

    uint256 private constant BPS = 10_000;
    /// @dev Gas a native refund may use in the artist's receive function (a smart wallet needs a few
    ///      thousand); beyond it the refund is credited instead.
    uint256 private constant REFUND_GAS = 50_000;

    /// @dev Job fields and running totals of one `release` call, kept in memory (cheap, and off the stack).
    struct ReleaseCtx {
        address token;
        uint256 feeBps;
        uint256 frameCount;
        uint256 price;
        uint256 total;
        uint256 totalFee;
        uint256 count;
        bool verification;
        uint40 openedAt;
    }

    /// @inheritdoc IRenderEscrow
    INodeRegistry public immutable registry;
    /// @inheritdoc IRenderEscrow
    uint64 public immutable cancelGrace;

    // treasury, feeBps and paused share one slot.
    /// @inheritdoc IRenderEscrow
    address public treasury;
    /// @inheritdoc IRenderEscrow
    uint16 public feeBps;
    /// @inheritdoc IRenderEscrow
    bool public paused;
    /// @inheritdoc IRenderEscrow
    uint256 public nextJobId = 1;

    mapping(uint256 jobId => Job) private _jobs;
    /// @inheritdoc IRenderEscrow
    mapping(uint256 jobId => mapping(uint256 wordIndex => uint256 bits)) public paidFrames;
    /// @inheritdoc IRenderEscrow
    mapping(uint256 jobId => mapping(uint256 wordIndex => uint256 bits)) public verifiedFrames;
    /// @inheritdoc IRenderEscrow
    mapping(address account => mapping(address token => uint256)) public credits;
    /// @inheritdoc IRenderEscrow
    mapping(address token => uint256) public fees;

    /// @param admin Admin (Ownable2Step owner).
    /// @param registry_ Node registry resolving node owners.
    /// @param settler_ Settlement role (releases and closes).
    /// @param treasury_ Receiver of protocol fees.
    /// @param feeBps_ Protocol fee in basis points (at most MAX_FEE_BPS).
    /// @param cancelGrace_ Seconds after `cancel` from which a cancelled job is refundable.
    constructor(
        address admin,
        INodeRegistry registry_,
        address settler_,
        address treasury_,
        uint16 feeBps_,
        uint64 cancelGrace_
    ) SettlerTimelock(settler_) Ownable(admin) {
        require(address(registry_) != address(0), Escrow_ZeroAddress());
        require(treasury_ != address(0), Escrow_ZeroAddress());
        require(feeBps_ <= MAX_FEE_BPS, Escrow_FeeTooHigh(feeBps_));
        registry = registry_;
        cancelGrace = cancelGrace_;
        treasury = treasury_;
        feeBps = feeBps_;
        emit TreasuryChanged(address(0), treasury_);
        emit FeeBpsChanged(0, feeBps_);
    }

    modifier onlySettler() {
        require(msg.sender == settler, Escrow_NotSettler(msg.sender));
        _;
    }

    // ------------------------------------------------------------------ artist

    /// @inheritdoc IRenderEscrow
    function openJob(
        bytes32 specHash,
        address token,
        uint128 pricePerFrame,
        uint32 frameCount,
        uint32 verifications,
        uint64 deadline
    ) external payable nonReentrant returns (uint256 jobId) {
        require(!paused, Escrow_Paused());
        require(specHash != bytes32(0), Escrow_ZeroSpecHash());
        uint256 amount = quote(frameCount, verifications, pricePerFrame);
        require(deadline > block.timestamp, Escrow_DeadlineInPast(deadline, block.timestamp));
        require(deadline <= type(uint40).max, Escrow_DeadlineTooFar(deadline));
        uint256 expectedValue = token == address(0) ? amount : 0;
        require(msg.value == expectedValue, Escrow_WrongValue(expectedValue, msg.value));

        jobId = nextJobId;
        // Job ids cannot realistically reach 2^256.
        unchecked {
            nextJobId = jobId + 1;
        }
        uint16 fee = feeBps;
        // The casts below are safe: deadline was checked against 2^40 - 1, the timestamp is below it until
        // the year 36812, and quote() bounds frameCount by MAX_FRAMES (2^20) and verifications by frameCount.
        _jobs[jobId] = Job({
            artist: msg.sender,
            // forge-lint: disable-next-line(unsafe-typecast)
            deadline: uint40(deadline),
            // forge-lint: disable-next-line(unsafe-typecast)
            openedAt: uint40(block.timestamp),
            feeBps: fee,
            token: token,
            cancelledAt: 0,
            status: JobStatus.Open,
            // forge-lint: disable-next-line(unsafe-typecast)
            frameCount: uint24(frameCount),
            // forge-lint: disable-next-line(unsafe-typecast)
            verificationsLeft: uint24(verifications),
            pricePerFrame: pricePerFrame,
            // casting to 'uint128' is safe because quote() reverts on amounts above 2^128-1
            // forge-lint: disable-next-line(unsafe-typecast)
            remaining: uint128(amount),
            specHash: specHash
        });
        emit JobOpened(
            jobId,
            msg.sender,
            specHash,
            token,
            pricePerFrame,
            frameCount,
            verifications,
            deadline,
            amount,
            fee
        );

        if (token != address(0)) {
            // Measure what actually arrived: fee-on-transfer tokens would leave the lock short.
            uint256 before = IERC20(token).balanceOf(address(this));
            IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
            uint256 received = IERC20(token).balanceOf(address(this)) - before;
            require(received == amount, Escrow_TransferAmountMismatch(amount, received));
        }
    }

    /// @inheritdoc IRenderEscrow
    function cancel(uint256 jobId) external {
        Job storage job = _jobs[jobId];
        JobStatus status = job.status;
        require(status == JobStatus.Open, Escrow_JobNotOpen(jobId, status));
        address artist = job.artist;
        require(msg.sender == artist, Escrow_NotArtist(jobId, msg.sender));
        job.status = JobStatus.Cancelled;
        // casting to 'uint40' is safe until the year 36812
        // forge-lint: disable-next-line(unsafe-typecast)
        job.cancelledAt = uint40(block.timestamp);
        uint64 refundableAt = uint64(block.timestamp) + cancelGrace;
        uint64 deadline = job.deadline;
        emit JobCancelled(jobId, artist, refundableAt < deadline ? refundableAt : deadline);
    }

    /// @inheritdoc IRenderEscrow
    function refund(uint256 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        JobStatus status = job.status;
        bool live = status == JobStatus.Open || status == JobStatus.Cancelled;
        require(
            (live && block.timestamp >= job.deadline)
                || (status == JobStatus.Cancelled
                    && block.timestamp >= uint256(job.cancelledAt) + cancelGrace),
            Escrow_NotRefundable(jobId)
        );
        _refund(jobId, job);
    }

    // ------------------------------------------------------------------ settlement role

    /// @inheritdoc IRenderEscrow
    function settle(
        uint256 jobId,
        bytes32 specHash,
        FrameSet[] calldata frames,
        FrameSet[] calldata verifications,
        bool close
    ) external nonReentrant onlySettler {
        require(close || frames.length + verifications.length != 0, Escrow_NothingToSettle());
        Job storage job = _jobs[jobId];
        ReleaseCtx memory ctx;
        {
            JobStatus status = job.status;
            require(
                status == JobStatus.Open || status == JobStatus.Cancelled,
                Escrow_JobNotReleasable(jobId, status)
            );
            require(job.specHash == specHash, Escrow_SpecMismatch(jobId, specHash));
            ctx.token = job.token;
            ctx.feeBps = job.feeBps;
            ctx.frameCount = job.frameCount;
            ctx.price = job.pricePerFrame;
            ctx.openedAt = job.openedAt;
        }
        mapping(uint256 => uint256) storage paid = paidFrames[jobId];
        if (frames.length != 0) _paySets(jobId, frames, paid, paid, ctx);
        if (verifications.length != 0) {
            // The frames above are written back already: a verification render may be paid with its frame.
            ctx.verification = true;
            ctx.count = 0;
            _paySets(jobId, verifications, verifiedFrames[jobId], paid, ctx);
            uint256 left = job.verificationsLeft;
            require(ctx.count <= left, Escrow_VerificationBudgetExceeded(jobId, ctx.count, left));
            // casting to 'uint24' is safe because count <= left < 2^24
            // forge-lint: disable-next-line(unsafe-typecast)
            job.verificationsLeft = uint24(left - ctx.count);
        }
        if (ctx.totalFee != 0) fees[ctx.token] += ctx.totalFee;
        // Checked: a frame and its verification render are each paid at most once, and verification renders
        // at most `verifications` times, so the total never exceeds the locked rest; the result is therefore
        // <= remaining and fits in 128 bits.
        uint128 remaining = uint128(uint256(job.remaining) - ctx.total);
        job.remaining = remaining;
        if (close) {
            emit JobClosed(jobId, remaining);
            _refund(jobId, job);
        }
    }

    // ------------------------------------------------------------------ withdrawals

    /// @inheritdoc IRenderEscrow
    function withdraw(address token) external nonReentrant {
        uint256 amount = credits[msg.sender][token];
        require(amount != 0, Escrow_NothingToWithdraw());
        credits[msg.sender][token] = 0;
        emit CreditsWithdrawn(msg.sender, token, amount);
        _pay(token, msg.sender, amount);
    }

    /// @inheritdoc IRenderEscrow
    function withdrawFees(address token) external nonReentrant {
        uint256 amount = fees[token];
        require(amount != 0, Escrow_NothingToWithdraw());
        address to = treasury;
        fees[token] = 0;
        emit FeesWithdrawn(token, to, amount);
        _pay(token, to, amount);
    }

    // ------------------------------------------------------------------ admin

    /// @inheritdoc ISettlerTimelock
    function proposeSettler(address proposed) external onlyOwner {
        _proposeSettler(proposed);
    }

    /// @inheritdoc ISettlerTimelock
    function cancelSettlerProposal() external onlyOwner {
        _cancelSettler();
    }

    /// @inheritdoc IRenderEscrow
    function setTreasury(address newTreasury) external onlyOwner {
        require(newTreasury != address(0), Escrow_ZeroAddress());
        emit TreasuryChanged(treasury, newTreasury);
        treasury = newTreasury;
    }

    /// @inheritdoc IRenderEscrow
    function setFeeBps(uint16 newFeeBps) external onlyOwner {
        require(newFeeBps <= MAX_FEE_BPS, Escrow_FeeTooHigh(newFeeBps));
        emit FeeBpsChanged(feeBps, newFeeBps);
        feeBps = newFeeBps;
    }

    /// @inheritdoc IRenderEscrow
    function pause() external onlyOwner {
        paused = true;
        emit Paused(msg.sender);
    }

    /// @inheritdoc IRenderEscrow
    function unpause() external onlyOwner {
        paused = false;
        emit Unpaused(msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IRenderEscrow
    function quote(uint32 frameCount, uint32 verifications, uint128 pricePerFrame)
        public
        pure
        returns (uint256 amount)
    {
        require(frameCount != 0 && frameCount <= MAX_FRAMES, Escrow_InvalidFrameCount(frameCount));
        require(verifications <= frameCount, Escrow_InvalidVerifications(verifications, frameCount));
        require(pricePerFrame != 0, Escrow_ZeroPrice());
        // frameCount + verifications < 2^22 and pricePerFrame < 2^128: the product fits in 256 bits.
        unchecked {
            amount = (uint256(frameCount) + verifications) * pricePerFrame;
        }
        require(amount <= type(uint128).max, Escrow_AmountOverflow(amount));
    }

    /// @inheritdoc IRenderEscrow
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @inheritdoc IRenderEscrow
    function isFramePaid(uint256 jobId, uint256 frameIndex) external view returns (bool) {
        return (paidFrames[jobId][frameIndex >> 8] >> (frameIndex & 0xff)) & 1 == 1;
    }

    // ------------------------------------------------------------------ internal

    /// @dev Marks `sets` in `bitmap` and credits their nodes: frames (`bitmap` is `paid`), or verification
    ///      renders (`ctx.verification`), each of a frame already set in `paid`.
    function _paySets(
        uint256 jobId,
        FrameSet[] calldata sets,
        mapping(uint256 => uint256) storage bitmap,
        mapping(uint256 => uint256) storage paid,
        ReleaseCtx memory ctx
    ) private {
        // The bitmap word being worked on is cached and written back only when the word changes, so
        // several sets of one word (one per node, the common case) cost one SSTORE.
        uint256 wordIndex = type(uint256).max;
        uint256 word;
        for (uint256 i; i < sets.length; ++i) {
            FrameSet calldata set = sets[i];
            uint256 bits = set.bits;
            uint32 w = set.wordIndex;
            require(bits != 0, Escrow_EmptyFrameSet(jobId, i));
            _checkRange(jobId, w, bits, ctx.frameCount);
            if (w != wordIndex) {
                if (wordIndex != type(uint256).max) bitmap[wordIndex] = word;
                wordIndex = w;
                word = bitmap[w];
            }
            if (ctx.verification) {
                uint256 unpaid = bits & ~paid[w];
                require(unpaid == 0, Escrow_FrameNotPaid(jobId, w, unpaid));
                require(word & bits == 0, Escrow_VerificationAlreadyPaid(jobId, w, word & bits));
            } else {
                require(word & bits == 0, Escrow_FrameAlreadyPaid(jobId, w, word & bits));
            }
            word |= bits;
            _creditNode(jobId, set.node, w, bits, ctx);
        }
        bitmap[wordIndex] = word;
    }

    /// @dev Credits the owner of `node` for the frames `bits` of word `w`, adds to the release totals.
    function _creditNode(uint256 jobId, address node, uint32 w, uint256 bits, ReleaseCtx memory ctx) private {
        (address owner_, uint40 boundAt) = registry.bindingOf(node);
        require(owner_ != address(0), Escrow_NodeNotBound(node));
        // Strictly before: a node bound in the block that opened the job could have been bound after it.
        require(boundAt < ctx.openedAt, Escrow_NodeBoundAfterOpen(jobId, node, boundAt, ctx.openedAt));
        uint256 amount;
        uint256 fee;
        // popcount <= 256, price < 2^128 and feeBps <= 1000, so no product overflows and fee <= amount;
        // the running totals stay below frameCount * price < 2^128. Credits are sums of released amounts of
        // jobs whose locks each fit in 128 bits and cannot realistically reach 2^256.
        unchecked {
            uint256 count = _popcount(bits);
            amount = count * ctx.price;
            fee = amount * ctx.feeBps / BPS;
            credits[owner_][ctx.token] += amount - fee;
            ctx.total += amount;
            ctx.totalFee += fee;
            ctx.count += count;
        }
        if (ctx.verification) emit VerificationsReleased(jobId, node, owner_, w, bits, amount, fee);
        else emit FramesReleased(jobId, node, owner_, w, bits, amount, fee);
    }

    /// @dev Ends `job`: its rest goes to the artist (sent, or credited if the artist refuses the transfer).
    function _refund(uint256 jobId, Job storage job) private {
        uint256 amount = job.remaining;
        address artist = job.artist;
        job.remaining = 0;
        job.status = JobStatus.Refunded;
        emit JobRefunded(jobId, artist, amount);
        if (amount == 0) return;
        address token = job.token;
        bool sent;
        if (token == address(0)) {
            // Gas-capped, so that an artist contract cannot burn the settlement's gas to block it.
            (sent,) = artist.call{value: amount, gas: REFUND_GAS}("");
        } else {
            sent = IERC20(token).trySafeTransfer(artist, amount);
        }
        // Credited instead, so that a refusing artist cannot block settlement; it withdraws like an owner.
        if (!sent) credits[artist][token] += amount;
    }

    /// @dev Pays `amount` of `token` (address(0): native coin) to `to`.
    function _pay(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            require(ok, Escrow_NativeTransferFailed(to, amount));
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    /// @dev Reverts with the lowest frame index of `bits` (in word `w`) that is >= frameCount.
    function _checkRange(uint256 jobId, uint256 w, uint256 bits, uint256 frameCount) private pure {
        uint256 base = w << 8;
        // Fast path: the whole word lies inside the job.
        if (base + 256 <= frameCount) return;
        // Frames of this word at positions >= valid are out of range (valid < 256 here).
        uint256 valid = frameCount > base ? frameCount - base : 0;
        uint256 outside = bits >> valid;
        if (outside == 0) return;
        uint256 lowest;
        while ((outside >> lowest) & 1 == 0) {
            ++lowest;
        }
        revert Escrow_FrameOutOfRange(jobId, base + valid + lowest);
    }

    /// @dev Number of set bits of `x` (SWAR: 2-, 4-, 8-, 16-bit lane sums, then one multiply).
    function _popcount(uint256 x) private pure returns (uint256) {
        // Lane sums never exceed their lane width and the final multiply only adds 16-bit lanes whose
        // total is <= 256, so wrapping arithmetic is exact here.
        unchecked {
            x -= (x >> 1) & 0x5555555555555555555555555555555555555555555555555555555555555555;
            x = (x & 0x3333333333333333333333333333333333333333333333333333333333333333)
                + ((x >> 2) & 0x3333333333333333333333333333333333333333333333333333333333333333);
            x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f;
            x = (x + (x >> 8)) & 0x00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff;
            return (x * 0x0001000100010001000100010001000100010001000100010001000100010001) >> 240;
        }
    }
}
