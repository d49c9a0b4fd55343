//! `f2i_upscale`'s work, after its arguments are checked: pixels in, pipeline, alpha, pixels
//! out.

#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use super::engine::CudaEngine;
use super::engine::{EngineNets, f2i_engine};
use super::image::Checked;
use super::params::Call;
use super::pixels;
use super::status::{CResult, Failure};
use crate::backend::Backend;
use crate::backend::cpu::kernels::resize::bicubic;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use crate::backend::cuda::{DeviceFrame, Executor};
use crate::error::Error;
use crate::pipeline::{Rect, upscale};
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use crate::pipeline::{Upscaled, upscale_checked};

/// A zeroed buffer, or `F2I_ERR_OUT_OF_MEMORY`.
fn buffer(n: usize) -> CResult<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory(format!("a buffer of {n} floats")))?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Runs one checked call: reads `input`, upscales, writes `output` — on the host, or with
/// both in CUDA device memory, on the device.
///
/// # Safety
/// `input` and `output` describe the caller's buffers ([`Checked::pixels`]; device memory when
/// `call.device_memory`), do not overlap, and `output`'s planes do not overlap each other.
pub unsafe fn run(
    engine: &f2i_engine,
    input: &Checked,
    output: &Checked,
    call: &Call,
) -> CResult<()> {
    let mut loaded = engine.lock()?;
    engine.set_lora_scale(&mut loaded, call.lora_scale)?;
    let mut progress = |done: usize, total: usize| match call.progress {
        // SAFETY: the caller gave this function pointer and its user_data for this call.
        Some(f) => unsafe { f(call.user_data, done as u32, total as u32) == 0 },
        None => true,
    };
    if call.device_memory {
        return match &mut loaded.nets {
            EngineNets::Cpu(..) => Err(Error::Unsupported(
                "F2I_MEMORY_CUDA on a CPU engine (create the engine with F2I_DEVICE_CUDA)".into(),
            )
            .into()),
            #[cfg(feature = "cuda")]
            EngineNets::Cuda(e) => device(e, input, output, call, &mut progress),
            #[cfg(feature = "cuda-sim")]
            EngineNets::CudaSim(e) => device(e, input, output, call, &mut progress),
        };
    }
    // Pinned host frames on an integrated GPU: used in place, on the device.
    let in_place = match &mut loaded.nets {
        #[cfg(feature = "cuda")]
        EngineNets::Cuda(e) => pinned(e, input, output, call, &mut progress),
        #[cfg(feature = "cuda-sim")]
        EngineNets::CudaSim(e) => pinned(e, input, output, call, &mut progress),
        _ => None,
    };
    if let Some(done) = in_place {
        return done;
    }
    let (w, h) = (input.width, input.height);
    let mut rgb = buffer(3 * w * h)?;
    let mut alpha = if input.format.has_alpha() && output.format.has_alpha() {
        Some(buffer(w * h)?)
    } else {
        None
    };
    // SAFETY: the caller's contract above.
    let src = unsafe { input.pixels() };
    pixels::read(&src, &mut rgb, alpha.as_deref_mut());

    let out = match &loaded.nets {
        EngineNets::Cpu(backend, nets) => {
            upscale(nets, backend, &rgb, h, w, &call.opts, &mut progress)?
        }
        #[cfg(feature = "cuda")]
        EngineNets::Cuda(e) => host(e, &rgb, h, w, call, &mut progress)?,
        #[cfg(feature = "cuda-sim")]
        EngineNets::CudaSim(e) => host(e, &rgb, h, w, call, &mut progress)?,
    };
    drop(rgb);
    engine
        .f32_reruns
        .fetch_add(out.f32_reruns as u64, std::sync::atomic::Ordering::Relaxed);
    if let Some(bad) = out.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Numeric(format!(
            "the model produced {} at output value {bad}; the model file may be damaged",
            out.data[bad]
        ))
        .into());
    }
    if (out.width, out.height) != (output.width, output.height) {
        return Err(Failure {
            status: super::types::f2i_status::F2I_ERR_INTERNAL,
            msg: format!(
                "pipeline output {}x{} differs from the planned {}x{}",
                out.width, out.height, output.width, output.height
            ),
        });
    }
    let alpha = match alpha {
        Some(a) => Some(upscale_alpha(
            &loaded.nets,
            &a,
            w,
            h,
            engine.scale as usize,
            call.opts.roi,
        )?),
        None => None,
    };
    // SAFETY: the caller's contract above.
    let mut dst = unsafe { output.pixels_mut() };
    pixels::write(&mut dst, &out.data, alpha.as_deref());
    Ok(())
}

