"""Beliy et al.'s two training stages in PyTorch: the model and loop that
voxlab's train_beliy runs (src/models/beliy.rs, small config), for the
throughput comparison with bench/beliy_train.rhai.

Same shapes (600 pairs of 32 px images — the 64 px stimuli block-averaged —
and V voxels, 20 test stimuli × 4 repeats, 300 unlabeled images), the same
layers, penalties, losses, batch mix (48 pairs + 16 unlabeled images + 16
unlabeled fMRI, stacked as the authors' batches; the frozen encoder
normalising with batch statistics in stage 2), batch norms (eps 1e-3, weights from U(0, 1)), optimisers (SGD Nesterov, then Adam) and a torchvision
ResNet18 (random, frozen) for the perceptual loss. Threads: THREADS when
given (with OMP_NUM_THREADS set alike), else libtorch's default.
Usage: python bench/beliy_train.py VOXELS EPOCHS [THREADS]
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

V = int(sys.argv[1]) if len(sys.argv) > 1 else 2728
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
if len(sys.argv) > 3:
    torch.set_num_threads(int(sys.argv[3]))
N, S, BATCH, UNPAIRED = 600, 32, 48, 16
torch.manual_seed(0)
images64 = torch.rand(N, 3, 64, 64)
betas = torch.randn(N, V)
test = torch.randn(80, V)
extra64 = torch.rand(300, 3, 64, 64)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def group_lasso(w4, l1, gl, gl_n=0.5):
    sq = w4.square()
    p = F.pad(sq, (1, 1, 1, 1), mode="replicate")
    h, w = sq.shape[2], sq.shape[3]
    avg = (p[:, :, 0:h, 1:w + 1] + p[:, :, 2:h + 2, 1:w + 1] + p[:, :, 1:h + 1, 0:w] + p[:, :, 1:h + 1, 2:w + 2]) / 4
    sq = (sq + gl_n * avg) / (1 + gl_n)
    return l1 * w4.abs().mean() + gl * (sq.mean(1) + 1e-12).sqrt().mean()


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 5, 2, 2)
        self.bn1 = nn.BatchNorm2d(32, eps=1e-3)
        self.blocks = nn.ModuleList([nn.Conv2d(32, 16, 3, 2, 1), nn.Conv2d(16, 16, 3, 2, 1)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(16, eps=1e-3), nn.BatchNorm2d(16, eps=1e-3)])
        self.fc = nn.Linear(16 * 4 * 4, V)

    def forward(self, x, p, frozen=False):
        # frozen: batch statistics without updating the running ones (stage 2)
        norm = (lambda b, h: F.batch_norm(h, None, None, b.weight, b.bias, True, 0.0, b.eps)) if frozen else (lambda b, h: b(h))
        h = norm(self.bn1, F.relu(self.conv1((x - MEAN) / STD)))
        for c, b in zip(self.blocks, self.bns):
            h = norm(b, F.relu(c(h)))
        h = h.flatten(1)
        if p > 0:
            h = F.dropout(h, p, True)
        return self.fc(h)

    def penalty(self):
        # the paper's weights scaled to a 4×4×16 map (as voxlab: per-weight strength kept)
        reg = group_lasso(self.fc.weight.reshape(V, 16, 4, 4), 10.0 * 16 / 196 * 16 / 32, 800.0 * 16 / 196)
        for c in self.blocks:
            reg = reg + 1e-5 * c.weight.abs().sum() + 1e-3 * c.weight.square().sum()
        return reg


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(V, 32 * 4 * 4)
        self.blocks = nn.ModuleList([nn.Conv2d(32, 32, 3, 1, 1) for _ in range(3)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(32, eps=1e-3) for _ in range(3)])
        self.out = nn.Conv2d(32, 3, 3, 1, 1)

    def forward(self, y):
        h = self.fc(y).reshape(-1, 32, 4, 4)
        for c, b in zip(self.blocks, self.bns):
            h = b(F.interpolate(F.relu(c(h)), scale_factor=2, mode="nearest"))
        return torch.sigmoid(self.out(h))

    def penalty(self):
        reg = group_lasso(self.fc.weight.t().reshape(V, 32, 4, 4), 20.0 * 16 / 196 * 32 / 64, 400.0 * 16 / 196)
        for c in list(self.blocks) + [self.out]:
            reg = reg + 1e-5 * c.weight.abs().sum()
        return reg


def uniform_bn_weights(module):
    # voxlab's Beliy batch norms start their weights from U(0, 1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.0, 1.0)
    return module


def shift(x, m=2):
    p = F.pad(x, (m, m, m, m), mode="replicate")
    off = torch.randint(2 * m + 1, (x.shape[0], 2))
    return torch.stack([p[i, :, off[i, 0]:off[i, 0] + S, off[i, 1]:off[i, 1] + S] for i in range(x.shape[0])])


def neg_cos(a, b):
    return -F.cosine_similarity(a, b, 1, 1e-8).mean()


t0 = time.perf_counter()
x = F.adaptive_avg_pool2d(images64, S)
xu_all = F.adaptive_avg_pool2d(extra64, S)
mean, sd = betas.mean(0, keepdim=True), betas.std(0, keepdim=True).clamp_min(1e-6)
y = (betas - mean) / sd
groups = [((test - mean) / sd)[k * 4:(k + 1) * 4] for k in range(20)]
means = torch.stack([g.mean(0) for g in groups])
snr = means.var(0, unbiased=False) / (torch.stack([g.var(0, unbiased=False) for g in groups]).mean(0) + 1e-12)
snr = (snr / snr.mean()).reshape(1, V)

enc = uniform_bn_weights(Encoder())
opt = torch.optim.SGD(enc.parameters(), lr=0.1, momentum=0.9, nesterov=True)
for epoch in range(EPOCHS):
    enc.train()
    perm = torch.randperm(N)
    for s in range(0, N, BATCH):
        idx = perm[s:s + BATCH]
        pred = enc(shift(x[idx]), 0.5)
        loss = F.mse_loss(pred, y[idx]) + 0.1 * neg_cos(pred, y[idx]) + enc.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
enc.eval()
for p in enc.parameters():
    p.requires_grad_(False)

net = torchvision.models.resnet18(num_classes=1).eval()
for p in net.parameters():
    p.requires_grad_(False)


def stages(img):
    z = (img - MEAN) / STD
    a = net.bn1(net.conv1(z))
    h = net.maxpool(F.relu(a))
    h = net.layer1[0](h)
    b = net.layer1[1]
    o = b.bn2(b.conv2(F.relu(b.bn1(b.conv1(h)))))
    return a, o


with torch.no_grad():
    a, o = stages(x)
    scales = [x.abs().mean((0, 2, 3), keepdim=True), a.abs().mean((0, 2, 3), keepdim=True), o.abs().mean((0, 2, 3), keepdim=True)]


def image_loss(r, t):
    ra, ro = stages(r)
    with torch.no_grad():
        ta, to = stages(t)
    l = 0.15 * ((r - t).abs() / (scales[0] + 1e-6)).mean()
    l = l + 0.7 * ((ra - ta).abs() / (scales[1] + 1e-6)).mean() + 0.15 * ((ro - to).abs() / (scales[2] + 1e-6)).mean()
    d = (r[:, :, 1:, :-1] - r[:, :, :-1, :-1]).square() + (r[:, :, :-1, 1:] - r[:, :, :-1, :-1]).square()
    return l + (d + 1e-8).pow(1.25).mean()


dec = uniform_bn_weights(Decoder())
opt = torch.optim.Adam(dec.parameters(), lr=1e-3)
for epoch in range(EPOCHS):
    dec.train()
    perm = torch.randperm(N)
    for s in range(0, N, BATCH):
        idx = perm[s:s + BATCH]
        w = UNPAIRED / (len(idx) + UNPAIRED)
        rows = []
        for k in torch.randint(20, (UNPAIRED,)).tolist():
            keep = torch.randint(3, (4,)) == 0
            if keep.sum() == 0:
                keep[torch.randint(4, (1,))] = True
            rows.append(groups[k][keep].mean(0))
        yu = torch.stack(rows)
        # The authors' batches: D on the pairs' fMRI stacked with the
        # unlabeled fMRI, and on E's predictions for the shifted pairs'
        # images stacked with the unlabeled images.
        out = dec(torch.cat([y[idx], yu]))
        paired = image_loss(out[:len(idx)], x[idx])
        xu = xu_all[torch.randint(xu_all.shape[0], (UNPAIRED,))]
        with torch.no_grad():
            codes = enc(torch.cat([shift(x[idx]), xu]), 0.25, frozen=True)
        unl_img = image_loss(dec(codes)[len(idx):], xu)
        back = enc(out, 0.25, frozen=True)[len(idx):]
        unl_fmri = ((back - yu).abs() * snr).mean() + 0.1 * neg_cos(back, yu)
        loss = (1 - w) * paired + w * unl_img + w * unl_fmri + dec.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
seconds = time.perf_counter() - t0
print(json.dumps({"model": "beliy_small", "pytorch_s": round(seconds, 3), "voxels": V, "pairs": N,
                  "epochs": EPOCHS, "threads": torch.get_num_threads()}))
