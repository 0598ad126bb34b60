"""fit_ridge against himalaya RidgeCV (torch backend, CPU, float32) and
scikit-learn RidgeCV on identical inputs: same alphas, same contiguous
5-fold KFold, intercept fitted.

    python bench/ridge.py [--n 5000 --p 8000 --t 1000 --alphas 10 --folds 5]
    python bench/ridge.py --n 2000 --p 3000 --t 1000 --threads 1

Needs numpy, scikit-learn, himalaya and torch in the running Python and a
release build (target/release/voxlab, or $VOXLAB). Times are wall-clock
seconds of the fit alone (data loading excluded); voxlab's is measured inside
the script (bench/ridge.rhai). Agreement: fraction of targets whose chosen
alpha equals himalaya's, and the largest prediction difference relative to
the predictions' scale.
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

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=5000)
ap.add_argument("--p", type=int, default=8000)
ap.add_argument("--t", type=int, default=1000)
ap.add_argument("--alphas", type=int, default=10)
ap.add_argument("--folds", type=int, default=5)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--skip-sklearn", action="store_true")
ap.add_argument("--skip-himalaya", action="store_true")
args = ap.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
voxlab = os.environ.get("VOXLAB", os.path.join(root, "target/release/voxlab"))
threads = args.threads  # the same for every tool

rng = np.random.default_rng(0)
n, p, t = args.n, args.p, args.t
n_test = 200
x = rng.standard_normal((n + n_test, p), dtype=np.float32)
w = rng.standard_normal((p, t), dtype=np.float32) / np.sqrt(p)
snr = np.logspace(0.5, -1.5, t).astype(np.float32)
y = (x @ w) * snr + rng.standard_normal((n + n_test, t), dtype=np.float32)
x, xt, y = x[:n], x[n:], y[:n]
alphas = np.logspace(-1, 6, args.alphas)

tmp = tempfile.mkdtemp(prefix="voxlab-bench-ridge-")
np.save(os.path.join(tmp, "x.npy"), x)
np.save(os.path.join(tmp, "y.npy"), y)
np.save(os.path.join(tmp, "xtest.npy"), xt)

print(f"ridge CV: n={n} p={p} targets={t} alphas={len(alphas)} folds={args.folds} "
      f"float32, {threads} threads")
rows = []

# voxlab
alist = "[" + ", ".join(repr(float(a)) for a in alphas) + "]"
out = subprocess.run(
    [voxlab, "run", os.path.join(root, "bench/ridge.rhai"), "--set", f"dir={tmp}",
     "--set", f"alphas={alist}", "--set", f"cv={args.folds}", "--out", os.path.join(tmp, "run")],
    capture_output=True, text=True, check=True,
    env=dict(os.environ, VOXLAB_THREADS=str(threads)))
vox_s = float([l for l in out.stdout.splitlines() if l.startswith("fit_s=")][-1][6:])
vox_pred = np.load(os.path.join(tmp, "voxlab_pred.npy"))
vox_alphas = np.load(os.path.join(tmp, "voxlab_alphas.npy"))
rows.append(("voxlab fit_ridge", vox_s, None, None))

if not args.skip_himalaya:
    import torch
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HRidgeCV
    from himalaya.scoring import r2_score
    torch.set_num_threads(threads)
    backend = set_backend("torch")
    X = torch.from_numpy(x)
    Y = torch.from_numpy(y)
    t0 = time.perf_counter()
    hm = HRidgeCV(alphas=alphas, fit_intercept=True, cv=args.folds,
                  solver_params=dict(score_func=r2_score, warn=False)).fit(X, Y)
    h_s = time.perf_counter() - t0
    h_pred = backend.to_numpy(hm.predict(torch.from_numpy(xt)))
    h_alphas = backend.to_numpy(hm.best_alphas_)
    same = np.mean(np.isclose(h_alphas, vox_alphas, rtol=1e-4))
    diff = np.abs(h_pred - vox_pred).max() / np.abs(h_pred).max()
    rows.append(("himalaya RidgeCV (torch cpu)", h_s, same, diff))

if not args.skip_sklearn:
    from sklearn.linear_model import RidgeCV as SRidgeCV
    from sklearn.model_selection import KFold
    t0 = time.perf_counter()
    sm = SRidgeCV(alphas=alphas, fit_intercept=True, cv=KFold(args.folds)).fit(x, y)
    s_s = time.perf_counter() - t0
    rows.append((f"scikit-learn RidgeCV (shared alpha={sm.alpha_:.3g})", s_s, None, None))

print(f"{'tool':<44} {'fit s':>9} {'vs voxlab':>10} {'same alpha':>11} {'max pred diff':>14}")
for name, s, same, diff in rows:
    ratio = s / vox_s
    same_t = "" if same is None else f"{same:.3f}"
    diff_t = "" if diff is None else f"{diff:.2e}"
    print(f"{name:<44} {s:>9.2f} {ratio:>9.2f}x {same_t:>11} {diff_t:>14}")
