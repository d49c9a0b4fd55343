"""A plain CNN super-resolver on the demo model's own data: how much above bicubic this data and this
CPU budget allow, as a yardstick for the demo model (a diagnostic; nothing here is shipped).

    /tmp/f2i-ref-venv/bin/python calib/train/baseline_cnn.py [--steps 1500]
    /tmp/f2i-ref-venv/bin/python calib/train/baseline_cnn.py --latent models/f2idiff-demo.f2i

(from the repository root, after train.py or refine.py built the pools). The network is an EDSR-style
residual CNN at LR resolution (conv 3->64, 8 residual blocks of two 3x3 convs, conv, pixel shuffle x4)
added to the bicubic upscale (common.bicubic_lq), 0.66 M parameters; `--latent` runs the same trunk on
the pack's latent instead (LatentNet). It trains on the same 128 px HR patches and LR (train.py's
"large" pool: Real-ESRGAN-style degradation, 20 % clean) with an L1 loss at batch 8, in loop.py's loop
(AdamW, warm-up and cosine, clipping), and is scored like the demo model on the validation crops
(PSNR-Y, realistic and clean LR) every VAL_EVERY steps, logged to OUT/baseline.log
(OUT/baseline_latent.log). No DINOv2, and in pixels no VAE or colour fix either: if this yardstick is
far above the demo model, the one-step latent pipeline (not the data) is what holds the demo model
back. The held-out photos are not read.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT, bicubic_lq, log, psnr_y  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

import data  # noqa: E402
import loop  # noqa: E402
import train  # noqa: E402

SEED = 7
BATCH = 8
LR = 5e-4
WARMUP = 100
VAL_EVERY = 250


class Block(nn.Module):
    def __init__(self, ch):
        super().__init__()
        conv = lambda: nn.Conv2d(ch, ch, 3, padding=1)  # noqa: E731
        self.body = nn.Sequential(conv(), nn.ReLU(inplace=True), conv())

    def forward(self, x):
        return x + self.body(x)


class Residual(nn.Module):
    """EDSR's trunk: `c_in` channels -> a residual of `c_out · shuffle²` channels, pixel-shuffled."""

    def __init__(self, c_in, c_out, shuffle, ch=64, blocks=8):
        super().__init__()
        self.head = nn.Conv2d(c_in, ch, 3, padding=1)
        self.body = nn.Sequential(*[Block(ch) for _ in range(blocks)], nn.Conv2d(ch, ch, 3, padding=1))
        self.tail = nn.Sequential(nn.Conv2d(ch, c_out * shuffle * shuffle, 3, padding=1),
                                  nn.PixelShuffle(shuffle))
        nn.init.zeros_(self.tail[0].weight)
        nn.init.zeros_(self.tail[0].bias)

    def forward(self, x):
        f = self.head(x)
        return self.tail(f + self.body(f))


class Net(nn.Module):
    """LR in [0, 1] -> SR in [0, 1]: the bicubic upscale plus a learned residual."""

    def __init__(self):
        super().__init__()
        self.res = Residual(3, 3, 4)

    def forward(self, lr01):
        return (bicubic_lq(lr01) + 1) / 2 + self.res(lr01)


class LatentNet(nn.Module):
    """The same trunk in the demo model's latent space (`--latent`): the pack's VAE (frozen) encodes the
    bicubic upscale as the pipeline does, the trunk adds a residual to the latent that the pipeline
    decodes when eps = 0 (refine.py's bases scale quant_conv by sqrt(abar_999): x0 = z / c2), and the
    frozen decoder and the wavelet colour fix make the image -- the demo model's pipeline with the
    U-Net and DINOv2 replaced by this CNN."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        lc = vae.config.latent_channels
        self.res = Residual(lc, lc, 1)
        self.c2 = common.x0_coefficients(common.TIMESTEP)[1]

    def forward(self, lr01):
        lq = bicubic_lq(lr01)
        with torch.no_grad():
            z = common.encode_mean(self.vae, lq) / self.c2
        x0 = z + self.res(z)
        dec = self.vae.decode(x0 / self.vae.config.scaling_factor).sample.clamp(-1, 1)
        return common.wavelet_color_fix((dec + 1) / 2, (lq + 1) / 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--latent", type=Path, metavar="PACK", help="LatentNet on this pack's VAE (run 4's: "
                    "models/f2idiff-demo.f2i) instead of the pixel-space Net")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    p = data.pools(args.out, {k: train.POOLS[k] for k in ("large", "val")}, args.out / "photos")
    pool, val = p["large"], p["val"]
    if args.latent:
        import refine

        common.quiet()
        header, tensors = refine.read_pack(args.latent.read_bytes())
        vae = refine.networks(header, tensors, args.out / "baseline" / "base", torch.device("cpu"))[0]
        net = LatentNet(vae)
    else:
        net = Net()
    name = "baseline_latent" if args.latent else "baseline"
    logfile = args.out / f"{name}.log"
    logfile.write_text("")
    trained = [q for q in net.parameters() if q.requires_grad]
    log(f"{name}: {sum(q.numel() for q in trained):,} parameters, {args.steps} steps, bicubic on the "
        f"validation crops {train.bicubic_psnr_y(val)}", logfile)
    hr_val = data.to_tensor01(val["hr"])

    def step(i, g):
        idx = g.integers(0, len(pool["train"]), BATCH)
        return dict(loss=(net(data.to_tensor01(pool["train"][idx])) - data.to_tensor01(pool["hr"][idx])).abs().mean())

    @torch.no_grad()
    def validate():
        res = {f"psnr_y_{c}": psnr_y(net(data.to_tensor01(val[c])), hr_val) for c in ("realistic", "clean")}
        return dict(res, score=sum(res.values()) / len(res))

    # loop.py's loop, as every stage of the demo model: AdamW, warm-up and cosine, clipping, checkpoints
    # (OUT/ckpt/<name>.pt, deleted first: every run starts over)
    (args.out / "ckpt" / f"{name}.pt").unlink(missing_ok=True)
    loop.run(loop.Stage(name=name, steps=args.steps, lr=LR, warmup=WARMUP, params=trained, modules=dict(net=net),
                        step=step, validate=validate, val_every=VAL_EVERY), args.out / "ckpt", SEED, logfile)


if __name__ == "__main__":
    main()
