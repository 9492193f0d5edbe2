//! The block inverses `G_j` of DCI and their training with `L_layer`.
//!
//! Each `G_j` is a residual pair: a linear path (1x1 convolution, or a dense
//! map) that can represent a linear block's exact inverse, plus a small
//! non-linear branch (3x3 convolutions or one hidden layer, leaky ReLU)
//! whose last layer starts at zero, so a fresh inverse is its linear path.
//! Maps shrunk by pooling are first resized back (bilinear). No batch-norm,
//! so copies of an inverse never share state.
//!
//! Each inverse trains on the attacker's synthetic rows less a held-out
//! tenth, validates on that tenth after every epoch, and keeps its
//! best-validation epoch ([`super::super::diagnostics`]).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::DciConfig;
use crate::attack::diagnostics::{Curves, Holdout, fit_with_validation};
use crate::model::{Features, leaky_relu};
use crate::train::to_vec;

fn conv(cin: usize, cout: usize, kernel: usize, zero: bool, device: &Device) -> Conv2d {
    let p = kernel / 2;
    let mut c = Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p));
    if zero {
        c = c.with_initializer(Initializer::Zeros);
    }
    c.init(device)
}

/// Inverse of a convolution or residual block: features `[N, C_out, h, w]`
/// back to the block's input `[N, C_in, H, W]`.
#[derive(Module, Debug)]
pub struct ConvInverse {
    skip: Conv2d,
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    #[module(skip)]
    size: [usize; 2],
}

impl ConvInverse {
    /// `[N, C_out, h, w] -> [N, C_in, H, W]`.
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = z.dims();
        let z = if [h, w] != self.size {
            interpolate(
                z,
                InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size(self.size),
            )
        } else {
            z
        };
        let y = leaky_relu(self.c1.forward(z.clone()), 0.2);
        let y = leaky_relu(self.c2.forward(y), 0.2);
        self.skip.forward(z) + self.c3.forward(y)
    }
}

/// Inverse of a fully connected block: `[N, D_out]` back to the block's
/// input (`[N, D_in]`, or the map it flattened).
#[derive(Module, Debug)]
pub struct LinearInverse {
    skip: Linear,
    l1: Linear,
    l2: Linear,
    #[module(skip)]
    input: Vec<usize>,
}

impl LinearInverse {
    /// `[N, D_out] -> ` the block's input features.
    pub fn forward(&self, z: Tensor<2>) -> Features {
        let y = leaky_relu(self.l1.forward(z.clone()), 0.2);
        Features::from_flat(self.skip.forward(z) + self.l2.forward(y), &self.input)
    }
}

/// The learned inverse `G_j` of one block.
// One per block of the model, so the size of the larger variant costs
// nothing worth a box (which burn's `Module` derive would have to see through).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum BlockInverse {
    /// Inverse of a block whose output is a map.
    Conv(ConvInverse),
    /// Inverse of a block whose output is a vector.
    Linear(LinearInverse),
}

impl BlockInverse {
    /// A fresh inverse for a block mapping `input` to `output` features
    /// (`[C, H, W]` or `[D]` each).
    pub fn new(input: &[usize], output: &[usize], width: usize, device: &Device) -> Self {
        match (input, output) {
            (&[cin, h, w], &[cout, _, _]) => BlockInverse::Conv(ConvInverse {
                skip: conv(cout, cin, 1, false, device),
                c1: conv(cout, width, 3, false, device),
                c2: conv(width, width, 3, false, device),
                c3: conv(width, cin, 3, true, device),
                size: [h, w],
            }),
            _ => {
                let din: usize = input.iter().product();
                let dout: usize = output.iter().product();
                let hidden = width * 8;
                BlockInverse::Linear(LinearInverse {
                    skip: LinearConfig::new(dout, din).init(device),
                    l1: LinearConfig::new(dout, hidden).init(device),
                    l2: LinearConfig::new(hidden, din)
                        .with_initializer(Initializer::Zeros)
                        .init(device),
                    input: input.to_vec(),
                })
            }
        }
    }

    /// The block's output features back to its input features.
    pub fn forward(&self, z: Features) -> Features {
        match (self, z) {
            (BlockInverse::Conv(g), Features::Map(t)) => Features::Map(g.forward(t)),
            (BlockInverse::Linear(g), z) => g.forward(z.flatten()),
            (BlockInverse::Conv(_), Features::Flat(_)) => {
                panic!("expected map features for the inverse of a convolution block")
            }
        }
    }
}

/// `G = G_1 o ... o G_k`: split-`k` features back to images.
#[derive(Module, Debug)]
pub struct ComposedInverse {
    /// `G_1 .. G_k`, applied last to first.
    pub stages: Vec<BlockInverse>,
}

impl ComposedInverse {
    /// Split features -> input features (images, unclamped).
    pub fn forward(&self, mut z: Features) -> Features {
        for g in self.stages.iter().rev() {
            z = g.forward(z);
        }
        z
    }
}

/// Host activations: flat rows and one example's shape.
#[derive(Clone, Debug)]
pub(super) struct Acts {
    pub(super) data: Vec<f32>,
    pub(super) shape: Vec<usize>,
}

impl Acts {
    pub(super) fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    pub(super) fn batch(&self, idx: &[usize], device: &Device) -> Features {
        let d = self.dim();
        let mut buf = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            buf.extend_from_slice(&self.data[i * d..(i + 1) * d]);
        }
        let flat = Tensor::<2>::from_data(TensorData::new(buf, [idx.len(), d]), device);
        Features::from_flat(flat, &self.shape)
    }
}

