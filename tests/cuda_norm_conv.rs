//! GroupNorm(+SiLU) folded into the tensor-core convolution's input packing
//! (`conv_tc_pack_input_gn`) through the CUDA backend on the CPU execution harness: the folded
//! op must equal the unfused GroupNorm → convolution on the same backend bit for bit (the
//! packed input is the same f16 value, rounded once from the same f32 expression), and match the
//! CPU (the oracle) within the f16 bound — with SiLU and without, channels that are no multiple
//! of 8, stride 2, 1×1, and an f16 pre-scale on the output. On a
//! GPU (feature `cuda`) the same cases run there too.
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::{TOL_F16, assert_close, random, sim_backend, skip_sim};
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::backend::cuda::Precision;
use f2idiff::backend::{Backend, Conv2d, HostData};
use f2idiff::engine::run_planned;
use f2idiff::exec::{Conv, Norm, upload};

#[derive(Clone, Copy)]
struct Case {
    c_in: usize,
    groups: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    hw: (usize, usize),
    silu: bool,
    /// log2 of the output pre-scale (0: none).
    prescale: i32,
}

fn case(
    c_in: usize,
    groups: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    hw: (usize, usize),
) -> Case {
    Case {
        c_in,
        groups,
        c_out,
        k,
        stride,
        hw,
        silu: true,
        prescale: 0,
    }
}

/// The layer of `c` on backend `b`.
fn layer<B: Backend>(b: &B, c: &Case, seed: u64) -> (Norm<B>, Conv<B>) {
    let gamma: Vec<f32> = random(seed, c.c_in, 1.0)
        .iter()
        .map(|v| 1.0 + 0.5 * v)
        .collect();
    let norm = Norm {
        gamma: upload(b, &[c.c_in], HostData::F32(gamma)).unwrap(),
        beta: upload(b, &[c.c_in], HostData::F32(random(seed + 1, c.c_in, 0.5))).unwrap(),
        eps: 1e-6,
        groups: c.groups,
    };
    let depth = c.c_in * c.k * c.k;
    let w = random(seed + 2, c.c_out * depth, 1.0 / (depth as f32).sqrt());
    let p = Conv2d {
        c_in: c.c_in,
        c_out: c.c_out,
        kh: c.k,
        kw: c.k,
        stride: c.stride,
        pad: [c.k / 2; 4],
    };
    let conv = Conv {
        p,
        w: upload(b, &[c.c_out, c.c_in, c.k, c.k], HostData::F32(w)).unwrap(),
        b: Some(upload(b, &[c.c_out], HostData::F32(random(seed + 3, c.c_out, 0.5))).unwrap()),
        lora: None,
        prescale: (c.prescale as f32).exp2(),
        name: "test".into(),
    };
    (norm, conv)
}

/// `conv(GroupNorm(x))`, folded (`Exec::group_norm_conv2d`) or as the two ops; the output read
/// back (divided by its pre-scale).
fn run<B: Backend>(b: &B, c: &Case, folded: bool) -> Vec<f32> {
    let (h, w) = c.hw;
    let x: Vec<f32> = random(40, c.c_in * h * w, 2.0)
        .iter()
        .map(|v| 0.5 + v)
        .collect();
    let (norm, conv) = layer(b, c, 50);
    run_planned(b, |cx| {
        let t = cx.input(&[c.c_in, h, w], &x)?;
        let y = if folded {
            cx.group_norm_conv2d(&t, &norm, c.silu, &conv)?
        } else {
            let n = cx.group_norm(&t, &norm, c.silu)?;
            cx.conv2d(&n, &conv)?
        };
        cx.read(&y)
    })
    .unwrap()
    .0
}

fn name(c: &Case) -> String {
    format!(
        "GroupNorm({}/{}){} → conv {}→{} {}×{} s{} on {}×{} prescale 2^{}",
        c.c_in,
        c.groups,
        if c.silu { "+SiLU" } else { "" },
        c.c_in,
        c.c_out,
        c.k,
        c.k,
        c.stride,
        c.hw.0,
        c.hw.1,
        -c.prescale
    )
}

fn check(cases: &[Case]) {
    let cpu = CpuBackend::new(1).unwrap();
    for c in cases {
        let want = run(&cpu, c, false);
        if !skip_sim() {
            let b = sim_backend(Precision::F16);
            assert!(b.folds_group_norm_into_conv());
            let folded = run(&b, c, true);
            let unfused = run(&b, c, false);
            assert_eq!(
                folded,
                unfused,
                "{}: folded vs unfused on cuda-sim",
                name(c)
            );
            assert_close(&format!("{} (cuda-sim)", name(c)), &folded, &want, TOL_F16);
        }
        #[cfg(feature = "cuda")]
        if let Some(gpu) = cuda_common::gpu_backend(Precision::F16) {
            let folded = run(&gpu, c, true);
            assert_eq!(
                folded,
                run(&gpu, c, false),
                "{}: folded vs unfused on the GPU",
                name(c)
            );
            assert_close(&format!("{} (cuda)", name(c)), &folded, &want, TOL_F16);
        }
    }
}

#[test]
fn group_norm_folds_into_the_convolution_input() {
    let mut plain = case(16, 4, 24, 3, 1, (9, 11));
    plain.silu = false;
    let mut scaled = case(32, 8, 20, 3, 1, (8, 8));
    scaled.prescale = -3;
    check(&[
        case(32, 8, 20, 3, 1, (13, 7)), // the VAE's shape of block, small
        plain,
        case(12, 4, 17, 3, 2, (10, 9)), // 12 channels: padded to 16 in the packing; stride 2
        case(24, 8, 8, 1, 1, (6, 5)),   // 1×1
        scaled,
    ]);
}

/// The CPU and the f32 / simple-kernel CUDA paths keep the two ops.
#[test]
fn only_the_tensor_core_path_folds() {
    assert!(!CpuBackend::new(1).unwrap().folds_group_norm_into_conv());
    assert!(!sim_backend(Precision::F32).folds_group_norm_into_conv());
    let simple = sim_backend(Precision::F16).with_kernels(f2idiff::backend::cuda::Kernels::Simple);
    assert!(!simple.folds_group_norm_into_conv());
}
