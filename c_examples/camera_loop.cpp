// camera_loop: frames that live in GPU memory, as a camera pipeline keeps them. N NV12 frames
// sit in device memory; each is upscaled on its own CUDA stream, alternately by two engines on
// the same model (they share one copy of the weights and run concurrently) whose device arenas
// were reserved up front (no allocation per frame), and every result is checked against the
// same frame upscaled from host memory.
//
//   camera_loop MODEL.f2i [FRAMES] [WIDTH HEIGHT]
//   camera_loop MODEL.f2i --zoom RUNS
//
// --zoom times a x4 digital zoom that makes a 12 MP output: a 1000x750 region of a 4000x3000
// NV12 frame, device memory in and out, against the same zoom with the host round trip a
// host-memory SDK needs (frame to the host, f2i_upscale on host memory, result back).
//
// The CUDA driver API is loaded at run time (libcuda.so.1), so this builds without the CUDA
// toolkit; without a GPU it says "skipped: …" and exits 0 (scripts/gpu-check.sh, where a GPU
// must exist, treats that line as a failure).
#include "f2idiff.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

namespace {

// The few driver entry points used, by their ABI (cuda.h is not needed).
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUstream = void*;
using CUdeviceptr = unsigned long long;

struct Driver {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGet)(CUdevice*, int);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuMemAlloc_v2)(CUdeviceptr*, size_t);
  CUresult (*cuMemFree_v2)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD_v2)(CUdeviceptr, const void*, size_t);
  CUresult (*cuMemcpyDtoH_v2)(void*, CUdeviceptr, size_t);
  CUresult (*cuStreamCreate)(CUstream*, unsigned);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuStreamDestroy_v2)(CUstream);

  // Loads the driver and makes device 0's primary context current; false (with a reason)
  // when there is no usable GPU.
  bool open(std::string* why) {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      *why = "no CUDA driver (libcuda.so.1)";
      return false;
    }
    bool ok = true;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      ok = ok && fn != nullptr;
    };
    sym(cuInit, "cuInit");
    sym(cuDeviceGet, "cuDeviceGet");
    sym(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    sym(cuCtxSetCurrent, "cuCtxSetCurrent");
    sym(cuMemAlloc_v2, "cuMemAlloc_v2");
    sym(cuMemFree_v2, "cuMemFree_v2");
    sym(cuMemcpyHtoD_v2, "cuMemcpyHtoD_v2");
    sym(cuMemcpyDtoH_v2, "cuMemcpyDtoH_v2");
    sym(cuStreamCreate, "cuStreamCreate");
    sym(cuStreamSynchronize, "cuStreamSynchronize");
    sym(cuStreamDestroy_v2, "cuStreamDestroy_v2");
    CUdevice dev = 0;
    CUcontext ctx = nullptr;
    if (!ok || cuInit(0) != 0 || cuDeviceGet(&dev, 0) != 0 ||
        cuDevicePrimaryCtxRetain(&ctx, dev) != 0 || cuCtxSetCurrent(ctx) != 0) {
      *why = "no usable CUDA device";
      return false;
    }
    return true;
  }
};

Driver cu;

void check_cu(CUresult r, const char* what) {
  if (r != 0) throw std::runtime_error(std::string(what) + " failed with CUDA error " +
                                       std::to_string(r));
}

// One NV12 frame: a Y plane and a UV plane of the same pitch, in one buffer.
struct Nv12 {
  uint32_t width, height;
  size_t pitch;
  size_t bytes() const { return pitch * (height + (height + 1) / 2); }
  f2i_image image(void* data) const {
    f2i_image img{};
    img.format = F2I_PIXEL_NV12;
    img.width = width;
    img.height = height;
    img.stride = pitch;
    img.data = data;
    img.uv_data = nullptr;  // right after the Y plane
    return img;
  }
};

