//! A system BLAS found at run time, for the f32 matrix products: oneMKL (x86-64), OpenBLAS
//! (Debian's `libopenblas0-pthread`) or BLIS (`libblis4-serial`), which pick their kernels for
//! the CPU they run on (AVX-512, AVX2, NEON…). Loaded once, with `dlopen`, the first time a
//! product is computed; where none is installed the `gemm` crate's kernels are used
//! ([`super::gemm`]), so nothing is required at build or run time.
//!
//! Products are called from many threads at once (rayon's, and the host's engines), so only
//! reentrant builds are used, each on one thread per call (the parallelism is ours): oneMKL's
//! single dynamic library `libmkl_rt` switched to its sequential threading layer; OpenBLAS's
//! pthreads build set to one thread (`openblas_set_num_threads(1)`) — not its serial build,
//! whose concurrent calls race (measured: wrong results); and BLIS, reentrant by design. oneMKL
//! and OpenBLAS are skipped when the host process already has them loaded, so that their
//! settings are never changed under the host's feet.
//!
//! oneMKL is tried first on x86-64 CPUs, Intel's and AMD's: it is PyTorch's own GEMM, and the
//! only library that brings DINOv2-L to PyTorch's time on both machines measured
//! (benches/RESULTS.md): on an AVX-512 Xeon DINOv2-L, the U-Net and the VAE encoder run 10–15 %
//! faster on it than on OpenBLAS; on an AVX2 Zen 3 EPYC DINOv2-L runs 11–14 % faster (1.11×
//! PyTorch's time on OpenBLAS, 0.93× on oneMKL), the VAEs are level and the U-Net is 4–10 %
//! slower but still below PyTorch's time (0.84×). Its results are made independent of the
//! operands' alignment (`MKL_CBWR_Set(AUTO | STRICT)`), so that the bits never depend on where
//! the arena happens to lie.
//!
//! `F2IDIFF_BLAS` chooses: unset = the first usable of oneMKL (x86-64), OpenBLAS-pthreads,
//! then BLIS; `off` = never; a file name or path = that library (oneMKL and OpenBLAS are set up
//! as above; any other library must be reentrant and export `cblas_sgemm`). [`describe`] says
//! what was chosen, or why none was.
//!
//! Determinism: a product is cut into column (or row) chunks whose sizes depend on its shape
//! only, never on the pool, and each chunk is one call; serial and parallel products make the
//! same calls, so the bits never depend on the thread count.

use super::par::balanced_block;
use std::ffi::{CStr, c_char, c_int};
use std::sync::OnceLock;

/// `cblas_sgemm(layout, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`.
type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

/// Columns of C per call when a product is cut by columns.
const COL_CHUNK: usize = 512;
/// Rows of C per call when a narrow product (one column chunk) is cut by rows.
const ROW_CHUNK: usize = 256;
/// Rows of C per call at most in a whole op's product ([`Cut::Whole`]).
const WHOLE_ROWS: usize = 512;
/// A whole op's product is cut in at least this many chunks where it allows, so that a small
/// one does not run on one thread (the U-Net's 256-token linear maps: 256×896 · 896×896).
const SMALL_PARTS: usize = 4;
/// …each at least this many rows or columns wide.
const SMALL_MIN: usize = 64;

/// The loaded library.
pub struct Blas {
    sgemm: Sgemm,
    name: String,
    _lib: libloading::Library,
}

/// What [`get`] found: the library, or why there is none; and the installed libraries passed
/// over before it, with the reason.
struct Choice {
    blas: Option<Blas>,
    why: String,
    passed_over: Vec<String>,
}

/// oneMKL's `MKL_THREADING_SEQUENTIAL` (`mkl_service.h`).
const MKL_THREADING_SEQUENTIAL: c_int = 1;
/// oneMKL's `MKL_CBWR_AUTO | MKL_CBWR_STRICT`: the code path chosen for this CPU, with results
/// that do not depend on the operands' alignment.
const MKL_CBWR_AUTO_STRICT: c_int = 2 | 0x10000;

