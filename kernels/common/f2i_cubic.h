// f2i_cubic.h — the taps of PyTorch's plain bicubic (align_corners=False, Keys a = −0.75,
// border taps clamped), shared by resize.cu's bicubic and frame.cu's alpha upscale. Every
// product is rounded on its own (f2i_fmul_rn): the weights are then the CPU oracle's
// (src/backend/cpu/kernels/resize.rs, `Taps::new`) bit for bit on a GPU too, where NVRTC would
// otherwise contract a·b + c into an FMA.
#pragma once
#include "common/f2i_device.h"  // by its NVRTC name (host: -I kernels)

// Keys' cubic convolution, a = −0.75, for |x| ≤ 1 and 1 < |x| < 2, evaluated in the oracle's
// order: ((a+2)·x − (a+3))·x·x + 1 and ((a·x − 5a)·x + 8a)·x − 4a.
F2I_FN float keys_near(float x) {
  const float p = f2i_fmul_rn(-0.75f + 2.0f, x) - (-0.75f + 3.0f);
  return f2i_fmul_rn(f2i_fmul_rn(p, x), x) + 1.0f;
}
F2I_FN float keys_far(float x) {
  const float p = f2i_fmul_rn(-0.75f, x) - 5.0f * -0.75f;
  const float q = f2i_fmul_rn(p, x) + 8.0f * -0.75f;
  return f2i_fmul_rn(q, x) - 4.0f * -0.75f;
}

// The four taps of output index `dst` along an axis of `len` inputs at source `scale`.
struct CubicTaps {
  int index[4];
  float weight[4];
};
F2I_FN CubicTaps cubic_taps(float scale, int dst, int len) {
  CubicTaps taps;
  const float real = f2i_fmul_rn(scale, (float)dst + 0.5f) - 0.5f;
  const int base = f2i_min((int)f2i_floorf(real), len - 1);
  const float t = f2i_fminf(f2i_fmaxf(real - (float)base, 0.0f), 1.0f);
  taps.weight[0] = keys_far(t + 1.0f);
  taps.weight[1] = keys_near(t);
  taps.weight[2] = keys_near(1.0f - t);
  taps.weight[3] = keys_far((1.0f - t) + 1.0f);
  for (int k = 0; k < 4; ++k) taps.index[k] = f2i_min(f2i_max(base - 1 + k, 0), len - 1);
  return taps;
}
