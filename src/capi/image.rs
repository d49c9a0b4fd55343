//! `f2i_image` from the caller → checked plane spans → byte slices. Every size is computed
//! with overflow checks before any pointer is used; outputs may not overlap inputs.

use super::pixels::{PixelFormat, Pixels, Plane};
use super::status::{CResult, Failure};
use super::types::{F2I_MAX_INPUT_PIXELS, F2I_MAX_INPUT_SIDE, f2i_image};

/// The memory of one plane: `len` bytes at `ptr`.
#[derive(Debug, Clone, Copy)]
struct Span {
    ptr: *mut u8,
    len: usize,
    stride: usize,
    row_bytes: usize,
}

impl Span {
    fn overlaps(&self, o: &Span) -> bool {
        let (a, b) = (self.ptr as usize, o.ptr as usize);
        a < b.saturating_add(o.len) && b < a.saturating_add(self.len)
    }
}

/// A validated image description: format, size and the spans of its planes.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    main: Span,
    uv: Option<Span>,
}

fn span(ptr: *mut u8, stride: usize, row_bytes: usize, rows: usize, what: &str) -> CResult<Span> {
    if stride < row_bytes {
        return Err(Failure::invalid(format!(
            "{what}: stride {stride} is smaller than a row ({row_bytes} bytes)"
        )));
    }
    let len = (rows - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(row_bytes))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| {
            Failure::invalid(format!("{what}: {rows} rows of stride {stride} overflow"))
        })?;
    if (ptr as usize).checked_add(len).is_none() {
        return Err(Failure::invalid(format!(
            "{what}: buffer wraps the address space"
        )));
    }
    Ok(Span {
        ptr,
        len,
        stride,
        row_bytes,
    })
}

/// Bounds on an image's size: each side, and the area.
///
/// cbindgen:ignore
#[derive(Clone, Copy, Debug)]
pub(crate) struct SizeLimit {
    pub(crate) side: u64,
    pub(crate) pixels: u64,
}

/// cbindgen:ignore
impl SizeLimit {
    /// What an input may be: `F2I_MAX_INPUT_SIDE`, `F2I_MAX_INPUT_PIXELS`.
    pub const INPUT: SizeLimit = SizeLimit {
        side: F2I_MAX_INPUT_SIDE as u64,
        pixels: F2I_MAX_INPUT_PIXELS,
    };
    /// What an output may be: the input's limits at the largest scale, 16.
    pub const OUTPUT: SizeLimit = SizeLimit {
        side: Self::INPUT.side * 16,
        pixels: Self::INPUT.pixels * 256,
    };

    /// `w × h` as `usize`s, or `F2I_ERR_INVALID_ARGUMENT` naming `what` when a side is 0 or
    /// either limit is exceeded.
    pub fn check(self, w: u64, h: u64, what: &str) -> CResult<(usize, usize)> {
        let side = self.side;
        if w == 0 || h == 0 || w > side || h > side {
            return Err(Failure::invalid(format!(
                "{what}: size {w}x{h} is outside 1..={side} per side"
            )));
        }
        if w * h > self.pixels {
            return Err(Failure::invalid(format!(
                "{what}: {w}x{h} is {} pixels, more than the limit of {}",
                w * h,
                self.pixels
            )));
        }
        Ok((w as usize, h as usize))
    }
}

