#!/usr/bin/env bash
# Installs the f2idiff C library the usual way: lib/libf2idiff.{so,a}, include/f2idiff.h (and the
# C++ wrapper f2idiff.hpp), lib/pkgconfig/f2idiff.pc. Then `pkg-config --cflags --libs f2idiff`
# or CMake's pkg_check_modules (see c_examples/CMakeLists.txt) find it.
#
#   scripts/install.sh --prefix DIR [--profile release|debug] [--no-build] [--from LIBDIR]
#
# --from takes the built libraries from LIBDIR (implies --no-build; the tests install what
# `cargo test` built, in target/debug/deps).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="" profile=release build=1 from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --from) from="$2"; build=0; shift 2 ;;
    *) echo "usage: $0 --prefix DIR [--profile release|debug] [--no-build] [--from LIBDIR]" >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] || { echo "install.sh: --prefix is required" >&2; exit 2; }

if [ "$build" = 1 ]; then
  if [ "$profile" = release ]; then cargo build --release --lib; else cargo build --lib; fi
fi
target_dir="${from:-${CARGO_TARGET_DIR:-target}/$profile}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target_dir/libf2idiff.so" "$prefix/lib/"
install -m 0644 "$target_dir/libf2idiff.a" "$prefix/lib/"
install -m 0644 include/f2idiff.h c_examples/f2idiff.hpp "$prefix/include/"
prefix_abs=$(cd "$prefix" && pwd)
sed -e "s|@PREFIX@|$prefix_abs|" -e "s|@VERSION@|$version|" scripts/f2idiff.pc.in \
  > "$prefix/lib/pkgconfig/f2idiff.pc"
echo "installed f2idiff $version into $prefix_abs"
