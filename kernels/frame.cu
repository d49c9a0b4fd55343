// frame.cu — an image that lives in device memory (f2i_upscale with F2I_MEMORY_CUDA): its
// pixels read into a tile of the arena, the tile's colour fix and blend into an f32
// accumulator, and the accumulator written back as pixels, so a device frame never visits the
// host. Every kernel reproduces the host path's f32 arithmetic bit for bit: the C interface's
// conversions (src/capi/pixels.rs), the wavelet colour fix (src/pipeline/color_fix.rs), the
// tile weights and blend (src/pipeline/tiling.rs, upscale.rs) and the alpha upscale
// (src/capi/run.rs), with every product rounded on its own (f2i_fmul_rn) so that no FMA
// contraction makes the GPU differ from the CPU.
//
// Mapping: one thread per pixel (or per chroma pair), 1-D grid of 256-thread blocks
// (`Launch::linear`); no shared memory, no barriers, no atomics: every output is written by
// exactly one thread, so the result does not depend on the schedule.
//
// Pixel formats (`format`, the C enum f2i_pixel_format): 0 RGB8, 1 RGBA8, 2 BGR8, 3 BGRA8,
// 4 RGB16 (native-endian, any alignment), 5 NV12 BT.709 limited, 6 NV12 BT.601 full. Planes
// are `stride` bytes per row; NV12's UV plane is `uv` with the same stride.
#include "common/f2i_device.h"
#include "common/f2i_cubic.h"

typedef unsigned char f2i_u8;

F2I_FN long long pixel_index() {
  return (long long)blockIdx.x * (long long)blockDim.x + (long long)threadIdx.x;
}

F2I_FN int bytes_per_pixel(int format) {
  return format == 4 ? 6 : format == 1 || format == 3 ? 4 : format >= 5 ? 1 : 3;
}
F2I_FN bool is_bgr(int format) { return format == 2 || format == 3; }
F2I_FN bool is_nv12(int format) { return format >= 5; }
F2I_FN float clamp01(float v) { return f2i_fminf(f2i_fmaxf(v, 0.0f), 1.0f); }

// Kr, Kb and the offset / ranges of the codes (pixels.rs `YCbCr::matrix`).
struct Matrix {
  float kr, kb, y_off, y_range, c_range;
};
F2I_FN Matrix matrix(int format) {
  Matrix m;
  if (format == 5) {
    m.kr = 0.2126f; m.kb = 0.0722f; m.y_off = 16.0f; m.y_range = 219.0f; m.c_range = 224.0f;
  } else {
    m.kr = 0.299f; m.kb = 0.114f; m.y_off = 0.0f; m.y_range = 255.0f; m.c_range = 255.0f;
  }
  return m;
}

// Y'CbCr codes → RGB in [0, 1] (pixels.rs `Matrix::to_rgb`).
F2I_FN void ycbcr_to_rgb(const Matrix& m, int y8, int cb8, int cr8, float rgb[3]) {
  const float kg = 1.0f - m.kr - m.kb;
  const float y = ((float)y8 - m.y_off) / m.y_range;
  const float pb = ((float)cb8 - 128.0f) / m.c_range;
  const float pr = ((float)cr8 - 128.0f) / m.c_range;
  const float r = y + f2i_fmul_rn(2.0f * (1.0f - m.kr), pr);
  const float b = y + f2i_fmul_rn(2.0f * (1.0f - m.kb), pb);
  const float g = (y - f2i_fmul_rn(m.kr, r) - f2i_fmul_rn(m.kb, b)) / kg;
  rgb[0] = clamp01(r);
  rgb[1] = clamp01(g);
  rgb[2] = clamp01(b);
}

F2I_FN float luma(const Matrix& m, const float rgb[3]) {
  const float kg = 1.0f - m.kr - m.kb;
  return f2i_fmul_rn(m.kr, rgb[0]) + f2i_fmul_rn(kg, rgb[1]) + f2i_fmul_rn(m.kb, rgb[2]);
}

// A code: rounded half to even, clamped to 0..255 (pixels.rs `code`).
F2I_FN f2i_u8 code(float v) { return (f2i_u8)f2i_fminf(f2i_fmaxf(f2i_rintf(v), 0.0f), 255.0f); }

