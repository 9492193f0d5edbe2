//! Helpers shared by the integration tests: a tiny model, a seeded
//! synthetic dataset (for mechanics only, never for reported numbers), the
//! real embedded data's small slice, and temp dirs.
#![allow(dead_code)]

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use splitguard::data::{Attribute, Dataset};
use splitguard::model::{ActivationKind, BlockSpec, ConvSpec, LinearSpec, ModelSpec};

/// A three-block model on 1x8x8 inputs with batch-norm, for fast tests.
pub fn tiny_spec() -> ModelSpec {
    ModelSpec {
        vae: None,
        arch: "tiny".into(),
        input: [1, 8, 8],
        blocks: vec![
            BlockSpec::Conv(ConvSpec {
                out_channels: 4,
                kernel: 3,
                stride: 1,
                padding: None,
                pool: 2,
                batch_norm: true,
                activation: ActivationKind::Relu,
                order: Default::default(),
                bias: true,
            }),
            BlockSpec::Linear(LinearSpec {
                out_features: 8,
                activation: ActivationKind::Relu,
                batch_norm: true,
            }),
            BlockSpec::Linear(LinearSpec {
                out_features: 3,
                activation: ActivationKind::None,
                batch_norm: false,
            }),
        ],
    }
}

/// `n` random 1x8x8 images with 3 classes and one hidden attribute.
pub fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let images = (0..n * 64).map(|_| rng.random::<f32>()).collect();
    let targets = (0..n).map(|i| (i % 3) as u32).collect();
    Dataset {
        name: "synthetic".into(),
        images,
        shape: [1, 8, 8],
        targets,
        num_classes: 3,
        hidden: vec![Attribute {
            name: "group".into(),
            values: (0..n).map(|i| (i % 2) as u32).collect(),
            num_classes: 2,
        }],
    }
}

/// A random input batch (mechanics tests only).
pub fn random_input(n: usize, shape: [usize; 3], device: &Device) -> Tensor<4> {
    device.seed(7);
    Tensor::random(
        [n, shape[0], shape[1], shape[2]],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        device,
    )
}

/// Values of a tensor as f32.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    splitguard::train::to_vec(t)
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
