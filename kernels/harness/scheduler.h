// scheduler.h — running one block of a launch: every thread a fiber, block barriers, warp
// collectives, shared memory, per-thread slots (internal to the harness runtime; the kernel
// side of it is f2i_sim.h, the launcher is launch.cpp).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <string>

#include "f2i_sim.h"
#include "f2i_sim_launch.h"

namespace f2i_sim {

// Thread order within every barrier phase.
enum class Order {
  Forward,  // schedule A: thread 0, 1, 2, …
  Reverse,  // schedule B with seed 0
  Random,   // schedule B otherwise: a permutation drawn from (seed, block, phase)
};

struct LaunchConfig {
  const f2i_sim_kernel* kernel;
  void** params;
  f2i_dim3 grid, block;
  size_t dynamic_shared;
  size_t shared_limit;  // static + dynamic bytes allowed per block
  uint64_t seed;
};

// Prepares fibers, stacks and shared memory for a launch; false (and *err) when memory ran out.
bool scheduler_prepare(const LaunchConfig& cfg, std::string* err);
// Runs block `b` to completion. F2I_SIM_OK, or a status with *err naming kernel, block and
// thread. May not return at all when kernel code faults (fault.h jumps to the launcher); then
// call scheduler_abandon.
int scheduler_run_block(f2i_dim3 b, Order order, std::string* err);
// After a fault or an error: runs the at-exit functions of threads that never returned (so
// their state is freed) and forgets the block.
void scheduler_abandon();
// "kernel K, block (x,y,z), thread (x,y,z)" for the thread running now ("…, in the runtime"
// when no simulated thread is).
std::string scheduler_where();
// What the runtime's own guard page holding addr protects ("stack overflow of …", "below /
// beyond the block's shared memory"), or an empty string.
std::string scheduler_guard_name(uintptr_t addr);

}  // namespace f2i_sim
