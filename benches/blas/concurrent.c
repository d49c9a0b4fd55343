/* Two threads calling cblas_sgemm at once (as f2idiff's rayon threads do): throughput, and whether
 * every result equals one single-threaded reference call (sub-blocks included). OpenBLAS's
 * serial build fails the second check (benches/RESULTS.md).
 *   cc -O2 benches/blas/concurrent.c -o concurrent -ldl -lpthread && ./concurrent LIBRARY.so */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static sgemm_t f;
static int M = 512, N = 2048, K = 4608, ITER = 6;
static float *A, *B, *REF;
static int bad = 0;
static void *work(void *arg) {
  float *c = malloc(sizeof(float) * M * N);
  for (int i = 0; i < ITER; i++) {
    int m = M - (i % 3) * 17, n = N - (i % 5) * 31; /* varying shapes */
    f(101, 111, 111, m, n, K, 1.0f, A, K, B, N, 0.0f, c, N);
    for (int r = 0; r < m; r++)
      if (memcmp(c + (long)r * N, REF + (long)r * N, sizeof(float) * n) != 0) { bad = 1; break; }
  }
  free(c);
  return arg;
}
int main(int argc, char **argv) {
  void *h = dlopen(argv[1], RTLD_NOW);
  f = (sgemm_t)dlsym(h, "cblas_sgemm");
  void (*setn)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
  if (setn) setn(1);
  A = malloc(sizeof(float) * M * K); B = malloc(sizeof(float) * K * N); REF = malloc(sizeof(float) * M * N);
  for (long i = 0; i < (long)M * K; i++) A[i] = ((i * 7919) % 1000) * 0.001f - 0.5f;
  for (long i = 0; i < (long)K * N; i++) B[i] = ((i * 104729) % 1000) * 0.001f - 0.5f;
  f(101, 111, 111, M, N, K, 1.0f, A, K, B, N, 0.0f, REF, N);
  double flops = 0; for (int i = 0; i < ITER; i++) flops += 2.0 * (M - (i % 3) * 17) * (N - (i % 5) * 31) * K;
  double t0 = now(); work(NULL); double t1 = now() - t0;
  pthread_t th[2];
  t0 = now();
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, work, NULL);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  double t2 = now() - t0;
  printf("%s: 1 thread %.1f GFLOP/s; 2 threads at once %.1f GFLOP/s total; results %s\n", strrchr(argv[1], '/') + 1,
         flops / t1 / 1e9, 2 * flops / t2 / 1e9, bad ? "DIFFER" : "bit-identical (sub-blocks vs whole too)");
}
