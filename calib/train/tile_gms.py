"""Where tiling loses sharpness: in the tiles' overlaps (the blend) or everywhere (each tile's own context)?

    /tmp/f2i-ref-venv/bin/python calib/train/tile_gms.py     # after choose_tile.py

Reads choose_tile.py's outputs for the model it last ran (OUT/choose_tile/<LR kind>/{hr,tile0-0,tile256-64}):
the 384x384 validation crops upscaled as one tile and at 256 / 64. For each crop it compares the two outputs
by the per-pixel gradient-magnitude similarity to the HR (GMSD's map before its deviation is taken: Prewitt
on Y, c = 170 for 8-bit levels) and by their mean gradient magnitude, split into two regions:
  band     rows or columns 128..256, where the two tiles along each axis overlap (tiles start at HR 0 and
           128; the smootherstep ramps lie inside it)
  outside  the rest (tile interiors only one tile covers)
with 4 px at the border left out (the Prewitt window). If the blend were the cause, the losses would sit in
the band. Validation crops only; the held-out photos are never read here.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import convolve

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT  # noqa: E402

C = 170.0  # GMSD's constant for 8-bit levels
PREWITT = np.array([[1.0, 0.0, -1.0]] * 3) / 3.0
BAND = (128, 256)
BORDER = 4


def luma(path):
    a = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    return 16 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255


def grad(y):
    return np.hypot(convolve(y, PREWITT), convolve(y, PREWITT.T))


def regions(shape):
    inside = np.zeros(shape, bool)
    inside[BORDER:-BORDER, BORDER:-BORDER] = True
    band = np.zeros(shape, bool)
    band[BAND[0]:BAND[1], :] = True
    band[:, BAND[0]:BAND[1]] = True
    return band & inside, ~band & inside


def main():
    base = ROOT / "calib" / "train" / "out" / "choose_tile"
    for kind in ("realistic", "clean"):
        print(f"{kind} LR: tiled minus whole, mean GMS (band / outside); tiled / whole, mean gradient (band / outside)")
        for hr in sorted((base / kind / "hr").glob("*.png")):
            g_hr = grad(luma(hr))
            gms, g = {}, {}
            for t in ("tile0-0", "tile256-64"):
                g[t] = grad(luma(base / kind / t / hr.name))
                gms[t] = (2 * g_hr * g[t] + C) / (g_hr ** 2 + g[t] ** 2 + C)
            band, rest = regions(g_hr.shape)
            d = gms["tile256-64"] - gms["tile0-0"]
            r = g["tile256-64"], g["tile0-0"]
            print(f"  {hr.stem:20s} GMS {d[band].mean():+.4f} / {d[rest].mean():+.4f}   "
                  f"gradient {r[0][band].mean() / r[1][band].mean():.3f} / {r[0][rest].mean() / r[1][rest].mean():.3f}")


if __name__ == "__main__":
    main()
