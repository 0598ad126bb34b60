#!/usr/bin/env bash
# How soon after `--max-seconds` a lab script stops, by what it is doing when
# the limit passes (src/cancel.rs; docs/scripting.md "Limits for labs" quotes
# the record). Each workload runs under `--max-seconds 2 --max-memory 2000
# --threads 1` (on a 2-core machine shared with other work two libtorch
# threads mostly wait for each other) and never ends by itself. Its run.json's
# duration_s minus the limit is how late the stop applied: the watchdog looks
# every 20 ms, then the current step of a primitive finishes (a block of a
# matmul, a smoothing tap, a permutation, a ridge fold or target chunk).
# usage: bench/stop_latency.sh [VOXLAB] [OUT.json]
set -euo pipefail
voxlab=${1:-./target/debug/voxlab}
out=${2:-docs/papers/runs/stop_latency.json}
limit=2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name | script (one line)
workloads=(
  "rhai_loop|let i = 0; loop { i += 1; }"
  "matmul|let a = randn([3000, 3000]); loop { let c = a.matmul(a); }"
  "smooth|let v = load_nifti(save_nifti(randn([64, 64, 40, 8]), \"v.nii\")); loop { let s = smooth(v, 8.0); }"
  "permutation_test|permutation_test(randn([200]), randn([200]), #{n_permutations: 50000000})"
  "fit_ridge|let x = randn([1000, 4000]); let y = randn([1000, 500]); loop { fit_ridge(x, y, #{progress: false}); }"
)

entries=()
for entry in "${workloads[@]}"; do
  IFS='|' read -r name script <<<"$entry"
  mkdir -p "$work/$name"
  printf '%s\n' "$script" >"$work/$name/w.rhai"
  start=$(date +%s.%N)
  "$voxlab" run "$work/$name/w.rhai" --out "$work/$name/o" \
    --max-seconds "$limit" --max-memory 2000 --threads 1 2>"$work/$name/stderr" >/dev/null || true
  end=$(date +%s.%N)
  record="$work/$name/o/run.json"
  # The function the stop message names ("error: matmul: script stopped: ...";
  # "script stopped" alone when the engine's own per-operation check caught it).
  stopped_in=$(grep -o 'error: [a-z_]*: script stopped\|error: script stopped' "$work/$name/stderr" |
    head -1 | sed 's/^error: //; s/: script stopped$//; s/^script stopped$/engine/')
  entries+=("$(python3 - "$record" "$name" "$limit" "$start" "$end" "$stopped_in" <<'PY'
import json, sys
record, name, limit, start, end, stopped_in = sys.argv[1:]
r = json.load(open(record))
print(json.dumps(name) + ": " + json.dumps({
    "status": r["status"],
    "stopped_by": r["stopped_by"],
    "stopped_in": stopped_in or None,
    "duration_s": r["duration_s"],
    "after_limit_s": round(r["duration_s"] - float(limit), 3),
    "process_wall_s": round(float(end) - float(start), 3),
}))
PY
)")
  echo "$name: ${entries[-1]}"
done

{
  echo "{"
  echo "  \"what\": \"each workload under --max-seconds $limit --max-memory 2000 --threads 1: run.json's duration_s, and how long after the limit the run stopped\","
  echo "  \"voxlab\": \"$voxlab\","
  echo "  \"profile\": \"$(case "$voxlab" in *release*) echo release;; *) echo 'debug (dependencies optimised)';; esac)\","
  echo "  \"max_seconds\": $limit,"
  echo "  \"recorded\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"machine\": \"$(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg) (shared with other builds)\","
  echo "  \"workloads\": {"
  for i in "${!entries[@]}"; do
    sep=","; [ "$i" -eq $((${#entries[@]} - 1)) ] && sep=""
    echo "    ${entries[$i]}$sep"
  done
  echo "  }"
  echo "}"
} >"$out"
cat "$out"
