//! Runtime LoRA ops — `out (+)= W·x + b + s·B·(A·x)` with `s` per call — through the CUDA
//! backend on the CPU execution harness: the fused tensor-core path (f16: down projection, then
//! the base GEMM with the up projection as a second K segment), the composed path (f32 storage,
//! the simple kernels, a linear map whose width is no multiple of 8) and, on the CPU, the trait's
//! composition. All against the CPU backend running the plain op on the weight merged on the host
//! (`W + s·B·A`, the converter's `lora::delta`): a different computation, so a wrong segment,
//! scale, padding or layout shows. One upload serves every scale (0, 0.5, 1.7): nothing is
//! re-uploaded when the scale changes. On a GPU (feature `cuda`) the same cases run there too.
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::{TOL_F16, TOL_F32, assert_close, random, sim_backend};
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::backend::cuda::{Kernels, Precision};
use f2idiff::backend::{Backend, Conv2d, HostData};
use f2idiff::convert::lora::delta;
use f2idiff::engine::run_planned;
use f2idiff::exec::{Conv, Linear, Lora, Param, upload};

const SCALES: [f32; 3] = [0.0, 0.5, 1.7];

/// A LoRA case: the base op (convolution `p` on `hw`, or a linear map when `p.kh == 0`), rank.
#[derive(Clone, Copy)]
struct Case {
    p: Conv2d,
    hw: (usize, usize),
    rank: usize,
    accumulate: bool,
}

fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    hw: (usize, usize),
    rank: usize,
) -> Case {
    let p = Conv2d {
        c_in,
        c_out,
        kh: k,
        kw: k,
        stride,
        pad: [k / 2; 4],
    };
    Case {
        p,
        hw,
        rank,
        accumulate: false,
    }
}

/// `x [rows, n_in] → [rows, n_out]`.
fn linear(rows: usize, n_in: usize, n_out: usize, rank: usize) -> Case {
    let p = Conv2d {
        c_in: n_in,
        c_out: n_out,
        kh: 0,
        kw: 0,
        stride: 1,
        pad: [0; 4],
    };
    Case {
        p,
        hw: (rows, 1),
        rank,
        accumulate: false,
    }
}

impl Case {
    fn is_linear(&self) -> bool {
        self.p.kh == 0
    }
    fn taps(&self) -> usize {
        if self.is_linear() {
            1
        } else {
            self.p.kh * self.p.kw
        }
    }
    fn w_shape(&self) -> Vec<usize> {
        let p = &self.p;
        if self.is_linear() {
            vec![p.c_out, p.c_in]
        } else {
            vec![p.c_out, p.c_in, p.kh, p.kw]
        }
    }
    fn a_shape(&self) -> Vec<usize> {
        let mut s = self.w_shape();
        s[0] = self.rank;
        s
    }
    fn b_shape(&self) -> Vec<usize> {
        if self.is_linear() {
            vec![self.p.c_out, self.rank]
        } else {
            vec![self.p.c_out, self.rank, 1, 1]
        }
    }
    fn x_shape(&self) -> Vec<usize> {
        if self.is_linear() {
            vec![self.hw.0, self.p.c_in]
        } else {
            vec![self.p.c_in, self.hw.0, self.hw.1]
        }
    }
    fn out_shape(&self) -> Vec<usize> {
        if self.is_linear() {
            vec![self.hw.0, self.p.c_out]
        } else {
            let (ho, wo) = self.p.out_hw(self.hw.0, self.hw.1);
            vec![self.p.c_out, ho, wo]
        }
    }
    fn name(&self) -> String {
        let p = &self.p;
        let op = if self.is_linear() {
            format!("linear [{}, {}] → {}", self.hw.0, p.c_in, p.c_out)
        } else {
            format!(
                "conv {}→{} {}×{} s{} on {}×{}",
                p.c_in, p.c_out, p.kh, p.kw, p.stride, self.hw.0, self.hw.1
            )
        };
        format!(
            "{op} rank {}{}",
            self.rank,
            if self.accumulate { " +=" } else { "" }
        )
    }
}

