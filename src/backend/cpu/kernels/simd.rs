//! Runtime choice of the widest SIMD level for plain-Rust loops.
//!
//! The crate is built for the baseline target (SSE2 on x86-64), so the compiler vectorises
//! elementwise loops 4 floats wide. Loops heavy in arithmetic (exp in softmax, SiLU, GELU) run
//! about twice as fast when the same code is compiled for AVX2. [`vectorized`] compiles its
//! closure a second time inside an AVX2 + FMA function and picks that copy when the CPU has
//! both. No intrinsics are involved: other targets (aarch64 NEON is baseline there) simply run
//! the closure. Both copies compute the same bits (Rust never fuses `a * b + c` on its own, and
//! no float operation is reordered; an explicit `mul_add`, as in `math::exp`, is one
//! instruction in the wide copy and the correctly rounded library call in the baseline one), so
//! only the width changes.
//!
//! The closure must be marked `#[inline(always)]` at the call site (`vectorized(#[inline(always)]
//! || …)`): one the inliner leaves out of line keeps the baseline code generation and the AVX2
//! copy only calls it (measured: DINOv2-L's GELU ran 4 floats wide, 5 % of the stage).
//!
//! [`transcendental`] adds an AVX-512 copy, for the loops bound by arithmetic rather than memory
//! (exp, erf: GELU, GEGLU, SiLU, softmax): on the AVX-512 Xeon of benches/RESULTS.md GEGLU
//! takes 1.2 ns per element 16 wide against 2.0 ns 8 wide; SiLU, bound by its division, gains
//! less (GroupNorm + SiLU stays about 7 % of the Eff U-Net). The streaming loops stay at AVX2:
//! AVX-512 there measured no faster.

/// Runs `f`, compiled for AVX2 when the CPU supports it. `f` should be an `#[inline(always)]`
/// closure over slices whose body inlines (the kernels' math functions are `#[inline(always)]`).
#[inline(always)]
pub(super) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: `avx2,fma` only enable AVX2 and FMA code generation; the CPU supports
            // both (checked just above).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Like [`vectorized`], with an AVX-512 copy picked first where the CPU has AVX-512F: for loops
/// heavy in arithmetic (the same bits again; only the width changes).
#[inline(always)]
pub(super) fn transcendental<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
            // SAFETY: `avx512f,fma` only enable AVX-512F and FMA code generation; the CPU
            // supports both (checked just above).
            return unsafe { avx512(f) };
        }
    }
    vectorized(f)
}

/// `f()` with AVX-512F and FMA code generation enabled for everything inlined into it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f()` with AVX2 and FMA code generation enabled for everything inlined into it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
