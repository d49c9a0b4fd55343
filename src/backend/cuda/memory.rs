//! Device memory of the CUDA backend: the activation arena (one allocation, laid out by the
//! same planner as the CPU arena) and the weights (staged on the host as they are loaded, then
//! uploaded into one allocation and carved; see [`WeightStore`]).

use super::executor::{DevPtr, Executor};
use super::precision::Precision;
use crate::backend::View;
use crate::error::{Error, Result};
use crate::tensor::encode_f32;
use std::any::Any;
use std::sync::{Arc, OnceLock};

/// Carving alignment of weights inside their allocation (cudaMalloc's).
const WEIGHT_ALIGN: usize = 256;

/// The activation arena: `elems` elements of the backend's storage type.
pub struct CudaArena<B> {
    /// Owns the memory `base` points into (`None` for an empty arena).
    pub(crate) _buf: Option<B>,
    pub(crate) base: DevPtr,
    pub(crate) elems: usize,
    pub(crate) elem_bytes: usize,
}

impl<B> CudaArena<B> {
    pub fn elems(&self) -> usize {
        self.elems
    }

    /// The device address of `v`, checked to lie inside the arena.
    pub fn ptr(&self, v: View) -> Result<DevPtr> {
        if v.end() > self.elems {
            return Err(Error::InvalidArgument(format!(
                "view {}..{} outside the {}-element arena",
                v.offset,
                v.end(),
                self.elems
            )));
        }
        Ok(self.base + (v.offset * self.elem_bytes) as u64)
    }
}

/// One upload of weights: the device allocation, filled when the batch is flushed. Every
/// weight of the batch holds it, so it is freed with the last of them (a reloaded model frees
/// the previous model's weights).
struct Slab {
    /// The executor's buffer (type-erased so weights need no executor type) and its address.
    device: OnceLock<(Box<dyn Any + Send + Sync>, DevPtr)>,
}

/// How a weight's elements are laid out on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Row-major in `shape` (PyTorch's layout, or rows/columns zero-padded by the uploader).
    Plain { shape: Vec<usize> },
    /// A convolution weight `[c_out, c_in, kh, kw]` repacked for the tensor-core GEMM
    /// (kernels/conv_tc.cu) as `[rows, kh, kw, c_pad]`: channels zero-padded to `c_pad` (a
    /// multiple of 8), rows `c_out..rows` zero.
    ConvTc {
        rows: usize,
        c_in: usize,
        c_pad: usize,
        taps: usize,
    },
}

/// A parameter on the device: `len` elements at `offset` bytes into its slab, laid out as
/// `layout` says.
pub struct CudaWeight {
    slab: Arc<Slab>,
    offset: usize,
    len: usize,
    layout: Layout,
}

impl CudaWeight {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// Weights uploaded once: [`WeightStore::stage`] appends a weight to a host staging buffer and
/// hands out its place; the first use of a staged weight uploads everything staged so far as
/// one device allocation (a slab), which is then carved. Loading a model stages all its
/// weights before any op runs, so a model's weights live in one allocation.
pub struct WeightStore {
    pending: Arc<Slab>,
    staging: Vec<u8>,
    /// Bytes uploaded so far (over the backend's life).
    pub device_bytes: usize,
}

impl Default for WeightStore {
    fn default() -> Self {
        WeightStore {
            pending: Arc::new(Slab {
                device: OnceLock::new(),
            }),
            staging: Vec::new(),
            device_bytes: 0,
        }
    }
}

impl WeightStore {
    pub fn stage(
        &mut self,
        precision: Precision,
        values: &[f32],
        layout: Layout,
    ) -> Result<CudaWeight> {
        let offset = self.staging.len().next_multiple_of(WEIGHT_ALIGN);
        let bytes = encode_f32(precision.dtype(), values);
        let end = offset + bytes.len();
        self.staging
            .try_reserve(end - self.staging.len())
            .map_err(|_| Error::OutOfMemory(format!("cannot stage {end} bytes of weights")))?;
        self.staging.resize(offset, 0);
        self.staging.extend_from_slice(&bytes);
        Ok(CudaWeight {
            slab: self.pending.clone(),
            offset,
            len: values.len(),
            layout,
        })
    }

    /// The device address of `w`, uploading the staged weights first when `w` is among them.
    pub fn ptr<E: Executor>(&mut self, exec: &E, w: &CudaWeight) -> Result<DevPtr> {
        if w.slab.device.get().is_none() {
            if !Arc::ptr_eq(&w.slab, &self.pending) {
                return Err(Error::InvalidArgument(
                    "weight does not belong to this backend".into(),
                ));
            }
            self.flush(exec)?;
        }
        match w.slab.device.get() {
            Some((_, base)) => Ok(base + w.offset as u64),
            None => Err(Error::Device("weight upload failed".into())),
        }
    }

    /// Uploads the staged weights as one allocation.
    pub fn flush<E: Executor>(&mut self, exec: &E) -> Result<()> {
        if self.staging.is_empty() {
            return Ok(());
        }
        let buf = exec.alloc(self.staging.len())?;
        let base = exec.ptr(&buf);
        exec.copy_to_device(base, &self.staging)?;
        exec.freeze(&buf)?;
        if self.pending.device.set((Box::new(buf), base)).is_err() {
            return Err(Error::Device("weight slab uploaded twice".into()));
        }
        self.device_bytes += self.staging.len();
        self.pending = Arc::new(Slab {
            device: OnceLock::new(),
        });
        self.staging = Vec::new();
        Ok(())
    }
}
