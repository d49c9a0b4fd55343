#!/usr/bin/env bash
# The CUDA compile toolchain of CI, from pinned pip wheels (no CUDA toolkit, no GPU, no driver):
# NVRTC (libnvrtc.so.12) for `f2idiff kernels build`, and ptxas for register / spill reports.
# Installs into target/cuda-toolchain (or $F2I_CUDA_TOOLCHAIN); idempotent: skips what is
# present. Wheels are taken from $F2I_WHEEL_DIR (default /tmp/cudawheels) when there, else pip's
# index. Prints the paths, as shell assignments a caller can `eval`:
#   NVRTC=.../libnvrtc.so.12  PTXAS=.../ptxas  NVRTC_LIB_DIR=...
set -euo pipefail

NVRTC_VERSION=12.9.86
NVCC_VERSION=12.9.86

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${F2I_CUDA_TOOLCHAIN:-$root/target/cuda-toolchain}"
wheels="${F2I_WHEEL_DIR:-/tmp/cudawheels}"
stamp="$dest/.installed-nvrtc$NVRTC_VERSION-nvcc$NVCC_VERSION"

nvrtc="$dest/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
ptxas="$dest/nvidia/cuda_nvcc/bin/ptxas"

if [[ -f "$stamp" && -f "$nvrtc" && -x "$ptxas" ]]; then
    echo "cuda-toolchain: present in $dest" >&2
else
    echo "cuda-toolchain: installing nvidia-cuda-nvrtc-cu12==$NVRTC_VERSION nvidia-cuda-nvcc-cu12==$NVCC_VERSION into $dest" >&2
    rm -rf "$dest"
    mkdir -p "$dest"
    find_links=()
    if [[ -d "$wheels" ]]; then
        find_links=(--find-links "$wheels")
    fi
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --target "$dest" "${find_links[@]}" \
        "nvidia-cuda-nvrtc-cu12==$NVRTC_VERSION" "nvidia-cuda-nvcc-cu12==$NVCC_VERSION" >&2
    chmod +x "$ptxas" 2>/dev/null || true
    [[ -f "$nvrtc" ]] || { echo "cuda-toolchain: $nvrtc missing after install" >&2; exit 1; }
    [[ -x "$ptxas" ]] || { echo "cuda-toolchain: $ptxas missing after install" >&2; exit 1; }
    touch "$stamp"
fi

echo "NVRTC=$nvrtc"
echo "NVRTC_LIB_DIR=$(dirname "$nvrtc")"
echo "PTXAS=$ptxas"
