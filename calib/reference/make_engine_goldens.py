"""Reference-data generator for the CPU inference-engine tests.

Deletes and rewrites everything under ``tests/data/engine/``.  Run from the repository root with the
pinned reference venv (calib/reference/requirements.txt):

    /tmp/f2i-ref-venv/bin/python calib/reference/make_engine_goldens.py

Everything is float32, CPU, seeded; re-running gives byte-identical files (checked by sha256).
Helpers (tiny-model randomisation, PEFT adapter writing) follow calib/reference/make_pack_goldens.py;
the real-width weight formula lives in calib/reference/weights_formula.py.

Files
=====

Model folders (what users have; the Rust tests pack them with `f2idiff pack DIR --lora ... --dtype ...`):

* ``sd/``   "SD-2.1-style" tiny model: ``f2idiff.json`` {"scale": 4, "timestep": 999, "dino_image_size": 224},
  ``vae/`` (AutoencoderKL, 3 levels, block_out_channels [16, 24, 24], layers_per_block 1, norm_num_groups 8,
  latent 4, mid attention on, scaling_factor 0.18215), ``unet/`` (UNet2DConditionModel, block_out_channels
  [16, 24, 24], down Cross/Cross/Down, up Up/Cross/Cross, layers_per_block 1, attention_head_dim [2, 3, 3]
  (= heads, SD-2.1 naming; head dim 8 everywhere), use_linear_projection true, cross_attention_dim 32
  (= DINOv2 hidden, no cond_proj), norm_num_groups 8, flip_sin_to_cos true, freq_shift 0),
  ``dinov2/`` (transformers Dinov2Model: hidden 32, 2 layers, 2 heads, patch 14, image_size 224 -> 16x16
  grid, layer scale, gelu); PEFT adapters ``unet_lora/`` (r 4, alpha 8 -> scale 2) and ``vae_lora/``
  (encoder + quant_conv, r 2, alpha 4 -> scale 2), lora_B random (non-zero).
* ``eff/``  "Eff-style" tiny model: ``f2idiff.json`` {"scale": 4, "timestep": 999, "dino_image_size": 70},
  ``vae/`` (2 levels, block_out_channels [16, 24], layers_per_block 2, norm_num_groups 8,
  mid_block_add_attention false, latent 4, scaling_factor 0.18215), ``unet/`` (block_out_channels
  [24, 32], down Cross/Down, up Up/Cross, layers_per_block 1, attention_head_dim [3, 4] (= heads; head
  dim 8), use_linear_projection false (1x1-conv proj_in/out), transformer_layers_per_block [2, 1] (the
  mid block uses the last entry, 1), cross_attention_dim 40, norm_num_groups 8, freq_shift 1,
  flip_sin_to_cos false, upcast_attention true), ``dinov2/`` (transformers Dinov2WithRegistersModel:
  2 register tokens, hidden 48, 2 layers, 4 heads, use_swiglu_ffn, image_size 56 -> 4x4 grid),
  ``cond_proj.safetensors`` (``weight`` [40, 48], ``bias`` [40]), PEFT ``unet_lora/`` only (r 4, alpha 4
  -> scale 1).
  (The widths are below the first plan - sd [16, 32, 32] VAE/U-Net, eff U-Net [24, 48] with heads
  [3, 6] - to keep tests/data/engine under 6 MiB; every structural option is the same.)
  On disk the DINOv2 checkpoints use the hub ("original") spelling that save_pretrained writes:
  ``encoder.layer.N.attention.attention.{query,key,value}``, ``attention.output.dense``, and for the
  SwiGLU of eff ``encoder.layer.N.mlp.weights_in.{weight,bias}`` [256, 48] / [256] = cat(gate_proj,
  up_proj) along dim 0 (hidden features int(int(48*4)*2/3) rounded up to a multiple of 8 = 128) and
  ``mlp.weights_out.{weight,bias}`` [48, 128] / [48]; the module computes
  down(silu(gate(x)) * up(x)).
  LoRA targets (PEFT regex, fullmatch), U-Net: conv_in, conv_out, time_embedding.linear_{1,2},
  *.to_q/to_k/to_v/to_out.0, *.conv1/conv2/conv_shortcut, *.time_emb_proj, *.proj_in/proj_out,
  *.ff.net.0.proj/ff.net.2, *.downsamplers.0.conv/upsamplers.0.conv; VAE: quant_conv,
  encoder.conv_in/conv_out and encoder.*.{conv1,conv2,conv_shortcut,conv,to_q,to_k,to_v,to_out.0}.
  Every base parameter is random (seeded): norm scales 1 + 0.2 n, biases 0.1 n, DINOv2 lambda1
  0.5 + 0.2 n, cls/register/mask tokens and position embeddings 0.5 n, every other weight
  n / sqrt(fan_in) (n ~ N(0, 1)); lora_A n / sqrt(fan_in), lora_B 0.3 n / sqrt(r).

Expected tensors (batch 1 everywhere; all float32; computed from the folders as reloaded from disk):

``sd_expected.safetensors`` / ``eff_expected.safetensors``   (shapes: sd / eff)
  vae.enc.input        [1,3,32,32]   / [1,3,40,24]    uniform in [-1, 1)
  vae.enc.down0        [1,16,16,16]  / [1,16,20,12]   output of vae.encoder.down_blocks[0] (after its downsampler)
  vae.enc.mid          [1,24,8,8]    / [1,24,20,12]   output of vae.encoder.mid_block
  vae.enc.output       [1,4,8,8]     / [1,4,20,12]    quant_conv(encoder(x))[:, :4] * scaling_factor
                                                      (= latent_dist.mean * scaling_factor, no sampling)
  vae.enc.output_lora  [1,4,8,8]     (sd only)        same with vae_lora merged (PEFT merge_and_unload)
  vae.dec.input        [1,4,8,8]     / [1,4,6,10]     N(0, 1): a *scaled* latent z
  vae.dec.mid          [1,24,8,8]    / [1,24,6,10]    output of vae.decoder.mid_block
  vae.dec.up0          [1,24,16,16]  / [1,24,12,20]   output of vae.decoder.up_blocks[0] (after its upsampler)
  vae.dec.output       [1,3,32,32]   / [1,3,12,20]    vae.decode(vae.dec.input / scaling_factor).sample:
                                                      the stored input is divided by scaling_factor
                                                      (0.18215) and then goes post_quant_conv -> decoder
  dinov2.input         [1,3,224,224] / [1,3,70,70]    N(0, 1) ("already ImageNet-normalised pixels")
  dinov2.output        [1,257,32]    / [1,28,48]      last_hidden_state (after the final layernorm);
                                                      eff tokens: 0 = CLS, 1..2 = registers, 3..27 = 5x5 patches
  dinov2.embeddings    [1,257,32]    (sd only)        output of model.embeddings for dinov2.input
  dinov2.input_odd     [1,3,98,98]   (sd only)        N(0, 1); grid 7x7 -> interpolated position embeddings
  dinov2.output_odd    [1,50,32]     (sd only)        last_hidden_state for dinov2.input_odd
  dinov2.output_odd_legacy [1,50,32] (sd only)        the same with the original-DINOv2 / transformers
                                                      4.x interpolation: scale_factor (g' + 0.1)/g, no antialias
  cond_proj.output     [1,28,40]     (eff only)       F.linear(dinov2.output, cond_proj.weight, cond_proj.bias)
  unet.sample          [1,4,8,8]     / [1,4,6,10]     N(0, 1)
  unet.timestep        [1]                            tensor([999.0])
  unet.context         [1,257,32]    / [1,28,40]      sd: = dinov2.output;  eff: = cond_proj.output
  unet.temb            [1,64]        / [1,96]         unet.time_embedding(unet.time_proj(t)), base weights
  unet.down0           [1,16,4,4]    / [1,24,3,5]     first element of unet.down_blocks[0]'s output tuple
                                                      (after its downsampler)
  unet.mid             [1,24,2,2]    (sd only)        output of unet.mid_block
  unet.output          [1,4,8,8]     / [1,4,6,10]     unet(sample, 999.0, context).sample, no LoRA
  unet.output_lora     [1,4,8,8]     / [1,4,6,10]     same with unet_lora merged (PEFT merge_and_unload;
                                                      checked equal to the active-adapter forward)

``ops.safetensors`` (per-op goldens, random inputs)
  bicubic.up.input [1,3,7,9]       -> bicubic.up.output [1,3,28,36]     F.interpolate(size=(28,36), bicubic,
                                                                        align_corners=False)
  bicubic.down.input [1,2,37,37]   -> bicubic.down.output [1,2,16,16]   size=(16,16)
  bicubic.odd.input [1,2,37,37]    -> bicubic.odd.output [1,2,7,7]      size=(7,7)
  bicubic.scale.input [1,2,37,37]  -> bicubic.scale.output [1,2,7,7]    scale_factor=((7+0.1)/37,)*2 (the legacy
                                                                        DINOv2 +0.1 path; output size
                                                                        floor(37*7.1/37) = 7, but the source
                                                                        coordinate uses 1/scale_factor =
                                                                        37/7.1, NOT 37/7)
  bicubic_aa.up.input [1,2,4,4]    -> bicubic_aa.up.output [1,2,5,5]    size=(5,5), antialias=True (what
                                                                        Dinov2WithRegisters does: grid 4 -> 5)
  bicubic_aa.down.input [1,2,37,37]-> bicubic_aa.down.output [1,2,16,16] size=(16,16), antialias=True
  group_norm.input [1,32,5,7], group_norm.weight [32], group_norm.bias [32] -> group_norm.output [1,32,5,7]
                                                                        (8 groups, eps 1e-6)
  timestep_embedding.flip1_shift0 [1,32], timestep_embedding.flip0_shift1 [1,32]
                                                                        diffusers get_timestep_embedding(
                                                                        tensor([999.]), 32, flip, shift)
  gelu.input [4,64] (3 * N(0,1)) -> gelu.exact [4,64], gelu.tanh [4,64]

Real-width blocks (weights from the formula in weights_formula.py, NOT stored):

``realwidth.safetensors``
  vae_mid.input [1,512,8,8]  -> vae_mid.output [1,512,8,8]
      diffusers UNetMidBlock2D built exactly as AutoencoderKL's Encoder builds its mid block for the SD VAE:
      UNetMidBlock2D(in_channels=512, resnet_eps=1e-6, resnet_act_fn="silu", output_scale_factor=1,
      resnet_time_scale_shift="default", attention_head_dim=512, resnet_groups=32, temb_channels=None,
      add_attention=True); forward(input) (temb None).
  unet_mid.input [1,1280,4,4], unet_mid.temb [1,1280], unet_mid.context [1,7,1024] -> unet_mid.output [1,1280,4,4]
      diffusers UNetMidBlock2DCrossAttn built by diffusers.models.unets.unet_2d_blocks.get_mid_block with the
      arguments UNet2DConditionModel passes for the SD-2.1 config: temb_channels 1280, in_channels 1280,
      resnet_eps 1e-5, silu, resnet_groups 32, output_scale_factor 1, transformer_layers_per_block 1,
      num_attention_heads 20 (head dim 64), cross_attention_dim 1024, use_linear_projection True,
      upcast_attention False, resnet_time_scale_shift "default"; forward(input, temb, context).
  All inputs N(0, 1) (seeded).
``realwidth_params.json``  {"vae_mid": {name: shape}, "unet_mid": {name: shape}, "_check":
  {"resnets.0.conv1.weight": [first 8 values of that tensor for shape [512, 512, 3, 3], exact f32 values
  written as JSON doubles]}}: every state_dict entry of the two blocks (module-relative names, e.g.
  "resnets.0.conv1.weight"; "_check" is not a case), each generated by the formula:

    seed = FNV-1a 64-bit of the UTF-8 name (offset 0xcbf29ce484222325, prime 0x100000001b3)
    for element index i (row-major, 0-based):
       z = seed + (i + 1) * 0x9E3779B97F4A7C15   (mod 2^64)
       z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9  (mod 2^64)
       z = (z ^ (z >> 27)) * 0x94D049BB133111EB  (mod 2^64)
       z =  z ^ (z >> 31)
       u = (z >> 40) / 2^24            # in [0, 1), exact in f64
       r = 2u - 1
    value = r / sqrt(prod(S[1:]))       if len(S) >= 2
            1 + 0.2 r                   if len(S) == 1 and name ends with ".weight"
            0.1 r                       if name ends with ".bias"
            0.5 r                       otherwise
    computed in float64, then cast to float32.

Library behaviours worth knowing (diffusers 0.42.1 / transformers 5.24.0 / torch 2.15.0):

* Dinov2Model.embeddings.interpolate_pos_encoding: skipped when the patch count equals the stored one and
  H == W; otherwise F.interpolate(pos as f32, size=(H//14, W//14), mode="bicubic", align_corners=False):
  by size, no +0.1 offset, no antialias, no scale_factor.
* Dinov2WithRegistersModel (its own copy of the code): the same call but with antialias=True. Registers are
  concatenated after CLS *after* the position embeddings were added (registers get no position embedding).
* torch bicubic, align_corners=False, antialias=False (see bicubic_matrix below): s = in/out (or
  1/scale_factor when scale_factor is given), src = s*(dst+0.5) - 0.5 (not clamped), taps
  floor(src)-1 .. floor(src)+2 with Keys' cubic a = -0.75 at distances t+1, t, 1-t, 2-t (t = src -
  floor(src)), tap indices clamped to [0, in-1].
* torch bicubic with antialias=True (see bicubic_aa_matrix; = PIL BICUBIC): s = in/out, support =
  2*max(s, 1), center = s*(dst+0.5), taps j from max(trunc(center - support + 0.5), 0) to
  min(trunc(center + support + 0.5), in) - 1, weight cubic_{a=-0.5}((j - center + 0.5) / max(s, 1)),
  weights divided by their sum. Even for upscaling (4 -> 5) this differs from the plain kernel (a, and
  border taps are dropped + renormalised instead of clamped): max |diff| 0.16 on the eff pos-embeds.
* get_timestep_embedding is computed in float32: exponent = -ln(10000) * arange(half) (f32) /
  (half - shift), freq = exp(exponent) (f32), arg = t * freq (f32, up to 999), then sin/cos of that f32
  argument; concatenated [sin, cos], flipped to [cos, sin] when flip_sin_to_cos.
* upcast_attention only acts in diffusers' classic AttnProcessor.get_attention_scores (casts q/k to
  float); the default AttnProcessor2_0 (used here) ignores it; in f32 it changes nothing (asserted:
  bit-identical U-Net output with upcast_attention False).
* Norm epsilons: AutoencoderKL everything 1e-6; U-Net resnets and conv_norm_out norm_eps (1e-5),
  Transformer2DModel's GroupNorm 1e-6, BasicTransformerBlock LayerNorms 1e-5; DINOv2 LayerNorms 1e-6.
* from_pretrained leaves weights as unaligned views of the file buffer, which makes torch's CPU kernels
  take other paths (~1e-6 relative output differences); the script copies weights into fresh tensors
  before computing. Every network output here is within 1e-6 rel-L2 of the same computation in float64,
  and within ~2e-3 of a float32 run with all weights rounded to float16 (checked by the script).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hashlib
import json
import math
import shutil
import sys
import warnings
from pathlib import Path

from reference_common import check_versions, fan_in

warnings.filterwarnings("ignore")

import numpy as np
import torch
import torch.nn.functional as F
import diffusers
import peft
import safetensors
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, get_mid_block
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import (
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from weights_formula import formula_scalar, formula_state_dict, formula_tensor  # noqa: E402

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
diffusers.utils.logging.set_verbosity_error()
try:
    diffusers.utils.logging.disable_progress_bar()
except AttributeError:
    pass


ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "engine"

torch.set_num_threads(min(2, os.cpu_count() or 1))
torch.use_deterministic_algorithms(True)
torch.manual_seed(0)

# ----------------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------------

SD_F2I = {"scale": 4, "timestep": 999, "dino_image_size": 224}
EFF_F2I = {"scale": 4, "timestep": 999, "dino_image_size": 70}

SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[16, 24, 24],
    layers_per_block=1,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
    scaling_factor=0.18215,
    mid_block_add_attention=True,
)

SD_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[16, 24, 24],
    layers_per_block=1,
    norm_num_groups=8,
    attention_head_dim=[2, 3, 3],  # SD-2.x naming: number of heads per level
    cross_attention_dim=32,
    use_linear_projection=True,
)

SD_DINO = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    patch_size=14,
    image_size=224,
    layerscale_value=1.0,
    hidden_act="gelu",
)

EFF_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 2,
    up_block_types=["UpDecoderBlock2D"] * 2,
    block_out_channels=[16, 24],
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
    scaling_factor=0.18215,
    mid_block_add_attention=False,
)

EFF_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    flip_sin_to_cos=False,
    freq_shift=1,
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[24, 32],
    layers_per_block=1,
    transformer_layers_per_block=[2, 1],
    norm_num_groups=8,
    attention_head_dim=[3, 4],
    cross_attention_dim=40,
    use_linear_projection=False,
    upcast_attention=True,
)

EFF_DINO = dict(
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    patch_size=14,
    image_size=56,
    layerscale_value=1.0,
    num_register_tokens=2,
    use_swiglu_ffn=True,
    hidden_act="gelu",
)

LORA_UNET_TARGETS = (
    r"(conv_in|conv_out|time_embedding\.linear_[12]"
    r"|.*\.(to_q|to_k|to_v|to_out\.0|conv1|conv2|conv_shortcut|time_emb_proj"
    r"|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2)"
    r"|.*\.(downsamplers|upsamplers)\.0\.conv)"
)
LORA_VAE_TARGETS = (
    r"(quant_conv|encoder\.(conv_in|conv_out)"
    r"|encoder\..*\.(conv1|conv2|conv_shortcut|conv|to_q|to_k|to_v|to_out\.0))"
)
SD_UNET_LORA = (4, 8)  # r, alpha
SD_VAE_LORA = (2, 4)
EFF_UNET_LORA = (4, 4)

SIZES = {
    "sd": dict(vae_enc=(32, 32), vae_dec=(8, 8), dino=(224, 224), dino_odd=(98, 98), unet=(8, 8)),
    "eff": dict(vae_enc=(40, 24), vae_dec=(6, 10), dino=(70, 70), unet=(6, 10)),
}

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------





@torch.no_grad()
def randomise_(module, seed):
    """Overwrite every parameter with seeded values; nothing stays at an identity/zero init."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        n = torch.randn(p.shape, generator=g, dtype=torch.float32)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "lambda1":  # DINOv2 layer scale
            v = 0.5 + 0.2 * n
        elif leaf in ("cls_token", "mask_token", "position_embeddings", "register_tokens"):
            v = 0.5 * n
        elif p.ndim == 1 and leaf == "weight":  # GroupNorm / LayerNorm scale
            v = 1.0 + 0.2 * n
        elif p.ndim == 1:  # biases
            v = 0.1 * n
        else:
            v = n / math.sqrt(fan_in(p.shape))
        p.copy_(v.to(p.dtype))


