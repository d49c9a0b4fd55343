/* Minimal binary PPM (P6) reading and writing for the C tests and examples: 8-bit (maxval 255)
 * and 16-bit (maxval 65535, big-endian in the file, native in memory). */
#ifndef F2I_PPM_H
#define F2I_PPM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ppm_image {
  uint32_t width, height;
  int sixteen_bit;
  void *data; /* width * height * 3 samples, uint8_t or native uint16_t */
} ppm_image;

/* Returns 0 on success; on failure prints why to stderr and returns -1. */
static int ppm_read(const char *path, ppm_image *img) {
  FILE *f = fopen(path, "rb");
  unsigned w = 0, h = 0, maxval = 0;
  size_t n, i;
  if (!f) {
    perror(path);
    return -1;
  }
  if (fscanf(f, "P6 %u %u %u", &w, &h, &maxval) != 3 || fgetc(f) == EOF || w == 0 || h == 0 ||
      w > 65536 || h > 65536 || (maxval != 255 && maxval != 65535)) {
    fprintf(stderr, "%s: not a binary PPM with maxval 255 or 65535\n", path);
    fclose(f);
    return -1;
  }
  img->width = w;
  img->height = h;
  img->sixteen_bit = maxval == 65535;
  n = (size_t)w * h * 3;
  img->data = malloc(n * (img->sixteen_bit ? 2 : 1));
  if (!img->data) {
    fclose(f);
    return -1;
  }
  if (fread(img->data, img->sixteen_bit ? 2 : 1, n, f) != n) {
    fprintf(stderr, "%s: truncated\n", path);
    free(img->data);
    img->data = NULL;
    fclose(f);
    return -1;
  }
  fclose(f);
  if (img->sixteen_bit) {
    uint8_t *b = (uint8_t *)img->data;
    uint16_t *s = (uint16_t *)img->data;
    for (i = 0; i < n; i++) s[i] = (uint16_t)(b[2 * i] << 8 | b[2 * i + 1]);
  }
  return 0;
}

/* Writes `data` (rows of width * 3 samples, `stride` bytes apart). Returns 0 or -1. */
static int ppm_write(const char *path, uint32_t width, uint32_t height, int sixteen_bit,
                     const void *data, size_t stride) {
  FILE *f = fopen(path, "wb");
  uint32_t x, y;
  int ok = 1;
  if (!f) {
    perror(path);
    return -1;
  }
  fprintf(f, "P6\n%u %u\n%u\n", width, height, sixteen_bit ? 65535u : 255u);
  for (y = 0; y < height && ok; y++) {
    const uint8_t *row = (const uint8_t *)data + (size_t)y * stride;
    if (!sixteen_bit) {
      ok = fwrite(row, 1, (size_t)width * 3, f) == (size_t)width * 3;
      continue;
    }
    for (x = 0; x < width * 3 && ok; x++) {
      uint16_t v;
      uint8_t be[2];
      v = ((const uint16_t *)(const void *)row)[x];
      be[0] = (uint8_t)(v >> 8);
      be[1] = (uint8_t)v;
      ok = fwrite(be, 1, 2, f) == 2;
    }
  }
  if (fclose(f) != 0 || !ok) {
    fprintf(stderr, "%s: write failed\n", path);
    return -1;
  }
  return 0;
}

#endif