/// Libraries tried when `F2IDIFF_BLAS` is unset, fastest first (on the Xeon of
/// benches/RESULTS.md one thread of oneMKL 2026.2 gives ~160 GFLOP/s on DINOv2-L's products,
/// OpenBLAS 0.3.21 ~145, BLIS 0.9 ~100, the `gemm` crate ~55): the sonames, then Debian's
/// per-flavour directories.
fn candidates() -> Vec<String> {
    let mut c = Vec::new();
    if cfg!(target_arch = "x86_64") {
        c.extend(["libmkl_rt.so.3".to_string(), "libmkl_rt.so.2".to_string()]);
    }
    c.push("libopenblas.so.0".to_string());
    let triple = if cfg!(target_arch = "x86_64") {
        Some("x86_64-linux-gnu")
    } else if cfg!(target_arch = "aarch64") {
        Some("aarch64-linux-gnu")
    } else {
        None
    };
    if let Some(t) = triple {
        c.push(format!("/usr/lib/{t}/openblas-pthread/libopenblas.so.0"));
    }
    c.push("libblis.so.4".into());
    if let Some(t) = triple {
        for flavour in ["serial", "pthread", "openmp"] {
            c.push(format!("/usr/lib/{t}/blis-{flavour}/libblis.so.4"));
        }
    }
    c
}

/// The loader's message for `e` (libloading's own says only "dlopen failed").
fn loader_error(e: libloading::Error) -> String {
    match std::error::Error::source(&e) {
        Some(s) => s.to_string(),
        None => e.to_string(),
    }
}

/// Why a library was not used.
enum Refusal {
    /// Not on the loader path (the loader's message): the common case, not worth reporting.
    Absent(String),
    /// An OpenBLAS running kernels older than this CPU's. One OpenBLAS answers to two of the
    /// [`candidates`], so the second is not tried.
    OldKernels(String),
    /// Anything else: the host's copy, the wrong build, a setting refused, a failed self-test.
    Unusable(String),
}

impl From<String> for Refusal {
    fn from(why: String) -> Self {
        Refusal::Unusable(why)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Absent(why) | Refusal::OldKernels(why) | Refusal::Unusable(why) => {
                f.write_str(why)
            }
        }
    }
}

/// True when `name` is already loaded in this process (by the host).
#[cfg(unix)]
fn already_loaded(name: &str) -> bool {
    // SAFETY: RTLD_NOLOAD never loads anything (no initialiser runs); it only looks the name
    // up among the loaded objects, and the handle is closed again at once.
    unsafe { libloading::os::unix::Library::open(Some(name), libc::RTLD_NOW | libc::RTLD_NOLOAD) }
        .is_ok()
}

#[cfg(not(unix))]
fn already_loaded(_: &str) -> bool {
    false
}

