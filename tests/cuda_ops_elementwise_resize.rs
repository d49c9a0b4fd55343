//! The elementwise ops (kernels/elementwise.cu) and the resizes and layout ops
//! (kernels/resize.cu) through the CUDA backend on the CPU execution harness against the CPU
//! backend, on seeded random inputs of odd sizes, through the same `Exec` calls the models make.
//! Shapes are small: the harness is ~1000× slower than a GPU.
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::{TOL_F16, TOL_F32, random};
use f2idiff::backend::{Backend, Glu, HostData, View};
use f2idiff::engine::run_planned;
use f2idiff::exec::{Exec, Part, Tensor, upload};
use f2idiff::{ErrorKind, Result};

/// Runs `f` planned on `b` and returns what it read.
fn run<B: Backend>(b: &B, f: impl Fn(&mut Exec<B>) -> Result<Vec<f32>>) -> Vec<f32> {
    run_planned(b, f).unwrap().0
}

/// `f` applied in place to a seeded `[3, 5, 7]` input in [-scale, scale].
fn unary<B: Backend>(
    b: &B,
    seed: u64,
    scale: f32,
    f: impl Fn(&mut Exec<B>, Tensor) -> Result<Tensor>,
) -> Vec<f32> {
    let x = random(seed, 3 * 5 * 7, scale);
    run(b, |cx| {
        let t = cx.input(&[3, 5, 7], &x)?;
        let t = f(cx, t)?;
        cx.read(&t)
    })
}

#[test]
fn activations() {
    check_backends!("silu", TOL_F32, TOL_F16, |b| {
        unary(b, 1, 6.0, |cx, t| cx.silu_(t))
    });
    check_backends!("gelu (erf)", TOL_F32, TOL_F16, |b| {
        unary(b, 2, 6.0, |cx, t| cx.gelu_(t, false))
    });
    check_backends!("gelu (tanh)", TOL_F32, TOL_F16, |b| {
        unary(b, 3, 6.0, |cx, t| cx.gelu_(t, true))
    });
}

#[test]
fn gated_linear_units() {
    for (kind, name) in [
        (Glu::GeluGateSecond, "geglu"),
        (Glu::SiluGateFirst, "swiglu"),
    ] {
        let x = random(4, 5 * 2 * 7, 4.0);
        check_backends!(
            format!("{name} [5, 14] → [5, 7]"),
            TOL_F32,
            TOL_F16,
            |b| {
                run(b, |cx| {
                    let x = cx.input(&[5, 14], &x)?;
                    let y = cx.glu(&x, kind)?;
                    cx.read(&y)
                })
            }
        );
    }
}

#[test]
fn residual_adds() {
    let (x, y) = (random(5, 105, 1.0), random(6, 105, 1.0));
    check_backends!("add [3, 5, 7]", TOL_F32, TOL_F16, |b| {
        run(b, |cx| {
            let t = cx.input(&[3, 5, 7], &x)?;
            let u = cx.input(&[3, 5, 7], &y)?;
            let t = cx.add_(t, &u)?;
            cx.read(&t)
        })
    });
    check_backends!("add_weight [3, 5, 7]", TOL_F32, TOL_F16, |b| {
        let p = upload(b, &[3, 5, 7], HostData::F32(y.clone())).unwrap();
        run(b, |cx| {
            let t = cx.input(&[3, 5, 7], &x)?;
            let t = cx.add_param_(t, &p)?;
            cx.read(&t)
        })
    });
    let v = random(7, 3, 1.0);
    check_backends!("add_channel_bias [3, 5, 7]", TOL_F32, TOL_F16, |b| {
        run(b, |cx| {
            let t = cx.input(&[3, 5, 7], &x)?;
            let v = cx.input(&[3], &v)?;
            let t = cx.add_channel_bias_(t, &v)?;
            cx.read(&t)
        })
    });
    let s = random(8, 7, 1.0);
    check_backends!("scale_add [15, 7]", TOL_F32, TOL_F16, |b| {
        let s = upload(b, &[7], HostData::F32(s.clone())).unwrap();
        run(b, |cx| {
            let t = cx.input(&[15, 7], &x)?;
            let u = cx.input(&[15, 7], &y)?;
            let t = cx.scale_add_(t, &u, &s)?;
            cx.read(&t)
        })
    });
}

