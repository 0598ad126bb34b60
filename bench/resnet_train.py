"""ResNet18 training throughput in PyTorch: the loop train_resnet runs.

Same shapes (32×3×64×64 batches), SGD momentum 0.9, weight decay 1e-4, ImageNet
normalisation, cross-entropy; threads as libtorch's default. Run with the torch
of ~/.cache/voxlab (torchvision optional: a hand-written ResNet18 is not needed
because torchvision's is the reference).
"""
import sys
import time

import torch
import torchvision

n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
torch.manual_seed(0)
x = torch.rand(n, 3, 64, 64)
y = torch.arange(n) % 3
model = torchvision.models.resnet18(num_classes=3)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
t0 = time.perf_counter()
for epoch in range(2):
    model.train()
    perm = torch.randperm(n)
    for s in range(0, n, 32):
        idx = perm[s:s + 32]
        logits = model((x[idx] - mean) / std)
        loss = torch.nn.functional.cross_entropy(logits, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
seconds = time.perf_counter() - t0
print(f"pytorch: {2 * n} images in {seconds:.2f} s = {2 * n / seconds:.1f} images/s")
