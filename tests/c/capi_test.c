/* The C interface from C: every argument check, the status of each failure, cancel, every pixel
 * format, concurrency. Run by tests/capi.rs (under valgrind where it exists):
 *
 *   capi_test MODEL.f2i CORRUPT.f2i INPUT.ppm OUT_DIR
 *
 * Writes OUT_DIR/rgb8.ppm (the default RGB8 upscale, which the Rust side compares with the CLI's
 * PNG). Exits 0 when every check passes; prints each failed check. */
#include "f2idiff.h"
#include "ppm.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                             \
    }                                                                         \
  } while (0)

/* A call that must fail with `want`, leaving a non-empty message. */
#define EXPECT_STATUS(call, want)                                                        \
  do {                                                                                   \
    f2i_status got_ = (call);                                                            \
    if (got_ != (want) || f2i_last_error()[0] == '\0') {                                 \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d; message \"%s\"\n",       \
              __FILE__, __LINE__, #call, (int)got_, f2i_status_string(got_), (int)(want), \
              f2i_last_error());                                                         \
      failures++;                                                                        \
    }                                                                                    \
  } while (0)

#define EXPECT_OK(call)                                                                     \
  do {                                                                                      \
    f2i_status got_ = (call);                                                               \
    if (got_ != F2I_OK || f2i_last_error()[0] != '\0') {                                    \
      fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, (int)got_, \
              f2i_last_error());                                                            \
      failures++;                                                                           \
    }                                                                                       \
  } while (0)

static const char *model_path;
static ppm_image lr;  /* the 8-bit RGB input */
static uint32_t out_w, out_h;
static uint8_t *reference; /* RGB8 output of the default call, tight rows */

static f2i_image image_of(f2i_pixel_format format, uint32_t w, uint32_t h, size_t stride,
                          void *data) {
  f2i_image img;
  memset(&img, 0, sizeof img);
  img.format = format;
  img.width = w;
  img.height = h;
  img.stride = stride;
  img.data = data;
  img.uv_data = NULL;
  return img;
}

static f2i_image rgb8_input(void) {
  return image_of(F2I_PIXEL_RGB8, lr.width, lr.height, (size_t)lr.width * 3, lr.data);
}

/* ---------------------------------------------------------------- version and strings */

static void test_version_and_strings(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", F2I_VERSION_MAJOR, F2I_VERSION_MINOR, F2I_VERSION_PATCH);
  CHECK(strcmp(want, F2I_VERSION_STRING) == 0);
  CHECK(strcmp(f2i_version_string(), F2I_VERSION_STRING) == 0);
  CHECK(strcmp(f2i_status_string(F2I_OK), "success") == 0);
  CHECK(strcmp(f2i_status_string(F2I_ERR_CANCELLED), "cancelled") == 0);
  CHECK(strcmp(f2i_status_string((f2i_status)1234), "unknown status") == 0);
  CHECK(strcmp(f2i_status_string((f2i_status)-1), "unknown status") == 0);
  CHECK(f2i_last_error() != NULL);
}

/* ---------------------------------------------------------------- engine creation */

