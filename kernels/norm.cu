// norm.cu — GroupNorm (optionally fused with SiLU, in place when out == x) and LayerNorm.
// CPU oracle: src/backend/cpu/kernels/norm.rs.
//
// group_norm: x[c, hw] in `groups` groups of cpg = c/groups channels; a group is n = cpg·hw
//   contiguous values. Three launches, all grids wide enough to fill a GPU whatever the
//   group count (the SD VAE has 32 groups of up to 4·512² values):
//   group_norm_stats   grid (splits, groups): block (s, g) reads `chunk` values of group g
//                      once — per-thread Welford (count, mean, M2) of x − x_g0 (the group's
//                      first value: a pivot, so the running mean stays small and keeps its
//                      precision when the data sits far from zero), merged across the warp by
//                      a butterfly and across warps in order (Chan et al.'s pairwise update,
//                      so no E[x²] − E[x]² cancellation) — into partials[g·splits + s];
//   group_norm_finish  grid (groups), one warp: merges the group's partials (lane l takes
//                      l, l + 32, …; then the butterfly) into stats[g] = (mean, rstd);
//   group_norm_apply   grid (⌈n / (NORM_THREADS·NORM_PER_THREAD)⌉, groups): y = x·a + b with
//                      per-channel a = rstd·γ, b = β − mean·a (PyTorch's folding), SiLU when
//                      asked. Each element is read and written by the same thread, so out == x
//                      is safe (no restrict on x/out).
//   The statistics read the data once and the output pass once more (the old one-block-per-
//   group kernel read it three times from 32 blocks).
// layer_norm: x[rows, d]; one warp per row, LN_WARPS rows per block (grid = ⌈rows/LN_WARPS⌉).
//   Two-pass mean/variance with warp butterflies, then (x·rstd − mean·rstd)·γ + β as the CPU
//   evaluates it. No block barrier: a warp past the last row skips the whole row.
//
// Shared memory: group_norm_stats only, the warps' (count, mean, M2).
// Workspace (f32, device memory the backend owns): partials [groups·splits][3] and stats
//   [groups][2], written and read by consecutive launches on one stream.
// Numerics: storage act_t (f16 or f32), statistics f32. Every merge runs in a fixed order
//   (each thread's strided walk, the butterfly, warps 0..n−1, partials by lane then butterfly),
//   so results are deterministic and independent of the schedule; no atomics. Welford's
//   updates round differently from the CPU's two-pass sums: agreement is to f32 rounding.
#include "common/f2i_norm.h"

#define NORM_THREADS 256
#define NORM_WARPS (NORM_THREADS / 32)
#define LN_WARPS 4

#define NORM_PER_THREAD 4

// (count, mean, M2 = Σ(x − mean)²) of a set of values.
struct GnStat {
  float n, mean, m2;
};

// The statistics of the union of two sets (Chan, Golub & LeVeque's pairwise update).
F2I_FN GnStat gn_merge(GnStat a, GnStat b) {
  const float n = a.n + b.n;
  if (n == 0.0f) return a;
  const float d = b.mean - a.mean, f = b.n / n;
  GnStat r;
  r.n = n;
  r.mean = a.mean + d * f;
  r.m2 = a.m2 + b.m2 + d * d * a.n * f;
  return r;
}

// Merges the statistics of the 32 lanes: every lane ends with a merge of all of them (lane 0's
// is the one used: a fixed function of the inputs).
F2I_FN GnStat gn_warp_merge(GnStat t) {
  for (int m = 16; m >= 1; m >>= 1) {
    GnStat o;
    o.n = f2i_shfl_xor(t.n, m);
    o.mean = f2i_shfl_xor(t.mean, m);
    o.m2 = f2i_shfl_xor(t.m2, m);
    t = gn_merge(t, o);
  }
  return t;
}

