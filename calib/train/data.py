"""Training and held-out data: photos bundled inside the scikit-image 0.26 wheel (skimage/data/*.png,
*.jpg; no download), each with the licence its `skimage.data` docstring states.

Held out (never cropped for training; only evaluate.py reads them):
  chelsea    Chelsea the cat, 300x451.      "No copyright restrictions. CC0 by the photographer
                                            (Stefan van der Walt)."
  coffee     Coffee cup, 400x600.           Courtesy of Pikolo Espresso Bar. "No copyright restrictions.
                                            CC0 by the photographer (Rachel Michetti)."

Training (colour):
  astronaut  Eileen Collins, NASA Great Images database. "No known copyright restrictions, released into
             the public domain."
  rocket     DSCOVR launch on Falcon 9, SpaceX photos, "released in the public domain".
  hubble_deep_field  Hubble eXtreme Deep Field, NASA, "may be freely used in the public domain".
  retina     Fundus photograph (Mikael Haggstrom, Wikimedia Commons), "CC0 1.0 Universal Public Domain
             Dedication".
  immunohistochemistry  IHC staining, Center for Microscopy And Molecular Imaging. "No known copyright
             restrictions."
Training (grey, replicated to RGB, for texture and edges):
  camera     "No copyright restrictions. CC0 by the photographer (Lav Varshney)."
  coins      Greek coins, Brooklyn Museum Collection. "No known copyright restrictions."
  brick      From CC0Textures (Bricks25), "Creative Commons CC0 License".
  grass      From DeviantArt (linolafett), "Creative Commons CC0 License".
  gravel     From CC0Textures (Gravel04), "Creative Commons CC0 License".
  text       Wikipedia File:Corner.png, "No known copyright restrictions, released into the public domain".
  cell       Quantitative phase image (Paul Mueller et al.), "This image is CC0, dedicated to the public
             domain."

Sample images whose docstring states no licence (moon, page, colorwheel, logo) and the motion-blurred
clock are not used.

Patches: random crops of a training photo downscaled by one of SCALES (Pillow LANCZOS, done once;
more sharp detail per pixel, more scales), random flip / 90-degree rotation; crops
with almost no texture (the black surround of `retina`, the sky of `hubble`) are rejected. Colour photos
are drawn 2:1 over grey ones (by photo count). The LR of each HR patch comes from degrade.degrade.
"""

import numpy as np
import skimage
import skimage.data
from PIL import Image

from degrade import SCALE, degrade

HELD_OUT = ("chelsea", "coffee")
TRAIN_COLOUR = ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry")
TRAIN_GREY = ("camera", "coins", "brick", "grass", "gravel", "text", "cell")
COLOUR_WEIGHT = 2.0
MIN_STD = 6.0  # u8 levels; reject flat crops
SCALES = (1.0, 0.85, 0.7, 0.55)


def load_photo(name):
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    assert img.dtype == np.uint8 and img.shape[2] == 3, (name, img.shape, img.dtype)
    return np.ascontiguousarray(img)


def rescaled(img):
    """The photo at each of SCALES."""
    h, w = img.shape[:2]
    return [img if f == 1.0 else np.asarray(Image.fromarray(img).resize((round(w * f), round(h * f)), Image.LANCZOS))
            for f in SCALES]


def training_photos():
    """[(name, [uint8 HxWx3 per scale], weight)]; asserts no held-out photo slips in."""
    assert not set(HELD_OUT) & set(TRAIN_COLOUR + TRAIN_GREY)
    out = [(n, rescaled(load_photo(n)), COLOUR_WEIGHT) for n in TRAIN_COLOUR]
    out += [(n, rescaled(load_photo(n)), 1.0) for n in TRAIN_GREY]
    return out


def held_out_hr(name):
    """The whole held-out photo, cropped (top-left) to multiples of 8 so HR = 4 x LR exactly and the
    engine needs no reflect pad."""
    img = load_photo(name)
    h, w = img.shape[0] // 8 * 8, img.shape[1] // 8 * 8
    return np.ascontiguousarray(img[:h, :w])


def augment(rng, patch):
    k = int(rng.integers(4))
    patch = np.rot90(patch, k)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)


def sample_patch(rng, photos, probs, size):
    while True:
        _, imgs, _ = photos[rng.choice(len(photos), p=probs)]
        img = imgs[rng.integers(len(imgs))]
        sh, sw = img.shape[:2]
        if sh < size or sw < size:
            continue
        y = int(rng.integers(0, sh - size + 1))
        x = int(rng.integers(0, sw - size + 1))
        p = img[y:y + size, x:x + size]
        if p.astype(np.float32).std() >= MIN_STD:
            return augment(rng, p)


def make_pool(n, size, seed):
    """n (HR, LR) pairs: HR uint8 [n,size,size,3], LR uint8 [n,size/4,size/4,3]; deterministic in seed."""
    assert size % (2 * SCALE) == 0
    rng = np.random.default_rng(seed)
    photos = training_photos()
    w = np.array([p[2] for p in photos], dtype=np.float64)
    probs = w / w.sum()
    hr = np.empty((n, size, size, 3), np.uint8)
    lr = np.empty((n, size // SCALE, size // SCALE, 3), np.uint8)
    for i in range(n):
        hr[i] = sample_patch(rng, photos, probs, size)
        lr[i] = degrade(hr[i], rng)
    return hr, lr


def to_tensor01(u8):
    """uint8 [N,H,W,3] -> float32 [N,3,H,W] in [0, 1]."""
    import torch

    return torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255


def skimage_version():
    return skimage.__version__