@torch.no_grad()
def randomise_lora_(module, seed, b_gain=0.3):
    """Random lora_A and (non-zero) lora_B, seeded."""
    g = torch.Generator().manual_seed(seed)
    count = 0
    for name, p in module.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            n = torch.randn(p.shape, generator=g, dtype=torch.float32)
            gain = b_gain if ".lora_B." in name else 1.0
            p.copy_(gain * n / math.sqrt(fan_in(p.shape)))
            count += 1
    return count


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def make_peft_adapter(model, r, alpha, targets, seed, out_dir):
    """Wraps `model` IN PLACE; the caller must not use `model` afterwards."""
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias="none")
    pm = get_peft_model(model, cfg)
    n = randomise_lora_(pm, seed)
    assert n > 0
    pm.save_pretrained(out_dir, safe_serialization=True)
    kinds = {}
    for name, mod in pm.named_modules():
        if name.endswith(".lora_A"):
            continue
        if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
            base = mod.get_base_layer()
            if isinstance(base, torch.nn.Linear):
                k = "linear"
            else:
                k = f"conv{base.kernel_size[0]}x{base.kernel_size[1]}"
            kinds[k] = kinds.get(k, 0) + 1
    return kinds


class Hooks:
    """Capture module outputs (first element when a module returns a tuple)."""

    def __init__(self):
        self.out = {}
        self.handles = []

    def add(self, key, module):
        def hook(_m, _inp, output):
            o = output[0] if isinstance(output, (tuple, list)) else output
            self.out[key] = o.detach().clone()

        self.handles.append(module.register_forward_hook(hook))

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def stats(t):
    t = t.double()
    return f"std {t.std().item():.3g} mean {t.mean().item():+.3g} max|.| {t.abs().max().item():.3g}"


