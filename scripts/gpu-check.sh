#!/usr/bin/env bash
# The GPU check (shared/gpu/README.md), in two halves:
#
#   scripts/gpu-check.sh --build        on our machine (Rust, no GPU): builds the GPU test
#                                       executables, the release CLI and sm_90 cubins into .gpu/
#   scripts/gpu-check.sh --run OUT_DIR  on the GPU machine (no Rust, no network), in one go of
#                                       at most ~8 minutes: the card and driver, which libcuda /
#                                       libnvrtc load, every `cuda_*` test executable with
#                                       F2I_REQUIRE_GPU=1 (a skip is a failure there), the CLI end
#                                       to end on CUDA vs the CPU; writes OUT_DIR/gpu-check.log
#                                       and OUT_DIR/summary.txt and prints the table last.
#
# .gpu/ is ignored by git: hand it to the GPU machine explicitly (the device tool's `carry`).
# Environment (--build): GPU_CHECK_FEATURES (default "cuda,cuda-sim": the kernel tests are
# gated on cuda-sim, whose harness they compare against; on the GPU machine F2I_SKIP_SIM=1
# skips the harness half), GPU_CHECK_ARCH (default sm_90).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
G=.gpu

usage() {
    echo "usage: $0 --build | --run OUT_DIR" >&2
    exit 2
}

