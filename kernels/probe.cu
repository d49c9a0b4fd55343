// probe.cu — fragment-layout and semantics probes of the tensor-core / async-copy wrappers in
// common/f2i_mma.h. The same source runs on the CPU execution harness (CI) and on a real GPU
// (scripts/gpu-check.sh); src/backend/cuda/probe.rs builds the inputs, launches these kernels
// through any Executor and checks the outputs against tables written from the PTX ISA manual,
// so a harness run and a GPU run are judged by the same expected values. Every probe is one
// warp (block 32×1×1) unless stated; nothing here depends on the activation type (the _f16 and
// _f32 builds are identical).
//
// probe_mma (grid = problems): problem p = A[p] (16×16 f16 row-major), B[p] (16×8 f16 as [k][n]
//   row-major), C[p] (16×8 f32 row-major). Each lane loads its fragments from global memory with
//   the ISA layout (f2i_mma.h's header comment), stores its raw registers to
//   frags[p][lane][0..10) = a[0..4], b[0..2], bits of c[0..4], runs the mma and stores
//   d[p][lane][0..4). If the hardware read a register as another (row, col) than the ISA says,
//   D differs from A·B + C arranged by the ISA's D layout. Inputs of small integers make every
//   partial sum exact, so those problems are compared bit for bit on any hardware.
// probe_ldmatrix (grid 1): shared memory holds four 8×8 b16 matrices, element (m, r, c) =
//   0x1000·(m+1) + 0x10·r + c, rows at a stride of 24 elements (48 bytes) and the matrices in the
//   order 2, 0, 3, 1 in memory, so row addresses are not a trivial function of the lane. Lane i
//   passes the address of row i%8 of matrix i/8 to x1, x2, x4, x1.trans, x2.trans, x4.trans and
//   stores the registers to out[variant][lane][0..4) (unused registers: 0).
// probe_cp_async (block 64): src holds 64·8 floats. Each thread t copies, into shared memory,
//   16 bytes (src[4t..4t+4)) in group 0 and 8 + 4 bytes (src[256+4t..]) in group 1, plus a
//   zero-filled 16-byte copy of 6 bytes; then it records
//     early[t]  = its group-0 words read right after issuing (undefined on hardware; poison on
//                 the harness);
//     mid[t]    = group-0 words after wait<1> (defined: the data), and group-1 words (undefined);
//     late[t]   = after wait_all and a barrier, the words another thread (63−t) copied, and the
//                 zero-filled chunk (6 bytes of data, then zeros).
//   out (floats): [early 64×4][mid0 64×4][mid1 64×4][late 64×4][late1 64×4][zfill 64×4].
// probe_gemm (grid (N/8, ⌈M/16⌉), one warp per 16×8 tile of D): D (M×N f32) = A (M×K f16
//   row-major) · B (K×N f16 row-major), K and N multiples of 8 (16-byte rows for cp.async), any
//   M. A tile loop built only from the wrappers — cp.async (zero-filled past K and M) into a
//   two-stage shared-memory ring, ldmatrix_x4 (A) and ldmatrix_x2_trans (B), mma — proving that
//   they compose. Numerics: f16 inputs, f32 accumulation by mma.
#include "common/f2i_mma.h"