static void test_create_errors(const char *corrupt_path) {
  f2i_engine *e = (f2i_engine *)&e; /* must be reset to NULL on failure */
  f2i_engine_options o;
  f2i_engine_options_init(NULL);
  f2i_upscale_params_init(NULL);
  f2i_engine_options_init(&o);
  CHECK(o.struct_size == sizeof o && o.device == F2I_DEVICE_AUTO && o.num_threads == 0);

  EXPECT_STATUS(f2i_engine_create(model_path, NULL, NULL), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_engine_create(NULL, NULL, &e), F2I_ERR_INVALID_ARGUMENT);
  CHECK(e == NULL);
  EXPECT_STATUS(f2i_engine_create("", NULL, &e), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_engine_create("/nonexistent/dir/model.f2i", NULL, &e), F2I_ERR_IO);
  CHECK(e == NULL);
  CHECK(strstr(f2i_last_error(), "/nonexistent/dir/model.f2i") != NULL);
  EXPECT_STATUS(f2i_engine_create(corrupt_path, NULL, &e), F2I_ERR_FORMAT);
  CHECK(e == NULL);

  o.struct_size = 0;
  EXPECT_STATUS(f2i_engine_create(model_path, &o, &e), F2I_ERR_INVALID_ARGUMENT);
  f2i_engine_options_init(&o);
  o.device = (f2i_device)9;
  EXPECT_STATUS(f2i_engine_create(model_path, &o, &e), F2I_ERR_INVALID_ARGUMENT);
  o.device = F2I_DEVICE_CPU;
  o.device_index = 3;
  EXPECT_STATUS(f2i_engine_create(model_path, &o, &e), F2I_ERR_INVALID_ARGUMENT);
  f2i_engine_options_init(&o);
  o.device = F2I_DEVICE_CUDA;
  EXPECT_STATUS(f2i_engine_create(model_path, &o, &e), F2I_ERR_UNSUPPORTED);
  CHECK(e == NULL);
  f2i_engine_options_init(&o);
  o.num_threads = F2I_MAX_THREADS + 1;
  EXPECT_STATUS(f2i_engine_create(model_path, &o, &e), F2I_ERR_INVALID_ARGUMENT);
  CHECK(e == NULL && strstr(f2i_last_error(), "F2I_MAX_THREADS") != NULL);
  o.num_threads = 0xFFFFFFFFu;
  EXPECT_STATUS(f2i_engine_create(model_path, &o, &e), F2I_ERR_INVALID_ARGUMENT);
  f2i_engine_free(NULL);
}

/* ---------------------------------------------------------------- argument checks */

