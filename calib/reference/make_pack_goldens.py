"""Reference-data generator for the `pack` (checkpoint conversion / LoRA merge) tests.

Deletes and rewrites everything under ``tests/data/pack/``:

* ``tiny/``               a complete, tiny model folder as users have it: ``f2idiff.json``,
                          ``vae/`` (AutoencoderKL.save_pretrained), ``unet/`` (UNet2DConditionModel,
                          saved SHARDED: index json + 2..4 shards), ``dinov2/`` (transformers
                          Dinov2Model.save_pretrained, i.e. the hub/"original" key spelling),
                          ``cond_proj.safetensors`` (``weight`` [cross_attention_dim, dino hidden],
                          ``bias``), and PEFT LoRA adapters ``unet_lora/`` and ``vae_lora/``
                          (adapter_config.json + adapter_model.safetensors, PeftModel.save_pretrained).
* ``tiny_expected/``      ``merged.safetensors``: the float32 reference merge (PeftModel.from_pretrained +
                          merge_and_unload) of tiny/, every tensor, keys prefixed ``unet.`` / ``vae.`` /
                          ``dinov2.`` (dinov2 tensors in the checkpoint spelling, exactly as in
                          tiny/dinov2/model.safetensors) plus ``cond_proj.weight`` / ``cond_proj.bias``;
                          ``lora_scales.json`` (lora_alpha / r of each adapter).
* ``osediff/``            the same base model with LoRA in the OSEDiff spelling (``unet.add_adapter`` with
                          adapters ``default_encoder`` / ``default_decoder`` / ``default_others``, PEFT
                          default lora_alpha=8, r=4; raw filtered state dicts, NO adapter_config.json;
                          the U-Net file also carries a trained ``conv_in.base_layer.{weight,bias}`` that
                          differs from the base unet's conv_in). Its dinov2/ is the same checkpoint.
* ``osediff_expected/``   ``merged.safetensors`` with all adapters active, same layout as tiny_expected;
                          ``lora_scales.json``.
* ``manifests/*.json``    parameter names and shapes of full-size / unusual configs, built on the meta
                          device: {"model", "class", "config" (config.json as save_pretrained writes it),
                          "tensors" (module state_dict names -> shape), "checkpoint_tensors" (names ->
                          shape as save_pretrained writes them to the .safetensors file; differs from
                          "tensors" only for transformers models, which rename on load/save)}.

Everything is float32 and seeded; re-running gives byte-identical files.

Run from the repository root with the pinned reference venv (calib/reference/requirements.txt):

    bash ../shared/tools/reference-venv.sh /tmp/f2i-ref-venv   # once; prints the python path
    /tmp/f2i-ref-venv/bin/python calib/reference/make_pack_goldens.py
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
import math
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from reference_common import check_versions, fan_in

warnings.filterwarnings("ignore")

import torch
import diffusers
import peft
import safetensors
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import (
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
)
from transformers.core_model_loading import revert_weight_conversion

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
diffusers.utils.logging.set_verbosity_error()
try:
    diffusers.utils.logging.disable_progress_bar()
except AttributeError:
    pass


ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "tests" / "data" / "pack"

torch.set_num_threads(min(2, os.cpu_count() or 1))
torch.use_deterministic_algorithms(True)
torch.manual_seed(0)

# ----------------------------------------------------------------------------------------------
# Tiny configs
# ----------------------------------------------------------------------------------------------

F2IDIFF_JSON = {"scale": 4, "timestep": 999, "dino_image_size": 56}

VAE_TINY = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
    up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    block_out_channels=[8, 16],
    layers_per_block=1,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=4,
    sample_size=32,
    scaling_factor=0.18215,
)

UNET_TINY = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[8, 16],
    layers_per_block=1,
    norm_num_groups=4,
    attention_head_dim=[2, 4],  # SD-2.x style: this is the number of heads per level
    cross_attention_dim=24,
    use_linear_projection=True,
)

DINO_TINY = dict(
    hidden_size=24,
    num_hidden_layers=2,
    num_attention_heads=2,
    patch_size=14,
    image_size=56,
    layerscale_value=1.0,
)

# PEFT LoRA for tiny/ (regex strings are re.fullmatch'ed by PEFT against full module names).
UNET_LORA_R, UNET_LORA_ALPHA = 4, 6  # scale 1.5
UNET_LORA_TARGETS = (
    r"(conv_in|conv_out|time_embedding\.linear_[12]"
    r"|.*\.(to_q|to_k|to_v|to_out\.0|conv1|conv2|conv_shortcut|time_emb_proj"
    r"|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2)"
    r"|.*\.(downsamplers|upsamplers)\.0\.conv)"
)
VAE_LORA_R, VAE_LORA_ALPHA = 2, 3  # scale 1.5
VAE_LORA_TARGETS = (
    r"(quant_conv|encoder\.(conv_in|conv_out)"
    r"|encoder\..*\.(conv1|conv2|conv_shortcut|conv|to_q|to_k|to_v|to_out\.0))"
)

# OSEDiff spelling
OSEDIFF_R = 4  # lora_alpha never set -> PEFT default 8 -> scale 2.0
OSEDIFF_UNET_ADAPTERS = ["default_encoder", "default_decoder", "default_others"]
OSEDIFF_VAE_ADAPTERS = ["default_encoder"]
OSEDIFF_PATTERNS = [
    "to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in",
    "conv_shortcut", "conv_out", "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj",
]

# Which spelling the dinov2 tensors get in merged.safetensors: "checkpoint" = exactly the names in
# dinov2/model.safetensors (what save_pretrained writes and the hub ships); "module" = the names of
# transformers 5.x's in-memory state_dict (q_proj/k_proj/v_proj/o_proj ...).
DINO_MERGED_SPELLING = "checkpoint"

ATOL_MERGE = 2e-5


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------





@torch.no_grad()
def randomise_(module, seed):
    """Overwrite every parameter with seeded values; nothing stays at an identity init."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        n = torch.randn(p.shape, generator=g, dtype=torch.float32)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "lambda1":  # DINOv2 layer scale
            v = 0.5 + 0.2 * n
        elif leaf in ("cls_token", "mask_token", "position_embeddings", "register_tokens"):
            v = 0.1 * n
        elif p.ndim == 1 and leaf == "weight":  # GroupNorm / LayerNorm scale
            v = 1.0 + 0.1 * n
        elif p.ndim == 1:  # biases
            v = 0.05 * n
        else:
            v = n / math.sqrt(fan_in(p.shape))
        p.copy_(v.to(p.dtype))


