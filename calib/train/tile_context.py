"""Which part of a tile's own context costs tiling its sharpness: the DINOv2 tokens or GroupNorm's statistics?

    /tmp/f2i-ref-venv/bin/python calib/train/tile_context.py [--model PACK]    # after choose_tile.py

tile_gms.py found that upscaling a 384x384 validation crop at 256 / 64 loses GMSD against the crop as one
tile throughout the tiles, not in the blended overlaps. A tile differs from the whole crop in two kinds of
context: DINOv2 sees only the tile's LR (resized to 56x56), and every GroupNorm (VAE encoder, U-Net, VAE
decoder) normalises with the tile's own statistics. This script runs the pack's networks in PyTorch
(refine.py's read_pack / networks), on choose_tile.py's validation crops (OUT/choose_tile/<LR kind>/{lr,hr};
the held-out photos are never read), in five ways:
  whole        the crop as one tile (common.sr_forward: the engine's pipeline)
  tiled        the engine's tiling (src/pipeline/tiling.rs): LR tiles of TILE / 4 starting at 0, the last
               shifted inward, each tile through sr_forward with its own wavelet colour fix, blended with
               smootherstep ramps of OVERLAP output pixels on shared edges
  +tokens      tiled, but every tile conditioned on the whole crop's DINOv2 tokens
  +norm        tiled, but every GroupNorm uses the statistics (per group mean and variance) it had in the
               whole-crop pass
  +both        both
and scores each with `f2idiff eval` (PSNR-Y / SSIM-Y / GMSD). "whole" and "tiled" are also compared with
the engine's own outputs (choose_tile.py's tile0-0 and tile256-64 when they come from the same model,
or this script's --cli runs otherwise), which checks that the PyTorch tiling is the engine's.
Writes OUT/tile_context/<LR kind>/<variant>/*.png and prints one table per LR kind.

`--large` measures instead what the engine's `dino_context` does on the validation photos whole at
data.LONG_SIDES[0] (1280 px long side; LR 320 px, 20-24 tiles of 256 / 64 each, DINOv2's 56x56 view of
the whole a quarter as sharp as at 640 px): `f2idiff upscale --dino-context tile` and `image` at the
pack's tile, beside PyTorch bicubic, scored by `f2idiff eval` (OUT/tile_context_large/).
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, check_versions, dino_tokens, quiet  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import data  # noqa: E402
from common import bicubic_lq, sr_forward  # noqa: E402
from degrade import clean, degrade  # noqa: E402
from evaluate import cli_eval, load_png, run, save_png, t01, u8  # noqa: E402
from refine import networks, read_pack  # noqa: E402

TILE, OVERLAP = 256, 64  # HR pixels, the shipped default
SCALE = 4
VARIANTS = ("whole", "tiled", "+tokens", "+window", "+norm", "+both")
WINDOW = 2  # "+window": DINOv2 sees an LR window WINDOW times the tile's side around the tile
PHOTO_SEED = 5151
CONDS = ("realistic", "clean")


def starts(n, t, o):
    """tiling.rs's starts: from 0 by t - o, the last tile ending exactly at n."""
    if t >= n:
        return [0]
    out, x = [], 0
    while x + t < n:
        out.append(x)
        x += t - o
    return out + [n - t]


