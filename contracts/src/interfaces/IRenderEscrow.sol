// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {INodeRegistry} from "./INodeRegistry.sol";
import {ISettlerTimelock} from "./ISettlerTimelock.sol";

/// @title IRenderEscrow
/// @notice Escrow of Lumen render jobs: artists lock `(frameCount + verifications) × pricePerFrame` up
///         front, the settlement role releases payment per verified frame to the owners of the nodes that
///         rendered them, and for each paid frame at most one independent verification render, from the
///         artist's verification budget; the unreleased rest goes back to the artist.
/// @dev Payments are pull-based: `settle` credits `credits[owner][token]` and owners call `withdraw`.
///      Frames are addressed by their 0-based index within the job (not the Blender frame number);
///      bit `i` of bitmap word `w` is frame `w * 256 + i`. `token == address(0)` means the native coin.
interface IRenderEscrow is ISettlerTimelock {
    /// @notice Lifecycle of a job.
    /// @dev None: no such job. Open: accepting settlement. Cancelled: the artist asked to stop; settlement is
    ///      still allowed until the refund. Refunded: the unreleased rest went back to the artist, because the
    ///      settler closed the job or the artist refunded it after cancel + grace or the deadline; terminal.
    enum JobStatus {
        None,
        Open,
        Cancelled,
        Refunded
    }

    /// @notice The terms a job was opened with. They never change, so the escrow stores only their hash (one
    ///         storage slot per job) and every call that needs them takes them as an argument, checked
    ///         against that hash: wrong terms revert with `Escrow_TermsMismatch`. They are exactly the fields of
    ///         the job's `JobOpened` event.
    /// @param specHash Hash of the signed job spec (blend hash, frames, settings, price).
    /// @param artist Who opened the job and receives the refund.
    /// @param token Payment token; address(0) is the native coin.
    /// @param pricePerFrame Price of one frame (and of one verification render) in token units.
    /// @param frameCount Number of frames (1..MAX_FRAMES).
    /// @param verifications Verification budget given at open (0..frameCount).
    /// @param deadline After this timestamp anyone may trigger the refund of the rest.
    /// @param openedAt When the job was opened: only nodes bound before it can be paid for its frames.
    /// @param feeBps Protocol fee in basis points, snapshotted at open.
    struct JobTerms {
        bytes32 specHash;
        address artist;
        address token;
        uint128 pricePerFrame;
        uint32 frameCount;
        uint32 verifications;
        uint64 deadline;
        uint64 openedAt;
        uint16 feeBps;
    }

    /// @notice The state of a job, as `getJob` computes it from storage and the job's terms.
    /// @param status Lifecycle status.
    /// @param framesPaid Frames paid by settlements that did not close the job (a closing settlement ends the
    ///        job and stores no counts).
    /// @param verificationsPaid Verification renders paid likewise.
    /// @param verificationsLeft Verification renders the job may still pay (0 once it ended).
    /// @param cancelledAt Timestamp of `cancel` (0 if not cancelled).
    /// @param remaining Locked amount not yet released nor refunded (0 once it ended).
    struct JobState {
        JobStatus status;
        uint32 framesPaid;
        uint32 verificationsPaid;
        uint32 verificationsLeft;
        uint64 cancelledAt;
        uint128 remaining;
    }

    /// @notice Frames of one job rendered by one node, as a 256-bit bitmap word.
    /// @param node The node hot key that rendered the frames (paid to its registry owner).
    /// @param wordIndex Bitmap word: bit `i` stands for frame index `wordIndex * 256 + i`.
    /// @param bits The frames being paid; nonzero.
    struct FrameSet {
        address node;
        uint32 wordIndex;
        uint256 bits;
    }

    /// @notice One job's part of `settleMany`: the arguments of `settle`.
    struct Settlement {
        uint256 jobId;
        JobTerms terms;
        FrameSet[] frames;
        FrameSet[] verifications;
        bool close;
    }

