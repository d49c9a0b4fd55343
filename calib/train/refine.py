"""Run 4 of the demo model: a second LoRA round of stage 2 on the packed run-3 model, with an edge term;
and the later rounds on run 4's pack (--round; ROUNDS below; docs/demo-model.md, "Where the gap is").

    /tmp/f2i-ref-venv/bin/python calib/train/refine.py --base BASE.f2i            # CPU, 2 threads
    /tmp/f2i-ref-venv/bin/python calib/train/refine.py --base BASE.f2i --resume   # after an interruption
    /tmp/f2i-ref-venv/bin/python calib/train/refine.py --base models/f2idiff-demo.f2i --round 9 --model R9.f2i

Round N > 4 writes OUT/refineN.log, OUT/refineN.json, OUT/ckpt/refineN.pt and OUT/refineN/{base,demo}, so
rounds do not overwrite each other (round 28 also OUT/ckpt/refine28-fm.pt, its stage 1). What follows describes
round 4; the others differ as ROUNDS says.

(from the repository root). Why a round on the pack: train.py's full recipe is 254 minutes of CPU steps,
longer than one working session, and its stage-0/1 checkpoints did not survive; the run-3 pack (committed,
`git show efdcf2e:models/f2idiff-demo.f2i > BASE.f2i`, sha256 RUN3_SHA256) holds everything stage 2
produced, its LoRA merged. Its networks, read back from the pack (f16 values, computed on in f32), become
the frozen base of a new round:

  base       VAE, U-Net, DINOv2 of BASE.f2i (stage-2 LoRA merged), configs from the pack's header
  adapters   fresh PEFT LoRA, zero-initialised (lora_B = 0): U-Net r 16 (LORA_UNET_TARGETS), VAE encoder
             r 8 (LORA_VAE_TARGETS, quant_conv included) -- so step 0 is exactly the run-3 model
  loss       L1(SR, HR) + GRAD_W * gradient_l1(SR, HR): stage 2's pixel term plus an edge term (run 3 was
             level with bicubic on GMSD: it smoothed fine texture). Stage 2's latent term is left out: its
             target z0_HR is the stage-0 encoder's latent, and the pack holds only the encoder with its
             stage-2 LoRA merged (quant_conv scaled by sqrt(abar_999) among the rest) -- the first two
             attempts took that encoder's latents as targets, pulling x0 towards 0.07 x the right one
  schedule   loop.py's: STEPS steps, LR peak, warm-up, cosine to 10%; validation every 500 steps on the
             validation crops (train.py's pools, same seeds), the best step's weights kept; step 0 (the
             base) is validated too and kept if never beaten (loop.py's validate_first)
  export     OUT/refine/base (the base networks as model folders), OUT/refine/demo (+ the adapters),
             `f2idiff pack --dtype f16` -> --model (adapters merged in f32, then f16); the model's tile is
             the base's unless `--tile` (choose_tile.py's choice on the result: rerun with --resume --tile T,
             which restores the finished round and only exports and packs again); likewise its DINOv2
             context (`--dino-context`, tile_context.py's choice)

The held-out photos are not read here (evaluate.py reads them, once, afterwards).
"""

import argparse
import hashlib
import json
import struct
import sys
from types import SimpleNamespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline_cnn  # noqa: E402
import common  # noqa: E402
from common import ROOT, check_versions, log, quiet  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import data  # noqa: E402
import deepen  # noqa: E402
import export  # noqa: E402
import loop  # noqa: E402
import stage1_fm  # noqa: E402
import stage2_sr  # noqa: E402
import train  # noqa: E402

RUN3_SHA256 = "996c490271af502fd02410705ec93fc61cebc4093a316f9b91b613d07cdc0661"
RUN4_SHA256 = "4c15d19f993a8624a4279bfdefd50409a6616400ae717d1a90ec6360461b5fbc"  # ce1ef59's shipped pack
RUN5_SHA256 = "daf8794789ba6364776e5e17769263a98f133923b3c51ffcfe92aad501cef754"  # round 24's pack, shipped as run 5
RUN6_SHA256 = "e14e631a0bc2c800aa6b4434b5f8b04d1cfd2fc7ff89b93a78677687d2eeae49"  # round 29's pack (tile 256)
RUN6_SHIPPED_SHA256 = "fd16c1cca9eee4e6e78dbdef3e3a94041bfa8cd53bb8a1f147d6f5c34478f912"  # the same, tile 128
ROUND30_SHA256 = "b787ed884b9696ea05f5baac50738627304bc4b877d7f6cd231ad3f50f519496"  # round 30's pack (tile 128)
RUN7_SHA256 = "f7cb726b7dfe399bda988165f86db494bdaa2d740eefef908382031677967186"  # the same, tile 256: run 7
RUN8_SHA256 = "0042ef8b46b6d883f0d51c22b9c00c8d51e50a2e08bc51b6c95f333c72a6630b"  # round 35's pack: run 8
RUN9_SHA256 = "e77b6dcd655eb1e0d85cfd7f1269b79ccbd966b548b7e39b18f44fb08315f5ba"  # round 38b's blend: run 9
ROUND32_SHA256 = "3fe853805316377b76c39ef94c89cd67e065b73c44397896248ac23555f18246"  # round 32's pack (tile 256)
BASES = {RUN3_SHA256: "run 3", RUN4_SHA256: "run 4", RUN5_SHA256: "run 5", RUN6_SHA256: "run 6",
         RUN6_SHIPPED_SHA256: "run 6", ROUND30_SHA256: "round 30", RUN7_SHA256: "run 7", RUN8_SHA256: "run 8",
         RUN9_SHA256: "run 9", ROUND32_SHA256: "round 32"}
