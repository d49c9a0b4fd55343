"""Stage 2: the one-step SR network on the FM (paper section 3.2, Fig. 3d; OSEDiff-style).

PEFT LoRA adapters on the U-Net (convs, attention, projections, time embedding: LORA_UNET_TARGETS) and on
the VAE encoder + quant_conv (LORA_VAE_TARGETS); the FM weights, the VAE decoder and DINOv2 stay frozen.
The forward is common.sr_forward, the engine's pipeline step for step: bicubic x4 of the degraded LR,
VAE-encode (mean x scaling_factor), DINOv2 tokens of the LR, U-Net at t = 999, x0 = (z - sqrt(1-abar)
eps) / sqrt(abar), decode, clamp, wavelet colour fix against the bicubic.

Starting point (a reparametrisation, so that the U-Net learns a residual): at t = 999 the pipeline
computes x0 = (z - c1 eps) / c2 with 1 / c2 = 1 / sqrt(abar_999) = 14.6, so a U-Net whose output must
cancel its own input z to 1% precision is what limits a small model (run 1: the one-step output's latent
error stayed above plain bicubic's). The VAE-encoder adapter therefore also covers quant_conv with rank
latent_channels, initialised (not zero) so that the merged quant_conv scales the posterior mean by
c2 = sqrt(abar_999): z = c2 * sf * mean, x0 = sf * mean - (c1 / c2) eps, i.e. with eps = 0 the pipeline
is exactly the VAE round trip of the bicubic image, and eps only has to carry the correction. Exact
because stage 0 keeps quant_conv's bias at zero. The U-Net adapters start at zero (PEFT default), so
stage 2 starts from the FM's U-Net and DINOv2 unchanged. Everything is plain PEFT LoRA, merged by
`f2idiff pack`.

Losses (regression only; the paper's OSEDiff recipe adds LPIPS and a VSD term, left out here since the
target is fidelity and no pretrained LPIPS / teacher exists):
  L1(colour-fixed SR, HR)                       pixels in [0, 1], the image the engine outputs
  + LAT_W * MSE(x0, z0_HR)                      latents, z0_HR = frozen-encoder latent of the HR patch

Validation (the score that picks the checkpoint): mean PSNR-Y of the SR of the validation photos' crops,
realistic and clean LR together (common.psnr_y); the weights of the best validation are the ones kept.
"""

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from common import TIMESTEP, psnr_y, sr_forward, x0_coefficients
from data import to_tensor01
from loop import Stage
from models import LORA_UNET_TARGETS, LORA_VAE_DECODER_TARGETS, LORA_VAE_TARGETS

LR = 1.5e-3
BATCH = 8
BATCH_LARGE = 2
WARMUP = 100
LAT_W = 0.01
RANK_UNET, ALPHA_UNET = 16, 16
RANK_VAE, ALPHA_VAE = 8, 8
VAL_EVERY = 500


def add_lora(unet, vae, seed, quant_as_mean_scale=True, rank_unet=RANK_UNET, rank_vae=RANK_VAE, decoder=False):
    """Wraps both in place with adapters: U-Net and VAE-encoder convs start at zero (lora_B = 0), the
    quant_conv adapter at the latent-mean scaling described in the module docstring. Without
    `quant_as_mean_scale` (refine.py's round on a pack that already holds that scaling), quant_conv gets
    an ordinary zero-initialised adapter like the other encoder convs. `rank_unet` and `rank_vae` are
    the adapters' ranks (alpha scaled alike, so the scaling stays 1); `rank_unet` 0 trains every U-Net
    weight instead (refine.py's round 7). `decoder` adapts the VAE decoder and post_quant_conv too
    (LORA_VAE_DECODER_TARGETS; only in a round on a pack, refine.py's round 6)."""
    torch.manual_seed(seed)
    lc = vae.config.latent_channels
    pattern = dict(rank_pattern={"quant_conv": lc}, alpha_pattern={"quant_conv": lc}) if quant_as_mean_scale else {}
    if quant_as_mean_scale:
        assert float(vae.quant_conv.bias.abs().max()) == 0.0, "stage 0 keeps quant_conv's bias at zero"
    if rank_unet:
        alpha_unet = rank_unet * ALPHA_UNET // RANK_UNET
        pu = get_peft_model(unet, LoraConfig(r=rank_unet, lora_alpha=alpha_unet, target_modules=LORA_UNET_TARGETS,
                                             lora_dropout=0.0, bias="none"))
    else:
        pu = unet.requires_grad_(True)
    assert not (decoder and quant_as_mean_scale), "the decoder is adapted only in a round on a pack"
    targets = LORA_VAE_DECODER_TARGETS if decoder else LORA_VAE_TARGETS
    alpha_vae = rank_vae * ALPHA_VAE // RANK_VAE
    pv = get_peft_model(vae, LoraConfig(r=rank_vae, lora_alpha=alpha_vae, target_modules=targets, lora_dropout=0.0,
                                        bias="none", **pattern))
    if not quant_as_mean_scale:
        return pu, pv
    _, c2 = x0_coefficients(TIMESTEP)
    with torch.no_grad():
        q = vae.quant_conv
        a, b, s = q.lora_A["default"], q.lora_B["default"], q.scaling["default"]
        w = q.get_base_layer().weight  # [2 lc, 2 lc, 1, 1]: rows 0..lc are the mean, lc.. the log-variance
        assert a.weight.shape == (lc, w.shape[1], 1, 1) and b.weight.shape == (w.shape[0], lc, 1, 1)
        a.weight.copy_(w[:lc])
        b.weight.zero_()
        b.weight[:lc, :, 0, 0] = (c2 - 1.0) / s * torch.eye(lc)
    return pu, pv


