//! OpenBLAS's kernels named from the CPU's features, for the command line.
//!
//! OpenBLAS (Debian's `libopenblas0-pthread`, a DYNAMIC_ARCH build) picks its kernels once, when
//! it is loaded, from the CPU's model number, and on a model it does not know falls back to its
//! oldest x86-64 kernels (Prescott: SSE3). On this project's virtualised AVX-512 Xeon, OpenBLAS
//! 0.3.21 did so: the README command took 5.5-5.8 s on them against 2.3-2.5 s on its AVX-512
//! ones. Its documented override is the environment variable `OPENBLAS_CORETYPE`, read at load.
//! The library cannot set it safely (a host's threads may read the environment at any time) and
//! takes the next BLAS instead of such an OpenBLAS; the CLI can set it, before it starts any
//! thread. A value the user set is kept; an empty one counts as unset, as OpenBLAS reads it.

use f2idiff::backend::cpu::kernels::blas::{
    OPENBLAS_CORETYPE, openblas_coretype, openblas_coretype_named,
};

/// Sets `OPENBLAS_CORETYPE` to the kernels of the CPU's features (`blas::openblas_coretype`)
/// when it is unset or empty. Must run before any other thread exists (first thing in `main`).
pub fn name_kernels_from_cpu_features() {
    if openblas_coretype_named() {
        return;
    }
    if let Some(core) = openblas_coretype() {
        // SAFETY: called first thing in `main`, before this process starts any thread, so no
        // other thread reads or writes the environment meanwhile.
        unsafe { std::env::set_var(OPENBLAS_CORETYPE, core) };
    }
}
