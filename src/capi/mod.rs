//! The C interface (`include/f2idiff.h`, generated from this module by cbindgen in `build.rs`).
//!
//! ```text
//! f2i_engine_create(path) ─ Pack::open + verify ─ Networks (shared per file and LoRA scale)
//! f2i_upscale(engine, input, output, params)
//!   check pointers, sizes, enums ─ pixels → planar f32 ─ pipeline::upscale ─ planar → pixels
//! ```
//! Every export runs inside [`status::boundary`] (panics become `F2I_ERR_INTERNAL`, the
//! thread's last error is set); enum-typed inputs are read as integers ([`types`]).

mod engine;
mod exports;
mod image;
mod params;
mod pixels;
mod reserve;
mod run;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod shared_cuda;
mod stats;
mod status;
pub mod types;

pub use engine::f2i_engine;
pub use exports::*;
pub use reserve::f2i_engine_reserve;
pub use stats::{f2i_engine_device_allocations, f2i_engine_f32_reruns};
