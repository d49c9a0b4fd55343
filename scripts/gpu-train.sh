#!/usr/bin/env bash
# The demo model's training on the GPU machine (calib/train/train.py --device cuda; docs/demo-model.md).
#
#   here:   bash scripts/gpu-train.sh --build      # -> .gpu-train/: wheels, photo archive, release CLI, base pack
#   there:  bash scripts/gpu-train.sh --run OUT    # device tool: carry [".gpu-train"], OUT = "$OUT"
#           ROUND=34 MINUTES=8 bash scripts/gpu-train.sh --run OUT   # a refine.py round instead (below)
#
# The GPU machine has torch and transformers but neither diffusers nor peft (their pinned wheels travel
# in .gpu-train/wheels), no network (the Debian wallpaper photos travel as one JPEG archive,
# data.export_photos) and no Rust (the release CLI travels, to pack the result there). --run trains
# STEPS (default: train.py's recipe; QUICK=1: train.py --quick's small pools, a smoke run) with
# --stop-after-minutes MINUTES, packs the FM and the demo model
# (f16) and writes them, train.json (steps, minutes, curves, validations) and the log into OUT: at most
# 8 files of at most 16 MiB come back. A run that stops early leaves no model (resume it here: not
# across machines).
#
# ROUND=N runs `refine.py --round N` instead (round 34 is round 32 sized for this machine: 1,500 steps of 64).
# Its base is the pack --build put in .gpu-train/base.f2i: BASE_COMMIT's models/f2idiff-demo.f2i, by default
# a92823a's (run 4's pack, the base of rounds 24-34). The training pools are built by 16 processes
# (--pool-workers), each process on one torch thread: 1,000 pairs of 128 px took 6.9 s on 2 processes and 9.7 s
# on 1 (start-up included; 2-core Xeon, 2026-12-05), so round 34's 96,000 should take about a minute on 16 cores.
# POOL=N draws from N pairs instead of the round's. --pack-when-stopped: a round that MINUTES stops early still
# packs its best validated step (its JSON says where it stopped). Back come refineN.f2i (tile 256, the image's
# DINOv2 context, as runs 7 and 8), refineN.json and refineN.log.
# DEVICE=cpu THREADS=2 PY=/tmp/f2i-ref-venv/bin/python QUICK=1 STEPS=3 smoke-tests the --run path here.
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
    git show "${BASE_COMMIT:-a92823a}:models/f2idiff-demo.f2i" > "$G/base.f2i"
    du -sh "$G"
    ;;
--run)
    out=${2:?usage: gpu-train.sh --run OUT}
    mkdir -p "$out"
    work=$(mktemp -d)
    device=${DEVICE:-cuda}
    py=${PY:-python3}
    if [[ $device == cuda ]]; then nvidia-smi -L | tee "$out/gpu.txt"; else echo "device $device" > "$out/gpu.txt"; fi
    "$py" -m pip install -q --no-index --no-deps --target "$work/py" "$G"/wheels/*.whl
    # the arguments train.py and refine.py share, then each one's own; the log, the report and the status after
    common=(--device "$device" --any-versions --threads "${THREADS:-16}" --photos "$G/photos.npz" --out "$work/train"
        --cli "$G/f2idiff" ${STEPS:+--steps "$STEPS"} ${QUICK:+--quick} --stop-after-minutes "${MINUTES:-7}")
    if [[ -n ${ROUND:-} ]]; then
        script=refine.py name=refine$ROUND keep=("refine$ROUND.json")
        own=(--round "$ROUND" --base "$G/base.f2i" --pool-workers 16 --model "$out/$name.f2i" --tile 256
            --dino-context image --pack-when-stopped ${POOL:+--large-pool "$POOL"})
    else
        script=train.py name=train keep=(train.json fm.f2i)
        own=(--model "$out/f2idiff-demo.f2i")
    fi
    rc=0
    PYTHONPATH="$work/py" "$py" "calib/train/$script" "${common[@]}" "${own[@]}" > "$out/$name.log" 2>&1 || rc=$?
    tail -20 "$out/$name.log"
    for f in "${keep[@]}"; do [[ -f "$work/train/$f" ]] && cp "$work/train/$f" "$out/"; done
    echo "$script exit status $rc" | tee -a "$out/gpu.txt"
    exit "$rc"
    ;;
*)
    echo "usage: $0 --build | --run OUT" >&2
    exit 2
    ;;
esac
