//! `group_norm`, `layer_norm` (kernels/norm.cu) and `attention` (kernels/attention.cu) through
//! the CUDA backend on the CPU execution harness against the CPU backend, on seeded random
//! inputs. Sizes are odd and small (the harness is ~1000× slower than a GPU): groups and rows
//! that do not fill a block, head dims that are not multiples of 32, token counts that end
//! mid-tile, q/k/v as column blocks of one fused projection. Also: attention's memory is linear
//! in tokens (no scratch, no score matrix in the plan).
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::{TOL_F16, TOL_F32, assert_close, random, run_fused_qkv, sim_backend, skip_sim};
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::backend::cuda::Precision;
use f2idiff::backend::{Backend, HostData};
use f2idiff::engine::{plan, run_planned};
use f2idiff::exec::{Norm, upload};

/// Values with a non-zero mean, so that a naive E[x²] − E[x]² variance would show.
fn offset_input(seed: u64, n: usize) -> Vec<f32> {
    random(seed, n, 2.0).iter().map(|v| 1.0 + v).collect()
}

fn norm<B: Backend>(b: &B, n: usize, groups: usize, eps: f32, seed: u64) -> Norm<B> {
    let gamma = random(seed, n, 1.0).iter().map(|v| 1.0 + 0.5 * v).collect();
    Norm {
        gamma: upload(b, &[n], HostData::F32(gamma)).unwrap(),
        beta: upload(b, &[n], HostData::F32(random(seed + 1, n, 0.5))).unwrap(),
        eps,
        groups,
    }
}

/// GroupNorm of `[c, h, w]` out of place (plain and fused with SiLU) and in place (fused),
/// concatenated.
fn run_group_norm<B: Backend>(b: &B, (c, h, w): (usize, usize, usize), groups: usize) -> Vec<f32> {
    let x = offset_input(10 + c as u64, c * h * w);
    let n = norm(b, c, groups, 1e-6, 20 + c as u64);
    let (got, _) = run_planned(b, |cx| {
        let t = cx.input(&[c, h, w], &x)?;
        let plain = cx.group_norm(&t, &n, false)?;
        let fused = cx.group_norm(&t, &n, true)?;
        let inplace = cx.group_norm_(t, &n, true)?;
        let mut all = cx.read(&plain)?;
        all.extend(cx.read(&fused)?);
        all.extend(cx.read(&inplace)?);
        Ok(all)
    })
    .unwrap();
    got
}

#[test]
fn group_norm_plain_fused_and_in_place() {
    for (shape, groups) in [
        ((12, 5, 7), 4),     // 3 channels × 35 values per group: most of a block idle
        ((6, 1, 1), 3),      // 2 values per group
        ((64, 9, 11), 2),    // 3168 values per group: many strided passes per thread
        ((128, 16, 17), 32), // the VAE's 32 groups
        // 3·64·70 = 13440 values per group: 4 statistics blocks (4096 each, the last 1152)
        // merged per group.
        ((6, 64, 70), 2),
    ] {
        check_backends!(
            format!("group_norm {shape:?} / {groups}"),
            TOL_F32,
            TOL_F16,
            |b| { run_group_norm(b, shape, groups) }
        );
    }
}

/// Values far from zero (1000 ± 1) in groups split over several statistics blocks: Welford's
/// merges must keep the variance, where E[x²] − E[x]² in f32 would lose most of it to
/// cancellation (an error of order 10⁻¹). The bound, 10⁻³, is what PyTorch's folding
/// `x·a + (β − mean·a)` itself costs at this mean in f32 (each product rounds at 1000·a), on the
/// CPU (f64 statistics) as on the GPU. f32 storage only: f16 cannot hold 1000 ± 1 (its step
/// there is 0.5).
#[test]
fn group_norm_statistics_survive_a_large_mean() {
    let (c, h, w, groups) = (4, 48, 50, 2); // 4800 values per group: 2 statistics blocks
    let x: Vec<f32> = random(7, c * h * w, 1.0)
        .iter()
        .map(|v| 1000.0 + v)
        .collect();
    fn norm_of<B: Backend>(
        b: &B,
        x: &[f32],
        (c, h, w, groups): (usize, usize, usize, usize),
    ) -> Vec<f32> {
        let n = norm(b, c, groups, 1e-6, 8);
        run_planned(b, |cx| {
            let t = cx.input(&[c, h, w], x)?;
            let y = cx.group_norm(&t, &n, false)?;
            cx.read(&y)
        })
        .unwrap()
        .0
    }
    let want = norm_of(&CpuBackend::new(1).unwrap(), &x, (c, h, w, groups));
    if !skip_sim() {
        let got = norm_of(&sim_backend(Precision::F32), &x, (c, h, w, groups));
        assert_close("group_norm at mean 1000 (cuda-sim f32)", &got, &want, 1e-3);
    }
    #[cfg(feature = "cuda")]
    if let Some(gpu) = cuda_common::gpu_backend(Precision::F32) {
        let got = norm_of(&gpu, &x, (c, h, w, groups));
        assert_close("group_norm at mean 1000 (cuda f32)", &got, &want, 1e-3);
    }
}

