//! Elementwise and small ops → `kernels/elementwise.cu`: activations, GLU, residual adds,
//! affine/clamp/normalise, the x0 step, copies, the timestep embedding.
//!
//! Every kernel is one thread per output element (`Launch::linear`, 256-thread blocks); empty
//! views launch nothing. Checks mirror the CPU oracle's: equal lengths where it compares them,
//! no output overlapping an input ([`disjoint`]) unless the op works in place.

use super::Arena;
use crate::backend::cuda::{Arg, CudaBackend, CudaWeight, Executor, Launch, disjoint, int};
use crate::backend::{Glu, View};
use crate::error::{Error, Result};

/// Threads per block of every kernel here.
const THREADS: u32 = 256;

/// Most channels `channel_normalize` takes (their means and stds travel as scalar arguments).
const MAX_NORMALIZE_CHANNELS: usize = 4;

fn same_len(what: &str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::InvalidArgument(format!(
            "{what}: length mismatch: {a} vs {b}"
        )));
    }
    Ok(())
}

/// Launches `op` over `n` elements, one thread each; nothing when `n` is 0.
fn launch_n<E: Executor>(b: &CudaBackend<E>, op: &str, n: usize, args: &[Arg]) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    b.run(op, Launch::linear(n, THREADS), args)
}

fn ptr<E: Executor>(b: &CudaBackend<E>, a: &Arena<E>, v: View) -> Result<Arg> {
    Ok(Arg::Ptr(b.act(a, v)?))
}

fn weight<E: Executor>(b: &CudaBackend<E>, w: &CudaWeight) -> Result<Arg> {
    Ok(Arg::Ptr(b.weight(w)?))
}

pub fn silu<E: Executor>(b: &CudaBackend<E>, a: &mut Arena<E>, x: View) -> Result<()> {
    let args = [ptr(b, a, x)?, int(x.len)?];
    launch_n(b, "silu", x.len, &args)
}

pub fn gelu<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    tanh_approx: bool,
) -> Result<()> {
    let args = [ptr(b, a, x)?, int(x.len)?, Arg::I32(tanh_approx as i32)];
    launch_n(b, "gelu", x.len, &args)
}

pub fn glu<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    kind: Glu,
    x: View,
    rows: usize,
    d: usize,
    out: View,
) -> Result<()> {
    let n = rows
        .checked_mul(d)
        .ok_or_else(|| Error::InvalidArgument(format!("glu {rows}×{d} overflows")))?;
    // The kernel indexes x up to rows·2d: that must fit its int arithmetic.
    int(n.saturating_mul(2))?;
    if x.len < 2 * n || out.len < n {
        return Err(Error::InvalidArgument(format!(
            "glu [{rows}, 2·{d}] → [{rows}, {d}] with views of {} and {} elements",
            x.len, out.len
        )));
    }
    disjoint(&[out], &[x])?;
    let kind = match kind {
        Glu::GeluGateSecond => 0,
        Glu::SiluGateFirst => 1,
    };
    let args = [
        ptr(b, a, x)?,
        ptr(b, a, out)?,
        int(rows)?,
        int(d)?,
        Arg::I32(kind),
    ];
    launch_n(b, "glu", n, &args)
}

pub fn add<E: Executor>(b: &CudaBackend<E>, a: &mut Arena<E>, x: View, y: View) -> Result<()> {
    same_len("add", x.len, y.len)?;
    disjoint(&[x], &[y])?;
    let args = [ptr(b, a, x)?, ptr(b, a, y)?, int(x.len)?];
    launch_n(b, "add", x.len, &args)
}

pub fn add_weight<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    w: &CudaWeight,
) -> Result<()> {
    same_len("add_weight", x.len, w.len())?;
    if x.len == 0 {
        return Ok(());
    }
    let args = [ptr(b, a, x)?, weight(b, w)?, int(x.len)?];
    launch_n(b, "add", x.len, &args)
}

pub fn add_channel_bias<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    c: usize,
    v: View,
) -> Result<()> {
    same_len("add_channel_bias", c, v.len)?;
    disjoint(&[x], &[v])?;
    if c == 0 {
        return Ok(());
    }
    // As the oracle: x is [c, len / c]; a remainder past c·hw is left alone.
    let hw = x.len / c;
    let n = c * hw;
    let args = [ptr(b, a, x)?, ptr(b, a, v)?, int(hw)?, int(n)?];
    launch_n(b, "add_channel_bias", n, &args)
}

