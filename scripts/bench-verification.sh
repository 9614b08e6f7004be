#!/usr/bin/env bash
# What verification costs at the default parameters, measured on a devnet.
#
# Starts `lumen devnet` with its defaults (fresh nodes of independent
# owners, staked 1 ETH each, the default trust policy) and renders JOBS jobs
# of FRAMES frames one after the other with real Blender. Nodes start with no
# history, so early frames are all sampled; as they collect agreeing samples
# their sampling rate falls towards the floor (docs/trust.md). For each job
# it prints, from the gateway's database and the chain mirror:
#
#   sampled        frames that got a verification render
#   extra          verification + arbitration renders that ran
#   primary_s      render time of first renders (node-reported, summed)
#   extra_s        render time of verification and arbitration renders
#   overhead       extra_s / primary_s: the verification overhead
#   paid_checks    verification renders paid from the artist's budget
#   artist_extra   what they cost the artist, as a share of the frames' price
#   wall_s         submit to completed
#
#   scripts/bench-verification.sh                 # 6 jobs x 30 frames, 3 nodes
#   JOBS=10 FRAMES=40 NODES=4 scripts/bench-verification.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="${JOBS:-6}" frames="${FRAMES:-30}" nodes="${NODES:-3}"
width="${WIDTH:-64}" height="${HEIGHT:-36}" samples="${SAMPLES:-16}"

# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
bench_init
bench_scene "$frames" "$width" "$height" "$samples"
scene="$work/scene.blend"
bench_devnet "$nodes"

: >"$work/walls.tsv"
for _ in $(seq 1 "$jobs"); do
  t0=$(date +%s.%N)
  job="$("$lumen" job submit "$scene" --devnet-dir "$work/devnet" | tail -n 1)"
  "$lumen" job wait "$job" --devnet-dir "$work/devnet" --timeout 1800 >/dev/null 2>>"$work/wait.log"
  t1=$(date +%s.%N)
  printf '%s\t%s\n' "$job" "$(python3 -c "print($t1 - $t0)")" >>"$work/walls.tsv"
done
# The last payouts reach the mirror a moment after the job completes.
sleep 3

python3 - "$work/devnet/lumen.db" "$work/walls.tsv" "$nodes" "$frames" "$width" "$height" "$samples" <<'PY'
import sqlite3, sys
db, walls_path, nodes, frames, w, h, s = sys.argv[1:]
walls = [line.split() for line in open(walls_path)]
con = sqlite3.connect(db)
print(f"verification overhead at the default parameters: {len(walls)} jobs x {frames} frames, "
      f"{w}x{h} Cycles at {s} samples, {nodes} fresh nodes of independent owners")
print(f"{'job':>4} {'sampled':>8} {'extra':>6} {'primary_s':>10} {'extra_s':>8} {'overhead':>9} "
      f"{'paid_checks':>12} {'artist_extra':>13} {'wall_s':>7}")
totals = [0, 0, 0.0, 0.0, 0, 0]
for job, wall in walls:
    job = int(job)
    n = con.execute("SELECT COUNT(*) FROM frames WHERE job_id = ?", (job,)).fetchone()[0]
    sampled = con.execute("SELECT COUNT(*) FROM frames WHERE job_id = ? AND renders_wanted > 1", (job,)).fetchone()[0]
    # Renders that ran to a result (accepted, rejected or outvoted), by role.
    ran = dict(((role, (count, secs or 0.0)) for role, count, secs in con.execute(
        "SELECT role, COUNT(*), SUM(render_secs) FROM tasks WHERE job_id = ? AND render_secs IS NOT NULL "
        "GROUP BY role", (job,))))
    primary_n, primary_s = ran.get("primary", (0, 0.0))
    extra_n = sum(ran.get(r, (0, 0.0))[0] for r in ("verification", "arbitration"))
    extra_s = sum(ran.get(r, (0, 0.0))[1] for r in ("verification", "arbitration"))
    paid = con.execute("SELECT COUNT(*) FROM verification_payouts WHERE job_id = ?", (job,)).fetchone()[0]
    frames_paid = con.execute("SELECT COUNT(*) FROM frame_payouts WHERE job_id = ?", (job,)).fetchone()[0]
    overhead = extra_s / primary_s if primary_s else 0.0
    artist = paid / frames_paid if frames_paid else 0.0
    print(f"{job:>4} {sampled:>5}/{n:<2} {extra_n:>6} {primary_s:>10.1f} {extra_s:>8.1f} {overhead:>8.0%} "
          f"{paid:>12} {artist:>12.0%} {float(wall):>7.1f}")
    for i, v in enumerate((n, sampled, primary_s, extra_s, paid, frames_paid)):
        totals[i] += v
n, sampled, primary_s, extra_s, paid, frames_paid = totals
print(f"total: sampled {sampled}/{n} frames, verification overhead {extra_s / primary_s:.0%} of render time, "
      f"artist paid {paid / frames_paid:.0%} on top of the frames' price")
print(f"overhead_last_job={overhead:.3f} overhead_total={extra_s / primary_s:.3f}")
PY
