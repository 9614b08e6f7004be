// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IRenderEscrow} from "../../src/interfaces/IRenderEscrow.sol";
import {BaseTest} from "../utils/BaseTest.sol";
import {EscrowHandler} from "./handlers/EscrowHandler.sol";
import {console} from "forge-std/console.sol";

/// @notice Conservation and safety laws of the escrow and the registry under random multi-actor use:
///         3 artists, 4 nodes bound to 2 owners, one settler, a native-coin and an ERC-20 payment token.
/// @dev The handler only sends actions it expects to succeed (expected failures are caught inside it), so
///      the invariants run with fail-on-revert: any unexpected revert is a failure.
contract EscrowInvariantTest is BaseTest {
    EscrowHandler internal handler;
    address[] internal artists;
    address[] internal owners;
    address[] internal recipients; // possible slash recipients

    function setUp() public override {
        super.setUp();
        artists.push(alice);
        artists.push(bob);
        artists.push(makeAddr("carol"));
        owners.push(owner1);
        owners.push(owner2);
        uint256[] memory keys = new uint256[](4);
        keys[0] = node1Pk;
        keys[1] = node2Pk;
        keys[2] = node3Pk;
        (, keys[3]) = makeAddrAndKey("node4");
        for (uint256 i; i < keys.length; ++i) {
            _register(owners[i % 2], keys[i], 1 ether);
        }
        for (uint256 i; i < artists.length; ++i) {
            recipients.push(artists[i]);
        }
        recipients.push(treasury);

        handler = new EscrowHandler(escrow, registry, token, settler, treasury, artists, owners, keys);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](18);
        selectors[0] = EscrowHandler.openJob.selector;
        selectors[1] = EscrowHandler.openJob.selector; // weighted: opening keeps the campaign busy
        selectors[2] = EscrowHandler.release.selector;
        selectors[3] = EscrowHandler.release.selector;
        selectors[4] = EscrowHandler.release.selector;
        selectors[5] = EscrowHandler.releaseAgain.selector;
        selectors[6] = EscrowHandler.cancel.selector;
        selectors[7] = EscrowHandler.close.selector;
        selectors[8] = EscrowHandler.refund.selector;
        selectors[9] = EscrowHandler.withdraw.selector;
        selectors[10] = EscrowHandler.withdrawFees.selector;
        selectors[11] = EscrowHandler.warp.selector;
        selectors[12] = EscrowHandler.slash.selector;
        selectors[13] = EscrowHandler.addStake.selector;
        selectors[14] = EscrowHandler.requestUnstake.selector;
        selectors[15] = EscrowHandler.withdrawStake.selector;
        selectors[16] = EscrowHandler.withdrawClaimable.selector;
        selectors[17] = EscrowHandler.unauthorizedSettlement.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        bytes4[] memory more = new bytes4[](10);
        more[0] = EscrowHandler.deregister.selector;
        more[1] = EscrowHandler.reRegister.selector;
        more[2] = EscrowHandler.releaseVerifications.selector;
        more[3] = EscrowHandler.releaseVerifications.selector;
        more[4] = EscrowHandler.verifyUnpaid.selector;
        more[5] = EscrowHandler.settleWrongSpec.selector;
        more[6] = EscrowHandler.releaseToLateNode.selector;
        more[7] = EscrowHandler.settleMany.selector;
        more[8] = EscrowHandler.close.selector;
        more[9] = EscrowHandler.openAccounts.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: more}));
    }

    /// (1) Escrow holdings equal Σ remaining + Σ unwithdrawn credits + fees, per token; registry holdings
    ///     equal Σ stake + Σ unbonding + Σ claimable. Σ remaining is computed from each job's terms and stored
    ///     counts, so this also checks that the hashed-terms storage keeps the lock.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_Solvency() public view {
        _assertEscrowSolvent(address(0));
        _assertEscrowSolvent(address(token));

        uint256 staked;
        for (uint256 i; i < handler.nodeCount(); ++i) {
            address node = handler.nodes(i);
            staked += registry.nodeInfo(node).stake + registry.nodeInfo(node).unbonding;
        }
        uint256 claims;
        for (uint256 i; i < recipients.length; ++i) {
            claims += registry.claimable(recipients[i]);
        }
        assertEq(address(registry).balance, staked + claims, "registry balance");
    }

    /// (2) No frame is paid twice: FramesReleased names each frame at most once, repeat releases revert,
    ///     and every live job's on-chain bitmap matches the frames the events paid (a closing settlement, which
    ///     ends the job, writes none). A verification render is paid
    ///     only for a paid frame, at most once per frame, and never beyond the job's budget. (3) Refunds never exceed
    ///     locked - released, and per job locked = released + refunded + remaining.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_FramesAndRefunds() public view {
        assertFalse(handler.ghostDoublePay(), "frame paid twice");
        assertFalse(handler.ghostBadRefund(), "refund or withdrawal paid a wrong amount");
        assertFalse(handler.ghostBadVerification(), "verification render paid unpaid, twice or over budget");
        assertFalse(handler.ghostPaidLateNode(), "a node bound after the job opened was paid for it");
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 jobId = handler.jobIds(i);
            IRenderEscrow.JobTerms memory t = handler.jobTerms(jobId);
            IRenderEscrow.JobState memory job = escrow.getJob(jobId, t);
            bool live = job.status != IRenderEscrow.JobStatus.Refunded;
            uint256 paidCount;
            uint256 verifiedCount;
            for (uint256 w; w * 256 < t.frameCount; ++w) {
                // A live job's bitmaps are the exact record of what it paid (that is what stops a second
                // payment); a settlement that closes a job adds nothing to them, so an ended job's bitmaps
                // hold only what was paid before its closing call.
                uint256 word = escrow.paidFrames(jobId, w);
                uint256 ghost = handler.ghostBitmap(jobId, w);
                if (live) assertEq(word, ghost, "bitmap differs from events");
                else assertEq(word & ~ghost, 0, "bitmap names a frame no event paid");
                uint256 verified = escrow.verifiedFrames(jobId, w);
                uint256 ghostChecked = handler.ghostVerified(jobId, w);
                if (live) assertEq(verified, ghostChecked, "verification bitmap differs from events");
                else assertEq(verified & ~ghostChecked, 0, "verification bitmap names an unpaid render");
                assertEq(verified & ~word, 0, "verification render paid for an unpaid frame");
                assertEq(ghostChecked & ~ghost, 0, "verification render paid for an unpaid frame (events)");
                paidCount += _popcount(ghost);
                verifiedCount += _popcount(ghostChecked);
                if (live) {
                    assertEq(_popcount(word), _popcount(ghost));
                }
            }
            assertEq(verifiedCount, handler.ghostVerificationsPaid(jobId), "paid verification count");
            assertEq(paidCount, handler.ghostFramesPaid(jobId), "paid frame count");
            assertLe(paidCount, t.frameCount, "more frames paid than exist");
            assertLe(verifiedCount, t.verifications, "more verification renders paid than the budget");
            if (live) {
                assertEq(job.framesPaid, paidCount, "stored frame count");
                assertEq(job.verificationsPaid, verifiedCount, "stored verification count");
                assertEq(
                    verifiedCount + job.verificationsLeft, handler.ghostBudget(jobId), "verification budget"
                );
            }
            uint256 locked = handler.ghostLocked(jobId);
            uint256 released = handler.ghostReleased(jobId);
            uint256 refunded = handler.ghostRefunded(jobId);
            assertEq(locked, (uint256(t.frameCount) + t.verifications) * t.pricePerFrame, "lock = terms");
            assertEq(
                released, (paidCount + verifiedCount) * t.pricePerFrame, "released != paid renders x price"
            );
            assertLe(refunded, locked - released, "artist got back more than locked - released");
            assertEq(locked, released + refunded + job.remaining, "job accounting");
            if (!live) assertEq(job.remaining, 0);
            else assertEq(refunded, 0);
        }
    }

    /// (4) Only the settlement role can release, close or slash.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_OnlySettlerSettles() public view {
        assertFalse(handler.ghostUnauthorizedSuccess(), "non-settler settled");
    }

    function afterInvariant() external view {
        console.log("jobs", handler.jobCount());
        console.log("release calls", handler.ghostReleaseCalls());
        console.log("verification release calls", handler.ghostVerificationCalls());
        console.log("refund calls", handler.ghostRefundCalls());
        console.log("closing settles", handler.ghostClosingSettles());
        console.log("settleMany calls", handler.ghostManyCalls());
        console.log("slash calls", handler.ghostSlashCalls());
        console.log("unauthorized attempts", handler.ghostUnauthorizedAttempts());
    }

    function _assertEscrowSolvent(address t) internal view {
        uint256 locked;
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 jobId = handler.jobIds(i);
            IRenderEscrow.JobTerms memory terms = handler.jobTerms(jobId);
            if (terms.token == t) locked += escrow.getJob(jobId, terms).remaining;
        }
        uint256 owed = escrow.fees(t);
        for (uint256 i; i < owners.length; ++i) {
            owed += escrow.credits(owners[i], t);
        }
        // Artists are credited when they refuse a refund transfer.
        for (uint256 i; i < artists.length; ++i) {
            owed += escrow.credits(artists[i], t);
        }
        uint256 held = t == address(0) ? address(escrow).balance : token.balanceOf(address(escrow));
        assertEq(held, locked + owed, t == address(0) ? "native solvency" : "token solvency");
    }
}
