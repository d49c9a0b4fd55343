// conv_tc.cu — 2-D convolution (PyTorch nn.Conv2d, dilation 1, groups 1) as an implicit GEMM on
// tensor cores (sm_80+: Orin sm_87, H100/H200 sm_90). f16 storage only: the f32 build of this
// file compiles to stubs that trap (src/backend/cuda/ops/conv.rs never launches them).
//
//   out[co, p] (+)= Σ_k A[co, k] · B[k, p] + bias[co],   k = (ky, kx, ci) over kh·kw·c_pad
//
// Packed operands make every access a 16-byte, 16-byte-aligned cp.async:
//   conv_tc_pack_input   x [c_in, h, w] → xt [h·w, c_pad] (channels last, c_pad = c_in rounded
//                        up to 8, zeros beyond c_in): a 32×32 shared-memory transpose, per call;
//   conv_tc_pack_input_gn  the same with GroupNorm(+SiLU) applied on the way (statistics from
//                        norm.cu's stats/finish kernels): the normalised activation is never
//                        stored, saving GroupNorm's output pass;
//   the weight           W [c_out, c_in, kh, kw] → wt [c_out, kh, kw, c_pad] (zeros beyond c_in)
//                        once, on the host at upload (src/backend/cuda/layouts.rs), so A's rows
//                        have the same k order as B's columns.
// A second K segment (LoRA's up projection, src/backend/cuda/ops/lora.rs) may follow the
// convolution's: A₂ = wt2 [c_out, k2], B₂ = xt2 [ho·wo, k2], both plain row-major.
// With k ordered (tap, channel) and c_pad % 8 == 0, eight consecutive k of one output pixel are
// eight consecutive halves of xt (one pixel, one tap, eight channels): one cp.async, or a
// zero-fill where the tap falls into the padding or k runs past K. Any c_in works (c_in = 3:
// c_pad = 8), any kh × kw, any stride, asymmetric padding (bottom/right pads only enter through
// ho/wo), and sizes that are no multiple of the tile: rows/columns outside the matrix zero-fill
// on load and are skipped on store.
//
// conv_tc (the GEMM): grid (⌈P/BN⌉, ⌈c_out/BM⌉), WARPS_M × WARPS_N warps; a block owns a
// BM (output channels) × BN (output pixels) tile of out; a warp owns (16·MI) × (16·NJ): MI m16
// tiles × 2·NJ n8 tiles of m16n8k16 accumulators (f32 registers). Two instantiations:
//   conv_tc_64x64    BM = BN = 64,  2×2 warps (128 threads), warp 32×32, 3 stages, static smem
//                    3 · (64 + 64) · 40 · 2 B = 30 KB;  for small layers and few blocks;
//   conv_tc_128x128  BM = BN = 128, 2×4 warps (256 threads), warp 64×32, 4 stages, dynamic smem
//                    4 · (128 + 128) · 40 · 2 B = 80 KB (opt-in above 48 KB);  for large layers.
// K loop, BK = 32 per stage: a STAGES-deep cp.async ring. Prologue: tiles 0..STAGES−2 issued,
// one commit group each. Iteration kt: wait until tile kt landed (wait_group STAGES−2, one group
// committed per iteration, possibly empty, so the count is exact), barrier (its chunks visible
// to every warp, and every warp done with the stage read in iteration kt−1), issue tile
// kt+STAGES−1 into that freed stage, commit, then 2 k16 steps of ldmatrix + mma on tile kt.
// One barrier per K tile.
//
// Shared memory per stage: sA[BM][40], sB[BN][40] halves — row = an output channel (A) or an
// output pixel (B), 32 k contiguous, padded to 40 halves (80 bytes). Every row is 16-byte
// aligned (cp.async, ldmatrix), and the 8 rows an 8-lane phase of ldmatrix reads start at
// 80·r bytes: 16-byte bank groups 5r mod 8 = all 8 distinct, so ldmatrix is conflict-free;
// cp.async stores of a warp (8 rows × 4 chunks) are the minimal 4 wavefronts.
// Fragments: A (row-major, m × k) by ldmatrix_x4 → a[0..3]; B is stored pixel-major (n × k),
// which is the mma's "col" B: ldmatrix_x4 (no .trans) over (n 0-7, k 0-7), (n 0-7, k 8-15),
// (n 8-15, k 0-7), (n 8-15, k 8-15) gives the b[0..1] of two n8 tiles.
//
// Numerics: x, W, bias and out are f16; products are exact and accumulate in f32 in the tensor
// cores (k order: 16 at a time within an mma, k tiles in order, (tap, channel) order overall,
// then segment 2 — a different order than kernels/conv.cu, so results differ from it by f32
// rounding). Epilogue: v = alpha·acc + beta·bias (+ out's old value when accumulating: the
// fused residual add; alpha, beta the f16 pre-scales, 1 otherwise), in f32, rounded once to f16
// on store at out[co·ld_c + p·ld_p] (a convolution's [c_out, pixels], a linear map's
// [rows, n_out]).
#include "common/f2i_mma.h"
#include "common/f2i_norm.h"