STEPS = 2000
LR = 3e-4
GRAD_W = 0.25
SEED = 100
# The rounds on a pack (--round): 4 = run 4's, on run 3's pack. On run 4's pack, 5-9 on 128 px patches
# only (the validation crops' size): 5 = U-Net adapters of rank 64; 6 = the VAE decoder adapted too;
# 7 = the U-Net trained in full, no U-Net adapters (a diagnostic: is LoRA what holds it back?); 8 = run 4's
# adapters at a sixth of its learning rate (are the steps too large? eps reaches x0 times 14.6); 9 = the
# base U-Net's conv_out zeroed first, so that the round starts at eps = 0 (the VAE round trip of the
# bicubic) and its conv_out adapter (rank 16 = full rank: 16 outputs) learns the output from zero.
# 10 = round 9 on run 4's batches (64 px patches, every 4th step 128 px).
# 11 = round 9 with the base conv_in's weight scaled by 1 / sqrt(abar_999) (14.6): the U-Net's input, the
# encoder latent times sqrt(abar_999) (std 0.08), then reaches conv_in at the scale the FM saw at t = 999
# (x_t of std 1) instead of 20x under its bias (conv_in: W*z std 0.035, |bias| 0.053; W*noise 0.68).
# 12 = a diagnostic, not a candidate: round 11 on a U-Net re-initialised at random (PyTorch's default
# init, seeded) and trained in full at the CNN yardstick's learning rate. Does the FM's start hold
# stage 2 back (then this climbs like baseline_cnn.py), or the one-step U-Net itself?
# 13 = 12 with conv_out's learning rate times sqrt(abar_999) / sqrt(1 - abar_999) (1 / 14.6): x0 = (z - c1 eps)
# / c2 amplifies every step of eps 14.6x, so this gives conv_out the step size on x0 of the yardstick's tail.
ROUNDS = {4: dict(steps=STEPS, lr=LR, grad_w=GRAD_W, rank_unet=stage2_sr.RANK_UNET, rank_vae=stage2_sr.RANK_VAE,
                  decoder=False, large_every=4, batch_large=stage2_sr.BATCH_LARGE, val_every=stage2_sr.VAL_EVERY)}
ON_RUN4 = dict(ROUNDS[4], large_every=1, batch_large=4, val_every=250)  # what rounds 5-13 share (not 10)
ROUNDS.update({5: dict(ON_RUN4, steps=3000, lr=5e-4, rank_unet=64),
               6: dict(ON_RUN4, lr=3e-4, rank_vae=16, decoder=True),
               7: dict(ON_RUN4, lr=1e-4, rank_unet=0),
               8: dict(ON_RUN4, steps=1500, lr=5e-5),
               9: dict(ON_RUN4, steps=1500, lr=2e-4, zero_conv_out=True),
               10: dict(ROUNDS[4], steps=1500, lr=2e-4, val_every=250, zero_conv_out=True),
               11: dict(ON_RUN4, steps=1500, lr=2e-4, zero_conv_out=True, scale_conv_in=True),
               12: dict(ON_RUN4, steps=1500, lr=5e-4, rank_unet=0, zero_conv_out=True, scale_conv_in=True,
                        reinit_unet=True)})
ROUNDS.update({13: dict(ROUNDS[12], steps=1000, out_lr_scale=True)})
# 14 (diagnostic): round 13 on a U-Net with four resnets instead of one at the top level (the latent's own
# resolution, where the yardstick CNN has all its 8 blocks; the up block there gets five)
ROUNDS.update({14: dict(ROUNDS[13], unet_override=dict(layers_per_block=(4, 1, 1)))})
# 15 (diagnostic): round 12 with every U-Net weight's learning rate times 1 / 14.6, not only conv_out's (13):
# x0 amplifies any change of eps 14.6x, so at the yardstick's learning rate the U-Net moves x0 14.6x further
# per step than the yardstick moves its output; this gives the whole U-Net the yardstick's step on x0
ROUNDS.update({15: dict(ROUNDS[12], steps=1000, unet_lr_scale=True)})
# 16 (diagnostic): round 13 trained as the latent yardstick is (baseline_cnn.py --latent): batches of 8 patches
# of 128 px instead of 4, plain L1 without the edge term
ROUNDS.update({16: dict(ROUNDS[13], batch_large=8, grad_w=0.0)})
# 17 (diagnostic, cannot be packed): round 13 with every GroupNorm of the U-Net replaced by the identity: its
# statistics are those of the patch (32x32 latents here, 64x64 in the engine's tiles); the yardstick has none
ROUNDS.update({17: dict(ROUNDS[13], no_group_norm=True, pack=False)})
# 18 (diagnostic): round 13 with the VAE encoder's adapters frozen at zero, as the latent yardstick's encoder is
# (every round 5-17 trained them; the quant_conv adapter adds to z_t after the merged sqrt(abar_999) scale, so x0
# sees its steps 14.6x larger)
ROUNDS.update({18: dict(ROUNDS[13], freeze_vae=True)})
# 19: round 13 on the long yardstick's schedule (baseline_cnn.py --steps 6000: warm-up and cosine over 6,000
# steps). The rounds above decay within 1,000-1,500 steps and meet the yardstick at 250 steps (+0.10-0.12 dB
# over their start for both); the yardstick's lead appears after 500, where their learning rates have decayed
ROUNDS.update({19: dict(ROUNDS[13], steps=6000)})
# 20 (diagnostic, cannot be packed): the bisection. Rounds 14-18 each removed one difference from the latent
# yardstick and none moved; this removes the architecture at once: the U-Net is replaced by the yardstick's own
# trunk (baseline_cnn.Residual on the latent, CnnAsUnet) and trained through this script's pipeline with the
# yardstick's settings (batches of 8 patches of 128 px, plain L1, lr 5e-4, no step scaling, the VAE frozen,
# 1,500 steps). If it climbs as `baseline_cnn.py --latent` did (27.26 at step 750), this pipeline is sound and
# the U-Net is what does not learn; if it stays in rounds 9-19's band, the cause is in the pipeline.
ROUNDS.update({20: dict(ROUNDS[13], steps=1500, out_lr_scale=False, batch_large=8, grad_w=0.0, freeze_vae=True,
                        cnn_unet=True, pack=False)})

