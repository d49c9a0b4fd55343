//! Pixels in and out: interleaved RGB u8 / u16 ↔ planar f32 `[3, H, W]` in [0, 1], and the
//! final quantisation `round(clamp(x, 0, 1) · max)` (round half to even, as `torch.round`).

/// Interleaved RGB u8 → planar f32 in [0, 1].
pub fn rgb8_to_planar(rgb: &[u8], w: usize, h: usize) -> Vec<f32> {
    let hw = w * h;
    let mut out = vec![0.0f32; 3 * hw];
    for (i, px) in rgb.chunks_exact(3).take(hw).enumerate() {
        for c in 0..3 {
            out[c * hw + i] = px[c] as f32 / 255.0;
        }
    }
    out
}

/// Interleaved RGB u16 → planar f32 in [0, 1].
pub fn rgb16_to_planar(rgb: &[u16], w: usize, h: usize) -> Vec<f32> {
    let hw = w * h;
    let mut out = vec![0.0f32; 3 * hw];
    for (i, px) in rgb.chunks_exact(3).take(hw).enumerate() {
        for c in 0..3 {
            out[c * hw + i] = px[c] as f32 / 65535.0;
        }
    }
    out
}

/// `round(clamp(v, 0, 1) · max)`, ties to even (as `torch.round`).
pub fn quantize(v: f32, max: f32) -> f32 {
    (v.clamp(0.0, 1.0) * max).round_ties_even()
}

/// Planar f32 → interleaved RGB u8.
pub fn planar_to_rgb8(x: &[f32], w: usize, h: usize) -> Vec<u8> {
    let hw = w * h;
    (0..hw)
        .flat_map(|i| (0..3).map(move |c| quantize(x[c * hw + i], 255.0) as u8))
        .collect()
}

/// Planar f32 → interleaved RGB u16.
pub fn planar_to_rgb16(x: &[f32], w: usize, h: usize) -> Vec<u16> {
    let hw = w * h;
    (0..hw)
        .flat_map(|i| (0..3).map(move |c| quantize(x[c * hw + i], 65535.0) as u16))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rounding() {
        let rgb: Vec<u8> = (0..2 * 3 * 3).map(|i| (i * 14) as u8).collect();
        let p = rgb8_to_planar(&rgb, 3, 2);
        assert_eq!(planar_to_rgb8(&p, 3, 2), rgb);
        // 0.5/255 above 0 rounds to even (0); 1.5/255 rounds to 2.
        assert_eq!(quantize(0.5 / 255.0, 255.0), 0.0);
        assert_eq!(quantize(1.5 / 255.0, 255.0), 2.0);
        assert_eq!(quantize(2.0, 255.0), 255.0);
        assert_eq!(quantize(-1.0, 255.0), 0.0);
        let rgb16: Vec<u16> = vec![0, 1, 65535, 300, 40000, 7];
        assert_eq!(planar_to_rgb16(&rgb16_to_planar(&rgb16, 2, 1), 2, 1), rgb16);
    }
}
