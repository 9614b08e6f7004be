// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ISettlerTimelock} from "../interfaces/ISettlerTimelock.sol";

/// @title SettlerTimelock
/// @notice See {ISettlerTimelock}.
/// @dev Inheriting contracts implement `proposeSettler` and `cancelSettlerProposal` behind their admin check,
///      by calling `_proposeSettler` and `_cancelSettler`, and check `msg.sender == settler` for settlement.
abstract contract SettlerTimelock is ISettlerTimelock {
    /// @inheritdoc ISettlerTimelock
    uint64 public constant override SETTLER_DELAY = 2 days;

    /// @inheritdoc ISettlerTimelock
    address public override settler;
    /// @inheritdoc ISettlerTimelock
    address public override pendingSettler;
    /// @inheritdoc ISettlerTimelock
    uint64 public override pendingSettlerAt;

    constructor(address settler_) {
        require(settler_ != address(0), Settler_ZeroAddress());
        settler = settler_;
        emit SettlerChanged(address(0), settler_);
    }

    /// @inheritdoc ISettlerTimelock
    function acceptSettler() external override {
        address proposed = pendingSettler;
        require(proposed != address(0), Settler_NoProposal());
        uint64 at = pendingSettlerAt;
        require(block.timestamp >= at, Settler_TooEarly(at, block.timestamp));
        emit SettlerChanged(settler, proposed);
        settler = proposed;
        pendingSettler = address(0);
        pendingSettlerAt = 0;
    }

    /// @dev Proposes `proposed`, replacing any pending proposal.
    function _proposeSettler(address proposed) internal {
        require(proposed != address(0), Settler_ZeroAddress());
        uint64 at = uint64(block.timestamp) + SETTLER_DELAY;
        pendingSettler = proposed;
        pendingSettlerAt = at;
        emit SettlerProposed(settler, proposed, at);
    }

    /// @dev Withdraws the pending proposal.
    function _cancelSettler() internal {
        address proposed = pendingSettler;
        require(proposed != address(0), Settler_NoProposal());
        pendingSettler = address(0);
        pendingSettlerAt = 0;
        emit SettlerProposalCancelled(proposed);
    }
}
