#!/usr/bin/env bash
# Cross-builds the crate for aarch64 (Jetson's CPU) and runs the library and the CPU-dependent
# tests under qemu-user. Installs what a fresh Debian machine lacks: the Rust target, Debian's
# gcc-aarch64-linux-gnu (linker) and qemu-user (runner).
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q gcc-aarch64-linux-gnu qemu-user
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
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
F2IDIFF_SKIP_CLI="binary cannot be spawned under qemu-user" F2IDIFF_EMULATED=qemu-user \
  cargo test --locked --target "$target" --lib "${tests[@]/#/--test=}"
