//! Identity leakage: the re-identification accuracy of reconstructions.
//!
//! Pixel metrics say how close a reconstruction is; for faces the question a
//! victim asks is whether it shows *who* they are. Following the evaluation
//! of PATROL (seed 001, section 5: reconstructions are judged by whether a
//! recognition model still identifies them) and the face-inversion papers,
//! the attacker trains a face classifier on its own labelled images (`aux`:
//! the same people as the victims, other photos), then hands it each
//! reconstruction of a victim's query: the re-identification accuracy is the
//! fraction assigned to the right person.
//!
//! The classifier has the target model's architecture, freshly initialised,
//! trained with the attribute attacker's loop ([`super::attribute`]: a
//! seeded, stratified tenth of `aux` for validation, early stopping). It is
//! never trained or tuned on the test queries. Two numbers frame its score:
//! - `clean_accuracy`: the classifier on the victims' original images, the
//!   most any reconstruction can reach with this classifier;
//! - `chance`: the majority rate of the test labels.
//!
//! The label-only floor ([`super::floors`]) scores the class-mean image
//! of the model's predicted label. When the task label *is* the identity (ORL
//! here), the server learns the identity from the prediction anyway: a
//! re-identification rate at that floor leaks nothing more.
//!
//! Computed for face data: automatically for the ORL source, on request
//! (`when: always`) for any data whose task label is an identity.

use serde::{Deserialize, Serialize};

use super::attribute::{AttributeConfig, Classifier, train_classifier};
use crate::data::Dataset;
use crate::metrics::{accuracy, bootstrap_accuracy_ci, majority_rate};
use crate::model::BlockSpec;

/// When the audit measures re-identification.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// For face data (the ORL source).
    #[default]
    Auto,
    /// For any data: its task label is taken as the identity.
    Always,
    /// Never.
    Never,
}

fn d_epochs() -> usize {
    30
}
fn d_batch() -> usize {
    32
}
fn d_lr() -> f64 {
    1e-3
}
fn d_patience() -> usize {
    8
}

/// The recipe's `audit.reidentify` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReidentifyConfig {
    /// `auto` (default: face data only), `always` or `never`.
    #[serde(default)]
    pub when: When,
    /// Most epochs of the face classifier (default 30; early stopping on its
    /// own validation tenth may end sooner).
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Mini-batch size (default 32).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Adam learning rate (default 1e-3).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Epochs without a better validation loss before stopping (default 8).
    #[serde(default = "d_patience")]
    pub patience: usize,
}

impl Default for ReidentifyConfig {
    fn default() -> Self {
        Self {
            when: When::default(),
            epochs: d_epochs(),
            batch_size: d_batch(),
            lr: d_lr(),
            patience: d_patience(),
        }
    }
}

impl ReidentifyConfig {
    /// Whether the audit of `test` (the victims' queries) measures
    /// re-identification.
    pub fn applies_to(&self, test: &Dataset) -> bool {
        match self.when {
            When::Always => true,
            When::Never => false,
            When::Auto => is_faces(test),
        }
    }

    /// Whether the section is the default (then omitted from the resolved
    /// recipe).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Face data: the ORL source (its parts are named `orl/...`).
fn is_faces(ds: &Dataset) -> bool {
    ds.name == "orl" || ds.name.starts_with("orl/")
}

/// How the face classifier did, written to `report.json` beside the floors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReidentifierSummary {
    /// Accuracy on the victims' original images (the ceiling).
    pub clean_accuracy: f64,
    /// Its bootstrap 95% interval.
    pub clean_accuracy_ci: Option<[f64; 2]>,
    /// Majority rate of the test labels.
    pub chance: f64,
    /// Accuracy on its own held-out validation rows.
    pub validation_accuracy: f64,
    /// The epoch kept (lowest validation loss) and the epochs trained.
    pub best_epoch: usize,
    /// Epochs trained.
    pub epochs_trained: usize,
    /// Its validation loss never fell or its accuracy never beat the
    /// majority rate: every re-identification number is then a lower bound.
    pub under_trained: bool,
}

/// A face classifier trained on the attacker's data.
pub struct Reidentifier {
    classifier: Classifier,
    labels: Vec<u32>,
    seed: u64,
    /// Its training and its score on the clean test images.
    pub summary: ReidentifierSummary,
}

impl Reidentifier {
    /// The face classifier an audit of `test` by `cfg` uses, trained on the
    /// attacker's data `aux` with `model`'s architecture; `None` when
    /// `cfg.reidentify` does not apply to `test`.
    pub fn for_audit(
        model: &crate::model::SplitModel,
        aux: &Dataset,
        test: &Dataset,
        cfg: &super::AuditConfig,
        seed: u64,
        device: &burn::prelude::Device,
    ) -> Result<Option<Self>, crate::Error> {
        if !cfg.reidentify.applies_to(test) {
            return Ok(None);
        }
        // The classifier must learn the victims' people from other photos of
        // them: the attacker's part of the same source (`orl/aux`), never
        // another dataset (other labels) or the whole source (the queries).
        let source = |name: &str| name.split_once('/').map(|(s, _)| s.to_string());
        if source(&aux.name).is_none() || source(&aux.name) != source(&test.name) {
            return match cfg.reidentify.when {
                When::Auto => Ok(None),
                _ => Err(crate::Error::setting(
                    "audit.reidentify",
                    format!(
                        "needs the attacker's part of the victims' own data (attacker_data: aux), got '{}' for queries of '{}'",
                        aux.name, test.name
                    ),
                )),
            };
        }
        Self::train(
            aux,
            test,
            &model.block_specs(),
            &cfg.reidentify,
            seed,
            device,
        )
        .map(Some)
    }

