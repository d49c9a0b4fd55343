//! 3×3 stride-1 convolutions with padding 1 by Winograd's minimal filtering F(2×2, 3×3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): 16 multiplications
//! per 2×2 output tile and channel pair instead of 36.
//!
//! Per call: the weights are transformed once, `U = G·g·Gᵀ` (4×4 per channel pair, stored
//! `[c_out][16][c_in]`), into scratch shared by the call's threads: at most [`MAX_WEIGHT_FLOATS`]
//! (16 MiB, 512×512 channels), so the path is taken only up to that size (the SD VAE's convs,
//! the Eff U-Net's up to 448 channels) and the scratch stays bounded. Kept transformed at load
//! time instead, the weights would cost 16/9 of their size for the engine's whole life.
//!
//! The output's 2×2 tiles are taken a block at a time: whole tile rows, or a segment of one
//! tile row when a row holds more tiles than a block (wide images). Each input channel's 4×4
//! patches are transformed, `V = Bᵀ·d·B`, into `[16][c_in][tiles]`; 16 GEMMs give
//! `M[ξ] = U[ξ]·V[ξ]`; the output transform `Y = Aᵀ·M·A` writes the 2×2 pixels (plus bias, or
//! added to the output). The transforms run along a tile row, where the patches of consecutive
//! tiles are the even and odd columns of four padded input rows, so every transform is a
//! contiguous loop the compiler vectorises.
//!
//! `F2IDIFF_WINOGRAD=off` (read once per process) sends every convolution to the im2col path:
//! for A/B measurements and for telling the two apart when chasing a numerical difference.
//!
//! Like the im2col path, block shapes depend on the shapes only and each thread takes whole
//! blocks with its own scratch (at most 2^21 floats, 8 MiB, up to 2048 channels in and out
//! together), so the output is bit-identical on any pool.

use super::conv::Conv2d;
use super::gemm::{matmul, matmul_serial};
use super::par::{SharedOut, balanced_block, run_blocks_in_slots};
use super::simd::vectorized;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Scratch floats one block aims at: `16·(c_in + c_out)` per tile. Twice the im2col path's:
/// each block's 16 GEMMs repack the whole transformed weight, so wide blocks pay off more here
/// (SD-VAE decoder at 512², 2 threads, this module's first version: blocks of 2^18 floats
/// 10.0 s, 2^20 6.85 s, 2^21 6.02 s, 2^22 5.87 s).
pub(super) const SLOT_FLOATS: usize = 1 << 21;
/// Tiles per block: fewer make the GEMMs too narrow.
const MIN_TILES: usize = 32;
const MAX_TILES: usize = 512;
/// Below this many output pixels the per-call weight transform costs more than it saves.
const MIN_PIXELS: usize = 32 * 32;
/// Half rows of a slot: four padded input rows (even and odd columns) and two combined ones.
const ROW_BUFFERS: usize = 10;
/// The largest transformed weight (`16·c_out·c_in` floats) a call builds.
pub(super) const MAX_WEIGHT_FLOATS: usize = 1 << 22;

/// Whether the path is switched on (`F2IDIFF_WINOGRAD` is not `off`).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("F2IDIFF_WINOGRAD").map_or(true, |v| v != "off"))
}

/// Whether [`super::conv::conv2d`] takes this path for an `h×w` input.
pub(super) fn applies(p: &Conv2d, h: usize, w: usize) -> bool {
    enabled()
        && p.kh == 3
        && p.kw == 3
        && p.stride == 1
        && p.pad == [1; 4]
        && h * w >= MIN_PIXELS
        && 16 * p.c_out * p.c_in <= MAX_WEIGHT_FLOATS
}

/// How a call is split: blocks of `rows` tile rows of `tn` tiles (a tile row of `tw` tiles
/// cut into `segs` segments; `segs > 1` only with `rows == 1`); `slots` threads each taking
/// whole blocks with their own scratch (1: blocks in turn, each GEMM split over the pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    c_in: usize,
    c_out: usize,
    th: usize,
    tw: usize,
    rows: usize,
    tn: usize,
    segs: usize,
    slots: usize,
}