// ---------------------------------------------------------------------------------------------
F2I_KERNEL void F2I_NAME(probe_mma)(const f2i_half* A, const f2i_half* B, const float* C,
                                    f2i_u32* frags, float* D) {
  const int p = (int)blockIdx.x, lane = (int)threadIdx.x, g = lane >> 2, t = lane & 3;
  const f2i_half* a_p = A + p * 256;
  const f2i_half* b_p = B + p * 128;
  const float* c_p = C + p * 128;
  f2i_u32 a[4], b[2];
  float c[4], d[4];
  for (int r = 0; r < 4; ++r) {  // a[r] = a_{2r}, a_{2r+1}
    const int row = g + ((r & 1) ? 8 : 0), col = 2 * t + ((r & 2) ? 8 : 0);
    a[r] = f2i_pack_half2(a_p[row * 16 + col], a_p[row * 16 + col + 1]);
  }
  for (int r = 0; r < 2; ++r) {  // b[r] = b_{2r}, b_{2r+1}: (k, n) = (2t + 8r + {0,1}, g)
    const int k = 2 * t + 8 * r;
    b[r] = f2i_pack_half2(b_p[k * 8 + g], b_p[(k + 1) * 8 + g]);
  }
  for (int j = 0; j < 4; ++j) c[j] = c_p[(g + ((j & 2) ? 8 : 0)) * 8 + 2 * t + (j & 1)];
  f2i_u32* f = frags + (p * 32 + lane) * 10;
  for (int r = 0; r < 4; ++r) f[r] = a[r];
  for (int r = 0; r < 2; ++r) f[4 + r] = b[r];
  for (int j = 0; j < 4; ++j) {
    union {
      float f;
      f2i_u32 u;
    } bits;
    bits.f = c[j];
    f[6 + j] = bits.u;
  }
  f2i_mma_m16n8k16_f32_f16(d, a, b, c);
  for (int j = 0; j < 4; ++j) D[(p * 32 + lane) * 4 + j] = d[j];
}

// ---------------------------------------------------------------------------------------------
#define F2I_PROBE_LDM_STRIDE 24  // elements per shared-memory row (48 bytes, 16-byte aligned)

F2I_KERNEL void F2I_NAME(probe_ldmatrix)(f2i_u32* out) {
  F2I_SHARED(f2i_u16, tile, 4 * 8 * F2I_PROBE_LDM_STRIDE);
  const int lane = (int)threadIdx.x;
  const int slot_of[4] = {1, 3, 0, 2};  // matrix m lives in memory slot slot_of[m] (2, 0, 3, 1)
  for (int e = lane; e < 4 * 8 * 8; e += 32) {
    const int m = e >> 6, r = (e >> 3) & 7, c = e & 7;
    tile[(slot_of[m] * 8 + r) * F2I_PROBE_LDM_STRIDE + c] =
        (f2i_u16)(0x1000 * (m + 1) + 0x10 * r + c);
  }
  f2i_syncthreads();
  const f2i_u16* row = tile + (slot_of[lane >> 3] * 8 + (lane & 7)) * F2I_PROBE_LDM_STRIDE;
  f2i_u32 r[6][4];
  for (int v = 0; v < 6; ++v)
    for (int j = 0; j < 4; ++j) r[v][j] = 0;
  f2i_ldmatrix_x1(r[0], row);
  f2i_ldmatrix_x2(r[1], row);
  f2i_ldmatrix_x4(r[2], row);
  f2i_ldmatrix_x1_trans(r[3], row);
  f2i_ldmatrix_x2_trans(r[4], row);
  f2i_ldmatrix_x4_trans(r[5], row);
  for (int v = 0; v < 6; ++v)
    for (int j = 0; j < 4; ++j) out[(v * 32 + lane) * 4 + j] = r[v][j];
}

// ---------------------------------------------------------------------------------------------
F2I_KERNEL void F2I_NAME(probe_cp_async)(const float* src, float* out) {
  F2I_SHARED(float, s0, 64 * 4);  // group 0: 16-byte copies
  F2I_SHARED(float, s1, 64 * 4);  // group 1: an 8-byte and a 4-byte copy per thread
  F2I_SHARED(float, sz, 64 * 4);  // group 1: zero-filled 16-byte copies of 6 bytes
  const int t = (int)threadIdx.x;
  float* early = out;
  float* mid0 = out + 256;
  float* mid1 = out + 512;
  float* late = out + 768;
  float* late1 = out + 1024;
  float* zfill = out + 1280;

  f2i_cp_async_16(s0 + 4 * t, src + 4 * t);
  f2i_cp_async_commit();
  f2i_cp_async_8(s1 + 4 * t, src + 256 + 4 * t);
  f2i_cp_async_4(s1 + 4 * t + 2, src + 256 + 4 * t + 2);
  f2i_cp_async_4(s1 + 4 * t + 3, src + 256 + 4 * t + 3);
  f2i_cp_async_16_zfill(sz + 4 * t, src + 4 * t, 6);
  f2i_cp_async_commit();
  for (int j = 0; j < 4; ++j) early[4 * t + j] = s0[4 * t + j];  // before any wait
  f2i_cp_async_wait<1>();                                          // group 0 complete
  for (int j = 0; j < 4; ++j) mid0[4 * t + j] = s0[4 * t + j];
  for (int j = 0; j < 4; ++j) mid1[4 * t + j] = s1[4 * t + j];  // group 1 may be pending
  f2i_cp_async_wait_all();
  f2i_syncthreads();
  const int o = 63 - t;  // another thread's copies: visible after its wait and the barrier
  for (int j = 0; j < 4; ++j) late[4 * t + j] = s0[4 * o + j];
  for (int j = 0; j < 4; ++j) late1[4 * t + j] = s1[4 * o + j];
  for (int j = 0; j < 4; ++j) zfill[4 * t + j] = sz[4 * o + j];
}