fn load(name: &str, explicit: bool) -> Result<Blas, Refusal> {
    let configured = name.contains("openblas") || name.contains("mkl_rt");
    if configured && !explicit && already_loaded(name) {
        return Err(format!("{name} is already loaded by the host: not used").into());
    }
    // SAFETY: loading a shared library runs its initialisers; the names are oneMKL's,
    // OpenBLAS's and BLIS's, or the one the user chose with F2IDIFF_BLAS, which must be a BLAS.
    let lib = unsafe { libloading::Library::new(name) }.map_err(|e| {
        let why = loader_error(e);
        // dlopen says only in words that the file is not there.
        if why.contains("No such file") || why.contains("cannot open") {
            Refusal::Absent(why)
        } else {
            Refusal::Unusable(why)
        }
    })?;
    // SAFETY: `cblas_sgemm` has this signature in every CBLAS (`cblas.h`); the pointer stays
    // valid while `lib` is loaded, and `Blas` keeps `lib`.
    let sgemm = unsafe { lib.get::<Sgemm>(b"cblas_sgemm\0") }
        .map(|s| *s)
        .map_err(|e| format!("{name}: no cblas_sgemm ({})", loader_error(e)))?;
    let mut label = name.to_string();
    // SAFETY: OpenBLAS's `int openblas_get_parallel(void)` and `void
    // openblas_set_num_threads(int)`; the pointers are used while `lib` is loaded.
    let get_parallel =
        unsafe { lib.get::<unsafe extern "C" fn() -> c_int>(b"openblas_get_parallel\0") };
    if let Ok(get_parallel) = get_parallel {
        // SAFETY: no arguments, no preconditions.
        let parallel = unsafe { get_parallel() };
        if parallel != 1 {
            return Err(format!(
                "{name} is OpenBLAS's {} build, not its pthreads build: concurrent calls into it \
                 are not safe",
                if parallel == 0 { "serial" } else { "OpenMP" }
            )
            .into());
        }
        // SAFETY: as above.
        let set_threads =
            unsafe { lib.get::<unsafe extern "C" fn(c_int)>(b"openblas_set_num_threads\0") }
                .map_err(|e| format!("{name}: {}", loader_error(e)))?;
        // SAFETY: one thread per call; the library was loaded by us (not the host's).
        unsafe { set_threads(1) };
        // SAFETY: OpenBLAS's `char *openblas_get_corename(void)`; the pointer is used while
        // `lib` is loaded.
        let corename = unsafe {
            lib.get::<unsafe extern "C" fn() -> *const c_char>(b"openblas_get_corename\0")
        };
        // SAFETY: no arguments; it returns a static NUL-terminated string (the kernels chosen at
        // load), checked for null before it is read.
        let core = corename
            .ok()
            .map(|f| unsafe { f() })
            .filter(|p| !p.is_null());
        if let Some(core) = core {
            // SAFETY: non-null, NUL-terminated and static, as above.
            let core = unsafe { CStr::from_ptr(core) }.to_string_lossy();
            // OpenBLAS picks its kernels from the CPU's model, and on a model it does not know
            // falls back to its oldest x86-64 ones (Prescott: SSE3): 3.5-4.8x slower on the Eff
            // U-Net and DINOv2-L on this project's AVX-512 Xeon than its AVX-512 ones. Unless it
            // was asked for by name, such an OpenBLAS gives way to the next library (BLIS).
            if !explicit && pre_avx2_kernels(&core) && openblas_coretype().is_some() {
                return Err(Refusal::OldKernels(format!(
                    "{name}: its {core} kernels on an AVX2 CPU (set {OPENBLAS_CORETYPE}, e.g. \
                     SkylakeX or Haswell)"
                )));
            }
            label = format!("{name} ({core} kernels)");
        }
    }
    // SAFETY: oneMKL's `int MKL_Set_Threading_Layer(int)` and `int MKL_CBWR_Set(int)`
    // (`mkl_service.h`); the pointers are used while `lib` is loaded.
    let set_layer =
        unsafe { lib.get::<unsafe extern "C" fn(c_int) -> c_int>(b"MKL_Set_Threading_Layer\0") };
    if let Ok(set_layer) = set_layer {
        // SAFETY: called before any computation in this library, as oneMKL requires; it returns
        // the layer in force.
        let layer = unsafe { set_layer(MKL_THREADING_SEQUENTIAL) };
        if layer != MKL_THREADING_SEQUENTIAL {
            return Err(format!(
                "{name}: oneMKL kept threading layer {layer}, not the sequential one: concurrent \
                 calls would oversubscribe the cores"
            )
            .into());
        }
        // SAFETY: as above.
        let cbwr = unsafe { lib.get::<unsafe extern "C" fn(c_int) -> c_int>(b"MKL_CBWR_Set\0") }
            .map_err(|e| format!("{name}: {}", loader_error(e)))?;
        // SAFETY: a settings call with a documented constant, before any computation.
        let status = unsafe { cbwr(MKL_CBWR_AUTO_STRICT) };
        if status != 0 {
            return Err(format!(
                "{name}: oneMKL refused alignment-independent results (MKL_CBWR_Set: {status})"
            )
            .into());
        }
    }
    let blas = Blas {
        sgemm,
        name: label,
        _lib: lib,
    };
    blas.self_test()?;
    Ok(blas)
}