impl Plan {
    pub(super) fn new(p: &Conv2d, h: usize, w: usize, threads: usize) -> Plan {
        let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
        let per_tile = 16 * (p.c_in + p.c_out);
        let operands = SLOT_FLOATS - ROW_BUFFERS * (MAX_TILES + 1);
        let tiles = (operands / per_tile.max(1)).clamp(MIN_TILES, MAX_TILES);
        let (rows, tn) = if tw <= tiles {
            let widest = (tiles / tw.max(1)).max(1);
            let rows = balanced_block(th, widest, (widest / 2).max(1));
            (rows.min(th).max(1), tw.max(1))
        } else {
            (1, balanced_block(tw, tiles, tiles / 2))
        };
        let segs = tw.div_ceil(tn);
        let blocks = th.div_ceil(rows) * segs;
        let slots = if threads > 1 && blocks >= threads {
            threads
        } else {
            1
        };
        Plan {
            c_in: p.c_in,
            c_out: p.c_out,
            th,
            tw,
            rows,
            tn,
            segs,
            slots,
        }
    }

    /// Tiles of a full block: the column count of the transformed operands.
    fn nt(&self) -> usize {
        self.rows * self.tn
    }

    /// Floats of one de-interleaved half of a padded input row of a block's segment.
    fn half(&self) -> usize {
        self.tn + 1
    }

    fn blocks(&self) -> usize {
        self.th.div_ceil(self.rows) * self.segs
    }

    fn slot_len(&self) -> usize {
        16 * (self.c_in + self.c_out) * self.nt() + ROW_BUFFERS * self.half()
    }

    fn weights_len(&self) -> usize {
        16 * self.c_out * self.c_in
    }

    pub(super) fn scratch_len(&self) -> usize {
        self.weights_len() + self.slots * self.slot_len()
    }
}

/// `out[c_out, h, w]` (+)= conv3×3(`x[c_in, h, w]`, padding 1) + `bias`, as
/// [`super::conv::conv2d`] defines it, planned by `plan` (from [`Plan::new`] on these shapes).
#[allow(clippy::too_many_arguments)]
pub(super) fn conv3x3(
    x: &[f32],
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    accumulate: bool,
    plan: Plan,
) {
    let (u, rest) = scratch.split_at_mut(plan.weights_len());
    transform_weights(weight, plan.c_in, u);
    let slot_len = plan.slot_len();
    assert!(
        rest.len() >= slot_len,
        "winograd: scratch has {} floats, needs at least {}",
        rest.len() + plan.weights_len(),
        plan.weights_len() + slot_len
    );
    let blocks = plan.blocks();
    let slots = plan.slots.min(rest.len() / slot_len).min(blocks).max(1);
    let call = Call {
        x,
        h,
        w,
        u,
        bias,
        accumulate,
        plan,
        out: SharedOut::new(out),
    };
    run_blocks_in_slots(rest, slot_len, slots, blocks, |b, slot, parallel| {
        call.block(b, slot, parallel)
    });
}

/// `u[co][ξ][ci]` = (G·g·Gᵀ)[ξ] of the 3×3 kernel `g` of (co, ci), with
/// G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
fn transform_weights(weight: &[f32], c_in: usize, u: &mut [f32]) {
    u.par_chunks_mut(16 * c_in)
        .enumerate()
        .for_each(|(co, uc)| {
            for ci in 0..c_in {
                let g = &weight[(co * c_in + ci) * 9..][..9];
                let mut t = [[0f32; 3]; 4];
                for j in 0..3 {
                    let [a, b, c] = [g[j], g[3 + j], g[6 + j]];
                    t[0][j] = a;
                    t[1][j] = 0.5 * (a + b + c);
                    t[2][j] = 0.5 * (a - b + c);
                    t[3][j] = c;
                }
                for (i, [a, b, c]) in t.into_iter().enumerate() {
                    let row = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
                    for (j, v) in row.into_iter().enumerate() {
                        uc[(i * 4 + j) * c_in + ci] = v;
                    }
                }
            }
        });
}

