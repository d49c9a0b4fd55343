#!/usr/bin/env bash
# Cross-builds the crate for aarch64 (Jetson's CPU) and runs the library and the CPU-dependent
# tests under qemu-user, on the `gemm` crate (F2IDIFF_BLAS=off: a Jetson without a BLAS), then the
# kernels and the engine goldens again on Debian's arm64 OpenBLAS (what the engine picks on a Jetson
# with `libopenblas0-pthread` installed: its NEON kernels). Installs
# what a fresh Debian machine lacks: the Rust target, Debian's gcc-aarch64-linux-gnu (linker),
# qemu-user (runner) and, through dpkg's multiarch, libopenblas0-pthread:arm64 with its arm64
# C library.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
openblas=/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null ||
  [ ! -e "$openblas" ] || [ ! -e /lib/ld-linux-aarch64.so.1 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo_cmd dpkg --add-architecture arm64
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q gcc-aarch64-linux-gnu qemu-user libopenblas0-pthread:arm64
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# The programs run on the multiarch arm64 C library (libc6:arm64, which OpenBLAS's package brings)
# and its loader, /lib/ld-linux-aarch64.so.1: `-L /`. The cross toolchain's own copy
# (/usr/aarch64-linux-gnu) must not be mixed with it: its loader with the multiarch libc.so.6
# hangs at start-up (seen with Debian 12's 2.36-8cross1 and 2.36-9+deb12u14).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /"
# The CLI tests spawn the binary, which qemu-user cannot follow without binfmt_misc: they run
# natively in scripts/test.sh and skip themselves here.
# F2IDIFF_EMULATED: tests that repeat long runs repeat fewer or smaller ones (tests/determinism.rs,
# tests/half_weights.rs).
# Only the tests whose outcome can depend on the CPU run here (each costs 30-100× its native
# time under qemu): the kernels (NEON paths, half-precision widening, Winograd), every golden,
# bit-identity across thread counts, the pack's mapping and SIGBUS guard, bad input, and the C ABI
# from Rust. Tile placement (tests/tiling.rs), the concurrency soak (tests/soak.rs, natively and
# under AddressSanitizer in scripts/fuzz.sh) and the CLI / CUDA tests are
# architecture-independent and run natively in scripts/test.sh.
tests=(
  bad_input capi_rust convert_goldens determinism demo_model engine_goldens engine_realwidth
  engine_winograd fuzz_regressions half_weights manifest_reference metrics_goldens ops_goldens
  pack_format pack_lifetime pipeline_goldens
)
for t in "${tests[@]}"; do
  [ -e "tests/$t.rs" ] || { echo "scripts/test-aarch64.sh: tests/$t.rs is gone" >&2; exit 1; }
done
export F2IDIFF_SKIP_CLI="binary cannot be spawned under qemu-user" F2IDIFF_EMULATED=qemu-user
echo "aarch64: every CPU-dependent test on the gemm crate (F2IDIFF_BLAS=off)"
F2IDIFF_BLAS=off cargo test --locked --target "$target" --lib "${tests[@]/#/--test=}"
# OpenBLAS's kernels run 1.5x slower than the gemm crate's under qemu (the demo model's parity
# test, beside a training job: 340 s against 225), so its pass is the tests whose products it
# computes, less the two longest (demo_model, determinism: their code paths are these, and both
# run natively on OpenBLAS)
echo "aarch64: the kernels and the engine goldens again on the BLAS the engine finds ($openblas)"
F2IDIFF_REQUIRE_BLAS=1 cargo test --locked --target "$target" --lib \
  --test engine_goldens --test engine_winograd --test engine_realwidth --test pipeline_goldens
