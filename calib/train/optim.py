"""Optimiser and learning-rate schedule shared by the three stages: AdamW, linear warm-up, then cosine
decay to 10% over the stage's time budget (the schedule follows wall-clock progress, since each stage
runs for a fixed time rather than a fixed number of steps)."""

import math

import torch


def adamw(params, lr, weight_decay=0.0):
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)


def set_lr(opt, base_lr, step, warmup, progress):
    """progress in [0, 1]: fraction of the stage's budget used."""
    w = min(1.0, (step + 1) / warmup)
    c = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    for g in opt.param_groups:
        g["lr"] = base_lr * w * c
