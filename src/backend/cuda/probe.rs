//! The fragment-layout probe of the tensor-core and async-copy wrappers (`kernels/common/
//! f2i_mma.h`, kernels in `kernels/probe.cu`): the expected layouts, written from NVIDIA's PTX
//! ISA manual, the probe inputs, and checkers of the outputs. Generic over [`Executor`], so the
//! CPU execution harness (CI) and a real GPU (`scripts/gpu-check.sh`) are judged by the very same
//! tables: if the harness's emulation and the hardware both pass, they agree.
//!
//! Layout tables (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type" and
//! "ldmatrix"), with groupID = lane >> 2 and threadID_in_group = lane % 4. They are written here
//! from the manual's formulas, independently of the C++ header's code.
//!
//! Numerics: problems of small integers have exact partial sums in f32, so their D is compared
//! bit for bit on any hardware; random f16 problems are compared with the scalar f64 product
//! within `tol · (|c| + Σ|a·b|)` per element (the hardware's accumulation order is unspecified).

use super::executor::{Arg, DevPtr, Executor, Launch};
use super::precision::Precision;
use crate::error::Result;
use half::f16;

// ---------------------------------------------------------------------------------------------
// Layout tables, from the PTX ISA manual.

/// (row, col) of A (16×16, row-major) held by `lane` as element a`i` (i in 0..8; register
/// `i / 2`, low half for even `i`).
pub fn mma_a_element(lane: usize, i: usize) -> (usize, usize) {
    assert!(lane < 32 && i < 8);
    let (group_id, tig) = (lane >> 2, lane % 4);
    // row = groupID for a_i with 0 <= i < 2 || 4 <= i < 6, groupID + 8 otherwise
    let row = if i < 2 || (4..6).contains(&i) {
        group_id
    } else {
        group_id + 8
    };
    // col = threadID_in_group * 2 + (i & 0x1) for a_i with i < 4, (…) + 8 for i >= 4
    let col = if i < 4 {
        tig * 2 + (i & 1)
    } else {
        tig * 2 + (i & 1) + 8
    };
    (row, col)
}

/// (row k, col n) of B (16×8) held by `lane` as element b`i` (i in 0..4).
pub fn mma_b_element(lane: usize, i: usize) -> (usize, usize) {
    assert!(lane < 32 && i < 4);
    let (group_id, tig) = (lane >> 2, lane % 4);
    // row = threadID_in_group * 2 + (i & 0x1) for b_i with i < 2, (…) + 8 for i >= 2
    let row = if i < 2 {
        tig * 2 + (i & 1)
    } else {
        tig * 2 + (i & 1) + 8
    };
    (row, group_id) // col = groupID
}

/// (row, col) of C and D (16×8 f32) held by `lane` as element c`i` / d`i` (i in 0..4).
pub fn mma_cd_element(lane: usize, i: usize) -> (usize, usize) {
    assert!(lane < 32 && i < 4);
    let (group_id, tig) = (lane >> 2, lane % 4);
    // row = groupID for c_i with i < 2, groupID + 8 for i >= 2
    let row = if i < 2 { group_id } else { group_id + 8 };
    (row, tig * 2 + (i & 1)) // col = threadID_in_group * 2 + (i & 0x1)
}

/// (row, col) within each 8×8 matrix of the `i`-th (0 or 1) b16 element of the register `lane`
/// receives from ldmatrix: (lane/4, 2·(lane%4) + i); with `.trans`, the transpose.
pub fn ldmatrix_element(lane: usize, i: usize, trans: bool) -> (usize, usize) {
    assert!(lane < 32 && i < 2);
    let (row, col) = (lane / 4, 2 * (lane % 4) + i);
    if trans { (col, row) } else { (row, col) }
}

/// The lane whose address ldmatrix uses for row `row` of matrix `m`: 8·m + row.
pub fn ldmatrix_address_lane(m: usize, row: usize) -> usize {
    8 * m + row
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// Seeded xorshift64 (no dependency): uniform in [0, 1).
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn int(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.unit() * (hi - lo + 1) as f64) as i32
    }
}

