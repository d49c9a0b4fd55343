#!/usr/bin/env bash
# f2idiff against PyTorch on the same stages, presets, sizes, device and threads, one after the
# other in one session: `f2idiff bench --json` and `calib/reference/bench_pytorch.py --json` with
# the same arguments, then one table with both medians and the ratio (PyTorch time / ours: > 1
# means f2idiff is faster).
#
#   scripts/bench-compare.sh [bench args...]      e.g. --device cpu --threads 2 --stage vae-enc --size 256
#
# Arguments both accept: --stage, --preset, --size, --device cpu|cuda, --precision, --threads,
# --runs, --warmup, --seed. Environment: F2IDIFF (the binary; default target/release/f2idiff),
# PYTHON (default python3; needs torch, transformers, diffusers), BENCH_OUT (folder to keep both
# JSON files in; default a temporary one).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${F2IDIFF:-target/release/f2idiff}"
py="${PYTHON:-python3}"
out="${BENCH_OUT:-$(mktemp -d)}"
mkdir -p "$out"

if [[ ! -x "$bin" ]]; then
    echo "bench-compare: $bin missing (cargo build --release, or set F2IDIFF)" >&2
    exit 1
fi
echo "bench-compare: f2idiff ($bin) $*" >&2
"$bin" bench --json "$@" > "$out/f2idiff.jsonl"
echo "bench-compare: PyTorch ($py) $*" >&2
"$py" calib/reference/bench_pytorch.py --json "$@" > "$out/pytorch.jsonl"

"$py" - "$out/f2idiff.jsonl" "$out/pytorch.jsonl" << 'PY'
import json, sys

def load(path):
    rows = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("stage") != "peak":
                rows[(r["stage"], r["preset"], r["size"])] = r
    return rows

ours, theirs = load(sys.argv[1]), load(sys.argv[2])
first = next(iter(ours.values()), None) or next(iter(theirs.values()), None)
if first is None:
    sys.exit("bench-compare: no results")
print(f"f2idiff: {next(iter(ours.values()), {}).get('device', '?')}")
print(f"PyTorch: {next(iter(theirs.values()), {}).get('device', '?')} (torch {next(iter(theirs.values()), {}).get('torch', '?')})")
print(f"{'stage':<8} {'preset':<27} {'size':>5} {'f2idiff ms':>11} {'PyTorch ms':>11} {'ratio':>6} "
      f"{'ours GF/s':>10} {'theirs GF/s':>11} {'arena MiB ours/theirs':>22} {'work MiB ours/theirs':>21}")
for key in list(ours) + [k for k in theirs if k not in ours]:
    a, b = ours.get(key), theirs.get(key)
    fmt = lambda r, k, w, p: f"{r[k]:>{w}.{p}f}" if r and r.get(k) is not None else f"{'-':>{w}}"
    ratio = f"{b['median_ms'] / a['median_ms']:>6.2f}" if a and b else f"{'-':>6}"
    arena = f"{fmt(a, 'arena_mib', 10, 1)} / {fmt(b, 'arena_mib', 9, 1)}"
    work = f"{fmt(a, 'working_mib', 9, 1)} / {fmt(b, 'working_mib', 9, 1)}"
    print(f"{key[0]:<8} {key[1]:<27} {key[2]:>5} {fmt(a, 'median_ms', 11, 2)} {fmt(b, 'median_ms', 11, 2)} "
          f"{ratio} {fmt(a, 'gflop_per_s', 10, 1)} {fmt(b, 'gflop_per_s', 11, 1)} {arena:>22} {work:>21}")
    if a and b and abs(a["gflop"] / max(b["gflop"], 1e-9) - 1) > 0.03:
        print(f"         note: counted GFLOP differ: f2idiff {a['gflop']:.1f}, PyTorch {b['gflop']:.1f}")
print("ratio = PyTorch time / f2idiff time (> 1: f2idiff faster)")
print("work = host peak resident memory while planning and running the stage, less what was resident "
      "before it (weights, inputs); arena = planned activations (ours), CUDA allocator peak (PyTorch)")
PY
echo "bench-compare: JSON in $out" >&2