def check_sane(key, t, lo=1e-2, hi=1e2):
    assert t.dtype == torch.float32, key
    assert torch.isfinite(t).all(), f"{key}: non-finite"
    s = t.double().std().item()
    assert lo <= s <= hi, f"{key}: std {s} outside [{lo}, {hi}]"
    # "not saturated": plenty of distinct values
    uniq = torch.unique(t).numel()
    assert uniq >= min(t.numel(), 64) // 2, f"{key}: only {uniq} distinct values"


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


# ----------------------------------------------------------------------------------------------
# model folders
# ----------------------------------------------------------------------------------------------


def build_and_write(kind, folder):
    """Build the base model with random weights, write the folder, return nothing (reload from disk)."""
    torch.manual_seed(0)
    if kind == "sd":
        vae_cfg, unet_cfg, f2i = SD_VAE, SD_UNET, SD_F2I
        dino = Dinov2Model(Dinov2Config(**SD_DINO)).eval()
        seeds = (1101, 1102, 1103, 1104)
    else:
        vae_cfg, unet_cfg, f2i = EFF_VAE, EFF_UNET, EFF_F2I
        dino = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**EFF_DINO)).eval()
        seeds = (2101, 2102, 2103, 2104)
    vae = AutoencoderKL(**vae_cfg).eval()
    unet = UNet2DConditionModel(**unet_cfg).eval()
    randomise_(vae, seeds[0])
    randomise_(unet, seeds[1])
    randomise_(dino, seeds[2])

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "f2idiff.json", f2i)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    dino.save_pretrained(folder / "dinov2", safe_serialization=True)
    if kind == "eff":
        g = torch.Generator().manual_seed(seeds[3])
        cd, dh = EFF_UNET["cross_attention_dim"], EFF_DINO["hidden_size"]
        cp = {
            "weight": (torch.randn(cd, dh, generator=g) / math.sqrt(dh)).contiguous(),
            "bias": (0.1 * torch.randn(cd, generator=g)).contiguous(),
        }
        save_file(cp, str(folder / "cond_proj.safetensors"), metadata={"format": "pt"})

    lora = {}
    if kind == "sd":
        lora["unet"] = make_peft_adapter(unet, *SD_UNET_LORA, LORA_UNET_TARGETS, 1201, folder / "unet_lora")
        lora["vae"] = make_peft_adapter(vae, *SD_VAE_LORA, LORA_VAE_TARGETS, 1202, folder / "vae_lora")
    else:
        lora["unet"] = make_peft_adapter(unet, *EFF_UNET_LORA, LORA_UNET_TARGETS, 2201, folder / "unet_lora")
    for name, kinds in lora.items():
        for k in ("linear", "conv3x3", "conv1x1"):  # (sd's VAE has mid attention: linear layers too)
            assert kinds.get(k), f"{kind} {name} LoRA covers no {k}"
    return lora


