#!/usr/bin/env python3
"""Compile kernels/*.cu with NVRTC (no CUDA toolkit install: the pip wheels' libnvrtc and ptxas)
and assemble the PTX with `ptxas -v` for each target arch, as the CUDA backend does at run time.

Each kernel file is compiled twice (f32 storage, and f16 with -DF2I_ACT_F16=1); the headers in
kernels/common/ are handed to NVRTC in memory under the names the kernels include them by
("common/f2i_device.h", ...), so no include path exists. Prints one row per kernel and arch
(registers, shared memory, spills) and exits non-zero on any compile error, ptxas error or spill.

Usage: scripts/nvrtc_compile.py [--tools DIR] [--arch sm_87,sm_90] [--keep DIR] [FILE.cu ...]
  --tools: where the nvidia-cuda-nvrtc-cu12 / nvidia-cuda-nvcc-cu12 wheels were unzipped
           (default $F2I_CUDA_TOOLS or /tmp/cuda-tools); or --nvrtc LIB and --ptxas BIN.
"""
import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"


def load_nvrtc(path):
    lib = ctypes.CDLL(str(path))
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def check(lib, rc, what):
    if rc != 0:
        raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(rc).decode()}")


def nvrtc_ptx(lib, name, source, headers, options):
    """(ptx or None, log) of one NVRTC compilation."""
    prog = ctypes.c_void_p()
    n = len(headers)
    hdr_src = (ctypes.c_char_p * n)(*[t.encode() for _, t in headers])
    hdr_names = (ctypes.c_char_p * n)(*[k.encode() for k, _ in headers])
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), n,
                                      hdr_src, hdr_names), "nvrtcCreateProgram")
    try:
        opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        rc = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        check(lib, lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "log size")
        log = ctypes.create_string_buffer(size.value)
        check(lib, lib.nvrtcGetProgramLog(prog, log), "log")
        log = log.value.decode(errors="replace").strip()
        if rc != 0:
            return None, log
        check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "ptx size")
        ptx = ctypes.create_string_buffer(size.value)
        check(lib, lib.nvrtcGetPTX(prog, ptx), "ptx")
        return ptx.value.decode(), log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


# ptxas -v: "Compiling entry function 'x' for 'sm_90'", "N bytes stack frame, N bytes spill
# stores, N bytes spill loads", "Used N registers, ... N bytes smem ..."
RE_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+)'")
RE_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
RE_USED = re.compile(r"Used (\d+) registers")
RE_SMEM = re.compile(r"(\d+) bytes smem")


def ptxas_report(text):
    rows, cur = [], None
    for line in text.splitlines():
        m = RE_ENTRY.search(line)
        if m:
            cur = {"kernel": m.group(1), "arch": m.group(2), "regs": 0, "smem": 0, "stack": 0,
                   "spill_st": 0, "spill_ld": 0}
            rows.append(cur)
            continue
        if cur is None:
            continue
        m = RE_SPILL.search(line)
        if m:
            cur["stack"], cur["spill_st"], cur["spill_ld"] = map(int, m.groups())
        m = RE_USED.search(line)
        if m:
            cur["regs"] = int(m.group(1))
            s = RE_SMEM.search(line)
            cur["smem"] = int(s.group(1)) if s else 0
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--tools", type=Path,
                    default=Path(os.environ.get("F2I_CUDA_TOOLS", "/tmp/cuda-tools")))
    ap.add_argument("--nvrtc", type=Path)
    ap.add_argument("--ptxas", type=Path)
    ap.add_argument("--arch", default="sm_87,sm_90")
    ap.add_argument("--keep", type=Path, help="write the PTX and ptxas logs here")
    a = ap.parse_args()

    nvrtc = a.nvrtc or a.tools / "nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
    ptxas = a.ptxas or a.tools / "nvidia/cuda_nvcc/bin/ptxas"
    lib = load_nvrtc(nvrtc)
    files = a.files or sorted(KERNELS.glob("*.cu"))
    headers = [(f"common/{h.name}", h.read_text()) for h in sorted((KERNELS / "common").glob("*.h"))]
    archs = [s.strip() for s in a.arch.split(",") if s.strip()]
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)

    failures, rows = [], []
    for f in files:
        src = f.read_text()
        for suffix, defines in (("f32", []), ("f16", ["-DF2I_ACT_F16=1"])):
            for arch in archs:
                # PTX for compute_XY assembles only for sm_XY and newer: one NVRTC run per arch.
                opts = [f"--gpu-architecture=compute_{arch[3:]}", "-default-device",
                        "--std=c++17"] + defines
                tag = f"{f.name} [{suffix}, {arch}]"
                ptx, log = nvrtc_ptx(lib, f.name, src, headers, opts)
                if ptx is None:
                    failures.append(f"{tag}: NVRTC failed\n{log}")
                    continue
                if log:
                    print(f"{tag}: NVRTC log:\n{log}", file=sys.stderr)
                with tempfile.TemporaryDirectory() as tmp:
                    ptx_path = Path(tmp) / f"{f.stem}_{suffix}_{arch}.ptx"
                    ptx_path.write_text(ptx)
                    res = subprocess.run(
                        [str(ptxas), "-v", f"-arch={arch}", str(ptx_path), "-o",
                         str(Path(tmp) / "out.cubin")],
                        capture_output=True, text=True)
                    out = res.stdout + res.stderr
                    if a.keep:
                        (a.keep / ptx_path.name).write_text(ptx)
                        (a.keep / f"{ptx_path.stem}.ptxas.txt").write_text(out)
                if res.returncode != 0 or "error" in out.lower():
                    failures.append(f"{tag}: ptxas failed\n{out}")
                    continue
                for r in ptxas_report(out):
                    r["file"] = f.name
                    rows.append(r)
                    if r["spill_st"] or r["spill_ld"]:
                        failures.append(f"{tag}: {r['kernel']} spills "
                                        f"({r['spill_st']} B stores, {r['spill_ld']} B loads)")

    print(f"{'kernel':<32} {'arch':<6} {'regs':>5} {'smem B':>7} {'stack B':>8} {'spill B':>8}")
    for r in sorted(rows, key=lambda r: (r["kernel"], r["arch"])):
        print(f"{r['kernel']:<32} {r['arch']:<6} {r['regs']:>5} {r['smem']:>7} {r['stack']:>8} "
              f"{r['spill_st'] + r['spill_ld']:>8}")
    if failures:
        print("\nFAILED:", file=sys.stderr)
        for msg in failures:
            print(msg, file=sys.stderr)
        return 1
    print(f"\nok: {len(files)} files x f32/f16 x {', '.join(archs)}: {len(rows)} kernels, "
          "no errors, no spills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
