"""Trains the demo model end to end and packs it: one command, a wall-clock budget, fixed seeds.

    /tmp/f2i-ref-venv/bin/python calib/train/train.py --budget-minutes 60

(run from the repository root; venv pinned by calib/train/requirements.txt; CPU, 2 threads). Steps:
  data     training-patch pools from the training photos (data.py), LR by degrade.py
  stage 0  VAE autoencoder (stage0_vae.py)                                   VAE_SHARE of the budget
  stage 1  feature-to-image FM: U-Net + DINOv2, eps-prediction (stage1_fm.py)  FM_SHARE
  stage 2  one-step SR: LoRA on U-Net and VAE encoder (stage2_sr.py)          SR_SHARE
  export   OUT/fm and OUT/demo model folders, packed with `f2idiff pack --dtype f16`:
           OUT/fm.f2i (FM without LoRA) and models/f2idiff-demo.f2i (the CLI's default model)
Pool generation, latent encoding and export are counted in the budget: each stage gets its share of
what is left after the pools are built, minus a reserve for the rest.

Time-budgeted runs follow the recipe and seeds but not bit for bit (how many steps fit depends on the
machine). OUT/train.json records each stage's step count; `--steps VAE,FM,SR` replays those counts
with step-based schedules (bitwise only on the same CPU, thread count and library versions).
`--resume-fm` restarts after an interruption in stage 2: stages 0 and 1 are loaded from OUT/fm (and
their statistics from OUT/stage01.json), the pools are rebuilt from the same seeds, and the whole
budget goes to stage 2.
Afterwards: calib/train/evaluate.py (held-out metrics, montage, engine-vs-PyTorch check).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT, bicubic_lq, check_versions, encode_mean, log, psnr, quiet  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import data  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402
from stage0_vae import train_vae  # noqa: E402
from stage1_fm import train_fm  # noqa: E402
from stage2_sr import add_lora, train_sr  # noqa: E402

VAE_SHARE, FM_SHARE, SR_SHARE = 0.22, 0.26, 0.52
RESERVE_MINUTES = 1.5  # latents, export, packing
POOL_SMALL, POOL_LARGE, POOL_VAL = 12000, 1500, 64  # 64x64 and 128x128 HR patches; validation 64x64
SEED = 0


def find_cli(arg):
    if arg:
        return Path(arg)
    cli = ROOT / "target" / "release" / "f2idiff"
    log(f"building the CLI: cargo build --release --locked ({cli})")
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    return cli


@torch.no_grad()
def latents(vae, hr_u8, batch=64):
    return torch.cat([encode_mean(vae, data.to_tensor01(hr_u8[i:i + batch]) * 2 - 1)
                      for i in range(0, len(hr_u8), batch)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget-minutes", type=float, default=60.0, help="wall-clock budget of the whole run")
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "f2idiff-demo.f2i", help="packed demo model")
    ap.add_argument("--cli", help="f2idiff binary (default: cargo build --release, target/release/f2idiff)")
    ap.add_argument("--steps", help="VAE,FM,SR step counts to replay instead of the time budget")
    ap.add_argument("--quick", action="store_true", help="smoke test: small pools (use with a small budget)")
    ap.add_argument("--resume-fm", action="store_true", help="load stages 0-1 from OUT/fm, train stage 2 only")
    args = ap.parse_args()

    check_versions()
    quiet()
    torch.set_num_threads(2)
    t_start = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    logfile = out / "train.log"
    if not args.resume_fm:
        logfile.write_text("")
    cli = find_cli(args.cli)
    steps = [int(s) for s in args.steps.split(",")] if args.steps else [None] * 3
    n_small, n_large = (600, 100) if args.quick else (POOL_SMALL, POOL_LARGE)
    log(f"budget {args.budget_minutes} min, out {out}, torch threads {torch.get_num_threads()}", logfile)

    # ---- data -------------------------------------------------------------------------------------
    t0 = time.time()
    hr_s, lr_s = data.make_pool(n_small, 64, SEED + 1)
    hr_l, lr_l = data.make_pool(n_large, 128, SEED + 2)
    hr_v, lr_v = data.make_pool(POOL_VAL, 64, SEED + 3)
    bic = (bicubic_lq(data.to_tensor01(lr_v)) + 1) / 2
    bic_psnr = psnr(bic, data.to_tensor01(hr_v))
    log(f"pools: {n_small} x 64^2, {n_large} x 128^2, {POOL_VAL} validation; {(time.time() - t0) / 60:.1f} min; "
        f"validation bicubic PSNR (RGB) {bic_psnr:.2f} dB", logfile)
    left = args.budget_minutes - (time.time() - t_start) / 60 - RESERVE_MINUTES
    minutes = [left * VAE_SHARE, left * FM_SHARE, left * SR_SHARE]
    if not args.resume_fm:
        log(f"stage budgets (min): vae {minutes[0]:.1f}, fm {minutes[1]:.1f}, sr {minutes[2]:.1f}", logfile)

    if args.resume_fm:
        from evaluate import load_folder

        vae, unet, dino, _ = load_folder(out / "fm", merge=False)
        st = json.loads((out / "stage01.json").read_text())
        params, s0, s1, size_fm = st["params"], st["stage0_vae"], st["stage1_fm"], st["pack_bytes_fm"]
        log(f"resumed stages 0-1 from {out / 'fm'}", logfile)
    else:
        torch.manual_seed(SEED)
        vae, dino, unet = models.new_vae(), models.new_dino(), models.new_unet()
        params = dict(vae=models.count(vae), dinov2=models.count(dino), unet=models.count(unet))
        log(f"parameters: {params}, total {sum(params.values())}", logfile)

        # ---- stage 0: VAE ------------------------------------------------------------------------
        s0 = train_vae(vae, np.concatenate([hr_s, hr_l[:, :64, :64], hr_l[:, 64:, 64:]]), hr_v, minutes[0],
                       SEED + 10, logfile, steps[0])
        s0["val_bicubic_psnr_rgb"] = bic_psnr
    for p in vae.parameters():
        p.requires_grad_(False)
    pools = [dict(hr=hr_s, lr=lr_s, z0=latents(vae, hr_s)), dict(hr=hr_l, lr=lr_l, z0=latents(vae, hr_l))]

    if not args.resume_fm:
        # ---- stage 1: FM -------------------------------------------------------------------------
        # redistribute time stage 0 left unused (or overran) between the later stages
        left = args.budget_minutes - (time.time() - t_start) / 60 - RESERVE_MINUTES
        minutes[1] = left * FM_SHARE / (FM_SHARE + SR_SHARE)
        s1 = train_fm(unet, dino, pools, models.DINO_IMAGE_SIZE, minutes[1], SEED + 20, logfile, steps[1])
        export.save_base(out / "fm", vae, unet, dino)
        size_fm = export.pack(cli, out / "fm", out / "fm.f2i")
        (out / "stage01.json").write_text(json.dumps(dict(params=params, stage0_vae=s0, stage1_fm=s1,
                                                          pack_bytes_fm=size_fm), indent=2) + "\n")

    # ---- stage 2: one-step SR with LoRA ------------------------------------------------------------
    left = args.budget_minutes - (time.time() - t_start) / 60 - RESERVE_MINUTES / 2
    minutes[2] = left
    pu, pv = add_lora(unet, vae, SEED + 30)
    s2 = train_sr(unet, vae, dino, pools, models.DINO_IMAGE_SIZE, minutes[2], SEED + 40, logfile, steps[2])
    with torch.no_grad():
        fixed, _ = common.sr_forward(vae, unet, dino, data.to_tensor01(lr_v), models.DINO_IMAGE_SIZE)
    s2["val_psnr_rgb"] = psnr(fixed, data.to_tensor01(hr_v))
    log(f"validation PSNR (RGB, training-photo patches): SR {s2['val_psnr_rgb']:.2f} dB vs bicubic "
        f"{bic_psnr:.2f} dB", logfile)
    export.save_demo(out / "fm", out / "demo", pu, pv)
    size_demo = export.pack(cli, out / "demo", args.model)

    total = (time.time() - t_start) / 60
    report = dict(budget_minutes=args.budget_minutes, total_minutes=total, params=params,
                  lora_params=dict(unet=sum(p.numel() for p in pu.parameters() if p.requires_grad),
                                   vae=sum(p.numel() for p in pv.parameters() if p.requires_grad)),
                  stage0_vae=s0, stage1_fm=s1, stage2_sr=s2, pack_bytes=dict(fm=size_fm, demo=size_demo),
                  pools=dict(small=n_small, large=n_large, val=POOL_VAL), seed=SEED,
                  versions=common.PINNED, threads=torch.get_num_threads())
    (out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"done in {total:.1f} min: {args.model} ({size_demo} bytes), {out / 'fm.f2i'} ({size_fm} bytes)", logfile)


if __name__ == "__main__":
    main()
