//! Multi-head scaled dot-product attention in memory bounded independently of the token count.
//!
//! The full `tq×tk` score matrix of the VAE's mid-block attention at a 512×512 tile is 64 MiB
//! per head; the U-Net's largest is as big per head. Queries are therefore processed in blocks
//! of at most 256 rows, and keys in chunks of at most [`CHUNK_KEYS`] (flash-attention style):
//! per chunk, the scores of the block against the chunk (a GEMM with the softmax scale folded
//! in), an online softmax per row (a running maximum; the output rows so far are rescaled when
//! it grows), then the chunk's share of the output rows as a second, accumulating GEMM. After the
//! last chunk each row is divided by its sum (`hd` divisions per row instead of `tk`). A block's
//! scores (≤ 256 × 512 floats, 512 KiB) stay in the core's L2 cache between the two products and
//! the exponentials, where a block against all 4,096 keys of a 64² latent (4 MiB) went through
//! memory three times.
//!
//! Query blocks and key chunks have sizes that depend on `tq` and `tk` only, never on the
//! thread count, so every row's GEMMs have the same shapes (and sum in the same order) on any
//! pool: the output is bit-identical for any `--threads`. Threads take one contiguous run of
//! whole blocks each; every thread has its own score buffer in `scratch` and runs serial GEMMs,
//! so there is no synchronisation inside the loop.

use super::gemm::matmul_scaled_serial;
use super::math;
use super::par::balanced_block;
use super::simd::transcendental;
use rayon::prelude::*;

/// Query rows per block. Both GEMMs of a block repack that chunk's keys or values, so taller
/// blocks amortise the packing: at tk = 4096, 256 rows run 1.2–1.5× faster than 64.
const MAX_BLOCK_Q: usize = 256;
/// Keys per chunk: a block's scores against one chunk stay in L2.
const CHUNK_KEYS: usize = 512;

/// Floats of scratch [`attention`] needs on a pool of `threads`: one score buffer of
/// `rows·min(tk, CHUNK_KEYS)` floats (rows ≤ 256) per thread (fewer when there are fewer query
/// blocks than threads). At most threads · 2^17 floats, whatever the token counts.
pub fn attention_scratch_len(tq: usize, tk: usize, threads: usize) -> usize {
    let blocks = tq.div_ceil(block_rows(tq)).max(1);
    slot_len(tq, tk) * threads.clamp(1, blocks)
}

/// Query rows per block for `tq` queries: a function of the shape only (never of the pool), at
/// most 256, split into a thread-friendly number of blocks where that keeps them at least 128
/// rows tall.
fn block_rows(tq: usize) -> usize {
    balanced_block(tq, MAX_BLOCK_Q, MAX_BLOCK_Q / 2)
        .min(tq)
        .max(1)
}

/// Keys per chunk for `tk` keys: as even as possible, at most [`CHUNK_KEYS`].
fn chunk_keys(tk: usize) -> usize {
    tk.div_ceil(tk.div_ceil(CHUNK_KEYS).max(1)).max(1)
}

/// Score buffer of one thread.
fn slot_len(tq: usize, tk: usize) -> usize {
    block_rows(tq) * chunk_keys(tk)
}

