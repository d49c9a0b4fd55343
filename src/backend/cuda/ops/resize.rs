//! `upsample_nearest`, `bicubic`, `pad_reflect`, `crop`, `transpose` → `kernels/resize.cu`.
//!
//! One thread per output element except the transpose (32×32 shared-memory tiles). The plain
//! bicubic's per-axis source scale and the antialiased passes' scale / support are computed here,
//! in f32 exactly as the CPU oracle computes them, and passed to the kernels.

use super::Arena;
use crate::backend::View;
use crate::backend::cuda::{Arg, CudaBackend, Executor, Launch, disjoint, int};
use crate::error::{Error, Result};

/// Threads per block of the one-thread-per-element kernels.
const THREADS: u32 = 256;

/// Side of the transpose's square tile, and the rows of its (TILE × TILE_ROWS) block.
const TILE: usize = 32;
const TILE_ROWS: u32 = 8;

fn ptr<E: Executor>(b: &CudaBackend<E>, a: &Arena<E>, v: View) -> Result<Arg> {
    Ok(Arg::Ptr(b.act(a, v)?))
}

/// `c·h·w`, checked to fit the kernels' int arithmetic.
fn volume(c: usize, h: usize, w: usize) -> Result<usize> {
    let n = c
        .checked_mul(h)
        .and_then(|n| n.checked_mul(w))
        .ok_or_else(|| Error::InvalidArgument(format!("image {c}×{h}×{w} overflows")))?;
    int(n)?;
    Ok(n)
}

/// `x` holds at least `[c, h, w]` and `out` at least `[c, oh, ow]` (the oracle slices the
/// prefix); they do not overlap. Returns the output element count.
#[allow(clippy::too_many_arguments)]
fn check_image(
    what: &str,
    x: View,
    out: View,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Result<usize> {
    let (n_in, n_out) = (volume(c, h, w)?, volume(c, oh, ow)?);
    if x.len < n_in || out.len < n_out {
        return Err(Error::InvalidArgument(format!(
            "{what} [{c}, {h}, {w}] → [{c}, {oh}, {ow}] with views of {} and {} elements",
            x.len, out.len
        )));
    }
    if n_out > 0 && (h == 0 || w == 0) {
        return Err(Error::InvalidArgument(format!(
            "{what}: empty input {h}×{w} for a {oh}×{ow} output"
        )));
    }
    disjoint(&[out], &[x])?;
    Ok(n_out)
}

/// The common argument list `x, out, c, h, w, oh, ow` and a launch over `n` outputs.
#[allow(clippy::too_many_arguments)]
fn launch_image<E: Executor>(
    b: &CudaBackend<E>,
    a: &Arena<E>,
    op: &str,
    n: usize,
    x: View,
    out: View,
    chw: [usize; 5],
    extra: &[Arg],
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let [c, h, w, oh, ow] = chw;
    let mut args = vec![
        ptr(b, a, x)?,
        ptr(b, a, out)?,
        int(c)?,
        int(h)?,
        int(w)?,
        int(oh)?,
        int(ow)?,
    ];
    args.extend_from_slice(extra);
    b.run(op, Launch::linear(n, THREADS), &args)
}

#[allow(clippy::too_many_arguments)]
pub fn upsample_nearest<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    out: View,
) -> Result<()> {
    let n = check_image("upsample_nearest", x, out, c, h, w, oh, ow)?;
    launch_image(b, a, "upsample_nearest", n, x, out, [c, h, w, oh, ow], &[])
}

/// PyTorch's `area_pixel_compute_scale` for align_corners=False (as the oracle's `axis_scale`).
fn axis_scale(input: usize, output: usize, scale_factor: Option<f64>) -> f32 {
    match scale_factor {
        Some(s) if s > 0.0 => (1.0 / s) as f32,
        _ => input as f32 / output as f32,
    }
}

/// The antialiased pass's `(scale, support, invscale)` along an axis (`antialias::taps`).
fn aa_params(n_in: usize, n_out: usize) -> [Arg; 3] {
    let scale = n_in as f32 / n_out as f32;
    let (support, invscale) = if scale >= 1.0 {
        (2.0 * scale, 1.0 / scale)
    } else {
        (2.0, 1.0)
    };
    [Arg::F32(scale), Arg::F32(support), Arg::F32(invscale)]
}