    // ------------------------------------------------------------------ errors

    /// @notice The zero address was given where an address is required.
    error Escrow_ZeroAddress();
    /// @notice `bps` exceeds `MAX_FEE_BPS`.
    error Escrow_FeeTooHigh(uint16 bps);
    /// @notice `openJob` was called while paused.
    error Escrow_Paused();
    /// @notice The spec hash is zero.
    error Escrow_ZeroSpecHash();
    /// @notice The price per frame is zero.
    error Escrow_ZeroPrice();
    /// @notice `frameCount` is 0 or above `MAX_FRAMES`.
    error Escrow_InvalidFrameCount(uint32 frameCount);
    /// @notice A verification budget above the frame count (at most one verification render per frame).
    error Escrow_InvalidVerifications(uint32 verifications, uint32 frameCount);
    /// @notice (frameCount + verifications) × pricePerFrame (`amount`) does not fit in 128 bits.
    error Escrow_AmountOverflow(uint256 amount);
    /// @notice `deadline` is not after the current `timestamp`.
    error Escrow_DeadlineInPast(uint64 deadline, uint256 timestamp);
    /// @notice `msg.value` (`sent`) differs from what the job needs (`expected`; 0 for ERC-20 jobs).
    error Escrow_WrongValue(uint256 expected, uint256 sent);
    /// @notice The escrow received `received` tokens instead of `expected` (fee-on-transfer token).
    error Escrow_TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice `caller` is not the settlement role.
    error Escrow_NotSettler(address caller);
    /// @notice `caller` is not the artist of `jobId`.
    error Escrow_NotArtist(uint256 jobId, address caller);
    /// @notice Job `jobId` is in `status`, in which frames cannot be released.
    error Escrow_JobNotReleasable(uint256 jobId, JobStatus status);
    /// @notice Job `jobId` is in `status`, not Open.
    error Escrow_JobNotOpen(uint256 jobId, JobStatus status);
    /// @notice `settle` got no frame sets and was not asked to close the job: nothing to do.
    error Escrow_NothingToSettle();
    /// @notice The terms given for job `jobId` are not those it was opened with (a job id that a reorg gave to
    ///         another spec, a confused caller, or an attempt to pay or refund on made-up terms); also raised
    ///         for a job that does not exist.
    error Escrow_TermsMismatch(uint256 jobId);
    /// @notice Frame set number `setIndex` of a release of `jobId` has no bits set.
    error Escrow_EmptyFrameSet(uint256 jobId, uint256 setIndex);
    /// @notice `frameIndex` is not a frame of job `jobId` (>= frameCount).
    error Escrow_FrameOutOfRange(uint256 jobId, uint256 frameIndex);
    /// @notice The frames `bits` of word `wordIndex` of job `jobId` were already paid.
    error Escrow_FrameAlreadyPaid(uint256 jobId, uint32 wordIndex, uint256 bits);
    /// @notice The frames `bits` of word `wordIndex` of job `jobId` are not paid, so their verification
    ///         renders cannot be.
    error Escrow_FrameNotPaid(uint256 jobId, uint32 wordIndex, uint256 bits);
    /// @notice The verification renders `bits` of word `wordIndex` of job `jobId` were already paid.
    error Escrow_VerificationAlreadyPaid(uint256 jobId, uint32 wordIndex, uint256 bits);
    /// @notice Paying `wanted` more verification renders of job `jobId` exceeds its budget (`left`).
    error Escrow_VerificationBudgetExceeded(uint256 jobId, uint256 wanted, uint256 left);
    /// @notice `node` was bound to its owner at `boundAt`, not before job `jobId` opened at `openedAt`: a
    ///         settler cannot bind a node of its own to a job already open and pay it.
    error Escrow_NodeBoundAfterOpen(uint256 jobId, address node, uint40 boundAt, uint40 openedAt);
    /// @notice The deadline is beyond what a job stores (2^40 - 1 seconds).
    error Escrow_DeadlineTooFar(uint64 deadline);
    /// @notice `node` is not bound to any owner in the registry.
    error Escrow_NodeNotBound(address node);
    /// @notice Job `jobId` cannot be refunded yet (or any more).
    error Escrow_NotRefundable(uint256 jobId);
    /// @notice Nothing to withdraw.
    error Escrow_NothingToWithdraw();
    /// @notice Sending `amount` wei of native coin to `to` failed.
    error Escrow_NativeTransferFailed(address to, uint256 amount);

