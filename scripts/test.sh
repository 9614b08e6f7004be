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

step "rust: doctests"
cargo test --workspace --doc --locked

# Last, so the run closes on the full suite's summary line.
step "rust: cargo nextest"
cargo nextest run --workspace --locked --profile ci
