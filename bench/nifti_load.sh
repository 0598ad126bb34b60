#!/usr/bin/env bash
# Large-NIfTI load: time and peak memory of voxlab's load_nifti against
# nibabel on the same ≥200 MB 4-D file (issue 3's goal: ≥1.5× faster at
# ≤1.3× the data's size). Start-up of each tool is included.
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

printf '%-52s %8s %8s %9s %9s\n' "file (data MB as float32)" "vox s" "nib s" "vox MB" "nib MB"
for f in bold_f32.nii bold_i16.nii bold_f32.nii.gz; do
  p="$DIR/$f"
  mb=$("$PY" -c "import nibabel as n, numpy as np; print(round(np.prod(n.load('$p').shape)*4/2**20))")
  read -r vt vm < <(best "$VOXLAB" -e "let v = load_nifti(\"$p\"); v.shape")
  # nibabel read fully into memory as float32 (mmap would defer the read)
  read -r pt pm < <(best "$PY" -c "import nibabel as n, numpy as np; d = n.load('$p', mmap=False).get_fdata(dtype=np.float32); d.shape")
  printf '%-52s %8s %8s %9s %9s\n' "$f ($mb MB)" "$vt" "$pt" "$vm" "$pm"
done
echo
echo "peak = maximum resident set size of the whole process, start-up included"
