//! Op → kernel mapping: for each [`crate::backend::Backend`] op, the checks, the launch
//! geometry and the arguments of its kernel in `kernels/<family>.cu`. One file per kernel file.

pub mod attention;
pub mod attention_tc;
pub mod conv;
pub mod conv_tc;
pub mod elementwise;
pub mod frame;
pub mod gemm_tc;
pub mod linear;
pub mod linear_tc;
pub mod lora;
pub mod norm;
pub mod norm_conv;
pub mod resize;

use super::executor::Executor;
use super::memory::CudaArena;
use crate::error::Error;

/// The arena type of a backend on executor `E`.
pub type Arena<E> = CudaArena<<E as Executor>::Buffer>;

/// The error of an op whose kernel is not written yet.
#[allow(dead_code)]
pub(crate) fn not_yet(op: &str) -> Error {
    Error::Unsupported(format!("the CUDA backend has no `{op}` kernel yet"))
}
