"""Real-size golden for the CPU engine's Winograd F(4x4, 3x3) convolutions (tests/engine_winograd.rs).

Deletes and rewrites everything under ``tests/data/winograd/``.  Run from the repository root with the
pinned reference venv (calib/reference/requirements.txt):

    /tmp/f2i-ref-venv/bin/python calib/reference/make_winograd_goldens.py

(make_engine_goldens.py rewrites tests/data/engine/ and keeps it under 6 MiB, so this golden has its
own folder and script; it shares that script's helpers and calib/reference/weights_formula.py.)

The engine takes its Winograd path for 3x3 stride-1 pad-1 convolutions on inputs of >= 32x32 pixels
(F(4x4) while 36 * c_out * c_in <= 36 * 512 * 512); the goldens of tests/data/engine run on smaller
images. Here one SD-VAE resnet runs at real width AND real spatial size, so both of its convolutions
take that path.

Cases
=====

``resnet512``  512 channels, 64x64 input;  ``resnet128``  128 channels, 128x128 input.

Each is a diffusers ``ResnetBlock2D`` built as AutoencoderKL's DownEncoderBlock2D builds its resnets
for the SD VAE: ResnetBlock2D(in_channels=C, out_channels=C, temb_channels=None, eps=1e-6, groups=32,
dropout=0.0, time_embedding_norm="default", non_linearity="silu", output_scale_factor=1.0,
pre_norm=True), i.e. x + conv2(silu(norm2(conv1(silu(norm1(x)))))), forward(x, None).

* Weights: the name-seeded formula of weights_formula.py (``formula_tensor``) over the block's
  state_dict names ("norm1.weight", "conv1.weight", ..., the same names for both cases). NOT stored.
* Input [1, C, H, W]: ``formula_input("<case>.input", [C, H, W])`` of weights_formula.py (per-channel
  offset, smooth bump and scaled noise; about unit scale, like a VAE activation). NOT stored.
* Reference: computed in float64 (module.double(), input.double()), then rounded to float32, so the
  golden carries no float32 computation error of its own.

``resnet.safetensors`` (float32)
  <case>.output        [1, 8, H, W]   the float64 output at the channels listed in the params file
                                      (the first 4 and the last 4: both ends of every channel blocking),
                                      full spatial size (every tile position, borders included)
  <case>.channel_norm  [C]            the L2 norm of every output channel over H x W (float64 -> float32):
                                      a check on the channels not stored

``resnet_params.json``
  {"<case>": {"channels": C, "height": H, "width": W, "groups": 32, "eps": 1e-6,
              "stored_channels": [...], "params": {state_dict name: shape}},
   "_check": {"<case>.input": [first 8 values of the input, exact float32 values as JSON doubles]}}
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import hashlib
import json
import shutil
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_common import check_versions  # noqa: E402

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers.models.resnet import ResnetBlock2D  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

# make_engine_goldens sets torch's thread count and deterministic mode on import.
from make_engine_goldens import build_formula_module, check_sane, rel_l2, stats  # noqa: E402
from weights_formula import formula_input, formula_input_scalar  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "winograd"

CASES = {"resnet512": (512, 64, 64), "resnet128": (128, 128, 128)}
GROUPS, EPS = 32, 1e-6
F32_REL_MAX = 3e-6  # torch's own float32 forward must sit this close to the float64 reference
MAX_BYTES = 1536 * 1024


def stored_channels(c):
    return [0, 1, 2, 3, c - 4, c - 3, c - 2, c - 1]


def check_input_formula(name, shape, x):
    flat = x.reshape(-1)
    for i in (0, 1, 2, 7, 12345, flat.size // 2 + 3, flat.size - 1):
        s = formula_input_scalar(name, shape, i)
        assert np.float32(s).tobytes() == flat[i].tobytes(), (name, i, s, flat[i])
    first = [f"{float(v)!r} (0x{np.float32(v).view(np.uint32):08x})" for v in flat[:3]]
    print(f"  formula {name} {list(shape)} first 3: {', '.join(first)}")
    return [float(v) for v in flat[:8]]


@torch.no_grad()
def make_case(case, c, h, w):
    block, shapes = build_formula_module(lambda: ResnetBlock2D(
        in_channels=c, out_channels=c, temb_channels=None, eps=EPS, groups=GROUPS, dropout=0.0,
        time_embedding_norm="default", non_linearity="silu", output_scale_factor=1.0, pre_norm=True))
    assert block.conv_shortcut is None and block.time_emb_proj is None
    name = f"{case}.input"
    xn = formula_input(name, (c, h, w))
    check = check_input_formula(name, (c, h, w), xn)
    x = torch.from_numpy(xn)[None]
    check_sane(f"{case}.input", x)
    print(f"  {case} input: {stats(x)}")

    y32 = block(x, None)
    y64 = block.double()(x.double(), None)
    y = y64.to(torch.float32)
    sel = stored_channels(c)
    out = {
        f"{case}.output": y[:, sel].contiguous(),
        f"{case}.channel_norm": y64[0].flatten(1).norm(dim=1).to(torch.float32).contiguous(),
    }
    for k, v in out.items():
        check_sane(k, v)
    d = rel_l2(y, x)
    e_all = rel_l2(y32, y64)
    e_sel = rel_l2(y32[:, sel], y64[:, sel])
    e_res = rel_l2(y32 - x, y64 - x.double())
    print(f"  {case}: rel change vs input {d:.3g}, output {stats(y)}")
    print(f"  {case}: torch float32 vs float64 rel-L2: whole output {e_all:.3g}, stored channels "
          f"{e_sel:.3g}, residual branch (output - input) {e_res:.3g}")
    assert d > 0.1, "the block must transform its input, not be dominated by the skip path"
    assert e_all < F32_REL_MAX and e_sel < F32_REL_MAX
    params = {"channels": c, "height": h, "width": w, "groups": GROUPS, "eps": EPS,
              "stored_channels": sel, "params": shapes}
    return out, params, check


def main():
    check_versions()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    tensors, params = {}, {"_check": {}}
    for case, (c, h, w) in CASES.items():
        print(f"{case}:")
        out, p, check = make_case(case, c, h, w)
        tensors.update(out)
        params[case] = p
        params["_check"][f"{case}.input"] = check

    tensors = dict(sorted(tensors.items()))
    save_file(tensors, str(OUT / "resnet.safetensors"), metadata={"format": "pt"})
    (OUT / "resnet_params.json").write_text(json.dumps(params, indent=1) + "\n")
    for k, v in tensors.items():
        print(f"    {k:24s} {str(list(v.shape)):18s} {stats(v)}")

    print(f"wrote {OUT.relative_to(ROOT)}:")
    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            digest = hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            print(f"  {p.stat().st_size:>9}  {digest}  {p.relative_to(OUT)}")
    print(f"  {total:>9}  total bytes")
    assert total < MAX_BYTES, "tests/data/winograd too large"


if __name__ == "__main__":
    main()
