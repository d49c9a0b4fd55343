// f2i_mma.h — tensor-core and async-copy wrappers (sm_80+: Orin sm_87, Hopper sm_90), each with
// its device version (inline PTX, no CUDA header) and its host emulation for the CPU execution
// harness right beside it.
//
//   f2i_mma_m16n8k16_f32_f16   mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32   D = A·B + C
//   f2i_ldmatrix_x{1,2,4}[_trans]  ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16
//   f2i_cp_async_{4,8,16}[_zfill], f2i_cp_async_commit, f2i_cp_async_wait<N>, f2i_cp_async_wait_all
//   f2i_pack_half2 / f2i_half2_lo / f2i_half2_hi / f2i_pack_float2   (f16x2 register helpers)
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type" and
// "Warp-level matrix load instruction: ldmatrix"). lane = %laneid, g = lane / 4 (groupID),
// t = lane % 4 (threadID_in_group). Each f2i_u32 holds two halves, the lower-numbered element in
// the low 16 bits.
//   A (16×16 f16, row-major), a[0..3] = elements a0..a7:
//     a0,a1: (g,   2t+{0,1})     a2,a3: (g+8, 2t+{0,1})
//     a4,a5: (g,   2t+8+{0,1})   a6,a7: (g+8, 2t+8+{0,1})
//   B (16×8 f16, "col": (k, n)), b[0..1] = b0..b3:  b0,b1: (2t+{0,1}, g)   b2,b3: (2t+8+{0,1}, g)
//   C, D (16×8 f32), c[0..3]:  c0,c1: (g, 2t+{0,1})   c2,c3: (g+8, 2t+{0,1})
//   ldmatrix: lane i supplies the address of row i%8 of matrix i/8 (x1: lanes 0-7, x2: 0-15,
//     x4: all; other lanes' addresses are ignored). Each row is 8 contiguous b16 (16 bytes,
//     16-byte aligned). r[m] of lane i = matrix m's (row i/4, cols 2(i%4)+{0,1});
//     with .trans: matrix m's (rows 2(i%4)+{0,1}, col i/4).
//   With A 16×16 row-major in shared memory, ldmatrix_x4 with lane i pointing at
//   &A[i%16][(i/16)*8] yields exactly a[0..3]; with B K×8 row-major (k rows), ldmatrix_x2_trans
//   with lane i pointing at &B[i%16][0] yields exactly b[0..1].
//
// Numerics of mma. Every f16×f16 product is exact in f32 (11-bit significands, no under/overflow
// of the f32 range). The host computes, per output element, acc = c; then acc = acc + a_k·b_k
// for k = 0..15 in ascending order, each addition an f32 round-to-nearest-even — a fixed,
// deterministic order. The hardware's internal accumulation order and rounding are not
// specified by NVIDIA (measured behaviour: products aligned to the largest exponent and summed
// with truncation), so harness and GPU may differ by a few f32 ulps of the terms' magnitude:
// compare with a tolerance, except on inputs whose partial sums are all exact (small integers),
// where every order gives the same bits — the layout probe (kernels/probe.cu) uses those.
//
// cp.async on the host: copies are queued per simulated thread and only performed when a wait
// retires their group (cp.async.wait_group N: all committed groups but the newest N;
// wait_all = commit + wait_group 0), so shared memory read before the wait still holds the
// harness's poison (0xFF bytes: NaN as f16 and f32), which is what CUDA allows it to hold.
// Copies still pending when a thread exits are performed at exit, silently: on hardware they
// complete too, and leaving a prefetch unconsumed (a pipeline's last stages) is legal, so it is
// not flagged. Misuse that is undefined on hardware (misaligned or null address, zfill size out
// of range) ends the launch with an error naming kernel, block and thread (f2i_sim_fail).
#pragma once
#include "common/f2i_device.h"  // by its NVRTC name (host: -I kernels)

#if defined(F2I_DEVICE_BUILD) && defined(__CUDA_ARCH__) && (__CUDA_ARCH__ < 800)
#error "f2i_mma.h needs sm_80 or newer (mma.sync.m16n8k16, ldmatrix, cp.async)"
#endif

