"""Which default tile and overlap the demo model should declare (`"tile"`, `"overlap"` in f2idiff.json), chosen
on VALIDATION photos.

    /tmp/f2i-ref-venv/bin/python calib/train/choose_tile.py --cli target/release/f2idiff

(after train.py). The paper trains and runs F2IDiff-SR on patches, and so does train.py (64 and 128 px HR
patches; DINOv2 sees the patch's LR resized to 56x56). Run on a whole photo as one tile, DINOv2 sees the
whole photo shrunk to 56x56 instead: a different input distribution. This script measures that choice
on crops of the validation photos (data.py; never the held-out ones, which only evaluate.py reads): each
validation photo resized so its long side is data.LONG_SIDES[1], its centre 384x384 HR crop, degraded like
the training LR (degrade.degrade, own seeds), upscaled by
`f2idiff upscale -m OUT/demo.f2i` whole (`--tile 0`) and with the tiles and overlaps of SETTINGS (HR
pixels), and the same crops with the clean LR (degrade.clean); scored by `f2idiff eval` (PSNR-Y / SSIM-Y /
GMSD) beside PyTorch bicubic. The choice (rule fixed before any result of it was seen): the best mean
PSNR-Y over both LR kinds, or, among the tiled settings within TOLERANCE dB of it, the one that runs the
fewest tiles (the overlap is recomputed work: a 128 px tile with 64 px overlap upscales every pixel about 4 times,
with 16 px about 1.3 times). Prints the table and the choice; writes OUT/choose_tile.json (`--json` to name
another file, e.g. to compare two models on the validation photos). The whole crop is measured for
reference but not chosen: f2idiff.json's tile is a size (8..8192), and one 384x384 crop as one tile says
nothing about a 12 MP photo as one tile (the rule as first written did choose it, on run 4, at exactly
the tolerance's edge, 27.557 vs 27.577 dB).
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
from photos import sha256  # noqa: E402

SEED = 4242
CROP = 384
SETTINGS = ((0, 0), (256, 64), (128, 64), (128, 32), (128, 16))  # (tile, overlap), HR pixels; tile 0 = whole
TOLERANCE = 0.02  # dB of mean PSNR-Y


def tiles_run(setting, side):
    """How many tiles `f2idiff upscale` runs on a side x side HR image (src/pipeline/tiling.rs's grid)."""
    tile, overlap = setting
    if tile == 0 or tile >= side:
        return 1
    step = tile - overlap
    return (-(-(side - tile) // step) + 1) ** 2


def key(setting):
    return "whole" if setting[0] == 0 else f"{setting[0]}/{setting[1]}"
CONDS = ("realistic", "clean")


def val_crops(out):
    """[(name, HR)]: each validation photo at data.LONG_SIDES[1], its centre CROP x CROP (draw_spread.py's too)."""
    cache = Path(os.environ.get("F2IDIFF_PHOTO_CACHE", out / "photos"))
    crops = []
    for name, imgs, _ in data.photo_set("val", cache):
        img = imgs[1]
        top, left = (img.shape[0] - CROP) // 2, (img.shape[1] - CROP) // 2
        crops.append((name, np.ascontiguousarray(img[top:top + CROP, left:left + CROP])))
    return crops


def save_case(d, name, hr, lr):
    """d/{hr,lr,bicubic}/NAME.png: the crop, its LR and PyTorch's bicubic of it (the pipeline's lq)."""
    save_png(d / "hr" / f"{name}.png", hr)
    save_png(d / "lr" / f"{name}.png", lr)
    with torch.no_grad():
        save_png(d / "bicubic" / f"{name}.png", u8((bicubic_lq(t01(lr)) + 1) / 2))


def model_label(pack):
    """The measured pack as a JSON records it: its file name and sha256, not a path of this machine, so that the
    JSON can be committed (calib/train/results) and still names the very weights it measured."""
    return f"{Path(pack).name} (sha256 {sha256(pack)[:16]}...)"


def cli_label(cli):
    """What ran the upscales, as a JSON records it: the CLI's file name, and for ensemble_cli.py (round 42's
    stand-in) the number of copies it averaged."""
    name = Path(cli).name
    if name == "ensemble_cli.py":
        name += f" (F2IDIFF_ENSEMBLE={os.environ.get('F2IDIFF_ENSEMBLE', '2')})"
    return name


def val_parser(doc, name):
    """The arguments of a script that runs a model on the validation crops (this one, draw_spread.py); its
    files go to OUT/NAME, its result to --json (default OUT/NAME.json)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "f2idiff-demo.f2i")
    ap.add_argument("--cli", type=Path, default=ROOT / "target" / "release" / "f2idiff")
    ap.add_argument("--json", type=Path, help=f"result file (default OUT/{name}.json)")
    return ap


def fresh(args, name):
    """Checks the pinned versions; returns OUT/NAME, emptied."""
    check_versions()
    d = args.out / name
    if d.exists():
        shutil.rmtree(d)
    return d


def setting(text):
    """'T/O' (HR pixels; '0/0' is the whole crop) -> (T, O): one of --settings."""
    try:
        tile, overlap = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TILE/OVERLAP, e.g. 256/64") from None
    return tile, overlap


def main():
    ap = val_parser(__doc__, "choose_tile")
    ap.add_argument("--settings", type=setting, nargs="+", default=SETTINGS, metavar="T/O",
                    help="measure only these tiles / overlaps (default: all of SETTINGS), e.g. to judge a model "
                         "at the tile it would ship with")
    args = ap.parse_args()
    settings = tuple(args.settings)
    if not any(st[0] for st in settings):
        ap.error("--settings needs at least one tiled setting (tile > 0): the rule chooses among tiles only")
    d = fresh(args, "choose_tile")
    crops = val_crops(args.out)
    names = [n for n, _ in crops]
    for i, (name, hr) in enumerate(crops):
        lrs = dict(realistic=degrade(hr, np.random.default_rng(SEED + i)), clean=clean(hr))
        for cond, lr in lrs.items():
            save_case(d / cond, name, hr, lr)
    results = {}
    for cond in CONDS:
        results[cond] = {"bicubic": cli_eval(args.cli, d / cond / "bicubic", d / cond / "hr")[0]}
        for st in settings:
            sr = d / cond / f"tile{st[0]}-{st[1]}"
            run([args.cli, "upscale", d / cond / "lr", "-o", sr, "-m", args.model, "--tile", st[0], "--overlap", st[1]])
            results[cond][key(st)], txt = cli_eval(args.cli, sr, d / cond / "hr")
            print(f"{cond} --tile {st[0]} --overlap {st[1]}:\n{txt}")
    score = {key(st): sum(results[c][key(st)]["mean"][0] for c in CONDS) / len(CONDS) for st in settings}
    top = max(score.values())
    best = min((st for st in settings if st[0] and score[key(st)] >= top - TOLERANCE),
               key=lambda st: tiles_run(st, CROP))
    for cond in CONDS:
        print(f"{cond} LR, PSNR-Y (mean: PSNR-Y / SSIM-Y / GMSD)")
        print("| tile / overlap | " + " | ".join(names) + " | mean |")
        for t in ["bicubic"] + [key(st) for st in settings]:
            r = results[cond][t]
            cells = [f"{r[n][0]:.2f}" for n in names] + ["{:.2f} / {:.4f} / {:.4f}".format(*r["mean"])]
            print(f"| {t} | " + " | ".join(cells) + " |")
    for st in settings:
        print(f"{key(st)}: mean PSNR-Y {score[key(st)]:.3f}, {tiles_run(st, CROP)} tiles per {CROP}^2 crop")
    print(f"chosen: --tile {best[0]} --overlap {best[1]} (best {top:.3f}, tolerance {TOLERANCE} dB)")
    dst = args.json or args.out / "choose_tile.json"
    dst.write_text(json.dumps(dict(model=model_label(args.model), cli=cli_label(args.cli), results=results, score=score,
                                   tiles={key(st): tiles_run(st, CROP) for st in settings},
                                   chosen=dict(tile=best[0], overlap=best[1])), indent=2) + "\n")


if __name__ == "__main__":
    main()
