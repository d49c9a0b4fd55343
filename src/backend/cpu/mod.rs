//! The CPU backend: the numerical oracle every other backend is tested against, and a usable
//! fallback. f32 throughout; GEMM-based convolution and attention (the `gemm` crate, which picks
//! AVX2 / AVX-512 / NEON at run time); all cores through a rayon pool owned by the backend.

pub mod kernels;
mod views;
mod weight;

pub use weight::{CpuWeight, HALF_MIN};

use super::{Backend, Conv2d, Glu, HostData, Rows, View, same_len};
use crate::error::{Error, Result};
use kernels::{activation, antialias, attention, conv, embed, linear, norm, resize, transpose};
use std::cell::Cell;
use views::{get, get_mut, split};
use weight::Widener;

thread_local! {
    /// Set by [`Backend::plan_as_one_thread`] on the planning thread.
    static PLAN_AS_ONE_THREAD: Cell<bool> = const { Cell::new(false) };
}

pub struct CpuBackend {
    pool: rayon::ThreadPool,
    /// Where f16 / bf16 weights are widened for each use.
    widener: Widener,
}

impl CpuBackend {
    /// The most threads a backend may be asked for; more is `Error::InvalidArgument`.
    pub const MAX_THREADS: usize = 1024;

    /// A backend computing on `threads` threads (0 = all cores, as rayon counts them:
    /// `RAYON_NUM_THREADS` or the available parallelism; otherwise at most [`Self::MAX_THREADS`]).
    pub fn new(threads: usize) -> Result<CpuBackend> {
        if threads > Self::MAX_THREADS {
            return Err(Error::InvalidArgument(format!(
                "{threads} CPU threads asked for; at most {} are allowed",
                Self::MAX_THREADS
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("f2idiff-cpu-{i}"))
            .build()
            .map_err(|e| {
                Error::InvalidArgument(format!("cannot start {threads} CPU threads: {e}"))
            })?;
        Ok(CpuBackend {
            pool,
            widener: Widener::default(),
        })
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Bytes of the buffer half-precision weights are widened into (it grows to the largest
    /// f16 / bf16 weight used so far).
    pub fn widen_buffer_bytes(&self) -> usize {
        self.widener.capacity_bytes()
    }

    /// Runs `f` on the values of `w` and, when given, `b`, in f32 (see [`CpuWeight::with_f32`]).
    fn with_f32<R>(
        &self,
        w: &CpuWeight,
        b: Option<&CpuWeight>,
        f: impl FnOnce(&[f32], Option<&[f32]>) -> R,
    ) -> R {
        w.with_f32(&self.widener, |w| self.with_f32_opt(b, |b| f(w, b)))
    }

    /// Runs `f` on the values of `a` and `b` in f32.
    fn with_f32_pair<R>(
        &self,
        a: &CpuWeight,
        b: &CpuWeight,
        f: impl FnOnce(&[f32], &[f32]) -> R,
    ) -> R {
        a.with_f32(&self.widener, |a| b.with_f32(&self.widener, |b| f(a, b)))
    }

    /// Runs `f` on the values of `b`, when given, in f32.
    fn with_f32_opt<R>(&self, b: Option<&CpuWeight>, f: impl FnOnce(Option<&[f32]>) -> R) -> R {
        match b {
            Some(b) => b.with_f32(&self.widener, |b| f(Some(b))),
            None => f(None),
        }
    }

    /// The thread count scratch is planned for: the pool's, or 1 inside
    /// [`Backend::plan_as_one_thread`] on this thread.
    fn plan_threads(&self) -> usize {
        if PLAN_AS_ONE_THREAD.get() {
            1
        } else {
            self.threads()
        }
    }
}

impl Backend for CpuBackend {
    type Arena = Vec<f32>;
    type Weight = CpuWeight;

    fn name(&self) -> String {
        format!(
            "cpu ({} threads, {}, {})",
            self.threads(),
            kernels::blas::describe(),
            kernels::winograd::describe()
        )
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    fn alloc_arena(&self, elems: usize) -> Result<Vec<f32>> {
        let mut v = Vec::new();
        v.try_reserve_exact(elems)
            .map_err(|_| Error::OutOfMemory(format!("cannot allocate a {elems}-element arena")))?;
        v.resize(elems, 0.0);
        Ok(v)
    }

    fn upload(&self, shape: &[usize], data: HostData) -> Result<CpuWeight> {
        CpuWeight::from_host(shape, data)
    }

    fn write(&self, a: &mut Vec<f32>, dst: View, src: &[f32]) -> Result<()> {
        same_len(dst.len, src.len())?;
        get_mut(a, dst)?.copy_from_slice(src);
        Ok(())
    }

    fn read(&self, a: &Vec<f32>, src: View, dst: &mut [f32]) -> Result<()> {
        same_len(src.len, dst.len())?;
        dst.copy_from_slice(get(a, src)?);
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn plan_as_one_thread<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Restores the flag however `f` ends.
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                PLAN_AS_ONE_THREAD.set(self.0);
            }
        }
        let _restore = Restore(PLAN_AS_ONE_THREAD.replace(true));
        f()
    }

    fn conv2d_scratch(&self, p: &Conv2d, h: usize, w: usize) -> usize {
        p.scratch_len(h, w, self.plan_threads())
    }

    fn conv2d(
        &self,
        a: &mut Vec<f32>,
        p: &Conv2d,
        x: View,
        h: usize,
        w: usize,
        weight: &CpuWeight,
        bias: Option<&CpuWeight>,
        out: View,
        scratch: View,
        accumulate: bool,
    ) -> Result<()> {
        let ([o, s], [xs]) = split(a, [out, scratch], [x])?;
        self.install(|| {
            if conv::reads_half_weights(p, h, w) {
                // Winograd widens f16 / bf16 weights as it transforms them.
                self.with_f32_opt(bias, |b| {
                    conv::conv2d_values(p, xs, h, w, weight.values(), b, o, s, accumulate)
                })
            } else {
                self.with_f32(weight, bias, |wt, b| {
                    conv::conv2d(p, xs, h, w, wt, b, o, s, accumulate)
                })
            }
        });
        Ok(())
    }

    fn group_norm(
        &self,
        a: &mut Vec<f32>,
        x: View,
        out: View,
        c: usize,
        hw: usize,
        groups: usize,
        eps: f32,
        gamma: &CpuWeight,
        beta: &CpuWeight,
        silu: bool,
    ) -> Result<()> {
        if x == out {
            let xs = get_mut(a, x)?;
            self.install(|| {
                self.with_f32_pair(gamma, beta, |g, b| {
                    norm::group_norm_inplace(xs, c, hw, groups, eps, g, b, silu)
                })
            });
        } else {
            let ([o], [xs]) = split(a, [out], [x])?;
            self.install(|| {
                self.with_f32_pair(gamma, beta, |g, b| {
                    norm::group_norm(xs, c, hw, groups, eps, g, b, silu, o)
                })
            });
        }
        Ok(())
    }

    fn layer_norm(
        &self,
        a: &mut Vec<f32>,
        x: View,
        out: View,
        rows: usize,
        d: usize,
        eps: f32,
        gamma: &CpuWeight,
        beta: &CpuWeight,
    ) -> Result<()> {
        let ([o], [xs]) = split(a, [out], [x])?;
        self.install(|| {
            self.with_f32_pair(gamma, beta, |g, b| {
                norm::layer_norm(xs, rows, d, eps, g, b, o)
            })
        });
        Ok(())
    }

    fn linear(
        &self,
        a: &mut Vec<f32>,
        x: View,
        rows: usize,
        n_in: usize,
        w: &CpuWeight,
        n_out: usize,
        bias: Option<&CpuWeight>,
        out: View,
        accumulate: bool,
    ) -> Result<()> {
        let ([o], [xs]) = split(a, [out], [x])?;
        self.install(|| {
            self.with_f32(w, bias, |wt, b| {
                linear::linear(xs, n_in, rows, n_in, wt, n_out, b, o, n_out, accumulate)
            })
        });
        Ok(())
    }

    fn attention_scratch(&self, tq: usize, tk: usize, heads: usize, head_dim: usize) -> usize {
        let _ = (heads, head_dim);
        attention::attention_scratch_len(tq, tk, self.plan_threads())
    }

    fn attention(
        &self,
        a: &mut Vec<f32>,
        q: Rows,
        k: Rows,
        v: Rows,
        tq: usize,
        tk: usize,
        heads: usize,
        head_dim: usize,
        scale: f32,
        out: View,
        scratch: View,
    ) -> Result<()> {
        let ([o, s], [qs, ks, vs]) = split(a, [out, scratch], [q.view, k.view, v.view])?;
        self.install(|| {
            attention::attention(
                qs,
                q.row_stride,
                ks,
                k.row_stride,
                vs,
                v.row_stride,
                tq,
                tk,
                heads,
                head_dim,
                scale,
                o,
                heads * head_dim,
                s,
            )
        });
        Ok(())
    }

    fn silu(&self, a: &mut Vec<f32>, x: View) -> Result<()> {
        let xs = get_mut(a, x)?;
        self.install(|| activation::silu_inplace(xs));
        Ok(())
    }

    fn gelu(&self, a: &mut Vec<f32>, x: View, tanh_approx: bool) -> Result<()> {
        let xs = get_mut(a, x)?;
        self.install(|| activation::gelu_inplace(xs, tanh_approx));
        Ok(())
    }

    fn glu(
        &self,
        a: &mut Vec<f32>,
        kind: Glu,
        x: View,
        rows: usize,
        d: usize,
        out: View,
    ) -> Result<()> {
        let ([o], [xs]) = split(a, [out], [x])?;
        self.install(|| match kind {
            Glu::GeluGateSecond => activation::geglu(xs, rows, d, o),
            Glu::SiluGateFirst => activation::swiglu(xs, rows, d, o),
        });
        Ok(())
    }

    fn add(&self, a: &mut Vec<f32>, x: View, y: View) -> Result<()> {
        same_len(x.len, y.len)?;
        let ([xs], [ys]) = split(a, [x], [y])?;
        self.install(|| activation::add_inplace(xs, ys));
        Ok(())
    }

    fn add_weight(&self, a: &mut Vec<f32>, x: View, w: &CpuWeight) -> Result<()> {
        same_len(x.len, w.len())?;
        let xs = get_mut(a, x)?;
        self.install(|| self.with_f32(w, None, |ws, _| activation::add_inplace(xs, ws)));
        Ok(())
    }

    fn add_channel_bias(&self, a: &mut Vec<f32>, x: View, c: usize, v: View) -> Result<()> {
        same_len(c, v.len)?;
        let ([xs], [vs]) = split(a, [x], [v])?;
        let hw = xs.len() / c.max(1);
        for (row, &b) in xs.chunks_exact_mut(hw.max(1)).zip(vs) {
            row.iter_mut().for_each(|e| *e += b);
        }
        Ok(())
    }

    fn scale_add(&self, a: &mut Vec<f32>, x: View, y: View, s: &CpuWeight, d: usize) -> Result<()> {
        same_len(x.len, y.len)?;
        same_len(d, s.len())?;
        let ([xs], [ys]) = split(a, [x], [y])?;
        self.install(|| {
            self.with_f32(s, None, |ss, _| {
                activation::scale_add_inplace(xs, ys, ss, d)
            })
        });
        Ok(())
    }

    fn affine(
        &self,
        a: &mut Vec<f32>,
        x: View,
        add_before: f32,
        mul: f32,
        add_after: f32,
    ) -> Result<()> {
        get_mut(a, x)?
            .iter_mut()
            .for_each(|e| *e = (*e + add_before) * mul + add_after);
        Ok(())
    }

    fn upsample_nearest(
        &self,
        a: &mut Vec<f32>,
        x: View,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        out: View,
    ) -> Result<()> {
        let ([o], [xs]) = split(a, [out], [x])?;
        self.install(|| resize::upsample_nearest(xs, c, h, w, oh, ow, o));
        Ok(())
    }

    fn bicubic(
        &self,
        a: &mut Vec<f32>,
        x: View,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        scale_factor: Option<(f64, f64)>,
        antialias: bool,
        out: View,
        scratch: View,
    ) -> Result<()> {
        let ([o, s], [xs]) = split(a, [out, scratch], [x])?;
        match (antialias, scale_factor) {
            (false, sf) => self.install(|| resize::bicubic(xs, c, h, w, oh, ow, sf, o)),
            (true, None) => antialias::bicubic_antialias(xs, c, h, w, oh, ow, o, s),
            (true, Some(_)) => {
                return Err(Error::Unsupported(
                    "antialiased bicubic with a scale factor".into(),
                ));
            }
        }
        Ok(())
    }

    fn bicubic_scratch(&self, c: usize, h: usize, ow: usize, antialias: bool) -> usize {
        if antialias {
            antialias::scratch_len(c, h, ow)
        } else {
            0
        }
    }

    fn clamp(&self, a: &mut Vec<f32>, x: View, lo: f32, hi: f32) -> Result<()> {
        get_mut(a, x)?.iter_mut().for_each(|e| *e = e.clamp(lo, hi));
        Ok(())
    }

    fn channel_normalize(
        &self,
        a: &mut Vec<f32>,
        x: View,
        mean: &[f32],
        std: &[f32],
    ) -> Result<()> {
        same_len(mean.len(), std.len())?;
        let xs = get_mut(a, x)?;
        let hw = xs.len() / mean.len().max(1);
        for ((plane, &m), &s) in xs.chunks_exact_mut(hw.max(1)).zip(mean).zip(std) {
            plane.iter_mut().for_each(|e| *e = (*e - m) / s);
        }
        Ok(())
    }

    fn pad_reflect(
        &self,
        a: &mut Vec<f32>,
        x: View,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        out: View,
    ) -> Result<()> {
        if oh < h || ow < w || oh - h >= h.max(1) || ow - w >= w.max(1) {
            return Err(Error::InvalidArgument(format!(
                "reflect pad {h}×{w} → {oh}×{ow}"
            )));
        }
        same_len(x.len, c * h * w)?;
        same_len(out.len, c * oh * ow)?;
        let ([o], [xs]) = split(a, [out], [x])?;
        let mirror = |i: usize, n: usize| if i < n { i } else { 2 * (n - 1) - i };
        for ch in 0..c {
            for i in 0..oh {
                let src = &xs[(ch * h + mirror(i, h)) * w..][..w];
                let dst = &mut o[(ch * oh + i) * ow..][..ow];
                dst[..w].copy_from_slice(src);
                for (j, d) in dst.iter_mut().enumerate().skip(w) {
                    *d = src[mirror(j, w)];
                }
            }
        }
        Ok(())
    }

    fn crop(
        &self,
        a: &mut Vec<f32>,
        x: View,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        out: View,
    ) -> Result<()> {
        if oh > h || ow > w {
            return Err(Error::InvalidArgument(format!("crop {h}×{w} → {oh}×{ow}")));
        }
        same_len(x.len, c * h * w)?;
        same_len(out.len, c * oh * ow)?;
        let ([o], [xs]) = split(a, [out], [x])?;
        for ch in 0..c {
            for i in 0..oh {
                o[(ch * oh + i) * ow..][..ow].copy_from_slice(&xs[(ch * h + i) * w..][..ow]);
            }
        }
        Ok(())
    }

    fn x0_from_eps(
        &self,
        a: &mut Vec<f32>,
        z: View,
        eps: View,
        c1: f32,
        c2: f32,
        out: View,
    ) -> Result<()> {
        same_len(z.len, eps.len)?;
        same_len(z.len, out.len)?;
        let ([o], [zs, es]) = split(a, [out], [z, eps])?;
        for ((o, &z), &e) in o.iter_mut().zip(zs).zip(es) {
            *o = (z - c1 * e) / c2;
        }
        Ok(())
    }

    fn transpose(
        &self,
        a: &mut Vec<f32>,
        x: View,
        rows: usize,
        cols: usize,
        out: View,
    ) -> Result<()> {
        same_len(x.len, rows * cols)?;
        let ([o], [xs]) = split(a, [out], [x])?;
        self.install(|| transpose::transpose(xs, rows, cols, o));
        Ok(())
    }

    fn copy(&self, a: &mut Vec<f32>, src: View, dst: View) -> Result<()> {
        same_len(src.len, dst.len)?;
        let ([d], [s]) = split(a, [dst], [src])?;
        d.copy_from_slice(s);
        Ok(())
    }

    fn copy_weight(&self, a: &mut Vec<f32>, w: &CpuWeight, dst: View) -> Result<()> {
        same_len(dst.len, w.len())?;
        let d = get_mut(a, dst)?;
        self.install(|| self.with_f32(w, None, |ws, _| d.copy_from_slice(ws)));
        Ok(())
    }

    fn timestep_embedding(
        &self,
        a: &mut Vec<f32>,
        t: f32,
        dim: usize,
        flip_sin_to_cos: bool,
        freq_shift: f32,
        out: View,
    ) -> Result<()> {
        same_len(dim, out.len)?;
        embed::timestep_embedding(t, dim, flip_sin_to_cos, freq_shift, get_mut(a, out)?);
        Ok(())
    }
}
