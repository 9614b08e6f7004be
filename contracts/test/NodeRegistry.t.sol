// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {NodeRegistry} from "../src/NodeRegistry.sol";
import {INodeRegistry} from "../src/interfaces/INodeRegistry.sol";
import {ISettlerTimelock} from "../src/interfaces/ISettlerTimelock.sol";
import {ReentrantReceiver} from "./mocks/ReentrantReceiver.sol";
import {BaseTest} from "./utils/BaseTest.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract NodeRegistryTest is BaseTest {
    bytes32 internal constant EVIDENCE = keccak256("evidence");

    function _info(address node) internal view returns (INodeRegistry.NodeInfo memory) {
        return registry.nodeInfo(node);
    }

    // ------------------------------------------------------------------ constructor and EIP-712

    function test_Constructor_SetsState() public view {
        assertEq(registry.owner(), admin);
        assertEq(registry.settler(), settler);
        assertEq(registry.unstakeDelay(), UNSTAKE_DELAY);
        assertEq(registry.MAX_UNSTAKE_DELAY(), 365 days);
    }

    function test_RevertWhen_ConstructorZeroSettler() public {
        vm.expectRevert(ISettlerTimelock.Settler_ZeroAddress.selector);
        new NodeRegistry(admin, address(0), UNSTAKE_DELAY);
    }

    function test_RevertWhen_ConstructorDelayTooLong() public {
        vm.expectRevert(
            abi.encodeWithSelector(INodeRegistry.Registry_UnstakeDelayTooLong.selector, uint64(365 days + 1))
        );
        new NodeRegistry(admin, settler, 365 days + 1);
    }

    function test_BindDigest_MatchesEip712() public view {
        bytes32 typehash = keccak256("Bind(address node,address owner,uint256 nonce,uint256 deadline)");
        assertEq(registry.bindTypehash(), typehash);
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("Lumen NodeRegistry"),
                keccak256("1"),
                block.chainid,
                address(registry)
            )
        );
        assertEq(registry.domainSeparator(), domain);
        bytes32 structHash = keccak256(abi.encode(typehash, node1, owner1, uint256(3), uint256(99)));
        assertEq(
            registry.bindDigest(node1, owner1, 3, 99),
            keccak256(abi.encodePacked(hex"1901", domain, structHash))
        );
    }

    // ------------------------------------------------------------------ register

    function test_Register() public {
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = _signBind(registry, node1Pk, owner1, deadline);
        vm.deal(owner1, 2 ether);
        vm.expectEmit(address(registry));
        emit INodeRegistry.NodeRegistered(node1, owner1, 2 ether);
        vm.prank(owner1);
        registry.register{value: 2 ether}(node1, deadline, sig);
        assertEq(registry.ownerOf(node1), owner1);
        assertTrue(registry.isActive(node1));
        assertEq(registry.nonces(node1), 1);
        INodeRegistry.NodeInfo memory info = _info(node1);
        assertEq(info.owner, owner1);
        assertTrue(info.active);
        assertEq(info.stake, 2 ether);
        assertEq(info.unbonding, 0);
        assertEq(info.unbondingAt, 0);
        assertEq(address(registry).balance, 2 ether);
    }

    function test_Register_WithoutStake() public {
        _register(owner1, node1Pk, 0);
        assertTrue(registry.isActive(node1));
        assertEq(_info(node1).stake, 0);
    }

    function test_Register_AtDeadline() public {
        uint256 deadline = block.timestamp;
        bytes memory sig = _signBind(registry, node1Pk, owner1, deadline);
        vm.prank(owner1);
        registry.register(node1, deadline, sig);
        assertTrue(registry.isActive(node1));
    }

    function test_OwnerOf_NeverRegistered() public view {
        assertEq(registry.ownerOf(node1), address(0));
        assertFalse(registry.isActive(node1));
    }

    function test_RevertWhen_RegisterZeroNode() public {
        vm.prank(owner1);
        vm.expectRevert(INodeRegistry.Registry_ZeroAddress.selector);
        registry.register(address(0), block.timestamp, "");
    }

    function test_RevertWhen_RegisterActiveNode() public {
        _register(owner1, node1Pk, 0);
        uint256 deadline = block.timestamp + 1;
        bytes memory sig = _signBind(registry, node1Pk, owner2, deadline);
        vm.prank(owner2);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NodeActive.selector, node1));
        registry.register(node1, deadline, sig);
    }

    function test_RevertWhen_RegisterExpired() public {
        uint256 deadline = block.timestamp - 1;
        bytes memory sig = _signBind(registry, node1Pk, owner1, deadline);
        vm.prank(owner1);
        vm.expectRevert(
            abi.encodeWithSelector(
                INodeRegistry.Registry_SignatureExpired.selector, deadline, block.timestamp
            )
        );
        registry.register(node1, deadline, sig);
    }

    function test_RevertWhen_RegisterSignedByOtherKey() public {
        uint256 deadline = block.timestamp + 1;
        bytes32 digest = registry.bindDigest(node1, owner1, 0, deadline);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(node2Pk, digest);
        vm.prank(owner1);
        vm.expectRevert(
            abi.encodeWithSelector(INodeRegistry.Registry_InvalidNodeSignature.selector, node1, node2)
        );
        registry.register(node1, deadline, abi.encodePacked(r, s, v));
    }

    function test_RevertWhen_RegisterSignatureForOtherOwner() public {
        uint256 deadline = block.timestamp + 1;
        bytes memory sig = _signBind(registry, node1Pk, owner1, deadline);
        vm.prank(owner2); // front-runner replaying owner1's signature
        vm.expectPartialRevert(INodeRegistry.Registry_InvalidNodeSignature.selector);
        registry.register(node1, deadline, sig);
    }

    function test_RevertWhen_RegisterMalformedSignature() public {
        vm.prank(owner1);
        vm.expectRevert(
            abi.encodeWithSelector(INodeRegistry.Registry_InvalidNodeSignature.selector, node1, address(0))
        );
        registry.register(node1, block.timestamp, hex"1234");
    }

    function test_RevertWhen_RegisterReplaysSignature() public {
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = _signBind(registry, node1Pk, owner1, deadline);
        vm.startPrank(owner1);
        registry.register(node1, deadline, sig);
        registry.deregister(node1);
        vm.expectPartialRevert(INodeRegistry.Registry_InvalidNodeSignature.selector);
        registry.register(node1, deadline, sig);
        vm.stopPrank();
    }

    function test_RevertWhen_RegisterBoundToOtherWithStake() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(owner1);
        registry.deregister(node1);
        uint256 deadline = block.timestamp + 1;
        bytes memory sig = _signBind(registry, node1Pk, owner2, deadline);
        vm.prank(owner2);
        vm.expectRevert(
            abi.encodeWithSelector(INodeRegistry.Registry_NodeBoundToOther.selector, node1, owner1)
        );
        registry.register(node1, deadline, sig);
    }

    function test_Register_OtherOwnerAfterFullUnstake() public {
        _register(owner1, node1Pk, 1 ether);
        vm.startPrank(owner1);
        registry.deregister(node1);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        registry.withdrawStake(node1);
        vm.stopPrank();
        _register(owner2, node1Pk, 0.5 ether);
        assertEq(registry.ownerOf(node1), owner2);
        assertEq(registry.nonces(node1), 2);
        assertEq(_info(node1).stake, 0.5 ether);
    }

    function test_Register_SameOwnerKeepsUnbonding() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(owner1);
        registry.deregister(node1);
        _register(owner1, node1Pk, 0.25 ether);
        INodeRegistry.NodeInfo memory info = _info(node1);
        assertTrue(info.active);
        assertEq(info.stake, 0.25 ether);
        assertEq(info.unbonding, 1 ether);
    }

    // ------------------------------------------------------------------ stake

    function test_AddStake() public {
        _register(owner1, node1Pk, 1 ether);
        vm.deal(owner1, 1 ether);
        vm.expectEmit(address(registry));
        emit INodeRegistry.StakeAdded(node1, owner1, 1 ether, 2 ether);
        vm.prank(owner1);
        registry.addStake{value: 1 ether}(node1);
        assertEq(_info(node1).stake, 2 ether);
    }

    function test_RevertWhen_AddStakeNotOwner() public {
        _register(owner1, node1Pk, 1 ether);
        vm.deal(owner2, 1 ether);
        vm.prank(owner2);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NotNodeOwner.selector, node1, owner2));
        registry.addStake{value: 1 ether}(node1);
    }

    function test_RevertWhen_AddStakeZero() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(owner1);
        vm.expectRevert(INodeRegistry.Registry_ZeroAmount.selector);
        registry.addStake(node1);
    }

    function test_RevertWhen_AddStakeInactive() public {
        _register(owner1, node1Pk, 1 ether);
        vm.startPrank(owner1);
        registry.deregister(node1);
        vm.deal(owner1, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NodeInactive.selector, node1));
        registry.addStake{value: 1 ether}(node1);
        vm.stopPrank();
    }

    function test_RequestUnstakeAndWithdraw() public {
        _register(owner1, node1Pk, 3 ether);
        uint64 availableAt = uint64(block.timestamp) + UNSTAKE_DELAY;
        vm.expectEmit(address(registry));
        emit INodeRegistry.UnstakeRequested(node1, owner1, 1 ether, availableAt);
        vm.prank(owner1);
        registry.requestUnstake(node1, 1 ether);
        INodeRegistry.NodeInfo memory info = _info(node1);
        assertEq(info.stake, 2 ether);
        assertEq(info.unbonding, 1 ether);
        assertEq(info.unbondingAt, availableAt);

        vm.warp(availableAt - 1);
        vm.prank(owner1);
        vm.expectRevert(
            abi.encodeWithSelector(INodeRegistry.Registry_UnbondingLocked.selector, node1, availableAt)
        );
        registry.withdrawStake(node1);

        vm.warp(availableAt);
        vm.expectEmit(address(registry));
        emit INodeRegistry.StakeWithdrawn(node1, owner1, 1 ether);
        vm.prank(owner1);
        registry.withdrawStake(node1);
        assertEq(owner1.balance, 1 ether);
        assertEq(_info(node1).unbonding, 0);
        assertEq(address(registry).balance, 2 ether);
    }

    function test_RevertWhen_RequestUnstakeZero() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(owner1);
        vm.expectRevert(INodeRegistry.Registry_ZeroAmount.selector);
        registry.requestUnstake(node1, 0);
    }

    function test_RevertWhen_RequestUnstakeTooMuch() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(owner1);
        vm.expectRevert(
            abi.encodeWithSelector(INodeRegistry.Registry_InsufficientStake.selector, node1, 2 ether, 1 ether)
        );
        registry.requestUnstake(node1, 2 ether);
    }

    function test_RevertWhen_RequestUnstakeNotOwner() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NotNodeOwner.selector, node1, stranger));
        registry.requestUnstake(node1, 1);
    }

    function test_RevertWhen_WithdrawStakeNothing() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(owner1);
        vm.expectRevert(INodeRegistry.Registry_NothingToWithdraw.selector);
        registry.withdrawStake(node1);
    }

    function test_RevertWhen_WithdrawStakeNotOwner() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(owner2);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NotNodeOwner.selector, node1, owner2));
        registry.withdrawStake(node1);
    }

    function test_RevertWhen_WithdrawStakeToRejectingOwner() public {
        ReentrantReceiver owner = new ReentrantReceiver();
        _register(address(owner), node1Pk, 1 ether);
        owner.execute(address(registry), 0, abi.encodeCall(INodeRegistry.deregister, (node1)));
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        owner.setRejectPayments(true);
        vm.expectRevert(
            abi.encodeWithSelector(
                INodeRegistry.Registry_NativeTransferFailed.selector, address(owner), 1 ether
            )
        );
        owner.execute(address(registry), 0, abi.encodeCall(INodeRegistry.withdrawStake, (node1)));
    }

    function testFuzz_StakeUnstakeWithdraw(uint96 stake, uint96 extra, uint256 unstake) public {
        stake = uint96(bound(stake, 1, 1e30));
        extra = uint96(bound(extra, 1, 1e30));
        _register(owner1, node1Pk, stake);
        vm.deal(owner1, extra);
        vm.startPrank(owner1);
        registry.addStake{value: extra}(node1);
        uint256 total = uint256(stake) + extra;
        unstake = bound(unstake, 1, total);
        registry.requestUnstake(node1, unstake);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        registry.withdrawStake(node1);
        vm.stopPrank();
        assertEq(owner1.balance, unstake);
        assertEq(_info(node1).stake, total - unstake);
        assertEq(address(registry).balance, total - unstake);
    }

    // ------------------------------------------------------------------ deregister

    function test_Deregister() public {
        _register(owner1, node1Pk, 2 ether);
        vm.prank(owner1);
        registry.requestUnstake(node1, 0.5 ether);
        vm.warp(block.timestamp + 10);
        uint64 availableAt = uint64(block.timestamp) + UNSTAKE_DELAY;
        vm.expectEmit(address(registry));
        emit INodeRegistry.NodeDeregistered(node1, owner1, 2 ether, availableAt);
        vm.prank(owner1);
        registry.deregister(node1);
        INodeRegistry.NodeInfo memory info = _info(node1);
        assertFalse(info.active);
        assertEq(info.owner, owner1);
        assertEq(registry.ownerOf(node1), owner1);
        assertEq(info.stake, 0);
        assertEq(info.unbonding, 2 ether);
        assertEq(info.unbondingAt, availableAt);
    }

    function test_RevertWhen_DeregisterInactive() public {
        _register(owner1, node1Pk, 0);
        vm.startPrank(owner1);
        registry.deregister(node1);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NodeInactive.selector, node1));
        registry.deregister(node1);
        vm.stopPrank();
    }

    function test_RevertWhen_DeregisterNotOwner() public {
        _register(owner1, node1Pk, 0);
        vm.prank(owner2);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NotNodeOwner.selector, node1, owner2));
        registry.deregister(node1);
    }

    // ------------------------------------------------------------------ slash

    /// @dev A job of alice's, whose artist a slash can be paid to.
    function _aliceJob() internal returns (uint256) {
        return _openNative(alice, 1, 1 ether);
    }

    function test_Slash_ActiveStakeFirst() public {
        _register(owner1, node1Pk, 3 ether);
        uint256 job = _aliceJob();
        vm.prank(owner1);
        registry.requestUnstake(node1, 1 ether);
        vm.expectEmit(address(registry));
        emit INodeRegistry.NodeSlashed(node1, owner1, alice, 1.5 ether, EVIDENCE);
        vm.prank(settler);
        registry.slash(node1, 1.5 ether, job, _t(job), EVIDENCE);
        INodeRegistry.NodeInfo memory info = _info(node1);
        assertEq(info.stake, 0.5 ether);
        assertEq(info.unbonding, 1 ether);
        assertEq(registry.claimable(alice), 1.5 ether);
    }

    function test_Slash_ReachesUnbondingStake() public {
        _register(owner1, node1Pk, 3 ether);
        vm.prank(owner1);
        registry.requestUnstake(node1, 1 ether);
        vm.prank(settler);
        registry.slash(node1, 2.5 ether, 0, _t(0), EVIDENCE);
        assertEq(registry.claimable(treasury), 2.5 ether, "job 0: the treasury");
        INodeRegistry.NodeInfo memory info = _info(node1);
        assertEq(info.stake, 0);
        assertEq(info.unbonding, 0.5 ether);
    }

    function test_Slash_AfterDeregister() public {
        _register(owner1, node1Pk, 2 ether);
        uint256 job = _aliceJob();
        vm.prank(owner1);
        registry.deregister(node1);
        vm.prank(settler);
        registry.slash(node1, 2 ether, job, _t(job), EVIDENCE);
        assertEq(_info(node1).unbonding, 0);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        vm.prank(owner1);
        vm.expectRevert(INodeRegistry.Registry_NothingToWithdraw.selector);
        registry.withdrawStake(node1);
    }

    function test_RevertWhen_SlashNotSettler() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NotSettler.selector, admin));
        registry.slash(node1, 1, 0, _t(0), EVIDENCE);
    }

    function test_RevertWhen_SlashForAnUnknownJob() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_UnknownJob.selector, 42));
        registry.slash(node1, 1, 42, _t(42), EVIDENCE);
    }

    function test_RevertWhen_SlashWithoutEvidence() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(settler);
        vm.expectRevert(INodeRegistry.Registry_NoEvidence.selector);
        registry.slash(node1, 1, 0, _t(0), bytes32(0));
    }

    function test_RevertWhen_SlashTwiceWithTheSameEvidence() public {
        _register(owner1, node1Pk, 1 ether);
        _register(owner2, node2Pk, 1 ether);
        vm.startPrank(settler);
        registry.slash(node1, 1, 0, _t(0), EVIDENCE);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_EvidenceUsed.selector, node1, EVIDENCE));
        registry.slash(node1, 1, 0, _t(0), EVIDENCE);
        // Two cheaters outvoted on one frame share its evidence bundle.
        registry.slash(node2, 1, 0, _t(0), EVIDENCE);
        vm.stopPrank();
        assertTrue(registry.slashedWith(node1, EVIDENCE));
    }

    function test_RevertWhen_TheEscrowIsLinkedAgainOrByAnother() public {
        vm.expectRevert(INodeRegistry.Registry_EscrowLink.selector);
        registry.linkEscrow(address(1));
        vm.prank(admin);
        vm.expectRevert(INodeRegistry.Registry_EscrowLink.selector);
        registry.linkEscrow(address(1));
        assertEq(registry.escrow(), address(escrow));
    }

    function test_RevertWhen_SlashZeroAmount() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(settler);
        vm.expectRevert(INodeRegistry.Registry_ZeroAmount.selector);
        registry.slash(node1, 0, 0, _t(0), EVIDENCE);
    }

    function test_RevertWhen_SlashMoreThanStake() public {
        _register(owner1, node1Pk, 1 ether);
        vm.prank(owner1);
        registry.requestUnstake(node1, 0.25 ether);
        vm.prank(settler);
        vm.expectRevert(
            abi.encodeWithSelector(
                INodeRegistry.Registry_InsufficientStake.selector, node1, 1 ether + 1, 1 ether
            )
        );
        registry.slash(node1, 1 ether + 1, 0, _t(0), EVIDENCE);
    }

    function testFuzz_Slash(uint96 stake, uint256 unstake, uint256 amount) public {
        stake = uint96(bound(stake, 1, 1e30));
        unstake = bound(unstake, 0, stake);
        amount = bound(amount, 1, stake);
        _register(owner1, node1Pk, stake);
        if (unstake != 0) {
            vm.prank(owner1);
            registry.requestUnstake(node1, unstake);
        }
        uint256 job = _aliceJob();
        vm.prank(settler);
        registry.slash(node1, amount, job, _t(job), EVIDENCE);
        INodeRegistry.NodeInfo memory info = _info(node1);
        assertEq(info.stake + info.unbonding, uint256(stake) - amount);
        uint256 active = uint256(stake) - unstake;
        assertEq(info.stake, amount <= active ? active - amount : 0);
        assertEq(registry.claimable(alice), amount);
        assertEq(address(registry).balance, info.stake + info.unbonding + registry.claimable(alice));
    }

    // ------------------------------------------------------------------ claimable

    function test_WithdrawClaimable() public {
        _register(owner1, node1Pk, 1 ether);
        uint256 job = _aliceJob();
        vm.prank(settler);
        registry.slash(node1, 0.4 ether, job, _t(job), EVIDENCE);
        vm.expectEmit(address(registry));
        emit INodeRegistry.ClaimableWithdrawn(alice, 0.4 ether);
        vm.prank(alice);
        registry.withdrawClaimable();
        assertEq(alice.balance, 0.4 ether);
        assertEq(registry.claimable(alice), 0);
    }

    function test_RevertWhen_WithdrawClaimableNothing() public {
        vm.prank(alice);
        vm.expectRevert(INodeRegistry.Registry_NothingToWithdraw.selector);
        registry.withdrawClaimable();
    }

    // ------------------------------------------------------------------ admin

    function test_RotatedSettler_TakesOverSlashing() public {
        address node = _register(owner1, node1Pk, 1 ether);
        _rotateSettler(registry, bob);
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(INodeRegistry.Registry_NotSettler.selector, settler));
        registry.slash(node, 1, 0, _t(0), keccak256("evidence"));
        vm.prank(bob);
        registry.slash(node, 1, 0, _t(0), keccak256("evidence"));
    }

    function test_SetUnstakeDelay() public {
        vm.expectEmit(address(registry));
        emit INodeRegistry.UnstakeDelayChanged(UNSTAKE_DELAY, 1 days);
        vm.prank(admin);
        registry.setUnstakeDelay(1 days);
        assertEq(registry.unstakeDelay(), 1 days);
    }

    function test_RevertWhen_SetUnstakeDelayTooLong() public {
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(INodeRegistry.Registry_UnstakeDelayTooLong.selector, uint64(366 days))
        );
        registry.setUnstakeDelay(366 days);
    }

    function test_RevertWhen_AdminFunctionsNotOwner() public {
        bytes memory err = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, settler);
        vm.startPrank(settler);
        vm.expectRevert(err);
        registry.proposeSettler(bob);
        vm.expectRevert(err);
        registry.cancelSettlerProposal();
        vm.expectRevert(err);
        registry.setUnstakeDelay(1);
        vm.stopPrank();
    }

    function test_RevertWhen_SendingNativeDirectly() public {
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        (bool ok,) = address(registry).call{value: 1 ether}("");
        assertFalse(ok);
        assertEq(address(registry).balance, 0);
    }
}
