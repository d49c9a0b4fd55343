"""Optimiser and learning-rate schedule shared by the three stages: AdamW, linear warm-up, then cosine
decay to 10% over the stage's time budget (the schedule follows wall-clock progress, since each stage
runs for a fixed time rather than a fixed number of steps)."""

import math

import torch


def adamw(params, lr, weight_decay=0.0):
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)


def update(opt, loss, params):
    """One optimiser step on `loss`, the gradient norm of `params` clipped at 1."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def running_mean(ema, value):
    """The loss average the stages log: 0.98 / 0.02, starting at the first value (`ema` None)."""
    return value if ema is None else 0.98 * ema + 0.02 * value


def set_lr(opt, base_lr, step, warmup, progress):
    """progress in [0, 1]: fraction of the stage's budget used."""
    w = min(1.0, (step + 1) / warmup)
    c = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    for g in opt.param_groups:
        g["lr"] = base_lr * w * c
