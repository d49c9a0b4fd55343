//! Inputs shared by the CPU kernel benches.

/// Deterministic values in [-1, 1): realistic bit patterns without a random-number dependency.
pub fn values(seed: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i ^ seed).wrapping_mul(0x9E37_79B9).wrapping_add(seed) % 2001;
            h as f32 / 1000.0 - 1.0
        })
        .collect()
}
