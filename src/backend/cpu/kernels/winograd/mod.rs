//! 3×3 stride-1 convolutions with padding 1 by Winograd's minimal filtering F(m×m, 3×3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): F(4×4, 3×3) takes
//! 36 multiplications per 4×4 output tile and channel pair instead of 144, F(2×2, 3×3) 16
//! instead of 36 ([`variant`] has both, their matrices and rounding errors).
//!
//! Per call: the weights are transformed once, `U = G·g·Gᵀ` (n×n per channel pair, stored
//! `[c_out][n²][c_in]`), into scratch shared by the call's threads: at most
//! [`MAX_WEIGHT_FLOATS`] (36 MiB, 512×512 channels in F(4×4): every SD-VAE convolution), so
//! the scratch stays bounded; wider convolutions are computed in groups of output channels
//! whose weights fit (SD-2.1 U-Net at 512², 2 threads: 3.70 → 3.55 s; arena 96 → 104 MiB).
//! Kept transformed at load time instead, the weights would cost 4× their size for the
//! engine's life.
//!
//! The output's m×m tiles are taken a block at a time: whole tile rows, or a segment of one
//! tile row when a row holds more tiles than a block (wide images). Each input channel's n×n
//! patches are transformed, `V = Bᵀ·d·B`, into `[n²][c_in][tiles]`; n² GEMMs give
//! `M[ξ] = U[ξ]·V[ξ]`; the output transform `Y = Aᵀ·M·A` writes the m×m pixels (plus bias, or
//! added to the output). The transforms run along a tile row, where the patches of consecutive
//! tiles are the m phases (columns ≡ φ mod m) of n padded input rows, so every transform is a
//! contiguous loop the compiler vectorises.
//!
//! `F2IDIFF_WINOGRAD` (read once per process): `off` sends every convolution to the im2col path,
//! `2x2` uses F(2×2) only (4× less rounding error than F(4×4), slower) — for A/B measurements
//! and for telling the paths apart when chasing a numerical difference.
//!
//! Like the im2col path, block shapes depend on the shapes only and each thread takes whole
//! blocks with its own scratch (at most 2^22 floats, 16 MiB, up to 2048 channels in and out
//! together), so the output is bit-identical on any pool.

mod variant;

use super::conv::Conv2d;
use super::gemm::{matmul, matmul_serial};
use super::par::{SharedOut, balanced_block, run_blocks_in_slots};
use super::simd::vectorized;
use super::widen::{Values, widen_serial};
use rayon::prelude::*;
use std::sync::OnceLock;
use variant::{F2, F4, Variant, combine};

/// Scratch floats one block aims at: `n²·(c_in + c_out)` per tile. Four times the im2col
/// path's: each block's GEMMs repack the whole transformed weight, so wide blocks pay off more
/// here (SD-VAE decoder at 512², 2 threads, F(2×2): blocks of 2^18 floats 10.0 s, 2^20 6.85 s,
/// 2^21 6.02 s, 2^22 5.87 s; F(4×4): 2^21 4.91 s, 2^22 4.54 s).
pub(super) const SLOT_FLOATS: usize = 1 << 22;
/// Tiles per block: fewer make the GEMMs too narrow.
const MIN_TILES: usize = 16;

const MAX_TILES: usize = 512;
/// Output tiles a call needs before a variant pays for its per-call weight transform (n²·c_in
/// weights per output channel, whatever the image) and its input and output transforms.
const MIN_CALL_TILES: usize = 256;
/// The same for narrow convolutions (fewer than [`WIDE`] channels in or out), whose n² GEMMs are
/// too small to gain what the transforms cost.
const MIN_CALL_TILES_NARROW: usize = 1024;
/// Channels (the smaller of in and out) from which a convolution counts as wide.
const WIDE: usize = 192;
/// The largest transformed weight (`n²·c_out·c_in` floats) a call builds at once: F(4×4) of
/// 512×512. Wider convolutions are computed in groups of output channels whose weights fit.
pub(super) const MAX_WEIGHT_FLOATS: usize = 36 * 512 * 512;
/// The narrowest group of output channels: below it (over 8192 input channels) im2col is used.
const MIN_GROUP: usize = 32;

