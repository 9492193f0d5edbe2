//! Attribute inference (seed 004, section 5.1; DESIGN section 9.4).
//!
//! The attacker sees what the server receives (`z'`, after obfuscation and
//! any defense) for its auxiliary images, knows their hidden attribute (e.g.
//! the MNIST writer group), and trains a classifier with the server part's
//! own architecture, freshly initialised, with the last layer resized to the
//! attribute's classes. It is scored on the victims' queries (`test`); the
//! chance level is the majority-class rate of `test`.
//!
//! The attacker holds out a seeded tenth of its own data, stratified by the
//! attribute, validates after every epoch (cross-entropy and accuracy),
//! keeps the epoch with the lowest validation loss and stops after
//! `patience` epochs without improvement ([`super::diagnostics`]); `test`
//! is only ever scored, never trained or validated on. An attacker no better
//! than its validation majority class, or whose validation loss never fell,
//! is flagged `under_trained`: its accuracy is a lower bound on the leakage.

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::AttackerVariant;
use super::decoder::Standardizer;
use super::diagnostics::{Holdout, fit_with_validation, under_trained};
use crate::metrics::{accuracy, argmax_rows, majority_rate};
use crate::model::{BlockSpec, ModelError, SplitModel};
use crate::train::{gather_rows as rows, one_hot, soft_cross_entropy, to_vec};

fn d_epochs() -> usize {
    10
}
fn d_batch() -> usize {
    64
}
fn d_lr() -> f64 {
    1e-3
}
fn d_patience() -> usize {
    5
}

/// Settings of the attribute-inference attack (`kind: attribute`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    /// Most training epochs over the attacker's data (default 10); early
    /// stopping may end sooner. (On the embedded MNIST writer attribute,
    /// cnn6 after 4 epochs, 1,800 + 200 auxiliary rows: the validation loss
    /// is lowest at epoch 2, 3 and 7 at splits 2, 3 and 4, and rises after;
    /// 40 epochs keep the same epoch and score, so 10 is not too few.)
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
    /// Stop when the validation loss (on the attacker's held-out tenth of
    /// its data) has not improved for this many epochs (default 5; 0 trains
    /// every epoch). The epoch with the lowest validation loss is kept.
    #[serde(default = "d_patience")]
    pub patience: usize,
    /// `adaptive` (default) standardises the features with the attacker's
    /// own statistics; `paper` trains on the raw features, as seed 004's
    /// attribute attacker (section 5.1) does (see [`super::AttackerVariant`]).
    #[serde(default, skip_serializing_if = "AttackerVariant::is_adaptive")]
    pub variant: AttackerVariant,
}

impl Default for AttributeConfig {
    fn default() -> Self {
        Self {
            epochs: d_epochs(),
            batch_size: d_batch(),
            lr: d_lr(),
            attributes: None,
            patience: d_patience(),
            variant: AttackerVariant::default(),
        }
    }
}

/// Problems of an attribute attack on data whose hidden attributes are
/// `available`, as `(field, message)` (field `""`: the attack itself):
/// `recipe check` and `run` refuse an attack that would attack nothing,
/// instead of finishing without a record.
pub fn attribute_problems(cfg: &AttributeConfig, available: &[String]) -> Vec<(String, String)> {
    let allowed = match available.is_empty() {
        true => "none".to_string(),
        false => available.join(", "),
    };
    if available.is_empty() {
        return vec![(
            String::new(),
            "the data has no hidden attributes to attack (the embedded MNIST has writer and stroke; a folder source has its CSV's extra columns); remove the attribute attack".into(),
        )];
    }
    match &cfg.attributes {
        None => Vec::new(),
        Some(names) if names.is_empty() => vec![(
            "attributes".into(),
            format!(
                "must name at least one attribute (or be left out for all); allowed: {allowed}"
            ),
        )],
        Some(names) => names
            .iter()
            .enumerate()
            .filter(|(_, n)| !available.contains(n))
            .map(|(j, n)| {
                (
                    format!("attributes[{j}]"),
                    format!("'{n}' is not a hidden attribute of the data; allowed: {allowed}"),
                )
            })
            .collect(),
    }
}

