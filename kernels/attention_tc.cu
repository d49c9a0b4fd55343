// attention_tc.cu — multi-head scaled dot-product attention on tensor cores, FlashAttention-2
// style: out = softmax(q kᵀ·scale) v per head, the tq×tk score matrix never stored (memory
// linear in tokens). Same operands and result as attention.cu (the simple kernel, which stays
// the fallback and the second opinion); CPU oracle: src/backend/cpu/kernels/attention.rs.
//
// Operands: head h of q [tq, ·], k, v [tk, ·] is columns h·hd..(h+1)·hd of a row-major f16
//   matrix with its own row stride (q, k, v may be column blocks of one fused qkv projection);
//   out is [tq, heads·hd] (row stride out_rs).
// Variants: attention_tc_{32,64,128} for head_dim ≤ 32, 64, 128 (HDMAX), described first;
//   attention_tc_wide for head_dim ≤ 512 (the VAE's single 512-wide head), described at its
//   body below. Any head_dim in range works (zero-padded to hdp = ⌈hd/16⌉·16 in shared memory,
//   the padding adding nothing to q·k).
// Cost (benches): 4·tq·tk·hd FLOP per head (q·kᵀ and p·v); bytes ≈ (tq + 2·tk·⌈tq/BM⌉)·hd·2
//   per head in (K and V re-read once per block of BM query rows, from L2 mostly) + tq·hd·2 out.
// Mapping: grid [⌈tq/64⌉, heads], block 4 warps. The block owns 64 query rows of one head,
//   warp w rows 16w..16w+15 (one m16 tile). Keys are streamed in tiles of 64 (BN).
// Shared memory (dynamic, f16, rows of LD = HDMAX + 8 halves: the 16-byte skew puts the 8 rows
//   of one ldmatrix 8×8 matrix in distinct bank groups):
//     sK[2][64][LD], sV[2][64][LD]: K and V tiles, double-buffered (stage = tile index & 1);
//     the block's Q tile [64][LD] is staged once in sK[1] and read into registers before the
//     first prefetch overwrites it.   Bytes = 4·64·LD·2: 20480 (32), 36864 (64), 69632 (128).
//   Loads: cp.async 16-byte chunks (.cg, zero-filled past tk / tq and past hd) when every row
//   start is 16-byte aligned (`vec`, decided by the host: f16 storage, hd, strides, offsets
//   multiples of 8 elements); otherwise plain loads and shared stores (odd head dims, odd
//   fused-qkv strides). Rows past the end and columns hd..hdp are zeros, never poison: a padded
//   V row meets p = 0 in the mma, and 0·NaN would be NaN.
// Pipeline: prologue = Q, K0, V0 in one group, wait, Q → registers, barrier. Tile j: prefetch
//   tile j+1 into stage (j+1)&1 and commit; wait<1> + barrier (tile j landed for every thread);
//   compute; barrier (stage j&1 free for tile j+2's prefetch).
// Fragments (mma.m16n8k16, f2i_mma.h's layouts; g = lane/4, t = lane%4):
//   Q: qf[ks] (A, 16 rows × 16 dims) by ldmatrix_x4, held for the whole kernel (≤ 32 regs).
//   S = Q·Kᵀ: B = Kᵀ (k = dim, n = key) is K's rows as stored, ldmatrix_x4 (non-trans) gives
//     two n-tiles of keys per load; s[8][4] f32 accumulators: lane holds rows g and g+8,
//     keys 8j+2t+{0,1}.
//   Online softmax on s: the row max over the lane's 16 values, then over the quad (shfl_xor
//     1, 2); m' = max(m, tile max), p = exp(s·scale − m'), corr = exp(m − m'); l and O scaled by
//     corr; l holds the lane's partial row sum (quad-reduced once, at the end).
//   P: the s accumulators of key n-tiles 2kk, 2kk+1 are exactly the A fragment of k-step kk of
//     P·V (rows g / g+8, keys 2t+{0,1} / +8): rounded to f16 and packed, in registers.
//   V: B (k = key, n = dim) by ldmatrix_x4_trans over V's rows (two n-tiles of dims per load).
//   O: o[HDMAX/8][4] f32 accumulators (≤ 64 regs); out = o / l (0 when tk = 0).
// Masking: keys past tk get s = −3e38 before the max and p = 0; key n-tiles and k-steps wholly
//   past tk, head-dim tiles past hdp and warps whose 16 rows are all past tq skip their mma
//   (block- or warp-uniform conditions; every barrier is reached by every thread).
// Numerics: q, k, v, p in f16 (p rounded once, in [0, 1]); every product accumulated in f32 by
//   mma; scale, max, exp, sums, rescaling and normalisation in f32 (full-precision expf).
//   Versus the f32 CPU oracle the error is the f16 rounding of the inputs and of p (~2⁻¹²
//   relative each): rel L2 ~1e-3 or below on random inputs.
#include "common/f2i_mma.h"

