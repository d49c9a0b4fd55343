"""Reference-data generator for the end-to-end super-resolution pipeline tests and for `f2idiff eval`.

Deletes and rewrites everything under ``tests/data/pipeline/``.  Run from the repository root with the
pinned reference venv (calib/reference/requirements.txt), after make_engine_goldens.py has written the
tiny model folders it reads:

    /tmp/f2i-ref-venv/bin/python calib/reference/make_pipeline_goldens.py

``--eval-only`` rewrites just ``eval_expected.json`` (no model needed); it recomputes the eval pairs and
stops unless they equal the committed ``eval/hr`` and ``eval/sr`` PNGs.

CPU, seeded, deterministic: re-running gives byte-identical files (checked by sha256).

Inputs
======

Models: the tiny folders ``tests/data/engine/sd/`` and ``tests/data/engine/eff/`` (see
make_engine_goldens.py), loaded the way the Rust side does: vae/ (AutoencoderKL), unet/
(UNet2DConditionModel), dinov2/ (Dinov2Model for model_type "dinov2", Dinov2WithRegistersModel for
"dinov2_with_registers" - eff), optional cond_proj.safetensors (``weight`` [out, in], ``bias``), the PEFT
adapters unet_lora/ (both) and vae_lora/ (sd; encoder + quant_conv) merged in float32 with
PeftModel.from_pretrained(...).merge_and_unload(), f2idiff.json {"scale", "timestep", "dino_image_size"}.
Every parameter and buffer is copied into a fresh contiguous tensor after loading and again after merging
(from_pretrained leaves unaligned views of the file buffer; those shift results by ~1e-6).

Photos (scikit-image 0.26 sample data, shipped inside the skimage wheel; licences as its docstrings state):

* ``skimage.data.astronaut()`` 512x512: Eileen Collins, NASA Great Images database. "No known copyright
  restrictions, released into the public domain."
* ``skimage.data.coffee()`` 400x600: courtesy of Pikolo Espresso Bar. "No copyright restrictions. CC0 by
  the photographer (Rachel Michetti)."
* ``skimage.data.chelsea()`` 300x451: Chelsea the cat. "No copyright restrictions. CC0 by the
  photographer (Stefan van der Walt)."

LR inputs: an HR crop of (scale*H, scale*W) pixels at a fixed position (CROPS below: photo, top, left),
downscaled to W x H with PIL ``Image.resize((W, H), Image.BICUBIC)`` (Pillow 13, antialiased bicubic),
saved as u8 RGB PNG.

Pipeline (the numerics contract; float32 unless stated; batch 1; NCHW)
======================================================================

 1. lr01 = u8 / 255 (true f32 division, [1,3,H,W]); lr = lr01 * 2 - 1.
 2. lq = clamp(F.interpolate(lr, size=(sH, sW), mode="bicubic", align_corners=False), -1, 1).
 3. lq_pad = F.pad(lq, (0, padW, 0, padH), mode="reflect") up to the next multiples of 8 (bottom/right
    only) when sH or sW is not a multiple of 8; else lq_pad = lq.
 4. z = vae.encode(lq_pad).latent_dist.mean * scaling_factor.
 5. px = F.interpolate(lr01, size=(D, D), bicubic, align_corners=False) (no clamp), D = dino_image_size;
    px = (px - mean) / std per channel, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) as f32;
    ctx = dinov2(pixel_values=px).last_hidden_state; ctx = F.linear(ctx, W, b) if cond_proj exists.
 6. eps = unet(z, torch.tensor([timestep]), encoder_hidden_states=ctx).sample.
 7. betas = linspace(sqrt(0.00085), sqrt(0.012), 1000, float64)**2, abar = cumprod(1 - betas) (float64),
    a = abar[timestep]; c1 = float32(sqrt(1 - a)), c2 = float32(sqrt(a)); x0 = (z - c1 * eps) / c2 (f32).
 8. dec = clamp(vae.decode(x0 / scaling_factor).sample, -1, 1)[:, :, :sH, :sW]; sr01 = (dec + 1) / 2.
 9. colour fix against lq01 = (lq + 1) / 2 (unpadded):
      wavelet: blur(x, r) = F.conv2d(F.pad(x, (r,)*4, mode="replicate"), k, groups=3, dilation=r),
               k = [[1,2,1],[2,4,2],[1,2,1]] / 16 per channel;
               decompose(img): high = 0; for i in 0..4: low = blur(img, 2**i); high += img - low; img = low
               -> (high, low); fixed = high(sr01) + low(lq01).
      adain:   per channel mu = mean, sigma = sqrt(unbiased var + 1e-5) over H*W;
               fixed = (sr01 - mu_sr) / sigma_sr * sigma_lq + mu_lq.
      none:    fixed = sr01.
10. out = round(clamp(fixed, 0, 1) * 255) as u8 (torch.round: ties to even), RGB PNG.

Cases
=====

  case                  model  LR (HxW) from            output   colour fix
  sd_astronaut_wavelet  sd     astronaut 24x24          96x96    wavelet
  sd_astronaut_adain    sd     (same LR)                96x96    adain
  sd_astronaut_none     sd     (same LR)                96x96    none
  sd_coffee_wavelet     sd     coffee 13x9              52x36    wavelet (reflect pad to 56x40; latent 14x10
                                                                 is not a multiple of the U-Net's 4x: diffusers
                                                                 forwards upsample_size 7x5 and 14x10)
  eff_chelsea_wavelet   eff    chelsea 16x20            64x80    wavelet

Files (tests/data/pipeline/)
============================

* ``<case>.lr.png`` (input, u8 RGB), ``<case>.sr.png`` (output, u8 RGB); the three sd_astronaut_* cases
  have identical .lr.png files.
* ``intermediates.safetensors``: float32, per case: ``<case>.lq`` [1,3,sH,sW] (step 2, unpadded),
  ``<case>.z`` [1,4,h,w] (step 4), ``<case>.ctx`` [1,T,C] (step 5, after cond_proj), ``<case>.eps``
  (step 6), ``<case>.x0`` (step 7), ``<case>.dec`` [1,3,sH,sW] (step 8, clamped + cropped decoder
  output, before (x+1)/2), ``<case>.fixed`` [1,3,sH,sW] (step 9, before the clamp/quantisation).
* ``cases.json``: list of {case, model, lr, sr, color_fix, scale, timestep, dino_image_size}; ``model`` is
  the folder under tests/data/engine/, ``lr``/``sr`` file names relative to tests/data/pipeline/.
* ``eval/hr/NAME.png`` and ``eval/sr/NAME.png`` (64x64 u8 RGB) and ``eval_expected.json``:
  {NAME: {"psnr_y", "ssim_y", "gmsd", "gmsd_57x56"}, ..., "mean": {"psnr_y", "ssim_y", "gmsd"}} (mean =
  arithmetic mean over the images), BasicSR calculate_psnr / calculate_ssim with test_y_channel=True,
  crop_border=4 (see EVAL_CROPS and basicsr_y below for the exact definitions); ``gmsd`` is
  piq.gmsd(sr, hr) (piq 0.8.0, float64 tensors of u8 / 255, data_range 1) on the same crop_border=4
  crops; ``gmsd_57x56`` is piq.gmsd on the 57x56 (HxW) window at row 4, column 4, which exercises
  piq's odd-size rule (pad bottom and right by 1 when either side is odd, then 2x2 pooling floors).
* ``README.md``: provenance, licences, the f32-vs-f64 figures.

The script also runs the whole pipeline in float64 (models .double() after the f32 LoRA merge, inputs
double, scheduler constants in double) and prints max / mean |out_f32 - out_f64| in u8 levels per case;
the Rust side is held to max 2 levels, mean 0.02, so the script asserts the reference itself sits inside
that.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import hashlib
import json
import math
import shutil
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_common import DINO_MEAN, DINO_STD, WAVELET_LEVELS, check_versions, wavelet_decompose  # noqa: E402

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from peft import PeftModel  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import Dinov2Model, Dinov2WithRegistersModel  # noqa: E402

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
diffusers.utils.logging.set_verbosity_error()
try:
    diffusers.utils.logging.disable_progress_bar()
except AttributeError:
    pass

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "data" / "engine"
OUT = ROOT / "tests" / "data" / "pipeline"

torch.set_num_threads(min(2, os.cpu_count() or 1))
torch.use_deterministic_algorithms(True)
torch.manual_seed(0)

ADAIN_EPS = 1e-5

# name -> (photo, top, left, LR height, LR width); the HR crop is (scale*H) x (scale*W) at (top, left)
CROPS = {
    "astronaut": ("astronaut", 70, 170, 24, 24),  # face
    "coffee": ("coffee", 180, 320, 13, 9),  # cup edge and spoon
    "chelsea": ("chelsea", 70, 120, 16, 20),  # left eye
}
CASES = [
    ("sd_astronaut_wavelet", "sd", "astronaut", "wavelet"),
    ("sd_astronaut_adain", "sd", "astronaut", "adain"),
    ("sd_astronaut_none", "sd", "astronaut", "none"),
    ("sd_coffee_wavelet", "sd", "coffee", "wavelet"),
    ("eff_chelsea_wavelet", "eff", "chelsea", "wavelet"),
]
# f32-vs-f64 gate the Rust side is held to (u8 levels)
GATE_MAX, GATE_MEAN = 2, 0.02

# eval pairs: name -> (photo, top, left, noise sigma in u8 levels or 0); HR is a 64x64 crop, SR is HR
# downscaled x4 with PIL BICUBIC (16x16) and upscaled back with PIL BICUBIC, plus optional Gaussian noise
# (numpy default_rng(EVAL_NOISE_SEED).standard_normal, HR-sized, 3 channels), rounded half-to-even and
# clipped to [0, 255].
EVAL_CROPS = {
    "astronaut": ("astronaut", 300, 130, 0.0),  # mission patch on the suit
    "chelsea": ("chelsea", 180, 200, 0.0),  # nose and whiskers
    "coffee": ("coffee", 60, 340, 6.0),  # cup rim and crema, with noise
}
EVAL_SIZE = 64
EVAL_CROP_BORDER = 4
EVAL_NOISE_SEED = 20240
# the GMSD reference (requirements.txt; piq imports torchvision, installed without dependencies)
PIQ_VERSION, TORCHVISION_VERSION = "0.8.0", "0.29.2"

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def photo(name):
    import skimage.data

    img = getattr(skimage.data, name)()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, (name, img.shape)
    return img


def save_png(path, arr):
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode="RGB").save(path, format="PNG", optimize=False, compress_level=9)
    back = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(back, arr), path


def pil_bicubic(arr, w, h):
    return np.asarray(Image.fromarray(arr, mode="RGB").resize((w, h), Image.BICUBIC))


def make_lr(name, scale):
    ph, top, left, h, w = CROPS[name]
    img = photo(ph)
    H, W = scale * h, scale * w
    assert top + H <= img.shape[0] and left + W <= img.shape[1], name
    hr = np.ascontiguousarray(img[top:top + H, left:left + W])
    lr = pil_bicubic(hr, w, h)
    assert lr.shape == (h, w, 3)
    return lr


@torch.no_grad()
def own_memory_(module):
    """Fresh, contiguous copies of every parameter and buffer (see the module docstring)."""
    for p in module.parameters():
        p.data = p.data.clone().contiguous()
    for name, b in list(module.named_buffers()):
        mod = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
        setattr(mod, name.rsplit(".", 1)[-1], b.clone().contiguous())
    return module


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def f32_hex(x):
    return f"0x{np.float32(x).view(np.uint32):08x}"


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def load_model(kind):
    folder = MODELS / kind
    f2i = json.loads((folder / "f2idiff.json").read_text())
    vae = own_memory_(AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval())
    unet = own_memory_(UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval())
    dcfg = json.loads((folder / "dinov2" / "config.json").read_text())
    cls = {"dinov2": Dinov2Model, "dinov2_with_registers": Dinov2WithRegistersModel}[dcfg["model_type"]]
    dino = own_memory_(cls.from_pretrained(folder / "dinov2", dtype=torch.float32).eval())
    assert type(dino) is cls
    for m in (vae, unet, dino):
        for k, v in m.state_dict().items():
            assert v.dtype == torch.float32, k

    g = torch.Generator().manual_seed(7000)
    # U-Net LoRA: merged forward must equal the active-adapter forward
    x = torch.randn(1, unet.config.in_channels, 8, 8, generator=g)
    c = torch.randn(1, 5, unet.config.cross_attention_dim, generator=g)
    base_y = unet(x, torch.tensor([999]), encoder_hidden_states=c).sample
    pu = PeftModel.from_pretrained(unet, folder / "unet_lora").eval()
    y_adapter = pu(x, torch.tensor([999]), encoder_hidden_states=c).sample
    unet = own_memory_(pu.merge_and_unload().eval())
    y = unet(x, torch.tensor([999]), encoder_hidden_states=c).sample
    assert rel_l2(y, y_adapter) < 1e-5 and rel_l2(y, base_y) > 1e-2
    lora = ["unet_lora"]
    if (folder / "vae_lora").is_dir():
        x = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
        base_z = vae.encode(x).latent_dist.mean
        pv = PeftModel.from_pretrained(vae, folder / "vae_lora").eval()
        z_adapter = pv.encode(x).latent_dist.mean
        vae = own_memory_(pv.merge_and_unload().eval())
        z = vae.encode(x).latent_dist.mean
        assert rel_l2(z, z_adapter) < 1e-5 and rel_l2(z, base_z) > 1e-2
        lora.append("vae_lora")
    assert type(vae) is AutoencoderKL and type(unet) is UNet2DConditionModel
    cond_proj = None
    if (folder / "cond_proj.safetensors").exists():
        cp = load_file(str(folder / "cond_proj.safetensors"))
        cond_proj = {k: v.clone().contiguous() for k, v in cp.items()}
        assert set(cond_proj) == {"weight", "bias"}
    print(f"  {kind}: dinov2 {cls.__name__}, merged {lora}, cond_proj "
          f"{list(cond_proj['weight'].shape) if cond_proj else None}, {f2i}")
    return dict(vae=vae, unet=unet, dino=dino, cond_proj=cond_proj, f2i=f2i)


def to_double(m):
    import copy

    d = dict(m)
    for k in ("vae", "unet", "dino"):
        d[k] = copy.deepcopy(m[k]).double()
    if m["cond_proj"] is not None:
        d["cond_proj"] = {k: v.double() for k, v in m["cond_proj"].items()}
    return d


# ----------------------------------------------------------------------------------------------
# pipeline
# ----------------------------------------------------------------------------------------------


def scheduler_constants(t):
    betas = torch.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1.0 - betas, dim=0)
    a = abar[t].item()
    return a, math.sqrt(1.0 - a), math.sqrt(a)


def adain(x, ref):
    n, c = x.shape[:2]

    def stats(t):
        v = t.reshape(n, c, -1)
        return v.mean(dim=2).reshape(n, c, 1, 1), (v.var(dim=2) + ADAIN_EPS).sqrt().reshape(n, c, 1, 1)

    mu_x, sd_x = stats(x)
    mu_r, sd_r = stats(ref)
    return (x - mu_x) / sd_x * sd_r + mu_r


def color_fix(sr01, lq01, mode):
    if mode == "wavelet":
        high, _ = wavelet_decompose(sr01)
        _, low = wavelet_decompose(lq01)
        return high + low
    if mode == "adain":
        return adain(sr01, lq01)
    assert mode == "none"
    return sr01


class UpsampleProbe:
    """Records (input HxW, output_size argument, output HxW) of every U-Net upsampler call."""

    def __init__(self, unet):
        self.calls = []
        self.handles = []
        for i, blk in enumerate(unet.up_blocks):
            for up in blk.upsamplers or []:
                self.handles.append(up.register_forward_hook(self._hook(i), with_kwargs=True))

    def _hook(self, i):
        def hook(_m, args, kwargs, out):
            size = args[1] if len(args) > 1 else kwargs.get("output_size")
            self.calls.append((i, tuple(args[0].shape[-2:]), None if size is None else tuple(size),
                               tuple(out.shape[-2:])))

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


@torch.no_grad()
def run_pipeline(m, lr_u8, mode, dtype=torch.float32, probe=False):
    vae, unet, dino, cp, f2i = m["vae"], m["unet"], m["dino"], m["cond_proj"], m["f2i"]
    s, t, D = f2i["scale"], f2i["timestep"], f2i["dino_image_size"]
    sf = vae.config.scaling_factor
    h, w = lr_u8.shape[:2]
    H, W = s * h, s * w
    r = {}

    lr01 = torch.from_numpy(np.ascontiguousarray(lr_u8.transpose(2, 0, 1)))[None].to(dtype) / 255
    lr = lr01 * 2 - 1
    lq = F.interpolate(lr, size=(H, W), mode="bicubic", align_corners=False).clamp(-1, 1)
    r["lq"] = lq
    ph, pw = (-H) % 8, (-W) % 8
    lq_pad = F.pad(lq, (0, pw, 0, ph), mode="reflect") if (ph or pw) else lq
    r["pad"] = (ph, pw)
    z = vae.encode(lq_pad).latent_dist.mean * sf
    r["z"] = z

    px = F.interpolate(lr01, size=(D, D), mode="bicubic", align_corners=False)
    mean = torch.tensor(DINO_MEAN, dtype=dtype).reshape(1, 3, 1, 1)
    std = torch.tensor(DINO_STD, dtype=dtype).reshape(1, 3, 1, 1)
    px = (px - mean) / std
    ctx = dino(pixel_values=px).last_hidden_state
    if cp is not None:
        ctx = F.linear(ctx, cp["weight"], cp["bias"])
    r["ctx"] = ctx

    pr = UpsampleProbe(unet) if probe else None
    eps = unet(z, torch.tensor([t]), encoder_hidden_states=ctx).sample
    if pr is not None:
        pr.remove()
        r["upsample_calls"] = pr.calls
    r["eps"] = eps

    _, c1, c2 = scheduler_constants(t)
    if dtype == torch.float32:
        c1, c2 = float(np.float32(c1)), float(np.float32(c2))
    x0 = (z - c1 * eps) / c2
    r["x0"] = x0

    dec = vae.decode(x0 / sf).sample
    assert tuple(dec.shape[-2:]) == (H + ph, W + pw), dec.shape
    dec = dec.clamp(-1, 1)[:, :, :H, :W]
    r["dec"] = dec
    sr01 = (dec + 1) / 2
    lq01 = (lq + 1) / 2
    fixed = color_fix(sr01, lq01, mode)
    r["fixed"] = fixed
    out = torch.round(fixed.clamp(0, 1) * 255).to(torch.uint8)
    r["out"] = out[0].permute(1, 2, 0).contiguous().numpy()
    for k in ("lq", "z", "ctx", "eps", "x0", "dec", "fixed"):
        assert r[k].dtype == dtype and torch.isfinite(r[k]).all(), k
    return r


# ----------------------------------------------------------------------------------------------
# independent checks of the non-network steps (numpy, float64)
# ----------------------------------------------------------------------------------------------


def np_wavelet_blur(x, r):
    """x [C,H,W] float64; replicate padding r then the dilated 3x3 binomial kernel."""
    k = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16
    C, H, W = x.shape
    p = np.pad(x, ((0, 0), (r, r), (r, r)), mode="edge")
    y = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            y += k[dy, dx] * p[:, dy * r:dy * r + H, dx * r:dx * r + W]
    return y


def np_color_fix(sr01, lq01, mode):
    if mode == "wavelet":
        def dec(img):
            high = np.zeros_like(img)
            for i in range(WAVELET_LEVELS):
                low = np_wavelet_blur(img, 2 ** i)
                high += img - low
                img = low
            return high, low
        return dec(sr01)[0] + dec(lq01)[1]
    if mode == "adain":
        def st(t):
            v = t.reshape(t.shape[0], -1)
            return v.mean(1)[:, None, None], np.sqrt(v.var(1, ddof=1) + ADAIN_EPS)[:, None, None]
        (ms, ss), (ml, sl) = st(sr01), st(lq01)
        return (sr01 - ms) / ss * sl + ml
    return sr01


# ----------------------------------------------------------------------------------------------
# eval: BasicSR PSNR / SSIM on Y
# ----------------------------------------------------------------------------------------------


def basicsr_y(rgb_u8):
    """Y channel in [16, 235] exactly as BasicSR's to_y_channel (test_y_channel=True) computes it, with the
    channels taken in RGB order (BasicSR's bgr2ycbcr on cv2's BGR data = rgb2ycbcr on RGB data):
        x = float32(float64(u8)) / 255                       (float32 division)
        y = (x_R*65.481 + x_G*128.553 + x_B*24.966 as float64 dot) + 16.0   (float64)
        y = float32(y / 255.0)                                (_convert_output_type_range, float32 input)
        Y = y * 255.0                                         (float32), then float64 for the metrics
    """
    x = rgb_u8.astype(np.float64).astype(np.float32) / 255.0
    assert x.dtype == np.float32
    y = np.dot(x, [65.481, 128.553, 24.966]) + 16.0
    assert y.dtype == np.float64
    y = (y / 255.0).astype(np.float32)
    y = y * 255.0
    assert y.dtype == np.float32
    return y.astype(np.float64)


def gaussian_kernel_1d(size=11, sigma=1.5):
    """cv2.getGaussianKernel(size, sigma) for sigma > 0: exp(-x^2 / (2 sigma^2)), x = i - (size-1)/2,
    scaled by 1 / sum (float64)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp((-0.5 / (sigma * sigma)) * x * x)
    return g * (1.0 / g.sum())