// ---------------------------------------------------------------------------------------------
// Tile loop of probe_gemm. Shared memory, two stages: sA[s] 16×16 halves (row-major, 512 bytes:
// one 16-byte chunk per lane), sB[s] 16×8 halves ([k][n], 256 bytes: chunks of lanes 0..15).
F2I_FN void f2i_probe_gemm_load(f2i_half* sA, f2i_half* sB, const f2i_half* A, const f2i_half* B,
                                int rows, int K, int N, int k0, int lane) {
  {  // A: row lane/2, columns k0 + 8·(lane%2) .. +8 (rows past M read as zeros)
    const int row = lane >> 1, col = k0 + 8 * (lane & 1);
    const int left = row < rows ? K - col : 0;
    const int bytes = left >= 8 ? 16 : (left > 0 ? 2 * left : 0);
    const f2i_half* src = bytes > 0 ? A + (size_t)row * K + col : A;
    f2i_cp_async_16_zfill(sA + row * 16 + 8 * (lane & 1), src, bytes);
  }
  if (lane < 16) {  // B: row k0 + lane, the block's 8 columns (K % 8 == 0: whole rows or none)
    const int k = k0 + lane;
    const f2i_half* src = k < K ? B + (size_t)k * N : B;
    f2i_cp_async_16_zfill(sB + lane * 8, src, k < K ? 16 : 0);
  }
}

F2I_KERNEL void F2I_NAME(probe_gemm)(const f2i_half* A, const f2i_half* B, float* D, int M, int N,
                                     int K) {
  F2I_SHARED(f2i_half, sA, 2 * 16 * 16);
  F2I_SHARED(f2i_half, sB, 2 * 16 * 8);
  const int lane = (int)threadIdx.x, g = lane >> 2, t = lane & 3;
  const int n0 = 8 * (int)blockIdx.x, m0 = 16 * (int)blockIdx.y;
  const f2i_half* A_blk = A + (size_t)m0 * K;
  const f2i_half* B_blk = B + n0;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  const int tiles = (K + 15) / 16;
  const int rows = M - m0;
  f2i_probe_gemm_load(sA, sB, A_blk, B_blk, rows, K, N, 0, lane);
  f2i_cp_async_commit();
  for (int kt = 0; kt < tiles; ++kt) {
    const int s = kt & 1;
    if (kt + 1 < tiles)
      f2i_probe_gemm_load(sA + (s ^ 1) * 256, sB + (s ^ 1) * 128, A_blk, B_blk, rows, K,
                          N, 16 * (kt + 1), lane);
    f2i_cp_async_commit();  // possibly empty: keeps "wait<1>" meaning "tile kt has landed"
    f2i_cp_async_wait<1>();
    f2i_syncthreads();  // every lane's chunks of tile kt visible to the whole warp
    f2i_u32 a[4], b[2];
    f2i_ldmatrix_x4(a, sA + s * 256 + (lane & 15) * 16 + 8 * (lane >> 4));
    f2i_ldmatrix_x2_trans(b, sB + s * 128 + (lane & 15) * 8);
    f2i_mma_m16n8k16_f32_f16(acc, a, b, acc);
    f2i_syncthreads();  // stage s is refilled by the next iteration's loads
  }
  for (int j = 0; j < 4; ++j) {
    const int row = m0 + g + ((j & 2) ? 8 : 0), col = n0 + 2 * t + (j & 1);
    if (row < M && col < N) D[(size_t)row * N + col] = acc[j];
  }
}