/// A host-memory call on a CUDA engine: on the caller's stream when one is given (the call
/// synchronises it before returning: the output is read back to the host).
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
fn host<E: Executor>(
    e: &CudaEngine<E>,
    rgb: &[f32],
    h: usize,
    w: usize,
    call: &Call,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> CResult<Upscaled> {
    let Some(nets) = &e.nets else {
        return Err(Error::Device("the engine's networks failed to reload".into()).into());
    };
    e.backend.executor().set_stream(call.stream)?;
    let out = upscale_checked(
        nets,
        &e.backend,
        e.fallback.as_ref(),
        rgb,
        h,
        w,
        &call.opts,
        progress,
    )?;
    e.backend.synchronize()?;
    Ok(out)
}

/// On an integrated GPU (Jetson), a host-memory call whose every plane the caller pinned or
/// registered with the driver runs as a device-memory call on the planes' device aliases (no
/// copy of the frame), then waits for the stream: `None` when that does not apply (pageable
/// memory, a discrete GPU, the AdaIN colour fix).
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
fn pinned<E: Executor>(
    e: &mut CudaEngine<E>,
    input: &Checked,
    output: &Checked,
    call: &Call,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Option<CResult<()>> {
    if call.opts.color_fix == crate::pipeline::ColorFix::Adain {
        return None;
    }
    let alias = |img: &Checked| {
        let mut f = img.device_frame();
        let mut planes = img.planes();
        let (p, n) = planes.next()?;
        f.main = e.backend.executor().host_alias(p, n)?;
        if let Some((p, n)) = planes.next() {
            f.uv = e.backend.executor().host_alias(p, n)?;
        }
        Some(f)
    };
    let (fin, fout) = (alias(input)?, alias(output)?);
    Some(
        e.enqueue(&fin, &fout, call, progress)
            .and_then(|()| Ok(e.backend.synchronize()?)),
    )
}

/// A device-memory call: the planes checked to be device memory of the engine's GPU, then
/// every kernel enqueued on the caller's stream; returns without waiting for them.
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
fn device<E: Executor>(
    e: &mut CudaEngine<E>,
    input: &Checked,
    output: &Checked,
    call: &Call,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> CResult<()> {
    let frame = |img: &Checked, writable: bool, what: &str| -> CResult<DeviceFrame> {
        for (ptr, len) in img.planes() {
            e.backend
                .executor()
                .check_device_range(ptr as u64, len, writable)
                .map_err(|err| Failure::invalid(format!("{what}: {err}")))?;
        }
        Ok(img.device_frame())
    };
    let (fin, fout) = (
        frame(input, false, "input")?,
        frame(output, true, "output")?,
    );
    e.enqueue(&fin, &fout, call, progress)
}

/// Bicubic ×`s` of the alpha plane `[h, w]` (of the ROI only, when given), in [0, 1].
fn upscale_alpha(
    nets: &EngineNets,
    a: &[f32],
    w: usize,
    h: usize,
    s: usize,
    roi: Option<Rect>,
) -> CResult<Vec<f32>> {
    let r = roi.unwrap_or(Rect {
        x: 0,
        y: 0,
        width: w,
        height: h,
    });
    // Bicubic taps reach 2 input pixels, so this window gives the whole-image values in the ROI.
    let Rect {
        x: x0,
        y: y0,
        width: cw,
        height: ch,
    } = r.grown(2, w, h);
    let mut win = buffer(cw * ch)?;
    for y in 0..ch {
        win[y * cw..][..cw].copy_from_slice(&a[(y0 + y) * w + x0..][..cw]);
    }
    let mut up = buffer(cw * s * ch * s)?;
    let mut alpha = || bicubic(&win, 1, ch, cw, ch * s, cw * s, None, &mut up);
    match nets {
        // On the engine's CPU threads; a CUDA engine does this small plane on the caller's.
        EngineNets::Cpu(backend, _) => backend.install(alpha),
        #[allow(unreachable_patterns)]
        _ => alpha(),
    }
    let (ow, oh) = (r.width * s, r.height * s);
    let (ox, oy) = ((r.x - x0) * s, (r.y - y0) * s);
    let mut out = buffer(ow * oh)?;
    for y in 0..oh {
        out[y * ow..][..ow].copy_from_slice(&up[(oy + y) * cw * s + ox..][..ow]);
    }
    Ok(out)
}
