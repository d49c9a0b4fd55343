/* upscale: super-resolve a PPM image with f2idiff, printing progress.
 *
 *   upscale MODEL.f2i INPUT.ppm OUTPUT.ppm [--tile N] [--threads N]
 *
 * Reads a binary PPM (P6, 8- or 16-bit), upscales it (16-bit stays 16-bit), writes a PPM.
 * Every f2idiff failure is reported with its status and message; exit code 1. */
#include "f2idiff.h"
#include "ppm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int progress(void *user_data, uint32_t done, uint32_t total) {
  const char *name = (const char *)user_data;
  fprintf(stderr, "\r%s: tile %u/%u", name, done, total);
  if (done == total) fputc('\n', stderr);
  return 0; /* non-zero would cancel */
}

static int fail(const char *what, f2i_status s) {
  fprintf(stderr, "upscale: %s: %s (%d): %s\n", what, f2i_status_string(s), (int)s,
          f2i_last_error());
  return 1;
}

int main(int argc, char **argv) {
  f2i_engine_options opts;
  f2i_upscale_params params;
  f2i_engine *engine = NULL;
  f2i_image in, out;
  ppm_image src;
  uint32_t out_w = 0, out_h = 0;
  size_t bytes_per_pixel;
  void *dst;
  f2i_status s;
  int i, rc;

  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL.f2i INPUT.ppm OUTPUT.ppm [--tile N] [--threads N]\n",
            argv[0]);
    return 2;
  }
  f2i_engine_options_init(&opts);
  f2i_upscale_params_init(&params);
  for (i = 4; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tile") == 0) {
      params.tile_size = (uint32_t)strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--threads") == 0) {
      opts.num_threads = (uint32_t)strtoul(argv[i + 1], NULL, 10);
    } else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (ppm_read(argv[2], &src) != 0) return 1;

  printf("f2idiff %s\n", f2i_version_string());
  s = f2i_engine_create(argv[1], &opts, &engine);
  if (s != F2I_OK) {
    free(src.data);
    return fail("loading the model", s);
  }
  params.progress = progress;
  params.user_data = argv[2];
  s = f2i_output_size(engine, src.width, src.height, &params, &out_w, &out_h);
  if (s != F2I_OK) {
    f2i_engine_free(engine);
    free(src.data);
    return fail("output size", s);
  }

  bytes_per_pixel = src.sixteen_bit ? 6 : 3;
  dst = malloc((size_t)out_w * out_h * bytes_per_pixel);
  if (!dst) {
    fprintf(stderr, "upscale: no memory for a %ux%u output\n", out_w, out_h);
    f2i_engine_free(engine);
    free(src.data);
    return 1;
  }
  memset(&in, 0, sizeof in);
  in.format = src.sixteen_bit ? F2I_PIXEL_RGB16 : F2I_PIXEL_RGB8;
  in.width = src.width;
  in.height = src.height;
  in.stride = src.width * bytes_per_pixel;
  in.data = src.data;
  out = in;
  out.width = out_w;
  out.height = out_h;
  out.stride = out_w * bytes_per_pixel;
  out.data = dst;

  s = f2i_upscale(engine, &in, &out, &params);
  rc = s == F2I_OK ? ppm_write(argv[3], out_w, out_h, src.sixteen_bit, dst, out.stride) != 0
                   : fail("upscaling", s);
  if (rc == 0) printf("%s: %ux%u -> %s: %ux%u\n", argv[2], src.width, src.height, argv[3], out_w,
                      out_h);
  free(dst);
  free(src.data);
  f2i_engine_free(engine);
  return rc;
}
