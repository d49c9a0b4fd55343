//! The tensor-core convolution (kernels/conv_tc.cu) through the CUDA backend on the CPU execution
//! harness (f16 storage, the default kernel family) against the CPU backend, on seeded random
//! inputs: channel counts that are no multiple of 8 or of the 64/128 tiles (3, 13, 33, 70 in;
//! 5, 17, 64, 130 out), odd images, 3×3 stride 1 and 2 (asymmetric padding), 1×1, bias and the
//! fused residual add. Plus: proof that f16 takes the tensor-core path and `Kernels::Simple` the
//! part-1 kernel, and that the latter still matches the oracle. On a GPU (feature `cuda`) the
//! same cases run there too.
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::{TOL_F16, assert_close, random, sim_backend};
use f2idiff::backend::cuda::{Kernels, Precision};
use f2idiff::backend::{Backend, Conv2d, HostData};
use f2idiff::engine::run_planned;
use f2idiff::exec::{Conv, upload};

/// One convolution case: geometry, input size, bias, accumulate (onto seeded random `out`).
#[derive(Clone, Copy)]
struct Case {
    p: Conv2d,
    hw: (usize, usize),
    bias: bool,
    accumulate: bool,
}

fn case(
    (c_in, c_out): (usize, usize),
    k: usize,
    stride: usize,
    pad: [usize; 4],
    hw: (usize, usize),
    bias: bool,
    accumulate: bool,
) -> Case {
    let p = Conv2d {
        c_in,
        c_out,
        kh: k,
        kw: k,
        stride,
        pad,
    };
    Case {
        p,
        hw,
        bias,
        accumulate,
    }
}

impl Case {
    fn name(&self) -> String {
        let p = &self.p;
        format!(
            "conv_tc {}→{} {}×{} s{} pad{:?} on {}×{}{}{}",
            p.c_in,
            p.c_out,
            p.kh,
            p.kw,
            p.stride,
            p.pad,
            self.hw.0,
            self.hw.1,
            if self.bias { " +bias" } else { "" },
            if self.accumulate { " +=" } else { "" },
        )
    }
}

/// `out (+)= conv(x) + bias` on backend `b` with the given input, weight and bias values.
fn run<B: Backend>(b: &B, c: &Case, x: &[f32], w: Vec<f32>, bias: Option<Vec<f32>>) -> Vec<f32> {
    let p = c.p;
    let (h, wd) = c.hw;
    let (ho, wo) = p.out_hw(h, wd);
    let out0 = random(99, p.c_out * ho * wo, 1.0);
    let conv = Conv {
        p,
        w: upload(b, &[p.c_out, p.c_in, p.kh, p.kw], HostData::F32(w)).unwrap(),
        b: bias.map(|v| upload(b, &[p.c_out], HostData::F32(v)).unwrap()),
        lora: None,
        prescale: 1.0,
        name: String::new(),
    };
    let (got, _) = run_planned(b, |cx| {
        let x = cx.input(&[p.c_in, h, wd], x)?;
        let y = if c.accumulate {
            let mut y = cx.input(&[p.c_out, ho, wo], &out0)?;
            cx.conv2d_into(&x, &conv, &mut y, true)?;
            y
        } else {
            cx.conv2d(&x, &conv)?
        };
        cx.read(&y)
    })
    .unwrap();
    got
}

/// Seeded random inputs for `c` (weights scaled by 1/√depth, as in a trained layer).
fn run_random<B: Backend>(b: &B, c: &Case, seed: u64) -> Vec<f32> {
    let p = c.p;
    let depth = p.c_in * p.kh * p.kw;
    let x = random(seed, p.c_in * c.hw.0 * c.hw.1, 1.0);
    let w = random(seed + 1, p.c_out * depth, 1.0 / (depth as f32).sqrt());
    let bias = c.bias.then(|| random(seed + 2, p.c_out, 0.5));
    run(b, c, &x, w, bias)
}

/// Each case on the CPU (the oracle), then in f16 on the harness (tensor cores) and, with the
/// feature `cuda`, on a GPU when one is present.
fn check(cases: &[Case]) {
    let cpu = f2idiff::backend::cpu::CpuBackend::new(1).unwrap();
    #[cfg(feature = "cuda")]
    let gpu = cuda_common::gpu_backend(Precision::F16);
    for (i, c) in cases.iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let want = run_random(&cpu, c, seed);
        if !cuda_common::skip_sim() {
            let got = run_random(&sim_backend(Precision::F16), c, seed);
            assert_close(&format!("{} (cuda-sim)", c.name()), &got, &want, TOL_F16);
        }
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &gpu {
            let got = run_random(gpu, c, seed);
            assert_close(&format!("{} (cuda)", c.name()), &got, &want, TOL_F16);
        }
    }
}

const SAME: [usize; 4] = [1; 4];
/// The VAE downsampler's padding: bottom and right only.
const DOWN: [usize; 4] = [0, 1, 0, 1];

