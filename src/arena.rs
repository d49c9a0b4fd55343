//! The tile arena: every activation of a forward pass lives in one buffer whose layout is planned
//! once for a given tile size.
//!
//! Planning is a dry run of the forward pass: the model code runs unchanged, but ops only infer
//! shapes and record when each buffer is created and when its last user drops it. The planner
//! then gives every buffer an offset so that buffers alive at the same time never overlap
//! (first fit over the gaps between live buffers, the approach of ggml's graph allocator). The
//! real run replays the same sequence of allocations and receives the planned offsets: it
//! allocates nothing, and the peak is known before any compute. In-place ops (activations,
//! residual adds) reuse their input's buffer, so they cost no planning slot at all.

use crate::error::{Error, Result};

/// Offsets and sizes are in elements and rounded up to this many, so every buffer starts on a
/// 256-byte boundary for f32 (what SIMD loads and GPU kernels like).
pub const ALIGN_ELEMS: usize = 64;

/// One recorded event of a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Alloc { id: usize, len: usize },
    Free { id: usize },
}

/// Where each buffer of a forward pass lives, in allocation order, and the arena's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `(offset, len)` of the k-th allocation, in elements.
    pub slots: Vec<(usize, usize)>,
    /// Arena size in elements: the peak of simultaneously live buffers, as laid out.
    pub peak: usize,
    /// Sum of all buffer sizes, were nothing reused (for reporting).
    pub total: usize,
}

fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN_ELEMS) * ALIGN_ELEMS
}

impl Plan {
    /// Lays out the buffers of `events` (ids are allocation indices, 0, 1, 2, … in order).
    pub fn from_events(events: &[Event]) -> Result<Plan> {
        // Live blocks as (offset, len), kept sorted by offset.
        let mut live: Vec<(usize, usize, usize)> = Vec::new(); // (offset, len, id)
        let mut slots: Vec<(usize, usize)> = Vec::new();
        let mut peak = 0;
        let mut total = 0;
        for ev in events {
            match *ev {
                Event::Alloc { id, len } => {
                    if id != slots.len() {
                        return Err(Error::InvalidArgument(format!(
                            "arena plan: allocation {id} out of order (expected {})",
                            slots.len()
                        )));
                    }
                    let size = round_up(len.max(1));
                    total += size;
                    let offset = best_gap(&live, size);
                    let at = live.partition_point(|b| b.0 < offset);
                    live.insert(at, (offset, size, id));
                    slots.push((offset, len));
                    peak = peak.max(offset + size);
                }
                Event::Free { id } => {
                    let at = live.iter().position(|b| b.2 == id).ok_or_else(|| {
                        Error::InvalidArgument(format!("arena plan: buffer {id} freed twice"))
                    })?;
                    live.remove(at);
                }
            }
        }
        Ok(Plan { slots, peak, total })
    }

    /// Peak arena size in bytes for elements of `elem_size` bytes.
    pub fn peak_bytes(&self, elem_size: usize) -> usize {
        self.peak * elem_size
    }
}

/// The smallest gap between live blocks (or the end) that fits `size`.
fn best_gap(live: &[(usize, usize, usize)], size: usize) -> usize {
    let mut best: Option<(usize, usize)> = None; // (gap, offset)
    let mut cursor = 0;
    for &(off, len, _) in live {
        let gap = off - cursor;
        if gap >= size && best.is_none_or(|(g, _)| gap < g) {
            best = Some((gap, cursor));
        }
        cursor = cursor.max(off + len);
    }
    best.map_or(cursor, |(_, off)| off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
        let (a0, a1) = (a.0, a.0 + round_up(a.1));
        let (b0, b1) = (b.0, b.0 + round_up(b.1));
        a0 < b1 && b0 < a1
    }

    #[test]
    fn live_buffers_never_overlap_and_freed_space_is_reused() {
        use Event::*;
        // a chain x → y → z with a long-lived skip s, like a U-Net level.
        let events = [
            Alloc { id: 0, len: 1000 }, // x
            Alloc { id: 1, len: 300 },  // s (skip, lives to the end)
            Alloc { id: 2, len: 1000 }, // y
            Free { id: 0 },
            Alloc { id: 3, len: 900 }, // z: fits where x was
            Free { id: 2 },
            Free { id: 3 },
            Free { id: 1 },
        ];
        let plan = Plan::from_events(&events).unwrap();
        assert_eq!(plan.slots[3].0, plan.slots[0].0, "z reuses x's space");
        assert!(plan.peak < plan.total);
        // x, s, y are live together; z, s, y too.
        for (a, b) in [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)] {
            assert!(
                !overlaps(plan.slots[a], plan.slots[b]),
                "{a} and {b} overlap"
            );
        }
        assert!(plan.slots.iter().all(|s| s.0 % ALIGN_ELEMS == 0));
        assert_eq!(plan.peak, round_up(1000) + round_up(300) + round_up(1000));
    }

    #[test]
    fn malformed_event_streams_are_errors() {
        use Event::*;
        assert!(Plan::from_events(&[Alloc { id: 1, len: 4 }]).is_err());
        assert!(
            Plan::from_events(&[Alloc { id: 0, len: 4 }, Free { id: 0 }, Free { id: 0 }]).is_err()
        );
    }
}