@torch.no_grad()
def randomise_lora_(module, seed, b_gain=0.3):
    """Random lora_A and (non-zero!) lora_B, seeded; returns the number of LoRA tensors touched."""
    g = torch.Generator().manual_seed(seed)
    count = 0
    for name, p in module.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            n = torch.randn(p.shape, generator=g, dtype=torch.float32)
            gain = b_gain if ".lora_B." in name else 1.0
            p.copy_(gain * n / math.sqrt(fan_in(p.shape)))
            count += 1
    return count


def sd_f32(module):
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in module.state_dict().items()}


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def lora_delta(layer, adapter):
    """Independent re-derivation of what merging adds to the base weight (checked against PEFT)."""
    A = layer.lora_A[adapter].weight.detach()
    B = layer.lora_B[adapter].weight.detach()
    s = layer.scaling[adapter]
    if A.ndim == 2:
        return s * (B @ A)
    out_ch, r = B.shape[:2]
    assert B.shape[2:] == (1, 1), B.shape
    return s * (B.reshape(out_ch, r) @ A.reshape(r, -1)).reshape(out_ch, *A.shape[1:])


def expected_merged_weights(model, adapters):
    """{base param name: expected merged weight} for every LoRA-wrapped module of `model`."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, LoraLayer):
            w = mod.get_base_layer().weight.detach().clone()
            for a in adapters:
                if a in mod.lora_A:
                    w = w + lora_delta(mod, a)
            out[name] = w
    return out


def strip_peft_prefix(name):
    return name[len("base_model.model."):] if name.startswith("base_model.model.") else name


def unet_inputs(cfg, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"], generator=g)
    ctx = torch.randn(1, 5, cfg["cross_attention_dim"], generator=g)
    return x, ctx


def run_unet(unet, x, ctx):
    with torch.no_grad():
        return unet(x, torch.tensor([999]), encoder_hidden_states=ctx).sample


def run_vae(vae, seed=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    with torch.no_grad():
        return vae.encode(x).latent_dist.parameters


def assert_close(a, b, what, atol=ATOL_MERGE):
    err = (a - b).abs().max().item()
    if not err <= atol:
        raise AssertionError(f"{what}: max abs diff {err} > {atol}")
    return err


def assert_same_sd(a, b, what):
    assert a.keys() == b.keys(), f"{what}: key sets differ: {sorted(set(a) ^ set(b))[:10]}"
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), f"{what}: {k} differs"


# ----------------------------------------------------------------------------------------------
# A. tiny/ model folder with PEFT adapters
# ----------------------------------------------------------------------------------------------


def build_base():
    torch.manual_seed(0)
    vae = AutoencoderKL(**VAE_TINY).eval()
    randomise_(vae, 101)
    unet = UNet2DConditionModel(**UNET_TINY).eval()
    randomise_(unet, 102)
    dino = Dinov2Model(Dinov2Config(**DINO_TINY)).eval()
    randomise_(dino, 103)
    g = torch.Generator().manual_seed(104)
    cd, dh = UNET_TINY["cross_attention_dim"], DINO_TINY["hidden_size"]
    cond_proj = {
        "weight": torch.randn(cd, dh, generator=g) / math.sqrt(dh),
        "bias": 0.05 * torch.randn(cd, generator=g),
    }
    return vae, unet, dino, cond_proj


def save_unet_sharded(unet, path):
    total = sum(t.numel() * t.element_size() for t in unet.state_dict().values())
    shard = total // 3 + 1
    unet.save_pretrained(path, safe_serialization=True, max_shard_size=shard)
    shards = sorted(p.name for p in path.glob("diffusion_pytorch_model-*.safetensors"))
    assert (path / "diffusion_pytorch_model.safetensors.index.json").is_file(), "unet not sharded"
    assert 2 <= len(shards) <= 4, f"expected 2..4 unet shards, got {shards}"
    return shards


def write_base_folder(folder, vae, unet, dino, cond_proj, shard_unet):
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "f2idiff.json", F2IDIFF_JSON)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    if shard_unet:
        save_unet_sharded(unet, folder / "unet")
    else:
        unet.save_pretrained(folder / "unet", safe_serialization=True)
    dino.save_pretrained(folder / "dinov2", safe_serialization=True)
    save_file(cond_proj, str(folder / "cond_proj.safetensors"), metadata={"format": "pt"})


def make_peft_adapter(model, r, alpha, targets, seed, out_dir):
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias="none")
    pm = get_peft_model(model, cfg)
    randomise_lora_(pm, seed)
    pm.save_pretrained(out_dir, safe_serialization=True)
    wrapped = sorted(
        strip_peft_prefix(n)[: -len(".lora_A")]
        for n, _ in pm.named_modules()
        if n.endswith(".lora_A")
    )
    return wrapped


def module_kinds(base_model, names):
    kinds = {}
    mods = dict(base_model.named_modules())
    for n in names:
        m = mods[n]
        if isinstance(m, torch.nn.Linear):
            k = "linear"
        elif isinstance(m, torch.nn.Conv2d):
            k = f"conv{m.kernel_size[0]}x{m.kernel_size[1]}"
        else:
            k = type(m).__name__
        kinds.setdefault(k, []).append(n)
    return kinds


def coverage_report(base_model, wrapped, must_have):
    kinds = module_kinds(base_model, wrapped)
    for k in must_have:
        assert kinds.get(k), f"LoRA covers no {k} modules"
    return {k: len(v) for k, v in kinds.items()}


def dino_checkpoint_tensors(folder):
    return load_file(str(folder / "dinov2" / "model.safetensors"))


def merge_tiny(folder, base_vae_sd, base_unet_sd, base_dino_sd):
    """Reference merge of tiny/: PeftModel.from_pretrained + merge_and_unload, float32."""
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    dino = Dinov2Model.from_pretrained(folder / "dinov2", dtype=torch.float32).eval()
    assert_same_sd(sd_f32(unet), base_unet_sd, "reloaded sharded unet")
    assert_same_sd(sd_f32(vae), base_vae_sd, "reloaded vae")
    assert_same_sd(sd_f32(dino), base_dino_sd, "reloaded dinov2")

    x, ctx = unet_inputs(UNET_TINY)
    y_base = run_unet(unet, x, ctx)
    pu = PeftModel.from_pretrained(unet, folder / "unet_lora").eval()
    y_lora = run_unet(pu, x, ctx)
    expect_u = expected_merged_weights(pu.base_model.model, ["default"])
    mu = pu.merge_and_unload().eval()
    y_merged = run_unet(mu, x, ctx)
    assert (y_lora - y_base).abs().max() > 1e-2, "unet LoRA has no effect"
    err_u = assert_close(y_merged, y_lora, "tiny unet merged vs adapter forward", 1e-4)

    z_base = run_vae(vae)
    pv = PeftModel.from_pretrained(vae, folder / "vae_lora").eval()
    z_lora = run_vae(pv)
    expect_v = expected_merged_weights(pv.base_model.model, ["default"])
    mv = pv.merge_and_unload().eval()
    z_merged = run_vae(mv)
    assert (z_lora - z_base).abs().max() > 1e-2, "vae LoRA has no effect"
    err_v = assert_close(z_merged, z_lora, "tiny vae merged vs adapter forward", 1e-4)

    usd, vsd = sd_f32(mu), sd_f32(mv)
    assert usd.keys() == base_unet_sd.keys() and vsd.keys() == base_vae_sd.keys()
    for name, w in expect_u.items():
        assert_close(usd[name + ".weight"], w, f"unet {name} merge formula")
    for name, w in expect_v.items():
        assert_close(vsd[name + ".weight"], w, f"vae {name} merge formula")
    # everything that is not a LoRA-wrapped weight must be untouched
    for sd, base, exp in ((usd, base_unet_sd, expect_u), (vsd, base_vae_sd, expect_v)):
        wrapped_w = {n + ".weight" for n in exp}
        for k in sd:
            if k not in wrapped_w:
                assert torch.equal(sd[k], base[k]), f"{k} changed by merge"
            else:
                assert not torch.equal(sd[k], base[k]), f"{k} unchanged by merge"
    return usd, vsd, len(expect_u), len(expect_v), (err_u, err_v)


def pack_dict(usd, vsd, folder, base_dino_sd, cond_proj):
    out = {}
    for k, v in usd.items():
        out["unet." + k] = v
    for k, v in vsd.items():
        out["vae." + k] = v
    dino = dino_checkpoint_tensors(folder) if DINO_MERGED_SPELLING == "checkpoint" else base_dino_sd
    for k, v in dino.items():
        out["dinov2." + k] = v.to(torch.float32).contiguous()
    out["cond_proj.weight"] = cond_proj["weight"].contiguous()
    out["cond_proj.bias"] = cond_proj["bias"].contiguous()
    return out


# ----------------------------------------------------------------------------------------------
# C. OSEDiff spelling
# ----------------------------------------------------------------------------------------------


def osediff_unet_targets(unet):
    """Module selection as OSEDiff describes it: scan parameter names (skip biases and norms); the
    first pattern of OSEDIFF_PATTERNS contained in the name decides that the module gets LoRA; modules
    under down_blocks / conv_in go to the encoder adapter, up_blocks / conv_out to the decoder adapter,
    the rest (mid block) to 'others'."""
    enc, dec, oth = [], [], []
    for n, _ in unet.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        if not any(p in n for p in OSEDIFF_PATTERNS):
            continue
        mod = n[: -len(".weight")] if n.endswith(".weight") else n
        if "down_blocks" in n or "conv_in" in n:
            enc.append(mod)
        elif "up_blocks" in n or "conv_out" in n:
            dec.append(mod)
        else:
            oth.append(mod)
    return {"default_encoder": enc, "default_decoder": dec, "default_others": oth}


def osediff_vae_targets(vae):
    enc = []
    for n, _ in vae.named_parameters():
        if "bias" in n or "norm" in n or "encoder" not in n:
            continue
        if any(p in n for p in OSEDIFF_PATTERNS):
            enc.append(n[: -len(".weight")] if n.endswith(".weight") else n)
    return {"default_encoder": enc}


def osediff_add_adapters(model, targets):
    for name, mods in targets.items():
        assert mods, f"empty OSEDiff target list for {name}"
        model.add_adapter(
            LoraConfig(r=OSEDIFF_R, init_lora_weights="gaussian", target_modules=mods), adapter_name=name
        )


def make_osediff_adapters(folder, base_unet_sd, base_vae_sd):
    unet = UNet2DConditionModel(**UNET_TINY).eval()
    unet.load_state_dict(base_unet_sd)
    ut = osediff_unet_targets(unet)
    osediff_add_adapters(unet, ut)
    randomise_lora_(unet, 301)
    # conv_in was trained in full: give it new base weights
    g = torch.Generator().manual_seed(302)
    with torch.no_grad():
        bl = unet.conv_in.base_layer
        bl.weight.copy_(torch.randn(bl.weight.shape, generator=g) / math.sqrt(fan_in(bl.weight.shape)))
        bl.bias.copy_(0.05 * torch.randn(bl.bias.shape, generator=g))
    usd = {k: v.detach().contiguous().clone() for k, v in unet.state_dict().items()
           if "lora" in k or "conv_in" in k}
    assert not torch.equal(usd["conv_in.base_layer.weight"], base_unet_sd["conv_in.weight"])
    (folder / "unet_lora").mkdir(parents=True, exist_ok=True)
    save_file(usd, str(folder / "unet_lora" / "adapter_model.safetensors"), metadata={"format": "pt"})

    vae = AutoencoderKL(**VAE_TINY).eval()
    vae.load_state_dict(base_vae_sd)
    vt = osediff_vae_targets(vae)
    osediff_add_adapters(vae, vt)
    randomise_lora_(vae, 303)
    vsd = {k: v.detach().contiguous().clone() for k, v in vae.state_dict().items() if "lora" in k}
    (folder / "vae_lora").mkdir(parents=True, exist_ok=True)
    save_file(vsd, str(folder / "vae_lora" / "adapter_model.safetensors"), metadata={"format": "pt"})
    return ut, vt


def load_osediff_state(model, path):
    """OSEDiff inference style: copy every saved tensor into the adapter-wrapped model, by name."""
    saved = load_file(str(path))
    own = model.state_dict()
    for k, v in saved.items():
        assert k in own and own[k].shape == v.shape, f"OSEDiff key {k} does not fit the model"
    missing, unexpected = model.load_state_dict(saved, strict=False)
    assert not unexpected
    not_loaded = [k for k in own if "lora" in k and k not in saved]
    assert not not_loaded, f"LoRA tensors missing from {path}: {not_loaded[:5]}"


def merge_osediff(folder, base_vae_sd, base_unet_sd):
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    assert_same_sd(sd_f32(unet), base_unet_sd, "osediff base unet")
    assert_same_sd(sd_f32(vae), base_vae_sd, "osediff base vae")

    osediff_add_adapters(unet, osediff_unet_targets(unet))
    load_osediff_state(unet, folder / "unet_lora" / "adapter_model.safetensors")
    unet.set_adapter(OSEDIFF_UNET_ADAPTERS)
    x, ctx = unet_inputs(UNET_TINY)
    y_lora = run_unet(unet, x, ctx)
    expect_u = expected_merged_weights(unet, OSEDIFF_UNET_ADAPTERS)
    unet.fuse_lora(adapter_names=OSEDIFF_UNET_ADAPTERS)
    unet.unload_lora()
    y_merged = run_unet(unet, x, ctx)
    err_u = assert_close(y_merged, y_lora, "osediff unet merged vs adapter forward", 1e-4)

    osediff_add_adapters(vae, osediff_vae_targets(vae))
    load_osediff_state(vae, folder / "vae_lora" / "adapter_model.safetensors")
    vae.set_adapter(OSEDIFF_VAE_ADAPTERS)
    z_lora = run_vae(vae)
    expect_v = expected_merged_weights(vae, OSEDIFF_VAE_ADAPTERS)
    vae.fuse_lora(adapter_names=OSEDIFF_VAE_ADAPTERS)
    vae.unload_lora()
    z_merged = run_vae(vae)
    err_v = assert_close(z_merged, z_lora, "osediff vae merged vs adapter forward", 1e-4)

    usd, vsd = sd_f32(unet), sd_f32(vae)
    assert usd.keys() == base_unet_sd.keys() and vsd.keys() == base_vae_sd.keys()
    for sd, exp, base in ((usd, expect_u, base_unet_sd), (vsd, expect_v, base_vae_sd)):
        wrapped_w = {n + ".weight" for n in exp}
        for name, w in exp.items():
            assert_close(sd[name + ".weight"], w, f"osediff {name} merge formula")
        for k in sd:
            if k in wrapped_w:
                continue
            if k == "conv_in.bias":
                assert not torch.equal(sd[k], base[k]), "conv_in.bias should come from base_layer"
            else:
                assert torch.equal(sd[k], base[k]), f"{k} changed by merge"
    return usd, vsd, (err_u, err_v)


# ----------------------------------------------------------------------------------------------
# D. manifests (meta device)
# ----------------------------------------------------------------------------------------------

SD21_BASE_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[320, 640, 1280, 1280],
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=1024,
    attention_head_dim=[5, 10, 20, 20],
    dual_cross_attention=False,
    use_linear_projection=True,
)

EFF_UNET = dict(SD21_BASE_UNET, block_out_channels=[224, 448, 896, 896], attention_head_dim=[4, 7, 14, 14])

# diffusers 0.42.1 still raises on num_attention_heads= for UNet2DConditionModel, so the variety case
# passes attention_head_dim as a scalar instead (heads per level = 4 everywhere).
VARIETY_UNET = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn",
    block_out_channels=[32, 64, 96],
    layers_per_block=[1, 2, 1],
    transformer_layers_per_block=[1, 2, 1],
    norm_num_groups=8,
    attention_head_dim=4,
    cross_attention_dim=768,
    use_linear_projection=False,
)

SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=768,
    scaling_factor=0.18215,
)

VARIETY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[16, 32, 64],
    layers_per_block=1,
    act_fn="silu",
    latent_channels=8,
    norm_num_groups=8,
    sample_size=64,
    scaling_factor=0.3611,
    mid_block_add_attention=False,
    use_quant_conv=True,
    use_post_quant_conv=True,
)

DINO_REAL = dict(image_size=518, patch_size=14, layerscale_value=1.0, layer_norm_eps=1e-6, mlp_ratio=4)
DINO_CASES = {
    "dinov2_small": dict(DINO_REAL, hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "dinov2_base": dict(DINO_REAL, hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "dinov2_large": dict(DINO_REAL, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
    "dinov2_giant": dict(DINO_REAL, hidden_size=1536, num_hidden_layers=40, num_attention_heads=24,
                         use_swiglu_ffn=True),
}
DINO_REG = dict(DINO_REAL, hidden_size=384, num_hidden_layers=12, num_attention_heads=6, num_register_tokens=4)


def shapes(sd):
    return {k: list(v.shape) for k, v in sd.items()}


def diffusers_manifest(kind, cls, kwargs):
    with torch.device("meta"):
        m = cls(**kwargs)
    with tempfile.TemporaryDirectory() as td:
        m.save_config(td)  # exactly what save_pretrained writes as config.json
        cfg = json.loads((Path(td) / "config.json").read_text())
    t = shapes(m.state_dict())
    return {"model": kind, "class": cls.__name__, "config": cfg, "tensors": t, "checkpoint_tensors": t}


def transformers_manifest(cls, config):
    with torch.device("meta"):
        m = cls(config)
    sd = m.state_dict()
    ck = revert_weight_conversion(m, dict(sd))
    m.config.dtype = str(next(m.parameters()).dtype).split(".")[1]
    m.config.architectures = [cls.__name__]
    with tempfile.TemporaryDirectory() as td:
        m.config.save_pretrained(td)
        cfg = json.loads((Path(td) / "config.json").read_text())
    return {"model": "dinov2", "class": cls.__name__, "config": cfg, "tensors": shapes(sd),
            "checkpoint_tensors": shapes(ck)}


def write_manifests(out):
    cases = {
        "unet_sd21_base": diffusers_manifest("unet", UNet2DConditionModel, SD21_BASE_UNET),
        "unet_eff": diffusers_manifest("unet", UNet2DConditionModel, EFF_UNET),
        "unet_variety": diffusers_manifest("unet", UNet2DConditionModel, VARIETY_UNET),
        "vae_sd": diffusers_manifest("vae", AutoencoderKL, SD_VAE),
        "vae_variety": diffusers_manifest("vae", AutoencoderKL, VARIETY_VAE),
    }
    for name, kw in DINO_CASES.items():
        cases[name] = transformers_manifest(Dinov2Model, Dinov2Config(**kw))
    cases["dinov2_registers"] = transformers_manifest(
        Dinov2WithRegistersModel, Dinov2WithRegistersConfig(**DINO_REG))
    for name, obj in cases.items():
        (out / f"{name}.json").write_text(json.dumps(obj, separators=(",", ":")) + "\n")
    return cases


# ----------------------------------------------------------------------------------------------


def main():
    check_versions()
    if PACK.exists():
        shutil.rmtree(PACK)
    PACK.mkdir(parents=True)

    # A. tiny/
    vae, unet, dino, cond_proj = build_base()
    base_vae_sd, base_unet_sd, base_dino_sd = sd_f32(vae), sd_f32(unet), sd_f32(dino)
    tiny = PACK / "tiny"
    write_base_folder(tiny, vae, unet, dino, cond_proj, shard_unet=True)
    # the dinov2 checkpoint must reload to the very same module weights
    ck = dino_checkpoint_tensors(tiny)
    assert not any(k.startswith(("dinov2.", "model.")) for k in ck)

    u_wrapped = make_peft_adapter(unet, UNET_LORA_R, UNET_LORA_ALPHA, UNET_LORA_TARGETS, 201, tiny / "unet_lora")
    v_wrapped = make_peft_adapter(vae, VAE_LORA_R, VAE_LORA_ALPHA, VAE_LORA_TARGETS, 202, tiny / "vae_lora")
    base_unet_for_kinds = UNet2DConditionModel(**UNET_TINY)
    base_vae_for_kinds = AutoencoderKL(**VAE_TINY)
    u_cov = coverage_report(base_unet_for_kinds, u_wrapped, ["linear", "conv3x3", "conv1x1"])
    v_cov = coverage_report(base_vae_for_kinds, v_wrapped, ["linear", "conv3x3", "conv1x1"])
    assert not any(not (n.startswith("encoder.") or n == "quant_conv") for n in v_wrapped)
    assert "quant_conv" in v_wrapped and "post_quant_conv" not in v_wrapped
    del unet, vae  # were wrapped in place by get_peft_model

    # B. tiny_expected/
    usd, vsd, n_u, n_v, errs_tiny = merge_tiny(tiny, base_vae_sd, base_unet_sd, base_dino_sd)
    exp = PACK / "tiny_expected"
    exp.mkdir()
    save_file(pack_dict(usd, vsd, tiny, base_dino_sd, cond_proj), str(exp / "merged.safetensors"),
              metadata={"format": "pt"})
    write_json(exp / "lora_scales.json", {"unet": UNET_LORA_ALPHA / UNET_LORA_R, "vae": VAE_LORA_ALPHA / VAE_LORA_R})

    # C. osediff/ + osediff_expected/
    base_unet = UNet2DConditionModel(**UNET_TINY).eval()
    base_unet.load_state_dict(base_unet_sd)
    base_vae = AutoencoderKL(**VAE_TINY).eval()
    base_vae.load_state_dict(base_vae_sd)
    ose = PACK / "osediff"
    write_base_folder(ose, base_vae, base_unet, dino, cond_proj, shard_unet=False)
    ut, vt = make_osediff_adapters(ose, base_unet_sd, base_vae_sd)
    usd2, vsd2, errs_ose = merge_osediff(ose, base_vae_sd, base_unet_sd)
    exp2 = PACK / "osediff_expected"
    exp2.mkdir()
    save_file(pack_dict(usd2, vsd2, ose, base_dino_sd, cond_proj), str(exp2 / "merged.safetensors"),
              metadata={"format": "pt"})
    default_alpha = LoraConfig().lora_alpha
    write_json(exp2 / "lora_scales.json", {"unet": default_alpha / OSEDIFF_R, "vae": default_alpha / OSEDIFF_R})

    # D. manifests/
    man = PACK / "manifests"
    man.mkdir()
    cases = write_manifests(man)

    # E. summary
    print(f"wrote {PACK.relative_to(ROOT)}:")
    total = 0
    for p in sorted(PACK.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            print(f"  {p.stat().st_size:>9}  {p.relative_to(PACK)}")
    print(f"  {total:>9}  total bytes")
    print(f"tiny unet LoRA modules: {u_cov}  vae LoRA modules: {v_cov}")
    ose_counts = {k: len(v) for k, v in ut.items()}, {k: len(v) for k, v in vt.items()}
    print(f"osediff adapters (unet, vae): {ose_counts}")
    print(f"merge vs adapter forward max|diff|: tiny {errs_tiny}, osediff {errs_ose}")
    counts = ", ".join(f"{k}({len(v['tensors'])})" for k, v in cases.items())
    print(f"manifests (tensor counts): {counts}")


if __name__ == "__main__":
    main()