// v clamped to [0, 1], times max, rounded half to even (pipeline/image.rs `quantize`).
F2I_FN float quantize(float v, float max) { return f2i_rintf(f2i_fmul_rn(clamp01(v), max)); }

// The RGB of pixel (x, y) of a frame, in [0, 1] (pixels.rs `read`).
F2I_FN void read_pixel(const f2i_u8* main, const f2i_u8* uv, long long stride, int format, int x,
                       int y, float rgb[3]) {
  const f2i_u8* row = main + (long long)y * stride;
  if (format == 4) {
    for (int c = 0; c < 3; ++c) {
      const f2i_u8* b = row + 6 * (long long)x + 2 * c;
      rgb[c] = (float)((int)b[0] | ((int)b[1] << 8)) / 65535.0f;
    }
  } else if (is_nv12(format)) {
    const f2i_u8* pair = uv + (long long)(y / 2) * stride + 2 * (long long)(x / 2);
    ycbcr_to_rgb(matrix(format), row[x], pair[0], pair[1], rgb);
  } else {
    const f2i_u8* px = row + (long long)bytes_per_pixel(format) * x;
    for (int c = 0; c < 3; ++c) rgb[c] = (float)px[is_bgr(format) ? 2 - c : c] / 255.0f;
  }
}

// tile[3, h, w] ← the pixels of the frame's window at (x0, y0), in [0, 1].
F2I_KERNEL void F2I_NAME(frame_to_tile)(const f2i_u8* F2I_RESTRICT main, const f2i_u8* F2I_RESTRICT uv, int stride, int format, int x0, int y0, int w, int h, act_t* F2I_RESTRICT tile) {
  const long long i = pixel_index();
  if (i >= (long long)w * h) return;
  const int x = (int)(i % w), y = (int)(i / w);
  float rgb[3];
  read_pixel(main, uv, stride, format, x0 + x, y0 + y, rgb);
  for (int c = 0; c < 3; ++c) f2i_store(tile + (long long)c * w * h + i, rgb[c]);
}

// out[n] ← x[n] in f32, divided by the tensor's f16 pre-scale when it has one (Exec::read).
F2I_KERNEL void F2I_NAME(tile_to_f32)(const act_t* F2I_RESTRICT x, float* F2I_RESTRICT out, int n, float scale) {
  const long long i = pixel_index();
  if (i >= n) return;
  const float v = f2i_load(x + i);
  out[i] = scale != 1.0f ? v / scale : v;
}

// One level of the wavelet decomposition of c planes [c, h, w] (color_fix.rs `decompose`):
// low = img blurred by [[1,2,1],[2,4,2],[1,2,1]]/16 at dilation r, edges replicated;
// high (+)= img − low (`first`: high starts at 0), when high is not NULL.
F2I_KERNEL void F2I_NAME(wavelet_level)(const float* F2I_RESTRICT img, float* F2I_RESTRICT low, float* F2I_RESTRICT high, int c, int h, int w, int r, int first) {
  const long long i = pixel_index();
  if (i >= (long long)c * h * w) return;
  const int x = (int)(i % w), y = (int)(i / w % h);
  const float* plane = img + (i - (long long)y * w - x);
  const int rows[3] = {f2i_max(y - r, 0), y, f2i_min(y + r, h - 1)};
  const int cols[3] = {f2i_max(x - r, 0), x, f2i_min(x + r, w - 1)};
  const float k[3] = {0.0625f, 0.125f, 0.0625f};
  const float k_mid[3] = {0.125f, 0.25f, 0.125f};
  float acc = 0.0f;
  for (int ky = 0; ky < 3; ++ky)
    for (int kx = 0; kx < 3; ++kx)
      acc += f2i_fmul_rn(ky == 1 ? k_mid[kx] : k[kx], plane[(long long)rows[ky] * w + cols[kx]]);
  low[i] = acc;
  if (high) high[i] = (first ? 0.0f : high[i]) + (img[i] - acc);
}

