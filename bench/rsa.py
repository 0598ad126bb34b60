"""RSA benchmarks on identical inputs (written once as .npy, read by both sides):

1. kendall_fdr: Kendall tau-b between 19 ROI RDMs and 22 layer RDMs of 240
   stimuli (upper triangles of 28,680 entries) with Benjamini-Hochberg q over
   all 418 pairs, against a Python loop of scipy.stats.kendalltau plus
   statsmodels multipletests(method="fdr_bh"). Goal: >= 10x faster.
2. rdm: correlation-distance RDM of a 1000 x 20000 float64 matrix, against
   rsatoolbox calc_rdm(Dataset(x), method="correlation"). Goal: >= 2x.

    python bench/rsa.py [--repeats 3 --threads 2 --task all|kendall|rdm]

Needs numpy, scipy, statsmodels and rsatoolbox in the running Python and a
release build (target/release/voxlab, or $VOXLAB). Times are wall-clock
seconds of the computation alone (loading excluded), the median of
--repeats runs; voxlab's are measured inside bench/rsa.rhai. The Python
timings include taking the upper triangles (voxlab's include the same step).
Agreement: largest absolute difference of tau, p, q and of the RDMs.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

# Thread counts must be set before numpy loads its BLAS.
_t = next((sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--threads"), None)
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = _t or str(os.cpu_count())

import numpy as np  # noqa: E402
from scipy.spatial.distance import pdist, squareform  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--rois", type=int, default=19)
ap.add_argument("--layers", type=int, default=22)
ap.add_argument("--stimuli", type=int, default=240)
ap.add_argument("--n", type=int, default=1000, help="rdm: stimuli")
ap.add_argument("--p", type=int, default=20000, help="rdm: features")
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--task", choices=["all", "kendall", "rdm"], default="all")
args = ap.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
voxlab = os.environ.get("VOXLAB", os.path.join(root, "target/release/voxlab"))
tmp = tempfile.mkdtemp(prefix="voxlab-bench-rsa-")
do_k = args.task in ("all", "kendall")
do_r = args.task in ("all", "rdm")
rng = np.random.default_rng(0)

# ------------------------------------------------------------------ inputs
if do_k:
    # Stimulus features seen through a "network" (layers drift from low- to
    # high-level features) and through noisy "ROIs" mixing the same features:
    # RDMs with realistic, graded correlations and no ties.
    s, f = args.stimuli, 64
    feats = rng.standard_normal((s, f))
    def rdm_of(w, noise):
        resp = feats @ w + noise * rng.standard_normal((s, w.shape[1]))
        return squareform(pdist(resp, "correlation"))
    layers = np.stack([
        rdm_of(rng.standard_normal((f, 200)) * np.linspace(1, 0.1, f)[:, None] ** (1 - l / args.layers),
               1.0) for l in range(args.layers)])
    rois = np.stack([
        rdm_of(rng.standard_normal((f, 300)), 4.0 * 1.35 ** r) for r in range(args.rois)])
    np.save(os.path.join(tmp, "rois.npy"), rois)
    np.save(os.path.join(tmp, "layers.npy"), layers)
if do_r:
    x = rng.standard_normal((args.n, args.p)) + rng.standard_normal((args.n, 1)) \
        + 0.5 * rng.standard_normal((1, args.p))
    np.save(os.path.join(tmp, "x.npy"), x)

# ------------------------------------------------------------------ voxlab
out = subprocess.run(
    [voxlab, "run", os.path.join(root, "bench/rsa.rhai"), "--set", f"dir={tmp}",
     "--set", f"repeats={args.repeats}", "--set", f"task={'all' if args.task == 'all' else args.task}",
     "--threads", str(args.threads), "--out", os.path.join(tmp, "run")],
    capture_output=True, text=True, env=dict(os.environ, VOXLAB_THREADS=str(args.threads)))
if out.returncode != 0:
    sys.exit(f"voxlab failed:\n{out.stdout}\n{out.stderr}")
vtimes = {}
for line in out.stdout.splitlines():
    if "_s=" in line:
        k, v = line.split("=")
        vtimes.setdefault(k, []).append(float(v))
med = lambda v: float(np.median(v))  # noqa: E731

print(f"voxlab {subprocess.run([voxlab, '--version'], capture_output=True, text=True).stdout.strip()}"
      f" | {os.cpu_count()} cores, {args.threads} threads for every tool"
      f" | load average {os.getloadavg()[0]:.1f} | median of {args.repeats} runs")
print()
print(f"{'task':<58} {'voxlab s':>9} {'python s':>9} {'ratio':>7}")

# ------------------------------------------------------------------ kendall
if do_k:
    from scipy.stats import kendalltau
    from statsmodels.stats.multitest import multipletests

    def scipy_kendall_fdr(rois, layers):
        iu = np.triu_indices(rois.shape[1], 1)
        ur = [r[iu] for r in rois]
        ul = [l[iu] for l in layers]
        tau = np.empty((len(ur), len(ul)))
        p = np.empty_like(tau)
        for i, a in enumerate(ur):
            for j, b in enumerate(ul):
                res = kendalltau(a, b)
                tau[i, j], p[i, j] = res.statistic, res.pvalue
        rej, q, _, _ = multipletests(p.ravel(), alpha=0.05, method="fdr_bh")
        return tau, p, q.reshape(tau.shape), rej.reshape(tau.shape)

    ptimes = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        tau, p, q, rej = scipy_kendall_fdr(rois, layers)
        ptimes.append(time.perf_counter() - t0)
    v, pt = med(vtimes["kendall_fdr_s"]), med(ptimes)
    m = rois.shape[1] * (rois.shape[1] - 1) // 2
    print(f"{f'kendall_fdr {args.rois}x{args.layers} RDMs ({m} entries) vs scipy+statsmodels':<58}"
          f" {v:>9.3f} {pt:>9.3f} {pt / v:>6.1f}x")
    vt = np.load(os.path.join(tmp, "voxlab_tau.npy"))
    vp = np.load(os.path.join(tmp, "voxlab_p.npy"))
    vq = np.load(os.path.join(tmp, "voxlab_q.npy"))
    print(f"    agreement: max|dtau| {np.abs(vt - tau).max():.1e}, max|dp| {np.abs(vp - p).max():.1e}, "
          f"max|dq| {np.abs(vq - q).max():.1e}; significant {int(rej.sum())}/{rej.size}, "
          f"same decisions {bool(np.array_equal(vq < 0.05, rej))}; "
          f"tau range [{tau.min():.3f}, {tau.max():.3f}], min p {p.min():.1e}")

# ------------------------------------------------------------------ rdm
if do_r:
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    ptimes = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        d = calc_rdm(Dataset(x), method="correlation").get_matrices()[0]
        ptimes.append(time.perf_counter() - t0)
    pt = med(ptimes)
    ref = squareform(pdist(x, "correlation"))
    for dtype in ("f64", "f32"):
        v = med(vtimes[f"rdm_{dtype}_s"])
        vd = np.load(os.path.join(tmp, f"voxlab_rdm_{dtype}.npy"))
        print(f"{f'rdm {args.n}x{args.p} correlation, voxlab {dtype} vs rsatoolbox (f64)':<58}"
              f" {v:>9.3f} {pt:>9.3f} {pt / v:>6.1f}x")
        print(f"    agreement: max|d| vs rsatoolbox {np.abs(vd - d).max():.1e}, "
              f"vs scipy pdist {np.abs(vd - ref).max():.1e} (rsatoolbox vs scipy "
              f"{np.abs(d - ref).max():.1e}); distances in [{ref[ref > 0].min():.3f}, {ref.max():.3f}]")

print()
print("ratio = python time / voxlab time (above 1: voxlab is faster)")
print(f"voxlab per-run times: " + ", ".join(f"{k} {[round(t, 3) for t in v]}" for k, v in vtimes.items()))
