// attention.cu — multi-head scaled dot-product attention, out = softmax(q kᵀ·scale) v per head,
// flash-style: the tq×tk score matrix is never stored, memory is linear in tokens.
// CPU oracle: src/backend/cpu/kernels/attention.rs.
//
// Operands: head h of q [tq, ·], k, v [tk, ·] is columns h·hd..(h+1)·hd of a row-major matrix
//   with its own row stride (q, k, v may be column blocks of one fused qkv projection); out is
//   [tq, heads·hd] (row stride out_rs).
// Mapping: grid [⌈tq/(4·R)⌉, heads], block 4 warps; warp w owns the R query rows
//   blockIdx.x·4R + w·R + i. Keys are streamed in tiles of 32 (one key per lane for the scores);
//   head_dim in chunks of 128 = 32 lanes × 4 columns (NCH chunks: `attention` R = 4, NCH = 1
//   for hd ≤ 128; `attention_wide` R = 2, NCH = 4 for hd ≤ 512, the VAE's single 512-wide head).
//   Per tile: for each chunk, the block stages K[32 × ≤128] in shared memory and every lane
//   accumulates its key's partial score for its warp's R rows; then the online softmax: tile
//   max by a warp butterfly, m' = max(m, tile max), p = exp(s − m'), l = l·e^(m−m') + Σp, the
//   accumulator rescaled by e^(m−m'); p goes to the warp's slot of shared memory; then for each
//   chunk the block stages V[32 × ≤128] and lane c accumulates Σ_j p_j·v[j, c] for its columns
//   c = lane + 32·i (4 per chunk, in registers). At the end out = acc / l (0 when tk = 0).
// Shared memory (dynamic, floats): qs [4R][hd] (the block's query rows, read as broadcasts),
//   kv [32][129] (the current K or V chunk; odd row stride so that lane j reading key j's row
//   hits its own bank), ps [4R][32] (each warp's p of the current tile). Rows and keys past the
//   end are staged as zeros (never poison) and masked out of the softmax.
// Barriers: 4·NCH per tile, at the same points in every thread (warps with no valid query rows
//   compute on zeros and only skip the final store).
// Numerics: storage act_t (f16 or f32), all arithmetic f32 with full-precision expf; sums in a
//   fixed order (d ascending, keys ascending), so results do not depend on the schedule.
#include "common/f2i_device.h"

#define ATTN_WARPS 4
#define ATTN_TILE 32
#define ATTN_CHUNK 128
#define ATTN_KV_STRIDE (ATTN_CHUNK + 1)
#define ATTN_NEG_BIG (-3.0e38f)

// Dynamic shared bytes of a launch (mirrored in src/backend/cuda/ops/attention.rs).
//   (4R·hd + 32·129 + 4R·32) · 4

