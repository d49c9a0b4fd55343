"""Stage 0: the VAE as an autoencoder on HR patches (the paper reuses SD's pretrained f8d4; none is
available here, so ours is trained first and then frozen).

Loss: L1(decoder(mean + n), x) + 0.1 * MSE, on HR patches in [-1, 1], where mean is the posterior mean
(the only thing the pipeline ever encodes to) and n a small Gaussian perturbation (std 0.1 x the batch's
latent std, not back-propagated through the std) so the decoder tolerates the U-Net's imprecise x0.
No KL term: the latent's scale is fixed afterwards by scaling_factor = 1 / std(latents of HR patches)
(as SD chose 0.18215), so the diffusion stages see unit-variance latents.

quant_conv's bias is held at zero (encoder.conv_out has its own bias, so nothing is lost): the latent
mean is then linear in quant_conv's weight alone, which stage 2's LoRA initialisation relies on.

Validation: reconstruction PSNR (RGB) of the validation photos' HR crops (the score that picks nothing
here: stage 0 keeps its last weights; it is logged so the ceiling is known before stage 1 starts).
"""

import numpy as np
import torch

from common import encode_mean, psnr
from data import to_tensor01
from loop import Stage

LR = 1e-3
BATCH = 8
WARMUP = 100
NOISE = 0.1
VAL_EVERY = 2000


def stage(vae, hr_pool, val_hr, steps, dev):
    """hr_pool / val_hr: uint8 [N,S,S,3]. The Stage that trains `vae` in place."""
    with torch.no_grad():
        vae.quant_conv.bias.zero_()
    vae.quant_conv.bias.requires_grad_(False)

    def step(_, g):
        x = to_tensor01(hr_pool[g.integers(0, len(hr_pool), BATCH)], dev) * 2 - 1
        mean = vae.encode(x).latent_dist.mean
        n = torch.from_numpy(g.standard_normal(tuple(mean.shape)).astype(np.float32)).to(dev)
        rec = vae.decode(mean + NOISE * mean.detach().std() * n).sample
        l1, mse = (rec - x).abs().mean(), ((rec - x) ** 2).mean()
        return dict(loss=l1 + 0.1 * mse, l1=l1)

    @torch.no_grad()
    def validate():
        vae.eval()
        x = to_tensor01(val_hr, dev) * 2 - 1
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        return dict(score=psnr((rec + 1) / 2, (x + 1) / 2))

    return Stage(name="vae", steps=steps, lr=LR, warmup=WARMUP, params=[p for p in vae.parameters()
                                                                           if p.requires_grad],
                 modules=dict(vae=vae), step=step, validate=validate, val_every=VAL_EVERY, train_modes=[vae])


@torch.no_grad()
def set_scaling_factor(vae, hr_pool, dev):
    """scaling_factor = 1 / std of the HR latents (posterior means of up to 1024 pool patches)."""
    vae.eval()
    vae.register_to_config(scaling_factor=1.0)
    zs = [encode_mean(vae, to_tensor01(hr_pool[i:i + 64], dev) * 2 - 1) for i in range(0, min(len(hr_pool), 1024), 64)]
    sf = float(1.0 / torch.cat(zs).std())
    vae.register_to_config(scaling_factor=sf)
    return sf
