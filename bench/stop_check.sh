#!/usr/bin/env bash
# Cost of the per-operation stop check (src/cancel.rs): user CPU seconds of a
# loop of the cheapest Rhai operations (3M iterations, 18M operations as --max-operations counts them) in a
# build without the check (BASE) and with it (NEW), best of 3 each.
# usage: bench/stop_check.sh BASE_VOXLAB NEW_VOXLAB [OUT.json]
set -euo pipefail
base=$1 new=$2 out=${3:-bench/results/stop_check.json}
script='let i = 0; while i < 3000000 { i += 1; } i'
best() {
  local b=$1 best=
  for _ in 1 2 3; do
    t=$( { /usr/bin/time -f "%U" "$b" -e "$script" >/dev/null; } 2>&1 | tail -1 )
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
  done
  echo "$best"
}
b=$(best "$base"); n=$(best "$new")
cat > "$out" <<JSON
{
  "what": "user CPU seconds, best of 3, of voxlab -e '$script'",
  "base": "$base",
  "new": "$new",
  "base_s": $b,
  "new_s": $n,
  "overhead_ratio": $(awk "BEGIN{printf \"%.3f\", $n / $b}"),
  "ns_per_operation": $(awk "BEGIN{printf \"%.1f\", ($n - $b) / 18e6 * 1e9}"),
  "profile": "$(file -b "$new" | grep -q 'not stripped' && echo debug-or-unstripped || echo release)",
  "recorded": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "machine": "$(nproc) cores, shared with other builds"
}
JSON
cat "$out"