#[test]
fn conv_3x3_stride_1() {
    check(&[
        // The first convolution of a network: 3 input channels (padded to 8 in the kernel).
        case((3, 17), 3, 1, SAME, (16, 16), true, false),
        // 130 output channels: three 64-row blocks, the last with 2 rows.
        case((70, 130), 3, 1, SAME, (5, 7), true, true),
        // 153 pixels: three 64-pixel blocks.
        case((13, 64), 3, 1, SAME, (17, 9), false, false),
    ]);
}

#[test]
fn conv_3x3_stride_2_asymmetric_padding() {
    check(&[
        case((13, 5), 3, 2, DOWN, (17, 9), false, true),
        case((70, 17), 3, 2, DOWN, (16, 16), true, false),
        case((33, 64), 3, 2, [1, 0, 2, 0], (5, 7), true, true),
    ]);
}

#[test]
fn conv_1x1() {
    check(&[
        case((33, 64), 1, 1, [0; 4], (5, 7), true, true),
        case((70, 5), 1, 1, [0; 4], (17, 9), false, false),
        case((3, 130), 1, 2, [0; 4], (16, 16), true, false),
    ]);
}

#[test]
fn conv_other_kernel_sizes() {
    check(&[
        // DINOv2's 14×14 stride-14 patch embedding on a size that is no multiple of 14.
        case((3, 8), 14, 14, [0; 4], (29, 30), true, false),
        case((5, 7), 5, 1, [2, 1, 0, 2], (9, 8), true, true),
    ]);
}

#[test]
fn conv_large_tile() {
    // 2 × 64 = 128 blocks of 128 × 128: the 128×128 kernel (4-stage pipeline, dynamic shared
    // memory); K = 9·16 = 144 is five 32-deep tiles, so the ring of stages wraps around.
    check(&[case((13, 130), 3, 1, SAME, (64, 128), true, true)]);
}

/// Values whose f32 sum depends on the order of the products: the simple kernel sums k in
/// (channel, tap) order, the tensor-core kernel in (tap, channel) order. With x = 4096 and
/// W[0, 0, tap 0] = 4096, W[0, 0, tap 1] = 2⁻¹², W[0, 1, tap 0] = −4096, the products are 2²⁴,
/// 1 and −2²⁴: (2²⁴ + 1) rounds to 2²⁴ in f32, so (channel, tap) order gives 0 and (tap,
/// channel) order gives 1. Harness only: a GPU's mma accumulation may drop the 1 as well.
#[test]
fn f16_takes_the_tensor_core_path_and_simple_the_fallback() {
    if cuda_common::skip_sim() {
        return;
    }
    let c = case((2, 1), 3, 1, [0; 4], (3, 3), false, false);
    let x = vec![4096.0; 2 * 9];
    let mut w = vec![0.0; 2 * 9];
    w[0] = 4096.0; // channel 0, tap 0
    w[1] = 1.0 / 4096.0; // channel 0, tap 1
    w[9] = -4096.0; // channel 1, tap 0
    let tc = sim_backend(Precision::F16);
    assert_eq!(
        tc.kernels(),
        Kernels::TensorCore,
        "tensor cores are the default"
    );
    let simple = sim_backend(Precision::F16).with_kernels(Kernels::Simple);
    assert_eq!(run(&tc, &c, &x, w.clone(), None), [1.0], "tensor-core path");
    assert_eq!(run(&simple, &c, &x, w, None), [0.0], "simple kernel");
}

#[test]
fn simple_kernels_still_match_the_oracle() {
    let cpu = f2idiff::backend::cpu::CpuBackend::new(1).unwrap();
    let cases = [
        case((13, 17), 3, 2, DOWN, (17, 9), true, true),
        case((33, 5), 1, 1, [0; 4], (5, 7), false, false),
    ];
    if !cuda_common::skip_sim() {
        let simple = sim_backend(Precision::F16).with_kernels(Kernels::Simple);
        let tc = sim_backend(Precision::F16);
        for c in &cases {
            let want = run_random(&cpu, c, 7);
            let got = run_random(&simple, c, 7);
            assert_close(&format!("{} (simple)", c.name()), &got, &want, TOL_F16);
            // Same inputs, the other kernel: close, but summed in another order.
            let other = run_random(&tc, c, 7);
            assert_close(
                &format!("{} (tc vs simple)", c.name()),
                &other,
                &got,
                TOL_F16,
            );
        }
    }
    #[cfg(feature = "cuda")]
    if let Some(gpu) = cuda_common::gpu_backend(Precision::F16) {
        let simple = gpu.with_kernels(Kernels::Simple);
        for c in &cases {
            let want = run_random(&cpu, c, 7);
            let got = run_random(&simple, c, 7);
            assert_close(
                &format!("{} (cuda, simple)", c.name()),
                &got,
                &want,
                TOL_F16,
            );
        }
    }
}
