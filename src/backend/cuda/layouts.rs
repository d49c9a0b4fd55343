//! Weights in the layouts the tensor-core kernels read, made once on the host at upload
//! (kernels/conv_tc.cu): a convolution weight `[c_out, c_in, kh, kw]` becomes `[rows, kh, kw,
//! c_pad]` — the GEMM's k order (tap, channel), channels zero-padded to a multiple of 8 so
//! every 8 consecutive k are one 16-byte `cp.async` — and a runtime-LoRA pair is padded to a
//! rank that is a multiple of 8 with zero rows of `A` and zero columns of `B`, which changes no
//! result (`B·A` is the same product).

use super::memory::Layout;

/// Elements per 16-byte chunk of f16: the kernels' unit of channel padding.
pub const CHUNK: usize = 8;

/// `n` rounded up to whole chunks.
pub fn pad8(n: usize) -> usize {
    n.div_ceil(CHUNK) * CHUNK
}

/// `[c_out, c_in, kh, kw]` → `[rows, kh, kw, pad8(c_in)]` (`rows ≥ c_out`; the rows beyond
/// `c_out` and the channels beyond `c_in` are zero).
pub fn conv_tc(values: &[f32], shape: [usize; 4], rows: usize) -> (Vec<f32>, Layout) {
    let [c_out, c_in, kh, kw] = shape;
    let (taps, c_pad) = (kh * kw, pad8(c_in));
    let mut out = vec![0.0; rows * taps * c_pad];
    for co in 0..c_out {
        for ci in 0..c_in {
            for tap in 0..taps {
                out[(co * taps + tap) * c_pad + ci] = values[(co * c_in + ci) * taps + tap];
            }
        }
    }
    let layout = Layout::ConvTc {
        rows,
        c_in,
        c_pad,
        taps,
    };
    (out, layout)
}

/// A row-major `[r, c]` matrix zero-padded to `[rows, cols]`.
pub fn pad_matrix(values: &[f32], [r, c]: [usize; 2], [rows, cols]: [usize; 2]) -> Vec<f32> {
    let mut out = vec![0.0; rows * cols];
    for i in 0..r {
        out[i * cols..i * cols + c].copy_from_slice(&values[i * c..(i + 1) * c]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_weights_reorder_to_tap_then_channel_with_zero_padding() {
        // c_out 1, c_in 2, 1×2 kernel: w[0, ci, 0, kx] = 10·ci + kx.
        let (v, layout) = conv_tc(&[0.0, 1.0, 10.0, 11.0], [1, 2, 1, 2], 2);
        let mut want = vec![0.0; 2 * 2 * 8];
        want[0] = 0.0; // tap 0: channels 0, 1
        want[1] = 10.0;
        want[8] = 1.0; // tap 1
        want[9] = 11.0;
        assert_eq!(v, want);
        let expect = Layout::ConvTc {
            rows: 2,
            c_in: 2,
            c_pad: 8,
            taps: 2,
        };
        assert_eq!(layout, expect);
    }

    #[test]
    fn matrices_pad_with_zeros() {
        let m = pad_matrix(&[1.0, 2.0, 3.0, 4.0], [2, 2], [3, 3]);
        assert_eq!(m, [1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!((pad8(1), pad8(8), pad8(13)), (8, 8, 16));
    }
}