pub(super) fn mean_l1(a: Features, b: Features) -> Tensor<1> {
    (a.flatten() - b.flatten()).abs().mean()
}

/// Mean L1 of `g` (an inference copy) mapping `z` rows back to `u` rows,
/// over `rows`.
pub(super) fn held_out_l1<F: Fn(Features) -> Features>(
    g: F,
    z: &Acts,
    u: &Acts,
    rows: &[usize],
    device: &Device,
) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for b in rows.chunks(256) {
        let l = mean_l1(g(z.batch(b, device)), u.batch(b, device));
        sum += f64::from(to_vec(l)[0]) * b.len() as f64;
        count += b.len();
    }
    sum / count.max(1) as f64
}

/// Trains `g` to map `z` rows back to `u` rows with the mean L1 loss on the
/// hold-out's training rows, validating on its validation rows after every
/// epoch; returns the best-validation epoch's inverse with the curves.
fn fit_inverse(
    g: BlockInverse,
    z: &Acts,
    u: &Acts,
    rows: &Holdout,
    cfg: &DciConfig,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> (BlockInverse, Curves) {
    let inner = device.clone().inner();
    let mut order = rows.train.clone();
    let mut optim = AdamConfig::new().init();
    let train_epoch = |mut g: BlockInverse, _epoch: usize| {
        order.shuffle(rng);
        let (mut sum, mut count) = (0.0, 0usize);
        for b in order.chunks(cfg.batch_size.max(1)) {
            let loss = mean_l1(g.forward(z.batch(b, device)), u.batch(b, device));
            sum += f64::from(to_vec(loss.clone().detach())[0]) * b.len() as f64;
            count += b.len();
            let grads = GradientsParams::from_grads(loss.backward(), &g);
            g = optim.step(cfg.lr, g, grads);
        }
        (g, sum / count.max(1) as f64)
    };
    let validate = |g: &BlockInverse| {
        let g = g.valid();
        held_out_l1(|x| g.forward(x), z, u, &rows.validation, &inner)
    };
    fit_with_validation(g, cfg.block_epochs, cfg.patience, train_epoch, validate)
}

/// A trained block inverse and its curves.
#[derive(Debug)]
pub struct BlockFit {
    /// The inverse of the kept (best-validation) epoch.
    pub inverse: BlockInverse,
    /// Training and validation `L_layer` (mean L1) per epoch, and the kept epoch.
    pub curves: Curves,
}

impl BlockFit {
    /// Training `L_layer` (mean L1) of the kept epoch.
    pub fn train_l1(&self) -> f64 {
        self.curves.best_train()
    }
}

/// Trains the inverse of one block on pairs `(u_j, F_j(u_j))` (given as
/// host rows) with `L_layer` on the `rows.train` rows, validating on the
/// `rows.validation` rows after every epoch; keeps the best-validation
/// epoch. `device` must support autodiff.
#[allow(clippy::too_many_arguments)]
pub fn train_block_inverse(
    u: &[f32],
    u_shape: &[usize],
    z: &[f32],
    z_shape: &[usize],
    rows: &Holdout,
    cfg: &DciConfig,
    seed: u64,
    device: &Device,
) -> BlockFit {
    device.seed(seed);
    let g = BlockInverse::new(u_shape, z_shape, cfg.width, device);
    let u = Acts {
        data: u.to_vec(),
        shape: u_shape.to_vec(),
    };
    let z = Acts {
        data: z.to_vec(),
        shape: z_shape.to_vec(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (inverse, curves) = fit_inverse(g, &z, &u, rows, cfg, &mut rng, device);
    BlockFit { inverse, curves }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelSpec, zoo};

    #[test]
    fn block_inverses_map_outputs_back_to_input_shapes() {
        let device = Device::flex();
        let spec: ModelSpec = zoo::spec("cnn6").unwrap();
        let infos = spec.infos().unwrap();
        // Block 1: 1x28x28 -> 16x14x14 (pooled); block 4: 64x3x3 -> 128.
        for j in [0, 3] {
            let (i, o) = (&infos[j].input, &infos[j].output);
            let g = BlockInverse::new(i, o, 4, &device);
            let z = Tensor::<2>::zeros([2, o.iter().product::<usize>()], &device);
            let back = g.forward(Features::from_flat(z, o));
            assert_eq!(&back.example_shape(), i, "block {}", j + 1);
        }
    }

    #[test]
    fn composed_inverse_applies_the_deepest_inverse_first() {
        let device = Device::flex();
        let infos = zoo::spec("cnn6").unwrap().infos().unwrap();
        let stages = (0..4)
            .map(|j| BlockInverse::new(&infos[j].input, &infos[j].output, 4, &device))
            .collect();
        let g = ComposedInverse { stages };
        let z = Tensor::<2>::zeros([3, 128], &device);
        let x = g.forward(Features::Flat(z));
        assert_eq!(x.example_shape(), vec![1, 28, 28]);
        assert_eq!(x.batch(), 3);
    }

    #[test]
    fn a_fresh_dense_inverse_is_its_linear_path() {
        // The non-linear branch starts at zero, so a fresh inverse is affine.
        let device = Device::flex();
        let g = BlockInverse::new(&[3], &[2], 4, &device);
        let BlockInverse::Linear(l) = &g else {
            panic!("expected a dense inverse")
        };
        let z = Tensor::<2>::from_data(TensorData::new(vec![0.3, -1.2], [1, 2]), &device);
        let want = to_vec(l.skip.forward(z.clone()));
        let got = to_vec(g.forward(Features::Flat(z)).flatten());
        assert_eq!(want, got);
    }
}
