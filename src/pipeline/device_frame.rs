//! Upscaling a frame that lives in device memory (the C interface's `F2I_MEMORY_CUDA`): the
//! same tiles, weights, colour fix and blend as [`super::upscale`], computed by
//! `kernels/frame.cu` on the device, so the frame never visits the host and the result is
//! byte-identical to the host-memory path on the same backend.
//!
//! Asynchronous: every copy and kernel goes to the executor's current stream (the caller's) and
//! [`upscale_frame`] returns once the work is enqueued. The tile arena and the f32 buffers are
//! kept in a [`FrameState`] between calls; [`FrameState::reserve`] sizes them up front, after
//! which calls allocate nothing on the device and a bigger frame is an error.
//!
//! Not here (host path only): the AdaIN colour fix (whole-image moments, gathered on the host),
//! the f32 rerun of tiles that overflow f16 (it needs the tile's values on the host), and the
//! whole image's DINOv2 context (`dino_context: "image"`: it resizes the whole input on the
//! host), and the self-ensemble (`ensemble.rs`: mirrored copies of the frame, made on the host).
//! A call that resolves to the image context or to an ensemble is an `Unsupported` error.

use super::color_fix::ColorFix;
use super::one_step::one_step;
use super::upscale::{Rect, TileGrid, UpscaleOptions, auto_tile, lr_tile, roi_margin, tile_grid};
use crate::arena::Plan;
use crate::backend::Backend;
use crate::backend::cuda::{
    CudaBackend, DeviceFrame, Executor, FrameBuffers, FrameLayout, Placement,
};
use crate::config::DinoContext;
use crate::engine::{self, Networks};
use crate::error::{Error, Result};
use crate::exec::Exec;

type Arena<E> = crate::backend::cuda::CudaArena<<E as Executor>::Buffer>;

/// What [`FrameState::reserve`] fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The largest region (ROI, or whole image) a call may upscale, LR pixels.
    pub max_width: usize,
    pub max_height: usize,
    /// Output tile side used when a call leaves it automatic.
    pub tile: usize,
    /// Device bytes held: tile arena and frame buffers.
    pub bytes: usize,
}

/// An engine's device-frame memory, kept between calls.
pub struct FrameState<E: Executor> {
    arena: Option<Arena<E>>,
    buffers: Option<FrameBuffers<E::Buffer>>,
    /// The last tile plan, by LR tile size.
    plan: Option<((usize, usize), Plan)>,
    reserved: Option<Reservation>,
}

impl<E: Executor> Default for FrameState<E> {
    fn default() -> Self {
        FrameState {
            arena: None,
            buffers: None,
            plan: None,
            reserved: None,
        }
    }
}

/// One call's figures.
#[derive(Debug, Clone, Copy)]
pub struct FrameRun {
    pub tiles: usize,
    /// Tile arena bytes.
    pub arena_bytes: usize,
}

/// A region and how it is tiled.
struct Tiling {
    /// The upscaled region in LR pixels (the ROI grown by its margin, or the image).
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    /// LR tile size and starts inside the region.
    grid: TileGrid,
}

impl<E: Executor> FrameState<E> {
    pub fn reservation(&self) -> Option<Reservation> {
        self.reserved
    }

    /// Allocates, up front, what calls on regions up to `max_w × max_h` LR pixels need with
    /// `opts` (tile, overlap), alpha included; later calls allocate nothing on the device.
    pub fn reserve(
        &mut self,
        nets: &Networks<CudaBackend<E>>,
        backend: &CudaBackend<E>,
        max_w: usize,
        max_h: usize,
        opts: &UpscaleOptions,
    ) -> Result<Reservation> {
        if max_w == 0 || max_h == 0 {
            return Err(Error::InvalidArgument(format!(
                "reserved size {max_w}×{max_h} is empty"
            )));
        }
        let s = nets.configs.pipeline.scale as usize;
        // The largest region: the ROI grown by its margin on both sides.
        let m = roi_margin(s, opts.overlap);
        let (gw, gh) = (max_w + 2 * m, max_h + 2 * m);
        let tile = match opts.tile {
            Some(t) => t,
            None => auto_tile(nets, backend, gh, gw, opts.memory_budget)?,
        };
        let t = lr_tile(tile, s, gh, gw)?;
        let (th, tw) = (t.min(gh), t.min(gw));
        backend.executor().synchronize_device()?;
        self.arena = None;
        self.buffers = None;
        // Smaller regions tile smaller, and a tile one pixel short of the full size pads
        // back up to it (reflect padding to the VAE's multiple of 8) with one more buffer
        // live: the arena is the largest of those plans.
        let mut peak = 0;
        for (h, w) in [(th, tw), (th - 1, tw), (th, tw - 1), (th - 1, tw - 1)] {
            if h > 0 && w > 0 {
                peak = peak.max(tile_plan(nets, backend, h, w)?.peak);
            }
        }
        let plan = tile_plan(nets, backend, th, tw)?;
        let arena = backend.alloc_arena(peak)?;
        let layout = FrameLayout {
            acc_px: gw * s * gh * s,
            tile_px: th * s * tw * s,
            alpha_px: max_w * s * max_h * s,
        };
        let buffers = backend.alloc_frame_buffers(layout)?;
        // What a first call would otherwise allocate: the weights, GroupNorm's workspace.
        backend.upload_staged()?;
        backend.workspace()?;
        let r = Reservation {
            max_width: max_w,
            max_height: max_h,
            tile,
            bytes: peak * backend.precision().bytes() + buffers.bytes(),
        };
        self.arena = Some(arena);
        self.buffers = Some(buffers);
        self.plan = Some(((th, tw), plan));
        self.reserved = Some(r);
        Ok(r)
    }