static void test_argument_errors(f2i_engine *e) {
  f2i_upscale_params p;
  f2i_image in = rgb8_input(), out;
  uint32_t w = 0, h = 0;
  size_t n = (size_t)out_w * out_h * 3;
  uint8_t *buf = (uint8_t *)malloc(n);
  f2i_rect roi;
  CHECK(buf != NULL);
  out = image_of(F2I_PIXEL_RGB8, out_w, out_h, (size_t)out_w * 3, buf);
  f2i_upscale_params_init(&p);

  /* f2i_output_size */
  EXPECT_STATUS(f2i_output_size(NULL, 8, 8, NULL, &w, &h), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_output_size(e, 8, 8, NULL, NULL, &h), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_output_size(e, 8, 8, NULL, &w, NULL), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_output_size(e, 0, 8, NULL, &w, &h), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_output_size(e, 8, 0, NULL, &w, &h), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_output_size(e, 0xFFFFFFFFu, 8, NULL, &w, &h), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_output_size(e, 8, F2I_MAX_INPUT_SIDE + 1, NULL, &w, &h),
                F2I_ERR_INVALID_ARGUMENT);
  /* Each side allowed, the area not: 65536 x 4097 > F2I_MAX_INPUT_PIXELS. */
  CHECK((uint64_t)F2I_MAX_INPUT_SIDE * (F2I_MAX_INPUT_PIXELS / F2I_MAX_INPUT_SIDE + 1) >
        F2I_MAX_INPUT_PIXELS);
  EXPECT_STATUS(f2i_output_size(e, F2I_MAX_INPUT_SIDE,
                                (uint32_t)(F2I_MAX_INPUT_PIXELS / F2I_MAX_INPUT_SIDE) + 1, NULL, &w,
                                &h),
                F2I_ERR_INVALID_ARGUMENT);
  CHECK(strstr(f2i_last_error(), "pixels") != NULL);
  EXPECT_OK(f2i_output_size(e, F2I_MAX_INPUT_SIDE,
                            (uint32_t)(F2I_MAX_INPUT_PIXELS / F2I_MAX_INPUT_SIDE), NULL, &w, &h));
  EXPECT_OK(f2i_output_size(e, 7, 5, NULL, &w, &h));
  CHECK(w == 28 && h == 20);

  /* f2i_engine_f32_reruns: a CPU engine computes in f32, so never reruns a tile. */
  {
    uint64_t reruns = 99;
    EXPECT_STATUS(f2i_engine_f32_reruns(NULL, &reruns), F2I_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(f2i_engine_f32_reruns(e, NULL), F2I_ERR_INVALID_ARGUMENT);
    EXPECT_OK(f2i_engine_f32_reruns(e, &reruns));
    CHECK(reruns == 0);
  }
  roi.x = 2;
  roi.y = 1;
  roi.width = 3;
  roi.height = 4;
  p.roi = &roi;
  EXPECT_OK(f2i_output_size(e, 7, 5, &p, &w, &h));
  CHECK(w == 12 && h == 16);
  roi.width = 6; /* 2 + 6 > 7 */
  EXPECT_STATUS(f2i_output_size(e, 7, 5, &p, &w, &h), F2I_ERR_INVALID_ARGUMENT);
  roi.width = 0;
  EXPECT_STATUS(f2i_output_size(e, 7, 5, &p, &w, &h), F2I_ERR_INVALID_ARGUMENT);
  roi.x = 0xFFFFFFFFu; /* x + width overflows 32 bits */
  roi.width = 2;
  EXPECT_STATUS(f2i_output_size(e, 7, 5, &p, &w, &h), F2I_ERR_INVALID_ARGUMENT);
  f2i_upscale_params_init(&p);

  /* NULLs */
  EXPECT_STATUS(f2i_upscale(NULL, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_upscale(e, NULL, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(f2i_upscale(e, &in, NULL, NULL), F2I_ERR_INVALID_ARGUMENT);
  in.data = NULL;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in = rgb8_input();
  out.data = NULL;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  out.data = buf;

  /* sizes */
  in.width = 0;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in = rgb8_input();
  in.height = 0;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in = rgb8_input();
  in.width = 0xFFFFFFFFu;
  in.height = 0xFFFFFFFFu;
  in.stride = (size_t)-1;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in = rgb8_input();
  in.width = F2I_MAX_INPUT_SIDE; /* each side allowed, the area over F2I_MAX_INPUT_PIXELS */
  in.height = (uint32_t)(F2I_MAX_INPUT_PIXELS / F2I_MAX_INPUT_SIDE) + 1;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in = rgb8_input();
  in.stride = (size_t)-1; /* rows * stride overflows */
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in = rgb8_input();
  in.stride = (size_t)lr.width * 3 - 1; /* stride too small */
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in = rgb8_input();
  out.stride = (size_t)out_w * 3 - 1;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  out.stride = (size_t)out_w * 3;
  out.width = out_w - 4; /* wrong output size */
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  CHECK(strstr(f2i_last_error(), "f2i_output_size") != NULL);
  out.width = out_w;
  out.height = out_h + 1;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  out.height = out_h;
  /* output overlapping the input */
  out.data = lr.data;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  out.data = buf;

  /* unknown enum values and bad parameters */
  in.format = (f2i_pixel_format)7;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in.format = (f2i_pixel_format)-1;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  in = rgb8_input();
  out.format = (f2i_pixel_format)100;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, NULL), F2I_ERR_INVALID_ARGUMENT);
  out.format = F2I_PIXEL_RGB8;
  p.color_fix = (f2i_color_fix)3;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, &p), F2I_ERR_INVALID_ARGUMENT);
  f2i_upscale_params_init(&p);
  p.struct_size = 8;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, &p), F2I_ERR_INVALID_ARGUMENT);
  f2i_upscale_params_init(&p);
  p.scale = 3;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, &p), F2I_ERR_INVALID_ARGUMENT);
  f2i_upscale_params_init(&p);
  p.lora_scale = (float)NAN;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, &p), F2I_ERR_INVALID_ARGUMENT);
  f2i_upscale_params_init(&p);
  p.tile_size = 36; /* not a multiple of 8 */
  EXPECT_STATUS(f2i_upscale(e, &in, &out, &p), F2I_ERR_INVALID_ARGUMENT);
  p.tile_size = 64;
  p.tile_overlap = 6; /* not a multiple of the scale */
  EXPECT_STATUS(f2i_upscale(e, &in, &out, &p), F2I_ERR_INVALID_ARGUMENT);
  p.tile_overlap = 64; /* not smaller than the tile */
  EXPECT_STATUS(f2i_upscale(e, &in, &out, &p), F2I_ERR_INVALID_ARGUMENT);
  free(buf);
}

