//! f16 pre-scales from f32 activation ranges (`f2idiff calibrate`): the model runs on the CPU in
//! f32 over calibration photos (bright, high-contrast ones find the largest activations) with
//! every convolution's output range recorded; a convolution whose largest |value| exceeds
//! f16's maximum divided by a headroom factor gets the power of two that brings it below,
//! stored in the pack's header (`f16_prescales`). Backends storing f16 apply them (see
//! `exec/prescale.rs`); tiles that overflow anyway are rerun in f32 (`pipeline/fallback.rs`).

use crate::backend::cpu::CpuBackend;
use crate::engine::{MAX_PRESCALE_LOG2, Networks, run_planned};
use crate::error::{Error, Result};
use crate::pack::{Pack, TensorPlan, write_pack};
use crate::pipeline::one_step;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

/// f16's largest finite value.
pub const F16_MAX: f32 = 65504.0;

/// An image of the calibration set: planar RGB in [0, 1].
pub struct Sample {
    pub data: Vec<f32>,
    pub width: usize,
    pub height: usize,
}

impl Sample {
    /// The centre `side × side` (at most) of `[3, height, width]` planar RGB: the tile the
    /// calibration runs (the model's ranges depend on content, not on the image's size).
    pub fn centre(data: &[f32], width: usize, height: usize, side: usize) -> Sample {
        let (w, h) = (width.min(side), height.min(side));
        let (x0, y0) = ((width - w) / 2, (height - h) / 2);
        let mut out = Vec::with_capacity(3 * w * h);
        for c in 0..3 {
            for y in y0..y0 + h {
                let row = (c * height + y) * width;
                out.extend_from_slice(&data[row + x0..row + x0 + w]);
            }
        }
        Sample {
            data: out,
            width: w,
            height: h,
        }
    }
}

/// The largest |output| of every convolution over `samples`, by full layer name, from f32 runs
/// of the whole model (one tile per sample) on `backend`.
pub fn ranges(
    nets: &Networks<CpuBackend>,
    backend: &CpuBackend,
    samples: &[Sample],
) -> Result<BTreeMap<String, f32>> {
    let ranges = Rc::new(RefCell::new(BTreeMap::new()));
    for s in samples {
        run_planned(backend, |cx| {
            cx.record_ranges(ranges.clone());
            let x = cx.input(&[3, s.height, s.width], &s.data)?;
            drop(one_step(nets, cx, &x, None)?);
            Ok(())
        })?;
    }
    Ok(ranges.take())
}

/// `k` for every layer whose range exceeds `F16_MAX / 2^headroom_log2`: the smallest with
/// `range · 2⁻ᵏ` below that bound.
pub fn prescales(ranges: &BTreeMap<String, f32>, headroom_log2: u32) -> BTreeMap<String, u32> {
    let bound = F16_MAX / (headroom_log2 as f32).exp2();
    ranges
        .iter()
        .filter(|(_, r)| **r > bound)
        .map(|(name, r)| {
            let k = (r / bound).log2().ceil().max(1.0) as u32;
            (name.clone(), k.min(MAX_PRESCALE_LOG2))
        })
        .collect()
}

/// Writes `pack` with `scales` as its f16 pre-scales to `out` (every tensor copied as is).
pub fn write_prescaled(pack: &Pack, scales: BTreeMap<String, u32>, out: &Path) -> Result<u64> {
    if out == pack.path() {
        return Err(Error::InvalidArgument(format!(
            "{}: the calibrated pack must be a new file",
            out.display()
        )));
    }
    let mut header = pack.header().clone();
    header.f16_prescales = scales;
    let plans: Vec<TensorPlan> = pack
        .entries()
        .iter()
        .map(|e| TensorPlan {
            name: e.name.clone(),
            dtype: e.dtype,
            shape: e.shape.clone(),
        })
        .collect();
    write_pack(out, &header, &plans, |i| {
        let name = &plans[i].name;
        Ok(pack.require(name)?.data.to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_above_the_bound_get_the_power_of_two_that_brings_them_below() {
        let bound = F16_MAX / 8.0; // headroom 2³
        let ranges = BTreeMap::from([
            ("small".to_string(), bound),
            ("just".to_string(), bound * 1.01),
            ("huge".to_string(), bound * 1000.0),
        ]);
        let k = prescales(&ranges, 3);
        assert_eq!(k.get("small"), None);
        assert_eq!(k["just"], 1);
        assert_eq!(k["huge"], 10); // 1000 → 2¹⁰ = 1024
    }

    #[test]
    fn the_centre_crop_keeps_planes_apart() {
        // 3 × 2 × 4: value = 100·c + 10·y + x.
        let data: Vec<f32> = (0..3)
            .flat_map(|c| {
                (0..2).flat_map(move |y| (0..4).map(move |x| (100 * c + 10 * y + x) as f32))
            })
            .collect();
        let s = Sample::centre(&data, 4, 2, 2);
        assert_eq!((s.width, s.height), (2, 2));
        assert_eq!(
            s.data,
            [
                1., 2., 11., 12., 101., 102., 111., 112., 201., 202., 211., 212.
            ]
        );
    }
}
