//! Batch normalisation in training, forward and backward, fused.
//!
//! (splitguard addition, see `VENDORED.md`.) The trait defaults compute the
//! batch statistics and the gradients out of tensor operations: a
//! `swap_dims` + `reshape` (a full layout copy) for every reduction and one
//! pass over the data per elementwise step, about twelve passes and five
//! copies for one layer. Here each direction is two passes: per-channel sums
//! (accumulated in f64), then one elementwise pass that writes the result.
//! The arithmetic is the defaults': `(x - mean) / sqrt(var + eps) * gamma +
//! beta` with the biased variance of the centred values, and
//! `dx = gamma / std * (g - mean(g) - xhat * mean(g * xhat))`.

use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape, bf16, f16};
use bytemuck::Pod;
use num_traits::Float;

use crate::ops::module::{cast_from_f32, cast_to_f32};
use crate::{FlexTensor, Layout};

/// `(channels, chunk, batch)` of a `[N, C, S...]` shape: the data is `N * C`
/// contiguous chunks of `S` values, chunk `i` belonging to channel `i % C`.
fn dims(shape: &Shape) -> (usize, usize, usize) {
    let chunk = shape.iter().skip(2).product::<usize>();
    (shape[1], chunk, shape[0])
}

fn f64_of<T: Float>(v: T) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

fn t_of<T: Float>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

/// Sum over channel `c`'s values of `f(index)` (index into the flat buffer):
/// each image's values summed in order, then the images' sums in order.
///
/// The images' sums are independent chains of additions, so four images
/// are summed side by side (one f64 addition waits ~4 cycles for the one
/// before it; four chains keep the adder busy). The additions and their
/// order are those of `(0..batch).map(|n| image_sum(n)).sum()`, so the
/// result is the same to the bit.
fn channel_sum(
    c: usize,
    channels: usize,
    chunk: usize,
    batch: usize,
    f: impl Fn(usize) -> f64,
) -> f64 {
    const LANES: usize = 4;
    // `Sum` for f64 starts from this (-0.0 in recent Rust, so that an empty
    // or all-negative-zero sum keeps its sign).
    let zero: f64 = core::iter::empty::<f64>().sum();
    let start = |n: usize| (n * channels + c) * chunk;
    let mut total = zero;
    let mut n = 0;
    while n + LANES <= batch {
        let starts: [usize; LANES] = core::array::from_fn(|k| start(n + k));
        let mut acc = [zero; LANES];
        for j in 0..chunk {
            for k in 0..LANES {
                acc[k] += f(starts[k] + j);
            }
        }
        for a in acc {
            total += a;
        }
        n += LANES;
    }
    for n in n..batch {
        total += (start(n)..start(n) + chunk).map(&f).sum::<f64>();
    }
    total
}

fn tensor_of<T: Pod + Send + Sync>(data: Vec<T>, shape: Shape, dtype: DType) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), dtype)
}

/// `(output, mean, biased variance)` of batch-norm over the batch itself.
fn train_typed<T: Float + Pod + Send + Sync + burn_std::Element>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    dtype: DType,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let gamma = gamma.to_contiguous();
    let beta = beta.to_contiguous();
    let shape = x.layout().shape().clone();
    let (channels, chunk, batch) = dims(&shape);
    let xs: &[T] = x.storage();
    let gs: &[T] = gamma.storage();
    let bs: &[T] = beta.storage();
    let count = (batch * chunk).max(1) as f64;

    let stats: Vec<(T, T)> = crate::ops::par::indices(channels, xs.len(), |c| {
        let mean = t_of::<T>(channel_sum(c, channels, chunk, batch, |i| f64_of(xs[i])) / count);
        let sq = channel_sum(c, channels, chunk, batch, |i| {
            let d = f64_of(xs[i] - mean);
            d * d
        });
        (mean, t_of::<T>(sq / count))
    });
    let eps = t_of::<T>(epsilon);
    // SAFETY: every piece is `chunk` values of one (image, channel) plane
    // and `xs` holds `chunk` values for each, so the loop writes them all.
    let out: Vec<T> = unsafe {
        crate::ops::par::chunks_new(xs.len(), chunk, |i, dst| {
            let c = i % channels;
            let (mean, var) = stats[c];
            let std = (var + eps).sqrt();
            let (g, b) = (gs[c], bs[c]);
            for (d, &v) in dst.iter_mut().zip(&xs[i * chunk..(i + 1) * chunk]) {
                d.write((v - mean) / std * g + b);
            }
        })
    };
    let (mean, var): (Vec<T>, Vec<T>) = stats.into_iter().unzip();
    (
        tensor_of(out, shape, dtype),
        tensor_of(mean, Shape::new([channels]), dtype),
        tensor_of(var, Shape::new([channels]), dtype),
    )
}

