//! Time per op (`f2idiff bench --profile`): where a stage's time goes, op by op, on the
//! backend it runs on. Each launched op is timed between two synchronisations (so a GPU's
//! asynchronous launches are charged to the op that queued them, at the price of the overlap
//! a plain run would have); ops are grouped by kind and, for convolutions, linear maps and
//! attention, by shape.

use super::Exec;
use crate::backend::{Backend, Conv2d};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Calls and seconds, by op label.
pub type OpTimes = Rc<RefCell<BTreeMap<String, OpTime>>>;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpTime {
    pub calls: u32,
    pub seconds: f64,
}

/// `(label, time)` from the largest time down.
pub fn by_time(t: &OpTimes) -> Vec<(String, OpTime)> {
    let mut rows: Vec<_> = t.borrow().iter().map(|(k, v)| (k.clone(), *v)).collect();
    rows.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds).then(a.0.cmp(&b.0)));
    rows
}

/// The op a closure launches, from the name of the function that made it
/// (`f2idiff::exec::Exec<…>::group_norm_views::{{closure}}` → `group_norm_views`).
pub(super) fn op_name<F>() -> String {
    let full = std::any::type_name::<F>();
    let mut plain = String::with_capacity(full.len());
    let mut depth = 0usize;
    for ch in full.chars() {
        match ch {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(ch),
            _ => {}
        }
    }
    plain
        .rsplit("::")
        .find(|s| !s.is_empty() && !s.starts_with('{'))
        .unwrap_or("op")
        .to_string()
}

/// A convolution's label: kernel, stride, channels and input size.
pub(super) fn conv_label(p: &Conv2d, h: usize, w: usize, kind: &str) -> String {
    format!(
        "conv{kind} {}x{}/{} {}→{} at {h}×{w}",
        p.kh, p.kw, p.stride, p.c_in, p.c_out
    )
}

impl<B: Backend> Exec<'_, B> {
    /// Times every op launched from now on into `times`.
    pub fn profile_ops(&mut self, times: OpTimes) {
        self.profile = Some(times);
    }

    /// Names the next launched op `label` when profiling (`label` is only called then).
    pub(super) fn label_next(&mut self, label: impl FnOnce() -> String) {
        if self.profile.is_some() && !self.is_planning() {
            self.next_label = Some(label());
        }
    }
}

/// Adds one call of `seconds` to `label`.
pub(super) fn add(times: &OpTimes, label: String, seconds: f64) {
    let mut times = times.borrow_mut();
    let e = times.entry(label).or_default();
    e.calls += 1;
    e.seconds += seconds;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_come_from_the_launching_function() {
        struct S;
        impl S {
            fn group_norm_views() -> String {
                let f = |x: u8| x;
                fn name<F>(_: &F) -> String {
                    op_name::<F>()
                }
                name(&f)
            }
        }
        assert_eq!(S::group_norm_views(), "group_norm_views");
        assert_eq!(op_name::<Vec<Option<u8>>>(), "Vec");
    }
}
