// peak.cu — the tensor-core peak probe: a pure `mma.sync.m16n8k16` (f16 × f16 → f32) loop with
// no memory traffic, so `f2idiff bench --stage peak` measures the highest rate these wrappers
// reach on the card, and every other kernel's TFLOP/s can be read as a share of it.
//
// peak_mma(a, b, iters, out): grid any, block any multiple of 32 threads. Every warp keeps
//   PEAK_CHAINS independent accumulators (so consecutive mmas do not wait on each other) and runs
//   `iters` rounds of PEAK_CHAINS mmas: per warp 2·16·8·16 · PEAK_CHAINS · iters FLOPs. A and B
//   are the constants `a` and `b` (kernel arguments, converted to f16 once, in registers), so
//   every element of each D gains 16·a·b per mma. At the end each lane stores the sum of its
//   4 · PEAK_CHAINS accumulators to out[global thread index]: the result depends on every mma,
//   so nothing can be optimised away, and the host checks it
//   (= PEAK_CHAINS · 4 · iters · 16 · a·b, exact when a·b is a power of two and the sum < 2^24).
// Shared memory: none. Numerics: f16 inputs, f32 accumulation (the conv/attention kernels' mode).
#include "common/f2i_mma.h"

#define PEAK_CHAINS 8

F2I_KERNEL void F2I_NAME(peak_mma)(float a, float b, int iters, float* out) {
  f2i_u32 fa[4], fb[2];
  for (int r = 0; r < 4; ++r) fa[r] = f2i_pack_float2(a, a);
  for (int r = 0; r < 2; ++r) fb[r] = f2i_pack_float2(b, b);
  float acc[PEAK_CHAINS][4];
#pragma unroll
  for (int c = 0; c < PEAK_CHAINS; ++c)
    for (int j = 0; j < 4; ++j) acc[c][j] = 0.f;
  for (int i = 0; i < iters; ++i) {
#pragma unroll
    for (int c = 0; c < PEAK_CHAINS; ++c) f2i_mma_m16n8k16_f32_f16(acc[c], fa, fb, acc[c]);
  }
  float sum = 0.f;
#pragma unroll
  for (int c = 0; c < PEAK_CHAINS; ++c)
    for (int j = 0; j < 4; ++j) sum += acc[c][j];
  const long long t = (long long)blockIdx.x * (long long)blockDim.x + (long long)threadIdx.x;
  out[t] = sum;
}
