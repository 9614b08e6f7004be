// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice Malicious contract account (artist or node owner): forwards arbitrary calls, and when armed,
///         reenters `target` with `payload` (once) on receiving native coin, recording the outcome.
contract ReentrantReceiver {
    address public target;
    bytes public payload;
    bool public armed;
    bool public attempted;
    bool public reentrySucceeded;
    bytes public reentryReturn;
    bool public rejectPayments;

    receive() external payable {
        require(!rejectPayments, "rejected");
        if (armed) {
            armed = false;
            attempted = true;
            (reentrySucceeded, reentryReturn) = target.call(payload);
        }
    }

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
    }

    function setRejectPayments(bool reject) external {
        rejectPayments = reject;
    }

    /// @notice Calls `to` with `data` and `value`, bubbling up a revert.
    function execute(address to, uint256 value, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = to.call{value: value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }
}