// Smootherstep u³(6u² − 15u + 10) on clamp(u, 0, 1), in the oracle's order (tiling.rs).
F2I_FN float smootherstep(float u) {
  u = clamp01(u);
  const float inner = f2i_fmul_rn(u, f2i_fmul_rn(u, 6.0f) - 15.0f) + 10.0f;
  return f2i_fmul_rn(f2i_fmul_rn(f2i_fmul_rn(u, u), u), inner);
}
// The blend weight of index i of a tile side of len with ramps of `ramp` at a shared start
// and/or end (tiling.rs `axis_weights`).
F2I_FN float axis_weight(int i, int len, int ramp, int ramp_start, int ramp_end) {
  float w = 1.0f;
  if (ramp > 0 && ramp_start && i < ramp) w = f2i_fmul_rn(w, smootherstep(((float)i + 0.5f) / (float)ramp));
  if (ramp > 0 && ramp_end && len - 1 - i < ramp)
    w = f2i_fmul_rn(w, smootherstep(((float)(len - 1 - i) + 0.5f) / (float)ramp));
  return w;
}

// Blends a colour-fixed tile [3, th, tw] into acc[3, ah, aw] / wsum[ah, aw] at (ox, oy):
// o = a + b (wavelet: high of the SR image + low of the bicubic one), or o = a when b is
// NULL; wsum += wgt, acc += wgt·o (upscale.rs). `ramps` bit 0..3: shared top, bottom, left,
// right edge.
F2I_KERNEL void F2I_NAME(tile_blend)(const float* F2I_RESTRICT a, const float* F2I_RESTRICT b, float* F2I_RESTRICT acc, float* F2I_RESTRICT wsum, int th, int tw, int ah, int aw, int oy, int ox, int ramp, int ramps) {
  const long long i = pixel_index();
  if (i >= (long long)th * tw) return;
  const int x = (int)(i % tw), y = (int)(i / tw);
  const float wy = axis_weight(y, th, ramp, ramps & 1, ramps & 2);
  const float wx = axis_weight(x, tw, ramp, ramps & 4, ramps & 8);
  const float wgt = f2i_fmul_rn(wy, wx);
  const long long at = (long long)(oy + y) * aw + ox + x, plane = (long long)ah * aw;
  wsum[at] += wgt;
  for (int c = 0; c < 3; ++c) {
    const long long t = (long long)c * th * tw + i;
    const float o = b ? a[t] + b[t] : a[t];
    acc[c * plane + at] += f2i_fmul_rn(wgt, o);
  }
}

// The blended RGB at (x, y) of the output window whose top-left is (ax, ay) in the
// accumulator: acc / wsum, each channel clamped to [0, 1] when `clamp` (pixels.rs `px`).
F2I_FN void blended(const float* acc, const float* wsum, int ah, int aw, int ax, int ay, int x,
                    int y, float rgb[3]) {
  const long long at = (long long)(ay + y) * aw + ax + x, plane = (long long)ah * aw;
  const float wt = wsum[at];
  for (int c = 0; c < 3; ++c) rgb[c] = acc[c * plane + at] / wt;
}

// Pixels of the w × h output ← the accumulator window at (ax, ay) (pixels.rs `write`): every
// format's main plane (NV12: Y); `alpha` [h, w] in [0, 1] for RGBA8 / BGRA8, NULL = opaque.
// Row padding is never written.
F2I_KERNEL void F2I_NAME(frame_write)(const float* F2I_RESTRICT acc, const float* F2I_RESTRICT wsum, int ah, int aw, int ax, int ay, f2i_u8* F2I_RESTRICT main, int stride, int format, int w, int h, const float* F2I_RESTRICT alpha) {
  const long long i = pixel_index();
  if (i >= (long long)w * h) return;
  const int x = (int)(i % w), y = (int)(i / w);
  float rgb[3];
  blended(acc, wsum, ah, aw, ax, ay, x, y, rgb);
  f2i_u8* row = main + (long long)y * stride;
  if (format == 4) {
    for (int c = 0; c < 3; ++c) {
      const unsigned v = (unsigned)quantize(rgb[c], 65535.0f);
      row[6 * (long long)x + 2 * c] = (f2i_u8)(v & 0xff);
      row[6 * (long long)x + 2 * c + 1] = (f2i_u8)(v >> 8);
    }
  } else if (is_nv12(format)) {
    const Matrix m = matrix(format);
    for (int c = 0; c < 3; ++c) rgb[c] = clamp01(rgb[c]);
    row[x] = code(m.y_off + f2i_fmul_rn(m.y_range, luma(m, rgb)));
  } else {
    const int bpp = bytes_per_pixel(format);
    f2i_u8* px = row + (long long)bpp * x;
    for (int c = 0; c < 3; ++c) px[is_bgr(format) ? 2 - c : c] = (f2i_u8)quantize(rgb[c], 255.0f);
    if (bpp == 4) px[3] = alpha ? (f2i_u8)quantize(alpha[i], 255.0f) : (f2i_u8)255;
  }
}