# 21 (diagnostic, cannot be packed): round 20's settings on the U-Net again (round 13's, re-initialised, conv_out
# zeroed and at 1 / 14.6 of the learning rate: the exact reparametrisation of the trunk's output layer), with
# every GroupNorm replaced by the identity (round 17, stopped at step 500 at 27.107, the best U-Net score there).
# Normalising each group over the patch rescales flat and textured patches alike; EDSR dropped its norms for that
ROUNDS.update({21: dict(ROUNDS[20], cnn_unet=False, out_lr_scale=True, no_group_norm=True)})

# 22 (diagnostic, cannot be packed by the engine's demo recipe): round 21 with its GroupNorms back, on a U-Net
# without any attention (plain down / up blocks, a mid block of resnets): does the attention to DINOv2 (and the
# self-attention) hold the U-Net back? Same levels, channels and resnets as the demo model's U-Net
ROUNDS.update({22: dict(ROUNDS[21], no_group_norm=False,
                        unet_override=dict(down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
                                           mid_block_type="UNetMidBlock2D"))})

# 23 (diagnostic): round 21's settings with its GroupNorms back, on a U-Net of one level: 64 channels at the
# latent's resolution, four resnets down, a mid block of resnets, five up, no down- or up-sampling, no attention
# (the yardstick's trunk in diffusers' blocks: GroupNorm + SiLU before each conv, the time embedding added)
ROUNDS.update({23: dict(ROUNDS[22], unet_override=dict(
    block_out_channels=(64,), down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",),
    mid_block_type="UNetMidBlock2D", layers_per_block=4, attention_head_dim=2))})

# 24 (a candidate, packed): round 23's one-level U-Net with the DINOv2 conditioning back, in its mid block
# (UNetMidBlock2DCrossAttn: resnet, transformer -- self-attention, cross-attention to the DINOv2 tokens,
# feed-forward --, resnet; 2 heads of 32), the VAE encoder's adapters trained again (round 13's), on a 4,000-step
# schedule. The attention sits in the mid block only: at the latent's resolution a 256 px tile has 4,096 tokens,
# and the demo model's own top level (64 channels) has none either
ROUNDS.update({24: dict(ROUNDS[23], steps=4000, freeze_vae=False, pack=True, unet_override=dict(
    ROUNDS[23]["unet_override"], mid_block_type="UNetMidBlock2DCrossAttn"))})

# 25: run 4's recipe on round 24's pack (run 5; round 24 trains its U-Net in full from random weights, so
# this is the round that puts F2IDiff-SR's LoRA on that U-Net): fresh zero-initialised adapters on the U-Net (r 16)
# and the VAE encoder (r 8), the L1 + edge loss, round 24's batches (8 patches of 128 px), a third of round 24's
# learning rate, 1,000 steps; step 0 (round 24's model) is kept unless a validation beats it
ROUNDS.update({25: dict(ON_RUN4, steps=1000, lr=1e-4, batch_large=8)})

# 26: round 24 with run 4's edge term from the start (L1 + 0.25 gradient L1): run 5 is closer than run 4 on every
# PSNR-Y but less sharp (GMSD worse than run 4's on the validation crops and, with realistic LR, than bicubic's on
# the held-out photos); round 25 added the term only late, at a third of the learning rate
ROUNDS.update({26: dict(ROUNDS[24], grad_w=GRAD_W)})

# 27: round 26 validated, kept and packed as an exponential moving average of its weights (decay 0.999, about the
# last 1,000 steps): rounds 24 and 26 swing by +-0.1 dB on the clean LR between validations after step 1,000, a
# sign of batches of 8 patches too small for the learning rate late in the schedule
ROUNDS.update({27: dict(ROUNDS[26], average=0.999)})

