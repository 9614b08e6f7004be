// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ISettlerTimelock
/// @notice The settlement role of a Lumen contract, rotated in two steps with a delay: the admin proposes a
///         new settler, and only `SETTLER_DELAY` later can anyone make it the settler. Everyone watching the
///         chain (nodes, artists) sees the proposal and when it takes effect, and can leave (refund,
///         withdraw, unstake) before a settler they do not trust can act. The admin can cancel a proposal.
interface ISettlerTimelock {
    /// @notice The settlement role changed from `oldSettler` to `newSettler`.
    event SettlerChanged(address indexed oldSettler, address indexed newSettler);
    /// @notice `proposed` was proposed as settler; it can take effect from `effectiveAt`.
    event SettlerProposed(address indexed current, address indexed proposed, uint64 effectiveAt);
    /// @notice The proposal of `proposed` as settler was withdrawn.
    event SettlerProposalCancelled(address indexed proposed);

    /// @notice The zero address was given as settler.
    error Settler_ZeroAddress();
    /// @notice No settler proposal is pending.
    error Settler_NoProposal();
    /// @notice The proposal takes effect only at `effectiveAt` (now is `timestamp`).
    error Settler_TooEarly(uint64 effectiveAt, uint256 timestamp);

    /// @notice Proposes `proposed` as the next settler, replacing any pending proposal; it can take effect
    ///         `SETTLER_DELAY` from now. Only the admin.
    function proposeSettler(address proposed) external;

    /// @notice Withdraws the pending settler proposal. Only the admin.
    function cancelSettlerProposal() external;

    /// @notice Makes the pending settler the settler, once its delay has passed. Callable by anyone.
    function acceptSettler() external;

    /// @notice Time between a settler proposal and the moment it can take effect.
    function SETTLER_DELAY() external view returns (uint64);

    /// @notice The settlement role.
    function settler() external view returns (address);

    /// @notice The proposed next settler (zero: none).
    function pendingSettler() external view returns (address);

    /// @notice When `pendingSettler` can take effect (zero: no proposal).
    function pendingSettlerAt() external view returns (uint64);
}
