// f2i_device.h — the one header every kernel includes: the half type, storage loads and stores,
// thread indices, barriers, warp collectives, atomics and math, each with its host emulation
// beside its device version.
//
// Two builds of the same source:
//   * device (NVRTC; __CUDACC_RTC__ / __CUDACC__ defined): inline PTX and NVRTC builtins only —
//     no CUDA toolkit header is included, so NVRTC needs no include path;
//   * host (the CPU execution harness, kernels/harness/): plain C++17; the runtime in
//     f2i_sim.h schedules the threads of a block as fibers and supplies indices, barriers and
//     warp collectives.
//
// Each kernel file is compiled twice, once per activation storage type:
//   F2I_ACT_F16 defined   → act_t = f2i_half (f16 storage, f32 arithmetic), names end in _f16
//   otherwise             → act_t = float, names end in _f32
// Kernels are declared `F2I_KERNEL void F2I_NAME(op)(...)`, one per line, so the build finds them.
#pragma once

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define F2I_DEVICE_BUILD 1
#else
#define F2I_HOST_BUILD 1
#include "../harness/f2i_sim.h"
#endif

// ---------------------------------------------------------------------------------------------
// Declarations.
#ifdef F2I_DEVICE_BUILD
#define F2I_KERNEL extern "C" __global__
#define F2I_FN static __device__ __forceinline__
#define F2I_RESTRICT __restrict__
// Static shared memory, one array per block.
#define F2I_SHARED(type, name, count) __shared__ __align__(16) type name[count]
// The launch's dynamic shared memory.
#define F2I_DYNAMIC_SHARED(type, name)                                   \
  extern __shared__ __align__(16) unsigned char f2i_dynamic_smem[];      \
  type* name = reinterpret_cast<type*>(f2i_dynamic_smem)
#else
#define F2I_KERNEL static
#define F2I_FN static inline
#define F2I_RESTRICT __restrict__
#define F2I_SHARED(type, name, count) \
  type* name = static_cast<type*>(f2i_sim_shared_static(sizeof(type) * (count), 16))
#define F2I_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(f2i_sim_shared_dynamic())
#endif

#ifdef F2I_ACT_F16
#define F2I_NAME(op) op##_f16
#else
#define F2I_NAME(op) op##_f32
#endif

typedef unsigned int f2i_u32;
typedef unsigned short f2i_u16;

// ---------------------------------------------------------------------------------------------
// binary16. Conversions round to nearest even (cvt.rn), like the hardware; the host version is
// exact IEEE (subnormals, infinities, NaN kept).
struct f2i_half {
  f2i_u16 bits;
};

#ifdef F2I_DEVICE_BUILD
F2I_FN float f2i_half_to_float(f2i_half h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
  return f;
}
F2I_FN f2i_half f2i_float_to_half(float f) {
  f2i_half h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
  return h;
}
#else
F2I_FN float f2i_half_to_float(f2i_half h) { return f2i_sim_half_to_float(h.bits); }
F2I_FN f2i_half f2i_float_to_half(float f) {
  f2i_half h;
  h.bits = f2i_sim_float_to_half(f);
  return h;
}
#endif

// Activation / weight storage.
#ifdef F2I_ACT_F16
typedef f2i_half act_t;
F2I_FN float f2i_load(const act_t* p) { return f2i_half_to_float(*p); }
F2I_FN void f2i_store(act_t* p, float v) { *p = f2i_float_to_half(v); }
#else
typedef float act_t;
F2I_FN float f2i_load(const act_t* p) { return *p; }
F2I_FN void f2i_store(act_t* p, float v) { *p = v; }
#endif

// ---------------------------------------------------------------------------------------------
// Barriers and warp collectives (full-warp masks only: every lane of the warp must take part).
#define F2I_FULL_MASK 0xffffffffu

#ifdef F2I_DEVICE_BUILD
F2I_FN void f2i_syncthreads() { asm volatile("bar.sync 0;" ::: "memory"); }
F2I_FN void f2i_syncwarp() { asm volatile("bar.warp.sync %0;" ::"r"(F2I_FULL_MASK) : "memory"); }
F2I_FN f2i_u32 f2i_lane() {
  f2i_u32 l;
  asm("mov.u32 %0, %%laneid;" : "=r"(l));
  return l;
}
F2I_FN float f2i_shfl_xor(float v, int lane_mask) {
  float r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, %3;"
               : "=f"(r)
               : "f"(v), "r"(lane_mask), "r"(F2I_FULL_MASK));
  return r;
}
F2I_FN float f2i_shfl(float v, int src_lane) {
  float r;
  asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, %3;"
               : "=f"(r)
               : "f"(v), "r"(src_lane), "r"(F2I_FULL_MASK));
  return r;
}
F2I_FN f2i_u32 f2i_ballot(bool p) {
  f2i_u32 r;
  asm volatile(
      "{ .reg .pred q; setp.ne.u32 q, %1, 0; vote.sync.ballot.b32 %0, q, %2; }"
      : "=r"(r)
      : "r"((f2i_u32)p), "r"(F2I_FULL_MASK));
  return r;
}
#else
F2I_FN void f2i_syncthreads() { f2i_sim_syncthreads(); }
F2I_FN void f2i_syncwarp() { f2i_sim_syncwarp(F2I_FULL_MASK); }
F2I_FN f2i_u32 f2i_lane() { return f2i_sim_lane(); }
F2I_FN float f2i_shfl_xor(float v, int lane_mask) {
  float all[32];
  f2i_sim_warp_gather(F2I_FULL_MASK, &v, all, sizeof(float));
  return all[(f2i_sim_lane() ^ (f2i_u32)lane_mask) & 31u];
}
F2I_FN float f2i_shfl(float v, int src_lane) {
  float all[32];
  f2i_sim_warp_gather(F2I_FULL_MASK, &v, all, sizeof(float));
  return all[(f2i_u32)src_lane & 31u];
}
F2I_FN f2i_u32 f2i_ballot(bool p) {
  f2i_u32 mine = p ? 1u : 0u, all[32], r = 0;
  f2i_sim_warp_gather(F2I_FULL_MASK, &mine, all, sizeof(f2i_u32));
  // Lanes a partial last warp lacks hold poison, not 1: count only exact 1s.
  for (int i = 0; i < 32; ++i) r |= (all[i] == 1u ? 1u : 0u) << i;
  return r;
}
#endif

