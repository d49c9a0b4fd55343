//! Self-tests of the CPU execution harness (kernels/harness/): planted bugs that it must catch
//! (missing barrier, out-of-bounds write, divergent barrier, write to frozen weights, races
//! between a block's threads), probes of what it must emulate exactly (poisoned shared memory,
//! warp shuffles / votes / reductions with a partial warp, binary16 conversions, per-thread
//! slots), its geometry checks, and its speed. The kernels are in kernels/harness/selftest.cu
//! (compiled into the harness only, never by NVRTC).
#![cfg(feature = "cuda-sim")]

use f2idiff::backend::cuda::sim::{SimBuffer, SimExecutor};
use f2idiff::backend::cuda::{Arg, Executor, Launch};
use f2idiff::error::{Error, Result};
use std::time::Instant;

unsafe extern "C" {
    fn f2i_sim_half_to_float(h: u16) -> f32;
    fn f2i_sim_float_to_half(f: f32) -> u16;
}

/// Both schedules, seeded random order within every barrier phase.
fn checked() -> SimExecutor {
    SimExecutor::default()
}

/// Both schedules, threads reversed within every phase (seed 0).
fn checked_reverse() -> SimExecutor {
    SimExecutor {
        check_schedules: true,
        seed: 0,
        ..SimExecutor::default()
    }
}

/// One run, schedule A only.
fn single() -> SimExecutor {
    SimExecutor {
        check_schedules: false,
        seed: 0,
        ..SimExecutor::default()
    }
}

fn geom(grid: [u32; 3], block: [u32; 3], shared_bytes: u32) -> Launch {
    Launch {
        grid,
        block,
        shared_bytes,
    }
}

fn upload<T: Copy>(e: &SimExecutor, data: &[T]) -> SimBuffer {
    let bytes = std::mem::size_of_val(data);
    let buf = e.alloc(bytes).expect("harness alloc");
    // SAFETY: plain-old-data slice viewed as bytes.
    let raw = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, bytes) };
    e.copy_to_device(e.ptr(&buf), raw).expect("upload");
    buf
}

fn download<T: Copy + Default>(e: &SimExecutor, buf: &SimBuffer, n: usize) -> Vec<T> {
    let mut out = vec![T::default(); n];
    // SAFETY: plain-old-data slice viewed as bytes.
    let raw = unsafe {
        std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, std::mem::size_of_val(&out[..]))
    };
    e.copy_to_host(e.ptr(buf), raw).expect("download");
    out
}

/// The harness's message for a launch that must fail, checked to carry `status`.
fn device_error(r: Result<()>, status: u32) -> String {
    match r {
        Err(Error::Device(msg)) => {
            assert!(
                msg.contains(&format!("(harness status {status})")),
                "expected harness status {status}, got: {msg}"
            );
            msg
        }
        other => panic!("expected a device error with harness status {status}, got {other:?}"),
    }
}

const OUT_OF_BOUNDS: u32 = 4;
const BAD_GEOMETRY: u32 = 2;
const DIVERGENT_BARRIER: u32 = 3;
const SCHEDULE_MISMATCH: u32 = 5;
const UNSUPPORTED: u32 = 7;