// ---------------------------------------------------------------------------------------------
// f16x2 register helpers (identical in both builds).
F2I_FN f2i_u32 f2i_pack_half2(f2i_half lo, f2i_half hi) {
  return (f2i_u32)lo.bits | ((f2i_u32)hi.bits << 16);
}
F2I_FN f2i_half f2i_half2_lo(f2i_u32 v) {
  f2i_half h;
  h.bits = (f2i_u16)(v & 0xffffu);
  return h;
}
F2I_FN f2i_half f2i_half2_hi(f2i_u32 v) {
  f2i_half h;
  h.bits = (f2i_u16)(v >> 16);
  return h;
}
// Two floats rounded to f16 (nearest even) and packed, `lo` in the low half.
F2I_FN f2i_u32 f2i_pack_float2(float lo, float hi) {
  return f2i_pack_half2(f2i_float_to_half(lo), f2i_float_to_half(hi));
}

// ---------------------------------------------------------------------------------------------
// Host-side support: failure reporting and the per-thread cp.async queue.
#ifdef F2I_HOST_BUILD
#include <string.h>
#include <vector>
#include "../harness/f2i_sim_launch.h"  // F2I_SIM_ERR_* for f2i_sim_fail

// Misuse the hardware would fault on, or that PTX leaves undefined, ends the launch with an
// error naming kernel, block and thread (f2i_sim_fail).
[[noreturn]] static inline void f2i_mma_host_fail(int status, const char* what) {
  f2i_sim_fail(status, what);
}

static inline void f2i_mma_check_align(const void* p, unsigned align, const char* what) {
  if (p == nullptr || ((size_t)p % align) != 0)
    f2i_mma_host_fail(F2I_SIM_ERR_OUT_OF_BOUNDS, what);
}

struct f2i_cp_async_copy {
  void* dst;
  const void* src;
  unsigned src_bytes;  // bytes read from src
  unsigned bytes;      // bytes written to dst (the rest after src_bytes: zeros)
  unsigned group;      // index of the commit group it belongs to
};

struct f2i_cp_async_queue {
  std::vector<f2i_cp_async_copy> pending;  // in issue order
  unsigned committed = 0;                  // groups committed so far (the open group's index)
};

// Performs every pending copy whose group index is < `below`, in issue order.
static inline void f2i_cp_async_retire(f2i_cp_async_queue* q, unsigned below) {
  size_t keep = 0;
  for (size_t i = 0; i < q->pending.size(); ++i) {
    const f2i_cp_async_copy& c = q->pending[i];
    if (c.group < below) {
      unsigned char tmp[16];
      memset(tmp, 0, sizeof tmp);
      if (c.src_bytes) memcpy(tmp, c.src, c.src_bytes);
      memcpy(c.dst, tmp, c.bytes);
    } else {
      q->pending[keep++] = c;
    }
  }
  q->pending.resize(keep);
}

static inline void f2i_cp_async_thread_exit(void* arg) {
  f2i_cp_async_queue* q = static_cast<f2i_cp_async_queue*>(arg);
  // Pending copies complete on hardware as well (see the header comment): perform them all.
  f2i_cp_async_retire(q, ~0u);
  delete q;
  *f2i_sim_thread_slot() = nullptr;
}

// The calling simulated thread's queue, created at its first cp.async.
static inline f2i_cp_async_queue* f2i_mma_thread_queue() {
  void** slot = f2i_sim_thread_slot();
  if (*slot == nullptr) {
    f2i_cp_async_queue* q = new f2i_cp_async_queue();
    *slot = q;
    f2i_sim_at_thread_exit(f2i_cp_async_thread_exit, q);
  }
  return static_cast<f2i_cp_async_queue*>(*slot);
}

static inline void f2i_cp_async_host(void* smem, const void* gmem, unsigned bytes,
                                     unsigned src_bytes) {
  if (src_bytes > bytes)
    f2i_mma_host_fail(F2I_SIM_ERR_UNSUPPORTED, "cp.async: src-size larger than cp-size");
  f2i_mma_check_align(smem, bytes, "cp.async: shared address null or not aligned to cp-size");
  if (src_bytes) f2i_mma_check_align(gmem, bytes, "cp.async: global address null or misaligned");
  f2i_cp_async_queue* q = f2i_mma_thread_queue();
  q->pending.push_back(f2i_cp_async_copy{smem, gmem, src_bytes, bytes, q->committed});
  // Schedule A completes copies at the latest legal moment (the wait that retires them),
  // schedule B at the earliest (issue): a kernel that reads a stage before waiting, or lets a
  // prefetch overwrite a stage another warp still reads, gets different bytes in the two.
  if (f2i_sim_schedule() == 1) f2i_cp_async_retire(q, ~0u);
}
#endif