# 28: F2IDiff-SR's recipe on round 24's U-Net. Round 24 trains its one-level U-Net in full from random weights, so
# the shipped model has no U-Net adapter. Here that U-Net is first pretrained as the feature-to-image FM (stage
# 1, stage1_fm.py: eps-prediction at every t on HR latents, conditioned on the pack's DINOv2, frozen; `fm_steps`),
# then stage 2 puts LoRA on it (rank 32 of 64 channels) from round 24's start (base conv_out zeroed, conv_in
# scaled) with round 24's settings on a 3,000-step schedule. The HR latents are the pack's encoder's mean over
# sqrt(abar_999) (the merged quant_conv's scale): decoded, 28.9 dB PSNR-Y on the validation crops
ROUNDS.update({28: dict(ROUNDS[24], steps=3000, fm_steps=4000, rank_unet=32)})

# 29: round 24 on fresh pairs. Every round so far drew its 128 px patches from train.POOLS' large pool: 4,000 HR
# patches, each with one LR made once, so round 24's 4,000 steps of 8 saw each pair 8 times; its running L1 fell
# from 0.0374 (step 1,250) to 0.0347 (3,650) while its validation stayed flat from step 1,500 (27.38-27.40, then
# down), the sign of a model fitting its pairs. Here the large pool holds 48,000 pairs (a new seed: new crops
# and new degradations), as many as the 6,000 steps of 8 draw, so a pair is seen about once
ROUNDS.update({29: dict(ROUNDS[24], steps=6000, large_pool=48000, large_pool_seed=4)})

# 30: run 6 (round 29's pack) sharpened. Run 6 beats bicubic by 0.5 dB PSNR-Y on the held-out photos but is
# 0.0011 behind it on GMSD with realistic LR. This round trains run 6's U-Net on (a fine-tune: its weights, in
# full, no adapter; fresh VAE-encoder adapters) with stage2_sr.gmsd, the measure itself, in the loss beside L1,
# on 16,000 fresh pairs (seed 5) at a fifth of round 29's learning rate; step 0 is run 6
ROUNDS.update({30: dict(ROUNDS[29], steps=2000, lr=1e-4, large_pool=16000, large_pool_seed=5, gmsd_w=0.1,
                        reinit_unet=False, zero_conv_out=False, scale_conv_in=False, unet_override=None)})

# 31: F2IDiff-SR's stage-2 LoRA on round 30's U-Net. Runs 5-6 and round 30 train the one-level U-Net in full, so
# the model has no U-Net adapter; round 28 showed that LoRA on an FM pretrained here for minutes loses to that. Here
# round 30's U-Net (the best this machine has trained) is the frozen base, and fresh zero-initialised adapters (rank
# 32 of its 64 channels) on it and on the VAE encoder (r 8) train with round 30's loss (L1 + 0.1 GMSD) on 12,000
# fresh pairs (seed 6) at twice its learning rate (the adapters start at zero); step 0 is round 30's model
ROUNDS.update({31: dict(ROUNDS[30], steps=1500, lr=2e-4, rank_unet=32, large_pool=12000, large_pool_seed=6)})

# 32: run 6's recipe longer, with run 7's loss. Round 29 (run 6) was still climbing when its 6,000-step schedule
# ended, and round 30's GMSD term made run 6 sharper without costing PSNR-Y on the validation crops. This is round 29
# from random weights again, on twice the fresh pairs (96,000, seed 7) over twice the steps (12,000), with L1 +
# 0.1 GMSD from the start: about 3.5 hours on two cores, so it is meant to be run across sessions (--resume).
# Result (2026-12-06, 134.5 min on the 2-core Xeon): kept step 11,250, score 27.865 against round 29's 27.739; rule
# 'targets' against run 9 fails at 256 and 128 px tiles (+0.476 / +0.470 dB realistic; docs, "Round 32 again")
ROUNDS.update({32: dict(ROUNDS[29], steps=12000, large_pool=96000, large_pool_seed=7, gmsd_w=0.1)})

# 33: round 31's LoRA on run 6's U-Net instead of round 30's. Round 30 (run 7) trained run 6's U-Net in full with the
# GMSD term and became sharper everywhere, but on the validation photos with realistic LR it fell behind run 6 on 4 of
# 6 (its mean lead was one photo's). A LoRA of rank 32 on run 6's U-Net (and r 8 on the VAE encoder) with the same loss
# is a restricted version of that step, F2IDiff-SR's own: it starts at run 6 and can move only within the adapters'
# rank. 16,000 fresh pairs (seed 8) over 2,000 steps, round 31's learning rate; step 0 is run 6. Round 32 (12,000
# steps) did not fit one session, and its checkpoint, outside git, did not survive to the next
ROUNDS.update({33: dict(ROUNDS[31], steps=2000, large_pool=16000, large_pool_seed=8)})

# 34: round 32 sized for the GPU machine (scripts/gpu-train.sh ROUND=34), not run on the CPU. Its stage 2 is
# launch-bound there at batch 8 (136 ms a step on the H200, 2026-12-04): round 32's 12,000 steps would take 27
# minutes of a task's 15. So the same 96,000 samples go in batches of 64 over 1,500 steps, at twice the learning
# rate (AdamW; a guess between no scaling and the square-root rule), validated every 125 steps, on 96,000 fresh pairs
# (seed 9; --pool-workers 16 builds them in about a minute there). Not run on a GPU: none was lent when it was
# written (2026-12-05); on the 2-core CPU, 3 steps of 64 took 0.6 min with their two validations
ROUNDS.update({34: dict(ROUNDS[32], steps=1500, batch_large=64, lr=1e-3, large_pool_seed=9, val_every=125)})

