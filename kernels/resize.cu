// resize.cu — image resampling and layout: nearest resize (PyTorch mode="nearest"), bicubic
// (F.interpolate mode="bicubic", align_corners=False: plain, and antialiased as two separable
// passes), reflect padding at the bottom/right, top-left crop, and matrix transpose. The CPU
// oracle: src/backend/cpu/kernels/{resize,antialias}.rs and src/backend/cpu/mod.rs.
//
// Mapping: every kernel but the transpose is one thread per output element, 1-D grid of
// 256-thread blocks (`Launch::linear`), element i = (ch, y, x) in row-major order; no shared
// memory, no barriers. The antialiased bicubic runs a width pass [c·h, w] → scratch [c·h, ow]
// and a height pass scratch [c, h, ow] → [c, oh, ow], each thread recomputing its taps.
// transpose: 32×32 tiles, one 32×8 block per tile (grid = tiles, row-major over x's tile
// grid), a 32×33 act_t shared tile (the pad column staggers column reads across banks); each
// thread loads 4 elements, one barrier, stores 4. Loads and stores share one bounds condition,
// so no unwritten (poisoned) tile entry is ever read.
//
// Numerics: values are loaded to f32, interpolated in f32, rounded once on store; copies (nearest,
// pad, crop, transpose) move elements bit for bit. Source coordinates follow the oracle's f32
// order of operations, with the products rounded on their own (f2i_fmul_rn, no FMA) so that
// floor / truncation pick the same taps as the CPU. Cubic weights: Keys a = −0.75 with clamped
// border taps (plain), a = −0.5 with dropped out-of-image taps renormalised (antialiased).
#include "common/f2i_device.h"
#include "common/f2i_cubic.h"

F2I_FN long long element_index() {
  return (long long)blockIdx.x * (long long)blockDim.x + (long long)threadIdx.x;
}

// PyTorch's nearest source index: exact for equal and doubled sizes, else floor(dst·in/out).
F2I_FN int nearest_index(int dst, int n_in, int n_out) {
  if (n_out == n_in) return dst;
  if (n_out == 2 * n_in) return dst >> 1;
  const float scale = (float)n_in / (float)n_out;
  return f2i_min((int)f2i_floorf(f2i_fmul_rn((float)dst, scale)), n_in - 1);
}

// x[c, h, w] → out[c, oh, ow], nearest neighbour.
F2I_KERNEL void F2I_NAME(upsample_nearest)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT out, int c, int h, int w, int oh, int ow) {
  const long long i = element_index();
  if (i >= (long long)c * oh * ow) return;
  const int ox = (int)(i % ow), oy = (int)(i / ow % oh), ch = (int)(i / ((long long)ow * oh));
  const int sy = nearest_index(oy, h, oh), sx = nearest_index(ox, w, ow);
  out[i] = x[((long long)ch * h + sy) * w + sx];
}

// x[c, h, w] → out[c, oh, ow], plain bicubic; sy, sx = source scale per axis (in/out, or
// 1/scale_factor), computed on the host. out = Σ_i wy_i·(Σ_j wx_j·x[y_i, x_j]), in order.
F2I_KERNEL void F2I_NAME(bicubic)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT out, int c, int h, int w, int oh, int ow, float sy, float sx) {
  const long long i = element_index();
  if (i >= (long long)c * oh * ow) return;
  const int ox = (int)(i % ow), oy = (int)(i / ow % oh), ch = (int)(i / ((long long)ow * oh));
  const CubicTaps ty = cubic_taps(sy, oy, h), tx = cubic_taps(sx, ox, w);
  const act_t* plane = x + (long long)ch * h * w;
  float acc = 0.0f;
  for (int k = 0; k < 4; ++k) {
    const act_t* row = plane + (long long)ty.index[k] * w;
    float t = f2i_load(row + tx.index[0]) * tx.weight[0];
    for (int j = 1; j < 4; ++j) t += f2i_load(row + tx.index[j]) * tx.weight[j];
    acc = k == 0 ? t * ty.weight[0] : acc + t * ty.weight[k];
  }
  f2i_store(out + i, acc);
}

