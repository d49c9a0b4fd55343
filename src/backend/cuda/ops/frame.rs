//! Frames in device memory (`kernels/frame.cu`): a caller's pixels read into an arena tile,
//! the tile's colour fix and blend into an f32 accumulator, the accumulator written back as
//! the caller's pixels. The loop that drives them is `pipeline::device_frame`.
//!
//! Everything here is enqueued on the executor's current stream and returns at once; the f32
//! buffers live in one device allocation ([`FrameBuffers`]) that an engine keeps between calls
//! (or reserves up front), so a call on a reserved engine allocates nothing on the device.

use super::Arena;
use crate::backend::View;
use crate::backend::cuda::{Arg, CudaBackend, DevPtr, Executor, Launch, int};
use crate::error::{Error, Result};

const THREADS: u32 = 256;

/// An image in device memory, as `f2i_image` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFrame {
    /// The C enum `f2i_pixel_format` (0 RGB8 … 6 NV12 BT.601 full).
    pub format: u32,
    pub width: usize,
    pub height: usize,
    /// Bytes per row of every plane.
    pub stride: usize,
    pub main: DevPtr,
    /// NV12's interleaved Cb,Cr plane; 0 for the other formats.
    pub uv: DevPtr,
}

/// Formats with alpha in byte 3 (RGBA8, BGRA8).
pub fn has_alpha(format: u32) -> bool {
    format == 1 || format == 3
}

/// Sizes, in f32 elements, of the buffers of one device-frame call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameLayout {
    /// Pixels of the accumulator (the upscaled region: the image, or the ROI with its margin).
    pub acc_px: usize,
    /// Pixels of one output tile.
    pub tile_px: usize,
    /// Pixels of the output's alpha plane (0 without alpha).
    pub alpha_px: usize,
}

impl FrameLayout {
    /// acc `[3, acc]`, wsum `[acc]`, three tile scratch planes `[3, tile]`, alpha.
    pub fn floats(&self) -> Option<usize> {
        self.acc_px
            .checked_mul(4)?
            .checked_add(self.tile_px.checked_mul(9)?)?
            .checked_add(self.alpha_px)
    }

    /// Whether buffers laid out as `self` can serve a call that needs `need`.
    pub fn covers(&self, need: &FrameLayout) -> bool {
        self.acc_px >= need.acc_px && self.tile_px >= need.tile_px && self.alpha_px >= need.alpha_px
    }

    /// The larger of each size.
    pub fn max(&self, o: &FrameLayout) -> FrameLayout {
        FrameLayout {
            acc_px: self.acc_px.max(o.acc_px),
            tile_px: self.tile_px.max(o.tile_px),
            alpha_px: self.alpha_px.max(o.alpha_px),
        }
    }
}

/// The f32 buffers of [`FrameLayout`] in one device allocation.
pub struct FrameBuffers<B> {
    _buf: B,
    base: DevPtr,
    pub layout: FrameLayout,
}

impl<B> FrameBuffers<B> {
    fn at(&self, floats: usize) -> DevPtr {
        self.base + 4 * floats as u64
    }
    /// The accumulator `[3, acc_px]`.
    pub fn acc(&self) -> DevPtr {
        self.base
    }
    /// The weight sum `[acc_px]`.
    pub fn wsum(&self) -> DevPtr {
        self.at(3 * self.layout.acc_px)
    }
    /// Tile scratch plane set `i` (0..3), `[3, tile_px]`.
    pub fn scratch(&self, i: usize) -> DevPtr {
        self.at(4 * self.layout.acc_px + 3 * i * self.layout.tile_px)
    }
    /// The output's alpha plane.
    pub fn alpha(&self) -> DevPtr {
        self.at(4 * self.layout.acc_px + 9 * self.layout.tile_px)
    }
    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        4 * self.layout.floats().unwrap_or(0)
    }
}

/// The accumulator's shape and where one tile or output window sits in it.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// Accumulator rows and columns.
    pub ah: usize,
    pub aw: usize,
    /// Top-left of the tile / window in the accumulator.
    pub y: usize,
    pub x: usize,
}

