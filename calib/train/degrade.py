"""LR synthesis: a Real-ESRGAN-style second-order degradation (Wang et al. 2021, as the paper uses),
with milder ranges, since the paper's target is high-fidelity smartphone LR (section 3.2).

Each order: blur (isotropic or anisotropic Gaussian kernel) -> random resize (up / down / keep,
area / bilinear / bicubic) -> noise (Gaussian, colour or grey, or Poisson) -> JPEG. The second order
runs with probability P_SECOND and weaker settings; the result is finally resized to exactly HR/4
(random interpolation) and JPEG-compressed once more. Everything is driven by one numpy Generator, so a
seed reproduces the LR bit for bit (Pillow's JPEG codec is deterministic).

Written from the paper's description; no code taken from Real-ESRGAN/BasicSR.
"""

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SCALE = 4

# first order
BLUR_PROB = 0.8
BLUR_SIGMA = (0.2, 2.0)
KERNEL_SIZES = (7, 9, 11, 13, 15)
RESIZE_PROBS = (0.2, 0.5, 0.3)  # up, down, keep
RESIZE_RANGE = (0.5, 1.3)
NOISE_PROB = 0.7
GAUSS_SIGMA = (1.0, 12.0)  # u8 levels
POISSON_SCALE = (0.05, 1.5)
GRAY_NOISE_PROB = 0.4
JPEG_RANGE = (60, 95)
# second order
P_SECOND = 0.5
BLUR2_PROB = 0.6
BLUR2_SIGMA = (0.2, 1.2)
RESIZE2_RANGE = (0.7, 1.2)
GAUSS2_SIGMA = (1.0, 8.0)
POISSON2_SCALE = (0.05, 1.0)
JPEG2_RANGE = (70, 95)
# training LR: this share is the clean bicubic downscale (no blur, noise or JPEG), so that the model
# also sees sharp, clean LR (a phone's own ISP output) and does not over-sharpen it
P_CLEAN = 0.2
MODES = ("area", "bilinear", "bicubic")


def gaussian_kernel(rng, size, sigma_range):
    """Isotropic (50%) or anisotropic rotated Gaussian, normalised, size x size."""
    s1 = rng.uniform(*sigma_range)
    if rng.random() < 0.5:
        s2, theta = s1, 0.0
    else:
        s2, theta = rng.uniform(*sigma_range), rng.uniform(0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([s1 * s1, s2 * s2]) @ rot.T
    inv = np.linalg.inv(cov)
    r = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(r, r)
    pts = np.stack([xx, yy], -1)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return (k / k.sum()).astype(np.float32)


def blur(x, k):
    """x [1,3,H,W] float; per-channel 2-D convolution, reflect padding."""
    p = k.shape[0] // 2
    kt = torch.from_numpy(k)[None, None].repeat(3, 1, 1, 1)
    mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
    return F.conv2d(F.pad(x, (p, p, p, p), mode=mode), kt, groups=3)


def resize(x, h, w, mode):
    h, w = max(1, int(h)), max(1, int(w))
    if mode == "area":
        return F.interpolate(x, size=(h, w), mode="area")
    return F.interpolate(x, size=(h, w), mode=mode, align_corners=False)


def add_noise(rng, x, gauss_sigma, poisson_scale):
    if rng.random() < 0.5:
        sigma = rng.uniform(*gauss_sigma) / 255.0
        shape = (1, 1) + tuple(x.shape[-2:]) if rng.random() < GRAY_NOISE_PROB else tuple(x.shape)
        n = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) * sigma
        return x + n
    # Poisson (shot) noise, 10^k photons per unit intensity, scaled as Real-ESRGAN's "scale"
    scale = rng.uniform(*poisson_scale)
    vals = 10 ** 2.5
    xc = x.clamp(0, 1).numpy()
    if rng.random() < GRAY_NOISE_PROB:
        g = xc.mean(1, keepdims=True)
        n = rng.poisson(g * vals) / vals - g
    else:
        n = rng.poisson(xc * vals) / vals - xc
    return x + torch.from_numpy(n.astype(np.float32)) * scale


def jpeg(x, q):
    """Round to u8, JPEG at quality q (Pillow, 4:2:0), decode."""
    u8 = (x.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(q))
    back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return torch.from_numpy(back.astype(np.float32) / 255).permute(2, 0, 1)[None]


def one_order(rng, x, blur_prob, sigma, resize_range, gauss, poisson, jpeg_range):
    if rng.random() < blur_prob:
        x = blur(x, gaussian_kernel(rng, int(rng.choice(KERNEL_SIZES)), sigma))
    u = rng.random()
    if u < RESIZE_PROBS[0]:
        f = rng.uniform(1.0, resize_range[1])
    elif u < RESIZE_PROBS[0] + RESIZE_PROBS[1]:
        f = rng.uniform(resize_range[0], 1.0)
    else:
        f = 1.0
    if f != 1.0:
        h, w = x.shape[-2:]
        x = resize(x, round(h * f), round(w * f), MODES[rng.integers(3)])
    if rng.random() < NOISE_PROB:
        x = add_noise(rng, x, gauss, poisson)
    return jpeg(x, rng.uniform(*jpeg_range))


def degrade(hr_u8, rng):
    """HR uint8 [H,W,3] (H, W multiples of 4) -> LR uint8 [H/4, W/4, 3]."""
    H, W = hr_u8.shape[:2]
    assert H % SCALE == 0 and W % SCALE == 0, hr_u8.shape
    x = torch.from_numpy(hr_u8.astype(np.float32) / 255).permute(2, 0, 1)[None]
    x = one_order(rng, x, BLUR_PROB, BLUR_SIGMA, RESIZE_RANGE, GAUSS_SIGMA, POISSON_SCALE, JPEG_RANGE)
    if rng.random() < P_SECOND:
        # the second order works at an intermediate size, as in Real-ESRGAN (between HR and LR)
        h, w = x.shape[-2:]
        f = rng.uniform(0.5, 1.0)
        x = resize(x, round(h * f), round(w * f), MODES[rng.integers(3)])
        x = one_order(rng, x, BLUR2_PROB, BLUR2_SIGMA, RESIZE2_RANGE, GAUSS2_SIGMA, POISSON2_SCALE, JPEG2_RANGE)
    x = resize(x, H // SCALE, W // SCALE, MODES[rng.integers(3)])
    x = jpeg(x, rng.uniform(*JPEG_RANGE))
    return (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def clean(hr_u8):
    """HR uint8 [H,W,3] -> the clean LR: Pillow BICUBIC (antialiased) downscale by SCALE."""
    h, w = hr_u8.shape[0] // SCALE, hr_u8.shape[1] // SCALE
    return np.asarray(Image.fromarray(hr_u8).resize((w, h), Image.BICUBIC))


def training_lr(hr_u8, rng):
    """The LR of a training patch: `clean` with probability P_CLEAN, else `degrade`."""
    return clean(hr_u8) if rng.random() < P_CLEAN else degrade(hr_u8, rng)