/// Which variants `F2IDIFF_WINOGRAD` allows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    F2Only,
    Both,
}

fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("F2IDIFF_WINOGRAD").as_deref() {
        Ok("off") => Mode::Off,
        Ok("2x2") => Mode::F2Only,
        _ => Mode::Both,
    })
}

/// The path's state for the backend's name: which variants are in use.
pub fn describe() -> &'static str {
    match mode() {
        Mode::Off => "Winograd off (F2IDIFF_WINOGRAD)",
        Mode::F2Only => "Winograd F(2×2) only (F2IDIFF_WINOGRAD)",
        Mode::Both => "Winograd F(4×4)/F(2×2)",
    }
}

/// Whether the path is switched on at all (`F2IDIFF_WINOGRAD` is not `off`).
pub fn enabled() -> bool {
    mode() != Mode::Off
}

/// The variant [`super::conv::conv2d`] takes for an `h×w` input, or `None` for im2col.
fn choose(p: &Conv2d, h: usize, w: usize) -> Option<&'static Variant> {
    let eligible = p.kh == 3 && p.kw == 3 && p.stride == 1 && p.pad == [1; 4] && enabled();
    let fits = |v: &Variant| group(v, p, MAX_WEIGHT_FLOATS).is_some() && pays(v, p, h, w);
    if !eligible {
        None
    } else if mode() == Mode::Both && fits(&F4) {
        Some(&F4)
    } else if fits(&F2) {
        Some(&F2)
    } else {
        None
    }
}

/// Whether an `h×w` image has enough of `v`'s tiles for it to beat im2col (or F(4×4) to beat
/// F(2×2)). Measured on 2-core Zen 2 with oneMKL (benches/RESULTS.md): at 16² im2col wins for
/// every width; at 32² F(2×2) wins from 224 channels on (896→896: 88 ms against 102 for F(4×4)
/// and 112 for im2col), im2col below (96→96: 1.5 ms against 2.1); at 64² F(4×4) from 224
/// channels on, F(2×2) below; from 128² F(4×4) at 96 channels and more.
fn pays(v: &Variant, p: &Conv2d, h: usize, w: usize) -> bool {
    let tiles = h.div_ceil(v.m) * w.div_ceil(v.m);
    let need = if p.c_in.min(p.c_out) >= WIDE {
        MIN_CALL_TILES
    } else {
        MIN_CALL_TILES_NARROW
    };
    tiles >= need
}

/// Output channels per group whose transformed weights (`n²·group·c_in` floats) fit `cap`:
/// all of them where they fit, else as many as fit if that is at least [`MIN_GROUP`].
fn group(v: &Variant, p: &Conv2d, cap: usize) -> Option<usize> {
    let fit = cap / (v.points() * p.c_in).max(1);
    (fit >= p.c_out.min(MIN_GROUP)).then_some(fit.min(p.c_out).max(1))
}

/// Whether [`super::conv::conv2d`] takes this path for an `h×w` input.
pub(super) fn applies(p: &Conv2d, h: usize, w: usize) -> bool {
    choose(p, h, w).is_some()
}

/// How a call is split: F(m×m) tiles in blocks of `rows` tile rows of `tn` tiles (a tile row
/// of `tw` tiles cut into `segs` segments; `segs > 1` only with `rows == 1`); `slots` threads
/// each taking whole blocks with their own scratch (1: blocks in turn, each GEMM split over
/// the pool).
#[derive(Clone, Copy)]
pub(super) struct Plan {
    v: &'static Variant,
    c_in: usize,
    /// Output channels of one group (the call's are done group after group).
    c_out: usize,
    c_out_all: usize,
    th: usize,
    tw: usize,
    rows: usize,
    tn: usize,
    segs: usize,
    slots: usize,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Plan {{ {}, {}→{} in groups of {}, tiles {}×{}, blocks {}×{} (segs {}), slots {} }}",
            self.v.name,
            self.c_in,
            self.c_out_all,
            self.c_out,
            self.th,
            self.tw,
            self.rows,
            self.tn,
            self.segs,
            self.slots
        )
    }
}