template <int R, int NCH>
F2I_FN void attention_body(const act_t* q, const act_t* k, const act_t* v, act_t* out, int q_rs,
                           int k_rs, int v_rs, int out_rs, int tq, int tk, int hd, float scale) {
  F2I_DYNAMIC_SHARED(float, smem);
  const int rows_per_block = ATTN_WARPS * R;
  float* qs = smem;                                    // [rows_per_block][hd]
  float* kv = qs + rows_per_block * hd;                // [ATTN_TILE][ATTN_KV_STRIDE]
  float* ps = kv + ATTN_TILE * ATTN_KV_STRIDE;         // [rows_per_block][ATTN_TILE]

  const int tid = (int)threadIdx.x;
  const int lane = (int)f2i_lane();
  const int warp = tid / 32;
  const int row0 = (int)blockIdx.x * rows_per_block;
  const size_t col0 = (size_t)blockIdx.y * (size_t)hd;  // this head's first column

  for (int e = tid; e < rows_per_block * hd; e += ATTN_WARPS * 32) {
    const int r = e / hd, d = e % hd;
    const int row = row0 + r;
    qs[e] = row < tq ? f2i_load(q + (size_t)row * (size_t)q_rs + col0 + d) : 0.0f;
  }

  float m[R], l[R], acc[R][4 * NCH];
#pragma unroll
  for (int i = 0; i < R; ++i) {
    m[i] = ATTN_NEG_BIG;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < 4 * NCH; ++c) acc[i][c] = 0.0f;
  }
  const float* my_q = qs + warp * R * hd;
  float* my_p = ps + warp * R * ATTN_TILE;

  for (int t0 = 0; t0 < tk; t0 += ATTN_TILE) {
    const int keys = f2i_min(ATTN_TILE, tk - t0);

    // Scores of key t0 + lane against the warp's rows, chunk by chunk of head_dim.
    float s[R];
#pragma unroll
    for (int i = 0; i < R; ++i) s[i] = 0.0f;
#pragma unroll
    for (int ch = 0; ch < NCH; ++ch) {
      if (ch * ATTN_CHUNK < hd) {  // uniform over the block
        const int d0 = ch * ATTN_CHUNK, dc = f2i_min(ATTN_CHUNK, hd - d0);
        f2i_syncthreads();  // the previous readers of kv are done
        for (int e = tid; e < ATTN_TILE * dc; e += ATTN_WARPS * 32) {
          const int j = e / dc, d = e % dc;
          kv[j * ATTN_KV_STRIDE + d] =
              j < keys ? f2i_load(k + (size_t)(t0 + j) * (size_t)k_rs + col0 + d0 + d) : 0.0f;
        }
        f2i_syncthreads();
        const float* kr = kv + lane * ATTN_KV_STRIDE;
        for (int d = 0; d < dc; ++d) {
          const float kd = kr[d];
#pragma unroll
          for (int i = 0; i < R; ++i) s[i] += my_q[i * hd + d0 + d] * kd;
        }
      }
    }

    // Online softmax update.
    const bool valid = lane < keys;
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const float si = valid ? s[i] * scale : ATTN_NEG_BIG;
      const float m_new = f2i_fmaxf(m[i], f2i_warp_max(si));
      const float p = valid ? f2i_expf(si - m_new) : 0.0f;
      const float corr = f2i_expf(m[i] - m_new);
      l[i] = l[i] * corr + f2i_warp_sum(p);
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < 4 * NCH; ++c) acc[i][c] *= corr;
      my_p[i * ATTN_TILE + lane] = p;
    }

    // acc += p · V, chunk by chunk (the barrier also publishes my_p to the warp).
#pragma unroll
    for (int ch = 0; ch < NCH; ++ch) {
      if (ch * ATTN_CHUNK < hd) {
        const int d0 = ch * ATTN_CHUNK, dc = f2i_min(ATTN_CHUNK, hd - d0);
        f2i_syncthreads();
        for (int e = tid; e < ATTN_TILE * dc; e += ATTN_WARPS * 32) {
          const int j = e / dc, d = e % dc;
          kv[j * ATTN_KV_STRIDE + d] =
              j < keys ? f2i_load(v + (size_t)(t0 + j) * (size_t)v_rs + col0 + d0 + d) : 0.0f;
        }
        f2i_syncthreads();
        for (int j = 0; j < keys; ++j) {
          const float* vr = kv + j * ATTN_KV_STRIDE;
#pragma unroll
          for (int i = 0; i < R; ++i) {
            const float p = my_p[i * ATTN_TILE + j];
#pragma unroll
            for (int c = 0; c < 4; ++c)
              if (c * 32 + lane < dc) acc[i][ch * 4 + c] += p * vr[c * 32 + lane];
          }
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int row = row0 + warp * R + i;
    if (row < tq) {
      const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
      act_t* o = out + (size_t)row * (size_t)out_rs + col0;
#pragma unroll
      for (int c = 0; c < 4 * NCH; ++c) {
        const int col = (c / 4) * ATTN_CHUNK + (c % 4) * 32 + lane;
        if (col < hd) f2i_store(o + col, acc[i][c] * inv);
      }
    }
  }
}

// Launch: grid [⌈tq/16⌉, heads], block [128], dynamic shared (16·hd + 32·129 + 16·32)·4 bytes;
// head_dim ≤ 128.
F2I_KERNEL void F2I_NAME(attention)(const act_t* q, const act_t* k, const act_t* v, act_t* F2I_RESTRICT out, int q_rs, int k_rs, int v_rs, int out_rs, int tq, int tk, int hd, float scale)
{
  attention_body<4, 1>(q, k, v, out, q_rs, k_rs, v_rs, out_rs, tq, tk, hd, scale);
}

// Launch: grid [⌈tq/8⌉, heads], block [128], dynamic shared (8·hd + 32·129 + 8·32)·4 bytes;
// head_dim ≤ 512.
F2I_KERNEL void F2I_NAME(attention_wide)(const act_t* q, const act_t* k, const act_t* v, act_t* F2I_RESTRICT out, int q_rs, int k_rs, int v_rs, int out_rs, int tq, int tk, int hd, float scale)
{
  attention_body<2, 4>(q, k, v, out, q_rs, k_rs, v_rs, out_rs, tq, tk, hd, scale);
}