#define ATC_WARPS 4
#define ATC_BM 64  // query rows per block (16 per warp)
#define ATC_BN 64  // keys per tile
#define ATC_NEG_BIG (-3.0e38f)

// One ROWS-row tile of a head into shared memory (rows of ld halves) by THREADS threads: rows
// < valid from src + r·rs, columns 0..hdp (chunks of 8 halves), zeros past valid rows and hd.
template <int ROWS, int THREADS>
F2I_FN void atc_load_tile(f2i_half* dst, int ld, const act_t* src, int rs, int valid, int hd,
                          int hdp, bool vec) {
  const int chunks = hdp / 8;
  const int tid = (int)threadIdx.x;
#ifdef F2I_ACT_F16
  if (vec) {  // hd % 8 == 0: every chunk is all data or all padding
    for (int e = tid; e < ROWS * chunks; e += THREADS) {
      const int r = e / chunks, c = e % chunks;
      const bool data = r < valid && 8 * c < hd;
      const act_t* from = data ? src + (size_t)r * (size_t)rs + 8 * c : src;
      f2i_cp_async_16_zfill(dst + r * ld + 8 * c, from, data ? 16 : 0);
    }
    return;
  }
#endif
  for (int e = tid; e < ROWS * chunks; e += THREADS) {
    const int r = e / chunks, c = e % chunks;
    f2i_u32 w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int d0 = 8 * c + 2 * i;
      const act_t* row = src + (size_t)r * (size_t)rs;
      const float lo = (r < valid && d0 < hd) ? f2i_load(row + d0) : 0.0f;
      const float hi = (r < valid && d0 + 1 < hd) ? f2i_load(row + d0 + 1) : 0.0f;
      w[i] = f2i_pack_float2(lo, hi);
    }
    f2i_u32* to = reinterpret_cast<f2i_u32*>(dst + r * ld + 8 * c);
#pragma unroll
    for (int i = 0; i < 4; ++i) to[i] = w[i];
  }
}

