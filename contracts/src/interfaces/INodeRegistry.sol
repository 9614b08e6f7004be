// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IRenderEscrow} from "./IRenderEscrow.sol";
import {ISettlerTimelock} from "./ISettlerTimelock.sol";

/// @title INodeRegistry
/// @notice Binds render-node hot keys to owner wallets and holds the owners' native-coin stake.
/// @dev A node is an EVM hot key (`node`). The owner wallet binds it by sending `register` with an
///      EIP-712 `Bind` signature made by the node key, so both keys consent. Earnings in the escrow are
///      credited to `ownerOf(node)`. Stake is native coin only. Unstaking goes through an unbonding period
///      of `unstakeDelay` seconds; slashing takes active stake first, then unbonding stake, so leaving does
///      not escape a pending slash. Slashed coin is credited to `claimable[recipient]` (pull payment).
interface INodeRegistry is ISettlerTimelock {
    /// @notice Registry record of one node.
    /// @param owner Wallet the node is bound to; stays set after deregistration (zero if never registered).
    /// @param active Whether the node is currently registered.
    /// @param unbondingAt Timestamp from which `unbonding` can be withdrawn (0 if never unbonded).
    /// @param boundAt When the node was last bound to its owner (`register`).
    /// @param stake Active stake in wei.
    /// @param unbonding Stake in the unbonding period in wei (still slashable).
    struct NodeInfo {
        address owner;
        bool active;
        uint40 unbondingAt;
        uint40 boundAt;
        uint256 stake;
        uint256 unbonding;
    }

    // ------------------------------------------------------------------ errors

    /// @notice The zero address was given where an address is required.
    error Registry_ZeroAddress();
    /// @notice A zero amount was given (or no coin was sent) where a positive amount is required.
    error Registry_ZeroAmount();
    /// @notice `node` is already registered and active.
    error Registry_NodeActive(address node);
    /// @notice `node` is not registered or has been deregistered.
    error Registry_NodeInactive(address node);
    /// @notice The bind signature expired at `deadline` (now is `timestamp`).
    error Registry_SignatureExpired(uint256 deadline, uint256 timestamp);
    /// @notice The bind signature does not recover to `node` (it recovered to `recovered`).
    error Registry_InvalidNodeSignature(address node, address recovered);
    /// @notice `node` is still bound to `owner`, who has stake left in it.
    error Registry_NodeBoundToOther(address node, address owner);
    /// @notice `caller` is not the owner of `node`.
    error Registry_NotNodeOwner(address node, address caller);
    /// @notice A slash names no evidence.
    error Registry_NoEvidence();
    /// @notice `node` was already slashed with this evidence.
    error Registry_EvidenceUsed(address node, bytes32 evidenceHash);
    /// @notice No job `jobId` in the escrow: a slash goes to the artist of a named job, or the treasury.
    error Registry_UnknownJob(uint256 jobId);
    /// @notice The escrow is not linked yet, or was already.
    error Registry_EscrowLink();
    /// @notice `caller` is not the settlement role.
    error Registry_NotSettler(address caller);
    /// @notice `amount` exceeds the `available` stake of `node`.
    error Registry_InsufficientStake(address node, uint256 amount, uint256 available);
    /// @notice Unbonding stake of `node` is locked until `availableAt`.
    error Registry_UnbondingLocked(address node, uint64 availableAt);
    /// @notice Nothing to withdraw.
    error Registry_NothingToWithdraw();
    /// @notice Sending `amount` wei of native coin to `to` failed.
    error Registry_NativeTransferFailed(address to, uint256 amount);
    /// @notice `delay` exceeds `MAX_UNSTAKE_DELAY`.
    error Registry_UnstakeDelayTooLong(uint64 delay);

    // ------------------------------------------------------------------ events

    /// @notice `node` was bound to `owner` and activated; `stake` is its active stake afterwards.
    event NodeRegistered(address indexed node, address indexed owner, uint256 stake);
    /// @notice `owner` added `amount` to the stake of `node`; `stake` is the new active stake.
    event StakeAdded(address indexed node, address indexed owner, uint256 amount, uint256 stake);
    /// @notice `amount` of the stake of `node` moved into unbonding, withdrawable from `availableAt`.
    event UnstakeRequested(address indexed node, address indexed owner, uint256 amount, uint64 availableAt);
    /// @notice `owner` withdrew `amount` of unbonded stake of `node`.
    event StakeWithdrawn(address indexed node, address indexed owner, uint256 amount);
    /// @notice `node` was deregistered; `unbonding` is its whole unbonding stake, withdrawable from `availableAt`.
    event NodeDeregistered(
        address indexed node, address indexed owner, uint256 unbonding, uint64 availableAt
    );
    /// @notice `amount` of the stake of `node` was slashed and credited to `recipient`.
    event NodeSlashed(
        address indexed node,
        address indexed owner,
        address indexed recipient,
        uint256 amount,
        bytes32 evidenceHash
    );
    /// @notice `account` withdrew `amount` of slashed coin credited to it.
    event ClaimableWithdrawn(address indexed account, uint256 amount);
    /// @notice The unstake delay changed (applies to later unstake requests).
    event UnstakeDelayChanged(uint64 oldDelay, uint64 newDelay);

    // ------------------------------------------------------------------ owner actions

