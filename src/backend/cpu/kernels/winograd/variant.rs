//! The two Winograd variants and their transforms: F(2×2, 3×3) and F(4×4, 3×3).
//!
//! F(m×m, 3×3) computes an m×m output tile from an n×n input patch (n = m + 2) with n² products
//! per channel pair instead of 9m²: `Y = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A`. The matrices come from
//! Toom–Cook interpolation at n − 1 finite points and infinity; F(2×2) uses 0, ±1 (Lavin & Gray,
//! 2016), F(4×4) uses 0, ±1, ½, −2, which gives about two thirds of the rounding error of the
//! usual 0, ±1, ±2 (Barabasz et al., "Error analysis and improving the accuracy of Winograd
//! convolution", 2020). Measured relative L2 error of one 256-channel convolution against f64
//! (numpy, f32 arithmetic throughout): direct 3.0e-7, F(2×2) 4.7e-7, F(4×4) 2.0e-6 (0, ±1, ±2:
//! 3.1e-6).
//!
//! Every transform is a sum of a few rows scaled by constants, applied along a whole tile row
//! at a time ([`combine`]), so each step is a contiguous loop the compiler vectorises. Sums
//! run in a fixed order, so results do not depend on the thread count.

/// One variant: its tile size and matrices (padded to F(4×4)'s sizes).
pub(crate) struct Variant {
    /// Output tile side m; the input patch is n = m + 2.
    pub m: usize,
    /// Bᵀ (n×n) and Aᵀ (m×n) as given (the tests check them; the kernels use the terms).
    #[cfg_attr(not(test), allow(dead_code))]
    bt_matrix: [[f32; 6]; 6],
    #[cfg_attr(not(test), allow(dead_code))]
    at_matrix: [[f32; 6]; 4],
    /// Their rows without zeros: the transforms' sums.
    pub(super) bt: [Terms; 6],
    pub(super) at: [Terms; 4],
    /// G, n×3, in f64: its entries (⅓, 16/15, …) are rounded once, after the transform.
    g: [[f64; 3]; 6],
    pub name: &'static str,
}

/// F(2×2, 3×3), points 0, 1, −1 and ∞.
pub(crate) static F2: Variant = Variant::new(
    2,
    [
        [1.0, 0.0, -1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, -1.0, 0.0, 0.0],
        [0.0; 6],
        [0.0; 6],
    ],
    [
        [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, -1.0, -1.0, 0.0, 0.0],
        [0.0; 6],
        [0.0; 6],
    ],
    [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
        [0.0; 3],
        [0.0; 3],
    ],
    "F(2×2, 3×3)",
);

/// F(4×4, 3×3), points 0, 1, −1, ½, −2 and ∞.
pub(crate) static F4: Variant = Variant::new(
    4,
    [
        [1.0, -1.5, -2.0, 1.5, 1.0, 0.0],
        [0.0, -1.0, 0.5, 2.5, 1.0, 0.0],
        [0.0, 1.0, -2.5, 0.5, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 0.5, -1.0, -0.5, 1.0, 0.0],
        [0.0, 1.0, -1.5, -2.0, 1.5, 1.0],
    ],
    [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 0.5, -2.0, 0.0],
        [0.0, 1.0, 1.0, 0.25, 4.0, 0.0],
        [0.0, 1.0, -1.0, 0.125, -8.0, 1.0],
    ],
    [
        [1.0, 0.0, 0.0],
        [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
        [-1.0 / 3.0, 1.0 / 3.0, -1.0 / 3.0],
        [-16.0 / 15.0, -8.0 / 15.0, -4.0 / 15.0],
        [1.0 / 15.0, -2.0 / 15.0, 4.0 / 15.0],
        [0.0, 0.0, 1.0],
    ],
    "F(4×4, 3×3)",
);

/// At most six nonzero `(coefficient, index)` pairs of a matrix row.
#[derive(Clone, Copy)]
pub(super) struct Terms {
    pairs: [(f32, usize); 6],
    len: usize,
}

impl Terms {
    const fn of(row: &[f32; 6]) -> Terms {
        let mut t = Terms {
            pairs: [(0.0, 0); 6],
            len: 0,
        };
        let mut i = 0;
        while i < 6 {
            if row[i] != 0.0 {
                t.pairs[t.len] = (row[i], i);
                t.len += 1;
            }
            i += 1;
        }
        t
    }
}

/// Columns of weights transformed together (f64 vectors on the stack).
const WEIGHT_CHUNK: usize = 32;

impl Variant {
    const fn new(
        m: usize,
        bt_matrix: [[f32; 6]; 6],
        at_matrix: [[f32; 6]; 4],
        g: [[f64; 3]; 6],
        name: &'static str,
    ) -> Variant {
        let mut bt = [Terms::of(&[0.0; 6]); 6];
        let mut at = [Terms::of(&[0.0; 6]); 4];
        let mut i = 0;
        while i < 6 {
            bt[i] = Terms::of(&bt_matrix[i]);
            if i < 4 {
                at[i] = Terms::of(&at_matrix[i]);
            }
            i += 1;
        }
        Variant {
            m,
            bt_matrix,
            at_matrix,
            bt,
            at,
            g,
            name,
        }
    }