/// The read-only description of one call, shared by the threads.
struct Call<'a> {
    x: &'a [f32],
    h: usize,
    w: usize,
    u: &'a [f32],
    bias: Option<&'a [f32]>,
    accumulate: bool,
    plan: Plan,
    out: SharedOut<'a>,
}

impl Call<'_> {
    /// Block `b`: tile rows `ty0..ty0 + rows`, tiles `tx0..tx0 + tn` of each (clipped): input
    /// transform, 16 GEMMs, output transform.
    fn block(&self, b: usize, slot: &mut [f32], parallel: bool) {
        let Plan {
            c_in,
            c_out,
            tw,
            tn,
            segs,
            ..
        } = self.plan;
        let nt = self.plan.nt();
        let (ty0, tx0) = ((b / segs) * self.plan.rows, (b % segs) * tn);
        let rows = self.plan.rows.min(self.plan.th - ty0);
        let seg = Segment {
            tx0,
            len: tn.min(tw - tx0),
        };
        // Columns of V and M: tile (r, k) of the block at r·tn + k (segments: one row).
        let n = (rows - 1) * tn + seg.len;
        let (v, rest) = slot.split_at_mut(16 * c_in * nt);
        let (m, rest) = rest.split_at_mut(16 * c_out * nt);
        let rows_buf = &mut rest[..ROW_BUFFERS * self.plan.half()];
        for ci in 0..c_in {
            for r in 0..rows {
                self.transform_input(ci, ty0 + r, seg, rows_buf, v, r * tn);
            }
        }
        for xi in 0..16 {
            let (a, b) = (&self.u[xi * c_in..], &v[xi * c_in * nt..]);
            let c = &mut m[xi * c_out * nt..];
            if parallel {
                matmul(c_out, n, c_in, a, 16 * c_in, 1, b, nt, 1, c, nt, false);
            } else {
                matmul_serial(c_out, n, c_in, a, 16 * c_in, 1, b, nt, 1, c, nt, false);
            }
        }
        let (even, odd) = rows_buf.split_at_mut(tn);
        for co in 0..c_out {
            for r in 0..rows {
                self.transform_output(co, ty0 + r, seg, m, r * tn, even, &mut odd[..tn]);
            }
        }
    }

    /// `V[ξ][ci][col0 + k]` for the tiles `tx0 + k` of the segment in tile row `ty`: Bᵀ·d·B
    /// with Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]. Tile `tx0 + k`
    /// reads the image's columns `2(tx0 + k) − 1 ..= 2(tx0 + k) + 2` (zero outside): with the
    /// four rows split into their even (`e`) and odd (`o`) padded columns, `e[j] = x[2(tx0 +
    /// j) − 1]`, `o[j] = x[2(tx0 + j)]`, that is `e[k], o[k], e[k + 1], o[k + 1]`. So the
    /// transform is first down the rows (on `e` and `o` separately), then across, every step a
    /// contiguous loop the compiler vectorises.
    fn transform_input(
        &self,
        ci: usize,
        ty: usize,
        seg: Segment,
        buf: &mut [f32],
        v: &mut [f32],
        col0: usize,
    ) {
        let (h, w, c_in, nt) = (self.h, self.w, self.plan.c_in, self.plan.nt());
        let (tn, half) = (seg.len, self.plan.half());
        let plane = &self.x[ci * h * w..][..h * w];
        let (rows, rest) = buf.split_at_mut(8 * half);
        let (qe, qo) = rest.split_at_mut(half);
        for (i, row) in rows.chunks_exact_mut(2 * half).enumerate() {
            let (e, o) = row.split_at_mut(half);
            let (e, o) = (&mut e[..=tn], &mut o[..=tn]);
            match (2 * ty + i).checked_sub(1).filter(|&y| y < h) {
                Some(y) => vectorized(|| split_columns(&plane[y * w..][..w], 2 * seg.tx0, e, o)),
                None => {
                    e.fill(0.0);
                    o.fill(0.0);
                }
            }
        }
        let row = |i: usize| {
            let r = &rows[2 * i * half..][..2 * half];
            (&r[..=tn], &r[half..half + tn + 1])
        };
        let ((e0, o0), (e1, o1), (e2, o2), (e3, o3)) = (row(0), row(1), row(2), row(3));
        let (qe, qo) = (&mut qe[..=tn], &mut qo[..=tn]);
        let at = |i: usize, j: usize| ((i * 4 + j) * c_in + ci) * nt + col0;
        vectorized(|| {
            for i in 0..4 {
                // Row i of Bᵀ down the four rows: 0 − 2, 1 + 2, 2 − 1, 1 − 3.
                let ((a, b), (ao, bo), sign) = match i {
                    0 => ((e0, e2), (o0, o2), -1.0f32),
                    1 => ((e2, e1), (o2, o1), 1.0),
                    2 => ((e2, e1), (o2, o1), -1.0),
                    _ => ((e1, e3), (o1, o3), -1.0),
                };
                // (±1 products are exact: a + (−1)·b is a − b.)
                for k in 0..=tn {
                    qe[k] = a[k] + sign * b[k];
                    qo[k] = ao[k] + sign * bo[k];
                }
                // Then across: e0 − e1, o0 + e1, e1 − o0, o0 − o1 of the tile's four columns.
                let (qe, qo) = (&*qe, &*qo);
                let d = &mut v[at(i, 0)..][..tn];
                for k in 0..tn {
                    d[k] = qe[k] - qe[k + 1];
                }
                let d = &mut v[at(i, 1)..][..tn];
                for k in 0..tn {
                    d[k] = qo[k] + qe[k + 1];
                }
                let d = &mut v[at(i, 2)..][..tn];
                for k in 0..tn {
                    d[k] = qe[k + 1] - qo[k];
                }
                let d = &mut v[at(i, 3)..][..tn];
                for k in 0..tn {
                    d[k] = qo[k] - qo[k + 1];
                }
            }
        });
    }

    /// Output rows `2ty`, `2ty + 1`, columns `2·tx0..` of channel `co`, from
    /// `M[ξ][co][col0..col0 + len]`: Aᵀ·M·A with Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]], plus
    /// the bias. Each row's even and odd pixels are computed apart (`even`, `odd`: `len`
    /// floats each), then interleaved into the output.
    #[allow(clippy::too_many_arguments)]
    fn transform_output(
        &self,
        co: usize,
        ty: usize,
        seg: Segment,
        m: &[f32],
        col0: usize,
        even: &mut [f32],
        odd: &mut [f32],
    ) {
        let (h, c_out, nt, tn) = (self.h, self.plan.c_out, self.plan.nt(), seg.len);
        let (even, odd) = (&mut even[..tn], &mut odd[..tn]);
        // The segment's output columns.
        let (x0, w) = (2 * seg.tx0, (self.w - 2 * seg.tx0).min(2 * tn));
        let b = self.bias.map_or(0.0, |b| b[co]);
        let s: [&[f32]; 16] = std::array::from_fn(|xi| &m[(xi * c_out + co) * nt + col0..][..tn]);
        for (i, y) in [2 * ty, 2 * ty + 1].into_iter().enumerate() {
            if y >= h {
                break;
            }
            // Row i of Aᵀ·M (M's rows 0 + 1 + 2, or 1 − 2 − 3), then times A across (±1 products
            // are exact).
            let (r, sign) = if i == 0 { (0, 1.0f32) } else { (4, -1.0) };
            let (p0, p1, p2, p3) = (s[r], s[r + 1], s[r + 2], s[r + 3]);
            let (q0, q1, q2, q3) = (s[r + 4], s[r + 5], s[r + 6], s[r + 7]);
            let (t0, t1, t2, t3) = (s[r + 8], s[r + 9], s[r + 10], s[r + 11]);
            // SAFETY: the block owning this segment of tile row `ty` is the only writer of
            // these columns of output rows 2ty and 2ty + 1 (of every channel), and they lie
            // inside `out` because y < h and x0 + w ≤ the image's width.
            let dst = unsafe { self.out.slice((co * h + y) * self.w + x0, w) };
            vectorized(|| {
                for k in 0..tn {
                    let a0 = p0[k] + sign * q0[k] + sign * t0[k];
                    let a1 = p1[k] + sign * q1[k] + sign * t1[k];
                    let a2 = p2[k] + sign * q2[k] + sign * t2[k];
                    let a3 = p3[k] + sign * q3[k] + sign * t3[k];
                    even[k] = a0 + a1 + a2 + b;
                    odd[k] = a1 - a2 - a3 + b;
                }
                interleave(dst, even, odd, self.accumulate);
            });
        }
    }
}

