//! Weight gradients of 2D convolution and transposed convolution as GEMMs.
//!
//! (splitguard addition, see `VENDORED.md`.) The trait defaults compute a
//! weight gradient as one more convolution, with batch and channels swapped
//! and the output gradient as a kernel as large as the feature map: two
//! layout copies of the inputs, an im2col of the whole batch per output
//! channel, and a copy back. Here it is the textbook form (the one cuDNN and
//! PyTorch's CPU path use): for each image, an im2col of one operand
//! (`[C_a * kh * kw, positions]`) and one GEMM that accumulates
//! `b_n [C_b, positions] x col^T` into the gradient.
//!
//! - convolution: `dW[co, ci, i, j] = sum_n,p g[n, co, p] * x[n, ci, p*s + i*d - pad]`
//!   (a = x, b = the output gradient, positions = the output grid);
//! - transposed convolution: `dW[ci, co, i, j] = sum_n,p x[n, ci, p] * g[n, co, p*s + i*d - pad]`
//!   (a = the output gradient, b = x, positions = the input grid).
//!
//! Images are summed in fixed groups of [`GROUP`], each group's partial sum
//! in image order and the partials in group order, so the result does not
//! depend on the number of threads.

use alloc::vec;
use alloc::vec::Vec;
use num_traits::Float;

/// Images per partial sum.
const GROUP: usize = 8;

/// The geometry of one gradient: operand `a` is gathered, `b` multiplies.
pub(crate) struct Geometry {
    pub batch: usize,
    pub a_channels: usize,
    pub a_hw: [usize; 2],
    pub b_channels: usize,
    pub groups: usize,
    /// The grid the gathered columns run over (`b`'s spatial size).
    pub b_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

/// The positions `q` in `0..len` with `0 <= q * stride + offset < limit`,
/// where `offset = k * dilation - padding` may be negative.
fn valid(len: usize, stride: usize, offset: isize, limit: usize) -> (usize, usize) {
    let s = stride as isize;
    // first q with q*s + offset >= 0
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) + s - 1) / s
    };
    // first q with q*s + offset >= limit
    let hi = if (limit as isize) <= offset {
        0
    } else {
        (limit as isize - offset + s - 1) / s
    };
    let lo = (lo.max(0) as usize).min(len);
    let hi = (hi.max(0) as usize).min(len);
    (lo, hi.max(lo))
}

