// conv.cu — 2-D convolution (PyTorch nn.Conv2d, dilation 1, groups 1) as an implicit GEMM:
//   out[co, p] (+)= alpha · Σ_k W[co, k] · cols[k, p] + beta · bias[co]
// with k = (ci, ky, kx) over c_in·kh·kw (the weight's own [c_out, c_in, kh, kw] layout) and
// p = (oy, ox) over the ho·wo output pixels; cols[k, p] = x[ci, oy·s + ky − pad_top,
// ox·s + kx − pad_left], zero outside the image (asymmetric padding: the bottom/right pads
// only enter through ho/wo). cols is never materialised: each tile is gathered from x.
//
// Mapping: grid (⌈P/64⌉, ⌈c_out/64⌉), block 256 threads = 16×16 (tx = t % 16, ty = t / 16).
// A block owns a 64 (c_out) × 64 (pixels) tile of out; thread (tx, ty) owns the 4×4 outputs
// co = ty + 16i, p = tx + 16j, so a warp's stores hit 16 consecutive pixels of two rows.
// The K loop walks 16-deep slices: every thread loads 4 weights and gathers 4 cols values,
// barrier, 16 rank-1 updates of its 4×4 accumulator, barrier. Sizes need not be multiples of
// any tile: loads outside the matrix fill 0, stores outside it are skipped.
//
// Shared memory (static, 8.3 KB): w_tile[16][65] = W[co0 + m, k0 + k] transposed (k-major, one
// float of padding so the transposing stores spread over banks), col_tile[16][64] = cols[k0 + k,
// p0 + n]. Reads in the inner loop: w_tile broadcasts (two addresses per warp), col_tile 16
// consecutive words per warp.
//
// Numerics: x, W, bias and out are act_t (f16 or f32 storage), converted to f32 on load; the
// accumulation is f32 in k order; out = alpha·acc + beta·bias (+ old out when accumulating),
// rounded once to act_t on store (alpha, beta: powers of two, the f16 pre-scales; 1 otherwise).
#include "common/f2i_device.h"

#define CONV_TILE_M 64  // output channels per block
#define CONV_TILE_N 64  // output pixels per block
#define CONV_TILE_K 16  // GEMM depth per shared-memory slice
#define CONV_THREADS 256

F2I_KERNEL void F2I_NAME(conv2d)(const act_t* F2I_RESTRICT x, const act_t* F2I_RESTRICT weight, const act_t* F2I_RESTRICT bias, act_t* F2I_RESTRICT out, int c_in, int h, int w, int c_out, int ho, int wo, int kh, int kw, int stride, int pad_top, int pad_left, float alpha, float beta, int accumulate) {
  F2I_SHARED(float, w_tile, CONV_TILE_K * (CONV_TILE_M + 1));
  F2I_SHARED(float, col_tile, CONV_TILE_K * CONV_TILE_N);

  const int t = (int)threadIdx.x;
  const int tx = t % 16, ty = t / 16;
  const int p0 = (int)blockIdx.x * CONV_TILE_N;
  const int co0 = (int)blockIdx.y * CONV_TILE_M;
  const int taps = kh * kw;
  const int depth = c_in * taps;
  const int pixels = ho * wo;

  // The one output pixel this thread gathers cols for (column t % 64 of col_tile), decoded
  // once: its receptive field's top-left corner in x.
  const int gather_n = t % CONV_TILE_N;
  const int gather_k = t / CONV_TILE_N;  // 0..3: first of the rows k = gather_k + 4r
  const int gather_p = p0 + gather_n;
  const bool gather_ok = gather_p < pixels;
  const int oy = gather_ok ? gather_p / wo : 0;
  const int iy0 = oy * stride - pad_top;
  const int ix0 = (gather_p - oy * wo) * stride - pad_left;

  float acc[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < depth; k0 += CONV_TILE_K) {
    // Weights: element e = t + 256r of the 64×16 slice is W[co0 + e/16, k0 + e%16]
    // (16 consecutive k per row: contiguous reads).
    for (int r = 0; r < 4; ++r) {
      const int e = t + CONV_THREADS * r;
      const int m = e / CONV_TILE_K, k = e % CONV_TILE_K;
      const int co = co0 + m, kk = k0 + k;
      w_tile[k * (CONV_TILE_M + 1) + m] =
          (co < c_out && kk < depth) ? f2i_load(weight + co * depth + kk) : 0.0f;
    }
    // cols: rows k = gather_k + 4r of column gather_n.
    for (int r = 0; r < 4; ++r) {
      const int k = gather_k + 4 * r;
      const int kk = k0 + k;
      float v = 0.0f;
      if (gather_ok && kk < depth) {
        const int ci = kk / taps;
        const int tap = kk - ci * taps;
        const int ky = tap / kw;
        const int iy = iy0 + ky;
        const int ix = ix0 + (tap - ky * kw);
        if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = f2i_load(x + (ci * h + iy) * w + ix);
      }
      col_tile[k * CONV_TILE_N + gather_n] = v;
    }
    f2i_syncthreads();
    for (int k = 0; k < CONV_TILE_K; ++k) {
      float a[4], b[4];
      for (int i = 0; i < 4; ++i) a[i] = w_tile[k * (CONV_TILE_M + 1) + ty + 16 * i];
      for (int j = 0; j < 4; ++j) b[j] = col_tile[k * CONV_TILE_N + tx + 16 * j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    // The next slice overwrites the tiles: everyone must be done reading them.
    f2i_syncthreads();
  }

  for (int i = 0; i < 4; ++i) {
    const int co = co0 + ty + 16 * i;
    if (co >= c_out) continue;
    const float b = bias ? beta * f2i_load(bias + co) : 0.0f;
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= pixels) continue;
      act_t* o = out + co * pixels + p;
      float v = alpha * acc[i][j] + b;
      if (accumulate) v += f2i_load(o);
      f2i_store(o, v);
    }
  }
}