// (1) A shared-memory reverse without its barrier is caught by the schedule check (and, run
// once, reads poison); with the barrier it passes and is exact.
#[test]
fn missing_barrier_is_caught() {
    let (blocks, threads) = (3u32, 256u32);
    let n = (blocks * threads) as usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
    for e in [checked(), checked_reverse()] {
        let xb = upload(&e, &x);
        let yb = e.alloc(n * 4).unwrap();
        let args = |with: i32| [Arg::Ptr(e.ptr(&xb)), Arg::Ptr(e.ptr(&yb)), Arg::I32(with)];
        let g = geom([blocks, 1, 1], [threads, 1, 1], 0);
        let msg = device_error(
            e.launch("selftest_reverse_f32", &g, &args(0)),
            SCHEDULE_MISMATCH,
        );
        assert!(msg.contains("byte offset"), "{msg}");
        e.launch("selftest_reverse_f32", &g, &args(1))
            .expect("with the barrier both schedules agree");
        let y: Vec<f32> = download(&e, &yb, n);
        for b in 0..blocks as usize {
            for t in 0..threads as usize {
                let want = x[b * threads as usize + threads as usize - 1 - t];
                assert_eq!(y[b * threads as usize + t].to_bits(), want.to_bits());
            }
        }
    }
    // Run once (forward): the threads that read before their partner wrote see the poison.
    let e = single();
    let xb = upload(&e, &x);
    let yb = e.alloc(n * 4).unwrap();
    let g = geom([blocks, 1, 1], [threads, 1, 1], 0);
    e.launch(
        "selftest_reverse_f32",
        &g,
        &[Arg::Ptr(e.ptr(&xb)), Arg::Ptr(e.ptr(&yb)), Arg::I32(0)],
    )
    .unwrap();
    let y: Vec<f32> = download(&e, &yb, n);
    let poisoned = y.iter().filter(|v| v.to_bits() == 0xFFFF_FFFF).count();
    assert_eq!(
        poisoned,
        n / 2,
        "thread t reads s[n-1-t] before it is written for t < n/2"
    );
}

// (2) One element past the end: a guard-page fault turned into an error, not a crash; also
// inside the < 16-byte alignment slack (found by the canaries). The harness keeps working.
#[test]
fn out_of_bounds_write_is_an_error() {
    let e = checked();
    let n = 1024usize; // 4096 bytes: the end is exactly at the guard page
    let yb = e.alloc(n * 4).unwrap();
    let msg = device_error(
        e.launch(
            "selftest_off_by_one_f32",
            &Launch::linear(n + 1, 256),
            &[Arg::Ptr(e.ptr(&yb)), Arg::I32(n as i32)],
        ),
        OUT_OF_BOUNDS,
    );
    assert!(msg.contains("0 bytes past the end of allocation"), "{msg}");
    assert!(
        msg.contains("thread (0,0,0)") && msg.contains("block (4,0,0)"),
        "{msg}"
    );
    assert!(msg.contains("out-of-bounds write"), "{msg}");

    let n = 10usize; // 40 bytes: 8 bytes of slack before the guard page
    let yb = e.alloc(n * 4).unwrap();
    let msg = device_error(
        e.launch(
            "selftest_off_by_one_f32",
            &Launch::linear(n + 1, 32),
            &[Arg::Ptr(e.ptr(&yb)), Arg::I32(n as i32)],
        ),
        OUT_OF_BOUNDS,
    );
    assert!(msg.contains("0 bytes past the end"), "{msg}");

    // Still usable afterwards.
    let yb = e.alloc(64 * 4).unwrap();
    e.launch(
        "selftest_fill_f32",
        &Launch::linear(64, 32),
        &[Arg::Ptr(e.ptr(&yb)), Arg::I32(64), Arg::F32(3.0)],
    )
    .unwrap();
    assert!(download::<f32>(&e, &yb, 64).iter().all(|&v| v == 3.0));
}

// (3) Barriers not reached by every thread are reported, never hang.
#[test]
fn divergent_barriers_are_reported() {
    let e = checked();
    let yb = e.alloc(64 * 4).unwrap();
    let y = Arg::Ptr(e.ptr(&yb));
    let g = geom([1, 1, 1], [32, 1, 1], 0);
    let msg = device_error(
        e.launch("selftest_divergent_barrier_f32", &g, &[y]),
        DIVERGENT_BARRIER,
    );
    assert!(
        msg.contains("selftest_divergent_barrier_f32")
            && msg.contains("block (0,0,0)")
            && msg.contains("f2i_syncthreads"),
        "{msg}"
    );
    let msg = device_error(
        e.launch("selftest_return_before_barrier_f32", &g, &[y, Arg::I32(20)]),
        DIVERGENT_BARRIER,
    );
    assert!(msg.contains("thread (20,0,0) returned"), "{msg}");
    // Every thread present: fine.
    e.launch("selftest_return_before_barrier_f32", &g, &[y, Arg::I32(32)])
        .unwrap();
    let msg = device_error(
        e.launch("selftest_shuffle_after_exit_f32", &g, &[y]),
        DIVERGENT_BARRIER,
    );
    assert!(msg.contains("lane 3 of warp 0"), "{msg}");
    let msg = device_error(
        e.launch("selftest_mixed_collectives_f32", &g, &[y]),
        DIVERGENT_BARRIER,
    );
    assert!(msg.contains("f2i_sim_syncwarp"), "{msg}");
    let msg = device_error(e.launch("selftest_partial_mask_f32", &g, &[y]), UNSUPPORTED);
    assert!(msg.contains("mask 0xffff"), "{msg}");
}