// NV12's UV plane of the w × h output: each Cb,Cr pair codes the mean colour of its 2×2 block,
// clipped at the image's edge (pixels.rs `write`).
F2I_KERNEL void F2I_NAME(frame_write_uv)(const float* F2I_RESTRICT acc, const float* F2I_RESTRICT wsum, int ah, int aw, int ax, int ay, f2i_u8* F2I_RESTRICT uv, int stride, int format, int w, int h) {
  const int cw = (w + 1) / 2, ch = (h + 1) / 2;
  const long long i = pixel_index();
  if (i >= (long long)cw * ch) return;
  const int cx = (int)(i % cw), cy = (int)(i / cw);
  float sum[3] = {0.0f, 0.0f, 0.0f}, n = 0.0f;
  for (int y = 2 * cy; y < f2i_min(2 * cy + 2, h); ++y)
    for (int x = 2 * cx; x < f2i_min(2 * cx + 2, w); ++x) {
      float p[3];
      blended(acc, wsum, ah, aw, ax, ay, x, y, p);
      for (int c = 0; c < 3; ++c) sum[c] += clamp01(p[c]);
      n += 1.0f;
    }
  const Matrix m = matrix(format);
  float mean[3];
  for (int c = 0; c < 3; ++c) mean[c] = sum[c] / n;
  const float yl = luma(m, mean);
  const float pb = (mean[2] - yl) / (2.0f * (1.0f - m.kb));
  const float pr = (mean[0] - yl) / (2.0f * (1.0f - m.kr));
  f2i_u8* pair = uv + (long long)cy * stride + 2 * (long long)cx;
  pair[0] = code(128.0f + f2i_fmul_rn(m.c_range, pb));
  pair[1] = code(128.0f + f2i_fmul_rn(m.c_range, pr));
}

// alpha[oh, ow] ← the bicubic ×s upscale of the frame's alpha (RGBA8 / BGRA8: byte 3) over the
// window at (wx, wy) of cw × ch input pixels, cropped at (ux, uy) of the upscaled window
// (run.rs `upscale_alpha`); sy, sx = the oracle's source scales ch / (s·ch), cw / (s·cw).
F2I_KERNEL void F2I_NAME(alpha_upscale)(const f2i_u8* F2I_RESTRICT main, int stride, int wx, int wy, int cw, int ch, float sy, float sx, int ux, int uy, int ow, int oh, float* F2I_RESTRICT alpha) {
  const long long i = pixel_index();
  if (i >= (long long)ow * oh) return;
  const int x = (int)(i % ow), y = (int)(i / ow);
  const CubicTaps ty = cubic_taps(sy, uy + y, ch), tx = cubic_taps(sx, ux + x, cw);
  float acc = 0.0f;
  for (int k = 0; k < 4; ++k) {
    const f2i_u8* row = main + (long long)(wy + ty.index[k]) * stride + 4 * (long long)wx;
    float t = f2i_fmul_rn((float)row[4 * tx.index[0] + 3] / 255.0f, tx.weight[0]);
    for (int j = 1; j < 4; ++j) t += f2i_fmul_rn((float)row[4 * tx.index[j] + 3] / 255.0f, tx.weight[j]);
    acc = k == 0 ? f2i_fmul_rn(t, ty.weight[0]) : acc + f2i_fmul_rn(t, ty.weight[k]);
  }
  alpha[i] = acc;
}

// p[n] ← 0 (the accumulator and weight sum before the first tile).
F2I_KERNEL void F2I_NAME(frame_clear)(float* F2I_RESTRICT p, int n) {
  const long long i = pixel_index();
  if (i < n) p[i] = 0.0f;
}
