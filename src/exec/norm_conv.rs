//! GroupNorm(+SiLU) followed by a convolution as one op where the backend folds the
//! normalisation into the convolution's input load ([`Backend::folds_group_norm_into_conv`]:
//! the CUDA tensor-core path), else the two ops as before (in place where the input is owned).

use super::{Conv, Exec, Norm, Tensor};
use crate::backend::{Backend, GroupNormArgs};
use crate::error::{Error, Result};

impl<B: Backend> Exec<'_, B> {
    /// `conv(GroupNorm(x)[+SiLU])`, `x` kept.
    pub fn group_norm_conv2d(
        &mut self,
        x: &Tensor,
        n: &Norm<B>,
        silu: bool,
        conv: &Conv<B>,
    ) -> Result<Tensor> {
        if self.folds(conv) {
            return self.folded(x, n, silu, conv);
        }
        let h = self.group_norm(x, n, silu)?;
        self.conv2d(&h, conv)
    }

    /// `conv(GroupNorm(x)[+SiLU])`, `x` consumed (normalised in place when not folded).
    pub fn group_norm_conv2d_(
        &mut self,
        x: Tensor,
        n: &Norm<B>,
        silu: bool,
        conv: &Conv<B>,
    ) -> Result<Tensor> {
        if self.folds(conv) {
            return self.folded(&x, n, silu, conv);
        }
        let h = self.group_norm_(x, n, silu)?;
        self.conv2d(&h, conv)
    }

    /// Runtime LoRA has its own kernels: those convolutions take the two ops.
    fn folds(&self, conv: &Conv<B>) -> bool {
        conv.lora.is_none() && self.backend.folds_group_norm_into_conv()
    }

    fn folded(&mut self, x: &Tensor, n: &Norm<B>, silu: bool, conv: &Conv<B>) -> Result<Tensor> {
        let (c, h, w) = x.chw()?;
        if c != conv.p.c_in || n.gamma.shape != [c] {
            return Err(Error::InvalidArgument(format!(
                "group norm {:?} then conv {:?} on {:?}",
                n.gamma.shape, conv.p, x.shape
            )));
        }
        let (ho, wo) = conv.p.out_hw(h, w);
        let mut out = self.alloc(&[conv.p.c_out, ho, wo])?;
        // The normalised input is unscaled; a pre-scaled x only changes ε (see prescale.rs).
        out.scale = conv.prescale;
        let scales = (conv.prescale, conv.prescale);
        let gn = GroupNormArgs {
            groups: n.groups,
            eps: n.eps * x.scale * x.scale,
            gamma: &n.gamma.w,
            beta: &n.beta.w,
            silu,
        };
        let len = self.backend.group_norm_conv2d_scratch(&conv.p, h, w);
        let scratch = self.scratch(len)?;
        let (xv, ov, sv) = (x.view, out.view, scratch.view);
        let bias = conv.b.as_ref().map(|p| &p.w);
        self.label_next(|| super::profile::conv_label(&conv.p, h, w, "+norm"));
        self.launch(|b, a| {
            b.group_norm_conv2d(
                a, xv, h, w, &gn, &conv.p, &conv.w.w, bias, scales, ov, sv, false,
            )
        })?;
        drop(scratch);
        self.record(&conv.name, &out)?;
        Ok(out)
    }
}