/* ---------------------------------------------------------------- the default call */

static void test_default_rgb8(f2i_engine *e, const char *out_dir) {
  /* The output lives inside a larger buffer with padded rows: guards and padding must survive. */
  const size_t pad = 5, guard = 64;
  size_t stride = (size_t)out_w * 3 + pad;
  size_t n = guard + stride * out_h + guard;
  uint8_t *buf = (uint8_t *)malloc(n);
  uint8_t *in_copy = (uint8_t *)malloc((size_t)lr.width * lr.height * 3);
  f2i_image in = rgb8_input(), out;
  char path[4096];
  size_t i;
  uint32_t y;
  CHECK(buf && in_copy);
  memset(buf, 0xAB, n);
  memcpy(in_copy, lr.data, (size_t)lr.width * lr.height * 3);
  out = image_of(F2I_PIXEL_RGB8, out_w, out_h, stride, buf + guard);
  EXPECT_OK(f2i_upscale(e, &in, &out, NULL));
  CHECK(memcmp(in_copy, lr.data, (size_t)lr.width * lr.height * 3) == 0);
  for (i = 0; i < guard; i++) CHECK(buf[i] == 0xAB && buf[n - 1 - i] == 0xAB);
  for (y = 0; y < out_h; y++)
    for (i = 0; i < pad; i++) CHECK(buf[guard + y * stride + out_w * 3 + i] == 0xAB);
  for (y = 0; y < out_h; y++)
    memcpy(reference + (size_t)y * out_w * 3, buf + guard + y * stride, (size_t)out_w * 3);
  snprintf(path, sizeof path, "%s/rgb8.ppm", out_dir);
  CHECK(ppm_write(path, out_w, out_h, 0, reference, (size_t)out_w * 3) == 0);
  free(buf);
  free(in_copy);
}

/* ---------------------------------------------------------------- cancel and re-entrancy */

typedef struct cancel_state {
  uint32_t calls, cancel_at, last_total;
  f2i_engine *engine;
  f2i_status nested, other_thread;
} cancel_state;

static void *upscale_from_thread(void *arg) {
  cancel_state *s = (cancel_state *)arg;
  f2i_image in = rgb8_input();
  uint8_t px[3 * 4 * 4];
  f2i_image out = image_of(F2I_PIXEL_RGB8, 4, 4, 12, px);
  s->other_thread = f2i_upscale(s->engine, &in, &out, NULL);
  return NULL;
}

static int on_progress(void *user_data, uint32_t done, uint32_t total) {
  cancel_state *s = (cancel_state *)user_data;
  s->calls++;
  s->last_total = total;
  if (s->calls == 1 && s->engine) {
    /* The engine is busy: the same thread and another thread are both refused. */
    pthread_t t;
    f2i_image in = rgb8_input();
    uint8_t px[3 * 4 * 4];
    f2i_image out = image_of(F2I_PIXEL_RGB8, 4, 4, 12, px);
    s->nested = f2i_upscale(s->engine, &in, &out, NULL);
    if (pthread_create(&t, NULL, upscale_from_thread, s) == 0) pthread_join(t, NULL);
  }
  return done >= s->cancel_at;
}

