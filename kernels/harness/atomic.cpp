// atomic.cpp — float atomics for kernels on the harness. A compare-and-swap loop on the
// value's bits, so it stays correct if blocks ever run on several OS threads (today a launch
// runs on one thread, but kernels must not rely on that).
#include <stdint.h>
#include <string.h>

#include "f2i_sim.h"

extern "C" float f2i_sim_atomic_add_f32(float* p, float v) {
  uint32_t* word = reinterpret_cast<uint32_t*>(p);
  uint32_t old_bits = __atomic_load_n(word, __ATOMIC_RELAXED);
  for (;;) {
    float old;
    memcpy(&old, &old_bits, sizeof old);
    const float sum = old + v;
    uint32_t new_bits;
    memcpy(&new_bits, &sum, sizeof new_bits);
    if (__atomic_compare_exchange_n(word, &old_bits, new_bits, true, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED))
      return old;
  }
}