// Warp-wide reductions (butterfly: every lane gets the result, in the same order on every lane).
F2I_FN float f2i_warp_sum(float v) {
  for (int m = 16; m > 0; m >>= 1) v += f2i_shfl_xor(v, m);
  return v;
}
F2I_FN float f2i_warp_max(float v) {
  for (int m = 16; m > 0; m >>= 1) {
    float o = f2i_shfl_xor(v, m);
    v = v > o ? v : o;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Atomics (global or shared memory).
#ifdef F2I_DEVICE_BUILD
F2I_FN float f2i_atomic_add(float* p, float v) {
  float old;
  asm volatile("atom.add.f32 %0, [%1], %2;" : "=f"(old) : "l"(p), "f"(v) : "memory");
  return old;
}
F2I_FN f2i_u32 f2i_atomic_add_u32(f2i_u32* p, f2i_u32 v) {
  f2i_u32 old;
  asm volatile("atom.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
}
#else
F2I_FN float f2i_atomic_add(float* p, float v) { return f2i_sim_atomic_add_f32(p, v); }
F2I_FN f2i_u32 f2i_atomic_add_u32(f2i_u32* p, f2i_u32 v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
#endif

// ---------------------------------------------------------------------------------------------
// Math, f32. Device: NVRTC's built-in (libdevice) functions, full precision, never the
// approximate intrinsics, so f32 mode matches the CPU oracle to ~1e-6. Host: libm.
#ifdef F2I_HOST_BUILD
#include <math.h>
#endif
#define F2I_MATH(name) ::name
F2I_FN float f2i_expf(float x) { return F2I_MATH(expf)(x); }
F2I_FN float f2i_logf(float x) { return F2I_MATH(logf)(x); }
F2I_FN float f2i_sqrtf(float x) { return F2I_MATH(sqrtf)(x); }
F2I_FN float f2i_erff(float x) { return F2I_MATH(erff)(x); }
F2I_FN float f2i_tanhf(float x) { return F2I_MATH(tanhf)(x); }
F2I_FN float f2i_sinf(float x) { return F2I_MATH(sinf)(x); }
F2I_FN float f2i_cosf(float x) { return F2I_MATH(cosf)(x); }
F2I_FN float f2i_floorf(float x) { return F2I_MATH(floorf)(x); }
// Round to the nearest integer, ties to even (Rust's round_ties_even in the default mode).
F2I_FN float f2i_rintf(float x) { return F2I_MATH(rintf)(x); }
F2I_FN float f2i_fabsf(float x) { return F2I_MATH(fabsf)(x); }
F2I_FN float f2i_fminf(float a, float b) { return F2I_MATH(fminf)(a, b); }
F2I_FN float f2i_fmaxf(float a, float b) { return F2I_MATH(fmaxf)(a, b); }
F2I_FN double f2i_floor(double x) { return F2I_MATH(floor)(x); }
F2I_FN int f2i_min(int a, int b) { return a < b ? a : b; }
F2I_FN int f2i_max(int a, int b) { return a > b ? a : b; }
// 1/sqrt(x) rounded as 1/sqrtf(x) on the CPU (no approximate rsqrt).
F2I_FN float f2i_rsqrtf(float x) { return 1.0f / f2i_sqrtf(x); }

// ---------------------------------------------------------------------------------------------
// f64 exp / sin / cos: the timestep embedding evaluates them in f64 and rounds once to f32, as
// the CPU oracle does (arguments reach ~1000 rad, where f32 sinf's last ulp shows).
F2I_FN double f2i_exp(double x) { return F2I_MATH(exp)(x); }
F2I_FN double f2i_sin(double x) { return F2I_MATH(sin)(x); }
F2I_FN double f2i_cos(double x) { return F2I_MATH(cos)(x); }
// An f32 product rounded on its own, never contracted into an FMA with a following add (source
// coordinates of the resizes, whose floor must match the CPU's separately rounded a·b − c).
#ifdef F2I_DEVICE_BUILD
F2I_FN float f2i_fmul_rn(float a, float b) { return __fmul_rn(a, b); }
#else
F2I_FN float f2i_fmul_rn(float a, float b) {
  volatile float p = a * b;
  return p;
}
#endif