/// `e[j] = row[x0 + 2j − 1]`, `o[j] = row[x0 + 2j]` (0 outside the row): a padded segment of
/// an input row, split into its even and odd padded columns.
#[inline(always)]
fn split_columns(row: &[f32], x0: usize, e: &mut [f32], o: &mut [f32]) {
    let get = |x: isize| {
        if x >= 0 && (x as usize) < row.len() {
            row[x as usize]
        } else {
            0.0
        }
    };
    // The inner part, where every read is inside the row, without bounds tests.
    let x0 = x0 as isize;
    let n = e.len();
    let inner = |j: usize| {
        let x = x0 + 2 * j as isize;
        x >= 1 && (x as usize) < row.len()
    };
    let (lo, hi) = (
        (0..n).find(|&j| inner(j)).unwrap_or(n),
        (0..n).rfind(|&j| inner(j)).map_or(0, |j| j + 1),
    );
    for j in (0..lo).chain(hi.max(lo)..n) {
        let x = x0 + 2 * j as isize;
        e[j] = get(x - 1);
        o[j] = get(x);
    }
    if lo < hi {
        let src = &row[(x0 + 2 * lo as isize - 1) as usize..][..2 * (hi - lo)];
        for ((e, o), pair) in e[lo..hi]
            .iter_mut()
            .zip(&mut o[lo..hi])
            .zip(src.chunks_exact(2))
        {
            *e = pair[0];
            *o = pair[1];
        }
    }
}

