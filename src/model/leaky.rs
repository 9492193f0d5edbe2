//! The leaky ReLU as one pass forward and one backward on flex.
//!
//! splitguard's leaky ReLU is `relu(x) * (1 - s) + x * s` ([`leaky_relu`]),
//! equal to the definition up to one rounding of the sum: burn's own
//! `leaky_relu` has no autodiff rule (under autodiff it is a comparison and
//! a `mask_where`, whose backward costs two masked copies and a sum), while
//! ReLU has its own forward and backward. Written with tensor ops, this form
//! is four elementwise passes forward (ReLU, two scalings, a sum) and four
//! backward (two scalings, the ReLU mask, the sum of `x`'s two gradients);
//! on flex each is a pass over the whole tensor, and in the decoder's step
//! at split 2 they took ~9% of the time. Here the same arithmetic runs per
//! element in one pass each way, through burn's backend extension (a flex
//! kernel and an autodiff node):
//!
//! - forward: `y = r * c1 + x * c2` with `r = relu(x)` (NaN kept, as flex's
//!   ReLU does), `c1 = 1 - s` and `c2 = s` rounded to `f32` as flex rounds a
//!   scalar;
//! - backward: `dx = (r > 0 or NaN ? g * c1 : 0) + g * c2`: the ReLU mask of
//!   the scaled gradient plus the other branch, the sum autodiff formed from
//!   the two gradients `x` received.
//!
//! Every value is computed by the same operations in the same order, so the
//! results are bit-identical to the four ops, provided `x` feeds nothing but
//! the activation (autodiff would otherwise add the two parts to `x`'s
//! other gradients one at a time): in splitguard every leaky ReLU's input is
//! a convolution's, a linear layer's or a batch-norm's output used only by
//! it. Tensors that are not `f32` on flex (and every tensor on another
//! backend) take the four ops.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchTensorKind, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, TensorData, activation};
use burn_flex::FlexTensor;

/// Leaky ReLU, `x` where `x > 0` and `slope * x` elsewhere, written as
/// `relu(x) * (1 - slope) + x * slope`: the activation of the decoder, DCI's
/// inverse and the zoo's `LeakyRelu` blocks, fused on flex (see the module).
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    let dispatch = x.into_dispatch();
    #[allow(unreachable_patterns)]
    let on_flex = match &dispatch.kind {
        DispatchTensorKind::Flex(_) => true,
        DispatchTensorKind::Autodiff(inner) => matches!(**inner, DispatchTensorKind::Flex(_)),
        _ => false,
    };
    if on_flex {
        return Tensor::from_dispatch(<Dispatch as FusedLeaky>::leaky_relu_fused(dispatch, slope));
    }
    let x = Tensor::<D>::from_dispatch(dispatch);
    activation::relu(x.clone()).mul_scalar(1.0 - slope) + x.mul_scalar(slope)
}

/// The fused leaky ReLU and its gradient as backend operations. The default
/// bodies are the four tensor ops (and their gradients), for any backend.
#[backend_extension(Flex, Autodiff)]
pub trait FusedLeaky: Backend {
    /// `relu(x) * (1 - slope) + x * slope`.
    fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        composed_forward::<Self>(x, slope)
    }

    /// The gradient of [`FusedLeaky::leaky_relu_fused`] at `x` for the output
    /// gradient `grad`.
    fn leaky_relu_fused_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        slope: f64,
    ) -> FloatTensor<Self> {
        composed_backward::<Self>(x, grad, slope)
    }
}

fn composed_forward<B: Backend>(x: FloatTensor<B>, slope: f64) -> FloatTensor<B> {
    let relu = B::float_mul_scalar(B::relu(x.clone()), (1.0 - slope).into());
    B::float_add(relu, B::float_mul_scalar(x, slope.into()))
}

fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
    slope: f64,
) -> FloatTensor<B> {
    let through = B::relu_backward(
        B::relu(x),
        B::float_mul_scalar(grad.clone(), (1.0 - slope).into()),
    );
    B::float_add(through, B::float_mul_scalar(grad, slope.into()))
}

/// Values per parallel task (flex splits its elementwise loops alike).
const CHUNK: usize = 1 << 14;