/// The variable OpenBLAS reads at load to choose its kernels instead of the CPU's model.
pub const OPENBLAS_CORETYPE: &str = "OPENBLAS_CORETYPE";

/// Whether the user named OpenBLAS's kernels: `OPENBLAS_CORETYPE` set and not empty. An empty
/// value names no kernel family, and OpenBLAS then picks by CPU model as if it were unset.
pub fn openblas_coretype_named() -> bool {
    std::env::var_os(OPENBLAS_CORETYPE).is_some_and(|v| !v.is_empty())
}

/// OpenBLAS's x86 kernel families older than Haswell's (no AVX2 / FMA): its fallback for a CPU
/// model it does not know is Prescott.
fn pre_avx2_kernels(core: &str) -> bool {
    const OLD: [&str; 15] = [
        "katmai",
        "coppermine",
        "northwood",
        "prescott",
        "banias",
        "atom",
        "core2",
        "penryn",
        "dunnington",
        "nehalem",
        "opteron",
        "opteron(sse3)",
        "barcelona",
        "nano",
        "bobcat",
    ];
    OLD.contains(&core.trim().to_ascii_lowercase().as_str())
}

/// The OpenBLAS kernel family that suits this CPU's features, as a value for
/// `OPENBLAS_CORETYPE`: `SkylakeX` with AVX-512 (F, CD, BW, DQ, VL: OpenBLAS's f32 kernels for
/// every AVX-512 Intel CPU since Skylake-SP), `Haswell` with AVX2 and FMA, `None` otherwise.
/// OpenBLAS reads the variable once, when it is loaded; a program may set it before it starts any
/// thread (the CLI does, `src/bin/f2idiff/openblas.rs`), which a library cannot do safely.
pub fn openblas_coretype() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx512 = has!("avx512f") && has!("avx512cd") && has!("avx512bw");
        if avx512 && has!("avx512dq") && has!("avx512vl") {
            return Some("SkylakeX");
        }
        if has!("avx2") && has!("fma") {
            return Some("Haswell");
        }
    }
    None
}

fn choose() -> Choice {
    let requested = std::env::var("F2IDIFF_BLAS").ok();
    match requested.as_deref().map(str::trim) {
        Some("off" | "0" | "none" | "") => Choice {
            blas: None,
            why: "off (F2IDIFF_BLAS)".into(),
            passed_over: Vec::new(),
        },
        Some(name) => match load(name, true) {
            Ok(b) => Choice {
                why: format!("{name} (F2IDIFF_BLAS)"),
                blas: Some(b),
                passed_over: Vec::new(),
            },
            Err(e) => Choice {
                blas: None,
                why: format!("F2IDIFF_BLAS={name} could not be used: {e}"),
                passed_over: Vec::new(),
            },
        },
        None => {
            let mut refused: Vec<String> = Vec::new();
            let mut old_openblas = false;
            for name in candidates() {
                if old_openblas && name.contains("openblas") {
                    continue;
                }
                match load(&name, false) {
                    Ok(b) => {
                        return Choice {
                            why: name,
                            blas: Some(b),
                            passed_over: refused,
                        };
                    }
                    Err(Refusal::Absent(_)) => {}
                    Err(Refusal::OldKernels(why)) => {
                        old_openblas = true;
                        refused.push(why)
                    }
                    Err(Refusal::Unusable(why)) => refused.push(why),
                }
            }
            Choice {
                blas: None,
                why: if refused.is_empty() {
                    "no oneMKL, OpenBLAS (pthreads) or BLIS installed".into()
                } else {
                    refused.join("; ")
                },
                passed_over: Vec::new(),
            }
        }
    }
}

