// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice Baseline for the gas benchmark: pays every frame with its own native-coin transfer.
/// @dev Deliberately naive (no bitmap, no credits, no events): one push transfer per frame.
contract NaivePayout {
    error NaivePayout_TransferFailed(address to, uint256 amount);

    receive() external payable {}

    /// @notice Sends `amounts[i]` wei to `recipients[i]` for every i.
    function payout(address[] calldata recipients, uint256[] calldata amounts) external {
        for (uint256 i; i < recipients.length; ++i) {
            (bool ok,) = recipients[i].call{value: amounts[i]}("");
            require(ok, NaivePayout_TransferFailed(recipients[i], amounts[i]));
        }
    }
}
