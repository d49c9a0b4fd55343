"""Stage 1: the feature-to-image foundation model (paper section 3.1, Fig. 3b).

A U-Net learns DDPM epsilon-prediction on HR latents (frozen stage-0 VAE, z0 = posterior mean x
scaling_factor), conditioned by cross-attention on DINOv2 tokens. SD's schedule: scaled_linear betas,
1000 steps, t uniform in [0, 999], z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps, loss MSE(eps_hat, eps).

The paper conditions on a frozen pretrained DINOv2-L. None exists here, so our small Dinov2Model is
trained from scratch jointly with the U-Net through this loss (no separate self-supervised objective).
Its input is what it will see at inference: the patch's degraded LR, bicubic-resized to
dino_image_size and ImageNet-normalised (the paper assumes LR and HR features are close; a from-scratch
encoder has no such property, so it is trained on LR from the start).

Batches: mostly 64x64 HR patches (16x16 latents); every 4th step a batch of 128x128 patches, so the
networks also see larger context.

Validation: epsilon-MSE on the validation photos' crops at fixed t and noise (score = its negative;
logged only, stage 1 keeps its last weights).
"""

import numpy as np
import torch

from common import alphas_cumprod, dino_tokens
from data import to_tensor01
from loop import Stage

LR = 4e-4
BATCH = 8
BATCH_LARGE = 2
WARMUP = 200
VAL_EVERY = 2000
VAL_SEED = 7


def stage(unet, dino, pools, val, dino_size, steps, dev):
    """pools: [{"z0": float tensor [N,C,h,w] on dev, "lr": uint8 [N,h,w,3]}] (small, large);
    val: {"z0", "lr"} of the validation crops."""
    abar = alphas_cumprod().float().to(dev)

    def eps_mse(z0, lr01, t, eps):
        a = abar[t].reshape(-1, 1, 1, 1)
        pred = unet(a.sqrt() * z0 + (1 - a).sqrt() * eps, t, encoder_hidden_states=dino_tokens(dino, lr01, dino_size))
        return ((pred.sample - eps) ** 2).mean()

    def step(i, g):
        pool, b = (pools[1], BATCH_LARGE) if (i % 4 == 3 and len(pools) > 1) else (pools[0], BATCH)
        idx = g.integers(0, len(pool["lr"]), b)
        z0 = pool["z0"][idx]
        t = torch.from_numpy(g.integers(0, 1000, b)).to(dev)
        eps = torch.from_numpy(g.standard_normal(tuple(z0.shape)).astype(np.float32)).to(dev)
        loss = eps_mse(z0, to_tensor01(pool["lr"][idx], dev), t, eps)
        return dict(loss=loss)

    @torch.no_grad()
    def validate():
        unet.eval()
        dino.eval()
        g = np.random.default_rng(VAL_SEED)
        z0 = val["z0"]
        t = torch.from_numpy(g.integers(0, 1000, len(z0))).to(dev)
        eps = torch.from_numpy(g.standard_normal(tuple(z0.shape)).astype(np.float32)).to(dev)
        m = float(eps_mse(z0, to_tensor01(val["lr"], dev), t, eps))
        return dict(score=-m, eps_mse=m)

    params = list(unet.parameters()) + list(dino.parameters())
    return Stage(name="fm", steps=steps, lr=LR, warmup=WARMUP, params=params, weight_decay=1e-4,
                 modules=dict(unet=unet, dino=dino), step=step, validate=validate, val_every=VAL_EVERY,
                 train_modes=[unet, dino])
