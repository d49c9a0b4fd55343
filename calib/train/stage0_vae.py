"""Stage 0: the VAE as an autoencoder on HR patches (the paper reuses SD's pretrained f8d4; none is
available here, so ours is trained first and then frozen).

Loss: L1(decoder(mean + n), x) + 0.1 * MSE, on HR patches in [-1, 1], where mean is the posterior mean
(the only thing the pipeline ever encodes to) and n a small Gaussian perturbation (std 0.1 x the batch's
latent std, not back-propagated through the std) so the decoder tolerates the U-Net's imprecise x0.
No KL term: the latent's scale is fixed afterwards by scaling_factor = 1 / std(latents of HR patches)
(as SD chose 0.18215), so the diffusion stages see unit-variance latents.

quant_conv's bias is held at zero (encoder.conv_out has its own bias, so nothing is lost): the latent
mean is then linear in quant_conv's weight alone, which stage 2's LoRA initialisation relies on.
"""

import numpy as np
import torch

from common import Budget, encode_mean, log, psnr
from data import to_tensor01
from optim import adamw, running_mean, set_lr, update

LR = 1e-3
BATCH = 8
WARMUP = 100
NOISE = 0.1


def train_vae(vae, hr_pool, val_hr, minutes, seed, logfile, steps=None):
    """hr_pool / val_hr: uint8 [N,S,S,3] (training photos only). Trains in place; returns stats."""
    g = np.random.default_rng(seed)
    torch.manual_seed(seed)
    vae.train()
    with torch.no_grad():
        vae.quant_conv.bias.zero_()
    vae.quant_conv.bias.requires_grad_(False)
    opt = adamw([p for p in vae.parameters() if p.requires_grad], LR)
    budget = Budget(minutes, steps)
    step, ema = 0, None
    while not budget.done():
        idx = g.integers(0, len(hr_pool), BATCH)
        x = to_tensor01(hr_pool[idx]) * 2 - 1
        set_lr(opt, LR, step, WARMUP, budget.frac())
        mean = vae.encode(x).latent_dist.mean
        z = mean + NOISE * mean.detach().std() * torch.randn_like(mean)
        rec = vae.decode(z).sample
        loss = (rec - x).abs().mean() + 0.1 * ((rec - x) ** 2).mean()
        update(opt, loss, vae.parameters())
        ema = running_mean(ema, loss.item())
        step += 1
        budget.tick()
        if step % 200 == 0:
            log(f"vae step {step} loss {ema:.4f} ({budget.elapsed() / 60:.1f} min)", logfile)
    vae.eval()
    sf, val_psnr = finish(vae, hr_pool, val_hr)
    log(f"vae done: {step} steps in {budget.elapsed() / 60:.1f} min; scaling_factor {sf:.5f}; "
        f"validation reconstruction PSNR (RGB, training-photo patches) {val_psnr:.2f} dB", logfile)
    return dict(steps=step, minutes=budget.elapsed() / 60, scaling_factor=sf, val_psnr_rgb=val_psnr)


@torch.no_grad()
def finish(vae, hr_pool, val_hr):
    """Sets scaling_factor = 1 / std of HR latents (means); returns it and the validation PSNR."""
    vae.register_to_config(scaling_factor=1.0)
    zs = [encode_mean(vae, to_tensor01(hr_pool[i:i + 64]) * 2 - 1) for i in range(0, min(len(hr_pool), 1024), 64)]
    sf = float(1.0 / torch.cat(zs).std())
    vae.register_to_config(scaling_factor=sf)
    x = to_tensor01(val_hr) * 2 - 1
    rec = vae.decode(encode_mean(vae, x) / sf).sample.clamp(-1, 1)
    return sf, psnr((rec + 1) / 2, (x + 1) / 2)
