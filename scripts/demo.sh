#!/usr/bin/env bash
# The demo: a local devnet (Anvil + contracts + gateway, matchmaker, verifier,
# indexer + 3 Blender nodes), one real render job of the bundled sample scene
# paid per frame on-chain, the frames downloaded, and a summary.
#
#   scripts/demo.sh            # frames land in ./demo-frames
#   LUMEN_DEMO_PORT=9090 scripts/demo.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started=$(date +%s)

scripts/setup.sh
export PATH="$root/tools/bin:$PATH"
echo "==> building lumen" >&2
cargo build --locked --quiet --bin lumen
lumen="${CARGO_TARGET_DIR:-$root/target}/debug/lumen"

dir="$root/.lumen-devnet"
frames_out="$root/demo-frames"
scene="$dir/sample.blend"
mkdir -p "$dir"
if [[ ! -f "$scene" ]]; then
  echo "==> generating the sample scene (12 frames, 320x180, Cycles)" >&2
  blender -b --factory-startup --python scripts/make-sample-scene.py --python-exit-code 3 -- \
    --out "$scene" --frames 12 --width 320 --height 180 --samples 16 >/dev/null
fi

echo "==> starting the devnet (logs: $dir/devnet.log)" >&2
rm -f "$dir/devnet.json"
"$lumen" devnet --nodes 3 --data-dir "$dir" --gateway-port "${LUMEN_DEMO_PORT:-0}" \
  >"$dir/devnet.out" 2>"$dir/devnet.log" &
devnet_pid=$!
cleanup() {
  kill -TERM "$devnet_pid" 2>/dev/null || true
  wait "$devnet_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  [[ -f "$dir/devnet.json" ]] && break
  if ! kill -0 "$devnet_pid" 2>/dev/null; then
    echo "devnet exited early:" >&2
    tail -n 40 "$dir/devnet.log" >&2
    exit 1
  fi
  sleep 0.2
done
[[ -f "$dir/devnet.json" ]] || { echo "devnet did not start" >&2; exit 1; }
cat "$dir/devnet.out"
sleep 2 # let the nodes connect and send their first heartbeat

echo "==> submitting $scene" >&2
job="$("$lumen" job submit "$scene" --devnet-dir "$dir" | tee /dev/stderr | tail -n 1)"
echo "==> waiting for job $job (watch it at $(grep -o '"gateway_url": "[^"]*"' "$dir/devnet.json" | cut -d'"' -f4))" >&2
"$lumen" job wait "$job" --devnet-dir "$dir" --timeout 900
rm -rf "$frames_out"
"$lumen" job download "$job" --out "$frames_out" --devnet-dir "$dir"

echo
echo "==> summary of job $job"
"$lumen" job status "$job" --devnet-dir "$dir"
echo "demo wall time: $(( $(date +%s) - started )) s (frames in $frames_out)"

field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$dir/devnet.json" "$1"; }
echo
echo "==> dashboard: $(field gateway_url)"
cat <<EOF
Open it with any EIP-1193 browser wallet (MetaMask, Rabby, Frame, ...):
  network     RPC $(field rpc_url), chain id $(field chain_id) (the page offers to add and switch to it)
  as artist   import the devnet artist's key $(field artist_private_key)
              ($(field artist)): sign in, upload a .blend, sign and fund a job, watch it,
              download its frames, cancel or refund it
  as operator import a node owner's key, Anvil's dev accounts 2-4, e.g.
              0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a (account 2):
              its nodes, earnings and the Withdraw button under "My nodes"
These are Anvil's public test keys: never send real funds to them.
EOF
# A person at a terminal keeps the devnet until Ctrl-C; scripts get their exit.
if [[ -t 0 && -z "${LUMEN_DEMO_EXIT:-}" ]]; then
  echo "The devnet keeps running for the dashboard; Ctrl-C stops it (LUMEN_DEMO_EXIT=1 exits at once)."
  wait "$devnet_pid" || true
fi
