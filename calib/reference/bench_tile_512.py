"""PyTorch baseline for `cargo bench --bench tile_512`: one 512x512 output tile through SD VAE
(encode + decode), DINOv2-L/14 at 224 and the SD-2.1-base U-Net at t=999, fp32, CPU, composed as
DESIGN.md section 1 (random weights; the work does not depend on them).

Run from the repository root with the reference venv:
    /tmp/f2i-ref-venv/bin/python calib/reference/bench_tile_512.py [threads]
"""

import json
import sys
import time

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import Dinov2Config, Dinov2Model


def config(name):
    cfg = json.load(open(f"tests/data/pack/manifests/{name}.json"))["config"]
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    vae = AutoencoderKL(**config("vae_sd")).eval()
    unet = UNet2DConditionModel(**config("unet_sd21_base")).eval()
    dino = Dinov2Model(Dinov2Config(**config("dinov2_large"))).eval()
    print(f"models built in {time.perf_counter() - t0:.1f} s, torch {torch.__version__}, {threads} threads")
    lr01 = torch.rand(1, 3, 128, 128)
    a = torch.cumprod(1 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2, 0)[999]
    c1, c2 = float((1 - a).sqrt()), float(a.sqrt())
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        for run in range(1, 4):
            t = time.perf_counter()
            lq = F.interpolate(lr01 * 2 - 1, size=(512, 512), mode="bicubic", align_corners=False).clamp(-1, 1)
            z = vae.encode(lq).latent_dist.mean * vae.config.scaling_factor
            px = (F.interpolate(lr01, size=(224, 224), mode="bicubic", align_corners=False) - mean) / std
            ctx = dino(pixel_values=px).last_hidden_state
            eps = unet(z, torch.tensor([999]), encoder_hidden_states=ctx).sample
            x0 = (z - c1 * eps) / c2
            dec = vae.decode(x0 / vae.config.scaling_factor).sample.clamp(-1, 1)
            print(f"run {run}: 512x512 tile {time.perf_counter() - t:.2f} s, output {tuple(dec.shape)}")


if __name__ == "__main__":
    main()