/// `out[i, h·hd..(h+1)·hd]` = softmax_j(scale · q_i·k_j) · v_j for every head `h`, where head
/// `h` of `q`, `k`, `v` and `out` is columns `h·hd..(h+1)·hd` of row-major matrices with row
/// strides `q_rs`, `k_rs`, `v_rs`, `out_rs` (so q, k and v may be column blocks of one fused
/// projection). `scratch` should hold [`attention_scratch_len`] floats, computed on the same
/// rayon pool, to use every thread; with less (down to one thread's share) fewer threads work.
/// Its contents are clobbered.
///
/// # Panics
/// When a slice is shorter than its shape and stride require, or `scratch` is too short.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    q_rs: usize,
    k: &[f32],
    k_rs: usize,
    v: &[f32],
    v_rs: usize,
    tq: usize,
    tk: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
    out: &mut [f32],
    out_rs: usize,
    scratch: &mut [f32],
) {
    let width = heads * head_dim;
    let need = |rows: usize, rs: usize| {
        if rows == 0 {
            0
        } else {
            (rows - 1) * rs + width
        }
    };
    assert!(q.len() >= need(tq, q_rs), "attention: q too short");
    assert!(
        k.len() >= need(tk, k_rs) && v.len() >= need(tk, v_rs),
        "attention: k/v too short"
    );
    assert!(out.len() >= need(tq, out_rs), "attention: out too short");
    assert!(
        tq <= 1 || out_rs >= width,
        "attention: out row stride below heads·head_dim"
    );
    if tq == 0 || width == 0 {
        return;
    }
    if tk == 0 {
        // Softmax over no keys: PyTorch yields NaN; an empty sum is the least surprising
        // well-defined answer.
        for r in 0..tq {
            out[r * out_rs..r * out_rs + width].fill(0.0);
        }
        return;
    }
    let slot = slot_len(tq, tk);
    assert!(
        scratch.len() >= slot,
        "attention: scratch has {} floats, needs ≥ {slot}",
        scratch.len()
    );
    let block = block_rows(tq);
    let blocks = tq.div_ceil(block);
    let slots = rayon::current_num_threads()
        .min(scratch.len() / slot)
        .clamp(1, blocks);
    // Whole blocks per thread: block boundaries stay at multiples of `block` on any pool.
    let rows_per_slot = blocks.div_ceil(slots) * block;
    let job = Job {
        q,
        q_rs,
        k,
        k_rs,
        v,
        v_rs,
        tk,
        heads,
        hd: head_dim,
        scale,
        out_rs,
        block,
        chunk: chunk_keys(tk),
    };
    let out = &mut out[..need(tq, out_rs)];
    if slots == 1 {
        job.rows(0, tq, out, &mut scratch[..slot]);
        return;
    }
    out.par_chunks_mut(rows_per_slot * out_rs)
        .zip(scratch[..slots * slot].par_chunks_mut(slot))
        .enumerate()
        .for_each(|(s, (out_rows, scores))| {
            let r0 = s * rows_per_slot;
            job.rows(r0, (r0 + rows_per_slot).min(tq), out_rows, scores);
        });
}

/// Everything one thread needs to compute a range of query rows.
struct Job<'a> {
    q: &'a [f32],
    q_rs: usize,
    k: &'a [f32],
    k_rs: usize,
    v: &'a [f32],
    v_rs: usize,
    tk: usize,
    heads: usize,
    hd: usize,
    scale: f32,
    out_rs: usize,
    /// Query rows per block.
    block: usize,
    /// Keys per chunk (the score buffer holds `block·chunk` floats).
    chunk: usize,
}

