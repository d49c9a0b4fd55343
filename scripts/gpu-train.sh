#!/usr/bin/env bash
# The demo model's training on the GPU machine (calib/train/train.py --device cuda; docs/demo-model.md).
#
#   here:   bash scripts/gpu-train.sh --build      # -> .gpu-train/: wheels, photo archive, release CLI
#   there:  bash scripts/gpu-train.sh --run OUT    # device tool: carry [".gpu-train"], OUT = "$OUT"
#
# The GPU machine has torch and transformers but neither diffusers nor peft (their pinned wheels travel
# in .gpu-train/wheels), no network (the Debian wallpaper photos travel as one JPEG archive,
# data.export_photos) and no Rust (the release CLI travels, to pack the result there). --run trains
# STEPS (default: train.py's recipe; QUICK=1: train.py --quick's small pools, a smoke run) with
# --stop-after-minutes MINUTES, packs the FM and the demo model
# (f16) and writes them, train.json (steps, minutes, curves, validations) and the log into OUT: at most
# 8 files of at most 16 MiB come back. A run that stops early leaves no model (resume it here: not
# across machines).
set -euo pipefail
cd "$(dirname "$0")/.."
G=.gpu-train
PYTHON=${PYTHON:-/tmp/f2i-ref-venv/bin/python}

case "${1:-}" in
--build)
    mkdir -p "$G/wheels"
    exclude=$(git rev-parse --git-path info/exclude)
    grep -qx '.gpu-train/' "$exclude" 2> /dev/null || echo '.gpu-train/' >> "$exclude"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        diffusers==0.42.1 peft==0.21.2 accelerate==1.15.0 -d "$G/wheels"
    "$PYTHON" calib/train/train.py --export-photos "$G/photos.npz"
    cargo build --release --locked
    cp target/release/f2idiff "$G/"
    du -sh "$G"
    ;;
--run)
    out=${2:?usage: gpu-train.sh --run OUT}
    mkdir -p "$out"
    work=$(mktemp -d)
    nvidia-smi -L | tee "$out/gpu.txt"
    python3 -m pip install -q --no-index --no-deps --target "$work/py" "$G"/wheels/*.whl
    rc=0
    PYTHONPATH="$work/py" python3 calib/train/train.py --device cuda --any-versions --threads 16 \
        --photos "$G/photos.npz" --out "$work/train" --cli "$G/f2idiff" --model "$out/f2idiff-demo.f2i" \
        ${STEPS:+--steps "$STEPS"} ${QUICK:+--quick} --stop-after-minutes "${MINUTES:-7}" > "$out/train.log" 2>&1 || rc=$?
    tail -20 "$out/train.log"
    for f in train.json fm.f2i; do [[ -f "$work/train/$f" ]] && cp "$work/train/$f" "$out/"; done
    echo "train.py exit status $rc" | tee -a "$out/gpu.txt"
    exit "$rc"
    ;;
*)
    echo "usage: $0 --build | --run OUT" >&2
    exit 2
    ;;
esac
