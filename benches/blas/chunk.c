/* One thread of cblas_sgemm on conv-shaped products, whole and cut into row / column chunks
 * (benches/RESULTS.md, "CPU matrix products on a system BLAS").
 *   cc -O2 benches/blas/chunk.c -o chunk -ldl && ./chunk /usr/lib/x86_64-linux-gnu/libopenblas.so.0 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static sgemm_t f;
static double run(int m, int n, int k, int rc, int cc, float *a, float *b, float *c) {
  double best = 1e9;
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    for (int r0 = 0; r0 < m; r0 += rc)
      for (int c0 = 0; c0 < n; c0 += cc) {
        int rm = m - r0 < rc ? m - r0 : rc, cn = n - c0 < cc ? n - c0 : cc;
        f(101, 111, 111, rm, cn, k, 1.0f, a + (long)r0 * k, k, b + c0, n, 0.0f, c + (long)r0 * n + c0, n);
      }
    double t = now() - t0;
    if (t < best) best = t;
  }
  return 2.0 * m * n * k / best / 1e9;
}
int main(int argc, char **argv) {
  void *h = dlopen(argv[1], RTLD_NOW);
  f = (sgemm_t)dlsym(h, "cblas_sgemm");
  int shapes[][3] = {{512, 204, 4608}, {512, 4096, 4608}, {1280, 64, 11520}, {128, 4096, 1152}, {4096, 4096, 4096}};
  for (int s = 0; s < 5; s++) {
    int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    float *a = calloc((long)m * k, 4), *b = calloc((long)k * n, 4), *c = calloc((long)m * n, 4);
    for (long i = 0; i < (long)m * k; i++) a[i] = (i % 7) * 0.1f;
    for (long i = 0; i < (long)k * n; i++) b[i] = (i % 5) * 0.1f;
    printf("%5dx%5dx%5d  whole %6.1f  rows128 %6.1f  rows256 %6.1f  cols512 %6.1f GFLOP/s\n", m, n, k,
           run(m, n, k, m, n, a, b, c), run(m, n, k, 128, n, a, b, c), run(m, n, k, 256, n, a, b, c), run(m, n, k, m, 512, a, b, c));
    free(a); free(b); free(c);
  }
}
