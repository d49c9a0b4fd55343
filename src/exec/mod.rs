//! Running model code on a backend with a planned arena.
//!
//! Model code calls ops on an [`Exec`]; every op infers its output shape, takes its output
//! buffer from the arena and (when running) launches the backend op. The same model code runs
//! twice: once to plan (shapes only, no compute: [`Exec::planning`]), once for real
//! ([`Exec::running`]) with the offsets the plan gave. A [`Tensor`] gives its buffer back when
//! dropped, which is how the planner learns each buffer's last use; ops that consume a tensor
//! and return it (`silu_`, `add_`, …) work in place and cost no buffer at all.

mod norm_conv;
mod prescale;
pub mod profile;

use crate::arena::{Event, Plan};
use crate::backend::{Backend, Conv2d, Glu, HostData, LoraArgs, Rows, View};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::rc::Rc;

/// A parameter on the backend, with its shape.
pub struct Param<B: Backend> {
    pub w: B::Weight,
    pub shape: Vec<usize>,
}

/// A runtime-LoRA pair beside a base weight (packs made with `--lora runtime`, on backends
/// that apply LoRA per call): PEFT's `lora_A` `[r, in, k…]` and `lora_B` `[out, r, 1…]` with
/// `alpha / r` in `b`, scaled by the run's [`Exec::set_lora_scale`] when the op runs.
pub struct Lora<B: Backend> {
    pub a: Param<B>,
    pub b: Param<B>,
    pub rank: usize,
}

impl<B: Backend> Lora<B> {
    fn args(&self, scale: f32) -> LoraArgs<'_, B::Weight> {
        LoraArgs {
            a: &self.a.w,
            b: &self.b.w,
            rank: self.rank,
            scale,
        }
    }
}

/// `nn.Conv2d` with its geometry.
pub struct Conv<B: Backend> {
    pub p: Conv2d,
    pub w: Param<B>,
    pub b: Option<Param<B>>,
    pub lora: Option<Lora<B>>,
    /// f16 pre-scale of the output (a power of two ≤ 1; 1 = none): the output is stored ×
    /// `prescale` so that it fits f16 (see `prescale.rs`).
    pub prescale: f32,
    /// The layer's full name (`vae.decoder.conv_in`), for range recording and messages.
    pub name: String,
}

/// `nn.Linear` (`w` is `[out, in]`).
pub struct Linear<B: Backend> {
    pub w: Param<B>,
    pub b: Option<Param<B>>,
    pub lora: Option<Lora<B>>,
}

impl<B: Backend> Linear<B> {
    pub fn n_in(&self) -> usize {
        self.w.shape[1]
    }
    pub fn n_out(&self) -> usize {
        self.w.shape[0]
    }
}

/// `nn.GroupNorm` / `nn.LayerNorm` affine parameters and settings.
pub struct Norm<B: Backend> {
    pub gamma: Param<B>,
    pub beta: Param<B>,
    pub eps: f32,
    /// GroupNorm groups (unused by LayerNorm).
    pub groups: usize,
}

/// Buffer bookkeeping shared by the tensors of one run. Events are recorded only while
/// planning, so a real run does no bookkeeping allocation.
#[derive(Default)]
struct Tracker {
    recording: bool,
    events: Vec<Event>,
    next: usize,
}

/// An activation in the arena. Dropping it frees its buffer for later ops.
pub struct Tensor {
    id: usize,
    shape: Vec<usize>,
    view: View,
    tracker: Rc<RefCell<Tracker>>,
    /// The stored values are the true ones × `scale` (a power of two; 1 unless an f16
    /// pre-scale applies, see `prescale.rs`).
    scale: f32,
}

