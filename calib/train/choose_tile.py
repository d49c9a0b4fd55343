"""Which default tile the demo model should declare (`"tile"` in f2idiff.json), chosen on VALIDATION photos.

    /tmp/f2i-ref-venv/bin/python calib/train/choose_tile.py --cli target/release/f2idiff

(after train.py). The paper trains and runs F2IDiff-SR on patches, and so does train.py (64 and 128 px HR
patches; DINOv2 sees the patch's LR resized to 56x56). Run on a whole photo as one tile, DINOv2 sees the
whole photo shrunk to 56x56 instead: a different input distribution. This script measures that choice
on crops of the validation photos (data.py; never the held-out ones, which only evaluate.py reads): each
validation photo resized so its long side is data.LONG_SIDES[1], its centre 384x384 HR crop, degraded like
the training LR (degrade.degrade, own seeds), upscaled by
`f2idiff upscale -m OUT/demo.f2i` whole (`--tile 0`) and with 256 and 128 px tiles (default overlap),
and the same crops with the clean LR (degrade.clean); scored by `f2idiff eval` (PSNR-Y / SSIM-Y / GMSD)
beside PyTorch bicubic. Prints the table and the tile with the best mean PSNR-Y over both LR kinds;
writes OUT/choose_tile.json (`--json` to name another file, e.g. to compare two models on the validation
photos).
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import os  # noqa: E402

from common import ROOT, check_versions  # noqa: E402

import numpy as np  # noqa: E402

import data  # noqa: E402
import torch  # noqa: E402

from common import bicubic_lq  # noqa: E402
from degrade import clean, degrade  # noqa: E402
from evaluate import cli_eval, run, save_png, t01, u8  # noqa: E402

SEED = 4242
CROP = 384
TILES = (0, 256, 128)
CONDS = ("realistic", "clean")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "f2idiff-demo.f2i")
    ap.add_argument("--cli", type=Path, default=ROOT / "target" / "release" / "f2idiff")
    ap.add_argument("--json", type=Path, help="result file (default OUT/choose_tile.json)")
    args = ap.parse_args()
    check_versions()
    d = args.out / "choose_tile"
    if d.exists():
        shutil.rmtree(d)
    cache = Path(os.environ.get("F2IDIFF_PHOTO_CACHE", args.out / "photos"))
    photos = [(name, imgs[1]) for name, imgs, _ in data.photo_set("val", cache)]
    names = [n for n, _ in photos]
    for i, (name, img) in enumerate(photos):
        top, left = (img.shape[0] - CROP) // 2, (img.shape[1] - CROP) // 2
        hr = np.ascontiguousarray(img[top:top + CROP, left:left + CROP])
        lrs = dict(realistic=degrade(hr, np.random.default_rng(SEED + i)), clean=clean(hr))
        for cond, lr in lrs.items():
            save_png(d / cond / "hr" / f"{name}.png", hr)
            save_png(d / cond / "lr" / f"{name}.png", lr)
            with torch.no_grad():
                save_png(d / cond / "bicubic" / f"{name}.png", u8((bicubic_lq(t01(lr)) + 1) / 2))
    results = {}
    for cond in CONDS:
        results[cond] = {"bicubic": cli_eval(args.cli, d / cond / "bicubic", d / cond / "hr")[0]}
        for tile in TILES:
            sr = d / cond / f"tile{tile}"
            run([args.cli, "upscale", d / cond / "lr", "-o", sr, "-m", args.model, "--tile", tile])
            results[cond][tile], txt = cli_eval(args.cli, sr, d / cond / "hr")
            print(f"{cond} --tile {tile}:\n{txt}")
    best = max(TILES, key=lambda t: sum(results[c][t]["mean"][0] for c in CONDS))
    for cond in CONDS:
        print(f"{cond} LR, PSNR-Y (mean: PSNR-Y / SSIM-Y / GMSD)")
        print("| tile | " + " | ".join(names) + " | mean |")
        for t in ("bicubic",) + TILES:
            r = results[cond][t]
            cells = [f"{r[n][0]:.2f}" for n in names] + ["{:.2f} / {:.4f} / {:.4f}".format(*r["mean"])]
            print(f"| {t if t != 0 else 'whole'} | " + " | ".join(cells) + " |")
    print(f"best mean PSNR-Y: --tile {best}")
    dst = args.json or args.out / "choose_tile.json"
    dst.write_text(json.dumps(dict(model=str(args.model), results=results, best=best), indent=2) + "\n")


if __name__ == "__main__":
    main()