    /// Plans an LR tile of `th × tw` unless the last plan was for that size; returns its
    /// arena peak in elements.
    fn ensure_plan(
        &mut self,
        nets: &Networks<CudaBackend<E>>,
        backend: &CudaBackend<E>,
        th: usize,
        tw: usize,
    ) -> Result<usize> {
        match &self.plan {
            Some((key, p)) if *key == (th, tw) => Ok(p.peak),
            _ => {
                let p = tile_plan(nets, backend, th, tw)?;
                let peak = p.peak;
                self.plan = Some(((th, tw), p));
                Ok(peak)
            }
        }
    }

    /// Makes the arena and buffers fit `peak` elements and `need`: reused when they do,
    /// reallocated (after the work that used them is done) when they do not, refused when
    /// reserved.
    fn fit(&mut self, backend: &CudaBackend<E>, peak: usize, need: FrameLayout) -> Result<()> {
        let arena_fits = self.arena.as_ref().is_some_and(|a| a.elems() >= peak);
        let buffers_fit = self
            .buffers
            .as_ref()
            .is_some_and(|b| b.layout.covers(&need));
        if arena_fits && buffers_fit {
            return Ok(());
        }
        if let Some(r) = self.reserved {
            return Err(Error::ExceedsReservation(format!(
                "this call needs a {peak}-element tile arena and frame buffers of {need:?}; the \
                 engine reserved {} bytes for regions up to {}×{} (tile {})",
                r.bytes, r.max_width, r.max_height, r.tile
            )));
        }
        // Earlier calls' work may still use these buffers, on their callers' streams.
        backend.executor().synchronize_device()?;
        if !arena_fits {
            self.arena = None;
            self.arena = Some(backend.alloc_arena(peak)?);
        }
        if !buffers_fit {
            let layout = self.buffers.take().map_or(need, |b| b.layout.max(&need));
            self.buffers = Some(backend.alloc_frame_buffers(layout)?);
        }
        Ok(())
    }
}

/// The arena plan of one LR tile of `th × tw` through the model.
fn tile_plan<E: Executor>(
    nets: &Networks<CudaBackend<E>>,
    backend: &CudaBackend<E>,
    th: usize,
    tw: usize,
) -> Result<Plan> {
    engine::plan(backend, |cx| {
        let x = cx.alloc(&[3, th, tw])?;
        drop(one_step(nets, cx, &x, None)?);
        Ok(())
    })
}

/// The region to upscale and its tiles, as the host path chooses them.
fn tiling<E: Executor>(
    nets: &Networks<CudaBackend<E>>,
    backend: &CudaBackend<E>,
    state: &FrameState<E>,
    (w, h): (usize, usize),
    opts: &UpscaleOptions,
) -> Result<(Tiling, Rect)> {
    let s = nets.configs.pipeline.scale as usize;
    let whole = Rect {
        x: 0,
        y: 0,
        width: w,
        height: h,
    };
    let roi = opts.roi.unwrap_or(whole);
    roi.check_inside(w, h)?;
    if let Some(r) = state.reserved
        && (roi.width > r.max_width || roi.height > r.max_height)
    {
        return Err(Error::ExceedsReservation(format!(
            "a {}×{} region; the engine reserved regions up to {}×{}",
            roi.width, roi.height, r.max_width, r.max_height
        )));
    }
    let region = match opts.roi {
        None => whole,
        Some(r) => r.grown(roi_margin(s, opts.overlap), w, h),
    };
    let (x0, y0, rw, rh) = (region.x, region.y, region.width, region.height);
    // A reserved engine's own tile when the call leaves it automatic.
    let tile = opts.tile.or(state.reserved.map(|r| r.tile));
    let grid = tile_grid(nets, backend, rh, rw, tile, opts)?;
    Ok((
        Tiling {
            x0,
            y0,
            w: rw,
            h: rh,
            grid,
        },
        roi,
    ))
}

