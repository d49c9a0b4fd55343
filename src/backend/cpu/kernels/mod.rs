//! CPU compute kernels: f32, row-major, batch 1. Images are `[C, H, W]`, token matrices `[T, D]`.
//!
//! Kernels run on the caller's rayon pool (`rayon::current_num_threads()`; call them inside
//! `ThreadPool::install`) and, in their hot paths, touch only the buffers they are given:
//! memory is planned once per tile size by the model from the `*_scratch_len` functions, which
//! must be evaluated on the same pool as the kernels (they give each thread its own share).
//! GEMM-shaped work goes through [`gemm`]: a system BLAS found at run time (oneMKL, OpenBLAS or
//! BLIS: [`blas`]), else the `gemm` crate; all pick their SIMD kernels for the CPU at run time.
//! Elementwise loops are plain Rust that the compiler vectorises (compiled again on x86-64 for
//! AVX2, and for AVX-512 where the arithmetic dominates: see `simd`).

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
pub mod transpose;
pub mod widen;
pub(super) mod winograd;

mod conv_block;
mod im2col;
mod math;
mod par;
mod simd;

#[cfg(test)]
mod testutil;
