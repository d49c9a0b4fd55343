//! PyTorch `F.interpolate(mode="bicubic", align_corners=False, antialias=True)` — the resize
//! transformers' `Dinov2WithRegistersModel` applies to its position embeddings. Separable; per
//! output index the taps cover `center ± support` with `support = 2·max(scale, 1)`, weights from
//! the cubic kernel with a = −0.5 (stretched by `max(scale, 1)` when shrinking), taps outside the
//! image dropped and the rest renormalised (no border clamping, unlike the plain bicubic).

/// Taps of one output index: first input index and weights.
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

fn cubic(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Weights in f32 with PyTorch's order of operations (`_compute_indices_weights_aa`).
fn taps(n_in: usize, n_out: usize) -> Vec<Taps> {
    let scale = n_in as f32 / n_out as f32;
    let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..n_out)
        .map(|i| {
            let center = scale * (i as f32 + 0.5);
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).clamp(0, n_in as i64) as usize;
            let mut weights: Vec<f32> = (lo..hi)
                .map(|j| cubic((j as f32 - center + 0.5) * invscale))
                .collect();
            let total: f32 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            Taps { start: lo, weights }
        })
        .collect()
}

/// Floats of scratch [`bicubic_antialias`] needs.
pub fn scratch_len(c: usize, h: usize, ow: usize) -> usize {
    c * h * ow
}

/// `x [c, h, w] → out [c, oh, ow]`: width pass into `scratch [c, h, ow]`, then height pass.
#[allow(clippy::too_many_arguments)]
pub fn bicubic_antialias(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (tw, th) = (taps(w, ow), taps(h, oh));
    let tmp = &mut scratch[..c * h * ow];
    for (src, dst) in x.chunks_exact(w).zip(tmp.chunks_exact_mut(ow)) {
        for (d, t) in dst.iter_mut().zip(&tw) {
            *d = t
                .weights
                .iter()
                .zip(&src[t.start..])
                .map(|(wt, v)| wt * v)
                .sum();
        }
    }
    for ch in 0..c {
        let plane = &tmp[ch * h * ow..(ch + 1) * h * ow];
        for (o, t) in th.iter().enumerate() {
            let dst = &mut out[(ch * oh + o) * ow..(ch * oh + o + 1) * ow];
            dst.fill(0.0);
            for (k, wt) in t.weights.iter().enumerate() {
                let row = &plane[(t.start + k) * ow..(t.start + k + 1) * ow];
                dst.iter_mut().zip(row).for_each(|(d, v)| *d += wt * v);
            }
        }
    }
}