def load_folder(kind, folder):
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    cls = Dinov2Model if kind == "sd" else Dinov2WithRegistersModel
    dino = cls.from_pretrained(folder / "dinov2", dtype=torch.float32).eval()
    for m in (vae, unet, dino):
        for k, v in m.state_dict().items():
            assert v.dtype == torch.float32, k
        own_memory_(m)
    return vae, unet, dino


@torch.no_grad()
def own_memory_(module):
    """from_pretrained leaves parameters as views into the file buffer, not 64-byte aligned; oneDNN/MKL then
    take other code paths (~1e-6 relative differences). Copy them into fresh (aligned) tensors so every
    reference forward here runs on equally allocated weights."""
    for p in module.parameters():
        p.data = p.data.clone()
    for name, b in list(module.named_buffers()):
        mod = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
        setattr(mod, name.rsplit(".", 1)[-1], b.clone())


# ----------------------------------------------------------------------------------------------
# goldens for one folder
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def vae_encode_mean(vae, x):
    lc = vae.config.latent_channels
    h = vae.encoder(x)
    moments = vae.quant_conv(h)
    mean = moments[:, :lc]
    # cross-check against the public API
    ref = vae.encode(x).latent_dist.mean
    assert torch.equal(mean, ref)
    return mean * vae.config.scaling_factor


