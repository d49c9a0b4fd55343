#!/usr/bin/env bash
# f16 pre-scales for a pack (DESIGN.md §3 "Precision on GPU"): runs `f2idiff calibrate`, which
# records every convolution's f32 output range on the CPU over the calibration photos and writes a
# copy of the pack with a power-of-two pre-scale for each layer whose range would overflow f16.
#
#   calib/f16-prescales.sh MODEL.f2i OUT.f2i [PHOTO_OR_FOLDER ...]
#
# Calibration photos should be bright and high-contrast (they find the largest activations); by
# default: the example photo and the pipeline goldens' inputs (scikit-image's bundled photos, see
# tests/data/pipeline/README.md). Any folder of photos can be given instead. No network needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 ]]; then
  echo "usage: $0 MODEL.f2i OUT.f2i [PHOTO_OR_FOLDER ...]" >&2
  exit 2
fi
model=$1 out=$2
shift 2
photos=("$@")
if [[ ${#photos[@]} -eq 0 ]]; then
  photos=(examples/coffee-lr.png tests/data/pipeline/sd_astronaut_none.lr.png
          tests/data/pipeline/eff_chelsea_wavelet.lr.png)
fi
cargo run --release --locked -- calibrate -m "$model" -o "$out" "${photos[@]}"