fn linear(n: usize) -> Launch {
    Launch::linear(n, THREADS)
}

impl<E: Executor> CudaBackend<E> {
    /// One device allocation for `layout`'s buffers (counted in `device_allocations`).
    pub fn alloc_frame_buffers(&self, layout: FrameLayout) -> Result<FrameBuffers<E::Buffer>> {
        let bytes = layout
            .floats()
            .and_then(|f| f.checked_mul(4))
            .ok_or_else(|| Error::OutOfMemory(format!("frame buffers {layout:?} overflow")))?;
        let buf = self.device_alloc(bytes)?;
        let base = self.executor().ptr(&buf);
        Ok(FrameBuffers {
            _buf: buf,
            base,
            layout,
        })
    }

    /// `n` floats at `p` ← 0.
    pub fn frame_clear(&self, p: DevPtr, n: usize) -> Result<()> {
        self.run("frame_clear", linear(n), &[Arg::Ptr(p), int(n)?])
    }

    /// The arena view `out` (`[3, h, w]`) ← the pixels of `f`'s window at `(x0, y0)`.
    #[allow(clippy::too_many_arguments)]
    pub fn frame_to_tile(
        &self,
        a: &Arena<E>,
        f: &DeviceFrame,
        x0: usize,
        y0: usize,
        w: usize,
        h: usize,
        out: View,
    ) -> Result<()> {
        if x0 + w > f.width || y0 + h > f.height || out.len != 3 * w * h {
            return Err(Error::InvalidArgument(format!(
                "tile {w}×{h} at ({x0}, {y0}) of a {}×{} frame into {} elements",
                f.width, f.height, out.len
            )));
        }
        let args = [
            Arg::Ptr(f.main),
            Arg::Ptr(f.uv),
            int(f.stride)?,
            int(f.format as usize)?,
            int(x0)?,
            int(y0)?,
            int(w)?,
            int(h)?,
            Arg::Ptr(self.act(a, out)?),
        ];
        self.run("frame_to_tile", linear(w * h), &args)
    }

    /// `out` (f32) ← the arena view `x`, divided by `scale` when it is not 1.
    pub fn tile_to_f32(&self, a: &Arena<E>, x: View, scale: f32, out: DevPtr) -> Result<()> {
        let args = [
            Arg::Ptr(self.act(a, x)?),
            Arg::Ptr(out),
            int(x.len)?,
            Arg::F32(scale),
        ];
        self.run("tile_to_f32", linear(x.len), &args)
    }

    /// The wavelet decomposition of `[3, h, w]` f32 planes at `img` (colour_fix.rs): five
    /// blur levels ping-ponging between `img` and `low`; with `high`, the sum of the detail
    /// bands lands there. Returns where the last blur (the low band) is.
    pub fn wavelet(
        &self,
        img: DevPtr,
        low: DevPtr,
        high: Option<DevPtr>,
        h: usize,
        w: usize,
    ) -> Result<DevPtr> {
        let (mut src, mut dst) = (img, low);
        for level in 0..crate::pipeline::color_fix::LEVELS {
            let args = [
                Arg::Ptr(src),
                Arg::Ptr(dst),
                Arg::Ptr(high.unwrap_or(0)),
                int(3)?,
                int(h)?,
                int(w)?,
                int(1 << level)?,
                int(usize::from(level == 0))?,
            ];
            self.run("wavelet_level", linear(3 * h * w), &args)?;
            std::mem::swap(&mut src, &mut dst);
        }
        Ok(src)
    }