// Launch: grid [splits, groups], block [NORM_THREADS]. Block (s, g) covers values
// [s·chunk, min(n, (s + 1)·chunk)) of group g.
F2I_KERNEL void F2I_NAME(group_norm_stats)(const act_t* F2I_RESTRICT x, float* F2I_RESTRICT partials, int n, int chunk)
{
  F2I_SHARED(float, warp_stats, 3 * NORM_WARPS);
  const int s = (int)blockIdx.x, g = (int)blockIdx.y;
  const act_t* xg = x + (size_t)g * (size_t)n;
  const int lo = s * chunk, hi = lo + chunk < n ? lo + chunk : n;
  const float pivot = f2i_load(xg);
  GnStat t = {0.0f, 0.0f, 0.0f};
  for (int e = lo + (int)threadIdx.x; e < hi; e += NORM_THREADS) {
    const float v = f2i_load(xg + e) - pivot;
    t.n += 1.0f;
    const float d = v - t.mean;
    t.mean += d / t.n;
    t.m2 += d * (v - t.mean);
  }
  t = gn_warp_merge(t);
  const int w = (int)threadIdx.x / 32;
  if (f2i_lane() == 0) {
    warp_stats[3 * w] = t.n;
    warp_stats[3 * w + 1] = t.mean;
    warp_stats[3 * w + 2] = t.m2;
  }
  f2i_syncthreads();
  if (threadIdx.x == 0) {
    GnStat r = {0.0f, 0.0f, 0.0f};
    for (int i = 0; i < NORM_WARPS; ++i) {
      GnStat o = {warp_stats[3 * i], warp_stats[3 * i + 1], warp_stats[3 * i + 2]};
      r = gn_merge(r, o);
    }
    float* p = partials + 3 * ((size_t)g * gridDim.x + s);
    p[0] = r.n;
    p[1] = r.mean;
    p[2] = r.m2;
  }
}

// Launch: grid [groups], block [32]. stats[g] = (mean, 1/√(var + eps)), var biased (M2 / n).
F2I_KERNEL void F2I_NAME(group_norm_finish)(const act_t* F2I_RESTRICT x, const float* F2I_RESTRICT partials, float* F2I_RESTRICT stats, int n, int splits, float eps)
{
  const int g = (int)blockIdx.x, lane = (int)f2i_lane();
  GnStat t = {0.0f, 0.0f, 0.0f};
  for (int s = lane; s < splits; s += 32) {
    const float* p = partials + 3 * ((size_t)g * splits + s);
    GnStat o = {p[0], p[1], p[2]};
    t = gn_merge(t, o);
  }
  t = gn_warp_merge(t);
  if (lane == 0) {
    stats[2 * g] = f2i_load(x + (size_t)g * (size_t)n) + t.mean;
    stats[2 * g + 1] = f2i_rsqrtf(t.m2 / t.n + eps);
  }
}

// Launch: grid [⌈n / (NORM_THREADS·NORM_PER_THREAD)⌉, groups], block [NORM_THREADS]. x and out
// may be the same buffer.
F2I_KERNEL void F2I_NAME(group_norm_apply)(const act_t* x, act_t* out, const float* F2I_RESTRICT stats, const act_t* F2I_RESTRICT gamma, const act_t* F2I_RESTRICT beta, int hw, int channels_per_group, int silu)
{
  const int g = (int)blockIdx.y;
  const int n = channels_per_group * hw;
  const size_t base = (size_t)g * (size_t)n;
  const float mean = stats[2 * g], rstd = stats[2 * g + 1];
  const int c0 = g * channels_per_group;
  const int e0 = (int)blockIdx.x * NORM_THREADS * NORM_PER_THREAD + (int)threadIdx.x;
  for (int k = 0; k < NORM_PER_THREAD; ++k) {
    const int e = e0 + k * NORM_THREADS;
    if (e >= n) break;
    const int ch = c0 + e / hw;
    const float y = f2i_group_norm_value(f2i_load(x + base + e), mean, rstd, f2i_load(gamma + ch),
                                         f2i_load(beta + ch), silu);
    f2i_store(out + base + e, y);
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