# 35: run 7 trained on, in full, on fresh pairs. Round 29 (run 6) from random weights gained most from fresh data (each
# pair seen once instead of 8 times: +0.34 dB on the validation crops over round 24), and round 30 (run 7) saw only
# 16,000 more. Round 32, which was to see 96,000, does not fit a session. So run 7's U-Net (its weights, no adapter;
# fresh VAE-encoder adapters) goes on with round 30's loss (L1 + 0.1 GMSD) on 32,000 fresh pairs (seed 10), as many
# as its 4,000 steps of 8 draw, on a warm restart at twice round 30's learning rate; step 0 is run 7
ROUNDS.update({35: dict(ROUNDS[30], steps=4000, lr=2e-4, large_pool=32000, large_pool_seed=10)})

# 36: run 8 trained on at the size it runs at. Every round since 24 trained on 128 px patches (a 16 x 16 latent, DINOv2
# on a 32 px LR), while the shipped model runs 256 px tiles (32 x 32, its GroupNorm statistics over 4x the pixels,
# DINOv2 on the whole image's LR), and rounds 9 and 10 gained on 128 px crops but not on 256 px tiles. So run 8's U-Net
# (in full; fresh VAE-encoder adapters) goes on with round 35's loss and learning rate on 256 px patches, 2 a step
# (the pixels of 8 of 128), 6,000 fresh pairs (seed 11), one per sample of 3,000 steps; the kept step is chosen on
# 16 validation crops of 256 px (the validation photos, seed 3) instead of 64 of 128; step 0 is run 8
ROUNDS.update({36: dict(ROUNDS[35], steps=3000, batch_large=2, large_pool=6000, large_pool_seed=11, patch=256,
                        val_pool=(16, 256))})

# 37: run 8 with more capacity. Rounds 35 and 36 trained run 8's (and run 7's) whole U-Net at a warm restart of lr 2e-4:
# realistic-LR PSNR-Y fell in the high-lr half and came back at best to where it started, the sign of a network at its
# capacity rather than short of data. So run 8's U-Net gets two more resnets per block (deepen.py: six down, seven up,
# 1.42M -> 1.87M weights), initialised so that step 0 is run 8 exactly; the new resnets train at lr 2e-4, run 8's own
# weights at a tenth of it (old_lr_scale); round 35's batches (8 of 128 px), loss and validation crops; 20,000 fresh
# pairs (seed 12), one per sample of 2,500 steps
ROUNDS.update({37: dict(ROUNDS[35], steps=2500, large_pool=20000, large_pool_seed=12, deepen=2, old_lr_scale=0.1)})

# 39: a wider U-Net trained from the start. Runs 6-8 sit on one PSNR-Y / sharpness trade-off with realistic LR, and
# neither training run 8 on (rounds 35, 36), deepening it (37) nor blending it with run 6 (38) moved past it. The one
# capacity this U-Net has not been given from random weights is width: round 29's recipe (run 6: run 4's VAE and
# DINOv2, fresh VAE-encoder adapters, the one-level U-Net in full from random weights, 6,000 steps of 8 x 128 px) on a
# U-Net of 96 channels instead of 64 (3 heads of 32; 2.25x the convolutions' work), with round 30's loss (L1 + 0.1
# GMSD) from the start, as round 32 would have had, on 48,000 fresh pairs (seed 13). Longer than a session on two
# cores: run across sessions with --stop-after-minutes and --resume. Result (2026-12-06): kept step 5,750, score
# 27.542 against round 29's 27.739; rule 'targets' against run 9 fails at 256 and 128 px tiles (docs, "Round 39")
ROUNDS.update({39: dict(ROUNDS[29], large_pool_seed=13, gmsd_w=0.1, unet_override=dict(
    ROUNDS[29]["unet_override"], block_out_channels=(96,), attention_head_dim=3))})

# 41: round 32 trained on with L1 alone. Round 32 (run 6's recipe over 12,000 steps with L1 + 0.1 GMSD) is sharper
# than run 9 and closer with clean LR on the validation photos, but 0.025 dB behind it with realistic LR on the five
# typical ones, where the target is. On those photos, runs 6-8 sit on one trade-off that the GMSD term moves along
# towards sharpness (run 6: L1 alone, +0.50 dB, GMSD a little worse than bicubic's; run 8: +0.45, GMSD better;
# docs, "What the validation photos say"). This round moves round 32 the other way: its U-Net trained on in full
# (fresh VAE-encoder adapters) with L1 alone, at round 30's learning rate, on 16,000 fresh pairs (seed 14) over
# 2,000 steps; step 0 is round 32's kept weights (--base its pack, refine32.f2i). Result (2026-12-06): no step beat
# step 0 (27.865; realistic GMSD 0.138 -> 0.146 by step 250, PSNR-Y no higher): no candidate (docs, "Round 41")
ROUNDS.update({41: dict(ROUNDS[30], large_pool_seed=14, gmsd_w=0.0)})


class CnnAsUnet(torch.nn.Module):
    """baseline_cnn.py's latent trunk behind the U-Net's call: x0 = z + res(z) in the latent the pipeline
    decodes, with z = z_t / c2, returned as the eps that sr_forward turns into that x0 (DINOv2's tokens and
    the timestep are ignored)."""

    def __init__(self, latent_channels):
        super().__init__()
        self.res = baseline_cnn.Residual(latent_channels, latent_channels, 1)
        self.c1, self.c2 = common.x0_coefficients(common.TIMESTEP)

    def forward(self, z_t, t, encoder_hidden_states=None):
        # x0 = (z_t - c1 eps) / c2 = z + res(z)  <=>  eps = -c2 res(z) / c1
        return SimpleNamespace(sample=-self.c2 * self.res(z_t / self.c2) / self.c1)