    /// Blends the tile `a (+ b)` (`[3, th, tw]` f32) into `buffers`' accumulator at `at`, with
    /// ramps of `ramp` pixels on the shared edges (`ramps` bits: top, bottom, left, right).
    #[allow(clippy::too_many_arguments)]
    pub fn tile_blend(
        &self,
        buffers: &FrameBuffers<E::Buffer>,
        a: DevPtr,
        b: Option<DevPtr>,
        th: usize,
        tw: usize,
        at: Placement,
        ramp: usize,
        ramps: u32,
    ) -> Result<()> {
        if at.y + th > at.ah || at.x + tw > at.aw || at.ah * at.aw > buffers.layout.acc_px {
            return Err(Error::InvalidArgument(format!(
                "tile {tw}×{th} at ({}, {}) outside the {}×{} accumulator",
                at.x, at.y, at.aw, at.ah
            )));
        }
        let args = [
            Arg::Ptr(a),
            Arg::Ptr(b.unwrap_or(0)),
            Arg::Ptr(buffers.acc()),
            Arg::Ptr(buffers.wsum()),
            int(th)?,
            int(tw)?,
            int(at.ah)?,
            int(at.aw)?,
            int(at.y)?,
            int(at.x)?,
            int(ramp)?,
            int(ramps as usize)?,
        ];
        self.run("tile_blend", linear(th * tw), &args)
    }

    /// Writes `out`'s pixels from the accumulator window at `at` (acc / wsum), alpha from
    /// `alpha` (`[h, w]`, RGBA8 / BGRA8 outputs; `None` = opaque).
    pub fn frame_write(
        &self,
        buffers: &FrameBuffers<E::Buffer>,
        at: Placement,
        out: &DeviceFrame,
        alpha: Option<DevPtr>,
    ) -> Result<()> {
        let (w, h) = (out.width, out.height);
        if at.y + h > at.ah || at.x + w > at.aw {
            return Err(Error::InvalidArgument(format!(
                "output {w}×{h} at ({}, {}) outside the {}×{} accumulator",
                at.x, at.y, at.aw, at.ah
            )));
        }
        let window = [
            Arg::Ptr(buffers.acc()),
            Arg::Ptr(buffers.wsum()),
            int(at.ah)?,
            int(at.aw)?,
            int(at.x)?,
            int(at.y)?,
        ];
        let tail = [
            Arg::Ptr(out.main),
            int(out.stride)?,
            int(out.format as usize)?,
            int(w)?,
            int(h)?,
            Arg::Ptr(alpha.unwrap_or(0)),
        ];
        self.run("frame_write", linear(w * h), &[&window[..], &tail].concat())?;
        if out.format >= 5 {
            let uv = [
                Arg::Ptr(out.uv),
                int(out.stride)?,
                int(out.format as usize)?,
                int(w)?,
                int(h)?,
            ];
            let pairs = w.div_ceil(2) * h.div_ceil(2);
            self.run(
                "frame_write_uv",
                linear(pairs),
                &[&window[..], &uv].concat(),
            )?;
        }
        Ok(())
    }

    /// `out [oh, ow]` ← the bicubic ×`s` alpha of `f` over its window `(wx, wy, cw, ch)`,
    /// cropped at `(ux, uy)` of the upscaled window (the C interface's `upscale_alpha`).
    #[allow(clippy::too_many_arguments)]
    pub fn alpha_upscale(
        &self,
        f: &DeviceFrame,
        (wx, wy, cw, ch): (usize, usize, usize, usize),
        s: usize,
        (ux, uy): (usize, usize),
        (ow, oh): (usize, usize),
        out: DevPtr,
    ) -> Result<()> {
        if !has_alpha(f.format) || wx + cw > f.width || wy + ch > f.height {
            return Err(Error::InvalidArgument(
                "alpha window outside the frame".into(),
            ));
        }
        // The oracle's source scales (cpu/kernels/resize.rs `axis_scale`): in / out in f32.
        let (sy, sx) = (ch as f32 / (ch * s) as f32, cw as f32 / (cw * s) as f32);
        let args = [
            Arg::Ptr(f.main),
            int(f.stride)?,
            int(wx)?,
            int(wy)?,
            int(cw)?,
            int(ch)?,
            Arg::F32(sy),
            Arg::F32(sx),
            int(ux)?,
            int(uy)?,
            int(ow)?,
            int(oh)?,
            Arg::Ptr(out),
        ];
        self.run("alpha_upscale", linear(ow * oh), &args)
    }
}
