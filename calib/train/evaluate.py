"""Held-out evaluation of the demo model through our CLI, the engine-vs-PyTorch check, the README
example photo and the montage.

    /tmp/f2i-ref-venv/bin/python calib/train/evaluate.py --cli target/release/f2idiff

(from the repository root, after train.py). Nothing here feeds back into training: the held-out photos
(data.HELD_OUT) are read only by this script.

Held-out set: each held-out photo whole (cropped to multiples of 8), two LR versions:
  realistic  degrade.degrade (the training degradation), numpy seed EVAL_SEED + index
  clean      Pillow BICUBIC downscale x4 (antialiased), no noise / JPEG
Rows, all measured by `f2idiff eval` (PSNR / SSIM on Y, BasicSR conventions, and GMSD, lower = sharper
and closer, all after cropping a 4-pixel border):
  bicubic          PyTorch F.interpolate(bicubic, align_corners=False, no antialias) x4 of the LR, in
                   [-1, 1] then clamped, rounded to u8: exactly the pipeline's `lq`
  FM without LoRA  `f2idiff upscale -m OUT/fm.f2i` (stage-1 networks, f16 pack), if train.py made it here
  previous         `f2idiff upscale -m PACK` with `--previous PACK` (refine.py's base, the run-3 model)
  demo             `f2idiff upscale -m models/f2idiff-demo.f2i`
  VAE ceiling      HR -> stage-0 VAE encoder (mean) -> decoder, PyTorch f32: the best the latent space allows
                   (needs OUT/fm, the stage-0 VAE, which only train.py writes)
Engine vs PyTorch: the demo folder (`--folder`: OUT/demo from train.py, OUT/refine/demo from refine.py)
loaded with diffusers / transformers / peft (LoRA merged in f32), run by
common.sr_forward on one held-out LR (the whole image, one copy), compared with
`f2idiff upscale --tile 0 --ensemble 1` of an f32 pack (layouts) and of the f16 demo pack (shipped numerics); and
the README command's run (the model's tile, DINOv2 context and self-ensemble) against the same networks tiled in
PyTorch (tile_context.upscale, the engine's tiling, inside tile_context.ensemble): the golden
tests/data/demo/<example>-x4-tiled.pytorch.png.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, bicubic_lq, check_versions, encode_mean, log, quiet, sr_forward  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import data  # noqa: E402
from degrade import clean, degrade  # noqa: E402

EVAL_SEED = 90210
EXAMPLE = "coffee"  # README example: its realistic LR goes to examples/
# montage crops (HR pixels: top, left, size), picked by content before any result was seen: the cat's
# eye and the fur and stripes of its forehead, the spoon, the grain of the table's wood
CROPS = [("chelsea", (60, 110, 96)), ("chelsea", (8, 210, 96)), ("coffee", (150, 330, 96)),
         ("coffee", (24, 470, 96))]
MONTAGE_ZOOM = 2


def save_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, optimize=True)


def load_png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def u8(x01):
    """[1,3,H,W] in [0,1] -> uint8 HxWx3, the engine's quantisation (round half to even, clamp)."""
    return torch.round(x01.clamp(0, 1) * 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def t01(arr):
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float() / 255


def run(cmd):
    r = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True)
    return r.stdout + r.stderr


def cli_eval(cli, sr_dir, hr_dir):
    """Runs `f2idiff eval`; returns {name: (psnr_y, ssim_y, gmsd)} including 'mean'."""
    txt = run([cli, "eval", "--sr", sr_dir, "--hr", hr_dir])
    res = {}
    for line in txt.splitlines():
        m = re.match(r"^(\S+|mean of \d+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*$", line.strip())
        if m:
            key = "mean" if m.group(1).startswith("mean of") else Path(m.group(1)).stem
            res[key] = tuple(float(m.group(i)) for i in (2, 3, 4))
    assert "mean" in res, txt
    return res, txt


def make_sets(ev):
    """Writes ev/<cond>/{hr,lr}/<name>.png for both LR conditions; returns the condition names."""
    for i, name in enumerate(data.HELD_OUT):
        hr = data.held_out_hr(name)
        lrs = {"realistic": degrade(hr, np.random.default_rng(EVAL_SEED + i)), "clean": clean(hr)}
        for cond, lr in lrs.items():
            save_png(ev / cond / "hr" / f"{name}.png", hr)
            save_png(ev / cond / "lr" / f"{name}.png", lr)
    return ["realistic", "clean"]


