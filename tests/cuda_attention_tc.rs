//! Tensor-core flash attention (`kernels/attention_tc.cu`) on the CPU execution harness against
//! the CPU backend: f16 storage (the only storage it serves), rel L2 ≤ 2e-3. Token counts that
//! end mid-tile (tq ∈ {1, 16, 65, 130}, tk ∈ {1, 7, 77, 257}: DINOv2's 257 tokens, 77-token
//! cross-attention), 1–3 heads, every head_dim multiple of 8 up to 128 and odd ones (zero-padded
//! in the kernel), wide heads up to 512 (the VAE's), q/k/v as column blocks of a fused qkv with
//! aligned (cp.async path) and odd (plain-load path) row strides. Also: the tensor-core path is the one that ran (its bits
//! differ from `Kernels::Simple`'s), and the simple kernels still pass.
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::{TOL_F16, assert_close, random, run_fused_qkv, sim_backend, skip_sim};
use f2idiff::backend::Backend;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::backend::cuda::{Kernels, Precision};
use f2idiff::engine::run_planned;

/// Seeded q, k, v: q and k in [-1.5, 1.5]·`spread` (scores of a few units, so the running max
/// matters), v in [-1, 1].
fn qkv(tq: usize, tk: usize, width: usize, seed: u64, spread: f32) -> [Vec<f32>; 3] {
    [
        random(seed, tq * width, 1.5 * spread),
        random(seed + 1, tk * width, 1.5 * spread),
        random(seed + 2, tk * width, 1.0),
    ]
}

