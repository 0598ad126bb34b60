#!/usr/bin/env bash
# Stops the test cluster .ci/slurm-up.sh started (its slurmd and slurmctld,
# by the pid files it wrote), and munged when slurm-up.sh started it.
set -uo pipefail
DIR=${VOXLAB_SLURM_DIR:-/tmp/voxlab-slurm}
for d in slurmd slurmctld munged; do
  f="$DIR/$d.pid"
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
rm -f "$DIR"/*.pid
exit 0