    /// Trains the classifier on `aux` (images and their identities) with the
    /// architecture `specs` (the target model's blocks) and scores it on the
    /// clean `test` images. `device` must support autodiff.
    pub fn train(
        aux: &Dataset,
        test: &Dataset,
        specs: &[BlockSpec],
        cfg: &ReidentifyConfig,
        seed: u64,
        device: &burn::prelude::Device,
    ) -> Result<Self, crate::Error> {
        let settings = AttributeConfig {
            epochs: cfg.epochs,
            batch_size: cfg.batch_size,
            lr: cfg.lr,
            patience: cfg.patience,
            ..AttributeConfig::default()
        };
        let classes = aux.num_classes.max(test.num_classes);
        let seed = seed ^ 0x5E1D_0000;
        let (classifier, t) = train_classifier(
            &aux.images,
            &aux.targets,
            &aux.shape,
            classes,
            specs,
            &settings,
            seed,
            device,
        )?;
        let clean = accuracy(&classifier.predict(&test.images), &test.targets)?;
        let summary = ReidentifierSummary {
            clean_accuracy: clean,
            clean_accuracy_ci: bootstrap_accuracy_ci(clean, test.len(), seed ^ 1),
            chance: majority_rate(&test.targets)?,
            validation_accuracy: t.validation_accuracy,
            best_epoch: t.curves.best_epoch,
            epochs_trained: t.curves.validation.len(),
            under_trained: t.under_trained,
        };
        Ok(Self {
            classifier,
            labels: test.targets.clone(),
            seed,
            summary,
        })
    }

    /// The fraction of `recons` (reconstructions of the first
    /// `recons.len() / image_len` test queries, in order) the classifier
    /// assigns to the query's person, with its bootstrap 95% interval.
    pub fn score(
        &self,
        recons: &[f32],
        image_len: usize,
    ) -> Result<(f64, Option<[f64; 2]>), crate::Error> {
        let n = recons.len() / image_len.max(1);
        let labels = self.labels.get(..n).ok_or_else(|| {
            crate::Error::internal(
                "re-identification",
                format!("{n} reconstructions for {} queries", self.labels.len()),
            )
        })?;
        let acc = accuracy(&self.classifier.predict(recons), labels)?;
        Ok((acc, bootstrap_accuracy_ci(acc, n, self.seed ^ n as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivationKind, LinearSpec};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `people` identities, each a fixed random 6x6 face plus small noise.
    fn faces(people: usize, per: usize, seed: u64, name: &str) -> Dataset {
        let mut proto_rng = ChaCha8Rng::seed_from_u64(99);
        let protos: Vec<Vec<f32>> = (0..people)
            .map(|_| (0..36).map(|_| proto_rng.random::<f32>()).collect())
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut images, mut targets) = (Vec::new(), Vec::new());
        for _ in 0..per {
            for (p, proto) in protos.iter().enumerate() {
                images.extend(proto.iter().map(|v| v + 0.05 * rng.random::<f32>()));
                targets.push(p as u32);
            }
        }
        Dataset {
            name: name.into(),
            images,
            shape: [1, 6, 6],
            targets,
            num_classes: people,
            hidden: Vec::new(),
        }
    }

    fn linear() -> Vec<BlockSpec> {
        vec![BlockSpec::Linear(LinearSpec {
            out_features: 4,
            activation: ActivationKind::None,
            batch_norm: false,
        })]
    }

    #[test]
    fn auto_applies_to_orl_only() {
        let cfg = ReidentifyConfig::default();
        assert!(cfg.applies_to(&faces(2, 1, 0, "orl/test")));
        assert!(!cfg.applies_to(&faces(2, 1, 0, "mnist-embedded/test")));
        let always = ReidentifyConfig {
            when: When::Always,
            ..cfg.clone()
        };
        assert!(always.applies_to(&faces(2, 1, 0, "mnist-embedded/test")));
        let never = ReidentifyConfig {
            when: When::Never,
            ..cfg
        };
        assert!(!never.applies_to(&faces(2, 1, 0, "orl/test")));
    }

    #[test]
    fn originals_are_re_identified_and_other_faces_are_not() {
        let device = burn::prelude::Device::flex().autodiff();
        let (aux, test) = (faces(4, 10, 1, "orl/aux"), faces(4, 3, 2, "orl/test"));
        let cfg = ReidentifyConfig {
            epochs: 40,
            ..ReidentifyConfig::default()
        };
        let r = Reidentifier::train(&aux, &test, &linear(), &cfg, 7, &device).unwrap();
        assert_eq!(r.summary.clean_accuracy, 1.0, "{:?}", r.summary);
        assert_eq!(r.summary.chance, 0.25);
        // The originals themselves: all re-identified.
        let (acc, ci) = r.score(&test.images, 36).unwrap();
        assert_eq!(acc, 1.0);
        assert!(ci.is_some());
        // Each query replaced by the next person's face: none is.
        let shifted: Vec<f32> = (0..test.len())
            .flat_map(|i| {
                let j = (i / 4) * 4 + (i % 4 + 1) % 4;
                test.images[j * 36..(j + 1) * 36].to_vec()
            })
            .collect();
        assert_eq!(r.score(&shifted, 36).unwrap().0, 0.0);
        // A prefix of the queries is scored against the first labels.
        assert_eq!(r.score(&test.images[..2 * 36], 36).unwrap().0, 1.0);
        assert!(r.score(&[0.0; 36 * 13], 36).is_err());
    }
}