static void test_cancel_and_busy(f2i_engine *e) {
  size_t n = (size_t)out_w * out_h * 3, in_n = (size_t)lr.width * lr.height * 3;
  uint8_t *buf = (uint8_t *)malloc(n), *in_copy = (uint8_t *)malloc(in_n);
  f2i_image in = rgb8_input(), out;
  f2i_upscale_params p;
  cancel_state s;
  CHECK(buf && in_copy);
  memcpy(in_copy, lr.data, in_n);
  out = image_of(F2I_PIXEL_RGB8, out_w, out_h, (size_t)out_w * 3, buf);
  f2i_upscale_params_init(&p);
  p.tile_size = 32; /* several tiles, so there is something left to cancel */
  p.tile_overlap = 8;
  p.progress = on_progress;
  p.user_data = &s;
  memset(&s, 0, sizeof s);
  s.cancel_at = 2;
  s.engine = e;
  s.nested = s.other_thread = F2I_OK;
  EXPECT_STATUS(f2i_upscale(e, &in, &out, &p), F2I_ERR_CANCELLED);
  CHECK(s.calls == 2 && s.last_total > 2);
  CHECK(s.nested == F2I_ERR_INVALID_ARGUMENT);
  CHECK(s.other_thread == F2I_ERR_INVALID_ARGUMENT);
  CHECK(memcmp(in_copy, lr.data, in_n) == 0);
  /* The engine is usable again, and a callback that never cancels sees every tile. */
  memset(&s, 0, sizeof s);
  s.cancel_at = 0xFFFFFFFFu;
  EXPECT_OK(f2i_upscale(e, &in, &out, &p));
  CHECK(s.calls == s.last_total && s.calls > 2);
  free(buf);
  free(in_copy);
}

/* ---------------------------------------------------------------- pixel formats */

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n, double *mean) {
  size_t i;
  int worst = 0;
  double sum = 0;
  for (i = 0; i < n; i++) {
    int d = abs((int)a[i] - (int)b[i]);
    worst = d > worst ? d : worst;
    sum += d;
  }
  if (mean) *mean = sum / (double)n;
  return worst;
}

/* BT.709 limited-range NV12 → RGB8 (the header's definition). */
static void nv12_to_rgb(const uint8_t *y, const uint8_t *uv, size_t stride, uint32_t w,
                        uint32_t h, uint8_t *rgb) {
  uint32_t i, j;
  for (j = 0; j < h; j++)
    for (i = 0; i < w; i++) {
      double Y = (y[j * stride + i] - 16.0) / 219.0;
      double cb = (uv[(j / 2) * stride + 2 * (i / 2)] - 128.0) / 224.0;
      double cr = (uv[(j / 2) * stride + 2 * (i / 2) + 1] - 128.0) / 224.0;
      double r = Y + 1.5748 * cr, b = Y + 1.8556 * cb;
      double g = (Y - 0.2126 * r - 0.0722 * b) / 0.7152;
      double c[3];
      int k;
      c[0] = r;
      c[1] = g;
      c[2] = b;
      for (k = 0; k < 3; k++) {
        double v = c[k] < 0 ? 0 : c[k] > 1 ? 1 : c[k];
        rgb[((size_t)j * w + i) * 3 + k] = (uint8_t)floor(v * 255.0 + 0.5);
      }
    }
}

/* RGB8 → BT.709 limited-range NV12 (Y plane and UV plane with strides w), the header's
 * definition: chroma from the mean colour of each 2x2 block. */