/// `out[i] = f(a[i], b[i])` for `a` and `b` of one length, in parallel
/// pieces once large, written into the new vector without zeroing it first.
/// Plain loops over slices, so they vectorise.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Vec<f32> {
    use rayon::prelude::*;
    assert_eq!(a.len(), b.len(), "zip_map: operands of different lengths");
    let len = a.len();
    let mut out = Vec::with_capacity(len);
    let fill = |k: usize, piece: &mut [std::mem::MaybeUninit<f32>]| {
        let start = k * CHUNK;
        for ((o, &x), &y) in piece.iter_mut().zip(&a[start..]).zip(&b[start..]) {
            o.write(f(x, y));
        }
    };
    let spare = &mut out.spare_capacity_mut()[..len];
    if len < 4 * CHUNK {
        spare
            .chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(k, p)| fill(k, p));
    } else {
        spare
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(k, p)| fill(k, p));
    }
    // SAFETY: the pieces cover the first `len` slots, and each piece's loop
    // writes all of its slots (`a` and `b` hold `len` values).
    unsafe { out.set_len(len) };
    out
}

/// The contiguous `f32` values of a flex tensor, or `None` for other dtypes.
fn f32_values(t: &FlexTensor) -> Option<&[f32]> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let (start, end) = t.layout().contiguous_offsets()?;
    Some(&t.storage::<f32>()[start..end])
}

fn flex_f32(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.layout().shape().to_vec()))
}

/// flex's ReLU: NaN passes, everything not above zero is zero.
#[inline(always)]
fn relu(v: f32) -> f32 {
    if v.is_nan() || v > 0.0 { v } else { 0.0 }
}

impl FusedLeaky for Flex {
    fn leaky_relu_fused(x: FlexTensor, slope: f64) -> FlexTensor {
        let x = x.to_contiguous();
        let Some(xs) = f32_values(&x) else {
            return composed_forward::<Flex>(x, slope);
        };
        let (c1, c2) = ((1.0 - slope) as f32, slope as f32);
        let out = zip_map(xs, xs, |v, _| relu(v) * c1 + v * c2);
        flex_f32(out, &x)
    }

    fn leaky_relu_fused_backward(x: FlexTensor, grad: FlexTensor, slope: f64) -> FlexTensor {
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let (Some(xs), Some(gs)) = (f32_values(&x), f32_values(&grad)) else {
            return composed_backward::<Flex>(x, grad, slope);
        };
        if xs.len() != gs.len() {
            return composed_backward::<Flex>(x, grad, slope);
        }
        let (c1, c2) = ((1.0 - slope) as f32, slope as f32);
        let out = zip_map(xs, gs, |v, g| {
            // ReLU's gradient passes where its output is positive or NaN.
            // The product is formed either way, so this is a select, not a
            // branch (mispredicted on half the values, it cost 5x).
            let scaled = g * c1;
            let r = relu(v);
            let through = if r.is_nan() || r > 0.0 { scaled } else { 0.0 };
            through + g * c2
        });
        flex_f32(out, &x)
    }
}

/// The autodiff node of the fused leaky ReLU: keeps `x` for the backward.
#[derive(Debug)]
struct LeakyBackward {
    slope: f64,
}

impl<B: FusedLeaky> Backward<B, 1> for LeakyBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::leaky_relu_fused_backward(x, grad, self.slope)
        });
    }
}

