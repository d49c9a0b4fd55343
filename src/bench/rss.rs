//! The process's resident memory (Linux `/proc/self`), for the working memory of a stage:
//! the peak resident set while it runs, less what was resident before (weights, inputs). The
//! same measure as `calib/reference/bench_pytorch.py`'s, so the two engines compare on it.
//!
//! Elsewhere (or where `/proc` is not readable) every function returns `None` and the benches
//! print "-".

/// A `kB` field of `/proc/self/status` (e.g. `VmRSS`, `VmHWM`), in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Resident memory now.
pub fn current() -> Option<u64> {
    status_bytes("VmRSS")
}

/// Starts a new peak: the kernel's high-water mark (`VmHWM`) is reset to the current resident
/// set (`/proc/self/clear_refs` ← 5, Linux ≥ 4.0). Returns whether it was reset.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The resident peak since the last [`reset_peak`] (or since the process started).
pub fn peak() -> Option<u64> {
    status_bytes("VmHWM")
}

/// Bytes the process held at its peak beyond `base`, measured around `f`: `None` where the
/// peak cannot be reset or read.
pub fn working_set<R>(f: impl FnOnce() -> R) -> (R, Option<u64>) {
    let base = current();
    let reset = reset_peak();
    let r = f();
    let grew = match (reset, base, peak()) {
        (true, Some(base), Some(peak)) => Some(peak.saturating_sub(base)),
        _ => None,
    };
    (r, grew)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Touching 64 MiB inside the measured closure shows as at least that much working set.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_touched_buffer_shows_in_the_working_set() {
        let (sum, grew) = working_set(|| {
            let v = vec![1u8; 64 << 20];
            v.iter().step_by(4096).map(|&b| b as u64).sum::<u64>()
        });
        assert_eq!(sum, (64 << 20) / 4096);
        if let Some(g) = grew {
            assert!(g >= 60 << 20, "grew {g} bytes");
        } else {
            eprintln!("SKIP: /proc/self/clear_refs not writable here; working set not measured");
        }
    }
}