static void rgb_to_nv12(const uint8_t *rgb, uint32_t w, uint32_t h, uint8_t *y, uint8_t *uv) {
  uint32_t i, j, ii, jj;
  for (j = 0; j < h; j++)
    for (i = 0; i < w; i++) {
      const uint8_t *p = rgb + ((size_t)j * w + i) * 3;
      double l = (0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2]) / 255.0;
      y[(size_t)j * w + i] = (uint8_t)floor(16.0 + 219.0 * l + 0.5);
    }
  for (j = 0; j < (h + 1) / 2; j++)
    for (i = 0; i < (w + 1) / 2; i++) {
      double c[3] = {0, 0, 0}, n = 0, l, cb, cr;
      for (jj = 2 * j; jj < 2 * j + 2 && jj < h; jj++)
        for (ii = 2 * i; ii < 2 * i + 2 && ii < w; ii++) {
          const uint8_t *p = rgb + ((size_t)jj * w + ii) * 3;
          c[0] += p[0];
          c[1] += p[1];
          c[2] += p[2];
          n += 1;
        }
      c[0] /= n * 255;
      c[1] /= n * 255;
      c[2] /= n * 255;
      l = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
      cb = 128.0 + 224.0 * (c[2] - l) / 1.8556;
      cr = 128.0 + 224.0 * (c[0] - l) / 1.5748;
      uv[(size_t)j * w + 2 * i] = (uint8_t)floor((cb < 0 ? 0 : cb > 255 ? 255 : cb) + 0.5);
      uv[(size_t)j * w + 2 * i + 1] = (uint8_t)floor((cr < 0 ? 0 : cr > 255 ? 255 : cr) + 0.5);
    }
}

