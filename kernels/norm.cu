// norm.cu — GroupNorm (optionally fused with SiLU, in place when out == x) and LayerNorm.
// CPU oracle: src/backend/cpu/kernels/norm.rs.
//
// group_norm: x[c, hw] in `groups` groups of cpg = c/groups channels; a group is cpg·hw
//   contiguous values. One block of NORM_THREADS threads per group (grid = groups). Three
//   strided passes over the group: sum → mean, Σ(x − mean)² → biased variance (two-pass, so
//   no E[x²] − E[x]² cancellation), then y = x·a + b with per-channel a = rstd·γ,
//   b = β − mean·a (PyTorch's folding), SiLU when asked. Each element is read and written by
//   the same thread, and the last read of the statistics passes precedes a barrier, so
//   out == x is safe (no restrict on x/out).
// layer_norm: x[rows, d]; one warp per row, LN_WARPS rows per block (grid = ⌈rows/LN_WARPS⌉).
//   Two-pass mean/variance with warp butterflies, then (x·rstd − mean·rstd)·γ + β as the CPU
//   evaluates it. No block barrier: a warp past the last row skips the whole row.
//
// Shared memory: group_norm only, two arrays of one float per warp (the per-warp partial
//   sums of the two statistics passes; separate arrays, so one barrier per reduction).
// Numerics: storage act_t (f16 or f32), everything else f32. Reductions run in a fixed order
//   (each thread's strided partial, a butterfly within the warp, warps summed 0..n−1 by every
//   thread), so results are deterministic and independent of the schedule; no atomics.
#include "common/f2i_device.h"

#define NORM_THREADS 256
#define NORM_WARPS (NORM_THREADS / 32)
#define LN_WARPS 4

// Sum of `v` over the block: every thread returns the same value. `partial` holds NORM_WARPS
// floats and must not be reused by the caller (its readers are not fenced off afterwards).
F2I_FN float norm_block_sum(float v, float* partial) {
  v = f2i_warp_sum(v);
  if (f2i_lane() == 0) partial[threadIdx.x / 32] = v;
  f2i_syncthreads();
  float total = 0.0f;
  for (int w = 0; w < NORM_WARPS; ++w) total += partial[w];
  return total;
}

F2I_FN float norm_silu(float y) { return y / (1.0f + f2i_expf(-y)); }

// Launch: grid [groups], block [NORM_THREADS]. x and out may be the same buffer.
F2I_KERNEL void F2I_NAME(group_norm)(const act_t* x, act_t* out, const act_t* F2I_RESTRICT gamma, const act_t* F2I_RESTRICT beta, int hw, int channels_per_group, float eps, int silu)
{
  F2I_SHARED(float, partial_sum, NORM_WARPS);
  F2I_SHARED(float, partial_sq, NORM_WARPS);
  const int n = channels_per_group * hw;
  const size_t base = (size_t)blockIdx.x * (size_t)n;
  const act_t* xg = x + base;
  act_t* og = out + base;

  float s = 0.0f;
  for (int e = threadIdx.x; e < n; e += NORM_THREADS) s += f2i_load(xg + e);
  const float mean = norm_block_sum(s, partial_sum) / (float)n;

  float sq = 0.0f;
  for (int e = threadIdx.x; e < n; e += NORM_THREADS) {
    const float dv = f2i_load(xg + e) - mean;
    sq += dv * dv;
  }
  const float var = norm_block_sum(sq, partial_sq) / (float)n;
  const float rstd = f2i_rsqrtf(var + eps);

  const int c0 = (int)blockIdx.x * channels_per_group;
  for (int e = threadIdx.x; e < n; e += NORM_THREADS) {
    const int ch = c0 + e / hw;
    const float a = rstd * f2i_load(gamma + ch);
    const float b = f2i_load(beta + ch) - mean * a;
    float y = f2i_load(xg + e) * a + b;
    if (silu) y = norm_silu(y);
    f2i_store(og + e, y);
  }
}

// Launch: grid [⌈rows/LN_WARPS⌉], block [32·LN_WARPS]. x and out do not alias.
F2I_KERNEL void F2I_NAME(layer_norm)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT out, const act_t* F2I_RESTRICT gamma, const act_t* F2I_RESTRICT beta, int rows, int d, float eps)
{
  const int row = (int)blockIdx.x * LN_WARPS + (int)(threadIdx.x / 32);
  if (row >= rows) return;  // the whole warp: no collective is left half-joined
  const int lane = (int)f2i_lane();
  const act_t* xr = x + (size_t)row * (size_t)d;
  act_t* orow = out + (size_t)row * (size_t)d;

  float s = 0.0f;
  for (int j = lane; j < d; j += 32) s += f2i_load(xr + j);
  const float mean = f2i_warp_sum(s) / (float)d;

  float sq = 0.0f;
  for (int j = lane; j < d; j += 32) {
    const float dv = f2i_load(xr + j) - mean;
    sq += dv * dv;
  }
  const float var = f2i_warp_sum(sq) / (float)d;
  const float rstd = f2i_rsqrtf(var + eps);
  const float shift = -mean * rstd;

  for (int j = lane; j < d; j += 32)
    f2i_store(orow + j, (f2i_load(xr + j) * rstd + shift) * f2i_load(gamma + j) + f2i_load(beta + j));
}
