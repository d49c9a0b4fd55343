"""Trains the demo model end to end and packs it: one command, fixed step counts and seeds, resumable.

    /tmp/f2i-ref-venv/bin/python calib/train/train.py            # CPU, from scratch
    /tmp/f2i-ref-venv/bin/python calib/train/train.py --resume   # go on after an interruption

(run from the repository root; venv pinned by calib/train/requirements.txt). Steps:
  data     photos (data.py, photos.py: Debian wallpaper photos fetched by package name, scikit-image's),
           training pools and the validation crops, cached under OUT/pools/
  stage 0  VAE autoencoder (stage0_vae.py)
  stage 1  feature-to-image FM: U-Net + DINOv2, eps-prediction (stage1_fm.py)
  stage 2  one-step SR: LoRA on U-Net and VAE encoder (stage2_sr.py); the checkpoint with the best
           validation PSNR-Y is the one kept
  export   OUT/fm and OUT/demo model folders, packed with `f2idiff pack --dtype f16`:
           OUT/fm.f2i (FM without LoRA) and models/f2idiff-demo.f2i (the CLI's default model)
Each stage runs a fixed number of steps (`--steps VAE,FM,SR`; schedules follow the step, not the clock)
and checkpoints to OUT/ckpt/ (loop.py): stop it any time (Ctrl-C, SIGTERM, `--stop-after-minutes`) and
`--resume` continues where it stopped; the weights are the same as an uninterrupted run's on the same
machine and library versions. OUT/train.json records steps, minutes, loss curves and validations per
stage; plot.py draws them (docs/img/demo-training.svg).

`--device cuda` runs the same recipe on a GPU (the pools travel as OUT/pools/*.npz; see
scripts/gpu-train.sh). Afterwards: choose_tile.py (validation photos), evaluate.py (held-out photos).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT, bicubic_lq, check_versions, encode_mean, log, psnr_y, quiet  # noqa: E402

import torch  # noqa: E402

import data  # noqa: E402
import export  # noqa: E402
import loop  # noqa: E402
import models  # noqa: E402
import stage0_vae  # noqa: E402
import stage1_fm  # noqa: E402
import stage2_sr  # noqa: E402

STEPS = (16000, 3000, 6000)  # VAE, FM, SR
# name: (split, patches, HR size, seed, LR conditions)
POOLS = dict(small=("train", 32000, 64, 1, ("train",)), large=("train", 4000, 128, 2, ("train",)),
             val=("val", 64, 128, 3, ("realistic", "clean")))
QUICK_POOLS = dict(small=("train", 600, 64, 1, ("train",)), large=("train", 100, 128, 2, ("train",)),
                   val=("val", 16, 128, 3, ("realistic", "clean")))
SEED = 0


def find_cli(arg):
    if arg:
        return Path(arg)
    cli = ROOT / "target" / "release" / "f2idiff"
    log(f"building the CLI: cargo build --release --locked ({cli})")
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    return cli


def bicubic_psnr_y(val):
    """PyTorch bicubic's PSNR-Y on the validation crops, per LR condition: the line to beat."""
    return {c: psnr_y((bicubic_lq(data.to_tensor01(val[c])) + 1) / 2, data.to_tensor01(val["hr"]))
            for c in ("realistic", "clean")}


@torch.no_grad()
def latents(vae, hr_u8, dev, batch=64):
    return torch.cat([encode_mean(vae, data.to_tensor01(hr_u8[i:i + batch], dev) * 2 - 1)
                      for i in range(0, len(hr_u8), batch)])


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default=",".join(map(str, STEPS)), help="VAE,FM,SR step counts")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoints in OUT/ckpt/")
    ap.add_argument("--fresh", action="store_true", help="delete OUT/ckpt/ and start over")
    ap.add_argument("--stop-after-minutes", type=float, help="checkpoint and stop after this much wall clock")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--photos", type=Path,
                    help="photo cache folder (default OUT/photos, or F2IDIFF_PHOTO_CACHE), or an --export-photos .npz")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "f2idiff-demo.f2i", help="packed demo model")
    ap.add_argument("--cli", help="f2idiff binary (default: cargo build --release, target/release/f2idiff)")
    ap.add_argument("--no-pack", action="store_true", help="export the model folders but do not pack them")
    ap.add_argument("--export-photos", type=Path, metavar="NPZ",
                    help="write the wallpaper photos as one archive (for --photos NPZ on the GPU machine) and stop")
    ap.add_argument("--quick", action="store_true", help="smoke test: small pools (use with small --steps)")
    ap.add_argument("--any-versions", action="store_true",
                    help="run on another torch/diffusers/transformers than the pinned ones (GPU machine)")
    return ap.parse_args()


