// selftest.cu — planted bugs and probes for the harness's own tests (tests/cuda_harness.rs).
// Compiled only into the CPU execution harness (build.rs compiles kernels/harness/*.cu); it is
// not in src/backend/cuda/sources.rs, so NVRTC never sees it. Every kernel works on f32 / u32
// buffers whatever the storage build (both the _f16 and _f32 names exist and behave alike).
#include <string.h>

#include "common/f2i_device.h"
#include "harness/f2i_sim_launch.h"  // status codes for f2i_sim_fail

// Reverses each block's slice of x through shared memory: y[b·n + t] = x[b·n + n-1-t]. With
// with_barrier = 0 the barrier between the writes and the reads is missing (the planted bug).
F2I_KERNEL void F2I_NAME(selftest_reverse)(const float* x, float* y, int with_barrier) {
  F2I_SHARED(float, s, 1024);
  const unsigned t = threadIdx.x, n = blockDim.x, base = blockIdx.x * n;
  s[t] = x[base + t];
  if (with_barrier) f2i_syncthreads();
  y[base + t] = s[n - 1 - t];
}

// y[i] = i for i ≤ n: one element past the end (the planted off-by-one; should be i < n).
F2I_KERNEL void F2I_NAME(selftest_off_by_one)(float* y, int n) {
  const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i <= n) y[i] = (float)i;
}

// Plain y[i] = v for every thread (used on a frozen buffer, and for timing).
F2I_KERNEL void F2I_NAME(selftest_fill)(float* y, int n, float v) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = v;
}

// Half the threads wait at a barrier the other half never reach.
F2I_KERNEL void F2I_NAME(selftest_divergent_barrier)(float* y) {
  if (threadIdx.x < 16) f2i_syncthreads();
  y[threadIdx.x] = 1.0f;
}

// Returns early, then the rest reach a barrier (the common `if (i >= n) return;` bug).
F2I_KERNEL void F2I_NAME(selftest_return_before_barrier)(float* y, int n) {
  if ((int)threadIdx.x >= n) return;
  f2i_syncthreads();
  y[threadIdx.x] = 1.0f;
}

// Lane 3 returns; the others shuffle, waiting for it forever.
F2I_KERNEL void F2I_NAME(selftest_shuffle_after_exit)(float* y) {
  if (f2i_lane() == 3) return;
  y[threadIdx.x] = f2i_shfl_xor(1.0f, 1);
}

// Half the lanes at __syncwarp, the other half at a shuffle.
F2I_KERNEL void F2I_NAME(selftest_mixed_collectives)(float* y) {
  if (f2i_lane() < 16)
    f2i_syncwarp();
  else
    y[threadIdx.x] = f2i_shfl_xor(1.0f, 1);
}

// A partial-warp mask (unsupported).
F2I_KERNEL void F2I_NAME(selftest_partial_mask)(float* y) {
  f2i_sim_syncwarp(0x0000ffffu);
  y[threadIdx.x] = 1.0f;
}

// Reads shared memory nobody wrote: static (y[b·2n + t]) and dynamic (y[b·2n + n + t]), then
// writes both, so the next block shows whether they were poisoned again at its start.
F2I_KERNEL void F2I_NAME(selftest_shared_poison)(f2i_u32* y) {
  F2I_SHARED(f2i_u32, s, 256);
  F2I_DYNAMIC_SHARED(f2i_u32, d);
  const unsigned t = threadIdx.x, n = blockDim.x, base = blockIdx.x * 2 * n;
  y[base + t] = s[t];
  y[base + n + t] = d[t];
  f2i_syncthreads();
  s[t] = 7u;
  d[t] = 9u;
}

// A 49 KiB static shared array: over the 48 KiB limit without an opt-in dynamic request.
F2I_KERNEL void F2I_NAME(selftest_big_shared)(float* y) {
  F2I_SHARED(float, s, 49 * 256);
  s[threadIdx.x] = 1.0f;
  f2i_syncthreads();
  y[threadIdx.x] = s[0];
}

