//! Safe, bounds-checked wrappers over the f32 matrix product: a system BLAS where one is
//! installed ([`blas`]), the `gemm` crate's strided kernels otherwise.
//!
//! Every heavy kernel (convolution, linear layers, attention) ends in one of these calls, so the
//! raw-pointer contract of `gemm::gemm` is checked in exactly one place: each operand's slice must
//! cover the last element its strides address, and the destination rows must not overlap (the
//! crate writes rows from several threads).

use super::blas::{self, Bias, Cut};
use gemm::Parallelism;

/// C\[m×n\] = A\[m×k\]·B\[k×n\] (+ C when `accumulate`), on the current rayon pool.
///
/// Strides are in elements: `a_rs`/`a_cs` are the row/column strides of A (likewise B); C has
/// column stride 1 and row stride `c_rs ≥ n`.
///
/// # Panics
/// When a slice is shorter than its strides require (a programmer error: callers derive every
/// size from validated shapes).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
) {
    let op = Operands::new(m, n, k, (a, a_rs, a_cs), (b, b_rs, b_cs), (c, c_rs));
    op.run(accumulate, 1.0, pool_parallelism(), Cut::Block, None);
}

/// [`matmul`] plus `bias`, for a product that is a whole op (a linear map, a 1×1 convolution)
/// and is computed through this entry whatever the pool: it is cut in a grid of blocks of a size
/// oneMKL runs fastest, and small products finer, so that a 256-row linear map still fills the
/// pool (the bits still depend on the shape only); each block's bias is added while it is in
/// cache.
///
/// # Panics
/// As [`matmul`]; also when `bias` is shorter than C's rows or columns.
#[allow(clippy::too_many_arguments)]
pub fn matmul_whole_op(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    bias: Option<Bias>,
) {
    match bias {
        Some(Bias::Rows(b)) => assert!(b.len() >= m, "matmul: {} row biases for {m} rows", b.len()),
        Some(Bias::Cols(b)) => assert!(b.len() >= n, "matmul: {} column biases for {n}", b.len()),
        None => {}
    }
    let op = Operands::new(m, n, k, (a, a_rs, a_cs), (b, b_rs, b_cs), (c, c_rs));
    op.run(accumulate, 1.0, pool_parallelism(), Cut::Whole, bias);
}

/// [`matmul`] on the calling thread only: for use inside loops that are already parallel, where
/// nested fork-join would only add overhead.
#[allow(clippy::too_many_arguments)]
pub fn matmul_serial(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
) {
    let op = Operands::new(m, n, k, (a, a_rs, a_cs), (b, b_rs, b_cs), (c, c_rs));
    op.run(accumulate, 1.0, Parallelism::None, Cut::Block, None);
}

/// C = scale·A·B (+ C when `accumulate`), serial and in one call unless wide (attention's
/// products, on a thread of their own whatever the pool; the scores need the softmax scale
/// folded into the product instead of a separate pass over a `tq×tk` block).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_scaled_serial(
    m: usize,
    n: usize,
    k: usize,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    c: (&mut [f32], usize),
    accumulate: bool,
    scale: f32,
) {
    Operands::new(m, n, k, a, b, c).run(accumulate, scale, Parallelism::None, Cut::Serial, None);
}

/// Parallelism that fills the rayon pool the caller runs in (the global pool outside any
/// `install`). One thread means no fork-join at all.
fn pool_parallelism() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        t => Parallelism::Rayon(t),
    }
}