pub fn scale_add<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    y: View,
    s: &CudaWeight,
    d: usize,
) -> Result<()> {
    same_len("scale_add", x.len, y.len)?;
    same_len("scale_add scale", d, s.len())?;
    if x.len == 0 {
        return Ok(());
    }
    if d == 0 || x.len % d != 0 {
        return Err(Error::InvalidArgument(format!(
            "scale_add: {} elements are not rows of {d}",
            x.len
        )));
    }
    disjoint(&[x], &[y])?;
    let args = [
        ptr(b, a, x)?,
        ptr(b, a, y)?,
        weight(b, s)?,
        int(d)?,
        int(x.len)?,
    ];
    launch_n(b, "scale_add", x.len, &args)
}

pub fn affine<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    add_before: f32,
    mul: f32,
    add_after: f32,
) -> Result<()> {
    let args = [
        ptr(b, a, x)?,
        int(x.len)?,
        Arg::F32(add_before),
        Arg::F32(mul),
        Arg::F32(add_after),
    ];
    launch_n(b, "affine", x.len, &args)
}

pub fn clamp<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    lo: f32,
    hi: f32,
) -> Result<()> {
    // f32::clamp, which the oracle uses, panics on these.
    if lo > hi || lo.is_nan() || hi.is_nan() {
        return Err(Error::InvalidArgument(format!("clamp to [{lo}, {hi}]")));
    }
    let args = [ptr(b, a, x)?, int(x.len)?, Arg::F32(lo), Arg::F32(hi)];
    launch_n(b, "clamp", x.len, &args)
}

/// Up to [`MAX_NORMALIZE_CHANNELS`] channels, their means and stds passed as scalar kernel
/// arguments (no upload; RGB needs 3).
pub fn channel_normalize<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    mean: &[f32],
    std: &[f32],
) -> Result<()> {
    same_len("channel_normalize", mean.len(), std.len())?;
    let c = mean.len();
    if c > MAX_NORMALIZE_CHANNELS {
        return Err(Error::Unsupported(format!(
            "channel_normalize on the CUDA backend takes at most {MAX_NORMALIZE_CHANNELS} channels, not {c}"
        )));
    }
    if c == 0 {
        return Ok(());
    }
    let hw = x.len / c;
    let n = c * hw;
    // Unused slots: 0 and 1, never read.
    let pick = |v: &[f32], k: usize, unused: f32| Arg::F32(v.get(k).copied().unwrap_or(unused));
    let args = [
        ptr(b, a, x)?,
        int(hw)?,
        int(n)?,
        pick(mean, 0, 0.0),
        pick(mean, 1, 0.0),
        pick(mean, 2, 0.0),
        pick(mean, 3, 0.0),
        pick(std, 0, 1.0),
        pick(std, 1, 1.0),
        pick(std, 2, 1.0),
        pick(std, 3, 1.0),
    ];
    launch_n(b, "channel_normalize", n, &args)
}

pub fn x0_from_eps<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    z: View,
    eps: View,
    c1: f32,
    c2: f32,
    out: View,
) -> Result<()> {
    same_len("x0_from_eps", z.len, eps.len)?;
    same_len("x0_from_eps", z.len, out.len)?;
    disjoint(&[out], &[z, eps])?;
    let args = [
        ptr(b, a, z)?,
        ptr(b, a, eps)?,
        ptr(b, a, out)?,
        int(z.len)?,
        Arg::F32(c1),
        Arg::F32(c2),
    ];
    launch_n(b, "x0_from_eps", z.len, &args)
}

pub fn copy<E: Executor>(b: &CudaBackend<E>, a: &mut Arena<E>, src: View, dst: View) -> Result<()> {
    same_len("copy", src.len, dst.len)?;
    disjoint(&[dst], &[src])?;
    let args = [ptr(b, a, src)?, ptr(b, a, dst)?, int(src.len)?];
    launch_n(b, "copy", src.len, &args)
}

pub fn copy_weight<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    w: &CudaWeight,
    dst: View,
) -> Result<()> {
    same_len("copy_weight", dst.len, w.len())?;
    if dst.len == 0 {
        return Ok(());
    }
    let args = [weight(b, w)?, ptr(b, a, dst)?, int(dst.len)?];
    launch_n(b, "copy", dst.len, &args)
}

/// The host rounds the two scalars to f32 as PyTorch does (see `cpu::kernels::embed`); the
/// kernel does the rest.
pub fn timestep_embedding<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    t: f32,
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f32,
    out: View,
) -> Result<()> {
    same_len("timestep_embedding", dim, out.len)?;
    let neg_log_period = -(10000f64.ln()) as f32;
    let denom = ((dim / 2) as f64 - freq_shift as f64) as f32;
    let args = [
        ptr(b, a, out)?,
        int(dim)?,
        Arg::F32(t),
        Arg::F32(neg_log_period),
        Arg::F32(denom),
        Arg::I32(flip_sin_to_cos as i32),
    ];
    launch_n(b, "timestep_embedding", dim, &args)
}
