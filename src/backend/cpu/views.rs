//! Turning arena views into slices. This is the one place the CPU backend hands out a mutable
//! slice of the arena next to shared slices of the same buffer; it checks bounds and that the
//! mutable one overlaps none of the others, which is what makes that sound.

use crate::backend::View;
use crate::error::{Error, Result};

fn check(buf_len: usize, v: View) -> Result<()> {
    if v.offset.checked_add(v.len).is_none_or(|end| end > buf_len) {
        return Err(Error::InvalidArgument(format!(
            "arena view {}..+{} outside the {buf_len}-element arena",
            v.offset, v.len
        )));
    }
    Ok(())
}

/// Mutable and shared slices handed out by [`split`].
pub type Split<'a, const M: usize, const N: usize> = ([&'a mut [f32]; M], [&'a [f32]; N]);

/// `M` mutable views and `N` shared views of `buf`. The mutable views must be pairwise disjoint
/// and overlap none of the shared ones (shared views may overlap each other).
pub fn split<const M: usize, const N: usize>(
    buf: &mut [f32],
    outs: [View; M],
    inputs: [View; N],
) -> Result<Split<'_, M, N>> {
    for (i, o) in outs.iter().enumerate() {
        check(buf.len(), *o)?;
        for other in outs[..i].iter().chain(&inputs) {
            if other.overlaps(o) {
                return Err(Error::InvalidArgument(format!(
                    "arena views overlap: output {}..+{} and {}..+{}",
                    o.offset, o.len, other.offset, other.len
                )));
            }
        }
    }
    for v in &inputs {
        check(buf.len(), *v)?;
    }
    let base = buf.as_mut_ptr();
    // SAFETY: every view lies inside `buf` (checked above); each mutable view overlaps no other
    // view, so no element is reachable through two slices where one is mutable. Shared views may
    // overlap each other, which is fine for reads. All slices borrow `buf`.
    unsafe {
        let outs = outs.map(|v| std::slice::from_raw_parts_mut(base.add(v.offset), v.len));
        let ins =
            inputs.map(|v| std::slice::from_raw_parts(base.add(v.offset) as *const f32, v.len));
        Ok((outs, ins))
    }
}

pub fn get_mut(buf: &mut [f32], v: View) -> Result<&mut [f32]> {
    check(buf.len(), v)?;
    Ok(&mut buf[v.offset..v.end()])
}

pub fn get(buf: &[f32], v: View) -> Result<&[f32]> {
    check(buf.len(), v)?;
    Ok(&buf[v.offset..v.end()])
}
