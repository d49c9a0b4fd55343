"""Round 38: blends of two packs of one lineage in weight space, W = (1 - w) * A + w * B, packed.

    /tmp/f2i-ref-venv/bin/python calib/train/soup.py --a /tmp/run8.f2i --b /tmp/run6.f2i --weights 0.25 0.5 0.75

(run 8's pack: `git show c9b25ec:models/f2idiff-demo.f2i`; run 6's: `git show 37de3a0:models/f2idiff-demo.f2i`).
Run 8 (A) is run 6 (B) fine-tuned twice in full (rounds 30 and 35: its U-Net 7.9 % away in relative norm, its VAE
0.8 %, DINOv2 unchanged), so the two share one basin and a straight line between them is
a family of models. On the validation photos they sit at two ends of one trade-off (docs/demo-model.md, "What the
validation photos say"): run 6 the closer, run 8 the sharper. Every tensor of the two packs (VAE with its LoRA
merged, U-Net, DINOv2) is read back in f32 (refine.read_pack), blended, written as a model folder
(OUT/soup38/wW, refine.write_folder: configs from A's header, without the `_name_or_path` diffusers records) and packed in f16 by
`f2idiff pack` (OUT/soup38-wW.f2i, `info --verify`d). The pipeline settings (tile, overlap, DINOv2 context) are
A's, but for the tile with `--tile` (round 38b: `--tile 128 --name soup38b`) and the self-ensemble with
`--ensemble` (round 42: `--tile 128 --ensemble 2 --name soup42`). The packs must hold the same tensors, shapes
and network configs. Reads no photo; chooses nothing (the rounds' rules: docs/demo-model.md, "Round 38",
"Round 42"). Round 38b's w = 0.75 is run 9; round 42's, the same weights declaring an ensemble of 2, is run 10,
the shipped model.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT  # noqa: E402

import export  # noqa: E402
from refine import NETS, config, read_pack, write_folder  # noqa: E402

def blend(a, b, w):
    """{name: (1 - w) * a + w * b} of two {name: f32 tensor} with the same names and shapes."""
    if set(a) != set(b) or any(a[n].shape != b[n].shape for n in a):
        sys.exit("the two packs do not hold the same tensors")
    return {n: (1 - w) * a[n] + w * b[n] for n in a}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", type=Path, required=True, help="weight 0 (its header)")
    ap.add_argument("--b", type=Path, required=True, help="weight 1")
    ap.add_argument("--weights", type=float, nargs="+", required=True, help="w of each blend, B's share")
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--name", default="soup38")
    ap.add_argument("--cli", type=Path, default=ROOT / "target" / "release" / "f2idiff")
    ap.add_argument("--tile", type=int, help="the output tile the blends declare (default: A's)")
    ap.add_argument("--ensemble", type=int, choices=(1, 2, 4),
                    help="the self-ensemble the blends declare (f2idiff.json `ensemble`; default: A's)")
    args = ap.parse_args()
    (ha, ta), (hb, tb) = (read_pack(p.read_bytes()) for p in (args.a, args.b))
    if args.tile is not None:
        ha["pipeline"]["tile"] = args.tile
    if args.ensemble is not None:
        ha["pipeline"]["ensemble"] = args.ensemble
    for net in NETS:
        if config(ha, net) != config(hb, net):
            sys.exit(f"the packs' {net} configs differ: not one architecture")
    for w in args.weights:
        folder = args.out / args.name / f"w{w:g}"
        write_folder(ha, blend(ta, tb, w), folder)
        dst = args.out / f"{args.name}-w{w:g}.f2i"
        size = export.pack(args.cli, folder, dst)
        print(f"w {w:g}: {dst} ({size} bytes)")


if __name__ == "__main__":
    main()