impl Tensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn len(&self) -> usize {
        self.view.len
    }
    pub fn is_empty(&self) -> bool {
        self.view.len == 0
    }
    pub fn view(&self) -> View {
        self.view
    }
    /// The f16 pre-scale of the stored values (1 = the true values).
    pub fn scale(&self) -> f32 {
        self.scale
    }
    /// Same buffer, new shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Tensor> {
        if shape.iter().product::<usize>() != self.view.len {
            return Err(Error::InvalidArgument(format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }
    /// `[C, H, W]` dimensions.
    fn chw(&self) -> Result<(usize, usize, usize)> {
        match self.shape[..] {
            [c, h, w] => Ok((c, h, w)),
            _ => Err(Error::InvalidArgument(format!(
                "expected [C, H, W], got {:?}",
                self.shape
            ))),
        }
    }
    /// `[rows, cols]` dimensions (an image `[C, H, W]` counts as `[C, H·W]`).
    fn rows_cols(&self) -> (usize, usize) {
        let rows = self.shape.first().copied().unwrap_or(1);
        (rows, self.view.len / rows.max(1))
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        self.tracker
            .borrow_mut()
            .events
            .push(Event::Free { id: self.id });
    }
}

/// A part of a concatenation along dim 0: an activation or a parameter.
pub enum Part<'a, B: Backend> {
    T(&'a Tensor),
    W(&'a Param<B>),
}

enum Mode<'a, B: Backend> {
    Plan,
    Run {
        arena: &'a mut B::Arena,
        plan: &'a Plan,
    },
}

pub struct Exec<'a, B: Backend> {
    backend: &'a B,
    mode: Mode<'a, B>,
    tracker: Rc<RefCell<Tracker>>,
    /// Scale of runtime-LoRA pairs ([`Lora`]) in this run.
    lora_scale: f32,
    /// Where convolution output ranges are recorded (`f2idiff calibrate`), if anywhere.
    ranges: Option<prescale::Ranges>,
    /// Where op times are added (`f2idiff bench --profile`), if anywhere.
    profile: Option<profile::OpTimes>,
    /// The label of the next op launched while profiling (else its function's name).
    next_label: Option<String>,
}

impl<'a, B: Backend> Exec<'a, B> {
    /// A dry run that records buffer lifetimes (see [`Exec::into_plan`]).
    pub fn planning(backend: &'a B) -> Self {
        Exec {
            backend,
            mode: Mode::Plan,
            tracker: Rc::new(RefCell::new(Tracker {
                recording: true,
                ..Tracker::default()
            })),
            lora_scale: 1.0,
            ranges: None,
            profile: None,
            next_label: None,
        }
    }

    /// A real run on `arena`, laid out by `plan` (made by a dry run of the same code).
    pub fn running(backend: &'a B, arena: &'a mut B::Arena, plan: &'a Plan) -> Self {
        Exec {
            backend,
            mode: Mode::Run { arena, plan },
            tracker: Rc::default(),
            lora_scale: 1.0,
            ranges: None,
            profile: None,
            next_label: None,
        }
    }

    /// Scales the runtime-LoRA pairs of the ops that follow (1 = as trained, 0 = the base
    /// model); merged LoRA is not affected.
    pub fn set_lora_scale(&mut self, scale: f32) {
        self.lora_scale = scale;
    }

    pub fn backend(&self) -> &B {
        self.backend
    }

    pub fn is_planning(&self) -> bool {
        matches!(self.mode, Mode::Plan)
    }

    /// Ends a dry run. All tensors must have been dropped.
    pub fn into_plan(self) -> Result<Plan> {
        let events = std::mem::take(&mut self.tracker.borrow_mut().events);
        Plan::from_events(&events)
    }