#[test]
fn group_norm_in_place_equals_out_of_place() {
    for precision in [Precision::F32, Precision::F16] {
        let got = run_group_norm(&sim_backend(precision), (12, 5, 7), 4);
        let third = got.len() / 3;
        assert_eq!(got[third..2 * third], got[2 * third..], "{precision:?}");
    }
}

#[test]
fn layer_norm_rows_that_do_not_fill_a_block() {
    for (rows, d) in [(1, 40), (9, 40), (5, 385), (3, 33)] {
        check_backends!(format!("layer_norm [{rows}, {d}]"), TOL_F32, TOL_F16, |b| {
            let x = offset_input(30 + rows as u64, rows * d);
            let n = norm(b, d, 0, 1e-5, 40 + d as u64);
            let (got, _) = run_planned(b, |cx| {
                let t = cx.input(&[rows, d], &x)?;
                let y = cx.layer_norm(&t, &n)?;
                cx.read(&y)
            })
            .unwrap();
            got
        });
    }
}

/// Attention inputs: q `[tq, width]`, k and v `[tk, width]`. Scores of a few units, like
/// trained attention, so that the running max matters.
fn qkv(tq: usize, tk: usize, width: usize, seed: u64) -> [Vec<f32>; 3] {
    [
        random(seed, tq * width, 1.5),
        random(seed + 1, tk * width, 1.5),
        random(seed + 2, tk * width, 1.0),
    ]
}

/// Attention through `Exec` (separate q, k, v tensors, as the models call it).
fn run_attention<B: Backend>(b: &B, tq: usize, tk: usize, heads: usize, hd: usize) -> Vec<f32> {
    let width = heads * hd;
    let [q, k, v] = qkv(tq, tk, width, (tq * 1000 + tk * 10 + hd) as u64);
    let (got, _) = run_planned(b, |cx| {
        let q = cx.input(&[tq, width], &q)?;
        let k = cx.input(&[tk, width], &k)?;
        let v = cx.input(&[tk, width], &v)?;
        let o = cx.attention(&q, &k, &v, heads)?;
        cx.read(&o)
    })
    .unwrap();
    got
}

#[test]
fn attention_self_and_cross_odd_sizes() {
    for (tq, tk, heads, hd) in [
        (1, 1, 1, 8),
        (7, 33, 2, 24), // cross-attention, one full tile and one key
        (65, 77, 3, 40),
        (33, 65, 1, 64),
        (17, 7, 2, 128),
        (1, 77, 1, 40),
        (257, 130, 2, 40), // 17 query blocks, 5 key tiles
    ] {
        check_backends!(
            format!("attention {tq}×{tk} {heads}×{hd}"),
            TOL_F32,
            TOL_F16,
            |b| { run_attention(b, tq, tk, heads, hd) }
        );
    }
}

#[test]
fn attention_wide_heads() {
    // The VAE's mid-block attention is one head as wide as its channels (512 in SD's VAE).
    for (tq, tk, heads, hd) in [(9, 40, 1, 200), (5, 33, 1, 512)] {
        check_backends!(
            format!("attention {tq}×{tk} {heads}×{hd}"),
            TOL_F32,
            TOL_F16,
            |b| { run_attention(b, tq, tk, heads, hd) }
        );
    }
}

#[test]
fn attention_on_column_blocks_of_a_fused_qkv() {
    for (t, heads, hd) in [(7, 2, 24), (40, 3, 8)] {
        check_backends!(
            format!("attention fused qkv t {t} {heads}×{hd}"),
            TOL_F32,
            TOL_F16,
            |b| { run_fused_qkv(b, t, heads, hd, 3 * heads * hd + 5) }
        );
    }
}

#[test]
fn attention_memory_is_linear_in_tokens() {
    let b = sim_backend(Precision::F16);
    for (t, hd) in [(4096, 64), (4096, 512), (16384, 64)] {
        assert_eq!(b.attention_scratch(t, t, 1, hd), 0);
        // The plan of one self-attention (a dry run: shapes only): q, k, v and the output,
        // nothing of t² size.
        let p = plan(&b, |cx| {
            let q = cx.alloc(&[t, hd])?;
            let k = cx.alloc(&[t, hd])?;
            let v = cx.alloc(&[t, hd])?;
            cx.attention(&q, &k, &v, 1)?;
            Ok(())
        })
        .unwrap();
        assert!(
            p.peak <= 4 * t * hd + 4096,
            "t {t} hd {hd}: peak {} elements",
            p.peak
        );
    }
}
