"""bleu and rouge_l against nltk and rouge-score on 10,000 candidate/reference
sets (seeded caption grammar, 5 references per candidate, candidates edited
copies of a reference or of another item's, mixed case and punctuation).

    ~/.cache/voxlab/venv-fixtures/bin/python bench/caption_metrics.py [--n 10000 --refs 5]
    ... --skip-voxlab      # the Python figures alone

Python side: nltk.translate.bleu_score.corpus_bleu (BLEU-1…4 in one call with
a list of weights; tokens text.lower().split(), done inside the timing as
voxlab tokenises inside its), sentence_bleu with SmoothingFunction().method1
per candidate, and rouge_score's RougeScorer(['rougeL']).score_multi per
candidate. voxlab side: bench/caption_metrics.rhai through target/release/voxlab
(or $VOXLAB), times measured inside the script (JSON loading excluded), with
VOXLAB_THREADS threads (2 by default). Both read the same JSON file. Writes
bench/results/caption_metrics.json.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=10000)
ap.add_argument("--refs", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--permutations", type=int, default=100)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--skip-voxlab", action="store_true")
args = ap.parse_args()

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu  # noqa: E402
from rouge_score import rouge_scorer  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
voxlab = os.environ.get("VOXLAB", os.path.join(root, "target/release/voxlab"))

COLOURS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]
SHAPES = ["square", "circle", "triangle", "star", "cross", "ring", "diamond"]
SIZES = ["small", "large", "big", "tiny", ""]
PLACES = ["on the left", "on the right", "at the top", "in the middle", "near the bottom", "in a corner"]
BGS = ["on a striped background", "on grass", "over water", "on a plain wall", "in the dark", "on sand"]
SWAPS = ["thing", "object", "shape", "A", "Red", "the", "some", "picture"]


def caption(rng):
    parts = []
    for _ in range(rng.randint(1, 3)):
        parts.append(" ".join(w for w in ["a", rng.choice(SIZES), rng.choice(COLOURS), rng.choice(SHAPES), rng.choice(PLACES)] if w))
    s = " and ".join(parts) + " " + rng.choice(BGS)
    if rng.random() < 0.3:
        s = s.capitalize()
    return s + ("." if rng.random() < 0.4 else "")


def make(n, k, seed):
    rng = random.Random(seed)
    refs = [[caption(rng) for _ in range(k)] for _ in range(n)]
    cands = []
    for i in range(n):
        src = refs[i] if rng.random() < 0.8 else refs[rng.randrange(n)]
        words = rng.choice(src).split()
        for _ in range(rng.randint(0, 5)):
            j = rng.randrange(len(words))
            op = rng.random()
            if op < 0.4 and len(words) > 3:
                del words[j]
            elif op < 0.8:
                words[j] = rng.choice(SWAPS)
            else:
                words.insert(j, rng.choice(SWAPS))
        cands.append(" ".join(words))
    return cands, refs


cands, refs = make(args.n, args.refs, args.seed)
tmp = tempfile.mkdtemp(prefix="voxlab-bench-captions-")
data_path = os.path.join(tmp, "captions.json")
with open(data_path, "w", encoding="utf-8") as f:
    json.dump({"candidates": cands, "references": refs}, f)

W = [(1.0,), (1 / 2,) * 2, (1 / 3,) * 3, (1 / 4,) * 4]
warnings.simplefilter("ignore")
t0 = time.perf_counter()
hyps = [c.lower().split() for c in cands]
rl = [[r.lower().split() for r in rs] for rs in refs]
py_bleu = corpus_bleu(rl, hyps, weights=W)
bleu_s = time.perf_counter() - t0

t0 = time.perf_counter()
hyps = [c.lower().split() for c in cands]
rl = [[r.lower().split() for r in rs] for rs in refs]
sf = SmoothingFunction().method1
py_sent = [sentence_bleu(r, h, weights=W, smoothing_function=sf) for r, h in zip(rl, hyps)]
sent_s = time.perf_counter() - t0

scorer = rouge_scorer.RougeScorer(["rougeL"])
t0 = time.perf_counter()
py_rouge = [scorer.score_multi(rs, c)["rougeL"].fmeasure for c, rs in zip(cands, refs)]
rouge_s = time.perf_counter() - t0
py_rouge_mean = sum(py_rouge) / len(py_rouge)
py_sent4 = sum(s[3] for s in py_sent) / len(py_sent)

print(f"caption metrics: {args.n} candidates × {args.refs} references, {args.threads} threads for voxlab "
      f"(Python single-threaded) | load average {os.getloadavg()[0]:.1f}")
print(f"{'task':<44} {'voxlab s':>9} {'python s':>9} {'ratio':>8}")
rows = [("corpus BLEU-1..4 vs nltk corpus_bleu", "bleu_seconds", bleu_s),
        ("sentence BLEU method1 vs nltk sentence_bleu", "sentence_bleu_seconds", sent_s),
        ("ROUGE-L vs rouge-score score_multi", "rouge_l_seconds", rouge_s)]
if args.skip_voxlab or not os.path.exists(voxlab):
    if not args.skip_voxlab:
        print(f"(no voxlab binary at {voxlab}: build with `cargo build --release`, or set $VOXLAB)")
    for task, _, py in rows:
        print(f"{task:<44} {'-':>9} {py:>9.3f} {'-':>8}")
    sys.exit(0)

out_dir = os.path.join(tmp, "run")
out = subprocess.run(
    [voxlab, "run", os.path.join(root, "bench/caption_metrics.rhai"), "--set", f"data={data_path}",
     "--set", f"permutations={args.permutations}", "--out", out_dir],
    capture_output=True, text=True, env=dict(os.environ, VOXLAB_THREADS=str(args.threads)))
if out.returncode != 0:
    sys.exit(f"voxlab failed:\n{out.stdout}\n{out.stderr}")
with open(os.path.join(out_dir, "run.json"), encoding="utf-8") as f:
    m = json.load(f)["metrics"]
result = {"candidates": args.n, "references_per_candidate": args.refs, "threads": args.threads}
for task, key, py in rows:
    vs = float(m[key])
    print(f"{task:<44} {vs:>9.4f} {py:>9.3f} {py / vs:>7.1f}x")
    name = key.replace("_seconds", "")
    result[f"{name}_voxlab_s"] = round(vs, 4)
    result[f"{name}_python_s"] = round(py, 3)
    result[f"{name}_ratio"] = round(py / vs, 1)
cs = float(m["caption_scores_seconds"])
print(f"{'caption_scores, ' + str(args.permutations) + ' permutations (no encoder)':<44} {cs:>9.3f}")
diff_bleu = max(abs(float(m["bleu"][f"bleu{k + 1}"]) - py_bleu[k]) for k in range(4))
diff_rouge = abs(float(m["rouge_l"]) - py_rouge_mean)
diff_sent = abs(float(m["sentence_bleu4_mean"]) - py_sent4)
print(f"    agreement: corpus BLEU max |diff| {diff_bleu:.1e}, mean sentence BLEU-4 {diff_sent:.1e}, "
      f"mean ROUGE-L {diff_rouge:.1e}")
print("ratio = python time / voxlab time (above 1: voxlab is faster)")
result.update({"caption_scores_permutations": args.permutations, "caption_scores_voxlab_s": round(cs, 3),
               "max_abs_diff_bleu": float(f"{diff_bleu:.1e}"), "abs_diff_rouge_l_mean": float(f"{diff_rouge:.1e}"),
               "abs_diff_sentence_bleu4_mean": float(f"{diff_sent:.1e}"),
               "load_average": round(os.getloadavg()[0], 1)})
os.makedirs(os.path.join(root, "bench/results"), exist_ok=True)
with open(os.path.join(root, "bench/results/caption_metrics.json"), "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