impl Plan {
    /// The plan for `p` on an `h×w` input, where [`applies`] holds.
    pub(super) fn new(p: &Conv2d, h: usize, w: usize, threads: usize) -> Plan {
        Plan::with(choose(p, h, w).unwrap_or(&F2), p, h, w, threads)
    }

    /// The plan for `p` on an `h×w` input in variant `v`.
    fn with(v: &'static Variant, p: &Conv2d, h: usize, w: usize, threads: usize) -> Plan {
        Plan::with_cap(v, p, h, w, threads, MAX_WEIGHT_FLOATS)
    }

    /// [`Plan::with`] for transformed weights of at most `cap` floats at once.
    fn with_cap(
        v: &'static Variant,
        p: &Conv2d,
        h: usize,
        w: usize,
        threads: usize,
        cap: usize,
    ) -> Plan {
        let c_out = group(v, p, cap).unwrap_or(p.c_out.min(MIN_GROUP));
        let (th, tw) = (h.div_ceil(v.m), w.div_ceil(v.m));
        let tiles = ((SLOT_FLOATS - 1) / per_tile(v, p.c_in, c_out)).clamp(MIN_TILES, MAX_TILES);
        // A block's tile rows are `tn + 1` columns apart in its operands (see `nt`).
        let (rows, tn) = if tw < tiles {
            let widest = (tiles / (tw + 1)).max(1);
            let rows = balanced_block(th, widest, (widest / 2).max(1));
            (rows.min(th).max(1), tw.max(1))
        } else {
            (1, balanced_block(tw, tiles - 1, (tiles - 1) / 2))
        };
        let segs = tw.div_ceil(tn);
        let blocks = th.div_ceil(rows) * segs;
        let slots = if threads > 1 && blocks >= threads {
            threads
        } else {
            1
        };
        Plan {
            v,
            c_in: p.c_in,
            c_out,
            c_out_all: p.c_out,
            th,
            tw,
            rows,
            tn,
            segs,
            slots,
        }
    }

    /// Columns of a block's transformed operands: tile row r's tiles at `r·(tn + 1) + k`, so
    /// that every transform runs over the whole block in one loop (tile k of a row needs the
    /// input phases at k and k + 1: one phase row of tn + 1). The column after each row's
    /// tiles holds junk that no output reads.
    fn nt(&self) -> usize {
        self.rows * (self.tn + 1)
    }

    fn blocks(&self) -> usize {
        self.th.div_ceil(self.rows) * self.segs
    }

    fn slot_len(&self) -> usize {
        per_tile(self.v, self.c_in, self.c_out) * self.nt() + 1
    }

    fn weights_len(&self) -> usize {
        self.v.points() * self.c_out * self.c_in
    }

    pub(super) fn scratch_len(&self) -> usize {
        self.weights_len() + self.slots * self.slot_len()
    }
}

/// Slot floats per operand column: the transformed input and output (n² per channel) and the
/// transforms' rows (n·m phase rows of input, then m combined rows; or n + m rows of output).
fn per_tile(v: &Variant, c_in: usize, c_out: usize) -> usize {
    v.points() * (c_in + c_out) + row_buffers(v)
}

/// Phase rows per operand column: the m phases of the n input rows of a tile and of one
/// combined row; the output transform's n + m rows fit in them.
fn row_buffers(v: &Variant) -> usize {
    (v.n() + 1) * v.m
}

