#!/usr/bin/env bash
# Platform benchmarks: start-up and the cost of calling registered functions,
# each beside what a scientist would run instead (Python with torch/numpy).
# Usage: make bench   (builds release first). Prints a table with ratios.
# Heavier comparisons run separately (see docs/performance.md):
#   python bench/ridge.py   fit_ridge vs himalaya / scikit-learn RidgeCV
#   python bench/rsa.py     kendall_fdr vs scipy+statsmodels, rdm vs rsatoolbox
set -euo pipefail
cd "$(dirname "$0")/.."
VOXLAB=${VOXLAB:-./target/release/voxlab}
PY=${PY:-python}
REPEATS=${REPEATS:-10}

# Median wall time in seconds of a command over $REPEATS runs.
median() {
  local times=()
  for _ in $(seq "$REPEATS"); do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

ratio() { awk -v v="$1" -v p="$2" 'BEGIN{printf "%.2f", p/v}'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN{print a-b}'; }

echo "voxlab $($VOXLAB --version) | $(nproc) cores | median of $REPEATS runs"
echo
printf '%-44s %10s %10s %8s\n' "task" "voxlab s" "python s" "ratio"

v=$(median "$VOXLAB" -e '1+1')
p=$(median "$PY" -c 'import torch; 1+1')
printf '%-44s %10.3f %10.3f %7sx\n' "start-up: evaluate 1+1 (python: import torch)" "$v" "$p" "$(ratio "$v" "$p")"

# 1e6 calls of a registered function from a script loop, against 1e6 calls
# of a Python function from a Python loop. Start-up is subtracted.
base=$(median "$VOXLAB" -e '0')
v=$(median "$VOXLAB" -e 'let s = 0; for i in 0..1000000 { s += threads(); } s')
pbase=$(median "$PY" -c '0')
p=$(median "$PY" -c '
import os
def threads(): return 1
s = 0
for i in range(1000000): s += threads()')
v=$(sub "$v" "$base"); p=$(sub "$p" "$pbase")
printf '%-44s %10.3f %10.3f %7sx\n' "1e6 calls of a registered function" "$v" "$p" "$(ratio "$v" "$p")"

# A tensor op through the engine vs the same op through torch in Python.
v=$(median "$VOXLAB" -e 'let a = randn([2000, 2000]); let b = randn([2000, 2000]); matmul(a, b).mean().item()')
p=$(median "$PY" -c 'import torch; a = torch.randn(2000, 2000); b = torch.randn(2000, 2000); (a @ b).mean().item()')
printf '%-44s %10.3f %10.3f %7sx\n' "2000x2000 matmul incl. start-up" "$v" "$p" "$(ratio "$v" "$p")"
echo
echo "ratio = python time / voxlab time (above 1: voxlab is faster)"