/// Upscales `input` into `output` (both in device memory, already checked: sizes, formats,
/// and that they are device memory), enqueued on the backend's current stream. `progress` is
/// called after each tile is enqueued; returning `false` stops with [`Error::Cancelled`]
/// before anything is written to `output`.
pub fn upscale_frame<E: Executor>(
    nets: &Networks<CudaBackend<E>>,
    backend: &CudaBackend<E>,
    state: &mut FrameState<E>,
    input: &DeviceFrame,
    output: &DeviceFrame,
    opts: &UpscaleOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<FrameRun> {
    if opts.color_fix == ColorFix::Adain {
        return Err(Error::Unsupported(
            "the AdaIN colour fix with frames in device memory (it gathers whole-image moments \
             on the host): use wavelet or none, or host memory"
                .into(),
        ));
    }
    if opts.dino_context_for(nets.configs.pipeline.dino_context) == DinoContext::Image {
        return Err(Error::Unsupported(
            "the whole image's DINOv2 context with frames in device memory (it resizes the \
             whole input on the host): pass the tile context (F2I_DINO_CONTEXT_TILE), or host \
             memory"
                .into(),
        ));
    }
    if opts.ensemble_for(nets.configs.pipeline.ensemble)? > 1 {
        return Err(Error::Unsupported(
            "the self-ensemble with frames in device memory (it mirrors the frame on the \
             host): pass an ensemble of 1, or host memory"
                .into(),
        ));
    }
    let s = nets.configs.pipeline.scale as usize;
    let lora_scale = nets.lora_scale_for(opts.lora_scale)?;
    let (t, roi) = tiling(nets, backend, state, (input.width, input.height), opts)?;
    let TileGrid { th, tw, ys, xs } = &t.grid;
    let (th, tw) = (*th, *tw);
    let (ow, oh) = (roi.width * s, roi.height * s);
    if (output.width, output.height) != (ow, oh) {
        return Err(Error::InvalidArgument(format!(
            "output {}×{} for a {ow}×{oh} result",
            output.width, output.height
        )));
    }
    let alpha = crate::backend::cuda::frame_has_alpha(input.format)
        && crate::backend::cuda::frame_has_alpha(output.format);
    let (ah, aw) = (t.h * s, t.w * s);
    let (sth, stw) = (th * s, tw * s);
    let need = FrameLayout {
        acc_px: ah * aw,
        tile_px: sth * stw,
        alpha_px: if alpha { ow * oh } else { 0 },
    };
    let peak = state.ensure_plan(nets, backend, th, tw)?;
    state.fit(backend, peak, need)?;
    let FrameState {
        arena: Some(arena),
        buffers: Some(bufs),
        plan: Some((_, plan)),
        ..
    } = state
    else {
        return Err(Error::Device("device frame buffers missing".into()));
    };
    backend.frame_clear(bufs.acc(), 3 * ah * aw)?;
    backend.frame_clear(bufs.wsum(), ah * aw)?;

    let total = ys.len() * xs.len();
    let mut done = 0;
    for (iy, &ty) in ys.iter().enumerate() {
        for (ix, &tx) in xs.iter().enumerate() {
            let mut cx = Exec::running(backend, arena, plan);
            cx.set_lora_scale(lora_scale);
            let x = cx.alloc(&[3, th, tw])?;
            let xv = x.view();
            cx.launch(|b, a| b.frame_to_tile(a, input, t.x0 + tx, t.y0 + ty, tw, th, xv))?;
            let (sr, lq) = one_step(nets, &mut cx, &x, None)?;
            drop(x);
            let at = Placement {
                ah,
                aw,
                y: ty * s,
                x: tx * s,
            };
            let ramps = u32::from(iy > 0)
                | u32::from(iy + 1 < ys.len()) << 1
                | u32::from(ix > 0) << 2
                | u32::from(ix + 1 < xs.len()) << 3;
            let fix = opts.color_fix;
            cx.launch(|b, a| {
                let (s0, s1, s2) = (bufs.scratch(0), bufs.scratch(1), bufs.scratch(2));
                b.tile_to_f32(a, sr.view(), sr.scale(), s0)?;
                match fix {
                    ColorFix::Wavelet => {
                        // High band of the SR tile into s2, then the bicubic tile's low band.
                        b.wavelet(s0, s1, Some(s2), sth, stw)?;
                        b.tile_to_f32(a, lq.view(), lq.scale(), s0)?;
                        let low = b.wavelet(s0, s1, None, sth, stw)?;
                        b.tile_blend(bufs, s2, Some(low), sth, stw, at, opts.overlap, ramps)
                    }
                    _ => b.tile_blend(bufs, s0, None, sth, stw, at, opts.overlap, ramps),
                }
            })?;
            drop((sr, lq));
            drop(cx);
            done += 1;
            if !progress(done, total) {
                return Err(Error::Cancelled);
            }
        }
    }

    let window = Placement {
        ah,
        aw,
        y: (roi.y - t.y0) * s,
        x: (roi.x - t.x0) * s,
    };
    let alpha_at = if alpha {
        // The C interface's alpha: bicubic over the ROI and 2 pixels around it (its taps'
        // reach), cropped to the ROI.
        let win = roi.grown(2, input.width, input.height);
        let out = bufs.alpha();
        backend.alpha_upscale(
            input,
            (win.x, win.y, win.width, win.height),
            s,
            ((roi.x - win.x) * s, (roi.y - win.y) * s),
            (ow, oh),
            out,
        )?;
        Some(out)
    } else {
        None
    };
    backend.frame_write(bufs, window, output, alpha_at)?;
    Ok(FrameRun {
        tiles: total,
        arena_bytes: plan.peak_bytes(backend.precision().bytes()),
    })
}