def smootherstep(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (u * (u * 6 - 15) + 10)


def axis_weights(length, ramp, ramp_start, ramp_end):
    """tiling.rs's axis_weights (f32 there, f64 here: below one u8 level)."""
    i = np.arange(length, dtype=np.float64)
    w = np.ones(length)
    if ramp_start:
        w = np.where(i < ramp, w * smootherstep((i + 0.5) / ramp), w)
    if ramp_end:
        j = length - 1 - i
        w = np.where(j < ramp, w * smootherstep((j + 0.5) / ramp), w)
    return w


class NormStats:
    """Swaps every GroupNorm's forward for one that records its per-group statistics (mode "record") or
    normalises with the recorded ones (mode "use"); mode None is the library's GroupNorm. Calls are
    counted per module, so a module called more than once per pass keeps one record per call."""

    def __init__(self, modules):
        self.mode, self.stats, self.calls = None, {}, {}
        for net in modules:
            for m in net.modules():
                if isinstance(m, torch.nn.GroupNorm):
                    m.forward = self._wrap(m)

    def start(self, mode):
        self.mode, self.calls = mode, {}
        if mode == "record":
            self.stats = {}

    def _wrap(self, m):
        orig = m.forward

        def forward(x):
            if self.mode is None:
                return orig(x)
            k = (id(m), self.calls.get(id(m), 0))
            self.calls[id(m)] = k[1] + 1
            n, c = x.shape[:2]
            g = x.reshape(n, m.num_groups, -1)
            if self.mode == "record":
                self.stats[k] = (g.mean(-1, keepdim=True), g.var(-1, unbiased=False, keepdim=True))
            mean, var = self.stats[k]
            y = ((g - mean) / torch.sqrt(var + m.eps)).reshape(x.shape)
            shape = (1, c) + (1,) * (x.dim() - 2)
            return y * m.weight.reshape(shape) + m.bias.reshape(shape) if m.affine else y

        return forward


def upscale(nets, norm, lr01, dino_size, variant, tile=TILE, overlap=OVERLAP):
    """lr01 [1,3,h,w] -> [1,3,4h,4w] in [0,1], one of VARIANTS, at `tile` / `overlap` (HR pixels). `norm`:
    a NormStats on `nets` (only the "+norm" and "+both" variants use it; None otherwise)."""
    vae, unet, dino = nets
    if variant == "whole":
        return sr_forward(vae, unet, dino, lr01, dino_size)[0]
    ctx = None
    if variant in ("+norm", "+both"):
        norm.start("record")
        sr_forward(vae, unet, dino, lr01, dino_size)
    if variant in ("+tokens", "+both"):
        ctx = dino_tokens(dino, lr01, dino_size)
    _, _, h, w = lr01.shape
    t, o = tile // SCALE, overlap // SCALE
    th, tw = min(t, h), min(t, w)
    ys, xs = starts(h, th, min(o, th - 1)), starts(w, tw, min(o, tw - 1))
    acc = torch.zeros(1, 3, SCALE * h, SCALE * w, dtype=torch.float64)
    wsum = torch.zeros(SCALE * h, SCALE * w, dtype=torch.float64)
    for iy, y0 in enumerate(ys):
        for ix, x0 in enumerate(xs):
            piece = lr01[..., y0:y0 + th, x0:x0 + tw]
            if norm is not None:
                norm.start("use" if variant in ("+norm", "+both") else None)
            if variant == "+window":
                wh, ww = min(WINDOW * th, h), min(WINDOW * tw, w)
                py = min(max(y0 + th // 2 - wh // 2, 0), h - wh)
                px = min(max(x0 + tw // 2 - ww // 2, 0), w - ww)
                cond = _Fixed(dino_tokens(dino, lr01[..., py:py + wh, px:px + ww], dino_size))
            else:
                cond = dino if ctx is None else _Fixed(ctx)
            sr = sr_forward(vae, unet, cond, piece, dino_size)[0]
            if norm is not None:
                norm.start(None)
            wt = torch.from_numpy(np.outer(axis_weights(SCALE * th, overlap, iy > 0, iy + 1 < len(ys)),
                                           axis_weights(SCALE * tw, overlap, ix > 0, ix + 1 < len(xs))))
            sy, sx = slice(SCALE * y0, SCALE * (y0 + th)), slice(SCALE * x0, SCALE * (x0 + tw))
            acc[..., sy, sx] += wt * sr.double()
            wsum[sy, sx] += wt
    return (acc / wsum).float()


MIRRORS = ((), (3,), (2,), (2, 3))  # the engine's copies (src/pipeline/ensemble.rs): none, left-right, up-down, both


def ensemble(fn, lr01, n):
    """The engine's self-ensemble of n copies around fn (lr01 [1,3,h,w] -> [1,3,H,W]): the first n of MIRRORS,
    each fn of the mirrored input, mirrored back and clamped to [0, 1] (as the engine clamps each copy), averaged
    in f32 in the engine's order."""
    total = None
    for dims in MIRRORS[:n]:
        out = fn(lr01.flip(dims) if dims else lr01)
        out = (out.flip(dims) if dims else out).float().clamp(0, 1)
        total = out if total is None else total + out
    return total * (1.0 / n)


class _Fixed:
    """A stand-in DINOv2 whose output is given tokens (the whole crop's), whatever the pixels."""

    def __init__(self, tokens):
        self.tokens = tokens

    def __call__(self, pixel_values):
        from types import SimpleNamespace

        return SimpleNamespace(last_hidden_state=self.tokens.expand(pixel_values.shape[0], -1, -1))


def whole_photos(out, dst, side):
    """{kind: (lr folder, hr folder)} of the validation photos whole at data.LONG_SIDES[side] (cropped to
    multiples of 8; realistic LR with seeds PHOTO_SEED + index), written under dst."""
    cache = Path(os.environ.get("F2IDIFF_PHOTO_CACHE", out / "photos"))
    folders = {k: (dst / k / "lr", dst / k / "hr") for k in CONDS}
    for i, (name, imgs, _) in enumerate(data.photo_set("val", cache)):
        img = imgs[side]
        hr = np.ascontiguousarray(img[:img.shape[0] // 8 * 8, :img.shape[1] // 8 * 8])
        lrs = dict(realistic=degrade(hr, np.random.default_rng(PHOTO_SEED + i)), clean=clean(hr))
        for kind, lr in lrs.items():
            save_png(folders[kind][1] / f"{name}.png", hr)
            save_png(folders[kind][0] / f"{name}.png", lr)
    return folders


def photo_sets(out, dst):
    """{set: {kind: (lr folder, hr folder)}}: choose_tile.py's 384x384 crops, and the validation photos
    whole at data.LONG_SIDES[2]."""
    return {"crops": {k: (out / "choose_tile" / k / "lr", out / "choose_tile" / k / "hr") for k in CONDS},
            "photos": whole_photos(out, dst / "photos", 2)}


def large(args):
    """--large: the engine's tile and image context on the validation photos at data.LONG_SIDES[0]."""
    dst = args.out / "tile_context_large"
    if dst.exists():
        shutil.rmtree(dst)
    for kind, (lr_dir, hr_dir) in whole_photos(args.out, dst, 0).items():
        names = sorted(p.name for p in lr_dir.glob("*.png"))
        for name in names:
            save_png(dst / kind / "bicubic" / name, u8((bicubic_lq(t01(load_png(lr_dir / name))) + 1) / 2))
        for ctx in ("tile", "image"):
            run([args.cli, "upscale", lr_dir, "-o", dst / kind / ctx, "-m", args.model, "--dino-context", ctx])
        print(f"validation photos at {data.LONG_SIDES[0]} px, {kind} LR: PSNR-Y / SSIM-Y / GMSD")
        for v in ("bicubic", "tile", "image"):
            res = cli_eval(args.cli, dst / kind / v, hr_dir)[0]
            rows = "  ".join(f"{n} {r[0]:.2f}" for n, r in sorted(res.items()) if n != "mean")
            m = res["mean"]
            print(f"  {v:8s} {m[0]:.3f} / {m[1]:.4f} / {m[2]:.4f}   ({rows})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "f2idiff-demo.f2i")
    ap.add_argument("--cli", type=Path, default=ROOT / "target" / "release" / "f2idiff")
    ap.add_argument("--large", action="store_true", help="the engine's tile and image context on the "
                    "validation photos at 1280 px instead (module docstring)")
    args = ap.parse_args()
    check_versions()
    quiet()
    torch.set_num_threads(2)
    if args.large:
        return large(args)
    header, tensors = read_pack(args.model.read_bytes())
    dst = args.out / "tile_context"
    if dst.exists():
        shutil.rmtree(dst)
    nets = networks(header, tensors, dst / "model", "cpu")
    norm = NormStats(nets)
    dino_size = header["pipeline"]["dino_image_size"]
    for set_name, kinds in photo_sets(args.out, dst).items():
        for kind, (lr_dir, hr_dir) in kinds.items():
            d = dst / set_name / kind
            names = sorted(p.name for p in lr_dir.glob("*.png"))
            for v in VARIANTS:
                for name in names:
                    with torch.no_grad():
                        sr = upscale(nets, norm, t01(load_png(lr_dir / name)), dino_size, v)
                    save_png(d / v / name, u8(sr))
            for v, tile in (("whole", 0), ("tiled", TILE)):
                eng = d / f"engine-{v}"
                run([args.cli, "upscale", lr_dir, "-o", eng, "-m", args.model, "--tile", tile, "--overlap", OVERLAP])
                diffs = [np.abs(load_png(eng / n).astype(int) - load_png(d / v / n).astype(int)) for n in names]
                print(f"{set_name} {kind} {v}: PyTorch vs engine, max |diff| {max(int(x.max()) for x in diffs)} "
                      f"levels, mean {np.mean([x.mean() for x in diffs]):.4f}")
            print(f"{set_name}, {kind} LR: PSNR-Y / SSIM-Y / GMSD (mean of {len(names)})")
            for v in VARIANTS:
                r = cli_eval(args.cli, d / v, hr_dir)[0]["mean"]
                print(f"  {v:8s} {r[0]:.3f} / {r[1]:.4f} / {r[2]:.4f}", flush=True)


if __name__ == "__main__":
    main()
