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
networks also see larger context (inference runs the whole photo as one tile).
"""

import numpy as np
import torch

from common import DINO_MEAN, Budget, alphas_cumprod, dino_tokens, log  # noqa: F401
from data import to_tensor01
from optim import adamw, running_mean, set_lr, update

LR = 4e-4
BATCH = 8
BATCH_LARGE = 2
WARMUP = 200


def train_fm(unet, dino, pools, dino_size, minutes, seed, logfile, steps=None):
    """pools: list of dicts {"z0": float tensor [N,C,h,w], "lr": uint8 [N,h,w,3]} (small, large)."""
    g = np.random.default_rng(seed)
    torch.manual_seed(seed)
    unet.train()
    dino.train()
    params = list(unet.parameters()) + list(dino.parameters())
    opt = adamw(params, LR, weight_decay=1e-4)
    abar = alphas_cumprod().float()
    budget = Budget(minutes, steps)
    step, ema = 0, None
    while not budget.done():
        pool, b = (pools[1], BATCH_LARGE) if (step % 4 == 3 and len(pools) > 1) else (pools[0], BATCH)
        idx = g.integers(0, len(pool["lr"]), b)
        z0 = pool["z0"][idx]
        lr01 = to_tensor01(pool["lr"][idx])
        t = torch.from_numpy(g.integers(0, 1000, b))
        eps = torch.from_numpy(g.standard_normal(z0.shape).astype(np.float32))
        a = abar[t].reshape(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
        set_lr(opt, LR, step, WARMUP, budget.frac())
        ctx = dino_tokens(dino, lr01, dino_size)
        pred = unet(zt, t, encoder_hidden_states=ctx).sample
        loss = ((pred - eps) ** 2).mean()
        update(opt, loss, params)
        ema = running_mean(ema, loss.item())
        step += 1
        budget.tick()
        if step % 200 == 0:
            log(f"fm step {step} eps-mse {ema:.4f} ({budget.elapsed() / 60:.1f} min)", logfile)
    unet.eval()
    dino.eval()
    log(f"fm done: {step} steps in {budget.elapsed() / 60:.1f} min; eps-mse (EMA) {ema:.4f}", logfile)
    return dict(steps=step, minutes=budget.elapsed() / 60, eps_mse=ema)