@torch.no_grad()
def load_folder(folder, merge=True):
    """The model folder as the reference goldens load it (LoRA merged in f32), in PyTorch."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from peft import PeftModel
    from transformers import Dinov2Model

    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    dino = Dinov2Model.from_pretrained(folder / "dinov2", dtype=torch.float32).eval()
    if merge and (folder / "unet_lora").is_dir():
        unet = PeftModel.from_pretrained(unet, folder / "unet_lora").merge_and_unload().eval()
    if merge and (folder / "vae_lora").is_dir():
        vae = PeftModel.from_pretrained(vae, folder / "vae_lora").merge_and_unload().eval()
    for m in (vae, unet, dino):  # own, contiguous memory (as make_pipeline_goldens.py does)
        for p in m.parameters():
            p.data = p.data.clone().contiguous()
    f2i = json.loads((folder / "f2idiff.json").read_text())
    return vae, unet, dino, f2i


LABELS = dict(bicubic="bicubic (PyTorch)", fm="FM without LoRA", previous="previous demo (run 3)",
              demo="demo (F2IDiff-SR)", vae="VAE reconstruction of HR (ceiling)")
MONTAGE_LABELS = dict(bicubic="bicubic", fm="FM, no LoRA", previous="run 3", demo="demo")


def montage(ev, cond, rows_spec, path, models):
    """Per held-out photo, one row of crops: LR (nearest), bicubic, the `models` rows, HR."""
    cols = ([("LR (x4 nearest)", "lr"), ("bicubic", "bicubic")] + [(MONTAGE_LABELS[m], m) for m in models]
            + [("HR", "hr")])
    tiles, pad, label_h = [], 4, 16
    for name, (top, left, size) in rows_spec:
        row = []
        for _, d in cols:
            img = load_png(ev / cond / d / f"{name}.png")
            if d == "lr":
                c = img[top // 4:(top + size) // 4, left // 4:(left + size) // 4]
                c = np.repeat(np.repeat(c, 4, 0), 4, 1)
            else:
                c = img[top:top + size, left:left + size]
            c = np.repeat(np.repeat(c, MONTAGE_ZOOM, 0), MONTAGE_ZOOM, 1)
            row.append(c)
        tiles.append(row)
    s = tiles[0][0].shape[0]
    W = len(cols) * (s + pad) + pad
    H = label_h + len(tiles) * (s + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, (label, _) in enumerate(cols):
        draw.text((pad + j * (s + pad) + 2, 2), label, fill=(0, 0, 0))
    for i, row in enumerate(tiles):
        for j, c in enumerate(row):
            canvas.paste(Image.fromarray(c), (pad + j * (s + pad), label_h + pad + i * (s + pad)))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    return path.stat().st_size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "f2idiff-demo.f2i")
    ap.add_argument("--folder", type=Path, help="the demo model's folder (default OUT/demo)")
    ap.add_argument("--previous", type=Path, help="a pack for the 'previous' row (refine.py's base)")
    ap.add_argument("--previous-name", default="run 3", help="what the 'previous' row and montage column are "
                    "called (default: run 3, run 4's base)")
    ap.add_argument("--cli", type=Path, default=ROOT / "target" / "release" / "f2idiff")
    ap.add_argument("--montage", type=Path, default=ROOT / "docs" / "img" / "demo-montage.png")
    ap.add_argument("--example", type=Path, default=ROOT / "examples" / "coffee-lr.png")
    ap.add_argument("--goldens", type=Path, default=ROOT / "tests" / "data" / "demo",
                    help="where tests/demo_model.rs's goldens go: PyTorch's SR of the example, its HR")
    args = ap.parse_args()
    check_versions()
    quiet()
    torch.set_num_threads(2)
    LABELS["previous"] = f"previous demo ({args.previous_name})"
    MONTAGE_LABELS["previous"] = args.previous_name
    out, cli = args.out, args.cli
    ev = out / "eval"
    if ev.exists():
        shutil.rmtree(ev)
    logfile = out / "eval.log"
    logfile.write_text("")
    conds = make_sets(ev)
    folder = args.folder or out / "demo"
    vae, unet, dino, f2i = load_folder(folder)
    base_vae = load_folder(out / "fm", merge=False)[0] if (out / "fm").is_dir() else None
    packs = dict(fm=out / "fm.f2i", previous=args.previous)
    models = [m for m in ("fm", "previous") if packs[m] is not None and packs[m].exists()] + ["demo"]
    packs["demo"] = args.model
    rows = ["bicubic"] + models + (["vae"] if base_vae is not None else [])
    log(f"rows: {rows}; demo folder {folder}", logfile)
    results = {}

    for cond in conds:
        d = ev / cond
        for name in data.HELD_OUT:
            lr01 = t01(load_png(d / "lr" / f"{name}.png"))
            with torch.no_grad():
                save_png(d / "bicubic" / f"{name}.png", u8((bicubic_lq(lr01) + 1) / 2))
                if base_vae is None:
                    continue
                hr = t01(load_png(d / "hr" / f"{name}.png")) * 2 - 1
                rec = base_vae.decode(encode_mean(base_vae, hr) / base_vae.config.scaling_factor).sample
                save_png(d / "vae" / f"{name}.png", u8((rec.clamp(-1, 1) + 1) / 2))
        for m in models:
            run([cli, "upscale", d / "lr", "-o", d / m, "-m", packs[m]])
        results[cond] = {}
        for row in rows:
            res, txt = cli_eval(cli, d / row, d / "hr")
            results[cond][row] = res
            log(f"{cond} {row}:\n{txt}", logfile)

    # ---- engine vs PyTorch on one held-out image ---------------------------------------------------
    name = EXAMPLE
    lr = load_png(ev / "realistic" / "lr" / f"{name}.png")
    with torch.no_grad():
        fixed, _ = sr_forward(vae, unet, dino, t01(lr), f2i["dino_image_size"])
    ref = u8(fixed)
    save_png(ev / "check" / "pytorch.png", ref)
    run([cli, "pack", folder, "-o", out / "demo-f32.f2i", "--dtype", "f32"])  # always: the folder may be new
    check = {}
    for tag, pack in (("f32", out / "demo-f32.f2i"), ("f16", args.model)):
        p = ev / "check" / f"engine-{tag}.png"
        run([cli, "upscale", ev / "realistic" / "lr" / f"{name}.png", "-o", p, "-m", pack, "--tile", "0",
             "--ensemble", "1"])
        diff = np.abs(load_png(p).astype(int) - ref.astype(int))
        check[tag] = dict(max=int(diff.max()), mean=float(diff.mean()), frac_differing=float((diff > 0).mean()))
        log(f"engine ({tag} pack, --tile 0) vs PyTorch ({name}): {check[tag]}", logfile)
    # the default-tile output the README command produces equals the --tile 0 one?
    p = ev / "check" / "engine-f16-default-tile.png"
    run([cli, "upscale", ev / "realistic" / "lr" / f"{name}.png", "-o", p, "-m", args.model])
    check["default_tile_equals_whole"] = bool(np.array_equal(load_png(p), load_png(ev / "check" / "engine-f16.png")))
    # ... and the same run in PyTorch: the model's tile, the CLI's overlap (16 x scale), its DINOv2 context
    # (tile_context.py's tiling, which is the engine's) and its self-ensemble (tile_context.ensemble)
    import tile_context

    if f2i.get("tile"):
        variant = "+tokens" if f2i.get("dino_context", "tile") == "image" else "tiled"
        with torch.no_grad():
            tiled = u8(tile_context.ensemble(
                lambda x: tile_context.upscale((vae, unet, dino), None, x, f2i["dino_image_size"], variant,
                                               tile=f2i["tile"], overlap=16 * f2i["scale"]),
                t01(lr), f2i.get("ensemble", 1)))
        save_png(ev / "check" / "pytorch-default-tile.png", tiled)
        diff = np.abs(load_png(p).astype(int) - tiled.astype(int))
        check["default_tile"] = dict(max=int(diff.max()), mean=float(diff.mean()),
                                     frac_differing=float((diff > 0).mean()))
        log(f"engine (f16 pack, the model's tile) vs PyTorch tiled ({name}): {check['default_tile']}", logfile)

    # ---- README example: the held-out realistic LR, timed ------------------------------------------
    args.example.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ev / "realistic" / "lr" / f"{name}.png", args.example)
    # goldens of tests/demo_model.rs: the reference stack's SR of the example (LoRA merged, f32), and
    # the example's ground truth (the README command must reproduce the table's row for it)
    args.goldens.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ev / "check" / "pytorch.png", args.goldens / f"{name}-x4.pytorch.png")
    if (ev / "check" / "pytorch-default-tile.png").exists():
        shutil.copyfile(ev / "check" / "pytorch-default-tile.png", args.goldens / f"{name}-x4-tiled.pytorch.png")
    shutil.copyfile(ev / "realistic" / "hr" / f"{name}.png", args.goldens / f"{name}-hr.png")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        run([cli, "upscale", args.example, "-o", ev / "example-sr.png", "-m", args.model])
        times.append(time.perf_counter() - t0)

    size = montage(ev, "realistic", CROPS, args.montage, models)
    report = dict(results=results, engine_vs_pytorch=check, example=str(args.example),
                  example_lr_size=list(lr.shape[:2]), example_upscale_seconds=times, montage_bytes=size,
                  held_out=list(data.HELD_OUT), eval_seed=EVAL_SEED)
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")

    lines = []
    for cond in conds:
        lines += [f"{cond} LR:", "| | " + " | ".join(data.HELD_OUT) + " | mean |",
                  "|---|" + "---|" * (len(data.HELD_OUT) + 1)]
        for row in rows:
            r, label = results[cond][row], LABELS[row]
            cells = [f"{r[n][0]:.2f} / {r[n][1]:.4f} / {r[n][2]:.4f}" for n in list(data.HELD_OUT) + ["mean"]]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"engine vs PyTorch: {check}")
    lines.append(f"example upscale {lr.shape[1]}x{lr.shape[0]} -> x4: {', '.join(f'{t:.2f}' for t in times)} s")
    log("\n".join(lines), logfile)


if __name__ == "__main__":
    main()