/// The result of one attribute attack.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributeOutcome {
    /// Accuracy on the test queries (0..1).
    pub accuracy: f64,
    /// Majority-class rate of the test labels (0..1).
    pub chance: f64,
    /// Accuracy of the kept weights on the rows the attacker trained on (0..1).
    pub train_accuracy: f64,
    /// Accuracy of the kept weights on its held-out validation rows (0..1).
    pub validation_accuracy: f64,
    /// Majority-class rate of its validation labels (0..1): the accuracy a
    /// constant answer gets there.
    pub validation_chance: f64,
    /// Mean training cross-entropy of each epoch trained.
    pub train_curve: Vec<f64>,
    /// Validation cross-entropy after each epoch trained.
    pub validation_curve: Vec<f64>,
    /// Training accuracy of each epoch (running, over its mini-batches).
    pub train_accuracy_curve: Vec<f64>,
    /// Validation accuracy after each epoch trained.
    pub validation_accuracy_curve: Vec<f64>,
    /// The epoch (1-based) whose weights were kept: the lowest validation loss.
    pub best_epoch: usize,
    /// Its validation loss never fell below its first value, or its
    /// validation accuracy is no better than `validation_chance`: the
    /// accuracy is a lower bound on the leakage, not a measurement.
    pub under_trained: bool,
    /// Rows of the attacker's data it trained on.
    pub train_rows: usize,
    /// Rows of the attacker's data it validated on.
    pub validation_rows: usize,
}

/// The server part's block specs with the last block resized to `classes`
/// outputs; an error when the last block is not linear.
pub fn attacker_specs(server: &[BlockSpec], classes: usize) -> Result<Vec<BlockSpec>, ModelError> {
    crate::model::with_classes(server, classes)
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

/// Mean cross-entropy and accuracy of `model` (an inference model) on the
/// rows `z` with `labels`.
fn evaluate(
    model: &SplitModel,
    z: &[f32],
    labels: &[u32],
    shape: &[usize],
    classes: usize,
    device: &Device,
) -> (f64, f64) {
    let dim: usize = shape.iter().product();
    let (mut loss, mut correct) = (0.0, 0usize);
    let idx: Vec<usize> = (0..labels.len()).collect();
    for b in idx.chunks(256) {
        let t = Tensor::<2>::from_data(TensorData::new(rows(z, dim, b), [b.len(), dim]), device);
        let logits = model.forward_features(crate::model::Features::from_flat(t, shape));
        let truth: Vec<u32> = b.iter().map(|&i| labels[i]).collect();
        let l = soft_cross_entropy(logits.clone(), one_hot(&truth, classes, device));
        loss += f64::from(to_vec(l)[0]) * b.len() as f64;
        let pred =
            argmax_rows(&to_vec(logits), classes).expect("expected logits of `classes` columns");
        correct += pred.iter().zip(&truth).filter(|(p, t)| p == t).count();
    }
    let n = labels.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// A trained classifier of examples of one shape (features at a split, or
/// whole images), with the standardisation it was trained under.
pub struct Classifier {
    model: SplitModel,
    std: Standardizer,
    shape: Vec<usize>,
    classes: usize,
    device: Device,
}

impl Classifier {
    /// The predicted class of each row of `z` (flat, one example of the
    /// classifier's shape a row).
    pub fn predict(&self, z: &[f32]) -> Vec<u32> {
        predict(
            &self.model,
            &self.std.apply(z),
            &self.shape,
            self.classes,
            &self.device,
        )
    }
}

/// How a [`Classifier`]'s training went, on the attacker's own data.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierTraining {
    /// Accuracy of the kept weights on the rows it trained on (0..1).
    pub train_accuracy: f64,
    /// Accuracy of the kept weights on its held-out validation rows (0..1).
    pub validation_accuracy: f64,
    /// Majority-class rate of its validation labels (0..1).
    pub validation_chance: f64,
    /// Curves, best epoch and the under-trained verdict.
    pub curves: super::diagnostics::Curves,
    /// Training accuracy of each epoch (running, over its mini-batches).
    pub train_accuracy_curve: Vec<f64>,
    /// Validation accuracy after each epoch trained.
    pub validation_accuracy_curve: Vec<f64>,
    /// Its validation loss never fell below its first value, or its
    /// validation accuracy is no better than `validation_chance`.
    pub under_trained: bool,
    /// Rows trained on.
    pub train_rows: usize,
    /// Rows validated on.
    pub validation_rows: usize,
}

/// Trains a classifier with the architecture `specs` (freshly initialised,
/// the last linear block resized to `classes`) on `(z, labels)`, rows of
/// `shape`. A seeded tenth of the rows, stratified by label, is held out for
/// validation; the epoch with the lowest validation loss is kept and training
/// stops after `cfg.patience` epochs without improvement. `device` must
/// support autodiff.
#[allow(clippy::too_many_arguments)]
pub fn train_classifier(
    z: &[f32],
    labels: &[u32],
    shape: &[usize],
    classes: usize,
    specs: &[BlockSpec],
    cfg: &AttributeConfig,
    seed: u64,
    device: &Device,
) -> Result<(Classifier, ClassifierTraining), crate::Error> {
    let dim: usize = shape.iter().product();
    let holdout = Holdout::tenth(labels, seed ^ 0xA77_0DA7A);
    if holdout.validation.is_empty() {
        return Err(crate::Error::setting(
            "audit.attacker_data",
            format!(
                "a classifier attack (attribute or re-identification) needs at least 2 auxiliary examples (one to train on, one to validate on), got {}",
                labels.len()
            ),
        ));
    }
    let std = Standardizer::for_variant(cfg.variant, z, dim);
    let za = std.apply(z);
    let (z_train, z_val) = (
        rows(&za, dim, &holdout.train),
        rows(&za, dim, &holdout.validation),
    );
    let pick = |idx: &[usize]| -> Vec<u32> { idx.iter().map(|&i| labels[i]).collect() };
    let (y_train, y_val) = (pick(&holdout.train), pick(&holdout.validation));
    let specs = attacker_specs(specs, classes)?;
    device.seed(seed);
    let model = SplitModel::from_blocks("attribute-attacker", shape, &specs, device)?;
    let inner = device.clone().inner();
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..y_train.len()).collect();
    let (mut train_acc_curve, mut val_acc_curve) = (Vec::new(), Vec::new());
    let train_epoch = |mut model: SplitModel, _epoch: usize| {
        idx.shuffle(&mut rng);
        let (mut loss_sum, mut correct, mut count) = (0.0, 0usize, 0usize);
        for b in idx.chunks(cfg.batch_size.max(2)).filter(|b| b.len() > 1) {
            let t = Tensor::<2>::from_data(
                TensorData::new(rows(&z_train, dim, b), [b.len(), dim]),
                device,
            );
            let labels: Vec<u32> = b.iter().map(|&i| y_train[i]).collect();
            let logits = model.forward_features(crate::model::Features::from_flat(t, shape));
            let pred = argmax_rows(&to_vec(logits.clone().detach()), classes)
                .expect("expected logits of `classes` columns");
            correct += pred.iter().zip(&labels).filter(|(p, t)| p == t).count();
            let loss = soft_cross_entropy(logits, one_hot(&labels, classes, device));
            loss_sum += f64::from(to_vec(loss.clone().detach())[0]) * b.len() as f64;
            count += b.len();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
        }
        train_acc_curve.push(correct as f64 / count.max(1) as f64);
        (model, loss_sum / count.max(1) as f64)
    };
    let validate = |model: &SplitModel| {
        let (loss, acc) = evaluate(&model.valid(), &z_val, &y_val, shape, classes, &inner);
        val_acc_curve.push(acc);
        loss
    };
    let (model, curves) =
        fit_with_validation(model, cfg.epochs, cfg.patience, train_epoch, validate);
    let eval = model.valid();
    let (_, train_accuracy) = evaluate(&eval, &z_train, &y_train, shape, classes, &inner);
    let (_, validation_accuracy) = evaluate(&eval, &z_val, &y_val, shape, classes, &inner);
    let validation_chance = majority_rate(&y_val)?;
    let training = ClassifierTraining {
        train_accuracy,
        validation_accuracy,
        validation_chance,
        under_trained: under_trained(
            &curves.validation,
            Some((validation_accuracy, validation_chance)),
        ),
        curves,
        train_accuracy_curve: train_acc_curve,
        validation_accuracy_curve: val_acc_curve,
        train_rows: holdout.train.len(),
        validation_rows: holdout.validation.len(),
    };
    let classifier = Classifier {
        model: eval,
        std,
        shape: shape.to_vec(),
        classes,
        device: inner,
    };
    Ok((classifier, training))
}

