//! A [`Backend`] that computes nothing and counts the multiply-accumulates of the ops that carry
//! the work: convolutions, linear maps and attention's two products. Running a network on it
//! (the same model code, with the shapes its config gives) yields the FLOP figure the bench
//! divides by its time — counted from what the networks actually execute, not from a separate
//! formula that could drift from them. Norms, activations, resizes and copies are not counted
//! (a few per cent of the bytes, well under 1% of the FLOPs of any full-size stage).

use crate::backend::{Backend, Conv2d, Glu, HostData, Rows, View};
use crate::error::Result;
use std::cell::Cell;

/// MACs by op kind. FLOPs = 2 · MACs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Macs {
    pub conv: u64,
    pub linear: u64,
    pub attention: u64,
}

impl Macs {
    pub fn total(&self) -> u64 {
        self.conv + self.linear + self.attention
    }
    pub fn flops(&self) -> u64 {
        2 * self.total()
    }
}

/// The counting backend. Weights are shapeless placeholders: load networks on it with
/// [`NoWeights`], which hands out no values at all.
#[derive(Default)]
pub struct FlopCounter {
    macs: Cell<Macs>,
}

impl FlopCounter {
    pub fn macs(&self) -> Macs {
        self.macs.get()
    }
    fn add(&self, f: impl FnOnce(&mut Macs)) {
        let mut m = self.macs.get();
        f(&mut m);
        self.macs.set(m);
    }
}

/// A weight source with no values (for [`FlopCounter`], which never reads them).
pub struct NoWeights;

impl crate::model::WeightSource for NoWeights {
    fn get(&self, _name: &str, _shape: &[usize]) -> Result<HostData> {
        Ok(HostData::F32(Vec::new()))
    }
}

fn u(n: usize) -> u64 {
    n as u64
}

impl Backend for FlopCounter {
    type Arena = ();
    type Weight = ();