template <int HDMAX>
F2I_FN void attention_tc_body(const act_t* q, const act_t* k, const act_t* v, act_t* out,
                              int q_rs, int k_rs, int v_rs, int out_rs, int tq, int tk, int hd,
                              float scale, int vec_flag) {
  constexpr int LD = HDMAX + 8;
  constexpr int KSTEPS = HDMAX / 16;  // k-steps of q·kᵀ over head_dim
  constexpr int OT = HDMAX / 8;       // n-tiles of O over head_dim
  constexpr int ST = ATC_BN / 8;      // n-tiles of S over keys
  F2I_DYNAMIC_SHARED(f2i_half, smem);
  f2i_half* sK = smem;                      // [2][BN][LD]
  f2i_half* sV = smem + 2 * ATC_BN * LD;    // [2][BN][LD]
  f2i_half* sQ = sK + ATC_BN * LD;          // aliases sK stage 1 until the loop starts

  const bool vec = vec_flag != 0;
  const int lane = (int)f2i_lane();
  const int warp = (int)threadIdx.x / 32;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = (int)blockIdx.x * ATC_BM;
  const size_t col0 = (size_t)blockIdx.y * (size_t)hd;  // this head's first column
  const int hdp = (hd + 15) & ~15;
  const int ksteps = hdp / 16;
  const int tiles = (tk + ATC_BN - 1) / ATC_BN;
  const act_t* kh = k + col0;
  const act_t* vh = v + col0;
  // Warps whose 16 rows all lie past tq skip the arithmetic (warp-uniform), not the barriers.
  const bool active = row0 + 16 * warp < tq;
  auto load = [&](f2i_half* dst, const act_t* src, int rs, int valid) {
    atc_load_tile<ATC_BM, ATC_WARPS * 32>(dst, LD, src, rs, valid, hd, hdp, vec);
  };

  load(sQ, q + (size_t)row0 * (size_t)q_rs + col0, q_rs, tq - row0);
  if (tiles > 0) {
    load(sK, kh, k_rs, tk);
    load(sV, vh, v_rs, tk);
  }
  f2i_cp_async_commit();
  f2i_cp_async_wait<0>();
  f2i_syncthreads();

  f2i_u32 qf[KSTEPS][4];
#pragma unroll
  for (int ks = 0; ks < KSTEPS; ++ks) {
    qf[ks][0] = qf[ks][1] = qf[ks][2] = qf[ks][3] = 0u;
    if (ks < ksteps)
      f2i_ldmatrix_x4(qf[ks], sQ + (16 * warp + (lane & 15)) * LD + 16 * ks + 8 * (lane >> 4));
  }
  f2i_syncthreads();  // sQ (sK stage 1) is free for tile 1

  float o[OT][4];
#pragma unroll
  for (int n = 0; n < OT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_lo = ATC_NEG_BIG, m_hi = ATC_NEG_BIG;  // running max of rows g, g+8 (scaled)
  float l_lo = 0.0f, l_hi = 0.0f;                // this lane's partial row sums

  // ldmatrix row addresses within a tile (lane-dependent parts).
  //   K (non-trans x4): matrices (keys 8j.., dims 16ks), (8j.., 16ks+8), (8j+8.., 16ks), (…+8)
  const int k_row = (lane & 7) + 8 * (lane >> 4), k_col = 8 * ((lane >> 3) & 1);
  //   V (trans x4): matrices (keys 16kk.., dims 8n), (16kk+8.., 8n), (16kk.., 8n+8), (…)
  const int v_row = (lane & 7) + 8 * ((lane >> 3) & 1), v_col = 8 * (lane >> 4);

  for (int j = 0; j < tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < tiles) {
      const int next = (j + 1) * ATC_BN;
      load(sK + (stage ^ 1) * ATC_BN * LD, kh + (size_t)next * (size_t)k_rs, k_rs, tk - next);
      load(sV + (stage ^ 1) * ATC_BN * LD, vh + (size_t)next * (size_t)v_rs, v_rs, tk - next);
    }
    f2i_cp_async_commit();  // possibly empty: wait<1> then always means "tile j has landed"
    f2i_cp_async_wait<1>();
    f2i_syncthreads();

    const int keys = f2i_min(ATC_BN, tk - j * ATC_BN);  // valid keys of this tile, ≥ 1
    if (active) {
      const f2i_half* tK = sK + stage * ATC_BN * LD;
      const f2i_half* tV = sV + stage * ATC_BN * LD;

      // S = Q·Kᵀ (16 × 64), f32.
      float s[ST][4];
#pragma unroll
      for (int n = 0; n < ST; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < KSTEPS; ++ks) {
        if (ks < ksteps) {
#pragma unroll
          for (int n = 0; n < ST; n += 2) {
            if (8 * n < keys) {
              f2i_u32 b[4];
              f2i_ldmatrix_x4(b, tK + (8 * n + k_row) * LD + 16 * ks + k_col);
              f2i_mma_m16n8k16_f32_f16(s[n], qf[ks], b, s[n]);
              f2i_mma_m16n8k16_f32_f16(s[n + 1], qf[ks], b + 2, s[n + 1]);
            }
          }
        }
      }

      // Online softmax over this tile's keys.
      float mx_lo = ATC_NEG_BIG, mx_hi = ATC_NEG_BIG;
#pragma unroll
      for (int n = 0; n < ST; ++n) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int key = 8 * n + 2 * t + (c & 1);
          const float sc = key < keys ? s[n][c] * scale : ATC_NEG_BIG;
          s[n][c] = sc;
          if (c < 2)
            mx_lo = f2i_fmaxf(mx_lo, sc);
          else
            mx_hi = f2i_fmaxf(mx_hi, sc);
        }
      }
      mx_lo = f2i_fmaxf(mx_lo, f2i_shfl_xor(mx_lo, 1));
      mx_lo = f2i_fmaxf(mx_lo, f2i_shfl_xor(mx_lo, 2));
      mx_hi = f2i_fmaxf(mx_hi, f2i_shfl_xor(mx_hi, 1));
      mx_hi = f2i_fmaxf(mx_hi, f2i_shfl_xor(mx_hi, 2));
      const float mn_lo = f2i_fmaxf(m_lo, mx_lo), mn_hi = f2i_fmaxf(m_hi, mx_hi);
      const float corr_lo = f2i_expf(m_lo - mn_lo), corr_hi = f2i_expf(m_hi - mn_hi);
      m_lo = mn_lo;
      m_hi = mn_hi;
      float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
      for (int n = 0; n < ST; ++n) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int key = 8 * n + 2 * t + (c & 1);
          const float p = key < keys ? f2i_expf(s[n][c] - (c < 2 ? mn_lo : mn_hi)) : 0.0f;
          s[n][c] = p;
          if (c < 2)
            sum_lo += p;
          else
            sum_hi += p;
        }
      }
      l_lo = l_lo * corr_lo + sum_lo;
      l_hi = l_hi * corr_hi + sum_hi;
