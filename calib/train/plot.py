"""Loss curves and validation scores of a training run as one SVG (no plotting library needed).

    /tmp/f2i-ref-venv/bin/python calib/train/plot.py [OUT/train.json] [docs/img/demo-training.svg]
    /tmp/f2i-ref-venv/bin/python calib/train/plot.py OUT/refine.json docs/img/demo-refine.svg
    /tmp/f2i-ref-venv/bin/python calib/train/plot.py OUT/refine24.json docs/img/demo-refine24.svg

One panel per stage: the running loss against the step; stage 2's panel (and refine.py's one panel) adds
the validation PSNR-Y (realistic and clean LR; right axis) with bicubic's as dashed lines, and marks the
step kept.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
W, H, PAD, GAP = 300, 200, 44, 24
PANELS = (("vae", "loss", "stage 0: VAE (L1 + 0.1 MSE)"), ("fm", "loss", "stage 1: FM (eps MSE)"),
          ("sr", "l1", "stage 2: one-step SR (L1)"))
REFINE_PANEL = ("refine", "l1", "run 4, refine.py: SR (L1 of the L1 + edge loss)")
COLOURS = dict(loss="#1f77b4", realistic="#d62728", clean="#2ca02c")


def scale(lo, hi, a, b):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def polyline(xs, ys, colour, dash=""):
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{extra} points="{pts}"/>'


def text(x, y, s, anchor="start", colour="#000"):
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="11" text-anchor="{anchor}" fill="{colour}">{s}</text>'


def panel(x0, st, key, title, bicubic):
    out = [f'<rect x="{x0}" y="{PAD}" width="{W}" height="{H}" fill="none" stroke="#888"/>',
           text(x0 + W / 2, PAD - 8, title, "middle")]
    steps = [p["step"] for p in st["curve"]]
    vals = [p[key] for p in st["curve"]]
    if not steps:
        return out
    fx = scale(0, max(steps), x0, x0 + W)
    lo, hi = min(vals), max(vals)
    fy = scale(lo, hi, PAD + H, PAD)
    out.append(polyline(map(fx, steps), map(fy, vals), COLOURS["loss"]))
    out += [text(x0 - 3, PAD + 4, f"{hi:.3g}", "end"), text(x0 - 3, PAD + H, f"{lo:.3g}", "end"),
            text(x0 + W, PAD + H + 14, f"{max(steps)} steps", "end")]
    vs = [v for v in st.get("validations", []) if "psnr_y_realistic" in v]
    if vs:
        conds = ("realistic", "clean")
        ys = [v[f"psnr_y_{c}"] for v in vs for c in conds] + [bicubic[c] for c in conds]
        gy = scale(min(ys) - 0.2, max(ys) + 0.2, PAD + H, PAD)
        for c in conds:
            out.append(polyline([fx(v["step"]) for v in vs], [gy(v[f"psnr_y_{c}"]) for v in vs], COLOURS[c]))
            out.append(polyline([x0, x0 + W], [gy(bicubic[c])] * 2, COLOURS[c], "4,3"))
        out += [text(x0 + W + 3, PAD + 4, f"{max(ys) + 0.2:.1f} dB"),
                text(x0 + W + 3, PAD + H, f"{min(ys) - 0.2:.1f} dB")]
        if st.get("best_step"):
            bx = fx(st["best_step"])
            out.append(f'<line x1="{bx:.1f}" y1="{PAD}" x2="{bx:.1f}" y2="{PAD + H}" stroke="#555" '
                       'stroke-dasharray="2,2"/>')
        out.append(text(x0 + 4, PAD + H + 28, "validation PSNR-Y: realistic (red), clean (green); dashed: bicubic; "
                        "dotted: kept", colour="#444"))
    return out


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "calib" / "train" / "out" / "train.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "img" / "demo-training.svg"
    rep = json.loads(src.read_text())
    panels = PANELS
    if "curve" in rep:  # refine.json: one stage, reported at the top level
        r = rep.get("round", 4)
        title = f"refine.py round {r}: SR (L1)"
        if rep.get("grad_w"):
            title = f"refine.py round {r}: SR (L1 of the L1 + edge loss)"
        elif rep.get("gmsd_w"):
            title = f"refine.py round {r}: SR (L1 of the L1 + {rep['gmsd_w']:g} GMSD loss)"
        if r == 4:
            title = REFINE_PANEL[2]
        panels = (REFINE_PANEL[:2] + (title,),)
        rep = {"refine": rep, "val_bicubic_psnr_y": rep["val_bicubic_psnr_y"]}
    width = len(panels) * (W + PAD + GAP) + PAD
    body = []
    for i, (stage, key, title) in enumerate(panels):
        body += panel(PAD + i * (W + PAD + GAP), rep[stage], key, title, rep["val_bicubic_psnr_y"])
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{PAD + H + 40}" '
           f'font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>' + "".join(body) + "</svg>\n")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(svg)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
