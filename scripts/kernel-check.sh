#!/usr/bin/env bash
# CI compile check of every CUDA kernel, no GPU needed: NVRTC and ptxas from pinned pip wheels
# (scripts/cuda-toolchain.sh), `f2idiff kernels build --ptx` for each architecture, then
# `ptxas -v` on every PTX. Prints a table of registers, shared memory and spills per kernel and
# architecture; fails on any compile error and on any spill.
#   F2I_KERNEL_ARCHS  architectures (default sm_87,sm_90: Jetson Orin, H100/H200)
#   F2I_KERNEL_OUT    output folder (default target/kernels)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
archs="${F2I_KERNEL_ARCHS:-sm_87,sm_90}"
out="${F2I_KERNEL_OUT:-target/kernels}"

eval "$(bash scripts/cuda-toolchain.sh)"
export F2I_NVRTC_PATH="$NVRTC"
export LD_LIBRARY_PATH="$NVRTC_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "kernel-check: NVRTC $NVRTC"
echo "kernel-check: $("$PTXAS" --version | tail -1)"

rm -rf "$out"
if ! cargo run --locked --quiet --features "${KERNEL_CHECK_FEATURES:-cuda-sim}" --bin f2idiff -- kernels build --arch "$archs" --ptx -o "$out"; then
    echo "kernel-check: FAILED: NVRTC compilation (see above)" >&2
    exit 1
fi

shopt -s nullglob
ptxs=("$out"/*.ptx)
if (( ${#ptxs[@]} == 0 )); then
    echo "kernel-check: FAILED: no PTX written to $out" >&2
    exit 1
fi
log="$out/ptxas.log"
: > "$log"
status=0
for ptx in "${ptxs[@]}"; do
    file="$(basename "$ptx")"
    arch="${file%.ptx}"
    arch="${arch##*.}"                      # {module}.{f16|f32}.sm_XY.ptx
    echo "### $file $arch" >> "$log"
    if ! "$PTXAS" -v -arch="$arch" "$ptx" -o /dev/null >> "$log" 2>&1; then
        echo "kernel-check: ptxas FAILED on $file ($arch)" >&2
        status=1
    fi
done

python3 - "$log" <<'PY' || status=1
import re, sys
rows, errors, warnings = [], [], []
file = arch = None
cur = props = None
seen = {}
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"### (\S+) (\S+)", line)
    if m:
        file, arch = m.groups()
        cur = props = None
        seen[file] = 0
        continue
    m = re.search(r"Compiling entry function '([^']+)' for '([^']+)'", line)
    if m:
        cur = props = {"kernel": m.group(1), "arch": m.group(2), "file": file, "regs": None,
                       "smem": 0, "stack": 0, "spill_st": 0, "spill_ld": 0}
        rows.append(cur)
        seen[file] += 1
        continue
    m = re.search(r"Function properties for (\S+)", line)
    if m:
        # An entry's properties, or those of a non-inlined device function it calls (whose
        # spills count as well): a row of its own.
        if cur is None or m.group(1) != cur["kernel"]:
            props = {"kernel": m.group(1) + " (device fn)", "arch": arch, "file": file,
                     "regs": None, "smem": 0, "stack": 0, "spill_st": 0, "spill_ld": 0}
            rows.append(props)
        else:
            props = cur
        continue
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m and props:
        props["stack"], props["spill_st"], props["spill_ld"] = map(int, m.groups())
        continue
    m = re.search(r"Used (\d+) registers", line)
    if m and cur:
        cur["regs"] = int(m.group(1))
        s = re.search(r"(\d+) bytes smem", line)
        cur["smem"] = int(s.group(1)) if s else 0
        continue
    if ("error" in line.lower() or "fatal" in line.lower()) and not line.startswith("###"):
        errors.append(f"{file}: {line.strip()}")
    elif "warning" in line.lower():
        warnings.append(f"{file}: {line.strip()}")

# One row per kernel and architecture (f16 and f32 variants are distinct kernels).
uniq = {}
for r in rows:
    uniq[(r["kernel"], r["arch"])] = r
rows = sorted(uniq.values(), key=lambda r: (r["kernel"], r["arch"]))
print()
print(f"{'kernel':<34} {'arch':<6} {'regs':>5} {'smem B':>7} {'stack B':>8} {'spill st/ld B':>14}")
print("-" * 79)
for r in rows:
    spill = f"{r['spill_st']}/{r['spill_ld']}"
    flag = "  <-- SPILL" if r["spill_st"] or r["spill_ld"] else ""
    regs = r["regs"] if r["regs"] is not None else "?"
    print(f"{r['kernel']:<34} {r['arch']:<6} {regs:>5} {r['smem']:>7} {r['stack']:>8} {spill:>14}{flag}")
print("-" * 79)
no_kernels = sorted({f.rsplit(".", 3)[0] for f, n in seen.items() if n == 0})
if no_kernels:
    print("modules with no kernels (header compile-checked only): " + ", ".join(no_kernels))
for w in warnings:
    print("ptxas " + w)
spills = [r for r in rows if r["spill_st"] or r["spill_ld"]]
kernels = {r["kernel"] for r in rows if not r["kernel"].endswith("(device fn)")}
archs = sorted({r["arch"] for r in rows})
print(f"{len(kernels)} kernels x {len(archs)} architectures ({', '.join(archs)}): "
      f"{len(spills)} with spills, {len(errors)} errors, max {max([r['regs'] or 0 for r in rows] or [0])} registers")
for e in errors:
    print("ERROR " + e, file=sys.stderr)
if errors or spills:
    sys.exit(1)
PY

if (( status != 0 )); then
    echo "kernel-check: FAILED (full ptxas output: $log)" >&2
    exit 1
fi
echo "kernel-check: OK ($log)"
