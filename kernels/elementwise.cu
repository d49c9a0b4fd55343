// elementwise.cu — activations (SiLU, GELU exact and tanh form), gated linear units (GEGLU,
// SwiGLU), residual adds (plain, per-channel bias, layer-scaled), affine / clamp / per-channel
// normalisation, the one-step x0 prediction, copies, and diffusers' sinusoidal timestep
// embedding. The CPU oracle: src/backend/cpu/kernels/{activation,math,embed}.rs and
// src/backend/cpu/mod.rs.
//
// Mapping: one thread per output element, 1-D grid of 256-thread blocks covering `n`
// (`Launch::linear`); thread i handles element i, threads past `n` do nothing. No shared memory,
// no barriers (so the guard `if (i >= n) return;` is safe).
//
// Numerics: storage is act_t (f16 or f32); every value is loaded to f32, computed in f32 and
// rounded once on store. Math functions are the full-precision libdevice ones (erff, expf), never
// the approximate intrinsics. The timestep embedding rounds each step to f32 where PyTorch's f32
// tensors do and evaluates exp / sin / cos in f64, rounding once, as the oracle does.
#include "common/f2i_device.h"

// The element this thread handles, as a 64-bit value (blockIdx.x · blockDim.x can exceed 2^31).
F2I_FN long long element_index() {
  return (long long)blockIdx.x * (long long)blockDim.x + (long long)threadIdx.x;
}

F2I_FN float silu_f(float v) { return v / (1.0f + f2i_expf(-v)); }

// Exact GELU: 0.5·x·(1 + erf(x/√2)).
F2I_FN float gelu_erf_f(float v) { return 0.5f * v * (1.0f + f2i_erff(v * 0.70710678118654752f)); }

// PyTorch's approximate="tanh" GELU as x·σ(2u) (the same function as 0.5·x·(1 + tanh u), with
// no cancellation for negative x), the oracle's form.
F2I_FN float gelu_tanh_f(float v) {
  const float u = 0.7978845608f * (v + 0.044715f * v * v * v);
  return v / (1.0f + f2i_expf(-2.0f * u));
}

// x ← x·σ(x), in place.
F2I_KERNEL void F2I_NAME(silu)(act_t* x, int n) {
  const long long i = element_index();
  if (i >= n) return;
  f2i_store(x + i, silu_f(f2i_load(x + i)));
}

// x ← GELU(x), in place; `tanh_approx` selects PyTorch's approximate="tanh".
F2I_KERNEL void F2I_NAME(gelu)(act_t* x, int n, int tanh_approx) {
  const long long i = element_index();
  if (i >= n) return;
  const float v = f2i_load(x + i);
  f2i_store(x + i, tanh_approx ? gelu_tanh_f(v) : gelu_erf_f(v));
}

// x[rows, 2d] → out[rows, d]. kind 0 (GEGLU): x[:, :d]·gelu_erf(x[:, d:]);
// kind 1 (SwiGLU): silu(x[:, :d])·x[:, d:].
F2I_KERNEL void F2I_NAME(glu)(const act_t* F2I_RESTRICT x, act_t* F2I_RESTRICT out, int rows, int d, int kind) {
  const long long i = element_index();
  if (i >= (long long)rows * d) return;
  const int r = (int)i / d, j = (int)i % d;
  // rows·2d fits an int (checked on the host).
  const float first = f2i_load(x + (r * 2 * d + j));
  const float second = f2i_load(x + (r * 2 * d + d + j));
  f2i_store(out + i, kind == 0 ? first * gelu_erf_f(second) : silu_f(first) * second);
}

// x += y (y an activation or a weight of the same storage type).
F2I_KERNEL void F2I_NAME(add)(act_t* F2I_RESTRICT x, const act_t* F2I_RESTRICT y, int n) {
  const long long i = element_index();
  if (i >= n) return;
  f2i_store(x + i, f2i_load(x + i) + f2i_load(y + i));
}

