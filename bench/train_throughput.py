"""Training throughput: voxlab's trainer against the identical PyTorch model
and loop on the CPU (the issue's goal: >= 0.95x).

Two networks, the same in both tools (bench/train_throughput.rs builds them
from src/models/nn): a 6-layer post-norm transformer encoder (vocabulary 1000,
64 tokens, width 256, 4 heads, MLP 1024, GELU, mean pool, 10-way head, cross-
entropy) and a small UNet-style conv stack of diffusers blocks (conv_in 3->64,
ResnetBlock2D 64/64, down, 64/128, down, 128/128, up, 128/64, up, 64/64,
GroupNorm+SiLU+conv_out; MSE on 32x32 images). Batches of 32, AdamW (lr 1e-4,
weight decay 0.01), shuffled indices, no dropout. Each tool warms up for one
epoch, then times two epochs of STEPS steps.

    python bench/train_throughput.py [--steps 20 --threads 2]

Run with the torch of ~/.cache/voxlab/venv-torch-2.11.0 (the libtorch voxlab
links). Writes bench/results/train_throughput.json, which docs/performance.md
quotes (a test checks the quotes).
"""
import argparse
import json
import os
import subprocess
import sys
import time

_t = next((sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--threads"), "2")
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = _t

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 32


class Attention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        b, l, d = x.shape
        split = lambda t: t.view(b, l, self.h, d // self.h).transpose(1, 2)
        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return self.o(y.transpose(1, 2).reshape(b, l, d))


class Block(nn.Module):  # BertLayer: post-norm
    def __init__(self, d=256, h=4, m=1024):
        super().__init__()
        self.attn, self.n1 = Attention(d, h), nn.LayerNorm(d, eps=1e-12)
        self.fc1, self.fc2, self.n2 = nn.Linear(d, m), nn.Linear(m, d), nn.LayerNorm(d, eps=1e-12)

    def forward(self, x):
        x = self.n1(x + self.attn(x))
        return self.n2(x + self.fc2(F.gelu(self.fc1(x))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(1000, 256), nn.Embedding(64, 256)
        self.layers = nn.ModuleList(Block() for _ in range(6))
        self.head = nn.Linear(256, 10)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))[None]
        for layer in self.layers:
            x = layer(x)
        return self.head(x.mean(1))


class ResBlock(nn.Module):  # diffusers' ResnetBlock2D without a timestep
    def __init__(self, a, b):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(32, a, eps=1e-6), nn.Conv2d(a, b, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(32, b, eps=1e-6), nn.Conv2d(b, b, 3, padding=1)
        self.short = nn.Conv2d(a, b, 1) if a != b else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.short(x) if self.short is not None else x) + h


class Unet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, 64, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(64, 64), ResBlock(64, 128), ResBlock(128, 128), ResBlock(128, 64), ResBlock(64, 64)])
        self.downs = nn.ModuleList([nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.Conv2d(128, 128, 3, stride=2, padding=1)])
        self.ups = nn.ModuleList([nn.Conv2d(128, 128, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)])
        self.norm_out, self.conv_out = nn.GroupNorm(32, 64, eps=1e-6), nn.Conv2d(64, 3, 3, padding=1)

    def forward(self, x):
        b = self.blocks
        up = lambda conv, h: conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = b[0](self.conv_in(x))
        h = b[1](self.downs[0](h))
        h = b[2](self.downs[1](h))
        h = b[3](up(self.ups[0], h))
        h = b[4](up(self.ups[1], h))
        return self.conv_out(F.silu(self.norm_out(h)))


def torch_run(name):
    torch.manual_seed(0)
    n = BATCH * args.steps
    if name == "transformer":
        model, x, y = Encoder(), torch.randint(1000, (n, 64)), torch.randint(10, (n,))
        loss_fn = F.cross_entropy
    else:
        model, x, y = Unet(), torch.randn(n, 3, 32, 32), torch.randn(n, 3, 32, 32)
        loss_fn = F.mse_loss
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    model.train()

    def epoch():
        for idx in torch.randperm(n).split(BATCH):
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    epoch()  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    epoch()
    last = epoch()
    s, cpu = time.perf_counter() - t0, time.process_time() - c0
    params = sum(p.numel() for p in model.parameters())
    return {"tool": "pytorch", "model": name, "params": params, "steps": 2 * args.steps,
            "seconds": s, "cpu_s": cpu, "steps_per_s": 2 * args.steps / s, "threads": args.threads, "last_loss": last}


def voxlab_run(name):
    env = dict(os.environ, VOXLAB_THREADS=str(args.threads))
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "--features", "bench", "--example", "train_throughput", "--", name, str(args.steps)],
        cwd=root, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


results = []
for name in ("transformer", "unet"):
    v, p = voxlab_run(name), torch_run(name)
    assert v["params"] == p["params"], f"{name}: parameter counts differ ({v['params']} vs {p['params']})"
    ratio = p["seconds"] / v["seconds"]
    cpu_ratio = p["cpu_s"] / v["cpu_s"]
    results.append({"model": name, "params": p["params"], "steps": p["steps"], "voxlab_s": round(v["seconds"], 3),
                    "pytorch_s": round(p["seconds"], 3), "ratio": round(ratio, 2),
                    "voxlab_cpu_s": round(v["cpu_s"], 3), "pytorch_cpu_s": round(p["cpu_s"], 3),
                    "cpu_ratio": round(cpu_ratio, 2), "threads": args.threads,
                    "load_average": round(os.getloadavg()[0], 1)})
    print(f"{name}: {p['params']} parameters, {p['steps']} steps: voxlab {v['seconds']:.2f} s "
          f"({v['cpu_s']:.2f} s CPU), PyTorch {p['seconds']:.2f} s ({p['cpu_s']:.2f} s CPU), "
          f"ratio {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU")
os.makedirs(os.path.join(root, "bench/results"), exist_ok=True)
with open(os.path.join(root, "bench/results/train_throughput.json"), "w") as f:
    json.dump({"torch": torch.__version__, "results": results}, f, indent=1)
    f.write("\n")