static void test_formats(f2i_engine *e) {
  size_t hw = (size_t)out_w * out_h, lhw = (size_t)lr.width * lr.height, i;
  uint8_t *out = (uint8_t *)malloc(hw * 6), *rgb = (uint8_t *)malloc(hw * 3);
  uint8_t *in4 = (uint8_t *)malloc(lhw * 4), *in_nv12 = (uint8_t *)malloc(lhw * 2 + 4);
  uint16_t *in16 = (uint16_t *)malloc(lhw * 6);
  uint8_t *uv_separate = (uint8_t *)malloc(hw);
  uint8_t *rgb_from_nv12 = (uint8_t *)malloc(hw * 3);
  const uint8_t *src = (const uint8_t *)lr.data;
  f2i_image in = rgb8_input(), o;
  double mean;
  int worst;
  CHECK(out && rgb && in4 && in_nv12 && in16 && uv_separate && rgb_from_nv12);

  /* RGB8 → BGR8: the same pixels, blue first. */
  o = image_of(F2I_PIXEL_BGR8, out_w, out_h, (size_t)out_w * 3, out);
  EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
  for (i = 0; i < hw; i++)
    CHECK(out[3 * i] == reference[3 * i + 2] && out[3 * i + 1] == reference[3 * i + 1] &&
          out[3 * i + 2] == reference[3 * i]);

  /* BGRA8 in (alpha a gradient) → RGBA8 out: RGB equal to the RGB8 result, alpha upscaled. */
  for (i = 0; i < lhw; i++) {
    in4[4 * i + 0] = src[3 * i + 2];
    in4[4 * i + 1] = src[3 * i + 1];
    in4[4 * i + 2] = src[3 * i + 0];
    in4[4 * i + 3] = (uint8_t)(i % lr.width * 255 / (lr.width - 1));
  }
  in = image_of(F2I_PIXEL_BGRA8, lr.width, lr.height, (size_t)lr.width * 4, in4);
  o = image_of(F2I_PIXEL_RGBA8, out_w, out_h, (size_t)out_w * 4, out);
  EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
  worst = 0;
  for (i = 0; i < hw; i++) {
    uint32_t x = (uint32_t)(i % out_w);
    CHECK(out[4 * i] == reference[3 * i] && out[4 * i + 1] == reference[3 * i + 1] &&
          out[4 * i + 2] == reference[3 * i + 2]);
    /* A horizontal ramp stays a ramp: alpha at x is near 255 * (x/4 - 3/8 ...) / (w - 1). */
    {
      double want = ((x + 0.5) / 4.0 - 0.5) * 255.0 / (lr.width - 1);
      int d = (int)fabs(out[4 * i + 3] - (want < 0 ? 0 : want > 255 ? 255 : want));
      worst = d > worst ? d : worst;
    }
  }
  CHECK(worst <= 2);
  /* RGB8 in → RGBA8 out: opaque. */
  in = rgb8_input();
  EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
  for (i = 0; i < hw; i++) CHECK(out[4 * i + 3] == 255);

  /* RGB16 in (8-bit values x 257) → RGB16 out: within one 8-bit level of the RGB8 result. */
  for (i = 0; i < lhw * 3; i++) in16[i] = (uint16_t)(src[i] * 257);
  in = image_of(F2I_PIXEL_RGB16, lr.width, lr.height, (size_t)lr.width * 6, in16);
  o = image_of(F2I_PIXEL_RGB16, out_w, out_h, (size_t)out_w * 6, out);
  EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
  worst = 0;
  for (i = 0; i < hw * 3; i++) {
    uint16_t v;
    memcpy(&v, out + 2 * i, 2);
    {
      int d = abs((int)floor(v / 257.0 + 0.5) - reference[i]);
      worst = d > worst ? d : worst;
    }
  }
  CHECK(worst <= 1);

  /* RGB8 in → NV12 out (UV plane elsewhere): the header's BT.709 limited-range codes of the
   * RGB8 result (luma per pixel, chroma from each 2x2 block's mean colour), to within rounding
   * (the library converts the unquantised result). */
  in = rgb8_input();
  o = image_of(F2I_PIXEL_NV12, out_w, out_h, out_w, out);
  o.uv_data = uv_separate;
  EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
  rgb_to_nv12(reference, out_w, out_h, rgb, rgb + hw);
  worst = max_abs_diff(out, rgb, hw, NULL);
  CHECK(worst <= 1);
  worst = max_abs_diff(uv_separate, rgb + hw, hw / 2, NULL);
  CHECK(worst <= 1);
  /* The same with the UV plane right after Y (uv_data NULL): identical bytes. */
  memcpy(rgb_from_nv12, out, hw); /* keep the Y plane */
  o.uv_data = NULL;
  memset(out, 0, hw * 2);
  EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
  CHECK(memcmp(out, rgb_from_nv12, hw) == 0);
  CHECK(memcmp(out + hw, uv_separate, hw / 2) == 0);
  /* A UV plane inside the Y plane is refused. */
  o.uv_data = out + 8;
  EXPECT_STATUS(f2i_upscale(e, &in, &o, NULL), F2I_ERR_INVALID_ARGUMENT);

  /* NV12 in → RGB8 out equals RGB8 in (that NV12 decoded to RGB8 here) → RGB8 out, to within
   * the decoded input's rounding (half a level in, which the random weights amplify; a wrong
   * matrix, range, channel order or chroma siting is off by tens of levels). */
  {
    uint32_t w = lr.width, h = lr.height;
    uint8_t *decoded = (uint8_t *)malloc(lhw * 3);
    CHECK(decoded != NULL);
    rgb_to_nv12(src, w, h, in_nv12, in_nv12 + lhw);
    nv12_to_rgb(in_nv12, in_nv12 + lhw, w, w, h, decoded);
    in = image_of(F2I_PIXEL_RGB8, w, h, (size_t)w * 3, decoded);
    o = image_of(F2I_PIXEL_RGB8, out_w, out_h, (size_t)out_w * 3, rgb);
    EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
    in = image_of(F2I_PIXEL_NV12, w, h, w, in_nv12);
    o.data = out;
    EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
    worst = max_abs_diff(out, rgb, hw * 3, &mean);
    CHECK(worst <= 10 && mean < 1.0);
    if (worst > 10 || mean >= 1.0) fprintf(stderr, "NV12 in: max %d mean %.3f\n", worst, mean);
    free(decoded);
    /* Odd sizes are accepted (chroma rounds up): a crop one pixel smaller. */
    in.width = w - 1;
    in.height = h - 1;
    in.uv_data = in_nv12 + lhw;
    o.width = (w - 1) * 4;
    o.height = (h - 1) * 4;
    o.stride = (size_t)o.width * 3;
    EXPECT_OK(f2i_upscale(e, &in, &o, NULL));
  }
  free(out);
  free(rgb);
  free(in4);
  free(in_nv12);
  free(in16);
  free(uv_separate);
  free(rgb_from_nv12);
}