// (4) Unwritten shared memory (static and dynamic) reads as 0xFF bytes, in every block.
#[test]
fn shared_memory_is_poisoned_at_every_block() {
    for e in [single(), checked()] {
        let (blocks, threads) = (3usize, 64usize);
        let yb = e.alloc(blocks * 2 * threads * 4).unwrap();
        e.launch(
            "selftest_shared_poison_f32",
            &geom([blocks as u32, 1, 1], [threads as u32, 1, 1], 256),
            &[Arg::Ptr(e.ptr(&yb))],
        )
        .unwrap();
        let y: Vec<u32> = download(&e, &yb, blocks * 2 * threads);
        assert!(y.iter().all(|&v| v == 0xFFFF_FFFF), "{y:x?}");
    }
}

fn warp_probe(e: &SimExecutor, block: [u32; 3]) -> Vec<[f32; 6]> {
    let n = (block[0] * block[1] * block[2]) as usize;
    let ob = e.alloc(n * 6 * 4).unwrap();
    e.launch(
        "selftest_warp_f32",
        &geom([1, 1, 1], block, 0),
        &[Arg::Ptr(e.ptr(&ob))],
    )
    .unwrap();
    let flat: Vec<f32> = download(e, &ob, n * 6);
    flat.chunks(6).map(|c| c.try_into().unwrap()).collect()
}

// (5) Shuffles, ballot and warp reductions, with full warps (1-D and 2-D blocks) and with a
// 48-thread block whose second warp has 16 lanes.
#[test]
fn warp_collectives_are_exact() {
    let e = checked();
    for block in [[64u32, 1, 1], [16, 4, 1], [48, 1, 1]] {
        let n = (block[0] * block[1]) as usize;
        let rows = warp_probe(&e, block);
        for (i, r) in rows.iter().enumerate() {
            let (lane, base) = (i % 32, i - i % 32);
            let live = (n - base).min(32);
            let v = |l: usize| (base + l + 1) as f32;
            assert_eq!(r[0], lane as f32, "lane of thread {i}");
            assert_eq!(r[1], v(lane ^ 1), "shfl_xor of thread {i}");
            assert_eq!(r[2], v(5), "shfl of thread {i}");
            let want_ballot: u32 = (0..live)
                .filter(|l| (base + l) % 3 == 0)
                .map(|l| 1u32 << l)
                .sum();
            let live_mask = if live == 32 { !0 } else { (1u32 << live) - 1 };
            assert_eq!(
                r[3].to_bits() & live_mask,
                want_ballot,
                "ballot of thread {i}"
            );
            if live == 32 {
                assert_eq!(r[3].to_bits(), want_ballot, "ballot of thread {i}");
                let sum: f32 = (0..32).map(v).sum();
                assert_eq!(r[4], sum, "warp_sum of thread {i}");
                assert_eq!(r[5], v(31), "warp_max of thread {i}");
            } else {
                // Reading a lane that does not exist is undefined on a GPU: the harness hands
                // out poison (NaN), so a butterfly over a partial warp shows.
                assert!(r[4].is_nan(), "warp_sum over a partial warp of thread {i}");
            }
        }
    }
    // The raw gather: slots of lanes that do not exist are 0xFF bytes.
    let ob = e.alloc(48 * 32 * 4).unwrap();
    e.launch(
        "selftest_gather_f32",
        &geom([1, 1, 1], [48, 1, 1], 0),
        &[Arg::Ptr(e.ptr(&ob))],
    )
    .unwrap();
    let out: Vec<u32> = download(&e, &ob, 48 * 32);
    for i in 0..48 {
        let base = i - i % 32;
        for s in 0..32 {
            let want = if base + s < 48 {
                1000 + (base + s) as u32
            } else {
                0xFFFF_FFFF
            };
            assert_eq!(out[32 * i + s], want, "thread {i} slot {s}");
        }
    }
}