// Antialiased taps (PyTorch _compute_indices_weights_aa): inputs [lo, hi) around `center`,
// weight cubic_aa((j − center + 0.5)·invscale) / Σ.
struct AaSpan {
  int lo, hi;
  float center;
};
F2I_FN AaSpan aa_span(int dst, int n_in, float scale, float support) {
  AaSpan s;
  s.center = f2i_fmul_rn(scale, (float)dst + 0.5f);
  s.lo = f2i_max((int)(s.center - support + 0.5f), 0);
  s.hi = f2i_min(f2i_max((int)(s.center + support + 0.5f), 0), n_in);
  return s;
}
// The cubic kernel with a = −0.5.
F2I_FN float cubic_aa(float x) {
  const float a = -0.5f;
  x = f2i_fabsf(x);
  if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  if (x < 2.0f) return (((x - 5.0f) * x + 8.0f) * x - 4.0f) * a;
  return 0.0f;
}
F2I_FN float aa_weight(int j, const AaSpan& s, float invscale) {
  return cubic_aa(((float)j - s.center + 0.5f) * invscale);
}
F2I_FN float aa_total(const AaSpan& s, float invscale) {
  float total = 0.0f;
  for (int j = s.lo; j < s.hi; ++j) total += aa_weight(j, s, invscale);
  return total;
}
F2I_FN float aa_normalised(float weight, float total) {
  return total != 0.0f ? weight / total : weight;
}

// Width pass: x[rows, w] → tmp[rows, ow]; scale = w/ow, support and invscale as the oracle's.
F2I_KERNEL void F2I_NAME(bicubic_aa_rows)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT tmp, int rows, int w, int ow, float scale, float support, float invscale) {
  const long long i = element_index();
  if (i >= (long long)rows * ow) return;
  const int ox = (int)(i % ow);
  const act_t* src = x + i / ow * w;
  const AaSpan s = aa_span(ox, w, scale, support);
  const float total = aa_total(s, invscale);
  float acc = 0.0f;
  for (int j = s.lo; j < s.hi; ++j)
    acc += aa_normalised(aa_weight(j, s, invscale), total) * f2i_load(src + j);
  f2i_store(tmp + i, acc);
}

// Height pass: tmp[c, h, ow] → out[c, oh, ow]; scale = h/oh.
F2I_KERNEL void F2I_NAME(bicubic_aa_cols)(const act_t* F2I_RESTRICT tmp, act_t* F2I_RESTRICT out, int c, int h, int oh, int ow, float scale, float support, float invscale) {
  const long long i = element_index();
  if (i >= (long long)c * oh * ow) return;
  const int ox = (int)(i % ow), oy = (int)(i / ow % oh), ch = (int)(i / ((long long)ow * oh));
  const act_t* plane = tmp + (long long)ch * h * ow + ox;
  const AaSpan s = aa_span(oy, h, scale, support);
  const float total = aa_total(s, invscale);
  float acc = 0.0f;
  for (int j = s.lo; j < s.hi; ++j)
    acc += aa_normalised(aa_weight(j, s, invscale), total) * f2i_load(plane + (long long)j * ow);
  f2i_store(out + i, acc);
}

// x[c, h, w] → out[c, oh, ow], reflecting at the bottom and right (edge not repeated; the host
// checks oh − h < h and ow − w < w).
F2I_KERNEL void F2I_NAME(pad_reflect)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT out, int c, int h, int w, int oh, int ow) {
  const long long i = element_index();
  if (i >= (long long)c * oh * ow) return;
  const int ox = (int)(i % ow), oy = (int)(i / ow % oh), ch = (int)(i / ((long long)ow * oh));
  const int sy = oy < h ? oy : 2 * (h - 1) - oy, sx = ox < w ? ox : 2 * (w - 1) - ox;
  out[i] = x[((long long)ch * h + sy) * w + sx];
}

// The top-left [c, oh, ow] of x[c, h, w].
F2I_KERNEL void F2I_NAME(crop)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT out, int c, int h, int w, int oh, int ow) {
  const long long i = element_index();
  if (i >= (long long)c * oh * ow) return;
  const int ox = (int)(i % ow), oy = (int)(i / ow % oh), ch = (int)(i / ((long long)ow * oh));
  out[i] = x[((long long)ch * h + oy) * w + ox];
}

// x[rows, cols] → out[cols, rows] through a shared tile. Block (32, 8); block b handles tile
// (b / tiles_across, b % tiles_across) of x, tiles_across = ceil(cols / 32).
F2I_KERNEL void F2I_NAME(transpose)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT out, int rows, int cols) {
  F2I_SHARED(act_t, tile, 32 * 33);
  const int tiles_across = (cols + 31) / 32;
  const int r0 = (int)(blockIdx.x / tiles_across) * 32, c0 = (int)(blockIdx.x % tiles_across) * 32;
  const int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
  for (int k = ty; k < 32; k += 8) {
    const int r = r0 + k, col = c0 + tx;
    if (r < rows && col < cols) tile[k * 33 + tx] = x[(long long)r * cols + col];
  }
  f2i_syncthreads();
  // Thread (tx, ty) writes out[c0 + k, r0 + tx] = x[r0 + tx, c0 + k].
  for (int k = ty; k < 32; k += 8) {
    const int r = r0 + tx, col = c0 + k;
    if (r < rows && col < cols) out[(long long)col * rows + r] = tile[tx * 33 + k];
  }
}
