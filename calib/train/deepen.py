"""A one-level U-Net made deeper without changing what it computes (refine.py's round 37).

diffusers' UNet2DConditionModel with one level (block_out_channels of one entry, as the demo model's since
run 5) runs conv_in, the down block's `layers_per_block` resnets, the mid block, then the up block's
`layers_per_block + 1` resnets, each of which concatenates [hidden, skip] and takes the skips in reverse order:
the last down resnet's output first, conv_in's last. `deeper(unet, extra)` returns the same network with
`extra` more resnets in each block, initialised so that its output is the input network's, bit for bit:

  down   the old resnets first, then `extra` new ones whose conv2 is zero: each returns its input, so the mid
         block sees what it saw, and each adds one more skip, a copy of the last old resnet's output
  up     `extra` new resnets first, taking those copies: conv2 zero and a 1x1 conv_shortcut that passes the
         hidden half of [hidden, skip] through and drops the skip, so each returns its hidden input; then the
         old resnets, which take the old skips in the old order

Their other weights keep diffusers' initialisation (seeded), so training grows them from zero like any
zero-initialised residual branch (conv2 gets the first gradient). A Fixup / ReZero-style start: the old model
is step 0, and the new capacity is there for training to use.
"""

import torch


def deeper(unet, extra, seed):
    """A new UNet2DConditionModel: `unet` (one level) with `extra` more resnets per block, computing the same."""
    from diffusers import UNet2DConditionModel

    cfg = dict(unet.config)
    if len(cfg["block_out_channels"]) != 1 or not isinstance(cfg["layers_per_block"], int):
        raise ValueError("deeper() handles a one-level U-Net with one layers_per_block")
    n = cfg["layers_per_block"]
    torch.manual_seed(seed)
    big = UNet2DConditionModel.from_config({**cfg, "layers_per_block": n + extra})
    old = unet.state_dict()
    new = big.state_dict()

    def moved(name):
        """The new model's name of the old model's tensor `name` (the up block's resnets shift by `extra`)."""
        head = "up_blocks.0.resnets."
        if name.startswith(head):
            j, rest = name[len(head):].split(".", 1)
            return f"{head}{int(j) + extra}.{rest}"
        return name

    for name, t in old.items():
        dst = moved(name)
        if new[dst].shape != t.shape:
            raise ValueError(f"{name} -> {dst}: {tuple(t.shape)} vs {tuple(new[dst].shape)}")
        new[dst] = t.clone()
    ch = cfg["block_out_channels"][0]
    with torch.no_grad():
        for i in range(n, n + extra):
            for k in ("weight", "bias"):
                new[f"down_blocks.0.resnets.{i}.conv2.{k}"].zero_()
        for j in range(extra):
            p = f"up_blocks.0.resnets.{j}."
            for k in ("weight", "bias"):
                new[p + f"conv2.{k}"].zero_()
            w = new[p + "conv_shortcut.weight"]  # [ch, 2 ch, 1, 1]: [hidden, skip] -> hidden
            w.zero_()
            w[:, :ch, 0, 0] = torch.eye(ch)
            new[p + "conv_shortcut.bias"].zero_()
    big.load_state_dict(new)
    return big.to(next(unet.parameters()).device).eval()


def is_new(name, layers, extra):
    """Whether parameter `name` of a deeper(unet, extra) result (`layers` = its layers_per_block) is one of the
    new resnets' rather than a weight the input network had."""
    down, up = ("down_blocks.0.resnets.", range(layers - extra, layers)), ("up_blocks.0.resnets.", range(extra))
    for head, new in (down, up):
        if name.startswith(head):
            return int(name[len(head):].split(".", 1)[0]) in new
    return False
