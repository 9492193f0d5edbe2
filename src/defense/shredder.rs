//! Shredder-style learned noise (Mireshghallah et al., "Shredder: Learning
//! Noise Distributions to Protect Inference Privacy", ASPLOS 2020).
//!
//! What the paper does, and what this file does:
//! - a trainable additive noise tensor `n` with the shape of one example's
//!   split features, initialised from a Laplace distribution (here
//!   Laplace(0, b0) with `b0 = scale`, or `scale * std(z)` with
//!   `relative: true`, the std of the owner's training features);
//! - trained with the network's weights fixed (the paper starts from a
//!   pre-trained model and learns only the noise): here after the model's
//!   training, when the deployment is built, in inference mode (batch-norm
//!   uses its running statistics), on the model owner's `train` data;
//! - with loss `CE(server(z + n + e), y) - lambda * mean_i |n_i|`, so the
//!   noise grows while the task is kept (the paper's accuracy/noise
//!   trade-off term; the mean rather than the sum keeps `lambda`
//!   independent of the feature size), minimised with Adam;
//! - at inference the paper samples the noise from the learned
//!   distribution. The simple, faithful choice here: every query gets the
//!   learned tensor plus fresh Laplace noise, `z + n + e` with
//!   `e_i ~ Laplace(0, b(n))`, `b(n) = mean_i |n_i - mean(n)|` the
//!   maximum-likelihood Laplace scale of the learned values around their
//!   centre. The same fresh term is drawn in the noise's training, so the
//!   learned location is trained for the distribution that is deployed.
//!
//! Because the model's own training is untouched, a recipe with `shredder`
//! trains bit-identically to one without; the noise is then learned again,
//! deterministically from the recipe's seed, wherever the deployment is
//! built (`run`, `attack`, `export-features`), so nothing extra is stored.
//! Other split defenses (noise, dropout, top-k) act after the Shredder noise
//! both in its training and at inference.

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Defense;
use super::at_split::{OwnerFeatures, Perturbation, SplitPerturbation, mix, tag};
use super::split_noise::standard_laplace;
use crate::model::{Features, SplitModel};
use crate::train::{gather_rows, one_hot, soft_cross_entropy, to_vec};

fn d_epochs() -> usize {
    3
}
fn d_lr() -> f64 {
    0.01
}
fn d_batch() -> usize {
    64
}

/// Shredder settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShredderConfig {
    /// `lambda`, the weight of the noise-magnitude reward `mean |n|`,
    /// finite and >= 0.
    pub lambda: f32,
    /// Laplace scale `b0` the noise tensor is initialised with, finite and
    /// >= 0 (with `lambda` 0 as well: no effect).
    pub scale: f32,
    /// When true, `b0 = scale * std(features)` of the owner's training
    /// features at the split. Default false.
    #[serde(default)]
    pub relative: bool,
    /// Passes over the owner's training data to learn the noise, >= 1
    /// (default 3).
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Adam learning rate of the noise, finite and > 0 (default 0.01).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Batch size of the noise's training, >= 2 (default 64).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
}

impl ShredderConfig {
    /// False when both `lambda` and `scale` are 0: no noise is learned.
    pub fn active(&self) -> bool {
        self.lambda != 0.0 || self.scale != 0.0
    }

    /// Validation problems as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (field, v) in [("lambda", self.lambda), ("scale", self.scale)] {
            if !(v.is_finite() && v >= 0.0) {
                p.push((field.into(), format!("must be finite and >= 0, got {v}")));
            }
        }
        if self.epochs == 0 {
            p.push(("epochs".into(), "must be >= 1, got 0".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            p.push((
                "lr".into(),
                format!("must be finite and > 0, got {}", self.lr),
            ));
        }
        if self.batch_size < 2 {
            p.push((
                "batch_size".into(),
                format!("must be >= 2, got {}", self.batch_size),
            ));
        }
        p
    }
}

/// The training-side marker: Shredder does not change the model's
/// training (its noise is learned on the frozen model), so this defense only
/// names itself in the run's list.
pub struct ShredderMarker;

impl Defense for ShredderMarker {
    fn name(&self) -> &'static str {
        "shredder"
    }
}

/// A learned Shredder noise, as the edge adds it at inference.
#[derive(Clone, Debug)]
pub struct ShredderNoise {
    /// The learned location `n`, one value per feature of an example.
    pub location: Vec<f32>,
    /// Scale of the fresh Laplace term, `b(n)`.
    pub fresh_scale: f32,
    /// Per epoch of the noise's training: (mean task loss, mean |n|).
    pub history: Vec<(f64, f64)>,
}

/// `mean_i |n_i - mean(n)|`: the Laplace scale fitted to the learned values.
pub fn laplace_scale(n: &[f32]) -> f32 {
    let len = n.len().max(1) as f64;
    let mean = n.iter().map(|&v| f64::from(v)).sum::<f64>() / len;
    (n.iter().map(|&v| (f64::from(v) - mean).abs()).sum::<f64>() / len) as f32
}