    pub fn alloc(&mut self, shape: &[usize]) -> Result<Tensor> {
        let len: usize = shape.iter().product();
        let id = {
            let mut t = self.tracker.borrow_mut();
            let id = t.next;
            t.next += 1;
            if t.recording {
                t.events.push(Event::Alloc { id, len });
            }
            id
        };
        let view = match &self.mode {
            Mode::Plan => View { offset: 0, len },
            Mode::Run { plan, .. } => match plan.slots.get(id) {
                Some(&(offset, planned)) if planned == len => View { offset, len },
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "arena plan does not match this run (allocation {id}, {len} elements): plan for another tile size?"
                    )));
                }
            },
        };
        Ok(Tensor {
            id,
            shape: shape.to_vec(),
            view,
            tracker: self.tracker.clone(),
            scale: 1.0,
        })
    }

    /// Runs `f` on the backend and the arena unless planning: the core ops below, and
    /// backend-specific work outside the [`Backend`] trait (the CUDA device-frame pipeline).
    pub fn launch<F>(&mut self, f: F) -> Result<()>
    where
        F: FnOnce(&B, &mut B::Arena) -> Result<()>,
    {
        let backend = self.backend;
        let Mode::Run { arena, .. } = &mut self.mode else {
            return Ok(());
        };
        let Some(times) = &self.profile else {
            return f(backend, arena);
        };
        let label = self.next_label.take().unwrap_or_else(profile::op_name::<F>);
        backend.synchronize()?;
        let t = std::time::Instant::now();
        f(backend, arena)?;
        backend.synchronize()?;
        profile::add(times, label, t.elapsed().as_secs_f64());
        Ok(())
    }

    /// A new tensor holding `data`.
    pub fn input(&mut self, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = self.alloc(shape)?;
        let v = t.view;
        self.launch(|b, a| b.write(a, v, data))?;
        Ok(t)
    }

    /// The values of `t` (empty while planning).
    pub fn read(&mut self, t: &Tensor) -> Result<Vec<f32>> {
        let v = t.view;
        match &mut self.mode {
            Mode::Plan => Ok(Vec::new()),
            Mode::Run { arena, .. } => {
                let mut out = vec![0.0; v.len];
                self.backend.read(arena, v, &mut out)?;
                // A pre-scaled tensor's true values, in f32 (no overflow there).
                if t.scale != 1.0 {
                    out.iter_mut().for_each(|v| *v /= t.scale);
                }
                Ok(out)
            }
        }
    }

    /// A scratch buffer of `len` elements for the duration of one op.
    fn scratch(&mut self, len: usize) -> Result<Tensor> {
        self.alloc(&[len])
    }

    // ---- convolution and linear maps ----

    pub fn conv2d(&mut self, x: &Tensor, conv: &Conv<B>) -> Result<Tensor> {
        let (_, h, w) = x.chw()?;
        let (ho, wo) = conv.p.out_hw(h, w);
        let mut out = self.alloc(&[conv.p.c_out, ho, wo])?;
        self.conv2d_into(x, conv, &mut out, false)?;
        Ok(out)
    }

    /// `out (+)= conv(x)`: with `accumulate`, adds onto `out` (a fused residual add).
    pub fn conv2d_into(
        &mut self,
        x: &Tensor,
        conv: &Conv<B>,
        out: &mut Tensor,
        accumulate: bool,
    ) -> Result<()> {
        let (c, h, w) = x.chw()?;
        let (ho, wo) = conv.p.out_hw(h, w);
        if c != conv.p.c_in || out.shape != [conv.p.c_out, ho, wo] {
            return Err(Error::InvalidArgument(format!(
                "conv {:?} on {:?} into {:?}",
                conv.p, x.shape, out.shape
            )));
        }
        let scales = self.conv_scales(x, conv, out, accumulate)?;
        let scaled = scales != (1.0, 1.0);
        let kind = match (scaled, &conv.lora) {
            (true, _) => "+scaled",
            (false, Some(_)) => "+lora",
            (false, None) => "",
        };
        self.label_next(|| profile::conv_label(&conv.p, h, w, kind));
        let bias = conv.b.as_ref().map(|p| &p.w);
        let (xv, ov) = (x.view, out.view);
        if scaled {
            let len = self.backend.conv2d_scaled_scratch(&conv.p, h, w);
            let scratch = self.scratch(len)?;
            let sv = scratch.view;
            self.launch(|b, a| {
                b.conv2d_scaled(
                    a, &conv.p, xv, h, w, &conv.w.w, bias, scales, ov, sv, accumulate,
                )
            })?;
        } else if let Some(lora) = &conv.lora {
            let len = self.backend.conv2d_lora_scratch(&conv.p, lora.rank, h, w);
            let scratch = self.scratch(len)?;
            let sv = scratch.view;
            let args = lora.args(self.lora_scale);
            self.launch(|b, a| {
                b.conv2d_lora(
                    a, &conv.p, xv, h, w, &conv.w.w, bias, &args, ov, sv, accumulate,
                )
            })?;
        } else {
            let scratch = self.scratch(self.backend.conv2d_scratch(&conv.p, h, w))?;
            let sv = scratch.view;
            self.launch(|b, a| {
                b.conv2d(a, &conv.p, xv, h, w, &conv.w.w, bias, ov, sv, accumulate)
            })?;
        }
        self.record(&conv.name, out)
    }

    /// `x[rows, in] → [rows, out]`.
    pub fn linear(&mut self, x: &Tensor, l: &Linear<B>) -> Result<Tensor> {
        let (rows, _) = x.rows_cols();
        let mut out = self.alloc(&[rows, l.n_out()])?;
        self.linear_into(x, l, &mut out, false)?;
        Ok(out)
    }

    pub fn linear_into(
        &mut self,
        x: &Tensor,
        l: &Linear<B>,
        out: &mut Tensor,
        accumulate: bool,
    ) -> Result<()> {
        let (rows, cols) = x.rows_cols();
        if cols != l.n_in() || out.shape != [rows, l.n_out()] {
            return Err(Error::InvalidArgument(format!(
                "linear {:?} on {:?} into {:?}",
                l.w.shape, x.shape, out.shape
            )));
        }
        Self::unscaled("linear", &[x])?;
        if accumulate && out.scale != 1.0 {
            // Onto a pre-scaled residual: computed apart, then added at its scale.
            let y = self.linear(x, l)?;
            return self.add_scaled(out, &y);
        }
        let lora = if l.lora.is_some() { "+lora" } else { "" };
        self.label_next(|| format!("linear{lora} {rows}×{cols}→{}", l.n_out()));
        let (xv, ov) = (x.view, out.view);
        let (n_in, n_out, bias) = (l.n_in(), l.n_out(), l.b.as_ref().map(|p| &p.w));
        let Some(lora) = &l.lora else {
            return self
                .launch(|b, a| b.linear(a, xv, rows, n_in, &l.w.w, n_out, bias, ov, accumulate));
        };
        let scratch = self.scratch(self.backend.linear_lora_scratch(rows, lora.rank))?;
        let (sv, args) = (scratch.view, lora.args(self.lora_scale));
        self.launch(|b, a| {
            b.linear_lora(
                a, xv, rows, n_in, &l.w.w, n_out, bias, &args, ov, sv, accumulate,
            )
        })
    }

    // ---- normalisation ----

    /// GroupNorm (optionally fused with SiLU) of `x` `[C, …]` into a new tensor.
    pub fn group_norm(&mut self, x: &Tensor, n: &Norm<B>, silu: bool) -> Result<Tensor> {
        let out = self.alloc(&x.shape)?; // unscaled: the norm divides any scale out
        self.group_norm_views(x, x.view, out.view, n, silu)?;
        Ok(out)
    }

    /// GroupNorm in place.
    pub fn group_norm_(&mut self, mut x: Tensor, n: &Norm<B>, silu: bool) -> Result<Tensor> {
        self.group_norm_views(&x, x.view, x.view, n, silu)?;
        x.scale = 1.0;
        Ok(x)
    }

    fn group_norm_views(
        &mut self,
        x: &Tensor,
        xv: View,
        ov: View,
        n: &Norm<B>,
        silu: bool,
    ) -> Result<()> {
        let (c, hw) = x.rows_cols();
        if n.gamma.shape != [c] {
            return Err(Error::InvalidArgument(format!(
                "group norm {:?} on {:?}",
                n.gamma.shape, x.shape
            )));
        }
        // Scale-invariant: a pre-scaled input only needs ε at the same scale (squared).
        let (groups, eps) = (n.groups, n.eps * x.scale * x.scale);
        self.launch(|b, a| b.group_norm(a, xv, ov, c, hw, groups, eps, &n.gamma.w, &n.beta.w, silu))
    }

    /// LayerNorm over the last dim of `[rows, d]`.
    pub fn layer_norm(&mut self, x: &Tensor, n: &Norm<B>) -> Result<Tensor> {
        let (rows, d) = x.rows_cols();
        if n.gamma.shape != [d] {
            return Err(Error::InvalidArgument(format!(
                "layer norm {:?} on {:?}",
                n.gamma.shape, x.shape
            )));
        }
        let out = self.alloc(&x.shape)?;
        let (xv, ov, eps) = (x.view, out.view, n.eps * x.scale * x.scale);
        self.launch(|b, a| b.layer_norm(a, xv, ov, rows, d, eps, &n.gamma.w, &n.beta.w))?;
        Ok(out)
    }

    // ---- attention ----

    /// Multi-head attention of `q [tq, C]` over `k, v [tk, C]` with `heads` heads of `C/heads`.
    pub fn attention(
        &mut self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
    ) -> Result<Tensor> {
        let (tq, c) = q.rows_cols();
        let (tk, ck) = k.rows_cols();
        if ck != c || v.shape != k.shape || heads == 0 || c % heads != 0 {
            return Err(Error::InvalidArgument(format!(
                "attention q {:?} k {:?} v {:?} heads {heads}",
                q.shape, k.shape, v.shape
            )));
        }
        let hd = c / heads;
        Self::unscaled("attention", &[q, k, v])?;
        let out = self.alloc(&[tq, c])?;
        let scratch = self.scratch(self.backend.attention_scratch(tq, tk, heads, hd))?;
        let rows = |t: &Tensor| Rows {
            view: t.view,
            row_stride: c,
        };
        let (qr, kr, vr, ov, sv) = (rows(q), rows(k), rows(v), out.view, scratch.view);
        let scale = 1.0 / (hd as f32).sqrt();
        self.label_next(|| format!("attention {tq}×{tk}, {heads}×{hd}"));
        self.launch(|b, a| b.attention(a, qr, kr, vr, tq, tk, heads, hd, scale, ov, sv))?;
        Ok(out)
    }

    // ---- elementwise, in place ----

    pub fn silu_(&mut self, x: Tensor) -> Result<Tensor> {
        Self::unscaled("silu", &[&x])?;
        let v = x.view;
        self.launch(|b, a| b.silu(a, v))?;
        Ok(x)
    }

    pub fn gelu_(&mut self, x: Tensor, tanh_approx: bool) -> Result<Tensor> {
        Self::unscaled("gelu", &[&x])?;
        let v = x.view;
        self.launch(|b, a| b.gelu(a, v, tanh_approx))?;
        Ok(x)
    }

    /// `x += y`.
    pub fn add_(&mut self, mut x: Tensor, y: &Tensor) -> Result<Tensor> {
        if x.view.len != y.view.len {
            return Err(Error::InvalidArgument(format!(
                "add {:?} + {:?}",
                x.shape, y.shape
            )));
        }
        self.add_scaled(&mut x, y)?;
        Ok(x)
    }

    /// `x += p` (same number of elements).
    pub fn add_param_(&mut self, x: Tensor, p: &Param<B>) -> Result<Tensor> {
        if x.view.len != p.shape.iter().product::<usize>() {
            return Err(Error::InvalidArgument(format!(
                "add {:?} + param {:?}",
                x.shape, p.shape
            )));
        }
        Self::unscaled("add_param", &[&x])?;
        let xv = x.view;
        self.launch(|b, a| b.add_weight(a, xv, &p.w))?;
        Ok(x)
    }

    /// `x[c, :] += v[c]`.
    pub fn add_channel_bias_(&mut self, x: Tensor, v: &Tensor) -> Result<Tensor> {
        let (c, _) = x.rows_cols();
        if v.view.len != c {
            return Err(Error::InvalidArgument(format!(
                "channel bias {:?} on {:?}",
                v.shape, x.shape
            )));
        }
        Self::unscaled("add_channel_bias", &[&x, v])?;
        let (xv, vv) = (x.view, v.view);
        self.launch(|b, a| b.add_channel_bias(a, xv, c, vv))?;
        Ok(x)
    }

    /// `x += s ⊙ y` with `s` per column (layer scale).
    pub fn scale_add_(&mut self, x: Tensor, y: &Tensor, s: &Param<B>) -> Result<Tensor> {
        let (_, d) = x.rows_cols();
        if x.shape != y.shape || s.shape != [d] {
            return Err(Error::InvalidArgument(format!(
                "scale_add {:?} {:?} {:?}",
                x.shape, y.shape, s.shape
            )));
        }
        Self::unscaled("scale_add", &[&x, y])?;
        let (xv, yv) = (x.view, y.view);
        self.launch(|b, a| b.scale_add(a, xv, yv, &s.w, d))?;
        Ok(x)
    }

    /// `x = (x + add_before) · mul + add_after`, in place.
    pub fn affine_(
        &mut self,
        x: Tensor,
        add_before: f32,
        mul: f32,
        add_after: f32,
    ) -> Result<Tensor> {
        Self::unscaled("affine", &[&x])?;
        let v = x.view;
        self.launch(|b, a| b.affine(a, v, add_before, mul, add_after))?;
        Ok(x)
    }

    /// Gated linear unit over the last dim: `[rows, 2d] → [rows, d]`.
    pub fn glu(&mut self, x: &Tensor, kind: Glu) -> Result<Tensor> {
        let (rows, two_d) = x.rows_cols();
        let d = two_d / 2;
        Self::unscaled("glu", &[x])?;
        let out = self.alloc(&[rows, d])?;
        let (xv, ov) = (x.view, out.view);
        self.launch(|b, a| b.glu(a, kind, xv, rows, d, ov))?;
        Ok(out)
    }

    // ---- layout ----

    /// Nearest-neighbour resize of `[C, H, W]` to `[C, oh, ow]` (×2 in the usual case).
    pub fn upsample_nearest(&mut self, x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
        let (c, h, w) = x.chw()?;
        let mut out = self.alloc(&[c, oh, ow])?;
        out.scale = x.scale;
        let (xv, ov) = (x.view, out.view);
        self.launch(|b, a| b.upsample_nearest(a, xv, c, h, w, oh, ow, ov))?;
        Ok(out)
    }

    /// PyTorch bicubic resize of `[C, H, W]` (see [`Backend::bicubic`]).
    pub fn bicubic(
        &mut self,
        x: &Tensor,
        oh: usize,
        ow: usize,
        scale_factor: Option<(f64, f64)>,
        antialias: bool,
    ) -> Result<Tensor> {
        let (c, h, w) = x.chw()?;
        Self::unscaled("bicubic", &[x])?;
        let out = self.alloc(&[c, oh, ow])?;
        let scratch = self.scratch(self.backend.bicubic_scratch(c, h, ow, antialias))?;
        let (xv, ov, sv) = (x.view, out.view, scratch.view);
        self.launch(|b, a| b.bicubic(a, xv, c, h, w, oh, ow, scale_factor, antialias, ov, sv))?;
        Ok(out)
    }

    pub fn clamp_(&mut self, x: Tensor, lo: f32, hi: f32) -> Result<Tensor> {
        Self::unscaled("clamp", &[&x])?;
        let v = x.view;
        self.launch(|b, a| b.clamp(a, v, lo, hi))?;
        Ok(x)
    }

    /// Per-channel `(x − mean) / std` of an image, in place.
    pub fn channel_normalize_(&mut self, x: Tensor, mean: &[f32], std: &[f32]) -> Result<Tensor> {
        let (c, _, _) = x.chw()?;
        if mean.len() != c || std.len() != c {
            return Err(Error::InvalidArgument(format!(
                "normalising {:?} with {} means",
                x.shape,
                mean.len()
            )));
        }
        Self::unscaled("channel_normalize", &[&x])?;
        let v = x.view;
        self.launch(|b, a| b.channel_normalize(a, v, mean, std))?;
        Ok(x)
    }

    /// Reflect padding at the bottom and right up to `oh × ow`.
    pub fn pad_reflect(&mut self, x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
        let (c, h, w) = x.chw()?;
        let mut out = self.alloc(&[c, oh, ow])?;
        out.scale = x.scale;
        let (xv, ov) = (x.view, out.view);
        self.launch(|b, a| b.pad_reflect(a, xv, c, h, w, oh, ow, ov))?;
        Ok(out)
    }

    /// The top-left `oh × ow` of an image.
    pub fn crop(&mut self, x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
        let (c, h, w) = x.chw()?;
        let mut out = self.alloc(&[c, oh, ow])?;
        out.scale = x.scale;
        let (xv, ov) = (x.view, out.view);
        self.launch(|b, a| b.crop(a, xv, c, h, w, oh, ow, ov))?;
        Ok(out)
    }

    /// `(z − c1·eps) / c2`.
    pub fn x0_from_eps(&mut self, z: &Tensor, eps: &Tensor, c1: f32, c2: f32) -> Result<Tensor> {
        if z.shape != eps.shape {
            return Err(Error::InvalidArgument(format!(
                "x0 from z {:?} and eps {:?}",
                z.shape, eps.shape
            )));
        }
        Self::unscaled("x0_from_eps", &[z, eps])?;
        let out = self.alloc(&z.shape)?;
        let (zv, ev, ov) = (z.view, eps.view, out.view);
        self.launch(|b, a| b.x0_from_eps(a, zv, ev, c1, c2, ov))?;
        Ok(out)
    }

    /// `[rows, cols…] → [cols, rows]` (an image `[C, H, W]` becomes tokens `[H·W, C]`).
    pub fn transpose(&mut self, x: &Tensor) -> Result<Tensor> {
        let (rows, cols) = x.rows_cols();
        Self::unscaled("transpose", &[x])?;
        let out = self.alloc(&[cols, rows])?;
        let (xv, ov) = (x.view, out.view);
        self.launch(|b, a| b.transpose(a, xv, rows, cols, ov))?;
        Ok(out)
    }

    /// Concatenation along dim 0 (channels of an image, rows of a token matrix).
    pub fn concat(&mut self, parts: &[Part<B>]) -> Result<Tensor> {
        let shape_of = |p: &Part<B>| match p {
            Part::T(t) => t.shape.clone(),
            Part::W(w) => w.shape.clone(),
        };
        let first = shape_of(&parts[0]);
        let mut rows = 0;
        for p in parts {
            let s = shape_of(p);
            // Parameters like cls_token [1, 1, d] concatenate as [1, d].
            let s: Vec<usize> = if s.len() > first.len() {
                s[s.len() - first.len()..].to_vec()
            } else {
                s
            };
            if s[1..] != first[1..] {
                return Err(Error::InvalidArgument(format!(
                    "concat {first:?} with {s:?}"
                )));
            }
            rows += s[0];
        }
        let mut shape = first.clone();
        shape[0] = rows;
        let mut out = self.alloc(&shape)?;
        // Pre-scaled parts meet at the smallest scale (parameters are unscaled).
        out.scale = parts.iter().fold(1.0f32, |s, p| match p {
            Part::T(t) => s.min(t.scale),
            Part::W(_) => s,
        });
        let mut at = 0;
        for p in parts {
            match p {
                Part::T(t) => {
                    let (src, dst) = (t.view, out.view.slice(at, t.view.len));
                    self.launch(|b, a| b.copy(a, src, dst))?;
                    if t.scale != out.scale {
                        let f = out.scale / t.scale;
                        self.launch(|b, a| b.affine(a, dst, 0.0, f, 0.0))?;
                    }
                    at += t.view.len;
                }
                Part::W(w) => {
                    let n = w.shape.iter().product();
                    let dst = out.view.slice(at, n);
                    self.launch(|b, a| b.copy_weight(a, &w.w, dst))?;
                    at += n;
                }
            }
        }
        Ok(out)
    }

    /// Rows (or channels) `start..start + len` of `x`, copied.
    pub fn narrow(&mut self, x: &Tensor, start: usize, len: usize) -> Result<Tensor> {
        let (rows, cols) = x.rows_cols();
        if start + len > rows {
            return Err(Error::InvalidArgument(format!(
                "narrow {start}+{len} of {:?}",
                x.shape
            )));
        }
        let mut shape = x.shape.clone();
        shape[0] = len;
        let mut out = self.alloc(&shape)?;
        out.scale = x.scale;
        let (src, dst) = (x.view.slice(start * cols, len * cols), out.view);
        self.launch(|b, a| b.copy(a, src, dst))?;
        Ok(out)
    }

    /// A parameter copied into the arena.
    pub fn param(&mut self, p: &Param<B>) -> Result<Tensor> {
        let out = self.alloc(&p.shape)?;
        let dst = out.view;
        self.launch(|b, a| b.copy_weight(a, &p.w, dst))?;
        Ok(out)
    }

    /// diffusers `get_timestep_embedding` of one timestep: `[1, dim]`.
    pub fn timestep_embedding(
        &mut self,
        t: f32,
        dim: usize,
        flip_sin_to_cos: bool,
        freq_shift: f32,
    ) -> Result<Tensor> {
        let out = self.alloc(&[1, dim])?;
        let ov = out.view;
        self.launch(|b, a| b.timestep_embedding(a, t, dim, flip_sin_to_cos, freq_shift, ov))?;
        Ok(out)
    }
}

/// Uploads host data as a parameter.
pub fn upload<B: Backend>(backend: &B, shape: &[usize], data: HostData) -> Result<Param<B>> {
    Ok(Param {
        w: backend.upload(shape, data)?,
        shape: shape.to_vec(),
    })
}
