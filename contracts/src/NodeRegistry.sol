// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {IRenderEscrow} from "./interfaces/IRenderEscrow.sol";
import {ISettlerTimelock} from "./interfaces/ISettlerTimelock.sol";
import {SettlerTimelock} from "./utils/SettlerTimelock.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title NodeRegistry
/// @notice Binds Lumen render nodes (EVM hot keys) to owner wallets and holds their native-coin stake.
/// @dev See {INodeRegistry}. Admin is an Ownable2Step owner; slashing is reserved for `settler`.
contract NodeRegistry is INodeRegistry, SettlerTimelock, Ownable2Step, ReentrancyGuardTransient, EIP712 {
    /// @dev keccak256("Bind(address node,address owner,uint256 nonce,uint256 deadline)")
    bytes32 private constant BIND_TYPEHASH =
        keccak256("Bind(address node,address owner,uint256 nonce,uint256 deadline)");

    /// @inheritdoc INodeRegistry
    uint64 public constant MAX_UNSTAKE_DELAY = 365 days;

    /// @inheritdoc INodeRegistry
    uint64 public unstakeDelay;

    mapping(address node => NodeInfo) private _nodes;
    /// @inheritdoc INodeRegistry
    mapping(address node => uint256) public nonces;
    /// @inheritdoc INodeRegistry
    mapping(address account => uint256) public claimable;
    /// @inheritdoc INodeRegistry
    address public escrow;
    /// @inheritdoc INodeRegistry
    mapping(address node => mapping(bytes32 evidenceHash => bool)) public slashedWith;
    /// @dev Who deployed the registry: the only account that may link the escrow, once.
    address private immutable _deployer;

    /// @param admin Admin (Ownable2Step owner).
    /// @param settler_ Settlement role (may slash).
    /// @param unstakeDelay_ Unbonding delay in seconds.
    constructor(address admin, address settler_, uint64 unstakeDelay_)
        SettlerTimelock(settler_)
        Ownable(admin)
        EIP712("Lumen NodeRegistry", "1")
    {
        require(unstakeDelay_ <= MAX_UNSTAKE_DELAY, Registry_UnstakeDelayTooLong(unstakeDelay_));
        unstakeDelay = unstakeDelay_;
        _deployer = msg.sender;
        emit UnstakeDelayChanged(0, unstakeDelay_);
    }

    modifier onlyNodeOwner(address node) {
        require(_nodes[node].owner == msg.sender, Registry_NotNodeOwner(node, msg.sender));
        _;
    }

    // ------------------------------------------------------------------ owner actions

    /// @inheritdoc INodeRegistry
    function register(address node, uint256 deadline, bytes calldata nodeSignature) external payable {
        require(node != address(0), Registry_ZeroAddress());
        NodeInfo storage info = _nodes[node];
        require(!info.active, Registry_NodeActive(node));
        address previous = info.owner;
        require(
            previous == address(0) || previous == msg.sender || info.stake + info.unbonding == 0,
            Registry_NodeBoundToOther(node, previous)
        );
        require(block.timestamp <= deadline, Registry_SignatureExpired(deadline, block.timestamp));
        uint256 nonce = nonces[node];
        (address recovered,,) =
            ECDSA.tryRecover(_bindDigest(node, msg.sender, nonce, deadline), nodeSignature);
        require(recovered == node, Registry_InvalidNodeSignature(node, recovered));

        // Nonce cannot realistically overflow.
        unchecked {
            nonces[node] = nonce + 1;
        }
        info.owner = msg.sender;
        info.active = true;
        // casting to 'uint40' is safe until the year 36812
        // forge-lint: disable-next-line(unsafe-typecast)
        info.boundAt = uint40(block.timestamp);
        uint256 stake = info.stake + msg.value;
        info.stake = stake;
        emit NodeRegistered(node, msg.sender, stake);
        // The owner pays for its credit slot now, not the first artist whose frames it renders.
        address linked = escrow;
        if (linked != address(0)) IRenderEscrow(linked).openAccount(msg.sender, address(0));
    }

    /// @inheritdoc INodeRegistry
    function addStake(address node) external payable onlyNodeOwner(node) {
        require(msg.value != 0, Registry_ZeroAmount());
        NodeInfo storage info = _nodes[node];
        require(info.active, Registry_NodeInactive(node));
        uint256 stake = info.stake + msg.value;
        info.stake = stake;
        emit StakeAdded(node, msg.sender, msg.value, stake);
    }

    /// @inheritdoc INodeRegistry
    function requestUnstake(address node, uint256 amount) external onlyNodeOwner(node) {
        require(amount != 0, Registry_ZeroAmount());
        NodeInfo storage info = _nodes[node];
        uint256 stake = info.stake;
        require(amount <= stake, Registry_InsufficientStake(node, amount, stake));
        uint64 availableAt = uint64(block.timestamp) + unstakeDelay;
        // amount <= stake checked above.
        unchecked {
            info.stake = stake - amount;
        }
        info.unbonding += amount;
        // casting to 'uint40' is safe: now + at most a year, far below 2^40
        // forge-lint: disable-next-line(unsafe-typecast)
        info.unbondingAt = uint40(availableAt);
        emit UnstakeRequested(node, msg.sender, amount, availableAt);
    }

    /// @inheritdoc INodeRegistry
    function withdrawStake(address node) external nonReentrant onlyNodeOwner(node) {
        NodeInfo storage info = _nodes[node];
        uint256 amount = info.unbonding;
        require(amount != 0, Registry_NothingToWithdraw());
        uint64 availableAt = info.unbondingAt;
        require(block.timestamp >= availableAt, Registry_UnbondingLocked(node, availableAt));
        info.unbonding = 0;
        emit StakeWithdrawn(node, msg.sender, amount);
        _sendNative(msg.sender, amount);
    }

    /// @inheritdoc INodeRegistry
    function deregister(address node) external onlyNodeOwner(node) {
        NodeInfo storage info = _nodes[node];
        require(info.active, Registry_NodeInactive(node));
        uint64 availableAt = uint64(block.timestamp) + unstakeDelay;
        uint256 unbonding = info.unbonding + info.stake;
        info.active = false;
        info.stake = 0;
        info.unbonding = unbonding;
        // casting to 'uint40' is safe: now + at most a year, far below 2^40
        // forge-lint: disable-next-line(unsafe-typecast)
        info.unbondingAt = uint40(availableAt);
        emit NodeDeregistered(node, msg.sender, unbonding, availableAt);
    }

    /// @inheritdoc INodeRegistry
    function withdrawClaimable() external nonReentrant {
        uint256 amount = claimable[msg.sender];
        require(amount != 0, Registry_NothingToWithdraw());
        claimable[msg.sender] = 0;
        emit ClaimableWithdrawn(msg.sender, amount);
        _sendNative(msg.sender, amount);
    }

    // ------------------------------------------------------------------ settlement role

    /// @inheritdoc INodeRegistry
    function linkEscrow(address escrow_) external {
        require(msg.sender == _deployer && escrow == address(0), Registry_EscrowLink());
        require(escrow_ != address(0), Registry_ZeroAddress());
        escrow = escrow_;
    }

    /// @inheritdoc INodeRegistry
    function slash(
        address node,
        uint256 amount,
        uint256 jobId,
        IRenderEscrow.JobTerms calldata terms,
        bytes32 evidenceHash
    ) external {
        require(msg.sender == settler, Registry_NotSettler(msg.sender));
        require(evidenceHash != bytes32(0), Registry_NoEvidence());
        require(!slashedWith[node][evidenceHash], Registry_EvidenceUsed(node, evidenceHash));
        require(amount != 0, Registry_ZeroAmount());
        address linked = escrow;
        require(linked != address(0), Registry_EscrowLink());
        address recipient =
            jobId == 0 ? IRenderEscrow(linked).treasury() : IRenderEscrow(linked).artistOf(jobId, terms);
        require(recipient != address(0), Registry_UnknownJob(jobId));
        slashedWith[node][evidenceHash] = true;
        NodeInfo storage info = _nodes[node];
        uint256 stake = info.stake;
        uint256 unbonding = info.unbonding;
        uint256 available = stake + unbonding;
        require(amount <= available, Registry_InsufficientStake(node, amount, available));
        if (amount <= stake) {
            // amount <= stake checked just above.
            unchecked {
                info.stake = stake - amount;
            }
        } else {
            info.stake = 0;
            // stake < amount <= stake + unbonding, so the difference fits in unbonding.
            unchecked {
                info.unbonding = unbonding - (amount - stake);
            }
        }
        claimable[recipient] += amount;
        emit NodeSlashed(node, info.owner, recipient, amount, evidenceHash);
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

    /// @inheritdoc INodeRegistry
    function setUnstakeDelay(uint64 newDelay) external onlyOwner {
        require(newDelay <= MAX_UNSTAKE_DELAY, Registry_UnstakeDelayTooLong(newDelay));
        emit UnstakeDelayChanged(unstakeDelay, newDelay);
        unstakeDelay = newDelay;
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc INodeRegistry
    function ownerOf(address node) external view returns (address) {
        return _nodes[node].owner;
    }

    /// @inheritdoc INodeRegistry
    function bindingOf(address node) external view returns (address owner_, uint40 boundAt) {
        NodeInfo storage info = _nodes[node];
        return (info.owner, info.boundAt);
    }

    /// @inheritdoc INodeRegistry
    function isActive(address node) external view returns (bool) {
        return _nodes[node].active;
    }

    /// @inheritdoc INodeRegistry
    function nodeInfo(address node) external view returns (NodeInfo memory) {
        return _nodes[node];
    }

    /// @inheritdoc INodeRegistry
    function bindTypehash() external pure returns (bytes32) {
        return BIND_TYPEHASH;
    }

    /// @inheritdoc INodeRegistry
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc INodeRegistry
    function bindDigest(address node, address owner_, uint256 nonce, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _bindDigest(node, owner_, nonce, deadline);
    }

    // ------------------------------------------------------------------ internal

    function _bindDigest(address node, address owner_, uint256 nonce, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(BIND_TYPEHASH, node, owner_, nonce, deadline)));
    }

    function _sendNative(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        require(ok, Registry_NativeTransferFailed(to, amount));
    }
}