/// `col[(c, i, j), (qh, qw)] = a[c, qh*s + i*d - p, qw*s + j*d - p]` (0 outside).
///
/// (splitguard.) Zeros are written only where the window leaves the plane,
/// not over a whole row first. When the plane's stride phases are no wider
/// than the grid (`ceil(aw / s) <= bw`: every same-size convolution, and the
/// transposed convolutions' `x2` upsampling), a row of `col` is one phase
/// shifted by one offset, so the valid band is one contiguous copy and only
/// the wrapped border columns are zeroed afterwards; at stride 1 the phase is
/// the plane itself, otherwise the phases are split out once per channel
/// (`phases`, `kh * kw / (sh * sw)` times fewer strided reads than gathering
/// every row of `col`). Otherwise the grid is gathered row by row, each value
/// written once. The values of `col` are the same either way.
fn im2col<T: Float>(a: &[T], channels: usize, g: &Geometry, col: &mut [T], phases: &mut Vec<T>) {
    let [ah, aw] = g.a_hw;
    let [bh, bw] = g.b_hw;
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let positions = bh * bw;
    let plane_len = ah * aw;
    let zero = T::zero();
    // The plane split into its stride phases: phase (ph, pw) holds the
    // values at rows ph, ph + sh, .. and columns pw, pw + sw, .., each
    // phase `ph_h x bw` (zero past the plane). A window offset then reads
    // one phase at a constant shift, so a row of `col` is one contiguous
    // copy. At stride 1 with equal widths that phase is the plane itself.
    let ph_h = ah.div_ceil(sh);
    let direct = (sh, sw) == (1, 1) && aw == bw;
    let phased = !direct && aw.div_ceil(sw) <= bw;
    let shifted = direct || phased;
    let phase_len = ph_h * bw;
    if phased {
        phases.clear();
        phases.resize(channels * sh * sw * phase_len, zero);
    }
    for c in 0..channels {
        let plane = &a[c * plane_len..(c + 1) * plane_len];
        if phased {
            let dst = &mut phases[c * sh * sw * phase_len..(c + 1) * sh * sw * phase_len];
            for ph in 0..sh {
                for pw in 0..sw {
                    let p = &mut dst[(ph * sw + pw) * phase_len..(ph * sw + pw + 1) * phase_len];
                    let n = aw.saturating_sub(pw).div_ceil(sw);
                    for (r, row) in (ph..ah).step_by(sh).enumerate() {
                        let src = &plane[row * aw + pw.min(aw)..(row + 1) * aw];
                        gather(&mut p[r * bw..r * bw + n], src, sw);
                    }
                }
            }
        }
        for i in 0..kh {
            let off_h = (i * g.dilation[0]) as isize - g.padding[0] as isize;
            let (h_lo, h_hi) = valid(bh, sh, off_h, ah);
            for j in 0..kw {
                let off_w = (j * g.dilation[1]) as isize - g.padding[1] as isize;
                let (w_lo, w_hi) = valid(bw, sw, off_w, aw);
                let row = ((c * kh + i) * kw + j) * positions;
                let dst = &mut col[row..row + positions];
                if h_lo >= h_hi || w_lo >= w_hi {
                    dst.fill(zero);
                    continue;
                }
                dst[..h_lo * bw].fill(zero);
                dst[h_hi * bw..].fill(zero);
                if shifted {
                    // dst[q] = phase[q + delta] on the valid rows; the copied
                    // range is clipped to the phase, and whatever it leaves
                    // or wraps into lies in the border columns zeroed below.
                    let (src_plane, src_len, delta) = if direct {
                        (plane, plane_len, off_h * aw as isize + off_w)
                    } else {
                        let (ph, qh0) = (
                            off_h.rem_euclid(sh as isize) as usize,
                            off_h.div_euclid(sh as isize),
                        );
                        let (pw, qw0) = (
                            off_w.rem_euclid(sw as isize) as usize,
                            off_w.div_euclid(sw as isize),
                        );
                        let base = (c * sh * sw + ph * sw + pw) * phase_len;
                        (
                            &phases[base..base + phase_len],
                            phase_len,
                            qh0 * bw as isize + qw0,
                        )
                    };
                    let first = ((h_lo * bw) as isize).max(-delta) as usize;
                    let last = ((h_hi * bw) as isize).min(src_len as isize - delta) as usize;
                    if first < last {
                        let src = (first as isize + delta) as usize;
                        dst[first..last].copy_from_slice(&src_plane[src..src + (last - first)]);
                    }
                    for qh in h_lo..h_hi {
                        let line = &mut dst[qh * bw..(qh + 1) * bw];
                        for v in &mut line[..w_lo] {
                            *v = zero;
                        }
                        for v in &mut line[w_hi..] {
                            *v = zero;
                        }
                    }
                    continue;
                }
                let count = w_hi - w_lo;
                for qh in h_lo..h_hi {
                    let src_row = ((qh * sh) as isize + off_h) as usize * aw;
                    let start = (src_row as isize + (w_lo * sw) as isize + off_w) as usize;
                    let src = &plane[start..start + (count - 1) * sw + 1];
                    let line = &mut dst[qh * bw..(qh + 1) * bw];
                    for v in &mut line[..w_lo] {
                        *v = zero;
                    }
                    for v in &mut line[w_hi..] {
                        *v = zero;
                    }
                    gather(&mut line[w_lo..w_hi], src, sw);
                }
            }
        }
    }
}

