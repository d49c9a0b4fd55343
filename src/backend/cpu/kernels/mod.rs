//! CPU compute kernels: f32, row-major, batch 1. Images are `[C, H, W]`, token matrices `[T, D]`.
//!
//! Kernels run on the caller's rayon pool (`rayon::current_num_threads()`; call them inside
//! `ThreadPool::install`) and, in their hot paths, touch only the buffers they are given:
//! memory is planned once per tile size by the model from the `*_scratch_len` functions, which
//! must be evaluated on the same pool as the kernels (they give each thread its own share).
//! GEMM-shaped work goes through [`gemm`]: a system BLIS found at run time ([`blas`]), else the
//! `gemm` crate; both pick their SIMD kernels for the CPU at run time; elementwise loops are plain Rust that the compiler vectorises (compiled twice on
//! x86-64 so AVX2 machines get the wider version, see `simd`).

pub mod activation;
pub mod antialias;
pub mod attention;
pub mod blas;
pub mod conv;
pub mod embed;
pub mod gemm;
pub mod linear;
pub mod norm;
pub mod resize;
pub(super) mod winograd;

mod conv_block;
mod im2col;
mod math;
mod par;
mod simd;

#[cfg(test)]
mod testutil;