    // ------------------------------------------------------------------ events

    /// @notice Job `jobId` was opened and `amount` (= (frameCount + verifications) × pricePerFrame) locked. The
    ///         fields other than `amount` are the job's `JobTerms`, which later calls pass back.
    event JobOpened(
        uint256 indexed jobId,
        address indexed artist,
        bytes32 indexed specHash,
        address token,
        uint128 pricePerFrame,
        uint32 frameCount,
        uint32 verifications,
        uint64 deadline,
        uint64 openedAt,
        uint256 amount,
        uint16 feeBps
    );
    /// @notice A settlement paid frames of job `jobId`: `frames` rendered and `verifications` (verification
    ///         renders, paid from the job's verification budget), the frame sets exactly as the call named them.
    ///         Each set left `amount = popcount(bits) * pricePerFrame` of the lock, credited `amount - fee` to the
    ///         node's owner in the registry at that moment (the last `NodeRegistered` of the node) and
    ///         `fee = amount * feeBps / 10_000` (rounded down, per set) to the protocol, with the price and fee of
    ///         the job's terms. One event per job and call, carrying the call's own arguments: a log costs 375
    ///         gas plus 375 a topic and 8 a byte, and the per-node events with amounts and owners were a tenth of
    ///         a small job's gas.
    event FramesReleased(uint256 indexed jobId, FrameSet[] frames, FrameSet[] verifications);
    /// @notice The artist cancelled job `jobId`; its rest is refundable from `refundableAt`.
    event JobCancelled(uint256 indexed jobId, address indexed artist, uint64 refundableAt);
    /// @notice Job `jobId` ended and its rest, `amount` (possibly zero), went back to `artist` (sent, or
    ///         credited to `credits[artist][token]` when the artist did not accept the transfer): emitted by
    ///         `refund`, and by a settlement that closes the job.
    event JobRefunded(uint256 indexed jobId, address indexed artist, uint256 amount);
    /// @notice `account` withdrew `amount` of its credits in `token`.
    event CreditsWithdrawn(address indexed account, address indexed token, uint256 amount);
    /// @notice `amount` of protocol fees in `token` was paid to `treasury`.
    event FeesWithdrawn(address indexed token, address indexed treasury, uint256 amount);
    /// @notice The treasury changed.
    event TreasuryChanged(address indexed oldTreasury, address indexed newTreasury);
    /// @notice The fee for jobs opened from now on changed.
    event FeeBpsChanged(uint16 oldFeeBps, uint16 newFeeBps);
    /// @notice Opening jobs was paused by `account`.
    event Paused(address account);
    /// @notice Opening jobs was unpaused by `account`.
    event Unpaused(address account);

    // ------------------------------------------------------------------ artist

    /// @notice Opens a job and locks `(frameCount + verifications) × pricePerFrame` of `token` (native:
    ///         exactly `msg.value`; ERC-20: pulled from the caller, who must have approved it, and `msg.value`
    ///         must be 0). Whatever is not released, including unused verification budget, is refunded.
    /// @dev Reverts while paused. Tokens that take a fee on transfer are rejected
    ///      (`Escrow_TransferAmountMismatch`); tokens returning no bool are supported.
    /// @param specHash Hash of the signed job spec; nonzero.
    /// @param token Payment token; address(0) for the native coin.
    /// @param pricePerFrame Price of one frame; nonzero.
    /// @param frameCount Number of frames, 1..MAX_FRAMES.
    /// @param verifications Verification budget: how many independent verification renders, at most one per
    ///        frame, the job may pay at `pricePerFrame` (0..frameCount).
    /// @param deadline Timestamp after which the rest becomes refundable; must be in the future.
    /// @return jobId The new job id (sequential, starting at 1).
    function openJob(
        bytes32 specHash,
        address token,
        uint128 pricePerFrame,
        uint32 frameCount,
        uint32 verifications,
        uint64 deadline
    ) external payable returns (uint256 jobId);

