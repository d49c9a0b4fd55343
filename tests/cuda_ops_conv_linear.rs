//! `conv2d` (kernels/conv.cu) and `linear` (kernels/linear.cu) through the CUDA backend on the
//! CPU execution harness against the CPU backend, on seeded random inputs. Sizes are odd (not
//! multiples of the kernels' 64 × 64 × 16 tiles) and small: the harness is ~1000× slower than a
//! GPU. A few shapes span more than one block in each grid dimension.
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::{TOL_F16, TOL_F32, random};
use f2idiff::backend::{Backend, Conv2d, HostData};
use f2idiff::engine::run_planned;
use f2idiff::exec::{Conv, Linear, upload};

/// One convolution: geometry, input size, bias and accumulate (onto seeded random `out`).
struct ConvCase {
    p: Conv2d,
    h: usize,
    w: usize,
    bias: bool,
    accumulate: bool,
}

#[allow(clippy::too_many_arguments)]
fn conv_case(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: [usize; 4],
    (h, w): (usize, usize),
    bias: bool,
    accumulate: bool,
) -> ConvCase {
    ConvCase {
        p: Conv2d {
            c_in,
            c_out,
            kh: k,
            kw: k,
            stride,
            pad,
        },
        h,
        w,
        bias,
        accumulate,
    }
}

/// `out (+)= conv(x) + bias` on backend `b`, from inputs seeded by `seed`.
fn run_conv<B: Backend>(b: &B, c: &ConvCase, seed: u64) -> Vec<f32> {
    let p = c.p;
    let (ho, wo) = p.out_hw(c.h, c.w);
    let depth = p.c_in * p.kh * p.kw;
    let x = random(seed, p.c_in * c.h * c.w, 1.0);
    let out0 = random(seed + 1, p.c_out * ho * wo, 1.0);
    let scale = 1.0 / (depth as f32).sqrt();
    let w = random(seed + 2, p.c_out * depth, scale);
    let conv = Conv {
        p,
        w: upload(b, &[p.c_out, p.c_in, p.kh, p.kw], HostData::F32(w)).unwrap(),
        b: c.bias.then(|| {
            let v = random(seed + 3, p.c_out, 0.5);
            upload(b, &[p.c_out], HostData::F32(v)).unwrap()
        }),
        lora: None,
        prescale: 1.0,
        name: String::new(),
    };
    let (got, _) = run_planned(b, |cx| {
        let x = cx.input(&[p.c_in, c.h, c.w], &x)?;
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

fn check_conv(what: &str, c: ConvCase, seed: u64) {
    let what = format!(
        "conv {what} {}→{} {}×{} s{} pad{:?} on {}×{}{}{}",
        c.p.c_in,
        c.p.c_out,
        c.p.kh,
        c.p.kw,
        c.p.stride,
        c.p.pad,
        c.h,
        c.w,
        if c.bias { " +bias" } else { "" },
        if c.accumulate { " +=" } else { "" },
    );
    check_backends!(what, TOL_F32, TOL_F16, |b| { run_conv(b, &c, seed) });
}

#[test]
fn conv_3x3_same_padding() {
    check_conv(
        "3x3",
        conv_case(3, 13, 3, 1, [1; 4], (5, 7), true, false),
        1,
    );
    check_conv(
        "3x3",
        conv_case(13, 33, 3, 1, [1; 4], (5, 7), false, true),
        2,
    );
    // Two blocks in each grid dimension: 65 output channels, 9·8 = 72 pixels.
    check_conv("3x3", conv_case(3, 65, 3, 1, [1; 4], (9, 8), true, true), 3);
}

#[test]
fn conv_3x3_stride_2_asymmetric_padding() {
    // The VAE downsampler: pad right and bottom by one, 3×3 stride 2.
    check_conv(
        "down",
        conv_case(5, 6, 3, 2, [0, 1, 0, 1], (7, 9), true, false),
        4,
    );
    check_conv(
        "down",
        conv_case(13, 3, 3, 2, [0, 1, 0, 1], (8, 5), false, true),
        5,
    );
    check_conv(
        "pad",
        conv_case(4, 3, 3, 2, [1, 0, 2, 0], (9, 10), true, true),
        6,
    );
}

#[test]
fn conv_pointwise_and_patch_embedding() {
    check_conv(
        "1x1",
        conv_case(33, 17, 1, 1, [0; 4], (5, 7), true, true),
        7,
    );
    check_conv(
        "1x1",
        conv_case(3, 5, 1, 1, [0; 4], (13, 11), false, false),
        8,
    );
    // DINOv2's 14×14 stride-14 patch embedding (a size that is not a multiple of 14).
    check_conv(
        "patch",
        conv_case(3, 8, 14, 14, [0; 4], (29, 30), true, false),
        9,
    );
}

/// `out[rows, n_out] (+)= x · wᵀ + bias` on backend `b`, from inputs seeded by `seed`.
fn run_linear<B: Backend>(
    b: &B,
    (rows, n_in, n_out): (usize, usize, usize),
    bias: bool,
    accumulate: bool,
    seed: u64,
) -> Vec<f32> {
    let x = random(seed, rows * n_in, 1.0);
    let out0 = random(seed + 1, rows * n_out, 1.0);
    let w = random(seed + 2, n_out * n_in, 1.0 / (n_in as f32).sqrt());
    let l = Linear {
        w: upload(b, &[n_out, n_in], HostData::F32(w)).unwrap(),
        b: bias.then(|| {
            let v = random(seed + 3, n_out, 0.5);
            upload(b, &[n_out], HostData::F32(v)).unwrap()
        }),
        lora: None,
    };
    let (got, _) = run_planned(b, |cx| {
        let x = cx.input(&[rows, n_in], &x)?;
        let y = if accumulate {
            let mut y = cx.input(&[rows, n_out], &out0)?;
            cx.linear_into(&x, &l, &mut y, true)?;
            y
        } else {
            cx.linear(&x, &l)?
        };
        cx.read(&y)
    })
    .unwrap();
    got
}

fn check_linear(shape: (usize, usize, usize), bias: bool, accumulate: bool, seed: u64) {
    let what = format!(
        "linear {}×{}→{}{}{}",
        shape.0,
        shape.1,
        shape.2,
        if bias { " +bias" } else { "" },
        if accumulate { " +=" } else { "" },
    );
    check_backends!(what, TOL_F32, TOL_F16, |b| {
        run_linear(b, shape, bias, accumulate, seed)
    });
}

#[test]
fn linear_odd_sizes_bias_and_accumulate() {
    check_linear((1, 33, 13), true, false, 11);
    check_linear((17, 13, 3), false, false, 12);
    check_linear((17, 1, 5), true, true, 13);
    // Two blocks in each grid dimension, three 16-deep slices.
    check_linear((65, 33, 70), true, true, 14);
    check_linear((65, 40, 67), false, true, 15);
}