// (6) A write into a frozen (read-only) buffer is caught.
#[test]
fn write_to_frozen_buffer_is_caught() {
    let e = checked();
    let wb = upload(&e, &[1.0f32; 100]);
    e.freeze(&wb).unwrap();
    let msg = device_error(
        e.launch(
            "selftest_fill_f32",
            &Launch::linear(100, 64),
            &[Arg::Ptr(e.ptr(&wb)), Arg::I32(100), Arg::F32(2.0)],
        ),
        OUT_OF_BOUNDS,
    );
    assert!(msg.contains("read-only"), "{msg}");
    assert!(download::<f32>(&e, &wb, 100).iter().all(|&v| v == 1.0));
}

// (7) Races. Between threads of a block (read, barrier, write back): caught. Between blocks: NOT
// caught — the harness runs one block at a time, so a block's read-modify-write of a cell is
// never interleaved with another block's; the two schedules only change the order of the
// updates, which gives the same bytes whenever the sum is exact (as here) and differs for
// atomics just as much as for the race when it is not. The atomic version passes.
#[test]
fn races() {
    let e = checked();
    let v: Vec<f32> = (0..64).map(|i| (i % 7) as f32 + 1.0).collect();
    let vb = upload(&e, &v);
    // Distinct values per thread, so the last writer shows.
    let distinct: Vec<f32> = (0..64).map(|i| i as f32 + 1.0).collect();
    let db = upload(&e, &distinct);
    let msg = device_error(
        {
            let cell = upload(&e, &[0.0f32]);
            e.launch(
                "selftest_thread_race_f32",
                &geom([1, 1, 1], [64, 1, 1], 0),
                &[Arg::Ptr(e.ptr(&cell)), Arg::Ptr(e.ptr(&db))],
            )
        },
        SCHEDULE_MISMATCH,
    );
    assert!(msg.contains("byte offset"), "{msg}");
    let total: f32 = v.iter().sum();
    for atomic in [1, 0] {
        let cell = upload(&e, &[0.0f32]);
        e.launch(
            "selftest_block_race_f32",
            &geom([64, 1, 1], [32, 1, 1], 0),
            &[
                Arg::Ptr(e.ptr(&cell)),
                Arg::Ptr(e.ptr(&vb)),
                Arg::I32(atomic),
            ],
        )
        .unwrap_or_else(|err| panic!("atomic={atomic}: {err}"));
        assert_eq!(download::<f32>(&e, &cell, 1)[0], total);
    }
}

/// binary16 → f64, from the definition.
fn half_ref(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f64;
    match exp {
        0 => sign * mant * 2f64.powi(-24),
        31 if mant == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        _ => sign * (1024.0 + mant) * 2f64.powi(exp - 25),
    }
}

fn h2f(h: u16) -> f32 {
    // SAFETY: pure function of its argument.
    unsafe { f2i_sim_half_to_float(h) }
}
fn f2h(f: f32) -> u16 {
    // SAFETY: pure function of its argument.
    unsafe { f2i_sim_float_to_half(f) }
}