#define CONV_TC_BK 32       // GEMM depth per stage
#define CONV_TC_LDS 40      // halves per shared-memory row (32 + 8 padding: 80 bytes)
#define CONV_TC_PACK 32     // tile edge of the input transpose

// Loops over register arrays (accumulators, fragments, loader state) must unroll, or the arrays
// go to local memory (ptxas reports a stack frame).
#ifdef F2I_DEVICE_BUILD
#define CONV_TC_UNROLL _Pragma("unroll")
#else
#define CONV_TC_UNROLL
#endif

#ifdef F2I_ACT_F16
// The GEMM's operands and epilogue, as the kernels received them.
struct ConvTcArgs {
  const f2i_half* xt;   // B, segment 1: packed input [h·w, c_pad]
  const f2i_half* wt;   // A, segment 1: packed weight [c_out, kh·kw·c_pad]
  const f2i_half* bias; // [c_out] or null
  f2i_half* out;        // out[co·ld_c + p·ld_p]
  const f2i_half* xt2;  // B, segment 2: [ho·wo, k2] at the output pixel (LoRA's x·Aᵀ), or null
  const f2i_half* wt2;  // A, segment 2: [c_out, k2] (LoRA's B), or null
  int k2;               // depth of segment 2 (a multiple of 8; 0: none)
  int c_pad, h, w, c_out, ho, wo, kh, kw, stride, pad_top, pad_left, ld_c, ld_p;
  float alpha, beta;    // out = alpha·acc + beta·bias (+ out)
  int accumulate;
};

// ---------------------------------------------------------------------------------------------
// The K-tile loader. Thread t loads the 16-byte chunk t % 4 (k offset 8·(t % 4) in the tile) of
// rows t/4 + (THREADS/4)·q of sA and of sB. `ci`, `kx`, `ky` are the thread's k (k0 + 8·(t % 4))
// decoded and advanced tile by tile (segment-1 tiles are issued in order), so no division runs
// in the loop; ky == kh means k ≥ K.
template <int ROWS_A, int ROWS_B, int THREADS>
struct ConvTcLoader {
  static constexpr int QA = ROWS_A * 4 / THREADS;  // chunks per thread and tile
  static constexpr int QB = ROWS_B * 4 / THREADS;
  const f2i_half* a_row[QA];  // weight row of each A chunk (nullptr: channel ≥ c_out)
  int iy0[QB], ix0[QB];       // each B row's receptive-field corner (iy0 = −2^28: no pixel)
  int ci, kx, ky;             // this thread's k, decoded
  int chunk;                  // t % 4
};

// k += step for a decoded k (ci, kx, ky); c_pad ≥ 8, so at most step / 8 turns of the loop.
template <typename L>
F2I_FN void conv_tc_advance(L& ld, int step, int c_pad, int kw) {
  ld.ci += step;
  while (ld.ci >= c_pad) {
    ld.ci -= c_pad;
    if (++ld.kx == kw) {
      ld.kx = 0;
      ++ld.ky;
    }
  }
}

// Segment 1 (the convolution): tile k_tile0 of A = wt and of B = the receptive fields in xt.
template <int ROWS_A, int ROWS_B, int THREADS>
F2I_FN void conv_tc_load(ConvTcLoader<ROWS_A, ROWS_B, THREADS>& ld, f2i_half* sA, f2i_half* sB,
                         const ConvTcArgs& g, int k_tile0, int t) {
  const int k = k_tile0 + 8 * ld.chunk;
  const bool k_ok = ld.ky < g.kh;
  CONV_TC_UNROLL
  for (int q = 0; q < ld.QA; ++q) {
    const int row = t / 4 + (THREADS / 4) * q;
    const bool ok = k_ok && ld.a_row[q] != nullptr;
    f2i_cp_async_16_zfill(sA + row * CONV_TC_LDS + 8 * ld.chunk, ok ? ld.a_row[q] + k : g.wt,
                          ok ? 16 : 0);
  }
  CONV_TC_UNROLL
  for (int q = 0; q < ld.QB; ++q) {
    const int row = t / 4 + (THREADS / 4) * q;
    const int iy = ld.iy0[q] + ld.ky, ix = ld.ix0[q] + ld.kx;
    const bool ok = k_ok && iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
    f2i_cp_async_16_zfill(sB + row * CONV_TC_LDS + 8 * ld.chunk,
                          ok ? g.xt + (iy * g.w + ix) * g.c_pad + ld.ci : g.xt, ok ? 16 : 0);
  }
  conv_tc_advance(ld, CONV_TC_BK, g.c_pad, g.kw);  // the next tile
}