/// `out[c_out, h, w]` (+)= conv3×3(`x[c_in, h, w]`, padding 1) + `bias`, as
/// [`super::conv::conv2d`] defines it, planned by `plan` (from [`Plan::new`] on these shapes).
#[allow(clippy::too_many_arguments)]
pub(super) fn conv3x3(
    x: &[f32],
    h: usize,
    w: usize,
    weight: Values,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    accumulate: bool,
    plan: Plan,
) {
    let (c_in, group, hw) = (plan.c_in, plan.c_out, h * w);
    for co0 in (0..plan.c_out_all).step_by(group) {
        let c_out = group.min(plan.c_out_all - co0);
        conv3x3_group(
            x,
            h,
            w,
            weight.slice(co0 * 9 * c_in, c_out * 9 * c_in),
            bias.map(|b| &b[co0..co0 + c_out]),
            &mut out[co0 * hw..][..c_out * hw],
            scratch,
            accumulate,
            Plan { c_out, ..plan },
        );
    }
}

/// [`conv3x3`] for one group of output channels (`plan.c_out` of them, all `weight` has).
#[allow(clippy::too_many_arguments)]
fn conv3x3_group(
    x: &[f32],
    h: usize,
    w: usize,
    weight: Values,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    accumulate: bool,
    plan: Plan,
) {
    let (u, rest) = scratch.split_at_mut(plan.weights_len());
    let (per_co, k) = (plan.v.points() * plan.c_in, 9 * plan.c_in);
    let transform = |uc: &mut [f32], wc: &[f32]| {
        vectorized(
            #[inline(always)]
            || plan.v.transform_weights(wc, plan.c_in, uc),
        )
    };
    match weight {
        Values::F32(wt) => u
            .par_chunks_mut(per_co)
            .zip(wt.par_chunks(k))
            .for_each(|(uc, wc)| transform(uc, wc)),
        // Half-precision weights are widened one output channel at a time, into a buffer of
        // each task's: the transform sees the same f32 values as from an f32 weight.
        Values::Half(dtype, bits) => u
            .par_chunks_mut(per_co)
            .zip(bits.par_chunks(k))
            .for_each_init(
                || vec![0f32; k],
                |wc, (uc, bc)| {
                    widen_serial(dtype, bc, wc);
                    transform(uc, wc)
                },
            ),
    }
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
    /// transform, n² GEMMs, output transform.
    fn block(&self, b: usize, slot: &mut [f32], parallel: bool) {
        let Plan {
            v: var,
            c_in,
            c_out,
            tw,
            tn,
            segs,
            ..
        } = self.plan;
        let (nt, points) = (self.plan.nt(), var.points());
        let (ty0, tx0) = ((b / segs) * self.plan.rows, (b % segs) * tn);
        let rows = self.plan.rows.min(self.plan.th - ty0);
        let tiles = Tiles {
            ty0,
            rows,
            tx0,
            len: tn.min(tw - tx0),
        };
        // Operand columns in use: the last row's junk column is left out.
        let n = (rows - 1) * (tn + 1) + tiles.len;
        let (v, rest) = slot.split_at_mut(points * c_in * nt);
        let (m, bufs) = rest.split_at_mut(points * c_out * nt);
        for ci in 0..c_in {
            self.transform_input(ci, tiles, n, bufs, v);
        }
        for xi in 0..points {
            let (a, b) = (&self.u[xi * c_in..], &v[xi * c_in * nt..]);
            let c = &mut m[xi * c_out * nt..];
            let lda = points * c_in;
            if parallel {
                matmul(c_out, n, c_in, a, lda, 1, b, nt, 1, c, nt, false);
            } else {
                matmul_serial(c_out, n, c_in, a, lda, 1, b, nt, 1, c, nt, false);
            }
        }
        for co in 0..c_out {
            self.transform_output(co, tiles, n, m, bufs);
        }
    }

    /// `V[ξ][ci][col]` for the block's `n` operand columns: Bᵀ·d·B. Tile `tx0 + k` reads the
    /// padded columns `m(tx0 + k) .. m(tx0 + k) + n` (image column one less; zero outside).
    /// With each padded input row split into its m phases, `P_φ[j] = x[m(tx0 + j) + φ − 1]`,
    /// patch column c of tile k is `P_{c mod m}[k + c div m]`. So the transform is first down
    /// the patch rows (all phases and tile rows of the block in one loop), then across (again
    /// one loop over the block).
    fn transform_input(
        &self,
        ci: usize,
        tiles: Tiles,
        n_cols: usize,
        buf: &mut [f32],
        v: &mut [f32],
    ) {
        let (h, w, c_in, nt) = (self.h, self.w, self.plan.c_in, self.plan.nt());
        let var = self.plan.v;
        let (m, n, tp) = (var.m, var.n(), self.plan.tn + 1);
        let plane = &self.x[ci * h * w..][..h * w];
        // p[t][φ][r·tp + j]: phase φ of padded row m·(ty0 + r) + t.
        let (p, q) = buf.split_at_mut(n * m * nt);
        let q = &mut q[..m * nt + 1];
        vectorized(
            #[inline(always)]
            || {
                for (t, pt) in p.chunks_exact_mut(m * nt).enumerate() {
                    for r in 0..tiles.rows {
                        let dst = &mut pt[r * tp..];
                        match (m * (tiles.ty0 + r) + t).checked_sub(1).filter(|&y| y < h) {
                            Some(y) => {
                                let row = &plane[y * w..][..w];
                                split_phases(row, m * tiles.tx0, m, nt, tiles.len + 1, dst)
                            }
                            None => (0..m).for_each(|phi| dst[phi * nt..][..=tiles.len].fill(0.0)),
                        }
                    }
                }
                let p = &*p;
                for i in 0..n {
                    // Row i of Bᵀ down the patch rows, every phase at once.
                    combine(
                        &mut q[..m * nt],
                        var.bt[i],
                        |t| &p[t * m * nt..][..m * nt],
                        0.0,
                    );
                    // Then across: patch column c of tile k is phase c mod m at k + c div m.
                    let q = &*q;
                    let src = |c: usize| &q[(c % m) * nt + c / m..][..n_cols];
                    for j in 0..n {
                        let at = ((i * n + j) * c_in + ci) * nt;
                        combine(&mut v[at..][..n_cols], var.bt[j], src, 0.0);
                    }
                }
            },
        );
    }

    /// Output rows `m·ty ..` of the block's tile rows (those inside the image), its columns
    /// `m·tx0..` of channel `co`, from `M[ξ][co][..n_cols]`: Aᵀ·M·A plus the bias. Each output
    /// row's m phases are computed apart, for the whole block in one loop, then interleaved
    /// into the output.
    fn transform_output(
        &self,
        co: usize,
        tiles: Tiles,
        n_cols: usize,
        mm: &[f32],
        buf: &mut [f32],
    ) {
        let (h, c_out, nt, tp) = (self.h, self.plan.c_out, self.plan.nt(), self.plan.tn + 1);
        let var = self.plan.v;
        let (m, n) = (var.m, var.n());
        let (a, out) = buf.split_at_mut(n * nt);
        let out = &mut out[..m * nt];
        // The block's output columns.
        let (x0, w) = (m * tiles.tx0, (self.w - m * tiles.tx0).min(m * tiles.len));
        let b = self.bias.map_or(0.0, |b| b[co]);
        let s = |xi: usize| &mm[(xi * c_out + co) * nt..][..n_cols];
        vectorized(
            #[inline(always)]
            || {
                for i in 0..m {
                    // Row i of Aᵀ down M's rows, for each of its n columns; then across.
                    for (j, aj) in a.chunks_exact_mut(nt).enumerate() {
                        combine(&mut aj[..n_cols], var.at[i], |r| s(r * n + j), 0.0);
                    }
                    let a = &*a;
                    for (phi, op) in out.chunks_exact_mut(nt).enumerate() {
                        combine(
                            &mut op[..n_cols],
                            var.at[phi],
                            |j| &a[j * nt..][..n_cols],
                            b,
                        );
                    }
                    for r in 0..tiles.rows {
                        let y = m * (tiles.ty0 + r) + i;
                        if y >= h {
                            break;
                        }
                        // SAFETY: the block owning these tiles is the only writer of these columns
                        // of output rows m·ty .. m·ty + m (of every channel) for its tile rows ty,
                        // and they lie inside `out` because y < h and x0 + w ≤ the image's width.
                        let dst = unsafe { self.out.slice((co * h + y) * self.w + x0, w) };
                        let phases = &out[r * tp..];
                        match m {
                            2 => interleave::<2>(dst, phases, nt, self.accumulate),
                            _ => interleave::<4>(dst, phases, nt, self.accumulate),
                        }
                    }
                }
            },
        );
    }
}