// (8) binary16: all 65536 values to f32 and back; float → half at every rounding boundary
// (each midpoint between adjacent halves — ties go to even — and its f32 neighbours), overflow,
// underflow, subnormals, NaN; and against the CPU's F16C instruction on a sweep of all floats.
#[test]
fn half_conversions_are_exact() {
    for h in 0..=u16::MAX {
        let f = h2f(h);
        let r = half_ref(h);
        if r.is_nan() {
            assert!(f.is_nan(), "{h:#06x}");
            assert!(
                (f2h(f) & 0x7c00) == 0x7c00 && (f2h(f) & 0x3ff) != 0,
                "NaN {h:#06x} stays NaN"
            );
            continue;
        }
        assert_eq!(f as f64, r, "half_to_float({h:#06x})");
        assert_eq!(f2h(f), h, "round trip of {h:#06x}");
    }
    for sign in [0u16, 0x8000] {
        for h in 0..0x7c00u16 {
            let (lo, hi) = (h | sign, (h + 1) | sign);
            let a = half_ref(lo);
            let b = if h + 1 == 0x7c00 {
                if sign != 0 { -65536.0 } else { 65536.0 }
            } else {
                half_ref(hi)
            };
            let mid = ((a + b) / 2.0) as f32;
            assert_eq!(mid as f64, (a + b) / 2.0, "midpoint exact in f32");
            let even = if lo & 1 == 0 { lo } else { hi };
            assert_eq!(
                f2h(mid),
                even,
                "tie {mid:e} between {lo:#06x} and {hi:#06x}"
            );
            // The f32 neighbours of the midpoint, towards each side.
            let toward_zero = f32::from_bits(mid.to_bits() - 1);
            let away = f32::from_bits(mid.to_bits() + 1);
            assert_eq!(f2h(toward_zero), lo, "just below the tie {mid:e}");
            assert_eq!(f2h(away), hi, "just above the tie {mid:e}");
        }
    }
    assert_eq!(f2h(65519.996), 0x7bff);
    assert_eq!(f2h(65520.0), 0x7c00);
    assert_eq!(f2h(-1e10), 0xfc00);
    assert_eq!(f2h(f32::MAX), 0x7c00);
    assert_eq!(f2h(f32::INFINITY), 0x7c00);
    assert_eq!(f2h(f32::NEG_INFINITY), 0xfc00);
    assert_eq!(f2h(-0.0), 0x8000);
    assert_eq!(f2h(2f32.powi(-25)), 0); // tie between 0 and the smallest subnormal → 0
    assert_eq!(f2h(f32::from_bits(2f32.powi(-25).to_bits() + 1)), 1);
    assert_eq!(f2h(3.0 * 2f32.powi(-25)), 2); // 1.5 · 2^-24: tie → even 2
    assert_eq!(f2h(3.0 * 2f32.powi(-26)), 1); // 0.75 · 2^-24 → 1
    assert_eq!(f2h(f32::MIN_POSITIVE), 0);
    assert_eq!(f2h(f32::from_bits(1)), 0);
    let nan = f2h(f32::NAN);
    assert!(nan & 0x7c00 == 0x7c00 && nan & 0x3ff != 0);

    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("f16c") {
        #[target_feature(enable = "f16c")]
        fn f16c(f: f32) -> u16 {
            use std::arch::x86_64::*;
            let r = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(f));
            _mm_cvtsi128_si32(r) as u16
        }
        let mut bits = 0u64;
        let mut count = 0u32;
        while bits <= u32::MAX as u64 {
            let f = f32::from_bits(bits as u32);
            // SAFETY: f16c support checked above.
            let want = unsafe { f16c(f) };
            let got = f2h(f);
            if f.is_nan() {
                assert!(got & 0x7c00 == 0x7c00 && got & 0x3ff != 0, "{f:?}");
            } else {
                assert_eq!(got, want, "float_to_half({f:e} = {bits:#010x})");
            }
            bits += 1021;
            count += 1;
        }
        assert!(count > 4_000_000);
    }

    // The same conversions reached from a kernel (both storage builds).
    let e = single();
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let hb = upload(&e, &all);
    let fb = e.alloc(65536 * 4).unwrap();
    let bb = e.alloc(65536 * 2).unwrap();
    for kernel in ["selftest_half_roundtrip_f16", "selftest_half_roundtrip_f32"] {
        e.launch(
            kernel,
            &Launch::linear(65536, 256),
            &[
                Arg::Ptr(e.ptr(&hb)),
                Arg::Ptr(e.ptr(&fb)),
                Arg::Ptr(e.ptr(&bb)),
                Arg::I32(65536),
            ],
        )
        .unwrap();
        let f: Vec<f32> = download(&e, &fb, 65536);
        let back: Vec<u16> = download(&e, &bb, 65536);
        for h in 0..65536usize {
            assert_eq!(f[h].to_bits(), h2f(h as u16).to_bits());
            if !f[h].is_nan() {
                assert_eq!(back[h] as usize, h);
            }
        }
    }
}