// ---------------------------------------------------------------------------------------------
// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 — warp-collective: every lane of the warp
// must call it (converged), with its fragments in the layouts above.
#ifdef F2I_DEVICE_BUILD
F2I_FN void f2i_mma_m16n8k16_f32_f16(float d[4], const f2i_u32 a[4], const f2i_u32 b[2],
                                     const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
        "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
#else
F2I_FN void f2i_mma_m16n8k16_f32_f16(float d[4], const f2i_u32 a[4], const f2i_u32 b[2],
                                     const float c[4]) {
  struct Regs {
    f2i_u32 a[4], b[2];
    float c[4];
  } mine, all[32];
  for (int i = 0; i < 4; ++i) mine.a[i] = a[i], mine.c[i] = c[i];
  for (int i = 0; i < 2; ++i) mine.b[i] = b[i];
  f2i_sim_warp_gather(F2I_FULL_MASK, &mine, all, sizeof(Regs));
  // Reassemble A (16×16), B (16×8 as [k][n]) and C (16×8) from every lane's fragments.
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    const Regs& r = all[lane];
    for (int j = 0; j < 8; ++j) {  // a_j
      const f2i_u32 v = r.a[j >> 1];
      const f2i_half h = (j & 1) ? f2i_half2_hi(v) : f2i_half2_lo(v);
      const int row = g + ((j & 2) ? 8 : 0), col = 2 * t + (j & 1) + ((j & 4) ? 8 : 0);
      A[row][col] = f2i_half_to_float(h);
    }
    for (int j = 0; j < 4; ++j) {  // b_j
      const f2i_u32 v = r.b[j >> 1];
      const f2i_half h = (j & 1) ? f2i_half2_hi(v) : f2i_half2_lo(v);
      B[2 * t + (j & 1) + ((j & 2) ? 8 : 0)][g] = f2i_half_to_float(h);
    }
    for (int j = 0; j < 4; ++j) C[g + ((j & 2) ? 8 : 0)][2 * t + (j & 1)] = r.c[j];
  }
  const int lane = (int)f2i_sim_lane(), g = lane >> 2, t = lane & 3;
  for (int j = 0; j < 4; ++j) {
    const int row = g + ((j & 2) ? 8 : 0), col = 2 * t + (j & 1);
    float acc = C[row][col];
    for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];  // product exact, sum RN in f32
    d[j] = acc;
  }
}
#endif

// ---------------------------------------------------------------------------------------------
// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 — warp-collective. `smem_row` is the
// calling lane's row address (a generic pointer into shared memory, 16-byte aligned).
#ifdef F2I_DEVICE_BUILD
// A generic pointer into shared memory as a .shared window address.
F2I_FN f2i_u32 f2i_smem_addr(const void* p) {
  f2i_u32 a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}
F2I_FN void f2i_ldmatrix_x1(f2i_u32 r[1], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];"
               : "=r"(r[0])
               : "r"(f2i_smem_addr(smem_row))
               : "memory");
}
F2I_FN void f2i_ldmatrix_x2(f2i_u32 r[2], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(f2i_smem_addr(smem_row))
               : "memory");
}
F2I_FN void f2i_ldmatrix_x4(f2i_u32 r[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(f2i_smem_addr(smem_row))
               : "memory");
}
F2I_FN void f2i_ldmatrix_x1_trans(f2i_u32 r[1], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];"
               : "=r"(r[0])
               : "r"(f2i_smem_addr(smem_row))
               : "memory");
}
F2I_FN void f2i_ldmatrix_x2_trans(f2i_u32 r[2], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(f2i_smem_addr(smem_row))
               : "memory");
}
F2I_FN void f2i_ldmatrix_x4_trans(f2i_u32 r[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(f2i_smem_addr(smem_row))
               : "memory");
}
#else
// Each lane whose address is used reads its 16-byte row *before* the warp gather, so every
// read happens before any lane of the warp moves on (as in one warp-wide instruction); then each
// lane picks its elements from the gathered rows.
static inline void f2i_ldmatrix_host(f2i_u32* r, const void* smem_row, int nmat, bool trans) {
  struct Row {
    f2i_u16 e[8];
  } mine, rows[32];
  const int lane = (int)f2i_sim_lane();
  if (lane < 8 * nmat) {
    f2i_mma_check_align(smem_row, 16, "ldmatrix: row address null or not 16-byte aligned");
    memcpy(&mine, smem_row, sizeof mine);
  } else {
    memset(&mine, 0, sizeof mine);  // address ignored by the instruction
  }
  f2i_sim_warp_gather(F2I_FULL_MASK, &mine, rows, sizeof(Row));
  const int q = lane >> 2, p = 2 * (lane & 3);
  for (int m = 0; m < nmat; ++m) {
    const Row* mat = rows + 8 * m;  // rows[8m + i] = row i of matrix m
    const f2i_u16 lo = trans ? mat[p].e[q] : mat[q].e[p];
    const f2i_u16 hi = trans ? mat[p + 1].e[q] : mat[q].e[p + 1];
    r[m] = (f2i_u32)lo | ((f2i_u32)hi << 16);
  }
}
F2I_FN void f2i_ldmatrix_x1(f2i_u32 r[1], const void* s) { f2i_ldmatrix_host(r, s, 1, false); }
F2I_FN void f2i_ldmatrix_x2(f2i_u32 r[2], const void* s) { f2i_ldmatrix_host(r, s, 2, false); }
F2I_FN void f2i_ldmatrix_x4(f2i_u32 r[4], const void* s) { f2i_ldmatrix_host(r, s, 4, false); }
F2I_FN void f2i_ldmatrix_x1_trans(f2i_u32 r[1], const void* s) {
  f2i_ldmatrix_host(r, s, 1, true);
}
F2I_FN void f2i_ldmatrix_x2_trans(f2i_u32 r[2], const void* s) {
  f2i_ldmatrix_host(r, s, 2, true);
}
F2I_FN void f2i_ldmatrix_x4_trans(f2i_u32 r[4], const void* s) {
  f2i_ldmatrix_host(r, s, 4, true);
}
#endif

