// f2i_norm.h — the GroupNorm output of one value, shared by norm.cu's output pass and the
// convolution's input packing that folds GroupNorm(+SiLU) in (conv_tc.cu): one function, so
// both round the same f32 expression once and agree bit for bit.
#pragma once
#include "common/f2i_device.h"  // by its NVRTC name (host: -I kernels)

// y = x·a + b with a = rstd·γ, b = β − mean·a (PyTorch's folding), then SiLU when asked.
F2I_FN float f2i_group_norm_value(float x, float mean, float rstd, float gamma, float beta,
                                  int silu) {
  const float a = rstd * gamma;
  const float b = beta - mean * a;
  float y = x * a + b;
  if (silu) y = y / (1.0f + f2i_expf(-y));
  return y;
}