/// `row_φ[j] = row[x0 + m·j + φ − 1]` (0 outside the row) for `j < len`, phase φ at
/// `phases[φ·stride..]`: a padded segment of an input row, split into its m phases.
#[inline(always)]
fn split_phases(row: &[f32], x0: usize, m: usize, stride: usize, len: usize, phases: &mut [f32]) {
    let get = |x: isize| {
        if x >= 0 && (x as usize) < row.len() {
            row[x as usize]
        } else {
            0.0
        }
    };
    let x0 = x0 as isize;
    let mi = m as isize;
    // The inner part, where every read of j's group is inside the row, without bounds tests.
    let inner = |j: usize| {
        let x = x0 + mi * j as isize - 1;
        x >= 0 && (x + mi) as usize <= row.len()
    };
    let (lo, hi) = (
        (0..len).find(|&j| inner(j)).unwrap_or(len),
        (0..len).rfind(|&j| inner(j)).map_or(0, |j| j + 1),
    );
    for j in (0..lo).chain(hi.max(lo)..len) {
        for phi in 0..m {
            phases[phi * stride + j] = get(x0 + mi * j as isize + phi as isize - 1);
        }
    }
    if lo < hi {
        let src = &row[(x0 + mi * lo as isize - 1) as usize..][..m * (hi - lo)];
        match m {
            2 => split_inner::<2>(src, lo, hi, stride, phases),
            _ => split_inner::<4>(src, lo, hi, stride, phases),
        }
    }
}

