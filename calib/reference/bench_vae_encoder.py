"""PyTorch baseline for `cargo bench --bench vae_encoder`: diffusers AutoencoderKL (SD VAE config),
encoder + quant_conv + posterior mean at 256x256, fp32, on this machine's CPU threads.

Run from the repository root with the reference venv:
    /tmp/f2i-ref-venv/bin/python calib/reference/bench_vae_encoder.py [threads]
Prints the median of 10 timed runs after 2 warm-ups.
"""

import json
import statistics
import sys
import time

import torch
from diffusers import AutoencoderKL


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    cfg = json.load(open("tests/data/pack/manifests/vae_sd.json"))["config"]
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    torch.manual_seed(0)
    vae = AutoencoderKL(**cfg).eval()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    times = []
    with torch.no_grad():
        for i in range(12):
            t0 = time.perf_counter()
            z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
            dt = time.perf_counter() - t0
            if i >= 2:
                times.append(dt)
    print(f"torch {torch.__version__}, {threads} threads: SD VAE encoder 256x256 median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}), output {tuple(z.shape)}")


if __name__ == "__main__":
    main()