// Segment 2 (LoRA's up projection): tile k_tile0 of A = wt2 [c_out, k2] and B = xt2 [pixels,
// k2], both plain row-major, at the block's own channels and output pixels.
template <int ROWS_A, int ROWS_B, int THREADS>
F2I_FN void conv_tc_load2(f2i_half* sA, f2i_half* sB, const ConvTcArgs& g, int k_tile0, int co0,
                          int p0, int pixels, int t) {
  const int chunk = t & 3;
  const int k = k_tile0 + 8 * chunk;
  const bool k_ok = k < g.k2;
  CONV_TC_UNROLL
  for (int q = 0; q < ROWS_A * 4 / THREADS; ++q) {
    const int row = t / 4 + (THREADS / 4) * q, co = co0 + row;
    const bool ok = k_ok && co < g.c_out;
    f2i_cp_async_16_zfill(sA + row * CONV_TC_LDS + 8 * chunk, ok ? g.wt2 + co * g.k2 + k : g.wt2,
                          ok ? 16 : 0);
  }
  CONV_TC_UNROLL
  for (int q = 0; q < ROWS_B * 4 / THREADS; ++q) {
    const int row = t / 4 + (THREADS / 4) * q, p = p0 + row;
    const bool ok = k_ok && p < pixels;
    f2i_cp_async_16_zfill(sB + row * CONV_TC_LDS + 8 * chunk, ok ? g.xt2 + p * g.k2 + k : g.xt2,
                          ok ? 16 : 0);
  }
}

