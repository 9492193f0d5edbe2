//! Attribute inference (seed 004, section 5.1; DESIGN section 9.4).
//!
//! The attacker sees what the server receives (`z'`, after obfuscation and
//! any defense) for its auxiliary images, knows their hidden attribute (e.g.
//! the MNIST writer group), and trains a classifier with the server part's
//! own architecture, freshly initialised, with the last layer resized to the
//! attribute's classes. It is scored on the victims' queries (`test`); the
//! chance level is the majority-class rate of `test`.

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::decoder::Standardizer;
use crate::metrics::{accuracy, argmax_rows, majority_rate};
use crate::model::{BlockSpec, ModelError, SplitModel};
use crate::train::{one_hot, soft_cross_entropy, to_vec};

fn d_epochs() -> usize {
    10
}
fn d_batch() -> usize {
    64
}
fn d_lr() -> f64 {
    1e-3
}

/// Settings of the attribute-inference attack (`kind: attribute`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    /// Training epochs over `aux` (default 10).
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Mini-batch size (default 64).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Adam learning rate (default 1e-3).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Hidden attributes to attack (default: every one the data has).
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
}

impl Default for AttributeConfig {
    fn default() -> Self {
        Self {
            epochs: d_epochs(),
            batch_size: d_batch(),
            lr: d_lr(),
            attributes: None,
        }
    }
}

/// The result of one attribute attack.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributeOutcome {
    /// Accuracy on the test queries (0..1).
    pub accuracy: f64,
    /// Majority-class rate of the test labels (0..1).
    pub chance: f64,
    /// Accuracy on the attacker's own training data (0..1).
    pub train_accuracy: f64,
}

/// The server part's block specs with the last block resized to `classes`
/// outputs; an error when the last block is not linear.
pub fn attacker_specs(server: &[BlockSpec], classes: usize) -> Result<Vec<BlockSpec>, ModelError> {
    let mut specs = server.to_vec();
    match specs.last_mut() {
        Some(BlockSpec::Linear(l)) => {
            l.out_features = classes;
            Ok(specs)
        }
        other => Err(ModelError::Spec(format!(
            "attribute attack: the server part must end with a linear block, got {other:?}"
        ))),
    }
}

fn rows(data: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| &data[i * dim..(i + 1) * dim])
        .copied()
        .collect()
}

fn predict(
    model: &SplitModel,
    z: &[f32],
    shape: &[usize],
    classes: usize,
    device: &Device,
) -> Vec<u32> {
    let dim: usize = shape.iter().product();
    let n = z.len() / dim.max(1);
    let mut out = Vec::with_capacity(n);
    let idx: Vec<usize> = (0..n).collect();
    for b in idx.chunks(256) {
        let t = Tensor::<2>::from_data(TensorData::new(rows(z, dim, b), [b.len(), dim]), device);
        let logits = model.forward_features(crate::model::Features::from_flat(t, shape));
        out.extend(
            argmax_rows(&to_vec(logits), classes).expect("expected logits of `classes` columns"),
        );
    }
    out
}

/// Trains the attacker on `(aux_z, aux_labels)` and scores it on
/// `(test_z, test_labels)`. `server` are the server part's block specs,
/// `shape` one example's feature shape; `device` must support autodiff.
#[allow(clippy::too_many_arguments)]
pub fn attribute_attack(
    aux_z: &[f32],
    aux_labels: &[u32],
    test_z: &[f32],
    test_labels: &[u32],
    shape: &[usize],
    classes: usize,
    server: &[BlockSpec],
    cfg: &AttributeConfig,
    seed: u64,
    device: &Device,
) -> Result<AttributeOutcome, crate::Error> {
    let dim: usize = shape.iter().product();
    let std = Standardizer::fit(aux_z, dim);
    let (za, zt) = (std.apply(aux_z), std.apply(test_z));
    let specs = attacker_specs(server, classes)?;
    device.seed(seed);
    let mut model = SplitModel::from_blocks("attribute-attacker", shape, &specs, device)?;
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..aux_labels.len()).collect();
    for _ in 0..cfg.epochs {
        idx.shuffle(&mut rng);
        for b in idx.chunks(cfg.batch_size.max(2)).filter(|b| b.len() > 1) {
            let t =
                Tensor::<2>::from_data(TensorData::new(rows(&za, dim, b), [b.len(), dim]), device);
            let labels: Vec<u32> = b.iter().map(|&i| aux_labels[i]).collect();
            let logits = model.forward_features(crate::model::Features::from_flat(t, shape));
            let loss = soft_cross_entropy(logits, one_hot(&labels, classes, device));
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
        }
    }
    let inner = device.clone().inner();
    let eval = model.valid();
    let pred = predict(&eval, &zt, shape, classes, &inner);
    let pred_train = predict(&eval, &za, shape, classes, &inner);
    Ok(AttributeOutcome {
        accuracy: accuracy(&pred, test_labels)?,
        chance: majority_rate(test_labels)?,
        train_accuracy: accuracy(&pred_train, aux_labels)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivationKind, LinearSpec};

    fn fc(out: usize) -> BlockSpec {
        BlockSpec::Linear(LinearSpec {
            out_features: out,
            activation: ActivationKind::Relu,
            batch_norm: false,
        })
    }

    #[test]
    fn resizes_the_last_layer_only() {
        let s = attacker_specs(&[fc(8), fc(10)], 3).unwrap();
        assert_eq!(s, vec![fc(8), fc(3)]);
    }

    /// Labels readable from the sign of feature 0 are learned; chance is the
    /// majority rate.
    #[test]
    fn learns_a_readable_attribute() {
        let (n, dim) = (200, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let z: Vec<f32> = (0..n * dim)
            .map(|_| rand::Rng::random_range(&mut rng, -1.0f32..1.0))
            .collect();
        let labels: Vec<u32> = (0..n).map(|i| u32::from(z[i * dim] > 0.0)).collect();
        let cfg = AttributeConfig {
            epochs: 100,
            ..Default::default()
        };
        let dev = Device::flex().autodiff();
        let out = attribute_attack(
            &z,
            &labels,
            &z,
            &labels,
            &[dim],
            2,
            &[fc(16), fc(10)],
            &cfg,
            1,
            &dev,
        )
        .unwrap();
        assert!(out.accuracy > 0.9, "{out:?}");
        assert_eq!(out.chance, majority_rate(&labels).unwrap());
    }
}
