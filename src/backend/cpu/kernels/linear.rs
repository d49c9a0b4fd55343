//! `nn.Linear` on a token matrix: one GEMM against the weight read transposed in place.

use super::blas::Bias;
use super::gemm::matmul_whole_op;

/// `out[rows, n_out]` (+)= `x[rows, n_in]` · `w[n_out, n_in]`ᵀ + `bias`.
///
/// `w` is PyTorch's `nn.Linear` layout, used as is (the GEMM reads it with swapped strides).
/// `x` has row stride `x_rs ≥ n_in` and `out` row stride `out_rs ≥ n_out`, so a layer can read
/// or write a column block of a wider matrix (e.g. q, k, v side by side); elements between rows
/// are left alone. `accumulate` adds into `out` (residual connections).
///
/// # Panics
/// When a slice is shorter than its shape and stride require.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    x: &[f32],
    x_rs: usize,
    rows: usize,
    n_in: usize,
    w: &[f32],
    n_out: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    out_rs: usize,
    accumulate: bool,
) {
    assert!(
        rows <= 1 || (x_rs >= n_in && out_rs >= n_out),
        "linear: row stride too small"
    );
    let bias = bias.map(|b| Bias::Cols(&b[..n_out]));
    matmul_whole_op(
        rows, n_out, n_in, x, x_rs, 1, w, 1, n_in, out, out_rs, accumulate, bias,
    );
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, in_pool, rel_l2};
    use super::*;

    #[test]
    fn matches_f64_reference_with_strides_bias_and_accumulate() {
        let mut rng = Rng::new(21);
        for (rows, n_in, n_out, pad_in, pad_out) in [
            (1, 1, 1, 0, 0),
            (5, 7, 3, 2, 1),
            (257, 384, 96, 0, 0),
            (65, 33, 130, 5, 7),
        ] {
            let (x_rs, out_rs) = (n_in + pad_in, n_out + pad_out);
            let x = rng.vec(rows * x_rs);
            let w = rng.vec(n_out * n_in);
            let b = rng.vec(n_out);
            let out0 = rng.vec(rows * out_rs);
            for (bias, acc) in [
                (None, false),
                (Some(&b[..]), false),
                (Some(&b[..]), true),
                (None, true),
            ] {
                let mut want = out0.clone();
                for r in 0..rows {
                    for j in 0..n_out {
                        let mut s = if acc {
                            out0[r * out_rs + j] as f64
                        } else {
                            0.0
                        };
                        s += bias.map_or(0.0, |b| b[j] as f64);
                        for k in 0..n_in {
                            s += x[r * x_rs + k] as f64 * w[j * n_in + k] as f64;
                        }
                        want[r * out_rs + j] = s as f32;
                    }
                }
                let mut got = out0.clone();
                linear(&x, x_rs, rows, n_in, &w, n_out, bias, &mut got, out_rs, acc);
                // Padding between rows keeps its old values (they are in `want` as well).
                assert!(
                    rel_l2(&got, &want) <= 1e-6,
                    "{rows}×{n_in}→{n_out} bias {} acc {acc}",
                    bias.is_some()
                );
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let mut rng = Rng::new(22);
        let (rows, n_in, n_out) = (300, 256, 320);
        let x = rng.vec(rows * n_in);
        let w = rng.vec(n_out * n_in);
        let b = rng.vec(n_out);
        let run = || {
            let mut out = vec![0f32; rows * n_out];
            linear(
                &x,
                n_in,
                rows,
                n_in,
                &w,
                n_out,
                Some(&b),
                &mut out,
                n_out,
                false,
            );
            out
        };
        let (one, two) = (in_pool(1, run), in_pool(2, run));
        assert!(rel_l2(&one, &two) <= 1e-6);
    }
}