template <int WARPS_M, int WARPS_N, int MI, int NJ, int STAGES>
F2I_FN void conv_tc_body(f2i_half* smem, const ConvTcArgs& g) {
  constexpr int THREADS = 32 * WARPS_M * WARPS_N;
  constexpr int BM = WARPS_M * MI * 16, BN = WARPS_N * NJ * 16;
  constexpr int STAGE_A = BM * CONV_TC_LDS, STAGE_B = BN * CONV_TC_LDS;
  static_assert(BM * 4 % THREADS == 0 && BN * 4 % THREADS == 0, "whole chunks per thread");
  f2i_half* sA = smem;
  f2i_half* sB = smem + STAGES * STAGE_A;

  const int t = (int)threadIdx.x, lane = t & 31, warp = t >> 5;
  const int wm = warp % WARPS_M, wn = warp / WARPS_M;
  const int p0 = (int)blockIdx.x * BN, co0 = (int)blockIdx.y * BM;
  const int pixels = g.ho * g.wo;
  const int K = g.kh * g.kw * g.c_pad;
  const int k_tiles1 = (K + CONV_TC_BK - 1) / CONV_TC_BK;
  const int k_tiles = k_tiles1 + (g.k2 + CONV_TC_BK - 1) / CONV_TC_BK;

  ConvTcLoader<BM, BN, THREADS> ld;
  ld.chunk = t & 3;
  CONV_TC_UNROLL
  for (int q = 0; q < ld.QA; ++q) {
    const int co = co0 + t / 4 + (THREADS / 4) * q;
    ld.a_row[q] = co < g.c_out ? g.wt + co * K : nullptr;
  }
  CONV_TC_UNROLL
  for (int q = 0; q < ld.QB; ++q) {
    const int p = p0 + t / 4 + (THREADS / 4) * q;
    const int oy = p < pixels ? p / g.wo : 0;
    ld.iy0[q] = p < pixels ? oy * g.stride - g.pad_top : -(1 << 28);
    ld.ix0[q] = (p - oy * g.wo) * g.stride - g.pad_left;
  }
  ld.ci = 0;
  ld.kx = 0;
  ld.ky = 0;
  conv_tc_advance(ld, 8 * ld.chunk, g.c_pad, g.kw);  // k = 8·chunk

  float acc[MI][2 * NJ][4];
  CONV_TC_UNROLL
  for (int i = 0; i < MI; ++i)
    CONV_TC_UNROLL
    for (int j = 0; j < 2 * NJ; ++j)
      CONV_TC_UNROLL
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

  // Issues K tile `kt` (of either segment) into stage `s`.
  auto issue = [&](int kt, int s) {
    if (kt < k_tiles1)
      conv_tc_load(ld, sA + s * STAGE_A, sB + s * STAGE_B, g, kt * CONV_TC_BK, t);
    else if (kt < k_tiles)
      conv_tc_load2<BM, BN, THREADS>(sA + s * STAGE_A, sB + s * STAGE_B, g,
                                     (kt - k_tiles1) * CONV_TC_BK, co0, p0, pixels, t);
  };

  CONV_TC_UNROLL
  for (int s = 0; s < STAGES - 1; ++s) {
    issue(s, s);
    f2i_cp_async_commit();
  }

  // ldmatrix row addresses of this lane, relative to a stage (A: row lane % 16, k half lane / 16;
  // B: row lane % 8 + 8·(lane / 16), k half (lane / 8) % 2).
  const int a_off = (wm * MI * 16 + (lane & 15)) * CONV_TC_LDS + 8 * (lane >> 4);
  const int b_off = (wn * NJ * 16 + (lane & 7) + 8 * (lane >> 4)) * CONV_TC_LDS + 8 * ((lane >> 3) & 1);

  for (int kt = 0; kt < k_tiles; ++kt) {
    f2i_cp_async_wait<STAGES - 2>();
    f2i_syncthreads();
    {
      const int next = kt + STAGES - 1;
      issue(next, next % STAGES);
      f2i_cp_async_commit();
    }
    const f2i_half* a_s = sA + (kt % STAGES) * STAGE_A + a_off;
    const f2i_half* b_s = sB + (kt % STAGES) * STAGE_B + b_off;
    CONV_TC_UNROLL
    for (int kk = 0; kk < CONV_TC_BK; kk += 16) {
      f2i_u32 af[MI][4], bf[2 * NJ][2];
      CONV_TC_UNROLL
      for (int i = 0; i < MI; ++i) f2i_ldmatrix_x4(af[i], a_s + i * 16 * CONV_TC_LDS + kk);
      CONV_TC_UNROLL
      for (int j = 0; j < NJ; ++j) {
        f2i_u32 r[4];
        f2i_ldmatrix_x4(r, b_s + j * 16 * CONV_TC_LDS + kk);
        bf[2 * j][0] = r[0];
        bf[2 * j][1] = r[1];
        bf[2 * j + 1][0] = r[2];
        bf[2 * j + 1][1] = r[3];
      }
      CONV_TC_UNROLL
      for (int i = 0; i < MI; ++i)
        CONV_TC_UNROLL
        for (int j = 0; j < 2 * NJ; ++j) f2i_mma_m16n8k16_f32_f16(acc[i][j], af[i], bf[j], acc[i][j]);
    }
  }

  // Epilogue: c0,c1 = (row g, cols 2t, 2t+1), c2,c3 = (row g + 8, same cols) of each m16n8 tile.
  const int gr = lane >> 2, tq = lane & 3;
  CONV_TC_UNROLL
  for (int i = 0; i < MI; ++i) {
    CONV_TC_UNROLL
    for (int half = 0; half < 2; ++half) {
      const int co = co0 + wm * MI * 16 + i * 16 + gr + 8 * half;
      if (co >= g.c_out) continue;
      const float b = g.bias ? g.beta * f2i_half_to_float(g.bias[co]) : 0.0f;
      CONV_TC_UNROLL
      for (int j = 0; j < 2 * NJ; ++j) {
        CONV_TC_UNROLL
        for (int e = 0; e < 2; ++e) {
          const int p = p0 + wn * NJ * 16 + j * 8 + 2 * tq + e;
          if (p >= pixels) continue;
          f2i_half* o = g.out + co * g.ld_c + p * g.ld_p;
          float v = g.alpha * acc[i][j][2 * half + e] + b;
          if (g.accumulate) v += f2i_half_to_float(*o);
          *o = f2i_float_to_half(v);
        }
      }
    }
  }
}
#define CONV_TC_F16_ONLY(...) __VA_ARGS__
#else
// f32 storage has no tensor-core path: the stubs only exist so both builds declare the same
// kernels. Launching one is a bug in the caller.
#ifdef F2I_DEVICE_BUILD
#define CONV_TC_F16_ONLY(...) asm volatile("trap;");
#else
#define CONV_TC_F16_ONLY(...) \
  f2i_mma_host_fail(F2I_SIM_ERR_UNSUPPORTED, "conv_tc: f16 storage only");
#endif
#endif

