#!/usr/bin/env bash
# The project's one test command: formatting, lints, every test natively, then the same tests
# cross-built for aarch64 and run under qemu-user (scripts/test-aarch64.sh installs the target,
# Debian's cross linker and qemu when missing). Goldens are committed under tests/data, so no
# Python or PyTorch is needed here.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked
echo "== aarch64 (Jetson CPU) under qemu-user"
./scripts/test-aarch64.sh
echo "== all checks passed"