def filter_valid(img, win):
    kh, kw = win.shape
    H, W = img.shape
    out = np.zeros((H - kh + 1, W - kw + 1), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            out += win[dy, dx] * img[dy:dy + H - kh + 1, dx:dx + W - kw + 1]
    return out


def psnr_y(a, b):
    mse = np.mean((a - b) ** 2)
    return float(10.0 * np.log10(255.0 * 255.0 / mse))


def ssim_y(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = gaussian_kernel_1d()
    win = np.outer(g, g)
    mu1, mu2 = filter_valid(a, win), filter_valid(b, win)
    mu1_sq, mu2_sq, mu12 = mu1 ** 2, mu2 ** 2, mu1 * mu2
    s1 = filter_valid(a * a, win) - mu1_sq
    s2 = filter_valid(b * b, win) - mu2_sq
    s12 = filter_valid(a * b, win) - mu12
    m = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(m.mean())


def gmsd_np(a_u8, b_u8):
    """GMSD exactly as piq.gmsd computes it, in float64 numpy (an independent re-derivation for the
    cross-check): Y = 0.299 R + 0.587 G + 0.114 B of u8 / 255; zero-pad bottom and right by
    d = max(H % 2, W % 2); 2x2 mean pooling, stride 2 (floor); Prewitt gradients (+-1/3, zero padding 1);
    gms = (2 m1 m2 + t) / (m1^2 + m2^2 + t), t = 170 / 255^2; population std of gms."""
    def pooled(u):
        y = (u.astype(np.float64) / 255.0) @ np.array([0.299, 0.587, 0.114])
        d = max(y.shape[0] % 2, y.shape[1] % 2)
        y = np.pad(y, ((0, d), (0, d)))
        h, w = y.shape[0] // 2, y.shape[1] // 2
        y = y[:2 * h, :2 * w]
        return (y[0::2, 0::2] + y[0::2, 1::2] + y[1::2, 0::2] + y[1::2, 1::2]) / 4.0

    def grad(p):
        q = np.pad(p, 1)
        h, w = p.shape
        gx = sum(q[i:i + h, 2:w + 2] - q[i:i + h, 0:w] for i in range(3)) / 3.0
        gy = sum(q[2:h + 2, j:j + w] - q[0:h, j:j + w] for j in range(3)) / 3.0
        return np.sqrt(gx * gx + gy * gy)

    m1, m2 = grad(pooled(a_u8)), grad(pooled(b_u8))
    t = 170 / 255.0 ** 2
    gms = (2 * m1 * m2 + t) / (m1 * m1 + m2 * m2 + t)
    return float(gms.std())


def gmsd_piq(a_u8, b_u8):
    """piq.gmsd(a, b) on float64 (1, 3, H, W) tensors of u8 / 255, data_range 1."""
    import piq

    def t(u):
        return torch.from_numpy(u.astype(np.float64) / 255.0).permute(2, 0, 1)[None].contiguous()

    g = piq.gmsd(t(a_u8), t(b_u8), data_range=1.0, reduction="none")
    assert g.dtype == torch.float64 and g.shape == (1,)
    return float(g[0])


def make_eval(write_images=True):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    check_versions({"piq": PIQ_VERSION, "torchvision": TORCHVISION_VERSION})

    res, cross = {}, {}
    for name, (ph, top, left, sigma) in EVAL_CROPS.items():
        img = photo(ph)
        hr = np.ascontiguousarray(img[top:top + EVAL_SIZE, left:left + EVAL_SIZE])
        lr = pil_bicubic(hr, EVAL_SIZE // 4, EVAL_SIZE // 4)
        sr = pil_bicubic(lr, EVAL_SIZE, EVAL_SIZE)
        if sigma:
            n = np.random.default_rng(EVAL_NOISE_SEED).standard_normal(sr.shape)
            sr = np.clip(np.round(sr.astype(np.float64) + sigma * n), 0, 255).astype(np.uint8)
        for kind, arr in (("hr", hr), ("sr", sr)):
            path = OUT / "eval" / kind / f"{name}.png"
            if write_images:
                save_png(path, arr)
            else:
                assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), arr), path
        cb = EVAL_CROP_BORDER
        ya = basicsr_y(hr[cb:-cb, cb:-cb])
        yb = basicsr_y(sr[cb:-cb, cb:-cb])
        p, s = psnr_y(ya, yb), ssim_y(ya, yb)
        g = gmsd_piq(sr[cb:-cb, cb:-cb], hr[cb:-cb, cb:-cb])
        odd = (slice(cb, cb + 57), slice(cb, cb + 56))
        g_odd = gmsd_piq(sr[odd], hr[odd])
        res[name] = {"psnr_y": p, "ssim_y": s, "gmsd": g, "gmsd_57x56": g_odd}
        for gp, (x, y) in ((g, (sr[cb:-cb, cb:-cb], hr[cb:-cb, cb:-cb])), (g_odd, (sr[odd], hr[odd]))):
            gn = gmsd_np(x, y)
            assert abs(gn - gp) < 1e-12, (name, x.shape, gn, gp)
            assert gmsd_piq(y, x) == gp and gmsd_piq(y, y) == 0.0
        # cross-checks
        sp = peak_signal_noise_ratio(ya, yb, data_range=255)
        ss = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=255)
        # plain float64 Y (no float32 rounding) for comparison
        def y64(u):
            x = u[cb:-cb, cb:-cb].astype(np.float64)
            return (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0 + 16.0
        p64, s64 = psnr_y(y64(hr), y64(sr)), ssim_y(y64(hr), y64(sr))
        # cropping after Y (BasicSR crops first; equal since Y is per pixel)
        assert np.array_equal(basicsr_y(hr)[cb:-cb, cb:-cb], ya)
        cross[name] = dict(skimage_psnr=sp, skimage_ssim=ss, f64y_psnr=p64, f64y_ssim=s64)
        assert abs(sp - p) < 1e-9, (name, sp, p)
        assert abs(ss - s) < 1e-6, (name, ss, s)
        assert 16 <= ya.min() and ya.max() <= 235
    names = list(EVAL_CROPS)
    res["mean"] = {k: float(np.mean([res[n][k] for n in names])) for k in ("psnr_y", "ssim_y", "gmsd")}
    return res, cross


# ----------------------------------------------------------------------------------------------


def main():
    check_versions()
    assert (MODELS / "sd" / "unet").is_dir(), "run make_engine_goldens.py first"
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    # torch conventions the Rust side relies on
    u = torch.arange(256, dtype=torch.float32)
    assert torch.equal(u / 255, torch.from_numpy(np.arange(256, dtype=np.float32) / np.float32(255)))
    assert torch.equal(torch.round(torch.tensor([0.5, 1.5, 2.5, 254.5, -0.5])),
                       torch.tensor([0.0, 2.0, 2.0, 254.0, -0.0]))

    a, c1, c2 = scheduler_constants(999)
    print(f"scheduler t=999: abar {a!r}; c1 = sqrt(1-abar) {c1!r} -> f32 {np.float32(c1)!r} "
          f"({f32_hex(c1)}); c2 = sqrt(abar) {c2!r} -> f32 {np.float32(c2)!r} ({f32_hex(c2)})")

    models = {}
    print("models:")
    for kind in ("sd", "eff"):
        models[kind] = load_model(kind)
    models64 = {k: to_double(v) for k, v in models.items()}

    tensors, cases, report = {}, [], {}
    for case, kind, crop, mode in CASES:
        f2i = models[kind]["f2i"]
        lr = make_lr(crop, f2i["scale"])
        r = run_pipeline(models[kind], lr, mode, probe=True)
        r64 = run_pipeline(models64[kind], lr, mode, dtype=torch.float64)
        save_png(OUT / f"{case}.lr.png", lr)
        save_png(OUT / f"{case}.sr.png", r["out"])
        for k in ("lq", "z", "ctx", "eps", "x0", "dec", "fixed"):
            tensors[f"{case}.{k}"] = r[k].to(torch.float32).contiguous().clone()
        cases.append(dict(case=case, model=kind, lr=f"{case}.lr.png", sr=f"{case}.sr.png", color_fix=mode,
                          scale=f2i["scale"], timestep=f2i["timestep"], dino_image_size=f2i["dino_image_size"]))

        # independent numpy re-derivation of the colour fix from the stored dec / lq
        sr01 = (r["dec"][0].double().numpy() + 1) / 2
        lq01 = (r["lq"][0].double().numpy() + 1) / 2
        e = np.abs(np_color_fix(sr01, lq01, mode) - r["fixed"][0].double().numpy()).max()
        assert e < 2e-6, (case, e)

        d = np.abs(r["out"].astype(np.int32) - r64["out"].astype(np.int32))
        dmax, dmean = int(d.max()), float(d.mean())
        rels = {k: rel_l2(r[k], r64[k]) for k in ("z", "ctx", "eps", "x0", "dec", "fixed")}
        fdiff = (r["fixed"].double() - r64["fixed"]).abs().max().item() * 255
        # distance of the f64 result to the nearest rounding boundary, in levels
        frac = (r64["fixed"].clamp(0, 1) * 255).numpy()
        near = float(np.abs(frac - np.floor(frac) - 0.5).min())
        report[case] = dict(max_levels=dmax, mean_levels=dmean, pixels_differing=int((d > 0).sum()),
                            values=int(d.size), fixed_max_abs_levels=fdiff, closest_to_half=near, rel=rels)
        print(f"{case}: LR {lr.shape[0]}x{lr.shape[1]} -> {r['out'].shape[0]}x{r['out'].shape[1]}, "
              f"pad (H, W) {r['pad']}, z {list(r['z'].shape)}, ctx {list(r['ctx'].shape)}")
        print(f"  U-Net upsamplers (block, in HxW, output_size arg, out HxW): {r['upsample_calls']}")
        print(f"  f32 vs f64 output: max {dmax} levels, mean {dmean:.5f} levels, {report[case]['pixels_differing']}"
              f"/{d.size} values differ; fixed max|d| {fdiff:.3g} levels; f64 closest to a .5 boundary {near:.3g}")
        print("  rel-L2 f32 vs f64: " + ", ".join(f"{k} {v:.2g}" for k, v in rels.items()))
        for k in ("lq", "z", "ctx", "eps", "x0", "dec", "fixed"):
            t = r[k].double()
            print(f"    {k:6s} {str(list(r[k].shape)):18s} mean {t.mean().item():+.4f} std {t.std().item():.4f} "
                  f"min {t.min().item():+.4f} max {t.max().item():+.4f}")
        out = r["out"]
        assert len(np.unique(out)) > 50, f"{case}: output has few distinct values"
        assert dmax <= GATE_MAX and dmean <= GATE_MEAN, f"{case}: f32 vs f64 already outside the gate"
        if crop == "coffee":
            assert r["pad"] == (4, 4) and list(r["z"].shape[-2:]) == [14, 10]
            assert any(c[2] is not None for c in r["upsample_calls"]), "upsample_size not forwarded"

    # the three colour fixes of one LR really differ
    outs = [np.asarray(Image.open(OUT / f"sd_astronaut_{m}.sr.png")) for m in ("wavelet", "adain", "none")]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(outs[i].astype(int) - outs[j].astype(int)).mean() > 1.0
    for k in ("lq", "z", "ctx", "eps", "x0", "dec"):
        assert torch.equal(tensors[f"sd_astronaut_wavelet.{k}"], tensors[f"sd_astronaut_none.{k}"])

    save_file(dict(sorted(tensors.items())), str(OUT / "intermediates.safetensors"), metadata={"format": "pt"})
    (OUT / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")

    ev, cross = write_eval(write_images=True)
    write_readme(report, ev, cross)

    print(f"wrote {OUT.relative_to(ROOT)}:")
    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            h = hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            print(f"  {p.stat().st_size:>9}  {h}  {p.relative_to(OUT)}")
    print(f"  {total:>9}  total bytes")
    assert total < 2 * 1024 * 1024, "tests/data/pipeline too large"


def write_eval(write_images):
    """Writes eval_expected.json. With write_images False (--eval-only) the committed psnr_y / ssim_y values
    are kept where they agree with the recomputed ones to 1e-12 relative: numpy's float64 reductions differ
    by an ulp between CPUs (33.101015141156154 vs ...16 for coffee), and an ulp is no reason to churn them."""
    print("eval:")
    ev, cross = make_eval(write_images)
    path = OUT / "eval_expected.json"
    if not write_images and path.exists():
        old = json.loads(path.read_text())
        for n, v in ev.items():
            for k in ("psnr_y", "ssim_y"):
                was = old[n][k]
                assert abs(was - v[k]) <= 1e-12 * abs(v[k]), (n, k, was, v[k])
                v[k] = was
    path.write_text(json.dumps(ev, indent=2) + "\n")
    for n, v in ev.items():
        c = cross.get(n)
        extra = "" if c is None else (
            f"  | skimage psnr d {c['skimage_psnr'] - v['psnr_y']:+.2e} ssim d {c['skimage_ssim'] - v['ssim_y']:+.2e}"
            f" | plain-f64 Y psnr d {c['f64y_psnr'] - v['psnr_y']:+.2e} ssim d {c['f64y_ssim'] - v['ssim_y']:+.2e}")
        print(f"  {n:10s} psnr_y {v['psnr_y']:.6f} ssim_y {v['ssim_y']:.6f} gmsd {v['gmsd']:.6f}{extra}")
    return ev, cross


def write_readme(report, ev, cross):
    lines = [
        "# Pipeline and eval reference data",
        "",
        "Written by `calib/reference/make_pipeline_goldens.py` (run from the repository root with the pinned",
        "reference venv; it deletes and rewrites this folder). That script's docstring is the full",
        "specification of the pipeline steps, the crops and the file contents; this file summarises.",
        "",
        "## Images and licences",
        "",
        "All photos are scikit-image 0.26 sample images (`skimage.data`), shipped with scikit-image:",
        "",
        "* `astronaut()`: Eileen Collins, from the NASA Great Images database. No known copyright",
        "  restrictions, released into the public domain.",
        "* `coffee()`: courtesy of Pikolo Espresso Bar. No copyright restrictions, CC0 by the photographer",
        "  (Rachel Michetti).",
        "* `chelsea()`: Chelsea the cat. No copyright restrictions, CC0 by the photographer (Stefan van der",
        "  Walt).",
        "",
        "LR inputs (`<case>.lr.png`): an HR crop of (4H)x(4W) pixels downscaled to WxH with Pillow BICUBIC.",
        "",
        "| photo | HR crop top, left | LR HxW |",
        "|---|---|---|",
    ]
    for n, (ph, top, left, h, w) in CROPS.items():
        lines.append(f"| {ph} | {top}, {left} | {h}x{w} |")
    lines += [
        "",
        "Eval pairs (`eval/hr/NAME.png`, `eval/sr/NAME.png`, 64x64): SR = HR downscaled x4 and upscaled back",
        f"with Pillow BICUBIC, plus Gaussian noise where sigma > 0 (numpy default_rng({EVAL_NOISE_SEED})).",
        "",
        "| name | HR crop top, left | noise sigma (u8 levels) |",
        "|---|---|---|",
    ]
    for n, (ph, top, left, sigma) in EVAL_CROPS.items():
        lines.append(f"| {n} | {top}, {left} | {sigma:g} |")
    lines += [
        "",
        "## Cases",
        "",
        "`cases.json` lists them; `intermediates.safetensors` holds, per case, float32 `<case>.lq`, `.z`,",
        "`.ctx`, `.eps`, `.x0`, `.dec` (clamped, cropped decoder output in [-1, 1]) and `.fixed` (colour-fixed",
        "float before clamp and quantisation).",
        "",
        "Float32 vs float64 (the whole pipeline rerun in float64), in u8 levels:",
        "",
        "| case | max abs diff | mean abs diff | values differing | max abs diff of `fixed` x255 |",
        "|---|---|---|---|---|",
    ]
    for c, v in report.items():
        lines.append(f"| {c} | {v['max_levels']} | {v['mean_levels']:.5f} | {v['pixels_differing']}/{v['values']} "
                     f"| {v['fixed_max_abs_levels']:.3g} |")
    lines += [
        "",
        "## Eval (`eval_expected.json`)",
        "",
        "BasicSR `calculate_psnr` / `calculate_ssim` with `test_y_channel=True`, `crop_border=4`: crop 4",
        "pixels on each side, Y = BasicSR `to_y_channel` on RGB data:",
        "`x = float32(u8) / 255` (float32, per channel), `y = float32((65.481 x_R + 128.553 x_G + 24.966 x_B",
        "+ 16) / 255)` (dot product and +16 in float64, rounded to float32 after the /255), `Y = y * 255`",
        "(float32, in [16, 235]), then float64. PSNR = 10 log10(255^2 / mean((Y1 - Y2)^2)); SSIM = mean of the SSIM map over the",
        "'valid' region of an 11x11 Gaussian window (sigma 1.5, outer product of the normalised 1-D kernel),",
        "C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2. `mean` is the arithmetic mean over the images.",
        "",
        "| name | psnr_y | ssim_y | skimage PSNR - ours | skimage SSIM - ours | plain-f64-Y PSNR - ours | plain-f64-Y SSIM - ours |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, v in ev.items():
        c = cross.get(n)
        if c is None:
            lines.append(f"| {n} | {v['psnr_y']:.6f} | {v['ssim_y']:.6f} | | | | |")
        else:
            lines.append(f"| {n} | {v['psnr_y']:.6f} | {v['ssim_y']:.6f} | {c['skimage_psnr'] - v['psnr_y']:.1e} | "
                         f"{c['skimage_ssim'] - v['ssim_y']:.1e} | {c['f64y_psnr'] - v['psnr_y']:.1e} | "
                         f"{c['f64y_ssim'] - v['ssim_y']:.1e} |")
    lines.append("")
    (OUT / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] == ["--eval-only"]:
        check_versions()
        write_eval(write_images=False)
    elif sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [--eval-only]")
    else:
        main()
