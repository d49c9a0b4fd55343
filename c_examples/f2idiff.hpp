// f2idiff.hpp: a small C++17 RAII wrapper over the C interface (header-only).
//
//   f2i::Engine engine("model.f2i");                 // throws f2i::Error on failure
//   auto [w, h] = engine.output_size(in_w, in_h, params);
//   engine.upscale(input, output, params);
#ifndef F2IDIFF_HPP
#define F2IDIFF_HPP

#include "f2idiff.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace f2i {

// A failed call: its status and f2i_last_error()'s message.
class Error : public std::runtime_error {
 public:
  Error(f2i_status status, const std::string& what)
      : std::runtime_error(what + ": " + f2i_status_string(status) + ": " + f2i_last_error()),
        status_(status) {}
  f2i_status status() const { return status_; }

 private:
  f2i_status status_;
};

inline void check(f2i_status s, const char* what) {
  if (s != F2I_OK) throw Error(s, what);
}

inline f2i_upscale_params default_params() {
  f2i_upscale_params p;
  f2i_upscale_params_init(&p);
  return p;
}

// Owns one f2i_engine. Movable, not copyable; use from one thread at a time.
class Engine {
 public:
  explicit Engine(const std::string& model_path, const f2i_engine_options* opts = nullptr) {
    f2i_engine* e = nullptr;
    check(f2i_engine_create(model_path.c_str(), opts, &e), "f2i_engine_create");
    engine_.reset(e);
  }

  std::pair<uint32_t, uint32_t> output_size(uint32_t w, uint32_t h,
                                            const f2i_upscale_params& p = default_params()) const {
    uint32_t ow = 0, oh = 0;
    check(f2i_output_size(engine_.get(), w, h, &p, &ow, &oh), "f2i_output_size");
    return {ow, oh};
  }

  void upscale(const f2i_image& in, const f2i_image& out,
               const f2i_upscale_params& p = default_params()) {
    check(f2i_upscale(engine_.get(), &in, &out, &p), "f2i_upscale");
  }

  f2i_engine* get() const { return engine_.get(); }

 private:
  struct Free {
    void operator()(f2i_engine* e) const { f2i_engine_free(e); }
  };
  std::unique_ptr<f2i_engine, Free> engine_;
};

}  // namespace f2i

#endif
