// f2i_sim.h — the CPU execution harness's runtime interface, as seen by kernel code compiled for
// the host (through kernels/common/f2i_device.h) and by the launcher (Rust, through FFI).
//
// A launch runs every block of the grid; within a block every thread is a cooperatively
// scheduled fiber. f2i_sim_syncthreads() is a barrier over the block's threads; warps are 32
// consecutive threads (linear thread id x + y·bx + z·bx·by), and warp collectives are barriers
// over the warp. Everything here is only valid on a thread the harness is running.
#pragma once
#include <stddef.h>
#include <stdint.h>

struct f2i_dim3 {
  unsigned x, y, z;
};

// The running thread's indices and the launch's geometry (CUDA's built-in variables).
extern thread_local f2i_dim3 threadIdx, blockIdx, blockDim, gridDim;

extern "C" {
// Barrier over every thread of the block. A barrier some threads never reach (because they
// returned or wait at another barrier) ends the launch with a "divergent barrier" error.
void f2i_sim_syncthreads(void);
// Barrier over the lanes of `mask` in the calling warp (only full masks are supported).
void f2i_sim_syncwarp(unsigned mask);
// Warp-collective gather: each lane of `mask` contributes `bytes` at `src`; on return `dst`
// holds 32 slots of `bytes`, slot i = lane i's contribution (lanes outside the mask: poisoned).
void f2i_sim_warp_gather(unsigned mask, const void* src, void* dst, unsigned bytes);
unsigned f2i_sim_lane(void);
// Static shared memory: the k-th call in a thread returns the block's k-th array (the same
// pointer in every thread), allocated and poisoned (0xFF bytes) on first request in each block.
void* f2i_sim_shared_static(size_t bytes, size_t align);
// The launch's dynamic shared memory (poisoned at each block's start).
void* f2i_sim_shared_dynamic(void);
// Exact IEEE binary16 conversions, round to nearest even.
float f2i_sim_half_to_float(uint16_t h);
uint16_t f2i_sim_float_to_half(float f);
float f2i_sim_atomic_add_f32(float* p, float v);

// Per-thread state for host emulations (e.g. f2i_mma.h's pending cp.async copies): a
// pointer-sized slot private to the calling simulated thread, NULL at the thread's start (in
// every block of every launch).
void** f2i_sim_thread_slot(void);
// Registers fn(arg) to run when the calling simulated thread returns (last registered runs
// first; at most 8 per thread), on that thread (indices, slot and shared memory still valid),
// so pending state can be completed, checked and freed. When a launch fails before the thread
// returns, it runs during the launch's clean-up instead (f2i_sim_fail is then ignored).
void f2i_sim_at_thread_exit(void (*fn)(void*), void* arg);
// Which schedule the launch is running: 0 = A (forward), 1 = B (reversed / permuted). Host
// emulations of asynchronous operations use it to complete them at different legal moments in
// the two schedules (f2i_mma.h: cp.async copies land at the wait in A, at issue in B), so a
// kernel that depends on when they land shows as a schedule mismatch.
unsigned f2i_sim_schedule(void);
// Ends the launch with `status` (an F2I_SIM_ERR_* of f2i_sim_launch.h) and a message naming
// kernel, block and thread followed by `what`: for misuse a host emulation detects.
__attribute__((noreturn)) void f2i_sim_fail(int status, const char* what);
}
