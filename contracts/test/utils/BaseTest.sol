// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {NodeRegistry} from "../../src/NodeRegistry.sol";
import {RenderEscrow} from "../../src/RenderEscrow.sol";
import {INodeRegistry} from "../../src/interfaces/INodeRegistry.sol";
import {IRenderEscrow} from "../../src/interfaces/IRenderEscrow.sol";
import {ISettlerTimelock} from "../../src/interfaces/ISettlerTimelock.sol";
import {MockERC20} from "../mocks/MockERC20.sol";
import {Test} from "forge-std/Test.sol";

/// @notice Shared fixture: a registry and an escrow wired together, named actors, node keys and helpers.
abstract contract BaseTest is Test {
    uint16 internal constant FEE_BPS = 250;
    uint64 internal constant UNSTAKE_DELAY = 7 days;
    uint64 internal constant CANCEL_GRACE = 1 hours;
    uint256 internal constant START = 1_700_000_000;
    bytes32 internal constant SPEC = keccak256("spec");

    /// @dev Terms of the jobs opened through the helpers below (or `_remember`), by job id.
    mapping(uint256 jobId => IRenderEscrow.JobTerms) internal terms;

    NodeRegistry internal registry;
    RenderEscrow internal escrow;
    MockERC20 internal token;

    address internal admin = makeAddr("admin");
    address internal settler = makeAddr("settler");
    address internal treasury = makeAddr("treasury");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal owner1 = makeAddr("owner1");
    address internal owner2 = makeAddr("owner2");
    address internal stranger = makeAddr("stranger");

    address internal node1;
    uint256 internal node1Pk;
    address internal node2;
    uint256 internal node2Pk;
    address internal node3;
    uint256 internal node3Pk;

    function setUp() public virtual {
        vm.warp(START);
        (node1, node1Pk) = makeAddrAndKey("node1");
        (node2, node2Pk) = makeAddrAndKey("node2");
        (node3, node3Pk) = makeAddrAndKey("node3");
        registry = new NodeRegistry(admin, settler, UNSTAKE_DELAY);
        escrow = new RenderEscrow(
            admin, INodeRegistry(address(registry)), settler, treasury, FEE_BPS, CANCEL_GRACE
        );
        registry.linkEscrow(address(escrow));
        token = new MockERC20("Mock", "MOCK");
        vm.label(address(registry), "NodeRegistry");
        vm.label(address(escrow), "RenderEscrow");
        vm.label(address(token), "MockERC20");
    }

    // ------------------------------------------------------------------ registry helpers

    function _signBind(INodeRegistry reg, uint256 nodePk, address owner, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        address node = vm.addr(nodePk);
        bytes32 digest = reg.bindDigest(node, owner, reg.nonces(node), deadline);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(nodePk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _register(address owner, uint256 nodePk, uint256 stake) internal returns (address node) {
        node = vm.addr(nodePk);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = _signBind(registry, nodePk, owner, deadline);
        vm.deal(owner, owner.balance + stake);
        vm.prank(owner);
        registry.register{value: stake}(node, deadline, sig);
        // Jobs opened from now on open after the binding: the escrow pays only nodes bound before a job.
        vm.warp(block.timestamp + 1);
    }

    /// @dev Rotates the settler of `c` to `to` through its time lock: propose, wait, accept.
    function _rotateSettler(ISettlerTimelock c, address to) internal {
        vm.prank(admin);
        c.proposeSettler(to);
        vm.warp(block.timestamp + c.SETTLER_DELAY());
        c.acceptSettler();
        assertEq(c.settler(), to);
    }

    // ------------------------------------------------------------------ escrow helpers

    function _openNative(address artist, uint32 frames, uint128 price) internal returns (uint256 jobId) {
        return _openVerified(artist, frames, 0, price);
    }

    function _openToken(address artist, uint32 frames, uint128 price) internal returns (uint256 jobId) {
        uint256 amount = uint256(frames) * price;
        token.mint(artist, amount);
        vm.startPrank(artist);
        token.approve(address(escrow), amount);
        uint64 deadline = uint64(block.timestamp + 1 days);
        jobId = escrow.openJob(SPEC, address(token), price, frames, 0, deadline);
        vm.stopPrank();
        _remember(jobId, artist, address(token), price, frames, 0, deadline);
    }

    /// @dev Opens a native job of `frames` frames with a budget of `verifications` verification renders.
    function _openVerified(address artist, uint32 frames, uint32 verifications, uint128 price)
        internal
        returns (uint256 jobId)
    {
        uint256 amount = (uint256(frames) + verifications) * price;
        vm.deal(artist, artist.balance + amount);
        uint64 deadline = uint64(block.timestamp + 1 days);
        vm.prank(artist);
        jobId = escrow.openJob{value: amount}(SPEC, address(0), price, frames, verifications, deadline);
        _remember(jobId, artist, address(0), price, frames, verifications, deadline);
    }

    /// @dev Records the terms of job `jobId`, opened (spec `SPEC`) in this block with the escrow's current fee.
    function _remember(
        uint256 jobId,
        address artist,
        address token_,
        uint128 price,
        uint32 frames,
        uint32 verifications,
        uint64 deadline
    ) internal {
        terms[jobId] = IRenderEscrow.JobTerms({
            specHash: SPEC,
            artist: artist,
            token: token_,
            pricePerFrame: price,
            frameCount: frames,
            verifications: verifications,
            deadline: deadline,
            openedAt: uint64(block.timestamp),
            feeBps: escrow.feeBps()
        });
    }

    /// @dev The terms of job `jobId` (see `_remember`).
    function _t(uint256 jobId) internal view returns (IRenderEscrow.JobTerms memory) {
        return terms[jobId];
    }

    /// @dev The state of job `jobId`.
    function _job(uint256 jobId) internal view returns (IRenderEscrow.JobState memory) {
        return escrow.getJob(jobId, terms[jobId]);
    }

    function _releaseVerifications(uint256 jobId, IRenderEscrow.FrameSet[] memory sets) internal {
        vm.prank(settler);
        escrow.settle(jobId, _t(jobId), _none(), sets, false);
    }

    /// @dev No frame sets (the unused list of a `release`).
    function _none() internal pure returns (IRenderEscrow.FrameSet[] memory) {
        return new IRenderEscrow.FrameSet[](0);
    }

    /// @dev The settler closes job `jobId` (spec `SPEC`), refunding its rest.
    function _close(uint256 jobId) internal {
        vm.prank(settler);
        escrow.settle(jobId, _t(jobId), _none(), _none(), true);
    }

    function _sets(address node, uint32 wordIndex, uint256 bits)
        internal
        pure
        returns (IRenderEscrow.FrameSet[] memory sets)
    {
        sets = new IRenderEscrow.FrameSet[](1);
        sets[0] = IRenderEscrow.FrameSet({node: node, wordIndex: wordIndex, bits: bits});
    }

    function _release(uint256 jobId, IRenderEscrow.FrameSet[] memory sets) internal {
        vm.prank(settler);
        escrow.settle(jobId, _t(jobId), sets, _none(), false);
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        while (x != 0) {
            x &= x - 1;
            ++c;
        }
    }

    /// @dev No frame sets.
    function _noSets() internal pure returns (IRenderEscrow.FrameSet[] memory) {
        return new IRenderEscrow.FrameSet[](0);
    }

    function _fee(uint256 amount, uint16 bps) internal pure returns (uint256) {
        return amount * bps / 10_000;
    }
}
