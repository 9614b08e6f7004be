# Shared by the devnet benchmarks (source it from scripts/bench-*.sh, after
# `cd` to the repository root): builds `lumen`, makes a scratch folder that
# is removed on exit, generates a sample scene and starts a devnet.
#
#   bench_init                         # sets $lumen and $work
#   bench_scene FRAMES WIDTH HEIGHT SAMPLES   # writes $work/scene.blend
#   bench_devnet NODES [CONFIG.toml]   # starts the devnet in $work/devnet

bench_init() {
  scripts/setup.sh >/dev/null 2>&1
  cargo build --locked --quiet --bin lumen
  work="$(mktemp -d)"
  # A private copy: a build of another checkout sharing CARGO_TARGET_DIR
  # must not swap the binary under a running benchmark.
  cp "${CARGO_TARGET_DIR:-$PWD/target}/debug/lumen" "$work/lumen"
  lumen="$work/lumen"
  devnet_pid=""
  trap bench_cleanup EXIT
}

bench_cleanup() {
  [[ -n "$devnet_pid" ]] && { kill -TERM "$devnet_pid" 2>/dev/null || true; wait "$devnet_pid" 2>/dev/null || true; }
  rm -rf "$work"
}

bench_scene() {
  blender -b --factory-startup --python scripts/make-sample-scene.py --python-exit-code 3 -- \
    --out "$work/scene.blend" --frames "$1" --width "$2" --height "$3" --samples "$4" >/dev/null
}

bench_devnet() {
  local config=()
  [[ -n "${2:-}" ]] && config=(--config "$2")
  "$lumen" devnet --nodes "$1" --data-dir "$work/devnet" --gateway-port 0 "${config[@]}" \
    >"$work/devnet.out" 2>"$work/devnet.log" &
  devnet_pid=$!
  for _ in $(seq 1 600); do [[ -f "$work/devnet/devnet.json" ]] && break; sleep 0.2; done
  [[ -f "$work/devnet/devnet.json" ]] || { echo "the devnet did not start:" >&2; tail -20 "$work/devnet.log" >&2; exit 1; }
  sleep 2
}
