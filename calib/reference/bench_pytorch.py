"""The PyTorch baseline of `f2idiff bench`: the same stages, presets and sizes, built from the same
configs (tests/data/pack/manifests/) with random weights, timed the same way (warm-up, then the
median of N runs), printing the same columns (`--json`: one object per line, the keys of
`f2idiff bench --json`).

  CUDA: eager, f16 by default (`--precision f32` for f32), timed with torch.cuda.Event.
  CPU : fp32, `--threads N` (torch.set_num_threads), timed with perf_counter.

FLOPs are counted like f2idiff counts them: 2 x the MACs of every Conv2d and Linear (forward
hooks) and of both products of every scaled_dot_product_attention call, recorded during the
first warm-up run. "arena MiB" is the activation peak on CUDA (max allocated minus what the
weights and inputs hold); on the CPU it is not measured ("-").

The stages (size = output tile side, or DINOv2's input side for `dino`):
  vae-enc  AutoencoderKL.encode(x[3,S,S]).latent_dist.mean * scaling_factor
  vae-dec  AutoencoderKL.decode(z[4,S/8,S/8] / scaling_factor)
  unet     UNet2DConditionModel(z[4,S/8,S/8], t=999, ctx[257, cross_attention_dim])
  dino     Dinov2Model(pixels[3,S,S]).last_hidden_state
  tile     the one-step tile of DESIGN.md section 1 (bicubic x4, encode, DINOv2 at 224,
           cond_proj when widths differ, U-Net, x0, decode), LR side S/4

Run from the repository root:
  python calib/reference/bench_pytorch.py --device cpu --threads 2 --stage vae-enc --size 64
  python calib/reference/bench_pytorch.py --device cuda --stage tile          (the GPU machine)
Needs torch, transformers and diffusers (on the GPU machine diffusers comes from the wheel that
scripts/gpu-check.sh brings along, on PYTHONPATH).
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

PRESETS = {
    "sd-vae": ("vae", "vae_sd"),
    "eff-unet": ("unet", "unet_eff"),
    "sd21-unet": ("unet", "unet_sd21_base"),
    "dinov2-s": ("dino", "dinov2_small"),
    "dinov2-l": ("dino", "dinov2_large"),
}
DEFAULTS = {"vae": "sd-vae", "unet": "eff-unet", "dino": "dinov2-l"}
STAGES = ["vae-enc", "dino", "unet", "vae-dec", "tile"]
DINO_SIZE = 224
TIMESTEP = 999
HEADER = ("stage    preset                       size  median ms   min ms   max ms    GFLOP   GFLOP/s"
          "  arena MiB  work MiB  params M")


def config(manifest):
    cfg = json.load(open(f"tests/data/pack/manifests/{manifest}.json"))["config"]
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def build(kind, preset):
    cfg = config(PRESETS[preset][1])
    if kind == "vae":
        from diffusers import AutoencoderKL
        return AutoencoderKL(**cfg)
    if kind == "unet":
        from diffusers import UNet2DConditionModel
        return UNet2DConditionModel(**cfg)
    from transformers import Dinov2Config, Dinov2Model
    c = Dinov2Config(**cfg)
    c._attn_implementation = "sdpa"
    return Dinov2Model(c)


class Counter:
    """MACs of Conv2d / Linear (hooks) and scaled_dot_product_attention (wrapped) while on."""

    def __init__(self, module):
        self.macs = {"conv": 0, "linear": 0, "attention": 0}
        self.on = False
        self.handles = []
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                self.handles.append(m.register_forward_hook(self.conv))
            elif isinstance(m, torch.nn.Linear):
                self.handles.append(m.register_forward_hook(self.linear))
        self.sdpa = F.scaled_dot_product_attention

        def counted(q, k, v, *args, **kwargs):
            if self.on:
                tq, d = q.shape[-2], q.shape[-1]
                tk = k.shape[-2]
                self.macs["attention"] += 2 * math.prod(q.shape[:-2]) * tq * tk * d
            return self.sdpa(q, k, v, *args, **kwargs)

        F.scaled_dot_product_attention = counted

    def conv(self, m, inp, out):
        if self.on:
            self.macs["conv"] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(self, m, inp, out):
        if self.on:
            self.macs["linear"] += out.numel() * m.in_features

    def remove(self):
        for h in self.handles:
            h.remove()
        F.scaled_dot_product_attention = self.sdpa


def x0_coefficients():
    a = torch.cumprod(1 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2, 0)[TIMESTEP]
    return float((1 - a).sqrt()), float(a.sqrt())


def stage_fn(stage, presets, size, dev, dtype, gen):
    """Builds the stage's networks and inputs; returns (forward, module for hooks, label)."""
    rnd = lambda *shape, lo=-1.0, hi=1.0: (torch.rand(*shape, generator=gen) * (hi - lo) + lo).to(dev, dtype)
    nets = {}
    kinds = {"vae-enc": ["vae"], "vae-dec": ["vae"], "unet": ["unet"], "dino": ["dino"],
             "tile": ["vae", "unet", "dino"]}[stage]
    for kind in kinds:
        nets[kind] = build(kind, presets[kind]).eval().to(dev, dtype)
    label = "+".join(presets[k] for k in kinds)
    root = torch.nn.ModuleDict(nets)
    s = size
    if stage in ("vae-enc", "vae-dec"):  # count the half that runs, as f2idiff does
        vae = nets["vae"]
        half = [vae.encoder, vae.quant_conv] if stage == "vae-enc" else [vae.decoder, vae.post_quant_conv]
        root = torch.nn.ModuleList(m for m in half if m is not None)
    if stage == "vae-enc":
        vae, x = nets["vae"], rnd(1, 3, s, s)
        return (lambda: vae.encode(x).latent_dist.mean * vae.config.scaling_factor), root, label
    if stage == "vae-dec":
        vae, z = nets["vae"], rnd(1, 4, s // 8, s // 8)
        return (lambda: vae.decode(z / vae.config.scaling_factor).sample), root, label
    if stage == "dino":
        dino, x = nets["dino"], rnd(1, 3, s, s, lo=-2.0, hi=2.0)
        return (lambda: dino(pixel_values=x).last_hidden_state), root, label
    unet = nets["unet"]
    ctx_dim = unet.config.cross_attention_dim
    t = torch.tensor([TIMESTEP], device=dev)
    if stage == "unet":
        z, ctx = rnd(1, 4, s // 8, s // 8), rnd(1, 1 + (DINO_SIZE // 14) ** 2, ctx_dim)
        return (lambda: unet(z, t, encoder_hidden_states=ctx).sample), root, label
    vae, dino = nets["vae"], nets["dino"]
    hidden = dino.config.hidden_size
    if hidden != ctx_dim:
        root["cond_proj"] = torch.nn.Linear(hidden, ctx_dim).to(dev, dtype)
    proj = root["cond_proj"] if "cond_proj" in root else (lambda h: h)
    lr01 = rnd(1, 3, s // 4, s // 4, lo=0.0, hi=1.0)
    c1, c2 = x0_coefficients()
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=dev, dtype=dtype).view(1, 3, 1, 1)

    def tile():
        lq = F.interpolate(lr01 * 2 - 1, size=(s, s), mode="bicubic", align_corners=False).clamp(-1, 1)
        z = vae.encode(lq).latent_dist.mean * vae.config.scaling_factor
        px = (F.interpolate(lr01, size=(DINO_SIZE, DINO_SIZE), mode="bicubic", align_corners=False) - mean) / std
        ctx = proj(dino(pixel_values=px).last_hidden_state)
        eps = unet(z, t, encoder_hidden_states=ctx).sample
        x0 = (z - c1 * eps) / c2
        return vae.decode(x0 / vae.config.scaling_factor).sample.clamp(-1, 1) * 0.5 + 0.5

    return tile, root, label


def _status_bytes(field):
    """A kB field of /proc/self/status in bytes, or None (not Linux)."""
    try:
        for line in open("/proc/self/status"):
            if line.split(":")[0] == field:
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def working_set_start():
    """Resident bytes now, and whether the peak (VmHWM) could be reset to them: as
    src/bench/rss.rs, so that both engines' working memory is the same measure."""
    base = _status_bytes("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return base
    except OSError:
        return None


def working_set_mib(base):
    peak = _status_bytes("VmHWM")
    return None if base is None or peak is None else max(0, peak - base) / 2 ** 20


def run_stage(args, stage, presets, dev, dtype):
    size = args.size or (DINO_SIZE if stage == "dino" else 512)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    fwd, root, label = stage_fn(stage, presets, size, dev, dtype, gen)
    load_s = time.perf_counter() - t0
    params = sum(p.numel() for p in root.parameters())
    cuda = dev.type == "cuda"
    counter = Counter(root)
    finite = True
    base = working_set_start()
    with torch.no_grad():
        if cuda:
            torch.cuda.synchronize()
            base_dev = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        for i in range(max(1, args.warmup)):
            counter.on = i == 0
            y = fwd()
            finite &= bool(torch.isfinite(y).all())
            counter.on = False
        counter.remove()
        del y
        ms = []
        for _ in range(max(1, args.runs)):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                fwd()
                end.record()
                torch.cuda.synchronize()
                ms.append(start.elapsed_time(end))
            else:
                t = time.perf_counter()
                fwd()
                ms.append((time.perf_counter() - t) * 1e3)
        arena = (torch.cuda.max_memory_allocated() - base_dev) / 2 ** 20 if cuda else None
        if args.profile:
            print_ops(fwd, cuda)
    working = working_set_mib(base)
    macs = counter.macs
    gflop = 2 * sum(macs.values()) / 1e9
    med = statistics.median(ms)
    device = (f"cuda {torch.cuda.get_device_name()} ({'f16' if dtype == torch.float16 else 'f32'}, eager)"
              if cuda else f"cpu ({torch.get_num_threads()} threads, fp32)")
    return {
        "engine": "pytorch", "stage": stage, "preset": label, "size": size, "device": device,
        "median_ms": med, "runs_ms": ms, "gflop": gflop, "gflop_per_s": gflop / (med * 1e-3),
        "macs": macs, "arena_mib": arena, "working_mib": working, "params_m": params / 1e6, "load_s": load_s, "finite": finite,
        "torch": torch.__version__,
    }


def print_ops(fwd, cuda):
    """One more run under torch.profiler: self time by op and input shapes (the counterpart of
    `f2idiff bench --profile`), to stderr so that --json stays one object per line."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts, record_shapes=True) as prof:
        fwd()
        if cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=60, max_name_column_width=40,
                                                               max_shapes_column_width=80)
    print(table, file=sys.stderr, flush=True)


def row(r):
    arena = f"{r['arena_mib']:>10.1f}" if r["arena_mib"] is not None else f"{'-':>10}"
    work = f"{r['working_mib']:>9.1f}" if r["working_mib"] is not None else f"{'-':>9}"
    return (f"{r['stage']:<8} {r['preset']:<27} {r['size']:>5} {r['median_ms']:>10.2f} {min(r['runs_ms']):>8.2f} "
            f"{max(r['runs_ms']):>8.2f} {r['gflop']:>8.1f} {r['gflop_per_s']:>9.1f} {arena} {work} {r['params_m']:>9.1f}"
            + ("" if r["finite"] else "  (output not finite)"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stage", action="append", default=[], help="vae-enc, vae-dec, unet, dino, tile (comma separated)")
    p.add_argument("--preset", action="append", default=[], help=", ".join(PRESETS))
    p.add_argument("--size", type=int)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="f16", choices=["f16", "f32"], help="CUDA storage (the CPU runs fp32)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--profile", action="store_true", help="then one run under torch.profiler: self time by op and shapes (stderr)")
    args = p.parse_args()
    stages = [s for a in args.stage for s in a.split(",") if s] or STAGES
    presets = dict(DEFAULTS)
    for name in (n for a in args.preset for n in a.split(",") if n):
        if name not in PRESETS:
            sys.exit(f"preset `{name}`: expected one of {', '.join(PRESETS)}")
        presets[PRESETS[name][0]] = name
    for s in stages:
        if s not in STAGES:
            sys.exit(f"stage `{s}`: expected one of {', '.join(STAGES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:  # diffusers warns about `.to(dtype)` on every model built
        from diffusers.utils import logging as diffusers_logging
        diffusers_logging.set_verbosity_error()
    except ImportError:
        pass
    dev = torch.device(args.device)
    dtype = torch.float16 if dev.type == "cuda" and args.precision == "f16" else torch.float32
    if not args.json:
        print(f"device: {args.device}, torch {torch.__version__}; FLOPs = 2 x MACs of Conv2d, Linear and "
              f"SDPA products; median of {max(1, args.runs)} runs after {max(1, args.warmup)} warm-up")
        print(HEADER)
    for s in stages:
        r = run_stage(args, s, presets, dev, dtype)
        print(json.dumps(r) if args.json else row(r), flush=True)


if __name__ == "__main__":
    main()
