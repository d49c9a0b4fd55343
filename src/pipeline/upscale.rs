//! Upscaling an image of any size: tiles through [`one_step`], blended into an f32 output, the
//! colour fix, optional ROI (digital zoom), and the default tile size from a memory budget.
//!
//! Memory: one arena planned for the tile size (reused by every tile), plus the f32 output
//! accumulator (16 bytes per output pixel: 3 channels and a weight) and the caller's input.
//! Nothing else grows with the image. A self-ensemble (`ensemble.rs`) adds the sum of its
//! copies (12 bytes per output pixel) and one mirrored copy of the input.

use super::color_fix::ColorFix;
use super::context::{ImagePixels, Tokens};
use super::ensemble;
use super::fallback::{F32Fallback, all_finite};
use super::one_step::one_step;
use super::tiling;
use crate::arena::Plan;
use crate::backend::Backend;
use crate::config::DinoContext;
use crate::engine::{self, Networks};
use crate::error::{Error, Result};

/// A rectangle in LR pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpscaleOptions {
    /// Output tile side in pixels (a multiple of 8 and of the scale); `Some(0)` = the whole
    /// image as one tile; `None` = the largest size whose arena fits `memory_budget`.
    pub tile: Option<usize>,
    /// Overlap between neighbouring tiles, output pixels (a multiple of the scale).
    pub overlap: usize,
    pub color_fix: ColorFix,
    /// Upscale only this part of the input (LR pixels).
    pub roi: Option<Rect>,
    /// Budget for the activation arena when choosing the tile size, bytes.
    pub memory_budget: usize,
    /// Strength of runtime LoRA (packs made with `--lora runtime`): 1 = as trained, 0 = the
    /// base model. Applied per call by networks with [`LoraState::PerCall`]; networks that
    /// merged it at load must have been loaded at this scale.
    ///
    /// [`LoraState::PerCall`]: crate::engine::LoraState::PerCall
    pub lora_scale: f32,
    /// What DINOv2 sees per tile; `None` = the model's `dino_context` (`f2idiff.json`).
    pub dino_context: Option<DinoContext>,
    /// How many mirrored copies to average (1, 2 or 4: see `ensemble.rs`); `None` = the
    /// model's `ensemble` (`f2idiff.json`), else 1.
    pub ensemble: Option<usize>,
}

impl Default for UpscaleOptions {
    fn default() -> Self {
        UpscaleOptions {
            tile: None,
            overlap: 64,
            color_fix: ColorFix::Wavelet,
            roi: None,
            memory_budget: 2 << 30,
            lora_scale: 1.0,
            dino_context: None,
            ensemble: None,
        }
    }
}

impl UpscaleOptions {
    /// The DINOv2 context these options give a model declaring `model`'s.
    pub fn dino_context_for(&self, model: DinoContext) -> DinoContext {
        self.dino_context.unwrap_or(model)
    }

    /// The ensemble size these options give a model declaring `model`'s, checked.
    pub fn ensemble_for(&self, model: Option<u32>) -> Result<usize> {
        ensemble::check(
            self.ensemble
                .unwrap_or_else(|| model.map_or(1, |n| n as usize)),
        )
    }
}

impl Rect {
    /// An error unless the rectangle is non-empty and inside a `w × h` image.
    pub fn check_inside(&self, w: usize, h: usize) -> Result<()> {
        if self.width == 0
            || self.height == 0
            || self.x.checked_add(self.width).is_none_or(|e| e > w)
            || self.y.checked_add(self.height).is_none_or(|e| e > h)
        {
            return Err(Error::InvalidArgument(format!(
                "ROI {}×{} at ({}, {}) is not inside the {w}×{h} image",
                self.width, self.height, self.x, self.y
            )));
        }
        Ok(())
    }

    /// The rectangle grown by `m` on every side, clipped to a `w × h` image.
    pub fn grown(&self, m: usize, w: usize, h: usize) -> Rect {
        let (x0, y0) = (self.x.saturating_sub(m), self.y.saturating_sub(m));
        let (x1, y1) = (
            (self.x + self.width + m).min(w),
            (self.y + self.height + m).min(h),
        );
        Rect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        }
    }
}