/// `dst[2k] (+)= even[k]`, `dst[2k + 1] (+)= odd[k]` for the pixels `dst` holds.
#[inline(always)]
fn interleave(dst: &mut [f32], even: &[f32], odd: &[f32], accumulate: bool) {
    let pairs = dst.len() / 2;
    let (body, tail) = dst.split_at_mut(2 * pairs);
    let it = body.chunks_exact_mut(2).zip(even.iter().zip(odd));
    if accumulate {
        it.for_each(|(d, (&e, &o))| {
            d[0] += e;
            d[1] += o;
        });
        if let Some(t) = tail.first_mut() {
            *t += even[pairs];
        }
    } else {
        it.for_each(|(d, (&e, &o))| {
            d[0] = e;
            d[1] = o;
        });
        if let Some(t) = tail.first_mut() {
            *t = even[pairs];
        }
    }
}

/// Tiles `tx0..tx0 + len` of a tile row.
#[derive(Clone, Copy)]
struct Segment {
    tx0: usize,
    len: usize,
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, in_pool, rel_l2};
    use super::*;

    fn shape(c_in: usize, c_out: usize) -> Conv2d {
        Conv2d {
            c_in,
            c_out,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: [1; 4],
        }
    }

    /// Direct 3×3 convolution with padding 1, in f64.
    fn reference(p: &Conv2d, x: &[f32], h: usize, w: usize, wt: &[f32], b: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; p.c_out * h * w];
        for co in 0..p.c_out {
            for y in 0..h {
                for xo in 0..w {
                    let mut s = b[co] as f64;
                    for ci in 0..p.c_in {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = ((y + ky) as isize - 1, (xo + kx) as isize - 1);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let v = x[(ci * h + iy as usize) * w + ix as usize] as f64;
                                s += v * wt[(co * p.c_in + ci) * 9 + ky * 3 + kx] as f64;
                            }
                        }
                    }
                    out[(co * h + y) * w + xo] = s as f32;
                }
            }
        }
        out
    }

    fn run(
        p: &Conv2d,
        x: &[f32],
        (h, w): (usize, usize),
        wt: &[f32],
        b: &[f32],
        out: &mut [f32],
        acc: bool,
    ) {
        let plan = Plan::new(p, h, w, rayon::current_num_threads());
        let mut scratch = vec![f32::NAN; plan.scratch_len()];
        conv3x3(x, h, w, wt, Some(b), out, &mut scratch, acc, plan);
    }

    /// Odd and even sizes (a last half tile in either direction), a single pixel, more rows than
    /// one block holds, tile rows cut into segments (wider than a block, odd width); overwritten
    /// and accumulated; one and two threads.
    #[test]
    fn matches_the_direct_convolution() {
        let mut rng = Rng::new(7);
        for (c_in, c_out, h, w) in [
            (3, 4, 7, 9),
            (5, 8, 8, 13),
            (17, 6, 13, 6),
            (1, 1, 1, 1),
            (4, 3, 2, 2),
            (6, 5, 70, 33),
            (3, 5, 6, 1031),
        ] {
            let p = shape(c_in, c_out);
            let x = rng.vec(c_in * h * w);
            let wt = rng.vec(c_out * c_in * 9);
            let b = rng.vec(c_out);
            let out0 = rng.vec(c_out * h * w);
            let want = reference(&p, &x, h, w, &wt, &b);
            let want_acc: Vec<f32> = want.iter().zip(&out0).map(|(a, o)| a + o).collect();
            for threads in [1, 2] {
                let mut out = vec![f32::NAN; c_out * h * w];
                in_pool(threads, || run(&p, &x, (h, w), &wt, &b, &mut out, false));
                let err = rel_l2(&out, &want);
                assert!(err <= 1e-5, "{p:?} on {h}×{w}, {threads} threads: {err:e}");
                let mut out = out0.clone();
                in_pool(threads, || run(&p, &x, (h, w), &wt, &b, &mut out, true));
                let err = rel_l2(&out, &want_acc);
                assert!(err <= 1e-5, "{p:?} on {h}×{w} accumulated: {err:e}");
            }
        }
    }

    /// Block shapes depend on the shapes only: the same bits on 1, 2 and 3 threads, for blocks
    /// of whole tile rows and for segments of one.
    #[test]
    fn any_thread_count_gives_identical_bits() {
        let mut rng = Rng::new(8);
        for (p, h, w, cut) in [(shape(12, 20), 96, 45, false), (shape(4, 6), 9, 2100, true)] {
            let x = rng.vec(p.c_in * h * w);
            let wt = rng.vec(p.c_out * p.c_in * 9);
            let b = rng.vec(p.c_out);
            let bits = |threads| {
                let mut out = vec![0f32; p.c_out * h * w];
                in_pool(threads, || run(&p, &x, (h, w), &wt, &b, &mut out, false));
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let one = bits(1);
            let plan = Plan::new(&p, h, w, 2);
            assert_eq!((plan.slots, plan.segs > 1), (2, cut), "{plan:?}");
            assert_eq!(one, bits(2));
            assert_eq!(one, bits(3));
        }
    }

    /// The scratch of a thread stays within 2^21 floats on wide images, up to 2048 channels.
    #[test]
    fn a_thread_needs_at_most_eight_mib() {
        for (c_in, c_out) in [(3, 128), (128, 128), (256, 256), (512, 512), (1024, 1024)] {
            for (h, w) in [(32, 32), (512, 512), (64, 2048), (2048, 64)] {
                let p = shape(c_in, c_out);
                let plan = Plan::new(&p, h, w, 1);
                assert!(
                    plan.slot_len() <= SLOT_FLOATS,
                    "{plan:?}: {}",
                    plan.slot_len()
                );
            }
        }
    }
}
