#!/usr/bin/env bash
# Gas benchmark of RenderEscrow.release: 256 frames of one job paid to 16 nodes (16 owners, fresh
# credits) against a naive one-native-transfer-per-frame payout. Prints exactly one line on stdout:
#   gas_per_frame=N baseline_gas_per_frame=M
# Forge's own output goes to stderr. See contracts/test/gas/ReleaseGas.t.sol for what is counted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FORGE=${FORGE:-tools/node_modules/@foundry-rs/forge-linux-amd64/bin/forge}

out="$("$FORGE" test --match-path 'contracts/test/gas/ReleaseGas.t.sol' --match-test test_GasPerFrame -vv)" || {
  printf '%s\n' "$out" >&2
  echo "bench-gas: forge test failed" >&2
  exit 1
}
printf '%s\n' "$out" >&2
line="$(printf '%s\n' "$out" | grep -oE 'gas_per_frame=[0-9]+ baseline_gas_per_frame=[0-9]+' | head -n1)"
if [[ -z "$line" ]]; then
  echo "bench-gas: result line not found in forge output" >&2
  exit 1
fi
printf '%s\n' "$line"