// x[ch, :] += v[ch] for x of [n / hw, hw].
F2I_KERNEL void F2I_NAME(add_channel_bias)(act_t* F2I_RESTRICT x, const act_t* F2I_RESTRICT v, int hw, int n) {
  const long long i = element_index();
  if (i >= n) return;
  f2i_store(x + i, f2i_load(x + i) + f2i_load(v + (int)i / hw));
}

// x[r, j] += s[j]·y[r, j] for rows of length d.
F2I_KERNEL void F2I_NAME(scale_add)(act_t* F2I_RESTRICT x, const act_t* F2I_RESTRICT y, const act_t* F2I_RESTRICT s, int d, int n) {
  const long long i = element_index();
  if (i >= n) return;
  f2i_store(x + i, f2i_load(x + i) + f2i_load(s + (int)i % d) * f2i_load(y + i));
}

// x = (x + add_before)·mul + add_after.
F2I_KERNEL void F2I_NAME(affine)(act_t* x, int n, float add_before, float mul, float add_after) {
  const long long i = element_index();
  if (i >= n) return;
  f2i_store(x + i, (f2i_load(x + i) + add_before) * mul + add_after);
}

// x = min(max(x, lo), hi); NaN stays NaN, as Rust's f32::clamp keeps it.
F2I_KERNEL void F2I_NAME(clamp)(act_t* x, int n, float lo, float hi) {
  const long long i = element_index();
  if (i >= n) return;
  const float v = f2i_load(x + i);
  f2i_store(x + i, v < lo ? lo : (v > hi ? hi : v));
}

// x[ch] = (x[ch] − mean[ch]) / std[ch] for x of [n / hw, hw], up to 4 channels whose means and
// standard deviations come as scalars (m0..m3, s0..s3).
F2I_KERNEL void F2I_NAME(channel_normalize)(act_t* x, int hw, int n, float m0, float m1, float m2, float m3, float s0, float s1, float s2, float s3) {
  const long long i = element_index();
  if (i >= n) return;
  const int ch = (int)i / hw;
  const float m = ch == 0 ? m0 : ch == 1 ? m1 : ch == 2 ? m2 : m3;
  const float s = ch == 0 ? s0 : ch == 1 ? s1 : ch == 2 ? s2 : s3;
  f2i_store(x + i, (f2i_load(x + i) - m) / s);
}

// out = (z − c1·eps) / c2, f32 arithmetic (IEEE division).
F2I_KERNEL void F2I_NAME(x0_from_eps)(const act_t* F2I_RESTRICT z, const act_t* F2I_RESTRICT eps, act_t* F2I_RESTRICT out, int n, float c1, float c2) {
  const long long i = element_index();
  if (i >= n) return;
  f2i_store(out + i, (f2i_load(z + i) - c1 * f2i_load(eps + i)) / c2);
}

// dst = src (an activation or a weight), bit for bit.
F2I_KERNEL void F2I_NAME(copy)(const act_t* F2I_RESTRICT src, act_t* F2I_RESTRICT dst, int n) {
  const long long i = element_index();
  if (i >= n) return;
  dst[i] = src[i];
}

// diffusers get_timestep_embedding of one timestep into out[dim], half = dim / 2:
// frequency k = exp(k·neg_log_period / denom) (denom = half − shift, both rounded to f32 on the
// host), out = [sin(t·f), cos(t·f)] or [cos, sin] when flip, and 0 in the last slot for odd dim.
F2I_KERNEL void F2I_NAME(timestep_embedding)(act_t* out, int dim, float t, float neg_log_period, float denom, int flip) {
  const long long i = element_index();
  if (i >= dim) return;
  const int half = dim / 2;
  if (i >= 2 * half) {
    f2i_store(out + i, 0.0f);
    return;
  }
  const bool first_half = i < half;
  const int k = (int)(first_half ? i : i - half);
  const float exponent = ((float)k * neg_log_period) / denom;
  const float freq = (float)f2i_exp((double)exponent);
  const double arg = (double)(t * freq);
  // First half sin, second half cos; flipped: first cos, second sin.
  const bool use_cos = first_half == (flip != 0);
  f2i_store(out + i, use_cos ? (float)f2i_cos(arg) : (float)f2i_sin(arg));
}