/// Operands whose slices have been checked against their shapes and strides.
struct Operands<'a> {
    m: usize,
    n: usize,
    k: usize,
    a: (&'a [f32], usize, usize),
    b: (&'a [f32], usize, usize),
    c: (&'a mut [f32], usize),
}

impl<'a> Operands<'a> {
    fn new(
        m: usize,
        n: usize,
        k: usize,
        a: (&'a [f32], usize, usize),
        b: (&'a [f32], usize, usize),
        c: (&'a mut [f32], usize),
    ) -> Self {
        assert!(
            a.0.len() >= span(m, k, a.1, a.2),
            "matmul: A has {} elements, {m}×{k} with strides ({}, {}) needs more",
            a.0.len(),
            a.1,
            a.2
        );
        assert!(
            b.0.len() >= span(k, n, b.1, b.2),
            "matmul: B has {} elements, {k}×{n} with strides ({}, {}) needs more",
            b.0.len(),
            b.1,
            b.2
        );
        assert!(
            c.0.len() >= span(m, n, c.1, 1),
            "matmul: C has {} elements, {m}×{n} with row stride {} needs more",
            c.0.len(),
            c.1
        );
        // Rows of C are written concurrently: they must not overlap.
        assert!(m <= 1 || c.1 >= n, "matmul: C row stride {} < n = {n}", c.1);
        for s in [a.1, a.2, b.1, b.2, c.1] {
            assert!(
                isize::try_from(s).is_ok(),
                "matmul: stride {s} overflows isize"
            );
        }
        Self { m, n, k, a, b, c }
    }

    fn run(
        self,
        mut accumulate: bool,
        scale: f32,
        parallelism: Parallelism,
        cut: Cut,
        bias: Option<Bias>,
    ) {
        let Self { m, n, k, a, b, c } = self;
        if m == 0 || n == 0 {
            return;
        }
        if let Some(blas) = blas::get()
            && let Some(call) = blas::Call::new(m, n, k, (a.1, a.2), (b.1, b.2), c.1)
        {
            let call = call.with_cut(cut);
            let parallel = !matches!(parallelism, Parallelism::None);
            // SAFETY: `new` checked that A, B and C cover every element these shapes and
            // strides address (CBLAS's leading dimensions are those strides, or the extent
            // of a single row/column); C is a unique borrow, so it aliases neither A nor B.
            unsafe { blas.run(&call, a.0, b.0, c.0, scale, accumulate, parallel, bias) };
            return;
        }
        // The `gemm` crate: the bias first, then the product accumulated onto it.
        if let Some(bias) = bias {
            for r in 0..m {
                let row = &mut c.0[r * c.1..r * c.1 + n];
                if !accumulate {
                    row.fill(0.0);
                }
                bias.add_to(row, r, 0);
            }
            accumulate = true;
        }
        // Strides fit isize (checked in `new`), so these casts are exact.
        let s = |v: usize| v as isize;
        // SAFETY: `new` checked that every element A, B and C address with these shapes and
        // strides lies inside the slices; C is a unique borrow, so it aliases neither A nor B,
        // and its rows do not overlap each other. `gemm` only reads A and B and, for
        // `read_dst = false`, never reads C before writing it.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.0.as_mut_ptr(),
                1,
                s(c.1),
                accumulate,
                a.0.as_ptr(),
                s(a.2),
                s(a.1),
                b.0.as_ptr(),
                s(b.2),
                s(b.1),
                1.0,
                scale,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}

/// Elements a `rows×cols` strided view reaches: one past its last element (0 when empty).
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .and_then(|last| last.checked_add(1))
        .expect("matmul: strided view overflows usize")
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, rel_l2};
    use super::*;

    /// C = A·B (+ C0) in f64, straight from the definition.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        a_rs: usize,
        a_cs: usize,
        b: &[f32],
        b_rs: usize,
        b_cs: usize,
        c0: Option<&[f32]>,
    ) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = c0.map_or(0.0, |c0| c0[i * n + j] as f64);
                for p in 0..k {
                    s += a[i * a_rs + p * a_cs] as f64 * b[p * b_rs + j * b_cs] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn matches_reference_for_all_layouts_and_accumulate() {
        let mut rng = Rng::new(7);
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 65),
            (64, 31, 129),
            (5, 300, 2),
        ] {
            let a = rng.vec(m * k);
            let b = rng.vec(k * n);
            let c0 = rng.vec(m * n);
            for (a_rs, a_cs) in [(k, 1), (1, m)] {
                for (b_rs, b_cs) in [(n, 1), (1, k)] {
                    for acc in [false, true] {
                        let want = reference(
                            m,
                            n,
                            k,
                            &a,
                            a_rs,
                            a_cs,
                            &b,
                            b_rs,
                            b_cs,
                            acc.then_some(&c0[..]),
                        );
                        let mut got = c0.clone();
                        matmul(m, n, k, &a, a_rs, a_cs, &b, b_rs, b_cs, &mut got, n, acc);
                        assert!(rel_l2(&got, &want) <= 1e-6, "{m}×{n}×{k} acc {acc}");
                        let mut got_s = c0.clone();
                        matmul_serial(m, n, k, &a, a_rs, a_cs, &b, b_rs, b_cs, &mut got_s, n, acc);
                        assert!(rel_l2(&got_s, &want) <= 1e-6);
                    }
                }
            }
        }
    }

    #[test]
    fn padded_destination_rows_are_left_alone() {
        let mut rng = Rng::new(8);
        let (m, n, k, c_rs) = (6, 5, 9, 8);
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let mut c = vec![42.0f32; (m - 1) * c_rs + n];
        matmul(m, n, k, &a, k, 1, &b, n, 1, &mut c, c_rs, false);
        let want = reference(m, n, k, &a, k, 1, &b, n, 1, None);
        for i in 0..m {
            assert!(rel_l2(&c[i * c_rs..i * c_rs + n], &want[i * n..(i + 1) * n]) <= 1e-6);
            if i + 1 < m {
                assert!(c[i * c_rs + n..(i + 1) * c_rs].iter().all(|&v| v == 42.0));
            }
        }
    }

    #[test]
    fn scaled_product_and_zero_depth() {
        let mut rng = Rng::new(9);
        let (m, n, k) = (7, 6, 5);
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let mut c = vec![0.0; m * n];
        matmul_scaled_serial(m, n, k, (&a, k, 1), (&b, n, 1), (&mut c, n), false, 0.25);
        let want: Vec<f32> = reference(m, n, k, &a, k, 1, &b, n, 1, None)
            .iter()
            .map(|v| v * 0.25)
            .collect();
        assert!(rel_l2(&c, &want) <= 1e-6);
        // k = 0: the product is empty, so C becomes 0 (or stays C when accumulating).
        let mut c = vec![3.0; m * n];
        matmul(m, n, 0, &[], 0, 1, &[], n, 1, &mut c, n, true);
        assert!(c.iter().all(|&v| v == 3.0));
        matmul(m, n, 0, &[], 0, 1, &[], n, 1, &mut c, n, false);
        assert!(c.iter().all(|&v| v == 0.0));
    }

    #[test]
    #[should_panic(expected = "matmul: B has")]
    fn short_operand_is_caught() {
        let mut c = vec![0.0; 4];
        matmul(2, 2, 2, &[0.0; 4], 2, 1, &[0.0; 3], 2, 1, &mut c, 2, false);
    }
}
