//! im2col for one block of output pixels: the convolution's right-hand GEMM operand.
//!
//! Row `r = (ci·kh + ky)·kw + kx` of the block holds, for each output pixel `p` of the block, the
//! input sample that kernel tap `(ci, ky, kx)` sees at `p` (0 in the padding). That row order is
//! PyTorch's weight layout `[c_out, c_in, kh, kw]` flattened, so the weight is used as is. Pixels
//! are flattened `y·wo + x`, so a block may start or end mid-row; a stride-1 row segment is one
//! `memcpy`.

use super::conv::Conv2d;
use rayon::prelude::*;

/// Input image and output geometry of a convolution: what every im2col row needs.
#[derive(Clone, Copy)]
pub(super) struct Geometry<'a> {
    pub p: &'a Conv2d,
    pub x: &'a [f32],
    pub h: usize,
    pub w: usize,
    pub wo: usize,
}

/// Fills `cols[K, n]` (row stride `n`, `K = c_in·kh·kw`) for output pixels `p0..p0 + n`,
/// rows in parallel on the current pool when `parallel`.
pub(super) fn im2col(g: Geometry<'_>, p0: usize, n: usize, cols: &mut [f32], parallel: bool) {
    let rows = &mut cols[..g.p.c_in * g.p.kh * g.p.kw * n];
    if parallel && rayon::current_num_threads() > 1 {
        // Each row is a few KiB of copying: group rows so a task is worth scheduling.
        let min_rows = (16384 / n.max(1)).max(1);
        rows.par_chunks_mut(n)
            .with_min_len(min_rows)
            .enumerate()
            .for_each(|(r, row)| fill_row(g, r, p0, row));
    } else {
        for (r, row) in rows.chunks_exact_mut(n).enumerate() {
            fill_row(g, r, p0, row);
        }
    }
}

/// One im2col row: tap `r` over output pixels `p0..p0 + row.len()`.
fn fill_row(g: Geometry<'_>, r: usize, p0: usize, row: &mut [f32]) {
    let p = g.p;
    let (ci, tap) = (r / (p.kh * p.kw), r % (p.kh * p.kw));
    let (ky, kx) = (tap / p.kw, tap % p.kw);
    let plane = &g.x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
    // Output columns whose input column x·s + kx − pad_left lies in 0..w.
    let (x_lo, x_hi) = valid_range(g.w, kx, p.pad[2], p.stride, g.wo);
    let mut done = 0;
    while done < row.len() {
        let (y, xa) = ((p0 + done) / g.wo, (p0 + done) % g.wo);
        let xb = (xa + row.len() - done).min(g.wo);
        let seg = &mut row[done..done + xb - xa];
        done += xb - xa;
        // Input row y·s + ky − pad_top, if it is not padding.
        let iy = (y * p.stride + ky)
            .checked_sub(p.pad[0])
            .filter(|&iy| iy < g.h);
        let Some(iy) = iy else {
            seg.fill(0.0);
            continue;
        };
        let src = &plane[iy * g.w..(iy + 1) * g.w];
        let (lo, hi) = (x_lo.clamp(xa, xb), x_hi.clamp(xa, xb));
        seg[..lo - xa].fill(0.0);
        seg[hi.max(lo) - xa..].fill(0.0);
        if hi > lo {
            // Input column of output column `lo`; in range because lo ≥ x_lo.
            let ix0 = lo * p.stride + kx - p.pad[2];
            let dst = &mut seg[lo - xa..hi - xa];
            if p.stride == 1 {
                dst.copy_from_slice(&src[ix0..ix0 + dst.len()]);
            } else {
                for (d, s) in dst.iter_mut().zip(src[ix0..].iter().step_by(p.stride)) {
                    *d = *s;
                }
            }
        }
    }
}

/// Output columns `x` in `lo..hi` for which `x·stride + k − pad` is a valid index into `0..len`.
pub(super) fn valid_range(
    len: usize,
    k: usize,
    pad: usize,
    stride: usize,
    out_len: usize,
) -> (usize, usize) {
    // x·s + k ≥ pad  ⇔  x ≥ ceil((pad − k) / s)
    let lo = pad.saturating_sub(k).div_ceil(stride);
    // x·s + k − pad ≤ len − 1  ⇔  x ≤ (len − 1 + pad − k) / s
    let hi = match (len + pad).checked_sub(k + 1) {
        Some(top) => top / stride + 1,
        None => 0,
    };
    (lo.min(out_len), hi.min(out_len))
}
