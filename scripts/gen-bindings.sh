#!/usr/bin/env bash
# Copies the ABI and bytecode of the deployable contracts from forge's output
# into crates/chain/artifacts/, where alloy's `sol!` reads them. Run after
# changing contracts/src; the `bindings_are_fresh` test fails until you do.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/tools/bin/forge" build --quiet
# MockERC20 (contracts/test/mocks) is the test token devnets and tests pay jobs in.
for contract in RenderEscrow NodeRegistry MockERC20; do
  node "$root/scripts/artifact.cjs" "out/$contract.sol/$contract.json" \
    >"crates/chain/artifacts/$contract.json"
  echo "wrote crates/chain/artifacts/$contract.json"
done