#pragma unroll
      for (int n = 0; n < OT; ++n) {
        o[n][0] *= corr_lo;
        o[n][1] *= corr_lo;
        o[n][2] *= corr_hi;
        o[n][3] *= corr_hi;
      }

      // O += P·V: P (16 × 64 keys) from s in registers, V (64 keys × hd) from shared memory.
#pragma unroll
      for (int kk = 0; kk < ATC_BN / 16; ++kk) {
        if (16 * kk < keys) {
          f2i_u32 pa[4];
          pa[0] = f2i_pack_float2(s[2 * kk][0], s[2 * kk][1]);
          pa[1] = f2i_pack_float2(s[2 * kk][2], s[2 * kk][3]);
          pa[2] = f2i_pack_float2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
          pa[3] = f2i_pack_float2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
          for (int n = 0; n < OT; n += 2) {
            if (n < 2 * ksteps) {  // dims 8n..8n+16 within hdp
              f2i_u32 b[4];
              f2i_ldmatrix_x4_trans(b, tV + (16 * kk + v_row) * LD + 8 * n + v_col);
              f2i_mma_m16n8k16_f32_f16(o[n], pa, b, o[n]);
              f2i_mma_m16n8k16_f32_f16(o[n + 1], pa, b + 2, o[n + 1]);
            }
          }
        }
      }
    }
    f2i_syncthreads();  // stage j&1 is refilled by tile j+2's prefetch
  }

  // Normalise and store rows g and g+8 of the warp's 16.
  l_lo += f2i_shfl_xor(l_lo, 1);
  l_lo += f2i_shfl_xor(l_lo, 2);
  l_hi += f2i_shfl_xor(l_hi, 1);
  l_hi += f2i_shfl_xor(l_hi, 2);
  if (active) {
    const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f;
    const float inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
    const int r_lo = row0 + 16 * warp + g, r_hi = r_lo + 8;
#pragma unroll
    for (int n = 0; n < OT; ++n) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int row = c < 2 ? r_lo : r_hi;
        const int col = 8 * n + 2 * t + (c & 1);
        if (row < tq && col < hd)
          f2i_store(out + (size_t)row * (size_t)out_rs + col0 + col,
                    o[n][c] * (c < 2 ? inv_lo : inv_hi));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// attention_tc_wide: head_dim ≤ 512 (the VAE's mid-block attention: one head as wide as its
// 512 channels). O for 16 rows × 512 columns would need 256 accumulators per lane, so the head
// dim is split over warps instead:
// Mapping: grid [⌈tq/32⌉, heads], block 8 warps; warp w = (row group w & 1: 16 of the block's
//   32 query rows) × (column group w >> 1: head dims 128·cg..128·cg+127). Keys in tiles of 32.
//   Per tile each warp computes the partial S of its rows over its 128 dims (Q fragments for
//   those dims in registers), publishes it to shared memory, and after a barrier sums the four
//   partials of its row group in a fixed order (cg = 0..3): the four warps of a row group hold
//   bit-identical S, so their softmax statistics agree. Each then runs the online softmax
//   (redundantly, 4×: cheap next to the mma) and P·V for its 128 columns of O.
// Shared memory: sK[2][32][520], sV[2][32][520] halves (Q [32][520] staged in sK stage 1 as
//   above), sS[2 row groups][4 column groups][4 n-tiles][32 lanes][4] f32 partial scores in
//   fragment order: 4·32·520·2 + 2·4·4·32·4·4 = 149504 bytes (opt-in above 48 KB; Orin allows
//   163 KB per block).
// Numerics as above; S sums its 4 partials in f32 (fixed order).
#define ATC_W_WARPS 8
#define ATC_W_BM 32
#define ATC_W_BN 32
#define ATC_W_HDMAX 512

F2I_FN void attention_tc_wide_body(const act_t* q, const act_t* k, const act_t* v, act_t* out,
                                   int q_rs, int k_rs, int v_rs, int out_rs, int tq, int tk,
                                   int hd, float scale, int vec_flag) {
  constexpr int LD = ATC_W_HDMAX + 8;
  constexpr int CW = 128;           // head dims per column group
  constexpr int KSTEPS = CW / 16;   // k-steps of q·kᵀ per warp
  constexpr int OT = CW / 8;        // n-tiles of O per warp
  constexpr int ST = ATC_W_BN / 8;  // n-tiles of S
  F2I_DYNAMIC_SHARED(f2i_half, smem);
  f2i_half* sK = smem;                          // [2][BN][LD]
  f2i_half* sV = smem + 2 * ATC_W_BN * LD;      // [2][BN][LD]
  f2i_half* sQ = sK + ATC_W_BN * LD;            // aliases sK stage 1 until the loop starts
  float* sS = reinterpret_cast<float*>(smem + 4 * ATC_W_BN * LD);  // [2][4][ST][32][4]

  const bool vec = vec_flag != 0;
  const int lane = (int)f2i_lane();
  const int warp = (int)threadIdx.x / 32;
  const int rg = warp & 1, cg = warp >> 1;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = (int)blockIdx.x * ATC_W_BM;
  const size_t col0 = (size_t)blockIdx.y * (size_t)hd;
  const int hdp = (hd + 15) & ~15;
  const int c0 = CW * cg;                                    // this warp's first head dim
  const int ksteps = f2i_max(0, f2i_min(KSTEPS, (hdp - c0) / 16));  // its k-steps within hdp
  const int tiles = (tk + ATC_W_BN - 1) / ATC_W_BN;
  const act_t* kh = k + col0;
  const act_t* vh = v + col0;
  const bool active = row0 + 16 * rg < tq;  // warp-uniform
  auto load = [&](f2i_half* dst, const act_t* src, int rs, int valid) {
    atc_load_tile<ATC_W_BM, ATC_W_WARPS * 32>(dst, LD, src, rs, valid, hd, hdp, vec);
  };

  load(sQ, q + (size_t)row0 * (size_t)q_rs + col0, q_rs, tq - row0);
  if (tiles > 0) {
    load(sK, kh, k_rs, tk);
    load(sV, vh, v_rs, tk);
  }
  f2i_cp_async_commit();
  f2i_cp_async_wait<0>();
  f2i_syncthreads();

  f2i_u32 qf[KSTEPS][4];
#pragma unroll
  for (int ks = 0; ks < KSTEPS; ++ks) {
    qf[ks][0] = qf[ks][1] = qf[ks][2] = qf[ks][3] = 0u;
    if (ks < ksteps)
      f2i_ldmatrix_x4(qf[ks],
                      sQ + (16 * rg + (lane & 15)) * LD + c0 + 16 * ks + 8 * (lane >> 4));
  }
  f2i_syncthreads();

  float o[OT][4];
#pragma unroll
  for (int n = 0; n < OT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_lo = ATC_NEG_BIG, m_hi = ATC_NEG_BIG;
  float l_lo = 0.0f, l_hi = 0.0f;
  const int k_row = (lane & 7) + 8 * (lane >> 4), k_col = 8 * ((lane >> 3) & 1);
  const int v_row = (lane & 7) + 8 * ((lane >> 3) & 1), v_col = 8 * (lane >> 4);
  float* my_part = sS + ((rg * 4 + cg) * ST * 32 + lane) * 4;  // + n·128

  for (int j = 0; j < tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < tiles) {
      const int next = (j + 1) * ATC_W_BN;
      load(sK + (stage ^ 1) * ATC_W_BN * LD, kh + (size_t)next * (size_t)k_rs, k_rs, tk - next);
      load(sV + (stage ^ 1) * ATC_W_BN * LD, vh + (size_t)next * (size_t)v_rs, v_rs, tk - next);
    }
    f2i_cp_async_commit();
    f2i_cp_async_wait<1>();
    f2i_syncthreads();

    const int keys = f2i_min(ATC_W_BN, tk - j * ATC_W_BN);
    const f2i_half* tK = sK + stage * ATC_W_BN * LD;
    const f2i_half* tV = sV + stage * ATC_W_BN * LD;
    float s[ST][4];
#pragma unroll
    for (int n = 0; n < ST; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    if (active) {  // partial S over this warp's dims
#pragma unroll
      for (int ks = 0; ks < KSTEPS; ++ks) {
        if (ks < ksteps) {
#pragma unroll
          for (int n = 0; n < ST; n += 2) {
            if (8 * n < keys) {
              f2i_u32 b[4];
              f2i_ldmatrix_x4(b, tK + (8 * n + k_row) * LD + c0 + 16 * ks + k_col);
              f2i_mma_m16n8k16_f32_f16(s[n], qf[ks], b, s[n]);
              f2i_mma_m16n8k16_f32_f16(s[n + 1], qf[ks], b + 2, s[n + 1]);
            }
          }
        }
      }
#pragma unroll
      for (int n = 0; n < ST; ++n)
#pragma unroll
        for (int c = 0; c < 4; ++c) my_part[n * 128 + c] = s[n][c];
    }
    f2i_syncthreads();  // the four partials of each row group are published

    if (active) {
      const float* parts = sS + (rg * 4 * ST * 32 + lane) * 4;
#pragma unroll
      for (int n = 0; n < ST; ++n)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          float acc = parts[n * 128 + c];
#pragma unroll
          for (int p = 1; p < 4; ++p) acc += parts[(p * ST + n) * 128 + c];
          s[n][c] = acc;
        }

      float mx_lo = ATC_NEG_BIG, mx_hi = ATC_NEG_BIG;
#pragma unroll
      for (int n = 0; n < ST; ++n) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int key = 8 * n + 2 * t + (c & 1);
          const float sc = key < keys ? s[n][c] * scale : ATC_NEG_BIG;
          s[n][c] = sc;
          if (c < 2)
            mx_lo = f2i_fmaxf(mx_lo, sc);
          else
            mx_hi = f2i_fmaxf(mx_hi, sc);
        }
      }
      mx_lo = f2i_fmaxf(mx_lo, f2i_shfl_xor(mx_lo, 1));
      mx_lo = f2i_fmaxf(mx_lo, f2i_shfl_xor(mx_lo, 2));
      mx_hi = f2i_fmaxf(mx_hi, f2i_shfl_xor(mx_hi, 1));
      mx_hi = f2i_fmaxf(mx_hi, f2i_shfl_xor(mx_hi, 2));
      const float mn_lo = f2i_fmaxf(m_lo, mx_lo), mn_hi = f2i_fmaxf(m_hi, mx_hi);
      const float corr_lo = f2i_expf(m_lo - mn_lo), corr_hi = f2i_expf(m_hi - mn_hi);
      m_lo = mn_lo;
      m_hi = mn_hi;
      float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
      for (int n = 0; n < ST; ++n) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int key = 8 * n + 2 * t + (c & 1);
          const float p = key < keys ? f2i_expf(s[n][c] - (c < 2 ? mn_lo : mn_hi)) : 0.0f;
          s[n][c] = p;
          if (c < 2)
            sum_lo += p;
          else
            sum_hi += p;
        }
      }
      l_lo = l_lo * corr_lo + sum_lo;
      l_hi = l_hi * corr_hi + sum_hi;
