"""Model folders in the layout `f2idiff pack` reads (README "The model folder"), and packing them.

  OUT/fm/     the foundation model alone: vae/ (stage 0, scaling_factor set), dinov2/, unet/ (stage 1),
              f2idiff.json
  OUT/demo/   the same files plus unet_lora/ and vae_lora/ (stage 2 PEFT adapters, save_pretrained)

`f2idiff pack` merges the adapters in f32 at pack time (scale lora_alpha / r), then casts to f16.
"""

import json
import shutil
import subprocess
from pathlib import Path

from models import F2I
from peft import PeftModel


def save_base(out, vae, unet, dino):
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    dino.save_pretrained(out / "dinov2", safe_serialization=True)
    (out / "f2idiff.json").write_text(json.dumps(F2I, indent=2) + "\n")


def save_demo(fm_dir, out, peft_unet, peft_vae):
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(fm_dir, out)
    # (a U-Net trained in full, refine.py's round 7, replaces the base's instead)
    peft_unet.save_pretrained(out / ("unet_lora" if isinstance(peft_unet, PeftModel) else "unet"),
                              safe_serialization=True)
    peft_vae.save_pretrained(out / "vae_lora", safe_serialization=True)


def scale_lora(adapter_dir, strength):
    """Scales a saved PEFT adapter's merge by `strength`: its lora_alpha and every alpha_pattern entry (the
    converter merges scale = alpha / r, src/convert/lora.rs). A folder without U-Net adapters is an error."""
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    if not cfg_path.exists():
        raise SystemExit(f"{adapter_dir}: no adapter to scale (a round that trains the U-Net in full has none)")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("use_rslora"):
        raise SystemExit(f"{cfg_path}: rsLoRA scaling is not handled here")
    cfg["lora_alpha"] *= strength
    cfg["alpha_pattern"] = {k: v * strength for k, v in (cfg.get("alpha_pattern") or {}).items()}
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def pack(cli, folder, dst, dtype="f16"):
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(cli), "pack", str(folder), "-o", str(dst), "--dtype", dtype], check=True)
    subprocess.run([str(cli), "info", str(dst), "--verify"], check=True, stdout=subprocess.DEVNULL)
    return dst.stat().st_size
