#!/usr/bin/env bash
# Per-frame overhead of Lumen against plain Blender, on this machine.
#
# Renders the same frames twice: with plain `blender -b … -f N` (the same
# flags a node uses), and through a devnet with ONE node (so frames run one
# at a time, like the plain loop). Redundant sampling is switched off here
# (one node has no independent owner to verify it): this measures the
# pipeline; scripts/bench-verification.sh measures what verification adds. For each frame it prints the plain time,
# the system time from dispatch to verified (fetch, render, upload, signed
# result, verification) and the difference, then the averages and the job's
# end-to-end time from submit to paid-and-refunded.
#
#   scripts/bench-overhead.sh            # 8 frames, 320x180, 16 samples
#   FRAMES=12 WIDTH=640 HEIGHT=360 scripts/bench-overhead.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
frames="${FRAMES:-8}" width="${WIDTH:-320}" height="${HEIGHT:-180}" samples="${SAMPLES:-16}"

# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
bench_init
bench_scene "$frames" "$width" "$height" "$samples"
scene="$work/scene.blend"

mkdir -p "$work/plain"
: >"$work/plain.tsv"
for f in $(seq 1 "$frames"); do
  t0=$(date +%s.%N)
  blender -b --factory-startup --disable-autoexec "$scene" -o "$work/plain/frame_#####" -F PNG -x 1 -f "$f" >/dev/null 2>&1
  t1=$(date +%s.%N)
  printf '%s\t%s\n' "$f" "$(python3 -c "print($t1 - $t0)")" >>"$work/plain.tsv"
done

printf '[matchmaker.trust]\nwarmup_samples = 0\nsampling_floor = 0.0\n' >"$work/no-sampling.toml"
bench_devnet 1 "$work/no-sampling.toml"
t0=$(date +%s.%N)
job="$("$lumen" job submit "$scene" --devnet-dir "$work/devnet" | tail -n 1)"
"$lumen" job wait "$job" --devnet-dir "$work/devnet" --timeout 1800 >/dev/null
t1=$(date +%s.%N)

python3 - "$work/plain.tsv" "$work/devnet/lumen.db" "$job" "$t0" "$t1" "$width" "$height" "$samples" <<'PY'
import sqlite3, statistics, sys
plain_path, db, job, t0, t1, w, h, s = sys.argv[1:]
plain = {int(f): float(t) for f, t in (line.split() for line in open(plain_path))}
con = sqlite3.connect(db)
rows = con.execute(
    "SELECT f.frame_number, t.created_at, f.updated_at, t.render_secs FROM frames f "
    "JOIN tasks t ON t.job_id = f.job_id AND t.frame_index = f.frame_index AND t.state = 'accepted' "
    "WHERE f.job_id = ? ORDER BY f.frame_number", (int(job),)).fetchall()
print(f"per-frame overhead, {len(rows)} frames at {w}x{h}, {s} samples, 1 node")
print(f"{'frame':>5} {'plain blender s':>16} {'node s':>8} {'system s':>9} {'overhead s':>11}")
overheads, systems, nodes = [], [], []
for frame, dispatched, verified, node_secs in rows:
    system = (verified - dispatched) / 1000
    over = system - plain[frame]
    overheads.append(over); systems.append(system); nodes.append(node_secs or 0.0)
    print(f"{frame:>5} {plain[frame]:>16.3f} {node_secs or 0:>8.3f} {system:>9.3f} {over:>11.3f}")
mean_plain = statistics.mean(plain[f] for f, *_ in rows)
print(f"{'mean':>5} {mean_plain:>16.3f} {statistics.mean(nodes):>8.3f} {statistics.mean(systems):>9.3f} {statistics.mean(overheads):>11.3f}")
print(f"overhead_per_frame_s={statistics.mean(overheads):.3f} plain_frame_s={mean_plain:.3f} "
      f"job_wall_s={float(t1) - float(t0):.2f} frames={len(rows)}")
PY
