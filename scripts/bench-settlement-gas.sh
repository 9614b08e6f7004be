#!/usr/bin/env bash
# Gas of real devnet jobs, from open to refund, measured from receipts.
#
# Starts `lumen devnet` with NODES nodes at its defaults, renders a job of
# FRAMES frames with real Blender, then reads every escrow transaction of
# the job (the artist's openJob and the settler's settle/settleMany calls:
# frames, verification renders, close and refund) and prints their gas, the
# total and the gas per frame, against TARGET gas per frame (default 15000,
# or 3000 from 240 frames on: the targets of issue 8). Then it renders the
# same job again on the same devnet: the first job pays once for storage
# that later jobs reuse (a credit slot per new node owner, the fee slot), the
# second shows what every later job costs. Slashes are not part of a job and
# not counted.
#
#   scripts/bench-settlement-gas.sh                     # 12 frames, 3 nodes
#   FRAMES=240 NODES=4 scripts/bench-settlement-gas.sh
#
# The last two lines are machine-readable, one per job:
#   job=first frames=N nodes=M txs=T total_gas=G gas_per_frame=P target=X result=PASS|FAIL
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
frames="${FRAMES:-12}" nodes="${NODES:-3}"
width="${WIDTH:-32}" height="${HEIGHT:-18}" samples="${SAMPLES:-4}"
if [[ -z "${TARGET:-}" ]]; then
  if ((frames >= 240)); then target=3000; else target=15000; fi
else
  target="$TARGET"
fi

# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
bench_init
bench_scene "$frames" "$width" "$height" "$samples"
bench_devnet "$nodes"

run_job() {
  local job
  job="$("$lumen" job submit "$work/scene.blend" --devnet-dir "$work/devnet" | tail -n 1)"
  "$lumen" job wait "$job" --devnet-dir "$work/devnet" --timeout 3600 >/dev/null 2>>"$work/wait.log"
  # The refund reaches the chain in the settlement round that follows the last verdict.
  sleep 3
  echo "$job"
}
first="$(run_job)"
second="$(run_job)"

python3 - "$work/devnet/devnet.json" "$frames" "$nodes" "$target" "$first" "$second" <<'PY' | tee "$work/report.txt"
import json, sys, urllib.request
devnet_path, frames, nodes, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
jobs = [("first", int(sys.argv[5])), ("second", int(sys.argv[6]))]
devnet = json.load(open(devnet_path))
rpc = devnet["rpc_url"]
escrow = devnet["escrow"]

def call(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(rpc, body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["result"]

def selector_name(tx):
    sel = tx["input"][:10]
    names = {}
    for sig in ["openJob(bytes32,address,uint128,uint32,uint32,uint64)",
                "settle(uint256,(bytes32,address,address,uint128,uint32,uint32,uint64,uint64,uint16),"
                "(address,uint32,uint256)[],(address,uint32,uint256)[],bool)",
                "settleMany((uint256,(bytes32,address,address,uint128,uint32,uint32,uint64,uint64,uint16),"
                "(address,uint32,uint256)[],(address,uint32,uint256)[],bool)[])"]:
        h = call("web3_sha3", ["0x" + sig.encode().hex()])
        names[h[:10]] = sig.split("(")[0]
    return names.get(sel, sel)

lines = []
for label, job in jobs:
    # Every escrow event of this job carries the job id as its first indexed topic.
    logs = call("eth_getLogs", [{"address": escrow, "fromBlock": "0x0", "toBlock": "latest",
                                 "topics": [None, "0x%064x" % job]}])
    txs = sorted({l["transactionHash"] for l in logs}, key=lambda h: int(
        next(l["blockNumber"] for l in logs if l["transactionHash"] == h), 16))
    total = 0
    print(f"settlement gas of job {job} ({label} on this devnet): {frames} frames on {nodes} nodes, "
          f"every transaction from open to refund")
    print(f"{'block':>6} {'gas':>9}  what")
    for h in txs:
        receipt = call("eth_getTransactionReceipt", [h])
        tx = call("eth_getTransactionByHash", [h])
        gas = int(receipt["gasUsed"], 16)
        total += gas
        mine = [l for l in receipt["logs"] if l["address"].lower() == escrow.lower()]
        data = bytes.fromhex(tx["input"][2:])
        zeros = data.count(0)
        # FramesReleased(uint256 indexed jobId, Release[] frames, Release[] verifications): the two lengths
        # are the words at the offsets its data starts with.
        sets = ""
        for l in mine:
            d = bytes.fromhex(l["data"][2:])
            if len(l["topics"]) == 2 and len(d) >= 128:
                word = lambda i: int.from_bytes(d[32 * i:32 * i + 32], "big")
                sets = f", {word(word(0) // 32)} frame sets and {word(word(1) // 32)} verification sets"
        print(f"{int(receipt['blockNumber'], 16):>6} {gas:>9}  {selector_name(tx)}: {len(mine)} escrow events"
              f"{sets}; calldata {len(data)} bytes ({len(data) - zeros} nonzero)")
    per_frame = total // frames
    result = "PASS" if per_frame <= target else "FAIL"
    print(f"total {total} gas in {len(txs)} transactions: {per_frame} gas per frame "
          f"(target {target}): {result}")
    print()
    lines.append(f"job={label} frames={frames} nodes={nodes} txs={len(txs)} total_gas={total} "
                 f"gas_per_frame={per_frame} target={target} result={result}")
print("\n".join(lines))
PY