fn choice() -> &'static Choice {
    static CHOICE: OnceLock<Choice> = OnceLock::new();
    CHOICE.get_or_init(choose)
}

/// The library the products use, if any.
pub fn get() -> Option<&'static Blas> {
    choice().blas.as_ref()
}

/// For benchmarks and messages: the library used, or the `gemm` crate and why.
pub fn describe() -> String {
    match get() {
        Some(b) if choice().passed_over.is_empty() => format!("BLAS {}", b.name),
        Some(b) => format!("BLAS {} ({})", b.name, choice().passed_over.join("; ")),
        None => format!("gemm crate: {}", choice().why),
    }
}

/// An operand's layout for CBLAS (row-major): `(transpose, leading dimension)`, or `None` when
/// its strides are not a CBLAS layout. `rows × cols` with strides `(rs, cs)`.
fn layout(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<(c_int, c_int)> {
    let fits = |v: usize| c_int::try_from(v).ok();
    if cs == 1 && (rs >= cols || rows <= 1) {
        Some((NO_TRANS, fits(rs.max(cols).max(1))?))
    } else if rs == 1 && (cs >= rows || cols <= 1) {
        Some((TRANS, fits(cs.max(rows).max(1))?))
    } else {
        None
    }
}

/// A checked product: C\[m×n\] = alpha·A·B (+ C), row-major C with row stride `ldc`.
pub(super) struct Call {
    m: usize,
    n: usize,
    k: usize,
    ta: c_int,
    lda: c_int,
    tb: c_int,
    ldb: c_int,
    ldc: c_int,
    cut: Cut,
}

/// How a product is cut into calls ([`Call::chunks`]): a function of its shape and of the
/// caller's kind, never of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// A whole op, always computed through the same entry whatever the pool (a linear map, a
    /// 1×1 convolution): a grid of blocks of a size oneMKL runs fastest, and at least
    /// [`SMALL_PARTS`] where the product allows.
    Whole,
    /// A block of a larger op, computed serially on a thread of its own or split over the pool
    /// depending on the pool (a convolution's block): cut along one side, and small products in
    /// 2 or 4, so that they fill the pool (serial and parallel calls must cut alike).
    Block,
    /// Always serial (attention's per-thread products): as [`Cut::Block`] without the split of
    /// small products, so a product under two chunks either way is one call.
    Serial,
}

impl Call {
    /// The same call, cut as `cut` says.
    pub(super) fn with_cut(self, cut: Cut) -> Call {
        Call { cut, ..self }
    }