// A moving test pattern (what a sensor would deliver), frame `t`.
std::vector<uint8_t> pattern(const Nv12& f, int t) {
  std::vector<uint8_t> px(f.bytes(), 0);
  for (uint32_t y = 0; y < f.height; ++y)
    for (uint32_t x = 0; x < f.width; ++x)
      px[y * f.pitch + x] = static_cast<uint8_t>(16 + (x * 3 + y * 5 + t * 7) % 220);
  for (uint32_t y = 0; y < (f.height + 1) / 2; ++y)
    for (uint32_t x = 0; x < 2 * ((f.width + 1) / 2); ++x)
      px[(f.height + y) * f.pitch + x] = static_cast<uint8_t>(64 + (x * 11 + y * 13 + t) % 128);
  return px;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The x4 zoom of a 1000x750 region of a 4000x3000 NV12 frame into a 4000x3000 NV12 output,
// `runs` times each way after a warm-up; prints the median milliseconds per frame.
int zoom_bench(const char* model, int runs) {
  f2i_engine_options opts;
  f2i_engine_options_init(&opts);
  opts.device = F2I_DEVICE_CUDA;
  f2i::Engine engine(model, &opts);
  const Nv12 in{4000, 3000, 4096}, out{4000, 3000, 4096};
  f2i_rect roi{1500, 1125, 1000, 750};
  f2i_upscale_params params = f2i::default_params();
  params.roi = &roi;
  uint64_t reserved = 0;
  f2i::check(f2i_engine_reserve(engine.get(), &params, roi.width, roi.height, &reserved),
             "f2i_engine_reserve");
  CUstream stream = nullptr;
  check_cu(cu.cuStreamCreate(&stream, 1), "cuStreamCreate");
  CUdeviceptr d_in = 0, d_out = 0;
  check_cu(cu.cuMemAlloc_v2(&d_in, in.bytes()), "cuMemAlloc");
  check_cu(cu.cuMemAlloc_v2(&d_out, out.bytes()), "cuMemAlloc");
  std::vector<uint8_t> frame = pattern(in, 0), h_in(in.bytes()), h_out(out.bytes());
  check_cu(cu.cuMemcpyHtoD_v2(d_in, frame.data(), in.bytes()), "cuMemcpyHtoD");
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a) {
    return std::chrono::duration<double, std::milli>(clock::now() - a).count();
  };
  std::vector<double> device, host;
  for (int r = 0; r <= runs; ++r) {
    f2i_upscale_params p = params;
    p.memory = F2I_MEMORY_CUDA;
    p.stream = stream;
    auto t = clock::now();
    engine.upscale(in.image(reinterpret_cast<void*>(d_in)), out.image(reinterpret_cast<void*>(d_out)), p);
    check_cu(cu.cuStreamSynchronize(stream), "cuStreamSynchronize");
    if (r > 0) device.push_back(ms(t));
    t = clock::now();
    check_cu(cu.cuMemcpyDtoH_v2(h_in.data(), d_in, in.bytes()), "cuMemcpyDtoH");
    engine.upscale(in.image(h_in.data()), out.image(h_out.data()), params);
    check_cu(cu.cuMemcpyHtoD_v2(d_out, h_out.data(), out.bytes()), "cuMemcpyHtoD");
    if (r > 0) host.push_back(ms(t));
  }
  std::cout << "zoom 1000x750 of 4000x3000 NV12 -> 4000x3000 NV12, median of " << runs
            << ": device memory " << median(device) << " ms/frame, host round trip "
            << median(host) << " ms/frame (" << reserved << " device bytes reserved)\n";
  cu.cuMemFree_v2(d_in);
  cu.cuMemFree_v2(d_out);
  cu.cuStreamDestroy_v2(stream);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool zoom = argc == 4 && std::string(argv[2]) == "--zoom";
  if (argc != 2 && argc != 3 && argc != 5 && !zoom) {
    std::cerr << "usage: " << argv[0] << " MODEL.f2i [FRAMES] [WIDTH HEIGHT]\n"
              << "       " << argv[0] << " MODEL.f2i --zoom RUNS\n";
    return 2;
  }
  const int frames = argc >= 3 && !zoom ? std::atoi(argv[2]) : zoom ? std::atoi(argv[3]) : 4;
  const uint32_t w = argc == 5 ? static_cast<uint32_t>(std::atoi(argv[3])) : 64;
  const uint32_t h = argc == 5 ? static_cast<uint32_t>(std::atoi(argv[4])) : 48;
  std::string why;
  if (frames < 1 || w == 0 || h == 0) {
    std::cerr << "camera_loop: FRAMES, WIDTH and HEIGHT must be positive\n";
    return 2;
  }
  if (!cu.open(&why)) {
    std::cout << "camera_loop: skipped: " << why << "\n";
    return 0;
  }
  try {
    if (zoom) return zoom_bench(argv[1], frames);
    f2i_engine_options opts;
    f2i_engine_options_init(&opts);
    opts.device = F2I_DEVICE_CUDA;
    f2i::Engine engines[2] = {f2i::Engine(argv[1], &opts), f2i::Engine(argv[1], &opts)};
    f2i::Engine& engine = engines[0];
    f2i_upscale_params params = f2i::default_params();
    uint64_t reserved = 0, allocations = 0;
    for (f2i::Engine& e : engines) {
      uint64_t bytes = 0, n = 0;
      f2i::check(f2i_engine_reserve(e.get(), &params, w, h, &bytes), "f2i_engine_reserve");
      f2i::check(f2i_engine_device_allocations(e.get(), &n), "allocations");
      reserved += bytes;
      allocations += n;
    }

    auto [ow, oh] = engine.output_size(w, h, params);
    const Nv12 in{w, h, (w + 255) / 256 * 256}, out{ow, oh, (ow + 255) / 256 * 256};
    std::vector<CUdeviceptr> d_in(frames), d_out(frames);
    std::vector<CUstream> streams(frames);
    std::vector<std::vector<uint8_t>> host_in(frames);
    for (int i = 0; i < frames; ++i) {
      host_in[i] = pattern(in, i);
      check_cu(cu.cuMemAlloc_v2(&d_in[i], in.bytes()), "cuMemAlloc");
      check_cu(cu.cuMemAlloc_v2(&d_out[i], out.bytes()), "cuMemAlloc");
      check_cu(cu.cuMemcpyHtoD_v2(d_in[i], host_in[i].data(), in.bytes()), "cuMemcpyHtoD");
      check_cu(cu.cuStreamCreate(&streams[i], 1 /* non-blocking */), "cuStreamCreate");
    }
    // The capture loop: every frame enqueued on its own stream, nothing waited for.
    params.memory = F2I_MEMORY_CUDA;
    for (int i = 0; i < frames; ++i) {
      params.stream = streams[i];
      f2i_image src = in.image(reinterpret_cast<void*>(d_in[i]));
      f2i_image dst = out.image(reinterpret_cast<void*>(d_out[i]));
      engines[i % 2].upscale(src, dst, params);
    }
    uint64_t after = 0;
    for (f2i::Engine& e : engines) {
      uint64_t n = 0;
      f2i::check(f2i_engine_device_allocations(e.get(), &n), "allocations");
      after += n;
    }
    int failures = after == allocations ? 0 : 1;
    if (failures) std::cerr << "camera_loop: the reserved engine allocated per frame\n";
    // Each result against the host path of the same engine.
    f2i_upscale_params host_params = f2i::default_params();
    for (int i = 0; i < frames; ++i) {
      check_cu(cu.cuStreamSynchronize(streams[i]), "cuStreamSynchronize");
      std::vector<uint8_t> got(out.bytes()), want(out.bytes());
      check_cu(cu.cuMemcpyDtoH_v2(got.data(), d_out[i], out.bytes()), "cuMemcpyDtoH");
      engine.upscale(in.image(host_in[i].data()), out.image(want.data()), host_params);
      size_t differ = 0;
      for (uint32_t y = 0; y < out.height + (out.height + 1) / 2; ++y)
        for (uint32_t x = 0; x < out.width; ++x)
          differ += got[y * out.pitch + x] != want[y * out.pitch + x];
      if (differ) {
        std::cerr << "camera_loop: frame " << i << ": " << differ
                  << " bytes differ from the host path\n";
        ++failures;
      }
      cu.cuStreamDestroy_v2(streams[i]);
      cu.cuMemFree_v2(d_in[i]);
      cu.cuMemFree_v2(d_out[i]);
    }
    std::cout << "camera_loop: " << frames << " NV12 frames " << w << "x" << h << " -> " << ow
              << "x" << oh << " on " << frames << " streams by 2 engines, " << reserved
              << " device bytes reserved, " << (after - allocations)
              << " allocations per loop, " << (failures ? "MISMATCH" : "equal to the host path")
              << "\n";
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "camera_loop: " << e.what() << "\n";
    return 1;
  }
}