/* ---------------------------------------------------------------- ROI */

static void test_roi(f2i_engine *e) {
  f2i_rect roi;
  f2i_upscale_params p;
  uint32_t w, h, y;
  uint8_t *out;
  f2i_image in = rgb8_input(), o;
  roi.x = 2;
  roi.y = 3;
  roi.width = 6;
  roi.height = 5;
  f2i_upscale_params_init(&p);
  p.roi = &roi;
  EXPECT_OK(f2i_output_size(e, lr.width, lr.height, &p, &w, &h));
  CHECK(w == 24 && h == 20);
  out = (uint8_t *)malloc((size_t)w * h * 3);
  CHECK(out != NULL);
  o = image_of(F2I_PIXEL_RGB8, w, h, (size_t)w * 3, out);
  EXPECT_OK(f2i_upscale(e, &in, &o, &p));
  /* With the default 16-pixel context the ROI's grown window is the whole (small) input, which
   * runs as one tile: the result is exactly the whole run's crop. */
  for (y = 0; y < h; y++)
    CHECK(memcmp(out + (size_t)y * w * 3,
                 reference + ((size_t)(roi.y * 4 + y) * out_w + roi.x * 4) * 3,
                 (size_t)w * 3) == 0);
  free(out);
}

/* ---------------------------------------------------------------- threads */

typedef struct worker {
  uint8_t *out;
  f2i_status create, run;
} worker;

static void *work(void *arg) {
  worker *wk = (worker *)arg;
  f2i_engine *e = NULL;
  f2i_engine_options o;
  f2i_image in = rgb8_input(), out;
  f2i_engine_options_init(&o);
  wk->create = f2i_engine_create(model_path, &o, &e);
  if (wk->create != F2I_OK) return NULL;
  out = image_of(F2I_PIXEL_RGB8, out_w, out_h, (size_t)out_w * 3, wk->out);
  wk->run = f2i_upscale(e, &in, &out, NULL);
  f2i_engine_free(e);
  return NULL;
}

static void test_threads(void) {
  enum { N = 4 };
  pthread_t t[N];
  worker w[N];
  int i;
  for (i = 0; i < N; i++) {
    w[i].out = (uint8_t *)malloc((size_t)out_w * out_h * 3);
    w[i].create = w[i].run = F2I_ERR_INTERNAL;
    CHECK(w[i].out != NULL);
    CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
  }
  for (i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    CHECK(w[i].create == F2I_OK && w[i].run == F2I_OK);
    CHECK(memcmp(w[i].out, reference, (size_t)out_w * out_h * 3) == 0);
    free(w[i].out);
  }
}

int main(int argc, char **argv) {
  f2i_engine *e = NULL;
  if (argc != 5) {
    fprintf(stderr, "usage: %s MODEL.f2i CORRUPT.f2i INPUT.ppm OUT_DIR\n", argv[0]);
    return 2;
  }
  model_path = argv[1];
  if (ppm_read(argv[3], &lr) != 0 || lr.sixteen_bit) return 2;

  test_version_and_strings();
  test_create_errors(argv[2]);
  EXPECT_OK(f2i_engine_create(model_path, NULL, &e));
  if (!e) return 1;
  EXPECT_OK(f2i_output_size(e, lr.width, lr.height, NULL, &out_w, &out_h));
  CHECK(out_w == lr.width * 4 && out_h == lr.height * 4);
  reference = (uint8_t *)malloc((size_t)out_w * out_h * 3);
  if (!reference) return 1;

  test_argument_errors(e);
  test_default_rgb8(e, argv[4]);
  test_cancel_and_busy(e);
  test_formats(e);
  test_roi(e);
  test_threads();

  f2i_engine_free(e);
  free(reference);
  free(lr.data);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("capi_test: all checks passed\n");
  return 0;
}
