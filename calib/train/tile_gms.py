"""Where tiling loses sharpness: in the tiles' overlaps (the blend) or everywhere (each tile's own context)?

    /tmp/f2i-ref-venv/bin/python calib/train/tile_gms.py     # after choose_tile.py

Reads choose_tile.py's outputs for the model it last ran (OUT/choose_tile/<LR kind>/{hr,tile0-0,tile256-64}):
the 384x384 validation crops upscaled as one tile and at 256 / 64. For each crop it compares the two outputs
by GMSD's per-pixel gradient-magnitude similarity to the HR -- the map whose standard deviation is GMSD, as
piq.gmsd defines it (src/pipeline/metrics/gmsd.rs): YIQ luma in [0, 1], 2x2 average pooling, Prewitt with
zero padding, T = 170 / 255^2; without `f2idiff eval`'s border crop -- and by their mean gradient magnitude,
in two regions:
  band     rows or columns where the two tiles along each axis overlap (the first tile starts at 0, the last
           ends at the crop's edge, so the band is [n - TILE, TILE); the smootherstep ramps lie inside it)
  outside  the rest (tile interiors only one tile covers)
with the pooled map's outermost BORDER pixels left out (Prewitt's zero padding). If the blend were the cause,
the losses would sit in the band. Validation crops only; the held-out photos are never read here.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import convolve

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT  # noqa: E402

T = 170.0 / 255.0 ** 2  # GMSD's stability constant for intensities in [0, 1]
PREWITT = np.array([[1.0, 0.0, -1.0]] * 3) / 3.0
TILE = 256  # HR pixels, the tile choose_tile.py ran as tile256-64
BORDER = 1  # pooled pixels at the edge, where Prewitt reads the zero padding


def pooled_luma(path):
    """piq.gmsd's input plane: YIQ luma of the image in [0, 1], 2x2 average-pooled (even sizes here)."""
    a = np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255
    y = a @ np.array([0.299, 0.587, 0.114])
    h, w = y.shape
    return y[:h - h % 2, :w - w % 2].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def grad(y):
    return np.hypot(convolve(y, PREWITT, mode="constant"), convolve(y, PREWITT.T, mode="constant"))


def regions(shape):
    """(band, outside) masks on the pooled plane."""
    inside = np.zeros(shape, bool)
    inside[BORDER:-BORDER, BORDER:-BORDER] = True
    band = np.zeros(shape, bool)
    band[(shape[0] * 2 - TILE) // 2:TILE // 2, :] = True
    band[:, (shape[1] * 2 - TILE) // 2:TILE // 2] = True
    return band & inside, ~band & inside


def main():
    base = ROOT / "calib" / "train" / "out" / "choose_tile"
    for kind in ("realistic", "clean"):
        print(f"{kind} LR: tiled minus whole, mean GMS (band / outside); tiled / whole, mean gradient (band / outside)")
        for hr in sorted((base / kind / "hr").glob("*.png")):
            g_hr = grad(pooled_luma(hr))
            gms, g = {}, {}
            for t in ("tile0-0", "tile256-64"):
                g[t] = grad(pooled_luma(base / kind / t / hr.name))
                gms[t] = (2 * g_hr * g[t] + T) / (g_hr ** 2 + g[t] ** 2 + T)
            band, rest = regions(g_hr.shape)
            d = gms["tile256-64"] - gms["tile0-0"]
            r = g["tile256-64"], g["tile0-0"]
            print(f"  {hr.stem:20s} GMS {d[band].mean():+.4f} / {d[rest].mean():+.4f}   "
                  f"gradient {r[0][band].mean() / r[1][band].mean():.3f} / {r[0][rest].mean() / r[1][rest].mean():.3f}")


if __name__ == "__main__":
    main()
