// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IRenderEscrow} from "../../src/interfaces/IRenderEscrow.sol";
import {BaseTest} from "../utils/BaseTest.sol";
import {NaivePayout} from "./NaivePayout.sol";
import {console} from "forge-std/console.sol";

/// @notice Gas benchmark: 256 frames of one job paid to 16 different nodes (16 owners, fresh credits),
///         as 16 FrameSets of 16 frames each in bitmap word 0, against a naive one-transfer-per-frame payout.
/// @dev Total gas of a transaction = max(21,000 + 4·zero + 16·nonzero calldata bytes + execution,
///      21,000 + 10·(zero + 4·nonzero)) (Prague, EIP-7623 floor), with the exact ABI-encoded call data.
///      Execution gas is measured with gasleft() around a low-level call from this test contract, so it
///      slightly over-counts: it includes the CALL opcode, the cold access to the target account (2,600,
///      which a real transaction pays inside its 21,000) and memory for the call data, ≈3k in all
///      (≈12 gas per frame). Deterministic: no fuzzing, fixed keys and values.
contract ReleaseGasTest is BaseTest {
    uint256 internal constant NODES = 16;
    uint256 internal constant FRAMES = 256;
    uint128 internal constant PRICE = 1e15;
    uint256 internal constant MAX_GAS_PER_FRAME = 3000;

    NaivePayout internal naive;
    uint256 internal jobId;
    address[NODES] internal nodes;
    address[NODES] internal owners;

    function setUp() public override {
        super.setUp();
        for (uint256 i; i < NODES; ++i) {
            owners[i] = makeAddr(string.concat("bench-owner-", vm.toString(i)));
            (, uint256 pk) = makeAddrAndKey(string.concat("bench-node-", vm.toString(i)));
            nodes[i] = _register(owners[i], pk, 0);
        }
        jobId = _openNative(alice, uint32(FRAMES), PRICE);
        naive = new NaivePayout();
        vm.deal(address(naive), FRAMES * PRICE);
    }

    function test_GasPerFrame() public {
        IRenderEscrow.FrameSet[] memory sets = new IRenderEscrow.FrameSet[](NODES);
        for (uint256 i; i < NODES; ++i) {
            sets[i] =
                IRenderEscrow.FrameSet({node: nodes[i], wordIndex: 0, bits: uint256(0xffff) << (16 * i)});
        }
        bytes memory data = abi.encodeCall(IRenderEscrow.settle, (jobId, _t(jobId), sets, _none(), false));
        vm.prank(settler);
        uint256 exec = _measure(address(escrow), data);
        uint256 total = _txGas(data, exec);

        address[] memory recipients = new address[](FRAMES);
        uint256[] memory amounts = new uint256[](FRAMES);
        for (uint256 f; f < FRAMES; ++f) {
            recipients[f] = owners[f / 16];
            amounts[f] = PRICE - _fee(PRICE, FEE_BPS);
        }
        bytes memory naiveData = abi.encodeCall(NaivePayout.payout, (recipients, amounts));
        uint256 naiveExec = _measure(address(naive), naiveData);
        uint256 naiveTotal = _txGas(naiveData, naiveExec);

        // Sanity: the release really paid everything.
        assertEq(escrow.paidFrames(jobId, 0), type(uint256).max);
        assertEq(_job(jobId).remaining, 0);
        assertEq(owners[0].balance, 16 * amounts[0]);

        uint256 perFrame = total / FRAMES;
        uint256 naivePerFrame = naiveTotal / FRAMES;
        console.log(
            string.concat(
                "gas_per_frame=",
                vm.toString(perFrame),
                " baseline_gas_per_frame=",
                vm.toString(naivePerFrame)
            )
        );
        console.log(
            string.concat("release_total_gas=", vm.toString(total), " release_exec_gas=", vm.toString(exec))
        );
        console.log(
            string.concat(
                "baseline_total_gas=", vm.toString(naiveTotal), " baseline_exec_gas=", vm.toString(naiveExec)
            )
        );
        vm.snapshotValue("ReleaseGas", "release_256_frames_16_nodes_total", total);
        vm.snapshotValue("ReleaseGas", "release_gas_per_frame", perFrame);
        vm.snapshotValue("ReleaseGas", "naive_gas_per_frame", naivePerFrame);
        assertLe(perFrame, MAX_GAS_PER_FRAME, "release gas per frame over budget");
    }

    function _measure(address target, bytes memory data) internal returns (uint256 used) {
        uint256 before = gasleft();
        (bool ok,) = target.call(data);
        used = before - gasleft();
        require(ok, "benchmark call reverted");
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
