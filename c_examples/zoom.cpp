// zoom: digital zoom with f2idiff from C++: upscale only a rectangle of a PPM image.
//
//   zoom MODEL.f2i INPUT.ppm OUTPUT.ppm X Y WIDTH HEIGHT
//
// Uses the RAII wrapper in f2idiff.hpp; errors arrive as f2i::Error exceptions.
#include "f2idiff.hpp"
#include "ppm.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 8) {
    std::cerr << "usage: " << argv[0] << " MODEL.f2i INPUT.ppm OUTPUT.ppm X Y WIDTH HEIGHT\n";
    return 2;
  }
  ppm_image src{};
  if (ppm_read(argv[2], &src) != 0) return 1;
  std::unique_ptr<void, decltype(&std::free)> src_data(src.data, &std::free);
  if (src.sixteen_bit) {
    std::cerr << "zoom: expects an 8-bit PPM\n";
    return 1;
  }
  try {
    f2i::Engine engine(argv[1]);
    f2i_rect roi{};
    roi.x = static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10));
    roi.y = static_cast<uint32_t>(std::strtoul(argv[5], nullptr, 10));
    roi.width = static_cast<uint32_t>(std::strtoul(argv[6], nullptr, 10));
    roi.height = static_cast<uint32_t>(std::strtoul(argv[7], nullptr, 10));
    f2i_upscale_params params = f2i::default_params();
    params.roi = &roi;

    auto [w, h] = engine.output_size(src.width, src.height, params);
    std::vector<uint8_t> pixels(static_cast<size_t>(w) * h * 3);
    f2i_image in{};
    in.format = F2I_PIXEL_RGB8;
    in.width = src.width;
    in.height = src.height;
    in.stride = static_cast<size_t>(src.width) * 3;
    in.data = src.data;
    f2i_image out{};
    out.format = F2I_PIXEL_RGB8;
    out.width = w;
    out.height = h;
    out.stride = static_cast<size_t>(w) * 3;
    out.data = pixels.data();
    engine.upscale(in, out, params);
    if (ppm_write(argv[3], w, h, 0, pixels.data(), out.stride) != 0) return 1;
    std::cout << "zoomed " << roi.width << "x" << roi.height << " at (" << roi.x << ", " << roi.y
              << ") to " << w << "x" << h << "\n";
  } catch (const f2i::Error& e) {
    std::cerr << "zoom: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
