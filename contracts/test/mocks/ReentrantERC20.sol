// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Malicious ERC-20: when armed, every transfer first calls `target` with `payload` (once) and
///         records whether that reentrant call succeeded and what it returned. The outer transfer goes on.
contract ReentrantERC20 is ERC20 {
    address public target;
    bytes public payload;
    bool public armed;
    bool public attempted;
    bool public reentrySucceeded;
    bytes public reentryReturn;

    constructor() ERC20("Evil Token", "EVIL") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (armed && from != address(0) && to != address(0)) {
            armed = false;
            attempted = true;
            (reentrySucceeded, reentryReturn) = target.call(payload);
        }
        super._update(from, to, value);
    }
}
