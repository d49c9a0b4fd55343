//! The tensor-core and async-copy wrappers (`kernels/common/f2i_mma.h`) on the CPU execution
//! harness, through the probe kernels of `kernels/probe.cu` and the checkers of
//! `f2idiff::backend::cuda::probe` (which scripts/gpu-check.sh runs on a real GPU too):
//!   1. mma D = A·B + C against a scalar f64 matmul (random halves, within 1e-6 of |c|+Σ|a·b|);
//!   2. fragment layouts: the probe's tables against values transcribed here from the PTX ISA
//!      manual's figures, and the registers each lane loaded and received on tagged inputs;
//!   3. ldmatrix x1/x2/x4 (+.trans) deliver the ISA layout;
//!   4. shared memory read before a cp.async wait is poison (NaN), after it the data;
//!   5. a 16×8-tile GEMM built from cp.async + ldmatrix + mma matches a scalar reference.
#![cfg(feature = "cuda-sim")]

use f2idiff::backend::cuda::probe::{self, MmaProblem};
use f2idiff::backend::cuda::sim::SimExecutor;
use f2idiff::backend::cuda::{Executor, Precision};
use std::collections::HashSet;

fn exec() -> SimExecutor {
    SimExecutor::default() // every launch under two thread schedules, outputs compared
}

/// One schedule (A): cp.async copies land at the wait that retires them, the latest legal
/// moment, so a read before the wait sees the poison.
fn exec_schedule_a() -> SimExecutor {
    SimExecutor {
        check_schedules: false,
        ..SimExecutor::default()
    }
}

