// linear.cu — nn.Linear on a token matrix:
//   out[r, j] (+)= Σ_k x[r, k] · W[j, k] + bias[j]      x [rows, n_in], W [n_out, n_in]
// a GEMM with both operands k-contiguous (PyTorch's weight layout used as is).
//
// Mapping: grid (⌈n_out/64⌉, ⌈rows/64⌉), block 256 threads = 16×16 (tx = t % 16, ty = t / 16).
// A block owns a 64 (rows) × 64 (n_out) tile of out; thread (tx, ty) owns the 4×4 outputs
// r = ty + 16i, j = tx + 16j', so a warp's stores hit 16 consecutive columns of two rows.
// The K loop walks 16-deep slices: every thread loads 4 elements of x and 4 of W (16
// consecutive k per row: contiguous reads), barrier, 16 rank-1 updates of its 4×4 accumulator,
// barrier. Sizes need not be multiples of any tile: loads outside fill 0, stores are skipped.
//
// Shared memory (static, 8.3 KB): x_tile[16][65] = x[r0 + m, k0 + k] and w_tile[16][65] =
// W[j0 + n, k0 + k], both transposed to k-major with one float of padding so the transposing
// stores spread over banks. Inner-loop reads: x_tile broadcasts (two addresses per warp),
// w_tile 16 consecutive words per warp.
//
// Numerics: x, W, bias and out are act_t (f16 or f32 storage), converted to f32 on load; the
// accumulation is f32 in k order; out = acc + bias (+ old out when accumulating), rounded once
// to act_t on store.
#include "common/f2i_device.h"

#define LINEAR_TILE 64    // rows and output columns per block
#define LINEAR_TILE_K 16  // GEMM depth per shared-memory slice
#define LINEAR_THREADS 256
#define LINEAR_LD (LINEAR_TILE + 1)  // padded row of a k-major tile

// Loads the 64×16 slice src[row0.., k0..] of a [n_rows, depth] row-major matrix into
// tile[k][m] (k-major), zero outside the matrix.
F2I_FN void linear_load_slice(float* tile, const act_t* F2I_RESTRICT src, int n_rows, int depth, int row0, int k0, int t) {
  for (int r = 0; r < 4; ++r) {
    const int e = t + LINEAR_THREADS * r;
    const int m = e / LINEAR_TILE_K, k = e % LINEAR_TILE_K;
    const int row = row0 + m, kk = k0 + k;
    tile[k * LINEAR_LD + m] = (row < n_rows && kk < depth) ? f2i_load(src + row * depth + kk) : 0.0f;
  }
}

F2I_KERNEL void F2I_NAME(linear)(const act_t* F2I_RESTRICT x, const act_t* F2I_RESTRICT weight, const act_t* F2I_RESTRICT bias, act_t* F2I_RESTRICT out, int rows, int n_in, int n_out, int accumulate) {
  F2I_SHARED(float, x_tile, LINEAR_TILE_K * LINEAR_LD);
  F2I_SHARED(float, w_tile, LINEAR_TILE_K * LINEAR_LD);

  const int t = (int)threadIdx.x;
  const int tx = t % 16, ty = t / 16;
  const int j0 = (int)blockIdx.x * LINEAR_TILE;
  const int r0 = (int)blockIdx.y * LINEAR_TILE;

  float acc[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < n_in; k0 += LINEAR_TILE_K) {
    linear_load_slice(x_tile, x, rows, n_in, r0, k0, t);
    linear_load_slice(w_tile, weight, n_out, n_in, j0, k0, t);
    f2i_syncthreads();
    for (int k = 0; k < LINEAR_TILE_K; ++k) {
      float a[4], b[4];
      for (int i = 0; i < 4; ++i) a[i] = x_tile[k * LINEAR_LD + ty + 16 * i];
      for (int j = 0; j < 4; ++j) b[j] = w_tile[k * LINEAR_LD + tx + 16 * j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    // The next slice overwrites the tiles: everyone must be done reading them.
    f2i_syncthreads();
  }

  for (int i = 0; i < 4; ++i) {
    const int r = r0 + ty + 16 * i;
    if (r >= rows) continue;
    for (int j = 0; j < 4; ++j) {
      const int c = j0 + tx + 16 * j;
      if (c >= n_out) continue;
      act_t* o = out + r * n_out + c;
      float v = acc[i][j] + (bias ? f2i_load(bias + c) : 0.0f);
      if (accumulate) v += f2i_load(o);
      f2i_store(o, v);
    }
  }
}