def foundation(unet, vae, dino, p, dino_size, cfg, ckpt, name, logfile, deadline, dev):
    """Round 28's stage 1 on `unet` in place: stage1_fm.py's FM on the pools' HR latents (the pack's encoder
    mean over sqrt(abar_999)), DINOv2 frozen; checkpointed as NAME-fm, so a resumed round restores it."""
    c2 = common.x0_coefficients(common.TIMESTEP)[1]

    def with_z0(pool):
        return dict(pool, z0=train.latents(vae, pool["hr"], dev) / c2)

    pools = [with_z0(dict(hr=p["small"]["hr"], lr=p["small"]["train"])),
             with_z0(dict(hr=p["large"]["hr"], lr=p["large"]["train"]))]
    val = dict(with_z0(dict(hr=p["val"]["hr"])), lr=p["val"]["realistic"])
    unet.requires_grad_(True)
    s = stage1_fm.stage(unet, dino, pools, val, dino_size, cfg["fm_steps"], dev)
    s.name, s.params, s.train_modes, s.modules = f"{name}-fm", list(unet.parameters()), [unet], dict(unet=unet)
    try:
        rep = loop.run(s, ckpt, SEED + 2, logfile, deadline=deadline)
    except loop.Interrupted as e:
        log(f"interrupted in stage {e}: continue with --resume", logfile)
        sys.exit(3)
    unet.requires_grad_(False).eval()
    return rep