// Warp probes, 6 values per thread (linear id i, value v = i + 1):
// [lane, shfl_xor(v, 1), shfl(v, 5), ballot(i % 3 == 0) as bits, warp_sum(v), warp_max(v)].
F2I_KERNEL void F2I_NAME(selftest_warp)(float* out) {
  const unsigned i = threadIdx.x + threadIdx.y * blockDim.x;
  const float v = (float)(i + 1);
  float* o = out + 6 * i;
  o[0] = (float)f2i_lane();
  o[1] = f2i_shfl_xor(v, 1);
  o[2] = f2i_shfl(v, 5);
  const f2i_u32 b = f2i_ballot(i % 3 == 0);
  memcpy(&o[3], &b, sizeof b);
  o[4] = f2i_warp_sum(v);
  o[5] = f2i_warp_max(v);
}

// The raw gather: lane l gets all 32 slots (u32 per lane), out[32·i + s] = slot s.
F2I_KERNEL void F2I_NAME(selftest_gather)(f2i_u32* out) {
  const unsigned i = threadIdx.x;
  const f2i_u32 mine = 1000u + i;
  f2i_u32 all[32];
  f2i_sim_warp_gather(F2I_FULL_MASK, &mine, all, sizeof(f2i_u32));
  for (int s = 0; s < 32; ++s) out[32 * i + s] = all[s];
}

// Every block adds v[block] into cell[0] without an atomic (a race on a GPU) or with one.
F2I_KERNEL void F2I_NAME(selftest_block_race)(float* cell, const float* v, int atomic) {
  if (threadIdx.x != 0) return;
  if (atomic)
    f2i_atomic_add(cell, v[blockIdx.x]);
  else
    cell[0] += v[blockIdx.x];
}

// Every thread of a block reads cell, waits at a barrier, then writes back old + v[t]: a race
// between the threads of one block (the last writer wins), which the schedule check sees.
F2I_KERNEL void F2I_NAME(selftest_thread_race)(float* cell, const float* v) {
  const float old = cell[0];
  f2i_syncthreads();
  cell[0] = old + v[threadIdx.x];
}

// Per-thread slot and exit hook: out[i] = 1 if the slot was NULL at the start; the exit hook
// (registered with a pointer to out[n + i]) writes 2 + the slot's final value there.
static void selftest_exit_hook(void* arg) {
  float* p = static_cast<float*>(arg);
  *p = 2.0f + (float)(size_t)(*f2i_sim_thread_slot());
}
F2I_KERNEL void F2I_NAME(selftest_slots)(float* out, int n) {
  const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  void** slot = f2i_sim_thread_slot();
  out[i] = *slot == nullptr ? 1.0f : 0.0f;
  *slot = (void*)(size_t)(i % 5);
  f2i_sim_at_thread_exit(selftest_exit_hook, out + n + i);
  f2i_syncthreads();
}

// Every thread registers an exit hook (out[i] = 5), passes a barrier, then thread 0 ends the
// launch with f2i_sim_fail: the hooks of the threads that never returned still run.
static void selftest_mark_five(void* arg) { *static_cast<float*>(arg) = 5.0f; }
F2I_KERNEL void F2I_NAME(selftest_fail_with_hooks)(float* out) {
  f2i_sim_at_thread_exit(selftest_mark_five, out + threadIdx.x);
  f2i_syncthreads();
  if (threadIdx.x == 0) f2i_sim_fail(F2I_SIM_ERR_UNSUPPORTED, "planted failure");
  f2i_syncthreads();
}

// Timing probe: `rounds` block barriers per thread, y[i] = rounds at the end.
F2I_KERNEL void F2I_NAME(selftest_barriers)(float* y, int rounds) {
  int r = 0;
  for (; r < rounds; ++r) f2i_syncthreads();
  y[blockIdx.x * blockDim.x + threadIdx.x] = (float)r;
}

// Converts halves to floats and back: f[i] = half_to_float(h[i]), back[i] = float_to_half(f[i]).
F2I_KERNEL void F2I_NAME(selftest_half_roundtrip)(const f2i_u16* h, float* f, f2i_u16* back, int n) {
  const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  f2i_half x;
  x.bits = h[i];
  f[i] = f2i_half_to_float(x);
  back[i] = f2i_float_to_half(f[i]).bits;
}
