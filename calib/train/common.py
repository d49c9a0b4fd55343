"""Shared pieces of the demo-model training: pinned versions, the DDPM schedule, and the one-step SR
forward exactly as the Rust engine runs it (docs: DESIGN.md section 1, src/pipeline/one_step.rs,
calib/reference/make_pipeline_goldens.py). Stage 2 trains through `sr_forward`, evaluate.py
runs it as the PyTorch reference, so what is trained is what the engine computes.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
# OpenMP threads sleep instead of spinning at barriers: on a 2-core machine shared with other jobs, the
# default spin-wait makes these small networks up to 50x slower whenever one core is taken.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# the reference stack's pieces (pins, DINOv2 normalisation, wavelet colour fix): one definition
# for the goldens and for training
sys.path.insert(0, str(ROOT / "calib" / "reference"))
import reference_common  # noqa: E402
from reference_common import DINO_MEAN, DINO_STD, wavelet_decompose  # noqa: E402, F401

PINNED = {**reference_common.PINNED, "skimage": "0.26.0"}

SCALE = 4
TIMESTEP = 999
TRAIN_TIMESTEPS = 1000


def check_versions():
    """Stops with a message unless the installed stack is the pinned one (requirements.txt)."""
    reference_common.check_versions(PINNED, "calib/train/requirements.txt")


def quiet():
    import diffusers
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    import warnings

    warnings.filterwarnings("ignore")


def alphas_cumprod():
    """SD's DDPM `scaled_linear` schedule: sqrt(beta) linear from sqrt(0.00085) to sqrt(0.012), 1000 steps,
    cumulative product in float64 (as src/pipeline/scheduler.rs)."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, TRAIN_TIMESTEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0)


def x0_coefficients(t):
    """(c1, c2) = (sqrt(1 - abar_t), sqrt(abar_t)) rounded to float32, so x0 = (z - c1 * eps) / c2."""
    a = alphas_cumprod()[t].item()
    return float(np.float32((1 - a) ** 0.5)), float(np.float32(a ** 0.5))


def dino_pixels(lr01, size):
    """LR in [0, 1] -> the DINOv2 input: bicubic to size x size (no clamp), ImageNet-normalised."""
    px = F.interpolate(lr01, size=(size, size), mode="bicubic", align_corners=False)
    mean = torch.tensor(DINO_MEAN, dtype=lr01.dtype, device=lr01.device).reshape(1, 3, 1, 1)
    std = torch.tensor(DINO_STD, dtype=lr01.dtype, device=lr01.device).reshape(1, 3, 1, 1)
    return (px - mean) / std


def dino_tokens(dino, lr01, size):
    return dino(pixel_values=dino_pixels(lr01, size)).last_hidden_state


def bicubic_lq(lr01, scale=SCALE):
    """lq = clamp(bicubic(2 * lr - 1, x scale), -1, 1): what the VAE encoder sees."""
    h, w = lr01.shape[-2:]
    lr = lr01 * 2 - 1
    return F.interpolate(lr, size=(scale * h, scale * w), mode="bicubic", align_corners=False).clamp(-1, 1)


def encode_mean(vae, x):
    """The pipeline's latent: posterior mean (no sampling) times scaling_factor (no shift_factor)."""
    return vae.encode(x).latent_dist.mean * vae.config.scaling_factor


def wavelet_color_fix(sr01, lq01):
    """The engine's default colour fix: high frequencies of the SR, low frequencies of the bicubic."""
    return wavelet_decompose(sr01)[0] + wavelet_decompose(lq01)[1]


def sr_forward(vae, unet, dino, lr01, dino_size, timestep=TIMESTEP, clamp=True, return_x0=False):
    """The engine's one-step SR of an LR batch [N,3,h,w] in [0,1] (sizes: multiples of 2 so the HR is a
    multiple of 8, i.e. no reflect pad needed). Returns (fixed01, dec[, x0]) where dec is the decoder output in
    [-1, 1] (clamped if `clamp`) and fixed01 the wavelet-colour-fixed SR in [0, 1] before quantisation."""
    lq = bicubic_lq(lr01)
    z = encode_mean(vae, lq)
    ctx = dino_tokens(dino, lr01, dino_size)
    t = torch.full((lr01.shape[0],), timestep, dtype=torch.long, device=lr01.device)
    eps = unet(z, t, encoder_hidden_states=ctx).sample
    c1, c2 = x0_coefficients(timestep)
    x0 = (z - c1 * eps) / c2
    dec = vae.decode(x0 / vae.config.scaling_factor).sample
    if clamp:
        dec = dec.clamp(-1, 1)
    fixed = wavelet_color_fix((dec + 1) / 2, (lq + 1) / 2)
    return (fixed, dec, x0) if return_x0 else (fixed, dec)


def psnr(a, b):
    """Plain RGB PSNR of tensors in [0, 1] (training logs only; reported numbers come from `f2idiff eval`)."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def psnr_y(a, b):
    """Mean PSNR on Y (BasicSR's conventions: both rounded to u8, Y of BT.601 in [16, 235], 4-pixel border
    cropped) over a batch of [N,3,H,W] in [0, 1]: the validation score; per-image, then averaged."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64, device=a.device).reshape(1, 3, 1, 1)

    def y(x):
        return ((torch.round(x.clamp(0, 1) * 255).double() / 255) * w).sum(1) + 16.0

    d = (y(a) - y(b))[:, 4:-4, 4:-4]
    mse = (d ** 2).mean(dim=(1, 2)).clamp_min(1e-10)
    return float((10 * torch.log10(255.0 ** 2 / mse)).mean())


def log(msg, file=None):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if file is not None:
        with open(file, "a") as f:
            f.write(line + "\n")