@torch.no_grad()
def legacy_dinov2(dino, px, offset=0.1):
    """last_hidden_state with the position-embedding interpolation of the original DINOv2 code and
    transformers 4.x: F.interpolate(scale_factor=((H/p + offset)/g, (W/p + offset)/g), bicubic,
    align_corners=False), output size int(H/p + offset) (DESIGN.md section 1's legacy option)."""
    emb = dino.embeddings

    def interpolate(embeddings, height, width):
        n = emb.position_embeddings.shape[1] - 1
        if embeddings.shape[1] - 1 == n and height == width:
            return emb.position_embeddings
        cls, pp = emb.position_embeddings[:, :1], emb.position_embeddings[:, 1:]
        dim, g = embeddings.shape[-1], int(math.sqrt(n))
        h0, w0 = height // emb.patch_size + offset, width // emb.patch_size + offset
        pp = pp.reshape(1, g, g, dim).permute(0, 3, 1, 2)
        pp = F.interpolate(pp, scale_factor=(h0 / math.sqrt(n), w0 / math.sqrt(n)), mode="bicubic",
                           align_corners=False)
        assert pp.shape[-2:] == (int(h0), int(w0)), pp.shape
        return torch.cat((cls, pp.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)

    emb.interpolate_pos_encoding = interpolate
    try:
        return dino(pixel_values=px).last_hidden_state
    finally:
        del emb.interpolate_pos_encoding


def make_goldens(kind, folder):
    sizes = SIZES[kind]
    out = {}
    vae, unet, dino = load_folder(kind, folder)
    g = torch.Generator().manual_seed(3000 if kind == "sd" else 4000)

    # --- VAE ---------------------------------------------------------------------------------
    H, W = sizes["vae_enc"]
    x = torch.rand(1, 3, H, W, generator=g) * 2 - 1
    hk = Hooks()
    hk.add("vae.enc.down0", vae.encoder.down_blocks[0])
    hk.add("vae.enc.mid", vae.encoder.mid_block)
    out["vae.enc.input"] = x
    out["vae.enc.output"] = vae_encode_mean(vae, x)
    hk.remove()
    out["vae.enc.down0"] = hk.out["vae.enc.down0"]
    out["vae.enc.mid"] = hk.out["vae.enc.mid"]

    h, w = sizes["vae_dec"]
    z = torch.randn(1, vae.config.latent_channels, h, w, generator=g)
    hk = Hooks()
    hk.add("vae.dec.mid", vae.decoder.mid_block)
    hk.add("vae.dec.up0", vae.decoder.up_blocks[0])
    out["vae.dec.input"] = z
    out["vae.dec.output"] = vae.decode(z / vae.config.scaling_factor).sample
    hk.remove()
    out["vae.dec.mid"] = hk.out["vae.dec.mid"]
    out["vae.dec.up0"] = hk.out["vae.dec.up0"]

    # --- DINOv2 ------------------------------------------------------------------------------
    H, W = sizes["dino"]
    px = torch.randn(1, 3, H, W, generator=g)
    hk = Hooks()
    hk.add("dinov2.embeddings", dino.embeddings)
    last = dino(pixel_values=px).last_hidden_state
    hk.remove()
    out["dinov2.input"] = px
    out["dinov2.output"] = last
    if kind == "sd":
        out["dinov2.embeddings"] = hk.out["dinov2.embeddings"]
        H2, W2 = sizes["dino_odd"]
        px2 = torch.randn(1, 3, H2, W2, generator=g)
        out["dinov2.input_odd"] = px2
        out["dinov2.output_odd"] = dino(pixel_values=px2).last_hidden_state
        out["dinov2.output_odd_legacy"] = legacy_dinov2(dino, px2)
        context = last
    else:
        cp = load_file(str(folder / "cond_proj.safetensors"))
        context = F.linear(last, cp["weight"], cp["bias"])
        out["cond_proj.output"] = context
        # position embeddings really are interpolated (grid 5 vs stored 4) with antialias
        emb = dino.embeddings
        pe = emb.interpolate_pos_encoding(torch.zeros(1, 26, 48), H, W)
        pp = emb.position_embeddings[:, 1:].reshape(1, 4, 4, 48).permute(0, 3, 1, 2)
        ref_aa = F.interpolate(pp, size=(5, 5), mode="bicubic", align_corners=False, antialias=True)
        ref_no = F.interpolate(pp, size=(5, 5), mode="bicubic", align_corners=False, antialias=False)
        got = pe[:, 1:].reshape(1, 5, 5, 48).permute(0, 3, 1, 2)
        assert torch.equal(got, ref_aa), "Dinov2WithRegisters pos-embed interpolation is not bicubic+antialias"
        print(f"  eff dinov2 pos-embed: antialias vs plain bicubic max|diff| "
              f"{(ref_aa - ref_no).abs().max().item():.3g}")

    # --- U-Net -------------------------------------------------------------------------------
    h, w = sizes["unet"]
    sample = torch.randn(1, unet.config.in_channels, h, w, generator=g)
    t = torch.tensor([999.0])
    hk = Hooks()
    hk.add("unet.temb", unet.time_embedding)
    hk.add("unet.down0", unet.down_blocks[0])
    hk.add("unet.mid", unet.mid_block)
    y = unet(sample, t, encoder_hidden_states=context).sample
    hk.remove()
    out["unet.sample"] = sample
    out["unet.timestep"] = t
    out["unet.context"] = context.contiguous()
    out["unet.temb"] = hk.out["unet.temb"]
    out["unet.down0"] = hk.out["unet.down0"]
    if kind == "sd":
        out["unet.mid"] = hk.out["unet.mid"]
    out["unet.output"] = y
    # integer timestep gives the same thing
    assert torch.equal(unet(sample, 999, encoder_hidden_states=context).sample, y)

    if kind == "eff":
        # upcast_attention changes nothing in f32 (default processor ignores it)
        cfg = dict(EFF_UNET, upcast_attention=False)
        u2 = UNet2DConditionModel(**cfg).eval()
        u2.load_state_dict(unet.state_dict())
        y2 = u2(sample, t, encoder_hidden_states=context).sample
        print(f"  eff unet upcast_attention True vs False: max|diff| {(y2 - y).abs().max().item():.3g}, "
              f"processor {type(unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.processor).__name__}")
        assert torch.equal(y2, y)
        del u2

    # --- LoRA (merged) -----------------------------------------------------------------------
    pu = PeftModel.from_pretrained(unet, folder / "unet_lora").eval()
    y_adapter = pu(sample, t, encoder_hidden_states=context).sample
    mu = pu.merge_and_unload().eval()
    y_lora = mu(sample, t, encoder_hidden_states=context).sample
    e = rel_l2(y_lora, y_adapter)
    assert e < 1e-5, f"{kind} unet merged vs adapter rel {e}"
    assert rel_l2(y_lora, y) > 1e-2, f"{kind} unet LoRA has no effect"
    out["unet.output_lora"] = y_lora

    if kind == "sd":
        vae2 = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
        own_memory_(vae2)
        pv = PeftModel.from_pretrained(vae2, folder / "vae_lora").eval()
        z_adapter = pv.encode(x).latent_dist.mean * vae2.config.scaling_factor
        mv = pv.merge_and_unload().eval()
        z_lora = vae_encode_mean(mv, x)
        e = rel_l2(z_lora, z_adapter)
        assert e < 1e-5, f"sd vae merged vs adapter rel {e}"
        assert rel_l2(z_lora, out["vae.enc.output"]) > 1e-2, "sd vae LoRA has no effect"
        out["vae.enc.output_lora"] = z_lora

    out = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in sorted(out.items())}
    for k, v in out.items():
        if k in ("unet.timestep",):
            continue
        check_sane(f"{kind}:{k}", v)
    s = out["unet.output"].std().item()
    assert 0.1 <= s <= 10, f"{kind} unet.output std {s}"
    return out