    fn name(&self) -> String {
        "flop counter".into()
    }
    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }
    fn alloc_arena(&self, _elems: usize) -> Result<()> {
        Ok(())
    }
    fn upload(&self, _shape: &[usize], _data: HostData) -> Result<()> {
        Ok(())
    }
    fn write(&self, _a: &mut (), _dst: View, _src: &[f32]) -> Result<()> {
        Ok(())
    }
    fn read(&self, _a: &(), _src: View, _dst: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn conv2d_scratch(&self, _p: &Conv2d, _h: usize, _w: usize) -> usize {
        0
    }
    fn conv2d(
        &self,
        _a: &mut (),
        p: &Conv2d,
        _x: View,
        h: usize,
        w: usize,
        _weight: &(),
        _bias: Option<&()>,
        _out: View,
        _scratch: View,
        _accumulate: bool,
    ) -> Result<()> {
        let (ho, wo) = p.out_hw(h, w);
        let macs = u(p.c_out) * u(p.c_in) * u(p.kh * p.kw) * u(ho * wo);
        self.add(|m| m.conv += macs);
        Ok(())
    }
    fn group_norm(
        &self,
        _a: &mut (),
        _x: View,
        _out: View,
        _c: usize,
        _hw: usize,
        _groups: usize,
        _eps: f32,
        _gamma: &(),
        _beta: &(),
        _silu: bool,
    ) -> Result<()> {
        Ok(())
    }
    fn layer_norm(
        &self,
        _a: &mut (),
        _x: View,
        _out: View,
        _rows: usize,
        _d: usize,
        _eps: f32,
        _gamma: &(),
        _beta: &(),
    ) -> Result<()> {
        Ok(())
    }
    fn linear(
        &self,
        _a: &mut (),
        _x: View,
        rows: usize,
        n_in: usize,
        _w: &(),
        n_out: usize,
        _bias: Option<&()>,
        _out: View,
        _accumulate: bool,
    ) -> Result<()> {
        self.add(|m| m.linear += u(rows) * u(n_in) * u(n_out));
        Ok(())
    }
    fn attention_scratch(&self, _tq: usize, _tk: usize, _heads: usize, _head_dim: usize) -> usize {
        0
    }
    fn attention(
        &self,
        _a: &mut (),
        _q: Rows,
        _k: Rows,
        _v: Rows,
        tq: usize,
        tk: usize,
        heads: usize,
        head_dim: usize,
        _scale: f32,
        _out: View,
        _scratch: View,
    ) -> Result<()> {
        // Q·Kᵀ and P·V: tq·tk·head_dim MACs each, per head.
        self.add(|m| m.attention += 2 * u(heads) * u(tq) * u(tk) * u(head_dim));
        Ok(())
    }
    fn silu(&self, _a: &mut (), _x: View) -> Result<()> {
        Ok(())
    }
    fn gelu(&self, _a: &mut (), _x: View, _tanh_approx: bool) -> Result<()> {
        Ok(())
    }
    fn glu(
        &self,
        _a: &mut (),
        _kind: Glu,
        _x: View,
        _rows: usize,
        _d: usize,
        _out: View,
    ) -> Result<()> {
        Ok(())
    }
    fn add(&self, _a: &mut (), _x: View, _y: View) -> Result<()> {
        Ok(())
    }
    fn add_weight(&self, _a: &mut (), _x: View, _w: &()) -> Result<()> {
        Ok(())
    }
    fn add_channel_bias(&self, _a: &mut (), _x: View, _c: usize, _v: View) -> Result<()> {
        Ok(())
    }
    fn scale_add(&self, _a: &mut (), _x: View, _y: View, _s: &(), _d: usize) -> Result<()> {
        Ok(())
    }
    fn affine(&self, _a: &mut (), _x: View, _b: f32, _m: f32, _c: f32) -> Result<()> {
        Ok(())
    }
    fn upsample_nearest(
        &self,
        _a: &mut (),
        _x: View,
        _c: usize,
        _h: usize,
        _w: usize,
        _oh: usize,
        _ow: usize,
        _out: View,
    ) -> Result<()> {
        Ok(())
    }
    fn bicubic(
        &self,
        _a: &mut (),
        _x: View,
        _c: usize,
        _h: usize,
        _w: usize,
        _oh: usize,
        _ow: usize,
        _scale_factor: Option<(f64, f64)>,
        _antialias: bool,
        _out: View,
        _scratch: View,
    ) -> Result<()> {
        Ok(())
    }
    fn bicubic_scratch(&self, _c: usize, _h: usize, _ow: usize, _antialias: bool) -> usize {
        0
    }
    fn clamp(&self, _a: &mut (), _x: View, _lo: f32, _hi: f32) -> Result<()> {
        Ok(())
    }
    fn channel_normalize(&self, _a: &mut (), _x: View, _mean: &[f32], _std: &[f32]) -> Result<()> {
        Ok(())
    }
    fn pad_reflect(
        &self,
        _a: &mut (),
        _x: View,
        _c: usize,
        _h: usize,
        _w: usize,
        _oh: usize,
        _ow: usize,
        _out: View,
    ) -> Result<()> {
        Ok(())
    }
    fn crop(
        &self,
        _a: &mut (),
        _x: View,
        _c: usize,
        _h: usize,
        _w: usize,
        _oh: usize,
        _ow: usize,
        _out: View,
    ) -> Result<()> {
        Ok(())
    }
    fn x0_from_eps(
        &self,
        _a: &mut (),
        _z: View,
        _eps: View,
        _c1: f32,
        _c2: f32,
        _out: View,
    ) -> Result<()> {
        Ok(())
    }
    fn transpose(
        &self,
        _a: &mut (),
        _x: View,
        _rows: usize,
        _cols: usize,
        _out: View,
    ) -> Result<()> {
        Ok(())
    }
    fn copy(&self, _a: &mut (), _src: View, _dst: View) -> Result<()> {
        Ok(())
    }
    fn copy_weight(&self, _a: &mut (), _w: &(), _dst: View) -> Result<()> {
        Ok(())
    }
    fn timestep_embedding(
        &self,
        _a: &mut (),
        _t: f32,
        _dim: usize,
        _flip_sin_to_cos: bool,
        _freq_shift: f32,
        _out: View,
    ) -> Result<()> {
        Ok(())
    }
}