    /// The call for these shapes and strides, or `None` when CBLAS cannot take them (a
    /// strided layout, or a size over `int`); the caller then uses the `gemm` crate.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        m: usize,
        n: usize,
        k: usize,
        (a_rs, a_cs): (usize, usize),
        (b_rs, b_cs): (usize, usize),
        c_rs: usize,
    ) -> Option<Call> {
        let (ta, lda) = layout(m, k, a_rs, a_cs)?;
        let (tb, ldb) = layout(k, n, b_rs, b_cs)?;
        let ldc = c_int::try_from(c_rs.max(n).max(1)).ok()?;
        for d in [m, n, k] {
            c_int::try_from(d).ok()?;
        }
        Some(Call {
            m,
            n,
            k,
            ta,
            lda,
            tb,
            ldb,
            ldc,
            cut: Cut::Block,
        })
    }

    /// The chunks this product is computed in: `(row0, rows, col0, cols)`, from the shape only.
    fn chunks(&self) -> Vec<(usize, usize, usize, usize)> {
        let (m, n) = (self.m, self.n);
        // `len` cut in `parts` chunks whose lengths differ by at most one.
        let cut = |len: usize, parts: usize| -> Vec<(usize, usize)> {
            let parts = parts.clamp(1, len.max(1));
            let base = len / parts;
            let extra = len % parts;
            let mut at = 0;
            (0..parts)
                .map(|i| {
                    let l = base + usize::from(i < extra);
                    let r = (at, l);
                    at += l;
                    r
                })
                .collect()
        };
        // Chunks of at most `chunk`; more than one are made a count that common pools share
        // out evenly (7 chunks on 2 threads would leave one idle for the last).
        let parts = |len: usize, chunk: usize| match len.div_ceil(chunk) {
            0 | 1 => 1,
            _ => len.div_ceil(balanced_block(len, chunk, chunk / 2)),
        };
        // A small whole op: up to SMALL_PARTS chunks, none under SMALL_MIN.
        let small = |len: usize| SMALL_PARTS.min(len / SMALL_MIN).max(1);
        let grid = |rows: usize, cols: usize| {
            let col_cuts = cut(n, cols);
            cut(m, rows)
                .into_iter()
                .flat_map(|(r0, rm)| col_cuts.iter().map(move |&(c0, cn)| (r0, rm, c0, cn)))
                .collect()
        };
        if self.cut != Cut::Whole {
            // A wide product by columns, else by rows; a small block in 2 or 4 by rows.
            if n >= 2 * COL_CHUNK {
                return grid(1, parts(n, COL_CHUNK));
            }
            let rows = parts(m, ROW_CHUNK);
            return match (self.cut, rows, small(m)) {
                (Cut::Block, 1, 4..) => grid(4, 1),
                (Cut::Block, 1, 2..) => grid(2, 1),
                _ => grid(rows, 1),
            };
        }
        // A whole op: blocks of at most WHOLE_ROWS × COL_CHUNK (oneMKL slows down by a
        // quarter on taller or wider ones: 4096×448 or 256×3584 blocks, k 224 / 448, Zen 2),
        // and at least SMALL_PARTS of them where the product allows.
        // Balanced along the rows where there are several (so the grid's count is too).
        let rows = parts(m, WHOLE_ROWS);
        let cols = if rows > 1 {
            n.div_ceil(COL_CHUNK)
        } else {
            parts(n, COL_CHUNK)
        };
        if rows * cols >= SMALL_PARTS {
            grid(rows, cols)
        } else if n >= m {
            // Each chunk reads all of A (the smaller operand here) and its own columns of B.
            grid(1, small(n))
        } else {
            grid(small(m), 1)
        }
    }
}

/// A bias added to C after the product (`C = A·B (+ C) + bias`): one value per row of C (a
/// convolution's channels) or per column (a linear map's outputs).
#[derive(Clone, Copy)]
pub enum Bias<'a> {
    Rows(&'a [f32]),
    Cols(&'a [f32]),
}

impl Bias<'_> {
    /// Adds the bias to `row`, row `r` of C from column `c0` on.
    pub(super) fn add_to(self, row: &mut [f32], r: usize, c0: usize) {
        match self {
            Bias::Rows(b) => {
                let v = b[r];
                row.iter_mut().for_each(|x| *x += v);
            }
            Bias::Cols(b) => row.iter_mut().zip(&b[c0..]).for_each(|(x, &v)| *x += v),
        }
    }
}

/// C as shared by the chunk calls, which write disjoint blocks of it.
#[derive(Clone, Copy)]
struct Dst(*mut f32);
// SAFETY: every chunk writes only its own rows × columns of C (disjoint blocks), and `run`
// holds the unique borrow of C until every chunk has finished.
unsafe impl Send for Dst {}
// SAFETY: as above.
unsafe impl Sync for Dst {}

impl Dst {
    /// The element `off` past the start (a method, so closures capture the whole `Dst`).
    ///
    /// # Safety
    /// `off` is inside C.
    unsafe fn at(self, off: usize) -> *mut f32 {
        // SAFETY: per the contract.
        unsafe { self.0.add(off) }
    }
}

