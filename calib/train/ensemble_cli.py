#!/usr/bin/env python3
"""A stand-in for the `f2idiff` CLI that upscales with a geometric self-ensemble (round 42, docs/demo-model.md).

    PATH=/tmp/f2i-ref-venv/bin:$PATH F2IDIFF_CLI=target/release/f2idiff F2IDIFF_ENSEMBLE=2 \\
        python calib/train/choose_tile.py --cli calib/train/ensemble_cli.py ...

(`python3` on PATH must have numpy and Pillow: the reference venv's.)
`upscale LR_DIR -o SR_DIR [options]` runs the real CLI (F2IDIFF_CLI, `--ensemble 1`) once per transform of
TRANSFORMS[:N] (N = F2IDIFF_ENSEMBLE: 2 = the identity and the left-right mirror; 4 adds the upside-down mirror and
both, i.e. the half-turn), each on the LR images transformed, undoes the transform on each output and writes the
mean of the N outputs (8-bit PNGs averaged in float, then rounded). Every other command is the real CLI's. The
training pairs were drawn under every flip and quarter-turn (data.py), so each transformed input is one the model was
trained on. This measures an ensemble before the engine has one; it reads nothing but the images it is given.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

TRANSFORMS = ((False, False), (True, False), (False, True), (True, True))  # (mirror left-right, mirror up-down)


def apply(img, t):
    """The transform t of an HxWxC array; each is its own inverse."""
    if t[0]:
        img = img[:, ::-1]
    if t[1]:
        img = img[::-1]
    return np.ascontiguousarray(img)


def main():
    cli = os.environ.get("F2IDIFF_CLI", str(Path(__file__).resolve().parents[2] / "target" / "release" / "f2idiff"))
    n = int(os.environ.get("F2IDIFF_ENSEMBLE", "2"))
    if n not in (1, 2, 4):
        sys.exit(f"F2IDIFF_ENSEMBLE={n}: expected 1, 2 or 4")
    args = sys.argv[1:]
    if not args or args[0] != "upscale" or "-o" not in args:
        os.execv(cli, [cli] + args)
    o = args.index("-o")
    src, dst, rest = Path(args[1]), Path(args[o + 1]), args[2:o] + args[o + 2:]
    files = sorted(p.name for p in src.iterdir() if p.suffix == ".png")
    total = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, t in enumerate(TRANSFORMS[:n]):
            lr, sr = Path(tmp) / f"lr{k}", Path(tmp) / f"sr{k}"
            lr.mkdir()
            for name in files:
                Image.fromarray(apply(np.asarray(Image.open(src / name).convert("RGB")), t)).save(lr / name)
            # one copy each: a pack declaring its own ensemble (f2idiff.json) must not multiply it
            subprocess.run([cli, "upscale", str(lr), "-o", str(sr), "--ensemble", "1"] + rest, check=True,
                           capture_output=True)
            for name in files:
                out = apply(np.asarray(Image.open(sr / name).convert("RGB")), t).astype(np.float64)
                total[name] = total.get(name, 0.0) + out
    dst.mkdir(parents=True, exist_ok=True)
    for name, s in total.items():
        Image.fromarray(np.clip(np.round(s / n), 0, 255).astype(np.uint8)).save(dst / name)


if __name__ == "__main__":
    main()