// ---------------------------------------------------------------------------------------------
// cp.async: global → shared copies of 4, 8 or 16 bytes (both addresses aligned to the size),
// completed only by a wait. A wait makes the copies visible to the calling thread; other
// threads need a barrier after it (f2i_syncthreads / f2i_syncwarp) as on hardware.
// _zfill: reads `src_bytes` (0..16) bytes, fills the rest of the 16 with zeros (tile edges);
// with src_bytes == 0 nothing is read.
#ifdef F2I_DEVICE_BUILD
F2I_FN unsigned long long f2i_gmem_addr(const void* p) {
  unsigned long long a;
  asm("cvta.to.global.u64 %0, %1;" : "=l"(a) : "l"(p));
  return a;
}
F2I_FN void f2i_cp_async_4(void* smem, const void* gmem) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(f2i_smem_addr(smem)),
               "l"(f2i_gmem_addr(gmem))
               : "memory");
}
F2I_FN void f2i_cp_async_8(void* smem, const void* gmem) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(f2i_smem_addr(smem)),
               "l"(f2i_gmem_addr(gmem))
               : "memory");
}
F2I_FN void f2i_cp_async_16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(f2i_smem_addr(smem)),
               "l"(f2i_gmem_addr(gmem))
               : "memory");
}
F2I_FN void f2i_cp_async_16_zfill(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(f2i_smem_addr(smem)),
               "l"(f2i_gmem_addr(gmem)), "r"(src_bytes)
               : "memory");
}
F2I_FN void f2i_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
F2I_FN void f2i_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
F2I_FN void f2i_cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }
#else
F2I_FN void f2i_cp_async_4(void* smem, const void* gmem) { f2i_cp_async_host(smem, gmem, 4, 4); }
F2I_FN void f2i_cp_async_8(void* smem, const void* gmem) { f2i_cp_async_host(smem, gmem, 8, 8); }
F2I_FN void f2i_cp_async_16(void* smem, const void* gmem) {
  f2i_cp_async_host(smem, gmem, 16, 16);
}
F2I_FN void f2i_cp_async_16_zfill(void* smem, const void* gmem, int src_bytes) {
  if (src_bytes < 0 || src_bytes > 16)
    f2i_mma_host_fail(F2I_SIM_ERR_UNSUPPORTED, "cp.async zfill: src-size not in 0..16");
  f2i_cp_async_host(smem, gmem, 16, (unsigned)src_bytes);
}
F2I_FN void f2i_cp_async_commit() { f2i_mma_thread_queue()->committed++; }
template <int N>
F2I_FN void f2i_cp_async_wait() {
  static_assert(N >= 0, "cp.async.wait_group needs N >= 0");
  f2i_cp_async_queue* q = f2i_mma_thread_queue();
  // Groups 0..committed-1 are closed; all but the newest N must be complete.
  if (q->committed > (unsigned)N) f2i_cp_async_retire(q, q->committed - (unsigned)N);
}
F2I_FN void f2i_cp_async_wait_all() {
  f2i_cp_async_queue* q = f2i_mma_thread_queue();
  q->committed++;  // cp.async.wait_all = commit_group; wait_group 0
  f2i_cp_async_retire(q, q->committed);
}
#endif
