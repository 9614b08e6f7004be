// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ISettlerTimelock} from "../src/interfaces/ISettlerTimelock.sol";
import {BaseTest} from "./utils/BaseTest.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice The settler of the escrow and of the registry changes only through a proposal, a delay everyone
///         can see, and an acceptance: an admin key cannot rotate the settler and act with it in one block.
contract SettlerTimelockTest is BaseTest {
    function _both() internal view returns (ISettlerTimelock[2] memory) {
        return [ISettlerTimelock(address(escrow)), ISettlerTimelock(address(registry))];
    }

    function test_ARotationTakesTheDelayAndIsAnnounced() public {
        for (uint256 i; i < 2; ++i) {
            ISettlerTimelock c = _both()[i];
            uint64 effectiveAt = uint64(block.timestamp) + c.SETTLER_DELAY();
            assertEq(c.SETTLER_DELAY(), 2 days);
            vm.expectEmit(address(c));
            emit ISettlerTimelock.SettlerProposed(settler, bob, effectiveAt);
            vm.prank(admin);
            c.proposeSettler(bob);
            assertEq(c.settler(), settler);
            assertEq(c.pendingSettler(), bob);
            assertEq(c.pendingSettlerAt(), effectiveAt);

            // Not in the same block, nor a second before the delay ends.
            vm.expectRevert(
                abi.encodeWithSelector(
                    ISettlerTimelock.Settler_TooEarly.selector, effectiveAt, block.timestamp
                )
            );
            c.acceptSettler();
            vm.warp(effectiveAt - 1);
            vm.expectRevert(
                abi.encodeWithSelector(
                    ISettlerTimelock.Settler_TooEarly.selector, effectiveAt, effectiveAt - 1
                )
            );
            c.acceptSettler();
            assertEq(c.settler(), settler, "the old settler keeps acting meanwhile");

            // Then anyone completes it.
            vm.warp(effectiveAt);
            vm.expectEmit(address(c));
            emit ISettlerTimelock.SettlerChanged(settler, bob);
            vm.prank(stranger);
            c.acceptSettler();
            assertEq(c.settler(), bob);
            assertEq(c.pendingSettler(), address(0));
            assertEq(c.pendingSettlerAt(), 0);
            vm.expectRevert(ISettlerTimelock.Settler_NoProposal.selector);
            c.acceptSettler();
        }
    }

    function test_AProposalCanBeCancelledOrReplaced() public {
        for (uint256 i; i < 2; ++i) {
            ISettlerTimelock c = _both()[i];
            vm.startPrank(admin);
            c.proposeSettler(bob);
            vm.expectEmit(address(c));
            emit ISettlerTimelock.SettlerProposalCancelled(bob);
            c.cancelSettlerProposal();
            vm.expectRevert(ISettlerTimelock.Settler_NoProposal.selector);
            c.cancelSettlerProposal();
            vm.stopPrank();
            vm.warp(block.timestamp + 3 days);
            vm.expectRevert(ISettlerTimelock.Settler_NoProposal.selector);
            c.acceptSettler();

            // A new proposal restarts the clock.
            vm.prank(admin);
            c.proposeSettler(bob);
            vm.warp(block.timestamp + 1 days);
            vm.prank(admin);
            c.proposeSettler(alice);
            vm.warp(block.timestamp + 1 days);
            vm.expectRevert();
            c.acceptSettler();
            vm.warp(block.timestamp + 1 days);
            c.acceptSettler();
            assertEq(c.settler(), alice);
            // Back to the original settler for the next contract's round.
            _rotateSettler(c, settler);
        }
    }

    function test_RevertWhen_NotAdminOrZero() public {
        for (uint256 i; i < 2; ++i) {
            ISettlerTimelock c = _both()[i];
            // Not even the settler itself can name its successor.
            vm.prank(settler);
            vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, settler));
            c.proposeSettler(bob);
            vm.prank(admin);
            vm.expectRevert(ISettlerTimelock.Settler_ZeroAddress.selector);
            c.proposeSettler(address(0));
        }
    }
}