/// Fresh noise for `rows` examples: `n + b * Laplace(0, 1)` per value.
fn sample(location: &[f32], b: f32, rows: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * location.len());
    for _ in 0..rows {
        out.extend(
            location
                .iter()
                .map(|&m| m + (f64::from(b) * standard_laplace(rng)) as f32),
        );
    }
    out
}

impl SplitPerturbation for ShredderNoise {
    fn name(&self) -> &'static str {
        "shredder"
    }

    fn active(&self) -> bool {
        true
    }

    fn draw(&self, z: &[f32], dim: usize, _std: f32, rng: &mut ChaCha8Rng) -> Perturbation {
        let rows = z.len() / dim.max(1);
        Perturbation::Add(sample(&self.location, self.fresh_scale, rows, rng))
    }
}

/// Learns the Shredder noise for `model` at `split` (see the module docs).
/// `after` are the split defenses the edge applies after it; `device` is
/// an inference device (the model is frozen on its autodiff twin).
pub fn learn_noise(
    cfg: &ShredderConfig,
    model: &SplitModel,
    split: usize,
    data: &OwnerFeatures,
    after: &[Box<dyn SplitPerturbation>],
    seed: u64,
    device: &Device,
) -> Result<ShredderNoise, crate::Error> {
    let ad = device.clone().autodiff();
    let frozen = model.valid().fork(&ad);
    let dim: usize = data.shape.iter().product();
    let rows = data.features.len() / dim.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ tag("shredder")));
    let b0 = if cfg.relative {
        cfg.scale * data.std
    } else {
        cfg.scale
    };
    let mut n: Vec<f32> = (0..dim)
        .map(|_| (f64::from(b0) * standard_laplace(&mut rng)) as f32)
        .collect();
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let (mut m, mut v) = (vec![0f64; dim], vec![0f64; dim]);
    let mut t = 0i32;
    let mut history = Vec::new();
    let mut order: Vec<usize> = (0..rows).collect();
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let (mut ce_sum, mut steps) = (0f64, 0usize);
        for idx in order.chunks(cfg.batch_size.max(2)).filter(|b| b.len() > 1) {
            let mut zb = gather_rows(data.features, dim, idx);
            let fresh = sample(&vec![0.0; dim], laplace_scale(&n), idx.len(), &mut rng);
            zb.iter_mut().zip(&fresh).for_each(|(z, e)| *z += e);
            let zt = Tensor::<2>::from_data(TensorData::new(zb, [idx.len(), dim]), &ad);
            let nt =
                Tensor::<2>::from_data(TensorData::new(n.clone(), [1, dim]), &ad).require_grad();
            let mut sent = zt + nt.clone();
            for p in after {
                let values = to_vec(sent.clone().detach());
                sent = p.draw(&values, dim, data.std, &mut rng).apply_tensor(sent);
            }
            let logits = frozen.server_forward(Features::from_flat(sent, data.shape), split);
            let labels: Vec<u32> = idx.iter().map(|&i| data.targets[i]).collect();
            let ce = soft_cross_entropy(logits, one_hot(&labels, data.classes, &ad));
            let ce_value = f64::from(to_vec(ce.clone().detach())[0]);
            if !ce_value.is_finite() {
                return Err(crate::Error::Diverged {
                    stage: "training.defenses.shredder".into(),
                    message: format!(
                        "the task loss became {ce_value} in epoch {} of the noise's training; lower lr or lambda",
                        epoch + 1
                    ),
                });
            }
            let loss = ce - nt.clone().abs().mean() * cfg.lambda;
            let grads = loss.backward();
            let g = to_vec(nt.grad(&grads).expect("expected a gradient for the noise"));
            t += 1;
            let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
            for i in 0..dim {
                let gi = f64::from(g[i]);
                m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
                v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi;
                let step = cfg.lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                n[i] -= step as f32;
            }
            ce_sum += ce_value;
            steps += 1;
        }
        let mag = n.iter().map(|v| f64::from(v.abs())).sum::<f64>() / dim.max(1) as f64;
        history.push((ce_sum / steps.max(1) as f64, mag));
    }
    Ok(ShredderNoise {
        fresh_scale: laplace_scale(&n),
        location: n,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::DefensesConfig;
    use crate::defense::at_split::{AtSplit, std_of};
    use crate::defense::decov::tests::{one_epoch, synthetic, weights_after_one_epoch};
    use crate::model::zoo;
    use crate::train::Evaluator;

    fn cfg(lambda: f32, scale: f32) -> ShredderConfig {
        ShredderConfig {
            lambda,
            scale,
            relative: true,
            epochs: 4,
            lr: 0.05,
            batch_size: 16,
        }
    }

    /// A cnn6 trained for one epoch on the synthetic set, and its features
    /// at split 2.
    fn trained() -> (SplitModel, Vec<f32>, Vec<usize>) {
        let dev = Device::flex().autodiff();
        let spec = zoo::spec_for("cnn6", [1, 8, 8], 2).unwrap();
        dev.seed(5);
        let model = SplitModel::new(&spec, &dev).unwrap();
        let model = one_epoch(model, &DefensesConfig::default(), &dev)
            .model
            .valid();
        let (z, shape) = Evaluator::new(&model, &Device::flex(), 64).features(&synthetic(), 2);
        (model, z, shape)
    }

    fn learn(model: &SplitModel, z: &[f32], shape: &[usize], c: &ShredderConfig) -> ShredderNoise {
        let ds = synthetic();
        let data = OwnerFeatures {
            features: z,
            shape,
            targets: &ds.targets,
            classes: ds.num_classes,
            std: std_of(z),
        };
        learn_noise(c, model, 2, &data, &[], 7, &Device::flex()).unwrap()
    }

    #[test]
    fn noise_starts_laplace_grows_with_lambda_and_leaves_the_model_frozen() {
        let (model, z, shape) = trained();
        let before: Vec<Vec<f32>> = model.blocks.iter().map(block_values).collect();
        // Zero epochs of learning: the Laplace(0, b0) initialisation.
        let init = learn(
            &model,
            &z,
            &shape,
            &ShredderConfig {
                epochs: 0,
                ..cfg(0.0, 2.0)
            },
        );
        let b0 = 2.0 * std_of(&z);
        let mad = init.location.iter().map(|v| v.abs()).sum::<f32>() / init.location.len() as f32;
        assert!((mad / b0 - 1.0).abs() < 0.15, "mean |n| {mad} vs b0 {b0}");
        assert!(init.location.len() >= 100);
        let quiet = learn(&model, &z, &shape, &cfg(0.0, 0.5));
        let loud = learn(&model, &z, &shape, &cfg(5.0, 0.5));
        let (q, l) = (
            quiet.history.last().unwrap().1,
            loud.history.last().unwrap().1,
        );
        assert!(l > q * 1.2, "lambda 5: mean |n| {l}, lambda 0: {q}");
        assert!(
            l > loud.history[0].1,
            "the reward grows the noise: {:?}",
            loud.history
        );
        assert!(loud.fresh_scale > 0.0);
        let after: Vec<Vec<f32>> = model.blocks.iter().map(block_values).collect();
        assert_eq!(before, after, "the model is frozen");
        // Deterministic from the seed.
        assert_eq!(
            learn(&model, &z, &shape, &cfg(5.0, 0.5)).location,
            loud.location
        );
    }

    #[test]
    fn inference_adds_the_location_plus_fresh_laplace_of_the_fitted_scale() {
        let dim = 50;
        let location: Vec<f32> = (0..dim).map(|i| i as f32 / 10.0 - 2.0).collect();
        let noise = ShredderNoise {
            fresh_scale: 0.3,
            location: location.clone(),
            history: Vec::new(),
        };
        let rows = 4000;
        let z = vec![1.0f32; rows * dim];
        let sent = AtSplit::new(vec![Box::new(noise)], dim, 1.0, 3)
            .unwrap()
            .apply(z.clone());
        for j in [0, 17, 49] {
            let d: Vec<f64> = (0..rows)
                .map(|r| f64::from(sent[r * dim + j] - 1.0 - location[j]))
                .collect();
            let mean = d.iter().sum::<f64>() / rows as f64;
            let mad = d.iter().map(|x| x.abs()).sum::<f64>() / rows as f64;
            assert!(mean.abs() < 0.03, "{j}: {mean}");
            assert!((mad - 0.3).abs() < 0.03, "{j}: {mad}");
        }
        assert!((laplace_scale(&[1.0, 3.0]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_model_trains_bit_identically_with_shredder() {
        let plain = weights_after_one_epoch(DefensesConfig::default());
        let with = weights_after_one_epoch(DefensesConfig {
            shredder: Some(cfg(1.0, 1.0)),
            ..Default::default()
        });
        assert_eq!(plain, with);
        assert!(!cfg(0.0, 0.0).active());
    }

    #[test]
    fn shredder_settings_are_checked_with_their_paths() {
        let bad = ShredderConfig {
            lambda: -1.0,
            scale: f32::NAN,
            relative: false,
            epochs: 0,
            lr: 0.0,
            batch_size: 1,
        };
        let p = DefensesConfig {
            shredder: Some(bad),
            ..Default::default()
        }
        .problems();
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "shredder.lambda",
                "shredder.scale",
                "shredder.epochs",
                "shredder.lr",
                "shredder.batch_size"
            ]
        );
    }

    fn block_values(b: &crate::model::Block) -> Vec<f32> {
        match b {
            crate::model::Block::Conv(c) => to_vec(c.conv.weight.val()),
            crate::model::Block::Linear(l) => to_vec(l.linear.weight.val()),
            _ => Vec::new(),
        }
    }
}