def gradient_l1(a, b):
    """Mean absolute difference of the horizontal and vertical neighbour differences of two [N,C,H,W]
    images: an edge term that a blurred output pays for even where its pixel L1 is small."""
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]  # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]  # noqa: E731
    return ((dx(a) - dx(b)).abs().mean() + (dy(a) - dy(b)).abs().mean()) / 2


GMSD_T = 170.0 / 255.0 ** 2  # GMSD's stability constant for intensities in [0, 1]


def gmsd(a, b):
    """piq.gmsd (src/pipeline/metrics/gmsd.rs) of two [N,3,H,W] images in [0, 1], H and W even, without the
    border crop, as a differentiable mean over the batch: YIQ luma, 2x2 average pooling, Prewitt gradients with
    zero padding, the population std of the gradient-magnitude similarity map. Lower is sharper and closer."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=a.dtype, device=a.device).view(1, 3, 1, 1)
    k = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=a.dtype, device=a.device) / 3
    k = torch.stack([k, k.t()]).unsqueeze(1)  # [2,1,3,3]: d/dx, d/dy

    def magnitude(x):
        g = torch.nn.functional.conv2d(torch.nn.functional.avg_pool2d((x * w).sum(1, keepdim=True), 2), k, padding=1)
        return (g.pow(2).sum(1) + 1e-12).sqrt()

    ga, gb = magnitude(a), magnitude(b)
    gms = (2 * ga * gb + GMSD_T) / (ga ** 2 + gb ** 2 + GMSD_T)
    return gms.flatten(1).std(dim=1, unbiased=False).mean()


def stage(unet, vae, dino, pools, val, dino_size, steps, dev, lr=LR, grad_w=0.0, lat_w=LAT_W, name="sr",
          validate_first=False, large_every=4, batch_large=BATCH_LARGE, val_every=VAL_EVERY, gmsd_w=0.0):
    """unet / vae already wrapped by add_lora (their modules now hold the adapters). pools as stage 1's
    plus "hr"; val: {"hr", "lr": {condition: uint8 LR}} of the validation crops. `grad_w` weighs
    gradient_l1(SR, HR) and `lat_w` the latent MSE in the loss (run 3's stage 2: 0 and LAT_W; refine.py's
    round: an edge term and no latent term, whose target needs the stage-0 encoder that a merged pack no
    longer holds; pools need "z0" only when lat_w is set); `validate_first`
    scores the starting weights as step 0, so a round that never beats them keeps them. Every
    `large_every`-th step takes `batch_large` patches of the large pool (pools[1]), the others BATCH of
    the small one (large_every 1: large patches only). `gmsd_w` weighs gmsd(SR, HR) in the loss; validations
    report each LR kind's GMSD beside its PSNR-Y (the score stays the PSNR-Y mean)."""
    for p in dino.parameters():
        p.requires_grad_(False)
    dino.eval()
    params = [p for m in (unet, vae) for p in m.parameters() if p.requires_grad]
    adapted = (unet, vae) if isinstance(unet, PeftModel) else (vae,)  # else the U-Net is trained in full
    assert params and all(".lora_" in n for m in adapted for n, p in m.named_parameters() if p.requires_grad)

    def step(i, g):
        large = len(pools) > 1 and i % large_every == large_every - 1
        pool, b = (pools[1], batch_large) if large else (pools[0], BATCH)
        idx = g.integers(0, len(pool["lr"]), b)
        fixed, _, x0 = sr_forward(vae, unet, dino, to_tensor01(pool["lr"][idx], dev), dino_size, return_x0=True)
        hr = to_tensor01(pool["hr"][idx], dev)
        pix = (fixed - hr).abs().mean()
        loss, parts = pix, dict(l1=pix)
        if lat_w:
            parts["latent_mse"] = ((x0 - pool["z0"][idx]) ** 2).mean()
            loss = loss + lat_w * parts["latent_mse"]
        if grad_w:
            parts["grad_l1"] = gradient_l1(fixed, hr)
            loss = loss + grad_w * parts["grad_l1"]
        if gmsd_w:
            parts["gmsd"] = gmsd(fixed, hr)
            loss = loss + gmsd_w * parts["gmsd"]
        return dict(loss=loss, **parts)

    @torch.no_grad()
    def validate():
        unet.eval()
        vae.eval()
        hr = to_tensor01(val["hr"], dev)
        res, sharp = {}, {}
        for cond, lr in val["lr"].items():
            fixed, _ = sr_forward(vae, unet, dino, to_tensor01(lr, dev), dino_size)
            res[f"psnr_y_{cond}"] = psnr_y(fixed, hr)
            sharp[f"gmsd_{cond}"] = float(gmsd(fixed.clamp(0, 1), hr))
        res["score"] = sum(res.values()) / len(res)
        return {**res, **sharp}

    return Stage(name=name, steps=steps, lr=lr, warmup=WARMUP, params=params, modules=dict(unet=unet, vae=vae),
                 step=step, validate=validate, val_every=val_every, keep_best=True, train_modes=[unet, vae],
                 validate_first=validate_first)