/// Trains the attacker on `(aux_z, aux_labels)` and scores it on
/// `(test_z, test_labels)`. `server` are the server part's block specs,
/// `shape` one example's feature shape; `device` must support autodiff.
/// A seeded tenth of the auxiliary rows, stratified by label, is held out
/// for validation (see the module header); `test` is only scored.
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
    let (classifier, t) =
        train_classifier(aux_z, aux_labels, shape, classes, server, cfg, seed, device)?;
    let pred = classifier.predict(test_z);
    Ok(AttributeOutcome {
        accuracy: accuracy(&pred, test_labels)?,
        chance: majority_rate(test_labels)?,
        train_accuracy: t.train_accuracy,
        validation_accuracy: t.validation_accuracy,
        validation_chance: t.validation_chance,
        under_trained: t.under_trained,
        best_epoch: t.curves.best_epoch,
        train_curve: t.curves.train,
        validation_curve: t.curves.validation,
        train_accuracy_curve: t.train_accuracy_curve,
        validation_accuracy_curve: t.validation_accuracy_curve,
        train_rows: t.train_rows,
        validation_rows: t.validation_rows,
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

    /// `n` random features of `dim` with labels read from the sign of feature 0.
    fn readable(n: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z: Vec<f32> = (0..n * dim)
            .map(|_| rand::Rng::random_range(&mut rng, -1.0f32..1.0))
            .collect();
        let labels: Vec<u32> = (0..n).map(|i| u32::from(z[i * dim] > 0.0)).collect();
        (z, labels)
    }

    fn attack(
        (z, labels): (&[f32], &[u32]),
        (tz, tl): (&[f32], &[u32]),
        cfg: &AttributeConfig,
    ) -> AttributeOutcome {
        let dev = Device::flex().autodiff();
        attribute_attack(z, labels, tz, tl, &[4], 2, &[fc(16), fc(10)], cfg, 1, &dev).unwrap()
    }

    /// Labels readable from the sign of feature 0 are learned; chance is the
    /// majority rate; a learning attacker is not flagged.
    #[test]
    fn learns_a_readable_attribute() {
        let (z, labels) = readable(200, 4, 3);
        let cfg = AttributeConfig {
            epochs: 100,
            ..Default::default()
        };
        let out = attack((&z, &labels), (&z, &labels), &cfg);
        assert!(out.accuracy > 0.9, "{out:?}");
        assert_eq!(out.chance, majority_rate(&labels).unwrap());
        assert!(out.validation_accuracy > 0.85, "{out:?}");
        assert!(out.train_accuracy > 0.85, "{out:?}");
        assert!(!out.under_trained, "{out:?}");
        assert!((1..=out.validation_curve.len()).contains(&out.best_epoch));
    }

    /// The validation rows are the attacker's own (a stratified tenth,
    /// disjoint from its training rows): training and validation never see
    /// `test`, so other test data changes the test score only.
    #[test]
    fn validation_is_a_tenth_of_aux_and_never_touches_test() {
        let (z, labels) = readable(200, 4, 3);
        let (tz, tl) = readable(50, 4, 9);
        let cfg = AttributeConfig {
            epochs: 6,
            patience: 0,
            ..Default::default()
        };
        let a = attack((&z, &labels), (&z[..200], &labels[..50]), &cfg);
        let b = attack((&z, &labels), (&tz, &tl), &cfg);
        assert_eq!((a.train_rows, a.validation_rows), (180, 20));
        // One entry per epoch trained, in every curve.
        for c in [
            &a.train_curve,
            &a.validation_curve,
            &a.train_accuracy_curve,
            &a.validation_accuracy_curve,
        ] {
            assert_eq!(c.len(), 6);
        }
        assert_eq!(a.validation_curve, b.validation_curve);
        assert_eq!(a.train_curve, b.train_curve);
        assert_eq!(
            (a.best_epoch, a.train_accuracy, a.validation_accuracy),
            (b.best_epoch, b.train_accuracy, b.validation_accuracy)
        );
        let h = Holdout::tenth(&labels, 1 ^ 0xA77_0DA7A);
        assert!(h.validation.iter().all(|i| !h.train.contains(i)));
        assert_eq!(
            a.validation_chance,
            majority_rate(&pick(&labels, &h.validation)).unwrap()
        );
    }

    fn pick(labels: &[u32], idx: &[usize]) -> Vec<u32> {
        idx.iter().map(|&i| labels[i]).collect()
    }

    /// A one-epoch attacker cannot show a falling validation loss: its
    /// number is flagged as a lower bound.
    #[test]
    fn a_one_epoch_attacker_is_flagged_under_trained() {
        let (z, labels) = readable(100, 4, 5);
        let cfg = AttributeConfig {
            epochs: 1,
            ..Default::default()
        };
        let out = attack((&z, &labels), (&z, &labels), &cfg);
        assert_eq!(out.validation_curve.len(), 1);
        assert_eq!(out.best_epoch, 1);
        assert!(out.under_trained, "{out:?}");
    }

    #[test]
    fn one_auxiliary_example_is_an_error_naming_the_count() {
        let dev = Device::flex().autodiff();
        let err = attribute_attack(
            &[0.5; 4],
            &[1],
            &[0.5; 4],
            &[1],
            &[4],
            2,
            &[fc(16), fc(10)],
            &AttributeConfig::default(),
            1,
            &dev,
        )
        .unwrap_err();
        assert!(err.to_string().contains("got 1"), "{err}");
    }

    #[test]
    fn attacks_on_attributes_the_data_lacks_are_named() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = AttributeConfig::default();
        assert!(attribute_problems(&all, &names(&["writer"])).is_empty());
        let p = attribute_problems(&all, &[]);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].0.is_empty() && p[0].1.contains("no hidden attributes"),
            "{p:?}"
        );
        let some = AttributeConfig {
            attributes: Some(names(&["writer", "hat"])),
            ..AttributeConfig::default()
        };
        let p = attribute_problems(&some, &names(&["writer", "stroke"]));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "attributes[1]");
        assert!(
            p[0].1.contains("'hat'") && p[0].1.contains("allowed: writer, stroke"),
            "{p:?}"
        );
    }
}
