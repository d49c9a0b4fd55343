//! Every failure of the SDK as a typed value that names its culprit: the file, the tensor, the
//! shape that was expected and the one that was found.

use std::path::{Path, PathBuf};

/// The broad class of a failure, stable across releases; the C ABI maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    Io,
    Format,
    Unsupported,
    Cancelled,
    OutOfMemory,
    Numeric,
    Device,
    /// A call needs more than the memory its engine reserved up front.
    ExceedsReservation,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A config file (or a config field) is missing, unparsable or inconsistent.
    #[error("{}: {msg}", path.display())]
    Config { path: PathBuf, msg: String },
    /// A safetensors file is truncated, lies about its offsets, or is not safetensors at all.
    #[error("{}: invalid safetensors file: {msg}", path.display())]
    Safetensors { path: PathBuf, msg: String },
    #[error("{}: required tensor `{tensor}` is missing", path.display())]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{}: tensor `{tensor}` has shape {found:?}, expected {expected:?}", path.display())]
    Shape {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{}: tensor `{tensor}` has unsupported dtype {dtype} (supported: F32, F16, BF16)", path.display())]
    Dtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    /// A LoRA adapter names a module the base model does not have, or is malformed.
    #[error("{}: LoRA `{key}`: {msg}", path.display())]
    Lora {
        path: PathBuf,
        key: String,
        msg: String,
    },
    #[error("{}: not an f2idiff pack (magic {found:02x?}, expected {expected:02x?})", path.display())]
    BadMagic {
        path: PathBuf,
        found: Vec<u8>,
        expected: Vec<u8>,
    },
    #[error("{}: pack format version {found} is not supported (this build reads version {supported})", path.display())]
    Version {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{}: truncated: {msg}", path.display())]
    Truncated { path: PathBuf, msg: String },
    /// The pack's preamble, header or tensor table is inconsistent or fails its checksum.
    #[error("{}: corrupted pack: {msg}", path.display())]
    Corrupt { path: PathBuf, msg: String },
    #[error("{}: tensor `{tensor}`: checksum mismatch (stored {stored:08x}, computed {computed:08x})", path.display())]
    Checksum {
        path: PathBuf,
        tensor: String,
        stored: u32,
        computed: u32,
    },
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An image file that cannot be decoded or encoded.
    #[error("{}: {msg}", path.display())]
    Image { path: PathBuf, msg: String },
    /// The caller's progress callback asked to stop.
    #[error("cancelled")]
    Cancelled,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("numerical failure: {0}")]
    Numeric(String),
    /// The compute device (a GPU, its driver or compiler, or the CPU execution harness) failed.
    #[error("device error: {0}")]
    Device(String),
    /// A call on an engine with reserved memory needs more than was reserved.
    #[error("exceeds the reservation: {0}")]
    ExceedsReservation(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Unsupported(_) | Error::Dtype { .. } | Error::Version { .. } => {
                ErrorKind::Unsupported
            }
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::OutOfMemory(_) => ErrorKind::OutOfMemory,
            Error::Numeric(_) => ErrorKind::Numeric,
            Error::Device(_) => ErrorKind::Device,
            Error::ExceedsReservation(_) => ErrorKind::ExceedsReservation,
            _ => ErrorKind::Format,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn config(path: &Path, msg: impl Into<String>) -> Self {
        Error::Config {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub(crate) fn corrupt(path: &Path, msg: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub(crate) fn lora(path: &Path, key: &str, msg: impl Into<String>) -> Self {
        Error::Lora {
            path: path.to_path_buf(),
            key: key.to_string(),
            msg: msg.into(),
        }
    }
}
