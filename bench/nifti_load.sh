#!/usr/bin/env bash
# Large-NIfTI load: time and peak memory of voxlab's load_nifti against
# nibabel (load(mmap=False).get_fdata(float32): the whole array in memory, as
# voxlab gives it) on the same ≥200 MB 4-D files (issue 3's goal: ≥1.5× faster
# at ≤1.3× the data's size). Two views:
#   load s      time of one load inside a running process (best of $REPEATS
#               loads in one process), start-up excluded on both sides;
#   process s   the whole command, start-up included (best of $REPEATS runs);
#   +MB         peak resident memory above the tool's own start-up footprint.
# Usage: bash bench/nifti_load.sh  (needs a release build, GNU time, and a
# python with numpy + nibabel: PY=/path/to/python)
set -euo pipefail
cd "$(dirname "$0")/.."
VOXLAB=${VOXLAB:-./target/release/voxlab}
PY=${PY:-python}
REPEATS=${REPEATS:-5}
DIR=${DIR:-$(mktemp -d)}

"$PY" - "$DIR" <<'PYEOF'
import os, sys
import numpy as np, nibabel as nib
d = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 64, 32, 500), dtype=np.float32)  # 262 MB
for name, arr in [("bold_f32.nii", x), ("bold_i16.nii", (x * 100).astype(np.int16))]:
    p = os.path.join(d, name)
    if not os.path.exists(p):
        nib.save(nib.Nifti1Image(arr, np.diag([3.0, 3, 3, 1])), p)
p = os.path.join(d, "bold_f32.nii.gz")
if not os.path.exists(p):
    nib.save(nib.Nifti1Image(x[..., :100], np.diag([3.0, 3, 3, 1])), p)
PYEOF

# "seconds max_rss_MB" of one run
measure() {
  /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.3f %.0f\n", $1, $2/1024}'
}
best() {  # the fastest of $REPEATS runs (time and its peak memory)
  for _ in $(seq "$REPEATS"); do measure "$@"; done | sort -g | head -1
}

# "seconds max_rss_MB" of one run
measure() {
  /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.3f %.0f\n", $1, $2/1024}'
}
best() {  # the fastest of $REPEATS runs (time and its peak memory)
  for _ in $(seq "$REPEATS"); do measure "$@"; done | sort -g | head -1
}
read -r _ vbase < <(best "$VOXLAB" -e "0")
read -r _ pbase < <(best "$PY" -c "import nibabel, numpy")

printf '%-30s %8s %8s %6s %10s %10s %7s %7s %7s\n' "file (MB as float32)" "vox load" "nib load" "ratio" "vox proc" "nib proc" "ratio" "vox +MB" "nib +MB"
for f in bold_f32.nii bold_i16.nii bold_f32.nii.gz; do
  p="$DIR/$f"
  mb=$("$PY" -c "import nibabel as n, numpy as np; print(round(np.prod(n.load('$p').shape)*4/2**20))")
  vl=$("$VOXLAB" -e "let best = 1e9; for i in 0..$REPEATS { let t0 = timestamp(); let v = load_nifti(\"$p\"); let s = t0.elapsed; if s < best { best = s; } } best")
  pl=$("$PY" -c "
import time, nibabel as n, numpy as np
best = 1e9
for _ in range($REPEATS):
    t0 = time.perf_counter(); d = n.load('$p', mmap=False).get_fdata(dtype=np.float32); best = min(best, time.perf_counter() - t0); del d
print(best)")
  read -r vt vm < <(best "$VOXLAB" -e "let v = load_nifti(\"$p\"); v.shape")
  read -r pt pm < <(best "$PY" -c "import nibabel as n, numpy as np; d = n.load('$p', mmap=False).get_fdata(dtype=np.float32); d.shape")
  printf '%-30s %8.3f %8.3f %5.2fx %10s %10s %6.2fx %7s %7s\n' "$f ($mb)" "$vl" "$pl" \
    "$(awk -v a="$vl" -v b="$pl" 'BEGIN{print b/a}')" "$vt" "$pt" "$(awk -v a="$vt" -v b="$pt" 'BEGIN{print b/a}')" \
    "$((vm - vbase))" "$((pm - pbase))"
done
echo
echo "ratio = nibabel time / voxlab time; +MB = peak RSS minus the tool's start-up RSS ($vbase MB voxlab, $pbase MB python+nibabel)"
