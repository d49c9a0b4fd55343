#!/usr/bin/env bash
# Coverage-guided fuzzing of every untrusted surface (fuzz/, docs/SECURITY.md).
#
#   scripts/fuzz.sh --ci                  build, run each target SECONDS_PER_TARGET (20 s) from
#                                         its committed seeds, then tests/soak.rs under
#                                         AddressSanitizer from the same build; fail on any
#                                         crash or sanitizer report
#   scripts/fuzz.sh --campaign SECONDS    run each target SECONDS, one after another (or all at
#                                         once with JOBS=4), corpus kept in fuzz/corpus/<target>;
#                                         prints executions, exec/s, coverage and crashes
#   scripts/fuzz.sh --build               only build
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and a C++ compiler (libFuzzer
# is built from source by libfuzzer-sys). Does not need cargo-fuzz: it builds with the flags
# `cargo fuzz build` uses (sanitizer coverage, AddressSanitizer, debug assertions), so
# `cargo fuzz run <target>` from fuzz/ works too where cargo-fuzz is installed.
#
# Environment: TARGETS (default: all four), CARGO_TARGET_DIR (default fuzz/target),
# FUZZ_TOOLCHAIN (default nightly), SANITIZER (address | none; default address), JOBS (campaign:
# targets at once, default 1), RSS_LIMIT_MB (default 2048).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
triple="x86_64-unknown-linux-gnu"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz/target}"
targets=(${TARGETS:-pack convert capi image})
rss="${RSS_LIMIT_MB:-2048}"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

mode="${1:-}"
case "$mode" in
  --ci)
    seconds="${SECONDS_PER_TARGET:-20}"
    # No line tables in CI: a shorter build; stacks still name every function.
    export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-0}"
    ;;
  --campaign) seconds="${2:?--campaign SECONDS}" ;;
  --build) seconds=0 ;;
  *) usage ;;
esac

# Scratch files of the targets (packs, model folders), in memory where possible, removed at exit.
shm=/tmp
if [[ -d /dev/shm && -w /dev/shm ]]; then shm=/dev/shm; fi
scratch="$(mktemp -d "$shm/f2idiff-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

build() {
  local flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
  flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
  flags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
  flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
  flags+=" --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
  if [[ "${SANITIZER:-address}" == address ]]; then flags+=" -Zsanitizer=address"; fi
  local bins=()
  for t in "${targets[@]}"; do bins+=(--bin "$t"); done
  local start=$SECONDS
  # --target keeps the flags off build scripts and proc macros (as cargo-fuzz does).
  rustflags="$flags ${RUSTFLAGS:-}"
  (cd "$fuzz" && RUSTFLAGS="$rustflags" \
    cargo "+$toolchain" build --release --locked --target "$triple" "${bins[@]}")
  echo "fuzz: built ${targets[*]} in $((SECONDS - start)) s"
}

# tests/soak.rs (declared in fuzz/Cargo.toml too) with the fuzz build's flags: AddressSanitizer
# (the coverage hooks are the sanitizer runtime's no-op defaults here).
soak() {
  local start=$SECONDS
  (cd "$fuzz" && RUSTFLAGS="$rustflags" \
    cargo "+$toolchain" test --release --locked --target "$triple" --test soak)
  echo "fuzz: soak under ${SANITIZER:-address} sanitizer passed in $((SECONDS - start)) s"
}

# Runs target $1 for $2 seconds; prints one summary line; returns non-zero on a crash.
run_target() {
  local t="$1" secs="$2"
  local bin="$CARGO_TARGET_DIR/$triple/release/$t"
  local corpus="$fuzz/corpus/$t" artifacts="$fuzz/artifacts/$t/"
  local log="$fuzz/artifacts/$t.log"
  mkdir -p "$corpus" "$artifacts"
  local rc=0
  # The committed seeds are read too; new inputs go to corpus/ (not committed).
  "$bin" -max_total_time="$secs" -rss_limit_mb="$rss" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "$corpus" "$fuzz/seeds/$t" >"$log" 2>&1 || rc=$?
  local execs per_sec cov ft
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  per_sec=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  printf 'fuzz: %-8s %6ss  execs %-10s exec/s %-7s cov %-6s ft %-6s corpus %s  %s\n' \
    "$t" "$secs" "$execs" "$per_sec" "$cov" "$ft" "$(ls "$corpus" | wc -l)" \
    "$([[ $rc == 0 ]] && echo ok || echo "CRASH (rc $rc, see $log and $artifacts)")"
  if [[ $rc != 0 ]]; then grep -m1 -A25 -E 'ERROR|panicked|deadly signal' "$log" || tail -30 "$log"; fi
  return $rc
}

build
[[ "$mode" == --build ]] && exit 0

failed=0
if [[ "$mode" == --campaign && "${JOBS:-1}" -gt 1 ]]; then
  pids=()
  for t in "${targets[@]}"; do run_target "$t" "$seconds" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
else
  for t in "${targets[@]}"; do run_target "$t" "$seconds" || failed=1; done
fi
if [[ "$mode" == --ci ]]; then soak || failed=1; fi
exit $failed
