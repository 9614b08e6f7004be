// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {NodeRegistry} from "../src/NodeRegistry.sol";
import {RenderEscrow} from "../src/RenderEscrow.sol";
import {INodeRegistry} from "../src/interfaces/INodeRegistry.sol";
import {Script} from "forge-std/Script.sol";
import {console} from "forge-std/console.sol";

/// @notice Deploys NodeRegistry, then RenderEscrow, and writes `deployments/<chainid>.json`.
/// @dev Environment:
///      DEPLOYER_PRIVATE_KEY (required)  key that sends the transactions; also the admin of both contracts
///      ADMIN          (default: deployer)  Ownable2Step owner of both contracts
///      SETTLER        (default: deployer)  settlement role (releases, closes, slashes)
///      TREASURY       (default: deployer)  receiver of protocol fees
///      FEE_BPS        (default: 250 = 2.5 %, max 1000)
///      UNSTAKE_DELAY  (default: 604800 s = 7 days)
///      CANCEL_GRACE   (default: 3600 s = 1 hour)
///      A variable that is set but malformed aborts the script (no silent fallback to the default).
///      The JSON is written during the script's simulation step, before the broadcast.
///      Usage: forge script contracts/script/Deploy.s.sol --rpc-url http://127.0.0.1:8545 --broadcast
contract Deploy is Script {
    struct Deployment {
        NodeRegistry registry;
        RenderEscrow escrow;
        uint256 deployBlock;
        address settler;
        address treasury;
    }

    function run() external returns (Deployment memory d) {
        uint256 key = vm.envUint("DEPLOYER_PRIVATE_KEY");
        address deployer = vm.addr(key);
        address admin = _envAddress("ADMIN", deployer);
        d.settler = _envAddress("SETTLER", deployer);
        d.treasury = _envAddress("TREASURY", deployer);
        uint256 feeBpsRaw = _envUint("FEE_BPS", 250);
        uint256 unstakeDelayRaw = _envUint("UNSTAKE_DELAY", 7 days);
        uint256 cancelGraceRaw = _envUint("CANCEL_GRACE", 1 hours);
        require(feeBpsRaw <= type(uint16).max, "FEE_BPS out of range");
        require(unstakeDelayRaw <= type(uint64).max, "UNSTAKE_DELAY out of range");
        require(cancelGraceRaw <= type(uint64).max, "CANCEL_GRACE out of range");
        // casting is safe because of the range checks above
        // forge-lint: disable-next-line(unsafe-typecast)
        uint16 feeBps = uint16(feeBpsRaw);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 unstakeDelay = uint64(unstakeDelayRaw);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 cancelGrace = uint64(cancelGraceRaw);

        // The script simulates at the chain head; the first deployment transaction lands in a later block,
        // so head + 1 is a safe first block for indexers (exact on Anvil with automine).
        d.deployBlock = block.number + 1;
        vm.startBroadcast(key);
        d.registry = new NodeRegistry(admin, d.settler, unstakeDelay);
        d.escrow = new RenderEscrow(
            admin, INodeRegistry(address(d.registry)), d.settler, d.treasury, feeBps, cancelGrace
        );
        // Slashes pay the artist of a job in this escrow, or its treasury.
        d.registry.linkEscrow(address(d.escrow));
        vm.stopBroadcast();

        string memory obj = "deployment";
        vm.serializeUint(obj, "chain_id", block.chainid);
        vm.serializeAddress(obj, "escrow", address(d.escrow));
        vm.serializeAddress(obj, "registry", address(d.registry));
        vm.serializeUint(obj, "deploy_block", d.deployBlock);
        vm.serializeAddress(obj, "settler", d.settler);
        vm.serializeAddress(obj, "admin", admin);
        vm.serializeUint(obj, "fee_bps", feeBps);
        vm.serializeUint(obj, "unstake_delay", unstakeDelay);
        vm.serializeUint(obj, "cancel_grace", cancelGrace);
        string memory json = vm.serializeAddress(obj, "treasury", d.treasury);
        string memory path =
            string.concat(vm.projectRoot(), "/deployments/", vm.toString(block.chainid), ".json");
        vm.writeJson(json, path);
        console.log("NodeRegistry", address(d.registry));
        console.log("RenderEscrow", address(d.escrow));
        console.log("deployment written to", path);
    }

    /// @dev Like vm.envOr, but a set yet malformed variable is an error instead of a silent default.
    function _envAddress(string memory name, address fallback_) internal view returns (address) {
        return vm.envExists(name) ? vm.envAddress(name) : fallback_;
    }

    function _envUint(string memory name, uint256 fallback_) internal view returns (uint256) {
        return vm.envExists(name) ? vm.envUint(name) : fallback_;
    }
}