    /// Input patch side.
    pub fn n(&self) -> usize {
        self.m + 2
    }

    /// Products per channel pair and tile: the number of GEMMs of a block.
    pub fn points(&self) -> usize {
        self.n() * self.n()
    }

    /// `u[ξ·c_in + ci]` = (G·g·Gᵀ)[ξ] (ξ = i·n + j) of the 3×3 kernel `g` of input channel `ci`
    /// of one output channel (`weight` holds that channel's `c_in` kernels), in f64, rounded
    /// once; a few dozen input channels at a time, so every loop runs along channels.
    /// `#[inline(always)]`: its one caller wraps it in `simd::vectorized`, whose AVX2 copy only
    /// widens what is inlined into it (out of line, this ran 2 doubles wide).
    #[inline(always)]
    pub(super) fn transform_weights(&self, weight: &[f32], c_in: usize, u: &mut [f32]) {
        let n = self.n();
        let mut g = [[0f64; WEIGHT_CHUNK]; 9];
        let mut t = [[[0f64; WEIGHT_CHUNK]; 3]; 6];
        for c0 in (0..c_in).step_by(WEIGHT_CHUNK) {
            let len = WEIGHT_CHUNK.min(c_in - c0);
            for (l, k) in weight[c0 * 9..][..len * 9].chunks_exact(9).enumerate() {
                for (e, &v) in k.iter().enumerate() {
                    g[e][l] = v as f64;
                }
            }
            // t = G·g (n×3 per channel), then U = t·Gᵀ.
            for (ti, gi) in t.iter_mut().zip(&self.g).take(n) {
                for (j, tij) in ti.iter_mut().enumerate() {
                    for l in 0..WEIGHT_CHUNK {
                        tij[l] = gi[0] * g[j][l] + gi[1] * g[3 + j][l] + gi[2] * g[6 + j][l];
                    }
                }
            }
            for (i, ti) in t.iter().enumerate().take(n) {
                for (j, gj) in self.g.iter().enumerate().take(n) {
                    let dst = &mut u[(i * n + j) * c_in + c0..][..len];
                    for (l, d) in dst.iter_mut().enumerate() {
                        *d = (ti[0][l] * gj[0] + ti[1][l] * gj[1] + ti[2][l] * gj[2]) as f32;
                    }
                }
            }
        }
    }
}

/// `dst[k] = add + Σ c·src(i)[k]` over the `(c, i)` of `terms`, summed in their order.
#[inline(always)]
pub(super) fn combine<'a>(
    dst: &mut [f32],
    terms: Terms,
    src: impl Fn(usize) -> &'a [f32],
    add: f32,
) {
    let len = dst.len();
    let mut c = [0f32; 6];
    let mut s: [&[f32]; 6] = [&[]; 6];
    for (t, &(coef, i)) in terms.pairs[..terms.len].iter().enumerate() {
        c[t] = coef;
        s[t] = &src(i)[..len];
    }
    match terms.len {
        1 => sum::<1>(dst, &c, &s, add),
        2 => sum::<2>(dst, &c, &s, add),
        3 => sum::<3>(dst, &c, &s, add),
        4 => sum::<4>(dst, &c, &s, add),
        5 => sum::<5>(dst, &c, &s, add),
        6 => sum::<6>(dst, &c, &s, add),
        _ => dst.fill(add),
    }
}

/// [`combine`] for `N` terms, a loop the compiler vectorises.
#[inline(always)]
fn sum<const N: usize>(dst: &mut [f32], c: &[f32; 6], s: &[&[f32]; 6], add: f32) {
    let len = dst.len();
    let s: [&[f32]; N] = std::array::from_fn(|t| &s[t][..len]);
    for (k, d) in dst.iter_mut().enumerate() {
        let mut v = add;
        for t in 0..N {
            v += c[t] * s[t][k];
        }
        *d = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both variants compute an exact 1-D correlation (f64 inputs, tiny rounding only).
    #[test]
    fn one_dimensional_transform_is_a_correlation() {
        for v in [&F2, &F4] {
            let (m, n) = (v.m, v.n());
            let d: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7 - 1.3).sin()).collect();
            let g = [0.3f64, -1.1, 0.45];
            let gt: Vec<f64> = (0..n)
                .map(|i| (0..3).map(|k| v.g[i][k] * g[k]).sum())
                .collect();
            let dt: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| v.bt_matrix[i][j] as f64 * d[j]).sum())
                .collect();
            for o in 0..m {
                let y: f64 = (0..n)
                    .map(|i| v.at_matrix[o][i] as f64 * gt[i] * dt[i])
                    .sum();
                let want: f64 = (0..3).map(|k| d[o + k] * g[k]).sum();
                assert!(
                    (y - want).abs() < 1e-12,
                    "{} output {o}: {y} vs {want}",
                    v.name
                );
            }
        }
    }
}