#pragma unroll
      for (int n = 0; n < OT; ++n) {
        o[n][0] *= corr_lo;
        o[n][1] *= corr_lo;
        o[n][2] *= corr_hi;
        o[n][3] *= corr_hi;
      }
#pragma unroll
      for (int kk = 0; kk < ATC_W_BN / 16; ++kk) {
        if (16 * kk < keys) {
          f2i_u32 pa[4];
          pa[0] = f2i_pack_float2(s[2 * kk][0], s[2 * kk][1]);
          pa[1] = f2i_pack_float2(s[2 * kk][2], s[2 * kk][3]);
          pa[2] = f2i_pack_float2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
          pa[3] = f2i_pack_float2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
          for (int n = 0; n < OT; n += 2) {
            if (n < 2 * ksteps) {  // dims c0 + 8n..+16 within hdp
              f2i_u32 b[4];
              f2i_ldmatrix_x4_trans(b, tV + (16 * kk + v_row) * LD + c0 + 8 * n + v_col);
              f2i_mma_m16n8k16_f32_f16(o[n], pa, b, o[n]);
              f2i_mma_m16n8k16_f32_f16(o[n + 1], pa, b + 2, o[n + 1]);
            }
          }
        }
      }
    }
    f2i_syncthreads();  // stage j&1 and sS are rewritten for the next tiles
  }

  l_lo += f2i_shfl_xor(l_lo, 1);
  l_lo += f2i_shfl_xor(l_lo, 2);
  l_hi += f2i_shfl_xor(l_hi, 1);
  l_hi += f2i_shfl_xor(l_hi, 2);
  if (active) {
    const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f;
    const float inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
    const int r_lo = row0 + 16 * rg + g, r_hi = r_lo + 8;
#pragma unroll
    for (int n = 0; n < OT; ++n) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int row = c < 2 ? r_lo : r_hi;
        const int col = c0 + 8 * n + 2 * t + (c & 1);
        if (row < tq && col < hd)
          f2i_store(out + (size_t)row * (size_t)out_rs + col0 + col,
                    o[n][c] * (c < 2 ? inv_lo : inv_hi));
      }
    }
  }
}

