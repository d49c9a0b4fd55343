"""Deterministic, name-seeded parameter formula for the real-width engine goldens.

The Rust tests re-implement exactly this, so large weights never have to be stored in the repo.

For a tensor named ``name`` (the module's state_dict key, e.g. ``resnets.0.conv1.weight``) with shape S:

    seed = FNV-1a 64-bit of the UTF-8 bytes of name
           (h = 0xcbf29ce484222325; for each byte b: h = (h ^ b) * 0x100000001b3 mod 2^64)
    for element index i (row-major, 0-based):
        z = seed + (i + 1) * 0x9E3779B97F4A7C15      (mod 2^64)
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9     (mod 2^64)
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB     (mod 2^64)
        z =  z ^ (z >> 31)
        u = (z >> 40) / 2^24                         # in [0, 1), exact in f64
        r = 2u - 1
    value = r / sqrt(prod(S[1:]))   if len(S) >= 2                                  (weights: +-1/sqrt(fan_in))
            1 + 0.2 r               if len(S) == 1 and name ends with ".weight"     (norm scales)
            0.1 r                   if name ends with ".bias"
            0.5 r                   otherwise
    computed in float64 (sqrt of the float64 product), then cast (round-to-nearest) to float32.

(The rules are tried top to bottom: a >= 2-D tensor is always "weight-like", whatever its name.)

Inputs (``formula_input``, for goldens too large to store their input): an activation-like [C, H, W]
tensor named ``name``, with r(n, i) the r above for the name n and index i. For channel c, row y,
column x (flat index i = (c*H + y)*W + x), in float64 with the operations in this order:

    m  = 0.5 * r(name + "#mean", c)              per-channel offset, [-0.5, 0.5)
    g  = r(name + "#smooth", c)                  per-channel amplitude of a smooth bump, [-1, 1)
    s  = 1 + 0.5 * r(name + "#scale", c)         per-channel noise scale, [0.5, 1.5)
    uy = (y + 0.5) / H;  py = (4 * uy) * (1 - uy)          (bump in (0, 1], peak mid-image)
    ux = (x + 0.5) / W;  px = (4 * ux) * (1 - ux)
    value = (m + g * (py * px)) + s * (sqrt(3) * r(name, i))     (noise: unit variance times s)

then cast (round-to-nearest) to float32. Only IEEE-754 +, -, *, / and sqrt, each correctly rounded,
so any language reproduces it bit for bit (no transcendental functions, no fused multiply-add).
"""

import math

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1

_CHUNK = 1 << 22


def fnv1a64(name: str) -> int:
    h = FNV_OFFSET
    for b in name.encode("utf-8"):
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def _r_chunk(seed: np.uint64, start: int, stop: int) -> np.ndarray:
    """r for element indices start..stop-1 (vectorised; uint64 arithmetic wraps mod 2^64)."""
    k = np.arange(start + 1, stop + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = seed + k * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return 2.0 * u - 1.0


def _transform(name: str, shape, r):
    if len(shape) >= 2:
        return r / math.sqrt(float(math.prod(shape[1:])))
    if len(shape) == 1 and name.endswith(".weight"):
        return 1.0 + 0.2 * r
    if name.endswith(".bias"):
        return 0.1 * r
    return 0.5 * r


def formula_tensor(name: str, shape) -> np.ndarray:
    """The whole tensor as a float32 numpy array of the given shape."""
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    seed = np.uint64(fnv1a64(name))
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        out[start:stop] = _transform(name, shape, _r_chunk(seed, start, stop)).astype(np.float32)
    return out.reshape(shape)


def formula_scalar(name: str, shape, i: int) -> float:
    """Element i (row-major) in plain Python integers/floats: an independent check of formula_tensor."""
    z = (fnv1a64(name) + (i + 1) * GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    z = z ^ (z >> 31)
    r = 2.0 * ((z >> 40) / float(1 << 24)) - 1.0
    return float(np.float32(_transform(name, tuple(shape), r)))


def formula_state_dict(shapes: dict) -> dict:
    """{name: shape} -> {name: torch float32 tensor}."""
    import torch

    return {k: torch.from_numpy(formula_tensor(k, s)) for k, s in shapes.items()}


def _r_scalar(name: str, i: int) -> float:
    z = (fnv1a64(name) + (i + 1) * GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    z = z ^ (z >> 31)
    return 2.0 * ((z >> 40) / float(1 << 24)) - 1.0


def _bump(n: int) -> np.ndarray:
    u = (np.arange(n, dtype=np.float64) + 0.5) / float(n)
    return (4.0 * u) * (1.0 - u)


def formula_input(name: str, shape) -> np.ndarray:
    """The [C, H, W] input of the module docstring as a float32 numpy array."""
    c, h, w = (int(s) for s in shape)
    m = 0.5 * _r_chunk(np.uint64(fnv1a64(name + "#mean")), 0, c)
    g = _r_chunk(np.uint64(fnv1a64(name + "#smooth")), 0, c)
    s = 1.0 + 0.5 * _r_chunk(np.uint64(fnv1a64(name + "#scale")), 0, c)
    bump = _bump(h)[:, None] * _bump(w)[None, :]  # py * px, [H, W]
    r = _r_chunk(np.uint64(fnv1a64(name)), 0, c * h * w).reshape(c, h, w)
    sqrt3 = math.sqrt(3.0)
    v = (m[:, None, None] + g[:, None, None] * bump[None]) + s[:, None, None] * (sqrt3 * r)
    return v.astype(np.float32)


def formula_input_scalar(name: str, shape, i: int) -> float:
    """Element i of formula_input in plain Python floats: an independent check."""
    c, h, w = (int(s) for s in shape)
    ch, y, x = i // (h * w), (i // w) % h, i % w
    m = 0.5 * _r_scalar(name + "#mean", ch)
    g = _r_scalar(name + "#smooth", ch)
    s = 1.0 + 0.5 * _r_scalar(name + "#scale", ch)
    uy = (y + 0.5) / h
    ux = (x + 0.5) / w
    py = (4.0 * uy) * (1.0 - uy)
    px = (4.0 * ux) * (1.0 - ux)
    v = (m + g * (py * px)) + s * (math.sqrt(3.0) * _r_scalar(name, i))
    return float(np.float32(v))