impl Blas {
    /// Computes `call` on `a`, `b` into `c` (whose sizes the caller checked against the call's
    /// shapes and strides), on the rayon pool when `parallel`.
    ///
    /// # Safety
    /// `a`, `b` and `c` cover every element the call's shapes and leading dimensions address
    /// (`gemm::Operands::new` checks this), and `c` aliases neither `a` nor `b`.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn run(
        &self,
        call: &Call,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        alpha: f32,
        accumulate: bool,
        parallel: bool,
        bias: Option<Bias>,
    ) {
        if call.m == 0 || call.n == 0 {
            return;
        }
        let beta = if accumulate { 1.0 } else { 0.0 };
        let dst = Dst(c.as_mut_ptr());
        let (lda, ldb, ldc) = (call.lda as usize, call.ldb as usize, call.ldc as usize);
        let one = |&(r0, rm, c0, cn): &(usize, usize, usize, usize)| {
            // A's rows r0.., B's columns c0..: offsets by the layout of each.
            let a_off = if call.ta == NO_TRANS { r0 * lda } else { r0 };
            let b_off = if call.tb == NO_TRANS { c0 } else { c0 * ldb };
            // SAFETY: the offsets address the sub-blocks of A, B and C that this chunk reads
            // and writes, inside the slices (checked by the caller); chunks write disjoint
            // blocks of C; CBLAS reads C only when beta is 1.
            unsafe {
                (self.sgemm)(
                    ROW_MAJOR,
                    call.ta,
                    call.tb,
                    rm as c_int,
                    cn as c_int,
                    call.k as c_int,
                    alpha,
                    a.as_ptr().add(if call.k == 0 { 0 } else { a_off }),
                    call.lda,
                    b.as_ptr().add(if call.k == 0 { 0 } else { b_off }),
                    call.ldb,
                    beta,
                    dst.at(r0 * ldc + c0),
                    call.ldc,
                )
            }
            // The bias while the block is still in cache.
            if let Some(bias) = bias {
                for r in r0..r0 + rm {
                    // SAFETY: row r, columns c0..c0 + cn of C: this chunk's own block, inside
                    // C (checked by the caller); no other reference to it is live.
                    let row = unsafe { std::slice::from_raw_parts_mut(dst.at(r * ldc + c0), cn) };
                    bias.add_to(row, r, c0);
                }
            }
        };
        let chunks = call.chunks();
        if parallel && chunks.len() > 1 {
            use rayon::prelude::*;
            chunks.par_iter().for_each(one);
        } else {
            chunks.iter().for_each(one);
        }
    }

    /// A 3×2×2 product with known result: a library that loads but computes something else
    /// (a stub, a wrong ABI) is refused instead of used.
    fn self_test(&self) -> Result<(), String> {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 3×2
        let b = [1.0f32, 0.5, -1.0, 2.0]; // 2×2
        let mut c = [f32::NAN; 6];
        let call = Call::new(3, 2, 2, (2, 1), (2, 1), 2).expect("valid");
        // SAFETY: the slices hold exactly the 3×2, 2×2 and 3×2 row-major matrices.
        unsafe { self.run(&call, &a, &b, &mut c, 1.0, false, false, None) };
        let want = [-1.0f32, 4.5, -1.0, 9.5, -1.0, 14.5];
        if c == want {
            Ok(())
        } else {
            Err(format!(
                "{}: cblas_sgemm gave {c:?}, want {want:?}",
                self.name
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scripts/test.sh` installs BLIS and sets `F2IDIFF_REQUIRE_BLAS=1`, so that CI fails
    /// when the library is there but not used (and runs the kernel tests again with
    /// `F2IDIFF_BLAS=off` for the `gemm` crate's path).
    #[test]
    fn the_library_is_used_where_required() {
        eprintln!("{}", describe());
        if std::env::var_os("F2IDIFF_REQUIRE_BLAS").is_some() {
            assert!(get().is_some(), "{}", describe());
        }
        if std::env::var("F2IDIFF_BLAS").is_ok_and(|v| v == "off") {
            assert!(get().is_none());
        }
    }

    /// OpenBLAS's fallback kernels for an unknown CPU model are recognised; its AVX2 and
    /// AVX-512 ones, and ARM's, are not refused.
    #[test]
    fn pre_avx2_openblas_kernels_are_recognised() {
        for core in [
            "Prescott",
            "Core2",
            "Nehalem",
            "Opteron(SSE3)",
            " prescott ",
        ] {
            assert!(pre_avx2_kernels(core), "{core}");
        }
        for core in [
            "Haswell",
            "SkylakeX",
            "Cooperlake",
            "SapphireRapids",
            "Zen",
            "ARMV8",
        ] {
            assert!(!pre_avx2_kernels(core), "{core}");
        }
    }

    /// The bits do not depend on where the operands lie (the arena's offsets change with the
    /// plan). oneMKL is told so (`MKL_CBWR_Set`); this shape gave the same bits without it too.
    #[test]
    fn results_do_not_depend_on_the_operands_alignment() {
        use super::super::gemm::matmul;
        use super::super::testutil::Rng;
        let (m, n, k) = (67, 1100, 300);
        let mut rng = Rng::new(31);
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        let product = |shift: usize| {
            let mut a2 = vec![0f32; shift];
            a2.extend_from_slice(&a);
            let mut b2 = vec![0f32; 3 - shift];
            b2.extend_from_slice(&b);
            let mut c = vec![0f32; m * n + shift];
            let (a2, b2) = (&a2[shift..], &b2[3 - shift..]);
            matmul(m, n, k, a2, k, 1, b2, n, 1, &mut c[shift..], n, false);
            c.split_off(shift)
        };
        let first = product(0);
        for shift in 1..=3 {
            assert!(product(shift) == first, "{}: shift {shift}", describe());
        }
    }

    #[test]
    fn layouts_cblas_can_take_and_those_it_cannot() {
        assert_eq!(layout(4, 3, 3, 1), Some((NO_TRANS, 3)));
        assert_eq!(layout(4, 3, 5, 1), Some((NO_TRANS, 5)));
        assert_eq!(layout(4, 3, 1, 4), Some((TRANS, 4)));
        assert_eq!(layout(1, 3, 0, 1), Some((NO_TRANS, 3)));
        assert_eq!(layout(4, 3, 2, 1), None, "rows overlap");
        assert_eq!(layout(4, 3, 6, 2), None, "general strides");
        assert_eq!(layout(4, 3, (1 << 31) + 1, 1), None, "over int");
    }

    #[test]
    fn chunks_cover_c_once_and_depend_on_the_shape_only() {
        let shapes = [
            (1, 1),
            (5, 3000),
            (1000, 64),
            (300, 1023),
            (7, 1024),
            (256, 896),
            (4096, 1792),
        ];
        let cuts = [Cut::Block, Cut::Whole, Cut::Serial];
        for ((m, n), cut) in shapes.into_iter().flat_map(|s| cuts.map(|c| (s, c))) {
            let call = Call::new(m, n, 8, (8, 1), (n, 1), n).unwrap().with_cut(cut);
            let whole_op = cut == Cut::Whole;
            let mut hits = vec![0u8; m * n];
            let chunks = call.chunks();
            if (m, n) == (256, 896) {
                let want = [(Cut::Block, 4), (Cut::Whole, 4), (Cut::Serial, 1)];
                assert!(
                    want.contains(&(cut, chunks.len())),
                    "{cut:?}: {}",
                    chunks.len()
                );
            }
            if whole_op && (m, n) == (4096, 1792) {
                assert_eq!(chunks.len(), 16 * 4, "a grid of 256×448 blocks");
            }
            if (m, n) == (5, 3000) {
                assert_eq!(chunks.len(), 8, "eight chunks of 375, not six of 500");
            }
            for (r0, rm, c0, cn) in chunks {
                for r in r0..r0 + rm {
                    for c in c0..c0 + cn {
                        hits[r * n + c] += 1;
                    }
                }
            }
            assert!(hits.iter().all(|&h| h == 1), "{m}×{n}");
        }
    }
}
