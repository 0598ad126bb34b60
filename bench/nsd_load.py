"""Building an NSD subject's trials × nsdgeneral-voxels matrix (with each
trial's image and train/test split) from full-size sessions: voxlab's
load_nsd against the loop of Brain-Diffuser's prepare script (nibabel loads
each session whole, masks nsdgeneral > 0, transposes; the design file gives
each trial's image and whether it is one of the shared test images).

    ~/.cache/voxlab/venv-fixtures/bin/python bench/nsd_load.py [--sessions 3]

Needs numpy, nibabel and scipy (the fixtures environment has them) and a
release build (`cargo build --release`). Synthetic sessions in NSD's layout
and size (81 × 104 × 83 × 750 int16 .nii.gz, values inside a brain-shaped
ellipsoid, zeros outside; an nsdgeneral of about 15,700 voxels, as subj01's)
are generated once into /tmp/voxlab-nsd-bench (not the repository). Each tool
runs in its own process, twice, alternating; the faster run counts. Time is
the process's wall time less that of the same process doing nothing (start-up:
Python importing numpy/nibabel/scipy, voxlab starting with libtorch); memory
is the process's peak RSS less that of the do-nothing process, so both count
only what loading adds. Writes bench/results/nsd_load.json, which
docs/performance.md quotes (a test checks the quote).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/tmp/voxlab-nsd-bench"
GRID = (81, 104, 83)
TRIALS = 750


def betas_dir():
    return os.path.join(DATA, "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR")


def roi_path():
    return os.path.join(DATA, "nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz")


def generate(n_sessions):
    import nibabel as nib
    import scipy.io

    rng = np.random.default_rng(0)
    affine = np.array([[-1.8, 0, 0, 72], [0, 1.8, 0, -108], [0, 0, 1.8, -72], [0, 0, 0, 1]])
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in GRID], indexing="ij")
    brain = x**2 + y**2 + z**2 < 0.9
    # nsdgeneral: a posterior blob of the brain, about subj01's 15,724 voxels.
    general = np.where(brain, -1, 0).astype(np.int16)
    blob = (x**2 + (y + 0.55) ** 2 + z**2) < 0.1255
    general[blob & brain] = 1
    d = os.path.join(DATA, "nsddata/experiments/nsd")
    os.makedirs(d, exist_ok=True)
    os.makedirs(os.path.dirname(roi_path()), exist_ok=True)
    nib.save(nib.Nifti1Image(general, affine), roi_path())
    masterordering = rng.integers(1, 10001, size=(1, 30000)).astype(np.float64)
    subjectim = np.stack([rng.permutation(73000)[:10000] + 1 for _ in range(8)]).astype(np.float64)
    subjectim[:, :1000] = np.arange(1, 1001)
    scipy.io.savemat(os.path.join(d, "nsd_expdesign.mat"), {
        "masterordering": masterordering, "subjectim": subjectim,
        "sharedix": np.arange(1, 1001, dtype=np.float64).reshape(1, -1)})
    os.makedirs(betas_dir(), exist_ok=True)
    for s in range(1, n_sessions + 1):
        p = os.path.join(betas_dir(), "betas_session%02d.nii.gz" % s)
        if os.path.exists(p):
            continue
        b = np.zeros(GRID + (TRIALS,), dtype=np.int16)
        b[brain] = np.clip(rng.normal(0, 600, size=(int(brain.sum()), TRIALS)), -32000, 32000).astype(np.int16)
        nib.save(nib.Nifti1Image(b, affine), p)
        del b
    return int((general > 0).sum())


PY_LOOP = r"""
import sys, numpy as np, nibabel as nib, scipy.io
data, n = sys.argv[1], int(sys.argv[2])
if n == 0:
    sys.exit(0)
mask = nib.load(data + "/nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz").get_fdata()
num_voxel = mask[mask > 0].shape[0]
fmri = np.zeros((n * 750, num_voxel)).astype(np.float32)
for i in range(n):
    beta_f = nib.load(data + "/nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session%02d.nii.gz" % (i + 1)).get_fdata().astype(np.float32)
    fmri[i * 750:(i + 1) * 750] = beta_f[mask > 0].transpose()
    del beta_f
fmri /= 300
exp = scipy.io.loadmat(data + "/nsddata/experiments/nsd/nsd_expdesign.mat")
order = exp["masterordering"][0, : n * 750].astype(int) - 1
images = exp["subjectim"][0, order].astype(int) - 1
test = np.isin(images, exp["sharedix"][0].astype(int) - 1)
print(fmri.shape, int(test.sum()))
"""

VOX_SCRIPT = r"""
let n = param("sessions", 0);
if n > 0 {
    let sessions = [];
    for s in 1..=n { sessions.push(s); }
    let ds = load_nsd(param("data", ""), #{subject: 1, sessions: sessions, images: false, captions: false, atlases: []});
    print(`${ds.betas.shape} ${ds.test().len}`);
}
"""


def run(cmd):
    import shutil
    shutil.rmtree(os.path.join(DATA, "run"), ignore_errors=True)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    out = p.stdout.read().decode()
    err = p.stderr.read().decode()
    if status != 0:
        sys.exit("failed: %s\n%s\n%s" % (" ".join(cmd), out, err))
    return wall, usage.ru_maxrss * 1024, out.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--voxlab", default=os.path.join(ROOT, "target/release/voxlab"))
    args = ap.parse_args()
    n_vox = generate(args.sessions)
    script = os.path.join(DATA, "load.rhai")
    with open(script, "w") as f:
        f.write(VOX_SCRIPT)
    py = [sys.executable, "-c", PY_LOOP, DATA]
    vx = lambda n: [args.voxlab, "run", script, "--out", os.path.join(DATA, "run"),
                    "--set", "data=" + DATA, "--set", "sessions=%d" % n]
    best = {}
    outputs = {}
    for _ in range(2):
        for name, cmd0, cmd in (("python", py + ["0"], py + [str(args.sessions)]),
                                ("voxlab", vx(0), vx(args.sessions))):
            w0, m0, _ = run(cmd0)
            w, m, out = run(cmd)
            outputs[name] = out
            rec = (w - w0, m - m0)
            if name not in best or rec[0] < best[name][0]:
                best[name] = rec
    out_bytes = args.sessions * TRIALS * n_vox * 4
    load = os.getloadavg()[0]
    res = {
        "sessions": args.sessions,
        "grid": list(GRID) + [TRIALS],
        "voxels": n_vox,
        "output_mb": round(out_bytes / 2**20, 1),
        "voxlab_s": round(best["voxlab"][0], 2),
        "python_s": round(best["python"][0], 2),
        "speedup": round(best["python"][0] / best["voxlab"][0], 2),
        "voxlab_peak_mb": round(best["voxlab"][1] / 2**20, 1),
        "python_peak_mb": round(best["python"][1] / 2**20, 1),
        "voxlab_peak_over_output": round(best["voxlab"][1] / out_bytes, 2),
        "python_peak_over_output": round(best["python"][1] / out_bytes, 2),
        "cores": os.cpu_count(),
        "load_average": round(load, 1),
        "outputs": outputs,
    }
    os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench/results/nsd_load.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
