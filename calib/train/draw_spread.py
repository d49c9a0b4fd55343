"""How much one degradation draw moves a model's margin over bicubic with realistic LR, on VALIDATION photos.

    /tmp/f2i-ref-venv/bin/python calib/train/draw_spread.py --draws 8 --model models/f2idiff-demo.f2i

The held-out test (evaluate.py) degrades each of its two photos once (seeds 90210 and 90211) and asks for the
mean PSNR-Y margin over bicubic to reach 0.5 dB. This script asks, on the validation photos only, how much that
figure depends on the draw: choose_tile.py's 384x384 centre crop of each validation photo, degraded `--draws`
times (degrade.degrade, seeds DRAW_SEED + 100 k + i, none of choose_tile.py's), each upscaled by
`f2idiff upscale -m MODEL` with the model's own tiles and scored by `f2idiff eval` beside PyTorch bicubic. It
prints each photo's PSNR-Y margin per draw, its mean and spread, and, over every pair of two different photos
with one draw each (the held-out test's shape), the share of pairs whose mean margin is at least 0.5 dB, and
the share that also beats bicubic on SSIM-Y and GMSD. The held-out photos are never read here; nothing here
chooses anything.
"""

import itertools
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from choose_tile import cli_label, fresh, model_label, save_case, val_crops, val_parser  # noqa: E402
from degrade import degrade  # noqa: E402
from evaluate import cli_eval, run  # noqa: E402

DRAW_SEED = 5000
TARGET = 0.5  # dB: the margin over bicubic


def main():
    ap = val_parser(__doc__, "draw_spread")
    ap.add_argument("--draws", type=int, default=8, help="draws per photo, at least 2 (the spread needs two)")
    args = ap.parse_args()
    if args.draws < 2:
        ap.error("--draws must be at least 2: the spread of one draw is undefined")
    d = fresh(args, "draw_spread")
    crops = val_crops(args.out)
    names = [n for n, _ in crops]
    margins = {n: [] for n in names}  # per photo, per draw: (dPSNR-Y, dSSIM-Y, bicubic GMSD - model GMSD)
    for k in range(args.draws):
        dk = d / f"draw{k}"
        for i, (name, hr) in enumerate(crops):
            save_case(dk, name, hr, degrade(hr, np.random.default_rng(DRAW_SEED + 100 * k + i)))
        run([args.cli, "upscale", dk / "lr", "-o", dk / "sr", "-m", args.model])
        bic, _ = cli_eval(args.cli, dk / "bicubic", dk / "hr")
        sr, _ = cli_eval(args.cli, dk / "sr", dk / "hr")
        for n in names:
            margins[n].append((sr[n][0] - bic[n][0], sr[n][1] - bic[n][1], bic[n][2] - sr[n][2]))
    print(f"{args.model}: realistic-LR PSNR-Y margin over bicubic (dB), {args.draws} draws per validation photo")
    print("| photo | " + " | ".join(f"draw {k}" for k in range(args.draws)) + " | mean | sd | SSIM-Y | GMSD |")
    for n in names:
        ps = [m[0] for m in margins[n]]
        print(f"| {n} | " + " | ".join(f"{p:+.2f}" for p in ps) + f" | {statistics.mean(ps):+.3f} | "
              f"{statistics.stdev(ps):.3f} | {statistics.mean(m[1] for m in margins[n]):+.4f} | "
              f"{statistics.mean(m[2] for m in margins[n]):+.4f} |")
    print("(SSIM-Y: the model's minus bicubic's; GMSD: bicubic's minus the model's; both means over the draws, "
          "positive = the model better)")
    pairs = [(a, b) for (pa, pb) in itertools.combinations(names, 2)
             for a in margins[pa] for b in margins[pb]]
    mean_margin = [(a[0] + b[0]) / 2 for a, b in pairs]
    reach = sum(m >= TARGET for m in mean_margin) / len(pairs)
    all3 = sum(m >= TARGET and a[1] + b[1] > 0 and a[2] + b[2] > 0
               for m, (a, b) in zip(mean_margin, pairs)) / len(pairs)
    print(f"pairs of two photos, one draw each: {len(pairs)}; mean margin {statistics.mean(mean_margin):+.3f} dB, "
          f"sd {statistics.pstdev(mean_margin):.3f}, 5-95 % {np.percentile(mean_margin, 5):+.3f} .. "
          f"{np.percentile(mean_margin, 95):+.3f}")
    print(f"share of pairs at >= {TARGET} dB: {reach:.3f}; with SSIM-Y and GMSD also better: {all3:.3f}")
    dst = args.json or args.out / "draw_spread.json"
    dst.write_text(json.dumps(dict(model=model_label(args.model), cli=cli_label(args.cli), draws=args.draws, margins=margins,
                                   pairs=len(pairs), share_at_target=reach, share_all_three=all3), indent=2) + "\n")


if __name__ == "__main__":
    main()