fn upload<E: Executor>(exec: &E, bytes: &[u8]) -> Result<(E::Buffer, DevPtr)> {
    let buf = exec.alloc(bytes.len().max(1))?;
    let ptr = exec.ptr(&buf);
    exec.copy_to_device(ptr, bytes)?;
    Ok((buf, ptr))
}

fn download<E: Executor>(exec: &E, ptr: DevPtr, bytes: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; bytes];
    exec.copy_to_host(ptr, &mut out)?;
    Ok(out)
}

fn halves_bytes(v: &[f16]) -> Vec<u8> {
    v.iter().flat_map(|h| h.to_bits().to_le_bytes()).collect()
}
fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn one_warp(grid: [u32; 3], threads: u32) -> Launch {
    Launch {
        grid,
        block: [threads, 1, 1],
        shared_bytes: 0,
    }
}

fn kernel(op: &str, precision: Precision) -> String {
    format!("{op}_{}", precision.suffix())
}

/// Mismatches found by a checker (empty: passed); at most `MAX_REPORTED` are kept in full.
#[derive(Debug, Default, Clone)]
pub struct Mismatches {
    pub count: usize,
    pub first: Vec<String>,
}

const MAX_REPORTED: usize = 16;

impl Mismatches {
    fn push(&mut self, msg: String) {
        self.count += 1;
        if self.first.len() < MAX_REPORTED {
            self.first.push(msg);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// `Ok` when empty, else a message naming `what` and the first mismatches.
    pub fn into_result(self, what: &str) -> std::result::Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{what}: {} mismatches; first:\n  {}",
            self.count,
            self.first.join("\n  ")
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// mma.m16n8k16 probe.

/// One problem D = A·B + C: A 16×16 row-major, B 16×8 as [k][n], C 16×8 row-major.
#[derive(Debug, Clone)]
pub struct MmaProblem {
    pub what: &'static str,
    pub a: Vec<f16>,
    pub b: Vec<f16>,
    pub c: Vec<f32>,
    /// Every partial sum is exact in f32: D must match bit for bit on any hardware.
    pub exact: bool,
}

impl MmaProblem {
    /// The scalar f64 product, D[r][n] = C[r][n] + Σ_k A[r][k]·B[k][n], and the magnitude
    /// |C| + Σ|A·B| its rounding error is measured against.
    pub fn reference(&self) -> (Vec<f64>, Vec<f64>) {
        let mut d = vec![0f64; 128];
        let mut mag = vec![0f64; 128];
        for r in 0..16 {
            for n in 0..8 {
                let mut s = self.c[r * 8 + n] as f64;
                let mut m = s.abs();
                for k in 0..16 {
                    let p = self.a[r * 16 + k].to_f64() * self.b[k * 8 + n].to_f64();
                    s += p;
                    m += p.abs();
                }
                d[r * 8 + n] = s;
                mag[r * 8 + n] = m;
            }
        }
        (d, mag)
    }
}

/// Tag of A's element (r, k): r·16 + k (0..255, exact in f16).
pub fn tag_a(r: usize, k: usize) -> f32 {
    (r * 16 + k) as f32
}
/// Tag of B's element (k, n): k·8 + n.
pub fn tag_b(k: usize, n: usize) -> f32 {
    (k * 8 + n) as f32
}
/// Tag of C's element (r, n): 1024·(r·8 + n + 1), so D = C + (one element of A or B) decodes.
pub fn tag_c(r: usize, n: usize) -> f32 {
    (1024 * (r * 8 + n + 1)) as f32
}

/// The probe's problems: tagged (each element's value names its (row, col)), selectors that
/// copy one tagged matrix into D, small random integers (all exact), then random halves.
pub fn mma_problems(seed: u64) -> Vec<MmaProblem> {
    let h = |v: f32| f16::from_f32(v);
    let tagged_a: Vec<f16> = (0..256).map(|e| h(tag_a(e / 16, e % 16))).collect();
    let tagged_b: Vec<f16> = (0..128).map(|e| h(tag_b(e / 8, e % 8))).collect();
    let tagged_c: Vec<f32> = (0..128).map(|e| tag_c(e / 8, e % 8)).collect();
    let identity: Vec<f16> = (0..256)
        .map(|e| h(if e / 16 == e % 16 { 1.0 } else { 0.0 }))
        .collect();
    let select = |half: usize| -> Vec<f16> {
        (0..128)
            .map(|e| h(if e / 8 == e % 8 + 8 * half { 1.0 } else { 0.0 }))
            .collect()
    };
    let mut out = vec![
        MmaProblem {
            what: "tagged A·B + C",
            a: tagged_a.clone(),
            b: tagged_b.clone(),
            c: (0..128).map(|e| (e / 8 * 8 + e % 8) as f32).collect(),
            exact: true,
        },
        MmaProblem {
            what: "I·tagged B + tagged C (D = B + C)",
            a: identity,
            b: tagged_b,
            c: tagged_c.clone(),
            exact: true,
        },
        MmaProblem {
            what: "tagged A·[I;0] + tagged C (D = A[:, 0..8] + C)",
            a: tagged_a.clone(),
            b: select(0),
            c: tagged_c.clone(),
            exact: true,
        },
        MmaProblem {
            what: "tagged A·[0;I] + tagged C (D = A[:, 8..16] + C)",
            a: tagged_a,
            b: select(1),
            c: tagged_c,
            exact: true,
        },
    ];
    let mut rng = Rng::new(seed);
    for _ in 0..2 {
        out.push(MmaProblem {
            what: "random integers in [-8, 8]",
            a: (0..256).map(|_| h(rng.int(-8, 8) as f32)).collect(),
            b: (0..128).map(|_| h(rng.int(-8, 8) as f32)).collect(),
            c: (0..128).map(|_| rng.int(-64, 64) as f32).collect(),
            exact: true,
        });
    }
    for scale in [1.0f64, 1.0, 1.0, 300.0] {
        out.push(MmaProblem {
            what: "random halves",
            a: (0..256)
                .map(|_| h(((rng.unit() * 2.0 - 1.0) * scale) as f32))
                .collect(),
            b: (0..128)
                .map(|_| h(((rng.unit() * 2.0 - 1.0) * scale) as f32))
                .collect(),
            c: (0..128)
                .map(|_| ((rng.unit() * 2.0 - 1.0) * scale) as f32)
                .collect(),
            exact: false,
        });
    }
    out
}

/// What `probe_mma` wrote: per problem and lane, 10 raw registers (a[4], b[2], bits of c[4])
/// and 4 floats of d.
#[derive(Debug, Clone)]
pub struct MmaOutput {
    pub frags: Vec<u32>,
    pub d: Vec<f32>,
}

/// Runs `probe_mma` on `problems` (one block of 32 threads each).
pub fn run_mma<E: Executor>(
    exec: &E,
    precision: Precision,
    problems: &[MmaProblem],
) -> Result<MmaOutput> {
    let p = problems.len();
    let a: Vec<f16> = problems.iter().flat_map(|q| q.a.iter().copied()).collect();
    let b: Vec<f16> = problems.iter().flat_map(|q| q.b.iter().copied()).collect();
    let c: Vec<f32> = problems.iter().flat_map(|q| q.c.iter().copied()).collect();
    let (_ab, a_ptr) = upload(exec, &halves_bytes(&a))?;
    let (_bb, b_ptr) = upload(exec, &halves_bytes(&b))?;
    let (_cb, c_ptr) = upload(exec, &f32_bytes(&c))?;
    let (_fb, f_ptr) = upload(exec, &vec![0u8; p * 32 * 10 * 4])?;
    let (_db, d_ptr) = upload(exec, &vec![0u8; p * 32 * 4 * 4])?;
    exec.launch(
        &kernel("probe_mma", precision),
        &one_warp([p as u32, 1, 1], 32),
        &[
            Arg::Ptr(a_ptr),
            Arg::Ptr(b_ptr),
            Arg::Ptr(c_ptr),
            Arg::Ptr(f_ptr),
            Arg::Ptr(d_ptr),
        ],
    )?;
    let frags = u32s(&download(exec, f_ptr, p * 32 * 10 * 4)?);
    let d = u32s(&download(exec, d_ptr, p * 32 * 4 * 4)?)
        .into_iter()
        .map(f32::from_bits)
        .collect();
    Ok(MmaOutput { frags, d })
}

/// The fragment registers each lane loaded (probe_mma's `frags`) hold the elements the ISA
/// tables name: the loader in probe.cu and the tables agree.
pub fn check_mma_fragments(problems: &[MmaProblem], out: &MmaOutput) -> Mismatches {
    let mut bad = Mismatches::default();
    for (p, q) in problems.iter().enumerate() {
        for lane in 0..32 {
            let f = &out.frags[(p * 32 + lane) * 10..][..10];
            let half = |reg: u32, i: usize| f16::from_bits((reg >> (16 * (i & 1))) as u16);
            for i in 0..8 {
                let (r, k) = mma_a_element(lane, i);
                let got = half(f[i / 2], i);
                if got.to_bits() != q.a[r * 16 + k].to_bits() {
                    bad.push(format!(
                        "problem {p}: lane {lane} a{i}: {got} (expected A[{r}][{k}] = {})",
                        q.a[r * 16 + k]
                    ));
                }
            }
            for i in 0..4 {
                let (k, n) = mma_b_element(lane, i);
                let got = half(f[4 + i / 2], i);
                if got.to_bits() != q.b[k * 8 + n].to_bits() {
                    bad.push(format!(
                        "problem {p}: lane {lane} b{i}: {got} (expected B[{k}][{n}] = {})",
                        q.b[k * 8 + n]
                    ));
                }
            }
            for i in 0..4 {
                let (r, n) = mma_cd_element(lane, i);
                let got = f32::from_bits(f[6 + i]);
                if got.to_bits() != q.c[r * 8 + n].to_bits() {
                    bad.push(format!(
                        "problem {p}: lane {lane} c{i}: {got} (expected C[{r}][{n}] = {})",
                        q.c[r * 8 + n]
                    ));
                }
            }
        }
    }
    bad
}

/// Each lane's d`i` equals (A·B + C)[row][col] at the ISA's D layout: exactly for exact
/// problems, within `tol · (|c| + Σ|a·b|)` otherwise. Returns the mismatches and the largest
/// relative error seen on inexact problems.
pub fn check_mma_result(problems: &[MmaProblem], out: &MmaOutput, tol: f64) -> (Mismatches, f64) {
    let mut bad = Mismatches::default();
    let mut worst = 0f64;
    for (p, q) in problems.iter().enumerate() {
        let (want, mag) = q.reference();
        for lane in 0..32 {
            for i in 0..4 {
                let (r, n) = mma_cd_element(lane, i);
                let got = out.d[(p * 32 + lane) * 4 + i];
                let w = want[r * 8 + n];
                let ok = if q.exact {
                    got as f64 == w
                } else {
                    let err = (got as f64 - w).abs() / mag[r * 8 + n].max(f64::MIN_POSITIVE);
                    worst = worst.max(err);
                    err <= tol
                };
                if !ok {
                    bad.push(format!(
                        "problem {p} ({}): lane {lane} d{i} = {got} but D[{r}][{n}] = {w}{}",
                        q.what,
                        decode_tagged(p, got)
                    ));
                }
            }
        }
    }
    (bad, worst)
}

/// For the selector problems (1..4), what a wrong D names: the C tag's (row, col) and the copied
/// element's tag.
fn decode_tagged(p: usize, got: f32) -> String {
    if !(1..4).contains(&p) || got < 1024.0 || got.fract() != 0.0 {
        return String::new();
    }
    let v = got as usize;
    let (cell, rest) = (v / 1024 - 1, v % 1024);
    let src = if p == 1 {
        format!("B[{}][{}]", rest / 8, rest % 8)
    } else {
        format!("A[{}][{}]", rest / 16, rest % 16)
    };
    format!(" (got C[{}][{}] + {src})", cell / 8, cell % 8)
}

// ---------------------------------------------------------------------------------------------
// ldmatrix probe.

/// The variants in the order probe_ldmatrix writes them: (matrices, .trans).
pub const LDMATRIX_VARIANTS: [(usize, bool); 6] = [
    (1, false),
    (2, false),
    (4, false),
    (1, true),
    (2, true),
    (4, true),
];

/// The b16 value probe_ldmatrix stores at element (row, col) of matrix `m`.
pub fn ldmatrix_tag(m: usize, row: usize, col: usize) -> u16 {
    (0x1000 * (m + 1) + 0x10 * row + col) as u16
}

/// Runs `probe_ldmatrix`: out[variant][lane][0..4] registers.
pub fn run_ldmatrix<E: Executor>(exec: &E, precision: Precision) -> Result<Vec<u32>> {
    let bytes = 6 * 32 * 4 * 4;
    let (_ob, o_ptr) = upload(exec, &vec![0u8; bytes])?;
    exec.launch(
        &kernel("probe_ldmatrix", precision),
        &one_warp([1, 1, 1], 32),
        &[Arg::Ptr(o_ptr)],
    )?;
    Ok(u32s(&download(exec, o_ptr, bytes)?))
}

/// Every lane's registers hold the elements the ISA names; registers beyond the variant's
/// matrix count are untouched (0).
pub fn check_ldmatrix(out: &[u32]) -> Mismatches {
    let mut bad = Mismatches::default();
    for (v, &(nmat, trans)) in LDMATRIX_VARIANTS.iter().enumerate() {
        let name = format!("x{nmat}{}", if trans { ".trans" } else { "" });
        for lane in 0..32 {
            for m in 0..4 {
                let got = out[(v * 32 + lane) * 4 + m];
                let want = if m < nmat {
                    let (r0, c0) = ldmatrix_element(lane, 0, trans);
                    let (r1, c1) = ldmatrix_element(lane, 1, trans);
                    ldmatrix_tag(m, r0, c0) as u32 | (ldmatrix_tag(m, r1, c1) as u32) << 16
                } else {
                    0
                };
                if got != want {
                    bad.push(format!(
                        "ldmatrix {name}: lane {lane} r[{m}] = {got:#010x}, expected {want:#010x} \
                         (tags: 0x1000·(matrix+1) + 0x10·row + col)"
                    ));
                }
            }
        }
    }
    bad
}

// ---------------------------------------------------------------------------------------------
// cp.async probe.

/// The sections of probe_cp_async's output, 64 threads × 4 floats each.
#[derive(Debug, Clone)]
pub struct CpAsyncOutput {
    /// Group 0 read right after issuing (undefined on hardware; poison on the harness).
    pub early: Vec<f32>,
    /// Group 0 after wait<1> (defined).
    pub mid0: Vec<f32>,
    /// Group 1 after wait<1> (undefined on hardware; poison on the harness).
    pub mid1: Vec<f32>,
    /// After wait_all and a barrier, thread 63−t's group-0 / group-1 / zero-filled chunk.
    pub late0: Vec<f32>,
    pub late1: Vec<f32>,
    pub zfill: Vec<f32>,
}

/// probe_cp_async's source: src[i] = i + 0.5 (distinct, finite), 512 floats.
pub fn cp_async_source() -> Vec<f32> {
    (0..512).map(|i| i as f32 + 0.5).collect()
}

pub fn run_cp_async<E: Executor>(exec: &E, precision: Precision) -> Result<CpAsyncOutput> {
    let (_sb, s_ptr) = upload(exec, &f32_bytes(&cp_async_source()))?;
    let n = 6 * 256;
    let (_ob, o_ptr) = upload(exec, &vec![0u8; n * 4])?;
    exec.launch(
        &kernel("probe_cp_async", precision),
        &one_warp([1, 1, 1], 64),
        &[Arg::Ptr(s_ptr), Arg::Ptr(o_ptr)],
    )?;
    let v: Vec<f32> = u32s(&download(exec, o_ptr, n * 4)?)
        .into_iter()
        .map(f32::from_bits)
        .collect();
    let part = |i: usize| v[i * 256..(i + 1) * 256].to_vec();
    Ok(CpAsyncOutput {
        early: part(0),
        mid0: part(1),
        mid1: part(2),
        late0: part(3),
        late1: part(4),
        zfill: part(5),
    })
}

/// Checks what CUDA defines; with `harness`, also that reads before the wait saw the harness's
/// poison (0xFFFFFFFF, a NaN) — the harness's way of showing a missing wait.
pub fn check_cp_async(out: &CpAsyncOutput, harness: bool) -> Mismatches {
    let src = cp_async_source();
    let mut bad = Mismatches::default();
    let mut expect = |what: &str, got: &[f32], want: &dyn Fn(usize) -> u32| {
        for (i, g) in got.iter().enumerate() {
            if g.to_bits() != want(i) {
                bad.push(format!(
                    "cp.async {what}[thread {}][{}] = {g} ({:#010x}), expected {:#010x}",
                    i / 4,
                    i % 4,
                    g.to_bits(),
                    want(i)
                ));
            }
        }
    };
    let other = |i: usize| 4 * (63 - i / 4) + i % 4;
    expect("mid0", &out.mid0, &|i| src[i].to_bits());
    expect("late0", &out.late0, &|i| src[other(i)].to_bits());
    expect("late1", &out.late1, &|i| src[256 + other(i)].to_bits());
    // 6 bytes of thread (63−t)'s src[4o..], then zeros.
    expect("zfill", &out.zfill, &|i| {
        let (o, j) = (4 * (63 - i / 4), i % 4);
        match j {
            0 => src[o].to_bits(),
            1 => src[o + 1].to_bits() & 0xffff,
            _ => 0,
        }
    });
    if harness {
        expect("early (before any wait)", &out.early, &|_| u32::MAX);
        expect("mid1 (group still pending)", &out.mid1, &|_| u32::MAX);
    }
    bad
}

// ---------------------------------------------------------------------------------------------
// The composed GEMM (cp.async + ldmatrix + mma).

/// Runs `probe_gemm` on seeded random f16 A (m×k) and B (k×n), k and n multiples of 8; returns
/// (D from the kernel, scalar f64 reference, per-element magnitude Σ|a·b|).
pub fn run_gemm<E: Executor>(
    exec: &E,
    precision: Precision,
    m: usize,
    n: usize,
    k: usize,
    seed: u64,
) -> Result<(Vec<f32>, Vec<f64>, Vec<f64>)> {
    assert!(
        k % 8 == 0 && n % 8 == 0 && m > 0,
        "probe_gemm needs k, n multiples of 8"
    );
    let mut rng = Rng::new(seed);
    let a: Vec<f16> = (0..m * k)
        .map(|_| f16::from_f64(rng.unit() * 2.0 - 1.0))
        .collect();
    let b: Vec<f16> = (0..k * n)
        .map(|_| f16::from_f64(rng.unit() * 2.0 - 1.0))
        .collect();
    let (_ab, a_ptr) = upload(exec, &halves_bytes(&a))?;
    let (_bb, b_ptr) = upload(exec, &halves_bytes(&b))?;
    let (_db, d_ptr) = upload(exec, &f32_bytes(&vec![f32::NAN; m * n]))?;
    let int = |v: usize| Arg::I32(v as i32);
    exec.launch(
        &kernel("probe_gemm", precision),
        &one_warp([(n / 8) as u32, m.div_ceil(16) as u32, 1], 32),
        &[
            Arg::Ptr(a_ptr),
            Arg::Ptr(b_ptr),
            Arg::Ptr(d_ptr),
            int(m),
            int(n),
            int(k),
        ],
    )?;
    let d: Vec<f32> = u32s(&download(exec, d_ptr, m * n * 4)?)
        .into_iter()
        .map(f32::from_bits)
        .collect();
    let mut want = vec![0f64; m * n];
    let mut mag = vec![0f64; m * n];
    for r in 0..m {
        for c in 0..n {
            for kk in 0..k {
                let p = a[r * k + kk].to_f64() * b[kk * n + c].to_f64();
                want[r * n + c] += p;
                mag[r * n + c] += p.abs();
            }
        }
    }
    Ok((d, want, mag))
}

/// Every element of D within `tol · Σ|a·b|` of the f64 reference.
pub fn check_gemm(d: &[f32], want: &[f64], mag: &[f64], n: usize, tol: f64) -> Mismatches {
    let mut bad = Mismatches::default();
    for (i, (&g, (&w, &m))) in d.iter().zip(want.iter().zip(mag)).enumerate() {
        // false for NaN too (an element the kernel never wrote)
        let within = (g as f64 - w).abs() <= tol * m.max(f64::MIN_POSITIVE);
        if !within {
            bad.push(format!("gemm D[{}][{}] = {g}, reference {w}", i / n, i % n));
        }
    }
    bad
}

// ---------------------------------------------------------------------------------------------
// Everything at once (scripts/gpu-check.sh, and the harness test).

/// Tolerance of random f16 problems relative to |c| + Σ|a·b|: the harness's sequential f32 sum
/// is within 17 half-ulps; the hardware's unspecified order and truncation within a few more.
pub const MMA_TOL: f64 = 1e-6;
pub const MMA_TOL_GPU: f64 = 1e-5;

/// Runs every probe and returns one line per probe: `Ok(summary)` or `Err(mismatches)`.
/// `harness`: the executor is the CPU harness (tight tolerance, poison checks).
pub fn run_all<E: Executor>(
    exec: &E,
    precision: Precision,
    harness: bool,
) -> Result<Vec<std::result::Result<String, String>>> {
    let tol = if harness { MMA_TOL } else { MMA_TOL_GPU };
    let mut lines = Vec::new();
    let problems = mma_problems(0x5eed_f00d);
    let out = run_mma(exec, precision, &problems)?;
    lines.push(
        check_mma_fragments(&problems, &out)
            .into_result("mma fragments")
            .map(|()| "mma fragment loads match the ISA tables".to_string()),
    );
    let (bad, worst) = check_mma_result(&problems, &out, tol);
    lines.push(bad.into_result("mma D").map(|()| {
        format!(
            "mma D = A·B + C at the ISA layout ({} problems, exact ones bit-exact; worst rel err \
             {worst:.2e})",
            problems.len()
        )
    }));
    lines.push(
        check_ldmatrix(&run_ldmatrix(exec, precision)?)
            .into_result("ldmatrix")
            .map(|()| "ldmatrix x1/x2/x4 (+trans) match the ISA layout".to_string()),
    );
    lines.push(
        check_cp_async(&run_cp_async(exec, precision)?, harness)
            .into_result("cp.async")
            .map(|()| "cp.async 4/8/16/zfill, commit, wait_group, wait_all".to_string()),
    );
    let (m, n, k) = (40, 24, 72);
    let (d, want, mag) = run_gemm(exec, precision, m, n, k, 7)?;
    lines.push(
        check_gemm(&d, &want, &mag, n, MMA_TOL_GPU)
            .into_result("gemm")
            .map(|()| format!("cp.async+ldmatrix+mma GEMM {m}×{n}×{k} matches the f64 reference")),
    );
    Ok(lines)
}