/// Context kept around an ROI, in LR pixels: at least the tile overlap, and enough for the
/// wavelet colour fix's reach at the ROI's edge.
pub fn roi_margin(scale: usize, overlap: usize) -> usize {
    (overlap.div_ceil(scale)).max(16)
}

/// The output image: planar `[3, height, width]`, unquantised: about [0, 1] (the colour fix can
/// step outside it; quantising clamps), exactly [0, 1] from a self-ensemble, whose copies are
/// clamped before their mean.
pub struct Upscaled {
    pub data: Vec<f32>,
    pub width: usize,
    pub height: usize,
    /// Activation arena of one tile, in bytes.
    pub arena_bytes: usize,
    pub tiles: usize,
    /// Tiles whose output was not finite (f16 overflow) and were run again in f32.
    pub f32_reruns: usize,
}

/// Upscales `lr01 [3, h, w]` (values in [0, 1]). `progress(done, total)` is called after each
/// tile; returning `false` cancels with [`Error::Cancelled`]. A tile whose output is not finite
/// is an [`Error::Numeric`] (see [`upscale_checked`] for the f32 rerun).
pub fn upscale<B: Backend>(
    nets: &Networks<B>,
    backend: &B,
    lr01: &[f32],
    h: usize,
    w: usize,
    opts: &UpscaleOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Upscaled> {
    upscale_checked(nets, backend, None, lr01, h, w, opts, progress)
}

/// [`upscale`], with tiles whose output is not finite run again on `fallback` (f32).
#[allow(clippy::too_many_arguments)]
pub fn upscale_checked<B: Backend>(
    nets: &Networks<B>,
    backend: &B,
    fallback: Option<&F32Fallback<B>>,
    lr01: &[f32],
    h: usize,
    w: usize,
    opts: &UpscaleOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Upscaled> {
    if h == 0 || w == 0 || Some(lr01.len()) != h.checked_mul(w).and_then(|n| n.checked_mul(3)) {
        return Err(Error::InvalidArgument(format!(
            "image {w}×{h} with {} values is not RGB",
            lr01.len()
        )));
    }
    let n = opts.ensemble_for(nets.configs.pipeline.ensemble)?;
    // Checked here, once, before a copy mirrors it (upscale_copy relies on it).
    if let Some(r) = opts.roi {
        r.check_inside(w, h)?;
    }
    if n == 1 {
        return upscale_copy(nets, backend, fallback, lr01, h, w, opts, progress);
    }
    // The self-ensemble: each copy mirrored, upscaled as one, mirrored back (ensemble.rs).
    ensemble::average(n, lr01, h, w, opts, progress, |lr, opts, progress| {
        upscale_copy(nets, backend, fallback, lr, h, w, opts, progress)
    })
}

/// One copy of [`upscale_checked`]: the input as given (already mirrored for an ensemble).
#[allow(clippy::too_many_arguments)]
fn upscale_copy<B: Backend>(
    nets: &Networks<B>,
    backend: &B,
    fallback: Option<&F32Fallback<B>>,
    lr01: &[f32],
    h: usize,
    w: usize,
    opts: &UpscaleOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Upscaled> {
    let p = &nets.configs.pipeline;
    let s = p.scale as usize;
    // The image context is the whole input's, with or without an ROI: an ROI's output is then
    // the same as that part of the whole image's.
    let image = match opts.dino_context_for(p.dino_context) {
        DinoContext::Tile => None,
        DinoContext::Image => Some(ImagePixels::new(lr01, h, w, p.dino_image_size as usize)?),
    };
    let image = image.as_ref();
    let Some(roi) = opts.roi else {
        return upscale_tiles(nets, backend, fallback, lr01, h, w, image, opts, progress);
    };
    // Inside the image: upscale_checked checked it, and a mirror keeps it inside.
    let r = roi;
    // Grow by the margin (clipped at the borders), upscale that, crop to ROI × s.
    let Rect {
        x: x0,
        y: y0,
        width: cw,
        height: ch,
    } = r.grown(roi_margin(s, opts.overlap), w, h);
    let mut crop = buffer(&[3, cw, ch])?;
    window(lr01, h, w, (y0, x0), (ch, cw), &mut crop);
    let grown = upscale_tiles(
        nets, backend, fallback, &crop, ch, cw, image, opts, progress,
    )?;
    let (ow, oh) = (r.width * s, r.height * s);
    let (ox, oy) = ((r.x - x0) * s, (r.y - y0) * s);
    let mut data = buffer(&[3, ow, oh])?;
    window(
        &grown.data,
        grown.height,
        grown.width,
        (oy, ox),
        (oh, ow),
        &mut data,
    );
    Ok(Upscaled {
        data,
        width: ow,
        height: oh,
        ..grown
    })
}

/// A zeroed f32 buffer of `dims` elements, or an error (never an abort) when it cannot exist.
pub(super) fn buffer(dims: &[usize]) -> Result<Vec<f32>> {
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let mut v = Vec::new();
    match n {
        Some(n) if v.try_reserve_exact(n).is_ok() => {
            v.resize(n, 0.0);
            Ok(v)
        }
        _ => Err(Error::OutOfMemory(format!(
            "an image buffer of {dims:?} floats does not fit in memory"
        ))),
    }
}

/// Copies the `size` window at `at` (row, column) of planar `src [3, h, w]` into `dst`.
fn window(
    src: &[f32],
    h: usize,
    w: usize,
    at: (usize, usize),
    size: (usize, usize),
    dst: &mut [f32],
) {
    let ((y0, x0), (wh, ww)) = (at, size);
    for c in 0..3 {
        for y in 0..wh {
            dst[(c * wh + y) * ww..][..ww].copy_from_slice(&src[(c * h + y0 + y) * w + x0..][..ww]);
        }
    }
}

/// Output tile side → LR tile side, validated.
pub(crate) fn lr_tile(tile: usize, scale: usize, h: usize, w: usize) -> Result<usize> {
    if tile == 0 {
        return Ok(h.max(w));
    }
    if tile % 8 != 0 || tile % scale != 0 {
        return Err(Error::InvalidArgument(format!(
            "tile {tile} is not a multiple of 8 and of the scale {scale}"
        )));
    }
    Ok(tile / scale)
}

/// The largest standard tile whose planned arena fits `budget` bytes (at least the smallest),
/// starting from the model's declared `tile` (`f2idiff.json`) when it has one.
///
/// The arena is planned as for one thread ([`Backend::plan_as_one_thread`]), so the tile, and
/// with it the output, is the same on every thread count; each further CPU thread then adds
/// its share of kernel scratch to the arena actually used (at most 16 MiB per thread up to 512
/// channels, or 256 bytes per attention key beyond 16384 keys).
pub fn auto_tile<B: Backend>(
    nets: &Networks<B>,
    backend: &B,
    h: usize,
    w: usize,
    budget: usize,
) -> Result<usize> {
    let s = nets.configs.pipeline.scale as usize;
    let step = 8 * s / gcd(8, s);
    // The model's own tile (its training patch), when it declares one, is tried first and caps
    // the standard sizes.
    let declared = nets.configs.pipeline.tile.map(|t| t as usize);
    let cap = declared.unwrap_or(usize::MAX);
    let candidates = [2048usize, 1536, 1024, 768, 512, 384, 256, 128, 64];
    let mut best = None;
    for c in declared
        .into_iter()
        .chain(candidates.into_iter().filter(|&c| c < cap))
    {
        let tile = c.div_ceil(step) * step;
        let t = tile / s;
        let (th, tw) = (t.min(h), t.min(w));
        let p = backend.plan_as_one_thread(|| {
            engine::plan(backend, |cx| {
                let x = cx.alloc(&[3, th, tw])?;
                let out = one_step(nets, cx, &x, None)?;
                drop(out);
                Ok(())
            })
        })?;
        best = Some(tile);
        if p.peak_bytes(4) <= budget {
            break;
        }
    }
    best.ok_or_else(|| Error::InvalidArgument("no tile size".into()))
}

/// How an `h × w` LR image is tiled: the LR tile size and the tiles' starts per axis.
pub(crate) struct TileGrid {
    pub th: usize,
    pub tw: usize,
    pub ys: Vec<usize>,
    pub xs: Vec<usize>,
}

/// The tile grid of an `h × w` LR image for output tile `tile` (`None`: [`auto_tile`]) and
/// `opts.overlap`, both checked.
pub(crate) fn tile_grid<B: Backend>(
    nets: &Networks<B>,
    backend: &B,
    h: usize,
    w: usize,
    tile: Option<usize>,
    opts: &UpscaleOptions,
) -> Result<TileGrid> {
    let s = nets.configs.pipeline.scale as usize;
    let tile = match tile {
        Some(t) => t,
        None => auto_tile(nets, backend, h, w, opts.memory_budget)?,
    };
    let t = lr_tile(tile, s, h, w)?;
    let (th, tw) = (t.min(h), t.min(w));
    if opts.overlap % s != 0 {
        return Err(Error::InvalidArgument(format!(
            "overlap {} is not a multiple of the scale {s}",
            opts.overlap
        )));
    }
    let o = opts.overlap / s;
    if tile != 0 && o >= t {
        return Err(Error::InvalidArgument(format!(
            "overlap {} must be smaller than the tile {tile}",
            opts.overlap
        )));
    }
    Ok(TileGrid {
        th,
        tw,
        ys: tiling::starts(h, th, o.min(th - 1)),
        xs: tiling::starts(w, tw, o.min(tw - 1)),
    })
}

/// The first value of `a` then `b` that is not finite, as text ("NaN", "inf").
fn non_finite(a: &[f32], b: &[f32]) -> String {
    a.iter()
        .chain(b)
        .find(|v| !v.is_finite())
        .map_or_else(|| "no".into(), |v| v.to_string())
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[allow(clippy::too_many_arguments)]
fn upscale_tiles<B: Backend>(
    nets: &Networks<B>,
    backend: &B,
    fallback: Option<&F32Fallback<B>>,
    lr01: &[f32],
    h: usize,
    w: usize,
    image: Option<&ImagePixels>,
    opts: &UpscaleOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Upscaled> {
    let s = nets.configs.pipeline.scale as usize;
    let lora_scale = nets.lora_scale_for(opts.lora_scale)?;
    let TileGrid { th, tw, ys, xs } = tile_grid(nets, backend, h, w, opts.tile, opts)?;
    let (oh, ow) = (h * s, w * s);
    let (sth, stw) = (th * s, tw * s);
    let ramp = opts.overlap;

    let mut acc = buffer(&[3, oh, ow])?;
    let mut wsum = buffer(&[oh, ow])?;
    let mut lq_moments = [[0.0f64; 2]; 3];
    let mut tile_lr = buffer(&[3, th, tw])?;
    // With the image context, each network set's tokens are computed once and input per tile.
    let tokens =
        |b: &B, nets: &Networks<B>, lora| image.map(|i| i.tokens(nets, b, lora)).transpose();
    let tile_plan = |b: &B, nets: &Networks<B>, tok: Option<&Tokens>| {
        engine::plan(b, |cx| {
            let x = cx.alloc(&[3, th, tw])?;
            let ctx = tok.map(|t| cx.alloc(&t.shape)).transpose()?;
            drop(one_step(nets, cx, &x, ctx.as_ref())?);
            Ok(())
        })
    };
    let run_tile = |b: &B,
                    nets: &Networks<B>,
                    arena: &mut B::Arena,
                    plan: &Plan,
                    tok: Option<&Tokens>,
                    lr: &[f32],
                    lora| {
        engine::run(b, arena, plan, |cx| {
            cx.set_lora_scale(lora);
            let x = cx.input(&[3, th, tw], lr)?;
            let ctx = tok.map(|t| cx.input(&t.shape, &t.data)).transpose()?;
            let (sr, lq) = one_step(nets, cx, &x, ctx.as_ref())?;
            Ok((cx.read(&sr)?, cx.read(&lq)?))
        })
    };
    let tok = tokens(backend, nets, lora_scale)?;
    let plan = tile_plan(backend, nets, tok.as_ref())?;
    let mut arena = backend.alloc_arena(plan.peak)?;
    // The f32 rerun's networks, tokens, plan and arena, made on the first tile that needs them.
    let mut rerun = None;
    let mut f32_reruns = 0;
    let total = ys.len() * xs.len();
    let mut done = 0;
    for (iy, &y0) in ys.iter().enumerate() {
        for (ix, &x0) in xs.iter().enumerate() {
            window(lr01, h, w, (y0, x0), (th, tw), &mut tile_lr);
            // f16 trouble: values that are not finite, or a pre-scaled tensor an op cannot
            // take (a Numeric error); either reruns the tile in f32 when there is a fallback.
            let first = run_tile(
                backend,
                nets,
                &mut arena,
                &plan,
                tok.as_ref(),
                &tile_lr,
                lora_scale,
            );
            let (mut sr, mut lq, rerun_on) = match (first, fallback) {
                (Ok((sr, lq)), _) if all_finite(&sr) && all_finite(&lq) => (sr, lq, None),
                (Ok((sr, lq)), None) => {
                    return Err(Error::Numeric(format!(
                        "tile {} of {total} produced {}: values that are not finite (an f16 \
                         overflow, or a damaged model file)",
                        done + 1,
                        non_finite(&sr, &lq)
                    )));
                }
                (Ok(_) | Err(Error::Numeric(_)), Some(fb)) => (Vec::new(), Vec::new(), Some(fb)),
                (Err(e), _) => return Err(e),
            };
            if let Some(fb) = rerun_on {
                let fb_nets = fb.nets(opts.lora_scale)?;
                let fb_lora = fb_nets.lora_scale_for(opts.lora_scale)?;
                if rerun.is_none() {
                    let t = tokens(fb.backend(), fb_nets, fb_lora)?;
                    let p = tile_plan(fb.backend(), fb_nets, t.as_ref())?;
                    let a = fb.backend().alloc_arena(p.peak)?;
                    rerun = Some((t, p, a));
                }
                let (t, p, a) = rerun
                    .as_mut()
                    .ok_or_else(|| Error::InvalidArgument("f32 rerun state missing".into()))?;
                (sr, lq) = run_tile(fb.backend(), fb_nets, a, p, t.as_ref(), &tile_lr, fb_lora)?;
                if !all_finite(&sr) || !all_finite(&lq) {
                    return Err(Error::Numeric(format!(
                        "tile {} of {total} produced {} in f32 too: the model file may be \
                         damaged",
                        done + 1,
                        non_finite(&sr, &lq)
                    )));
                }
                f32_reruns += 1;
            }
            match opts.color_fix {
                // Whole-image statistics: gather the bicubic image's moments over the pixels
                // this tile owns; the SR side is fixed after blending.
                ColorFix::Adain => {
                    let (ylo, yhi) = tiling::owned(&ys, iy, th, h);
                    let (xlo, xhi) = tiling::owned(&xs, ix, tw, w);
                    for (c, m) in lq_moments.iter_mut().enumerate() {
                        for y in ylo * s..yhi * s {
                            for x in xlo * s..xhi * s {
                                let v = lq[(c * sth + y - y0 * s) * stw + x - x0 * s] as f64;
                                m[0] += v;
                                m[1] += v * v;
                            }
                        }
                    }
                }
                fix => fix.apply(&mut sr, &lq, sth, stw),
            }
            let wy = tiling::axis_weights(sth, ramp, iy > 0, iy + 1 < ys.len());
            let wx = tiling::axis_weights(stw, ramp, ix > 0, ix + 1 < xs.len());
            for y in 0..sth {
                let row = (y0 * s + y) * ow + x0 * s;
                for x in 0..stw {
                    let wgt = wy[y] * wx[x];
                    wsum[row + x] += wgt;
                    for c in 0..3 {
                        acc[c * oh * ow + row + x] += wgt * sr[(c * sth + y) * stw + x];
                    }
                }
            }
            done += 1;
            if !progress(done, total) {
                return Err(Error::Cancelled);
            }
        }
    }
    let n = oh * ow;
    for c in 0..3 {
        for (v, &wt) in acc[c * n..(c + 1) * n].iter_mut().zip(&wsum) {
            *v /= wt;
        }
    }
    if opts.color_fix == ColorFix::Adain {
        super::color_fix::adain_with(&mut acc, n, &lq_moments);
    }
    Ok(Upscaled {
        data: acc,
        width: ow,
        height: oh,
        arena_bytes: plan.peak_bytes(4),
        tiles: total,
        f32_reruns,
    })
}
