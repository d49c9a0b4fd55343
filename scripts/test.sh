#!/usr/bin/env bash
# The project's one test command: formatting, lints, every CUDA kernel compiled for sm_87 and
# sm_90 (NVRTC + ptxas from pinned pip wheels; fails on errors or register spills), every test
# natively — with the CUDA kernels run on the CPU execution harness (feature cuda-sim) against
# the CPU backend — then the CPU-dependent tests cross-built for aarch64 and run under qemu-user
# on Debian's arm64 OpenBLAS and on the gemm crate (scripts/test-aarch64.sh installs the target,
# Debian's cross linker, qemu and the arm64 OpenBLAS when missing),
# and last each fuzz target for a short fixed time from its committed seeds plus the
# concurrency soak under AddressSanitizer (scripts/fuzz.sh --ci; nightly toolchain, installed
# when missing).
# Goldens are committed under tests/data, so no Python or PyTorch is needed here; no GPU either
# (GPU tests skip and say so; scripts/gpu-check.sh runs them on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."

# Section headers carry the seconds since the start, so a slow CI run shows where its time went.
section() { echo "== [${SECONDS} s] $*"; }

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

# The C interface's tests compile C and C++ against the library, run them under valgrind, and
# build the examples with CMake from a pkg-config install (tests/capi.rs). The CPU's matrix
# products use a system OpenBLAS (pthreads build) or BLIS where one is installed
# (src/backend/cpu/kernels/blas.rs): both are installed here, the whole suite runs on the
# default choice (OpenBLAS), and the CPU kernels' tests run again on BLIS and on the gemm crate.
# On x86-64 CPUs the kernels' tests and the engine goldens run once more on oneMKL (the engine's
# first choice there), fetched from its pinned pip wheel by scripts/mkl.sh.
missing=""
for tool in cc c++ valgrind cmake pkg-config; do
  command -v "$tool" >/dev/null || missing=1
done
multiarch="$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
blis="/usr/lib/$multiarch/blis-serial/libblis.so.4"
[ -e "/usr/lib/$multiarch/openblas-pthread/libopenblas.so.0" ] && [ -e "$blis" ] || missing=1
if [ -n "$missing" ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q gcc g++ valgrind cmake pkg-config libopenblas0-pthread \
    libblis4-serial
fi

# Debian's OpenBLAS picks its kernels by CPU model and falls back to its SSE3 ones on a model it
# does not know (this project's virtualised AVX-512 Xeon, 2026-12-06); the library then takes BLIS
# instead, and the CLI names OpenBLAS's kernels itself (src/bin/f2idiff/openblas.rs). Named here
# the same way from the CPU's flags, so that the suite runs on OpenBLAS's own kernels for this CPU.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ "$(uname -m)" = x86_64 ]; then
  flags="$(grep -m1 '^flags' /proc/cpuinfo || true)"
  has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
  if has avx512f avx512cd avx512bw avx512dq avx512vl; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif has avx2 fma; then
    export OPENBLAS_CORETYPE=Haswell
  fi
fi

section "cargo fmt --check"
cargo fmt --all -- --check
section "cargo clippy --all-targets --features cuda-sim -- -D warnings"
cargo clippy --all-targets --locked --features cuda-sim -- -D warnings
section "cargo clippy (default features) -- -D warnings"
cargo clippy --lib --bins --locked -- -D warnings
section "include/f2idiff.h is what cbindgen generates from src/capi"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git diff --exit-code -- include/f2idiff.h || {
    echo "include/f2idiff.h is out of date: commit the regenerated header" >&2
    exit 1
  }
fi
section "cargo test --features cuda-sim (CUDA kernels on the CPU execution harness; system BLAS)"
F2IDIFF_REQUIRE_BLAS=1 cargo test --locked --features cuda-sim
section "the CPU kernels again on BLIS, then on the gemm crate (F2IDIFF_BLAS)"
F2IDIFF_REQUIRE_BLAS=1 F2IDIFF_BLAS="$blis" cargo test --locked --features cuda-sim --lib
F2IDIFF_BLAS=off cargo test --locked --features cuda-sim --lib
if [ "$(uname -m)" = x86_64 ]; then
  section "the CPU kernels and the engine goldens again on oneMKL (F2IDIFF_BLAS)"
  mkl="$(bash scripts/mkl.sh)"
  F2IDIFF_REQUIRE_BLAS=1 F2IDIFF_BLAS="$mkl" cargo test --locked --features cuda-sim --lib \
    --test determinism --test engine_goldens --test engine_winograd --test pipeline_goldens \
    --test demo_model
else
  section "oneMKL: skipped (not x86-64; the engine tries it on x86-64 CPUs only)"
fi
section "CUDA kernels: NVRTC + ptxas for sm_87 and sm_90, no spills (reuses the test build)"
./scripts/kernel-check.sh
section "aarch64 (Jetson CPU) under qemu-user"
env -u OPENBLAS_CORETYPE ./scripts/test-aarch64.sh
section "fuzz targets from their seeds, then the soak under AddressSanitizer"
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-15}" ./scripts/fuzz.sh --ci
section "all checks passed"
