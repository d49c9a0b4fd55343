"""The loop every training stage runs: a fixed number of steps, resumable.

A stage is a `Stage`: its trainable parameters, the modules whose weights a checkpoint keeps, and a
`step(step, rng)` that returns the losses of one batch (`"loss"` is the one optimised). `run` adds what
is the same for all three: AdamW, linear warm-up then cosine decay to 10% *by step* (so an interrupted
run, resumed, follows the same schedule and gives the same weights), the gradient norm clipped at 1,
the loss curve, periodic validation, and checkpoints.

Checkpoints (`DIR/<stage>.pt`, written atomically): step, weights of the stage's modules, optimiser
state, the numpy and torch random states, the running losses, the curve, the validation history, the
best validated weights, and the parameters' moving average if the stage keeps one (`Stage.average`;
buffers are not averaged). Written every `ckpt_minutes`, at every validation, on SIGINT / SIGTERM, and
at the end (`done`). `run` on a stage whose checkpoint exists continues from it; a finished stage only
restores its final (or best) weights.
"""

import contextlib
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from common import log

CURVE_EVERY = 50  # steps between two points of the loss curve


class Interrupted(Exception):
    """The run was asked to stop (signal or deadline); the stage's checkpoint is on disk."""


@dataclass
class Stage:
    name: str
    steps: int
    lr: float
    warmup: int
    params: list
    modules: dict  # name -> nn.Module: what the checkpoint keeps
    step: Callable  # (step, numpy Generator) -> {"loss": tensor, other: tensor}
    weight_decay: float = 0.0
    validate: Optional[Callable] = None  # () -> {"score": float (higher = better), ...}
    val_every: int = 0
    keep_best: bool = False  # at the end, restore the weights of the best validation
    validate_first: bool = False  # validate the starting weights too (step 0): they are kept if never beaten
    train_modes: list = field(default_factory=list)  # modules set to train() while stepping
    lr_scale: dict = field(default_factory=dict)  # id(parameter) -> multiplier of the learning rate (default 1)
    # decay of an exponential moving average of `params` (0: none). With one, validation, the best weights and
    # the final weights are the average's; the optimiser steps the raw parameters
    average: float = 0.0


_stop = {"asked": False}


def _ask_stop(signum, frame):
    _stop["asked"] = True


def install_signal_handlers():
    """SIGINT / SIGTERM finish the current step, write the checkpoint, and stop."""
    signal.signal(signal.SIGINT, _ask_stop)
    signal.signal(signal.SIGTERM, _ask_stop)


def start(out, name, resume, stop_after_minutes):
    """What every training script does first: OUT created, OUT/<name>.log emptied unless resuming, the
    signal handlers installed. Returns (log file, deadline in epoch seconds or None)."""
    out.mkdir(parents=True, exist_ok=True)
    logfile = out / f"{name}.log"
    if not resume:
        logfile.write_text("")
    install_signal_handlers()
    return logfile, (time.time() + stop_after_minutes * 60 if stop_after_minutes else None)


def lr_at(base, step, warmup, steps):
    w = min(1.0, (step + 1) / warmup)
    c = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, steps))))
    return base * w * c


def _update_average(stage, st):
    """The moving average of `stage.params` after one more step; its decay ramps up over the first steps
    ((1 + n) / (10 + n)) so the early average is not dominated by the random start."""
    n = st["step"]
    d = min(stage.average, (1 + n) / (10 + n))
    with torch.no_grad():
        if st["avg"] is None:
            st["avg"] = [p.detach().clone() for p in stage.params]
        else:
            for a, p in zip(st["avg"], stage.params):
                a.mul_(d).add_(p.detach(), alpha=1 - d)


@contextlib.contextmanager
def _averaged(stage, st):
    """Inside: the parameters hold their moving average (when the stage keeps one); after: their own values."""
    if not stage.average or st["avg"] is None:
        yield
        return
    raw = [p.detach().clone() for p in stage.params]
    _assign(stage.params, st["avg"])
    try:
        yield
    finally:
        _assign(stage.params, raw)


def _assign(params, values):
    """Copies `values` into `params`, in order."""
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)


def _save(path, state):
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _weights(stage):
    return {k: {n: t.detach().clone() for n, t in m.state_dict().items()} for k, m in stage.modules.items()}


def _load_weights(stage, weights):
    for k, m in stage.modules.items():
        m.load_state_dict(weights[k])


