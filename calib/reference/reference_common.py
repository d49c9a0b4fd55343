"""Pieces shared by the calib/reference golden generators and calib/train: the pinned reference
versions (the same as requirements.txt), the fan-in rule for weight scales, and the pipeline's
constants and wavelet colour fix in PyTorch (as src/pipeline/ computes them)."""

import importlib
import math
import sys

import torch
import torch.nn.functional as F

PINNED = {
    "torch": "2.15.0",
    "diffusers": "0.42.1",
    "transformers": "5.24.0",
    "peft": "0.21.2",
    "safetensors": "0.8.0",
}


# DINOv2's input normalisation (ImageNet statistics) and the wavelet colour fix's levels.
DINO_MEAN = (0.485, 0.456, 0.406)
DINO_STD = (0.229, 0.224, 0.225)
WAVELET_LEVELS = 5


def check_versions(pinned=PINNED, requirements="calib/reference/requirements.txt"):
    """Stops with a message unless every module of `pinned` (import name -> version) is installed
    at that version."""
    have = {k: importlib.import_module(k).__version__.split("+")[0] for k in pinned}
    bad = {k: (have[k], v) for k, v in pinned.items() if have[k] != v}
    if bad:
        sys.exit(f"wrong reference versions (have, want): {bad}; see {requirements}")


def fan_in(shape):
    return max(1, math.prod(shape[1:])) if len(shape) > 1 else max(1, shape[0])


def wavelet_blur(x, r):
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=x.dtype, device=x.device) / 16.0
    k = k[None, None].repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), k, groups=x.shape[1], dilation=r)


def wavelet_decompose(img):
    """(high, low): the sum of WAVELET_LEVELS dilated-blur detail layers, and the residual blur."""
    high = torch.zeros_like(img)
    low = None
    for i in range(WAVELET_LEVELS):
        low = wavelet_blur(img, 2 ** i)
        high = high + (img - low)
        img = low
    return high, low