/// Checks `img` (`what` names it in messages) against `limit`.
///
/// # Safety
/// `img` is NULL or points to a readable `f2i_image`.
pub unsafe fn check(img: *const f2i_image, what: &str, limit: SizeLimit) -> CResult<Checked> {
    if img.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null, and the caller passes a readable f2i_image; every field is an integer
    // or a raw pointer, so any bit pattern is a valid value.
    let i: f2i_image = unsafe { img.read_unaligned() };
    let format = PixelFormat::from_raw(i.format)
        .ok_or_else(|| Failure::invalid(format!("{what}: unknown pixel format {}", i.format)))?;
    let (w, h) = limit.check(i.width as u64, i.height as u64, what)?;
    if i.data.is_null() {
        return Err(Failure::invalid(format!("{what}: data is NULL")));
    }
    let row_bytes = w * format.bytes_per_pixel();
    let main = span(i.data.cast(), i.stride, row_bytes, h, what)?;
    let uv = match format {
        PixelFormat::Nv12(_) => {
            let ptr: *mut u8 = if i.uv_data.is_null() {
                // Right after the Y plane: data + height·stride.
                let off = h
                    .checked_mul(i.stride)
                    .filter(|&o| (i.data as usize).checked_add(o).is_some())
                    .ok_or_else(|| {
                        Failure::invalid(format!("{what}: UV plane offset overflows"))
                    })?;
                i.data.cast::<u8>().wrapping_add(off)
            } else {
                i.uv_data.cast()
            };
            Some(span(
                ptr,
                i.stride,
                2 * w.div_ceil(2),
                h.div_ceil(2),
                &format!("{what} UV plane"),
            )?)
        }
        _ => None,
    };
    Ok(Checked {
        format,
        width: w,
        height: h,
        main,
        uv,
    })
}

impl Checked {
    /// `(address, bytes)` of each plane.
    #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
    pub fn planes(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.spans().map(|s| (s.ptr as usize, s.len))
    }

    /// The image as a frame in device memory (its addresses are device addresses).
    #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
    pub fn device_frame(&self) -> crate::backend::cuda::DeviceFrame {
        crate::backend::cuda::DeviceFrame {
            format: self.format.code(),
            width: self.width,
            height: self.height,
            stride: self.main.stride,
            main: self.main.ptr as u64,
            uv: self.uv.map_or(0, |s| s.ptr as u64),
        }
    }

    fn spans(&self) -> impl Iterator<Item = &Span> {
        std::iter::once(&self.main).chain(self.uv.as_ref())
    }

    /// Whether any plane of `self` shares a byte with any plane of `other`.
    pub fn overlaps(&self, other: &Checked) -> bool {
        self.spans().any(|a| other.spans().any(|b| a.overlaps(b)))
    }

    /// Whether the image's own planes overlap (an NV12 UV plane inside its Y plane).
    pub fn self_overlaps(&self) -> bool {
        self.uv.as_ref().is_some_and(|uv| uv.overlaps(&self.main))
    }

    /// The pixels to read, borrowed for `'a` (the caller's call: the memory is the C caller's).
    ///
    /// # Safety
    /// The caller's buffers hold the declared planes, and nothing writes them meanwhile.
    pub unsafe fn pixels<'a>(&self) -> Pixels<&'a [u8]> {
        let plane = |s: &Span| Plane {
            // SAFETY: the caller's contract: `len` readable bytes at `ptr` (checked to fit
            // isize and not to wrap).
            data: unsafe { std::slice::from_raw_parts(s.ptr as *const u8, s.len) },
            stride: s.stride,
            row_bytes: s.row_bytes,
        };
        Pixels {
            format: self.format,
            width: self.width,
            height: self.height,
            main: plane(&self.main),
            uv: self.uv.as_ref().map(plane),
        }
    }

    /// The pixels to write, borrowed for `'a` (as in [`Checked::pixels`]).
    ///
    /// # Safety
    /// The caller's buffers hold the declared planes, nothing else reads or writes them
    /// meanwhile, and the planes do not overlap each other ([`Checked::self_overlaps`]).
    pub unsafe fn pixels_mut<'a>(&self) -> Pixels<&'a mut [u8]> {
        let plane = |s: &Span| Plane {
            // SAFETY: as in `pixels`, and the planes are disjoint, so no two live `&mut`
            // slices alias.
            data: unsafe { std::slice::from_raw_parts_mut(s.ptr, s.len) },
            stride: s.stride,
            row_bytes: s.row_bytes,
        };
        Pixels {
            format: self.format,
            width: self.width,
            height: self.height,
            main: plane(&self.main),
            uv: self.uv.as_ref().map(plane),
        }
    }
}