/// `(x_grad, gamma_grad, beta_grad)` of [`train_typed`].
fn backward_typed<T: Float + Pod + Send + Sync + burn_std::Element>(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    grad: FlexTensor,
    dtype: DType,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let grad = grad.to_contiguous();
    let gamma = gamma.to_contiguous();
    let mean = mean.to_contiguous();
    let variance = variance.to_contiguous();
    let shape = x.layout().shape().clone();
    let (channels, chunk, batch) = dims(&shape);
    let xs: &[T] = x.storage();
    let gr: &[T] = grad.storage();
    let gs: &[T] = gamma.storage();
    let ms: &[T] = mean.storage();
    let vs: &[T] = variance.storage();
    let count = (batch * chunk).max(1) as f64;
    let eps = t_of::<T>(epsilon);
    let inv_std: Vec<T> = vs.iter().map(|&v| T::one() / (v + eps).sqrt()).collect();

    // Per channel: sum(g) (beta's gradient) and sum(g * xhat) (gamma's).
    let sums: Vec<(f64, f64)> = crate::ops::par::indices(channels, xs.len(), |c| {
        let (m, s) = (ms[c], inv_std[c]);
        let beta = channel_sum(c, channels, chunk, batch, |i| f64_of(gr[i]));
        let gamma = channel_sum(c, channels, chunk, batch, |i| {
            f64_of(gr[i] * ((xs[i] - m) * s))
        });
        (beta, gamma)
    });
    // SAFETY: as for the forward pass: `xs` and `gr` hold `chunk` values for
    // every piece.
    let dx: Vec<T> = unsafe {
        crate::ops::par::chunks_new(xs.len(), chunk, |i, dst| {
            let c = i % channels;
            let (m, s) = (ms[c], inv_std[c]);
            let mean_g = t_of::<T>(sums[c].0 / count);
            let mean_gx = t_of::<T>(sums[c].1 / count);
            let scale = gs[c] * s;
            let range = i * chunk..(i + 1) * chunk;
            for ((d, &v), &g) in dst.iter_mut().zip(&xs[range.clone()]).zip(&gr[range]) {
                let xhat = (v - m) * s;
                d.write(scale * ((g - mean_g) - xhat * mean_gx));
            }
        })
    };
    let beta_grad: Vec<T> = sums.iter().map(|s| t_of::<T>(s.0)).collect();
    let gamma_grad: Vec<T> = sums.iter().map(|s| t_of::<T>(s.1)).collect();
    (
        tensor_of(dx, shape, dtype),
        tensor_of(gamma_grad, Shape::new([channels]), dtype),
        tensor_of(beta_grad, Shape::new([channels]), dtype),
    )
}

/// Batch-norm over the batch: `(output, mean, biased variance)`.
pub(crate) fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    match x.dtype() {
        DType::F32 => train_typed::<f32>(x, gamma, beta, epsilon, DType::F32),
        DType::F64 => train_typed::<f64>(x, gamma, beta, epsilon, DType::F64),
        DType::F16 => half(
            train_typed::<f32>(
                cast_to_f32(x, f16::to_f32),
                cast_to_f32(gamma, f16::to_f32),
                cast_to_f32(beta, f16::to_f32),
                epsilon,
                DType::F32,
            ),
            f16::from_f32,
        ),
        DType::BF16 => half(
            train_typed::<f32>(
                cast_to_f32(x, bf16::to_f32),
                cast_to_f32(gamma, bf16::to_f32),
                cast_to_f32(beta, bf16::to_f32),
                epsilon,
                DType::F32,
            ),
            bf16::from_f32,
        ),
        dtype => panic!("batch_norm_train: unsupported dtype {dtype:?}"),
    }
}

/// Gradients of [`batch_norm_train`]: `(x_grad, gamma_grad, beta_grad)`.
pub(crate) fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    match x.dtype() {
        DType::F32 => backward_typed::<f32>(x, gamma, mean, variance, epsilon, grad, DType::F32),
        DType::F64 => backward_typed::<f64>(x, gamma, mean, variance, epsilon, grad, DType::F64),
        DType::F16 => half(
            backward_typed::<f32>(
                cast_to_f32(x, f16::to_f32),
                cast_to_f32(gamma, f16::to_f32),
                cast_to_f32(mean, f16::to_f32),
                cast_to_f32(variance, f16::to_f32),
                epsilon,
                cast_to_f32(grad, f16::to_f32),
                DType::F32,
            ),
            f16::from_f32,
        ),
        DType::BF16 => half(
            backward_typed::<f32>(
                cast_to_f32(x, bf16::to_f32),
                cast_to_f32(gamma, bf16::to_f32),
                cast_to_f32(mean, bf16::to_f32),
                cast_to_f32(variance, bf16::to_f32),
                epsilon,
                cast_to_f32(grad, bf16::to_f32),
                DType::F32,
            ),
            bf16::from_f32,
        ),
        dtype => panic!("batch_norm_train_backward: unsupported dtype {dtype:?}"),
    }
}

fn half<E: burn_backend::Element + Pod + Copy>(
    (a, b, c): (FlexTensor, FlexTensor, FlexTensor),
    from_f32: fn(f32) -> E,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    (
        cast_from_f32(a, from_f32),
        cast_from_f32(b, from_f32),
        cast_from_f32(c, from_f32),
    )
}