// x [c_in, hw] → xt [hw, c_pad]: block (32, 8) transposes 32 channels × 32 pixels through
// shared memory (u16 tile[32][33]: the odd row stride spreads the column reads over banks), so
// both the reads (along pixels) and the writes (along channels) are coalesced.
#ifdef F2I_ACT_F16
// The transpose; `value(c, p)` gives the bits of channel c at pixel p (in range).
template <typename Value>
F2I_FN void conv_tc_pack(act_t* F2I_RESTRICT xt, int c_in, int c_pad, int hw, f2i_u16* tile,
                         Value value) {
  const int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  const int p0 = (int)blockIdx.x * CONV_TC_PACK, c0 = (int)blockIdx.y * CONV_TC_PACK;
  for (int j = ty; j < CONV_TC_PACK; j += 8) {
    const int c = c0 + j, p = p0 + tx;
    tile[j * (CONV_TC_PACK + 1) + tx] = (c < c_in && p < hw) ? value(c, p) : (f2i_u16)0;
  }
  f2i_syncthreads();
  for (int j = ty; j < CONV_TC_PACK; j += 8) {
    const int p = p0 + j, c = c0 + tx;
    if (p < hw && c < c_pad) xt[p * c_pad + c].bits = tile[tx * (CONV_TC_PACK + 1) + j];
  }
}
#endif

F2I_KERNEL void F2I_NAME(conv_tc_pack_input)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT xt, int c_in, int c_pad, int hw) {
  CONV_TC_F16_ONLY({
    F2I_SHARED(f2i_u16, tile, CONV_TC_PACK * (CONV_TC_PACK + 1));
    conv_tc_pack(xt, c_in, c_pad, hw, tile, [&](int c, int p) { return x[c * hw + p].bits; });
  })
}

// The same, with x's GroupNorm(+SiLU) applied: stats [groups][2] = (mean, rstd) from norm.cu,
// groups of channels_per_group channels. The value is f2i_group_norm_value rounded once to f16,
// as group_norm_apply stores it: the packed input is bit-identical to the unfused path's.
F2I_KERNEL void F2I_NAME(conv_tc_pack_input_gn)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT xt, int c_in, int c_pad, int hw, const float* F2I_RESTRICT stats, const act_t* F2I_RESTRICT gamma, const act_t* F2I_RESTRICT beta, int channels_per_group, int silu) {
  CONV_TC_F16_ONLY({
    F2I_SHARED(f2i_u16, tile, CONV_TC_PACK * (CONV_TC_PACK + 1));
    conv_tc_pack(xt, c_in, c_pad, hw, tile, [&](int c, int p) {
      const int g = c / channels_per_group;
      const float y = f2i_group_norm_value(f2i_half_to_float(x[c * hw + p]), stats[2 * g],
                                           stats[2 * g + 1], f2i_half_to_float(gamma[c]),
                                           f2i_half_to_float(beta[c]), silu);
      return f2i_float_to_half(y).bits;
    });
  })
}

#define CONV_TC_PARAMS                                                                            \
  const act_t *F2I_RESTRICT xt, const act_t *F2I_RESTRICT wt, const act_t *F2I_RESTRICT bias,   \
      act_t *F2I_RESTRICT out, const act_t *F2I_RESTRICT xt2, const act_t *F2I_RESTRICT wt2,     \
      int k2, int c_pad, int h, int w, int c_out, int ho, int wo, int kh, int kw, int stride,    \
      int pad_top, int pad_left, int ld_c, int ld_p, float alpha, float beta, int accumulate
#define CONV_TC_ARGS                                                                              \
  ConvTcArgs g = {xt,  wt, bias,   out,     xt2,      wt2,  k2,   c_pad, h,     w,          c_out, \
                  ho,  wo, kh,     kw,      stride,   pad_top, pad_left, ld_c, ld_p, alpha, beta, accumulate};

F2I_KERNEL void F2I_NAME(conv_tc_64x64)(CONV_TC_PARAMS) {
  CONV_TC_F16_ONLY({
    F2I_SHARED(f2i_half, smem, 3 * (64 + 64) * CONV_TC_LDS);
    CONV_TC_ARGS
    conv_tc_body<2, 2, 2, 2, 3>(smem, g);
  })
}

// Dynamic shared memory: 4 · (128 + 128) · 40 · 2 = 81920 bytes (ops/gemm_tc.rs).
F2I_KERNEL void F2I_NAME(conv_tc_128x128)(CONV_TC_PARAMS) {
  CONV_TC_F16_ONLY({
    F2I_DYNAMIC_SHARED(f2i_half, smem);
    CONV_TC_ARGS
    conv_tc_body<2, 4, 4, 2, 4>(smem, g);
  })
}
