//! Status codes from errors, this thread's last error message, and the panic boundary every
//! export goes through.

use super::types::f2i_status::{self, *};
use crate::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// This thread's last failure; empty after a success.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A failure at the interface: the status and its message.
#[derive(Debug)]
pub struct Failure {
    pub status: f2i_status,
    pub msg: String,
}

impl Failure {
    pub fn invalid(msg: impl Into<String>) -> Failure {
        Failure {
            status: F2I_ERR_INVALID_ARGUMENT,
            msg: msg.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match e.kind() {
            ErrorKind::InvalidArgument => F2I_ERR_INVALID_ARGUMENT,
            ErrorKind::Io => F2I_ERR_IO,
            ErrorKind::Format => F2I_ERR_FORMAT,
            ErrorKind::Unsupported => F2I_ERR_UNSUPPORTED,
            ErrorKind::Cancelled => F2I_ERR_CANCELLED,
            ErrorKind::OutOfMemory => F2I_ERR_OUT_OF_MEMORY,
            ErrorKind::Numeric => F2I_ERR_NUMERIC,
            ErrorKind::Device => F2I_ERR_DEVICE,
            ErrorKind::ExceedsReservation => F2I_ERR_EXCEEDS_RESERVATION,
        };
        Failure {
            status,
            msg: e.to_string(),
        }
    }
}

pub type CResult<T> = std::result::Result<T, Failure>;

fn set_last_error(msg: &str) {
    // Interior NULs cannot be in a C string; show them instead of truncating there.
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs `f`, records its outcome as this thread's last error, and turns a panic into
/// `F2I_ERR_INTERNAL`. Every fallible export is one call to this.
pub fn boundary(f: impl FnOnce() -> CResult<()>) -> f2i_status {
    let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Failure {
            status: F2I_ERR_INTERNAL,
            msg: format!("internal error (please report it): {what}"),
        })
    });
    match outcome {
        Ok(()) => {
            set_last_error("");
            F2I_OK
        }
        Err(f) => {
            set_last_error(&f.msg);
            f.status
        }
    }
}

/// This thread's last message, valid until this thread's next f2idiff call.
pub fn last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"thread is exiting".as_ptr())
}

/// A fixed description of each status, for logs.
pub fn status_string(status: u32) -> &'static CStr {
    match status {
        0 => c"success",
        1 => c"invalid argument",
        2 => c"I/O error",
        3 => c"invalid model file",
        4 => c"unsupported",
        5 => c"out of memory",
        6 => c"device error",
        7 => c"cancelled",
        8 => c"numerical failure",
        9 => c"internal error",
        10 => c"exceeds the engine's reservation",
        _ => c"unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_catches_panics_and_records_messages() {
        let s = boundary(|| panic!("boom {}", 7));
        assert_eq!(s, F2I_ERR_INTERNAL);
        // SAFETY: last_error returns a valid NUL-terminated string owned by this thread.
        let msg = unsafe { CStr::from_ptr(last_error()) }.to_str().unwrap();
        assert!(msg.contains("boom 7"), "{msg}");
        assert_eq!(boundary(|| Ok(())), F2I_OK);
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(last_error()) }.to_bytes(), b"");
        let e = boundary(|| Err(Error::Cancelled.into()));
        assert_eq!(e, F2I_ERR_CANCELLED);
        assert_eq!(status_string(e as u32), c"cancelled");
        assert_eq!(status_string(77), c"unknown status");
    }
}