    /// @notice Binds `node` to the caller (the owner) and activates it; `msg.value` is optional initial stake.
    /// @dev Reverts if `node` is zero, active, bound to another owner with stake left, or the signature is
    ///      expired or not by `node`. Increments `nonces(node)` so a signature cannot be replayed. Once the
    ///      escrow is linked, also opens the owner's native-coin credit slot there (`IRenderEscrow.openAccount`).
    /// @param node The node hot key.
    /// @param deadline Last timestamp at which `nodeSignature` is valid.
    /// @param nodeSignature EIP-712 signature by `node` over
    ///        `Bind(address node,address owner,uint256 nonce,uint256 deadline)` with owner = caller and
    ///        nonce = `nonces(node)`.
    function register(address node, uint256 deadline, bytes calldata nodeSignature) external payable;

    /// @notice Adds `msg.value` to the active stake of `node`. Only the node's owner; node must be active.
    /// @param node The node hot key.
    function addStake(address node) external payable;

    /// @notice Moves `amount` of active stake of `node` into unbonding, withdrawable after `unstakeDelay`.
    /// @dev Only the node's owner. Restarts the unbonding clock for the node's whole unbonding balance.
    /// @param node The node hot key.
    /// @param amount Wei to unbond (1..stake).
    function requestUnstake(address node, uint256 amount) external;

    /// @notice Pays the whole unbonded stake of `node` to its owner once the unbonding delay has passed.
    /// @dev Only the node's owner.
    /// @param node The node hot key.
    function withdrawStake(address node) external;

    /// @notice Deactivates `node` and moves all its active stake into unbonding. Only the node's owner.
    /// @dev `ownerOf(node)` stays set so late payouts still reach the owner.
    /// @param node The node hot key.
    function deregister(address node) external;

    /// @notice Pays the caller everything credited to it by slashes.
    function withdrawClaimable() external;

    // ------------------------------------------------------------------ settlement role

    /// @notice Slashes `amount` from `node` (active stake first, then unbonding) and credits it to the artist
    ///         of the job `jobId` it harmed, or to the escrow's treasury when `jobId` is 0, for the evidence
    ///         `evidenceHash` (the hash of the published evidence bundle).
    /// @dev Only the settlement role. The evidence is required and slashes a node once; the recipient comes
    ///      from the linked escrow (which checks `terms` against the job's stored hash), never from the caller.
    /// @param node The node hot key.
    /// @param amount Wei to slash (1..stake+unbonding).
    /// @param jobId The job the node cheated on (its artist is paid), or 0 for the treasury.
    /// @param terms The terms of job `jobId` (its `JobOpened` event); ignored when `jobId` is 0.
    /// @param evidenceHash Hash of the off-chain evidence; nonzero.
    function slash(
        address node,
        uint256 amount,
        uint256 jobId,
        IRenderEscrow.JobTerms calldata terms,
        bytes32 evidenceHash
    ) external;

    /// @notice Links the escrow whose jobs and treasury slashes pay. Once, by whoever deployed the registry.
    /// @param escrow_ The escrow.
    function linkEscrow(address escrow_) external;

    /// @notice The escrow whose jobs and treasury slashes pay (zero until linked).
    function escrow() external view returns (address);

    /// @notice Whether `node` was slashed with evidence `evidenceHash`.
    function slashedWith(address node, bytes32 evidenceHash) external view returns (bool);

    // ------------------------------------------------------------------ admin

    /// @notice Sets the unbonding delay for later unstake requests. Only the admin.
    /// @param newDelay Seconds, at most `MAX_UNSTAKE_DELAY`.
    function setUnstakeDelay(uint64 newDelay) external;

    // ------------------------------------------------------------------ views

    /// @notice The longest unbonding delay the admin may set.
    function MAX_UNSTAKE_DELAY() external view returns (uint64);

    /// @notice The owner `node` is bound to (kept after deregistration; zero if never registered).
    function ownerOf(address node) external view returns (address);

    /// @notice Whether `node` is registered and active.
    function isActive(address node) external view returns (bool);

    /// @notice The owner `node` is bound to and when it was bound (one storage read, for the escrow).
    function bindingOf(address node) external view returns (address owner, uint40 boundAt);

    /// @notice The full record of `node`.
    function nodeInfo(address node) external view returns (NodeInfo memory);

    /// @notice The next bind nonce of `node` (increments on every successful `register`).
    function nonces(address node) external view returns (uint256);

    /// @notice Slashed coin credited to `account` and not yet withdrawn.
    function claimable(address account) external view returns (uint256);

    /// @notice Unbonding delay in seconds for new unstake requests.
    function unstakeDelay() external view returns (uint64);

    /// @notice The EIP-712 type hash of `Bind(address node,address owner,uint256 nonce,uint256 deadline)`.
    function bindTypehash() external pure returns (bytes32);

    /// @notice The EIP-712 domain separator (name "Lumen NodeRegistry", version "1").
    function domainSeparator() external view returns (bytes32);

    /// @notice The EIP-712 digest the node key signs to bind itself to `owner`.
    /// @param node The node hot key.
    /// @param owner The owner wallet that will send `register`.
    /// @param nonce `nonces(node)` at registration time.
    /// @param deadline Last valid timestamp.
    function bindDigest(address node, address owner, uint256 nonce, uint256 deadline)
        external
        view
        returns (bytes32);
}
