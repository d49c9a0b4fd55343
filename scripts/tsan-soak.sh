#!/usr/bin/env bash
# tests/soak.rs under ThreadSanitizer: the standard library rebuilt with the sanitizer
# (-Zbuild-std; uninstrumented std makes TSan report false races on Arc and channels), release
# profile, CPU only. Fails on any ThreadSanitizer report.
#
#   scripts/tsan-soak.sh [CALLS_PER_THREAD]      (default 150: 600 calls over 4 threads)
#
# Needs the nightly toolchain with its rust-src component (installed when missing). Not part of
# scripts/test.sh (CI runs the soak natively and under AddressSanitizer): about 3 min to build
# and 2-3 min to run on 2 cores. Environment: CARGO_TARGET_DIR (default target/tsan).
set -euo pipefail
cd "$(dirname "$0")/.."

calls="${1:-150}"
triple="x86_64-unknown-linux-gnu"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/tsan}"
cargo +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
rustup component list --toolchain nightly --installed | grep -q '^rust-src' ||
  rustup component add rust-src --toolchain nightly

RUSTFLAGS="-Zsanitizer=thread ${RUSTFLAGS:-}" cargo +nightly test -Zbuild-std --target "$triple" \
  --release --locked --no-default-features --test soak --no-run
bin=$(find "$CARGO_TARGET_DIR/$triple/release/deps" -maxdepth 1 -type f -executable \
  -name 'soak-*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
log="$CARGO_TARGET_DIR/tsan-soak.log"
start=$SECONDS
rc=0
F2I_SOAK_CALLS="$calls" TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
  "$bin" >"$log" 2>&1 || rc=$?
reports=$(grep -c 'WARNING: ThreadSanitizer' "$log" || true)
echo "tsan-soak: $((calls * 4)) calls in $((SECONDS - start)) s, exit $rc, $reports ThreadSanitizer reports (log: $log)"
if [[ $rc != 0 || $reports != 0 ]]; then
  grep -m3 -A30 'WARNING: ThreadSanitizer' "$log" || tail -40 "$log"
  exit 1
fi