/// Attention through `Exec` (separate q, k, v tensors, as the models call it).
fn run_attention<B: Backend>(
    b: &B,
    (tq, tk, heads, hd): (usize, usize, usize, usize),
    spread: f32,
) -> Vec<f32> {
    let width = heads * hd;
    let [q, k, v] = qkv(tq, tk, width, (tq * 1000 + tk * 10 + hd) as u64, spread);
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

fn cpu() -> CpuBackend {
    CpuBackend::new(1).unwrap()
}

/// The CPU oracle against the tensor-core kernel (the default kernels, f16 storage).
/// On the harness (unless `F2I_SKIP_SIM=1`) and on a GPU when one is present.
fn check(shape: (usize, usize, usize, usize), spread: f32) {
    let want = run_attention(&cpu(), shape, spread);
    let (tq, tk, heads, hd) = shape;
    if !skip_sim() {
        let got = run_attention(&sim_backend(Precision::F16), shape, spread);
        let what = format!("attention_tc {tq}×{tk} {heads}×{hd}");
        assert_close(&what, &got, &want, TOL_F16);
    }
    #[cfg(feature = "cuda")]
    if let Some(gpu) = cuda_common::gpu_backend(Precision::F16) {
        let got = run_attention(&gpu, shape, spread);
        let what = format!("attention_tc {tq}×{tk} {heads}×{hd} (gpu)");
        assert_close(&what, &got, &want, TOL_F16);
    }
}

#[test]
fn every_query_and_key_count_ending_mid_tile() {
    // tq × tk over {1, 16, 65, 130} × {1, 7, 77, 257}, heads and head_dim cycled through.
    let tqs = [1, 16, 65, 130];
    let tks = [1, 7, 77, 257];
    let hds = [8, 40, 64, 128];
    for (i, &tq) in tqs.iter().enumerate() {
        for (j, &tk) in tks.iter().enumerate() {
            let heads = 1 + (i + j) % 3;
            let hd = hds[(i + 2 * j) % 4];
            check((tq, tk, heads, hd), 1.0);
        }
    }
}

#[test]
fn every_head_dim_up_to_128() {
    // Multiples of 8 (the configs use 40, 64, 80, 96, 128) and odd ones of the tiny test
    // models, zero-padded to 16 in shared memory.
    for hd in (8..=128).step_by(8) {
        check((20, 70, 2, hd), 1.0);
    }
    // Plain loads (hd % 8 ≠ 0) over 3 key tiles: a stage is refilled while other warps could
    // still read it, so a missing barrier shows as a schedule mismatch (the harness performs
    // cp.async copies only at their wait, which hides such races from the cp.async path).
    for hd in [3, 4, 5, 12, 24, 100, 127] {
        check((20, 140, 2, hd), 1.0);
    }
}

#[test]
fn wide_heads_up_to_512() {
    // The VAE's mid-block attention is one head as wide as its channels (512 in SD's VAE):
    // `attention_tc_wide` splits the head dim over 4 column groups of warps.
    for shape in [
        (5, 33, 1, 512),
        (70, 77, 1, 512),  // 3 row blocks, 3 key tiles of 32
        (33, 65, 2, 136),  // two column groups idle
        (20, 100, 1, 257), // odd: plain loads, zero-padded to 272
    ] {
        check(shape, 1.0);
    }
}

#[test]
fn large_scores_keep_the_running_max_exact() {
    // Scores of tens of units: exp underflows for most keys, the max moves between tiles. The
    // error is mostly the f16 rounding of q and k (scores err by ~|s|·2⁻¹¹), which the simple
    // kernel shares.
    let shape = (33, 200, 2, 64);
    check(shape, 4.0);
    let want = run_attention(&cpu(), shape, 4.0);
    let simple = run_attention(
        &sim_backend(Precision::F16).with_kernels(Kernels::Simple),
        shape,
        4.0,
    );
    assert_close(
        "attention Kernels::Simple 33×200 2×64",
        &simple,
        &want,
        TOL_F16,
    );
}

#[test]
fn column_blocks_of_a_fused_qkv() {
    for (t, heads, hd, extra) in [
        (77, 2, 40, 8),  // aligned: cp.async
        (150, 2, 40, 5), // odd row stride: plain loads, 3 key tiles
        (70, 3, 64, 16), // aligned
        (40, 2, 12, 0),  // head columns at 24-byte offsets: plain loads
    ] {
        let rs = 3 * heads * hd + extra;
        let want = run_fused_qkv(&cpu(), t, heads, hd, rs);
        let what = format!("attention_tc fused qkv t {t} {heads}×{hd} rs {rs}");
        if !skip_sim() {
            let got = run_fused_qkv(&sim_backend(Precision::F16), t, heads, hd, rs);
            assert_close(&what, &got, &want, TOL_F16);
        }
        #[cfg(feature = "cuda")]
        if let Some(gpu) = cuda_common::gpu_backend(Precision::F16) {
            let got = run_fused_qkv(&gpu, t, heads, hd, rs);
            assert_close(&format!("{what} (gpu)"), &got, &want, TOL_F16);
        }
    }
}

#[test]
fn tensor_core_path_ran_and_simple_still_works() {
    // A narrow head (attention_tc_64 vs attention) and a wide one (attention_tc_wide vs
    // attention_wide).
    for shape in [(65, 77, 2, 40), (9, 40, 1, 200)] {
        let want = run_attention(&cpu(), shape, 1.0);
        let tc = run_attention(&sim_backend(Precision::F16), shape, 1.0);
        let simple = run_attention(
            &sim_backend(Precision::F16).with_kernels(Kernels::Simple),
            shape,
            1.0,
        );
        assert_close(
            &format!("{shape:?} tensor cores (f16)"),
            &tc,
            &want,
            TOL_F16,
        );
        assert_close(
            &format!("{shape:?} Kernels::Simple (f16)"),
            &simple,
            &want,
            TOL_F16,
        );
        // p rounded to f16 in the tensor-core kernels, f32 in the simple ones: different bits.
        let differ = tc
            .iter()
            .zip(&simple)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert!(
            differ > tc.len() / 10,
            "{shape:?}: only {differ} of {} outputs differ: did the tensor-core kernel run?",
            tc.len()
        );
        // f32 storage has no tensor-core kernel: the simple one, to f32 accuracy.
        let f32_out = run_attention(&sim_backend(Precision::F32), shape, 1.0);
        let what = format!("{shape:?} f32 storage");
        assert_close(&what, &f32_out, &want, cuda_common::TOL_F32);
    }
}