/// The bounds-free middle of [`split_phases`]: `src` holds the groups of `j = lo..hi`.
#[inline(always)]
fn split_inner<const M: usize>(src: &[f32], lo: usize, hi: usize, stride: usize, out: &mut [f32]) {
    let mut rest = out;
    let parts: [&mut [f32]; M] = std::array::from_fn(|phi| {
        let all = std::mem::take(&mut rest);
        let (part, tail) = if phi + 1 < M {
            all.split_at_mut(stride)
        } else {
            (all, &mut [][..])
        };
        rest = tail;
        &mut part[lo..hi]
    });
    for (k, group) in src.chunks_exact(M).enumerate() {
        for phi in 0..M {
            parts[phi][k] = group[phi];
        }
    }
}

/// `dst[m·k + φ] (+)= phase φ[k]` (phase φ at `phases[φ·stride..]`) for the pixels `dst` holds.
#[inline(always)]
fn interleave<const M: usize>(dst: &mut [f32], phases: &[f32], stride: usize, accumulate: bool) {
    let len = dst.len().div_ceil(M);
    let p: [&[f32]; M] = std::array::from_fn(|phi| &phases[phi * stride..][..len]);
    let full = dst.len() / M;
    let (body, tail) = dst.split_at_mut(M * full);
    for (k, d) in body.chunks_exact_mut(M).enumerate() {
        for phi in 0..M {
            if accumulate {
                d[phi] += p[phi][k];
            } else {
                d[phi] = p[phi][k];
            }
        }
    }
    for (phi, t) in tail.iter_mut().enumerate() {
        if accumulate {
            *t += p[phi][full];
        } else {
            *t = p[phi][full];
        }
    }
}