F64_REL_MAX = 3e-6  # f32 goldens must sit this close to the float64 result (well inside the 1e-5 gate)
F16_REL_MAX = 3e-3  # f16-rounded weights must leave a clear margin to the 1e-2 gate of f16 packs


def _round_f16_(module):
    for p in module.parameters():
        p.data = p.data.half().float()
    return module


@torch.no_grad()
def f64_check(kind, folder, exp, f16_weights=False):
    """Recompute the network outputs in float64 and compare with the float32 goldens: shows the goldens
    are well-conditioned, i.e. a correct f32 implementation can meet rel-L2 1e-5.
    With f16_weights: every weight (LoRA merged first, in f32) rounded to float16, compute in float32 -
    what an f16 pack gives; must stay inside the 1e-2 gate."""
    if f16_weights:
        conv = _round_f16_
        d = lambda k: exp[k]
        what, limit = "f16-rounded weights, f32 compute", F16_REL_MAX
    else:
        conv = lambda m: m.double()
        d = lambda k: exp[k].double()
        what, limit = "f64 recompute", F64_REL_MAX
    vae, unet, dino = (conv(m) for m in load_folder(kind, folder))
    res = {}
    sf = vae.config.scaling_factor
    lc = vae.config.latent_channels
    res["vae.enc.output"] = vae.quant_conv(vae.encoder(d("vae.enc.input")))[:, :lc] * sf
    res["vae.dec.output"] = vae.decode(d("vae.dec.input") / sf).sample
    res["dinov2.output"] = dino(pixel_values=d("dinov2.input")).last_hidden_state
    if kind == "sd":
        res["dinov2.output_odd"] = dino(pixel_values=d("dinov2.input_odd")).last_hidden_state
    else:
        cp = {k: (v.half().float() if f16_weights else v.double())
              for k, v in load_file(str(folder / "cond_proj.safetensors")).items()}
        res["cond_proj.output"] = F.linear(res["dinov2.output"], cp["weight"], cp["bias"])
    res["unet.output"] = unet(d("unet.sample"), d("unet.timestep"), encoder_hidden_states=d("unet.context")).sample
    unet32 = load_folder(kind, folder)[1]
    mu = conv(PeftModel.from_pretrained(unet32, folder / "unet_lora").merge_and_unload().eval())
    res["unet.output_lora"] = mu(d("unet.sample"), d("unet.timestep"), encoder_hidden_states=d("unet.context")).sample
    if kind == "sd":
        vae2 = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
        mv = conv(PeftModel.from_pretrained(vae2, folder / "vae_lora").merge_and_unload().eval())
        res["vae.enc.output_lora"] = mv.quant_conv(mv.encoder(d("vae.enc.input")))[:, :lc] * sf
    errs = {k: rel_l2(exp[k], v) for k, v in res.items()}
    print(f"  {kind} rel-L2(f32 golden, {what}): " + ", ".join(f"{k} {e:.2g}" for k, e in errs.items()))
    assert max(errs.values()) < limit, errs
    return errs


