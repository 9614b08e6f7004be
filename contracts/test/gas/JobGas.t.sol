// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IRenderEscrow} from "../../src/interfaces/IRenderEscrow.sol";
import {BaseTest} from "../utils/BaseTest.sol";
import {console} from "forge-std/console.sol";

/// @notice Gas of whole jobs as the indexer settles them, from open to refund: `openJob`, then one `settle`
///         that pays every frame (spread over the nodes), a verification render of every frame by another
///         node, and closes the job. Owners and the fee slot are new, as on a fresh devnet (the first job
///         pays for their storage slots), then a second job shows the steady state.
/// @dev Transaction gas = 21,000 + calldata (EIP-2028/7623) + the gas used inside the escrow, measured with
///      `vm.lastCallGas` after `vm.cool` (every slot and account cold, as at the start of a transaction).
///      The devnet benchmark (`scripts/bench-settlement-gas.sh`) measures the same from real receipts.
contract JobGasTest is BaseTest {
    uint128 internal constant PRICE = 1e15;

    address[] internal nodes;

    function _nodes(uint256 n) internal {
        for (uint256 i; i < n; ++i) {
            address owner = makeAddr(string.concat("job-gas-owner-", vm.toString(i)));
            (, uint256 pk) = makeAddrAndKey(string.concat("job-gas-node-", vm.toString(i)));
            nodes.push(_register(owner, pk, 0));
        }
    }

    function test_Gas_12Frames3Nodes() public {
        _nodes(3);
        (uint256 first, uint256 txs) = _runJob(12, 12);
        (uint256 second,) = _runJob(12, 12);
        _report("job_12_frames_3_nodes", 12, first, second, txs);
    }

    /// @dev As a later devnet job: nodes with some reputation are sampled on a few frames, so most of the
    ///      verification budget goes back to the artist in the closing call.
    function test_Gas_12Frames3Nodes_ThreeSampled() public {
        _nodes(3);
        (uint256 first, uint256 txs) = _runJob(12, 3);
        (uint256 second,) = _runJob(12, 3);
        _report("job_12_frames_3_nodes_3_sampled", 12, first, second, txs);
    }

    function test_Gas_240Frames4Nodes() public {
        _nodes(4);
        (uint256 first, uint256 txs) = _runJob(240, 240);
        (uint256 second,) = _runJob(240, 240);
        _report("job_240_frames_4_nodes", 240, first, second, txs);
    }

    /// @dev Opens and settles one job of `frames` frames, `sampled` of them with a verification render (the
    ///      budget is one per frame); returns its gas and transaction count.
    function _runJob(uint32 frames, uint32 sampled) internal returns (uint256 total, uint256 txs) {
        uint256 amount = 2 * uint256(frames) * PRICE;
        // The artist keeps some coin, as a real one does: a refund to an empty account would cost 25,000 more.
        vm.deal(alice, amount + 1 ether);
        uint64 deadline = uint64(block.timestamp + 1 days);
        bytes memory open =
            abi.encodeCall(IRenderEscrow.openJob, (SPEC, address(0), PRICE, frames, frames, deadline));
        vm.cool(address(escrow));
        vm.prank(alice);
        (bool ok, bytes memory ret) = address(escrow).call{value: amount}(open);
        require(ok, "openJob reverted");
        total += _txGas(open, vm.lastCallGas().gasTotalUsed);
        uint256 jobId = abi.decode(ret, (uint256));
        _remember(jobId, alice, address(0), PRICE, frames, frames, deadline);
        vm.warp(block.timestamp + 60);

        uint256 n = nodes.length;
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](n);
        IRenderEscrow.FrameSet[] memory checks = new IRenderEscrow.FrameSet[](n);
        for (uint256 f; f < frames; ++f) {
            uint256 k = f % n;
            sets[k].bits |= uint256(1) << f;
            if (f < sampled) checks[(k + 1) % n].bits |= uint256(1) << f;
        }
        uint256 c;
        for (uint256 k; k < n; ++k) {
            sets[k].node = nodes[k];
            if (checks[k].bits != 0) checks[c++] = IRenderEscrow.FrameSet(nodes[k], 0, checks[k].bits);
        }
        // Only the nodes that rendered a verification render are named.
        assembly ("memory-safe") {
            mstore(checks, c)
        }
        bytes memory settle = abi.encodeCall(IRenderEscrow.settle, (jobId, _t(jobId), sets, checks, true));
        vm.cool(address(escrow));
        vm.cool(address(registry));
        vm.prank(settler);
        (ok,) = address(escrow).call(settle);
        require(ok, "settle reverted");
        total += _txGas(settle, vm.lastCallGas().gasTotalUsed);
        txs = 2;
        assertEq(uint8(escrow.jobStatus(jobId)), uint8(IRenderEscrow.JobStatus.Refunded));
    }

    function _report(string memory name, uint256 frames, uint256 first, uint256 second, uint256 txs)
        internal
    {
        console.log(
            string.concat(
                name,
                ": txs=",
                vm.toString(txs),
                " first_job_gas=",
                vm.toString(first),
                " per_frame=",
                vm.toString(first / frames),
                " second_job_gas=",
                vm.toString(second),
                " per_frame=",
                vm.toString(second / frames)
            )
        );
        vm.snapshotValue("JobGas", string.concat(name, "_first_per_frame"), first / frames);
        vm.snapshotValue("JobGas", string.concat(name, "_steady_per_frame"), second / frames);
    }

    /// @dev Whole-transaction gas under Prague rules (EIP-2028 calldata pricing with the EIP-7623 floor).
    function _txGas(bytes memory data, uint256 exec) internal pure returns (uint256) {
        uint256 zeros;
        for (uint256 i; i < data.length; ++i) {
            if (data[i] == 0) ++zeros;
        }
        uint256 nonzeros = data.length - zeros;
        uint256 standard = 21_000 + 4 * zeros + 16 * nonzeros + exec;
        uint256 floor = 21_000 + 10 * (zeros + 4 * nonzeros);
        return standard > floor ? standard : floor;
    }
}