/// Seeded values of one case: x, W, bias, A, B (B with PEFT's `alpha/r` folded in), old out.
struct Values {
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    out0: Vec<f32>,
}

fn values(c: &Case, seed: u64) -> Values {
    let depth = c.p.c_in * c.taps();
    let n = |s: &[usize]| s.iter().product::<usize>();
    let scale = 1.0 / (depth as f32).sqrt();
    Values {
        x: random(seed, n(&c.x_shape()), 1.0),
        w: random(seed + 1, n(&c.w_shape()), scale),
        bias: random(seed + 2, c.p.c_out, 0.5),
        a: random(seed + 3, n(&c.a_shape()), scale),
        b: random(seed + 4, n(&c.b_shape()), 1.0 / (c.rank as f32).sqrt()),
        out0: random(seed + 5, n(&c.out_shape()), 1.0),
    }
}

/// Runs the base op of `c` with weight `w`, `lora` beside it, at each of `scales` in turn.
fn run_at_scales<B: Backend>(
    scales: &[f32],
    b: &B,
    c: &Case,
    v: &Values,
    w: Vec<f32>,
    lora: Option<Lora<B>>,
) -> Vec<Vec<f32>> {
    let wp = upload(b, &c.w_shape(), HostData::F32(w)).unwrap();
    let bias = Some(upload(b, &[c.p.c_out], HostData::F32(v.bias.clone())).unwrap());
    enum Op<B: Backend> {
        Conv(Conv<B>),
        Linear(Linear<B>),
    }
    let op = if c.is_linear() {
        Op::Linear(Linear {
            w: wp,
            b: bias,
            lora,
        })
    } else {
        Op::Conv(Conv {
            p: c.p,
            w: wp,
            b: bias,
            lora,
            prescale: 1.0,
            name: String::new(),
        })
    };
    scales
        .iter()
        .map(|&s| {
            run_planned(b, |cx| {
                cx.set_lora_scale(s);
                let x = cx.input(&c.x_shape(), &v.x)?;
                let mut y = cx.input(&c.out_shape(), &v.out0)?;
                match &op {
                    Op::Conv(k) => cx.conv2d_into(&x, k, &mut y, c.accumulate)?,
                    Op::Linear(l) => cx.linear_into(&x, l, &mut y, c.accumulate)?,
                }
                cx.read(&y)
            })
            .unwrap()
            .0
        })
        .collect()
}

/// With the LoRA pair uploaded beside the base weight, applied per call.
fn with_lora<B: Backend>(b: &B, c: &Case, v: &Values) -> Vec<Vec<f32>> {
    let (a, bw) = b
        .upload_lora(
            (&c.a_shape(), HostData::F32(v.a.clone())),
            (&c.b_shape(), HostData::F32(v.b.clone())),
        )
        .unwrap();
    let lora = Lora {
        a: Param {
            w: a,
            shape: c.a_shape(),
        },
        b: Param {
            w: bw,
            shape: c.b_shape(),
        },
        rank: c.rank,
    };
    run_at_scales(&SCALES, b, c, v, v.w.clone(), Some(lora))
}

/// The oracle: the CPU's plain op on `W + s·B·A` merged on the host, for each scale.
fn merged_on_cpu(c: &Case, v: &Values) -> Vec<Vec<f32>> {
    let cpu = CpuBackend::new(1).unwrap();
    SCALES
        .iter()
        .map(|&s| {
            let d = delta(&v.a, &v.b, c.p.c_out, c.rank, s as f64);
            let w: Vec<f32> = v.w.iter().zip(&d).map(|(w, d)| w + d).collect();
            // Without a pair the run's scale does not matter: one run.
            let mut r = run_at_scales(&[1.0], &cpu, c, v, w, None);
            r.swap_remove(0)
        })
        .collect()
}

