"""Pieces shared by the calib/reference golden generators: the pinned reference versions (the
same as requirements.txt) and the fan-in rule for weight scales."""

import math
import sys

PINNED = {
    "torch": "2.15.0",
    "diffusers": "0.42.1",
    "transformers": "5.24.0",
    "peft": "0.21.2",
    "safetensors": "0.8.0",
}


def check_versions():
    """Stops with a message unless the installed reference stack is the pinned one."""
    import diffusers
    import peft
    import safetensors
    import torch
    import transformers

    have = {
        "torch": torch.__version__.split("+")[0],
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
    }
    bad = {k: (have[k], v) for k, v in PINNED.items() if have[k] != v}
    if bad:
        sys.exit(f"wrong reference versions (have, want): {bad}; see calib/reference/requirements.txt")


def fan_in(shape):
    return max(1, math.prod(shape[1:])) if len(shape) > 1 else max(1, shape[0])
