#!/usr/bin/env bash
# Gas of a real devnet job, from open to refund, measured from receipts.
#
# Starts `lumen devnet` with NODES nodes at its defaults, renders one job of
# FRAMES frames with real Blender, then reads every escrow transaction of
# the job (the artist's openJob and the settler's settle calls: frames,
# verification renders, close and refund) and prints their gas, the total
# and the gas per frame. Slashes are not part of a job and not counted.
#
#   scripts/bench-settlement-gas.sh                     # 12 frames, 3 nodes
#   FRAMES=240 NODES=4 scripts/bench-settlement-gas.sh
#
# The last line is machine-readable:
#   frames=N nodes=M txs=T total_gas=G gas_per_frame=P
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
frames="${FRAMES:-12}" nodes="${NODES:-3}"
width="${WIDTH:-32}" height="${HEIGHT:-18}" samples="${SAMPLES:-4}"

# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
bench_init
bench_scene "$frames" "$width" "$height" "$samples"
bench_devnet "$nodes"

job="$("$lumen" job submit "$work/scene.blend" --devnet-dir "$work/devnet" | tail -n 1)"
"$lumen" job wait "$job" --devnet-dir "$work/devnet" --timeout 3600 >/dev/null 2>>"$work/wait.log"
# The refund reaches the chain in the settlement round that follows the last verdict.
sleep 3

python3 - "$work/devnet/devnet.json" "$job" "$frames" "$nodes" <<'PY'
import json, sys, urllib.request
devnet_path, job, frames, nodes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
devnet = json.load(open(devnet_path))
rpc = devnet["rpc_url"]
escrow = devnet["escrow"]

def call(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(rpc, body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["result"]

# Every escrow event of this job carries the job id as its first indexed topic.
logs = call("eth_getLogs", [{"address": escrow, "fromBlock": "0x0", "toBlock": "latest",
                             "topics": [None, "0x%064x" % job]}])
txs = sorted({l["transactionHash"] for l in logs}, key=lambda h: int(
    next(l["blockNumber"] for l in logs if l["transactionHash"] == h), 16))
total = 0
print(f"settlement gas of job {job}: {frames} frames on {nodes} nodes, every transaction from open to refund")
print(f"{'block':>6} {'gas':>9}  what")
for h in txs:
    receipt = call("eth_getTransactionReceipt", [h])
    gas = int(receipt["gasUsed"], 16)
    total += gas
    mine = [l for l in receipt["logs"] if l["address"].lower() == escrow.lower()]
    print(f"{int(receipt['blockNumber'], 16):>6} {gas:>9}  {len(mine)} escrow events, from {receipt['from']}")
print(f"total {total} gas in {len(txs)} transactions: {total / frames:.0f} gas per frame")
print(f"frames={frames} nodes={nodes} txs={len(txs)} total_gas={total} gas_per_frame={total // frames}")
PY
