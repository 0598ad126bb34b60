"""Training throughput of train_voxel_gan (Yu et al. 2020's voxel-conditioned
GAN, src/models/voxel_gan.rs) against the identical PyTorch model and loop on
the CPU (the issue's goal: >= 0.95x).

The same networks in both tools (parameter counts checked): conditioning
augmentation Linear(V -> 2c), c = mu + sigma*eps; generator Linear(z+c ->
16*8ngf, no bias) + BatchNorm1d + ReLU -> 4x4 -> up-blocks (nearest x2, 3x3
conv, BatchNorm2d, ReLU) -> 3x3 conv -> tanh; discriminator 4x4 stride-2
down-blocks (BatchNorm after the first, LeakyReLU 0.2) -> its own
Linear(V -> c) + LeakyReLU of the voxels tiled 4x4 and concatenated -> 3x3 conv + BatchNorm + LeakyReLU -> 4x4 conv to a logit. The
loop is the usual PyTorch GAN loop (as the DCGAN example): per batch the
matching-aware discriminator loss (real/own voxels, real/rolled voxels x 0.5,
detached fakes x 0.5) and its Adam step, then the non-saturating generator
loss + 2 KL and its Adam step (2e-4, betas 0.5, 0.999). Random voxels and
images, batches of 64, shuffled. Each tool trains one epoch to warm up, then
times a fresh model's two epochs of STEPS steps (model construction and voxel
standardisation included on both sides).

    python bench/voxel_gan.py [--steps 10 --threads 2 --size 32 --voxels 3354]
    VOXLAB_EXAMPLE=target/release/examples/voxel_gan python bench/voxel_gan.py ...

Run with the torch of ~/.cache/voxlab/venv-torch-2.11.0 (the libtorch voxlab
links). Writes bench/results/voxel_gan.json.
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
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--size", type=int, default=32)
ap.add_argument("--voxels", type=int, default=3354)
ap.add_argument("--ngf", type=int, default=16)
ap.add_argument("--ndf", type=int, default=16)
args = ap.parse_args()
torch.set_num_threads(args.threads)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, Z, C = 64, 100, 64


class UpBlock(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b)

    def forward(self, x):
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))))


class DownBlock(nn.Module):
    def __init__(self, a, b, norm):
        super().__init__()
        self.conv = nn.Conv2d(a, b, 4, stride=2, padding=1, bias=not norm)
        self.norm = nn.BatchNorm2d(b) if norm else None

    def forward(self, x):
        h = self.conv(x)
        return F.leaky_relu(self.norm(h) if self.norm is not None else h, 0.2)


def stages(size):
    return (size // 4).bit_length() - 1


class Generator(nn.Module):
    def __init__(self, voxels, size, ngf):
        super().__init__()
        ch = lambda k: max((ngf * 8) >> k, ngf // 2)
        n = stages(size)
        self.c0 = ngf * 8
        self.ca = nn.Linear(voxels, 2 * C)
        self.fc = nn.Linear(Z + C, self.c0 * 16, bias=False)
        self.fc_norm = nn.BatchNorm1d(self.c0 * 16)
        self.ups = nn.ModuleList(UpBlock(ch(k - 1), ch(k)) for k in range(1, n + 1))
        self.conv_out = nn.Conv2d(ch(n), 3, 3, padding=1)

    def condition(self, y):
        return self.ca(y).chunk(2, 1)

    def forward(self, z, c):
        h = F.relu(self.fc_norm(self.fc(torch.cat([z, c], 1)))).view(-1, self.c0, 4, 4)
        for b in self.ups:
            h = b(h)
        return torch.tanh(self.conv_out(h))


class Discriminator(nn.Module):
    def __init__(self, voxels, size, ndf):
        super().__init__()
        self.cond_fc = nn.Linear(voxels, C)
        ch = lambda k: ndf << min(k - 1, 3)
        n = stages(size)
        self.downs = nn.ModuleList(DownBlock(3 if k == 1 else ch(k - 1), ch(k), k > 1) for k in range(1, n + 1))
        top = ch(n)
        self.joint_conv = nn.Conv2d(top + C, top, 3, padding=1, bias=False)
        self.joint_norm = nn.BatchNorm2d(top)
        self.logits = nn.Conv2d(top, 1, 4, stride=4)

    def forward(self, x, y):
        h = x
        for b in self.downs:
            h = b(h)
        cond = F.leaky_relu(self.cond_fc(y), 0.2)
        tiled = cond.view(cond.shape[0], cond.shape[1], 1, 1).expand(-1, -1, 4, 4)
        h = F.leaky_relu(self.joint_norm(self.joint_conv(torch.cat([h, tiled], 1))), 0.2)
        return self.logits(h).view(-1)


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def train(voxels, images, epochs):
    torch.manual_seed(0)
    y_all = (voxels - voxels.mean(0)) / voxels.std(0)
    x_all = images * 2 - 1
    g = Generator(voxels.shape[1], args.size, args.ngf)
    d = Discriminator(voxels.shape[1], args.size, args.ndf)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g.train()
    d.train()
    n = voxels.shape[0]
    for _ in range(epochs):
        for idx in torch.randperm(n).split(BATCH):
            y, x = y_all[idx], x_all[idx]
            mu, logvar = g.condition(y)
            c = mu + (logvar * 0.5).exp() * torch.randn_like(mu)
            fake = g(torch.randn(len(idx), Z), c)
            real = d(x, y)
            wrong = d(x, y.roll(1, 0))
            fake_d = d(fake.detach(), y)
            d_loss = bce(real, 1.0) + 0.5 * bce(wrong, 0.0) + 0.5 * bce(fake_d, 0.0)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_adv = bce(d(fake, y), 1.0)
            kl = ((mu.square() + logvar.exp() - logvar - 1) * 0.5).mean()
            g_loss = g_adv + 2.0 * kl
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
    params = sum(p.numel() for p in g.parameters()) + sum(p.numel() for p in d.parameters())
    return params, d_loss.item()


def torch_run():
    torch.manual_seed(0)
    n = BATCH * args.steps
    voxels = torch.randn(n, args.voxels)
    images = torch.rand(n, 3, args.size, args.size)
    train(voxels, images, 1)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    params, last = train(voxels, images, 2)
    s, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"tool": "pytorch", "params": params, "steps": 2 * args.steps, "seconds": s, "cpu_s": cpu,
            "steps_per_s": 2 * args.steps / s, "threads": args.threads, "last_d_loss": last}


def voxlab_run():
    env = dict(os.environ, VOXLAB_THREADS=str(args.threads))
    # VOXLAB_EXAMPLE: an already built target/release/examples/voxel_gan (else cargo builds it).
    built = os.environ.get("VOXLAB_EXAMPLE")
    cmd = ([built] if built else ["cargo", "run", "--quiet", "--release", "--features", "bench", "--example", "voxel_gan", "--"]) + [
        str(args.steps), str(args.size), str(args.voxels), str(args.ngf), str(args.ndf)]
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


v, p = voxlab_run(), torch_run()
assert v["params"] == p["params"], f"parameter counts differ ({v['params']} vs {p['params']})"
ratio = p["seconds"] / v["seconds"]
cpu_ratio = p["cpu_s"] / v["cpu_s"]
result = {"model": "voxel_gan", "image_size": args.size, "voxels": args.voxels, "ngf": args.ngf, "ndf": args.ndf,
          "batch": BATCH, "params": p["params"], "steps": p["steps"], "voxlab_s": round(v["seconds"], 3),
          "pytorch_s": round(p["seconds"], 3), "ratio": round(ratio, 2), "voxlab_cpu_s": round(v["cpu_s"], 3),
          "pytorch_cpu_s": round(p["cpu_s"], 3), "cpu_ratio": round(cpu_ratio, 2), "threads": args.threads,
          "load_average": round(os.getloadavg()[0], 1)}
print(f"voxel_gan: {p['params']} parameters, {p['steps']} steps: voxlab {v['seconds']:.2f} s "
      f"({v['cpu_s']:.2f} s CPU), PyTorch {p['seconds']:.2f} s ({p['cpu_s']:.2f} s CPU), "
      f"ratio {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (load average {result['load_average']})")
os.makedirs(os.path.join(root, "bench/results"), exist_ok=True)
with open(os.path.join(root, "bench/results/voxel_gan.json"), "w") as f:
    json.dump({"torch": torch.__version__, "results": [result]}, f, indent=1)
    f.write("\n")