// Launch geometry and shared-memory limits.
#[test]
fn geometry_is_checked() {
    let e = checked();
    let yb = e.alloc(1024 * 4).unwrap();
    let y = [Arg::Ptr(e.ptr(&yb)), Arg::I32(1024), Arg::F32(1.0)];
    for (grid, block) in [
        ([1, 1, 1], [1025, 1, 1]),
        ([1, 1, 1], [1, 1, 65]),
        ([1, 65536, 1], [32, 1, 1]),
        ([1, 1, 65536], [32, 1, 1]),
        ([0, 1, 1], [32, 1, 1]),
        ([1, 1, 1], [32, 0, 1]),
    ] {
        let msg = device_error(
            e.launch("selftest_fill_f32", &geom(grid, block, 0), &y),
            BAD_GEOMETRY,
        );
        assert!(msg.contains("bad launch geometry"), "{msg}");
    }
    e.launch("selftest_fill_f32", &geom([1, 1, 1], [32, 32, 1], 0), &y)
        .unwrap();
    let msg = device_error(
        e.launch(
            "selftest_fill_f32",
            &geom([1, 1, 1], [32, 1, 1], 300 * 1024),
            &y,
        ),
        BAD_GEOMETRY,
    );
    assert!(msg.contains("dynamic shared memory"), "{msg}");
    // 49 KiB of static shared memory: over 48 KiB, unless the launch opted in with > 48 KiB
    // of dynamic shared memory (then up to 227 KiB in all).
    let big = [Arg::Ptr(e.ptr(&yb))];
    let msg = device_error(
        e.launch(
            "selftest_big_shared_f32",
            &geom([1, 1, 1], [32, 1, 1], 0),
            &big,
        ),
        BAD_GEOMETRY,
    );
    assert!(msg.contains("over the 49152-byte limit"), "{msg}");
    e.launch(
        "selftest_big_shared_f32",
        &geom([1, 1, 1], [32, 1, 1], 64 * 1024),
        &big,
    )
    .unwrap();
    device_error(
        e.launch(
            "selftest_big_shared_f32",
            &geom([1, 1, 1], [32, 1, 1], 180 * 1024),
            &big,
        ),
        BAD_GEOMETRY,
    );
    device_error(
        e.launch("no_such_kernel_f32", &geom([1, 1, 1], [1, 1, 1], 0), &big),
        1,
    );
}

// f2i_sim_thread_slot is NULL at every thread's start; f2i_sim_at_thread_exit runs at return.
#[test]
fn thread_slots_and_exit_hooks() {
    let e = checked();
    let (blocks, threads) = (3usize, 96usize);
    let n = blocks * threads;
    let ob = e.alloc(2 * n * 4).unwrap();
    e.launch(
        "selftest_slots_f32",
        &geom([blocks as u32, 1, 1], [threads as u32, 1, 1], 0),
        &[Arg::Ptr(e.ptr(&ob)), Arg::I32(n as i32)],
    )
    .unwrap();
    let out: Vec<f32> = download(&e, &ob, 2 * n);
    for i in 0..n {
        assert_eq!(out[i], 1.0, "slot NULL at the start of thread {i}");
        assert_eq!(out[n + i], 2.0 + (i % 5) as f32, "exit hook of thread {i}");
    }
}