// Launch: grid [⌈tq/64⌉, heads], block [128], dynamic shared 4·64·(HDMAX+8)·2 bytes; vec = 1
// only when q, k, v (at this head's columns) and their row strides are 16-byte aligned and
// hd % 8 == 0, with f16 storage.
F2I_KERNEL void F2I_NAME(attention_tc_32)(const act_t* q, const act_t* k, const act_t* v, act_t* F2I_RESTRICT out, int q_rs, int k_rs, int v_rs, int out_rs, int tq, int tk, int hd, float scale, int vec)
{
  attention_tc_body<32>(q, k, v, out, q_rs, k_rs, v_rs, out_rs, tq, tk, hd, scale, vec);
}

F2I_KERNEL void F2I_NAME(attention_tc_64)(const act_t* q, const act_t* k, const act_t* v, act_t* F2I_RESTRICT out, int q_rs, int k_rs, int v_rs, int out_rs, int tq, int tk, int hd, float scale, int vec)
{
  attention_tc_body<64>(q, k, v, out, q_rs, k_rs, v_rs, out_rs, tq, tk, hd, scale, vec);
}

F2I_KERNEL void F2I_NAME(attention_tc_128)(const act_t* q, const act_t* k, const act_t* v, act_t* F2I_RESTRICT out, int q_rs, int k_rs, int v_rs, int out_rs, int tq, int tk, int hd, float scale, int vec)
{
  attention_tc_body<128>(q, k, v, out, q_rs, k_rs, v_rs, out_rs, tq, tk, hd, scale, vec);
}

// Launch: grid [⌈tq/32⌉, heads], block [256], dynamic shared 149504 bytes; head_dim ≤ 512; vec
// as above.
F2I_KERNEL void F2I_NAME(attention_tc_wide)(const act_t* q, const act_t* k, const act_t* v, act_t* F2I_RESTRICT out, int q_rs, int k_rs, int v_rs, int out_rs, int tq, int tk, int hd, float scale, int vec)
{
  attention_tc_wide_body(q, k, v, out, q_rs, k_rs, v_rs, out_rs, tq, tk, hd, scale, vec);
}
