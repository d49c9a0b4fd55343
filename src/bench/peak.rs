//! The tensor-core peak probe (`kernels/peak.cu`): launches `peak_mma` through any
//! [`Executor`], checks the value every thread wrote, and times the launch — the reachable
//! `mma.sync` rate that each kernel's throughput is a share of.

use crate::backend::cuda::{Arg, Executor, Launch, Precision};
use crate::error::{Error, Result};
use std::time::Instant;

/// Independent accumulator chains per warp (`PEAK_CHAINS` in peak.cu).
pub const CHAINS: u64 = 8;
/// FLOPs of one `mma.m16n8k16`: 2 · 16 · 8 · 16.
pub const MMA_FLOPS: u64 = 2 * 16 * 8 * 16;
/// The constants A and B are filled with: a·b = 1/16, so each mma adds exactly 1 to every
/// element of D (16 products of 1/16), and results stay exact integers below 2^24.
pub const A: f32 = 0.25;
pub const B: f32 = 0.25;

/// One launch's geometry and length.
#[derive(Debug, Clone, Copy)]
pub struct PeakLaunch {
    pub blocks: u32,
    pub threads: u32,
    pub iters: u32,
}

impl PeakLaunch {
    pub fn warps(&self) -> u64 {
        self.blocks as u64 * (self.threads as u64 / 32)
    }
    pub fn flops(&self) -> u64 {
        self.warps() * self.iters as u64 * CHAINS * MMA_FLOPS
    }
    /// The value every thread must write: its 4 · CHAINS accumulators, each `iters`·16·a·b.
    pub fn expected(&self) -> f32 {
        (4 * CHAINS * self.iters as u64) as f32 * 16.0 * A * B
    }
}

/// Launches `peak_mma` once and returns what each thread wrote.
pub fn run<E: Executor>(exec: &E, precision: Precision, l: &PeakLaunch) -> Result<Vec<f32>> {
    if l.threads == 0 || l.threads % 32 != 0 || l.blocks == 0 {
        return Err(Error::InvalidArgument(format!(
            "peak probe: {} blocks of {} threads (need whole warps)",
            l.blocks, l.threads
        )));
    }
    let n = l.blocks as usize * l.threads as usize;
    let buf = exec.alloc(n * 4)?;
    let out = exec.ptr(&buf);
    exec.launch(
        &format!("peak_mma_{}", precision.suffix()),
        &Launch {
            grid: [l.blocks, 1, 1],
            block: [l.threads, 1, 1],
            shared_bytes: 0,
        },
        &[
            Arg::F32(A),
            Arg::F32(B),
            Arg::I32(l.iters as i32),
            Arg::Ptr(out),
        ],
    )?;
    let mut bytes = vec![0u8; n * 4];
    exec.copy_to_host(out, &mut bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Checks every thread's value; the number of threads that wrote something else.
pub fn check(l: &PeakLaunch, values: &[f32]) -> usize {
    let want = l.expected();
    values.iter().filter(|&&v| v != want).count()
}

/// The measured rate: median TFLOP/s of `runs` timed launches after one warm-up, each ended by
/// a synchronize before the clock is read. Also fails unless every thread wrote the expected
/// value.
pub fn measure<E: Executor>(exec: &E, l: &PeakLaunch, runs: usize) -> Result<PeakResult> {
    let values = run(exec, Precision::F16, l)?; // warm-up: module load, clocks up
    let wrong = check(l, &values);
    if wrong != 0 {
        return Err(Error::Device(format!(
            "peak probe: {wrong} of {} threads wrote a wrong sum (expected {})",
            values.len(),
            l.expected()
        )));
    }
    let buf = exec.alloc(l.blocks as usize * l.threads as usize * 4)?;
    let args = [
        Arg::F32(A),
        Arg::F32(B),
        Arg::I32(l.iters as i32),
        Arg::Ptr(exec.ptr(&buf)),
    ];
    let geometry = Launch {
        grid: [l.blocks, 1, 1],
        block: [l.threads, 1, 1],
        shared_bytes: 0,
    };
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        exec.synchronize()?;
        let t = Instant::now();
        exec.launch("peak_mma_f16", &geometry, &args)?;
        exec.synchronize()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let median = super::median(&mut ms);
    Ok(PeakResult {
        launch: *l,
        median_ms: median,
        tflops: l.flops() as f64 / (median * 1e-3) / 1e12,
    })
}

#[derive(Debug, Clone, Copy)]
pub struct PeakResult {
    pub launch: PeakLaunch,
    pub median_ms: f64,
    pub tflops: f64,
}