#[allow(clippy::too_many_arguments)]
pub fn bicubic<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
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
    let n = check_image("bicubic", x, out, c, h, w, oh, ow)?;
    disjoint(&[out, scratch], &[x])?;
    if !antialias {
        let sy = axis_scale(h, oh, scale_factor.map(|s| s.0));
        let sx = axis_scale(w, ow, scale_factor.map(|s| s.1));
        let extra = [Arg::F32(sy), Arg::F32(sx)];
        return launch_image(b, a, "bicubic", n, x, out, [c, h, w, oh, ow], &extra);
    }
    if scale_factor.is_some() {
        return Err(Error::Unsupported(
            "antialiased bicubic with a scale factor".into(),
        ));
    }
    if n == 0 {
        return Ok(());
    }
    // Width pass into scratch [c, h, ow], then height pass into out.
    let rows = c * h;
    let tmp_len = volume(c, h, ow)?;
    if scratch.len < tmp_len {
        return Err(Error::InvalidArgument(format!(
            "antialiased bicubic needs {tmp_len} elements of scratch, got {}",
            scratch.len
        )));
    }
    let tmp = scratch.slice(0, tmp_len);
    let mut args = vec![
        ptr(b, a, x)?,
        ptr(b, a, tmp)?,
        int(rows)?,
        int(w)?,
        int(ow)?,
    ];
    args.extend_from_slice(&aa_params(w, ow));
    b.run("bicubic_aa_rows", Launch::linear(tmp_len, THREADS), &args)?;
    let mut args = vec![
        ptr(b, a, tmp)?,
        ptr(b, a, out)?,
        int(c)?,
        int(h)?,
        int(oh)?,
        int(ow)?,
    ];
    args.extend_from_slice(&aa_params(h, oh));
    b.run("bicubic_aa_cols", Launch::linear(n, THREADS), &args)
}

/// Elements of scratch `bicubic` needs: the antialiased width pass's `[c, h, ow]`.
pub fn bicubic_scratch(c: usize, h: usize, ow: usize, antialias: bool) -> usize {
    if antialias { c * h * ow } else { 0 }
}

#[allow(clippy::too_many_arguments)]
pub fn pad_reflect<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
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
    let n = exact_image("pad_reflect", x, out, c, h, w, oh, ow)?;
    launch_image(b, a, "pad_reflect", n, x, out, [c, h, w, oh, ow], &[])
}

/// As [`check_image`], with the exact view lengths the oracle's pad and crop require.
#[allow(clippy::too_many_arguments)]
fn exact_image(
    what: &str,
    x: View,
    out: View,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Result<usize> {
    let n = check_image(what, x, out, c, h, w, oh, ow)?;
    if x.len != c * h * w || out.len != n {
        return Err(Error::InvalidArgument(format!(
            "{what}: length mismatch: views of {} and {} elements for [{c}, {h}, {w}] → [{c}, {oh}, {ow}]",
            x.len, out.len
        )));
    }
    Ok(n)
}

#[allow(clippy::too_many_arguments)]
pub fn crop<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
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
    let n = exact_image("crop", x, out, c, h, w, oh, ow)?;
    launch_image(b, a, "crop", n, x, out, [c, h, w, oh, ow], &[])
}

pub fn transpose<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    rows: usize,
    cols: usize,
    out: View,
) -> Result<()> {
    let n = volume(1, rows, cols)?;
    if x.len != n || out.len < n {
        return Err(Error::InvalidArgument(format!(
            "transpose [{rows}, {cols}] with views of {} and {} elements",
            x.len, out.len
        )));
    }
    disjoint(&[out], &[x])?;
    if n == 0 {
        return Ok(());
    }
    let tiles = rows.div_ceil(TILE) * cols.div_ceil(TILE);
    let tiles = u32::try_from(tiles).map_err(|_| {
        Error::Unsupported(format!("transpose of [{rows}, {cols}]: too many tiles"))
    })?;
    let geometry = Launch {
        grid: [tiles, 1, 1],
        block: [TILE as u32, TILE_ROWS, 1],
        shared_bytes: 0,
    };
    let args = [ptr(b, a, x)?, ptr(b, a, out)?, int(rows)?, int(cols)?];
    b.run("transpose", geometry, &args)
}
