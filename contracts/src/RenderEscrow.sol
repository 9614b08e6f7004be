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

    /// @dev Low byte of a job's storage word: its status (bits 0-1) and whether it has a `Progress` entry
    ///      (bit 2, so that a job settled in one call never reads that slot); the other 248 bits: the hash of
    ///      its terms.
    uint256 private constant STATUS_MASK = 0xff;
    uint256 private constant STATUS_BITS = 0x03;
    uint256 private constant HAS_PROGRESS = 0x04;
    /// @dev Transient scratch of the paid frames (kind 0) and verification renders (kind 1) of the jobs a call
    ///      settles and closes: such a call writes no bitmap to storage (see `_paySets`).
    bytes32 private constant SCRATCH = keccak256("lumen.RenderEscrow.scratch");

    /// @dev Counts of a job settled in several calls, and its cancel time; zero for a job settled in one.
    struct Progress {
        uint32 framesPaid;
        uint32 verificationsPaid;
        uint40 cancelledAt;
    }

    /// @dev Totals of one job within a settlement.
    struct JobCtx {
        uint256 jobId;
        // The job's storage word.
        uint256 word;
        address token;
        uint256 feeBps;
        uint256 frameCount;
        uint256 price;
        uint256 openedAt;
        // Whether earlier settlements wrote bitmaps (they paid frames without closing).
        bool prior;
        // Whether this settlement writes bitmaps (it does not close the job).
        bool persist;
        bool verification;
        uint256 count;
        // Fees of this job in this call, added to the batch once.
        uint256 fee;
        // The cached word of paid frames while paying verification renders: its index and bits.
        uint256 paidIndex;
        uint256 paidWord;
    }

    /// @dev What one settle call owes, added to storage once at its end: credits per (owner, token), fees per
    ///      token, refunds per closed job; and the node bindings it looked up.
    struct Batch {
        address[] nodes;
        address[] nodeOwners;
        uint256[] nodeBoundAt;
        uint256 nodeCount;
        address[] creditOwners;
        address[] creditTokens;
        uint256[] creditAmounts;
        uint256 creditCount;
        address[] feeTokens;
        uint256[] feeAmounts;
        uint256 feeCount;
        address[] refundArtists;
        address[] refundTokens;
        uint256[] refundAmounts;
        uint256 refundCount;
    }

    /// @inheritdoc IRenderEscrow
    INodeRegistry public immutable registry;
    /// @inheritdoc IRenderEscrow
    uint64 public immutable cancelGrace;

    // treasury, feeBps, paused and nextJobId share one slot: openJob reads and writes it once.
    /// @inheritdoc IRenderEscrow
    address public treasury;
    /// @inheritdoc IRenderEscrow
    uint16 public feeBps;
    /// @inheritdoc IRenderEscrow
    bool public paused;
    /// @inheritdoc IRenderEscrow
    uint64 public nextJobId = 1;

    /// @dev Per job one word: the hash of its terms (high 248 bits) and its status (low byte).
    mapping(uint256 jobId => uint256 word) private _jobs;
    mapping(uint256 jobId => Progress) private _progress;
    /// @inheritdoc IRenderEscrow
    mapping(uint256 jobId => mapping(uint256 wordIndex => uint256 bits)) public paidFrames;
    /// @inheritdoc IRenderEscrow
    mapping(uint256 jobId => mapping(uint256 wordIndex => uint256 bits)) public verifiedFrames;
    /// @dev Credits and fees are stored plus one once their slot exists (see `openAccount`): 0 = no slot,
    ///      n + 1 = n owed. A withdrawal leaves 1, so the slot stays and the next payout is a cheap update.
    mapping(address account => mapping(address token => uint256)) private _credits;
    mapping(address token => uint256) private _fees;

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
        _fees[address(0)] = 1;
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

        uint64 id = nextJobId;
        // Job ids cannot realistically reach 2^64.
        unchecked {
            nextJobId = id + 1;
        }
        jobId = id;
        JobTerms memory terms = JobTerms({
            specHash: specHash,
            artist: msg.sender,
            token: token,
            pricePerFrame: pricePerFrame,
            frameCount: frameCount,
            verifications: verifications,
            deadline: deadline,
            openedAt: uint64(block.timestamp),
            feeBps: feeBps
        });
        _jobs[jobId] = _termsHash(terms) | uint256(JobStatus.Open);
        emit JobOpened(
            jobId,
            msg.sender,
            specHash,
            token,
            pricePerFrame,
            frameCount,
            verifications,
            deadline,
            terms.openedAt,
            amount,
            terms.feeBps
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
    function cancel(uint256 jobId, JobTerms calldata terms) external {
        uint256 word = _jobs[jobId];
        JobStatus status = _status(jobId, word, terms);
        require(status == JobStatus.Open, Escrow_JobNotOpen(jobId, status));
        require(msg.sender == terms.artist, Escrow_NotArtist(jobId, msg.sender));
        _jobs[jobId] = (word & ~STATUS_BITS) | uint256(JobStatus.Cancelled) | HAS_PROGRESS;
        // casting to 'uint40' is safe until the year 36812
        // forge-lint: disable-next-line(unsafe-typecast)
        _progress[jobId].cancelledAt = uint40(block.timestamp);
        uint64 refundableAt = uint64(block.timestamp) + cancelGrace;
        uint64 deadline = terms.deadline;
        emit JobCancelled(jobId, terms.artist, refundableAt < deadline ? refundableAt : deadline);
    }

    /// @inheritdoc IRenderEscrow
    function refund(uint256 jobId, JobTerms calldata terms) external nonReentrant {
        uint256 word = _jobs[jobId];
        JobStatus status = _status(jobId, word, terms);
        Progress memory progress = _loadProgress(jobId, word);
        bool live = status == JobStatus.Open || status == JobStatus.Cancelled;
        require(
            (live && block.timestamp >= terms.deadline)
                || (status == JobStatus.Cancelled
                    && block.timestamp >= uint256(progress.cancelledAt) + cancelGrace),
            Escrow_NotRefundable(jobId)
        );
        uint256 amount = _remaining(terms, progress.framesPaid, progress.verificationsPaid);
        _jobs[jobId] = (word & ~STATUS_BITS) | uint256(JobStatus.Refunded);
        emit JobRefunded(jobId, terms.artist, amount);
        if (amount != 0) _pushRefund(terms.artist, terms.token, amount);
    }

    // ------------------------------------------------------------------ settlement role

    /// @inheritdoc IRenderEscrow
    function settle(
        uint256 jobId,
        JobTerms calldata terms,
        FrameSet[] calldata frames,
        FrameSet[] calldata verifications,
        bool close
    ) external nonReentrant onlySettler {
        Batch memory batch = _newBatch(frames.length + verifications.length, 1);
        _settleJob(jobId, terms, frames, verifications, close, batch);
        _finish(batch);
    }

    /// @inheritdoc IRenderEscrow
    function settleMany(Settlement[] calldata settlements) external nonReentrant onlySettler {
        uint256 sets;
        for (uint256 i; i < settlements.length; ++i) {
            sets += settlements[i].frames.length + settlements[i].verifications.length;
        }
        Batch memory batch = _newBatch(sets, settlements.length);
        for (uint256 i; i < settlements.length; ++i) {
            Settlement calldata s = settlements[i];
            _settleJob(s.jobId, s.terms, s.frames, s.verifications, s.close, batch);
        }
        _finish(batch);
    }

    // ------------------------------------------------------------------ withdrawals

    /// @inheritdoc IRenderEscrow
    function openAccount(address account, address token) external {
        if (_credits[account][token] == 0) _credits[account][token] = 1;
    }

    /// @inheritdoc IRenderEscrow
    function openFees(address token) external {
        if (_fees[token] == 0) _fees[token] = 1;
    }

    /// @inheritdoc IRenderEscrow
    function withdraw(address token) external nonReentrant {
        uint256 amount = _owed(_credits[msg.sender][token]);
        require(amount != 0, Escrow_NothingToWithdraw());
        _credits[msg.sender][token] = 1;
        emit CreditsWithdrawn(msg.sender, token, amount);
        _pay(token, msg.sender, amount);
    }

    /// @inheritdoc IRenderEscrow
    function withdrawFees(address token) external nonReentrant {
        uint256 amount = _owed(_fees[token]);
        require(amount != 0, Escrow_NothingToWithdraw());
        address to = treasury;
        _fees[token] = 1;
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
    function getJob(uint256 jobId, JobTerms calldata terms) external view returns (JobState memory state) {
        uint256 word = _jobs[jobId];
        if (word == 0) return state;
        state.status = _status(jobId, word, terms);
        Progress memory progress = _loadProgress(jobId, word);
        state.cancelledAt = progress.cancelledAt;
        state.framesPaid = progress.framesPaid;
        state.verificationsPaid = progress.verificationsPaid;
        if (state.status != JobStatus.Refunded) {
            state.verificationsLeft = terms.verifications - progress.verificationsPaid;
            // casting to 'uint128' is safe because the rest is at most the lock, which quote() bounds
            // forge-lint: disable-next-line(unsafe-typecast)
            state.remaining = uint128(_remaining(terms, progress.framesPaid, progress.verificationsPaid));
        }
    }

    /// @inheritdoc IRenderEscrow
    function credits(address account, address token) external view returns (uint256) {
        return _owed(_credits[account][token]);
    }

    /// @inheritdoc IRenderEscrow
    function fees(address token) external view returns (uint256) {
        return _owed(_fees[token]);
    }

    /// @inheritdoc IRenderEscrow
    function jobStatus(uint256 jobId) external view returns (JobStatus) {
        return JobStatus(_jobs[jobId] & STATUS_BITS);
    }

    /// @inheritdoc IRenderEscrow
    function artistOf(uint256 jobId, JobTerms calldata terms) external view returns (address) {
        uint256 word = _jobs[jobId];
        if (word == 0) return address(0);
        _status(jobId, word, terms);
        return terms.artist;
    }

    /// @inheritdoc IRenderEscrow
    function isFramePaid(uint256 jobId, uint256 frameIndex) external view returns (bool) {
        return (paidFrames[jobId][frameIndex >> 8] >> (frameIndex & 0xff)) & 1 == 1;
    }

    // ------------------------------------------------------------------ internal

    /// @dev What a stored credit or fee word (amount plus one, or zero for no slot) owes.
    function _owed(uint256 stored) private pure returns (uint256) {
        // stored - 1 cannot underflow: it is taken only when stored != 0.
        unchecked {
            return stored == 0 ? 0 : stored - 1;
        }
    }

    /// @dev Adds `amount` to a stored credit or fee word, creating the slot (as 1 + amount) if needed.
    function _plus(uint256 stored, uint256 amount) private pure returns (uint256) {
        return (stored == 0 ? 1 : stored) + amount;
    }

    /// @dev The high 248 bits of the hash of `terms` (the low byte of a job's word holds its status; 248 bits
    ///      leave a collision search 2^124 hashes away).
    function _termsHash(JobTerms memory terms) private pure returns (uint256) {
        return uint256(keccak256(abi.encode(terms))) & ~STATUS_MASK;
    }

    /// @dev The status of job `jobId` stored as `word`, after checking that `terms` are its terms (a job that
    ///      does not exist matches no terms).
    function _status(uint256 jobId, uint256 word, JobTerms calldata terms) private pure returns (JobStatus) {
        require(word != 0 && word & ~STATUS_MASK == _termsHash(terms), Escrow_TermsMismatch(jobId));
        return JobStatus(word & STATUS_BITS);
    }

    /// @dev The stored counts of job `jobId` (stored as `word`), all zero if it never stored any.
    function _loadProgress(uint256 jobId, uint256 word) private view returns (Progress memory progress) {
        if (word & HAS_PROGRESS != 0) progress = _progress[jobId];
    }

    /// @dev The locked rest of a job with these terms after `framesPaid` frames and `verificationsPaid`
    ///      verification renders: checked, though both stay within the counts the lock was made for.
    function _remaining(JobTerms calldata terms, uint256 framesPaid, uint256 verificationsPaid)
        private
        pure
        returns (uint256)
    {
        return (uint256(terms.frameCount) + terms.verifications - framesPaid - verificationsPaid)
            * terms.pricePerFrame;
    }

    /// @dev Settles one job into `batch` (see `settle`).
    function _settleJob(
        uint256 jobId,
        JobTerms calldata terms,
        FrameSet[] calldata frames,
        FrameSet[] calldata verifications,
        bool close,
        Batch memory batch
    ) private {
        require(close || frames.length + verifications.length != 0, Escrow_NothingToSettle());
        JobCtx memory ctx;
        ctx.word = _jobs[jobId];
        {
            JobStatus status = _status(jobId, ctx.word, terms);
            require(
                status == JobStatus.Open || status == JobStatus.Cancelled,
                Escrow_JobNotReleasable(jobId, status)
            );
        }
        Progress memory progress = _loadProgress(jobId, ctx.word);
        ctx.jobId = jobId;
        ctx.token = terms.token;
        ctx.feeBps = terms.feeBps;
        ctx.frameCount = terms.frameCount;
        ctx.price = terms.pricePerFrame;
        ctx.openedAt = terms.openedAt;
        // Bitmaps exist only once a settlement paid frames without closing the job (a verification render
        // needs its frame paid, so no frames paid means no verification renders paid either).
        ctx.prior = progress.framesPaid != 0;
        ctx.persist = !close;
        if (frames.length != 0) _paySets(frames, ctx, batch);
        // Each frame is paid at most once (bitmaps within the frame count), so this stays <= frameCount.
        uint256 framesPaid = progress.framesPaid + ctx.count;
        uint256 verificationsPaid = progress.verificationsPaid;
        if (verifications.length != 0) {
            // The frames above are recorded already: a verification render may be paid with its frame.
            ctx.verification = true;
            ctx.count = 0;
            _paySets(verifications, ctx, batch);
            uint256 left = terms.verifications - verificationsPaid;
            require(ctx.count <= left, Escrow_VerificationBudgetExceeded(jobId, ctx.count, left));
            verificationsPaid += ctx.count;
        }
        if (ctx.fee != 0) _addFee(batch, ctx.token, ctx.fee);
        if (frames.length + verifications.length != 0) emit FramesReleased(jobId, frames, verifications);
        if (close) _close(jobId, ctx.word, terms, framesPaid, verificationsPaid, batch);
        else _record(jobId, ctx.word, progress, framesPaid, verificationsPaid);
    }

    /// @dev Ends job `jobId` after it paid `framesPaid` frames and `verificationsPaid` verification renders:
    ///      marks it refunded and queues the refund of its rest in `batch`.
    function _close(
        uint256 jobId,
        uint256 word,
        JobTerms calldata terms,
        uint256 framesPaid,
        uint256 verificationsPaid,
        Batch memory batch
    ) private {
        uint256 rest = _remaining(terms, framesPaid, verificationsPaid);
        _jobs[jobId] = (word & ~STATUS_BITS) | uint256(JobStatus.Refunded);
        emit JobRefunded(jobId, terms.artist, rest);
        if (rest != 0) {
            uint256 r = batch.refundCount++;
            batch.refundArtists[r] = terms.artist;
            batch.refundTokens[r] = terms.token;
            batch.refundAmounts[r] = rest;
        }
    }

    /// @dev Stores the counts of a job (stored as `word`) that stays open.
    function _record(
        uint256 jobId,
        uint256 word,
        Progress memory progress,
        uint256 framesPaid,
        uint256 verificationsPaid
    ) private {
        if (word & HAS_PROGRESS == 0) _jobs[jobId] = word | HAS_PROGRESS;
        // Both counts are within frameCount and the budget, which fit in 32 bits.
        // forge-lint: disable-next-line(unsafe-typecast)
        progress.framesPaid = uint32(framesPaid);
        // forge-lint: disable-next-line(unsafe-typecast)
        progress.verificationsPaid = uint32(verificationsPaid);
        _progress[jobId] = progress;
    }

    /// @dev Pays `sets` of one job: frames, or verification renders (`ctx.verification`) of frames paid before
    ///      or earlier in this call. A settlement that keeps the job open records them in the job's bitmaps
    ///      (`ctx.persist`); one that closes it records them in transient scratch only, on top of the bitmaps
    ///      of earlier settlements (`ctx.prior`): the job ends with the call, so nothing can be paid for it
    ///      later, and within the call the scratch pays every frame at most once.
    function _paySets(FrameSet[] calldata sets, JobCtx memory ctx, Batch memory batch) private {
        mapping(uint256 => uint256) storage bitmap =
            ctx.verification ? verifiedFrames[ctx.jobId] : paidFrames[ctx.jobId];
        // The word being worked on (those of this kind paid so far, in the bitmap or the scratch) is cached
        // and written back only when the word changes, so several sets of one word (one per node, the
        // common case) cost one SSTORE or TSTORE; for verification renders, so is the word of paid frames.
        uint256 wordIndex = type(uint256).max;
        uint256 word;
        ctx.paidIndex = type(uint256).max;
        for (uint256 i; i < sets.length; ++i) {
            FrameSet calldata set = sets[i];
            uint256 bits = set.bits;
            uint32 w = set.wordIndex;
            require(bits != 0, Escrow_EmptyFrameSet(ctx.jobId, i));
            _checkRange(ctx.jobId, w, bits, ctx.frameCount);
            if (w != wordIndex) {
                if (wordIndex != type(uint256).max) _storeWord(ctx, bitmap, wordIndex, word);
                wordIndex = w;
                word = _loadWord(ctx, bitmap, w);
            }
            if (ctx.verification) _checkFramesPaid(ctx, w, bits, word);
            else require(word & bits == 0, Escrow_FrameAlreadyPaid(ctx.jobId, w, word & bits));
            word |= bits;
            _creditNode(set.node, bits, ctx, batch);
        }
        if (wordIndex != type(uint256).max) _storeWord(ctx, bitmap, wordIndex, word);
    }

    /// @dev Word `w` of this kind paid so far: the bitmap's (`persist`), or the scratch's on top of the
    ///      bitmap of earlier settlements (`prior`).
    function _loadWord(JobCtx memory ctx, mapping(uint256 => uint256) storage bitmap, uint256 w)
        private
        view
        returns (uint256 word)
    {
        if (ctx.persist) return bitmap[w];
        word = _scratch(ctx.jobId, ctx.verification, w);
        if (ctx.prior) word |= bitmap[w];
    }

    function _storeWord(
        JobCtx memory ctx,
        mapping(uint256 => uint256) storage bitmap,
        uint256 w,
        uint256 word
    ) private {
        if (ctx.persist) bitmap[w] = word;
        else _setScratch(ctx.jobId, ctx.verification, w, word);
    }

    /// @dev Reverts unless the frames `bits` of word `w` are paid (those paid earlier in this call included:
    ///      they are in the bitmap, `persist`, or the scratch, otherwise) and their verification renders are
    ///      not (`done`: those paid so far). The word of paid frames is cached in `ctx`.
    function _checkFramesPaid(JobCtx memory ctx, uint256 w, uint256 bits, uint256 done) private view {
        if (w != ctx.paidIndex) {
            uint256 paidWord;
            if (ctx.persist || ctx.prior) paidWord = paidFrames[ctx.jobId][w];
            if (!ctx.persist) paidWord |= _scratch(ctx.jobId, false, w);
            ctx.paidIndex = w;
            ctx.paidWord = paidWord;
        }
        uint256 unpaid = bits & ~ctx.paidWord;
        // casting to 'uint32' is safe: w is a FrameSet's uint32 word index
        // forge-lint: disable-next-line(unsafe-typecast)
        require(unpaid == 0, Escrow_FrameNotPaid(ctx.jobId, uint32(w), unpaid));
        // forge-lint: disable-next-line(unsafe-typecast)
        require(done & bits == 0, Escrow_VerificationAlreadyPaid(ctx.jobId, uint32(w), done & bits));
    }

    /// @dev Credits the owner of `node` (in `batch`) for the frames `bits`, counts them.
    function _creditNode(address node, uint256 bits, JobCtx memory ctx, Batch memory batch) private view {
        (address owner_, uint256 boundAt) = _binding(node, batch);
        require(owner_ != address(0), Escrow_NodeNotBound(node));
        // Strictly before: a node bound in the block that opened the job could have been bound after it.
        require(
            boundAt < ctx.openedAt,
            // casting to 'uint40' is safe: both are block timestamps, below 2^40 until the year 36812
            // forge-lint: disable-next-line(unsafe-typecast)
            Escrow_NodeBoundAfterOpen(ctx.jobId, node, uint40(boundAt), uint40(ctx.openedAt))
        );
        uint256 amount;
        uint256 fee;
        // popcount <= 256, price < 2^128 and feeBps <= 1000, so no product overflows and fee <= amount; the
        // count stays below 2^21.
        unchecked {
            uint256 count = _popcount(bits);
            amount = count * ctx.price;
            fee = amount * ctx.feeBps / BPS;
            ctx.count += count;
        }
        _addCredit(batch, owner_, ctx.token, amount - fee);
        ctx.fee += fee;
    }

    /// @dev The registry binding of `node`, looked up once per call.
    function _binding(address node, Batch memory batch)
        private
        view
        returns (address owner_, uint256 boundAt)
    {
        uint256 n = batch.nodeCount;
        for (uint256 i; i < n; ++i) {
            if (batch.nodes[i] == node) return (batch.nodeOwners[i], batch.nodeBoundAt[i]);
        }
        (owner_, boundAt) = registry.bindingOf(node);
        batch.nodes[n] = node;
        batch.nodeOwners[n] = owner_;
        batch.nodeBoundAt[n] = boundAt;
        batch.nodeCount = n + 1;
    }

    function _addCredit(Batch memory batch, address owner_, address token, uint256 amount) private pure {
        uint256 n = batch.creditCount;
        for (uint256 i; i < n; ++i) {
            if (batch.creditOwners[i] == owner_ && batch.creditTokens[i] == token) {
                batch.creditAmounts[i] += amount;
                return;
            }
        }
        batch.creditOwners[n] = owner_;
        batch.creditTokens[n] = token;
        batch.creditAmounts[n] = amount;
        batch.creditCount = n + 1;
    }

    function _addFee(Batch memory batch, address token, uint256 amount) private pure {
        uint256 n = batch.feeCount;
        for (uint256 i; i < n; ++i) {
            if (batch.feeTokens[i] == token) {
                batch.feeAmounts[i] += amount;
                return;
            }
        }
        batch.feeTokens[n] = token;
        batch.feeAmounts[n] = amount;
        batch.feeCount = n + 1;
    }

    /// @dev Room for `sets` frame sets (each names at most one node, owner and fee token) and `jobs` refunds.
    function _newBatch(uint256 sets, uint256 jobs) private pure returns (Batch memory batch) {
        batch.nodes = new address[](sets);
        batch.nodeOwners = new address[](sets);
        batch.nodeBoundAt = new uint256[](sets);
        batch.creditOwners = new address[](sets);
        batch.creditTokens = new address[](sets);
        batch.creditAmounts = new uint256[](sets);
        batch.feeTokens = new address[](sets);
        batch.feeAmounts = new uint256[](sets);
        batch.refundArtists = new address[](jobs);
        batch.refundTokens = new address[](jobs);
        batch.refundAmounts = new uint256[](jobs);
    }

    /// @dev Writes what `batch` owes (one SSTORE per owner and token, one per fee token), then sends the
    ///      refunds of the jobs it closed: effects before interactions.
    function _finish(Batch memory batch) private {
        // Credits and fees are sums of released amounts of jobs whose locks each fit in 128 bits; they cannot
        // realistically reach 2^256, but stay checked.
        for (uint256 i; i < batch.creditCount; ++i) {
            mapping(address => uint256) storage owed = _credits[batch.creditOwners[i]];
            address token = batch.creditTokens[i];
            owed[token] = _plus(owed[token], batch.creditAmounts[i]);
        }
        for (uint256 i; i < batch.feeCount; ++i) {
            address token = batch.feeTokens[i];
            _fees[token] = _plus(_fees[token], batch.feeAmounts[i]);
        }
        for (uint256 i; i < batch.refundCount; ++i) {
            _pushRefund(batch.refundArtists[i], batch.refundTokens[i], batch.refundAmounts[i]);
        }
    }

    /// @dev Sends a refund to `artist`, or credits it if the artist refuses the transfer.
    function _pushRefund(address artist, address token, uint256 amount) private {
        bool sent;
        if (token == address(0)) {
            // Gas-capped, so that an artist contract cannot burn the settlement's gas to block it.
            (sent,) = artist.call{value: amount, gas: REFUND_GAS}("");
        } else {
            sent = IERC20(token).trySafeTransfer(artist, amount);
        }
        // Credited instead, so that a refusing artist cannot block settlement; it withdraws like an owner.
        if (!sent) _credits[artist][token] = _plus(_credits[artist][token], amount);
    }

    /// @dev Transient bits of word `w` of job `jobId` paid earlier in this transaction by closing settlements.
    function _scratch(uint256 jobId, bool verification, uint256 w) private view returns (uint256 bits) {
        bytes32 slot = _scratchSlot(jobId, verification, w);
        // Reads transient storage (EIP-1153); the slot is private to this contract and this transaction.
        assembly ("memory-safe") {
            bits := tload(slot)
        }
    }

    function _setScratch(uint256 jobId, bool verification, uint256 w, uint256 bits) private {
        bytes32 slot = _scratchSlot(jobId, verification, w);
        // Writes transient storage (EIP-1153): gone at the end of the transaction, by which time the job is
        // closed and nothing more can be paid for it.
        assembly ("memory-safe") {
            tstore(slot, bits)
        }
    }

    /// @dev A distinct transient slot per (job, kind, word): job ids are below 2^64 and words below 2^32, so
    ///      the value xored in (below 2^98) never repeats (no hashing: this runs once per frame set).
    function _scratchSlot(uint256 jobId, bool verification, uint256 w) private pure returns (bytes32) {
        uint256 kind = verification ? 1 : 0;
        return bytes32(uint256(SCRATCH) ^ ((jobId << 34) | (w << 1) | kind));
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
