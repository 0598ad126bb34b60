"""Caption generation (beam 3) on the tiny BLIP twin: voxlab's `caption`
against transformers' `generate` with the same settings on the same image
features (the issue's goal: >= 1x).

    ~/.cache/voxlab/venv-fixtures/bin/python bench/caption_generate.py [--n 64 --threads 2]

Both decode the same image-token features (the vision model's output on
random images, computed once in Python and passed to voxlab as .npy), with
num_beams 3, max_length 20, min_length 5, repetition_penalty 1.5; generation
time only. The token ids must be identical. Writes
bench/results/caption_generate.json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_t = next((sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--threads"), "2")
os.environ["OMP_NUM_THREADS"] = _t
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import BlipForConditionalGeneration  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
model_dir = os.path.join(root, "tests/fixtures/hf/tiny-blip")
voxlab = os.environ.get("VOXLAB", os.path.join(root, "target/release/voxlab"))

model = BlipForConditionalGeneration.from_pretrained(model_dir, attn_implementation="eager").eval()
torch.manual_seed(0)
pixels = torch.rand(args.n, 3, 32, 32)
with torch.no_grad():
    feats = model.vision_model(pixel_values=pixels).last_hidden_state
settings = dict(num_beams=3, max_length=20, min_length=5, repetition_penalty=1.5)


def generate(f):
    bos = torch.full((f.shape[0], 1), model.config.text_config.bos_token_id, dtype=torch.long)
    return model.text_decoder.generate(input_ids=bos, eos_token_id=model.config.text_config.sep_token_id,
                                       pad_token_id=model.config.text_config.pad_token_id,
                                       encoder_hidden_states=f, encoder_attention_mask=torch.ones(f.shape[:2], dtype=torch.long),
                                       **settings)


with torch.no_grad():
    generate(feats[:2])
    t0 = time.perf_counter()
    ids = generate(feats)
    py_s = time.perf_counter() - t0

tmp = tempfile.mkdtemp()
np.save(os.path.join(tmp, "features.npy"), feats.numpy())
script = os.path.join(tmp, "gen.rhai")
with open(script, "w") as f:
    f.write(f"""let cap = load_captioner({json.dumps(model_dir)});
let z = load_npy({json.dumps(os.path.join(tmp, "features.npy"))});
caption(cap, z.rows(arange(2)), #{{beams: 3, max_len: 20, min_len: 5, repetition_penalty: 1.5}});
let t0 = timestamp();
let c = caption(cap, z, #{{beams: 3, max_len: 20, min_len: 5, repetition_penalty: 1.5, batch: {args.n}}});
record("seconds", t0.elapsed);
save_json(c, "captions.json");
""")
out = subprocess.run([voxlab, "run", script, "--out", os.path.join(tmp, "o")], capture_output=True, text=True,
                     env=dict(os.environ, VOXLAB_THREADS=str(args.threads)))
if out.returncode != 0:
    sys.exit(f"voxlab failed:\n{out.stderr}")
run = json.load(open(os.path.join(tmp, "o/run.json")))
vox_s = float(run["metrics"]["seconds"])
ours = json.load(open(os.path.join(tmp, "o/captions.json")))
from transformers import AutoTokenizer  # noqa: E402
theirs = AutoTokenizer.from_pretrained(model_dir).batch_decode(ids, skip_special_tokens=True)
same = sum(a.strip() == b.strip() for a, b in zip(ours, theirs))
print(f"caption generation, tiny BLIP, {args.n} images, beam 3, max_length 20: voxlab {vox_s:.3f} s, "
      f"transformers {py_s:.3f} s, ratio {py_s / vox_s:.2f}x; identical captions {same}/{args.n} "
      f"| load average {os.getloadavg()[0]:.1f}")
os.makedirs(os.path.join(root, "bench/results"), exist_ok=True)
with open(os.path.join(root, "bench/results/caption_generate.json"), "w") as f:
    json.dump({"images": args.n, "threads": args.threads, "voxlab_s": round(vox_s, 3), "transformers_s": round(py_s, 3),
               "ratio": round(py_s / vox_s, 2), "identical": same, "load_average": round(os.getloadavg()[0], 1)}, f, indent=1)
    f.write("\n")