// f2i_sim_fail ends a launch with its status and message; the exit hooks of the threads that
// never returned run during the clean-up (so host emulations can free per-thread state).
#[test]
fn fail_runs_pending_exit_hooks() {
    let e = checked();
    let ob = e.alloc(64 * 4).unwrap();
    let msg = device_error(
        e.launch(
            "selftest_fail_with_hooks_f32",
            &geom([1, 1, 1], [64, 1, 1], 0),
            &[Arg::Ptr(e.ptr(&ob))],
        ),
        UNSUPPORTED,
    );
    assert!(msg.contains("thread (0,0,0): planted failure"), "{msg}");
    assert!(download::<f32>(&e, &ob, 64).iter().all(|&v| v == 5.0));
}

// Launches from several OS threads at once (cargo runs tests in parallel) stay independent.
#[test]
fn concurrent_launchers() {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let e = checked();
                for k in 0..20 {
                    let n = 1000 + 37 * k;
                    let x: Vec<f32> = (0..n).map(|i| (i * (t + 1)) as f32).collect();
                    let yb = upload(&e, &x);
                    e.launch(
                        "selftest_fill_f32",
                        &Launch::linear(n / 2, 128),
                        &[
                            Arg::Ptr(e.ptr(&yb)),
                            Arg::I32((n / 2) as i32),
                            Arg::F32(t as f32),
                        ],
                    )
                    .unwrap();
                    let y: Vec<f32> = download(&e, &yb, n);
                    for i in 0..n {
                        let want = if i < n / 2 { t as f32 } else { x[i] };
                        assert_eq!(y[i], want);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

// Speed (printed; run with --nocapture): a trivial 1M-thread launch, and the cost of a fiber
// switch measured with a barrier-heavy kernel. Bounds are loose (CI machines vary).
#[test]
fn speed() {
    let e = single();
    let n = 1 << 20;
    let yb = e.alloc(n * 4).unwrap();
    let args = [Arg::Ptr(e.ptr(&yb)), Arg::I32(n as i32), Arg::F32(1.0)];
    let g = Launch::linear(n, 256);
    e.launch("selftest_fill_f32", &g, &args).unwrap();
    let t = Instant::now();
    e.launch("selftest_fill_f32", &g, &args).unwrap();
    let one = t.elapsed();
    let t = Instant::now();
    checked().launch("selftest_fill_f32", &g, &args).unwrap();
    let two = t.elapsed();

    let (blocks, threads, rounds) = (8usize, 1024usize, 100i32);
    let bb = e.alloc(blocks * threads * 4).unwrap();
    let t = Instant::now();
    e.launch(
        "selftest_barriers_f32",
        &geom([blocks as u32, 1, 1], [threads as u32, 1, 1], 0),
        &[Arg::Ptr(e.ptr(&bb)), Arg::I32(rounds)],
    )
    .unwrap();
    let bar = t.elapsed();
    // Each thread is resumed rounds + 1 times; each resumption is one context switch (a
    // blocking thread hands over to the next runnable one directly).
    let resumptions = (blocks * threads) as f64 * (rounds as f64 + 1.0);
    let per_switch_ns = bar.as_secs_f64() * 1e9 / resumptions;
    eprintln!(
        "harness speed: 1M-thread fill {:.1} ms (one schedule), {:.1} ms (checked, two); \
         {:.1} ns per thread resumption at a barrier ({} in {:.1} ms)",
        one.as_secs_f64() * 1e3,
        two.as_secs_f64() * 1e3,
        per_switch_ns,
        resumptions,
        bar.as_secs_f64() * 1e3
    );
    assert!(
        download::<f32>(&e, &bb, blocks * threads)
            .iter()
            .all(|&v| v == rounds as f32)
    );
    assert!(
        one.as_secs_f64() < 5.0,
        "a trivial 1M-thread launch took {one:?}"
    );
    assert!(per_switch_ns < 2000.0, "{per_switch_ns} ns per switch");
}
