#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs.
# Installs what it needs (scripts/setup.sh), then checks contracts and Rust.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "setup"
scripts/setup.sh
export PATH="$root/tools/bin:$PATH"

# The gateway embeds the committed bundle: it must be what the sources build.
step "dashboard: npm ci, typecheck, unit tests, build, committed bundle current"
(cd gateway/web && npm ci --no-audit --no-fund --loglevel=error && npm run typecheck && npm run test:unit && npm run build)
if ! git diff --exit-code --stat -- gateway/assets/dist gateway/web/src/abi.ts \
    || [[ -n "$(git ls-files --others --exclude-standard -- gateway/assets/dist)" ]]; then
  echo "gateway/assets/dist or gateway/web/src/abi.ts is stale: run (cd gateway/web && npm run build) and commit it" >&2
  exit 1
fi

step "contracts: forge fmt --check"
forge fmt --check

step "contracts: forge build"
forge build --deny warnings

step "contracts: forge test (ci profile: more fuzz/invariant runs, fixed seed)"
FOUNDRY_PROFILE=ci forge test

step "contracts: gas snapshot check (snapshots/ReleaseGas.json)"
FORGE_SNAPSHOT_CHECK=true forge test --match-path 'contracts/test/gas/*' 

step "contracts: gas benchmark (release of 256 frames to 16 nodes)"
scripts/bench-gas.sh

step "rust: cargo fmt --check"
cargo fmt --all --check

step "rust: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The end-to-end tests start every service binary, not only their own crate's.
step "rust: build the binaries"
cargo build --workspace --bins --locked

step "dashboard: browser tests (headless Chromium, a devnet, an injected test wallet)"
(cd gateway/web && npm run test:browser)

# Prints its table; fails when the 1,000-frame job page takes a second or more.
step "dashboard: benchmark, the job page with 1,000 frames"
(cd gateway/web && npm run bench:job-page)

step "rust: doctests"
cargo test --workspace --doc --locked

# Last, so the run closes on the full suite's summary line.
step "rust: cargo nextest"
cargo nextest run --workspace --locked --profile ci