/// A block's tiles: tiles `tx0..tx0 + len` of tile rows `ty0..ty0 + rows`.
#[derive(Clone, Copy)]
struct Tiles {
    ty0: usize,
    rows: usize,
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

    #[allow(clippy::too_many_arguments)]
    fn run(
        v: &'static Variant,
        p: &Conv2d,
        x: &[f32],
        (h, w): (usize, usize),
        wt: &[f32],
        b: &[f32],
        out: &mut [f32],
        acc: bool,
    ) {
        let plan = Plan::with(v, p, h, w, rayon::current_num_threads());
        let mut scratch = vec![f32::NAN; plan.scratch_len()];
        conv3x3(
            x,
            h,
            w,
            Values::F32(wt),
            Some(b),
            out,
            &mut scratch,
            acc,
            plan,
        );
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
            for (v, threads) in [(&F2, 1), (&F2, 2), (&F4, 1), (&F4, 2)] {
                let mut out = vec![f32::NAN; c_out * h * w];
                in_pool(threads, || run(v, &p, &x, (h, w), &wt, &b, &mut out, false));
                let err = rel_l2(&out, &want);
                let what = format!("{} {p:?} on {h}×{w}, {threads} threads", v.name);
                assert!(err <= 1e-5, "{what}: {err:e}");
                let mut out = out0.clone();
                in_pool(threads, || run(v, &p, &x, (h, w), &wt, &b, &mut out, true));
                let err = rel_l2(&out, &want_acc);
                assert!(err <= 1e-5, "{what}, accumulated: {err:e}");
            }
        }
    }

    /// Output channels in groups (weights over the cap): 32, 32 and 6 channels, both variants,
    /// overwritten and accumulated, one and two threads.
    #[test]
    fn grouped_output_channels_match_the_direct_convolution() {
        let mut rng = Rng::new(9);
        let (p, h, w) = (shape(5, 70), 40, 37);
        let x = rng.vec(p.c_in * h * w);
        let wt = rng.vec(p.c_out * p.c_in * 9);
        let b = rng.vec(p.c_out);
        let out0 = rng.vec(p.c_out * h * w);
        let want = reference(&p, &x, h, w, &wt, &b);
        let want_acc: Vec<f32> = want.iter().zip(&out0).map(|(a, o)| a + o).collect();
        for (v, threads) in [(&F2, 1), (&F4, 1), (&F4, 2)] {
            for (acc, start, want) in [
                (false, vec![f32::NAN; want.len()], &want),
                (true, out0.clone(), &want_acc),
            ] {
                let mut out = start;
                in_pool(threads, || {
                    let plan = Plan::with_cap(v, &p, h, w, threads, v.points() * p.c_in * 32);
                    assert_eq!((plan.c_out, plan.c_out_all), (32, 70), "{plan:?}");
                    let mut scratch = vec![f32::NAN; plan.scratch_len()];
                    let wt = Values::F32(&wt);
                    conv3x3(&x, h, w, wt, Some(&b), &mut out, &mut scratch, acc, plan);
                });
                let err = rel_l2(&out, want);
                assert!(
                    err <= 1e-5,
                    "{} {threads} threads acc {acc}: {err:e}",
                    v.name
                );
            }
        }
    }

    /// f16 / bf16 weights, widened channel by channel as they are transformed, give the bits
    /// of their f32 values, in single and grouped calls, on one and two threads.
    #[test]
    fn half_weights_give_the_bits_of_their_f32_values() {
        use crate::tensor::{DType, decode_f32, encode_f32};
        let mut rng = Rng::new(10);
        let (p, h, w) = (shape(6, 70), 19, 22);
        let x = rng.vec(p.c_in * h * w);
        let b = rng.vec(p.c_out);
        for dtype in [DType::F16, DType::BF16] {
            let bytes = encode_f32(dtype, &rng.vec(p.c_out * p.c_in * 9));
            let wt = decode_f32(dtype, &bytes);
            let bits = super::super::widen::le_u16s(&bytes);
            for (v, threads, cap) in [(&F2, 1, None), (&F4, 2, None), (&F4, 2, Some(32))] {
                let conv = |weight: Values| {
                    let mut out = vec![f32::NAN; p.c_out * h * w];
                    in_pool(threads, || {
                        let plan = match cap {
                            None => Plan::with(v, &p, h, w, threads),
                            Some(c) => Plan::with_cap(v, &p, h, w, threads, v.points() * 6 * c),
                        };
                        let mut scratch = vec![f32::NAN; plan.scratch_len()];
                        conv3x3(
                            &x,
                            h,
                            w,
                            weight,
                            Some(&b),
                            &mut out,
                            &mut scratch,
                            false,
                            plan,
                        );
                    });
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                assert_eq!(
                    conv(Values::Half(dtype, &bits)),
                    conv(Values::F32(&wt)),
                    "{dtype:?} {} {threads} threads, cap {cap:?}",
                    v.name
                );
            }
        }
    }

    /// Block shapes depend on the shapes only: the same bits on 1, 2 and 3 threads, for blocks
    /// of whole tile rows and for segments of one.
    #[test]
    fn any_thread_count_gives_identical_bits() {
        let mut rng = Rng::new(8);
        let cases = [
            (&F2, shape(12, 20), 96, 45, false),
            (&F2, shape(4, 6), 9, 2100, true),
            (&F4, shape(12, 20), 200, 45, false),
            (&F4, shape(4, 6), 9, 4200, true),
        ];
        for (v, p, h, w, cut) in cases {
            let x = rng.vec(p.c_in * h * w);
            let wt = rng.vec(p.c_out * p.c_in * 9);
            let b = rng.vec(p.c_out);
            let bits = |threads| {
                let mut out = vec![0f32; p.c_out * h * w];
                in_pool(threads, || run(v, &p, &x, (h, w), &wt, &b, &mut out, false));
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let one = bits(1);
            let plan = Plan::with(v, &p, h, w, 2);
            assert_eq!((plan.slots, plan.segs > 1), (2, cut), "{plan:?}");
            assert_eq!(one, bits(2));
            assert_eq!(one, bits(3));
        }
    }

    /// The path each image size and width takes (the measurements behind [`pays`]).
    #[test]
    fn variant_follows_tiles_and_width() {
        if mode() != Mode::Both {
            eprintln!("skipped: F2IDIFF_WINOGRAD restricts the variants");
            return;
        }
        let name = |c_in, c_out, hw| choose(&shape(c_in, c_out), hw, hw).map(|v| v.name);
        let (f2, f4) = (Some(F2.name), Some(F4.name));
        for (c_in, c_out, hw, want) in [
            (896, 896, 8, None),
            (1792, 896, 16, None),
            (128, 128, 16, None),
            (896, 896, 32, f2),
            (1344, 448, 32, f2),
            (224, 224, 32, f2),
            (128, 128, 32, None),
            (4, 224, 32, None),
            (224, 224, 64, f4),
            (448, 224, 64, f4),
            (128, 128, 64, f2),
            (224, 4, 64, f2),
            (96, 96, 128, f4),
            (3, 128, 512, f4),
            (512, 512, 64, f4),
        ] {
            assert_eq!(name(c_in, c_out, hw), want, "{c_in}→{c_out} at {hw}²");
        }
    }

    /// The scratch of a thread stays within 2^22 floats on wide images, up to 2048 channels.
    #[test]
    fn a_thread_needs_at_most_sixteen_mib() {
        for (c_in, c_out) in [(3, 128), (128, 128), (256, 256), (512, 512), (1024, 1024)] {
            for (h, w) in [(32, 32), (512, 512), (64, 2048), (2048, 64)] {
                let p = shape(c_in, c_out);
                for v in [&F2, &F4] {
                    let plan = Plan::with(v, &p, h, w, 1);
                    assert!(
                        plan.slot_len() <= SLOT_FLOATS,
                        "{plan:?}: {}",
                        plan.slot_len()
                    );
                }
            }
        }
    }
}
