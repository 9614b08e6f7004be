#!/usr/bin/env bash
# What connected nodes and resource attacks cost a gateway running as its own
# process (CPU and memory read from /proc/<pid>), with simulated nodes that
# speak the real protocol (secp256k1 keys bound on a local Anvil, the signed
# challenge, heartbeats at the interval the gateway asks for).
#
#   scripts/bench-gateway-load.sh                     # NODES=1000 simulated nodes
#   NODES=10000 scripts/bench-gateway-load.sh         # the issue's target
#   scripts/bench-gateway-load.sh attack              # 4 × 1 GiB uploads, 12 × 250 MiB downloads, heartbeat flood
#   PROFILE=release NODES=10000 scripts/bench-gateway-load.sh
#   scripts/bench-gateway-load.sh nodes --steady-secs 60 --source-ips 16   # any flag of lumen-gateway-load
#
# Prints a Markdown table (docs/performance.md has the measured ones).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
profile="${PROFILE:-dev}"
nodes="${NODES:-1000}"

scripts/setup.sh >/dev/null 2>&1
cargo build --locked --quiet --profile "$profile" -p lumen-stack --bin lumen-gateway -p lumen-loadgen --bin lumen-gateway-load
dir="${CARGO_TARGET_DIR:-target}/$([[ "$profile" == dev ]] && echo debug || echo "$profile")"

# Every node is a socket in this process and one in the gateway (a child,
# which inherits the limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < nodes + 256 )); then
  echo "ulimit -n is $(ulimit -n): too few file descriptors for $nodes nodes (raise the hard limit)" >&2
  exit 1
fi

if [[ $# -eq 0 ]]; then
  set -- nodes --nodes "$nodes"
elif [[ "$1" == nodes && ! " $* " =~ " --nodes " ]]; then
  shift
  set -- nodes --nodes "$nodes" "$@"
fi
exec "$dir/lumen-gateway-load" --gateway-bin "$dir/lumen-gateway" "$@"
