//! Direct 2D convolution and transposed convolution for few channels on the
//! narrow side, at stride 1 (f32).
//!
//! (splitguard addition, see `VENDORED.md`.) A convolution to one output
//! channel (an image decoder's last layer) spends nearly all its time in the
//! im2col copy: the GEMM behind it is a matrix-vector product. Its input
//! gradient is a transposed convolution from one channel, which the GEMM +
//! col2im path turns into an outer product and a scatter. Both are a few
//! row-wise multiply-adds (`out_row += w * in_row`, contiguous and
//! vectorised) per kernel tap when one side has at most [`MAX_NARROW`]
//! channels, with no buffer but the output.

use alloc::vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// The most channels on the narrow side for the direct path.
pub(crate) const MAX_NARROW: usize = 4;

/// `out[i] += w * src[i]` over equal-length slices.
#[inline]
fn axpy(out: &mut [f32], w: f32, src: &[f32]) {
    for (o, &s) in out.iter_mut().zip(src) {
        *o += w * s;
    }
}

/// Runs `f(n, image_output)` for every image, in parallel over images.
fn per_image(out: &mut [f32], image_len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if image_len == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(image_len)
            .enumerate()
            .for_each(|(n, o)| f(n, o));
    }
    #[cfg(not(feature = "rayon"))]
    out.chunks_mut(image_len)
        .enumerate()
        .for_each(|(n, o)| f(n, o));
}

/// The range of output positions `o` in `0..out_len` whose input position
/// `o + shift` lies in `0..in_len`.
fn span(out_len: usize, in_len: usize, shift: isize) -> (usize, usize) {
    let lo = (-shift).max(0) as usize;
    let hi = (in_len as isize - shift).clamp(0, out_len as isize) as usize;
    (lo.min(hi), hi)
}

/// The shared loop: `out[n, co, oh, ow] = bias[co] + sum over ci, i, j of
/// w(co, ci, i, j) * x[n, ci, oh + dh(i), ow + dw(j)]` (0 outside `x`).
#[allow(clippy::too_many_arguments)]
fn direct(
    x: FlexTensor,
    bias: Option<FlexTensor>,
    wd: &[f32],
    cout: usize,
    kernel: [usize; 2],
    out_hw: [usize; 2],
    w_index: impl Fn(usize, usize, usize, usize) -> usize + Sync + Send,
    shift: impl Fn(usize, usize) -> isize + Sync + Send,
) -> FlexTensor {
    let x = x.to_contiguous();
    let bias = bias.map(|b| b.to_contiguous());
    let xs = x.layout().shape().clone();
    let (n, cin, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let [kh, kw] = kernel;
    let [ho, wo] = out_hw;
    let xd: &[f32] = x.storage();
    let bd: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    let mut out = vec![0.0f32; n * cout * ho * wo];
    per_image(&mut out, cout * ho * wo, |img, o| {
        for co in 0..cout {
            let plane = &mut o[co * ho * wo..(co + 1) * ho * wo];
            if let Some(b) = bd {
                plane.fill(b[co]);
            }
            for ci in 0..cin {
                let src = &xd[(img * cin + ci) * h * w..(img * cin + ci + 1) * h * w];
                for i in 0..kh {
                    let dh = shift(0, i);
                    let (h_lo, h_hi) = span(ho, h, dh);
                    for j in 0..kw {
                        let wv = wd[w_index(co, ci, i, j)];
                        let dw = shift(1, j);
                        let (w_lo, w_hi) = span(wo, w, dw);
                        if w_lo >= w_hi {
                            continue;
                        }
                        for oh in h_lo..h_hi {
                            let ih = (oh as isize + dh) as usize;
                            let s0 = ((ih * w) as isize + w_lo as isize + dw) as usize;
                            axpy(
                                &mut plane[oh * wo + w_lo..oh * wo + w_hi],
                                wv,
                                &src[s0..s0 + (w_hi - w_lo)],
                            );
                        }
                    }
                }
            }
        }
    });
    FlexTensor::new(
        Bytes::from_elems(out),
        Layout::contiguous(Shape::new([n, cout, ho, wo])),
        DType::F32,
    )
}

/// Convolution, stride 1, dilation 1, groups 1, symmetric `padding`:
/// `x [N, Cin, H, W]`, `weight [Cout, Cin, kh, kw]`,
/// `out[oh, ow] += x[oh + i - p, ow + j - p] * w[i, j]`.
pub(crate) fn conv2d_f32(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    padding: [usize; 2],
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let ws = weight.layout().shape().clone();
    let (cout, cin, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let [h, w] = [x.layout().shape()[2], x.layout().shape()[3]];
    let ho = (h + 2 * padding[0]).saturating_sub(kh - 1);
    let wo = (w + 2 * padding[1]).saturating_sub(kw - 1);
    direct(
        x,
        bias,
        weight.storage(),
        cout,
        [kh, kw],
        [ho, wo],
        |co, ci, i, j| ((co * cin + ci) * kh + i) * kw + j,
        |axis, k| k as isize - padding[axis] as isize,
    )
}

/// Transposed convolution, stride 1, dilation 1, groups 1, no output
/// padding: `x [N, Cin, H, W]`, `weight [Cin, Cout, kh, kw]`,
/// `out[oh, ow] += x[oh + p - i, ow + p - j] * w[i, j]`.
pub(crate) fn conv_transpose2d_f32(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    padding: [usize; 2],
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let ws = weight.layout().shape().clone();
    let (cout, kh, kw) = (ws[1], ws[2], ws[3]);
    let [h, w] = [x.layout().shape()[2], x.layout().shape()[3]];
    let ho = (h + kh - 1).saturating_sub(2 * padding[0]);
    let wo = (w + kw - 1).saturating_sub(2 * padding[1]);
    direct(
        x,
        bias,
        weight.storage(),
        cout,
        [kh, kw],
        [ho, wo],
        |co, ci, i, j| ((ci * cout + co) * kh + i) * kw + j,
        |axis, k| padding[axis] as isize - k as isize,
    )
}