# ----------------------------------------------------------------------------------------------
# per-op goldens (+ independent numpy re-derivations of the bicubic kernels)
# ----------------------------------------------------------------------------------------------


def _cubic(x, a):
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def bicubic_matrix(n_in, n_out, scale=None):
    """torch bicubic, align_corners=False, no antialias: a = -0.75, src = s*(dst+0.5)-0.5 (s = in/out or
    1/scale_factor), taps floor(src)-1..floor(src)+2 clamped to the border (edge replication)."""
    s = n_in / n_out if scale is None else 1.0 / scale
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = s * (o + 0.5) - 0.5
        i0 = math.floor(src)
        t = src - i0
        for k in range(-1, 3):
            m[o, min(max(i0 + k, 0), n_in - 1)] += _cubic(t - k, -0.75)
    return m


def bicubic_aa_matrix(n_in, n_out):
    """torch bicubic with antialias=True (PIL 'BICUBIC'): a = -0.5, s = in/out, support = 2*max(s, 1),
    center = s*(o+0.5), taps j in [trunc(center-support+0.5) clamped >= 0, min(trunc(center+support+0.5),
    n_in)), w_j = cubic((j - center + 0.5) / max(s, 1)), normalised to sum 1."""
    s = n_in / n_out
    sup = 2.0 * max(s, 1.0)
    inv = 1.0 / max(s, 1.0)
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        c = s * (o + 0.5)
        lo = max(int(c - sup + 0.5), 0)
        hi = min(int(c + sup + 0.5), n_in)
        w = np.array([_cubic((j - c + 0.5) * inv, -0.5) for j in range(lo, hi)])
        m[o, lo:hi] = w / w.sum()
    return m


def apply_sep(x, mh, mw):
    xn = x.double().numpy()
    y = np.einsum("oh,nchw,pw->ncop", mh, xn, mw)
    return torch.from_numpy(y)


@torch.no_grad()
def make_ops():
    g = torch.Generator().manual_seed(5000)
    o = {}

    def interp(key, x, check, **kw):
        y = F.interpolate(x, mode="bicubic", align_corners=False, **kw)
        o[f"{key}.input"] = x
        o[f"{key}.output"] = y
        err = (y.double() - check(x)).abs().max().item()
        assert err < 1e-5, f"{key}: numpy re-derivation differs by {err}"
        return y

    x = torch.randn(1, 3, 7, 9, generator=g)
    interp("bicubic.up", x, lambda x: apply_sep(x, bicubic_matrix(7, 28), bicubic_matrix(9, 36)), size=(28, 36))
    x = torch.randn(1, 2, 37, 37, generator=g)
    interp("bicubic.down", x, lambda x: apply_sep(x, *(bicubic_matrix(37, 16),) * 2), size=(16, 16))
    x = torch.randn(1, 2, 37, 37, generator=g)
    interp("bicubic.odd", x, lambda x: apply_sep(x, *(bicubic_matrix(37, 7),) * 2), size=(7, 7))
    x = torch.randn(1, 2, 37, 37, generator=g)
    sf = (7 + 0.1) / 37
    y = interp("bicubic.scale", x, lambda x: apply_sep(x, *(bicubic_matrix(37, 7, sf),) * 2),
               scale_factor=(sf, sf))
    assert tuple(y.shape) == (1, 2, 7, 7), y.shape
    y_size = F.interpolate(x, size=(7, 7), mode="bicubic", align_corners=False)
    print(f"  bicubic.scale output {tuple(y.shape)}; vs size=(7,7) max|diff| {(y - y_size).abs().max().item():.3g}")
    x = torch.randn(1, 2, 4, 4, generator=g)
    interp("bicubic_aa.up", x, lambda x: apply_sep(x, *(bicubic_aa_matrix(4, 5),) * 2), size=(5, 5),
           antialias=True)
    x = torch.randn(1, 2, 37, 37, generator=g)
    interp("bicubic_aa.down", x, lambda x: apply_sep(x, *(bicubic_aa_matrix(37, 16),) * 2), size=(16, 16),
           antialias=True)

    x = torch.randn(1, 32, 5, 7, generator=g)
    w = 1.0 + 0.2 * torch.randn(32, generator=g)
    b = 0.1 * torch.randn(32, generator=g)
    o["group_norm.input"], o["group_norm.weight"], o["group_norm.bias"] = x, w, b
    o["group_norm.output"] = F.group_norm(x, 8, w, b, eps=1e-6)

    t = torch.tensor([999.0])
    o["timestep_embedding.flip1_shift0"] = get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0)
    o["timestep_embedding.flip0_shift1"] = get_timestep_embedding(t, 32, flip_sin_to_cos=False, downscale_freq_shift=1)

    x = 3.0 * torch.randn(4, 64, generator=g)
    o["gelu.input"] = x
    o["gelu.exact"] = F.gelu(x)
    o["gelu.tanh"] = F.gelu(x, approximate="tanh")
    return {k: v.to(torch.float32).contiguous() for k, v in sorted(o.items())}


# ----------------------------------------------------------------------------------------------
# real-width blocks
# ----------------------------------------------------------------------------------------------