fn ok(m: probe::Mismatches, what: &str) {
    if let Err(msg) = m.into_result(what) {
        panic!("{msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2a. The layout tables against the manual, independently of both the header and the formulas.

/// Entries read off the PTX ISA manual's fragment figures for mma.m16n8k16 (.f16 A/B, .f32
/// C/D): (lane, element index, row, col).
const A_FIGURE: &[(usize, usize, usize, usize)] = &[
    (0, 0, 0, 0),
    (0, 1, 0, 1),
    (1, 0, 0, 2),
    (3, 1, 0, 7),
    (4, 0, 1, 0),
    (0, 2, 8, 0),
    (0, 3, 8, 1),
    (0, 4, 0, 8),
    (0, 5, 0, 9),
    (0, 6, 8, 8),
    (0, 7, 8, 9),
    (31, 0, 7, 6),
    (31, 3, 15, 7),
    (31, 5, 7, 15),
    (31, 7, 15, 15),
    (13, 6, 11, 10),
];
const B_FIGURE: &[(usize, usize, usize, usize)] = &[
    (0, 0, 0, 0),
    (0, 1, 1, 0),
    (0, 2, 8, 0),
    (0, 3, 9, 0),
    (1, 0, 2, 0),
    (3, 3, 15, 0),
    (4, 0, 0, 1),
    (31, 0, 6, 7),
    (31, 3, 15, 7),
    (22, 2, 12, 5),
];
const CD_FIGURE: &[(usize, usize, usize, usize)] = &[
    (0, 0, 0, 0),
    (0, 1, 0, 1),
    (0, 2, 8, 0),
    (0, 3, 8, 1),
    (1, 0, 0, 2),
    (3, 1, 0, 7),
    (4, 0, 1, 0),
    (31, 0, 7, 6),
    (31, 3, 15, 7),
    (18, 2, 12, 4),
];
/// ldmatrix (non-trans): lane → (row, col) of its first element; the second is col + 1.
const LDM_FIGURE: &[(usize, usize, usize)] = &[
    (0, 0, 0),
    (1, 0, 2),
    (3, 0, 6),
    (4, 1, 0),
    (5, 1, 2),
    (30, 7, 4),
    (31, 7, 6),
];

#[test]
fn layout_tables_match_the_isa_figures() {
    for &(lane, i, r, c) in A_FIGURE {
        assert_eq!(probe::mma_a_element(lane, i), (r, c), "A: lane {lane} a{i}");
    }
    for &(lane, i, r, c) in B_FIGURE {
        assert_eq!(probe::mma_b_element(lane, i), (r, c), "B: lane {lane} b{i}");
    }
    for &(lane, i, r, c) in CD_FIGURE {
        assert_eq!(
            probe::mma_cd_element(lane, i),
            (r, c),
            "C/D: lane {lane} c{i}"
        );
    }
    for &(lane, r, c) in LDM_FIGURE {
        assert_eq!(probe::ldmatrix_element(lane, 0, false), (r, c));
        assert_eq!(probe::ldmatrix_element(lane, 1, false), (r, c + 1));
        assert_eq!(probe::ldmatrix_element(lane, 0, true), (c, r));
        assert_eq!(probe::ldmatrix_element(lane, 1, true), (c + 1, r));
    }
    // Each table covers its matrix exactly once over (lane, element).
    let cover = |f: &dyn Fn(usize, usize) -> (usize, usize), per_lane: usize, rows, cols| {
        let set: HashSet<_> = (0..32)
            .flat_map(|l| (0..per_lane).map(move |i| (l, i)))
            .map(|(l, i)| f(l, i))
            .collect();
        assert_eq!(set.len(), 32 * per_lane);
        assert!(set.iter().all(|&(r, c)| r < rows && c < cols));
    };
    cover(&probe::mma_a_element, 8, 16, 16);
    cover(&probe::mma_b_element, 4, 16, 8);
    cover(&probe::mma_cd_element, 4, 16, 8);
    cover(&|l, i| probe::ldmatrix_element(l, i, false), 2, 8, 8);
    cover(&|l, i| probe::ldmatrix_element(l, i, true), 2, 8, 8);
}

// ---------------------------------------------------------------------------------------------
// 1, 2b. mma on the harness.

#[test]
fn mma_matches_f64_matmul_and_isa_layout() {
    let e = exec();
    for precision in [Precision::F32, Precision::F16] {
        let problems = probe::mma_problems(42);
        let out = probe::run_mma(&e, precision, &problems).expect("probe_mma launch");
        ok(probe::check_mma_fragments(&problems, &out), "mma fragments");
        let (bad, worst) = probe::check_mma_result(&problems, &out, probe::MMA_TOL);
        eprintln!("mma ({precision:?}): worst error / (|c| + Σ|a·b|) = {worst:.2e}");
        ok(bad, "mma D");
    }
}

/// The emulation is sensitive to the layout: a problem whose registers are loaded in another
/// order gives a different D, which the checker reports (the probe can fail).
#[test]
fn mma_checker_rejects_a_wrong_layout() {
    let e = exec();
    let problems = probe::mma_problems(1);
    let mut out = probe::run_mma(&e, Precision::F32, &problems).expect("probe_mma launch");
    out.d.swap(0, 1); // lane 0's d0 and d1: (0,0) and (0,1)
    let (bad, _) = probe::check_mma_result(&problems, &out, probe::MMA_TOL);
    assert_eq!(bad.count, 2, "{bad:?}");
    out.frags.swap(0, 1); // lane 0's a[0] and a[1]
    assert!(!probe::check_mma_fragments(&problems, &out).is_empty());
}

/// Random halves through the harness, checked against an f64 matmul written here (not the
/// probe module's reference): relative error per element within 1e-6 of |c| + Σ|a·b|, and
/// relative L2 within 1e-6.
#[test]
fn mma_random_halves_against_scalar_f64() {
    let e = exec();
    let problems: Vec<MmaProblem> = probe::mma_problems(9)
        .into_iter()
        .filter(|p| !p.exact)
        .collect();
    let out = probe::run_mma(&e, Precision::F32, &problems).expect("probe_mma launch");
    let (mut num, mut den) = (0f64, 0f64);
    for (p, q) in problems.iter().enumerate() {
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            for i in 0..4 {
                let (r, n) = (g + 8 * (i / 2), 2 * t + i % 2); // the manual's D layout
                let mut s = q.c[r * 8 + n] as f64;
                let mut mag = s.abs();
                for k in 0..16 {
                    let prod = q.a[r * 16 + k].to_f64() * q.b[k * 8 + n].to_f64();
                    s += prod;
                    mag += prod.abs();
                }
                let got = out.d[(p * 32 + lane) * 4 + i] as f64;
                assert!(
                    (got - s).abs() <= 1e-6 * mag,
                    "problem {p} lane {lane} d{i}: {got} vs {s}"
                );
                num += (got - s).powi(2);
                den += s * s;
            }
        }
    }
    let rel = (num / den).sqrt();
    eprintln!("mma random halves: relative L2 {rel:.2e}");
    assert!(rel <= 1e-6, "relative L2 {rel:e}");
}

// ---------------------------------------------------------------------------------------------
// 3. ldmatrix.

#[test]
fn ldmatrix_delivers_the_isa_layout() {
    let e = exec();
    for precision in [Precision::F32, Precision::F16] {
        let out = probe::run_ldmatrix(&e, precision).expect("probe_ldmatrix launch");
        // Spot checks written from the manual: lane 5 of x4 gets matrix m's (1, 2), (1, 3);
        // with .trans, (2, 1) and (3, 1).
        let x4 = 2;
        for m in 0..4 {
            let r = out[(x4 * 32 + 5) * 4 + m];
            assert_eq!(r & 0xffff, probe::ldmatrix_tag(m, 1, 2) as u32);
            assert_eq!(r >> 16, probe::ldmatrix_tag(m, 1, 3) as u32);
            let rt = out[((x4 + 3) * 32 + 5) * 4 + m];
            assert_eq!(rt & 0xffff, probe::ldmatrix_tag(m, 2, 1) as u32);
            assert_eq!(rt >> 16, probe::ldmatrix_tag(m, 3, 1) as u32);
        }
        ok(probe::check_ldmatrix(&out), "ldmatrix");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. cp.async: reading before the wait shows poison, after it the data.

#[test]
fn cp_async_reads_poison_before_wait_and_data_after() {
    // Under both schedules the early reads differ (schedule B lands copies at issue): the
    // harness reports the racy probe itself as a schedule mismatch.
    let Err(err) = probe::run_cp_async(&exec(), Precision::F32) else {
        panic!("reading cp.async data before its wait must be reported");
    };
    assert!(err.to_string().contains("schedules"), "{err}");
    let e = exec_schedule_a();
    let out = probe::run_cp_async(&e, Precision::F32).expect("probe_cp_async launch");
    assert!(
        out.early.iter().all(|v| v.is_nan()),
        "read before any wait must see poison"
    );
    assert!(
        out.mid1.iter().all(|v| v.is_nan()),
        "a group wait<1> leaves pending is unread"
    );
    assert!(out.mid0.iter().all(|v| v.is_finite()));
    ok(probe::check_cp_async(&out, true), "cp.async");
}

// ---------------------------------------------------------------------------------------------
// 5. cp.async + ldmatrix + mma compose into a GEMM.

#[test]
fn tiled_gemm_from_the_wrappers_matches_scalar_reference() {
    let e = exec();
    // One 16×8 tile with one k-tile; then odd sizes: M not a multiple of 16, K ending in half a
    // k-tile (zero-filled), several tiles in N.
    for (m, n, k) in [(16, 8, 16), (16, 8, 8), (40, 24, 72), (5, 16, 120)] {
        let (d, want, mag) =
            probe::run_gemm(&e, Precision::F16, m, n, k, 3 + k as u64).expect("probe_gemm launch");
        ok(
            probe::check_gemm(&d, &want, &mag, n, 1e-5),
            &format!("gemm {m}×{n}×{k}"),
        );
    }
}

/// The whole probe as scripts/gpu-check.sh runs it on a GPU, here on the harness.
#[test]
fn probe_run_all_passes_on_the_harness() {
    // Schedule A only: the cp.async probe reads before its waits on purpose (the test above
    // shows the two-schedule check reports exactly that).
    let lines = probe::run_all(&exec_schedule_a(), Precision::F16, true).expect("probe launches");
    report(lines);
}

/// The fragment-layout probe on the real hardware: the same kernels and expected tables; the
/// harness's emulation is right only if the GPU agrees. Skips (and says so) without a GPU;
/// fails under `F2I_REQUIRE_GPU=1`.
#[cfg(feature = "cuda")]
#[test]
fn probe_run_all_passes_on_a_gpu() {
    use f2idiff::backend::cuda::device::DeviceExecutor;
    let exec = match DeviceExecutor::new(0, None) {
        Ok(e) => e,
        Err(e) if std::env::var("F2I_REQUIRE_GPU").is_ok_and(|v| v.trim() == "1") => {
            panic!("F2I_REQUIRE_GPU=1 but no usable GPU: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no GPU ({e})");
            return;
        }
    };
    eprintln!("probe on {}", exec.describe());
    report(probe::run_all(&exec, Precision::F16, false).expect("probe launches"));
}

fn report(lines: Vec<std::result::Result<String, String>>) {
    let mut failed = Vec::new();
    for l in &lines {
        match l {
            Ok(s) => eprintln!("ok   {s}"),
            Err(s) => {
                eprintln!("FAIL {s}");
                failed.push(s.clone());
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