def run(stage, ckpt_dir, seed, logfile, ckpt_minutes=5.0, deadline=None):
    """Runs (or resumes, or restores) `stage`; returns its report (steps, seconds, final losses, curve,
    validations). Raises Interrupted after checkpointing when a signal arrived or `deadline` (epoch
    seconds) passed."""
    path = Path(ckpt_dir) / f"{stage.name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = {}
    for p in stage.params:
        groups.setdefault(stage.lr_scale.get(id(p), 1.0), []).append(p)
    opt = torch.optim.AdamW([dict(params=ps, lr_scale=k) for k, ps in groups.items()], lr=stage.lr,
                            betas=(0.9, 0.99), weight_decay=stage.weight_decay)
    g = np.random.default_rng(seed)
    torch.manual_seed(seed)
    st = dict(step=0, seconds=0.0, ema=None, avg=None, curve=[], validations=[], best=None, done=False)
    if path.exists():
        saved = torch.load(path, weights_only=False)
        _load_weights(stage, saved["weights"])
        if saved["done"]:
            if stage.keep_best and saved["best"] is not None:
                _load_weights(stage, saved["best"]["weights"])
            for m in stage.train_modes:
                m.eval()
            log(f"{stage.name}: finished earlier ({saved['step']} steps), restored from {path}", logfile)
            return _report(saved)
        opt.load_state_dict(saved["opt"])
        g.bit_generator.state = saved["np_rng"]
        torch.set_rng_state(saved["torch_rng"])
        st = {k: saved.get(k, st[k]) for k in st}
        log(f"{stage.name}: resumed at step {st['step']} of {stage.steps} from {path}", logfile)

    def checkpoint(done=False):
        st["done"] = done
        _save(path, dict(st, weights=_weights(stage), opt=opt.state_dict(), np_rng=g.bit_generator.state,
                         torch_rng=torch.get_rng_state()))

    if stage.validate_first and st["step"] == 0 and not st["validations"]:
        v = dict(step=0, **stage.validate())
        st["validations"].append(v)
        st["best"] = dict(step=0, score=v["score"], weights=_weights(stage))
        log(f"{stage.name} validation at 0: " + ", ".join(f"{k} {x:.3f}" for k, x in v.items() if k != "step"),
            logfile)
    for m in stage.train_modes:
        m.train()
    t_last, t_ckpt = time.time(), time.time()
    while st["step"] < stage.steps:
        if _stop["asked"] or (deadline is not None and time.time() >= deadline):
            st["seconds"] += time.time() - t_last
            checkpoint()
            log(f"{stage.name}: stopped at step {st['step']}, checkpoint {path}", logfile)
            raise Interrupted(stage.name)
        for grp in opt.param_groups:
            grp["lr"] = lr_at(stage.lr, st["step"], stage.warmup, stage.steps) * grp.get("lr_scale", 1.0)
        losses = stage.step(st["step"], g)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(stage.params, 1.0)
        opt.step()
        if stage.average:
            _update_average(stage, st)
        vals = {k: float(v.detach()) for k, v in losses.items()}
        st["ema"] = vals if st["ema"] is None else {k: 0.98 * st["ema"][k] + 0.02 * v for k, v in vals.items()}
        st["step"] += 1
        now = time.time()
        st["seconds"] += now - t_last
        t_last = now
        step = st["step"]
        if step % CURVE_EVERY == 0:
            st["curve"].append(dict(step=step, seconds=round(st["seconds"], 1), **st["ema"]))
        if step % 500 == 0:
            desc = ", ".join(f"{k} {v:.4f}" for k, v in st["ema"].items())
            log(f"{stage.name} step {step}/{stage.steps}: {desc} ({st['seconds'] / 60:.1f} min)", logfile)
        validated = stage.validate is not None and (step % stage.val_every == 0 or step == stage.steps)
        if validated:
            with _averaged(stage, st):
                v = dict(step=step, **stage.validate())
                if st["best"] is None or v["score"] > st["best"]["score"]:
                    st["best"] = dict(step=step, score=v["score"], weights=_weights(stage))
            for m in stage.train_modes:
                m.train()
            st["validations"].append(v)
            log(f"{stage.name} validation at {step}: " + ", ".join(f"{k} {x:.3f}" for k, x in v.items()
                                                                   if k != "step"), logfile)
            t_last = time.time()  # validation time is not training time
        if validated or time.time() - t_ckpt >= ckpt_minutes * 60:
            checkpoint()
            t_ckpt = time.time()
    for m in stage.train_modes:
        m.eval()
    if stage.average and st["avg"] is not None:  # the final weights are the average
        _assign(stage.params, st["avg"])
    checkpoint(done=True)
    if stage.keep_best and st["best"] is not None:
        _load_weights(stage, st["best"]["weights"])
        log(f"{stage.name}: kept the weights of step {st['best']['step']} (best validation)", logfile)
    log(f"{stage.name} done: {st['step']} steps in {st['seconds'] / 60:.1f} min", logfile)
    return _report(st)


def restore_best(stage, ckpt_dir, logfile):
    """After `run` stopped early (Interrupted): the stage's modules get the best validated weights of its
    checkpoint (the last ones if it never validated), eval mode, and the report of the steps so far, with
    `stopped_at` (a round on the GPU machine, which must pack what it has before its time is up)."""
    saved = torch.load(Path(ckpt_dir) / f"{stage.name}.pt", weights_only=False)
    best = saved["best"]
    _load_weights(stage, saved["weights"] if best is None else best["weights"])
    for m in stage.train_modes:
        m.eval()
    kept = "its last step" if best is None else f"step {best['step']} (best validation)"
    log(f"{stage.name}: stopped at step {saved['step']} of {stage.steps}; kept the weights of {kept}", logfile)
    return dict(_report(saved), stopped_at=saved["step"])


def _report(st):
    best = st["best"]
    return dict(steps=st["step"], minutes=st["seconds"] / 60, final=st["ema"], curve=st["curve"],
                validations=st["validations"], best_step=None if best is None else best["step"])