/// `out[k] = src[k * stride]` for every `k`; the common strides are
/// constants, so the loop compiles without a multiply or a bounds check.
fn gather<T: Copy>(out: &mut [T], src: &[T], stride: usize) {
    if out.is_empty() {
        return;
    }
    assert!(
        (out.len() - 1) * stride < src.len(),
        "gather: the source is too short"
    );
    #[inline(always)]
    fn by<T: Copy>(out: &mut [T], src: &[T], stride: usize) {
        for (k, v) in out.iter_mut().enumerate() {
            // SAFETY: k < out.len(), and (out.len() - 1) * stride < src.len()
            // was asserted above.
            *v = unsafe { *src.get_unchecked(k * stride) };
        }
    }
    match stride {
        1 => out.copy_from_slice(&src[..out.len()]),
        2 => by(out, src, 2),
        _ => by(out, src, stride),
    }
}

/// `[b_channels, a_channels / groups * kh * kw]` = sum over images of
/// `b_n x im2col(a_n)^T`, group by group.
pub(crate) fn weight_grad<T: Float + Send + Sync + 'static>(
    a: &[T],
    b: &[T],
    g: &Geometry,
) -> Vec<T> {
    let [kh, kw] = g.kernel;
    let a_group = g.a_channels / g.groups;
    let b_group = g.b_channels / g.groups;
    let rows = a_group * kh * kw;
    let positions = g.b_hw[0] * g.b_hw[1];
    let a_plane = g.a_hw[0] * g.a_hw[1];
    let a_len = g.a_channels * a_plane;
    let b_len = g.b_channels * positions;
    let len = g.b_channels * rows;
    // `im2col` writes every value of `col`, so one buffer (and one for the
    // stride phases) serves every chunk a thread takes.
    let scratch = || (vec![T::zero(); rows * positions], Vec::new());
    let partial = |(col, phases): &mut (Vec<T>, Vec<T>), chunk: usize| -> Vec<T> {
        let mut acc = vec![T::zero(); len];
        for img in chunk * GROUP..((chunk + 1) * GROUP).min(g.batch) {
            for grp in 0..g.groups {
                let a0 = img * a_len + grp * a_group * a_plane;
                im2col(&a[a0..a0 + a_group * a_plane], a_group, g, col, phases);
                let b0 = img * b_len + grp * b_group * positions;
                let d0 = grp * b_group * rows;
                // acc[b_group, rows] += b_n[b_group, positions] x col^T
                super::conv::gemm_depth_block(
                    &mut acc[d0..d0 + b_group * rows],
                    &b[b0..b0 + b_group * positions],
                    positions,
                    col,
                    b_group,
                    positions,
                    rows,
                    true,
                    T::one(),
                );
            }
        }
        acc
    };
    let chunks = g.batch.div_ceil(GROUP);
    #[cfg(feature = "rayon")]
    let partials: Vec<Vec<T>> = {
        use rayon::prelude::*;
        (0..chunks)
            .into_par_iter()
            .map_init(scratch, partial)
            .collect()
    };
    #[cfg(not(feature = "rayon"))]
    let partials: Vec<Vec<T>> = {
        let mut buffers = scratch();
        (0..chunks).map(|c| partial(&mut buffers, c)).collect()
    };
    let mut it = partials.into_iter();
    let mut out = it.next().unwrap_or_else(|| vec![T::zero(); len]);
    for p in it {
        out.iter_mut().zip(&p).for_each(|(o, &v)| *o = *o + v);
    }
    out
}

/// `out[c] = sum over n and s of g[n, c, s]`, for `[N, C, S]` data.
/// Each channel is summed image by image, in order, on one thread, so the
/// result does not depend on the thread count; channels run in parallel.
pub(crate) fn channel_sums<T: Float + Send + Sync>(
    g: &[T],
    channels: usize,
    spatial: usize,
) -> Vec<T> {
    if channels == 0 || spatial == 0 {
        return vec![T::zero(); channels];
    }
    let images = g.len() / (channels * spatial);
    let sum = |c: usize| {
        (0..images).fold(T::zero(), |acc, n| {
            let start = (n * channels + c) * spatial;
            g[start..start + spatial]
                .iter()
                .fold(acc, |acc, &v| acc + v)
        })
    };
    crate::ops::par::indices(channels, g.len(), sum)
}