def check_formula():
    name, shape = "resnets.0.conv1.weight", (512, 512, 3, 3)
    t = formula_tensor(name, shape).reshape(-1)
    for i in (0, 1, 2, 12345, t.size - 1):
        s = formula_scalar(name, shape, i)
        assert np.float32(s).tobytes() == t[i].tobytes(), (i, s, t[i])
    first = [f"{float(v)!r} (0x{np.float32(v).view(np.uint32):08x})" for v in t[:3]]
    print(f"  formula {name} {list(shape)} first 3: {', '.join(first)}")
    assert np.abs(t).max() <= 1 / math.sqrt(512 * 9) and abs(float(t.mean())) < 1e-4
    for name, shape in (("norm.weight", (4,)), ("conv.bias", (4,)), ("something", (3,))):
        v = formula_tensor(name, shape)
        print(f"  formula {name} {list(shape)}: {[float(x) for x in v]}")
        for i in range(shape[0]):
            assert np.float32(formula_scalar(name, shape, i)) == v[i]
    return t[:8].copy()


def build_formula_module(ctor):
    with torch.device("meta"):
        m = ctor()
    shapes = {k: list(v.shape) for k, v in m.state_dict().items()}
    sd = formula_state_dict(shapes)
    m.load_state_dict(sd, assign=True, strict=True)
    for k, v in list(m.named_parameters()) + list(m.named_buffers()):
        assert v.device.type == "cpu", f"{k} still on {v.device}"
    return m.eval(), shapes


@torch.no_grad()
def make_realwidth():
    out, params, f64 = {}, {}, {}
    g = torch.Generator().manual_seed(6000)

    vae_mid, shapes = build_formula_module(lambda: UNetMidBlock2D(
        in_channels=512, resnet_eps=1e-6, resnet_act_fn="silu", output_scale_factor=1,
        resnet_time_scale_shift="default", attention_head_dim=512, resnet_groups=32,
        temb_channels=None, add_attention=True))
    params["vae_mid"] = shapes
    x = torch.randn(1, 512, 8, 8, generator=g)
    out["vae_mid.input"] = x
    out["vae_mid.output"] = vae_mid(x)
    f64["vae_mid.output"] = vae_mid.double()(x.double())
    del vae_mid

    unet_mid, shapes = build_formula_module(lambda: get_mid_block(
        "UNetMidBlock2DCrossAttn", temb_channels=1280, in_channels=1280, resnet_eps=1e-5,
        resnet_act_fn="silu", resnet_groups=32, output_scale_factor=1, transformer_layers_per_block=1,
        num_attention_heads=20, cross_attention_dim=1024, dual_cross_attention=False,
        use_linear_projection=True, mid_block_only_cross_attention=False, upcast_attention=False,
        resnet_time_scale_shift="default", attention_type="default", resnet_skip_time_act=False,
        cross_attention_norm=None, attention_head_dim=20, dropout=0.0))
    params["unet_mid"] = shapes
    assert unet_mid.attentions[0].transformer_blocks[0].attn1.heads == 20
    x = torch.randn(1, 1280, 4, 4, generator=g)
    temb = torch.randn(1, 1280, generator=g)
    ctx = torch.randn(1, 7, 1024, generator=g)
    out["unet_mid.input"], out["unet_mid.temb"], out["unet_mid.context"] = x, temb, ctx
    out["unet_mid.output"] = unet_mid(x, temb, encoder_hidden_states=ctx)
    f64["unet_mid.output"] = unet_mid.double()(x.double(), temb.double(), encoder_hidden_states=ctx.double())
    del unet_mid

    out = {k: v.to(torch.float32).contiguous() for k, v in sorted(out.items())}
    for k, v in out.items():
        check_sane(f"realwidth:{k}", v)
    # the block must actually transform its input (not dominated by the skip path)
    for c in ("vae_mid", "unet_mid"):
        d = rel_l2(out[f"{c}.output"], out[f"{c}.input"])
        print(f"  realwidth {c}: rel change vs input {d:.3g}, {stats(out[c + '.output'])}")
        assert d > 0.1
        e = rel_l2(out[f"{c}.output"], f64[f"{c}.output"])
        print(f"  realwidth {c}: rel-L2(f32 golden, f64 recompute) {e:.2g}")
        assert e < F64_REL_MAX
    return out, params


# ----------------------------------------------------------------------------------------------


def main():
    check_versions()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    print("formula:")
    first = check_formula()

    print("ops:")
    ops = make_ops()
    save_file(ops, str(OUT / "ops.safetensors"), metadata={"format": "pt"})

    for kind in ("sd", "eff"):
        print(f"{kind}:")
        lora = build_and_write(kind, OUT / kind)
        print(f"  LoRA modules by kind: {lora}")
        if kind == "eff":
            ck = load_file(str(OUT / "eff" / "dinov2" / "model.safetensors"))
            mlp = {k: list(v.shape) for k, v in ck.items() if k.startswith("encoder.layer.0.mlp.")}
            print(f"  eff dinov2 on-disk SwiGLU tensors: {mlp}")
            assert "encoder.layer.0.mlp.weights_in.weight" in mlp
        exp = make_goldens(kind, OUT / kind)
        save_file(exp, str(OUT / f"{kind}_expected.safetensors"), metadata={"format": "pt"})
        f64_check(kind, OUT / kind, exp)
        f64_check(kind, OUT / kind, exp, f16_weights=True)
        for k, v in exp.items():
            print(f"    {k:24s} {str(list(v.shape)):18s} {stats(v)}")

    print("realwidth:")
    rw, params = make_realwidth()
    save_file(rw, str(OUT / "realwidth.safetensors"), metadata={"format": "pt"})
    params["_check"] = {"resnets.0.conv1.weight": [float(v) for v in first]}
    (OUT / "realwidth_params.json").write_text(json.dumps(params, indent=1) + "\n")
    for k, v in rw.items():
        print(f"    {k:24s} {str(list(v.shape)):18s} {stats(v)}")
    print(f"  realwidth params: " + ", ".join(
        f"{c}: {len(p)} tensors / {sum(math.prod(s) for s in p.values())} values" for c, p in params.items()))

    print(f"wrote {OUT.relative_to(ROOT)}:")
    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            h = hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            print(f"  {p.stat().st_size:>9}  {h}  {p.relative_to(OUT)}")
    print(f"  {total:>9}  total bytes")
    assert total < 6 * 1024 * 1024, "tests/data/engine too large"


if __name__ == "__main__":
    main()