build() {
    set -e
    local features="${GPU_CHECK_FEATURES:-cuda,cuda-sim}"
    local arch="${GPU_CHECK_ARCH:-sm_90}"
    rm -rf "$G"
    mkdir -p "$G/tests" "$G/kernels"
    local exclude
    exclude="$(git rev-parse --git-path info/exclude 2> /dev/null || true)"
    if [[ -n "$exclude" ]] && ! grep -qx '.gpu/' "$exclude" 2> /dev/null; then
        mkdir -p "$(dirname "$exclude")"
        echo '.gpu/' >> "$exclude"
    fi

    echo "gpu-check --build: test executables (features $features)" >&2
    cargo test --release --locked --features "$features" --no-run --message-format=json \
        > "$G/cargo-test.json"
    # Every integration test executable whose target name starts with cuda_.
    python3 - "$G/cargo-test.json" "$G/tests" <<'PY'
import json, shutil, sys, os
out = sys.argv[2]
n = 0
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if "test" in t["kind"] and t["name"].startswith("cuda_"):
        shutil.copy2(m["executable"], os.path.join(out, t["name"]))
        n += 1
        print(f"  {t['name']}", file=sys.stderr)
if n == 0:
    print("  (no cuda_* test executables)", file=sys.stderr)
PY

    echo "gpu-check --build: release CLI" >&2
    cargo build --release --locked --features "$features" --bin f2idiff
    cp target/release/f2idiff "$G/f2idiff"

    echo "gpu-check --build: precompiled kernels for $arch" >&2
    eval "$(bash scripts/cuda-toolchain.sh)"
    F2I_NVRTC_PATH="$NVRTC" LD_LIBRARY_PATH="$NVRTC_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$G/f2idiff" kernels build --arch "$arch" -o "$G/kernels" > "$G/kernels-build.log"

    # ---- benches (issue #12 "Measure"; scripts/bench-compare.sh, benches/cuda_kernels.rs) ----
    # The per-kernel criterion bench, and the pinned diffusers/peft wheels the PyTorch baseline
    # needs there (the GPU machine has torch and transformers but not these, and no network).
    echo "gpu-check --build: cuda_kernels bench, diffusers/peft wheels" >&2
    mkdir -p "$G/benches" "$G/wheels"
    cargo bench --locked --features "$features" --bench cuda_kernels --no-run \
        --message-format=json > "$G/cargo-bench.json"
    python3 - "$G/cargo-bench.json" "$G/benches" << 'PY'
import json, shutil, sys, os
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        shutil.copy2(m["executable"], os.path.join(sys.argv[2], m["target"]["name"]))
        print(f"  {m['target']['name']}", file=sys.stderr)
PY
    if ! python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        diffusers==0.42.1 peft==0.21.2 -d "$G/wheels" >&2; then
        echo "gpu-check --build: WARNING: wheels not downloaded: the PyTorch baseline will fail there" >&2
    fi
    # ---- end benches ----

    # Frames in device memory from C++ (issue #13): c_examples/camera_loop.cpp against the
    # release library, found next to it at run time.
    echo "gpu-check --build: camera_loop (C++, device memory) against the release library" >&2
    cargo build --release --locked --features "$features" --lib
    cp target/release/libf2idiff.so "$G/libf2idiff.so"
    c++ -std=c++17 -O2 -Iinclude -Ic_examples c_examples/camera_loop.cpp -o "$G/camera_loop" \
        -L"$G" -lf2idiff -Wl,-rpath,'$ORIGIN' -ldl -lpthread

    # Debug info is dead weight on the way to the GPU machine (64 MiB for everything).
    if command -v strip > /dev/null; then
        strip --strip-debug "$G/f2idiff" "$G"/tests/* "$G"/benches/* "$G/camera_loop" \
            "$G/libf2idiff.so" 2> /dev/null || true
    fi
    {
        echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
        echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), features $features, kernels $arch"
        echo "manifest_dir $root"
    } > "$G/BUILD"
    cat "$G/BUILD"
    # The working tree (~27 MB) and .gpu/ must fit 64 MiB together: the executables travel
    # compressed (about a third of their size) and --run unpacks them.
    tar -czf "$G/bin.tar.gz" -C "$G" f2idiff tests benches camera_loop libf2idiff.so
    rm -rf "$G/f2idiff" "$G/tests" "$G/benches" "$G/camera_loop" "$G/libf2idiff.so"
    du -sh "$G" | awk '{print "gpu-check --build: " $2 " is " $1 " (carry it to the GPU machine)"}'
}

# ---------------------------------------------------------------------------------------------

run() {
    local out="$1"
    mkdir -p "$out"
    out="$(cd "$out" && pwd)"
    local log="$out/gpu-check.log"
    local table="$out/summary.txt"
    : > "$log"
    : > "$table.rows"
    local budget="${GPU_CHECK_BUDGET_S:-470}"
    local start=$SECONDS
    local tmp
    tmp="$(mktemp -d)"
    : > "$tmp/statuses"

    if [[ ! -x "$G/f2idiff" && -f "$G/bin.tar.gz" ]]; then
        tar -xzf "$G/bin.tar.gz" -C "$G"
    fi
    if [[ ! -x "$G/f2idiff" ]]; then
        echo "gpu-check: $G/f2idiff missing: run '$0 --build' first and carry $G" | tee -a "$log" >&2
        exit 1
    fi

    # row STEP STATUS SECONDS NOTE
    row() {
        printf '%-34s %-5s %6s  %s\n' "$1" "$2" "$3" "$4" >> "$table.rows"
        echo "$2" >> "$tmp/statuses"
    }
    # step NAME LIMIT_S CMD...: runs CMD under timeout (clipped to what is left of the budget),
    # logs its output; sets STEP_RC, STEP_S and STEP_OUT (a file with the output).
    step() {
        local name="$1" limit="$2"
        shift 2
        local left=$((budget - (SECONDS - start)))
        if ((left < 10)); then
            STEP_RC=124 STEP_S=0
            STEP_OUT="$tmp/empty"
            : > "$STEP_OUT"
            echo "=== $name: not run (time budget spent)" >> "$log"
            return
        fi
        ((limit > left)) && limit=$left
        STEP_OUT="$tmp/out.$RANDOM"
        echo "=== $name (limit ${limit}s): $*" >> "$log"
        local t0=$SECONDS
        timeout -k 5 "$limit" "$@" > "$STEP_OUT" 2>&1
        STEP_RC=$?
        STEP_S=$((SECONDS - t0))
        cat "$STEP_OUT" >> "$log"
        echo "=== $name: exit $STEP_RC after ${STEP_S}s" >> "$log"
        echo "gpu-check: $name: exit $STEP_RC after ${STEP_S}s" >&2
    }
    status_of() { # rc -> PASS / FAIL / TIME
        case "$1" in 0) echo PASS ;; 124 | 137) echo TIME ;; *) echo FAIL ;; esac
    }

    {
        echo "gpu-check --run on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        cat "$G/BUILD" 2> /dev/null
    } >> "$log"

    # Test executables read their data from the source folder they were built in
    # (CARGO_MANIFEST_DIR); point that path at this copy when it is elsewhere.
    local built_in
    built_in="$(sed -n 's/^manifest_dir //p' "$G/BUILD" 2> /dev/null)"
    if [[ -n "$built_in" && "$built_in" != "$root" && ! -e "$built_in" ]]; then
        if mkdir -p "$(dirname "$built_in")" 2> /dev/null && ln -s "$root" "$built_in" 2> /dev/null; then
            echo "linked $built_in -> $root (the tests' CARGO_MANIFEST_DIR)" >> "$log"
        else
            echo "cannot link $built_in -> $root: tests reading data by absolute path may fail" >> "$log"
        fi
    fi

    # 1. The card and the driver.
    step "nvidia-smi" 30 nvidia-smi -L
    local card
    card="$(head -1 "$STEP_OUT")"
    step "nvidia-smi query" 30 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
    local driver
    driver="$(head -1 "$STEP_OUT")"
    row "card" "$(status_of "$STEP_RC")" "$STEP_S" "${card:-?} | ${driver:-?}"

    # 2. Which libcuda / libnvrtc the loader finds (no F2I_NVRTC_PATH: what a user gets).
    step "kernels info" 60 env -u F2I_NVRTC_PATH -u F2I_KERNEL_DIR "$G/f2idiff" kernels info --kernels "$G/kernels"
    row "kernels info" "$(status_of "$STEP_RC")" "$STEP_S" \
        "$(grep -E '^(libcuda|libnvrtc):' "$STEP_OUT" | sed 's/ (archs.*//' | tr '\n' ';' | cut -c1-150)"

    # NVRTC not on the loader's path: look where CUDA toolkits and PyTorch's wheels keep it,
    # so the NVRTC half of the tests still runs (and say so in the table).
    if ! grep -q '^libnvrtc: /' "$STEP_OUT"; then
        local found
        found="$(
            {
                ls /usr/local/cuda*/lib64/libnvrtc.so.1[0-9] /usr/local/cuda*/targets/*/lib/libnvrtc.so.1[0-9] 2> /dev/null
                python3 - 2> /dev/null << 'PY'
import glob, os, site
dirs = site.getsitepackages() + [site.getusersitepackages()]
for d in dirs:
    for f in sorted(glob.glob(os.path.join(d, "nvidia", "**", "libnvrtc.so.1[0-9]"), recursive=True)):
        print(f)
PY
            } | head -1
        )"
        if [[ -n "$found" ]]; then
            export F2I_NVRTC_PATH="$found"
            export LD_LIBRARY_PATH="$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            step "kernels info (F2I_NVRTC_PATH)" 60 "$G/f2idiff" kernels info
            row "nvrtc fallback" "$(status_of "$STEP_RC")" "$STEP_S" "not on the loader path; using $found"
        else
            row "nvrtc" "FAIL" 0 "no libnvrtc found (loader path, /usr/local/cuda*, python wheels)"
        fi
    fi

    # 3. The GPU tests. cuda_device first, with no kernel folder and an empty cache (NVRTC of
    #    this machine compiles); the rest from the precompiled cubins.
    local t
    local tests=()
    if [[ -x "$G/tests/cuda_device" ]]; then tests+=("$G/tests/cuda_device"); fi
    for t in "$G"/tests/cuda_*; do
        [[ -x "$t" && "$t" != "$G/tests/cuda_device" ]] && tests+=("$t")
    done
    if ((${#tests[@]} == 0)); then
        row "tests" "FAIL" 0 "no cuda_* test executables in $G/tests"
    fi
    for t in "${tests[@]}"; do
        local name
        name="$(basename "$t")"
        if [[ "$name" == cuda_device ]]; then
            step "$name" 120 env -u F2I_KERNEL_DIR F2I_KERNEL_CACHE="$tmp/cache-$name" \
                F2I_REQUIRE_GPU=1 F2I_SKIP_SIM=1 "$t"
        else
            step "$name" 240 env F2I_KERNEL_DIR="$root/$G/kernels" F2I_KERNEL_CACHE="$tmp/cache" \
                F2I_REQUIRE_GPU=1 F2I_SKIP_SIM=1 F2IDIFF_BIN="$root/$G/f2idiff" "$t"
        fi
        local result skips st
        result="$(grep -E '^test result:' "$STEP_OUT" | tail -1 | sed 's/^test result: //; s/; finished in.*//')"
        skips="$(grep -c 'skipped:' "$STEP_OUT")"
        st="$(status_of "$STEP_RC")"
        if [[ "$st" == PASS && "$skips" != 0 ]]; then
            st=FAIL
            result="$result; $skips skipped (a skip is a failure here)"
        fi
        local failed
        failed="$(grep -E '^test .* \.\.\. FAILED' "$STEP_OUT" | sed 's/^test //; s/ \.\.\. FAILED//' | head -5 | tr '\n' ' ')"
        row "$name" "$st" "$STEP_S" "${result:-no result line}${failed:+ | failed: $failed}"
    done

    # 4. The CLI end to end: --device cuda vs --device cpu on the demo model.
    local model=models/f2idiff-demo.f2i image=examples/coffee-lr.png
    if [[ -f "$model" && -f "$image" ]]; then
        mkdir -p "$tmp/cuda" "$tmp/cpu"
        step "upscale --device cuda" 120 "$G/f2idiff" upscale "$image" -o "$tmp/cuda/coffee.png" \
            -m "$model" --device cuda --kernels "$G/kernels"
        row "upscale --device cuda" "$(status_of "$STEP_RC")" "$STEP_S" \
            "$({ grep -m1 -iE '^(device|error)' "$STEP_OUT" || tail -1 "$STEP_OUT"; } | cut -c1-120)"
        step "upscale --device cpu" 180 "$G/f2idiff" upscale "$image" -o "$tmp/cpu/coffee.png" \
            -m "$model" --device cpu
        row "upscale --device cpu" "$(status_of "$STEP_RC")" "$STEP_S" \
            "$({ grep -m1 -iE '^(device|error)' "$STEP_OUT" || tail -1 "$STEP_OUT"; } | cut -c1-120)"
        if [[ -f "$tmp/cuda/coffee.png" && -f "$tmp/cpu/coffee.png" ]]; then
            cp "$tmp/cuda/coffee.png" "$out/coffee-sr-cuda.png"
            step "eval cuda vs cpu" 60 "$G/f2idiff" eval --sr "$tmp/cuda" --hr "$tmp/cpu"
            row "cuda vs cpu (PSNR/SSIM)" "$(status_of "$STEP_RC")" "$STEP_S" \
                "$(grep -iE 'psnr|mean' "$STEP_OUT" | tail -1 | cut -c1-120)"
        else
            row "cuda vs cpu" "FAIL" 0 "an upscale wrote no image"
        fi
    else
        row "upscale" "FAIL" 0 "$model or $image missing"
    fi

    # 5. Frames in device memory (issue #13): 4 NV12 frames on 4 streams by 2 engines sharing
    #    the weights, reserved arenas, each result equal to the host path; then the x4 zoom of a
    #    1000x750 region of a 4000x3000 NV12 frame with and without the host round trip.
    if [[ -x "$G/camera_loop" && -f "$model" ]]; then
        step "camera_loop" 120 env F2I_KERNEL_DIR="$root/$G/kernels" "$G/camera_loop" "$model" 4 64 48
        local st
        st="$(status_of "$STEP_RC")"
        grep -q 'skipped' "$STEP_OUT" && st=FAIL
        row "device memory: 4 frames, 2 engines" "$st" "$STEP_S" \
            "$(grep -m1 'camera_loop:' "$STEP_OUT" | cut -c1-160)"
        step "zoom 12 MP" 240 env F2I_KERNEL_DIR="$root/$G/kernels" "$G/camera_loop" "$model" --zoom 5
        row "zoom 12 MP: device vs host round trip" "$(status_of "$STEP_RC")" "$STEP_S" \
            "$({ grep -m1 '^zoom' "$STEP_OUT" || tail -1 "$STEP_OUT"; } | cut -c1-200)"
    else
        row "device memory" "FAIL" 0 "$G/camera_loop or $model missing"
    fi

    # ---- benches (issue #12 "Measure") -------------------------------------------------------
    # The tensor-core peak; f2idiff bench and the PyTorch eager baseline on the same card, one
    # after the other (scripts/bench-compare.sh: every stage at full size, f16, median of 5
    # after a warm-up); the per-kernel criterion benches with their share of the peak. JSON of
    # both engines lands in OUT_DIR.
    step "bench peak" 60 env F2I_KERNEL_DIR="$root/$G/kernels" "$G/f2idiff" bench --device cuda \
        --stage peak --runs 10
    row "bench peak (mma.sync)" "$(status_of "$STEP_RC")" "$STEP_S" \
        "$({ grep -m1 -oE '[0-9.]+ TFLOP/s' "$STEP_OUT" || tail -1 "$STEP_OUT"; } | cut -c1-120)"
    local pydir="$tmp/pylib"
    if compgen -G "$G/wheels/diffusers-*.whl" > /dev/null; then
        step "install diffusers/peft wheels" 60 python3 -m pip install -q --no-index --no-deps \
            --target "$pydir" "$G"/wheels/*.whl
        [[ $STEP_RC == 0 ]] || row "diffusers/peft wheels" "FAIL" "$STEP_S" "$(tail -1 "$STEP_OUT" | cut -c1-120)"
    else
        row "diffusers/peft wheels" "FAIL" 0 "no wheels in $G/wheels (run --build with network)"
    fi
    step "bench f2idiff vs pytorch" 300 env F2I_KERNEL_DIR="$root/$G/kernels" F2IDIFF="$G/f2idiff" \
        PYTHON=python3 PYTHONPATH="$pydir${PYTHONPATH:+:$PYTHONPATH}" BENCH_OUT="$out" \
        bash scripts/bench-compare.sh --device cuda --precision f16 --runs 5 --warmup 1
    row "bench f2idiff vs pytorch (f16)" "$(status_of "$STEP_RC")" "$STEP_S" \
        "$({ grep -E '^tile ' "$STEP_OUT" | awk '{print "tile " $4 " ms vs PyTorch " $5 " ms, ratio " $6}'; } | head -1)"
    if [[ -x "$G/benches/cuda_kernels" ]]; then
        step "bench cuda_kernels" 150 env F2I_KERNEL_DIR="$root/$G/kernels" \
            "$G/benches/cuda_kernels" --bench
        row "bench cuda_kernels" "$(status_of "$STEP_RC")" "$STEP_S" \
            "$(grep -c '^share:' "$STEP_OUT") kernels timed; $(grep -m1 -oE 'peak [0-9.]+ TFLOP/s' "$STEP_OUT")"
    else
        row "bench cuda_kernels" "FAIL" 0 "$G/benches/cuda_kernels missing"
    fi
    # ---- end benches ---------------------------------------------------------------------------

    # 5. With time left: compute-sanitizer memcheck over the op tests (out-of-bounds and
    #    misaligned accesses on the hardware; a timeout here is reported, not failed).
    if command -v compute-sanitizer > /dev/null; then
        for t in "$G"/tests/cuda_ops_*; do
            [[ -x "$t" ]] || continue
            if ((budget - (SECONDS - start) < 60)); then
                row "memcheck $(basename "$t")" "SKIP" 0 "no time left"
                continue
            fi
            step "memcheck $(basename "$t")" 150 env F2I_KERNEL_DIR="$root/$G/kernels" \
                F2I_KERNEL_CACHE="$tmp/cache" F2I_REQUIRE_GPU=1 F2I_SKIP_SIM=1 \
                compute-sanitizer --tool memcheck --error-exitcode 86 "$t"
            local st
            st="$(status_of "$STEP_RC")"
            [[ "$st" == TIME ]] && st=SKIP
            row "memcheck $(basename "$t")" "$st" "$STEP_S" \
                "$(grep -E 'ERROR SUMMARY|^test result:' "$STEP_OUT" | tail -2 | tr '\n' ' ' | cut -c1-120)"
        done
    fi

    # The table, last.
    local total=$((SECONDS - start)) fails
    fails="$(grep -cvE '^(PASS|SKIP)$' "$tmp/statuses")"
    {
        echo "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) | $(head -1 "$G/BUILD" 2> /dev/null) | ${card:-?} | driver ${driver:-?}"
        printf '%-34s %-5s %6s  %s\n' "step" "ok" "s" "result"
        cat "$table.rows"
        echo "total ${total}s; $fails step(s) not passing"
    } > "$table"
    rm -f "$table.rows"
    rm -rf "$tmp"
    cat "$table" >> "$log"
    echo
    cat "$table"
    ((fails == 0))
}

case "${1:-}" in
    --build) build ;;
    --run)
        [[ $# -eq 2 ]] || usage
        run "$2"
        ;;
    *) usage ;;
esac
