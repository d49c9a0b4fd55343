#!/usr/bin/env bash
# oneMKL for the CPU backend's matrix products, from its pinned pip wheel (Intel's `mkl` on PyPI,
# Intel Simplified Software License; never committed): only the libraries `libmkl_rt` loads in
# its sequential threading layer are kept (the single dynamic library, core, the LP64 interface,
# the sequential layer and the per-ISA kernels). Installs into target/mkl (or $F2I_MKL_DIR);
# idempotent. Prints the path of libmkl_rt, for F2IDIFF_BLAS.
#   scripts/mkl.sh            install if needed, print the path
set -euo pipefail

MKL_VERSION=2026.2.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${F2I_MKL_DIR:-$root/target/mkl}"
stamp="$dest/.installed-mkl$MKL_VERSION"
lib="$dest/libmkl_rt.so.3"

if [[ -f "$stamp" && -f "$lib" ]]; then
    echo "mkl: present in $dest" >&2
else
    echo "mkl: fetching mkl==$MKL_VERSION into $dest" >&2
    rm -rf "$dest"
    mkdir -p "$dest/wheel"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --dest "$dest/wheel" "mkl==$MKL_VERSION" >&2
    python3 - "$dest" "$dest"/wheel/mkl-*.whl <<'PY'
import os, re, sys, zipfile
dest, wheel = sys.argv[1], sys.argv[2]
keep = re.compile(r"/lib/libmkl_(rt|core|intel_lp64|sequential|def|mc3|avx2|avx512|avx10"
                  r"|vml_def|vml_mc3|vml_avx2|vml_avx512|vml_avx10|vml_cmpt)\.so\.\d+$")
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if keep.search(n)]
    for n in names:
        out = os.path.join(dest, os.path.basename(n))
        with z.open(n) as src, open(out, "wb") as dst:
            dst.write(src.read())
if not any(n.endswith("libmkl_rt.so.3") for n in names):
    sys.exit("mkl: libmkl_rt.so.3 not in " + wheel)
PY
    rm -rf "$dest/wheel"
    touch "$stamp"
fi
echo "$lib"