def read_pack(b):
    """(header dict, {name: float32 tensor}) of an f2idiff pack's bytes (layout: src/pack/format.rs).
    Reads only what this script needs; `f2idiff info --verify` is the checker."""
    if b[:8] != b"F2IPACK\0":
        sys.exit("--base is not an f2idiff pack")
    ho, hl, to, tl, do, _ = struct.unpack_from("<6Q", b, 16)
    header = json.loads(b[ho:ho + hl])
    t, at, tensors = b[to:to + tl], 4, {}
    for _ in range(struct.unpack_from("<I", t, 0)[0]):
        n = struct.unpack_from("<H", t, at)[0]
        name = t[at + 2:at + 2 + n].decode()
        at += 2 + n
        code, ndim = t[at], t[at + 1]
        shape = struct.unpack_from(f"<{ndim}Q", t, at + 2)
        off, length = struct.unpack_from("<QQ", t, at + 2 + 8 * ndim)
        at += 2 + 8 * ndim + 20
        dtype = {0: np.float32, 1: np.float16}[code]
        raw = np.frombuffer(b, dtype=dtype, count=length // np.dtype(dtype).itemsize, offset=do + off)
        tensors[name] = torch.from_numpy(raw.astype(np.float32).reshape(shape))
    return header, tensors


NETS = dict(vae="diffusion_pytorch_model.safetensors", unet="diffusion_pytorch_model.safetensors",
            dinov2="model.safetensors")  # each network's weights file in a model folder


def config(header, net):
    """A network's config from a pack's header, without the local path diffusers / transformers record."""
    return {k: v for k, v in header[net].items() if k != "_name_or_path"}


def write_folder(header, tensors, folder):
    """A pack's networks as the model folder `f2idiff pack` reads: each network's config (from the header) and
    safetensors (the tensors under their checkpoint names), and f2idiff.json."""
    from safetensors.torch import save_file

    folder = Path(folder)
    for net, file in NETS.items():
        (folder / net).mkdir(parents=True, exist_ok=True)
        (folder / net / "config.json").write_text(json.dumps(config(header, net), indent=2) + "\n")
        prefix = net + "."
        save_file({k[len(prefix):]: v.contiguous() for k, v in tensors.items() if k.startswith(prefix)},
                  str(folder / net / file))
    (folder / "f2idiff.json").write_text(json.dumps(header["pipeline"], indent=2) + "\n")


def networks(header, tensors, folder, dev):
    """The pack's three networks as diffusers / transformers modules: written to `folder` (write_folder) and
    loaded back with from_pretrained, which maps the checkpoint names onto the library's modules."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import Dinov2Model

    folder = Path(folder)
    write_folder(header, tensors, folder)
    nets = (AutoencoderKL.from_pretrained(folder / "vae"), UNet2DConditionModel.from_pretrained(folder / "unet"),
            Dinov2Model.from_pretrained(folder / "dinov2"))
    for m in nets:
        for p in m.parameters():
            p.requires_grad_(False)
        m.to(dev).eval()
    return nets


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="the run-3 pack for round 4, run 4's for rounds 5-24, "
                    "round 24's (run 5's) for 25-28 (see the module docstring)")
    ap.add_argument("--any-base", action="store_true", help="accept a base pack other than run 3's, 4's or 5's")
    ap.add_argument("--round", type=int, choices=sorted(ROUNDS), default=4,
                    help="the round's settings (ROUNDS): 4 = run 4's, on run 3's pack; 5-24 = 2026-12-04's, on "
                    "run 4's; 25 = run 4's recipe on round 24's; 26 = round 24 with the edge term; 27 = 26 averaged; "
                    "28 = round 24's U-Net pretrained as the FM, then stage 2 as LoRA on it; "
                    "29 = round 24 on fresh pairs (run 6); 30 = run 6 fine-tuned with GMSD in the loss; "
                    "31 = LoRA on round 30's U-Net; 32 = round 29 with round 30's loss, twice as long; "
                    "33 = round 31's LoRA on run 6's U-Net; 34 = round 32 in batches of 64, for the GPU machine; "
                    "35 = run 7 trained on in full, on fresh pairs; 36 = run 8 trained on, on 256 px patches; "
                    "37 = run 8 with two more resnets per block; 39 = round 29 on a 96-channel U-Net; "
                    "41 = round 32 trained on with L1 alone")
    ap.add_argument("--steps", type=int, help="default: the round's")
    ap.add_argument("--large-pool", type=int, help="pairs in the large pool (default: the round's; fewer are seen "
                    "more than once, and build faster: the GPU machine's time is counted)")
    ap.add_argument("--fm-steps", type=int, help="stage 1's steps in a round that has one (28; default: the round's)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/ckpt/refine.pt (round N > 4: refineN.pt)")
    ap.add_argument("--stop-after-minutes", type=float)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "calib" / "train" / "out")
    ap.add_argument("--photos", type=Path, help="photo cache folder (default OUT/photos)")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "f2idiff-demo.f2i", help="packed result")
    ap.add_argument("--cli", help="f2idiff binary (default: cargo build --release)")
    ap.add_argument("--quick", action="store_true", help="smoke test: small pools")
    ap.add_argument("--any-versions", action="store_true", help="run on another torch / diffusers / transformers "
                    "than the pinned ones (the GPU machine's); the result is then not the CPU path's")
    ap.add_argument("--pool-workers", type=int, default=1, help="build the pools with this many processes "
                    "(data.make_pool_parallel: other pairs than the default 1's, cached under their own key)")
    ap.add_argument("--pack-when-stopped", action="store_true", help="when --stop-after-minutes (or a signal) "
                    "stops the round, pack the best validated weights so far instead of exiting (the GPU machine, "
                    "whose time is counted; the report says where it stopped)")
    ap.add_argument("--tile", type=int, help="the output tile the packed model declares (choose_tile.py's "
                    "choice; default: the base pack's)")
    ap.add_argument("--unet-lora-strength", type=float, default=1.0,
                    help="scale the U-Net adapters' merge by this (their lora_alpha, as the pack's converter reads "
                    "it; a round with U-Net adapters only): a candidate between the base (0) and the round's model "
                    "(1), a common LoRA knob, chosen on the validation photos")
    ap.add_argument("--dino-context", choices=("tile", "image"), help="what DINOv2 conditions each tile on, "
                    "as the packed model declares it (tile_context.py's choice; default: the base pack's)")
    return ap.parse_args()


def main():
    args = parse()
    if not args.any_versions:
        check_versions()
    quiet()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    out = args.out
    base = args.base.read_bytes()
    sha = hashlib.sha256(base).hexdigest()
    if sha not in BASES and not args.any_base:
        known = ", ".join(dict.fromkeys(BASES.values()))
        sys.exit(f"{args.base}: sha256 {sha} is not a known base ({known}); --any-base to go on anyway")
    cfg = dict(ROUNDS[args.round])
    if args.steps is not None:
        cfg["steps"] = args.steps
    if args.large_pool is not None:
        if "large_pool_seed" not in cfg:
            sys.exit(f"round {args.round} draws from train.py's pools: --large-pool is for rounds 29 and later")
        cfg["large_pool"] = args.large_pool
    if args.fm_steps is not None and cfg.get("fm_steps"):
        cfg["fm_steps"] = args.fm_steps
    name = "refine" if args.round == 4 else f"refine{args.round}"
    ckpt = out / "ckpt"
    if (ckpt / f"{name}.pt").exists() and not args.resume:
        sys.exit(f"{ckpt / f'{name}.pt'} exists: pass --resume to continue it, or delete it to start over")
    logfile, deadline = loop.start(out, name, args.resume, args.stop_after_minutes)
    log(f"{name}: base {args.base} ({BASES.get(sha, 'other')}, sha256 {sha[:16]}), round {args.round}: {cfg}, "
        f"device {dev}, torch threads {torch.get_num_threads()}", logfile)

    spec = dict(train.QUICK_POOLS if args.quick else train.POOLS)
    if cfg.get("large_pool") and not args.quick:
        spec["large"] = ("train", cfg["large_pool"], cfg.get("patch", 128), cfg["large_pool_seed"], ("train",))
    if cfg.get("val_pool") and not args.quick:  # (crops, HR size) of the validation photos, train.POOLS' seed
        spec["val"] = ("val", *cfg["val_pool"], *spec["val"][3:])
    p = data.pools(out, spec, args.photos or out / "photos", workers=args.pool_workers)
    small, large, val = p["small"], p["large"], p["val"]
    header, tensors = read_pack(base)
    if args.tile is not None:
        header["pipeline"]["tile"] = args.tile
    if args.dino_context is not None:
        header["pipeline"]["dino_context"] = args.dino_context
    base_dir, demo_dir = out / name / "base", out / name / "demo"
    vae, unet, dino = networks(header, tensors, base_dir, dev)
    if cfg.get("unet_override"):  # another U-Net shape: its weights start at random (reinit_unet)
        from diffusers import UNet2DConditionModel

        torch.manual_seed(SEED)
        unet = UNet2DConditionModel.from_config({**unet.config, **cfg["unet_override"]})
        unet = unet.requires_grad_(False).to(dev).eval()
    if cfg.get("cnn_unet"):
        torch.manual_seed(SEED)
        unet = CnnAsUnet(unet.config.in_channels).to(dev)
    if cfg.get("deepen"):  # more resnets per block, computing the same at step 0 (deepen.py)
        unet = deepen.deeper(unet, cfg["deepen"], SEED).requires_grad_(False)
    if cfg.get("no_group_norm"):
        for m in list(unet.modules()):
            for k, c in list(m.named_children()):
                if isinstance(c, torch.nn.GroupNorm):
                    setattr(m, k, torch.nn.Identity())
    fm = None
    if not cfg.get("cnn_unet") and (cfg.get("zero_conv_out") or cfg.get("scale_conv_in") or cfg.get("reinit_unet")):
        with torch.no_grad():
            if cfg.get("reinit_unet"):
                torch.manual_seed(SEED)
                for m in unet.modules():
                    if m is not unet and hasattr(m, "reset_parameters"):
                        m.reset_parameters()
        if cfg.get("fm_steps"):
            fm = foundation(unet, vae, dino, p, header["pipeline"]["dino_image_size"], cfg, ckpt, name, logfile,
                            deadline, dev)
        with torch.no_grad():
            if cfg.get("zero_conv_out"):
                unet.conv_out.weight.zero_()
                unet.conv_out.bias.zero_()
            if cfg.get("scale_conv_in"):
                unet.conv_in.weight.div_(common.x0_coefficients(common.TIMESTEP)[1])
        unet.save_pretrained(base_dir / "unet", safe_serialization=True)  # the base the pack merges onto
    pools = [dict(hr=small["hr"], lr=small["train"]), dict(hr=large["hr"], lr=large["train"])]
    vsr = dict(hr=val["hr"], lr={c: val[c] for c in ("realistic", "clean")})
    bicubic = train.bicubic_psnr_y(val)
    log(f"validation bicubic PSNR-Y {bicubic}", logfile)

    pu, pv = stage2_sr.add_lora(unet, vae, SEED, quant_as_mean_scale=False, rank_unet=cfg["rank_unet"],
                                rank_vae=cfg["rank_vae"], decoder=cfg["decoder"])
    if cfg.get("freeze_vae"):
        pv.requires_grad_(False)
    s = stage2_sr.stage(unet, vae, dino, pools, vsr, header["pipeline"]["dino_image_size"], cfg["steps"], dev,
                        lr=cfg["lr"], grad_w=cfg["grad_w"], lat_w=0.0, name=name, validate_first=True,
                        large_every=cfg["large_every"], batch_large=cfg["batch_large"], val_every=cfg["val_every"],
                        gmsd_w=cfg.get("gmsd_w", 0.0))
    s.average = cfg.get("average", 0.0)
    if cfg.get("out_lr_scale") or cfg.get("unet_lr_scale"):
        c1, c2 = common.x0_coefficients(common.TIMESTEP)
        scaled = unet.parameters() if cfg.get("unet_lr_scale") else unet.conv_out.parameters()
        s.lr_scale = {id(q): c2 / c1 for q in scaled if q.requires_grad}
    if cfg.get("old_lr_scale"):  # the base's own U-Net weights move slower than the new resnets (deepen.py)
        for n, q in unet.named_parameters():
            if q.requires_grad and not deepen.is_new(n, unet.config.layers_per_block, cfg["deepen"]):
                s.lr_scale[id(q)] = s.lr_scale.get(id(q), 1.0) * cfg["old_lr_scale"]
    try:
        rep = loop.run(s, ckpt, SEED + 1, logfile, deadline=deadline)
    except loop.Interrupted as e:
        if not args.pack_when_stopped:
            log(f"interrupted in stage {e}: continue with --resume", logfile)
            sys.exit(3)
        rep = loop.restore_best(s, ckpt, logfile)
    if not cfg.get("pack", True):  # a diagnostic round (17, 20-23)
        log(f"done: a diagnostic round (not packed), kept step {rep['best_step']}", logfile)
        return
    export.save_demo(base_dir, demo_dir, pu, pv)
    if args.unet_lora_strength != 1.0:
        export.scale_lora(demo_dir / "unet_lora", args.unet_lora_strength)
    cli = train.find_cli(args.cli)
    rep.update(base_sha256=sha, round=args.round, **cfg, fm=fm, val_bicubic_psnr_y=bicubic,
               unet_lora_strength=args.unet_lora_strength,
               threads=torch.get_num_threads(), device=str(dev), versions=common.PINNED,
               pack_bytes=export.pack(cli, demo_dir, args.model))
    suffix = "" if args.unet_lora_strength == 1.0 else f"-s{args.unet_lora_strength:g}"
    (out / f"{name}{suffix}.json").write_text(json.dumps(rep, indent=2) + "\n")
    ran = rep["steps"] if rep.get("stopped_at") is None else f"{rep['stopped_at']} of {rep['steps']}"
    log(f"done: {ran} steps in {rep['minutes']:.1f} min, kept step {rep['best_step']}; {args.model}", logfile)


if __name__ == "__main__":
    main()
