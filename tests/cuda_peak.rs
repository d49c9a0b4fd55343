//! The tensor-core peak probe (`kernels/peak.cu`, `f2idiff::bench::peak`) computes what it
//! claims: every thread's sum of its accumulators after a short `mma.sync` loop equals
//! CHAINS · 4 · iters · 16 · a·b exactly — so the loop cannot have been optimised away or cut
//! short — on the CPU execution harness (two thread schedules) and on a real GPU when present.
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::skip_sim;
use f2idiff::backend::cuda::sim::SimExecutor;
use f2idiff::backend::cuda::{Executor, Precision};
use f2idiff::bench::peak::{self, PeakLaunch};

fn check_sums<E: Executor>(exec: &E, launches: &[PeakLaunch]) {
    for l in launches {
        for precision in [Precision::F16, Precision::F32] {
            let values = peak::run(exec, precision, l).unwrap();
            assert_eq!(values.len(), (l.blocks * l.threads) as usize);
            let want = l.expected();
            assert_eq!(
                peak::check(l, &values),
                0,
                "{l:?} ({precision:?}): expected {want} from every thread, got e.g. {:?}",
                &values[..4]
            );
        }
    }
}

#[test]
fn peak_loop_sums_are_exact_on_the_harness() {
    if skip_sim() {
        return;
    }
    let exec = SimExecutor::default();
    let l = |blocks, threads, iters| PeakLaunch {
        blocks,
        threads,
        iters,
    };
    // iters 0 writes 0: the value comes from the loop, not from a constant.
    check_sums(&exec, &[l(1, 32, 0), l(1, 32, 1), l(2, 64, 5)]);
    assert_eq!(l(2, 64, 5).expected(), (8 * 4 * 5) as f32);
    assert_eq!(l(3, 96, 7).flops(), 3 * 3 * 7 * 8 * 4096);
}

#[test]
fn peak_geometry_without_whole_warps_is_an_error() {
    if skip_sim() {
        return;
    }
    let exec = SimExecutor::default();
    let bad = PeakLaunch {
        blocks: 1,
        threads: 48,
        iters: 1,
    };
    assert!(peak::run(&exec, Precision::F16, &bad).is_err());
}

#[cfg(feature = "cuda")]
#[test]
fn peak_loop_sums_are_exact_on_the_gpu() {
    let Some(backend) = cuda_common::gpu_backend(Precision::F16) else {
        return;
    };
    let exec = backend.executor();
    check_sums(
        exec,
        &[PeakLaunch {
            blocks: 4 * exec.info().multiprocessors.max(1) as u32,
            threads: 128,
            iters: 1000,
        }],
    );
    let r = peak::measure(
        exec,
        &PeakLaunch {
            blocks: 8 * exec.info().multiprocessors.max(1) as u32,
            threads: 128,
            iters: 256,
        },
        3,
    )
    .unwrap();
    eprintln!("peak probe on {}: {:.1} TFLOP/s", exec.describe(), r.tflops);
    assert!(r.tflops > 1.0, "{} TFLOP/s is not a tensor core", r.tflops);
}
