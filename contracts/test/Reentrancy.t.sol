// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {INodeRegistry} from "../src/interfaces/INodeRegistry.sol";
import {IRenderEscrow} from "../src/interfaces/IRenderEscrow.sol";
import {ReentrantERC20} from "./mocks/ReentrantERC20.sol";
import {ReentrantReceiver} from "./mocks/ReentrantReceiver.sol";
import {BaseTest} from "./utils/BaseTest.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @notice Malicious tokens and receivers try to reenter every value-moving function.
contract ReentrancyTest is BaseTest {
    uint128 internal constant PRICE = 1e15;
    bytes internal GUARD_ERROR =
        abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);

    ReentrantERC20 internal evil;
    ReentrantReceiver internal attacker; // contract node owner / artist

    function setUp() public override {
        super.setUp();
        evil = new ReentrantERC20();
        attacker = new ReentrantReceiver();
        _register(address(attacker), node1Pk, 1 ether);
        _register(owner2, node2Pk, 1 ether);
    }

    function _assertTokenBlocked() internal view {
        assertTrue(evil.attempted(), "no reentry attempted");
        assertFalse(evil.reentrySucceeded(), "reentry succeeded");
        assertEq(evil.reentryReturn(), GUARD_ERROR);
    }

    function _assertReceiverBlocked() internal view {
        assertTrue(attacker.attempted(), "no reentry attempted");
        assertFalse(attacker.reentrySucceeded(), "reentry succeeded");
        assertEq(attacker.reentryReturn(), GUARD_ERROR);
    }

    function _openEvil(address artist, uint32 frames) internal returns (uint256 jobId) {
        uint256 amount = uint256(frames) * PRICE;
        evil.mint(artist, amount);
        vm.startPrank(artist);
        evil.approve(address(escrow), amount);
        uint64 deadline = uint64(block.timestamp + 1 days);
        jobId = escrow.openJob(SPEC, address(evil), PRICE, frames, 0, deadline);
        vm.stopPrank();
        _remember(jobId, artist, address(evil), PRICE, frames, 0, deadline);
    }

    // ------------------------------------------------------------------ malicious ERC-20

    function test_EvilToken_WithdrawReentersWithdraw() public {
        uint256 jobId = _openEvil(alice, 4);
        _release(jobId, _sets(node1, 0, 0xf));
        uint256 credit = escrow.credits(address(attacker), address(evil));
        // During the payout transfer the token makes the owner contract withdraw again.
        evil.arm(
            address(attacker),
            abi.encodeCall(
                ReentrantReceiver.execute,
                (address(escrow), 0, abi.encodeCall(IRenderEscrow.withdraw, (address(evil))))
            )
        );
        attacker.execute(address(escrow), 0, abi.encodeCall(IRenderEscrow.withdraw, (address(evil))));
        _assertTokenBlocked();
        assertEq(evil.balanceOf(address(attacker)), credit);
        assertEq(escrow.credits(address(attacker), address(evil)), 0);
        assertEq(evil.balanceOf(address(escrow)), escrow.fees(address(evil)));
    }

    function test_EvilToken_WithdrawReentersRelease() public {
        ReentrantReceiver settlerContract = new ReentrantReceiver();
        _rotateSettler(escrow, address(settlerContract));
        uint256 jobId = _openEvil(alice, 4);
        settlerContract.execute(
            address(escrow),
            0,
            abi.encodeCall(IRenderEscrow.settle, (jobId, _t(jobId), _sets(node2, 0, 0x1), _none(), false))
        );
        evil.arm(
            address(settlerContract),
            abi.encodeCall(
                ReentrantReceiver.execute,
                (
                    address(escrow),
                    0,
                    abi.encodeCall(
                        IRenderEscrow.settle, (jobId, _t(jobId), _sets(node2, 0, 0x2), _none(), false)
                    )
                )
            )
        );
        vm.prank(owner2);
        escrow.withdraw(address(evil));
        _assertTokenBlocked();
        assertFalse(escrow.isFramePaid(jobId, 1));
        assertEq(_job(jobId).remaining, 3 * uint256(PRICE));
    }

    function test_EvilToken_RefundReentersRefund() public {
        uint256 jobId = _openEvil(alice, 4);
        _release(jobId, _sets(node2, 0, 0x1));
        vm.warp(block.timestamp + 1 days);
        evil.arm(address(escrow), abi.encodeCall(IRenderEscrow.refund, (jobId, _t(jobId))));
        escrow.refund(jobId, _t(jobId));
        _assertTokenBlocked();
        assertEq(evil.balanceOf(alice), 3 * uint256(PRICE));
        assertEq(evil.balanceOf(address(escrow)), uint256(PRICE));
    }

    function test_EvilToken_OpenJobReentersRefund() public {
        uint256 first = _openEvil(alice, 2);
        vm.warp(block.timestamp + 1 days);
        evil.arm(address(escrow), abi.encodeCall(IRenderEscrow.refund, (first, _t(first))));
        _openEvil(bob, 3);
        _assertTokenBlocked();
        assertEq(uint8(_job(first).status), uint8(IRenderEscrow.JobStatus.Open));
        assertEq(evil.balanceOf(address(escrow)), 5 * uint256(PRICE));
    }

    // ------------------------------------------------------------------ malicious native receivers

    function test_Receiver_RefundReentersRefund() public {
        vm.deal(address(attacker), 4 * uint256(PRICE));
        bytes memory open = abi.encodeCall(
            IRenderEscrow.openJob, (SPEC, address(0), PRICE, 4, 0, uint64(block.timestamp + 1 days))
        );
        uint256 jobId = abi.decode(attacker.execute(address(escrow), 4 * uint256(PRICE), open), (uint256));
        _remember(jobId, address(attacker), address(0), PRICE, 4, 0, uint64(block.timestamp + 1 days));
        _release(jobId, _sets(node2, 0, 0x1));
        vm.warp(block.timestamp + 1 days);
        attacker.arm(address(escrow), abi.encodeCall(IRenderEscrow.refund, (jobId, _t(jobId))));
        escrow.refund(jobId, _t(jobId));
        _assertReceiverBlocked();
        assertEq(address(attacker).balance, 3 * uint256(PRICE));
        assertEq(address(escrow).balance, uint256(PRICE));
    }

    function test_Receiver_WithdrawReentersWithdraw() public {
        uint256 jobId = _openNative(alice, 8, PRICE);
        _release(jobId, _sets(node1, 0, 0xff));
        uint256 credit = escrow.credits(address(attacker), address(0));
        attacker.arm(address(escrow), abi.encodeCall(IRenderEscrow.withdraw, (address(0))));
        attacker.execute(address(escrow), 0, abi.encodeCall(IRenderEscrow.withdraw, (address(0))));
        _assertReceiverBlocked();
        assertEq(address(attacker).balance, credit);
        assertEq(address(escrow).balance, escrow.fees(address(0)));
    }

    function test_Receiver_WithdrawReentersRefund() public {
        uint256 jobId = _openNative(alice, 8, PRICE);
        _release(jobId, _sets(node1, 0, 0x1));
        vm.warp(block.timestamp + 1 days);
        attacker.arm(address(escrow), abi.encodeCall(IRenderEscrow.refund, (jobId, _t(jobId))));
        attacker.execute(address(escrow), 0, abi.encodeCall(IRenderEscrow.withdraw, (address(0))));
        _assertReceiverBlocked();
        assertEq(uint8(_job(jobId).status), uint8(IRenderEscrow.JobStatus.Open));
    }

    function test_Receiver_WithdrawStakeReentersWithdrawStake() public {
        attacker.execute(
            address(registry), 0, abi.encodeCall(INodeRegistry.requestUnstake, (node1, 0.4 ether))
        );
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        attacker.arm(address(registry), abi.encodeCall(INodeRegistry.withdrawStake, (node1)));
        attacker.execute(address(registry), 0, abi.encodeCall(INodeRegistry.withdrawStake, (node1)));
        _assertReceiverBlocked();
        assertEq(address(attacker).balance, 0.4 ether);
        assertEq(address(registry).balance, 1.6 ether);
        assertEq(registry.nodeInfo(node1).stake, 0.6 ether);
    }

    function test_Receiver_WithdrawClaimableReentersWithdrawClaimable() public {
        // The attacker is the artist of a job node2 cheated on: the slash pays it.
        vm.deal(address(this), PRICE);
        bytes memory opened = attacker.execute{value: PRICE}(
            address(escrow),
            PRICE,
            abi.encodeCall(
                IRenderEscrow.openJob, (SPEC, address(0), PRICE, 1, 0, uint64(block.timestamp + 1 days))
            )
        );
        uint256 jobId = abi.decode(opened, (uint256));
        _remember(jobId, address(attacker), address(0), PRICE, 1, 0, uint64(block.timestamp + 1 days));
        vm.prank(settler);
        registry.slash(node2, 0.3 ether, jobId, _t(jobId), bytes32("evidence"));
        attacker.arm(address(registry), abi.encodeCall(INodeRegistry.withdrawClaimable, ()));
        attacker.execute(address(registry), 0, abi.encodeCall(INodeRegistry.withdrawClaimable, ()));
        _assertReceiverBlocked();
        assertEq(address(attacker).balance, 0.3 ether);
        assertEq(registry.claimable(address(attacker)), 0);
        assertEq(address(registry).balance, 1.7 ether);
    }
}