    /// @notice Cancels an Open job; releases stay possible until the refund, which anyone may trigger from
    ///         `min(now + cancelGrace, deadline)`. Only the artist.
    /// @param jobId The job.
    /// @param terms The job's terms (its `JobOpened` event).
    function cancel(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Pays the unreleased rest of a job to its artist and ends the job. Callable by anyone.
    /// @dev Allowed when the job is Cancelled for at least `cancelGrace`, or Open/Cancelled past its deadline
    ///      (also while paused). An artist that does not accept the transfer is credited instead.
    /// @param jobId The job.
    /// @param terms The job's terms (its `JobOpened` event).
    function refund(uint256 jobId, JobTerms calldata terms) external;

    // ------------------------------------------------------------------ settlement role

    /// @notice Settles job `jobId`: pays frames and verification renders of its paid frames, and if `close`,
    ///         ends the job and refunds its unreleased rest to the artist, all in one call. For each frame set,
    ///         `popcount(bits) × pricePerFrame` leaves the lock, the fee goes to the protocol and the rest is
    ///         credited to the node's registry owner. Only the settler.
    /// @dev The job must be Open or Cancelled (also after its deadline, until refunded), and `terms` must be
    ///      the ones it was opened with: a job id that a reorg gave to another spec is never paid from. Every
    ///      frame index must be < frameCount and every node bound in the registry before the job opened. A
    ///      frame is paid once; a verification render only for a frame paid (before, or in `frames` of this
    ///      call), once per frame, and never more of them than the budget given at open. A refund nobody needs
    ///      (zero left) moves no coin. A settlement that closes the job writes no paid-frame bitmaps: the job
    ///      is final, and within the call a frame is still paid at most once. Credits are added once per owner
    ///      and token per call, fees once per token.
    /// @param jobId The job.
    /// @param terms The job's terms (its `JobOpened` event).
    /// @param frames The frames, grouped per node and bitmap word.
    /// @param verifications The verification renders, grouped per verifying node and bitmap word.
    /// @param close Whether to end the job and refund its rest now.
    function settle(
        uint256 jobId,
        JobTerms calldata terms,
        FrameSet[] calldata frames,
        FrameSet[] calldata verifications,
        bool close
    ) external;

    /// @notice `settle` for several jobs in one call (each entry as one `settle`, in order; any failing entry
    ///         reverts the whole call). Owners paid by several jobs get one credit update per token. Only
    ///         the settler.
    /// @param settlements The jobs to settle (a job may appear more than once, but not after an entry that
    ///        closed it).
    function settleMany(Settlement[] calldata settlements) external;

    // ------------------------------------------------------------------ withdrawals

    /// @notice Creates the credit slot of `account` in `token`, so that its first payout costs what every later
    ///         one does (an SSTORE to a nonzero slot, 5,000 gas, instead of 22,100 to a new one): the payee pays
    ///         for its own storage once, not the first artist to hire it. Callable by anyone, for anyone; moves
    ///         no value; does nothing if the slot exists. `NodeRegistry.register` calls it for the owner.
    /// @param account The account that will receive credits.
    /// @param token The token; address(0) for the native coin.
    function openAccount(address account, address token) external;

    /// @notice Creates the fee slot of `token` (the native coin's exists from deployment), as `openAccount`.
    /// @param token The token.
    function openFees(address token) external;

    /// @notice Pays the caller all its credits in `token`.
    /// @param token The token; address(0) for the native coin.
    function withdraw(address token) external;

    /// @notice Pays the accrued protocol fees in `token` to the treasury. Callable by anyone.
    /// @param token The token; address(0) for the native coin.
    function withdrawFees(address token) external;

    // ------------------------------------------------------------------ admin

    /// @notice Sets the treasury that receives fees. Only the admin.
    /// @param newTreasury Nonzero.
    function setTreasury(address newTreasury) external;

    /// @notice Sets the fee for jobs opened from now on. Only the admin.
    /// @param newFeeBps At most `MAX_FEE_BPS`.
    function setFeeBps(uint16 newFeeBps) external;

    /// @notice Stops new jobs from being opened (nothing else is blocked). Only the admin.
    function pause() external;

    /// @notice Allows opening jobs again. Only the admin.
    function unpause() external;

    // ------------------------------------------------------------------ views

    /// @notice Highest allowed fee, in basis points (10 %).
    function MAX_FEE_BPS() external view returns (uint16);

    /// @notice Highest frame count of one job.
    function MAX_FRAMES() external view returns (uint32);

    /// @notice The amount `openJob` locks for `frameCount` frames and a budget of `verifications`
    ///         verification renders at `pricePerFrame`.
    /// @dev Reverts on a frame count outside 1..MAX_FRAMES, a budget above the frame count, or an amount above
    ///      2^128-1.
    function quote(uint32 frameCount, uint32 verifications, uint128 pricePerFrame)
        external
        pure
        returns (uint256 amount);

    /// @notice The state of job `jobId` opened with `terms` (status None and all zero if no such job).
    /// @dev Reverts with `Escrow_TermsMismatch` when the job exists but was opened with other terms.
    function getJob(uint256 jobId, JobTerms calldata terms) external view returns (JobState memory);

    /// @notice The lifecycle status of job `jobId` (None if no such job); needs no terms.
    function jobStatus(uint256 jobId) external view returns (JobStatus);

    /// @notice The artist of job `jobId` opened with `terms`, or address(0) if no such job (the registry pays
    ///         slashes to it).
    /// @dev Reverts with `Escrow_TermsMismatch` when the job exists but was opened with other terms.
    function artistOf(uint256 jobId, JobTerms calldata terms) external view returns (address);

    /// @notice Bitmap word `wordIndex` of the frames of `jobId` paid by settlements that did not close it.
    function paidFrames(uint256 jobId, uint256 wordIndex) external view returns (uint256);

    /// @notice Bitmap word `wordIndex` of the frames of `jobId` whose verification render was paid by settlements
    ///         that did not close it.
    function verifiedFrames(uint256 jobId, uint256 wordIndex) external view returns (uint256);

    /// @notice Whether frame `frameIndex` (0-based within the job) of `jobId` was paid by a settlement that did
    ///         not close it (the closing settlement's frames are in its `FramesReleased` events only).
    function isFramePaid(uint256 jobId, uint256 frameIndex) external view returns (bool);

    /// @notice Unwithdrawn credits of `account` in `token`.
    function credits(address account, address token) external view returns (uint256);

    /// @notice Accrued, unwithdrawn protocol fees in `token`.
    function fees(address token) external view returns (uint256);

    /// @notice Receiver of protocol fees.
    function treasury() external view returns (address);

    /// @notice Fee in basis points for jobs opened from now on.
    function feeBps() external view returns (uint16);

    /// @notice Whether opening jobs is paused.
    function paused() external view returns (bool);

    /// @notice The node registry used to resolve node owners.
    function registry() external view returns (INodeRegistry);

    /// @notice Seconds after `cancel` from which the rest of a cancelled job is refundable.
    function cancelGrace() external view returns (uint64);

    /// @notice The id the next opened job gets.
    function nextJobId() external view returns (uint64);
}
