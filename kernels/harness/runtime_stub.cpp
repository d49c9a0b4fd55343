// TEMPORARY stub so the crate links with `cuda-sim` until the runtime lands; every launch fails.
#include "f2i_sim.h"
#include "f2i_sim_launch.h"
#include <stdlib.h>
#include <string.h>
thread_local f2i_dim3 threadIdx, blockIdx, blockDim, gridDim;
extern "C" {
void f2i_sim_syncthreads(void) {}
void f2i_sim_syncwarp(unsigned) {}
void f2i_sim_warp_gather(unsigned, const void*, void*, unsigned) {}
unsigned f2i_sim_lane(void) { return 0; }
void* f2i_sim_shared_static(size_t, size_t) { return nullptr; }
void* f2i_sim_shared_dynamic(void) { return nullptr; }
float f2i_sim_half_to_float(uint16_t) { return 0; }
uint16_t f2i_sim_float_to_half(float) { return 0; }
float f2i_sim_atomic_add_f32(float*, float) { return 0; }
void* f2i_sim_alloc(size_t bytes) { return calloc(1, bytes); }
void f2i_sim_free(void* p) { free(p); }
int f2i_sim_protect(void*, int) { return 0; }
int f2i_sim_launch(const char* k, const unsigned*, const unsigned*, size_t, void**, unsigned,
                   uint64_t, char* err, size_t n) {
  if (!f2i_sim_find_kernel(k)) { strncpy(err, "unknown kernel", n); return F2I_SIM_ERR_UNKNOWN_KERNEL; }
  strncpy(err, "harness runtime not built yet", n);
  return F2I_SIM_ERR_UNSUPPORTED;
}
}
