// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {RenderEscrow} from "../src/RenderEscrow.sol";
import {INodeRegistry} from "../src/interfaces/INodeRegistry.sol";
import {IRenderEscrow} from "../src/interfaces/IRenderEscrow.sol";
import {ISettlerTimelock} from "../src/interfaces/ISettlerTimelock.sol";
import {FeeOnTransferERC20} from "./mocks/FeeOnTransferERC20.sol";
import {NoReturnERC20} from "./mocks/NoReturnERC20.sol";
import {ReentrantReceiver} from "./mocks/ReentrantReceiver.sol";
import {BaseTest} from "./utils/BaseTest.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Vm} from "forge-std/Vm.sol";

contract RenderEscrowTest is BaseTest {
    uint128 internal constant PRICE = 1e15;

    function setUp() public override {
        super.setUp();
        _register(owner1, node1Pk, 1 ether);
        _register(owner2, node2Pk, 1 ether);
    }

    // ------------------------------------------------------------------ constructor

    function test_Constructor_SetsState() public view {
        assertEq(escrow.owner(), admin);
        assertEq(address(escrow.registry()), address(registry));
        assertEq(escrow.settler(), settler);
        assertEq(escrow.treasury(), treasury);
        assertEq(escrow.feeBps(), FEE_BPS);
        assertEq(escrow.cancelGrace(), CANCEL_GRACE);
        assertEq(escrow.nextJobId(), 1);
        assertFalse(escrow.paused());
        assertEq(escrow.MAX_FEE_BPS(), 1000);
        assertEq(escrow.MAX_FRAMES(), 1_048_576);
    }

    function test_Constructor_EmitsConfig() public {
        vm.expectEmit(true, true, false, false);
        emit ISettlerTimelock.SettlerChanged(address(0), settler);
        vm.expectEmit(true, true, false, false);
        emit IRenderEscrow.TreasuryChanged(address(0), treasury);
        vm.expectEmit(false, false, false, true);
        emit IRenderEscrow.FeeBpsChanged(0, 7);
        new RenderEscrow(admin, INodeRegistry(address(registry)), settler, treasury, 7, CANCEL_GRACE);
    }

    function test_RevertWhen_ConstructorZeroRegistry() public {
        vm.expectRevert(IRenderEscrow.Escrow_ZeroAddress.selector);
        new RenderEscrow(admin, INodeRegistry(address(0)), settler, treasury, FEE_BPS, CANCEL_GRACE);
    }

    function test_RevertWhen_ConstructorZeroSettler() public {
        vm.expectRevert(ISettlerTimelock.Settler_ZeroAddress.selector);
        new RenderEscrow(admin, INodeRegistry(address(registry)), address(0), treasury, FEE_BPS, CANCEL_GRACE);
    }

    function test_RevertWhen_ConstructorZeroTreasury() public {
        vm.expectRevert(IRenderEscrow.Escrow_ZeroAddress.selector);
        new RenderEscrow(admin, INodeRegistry(address(registry)), settler, address(0), FEE_BPS, CANCEL_GRACE);
    }

    function test_RevertWhen_ConstructorFeeTooHigh() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_FeeTooHigh.selector, uint16(1001)));
        new RenderEscrow(admin, INodeRegistry(address(registry)), settler, treasury, 1001, CANCEL_GRACE);
    }

    // ------------------------------------------------------------------ quote

    function test_Quote() public view {
        assertEq(escrow.quote(10, 0, 3), 30);
        assertEq(escrow.quote(1_048_576, 0, 1), 1_048_576);
    }

    function testFuzz_Quote(uint32 frames, uint128 price) public view {
        frames = uint32(bound(frames, 1, escrow.MAX_FRAMES()));
        price = uint128(bound(price, 1, type(uint128).max / frames));
        assertEq(escrow.quote(frames, 0, price), uint256(frames) * price);
    }

    function test_RevertWhen_QuoteZeroFrames() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_InvalidFrameCount.selector, uint32(0)));
        escrow.quote(0, 0, 1);
    }

    function test_RevertWhen_QuoteTooManyFrames() public {
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_InvalidFrameCount.selector, uint32(1_048_577))
        );
        escrow.quote(1_048_577, 0, 1);
    }

    function test_RevertWhen_QuoteZeroPrice() public {
        vm.expectRevert(IRenderEscrow.Escrow_ZeroPrice.selector);
        escrow.quote(1, 0, 0);
    }

    function test_RevertWhen_QuoteAmountOverflows() public {
        uint256 amount = uint256(2) * type(uint128).max;
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_AmountOverflow.selector, amount));
        escrow.quote(2, 0, type(uint128).max);
    }

    // ------------------------------------------------------------------ openJob

    function test_OpenJob_Native() public {
        uint64 deadline = uint64(block.timestamp + 1 days);
        vm.deal(alice, 10 * PRICE);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.JobOpened(
            1, alice, SPEC, address(0), PRICE, 10, 0, deadline, uint64(block.timestamp), 10 * PRICE, FEE_BPS
        );
        vm.prank(alice);
        uint256 jobId = escrow.openJob{value: 10 * PRICE}(SPEC, address(0), PRICE, 10, 0, deadline);
        assertEq(jobId, 1);
        assertEq(escrow.nextJobId(), 2);
        assertEq(address(escrow).balance, 10 * PRICE);
        // The terms of the event are the job's terms: getJob accepts exactly them.
        _remember(jobId, alice, address(0), PRICE, 10, 0, deadline);
        IRenderEscrow.JobState memory job = _job(jobId);
        assertEq(job.cancelledAt, 0);
        assertEq(uint8(job.status), uint8(IRenderEscrow.JobStatus.Open));
        assertEq(uint8(escrow.jobStatus(jobId)), uint8(IRenderEscrow.JobStatus.Open));
        assertEq(job.remaining, 10 * PRICE);
        assertEq(job.verificationsLeft, 0);
        assertEq(escrow.artistOf(jobId, _t(jobId)), alice);
    }

    /// @dev Every field of the terms is bound by the stored hash: changing any one of them is refused.
    function test_RevertWhen_TermsDiffer() public {
        uint256 jobId = _openVerified(alice, 10, 2, PRICE);
        for (uint256 field; field < 9; ++field) {
            IRenderEscrow.JobTerms memory t = _t(jobId);
            if (field == 0) t.specHash = keccak256("other");
            if (field == 1) t.artist = bob;
            if (field == 2) t.token = address(token);
            if (field == 3) t.pricePerFrame = PRICE + 1;
            if (field == 4) t.frameCount = 11;
            if (field == 5) t.verifications = 3;
            if (field == 6) t.deadline += 1;
            if (field == 7) t.openedAt -= 1;
            if (field == 8) t.feeBps = 0;
            bytes memory err = abi.encodeWithSelector(IRenderEscrow.Escrow_TermsMismatch.selector, jobId);
            vm.expectRevert(err);
            escrow.getJob(jobId, t);
            vm.prank(settler);
            vm.expectRevert(err);
            escrow.settle(jobId, t, _sets(node1, 0, 1), _none(), false);
            vm.prank(alice);
            vm.expectRevert(err);
            escrow.cancel(jobId, t);
            vm.warp(block.timestamp + 2 days);
            vm.expectRevert(err);
            escrow.refund(jobId, t);
            vm.expectRevert(err);
            escrow.artistOf(jobId, t);
        }
        // A job that does not exist has no terms at all.
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_TermsMismatch.selector, 77));
        escrow.settle(77, _t(jobId), _none(), _none(), true);
        assertEq(escrow.artistOf(77, _t(jobId)), address(0));
    }

    function test_OpenJob_Token() public {
        token.mint(alice, 5 * PRICE);
        vm.startPrank(alice);
        token.approve(address(escrow), 5 * PRICE);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.JobOpened(
            1,
            alice,
            SPEC,
            address(token),
            PRICE,
            5,
            0,
            uint64(block.timestamp + 1),
            uint64(block.timestamp),
            5 * PRICE,
            FEE_BPS
        );
        uint256 jobId = escrow.openJob(SPEC, address(token), PRICE, 5, 0, uint64(block.timestamp + 1));
        vm.stopPrank();
        _remember(jobId, alice, address(token), PRICE, 5, 0, uint64(block.timestamp + 1));
        assertEq(token.balanceOf(address(escrow)), 5 * PRICE);
        assertEq(token.balanceOf(alice), 0);
        assertEq(_job(jobId).remaining, 5 * PRICE);
    }

    function test_OpenJob_SequentialIds() public {
        assertEq(_openNative(alice, 1, PRICE), 1);
        assertEq(_openToken(bob, 1, PRICE), 2);
        assertEq(_openNative(bob, 1, PRICE), 3);
    }

    function test_OpenJob_SnapshotsFee() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(admin);
        escrow.setFeeBps(1000);
        uint256 later = _openNative(alice, 4, PRICE);
        assertEq(_t(jobId).feeBps, FEE_BPS);
        assertEq(_t(later).feeBps, 1000);
        _release(jobId, _sets(node1, 0, 1));
        assertEq(escrow.fees(address(0)), _fee(PRICE, FEE_BPS));
    }

    function test_RevertWhen_OpenJobPaused() public {
        vm.prank(admin);
        escrow.pause();
        vm.deal(alice, PRICE);
        vm.prank(alice);
        vm.expectRevert(IRenderEscrow.Escrow_Paused.selector);
        escrow.openJob{value: PRICE}(SPEC, address(0), PRICE, 1, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobZeroSpecHash() public {
        vm.deal(alice, PRICE);
        vm.prank(alice);
        vm.expectRevert(IRenderEscrow.Escrow_ZeroSpecHash.selector);
        escrow.openJob{value: PRICE}(bytes32(0), address(0), PRICE, 1, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobZeroPrice() public {
        vm.prank(alice);
        vm.expectRevert(IRenderEscrow.Escrow_ZeroPrice.selector);
        escrow.openJob(SPEC, address(0), 0, 1, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobZeroFrames() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_InvalidFrameCount.selector, uint32(0)));
        escrow.openJob(SPEC, address(0), PRICE, 0, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobTooManyFrames() public {
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_InvalidFrameCount.selector, uint32(1_048_577))
        );
        escrow.openJob(SPEC, address(0), PRICE, 1_048_577, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobAmountOverflows() public {
        uint256 amount = uint256(3) * type(uint128).max;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_AmountOverflow.selector, amount));
        escrow.openJob(SPEC, address(token), type(uint128).max, 3, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobDeadlineNotInFuture() public {
        vm.deal(alice, PRICE);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_DeadlineInPast.selector, uint64(block.timestamp), block.timestamp
            )
        );
        escrow.openJob{value: PRICE}(SPEC, address(0), PRICE, 1, 0, uint64(block.timestamp));
    }

    function test_RevertWhen_OpenJobNativeValueTooLow() public {
        vm.deal(alice, 2 * PRICE);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_WrongValue.selector, 2 * PRICE, PRICE));
        escrow.openJob{value: PRICE}(SPEC, address(0), PRICE, 2, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobNativeValueTooHigh() public {
        vm.deal(alice, 3 * PRICE);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_WrongValue.selector, 2 * PRICE, 3 * PRICE)
        );
        escrow.openJob{value: 3 * PRICE}(SPEC, address(0), PRICE, 2, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobTokenWithValue() public {
        vm.deal(alice, 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_WrongValue.selector, 0, 1));
        escrow.openJob{value: 1}(SPEC, address(token), PRICE, 2, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobTokenNotApproved() public {
        token.mint(alice, PRICE);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(escrow), uint256(0), uint256(PRICE)
            )
        );
        escrow.openJob(SPEC, address(token), PRICE, 1, 0, uint64(block.timestamp + 1));
    }

    function test_RevertWhen_OpenJobFeeOnTransferToken() public {
        FeeOnTransferERC20 fot = new FeeOnTransferERC20();
        uint256 amount = 100 * PRICE;
        fot.mint(alice, amount);
        vm.startPrank(alice);
        fot.approve(address(escrow), amount);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_TransferAmountMismatch.selector, amount, amount * 99 / 100
            )
        );
        escrow.openJob(SPEC, address(fot), PRICE, 100, 0, uint64(block.timestamp + 1));
        vm.stopPrank();
    }

    function test_NoReturnToken_EndToEnd() public {
        NoReturnERC20 usdt = new NoReturnERC20();
        uint128 price = 2_000_000;
        usdt.mint(alice, 8 * uint256(price));
        vm.startPrank(alice);
        usdt.approve(address(escrow), type(uint256).max);
        uint256 jobId = escrow.openJob(SPEC, address(usdt), price, 8, 0, uint64(block.timestamp + 1 days));
        vm.stopPrank();
        _remember(jobId, alice, address(usdt), price, 8, 0, uint64(block.timestamp + 1 days));
        assertEq(usdt.balanceOf(address(escrow)), 8 * uint256(price));

        _release(jobId, _sets(node1, 0, 0x0f));
        uint256 fee = _fee(4 * uint256(price), FEE_BPS);
        assertEq(escrow.credits(owner1, address(usdt)), 4 * uint256(price) - fee);

        vm.prank(owner1);
        escrow.withdraw(address(usdt));
        assertEq(usdt.balanceOf(owner1), 4 * uint256(price) - fee);
        escrow.withdrawFees(address(usdt));
        assertEq(usdt.balanceOf(treasury), fee);

        _close(jobId);
        assertEq(usdt.balanceOf(alice), 4 * uint256(price));
        assertEq(usdt.balanceOf(address(escrow)), 0);
    }

    // ------------------------------------------------------------------ cancel

    function test_Cancel() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.JobCancelled(jobId, alice, uint64(block.timestamp + CANCEL_GRACE));
        vm.prank(alice);
        escrow.cancel(jobId, _t(jobId));
        IRenderEscrow.JobState memory job = _job(jobId);
        assertEq(uint8(job.status), uint8(IRenderEscrow.JobStatus.Cancelled));
        assertEq(job.cancelledAt, block.timestamp);
    }

    function test_Cancel_RefundableAtCappedByDeadline() public {
        vm.deal(alice, PRICE);
        vm.prank(alice);
        uint64 deadline = uint64(block.timestamp + 60);
        uint256 jobId = escrow.openJob{value: PRICE}(SPEC, address(0), PRICE, 1, 0, deadline);
        _remember(jobId, alice, address(0), PRICE, 1, 0, deadline);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.JobCancelled(jobId, alice, deadline);
        vm.prank(alice);
        escrow.cancel(jobId, _t(jobId));
    }

    function test_RevertWhen_CancelNotArtist() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotArtist.selector, jobId, bob));
        escrow.cancel(jobId, _t(jobId));
    }

    function test_RevertWhen_CancelTwice() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.startPrank(alice);
        escrow.cancel(jobId, _t(jobId));
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_JobNotOpen.selector, jobId, IRenderEscrow.JobStatus.Cancelled
            )
        );
        escrow.cancel(jobId, _t(jobId));
        vm.stopPrank();
    }

    function test_RevertWhen_CancelUnknownJob() public {
        // A job that does not exist matches no terms.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_TermsMismatch.selector, 42));
        escrow.cancel(42, _t(42));
    }

    // ------------------------------------------------------------------ release

    function test_Release_SingleSet() public {
        uint256 jobId = _openNative(alice, 10, PRICE);
        uint256 bits = 0x2d5; // frames 0, 2, 4, 6, 7, 9
        uint256 amount = 6 * uint256(PRICE);
        uint256 fee = _fee(amount, FEE_BPS);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.FramesReleased(jobId, _sets(node1, 0, bits), _noSets());
        _release(jobId, _sets(node1, 0, bits));
        assertEq(escrow.credits(owner1, address(0)), amount - fee);
        assertEq(escrow.fees(address(0)), fee);
        assertEq(escrow.paidFrames(jobId, 0), bits);
        assertEq(_job(jobId).remaining, 10 * uint256(PRICE) - amount);
        assertTrue(escrow.isFramePaid(jobId, 9));
        assertTrue(escrow.isFramePaid(jobId, 0));
        assertFalse(escrow.isFramePaid(jobId, 1));
        assertFalse(escrow.isFramePaid(jobId, 8));
    }

    function test_Release_ManyWordsAndNodes() public {
        uint256 jobId = _openToken(alice, 600, PRICE);
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](5);
        sets[0] = IRenderEscrow.FrameSet(node1, 0, 0x3);
        sets[1] = IRenderEscrow.FrameSet(node2, 0, 0xc);
        sets[2] = IRenderEscrow.FrameSet(node1, 2, uint256(1) << 87); // frame 599, the last one
        sets[3] = IRenderEscrow.FrameSet(node2, 0, 1 << 255); // back to word 0: cache flush and reload
        sets[4] = IRenderEscrow.FrameSet(node2, 1, type(uint256).max);
        _release(jobId, sets);
        assertEq(escrow.paidFrames(jobId, 0), 0xf | (1 << 255));
        assertEq(escrow.paidFrames(jobId, 1), type(uint256).max);
        assertEq(escrow.paidFrames(jobId, 2), uint256(1) << 87);
        assertTrue(escrow.isFramePaid(jobId, 599));
        assertTrue(escrow.isFramePaid(jobId, 255));
        assertFalse(escrow.isFramePaid(jobId, 598));
        uint256 a1 = 3 * uint256(PRICE);
        uint256 a2 = (2 + 1 + 256) * uint256(PRICE);
        uint256 f1 = _fee(2 * uint256(PRICE), FEE_BPS) + _fee(PRICE, FEE_BPS);
        uint256 f2 =
            _fee(2 * uint256(PRICE), FEE_BPS) + _fee(PRICE, FEE_BPS) + _fee(256 * uint256(PRICE), FEE_BPS);
        assertEq(escrow.credits(owner1, address(token)), a1 - f1);
        assertEq(escrow.credits(owner2, address(token)), a2 - f2);
        assertEq(escrow.fees(address(token)), f1 + f2);
        assertEq(_job(jobId).remaining, (600 - 262) * uint256(PRICE));
    }

    function test_Release_AfterCancelAndDeadline() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(alice);
        escrow.cancel(jobId, _t(jobId));
        vm.warp(block.timestamp + 2 days);
        _release(jobId, _sets(node1, 0, 0xf));
        assertEq(_job(jobId).remaining, 0);
    }

    function test_Release_DeregisteredNodePaysOwner() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(owner1);
        registry.deregister(node1);
        _release(jobId, _sets(node1, 0, 1));
        assertEq(escrow.credits(owner1, address(0)), PRICE - _fee(PRICE, FEE_BPS));
    }

    function test_RevertWhen_ReleaseNotSettler() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, 0, 1);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotSettler.selector, stranger));
        escrow.settle(jobId, _t(jobId), sets, _none(), false);
    }

    function test_RevertWhen_ReleaseUnknownJob() public {
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_TermsMismatch.selector, 7));
        _release(7, sets);
    }

    function test_RevertWhen_ReleaseClosedJob() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        _close(jobId);
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, 0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_JobNotReleasable.selector, jobId, IRenderEscrow.JobStatus.Refunded
            )
        );
        _release(jobId, sets);
    }

    function test_RevertWhen_SettleWithAnotherSpec() public {
        // Job ids are sequential: after a reorg the same id can name another artist's job. The settler names
        // the spec it rendered, and the escrow refuses to pay it from a job opened for another.
        uint256 jobId = _openNative(alice, 4, PRICE);
        IRenderEscrow.JobTerms memory other = _t(jobId);
        other.specHash = keccak256("the spec the nodes rendered");
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_TermsMismatch.selector, jobId));
        escrow.settle(jobId, other, _sets(node1, 0, 1), _none(), false);
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_TermsMismatch.selector, jobId));
        escrow.settle(jobId, other, _none(), _none(), true);
        assertEq(_job(jobId).remaining, 4 * uint256(PRICE));
    }

    function test_RevertWhen_NodeBoundAfterTheJobOpened() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        uint40 openedAt = uint40(_t(jobId).openedAt);
        assertEq(openedAt, block.timestamp);
        // A settler binding a node of its own to an open job cannot pay it, in the same block or later.
        address late = _register(settler, node3Pk, 0);
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_NodeBoundAfterOpen.selector, jobId, late, openedAt, openedAt
            )
        );
        escrow.settle(jobId, _t(jobId), _sets(late, 0, 1), _none(), false);
        // Nor re-bind a node that was bound before.
        vm.prank(owner1);
        registry.deregister(node1);
        _register(owner1, node1Pk, 0);
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_NodeBoundAfterOpen.selector, jobId, node1, openedAt + 1, openedAt
            )
        );
        escrow.settle(jobId, _t(jobId), _sets(node1, 0, 2), _none(), false);
        // A node bound before the job still is paid.
        _release(jobId, _sets(node2, 0, 1));
        // And the next job can pay the late node.
        uint256 next = _openNative(alice, 1, PRICE);
        _release(next, _sets(late, 0, 1));
    }

    function test_RevertWhen_DeadlineBeyondWhatAJobStores() public {
        uint64 far = uint64(type(uint40).max) + 1;
        vm.deal(alice, PRICE);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_DeadlineTooFar.selector, far));
        escrow.openJob{value: PRICE}(SPEC, address(0), PRICE, 1, 0, far);
    }

    function test_RevertWhen_SettleNothing() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(settler);
        vm.expectRevert(IRenderEscrow.Escrow_NothingToSettle.selector);
        escrow.settle(jobId, _t(jobId), _none(), _none(), false);
    }

    function test_RevertWhen_ReleaseAfterRefund() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.warp(block.timestamp + 1 days);
        escrow.refund(jobId, _t(jobId));
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, 0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_JobNotReleasable.selector, jobId, IRenderEscrow.JobStatus.Refunded
            )
        );
        _release(jobId, sets);
    }

    function test_RevertWhen_ReleaseEmptySet() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](2);
        sets[0] = IRenderEscrow.FrameSet(node1, 0, 1);
        sets[1] = IRenderEscrow.FrameSet(node1, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_EmptyFrameSet.selector, jobId, 1));
        _release(jobId, sets);
    }

    function test_RevertWhen_ReleaseFrameOutOfRangeInLastWord() public {
        uint256 jobId = _openNative(alice, 260, PRICE);
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, 1, 0x1f); // frames 256..260; 260 is out
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_FrameOutOfRange.selector, jobId, 260));
        _release(jobId, sets);
    }

    function test_RevertWhen_ReleaseFrameOutOfRangeWordBeyond() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, 3, 1 << 5);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_FrameOutOfRange.selector, jobId, 3 * 256 + 5)
        );
        _release(jobId, sets);
    }

    function test_RevertWhen_ReleaseFrameOutOfRangeMaxWord() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, type(uint32).max, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_FrameOutOfRange.selector, jobId, uint256(type(uint32).max) * 256
            )
        );
        _release(jobId, sets);
    }

    function test_RevertWhen_ReleaseFrameAlreadyPaid() public {
        uint256 jobId = _openNative(alice, 8, PRICE);
        _release(jobId, _sets(node1, 0, 0x3));
        IRenderEscrow.FrameSet[] memory sets = _sets(node2, 0, 0x6);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_FrameAlreadyPaid.selector, jobId, 0, 0x2));
        _release(jobId, sets);
    }

    function test_RevertWhen_ReleaseFrameTwiceInOneCall() public {
        uint256 jobId = _openNative(alice, 600, PRICE);
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](3);
        sets[0] = IRenderEscrow.FrameSet(node1, 0, 0x10);
        sets[1] = IRenderEscrow.FrameSet(node1, 1, 0x1);
        sets[2] = IRenderEscrow.FrameSet(node2, 0, 0x30); // frame 4 again, after a word switch
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_FrameAlreadyPaid.selector, jobId, 0, 0x10)
        );
        _release(jobId, sets);
    }

    function test_RevertWhen_ReleaseNodeNotBound() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        IRenderEscrow.FrameSet[] memory sets = _sets(node3, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NodeNotBound.selector, node3));
        _release(jobId, sets);
    }

    function testFuzz_Release_ArbitraryBitmap(uint32 frames, uint256 bits, uint32 word, uint128 price)
        public
    {
        frames = uint32(bound(frames, 1, 2048));
        price = uint128(bound(price, 1, 1e24));
        word = uint32(bound(word, 0, (uint256(frames) - 1) / 256));
        uint256 base = uint256(word) * 256;
        uint256 valid = frames - base >= 256 ? 256 : frames - base;
        if (valid < 256) bits &= (uint256(1) << valid) - 1;
        vm.assume(bits != 0);
        uint256 jobId = _openNative(alice, frames, price);
        uint256 n = _popcount(bits);
        uint256 amount = n * price;
        uint256 fee = _fee(amount, FEE_BPS);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.FramesReleased(jobId, _sets(node2, word, bits), _noSets());
        _release(jobId, _sets(node2, word, bits));
        assertEq(escrow.paidFrames(jobId, word), bits);
        assertEq(escrow.credits(owner2, address(0)), amount - fee);
        assertEq(escrow.fees(address(0)), fee);
        assertEq(_job(jobId).remaining, uint256(frames) * price - amount);
        // Paying any of them again fails.
        uint256 again = bits & (~bits + 1); // lowest set bit
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, word, again);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_FrameAlreadyPaid.selector, jobId, word, again)
        );
        _release(jobId, sets);
    }

    function testFuzz_Release_OutOfRangeBit(uint32 frames, uint8 bit) public {
        frames = uint32(bound(frames, 1, 255));
        vm.assume(bit >= frames);
        uint256 jobId = _openNative(alice, frames, PRICE);
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, 0, uint256(1) << bit);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_FrameOutOfRange.selector, jobId, uint256(bit))
        );
        _release(jobId, sets);
    }

    function testFuzz_Release_FeeRounding(uint128 price, uint16 bps, uint8 count) public {
        price = uint128(bound(price, 1, type(uint128).max / 256));
        bps = uint16(bound(bps, 0, 1000));
        uint256 n = bound(count, 1, 256);
        vm.prank(admin);
        escrow.setFeeBps(bps);
        uint256 jobId = _openToken(alice, 256, price);
        uint256 bits = n == 256 ? type(uint256).max : (uint256(1) << n) - 1;
        _release(jobId, _sets(node1, 0, bits));
        uint256 amount = n * price;
        uint256 fee = escrow.fees(address(token));
        assertEq(fee, amount * bps / 10_000);
        assertLe(fee * 10_000, amount * bps);
        assertEq(escrow.credits(owner1, address(token)) + fee, amount);
    }

    // ------------------------------------------------------------------ close

    function test_Close_RefundsTheRestInTheSameCall() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        _release(jobId, _sets(node1, 0, 1));
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.JobRefunded(jobId, alice, 3 * uint256(PRICE));
        _close(jobId);
        IRenderEscrow.JobState memory job = _job(jobId);
        assertEq(uint8(job.status), uint8(IRenderEscrow.JobStatus.Refunded));
        assertEq(job.remaining, 0);
        assertEq(alice.balance, 3 * uint256(PRICE));
    }

    function test_Close_WithTheLastFramesInOneCall() public {
        uint256 jobId = _openVerified(alice, 4, 4, PRICE);
        vm.prank(settler);
        escrow.settle(jobId, _t(jobId), _sets(node1, 0, 0xf), _sets(node2, 0, 0x1), true);
        // 4 frames and 1 verification render paid; the 3 unused verifications come back.
        assertEq(alice.balance, 3 * uint256(PRICE));
        assertEq(uint8(_job(jobId).status), uint8(IRenderEscrow.JobStatus.Refunded));
    }

    function test_Close_Cancelled() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(alice);
        escrow.cancel(jobId, _t(jobId));
        _close(jobId);
        assertEq(uint8(_job(jobId).status), uint8(IRenderEscrow.JobStatus.Refunded));
        assertEq(alice.balance, 4 * uint256(PRICE));
    }

    function test_Close_NothingLeftMovesNoCoin() public {
        ReentrantReceiver artist = new ReentrantReceiver();
        vm.deal(address(artist), 2 * PRICE);
        artist.execute(
            address(escrow),
            2 * PRICE,
            abi.encodeCall(
                IRenderEscrow.openJob, (SPEC, address(0), PRICE, 2, 0, uint64(block.timestamp + 1))
            )
        );
        _remember(1, address(artist), address(0), PRICE, 2, 0, uint64(block.timestamp + 1));
        // An artist that rejects payments would make any transfer fail: none is attempted.
        artist.setRejectPayments(true);
        _release(1, _sets(node1, 0, 0x3));
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.JobRefunded(1, address(artist), 0);
        _close(1);
        assertEq(escrow.credits(address(artist), address(0)), 0);
    }

    function test_Close_ToARejectingArtistCreditsIt() public {
        ReentrantReceiver artist = new ReentrantReceiver();
        vm.deal(address(artist), 2 * PRICE);
        artist.execute(
            address(escrow),
            2 * PRICE,
            abi.encodeCall(
                IRenderEscrow.openJob, (SPEC, address(0), PRICE, 2, 0, uint64(block.timestamp + 1))
            )
        );
        _remember(1, address(artist), address(0), PRICE, 2, 0, uint64(block.timestamp + 1));
        artist.setRejectPayments(true);
        // The frames are paid and the job ends all the same: the refusing artist cannot block settlement.
        vm.prank(settler);
        escrow.settle(1, _t(1), _sets(node1, 0, 0x1), _none(), true);
        assertEq(escrow.credits(owner1, address(0)), PRICE - _fee(PRICE, FEE_BPS));
        assertEq(escrow.credits(address(artist), address(0)), PRICE);
        artist.setRejectPayments(false);
        artist.execute(address(escrow), 0, abi.encodeCall(IRenderEscrow.withdraw, (address(0))));
        assertEq(address(artist).balance, PRICE);
    }

    function test_RevertWhen_CloseNotSettler() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotSettler.selector, alice));
        escrow.settle(jobId, _t(jobId), _none(), _none(), true);
    }

    function test_RevertWhen_CloseTwice() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        _close(jobId);
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_JobNotReleasable.selector, jobId, IRenderEscrow.JobStatus.Refunded
            )
        );
        escrow.settle(jobId, _t(jobId), _none(), _none(), true);
    }

    // ------------------------------------------------------------------ refund

    function test_RevertWhen_RefundAfterClose() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        _release(jobId, _sets(node1, 0, 0x5));
        _close(jobId);
        assertEq(alice.balance, 2 * uint256(PRICE));
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotRefundable.selector, jobId));
        escrow.refund(jobId, _t(jobId));
    }

    function test_Refund_AfterCancelGrace() public {
        uint256 jobId = _openToken(alice, 4, PRICE);
        vm.prank(alice);
        escrow.cancel(jobId, _t(jobId));
        vm.warp(block.timestamp + CANCEL_GRACE);
        vm.prank(bob);
        escrow.refund(jobId, _t(jobId));
        assertEq(token.balanceOf(alice), 4 * uint256(PRICE));
        assertEq(token.balanceOf(bob), 0);
    }

    function test_Refund_AfterDeadlineWhilePaused() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(admin);
        escrow.pause();
        vm.warp(_t(jobId).deadline);
        escrow.refund(jobId, _t(jobId));
        assertEq(alice.balance, 4 * uint256(PRICE));
    }

    function test_Refund_NothingLeft() public {
        uint256 jobId = _openNative(alice, 2, PRICE);
        _release(jobId, _sets(node1, 0, 0x3));
        vm.warp(block.timestamp + 1 days);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.JobRefunded(jobId, alice, 0);
        escrow.refund(jobId, _t(jobId));
        assertEq(alice.balance, 0);
    }

    function test_RevertWhen_RefundOpenBeforeDeadline() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.warp(block.timestamp + 1 days - 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotRefundable.selector, jobId));
        escrow.refund(jobId, _t(jobId));
    }

    function test_RevertWhen_RefundCancelledWithinGrace() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(alice);
        escrow.cancel(jobId, _t(jobId));
        vm.warp(block.timestamp + CANCEL_GRACE - 1);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotRefundable.selector, jobId));
        escrow.refund(jobId, _t(jobId));
    }

    function test_RevertWhen_RefundTwice() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.warp(block.timestamp + 1 days);
        escrow.refund(jobId, _t(jobId));
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotRefundable.selector, jobId));
        escrow.refund(jobId, _t(jobId));
    }

    function test_RevertWhen_RefundUnknownJob() public {
        vm.warp(block.timestamp + 365 days);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_TermsMismatch.selector, 99));
        escrow.refund(99, _t(99));
    }

    function test_Refund_ToARejectingArtistCreditsIt() public {
        ReentrantReceiver artist = new ReentrantReceiver();
        vm.deal(address(artist), PRICE);
        artist.execute(
            address(escrow),
            PRICE,
            abi.encodeCall(
                IRenderEscrow.openJob, (SPEC, address(0), PRICE, 1, 0, uint64(block.timestamp + 1))
            )
        );
        _remember(1, address(artist), address(0), PRICE, 1, 0, uint64(block.timestamp + 1));
        artist.setRejectPayments(true);
        vm.warp(block.timestamp + 1);
        escrow.refund(1, _t(1));
        assertEq(escrow.credits(address(artist), address(0)), PRICE, "credited, not lost");
    }

    function testFuzz_OpenReleaseRefundAccounting(uint32 frames, uint128 price, uint256 bits, bool useToken)
        public
    {
        frames = uint32(bound(frames, 1, 256));
        price = uint128(bound(price, 1, 1e30));
        if (frames < 256) bits &= (uint256(1) << frames) - 1;
        uint256 locked = uint256(frames) * price;
        uint256 jobId = useToken ? _openToken(alice, frames, price) : _openNative(alice, frames, price);
        address t = useToken ? address(token) : address(0);
        uint256 released;
        if (bits != 0) {
            _release(jobId, _sets(node1, 0, bits));
            released = _popcount(bits) * price;
        }
        vm.warp(block.timestamp + 1 days);
        escrow.refund(jobId, _t(jobId));
        uint256 refunded = useToken ? token.balanceOf(alice) : alice.balance;
        assertEq(refunded, locked - released);
        assertEq(escrow.credits(owner1, t) + escrow.fees(t), released);
        uint256 held = useToken ? token.balanceOf(address(escrow)) : address(escrow).balance;
        assertEq(held, released);
        if (escrow.credits(owner1, t) != 0) {
            vm.prank(owner1);
            escrow.withdraw(t);
        }
        if (escrow.fees(t) != 0) escrow.withdrawFees(t);
        held = useToken ? token.balanceOf(address(escrow)) : address(escrow).balance;
        assertEq(held, 0);
    }

    // ------------------------------------------------------------------ verification renders

    function test_OpenJob_LocksVerificationBudget() public {
        uint64 deadline = uint64(block.timestamp + 1 days);
        vm.deal(alice, 14 * PRICE);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.JobOpened(
            1, alice, SPEC, address(0), PRICE, 10, 4, deadline, uint64(block.timestamp), 14 * PRICE, FEE_BPS
        );
        vm.prank(alice);
        uint256 jobId = escrow.openJob{value: 14 * PRICE}(SPEC, address(0), PRICE, 10, 4, deadline);
        _remember(jobId, alice, address(0), PRICE, 10, 4, deadline);
        IRenderEscrow.JobState memory job = _job(jobId);
        assertEq(job.verificationsLeft, 4);
        assertEq(job.remaining, 14 * PRICE);
        assertEq(escrow.quote(10, 4, PRICE), 14 * PRICE);
    }

    function test_RevertWhen_VerificationBudgetAboveFrameCount() public {
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_InvalidVerifications.selector, 4, 3));
        escrow.quote(3, 4, PRICE);
        vm.deal(alice, 7 * PRICE);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_InvalidVerifications.selector, 4, 3));
        escrow.openJob{value: 7 * PRICE}(SPEC, address(0), PRICE, 3, 4, uint64(block.timestamp + 1));
    }

    function test_ReleaseVerifications_PaysFromBudget() public {
        uint256 jobId = _openVerified(alice, 10, 3, PRICE);
        _release(jobId, _sets(node1, 0, 0x3ff));
        uint256 amount = 2 * uint256(PRICE);
        uint256 fee = _fee(amount, FEE_BPS);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.FramesReleased(jobId, _noSets(), _sets(node2, 0, 0x11));
        _releaseVerifications(jobId, _sets(node2, 0, 0x11));
        assertEq(escrow.credits(owner2, address(0)), amount - fee);
        assertEq(escrow.verifiedFrames(jobId, 0), 0x11);
        assertEq(escrow.paidFrames(jobId, 0), 0x3ff, "the frame bitmap is untouched");
        IRenderEscrow.JobState memory job = _job(jobId);
        assertEq(job.verificationsLeft, 1);
        assertEq(job.remaining, PRICE, "one verification render of budget left");
        // The unused budget goes back to the artist.
        uint256 before = alice.balance;
        _close(jobId);
        assertEq(alice.balance - before, PRICE);
    }

    function test_Release_FramesAndTheirVerificationsInOneCall() public {
        uint256 jobId = _openVerified(alice, 8, 8, PRICE);
        vm.recordLogs();
        vm.prank(settler);
        escrow.settle(jobId, _t(jobId), _sets(node1, 0, 0xff), _sets(node2, 0, 0x81), false);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "one FramesReleased for frames and verification renders");
        (IRenderEscrow.FrameSet[] memory frames, IRenderEscrow.FrameSet[] memory checks) =
            abi.decode(logs[0].data, (IRenderEscrow.FrameSet[], IRenderEscrow.FrameSet[]));
        assertEq(frames.length, 1);
        assertEq(frames[0].node, node1);
        assertEq(frames[0].bits, 0xff);
        assertEq(checks.length, 1);
        assertEq(checks[0].node, node2);
        assertEq(checks[0].bits, 0x81);
        assertEq(escrow.paidFrames(jobId, 0), 0xff);
        assertEq(escrow.verifiedFrames(jobId, 0), 0x81);
        assertEq(_job(jobId).remaining, 6 * uint256(PRICE));
        assertEq(_job(jobId).verificationsLeft, 6);
    }

    function test_RevertWhen_ReleaseBothListsEmpty() public {
        uint256 jobId = _openVerified(alice, 8, 8, PRICE);
        vm.prank(settler);
        vm.expectRevert(IRenderEscrow.Escrow_NothingToSettle.selector);
        escrow.settle(jobId, _t(jobId), _none(), _none(), false);
    }

    function test_RevertWhen_VerificationOfUnpaidFrame() public {
        uint256 jobId = _openVerified(alice, 10, 10, PRICE);
        _release(jobId, _sets(node1, 0, 0x1));
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_FrameNotPaid.selector, jobId, 0, 0x2));
        escrow.settle(jobId, _t(jobId), _none(), _sets(node2, 0, 0x3), false);
    }

    function test_RevertWhen_VerificationPaidTwice() public {
        uint256 jobId = _openVerified(alice, 10, 10, PRICE);
        _release(jobId, _sets(node1, 0, 0x3));
        _releaseVerifications(jobId, _sets(node2, 0, 0x1));
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_VerificationAlreadyPaid.selector, jobId, 0, 0x1)
        );
        escrow.settle(jobId, _t(jobId), _none(), _sets(node3, 0, 0x3), false);
    }

    function test_RevertWhen_VerificationBudgetExceeded() public {
        uint256 jobId = _openVerified(alice, 10, 2, PRICE);
        _release(jobId, _sets(node1, 0, 0x3ff));
        _releaseVerifications(jobId, _sets(node2, 0, 0x1));
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_VerificationBudgetExceeded.selector, jobId, 2, 1)
        );
        escrow.settle(jobId, _t(jobId), _none(), _sets(node2, 0, 0x6), false);
    }

    function test_RevertWhen_VerificationsWithoutBudget() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        _release(jobId, _sets(node1, 0, 0xf));
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_VerificationBudgetExceeded.selector, jobId, 1, 0)
        );
        escrow.settle(jobId, _t(jobId), _none(), _sets(node2, 0, 0x1), false);
    }

    function test_RevertWhen_ReleaseVerificationsNotSettler() public {
        uint256 jobId = _openVerified(alice, 4, 4, PRICE);
        _release(jobId, _sets(node1, 0, 0xf));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotSettler.selector, alice));
        escrow.settle(jobId, _t(jobId), _none(), _sets(node2, 0, 0x1), false);
    }

    function test_RevertWhen_ReleaseVerificationsAfterRefund() public {
        uint256 jobId = _openVerified(alice, 4, 4, PRICE);
        _release(jobId, _sets(node1, 0, 0xf));
        _close(jobId);
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_JobNotReleasable.selector, jobId, IRenderEscrow.JobStatus.Refunded
            )
        );
        escrow.settle(jobId, _t(jobId), _none(), _sets(node2, 0, 0x1), false);
    }

    /// Whatever frames and verification renders are paid, the artist gets back exactly the rest, the lock
    /// never pays a verification render of an unpaid frame, and nothing stays in the escrow.
    function testFuzz_VerificationAccounting(
        uint32 frames,
        uint32 budget,
        uint128 price,
        uint256 paidBits,
        uint256 verifyBits
    ) public {
        frames = uint32(bound(frames, 1, 256));
        budget = uint32(bound(budget, 0, frames));
        price = uint128(bound(price, 1, 1e30));
        if (frames < 256) paidBits &= (uint256(1) << frames) - 1;
        verifyBits &= paidBits;
        uint256 jobId = _openVerified(alice, frames, budget, price);
        uint256 released;
        if (paidBits != 0) {
            _release(jobId, _sets(node1, 0, paidBits));
            released = _popcount(paidBits) * price;
        }
        uint256 verified = _popcount(verifyBits);
        if (verifyBits != 0) {
            vm.prank(settler);
            if (verified > budget) {
                vm.expectRevert(
                    abi.encodeWithSelector(
                        IRenderEscrow.Escrow_VerificationBudgetExceeded.selector, jobId, verified, budget
                    )
                );
                escrow.settle(jobId, _t(jobId), _none(), _sets(node2, 0, verifyBits), false);
                verified = 0;
            } else {
                escrow.settle(jobId, _t(jobId), _none(), _sets(node2, 0, verifyBits), false);
            }
        }
        released += verified * price;
        assertEq(_job(jobId).verificationsLeft, budget - verified);
        vm.warp(block.timestamp + 1 days);
        uint256 before = alice.balance;
        escrow.refund(jobId, _t(jobId));
        assertEq(alice.balance - before, (uint256(frames) + budget) * price - released);
        assertEq(
            escrow.credits(owner1, address(0)) + escrow.credits(owner2, address(0)) + escrow.fees(address(0)),
            released
        );
        assertEq(address(escrow).balance, released);
    }

    // ------------------------------------------------------------------ withdraw

    function test_Withdraw_Native() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        _release(jobId, _sets(node1, 0, 0xf));
        uint256 credit = 4 * uint256(PRICE) - _fee(4 * uint256(PRICE), FEE_BPS);
        uint256 before = owner1.balance;
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.CreditsWithdrawn(owner1, address(0), credit);
        vm.prank(owner1);
        escrow.withdraw(address(0));
        assertEq(owner1.balance - before, credit);
        assertEq(escrow.credits(owner1, address(0)), 0);
    }

    /// Registering opens the owner's credit slot, a withdrawal keeps it: every payout to the owner, the first
    /// and the one after a withdrawal included, updates an existing slot (no 22,100-gas creation).
    function test_CreditSlot_OpenedAtRegistrationAndKeptByWithdraw() public {
        bytes32 slot = _creditSlot(owner1, address(0));
        assertEq(uint256(vm.load(address(escrow), slot)), 1, "opened by register, owing nothing");
        assertEq(escrow.credits(owner1, address(0)), 0);
        vm.prank(owner1);
        vm.expectRevert(IRenderEscrow.Escrow_NothingToWithdraw.selector);
        escrow.withdraw(address(0));

        uint256 jobId = _openNative(alice, 4, PRICE);
        _release(jobId, _sets(node1, 0, 0x3));
        uint256 credit = 2 * uint256(PRICE) - _fee(2 * uint256(PRICE), FEE_BPS);
        assertEq(uint256(vm.load(address(escrow), slot)), credit + 1);
        vm.prank(owner1);
        escrow.withdraw(address(0));
        assertEq(uint256(vm.load(address(escrow), slot)), 1, "the slot stays");
        assertEq(escrow.credits(owner1, address(0)), 0);
        assertEq(
            address(escrow).balance, 2 * uint256(PRICE) + _fee(2 * uint256(PRICE), FEE_BPS), "no phantom wei"
        );
    }

    /// Anyone may open anyone's slots; it moves nothing and does not touch an existing balance.
    function test_OpenAccount_ByAnyoneMovesNoValue() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        _release(jobId, _sets(node1, 0, 0x1));
        uint256 credit = escrow.credits(owner1, address(0));
        uint256 fee = escrow.fees(address(0));
        vm.startPrank(stranger);
        escrow.openAccount(owner1, address(0));
        escrow.openAccount(alice, address(token));
        escrow.openFees(address(0));
        escrow.openFees(address(token));
        vm.stopPrank();
        assertEq(escrow.credits(owner1, address(0)), credit);
        assertEq(escrow.fees(address(0)), fee);
        assertEq(escrow.credits(alice, address(token)), 0);
        assertEq(escrow.fees(address(token)), 0);
        assertEq(uint256(vm.load(address(escrow), _creditSlot(alice, address(token)))), 1);
    }

    /// Storage slot of `_credits`, from `forge inspect RenderEscrow storageLayout`.
    uint256 internal constant CREDITS_SLOT = 9;

    /// Storage slot of `credits(account, token)`.
    function _creditSlot(address account, address t) internal pure returns (bytes32) {
        return keccak256(abi.encode(t, keccak256(abi.encode(account, uint256(CREDITS_SLOT)))));
    }

    function test_Withdraw_Token() public {
        uint256 jobId = _openToken(alice, 4, PRICE);
        _release(jobId, _sets(node2, 0, 0x1));
        vm.prank(owner2);
        escrow.withdraw(address(token));
        assertEq(token.balanceOf(owner2), PRICE - _fee(PRICE, FEE_BPS));
    }

    function test_RevertWhen_WithdrawNothing() public {
        vm.prank(owner1);
        vm.expectRevert(IRenderEscrow.Escrow_NothingToWithdraw.selector);
        escrow.withdraw(address(0));
    }

    function test_RevertWhen_WithdrawToRejectingOwner() public {
        ReentrantReceiver owner = new ReentrantReceiver();
        _register(address(owner), node3Pk, 0);
        uint256 jobId = _openNative(alice, 1, PRICE);
        _release(jobId, _sets(node3, 0, 1));
        owner.setRejectPayments(true);
        uint256 credit = PRICE - _fee(PRICE, FEE_BPS);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_NativeTransferFailed.selector, address(owner), credit)
        );
        owner.execute(address(escrow), 0, abi.encodeCall(IRenderEscrow.withdraw, (address(0))));
        assertEq(escrow.credits(address(owner), address(0)), credit);
    }

    function test_WithdrawFees() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        uint256 tokenJob = _openToken(alice, 4, PRICE);
        _release(jobId, _sets(node1, 0, 0xf));
        _release(tokenJob, _sets(node1, 0, 0xf));
        uint256 fee = _fee(4 * uint256(PRICE), FEE_BPS);
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.FeesWithdrawn(address(0), treasury, fee);
        vm.prank(stranger);
        escrow.withdrawFees(address(0));
        escrow.withdrawFees(address(token));
        assertEq(treasury.balance, fee);
        assertEq(token.balanceOf(treasury), fee);
        assertEq(escrow.fees(address(0)), 0);
        assertEq(escrow.fees(address(token)), 0);
    }

    function test_RevertWhen_WithdrawFeesNothing() public {
        vm.expectRevert(IRenderEscrow.Escrow_NothingToWithdraw.selector);
        escrow.withdrawFees(address(0));
    }

    // ------------------------------------------------------------------ admin

    function test_RotatedSettler_TakesOverSettlement() public {
        _rotateSettler(escrow, bob);
        uint256 jobId = _openNative(alice, 1, PRICE);
        IRenderEscrow.FrameSet[] memory sets = _sets(node1, 0, 1);
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotSettler.selector, settler));
        escrow.settle(jobId, _t(jobId), sets, _none(), false);
        vm.prank(bob);
        escrow.settle(jobId, _t(jobId), sets, _none(), false);
    }

    function test_SetTreasury() public {
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.TreasuryChanged(treasury, bob);
        vm.prank(admin);
        escrow.setTreasury(bob);
        assertEq(escrow.treasury(), bob);
    }

    function test_RevertWhen_SetTreasuryZero() public {
        vm.prank(admin);
        vm.expectRevert(IRenderEscrow.Escrow_ZeroAddress.selector);
        escrow.setTreasury(address(0));
    }

    function test_SetFeeBps() public {
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.FeeBpsChanged(FEE_BPS, 1000);
        vm.prank(admin);
        escrow.setFeeBps(1000);
        assertEq(escrow.feeBps(), 1000);
    }

    function test_RevertWhen_SetFeeBpsTooHigh() public {
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_FeeTooHigh.selector, uint16(1001)));
        escrow.setFeeBps(1001);
    }

    function test_PauseUnpause() public {
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.Paused(admin);
        vm.prank(admin);
        escrow.pause();
        assertTrue(escrow.paused());
        vm.expectEmit(address(escrow));
        emit IRenderEscrow.Unpaused(admin);
        vm.prank(admin);
        escrow.unpause();
        assertFalse(escrow.paused());
        _openNative(alice, 1, PRICE);
    }

    function test_Pause_DoesNotBlockSettlement() public {
        uint256 jobId = _openNative(alice, 4, PRICE);
        vm.prank(admin);
        escrow.pause();
        _release(jobId, _sets(node1, 0, 1));
        vm.prank(alice);
        escrow.cancel(jobId, _t(jobId));
        vm.prank(owner1);
        escrow.withdraw(address(0));
        escrow.withdrawFees(address(0));
        _close(jobId);
        assertEq(alice.balance, 3 * uint256(PRICE));
    }

    function test_RevertWhen_AdminFunctionsNotOwner() public {
        bytes memory err = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger);
        vm.startPrank(stranger);
        vm.expectRevert(err);
        escrow.proposeSettler(bob);
        vm.expectRevert(err);
        escrow.cancelSettlerProposal();
        vm.expectRevert(err);
        escrow.setTreasury(bob);
        vm.expectRevert(err);
        escrow.setFeeBps(1);
        vm.expectRevert(err);
        escrow.pause();
        vm.expectRevert(err);
        escrow.unpause();
        vm.stopPrank();
    }

    function test_TransferOwnershipTwoStep() public {
        vm.prank(admin);
        escrow.transferOwnership(bob);
        assertEq(escrow.owner(), admin);
        assertEq(escrow.pendingOwner(), bob);
        vm.prank(bob);
        escrow.acceptOwnership();
        assertEq(escrow.owner(), bob);
    }

    // ------------------------------------------------------------------ misc

    function test_RevertWhen_SendingNativeDirectly() public {
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        (bool ok,) = address(escrow).call{value: 1 ether}("");
        assertFalse(ok);
        vm.prank(alice);
        (ok,) = address(escrow).call{value: 1 ether}(hex"deadbeef");
        assertFalse(ok);
        assertEq(address(escrow).balance, 0);
    }

    function test_GetJob_Unknown() public view {
        IRenderEscrow.JobState memory job = _job(123);
        assertEq(job.remaining, 0);
        assertEq(uint8(job.status), uint8(IRenderEscrow.JobStatus.None));
        assertEq(uint8(escrow.jobStatus(123)), uint8(IRenderEscrow.JobStatus.None));
    }

    // ------------------------------------------------------------------ closing settlements and settleMany

    function test_SettleAndClose_WritesNoBitmapAndPaysOnce() public {
        uint256 jobId = _openVerified(alice, 8, 8, PRICE);
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](2);
        sets[0] = IRenderEscrow.FrameSet({node: node1, wordIndex: 0, bits: 0x0f});
        sets[1] = IRenderEscrow.FrameSet({node: node2, wordIndex: 0, bits: 0xf0});
        uint256 before = alice.balance;
        vm.prank(settler);
        escrow.settle(jobId, _t(jobId), sets, _sets(node1, 0, 0x81), true);
        // Paid: 8 frames and 2 verification renders; the 6 unused renders of the budget went back.
        assertEq(alice.balance - before, 6 * uint256(PRICE));
        uint256 perFrame = PRICE - _fee(PRICE, FEE_BPS);
        assertEq(escrow.credits(owner1, address(0)), 6 * perFrame, "frames and renders: one credit");
        assertEq(escrow.credits(owner2, address(0)), 4 * perFrame);
        assertEq(escrow.fees(address(0)), 10 * _fee(PRICE, FEE_BPS));
        // The job ended in that call: no bitmap was written, and nothing can be paid for it any more.
        assertEq(escrow.paidFrames(jobId, 0), 0);
        assertEq(escrow.verifiedFrames(jobId, 0), 0);
        assertEq(uint8(escrow.jobStatus(jobId)), uint8(IRenderEscrow.JobStatus.Refunded));
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_JobNotReleasable.selector, jobId, IRenderEscrow.JobStatus.Refunded
            )
        );
        _release(jobId, _sets(node1, 0, 0x100));
    }

    function test_RevertWhen_SettleAndCloseNamesAFrameTwice() public {
        uint256 jobId = _openVerified(alice, 8, 8, PRICE);
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](2);
        sets[0] = IRenderEscrow.FrameSet({node: node1, wordIndex: 0, bits: 0x0f});
        sets[1] = IRenderEscrow.FrameSet({node: node2, wordIndex: 0, bits: 0x18});
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_FrameAlreadyPaid.selector, jobId, 0, 0x08)
        );
        escrow.settle(jobId, _t(jobId), sets, _none(), true);
        // Verification renders: only of frames paid (in this call), and once each.
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_FrameNotPaid.selector, jobId, 0, 0x10));
        escrow.settle(jobId, _t(jobId), _sets(node1, 0, 0x0f), _sets(node2, 0, 0x11), true);
        IRenderEscrow.FrameSet[] memory checks = new IRenderEscrow.FrameSet[](2);
        checks[0] = IRenderEscrow.FrameSet({node: node2, wordIndex: 0, bits: 0x03});
        checks[1] = IRenderEscrow.FrameSet({node: node1, wordIndex: 0, bits: 0x02});
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_VerificationAlreadyPaid.selector, jobId, 0, 0x02)
        );
        escrow.settle(jobId, _t(jobId), _sets(node1, 0, 0x0f), checks, true);
        assertEq(_job(jobId).remaining, 16 * uint256(PRICE), "nothing moved");
    }

    function test_SettleAndClose_AfterPartialSettlementsChecksTheirBitmaps() public {
        uint256 jobId = _openVerified(alice, 300, 2, PRICE);
        _release(jobId, _sets(node1, 1, 0x3));
        _releaseVerifications(jobId, _sets(node2, 1, 0x1));
        IRenderEscrow.JobState memory job = _job(jobId);
        assertEq(job.framesPaid, 2);
        assertEq(job.verificationsPaid, 1);
        // Frame 257 was paid by the earlier call, and frame 256's verification render too.
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_FrameAlreadyPaid.selector, jobId, 1, 0x2));
        escrow.settle(jobId, _t(jobId), _sets(node1, 1, 0x6), _none(), true);
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_VerificationAlreadyPaid.selector, jobId, 1, 0x1)
        );
        escrow.settle(jobId, _t(jobId), _none(), _sets(node2, 1, 0x1), true);
        // The budget counts the earlier render: one more fits, two do not.
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(IRenderEscrow.Escrow_VerificationBudgetExceeded.selector, jobId, 2, 1)
        );
        escrow.settle(jobId, _t(jobId), _sets(node1, 1, 0x4), _sets(node2, 1, 0x6), true);
        uint256 before = alice.balance;
        vm.prank(settler);
        escrow.settle(jobId, _t(jobId), _sets(node1, 1, 0x4), _sets(node2, 1, 0x2), true);
        // Locked 302, paid 3 frames and 2 renders.
        assertEq(alice.balance - before, 297 * uint256(PRICE));
    }

    function test_SettleMany_PaysSeveralJobsInOneCall() public {
        uint256 a = _openVerified(alice, 4, 4, PRICE);
        uint256 b = _openToken(bob, 4, PRICE);
        uint256 c = _openNative(alice, 4, PRICE);
        IRenderEscrow.Settlement[] memory many = new IRenderEscrow.Settlement[](3);
        many[0] = IRenderEscrow.Settlement({
            jobId: a,
            terms: _t(a),
            frames: _sets(node1, 0, 0xf),
            verifications: _sets(node2, 0, 0x1),
            close: true
        });
        many[1] = IRenderEscrow.Settlement({
            jobId: b, terms: _t(b), frames: _sets(node1, 0, 0x3), verifications: _none(), close: false
        });
        many[2] = IRenderEscrow.Settlement({
            jobId: c, terms: _t(c), frames: _sets(node2, 0, 0x1), verifications: _none(), close: true
        });
        uint256 aliceBefore = alice.balance;
        vm.prank(settler);
        escrow.settleMany(many);
        uint256 perFrame = PRICE - _fee(PRICE, FEE_BPS);
        assertEq(escrow.credits(owner1, address(0)), 4 * perFrame);
        assertEq(escrow.credits(owner2, address(0)), 2 * perFrame);
        assertEq(escrow.credits(owner1, address(token)), 2 * perFrame);
        assertEq(escrow.fees(address(0)), 6 * _fee(PRICE, FEE_BPS));
        assertEq(escrow.fees(address(token)), 2 * _fee(PRICE, FEE_BPS));
        // Job a: 8 locked, 5 paid; job c: 4 locked, 1 paid.
        assertEq(alice.balance - aliceBefore, 6 * uint256(PRICE));
        assertEq(uint8(escrow.jobStatus(b)), uint8(IRenderEscrow.JobStatus.Open));
        assertEq(escrow.paidFrames(b, 0), 0x3);
        assertEq(_job(b).remaining, 2 * uint256(PRICE));
        // One bad entry reverts them all.
        many[1].frames = _sets(node1, 0, 0x3);
        many[0].close = false;
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRenderEscrow.Escrow_JobNotReleasable.selector, a, IRenderEscrow.JobStatus.Refunded
            )
        );
        escrow.settleMany(many);
    }

    function test_RevertWhen_SettleManyNotSettler() public {
        IRenderEscrow.Settlement[] memory many = new IRenderEscrow.Settlement[](0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRenderEscrow.Escrow_NotSettler.selector, alice));
        escrow.settleMany(many);
    }

    function test_RefundAfterPartialSettlementAndCancel() public {
        uint256 jobId = _openVerified(alice, 10, 5, PRICE);
        _release(jobId, _sets(node1, 0, 0x7));
        _releaseVerifications(jobId, _sets(node2, 0, 0x1));
        vm.prank(alice);
        escrow.cancel(jobId, _t(jobId));
        IRenderEscrow.JobState memory job = _job(jobId);
        assertEq(job.cancelledAt, block.timestamp);
        assertEq(job.framesPaid, 3, "cancel keeps the counts");
        assertEq(job.remaining, 11 * uint256(PRICE));
        vm.warp(block.timestamp + CANCEL_GRACE);
        uint256 before = alice.balance;
        escrow.refund(jobId, _t(jobId));
        assertEq(alice.balance - before, 11 * uint256(PRICE));
        assertEq(
            address(escrow).balance,
            escrow.fees(address(0)) + escrow.credits(owner1, address(0)) + escrow.credits(owner2, address(0))
        );
    }
}
