//! The inverse network `z -> x` the learned inversion attack trains
//! ([`crate::attack::decoder`], DESIGN section 9.1) and the adversarial
//! defense plays against (seed 001): batch-norm, leaky ReLUs and
//! transposed convolutions up to the image size. The network is here, with
//! the other architectures; how it is trained is the attack's.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::leaky_relu;

/// Slope of the decoder's leaky ReLUs.
const SLOPE: f64 = 0.2;

/// A 3x3 convolution with padding 1 (keeps the map size).
fn conv3x3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// A 3x3 convolution that keeps the shape, batch-norm, leaky ReLU.
#[derive(Module, Debug)]
pub struct Refine {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Refine {
    fn new(ch: usize, device: &Device) -> Self {
        Self {
            conv: conv3x3(ch, ch, device),
            bn: BatchNormConfig::new(ch).init(device),
        }
    }

    fn stack(ch: usize, depth: usize, device: &Device) -> Vec<Self> {
        (0..depth).map(|_| Self::new(ch, device)).collect()
    }

    fn forward_all(stack: &[Self], mut x: Tensor<4>) -> Tensor<4> {
        for r in stack {
            x = leaky_relu(r.bn.forward(r.conv.forward(x)), SLOPE);
        }
        x
    }
}

/// One upsampling stage: transposed conv (x2), batch-norm, leaky ReLU, then
/// the stage's refining convolutions.
#[derive(Module, Debug)]
pub struct UpStage {
    deconv: ConvTranspose2d,
    bn: BatchNorm,
    refine: Vec<Refine>,
}

/// The inverse network `z -> x`.
#[derive(Module, Debug)]
pub struct Decoder {
    fc: Option<Linear>,
    head: Option<Conv2d>,
    bn0: BatchNorm,
    refine0: Vec<Refine>,
    ups: Vec<UpStage>,
    out: Conv2d,
    #[module(skip)]
    base: [usize; 3],
    #[module(skip)]
    target: [usize; 3],
}

impl Decoder {
    /// A decoder from features of `input` shape (`[D]` or `[C, h, w]`) to
    /// images of `target` shape `[C, H, W]`, with `depth` refining
    /// convolutions at every resolution.
    pub fn new(
        input: &[usize],
        target: [usize; 3],
        width: usize,
        depth: usize,
        device: &Device,
    ) -> Self {
        let [tc, th, tw] = target;
        let width = width.max(8);
        let (fc, head, base, n_up) = match *input {
            [c, h, w] => {
                // As many x2 stages as fit inside the image size; a final
                // bilinear resize covers the rest (3 -> 24 -> 28), so no
                // stage works on maps larger than the image.
                let ups = |from: usize, to: usize| {
                    let mut n = 0;
                    while (from << (n + 1)) <= to {
                        n += 1;
                    }
                    n
                };
                let n_up = ups(h, th).max(ups(w, tw));
                let head = conv3x3(c, width, device);
                (None, Some(head), [width, h, w], n_up)
            }
            _ => {
                let d: usize = input.iter().product();
                let (bh, bw) = (th.div_ceil(4), tw.div_ceil(4));
                let fc = LinearConfig::new(d, width * bh * bw).init(device);
                (Some(fc), None, [width, bh, bw], 2)
            }
        };
        let mut ups = Vec::with_capacity(n_up);
        let mut ch = width;
        for _ in 0..n_up {
            let next = (ch / 2).max(16);
            ups.push(UpStage {
                deconv: ConvTranspose2dConfig::new([ch, next], [4, 4])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .init(device),
                bn: BatchNormConfig::new(next).init(device),
                refine: Refine::stack(next, depth, device),
            });
            ch = next;
        }
        let out = conv3x3(ch, tc, device);
        Self {
            fc,
            head,
            bn0: BatchNormConfig::new(width).init(device),
            refine0: Refine::stack(width, depth, device),
            ups,
            out,
            base,
            target,
        }
    }

    /// `[N, D]` flattened (standardised) features -> `[N, C, H, W]` images in (0, 1).
    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let n = z.dims()[0];
        let [bc, bh, bw] = self.base;
        let x = match (&self.fc, &self.head) {
            (Some(fc), _) => fc.forward(z).reshape([n, bc, bh, bw]),
            (None, Some(head)) => {
                let d = z.dims()[1];
                let (h, w) = (bh, bw);
                head.forward(z.reshape([n, d / (h * w), h, w]))
            }
            (None, None) => unreachable!("expected a decoder with an input layer"),
        };
        let mut x = Refine::forward_all(&self.refine0, leaky_relu(self.bn0.forward(x), SLOPE));
        for up in &self.ups {
            x = leaky_relu(up.bn.forward(up.deconv.forward(x)), SLOPE);
            x = Refine::forward_all(&up.refine, x);
        }
        let mut x = self.out.forward(x);
        let [_, _, h, w] = x.dims();
        let [_, th, tw] = self.target;
        if (h, w) != (th, tw) {
            x = interpolate(
                x,
                InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([th, tw]),
            );
        }
        sigmoid(x)
    }
}
