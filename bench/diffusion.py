"""Latent diffusion: voxlab's Stable Diffusion code against diffusers (PyTorch
eager) on the CPU, the same small pipeline and the same threads.

The small config is voxlab's `diffusion_pipeline()` default: AutoencoderKL
(block_out_channels 16/32/32, one resnet per level, 8 groups, 4 latent
channels: 32 px images <-> 8x8x4 latents) and UNet2DConditionModel (32/64,
CrossAttnDownBlock2D x2 / CrossAttnUpBlock2D x2, linear projections, 2 heads,
8 groups, cross_attention_dim 32), DDIM with Stable Diffusion's scaled-linear
betas. diffusers builds it with random weights and saves it; voxlab loads that
folder, so both run the same weights on the same inputs:

- UNet forward + backward (MSE), batch 8 of 8x8x4 latents, 8 context tokens;
- a 50-step DDIM sample with classifier-free guidance (scale 5), batch 4
  (the UNet sees 8), from the same initial latents (the results are compared);
- VAE encode (posterior mean) and decode, batch 8 of 32x32 images.

    cargo build --release --features bench --example diffusion
    ~/.cache/voxlab/venv-fixtures/bin/python bench/diffusion.py [--threads 1 --repeats 5]

Writes bench/results/diffusion.json, which docs/performance.md quotes (a test
checks the quotes). Median of `repeats` runs after one warm-up (the sample: of
at most 3).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_t = next((sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--threads"), "1")
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = _t
os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
import diffusers  # noqa: E402
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--repeats", type=int, default=5)
args = ap.parse_args()
torch.set_num_threads(args.threads)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


torch.manual_seed(0)
vae = AutoencoderKL(block_out_channels=(16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
                    up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=1, norm_num_groups=8,
                    latent_channels=4, sample_size=32, scaling_factor=1.0).eval()
unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                            layers_per_block=1, down_block_types=("CrossAttnDownBlock2D",) * 2,
                            up_block_types=("CrossAttnUpBlock2D",) * 2, cross_attention_dim=32,
                            attention_head_dim=2, norm_num_groups=8, use_linear_projection=True)
scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)

g = torch.Generator().manual_seed(1)
inputs = {
    "train_latents": torch.randn((8, 4, 8, 8), generator=g),
    "train_timesteps": torch.randint(0, 1000, (8,), generator=g),
    "train_context": torch.randn((8, 8, 32), generator=g),
    "sample_latents": torch.randn((4, 4, 8, 8), generator=g),
    "sample_cond": torch.randn((4, 8, 32), generator=g),
    "sample_uncond": torch.randn((4, 8, 32), generator=g),
    "vae_images": torch.rand((8, 3, 32, 32), generator=g) * 2 - 1,
    "vae_latents": torch.randn((8, 4, 8, 8), generator=g),
}

with tempfile.TemporaryDirectory() as d:
    pipe = StableDiffusionPipeline(vae=vae, unet=unet, scheduler=scheduler, text_encoder=None, tokenizer=None,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(d, safe_serialization=True)
    save_file(inputs, os.path.join(d, "inputs.safetensors"))
    out = subprocess.run(
        [os.path.join(root, "target/release/examples/diffusion"), d, str(args.repeats), str(args.threads)],
        cwd=root, capture_output=True, text=True, check=True)
    vox = json.loads(out.stdout.strip().splitlines()[-1])
    vox_latents = load_file(os.path.join(d, "voxlab_out.safetensors"))["latents"]

x, t, ctx = inputs["train_latents"], inputs["train_timesteps"], inputs["train_context"]
unet.train()


def train_step():
    unet.zero_grad()
    out = unet(x, t, encoder_hidden_states=ctx).sample
    ((out - x) ** 2).mean().backward()


py = {"unet_train_step_s": median(train_step, args.repeats)}
unet.eval()
pipe.set_progress_bar_config(disable=True)
res = {}


def sample():
    with torch.no_grad():
        res["z"] = pipe(prompt_embeds=inputs["sample_cond"], negative_prompt_embeds=inputs["sample_uncond"],
                        num_inference_steps=50, guidance_scale=5.0, latents=inputs["sample_latents"].clone(),
                        output_type="latent").images


py["ddim50_sample_s"] = median(sample, min(args.repeats, 3))
with torch.no_grad():
    py["vae_encode_s"] = median(lambda: vae.encode(inputs["vae_images"]).latent_dist.mean, args.repeats)
    py["vae_decode_s"] = median(lambda: vae.decode(inputs["vae_latents"]).sample, args.repeats)

diff = (res["z"] - vox_latents).abs().max().item()
tasks = [("unet_train_step_s", "UNet forward + backward, batch 8"),
         ("ddim50_sample_s", "50-step DDIM sample with guidance, batch 4"),
         ("vae_encode_s", "VAE encode, 8 images 32 px"),
         ("vae_decode_s", "VAE decode, 8 latents 8x8x4")]
results = [{"task": key, "what": what, "voxlab_s": round(vox[key], 4), "diffusers_s": round(py[key], 4),
            "ratio": round(py[key] / vox[key], 2)} for key, what in tasks]
record = {"threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
          "diffusers": diffusers.__version__, "sample_max_abs_diff": float(f"{diff:.2e}"),
          "load_average": os.getloadavg()[0], "results": results}
with open(os.path.join(root, "bench/results/diffusion.json"), "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
print(json.dumps(record, indent=1))