impl Job<'_> {
    /// Query rows `r0..r1` of every head into `out` (which starts at row `r0`), block by block;
    /// `r0` is a multiple of the block height.
    fn rows(&self, r0: usize, r1: usize, out: &mut [f32], scores: &mut [f32]) {
        let mut b0 = r0;
        while b0 < r1 {
            let rows = self.block.min(r1 - b0);
            let out_block = &mut out[(b0 - r0) * self.out_rs..];
            for h in 0..self.heads {
                self.head(b0, rows, h, &mut out_block[h * self.hd..], scores);
            }
            b0 += rows;
        }
    }

    /// Head `h` of query rows `b0..b0 + rows` into `out` (row stride `out_rs`), key chunk by key
    /// chunk with an online softmax.
    fn head(&self, b0: usize, rows: usize, h: usize, out: &mut [f32], scores: &mut [f32]) {
        let (tk, hd, rs) = (self.tk, self.hd, self.out_rs);
        let mut max = [f32::NEG_INFINITY; MAX_BLOCK_Q];
        let mut sum = [0f64; MAX_BLOCK_Q];
        let mut j0 = 0;
        while j0 < tk {
            let keys = self.chunk.min(tk - j0);
            let scores = &mut scores[..rows * keys];
            // scores = scale · q_block · k_chunkᵀ
            matmul_scaled_serial(
                rows,
                keys,
                hd,
                (&self.q[b0 * self.q_rs + h * hd..], self.q_rs, 1),
                (&self.k[j0 * self.k_rs + h * hd..], 1, self.k_rs),
                (scores, keys),
                false,
                self.scale,
            );
            for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                let (m, s) = exp_shifted(row, max[i]);
                if j0 > 0 && m != max[i] {
                    // The running maximum grew: what this row summed so far shrinks.
                    let shrink = math::exp(max[i] - m);
                    sum[i] *= shrink as f64;
                    out[i * rs..i * rs + hd]
                        .iter_mut()
                        .for_each(|x| *x *= shrink);
                }
                max[i] = m;
                sum[i] += s;
            }
            // out[:, head h] (+)= exp-scores · v_chunk
            matmul_scaled_serial(
                rows,
                hd,
                keys,
                (scores, keys, 1),
                (&self.v[j0 * self.v_rs + h * hd..], self.v_rs, 1),
                (out, rs),
                j0 > 0,
                1.0,
            );
            j0 += keys;
        }
        for (i, &s) in sum[..rows].iter().enumerate() {
            let inv = (1.0 / s) as f32;
            out[i * rs..i * rs + hd].iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// Replaces `row` by exp(row − m) where m = max(`max_so_far`, max(row)), and returns m and
/// Σ exp(row − m) (summed in f64).
fn exp_shifted(row: &mut [f32], max_so_far: f32) -> (f32, f64) {
    // Three simple passes, each of which the compiler vectorises (a fused exp-and-sum loop
    // defeats it). Independent lanes keep max and sum in SIMD registers.
    const LANES: usize = 8;
    transcendental(
        #[inline(always)]
        || {
            let mut lane_max = [f32::NEG_INFINITY; LANES];
            let chunks = row.chunks_exact(LANES);
            let tail = chunks.remainder();
            for ch in chunks {
                for l in 0..LANES {
                    // `>` rather than f32::max: a single SIMD max (NaN scores only come from NaN
                    // inputs, whose output is garbage either way).
                    lane_max[l] = if ch[l] > lane_max[l] {
                        ch[l]
                    } else {
                        lane_max[l]
                    };
                }
            }
            let max = tail
                .iter()
                .chain(&lane_max)
                .fold(max_so_far, |m, &v| m.max(v));
            // A row of -inf (impossible without masks) would give NaN; keep it finite.
            let max = if max == f32::NEG_INFINITY { 0.0 } else { max };
            row.iter_mut()
                .for_each(|s| *s = math::exp_nonpositive(*s - max));
            let mut lane_sum = [0f64; 2 * LANES];
            let chunks = row.chunks_exact(2 * LANES);
            let tail = chunks.remainder();
            for ch in chunks {
                for l in 0..2 * LANES {
                    lane_sum[l] += ch[l] as f64;
                }
            }
            let sum = lane_sum.iter().sum::<f64>() + tail.iter().map(|&v| v as f64).sum::<f64>();
            (max, sum)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, in_pool, rel_l2};
    use super::*;

    /// Plain f64 attention, one query at a time.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        q_rs: usize,
        k: &[f32],
        k_rs: usize,
        v: &[f32],
        v_rs: usize,
        tq: usize,
        tk: usize,
        heads: usize,
        hd: usize,
        scale: f32,
    ) -> Vec<f32> {
        let mut out = vec![0f32; tq * heads * hd];
        for h in 0..heads {
            for i in 0..tq {
                let s: Vec<f64> = (0..tk)
                    .map(|j| {
                        (0..hd)
                            .map(|d| {
                                q[i * q_rs + h * hd + d] as f64 * k[j * k_rs + h * hd + d] as f64
                            })
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    let o: f64 = (0..tk)
                        .map(|j| e[j] * v[j * v_rs + h * hd + d] as f64)
                        .sum();
                    out[i * heads * hd + h * hd + d] = (o / z) as f32;
                }
            }
        }
        out
    }

    /// Runs [`attention`] on seeded random q, k, v (`[t, heads·hd]` each) and checks it against
    /// [`reference`].
    fn check(tq: usize, tk: usize, heads: usize, hd: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let width = heads * hd;
        // Scores of a few units, like trained attention (uniform inputs alone give near-flat
        // softmax rows, which would not exercise the max subtraction).
        let q = rng.vec_scaled(tq * width, 3.0);
        let k = rng.vec_scaled(tk * width, 3.0);
        let v = rng.vec(tk * width);
        check_on(&q, &k, &v, (tq, tk, heads, hd), 1.0 / (hd as f32).sqrt());
    }

    /// Runs [`attention`] on `q`, `k`, `v` (`[t, heads·hd]` each) with scratch for the current
    /// pool, and requires relative L2 ≤ 1e-5 against [`reference`].
    fn check_on(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        (tq, tk, heads, hd): (usize, usize, usize, usize),
        scale: f32,
    ) {
        let width = heads * hd;
        let want = reference(q, width, k, width, v, width, tq, tk, heads, hd, scale);
        let mut out = vec![f32::NAN; tq * width];
        let mut scratch = vec![0f32; attention_scratch_len(tq, tk, rayon::current_num_threads())];
        attention(
            q,
            width,
            k,
            width,
            v,
            width,
            tq,
            tk,
            heads,
            hd,
            scale,
            &mut out,
            width,
            &mut scratch,
        );
        let err = rel_l2(&out, &want);
        assert!(
            err <= 1e-5,
            "tq {tq} tk {tk} heads {heads} hd {hd} scale {scale}: {err:e}"
        );
    }

    #[test]
    fn matches_f64_reference_across_block_boundaries() {
        for (i, &(tq, tk, heads, hd)) in [
            (1, 1, 1, 1),
            (7, 5, 2, 3),
            (65, 65, 1, 16),
            (64, 130, 3, 8),
            (257, 77, 4, 16),
            (130, 257, 2, 24),
        ]
        .iter()
        .enumerate()
        {
            check(tq, tk, heads, hd, 100 + i as u64);
        }
        // Several blocks per thread, and a long key axis: 40 chunks of 500 keys.
        in_pool(1, || check(257, 65, 2, 8, 110));
        in_pool(2, || check(530, 33, 1, 4, 111));
        in_pool(1, || check(130, 20_000, 1, 4, 112));
    }

    /// Scores that rise along the keys (the running maximum grows in every chunk, so the rows
    /// summed so far are rescaled each time) and that fall (it never grows after the first).
    #[test]
    fn online_softmax_rescales_when_the_maximum_grows() {
        let (tq, tk, hd) = (5, 1500, 4);
        let mut rng = Rng::new(33);
        let q: Vec<f32> = (0..tq * hd).map(|i| 1.0 + 0.1 * (i % 3) as f32).collect();
        let v = rng.vec(tk * hd);
        for slope in [0.004f32, -0.004] {
            let k: Vec<f32> = (0..tk * hd).map(|i| slope * (i / hd) as f32).collect();
            in_pool(1, || check_on(&q, &k, &v, (tq, tk, 1, hd), 1.0));
        }
    }

    #[test]
    fn strided_fused_qkv_and_padded_output() {
        let mut rng = Rng::new(31);
        let (t, heads, hd) = (70, 3, 8);
        let width = heads * hd;
        let qkv_rs = 3 * width + 5;
        let qkv = rng.vec_scaled(t * qkv_rs, 2.0);
        let out_rs = width + 3;
        let scale = 0.3;
        let (q, k, v) = (&qkv[..], &qkv[width..], &qkv[2 * width..]);
        let want = reference(q, qkv_rs, k, qkv_rs, v, qkv_rs, t, t, heads, hd, scale);
        let mut out = vec![7.0f32; t * out_rs];
        let mut scratch = vec![0f32; attention_scratch_len(t, t, rayon::current_num_threads())];
        attention(
            q,
            qkv_rs,
            k,
            qkv_rs,
            v,
            qkv_rs,
            t,
            t,
            heads,
            hd,
            scale,
            &mut out,
            out_rs,
            &mut scratch,
        );
        let got: Vec<f32> = out
            .chunks(out_rs)
            .flat_map(|r| r[..width].to_vec())
            .collect();
        assert!(rel_l2(&got, &want) <= 1e-5);
        assert!(
            out.chunks(out_rs)
                .all(|r| r[width..].iter().all(|&x| x == 7.0))
        );
    }

    /// Bit-identical on 1, 2 and 3 threads (block heights never depend on the pool), also with
    /// a scratch planned for one thread used from more.
    #[test]
    fn any_thread_count_gives_identical_bits_and_small_scratch_still_works() {
        let mut rng = Rng::new(32);
        for (tq, tk, heads, hd) in [(600, 150, 2, 16), (200, 70, 3, 8), (300, 20_000, 1, 4)] {
            let width = heads * hd;
            let q = rng.vec_scaled(tq * width, 2.0);
            let k = rng.vec_scaled(tk * width, 2.0);
            let v = rng.vec(tk * width);
            let run = |scratch_len: Option<usize>| {
                let len = scratch_len
                    .unwrap_or_else(|| attention_scratch_len(tq, tk, rayon::current_num_threads()));
                let mut scratch = vec![0f32; len];
                let mut out = vec![0f32; tq * width];
                attention(
                    &q,
                    width,
                    &k,
                    width,
                    &v,
                    width,
                    tq,
                    tk,
                    heads,
                    hd,
                    0.25,
                    &mut out,
                    width,
                    &mut scratch,
                );
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let one = in_pool(1, || run(None));
            let slot = slot_len(tq, tk);
            for threads in [2, 3] {
                assert_eq!(
                    one,
                    in_pool(threads, || run(None)),
                    "{tq}×{tk}, {threads} threads"
                );
                // A scratch planned for one thread, used from a larger pool.
                assert_eq!(
                    one,
                    in_pool(threads, || run(Some(slot))),
                    "{tq}×{tk} starved"
                );
            }
        }
        // 600 queries: four blocks of 150 rows, so two threads each get a score buffer.
        assert_eq!(attention_scratch_len(600, 150, 2), 2 * 150 * 150);
    }

    #[test]
    fn scratch_is_bounded_whatever_the_token_count() {
        assert_eq!(attention_scratch_len(4096, 4096, 2), 2 * 171 * 512);
        assert_eq!(attention_scratch_len(16384, 16384, 2), 2 * 171 * 512);
        assert_eq!(attention_scratch_len(4096, 1000, 2), 2 * 171 * 500);
        assert_eq!(attention_scratch_len(4096, 77, 3), 3 * 171 * 77);
        assert_eq!(attention_scratch_len(1, 257, 2), 257);
    }
}
