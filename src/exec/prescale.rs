//! f16 pre-scales: a tensor may be stored as its true values × a power of two
//! ([`Tensor::scale`]) so that it fits f16's ±65504. A convolution whose f32 output range would
//! overflow (recorded by `f2idiff calibrate`, stored in the pack) writes its output × its
//! `prescale`; the scale then travels with the tensor:
//! - convolutions take any input scale (`alpha` = out scale / in scale, the bias × out scale,
//!   both in the kernel's f32 epilogue), and an accumulating one first brings the output
//!   down to the smaller of its scale and the layer's;
//! - GroupNorm / LayerNorm are invariant to it (ε × scale², exact for powers of two), so their
//!   output is unscaled;
//! - residual adds and concatenations work at the smallest scale of their inputs (the larger
//!   ones brought down: never up, which could overflow);
//! - resizes, crops, pads and copies keep it; reading a tensor back divides it out in f32;
//! - every other op refuses a scaled input with [`Error::Numeric`] (the pipeline then reruns
//!   the tile in f32).
//!
//! Powers of two make the scaling itself exact: in f32 (the CPU) a pre-scaled run differs from
//! a plain one only by where the bias is rounded in (tests/cuda_f16_safety.rs).

use super::{Conv, Exec, Tensor};
use crate::backend::Backend;
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The largest |true value| of each convolution's output, by layer name.
pub type Ranges = Rc<RefCell<BTreeMap<String, f32>>>;

impl<B: Backend> Exec<'_, B> {
    /// Records every convolution's output range into `ranges` from now on (calibration; reads
    /// each output back, so only for calibration runs).
    pub fn record_ranges(&mut self, ranges: Ranges) {
        self.ranges = Some(ranges);
    }

    /// Records `t`'s range under `name` when recording.
    pub(super) fn record(&mut self, name: &str, t: &Tensor) -> Result<()> {
        let Some(ranges) = self.ranges.clone() else {
            return Ok(());
        };
        if self.is_planning() {
            return Ok(());
        }
        let max = self.read(t)?.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let mut r = ranges.borrow_mut();
        let e = r.entry(name.to_string()).or_insert(0.0);
        *e = e.max(max);
        Ok(())
    }

    /// Refuses pre-scaled inputs for `op` (it has no scale-aware form).
    pub(super) fn unscaled(op: &str, inputs: &[&Tensor]) -> Result<()> {
        match inputs.iter().find(|t| t.scale != 1.0) {
            None => Ok(()),
            Some(t) => Err(Error::Numeric(format!(
                "{op}: input pre-scaled ×{} for f16 has no scale-aware kernel",
                t.scale
            ))),
        }
    }

    /// Brings `t` down to `scale` in place when its own is larger; returns its scale after.
    pub(super) fn shrink_to(&mut self, t: &mut Tensor, scale: f32) -> Result<f32> {
        if t.scale > scale {
            let (v, f) = (t.view, scale / t.scale);
            self.launch(|b, a| b.affine(a, v, 0.0, f, 0.0))?;
            t.scale = scale;
        }
        Ok(t.scale)
    }

    /// `x += y` at the smaller of their scales (`y` brought down in a copy when its scale is
    /// the larger: it may be needed unscaled elsewhere).
    pub(super) fn add_scaled(&mut self, x: &mut Tensor, y: &Tensor) -> Result<()> {
        let s = self.shrink_to(x, y.scale)?;
        if y.scale == s {
            let (xv, yv) = (x.view, y.view);
            return self.launch(|b, a| b.add(a, xv, yv));
        }
        let mut tmp = self.alloc(&y.shape)?;
        let (src, dst) = (y.view, tmp.view);
        self.launch(|b, a| b.copy(a, src, dst))?;
        tmp.scale = y.scale;
        self.shrink_to(&mut tmp, s)?;
        let (xv, tv) = (x.view, tmp.view);
        self.launch(|b, a| b.add(a, xv, tv))
    }

    /// The output scale of `conv` writing into `out` from `x`, and (`alpha`, `beta`) for its
    /// kernel; an accumulated output is brought down to the layer's scale first.
    pub(super) fn conv_scales(
        &mut self,
        x: &Tensor,
        conv: &Conv<B>,
        out: &mut Tensor,
        accumulate: bool,
    ) -> Result<(f32, f32)> {
        let target = if accumulate {
            self.shrink_to(out, conv.prescale)?
        } else {
            out.scale = conv.prescale;
            conv.prescale
        };
        if target != 1.0 && conv.lora.is_some() {
            return Err(Error::Numeric(format!(
                "{}: f16 pre-scale on a runtime-LoRA convolution",
                conv.name
            )));
        }
        Ok((target / x.scale, target))
    }
}