#[test]
fn affine_clamp_normalize() {
    check_backends!("affine", TOL_F32, TOL_F16, |b| {
        unary(b, 9, 1.0, |cx, t| cx.affine_(t, 1.0, 0.5, -0.25))
    });
    check_backends!("clamp [-0.5, 0.75]", TOL_F32, TOL_F16, |b| {
        unary(b, 10, 1.5, |cx, t| cx.clamp_(t, -0.5, 0.75))
    });
    let (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
    check_backends!("channel_normalize (ImageNet)", TOL_F32, TOL_F16, |b| {
        unary(b, 11, 1.0, |cx, t| cx.channel_normalize_(t, &mean, &std))
    });
    let x = random(12, 4 * 3 * 5, 1.0);
    check_backends!("channel_normalize (4 channels)", TOL_F32, TOL_F16, |b| {
        run(b, |cx| {
            let t = cx.input(&[4, 3, 5], &x)?;
            let t = cx.channel_normalize_(t, &[0.1, -0.2, 0.3, 0.0], &[0.5, 2.0, 0.25, 1.0])?;
            cx.read(&t)
        })
    });
}

#[test]
fn x0_step() {
    // DDPM scaled_linear at t = 999: c1 = √(1 − ᾱ), c2 = √ᾱ ≈ 0.068 (an error gain of ~15).
    let alpha_bar: f64 = (0..1000)
        .map(|i| {
            let s = 0.00085f64.sqrt() + (0.012f64.sqrt() - 0.00085f64.sqrt()) * i as f64 / 999.0;
            1.0 - s * s
        })
        .product();
    let (c1, c2) = ((1.0 - alpha_bar).sqrt() as f32, alpha_bar.sqrt() as f32);
    let (z, eps) = (random(13, 4 * 5 * 7, 1.0), random(14, 4 * 5 * 7, 1.0));
    check_backends!("x0_from_eps [4, 5, 7]", TOL_F32, TOL_F16, |b| {
        run(b, |cx| {
            let z = cx.input(&[4, 5, 7], &z)?;
            let e = cx.input(&[4, 5, 7], &eps)?;
            let x0 = cx.x0_from_eps(&z, &e, c1, c2)?;
            cx.read(&x0)
        })
    });
}

#[test]
fn copies() {
    let (x, y, w) = (
        random(15, 3 * 7, 1.0),
        random(16, 5 * 7, 1.0),
        random(17, 7, 1.0),
    );
    check_backends!("concat / narrow / param", TOL_F32, TOL_F16, |b| {
        let p = upload(b, &[1, 1, 7], HostData::F32(w.clone())).unwrap();
        run(b, |cx| {
            let x = cx.input(&[3, 7], &x)?;
            let y = cx.input(&[5, 7], &y)?;
            let cat = cx.concat(&[Part::T(&x), Part::W(&p), Part::T(&y)])?;
            let mid = cx.narrow(&cat, 2, 5)?;
            let p = cx.param(&p)?;
            let mut out = cx.read(&cat)?;
            out.extend(cx.read(&mid)?);
            out.extend(cx.read(&p)?);
            Ok(out)
        })
    });
}

#[test]
fn timestep_embeddings() {
    // SD's U-Net (320 → flip, shift 0), diffusers defaults (shift 1), odd and small dims.
    for (t, dim, flip, shift) in [
        (999.0, 320, true, 0.0),
        (999.0, 320, false, 1.0),
        (999.0, 32, true, 1.0),
        (999.0, 33, false, 0.0),
        (0.5, 7, true, 1.0),
    ] {
        let what = format!("timestep_embedding t {t} dim {dim} flip {flip} shift {shift}");
        check_backends!(what, TOL_F32, TOL_F16, |b| {
            run(b, |cx| {
                let e = cx.timestep_embedding(t, dim, flip, shift)?;
                cx.read(&e)
            })
        });
    }
}

/// A seeded `[c, h, w]` image resized by `f`.
fn resize<B: Backend>(
    b: &B,
    (c, h, w): (usize, usize, usize),
    seed: u64,
    f: impl Fn(&mut Exec<B>, &Tensor) -> Result<Tensor>,
) -> Vec<f32> {
    let x = random(seed, c * h * w, 1.0);
    run(b, |cx| {
        let x = cx.input(&[c, h, w], &x)?;
        let y = f(cx, &x)?;
        cx.read(&y)
    })
}

#[test]
fn nearest() {
    for (oh, ow) in [(10, 14), (7, 9), (3, 4), (5, 7), (11, 7)] {
        check_backends!(
            format!("upsample_nearest 3×5×7 → {oh}×{ow}"),
            TOL_F32,
            TOL_F16,
            |b| { resize(b, (3, 5, 7), 20, |cx, x| cx.upsample_nearest(x, oh, ow)) }
        );
    }
}

#[test]
fn bicubic_plain() {
    for (chw, oh, ow, sf) in [
        ((3, 7, 9), 16, 12, None),
        ((3, 13, 11), 5, 4, None),
        ((2, 6, 6), 6, 6, None),
        // transformers 4.x position embeddings: scale_factor (h0 + 0.1)/37.
        ((2, 37, 37), 7, 7, Some((7.1 / 37.0, 7.1 / 37.0))),
        ((3, 7, 9), 10, 10, Some((1.5, 1.2))),
    ] {
        let (c, h, w) = chw;
        check_backends!(
            format!("bicubic {c}×{h}×{w} → {oh}×{ow} sf {sf:?}"),
            TOL_F32,
            TOL_F16,
            |b| { resize(b, chw, 21, |cx, x| cx.bicubic(x, oh, ow, sf, false)) }
        );
    }
}

#[test]
fn bicubic_antialiased() {
    for (chw, oh, ow) in [((2, 5, 6), 9, 11), ((2, 37, 37), 7, 9), ((2, 13, 8), 5, 17)] {
        let (c, h, w) = chw;
        check_backends!(
            format!("bicubic antialias {c}×{h}×{w} → {oh}×{ow}"),
            TOL_F32,
            TOL_F16,
            |b| { resize(b, chw, 22, |cx, x| cx.bicubic(x, oh, ow, None, true)) }
        );
    }
}

#[test]
fn pad_crop_transpose() {
    for (chw, oh, ow) in [((3, 5, 7), 8, 8), ((1, 9, 6), 16, 8)] {
        let (c, h, w) = chw;
        check_backends!(
            format!("pad_reflect {c}×{h}×{w} → {oh}×{ow}"),
            TOL_F32,
            TOL_F16,
            |b| { resize(b, chw, 23, |cx, x| cx.pad_reflect(x, oh, ow)) }
        );
    }
    check_backends!("crop 3×8×8 → 5×7", TOL_F32, TOL_F16, |b| {
        resize(b, (3, 8, 8), 24, |cx, x| cx.crop(x, 5, 7))
    });
    // Several tiles in both directions with ragged edges; an image [C, H, W] → tokens [HW, C].
    for chw in [(37, 5, 9), (3, 5, 7)] {
        let (c, h, w) = chw;
        check_backends!(
            format!("transpose [{c}, {h}·{w}]"),
            TOL_F32,
            TOL_F16,
            |b| { resize(b, chw, 25, |cx, x| cx.transpose(x)) }
        );
    }
}

#[test]
fn bad_arguments_are_errors() {
    let b = cuda_common::sim_backend(f2idiff::backend::cuda::Precision::F32);
    let mut a = b.alloc_arena(64).unwrap();
    let v = |offset, len| View { offset, len };
    let kind = |r: Result<()>| r.unwrap_err().kind();
    // Overlapping views of an out-of-place op.
    assert_eq!(
        kind(b.add(&mut a, v(0, 10), v(5, 10))),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(b.copy(&mut a, v(0, 10), v(9, 10))),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(b.transpose(&mut a, v(0, 12), 3, 4, v(11, 12))),
        ErrorKind::InvalidArgument
    );
    // Length mismatches and bad geometry.
    assert_eq!(
        kind(b.x0_from_eps(&mut a, v(0, 4), v(4, 5), 1.0, 1.0, v(20, 4))),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(b.pad_reflect(&mut a, v(0, 4), 1, 2, 2, 4, 2, v(10, 8))),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(b.crop(&mut a, v(0, 4), 1, 2, 2, 3, 2, v(10, 6))),
        ErrorKind::InvalidArgument
    );
    // A view past the arena's end.
    assert_eq!(kind(b.silu(&mut a, v(60, 10))), ErrorKind::InvalidArgument);
    // Five channels do not fit the kernel's scalar arguments.
    let five = [0.0; 5];
    assert_eq!(
        kind(b.channel_normalize(&mut a, v(0, 10), &five, &five)),
        ErrorKind::Unsupported
    );
    assert_eq!(
        kind(b.bicubic(
            &mut a,
            v(0, 4),
            1,
            2,
            2,
            4,
            4,
            Some((2.0, 2.0)),
            true,
            v(4, 16),
            v(20, 8)
        )),
        ErrorKind::Unsupported
    );
}