impl<B: FusedLeaky, C: CheckpointStrategy> FusedLeaky for Autodiff<B, C> {
    fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        let node = LeakyBackward { slope };
        match node.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                prep.finish(x.clone(), B::leaky_relu_fused(x, slope))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::leaky_relu_fused(x.into_primitive(), slope)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaky ReLU as the four tensor ops it replaces.
    fn four_ops<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
        activation::relu(x.clone()).mul_scalar(1.0 - slope) + x.mul_scalar(slope)
    }

    /// Bit patterns, NaNs as one pattern (their payloads are not the point).
    fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
        let data = t.into_data().convert::<f32>();
        let values = data.as_slice::<f32>().expect("f32 values");
        values
            .iter()
            .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
            .collect()
    }

    /// `n` values: the special ones first (signed zeros, NaN, infinities,
    /// subnormals, the largest), then a deterministic spread of both signs.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let special = [
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -1e-40,
            f32::MAX,
            -f32::MAX,
            1.0,
            -1.0,
        ];
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|i| {
                special.get(i).copied().unwrap_or_else(|| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state as f32 / u32::MAX as f32 - 0.5) * 6.0
                })
            })
            .collect()
    }

    #[test]
    fn fused_leaky_relu_gives_the_bits_of_the_four_ops() {
        let device = Device::flex().autodiff();
        // Below and above the parallel threshold (4 x 16K values).
        for (n, seed) in [(37, 1), (70_001, 2)] {
            for slope in [0.2, 0.01] {
                let xs = values(n, seed);
                // Output gradients with zeros, signs and subnormals.
                let ws = values(n, seed + 10);
                let w = Tensor::<1>::from_floats(ws.as_slice(), &device);
                let x1 = Tensor::<1>::from_floats(xs.as_slice(), &device).require_grad();
                let x2 = Tensor::<1>::from_floats(xs.as_slice(), &device).require_grad();
                let y1 = leaky_relu(x1.clone(), slope);
                let y2 = four_ops(x2.clone(), slope);
                assert_eq!(
                    bits(y1.clone()),
                    bits(y2.clone()),
                    "forward, n {n}, slope {slope}"
                );
                let g1 = (y1 * w.clone()).sum().backward();
                let g2 = (y2 * w).sum().backward();
                let d1 = x1.grad(&g1).expect("fused gradient");
                let d2 = x2.grad(&g2).expect("four-op gradient");
                assert_eq!(bits(d1), bits(d2), "gradient, n {n}, slope {slope}");
            }
        }
    }

    #[test]
    fn fused_leaky_relu_matches_its_definition_without_autodiff_and_on_views() {
        let device = Device::flex();
        let xs = values(6 * 7, 3);
        // A transposed (non-contiguous) view.
        let x = Tensor::<1>::from_floats(xs.as_slice(), &device)
            .reshape([6, 7])
            .transpose();
        let fused = bits(leaky_relu(x.clone(), 0.2));
        assert_eq!(fused, bits(four_ops(x.clone(), 0.2)));
        // The definition: x where x > 0, 0.2 x elsewhere (up to the sum's
        // rounding), NaN kept.
        let got = leaky_relu(x.clone(), 0.2)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let inputs = x.into_data().try_to_vec::<f32>().expect("f32");
        for (&y, &v) in got.iter().zip(&inputs) {
            let want = if v > 0.0 { v } else { 0.2 * v };
            if v.is_nan() {
                assert!(y.is_nan());
            } else if v.is_finite() && v.abs() < 1e30 {
                assert!(
                    (y - want).abs() <= 1e-6 * want.abs().max(1e-30),
                    "{v}: {y} vs {want}"
                );
            }
        }
    }

    #[test]
    fn other_float_types_take_the_four_ops() {
        let device = Device::flex().autodiff();
        let xs: Vec<f64> = values(50, 4).into_iter().map(f64::from).collect();
        let make = || {
            Tensor::<1>::from_data(
                TensorData::new(xs.clone(), [xs.len()]),
                (&device, DType::F64),
            )
            .require_grad()
        };
        let (x1, x2) = (make(), make());
        assert_eq!(x1.dtype(), DType::F64);
        let (y1, y2) = (leaky_relu(x1.clone(), 0.2), four_ops(x2.clone(), 0.2));
        let same = |a: Tensor<1>, b: Tensor<1>| {
            let (a, b) = (
                a.into_data().try_to_vec::<f64>(),
                b.into_data().try_to_vec::<f64>(),
            );
            let (a, b) = (a.expect("f64"), b.expect("f64"));
            a.iter()
                .zip(&b)
                .all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
        };
        assert!(same(y1.clone(), y2.clone()));
        let g1 = y1.sum().backward();
        let g2 = y2.sum().backward();
        assert!(same(
            x1.grad(&g1).expect("grad"),
            x2.grad(&g2).expect("grad")
        ));
    }
}