def main():
    args = parse()
    if not args.any_versions:
        check_versions()
    quiet()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    out = args.out
    photo_cache = args.photos or Path(os.environ.get("F2IDIFF_PHOTO_CACHE", out / "photos"))
    if args.export_photos:
        data.export_photos(photo_cache, args.export_photos)
        log(f"wrote {args.export_photos} ({args.export_photos.stat().st_size} bytes)")
        return
    ckpt = out / "ckpt"
    if ckpt.exists() and not (args.resume or args.fresh):
        sys.exit(f"{ckpt} holds checkpoints: pass --resume to continue them or --fresh to start over")
    if args.fresh and ckpt.exists():
        shutil.rmtree(ckpt)
    logfile, deadline = loop.start(out, "train", args.resume, args.stop_after_minutes)
    steps = [int(s) for s in args.steps.split(",")]
    log(f"steps {steps}, device {dev}, torch threads {torch.get_num_threads()}, out {out}", logfile)

    # ---- data -------------------------------------------------------------------------------------
    t0 = time.time()
    p = data.pools(out, QUICK_POOLS if args.quick else POOLS, photo_cache)
    small, large, val = p["small"], p["large"], p["val"]
    val_bicubic = bicubic_psnr_y(val)
    log(f"pools: {len(small['hr'])} x 64^2, {len(large['hr'])} x 128^2, {len(val['hr'])} validation crops; "
        f"{(time.time() - t0) / 60:.1f} min; validation bicubic PSNR-Y {val_bicubic}", logfile)

    torch.manual_seed(SEED)
    vae, dino, unet = models.new_vae().to(dev), models.new_dino().to(dev), models.new_unet().to(dev)
    params = dict(vae=models.count(vae), dinov2=models.count(dino), unet=models.count(unet))
    log(f"parameters: {params}, total {sum(params.values())}", logfile)
    report = dict(steps=steps, device=str(dev), threads=torch.get_num_threads(), params=params, seed=SEED,
                  pools={k: len(v["hr"]) for k, v in p.items()}, val_bicubic_psnr_y=val_bicubic,
                  versions=common.PINNED)
    try:
        # ---- stage 0: VAE ------------------------------------------------------------------------
        s = stage0_vae.stage(vae, small["hr"], val["hr"], steps[0], dev)
        report["vae"] = loop.run(s, ckpt, SEED + 10, logfile, deadline=deadline)
        for q in vae.parameters():
            q.requires_grad_(False)
        report["vae"]["scaling_factor"] = stage0_vae.set_scaling_factor(vae, small["hr"], dev)
        pools = [dict(hr=small["hr"], lr=small["train"], z0=latents(vae, small["hr"], dev)),
                 dict(hr=large["hr"], lr=large["train"], z0=latents(vae, large["hr"], dev))]
        vz = dict(z0=latents(vae, val["hr"], dev), lr=val["realistic"])

        # ---- stage 1: FM -------------------------------------------------------------------------
        s = stage1_fm.stage(unet, dino, pools, vz, models.DINO_IMAGE_SIZE, steps[1], dev)
        report["fm"] = loop.run(s, ckpt, SEED + 20, logfile, deadline=deadline)
        export.save_base(out / "fm", vae, unet, dino)

        # ---- stage 2: one-step SR with LoRA ----------------------------------------------------------
        pu, pv = stage2_sr.add_lora(unet, vae, SEED + 30)
        vsr = dict(hr=val["hr"], lr={c: val[c] for c in ("realistic", "clean")})
        s = stage2_sr.stage(unet, vae, dino, pools, vsr, models.DINO_IMAGE_SIZE, steps[2], dev)
        report["sr"] = loop.run(s, ckpt, SEED + 40, logfile, deadline=deadline)
    except loop.Interrupted as e:
        log(f"interrupted in stage {e}: continue with --resume", logfile)
        sys.exit(3)
    export.save_demo(out / "fm", out / "demo", pu, pv)
    if not args.no_pack:
        cli = find_cli(args.cli)
        report["pack_bytes"] = dict(fm=export.pack(cli, out / "fm", out / "fm.f2i"),
                                    demo=export.pack(cli, out / "demo", args.model))
    (out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    minutes = sum(report[k]["minutes"] for k in ("vae", "fm", "sr"))
    log(f"done: {minutes:.1f} min of training steps; {args.model}", logfile)


if __name__ == "__main__":
    main()