fn check(cases: &[Case]) {
    #[cfg(feature = "cuda")]
    let gpu = cuda_common::gpu_backend(Precision::F16);
    let cpu = CpuBackend::new(1).unwrap();
    for (i, c) in cases.iter().enumerate() {
        let v = values(c, 300 + 10 * i as u64);
        let want = merged_on_cpu(c, &v);
        let compare = |on: &str, got: Vec<Vec<f32>>, tol: f64| {
            for ((s, got), want) in SCALES.iter().zip(&got).zip(&want) {
                assert_close(&format!("{} s={s} ({on})", c.name()), got, want, tol);
            }
        };
        compare("cpu composed", with_lora(&cpu, c, &v), TOL_F32);
        if !cuda_common::skip_sim() {
            compare(
                "cuda-sim f16 tensor cores",
                with_lora(&sim_backend(Precision::F16), c, &v),
                TOL_F16,
            );
            let simple = sim_backend(Precision::F16).with_kernels(Kernels::Simple);
            compare("cuda-sim f16 simple", with_lora(&simple, c, &v), TOL_F16);
            compare(
                "cuda-sim f32",
                with_lora(&sim_backend(Precision::F32), c, &v),
                TOL_F32,
            );
        }
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &gpu {
            compare("cuda f16", with_lora(gpu, c, &v), TOL_F16);
        }
    }
}

#[test]
fn lora_convolutions() {
    let mut acc = conv(13, 70, 3, 1, (9, 7), 4);
    acc.accumulate = true;
    check(&[
        // A rank that is no multiple of 8 (padded to 8 with zeros), 3 input channels.
        conv(3, 17, 3, 1, (10, 9), 4),
        // Stride 2, rank 16, 65 output channels: two 64-row blocks.
        conv(32, 65, 3, 2, (12, 11), 16),
        // 1×1 (the VAE's quant_conv, attention projections as convolutions), rank 8.
        conv(24, 16, 1, 1, (9, 8), 8),
        // Fused residual add.
        acc,
    ]);
}

#[test]
fn lora_linear_maps() {
    let mut acc = linear(70, 64, 33, 16);
    acc.accumulate = true;
    check(&[
        // Fused: n_in a multiple of 8; rank 4 padded to 8.
        linear(7, 16, 20, 4),
        // 130 rows: three 64-row blocks; rank 12 padded to 16.
        linear(130, 40, 72, 12),
        // n_in 13: no 16-byte chunks, the composed path.
        linear(9, 13, 10, 8),
        acc,
    ]);
}

/// Proof that f16 runs LoRA fused (one f32 accumulation of `W·x + B·u + bias`, rounded once)
/// and the simple kernels composed (the base output rounded to f16 before the up projection
/// is added): `W·x` = 2048, bias 0.75, `B·A·x` = 0.75, at s = 0.5 (`SCALES[1]`). Fused:
/// 2048 + 0.75 + 0.375 = 2049.125 → 2050 (f16 steps by 2 there); composed: 2048.75 → 2048,
/// then + 0.375 → 2048.
#[test]
fn f16_fuses_lora_into_one_accumulation() {
    if cuda_common::skip_sim() {
        return;
    }
    for linear_map in [true, false] {
        let c = if linear_map {
            linear(1, 8, 1, 1)
        } else {
            conv(8, 1, 1, 1, (1, 1), 1)
        };
        let mut x = vec![0.0; 8];
        x[0] = 1.0;
        let mut w = vec![0.0; 8];
        w[0] = 2048.0;
        let mut a = vec![0.0; 8];
        a[0] = 0.75;
        let v = Values {
            x,
            w,
            bias: vec![0.75],
            a,
            b: vec![1.0],
            out0: vec![0.0],
        };
        let fused = with_lora(&sim_backend(Precision::F16), &c, &v);
        let simple = sim_backend(Precision::F16).with_kernels(Kernels::Simple);
        let composed = with_lora(&simple, &c, &v);
        let what = if linear_map { "linear" } else { "conv" };
        assert_eq!(fused[1], [2050.0], "{what}: fused on tensor cores");
        assert_eq!(
            composed[1],
            [2048.0],
            "{what}: composed by the simple kernels"
        );
    }
}
