//! The audit: every configured attack at every selected split.

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::FeatureSet;
use super::attribute::AttributeConfig;
use super::dci::DciConfig;
use super::decoder::DecoderConfig;
use super::kinds::{self, Attack, Scoring, SplitInputs};
use super::optimisation::OptimisationConfig;
use super::reidentify::{Reidentifier, ReidentifyConfig};
use crate::data::Dataset;
use crate::model::SplitModel;
use crate::train::Evaluator;

/// Which splits to audit.
///
/// Deserialised by hand (not `#[serde(untagged)]`, whose only message is
/// "data did not match any variant"): anything else is refused with what
/// was found and the two allowed forms.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SplitSelection {
    /// `all`: every split point of the model.
    Named(SplitName),
    /// An explicit list of split points.
    List(Vec<usize>),
}

/// Named split selections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SplitName {
    /// Every split point `1..blocks`.
    All,
}

impl<'de> Deserialize<'de> for SplitSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SplitSelection;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`all` or a list of split points (integers >= 1)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SplitSelection, E> {
                match v {
                    "all" => Ok(SplitSelection::Named(SplitName::All)),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SplitSelection, A::Error> {
                let mut list = Vec::new();
                while let Some(k) = seq.next_element::<usize>()? {
                    list.push(k);
                }
                Ok(SplitSelection::List(list))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Default for SplitSelection {
    fn default() -> Self {
        SplitSelection::Named(SplitName::All)
    }
}

impl SplitSelection {
    /// The split points this selects on a model of `blocks` blocks.
    pub fn resolve(&self, blocks: usize) -> Vec<usize> {
        match self {
            SplitSelection::Named(SplitName::All) => (1..blocks).collect(),
            SplitSelection::List(v) => v.clone(),
        }
    }
}

/// One attack of the audit, chosen by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttackKind {
    /// Learning-based inversion with auxiliary data (DESIGN 9.1).
    Decoder(DecoderConfig),
    /// Optimisation-based white-box inversion with a TV prior (DESIGN 9.2).
    Optimisation(OptimisationConfig),
    /// Data-free divide-and-conquer inversion, DCI (seed 000, DESIGN 9.3).
    Dci(DciConfig),
    /// Attribute inference with the server's architecture (seed 004, 5.1).
    Attribute(AttributeConfig),
}

impl AttackKind {
    /// The attacker variant (only learned attackers have one).
    pub fn variant(&self) -> super::AttackerVariant {
        match self {
            AttackKind::Decoder(d) => d.variant,
            AttackKind::Attribute(a) => a.variant,
            _ => super::AttackerVariant::Adaptive,
        }
    }

    /// The name reported in `report.json`.
    pub fn name(&self) -> &'static str {
        match self {
            AttackKind::Decoder(_) => "decoder",
            AttackKind::Optimisation(_) => "optimisation",
            AttackKind::Dci(_) => "dci",
            AttackKind::Attribute(_) => "attribute",
        }
    }
}

fn default_grid() -> usize {
    8
}

/// The recipe's `audit:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Splits to attack (default `all`).
    #[serde(default)]
    pub splits: SplitSelection,
    /// Attacks to run at each split (default: one decoder).
    #[serde(default = "default_attacks")]
    pub attacks: Vec<AttackKind>,
    /// Test images shown in each picture grid (default 8).
    #[serde(default = "default_grid")]
    pub grid_images: usize,
    /// What the learning attackers train on (default: `aux`).
    #[serde(default)]
    pub attacker_data: crate::data::AttackerData,
    /// The re-identification metric's face classifier (default: measured on
    /// face data only; see [`super::reidentify`]).
    #[serde(default, skip_serializing_if = "ReidentifyConfig::is_default")]
    pub reidentify: ReidentifyConfig,
}

fn default_attacks() -> Vec<AttackKind> {
    vec![AttackKind::Decoder(DecoderConfig::default())]
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            splits: SplitSelection::default(),
            attacks: default_attacks(),
            grid_images: default_grid(),
            attacker_data: Default::default(),
            reidentify: ReidentifyConfig::default(),
        }
    }
}

/// One attack's result, as written to `report.json` (DESIGN section 10).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttackRecord {
    /// Attack name (`decoder`, ...).
    pub attack: String,
    /// The attack's label when it differs from its name: `decoder-paper`
    /// for the paper's variant, `decoder-2` for the second decoder of a
    /// recipe. Records, pictures and resume are keyed by it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<String>,
    /// Split point attacked.
    pub split: usize,
    /// Mean per-image MSE of reconstructions (pixels in [0, 1]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mse: Option<f64>,
    /// Mean per-image PSNR in dB.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub psnr: Option<f64>,
    /// Mean per-image SSIM.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ssim: Option<f64>,
    /// Bootstrap 95% interval of `mse` over the test queries (seeded).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mse_ci: Option<[f64; 2]>,
    /// Bootstrap 95% interval of `psnr`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub psnr_ci: Option<[f64; 2]>,
    /// Bootstrap 95% interval of `ssim`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ssim_ci: Option<[f64; 2]>,
    /// Mean per-image cosine similarity of reconstructions (seed 002).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cosine: Option<f64>,
    /// Bootstrap 95% interval of `cosine`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cosine_ci: Option<[f64; 2]>,
    /// Fraction of reconstructions the attacker's face classifier assigns
    /// to the right person (face data; see [`super::reidentify`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reidentification: Option<f64>,
    /// Bootstrap 95% interval of `reidentification`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reidentification_ci: Option<[f64; 2]>,
    /// File name of the picture grid (originals above reconstructions).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image: Option<String>,
    /// Attribute attacked (attribute inference).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attribute: Option<String>,
    /// Attack accuracy (attribute inference).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    /// Bootstrap 95% interval of `accuracy`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy_ci: Option<[f64; 2]>,
    /// Majority-class rate (attribute inference).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chance: Option<f64>,
    /// PSNR (dB) or accuracy above the label-only floor (see
    /// [`super::floors`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub margin_over_label: Option<f64>,
    /// Whether the features leak more than the label, by intervals.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub beyond_label: Option<super::floors::BeyondLabel>,
    /// Why this attacker's number is a lower bound rather than a
    /// measurement (under-trained, below chance, below the no-feature
    /// floor); empty when none applies.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub under_trained: Vec<String>,
    /// Attack-specific details (attempts, validation loss, ...).
    #[serde(default)]
    pub details: serde_json::Value,
}

impl AttackRecord {
    /// The label the record is keyed by: `label`, or the attack's name.
    pub fn key(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.attack)
    }

    /// Adds a reason why the number is a lower bound.
    pub fn flag(&mut self, reason: String) {
        if !self.under_trained.contains(&reason) {
            self.under_trained.push(reason);
        }
    }

    /// Sets the reconstruction metrics with their intervals.
    pub(crate) fn set_reconstruction(&mut self, s: &super::floors::ScoredReconstruction) {
        self.mse = Some(s.mse);
        self.psnr = Some(s.psnr);
        self.ssim = Some(s.ssim);
        self.mse_ci = s.mse_ci;
        self.psnr_ci = s.psnr_ci;
        self.ssim_ci = s.ssim_ci;
        self.cosine = Some(s.cosine);
        self.cosine_ci = s.cosine_ci;
    }
}

/// Why a learned attacker's validation curve says it did not converge, if
/// it does: the loss never fell below its first epoch's value, or it was
/// still falling (its best value in the last `window` epochs more than 1%
/// below everything before) when the epoch budget `max_epochs` ran out.
pub fn curve_verdict(validation: &[f64], max_epochs: usize, window: usize) -> Option<String> {
    let first = *validation.first()?;
    let best = validation.iter().copied().fold(f64::INFINITY, f64::min);
    if validation.len() < 2 || best >= first {
        return Some(format!(
            "its validation loss never fell below its first epoch's ({first:.4} after {} epoch(s))",
            validation.len()
        ));
    }
    let n = validation.len();
    let window = window.clamp(1, n - 1);
    if n >= max_epochs {
        let before = validation[..n - window]
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        // `best` is reached inside the last `window` epochs when it beats
        // everything before them.
        if best < 0.99 * before {
            return Some(format!(
                "its validation loss was still falling when its {max_epochs} epochs ran out ({before:.5} -> {best:.5} over the last {window})"
            ));
        }
    }
    None
}

/// The label of each attack: its name (with `-paper` for the paper's
/// variant), numbered from the second occurrence on (`decoder-2`).
pub fn attack_labels(attacks: &[AttackKind]) -> Vec<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    attacks
        .iter()
        .map(|a| {
            let base = match a.variant() {
                super::AttackerVariant::Adaptive => a.name().to_string(),
                super::AttackerVariant::Paper => format!("{}-paper", a.name()),
            };
            let count = match seen.iter_mut().find(|(b, _)| *b == base) {
                Some((_, c)) => {
                    *c += 1;
                    *c
                }
                None => {
                    seen.push((base.clone(), 1));
                    1
                }
            };
            if count == 1 {
                base
            } else {
                format!("{base}-{count}")
            }
        })
        .collect()
}

/// A seed for the intervals of attack `label` at split `k`.
fn interval_seed(seed: u64, label: &str, k: usize) -> u64 {
    label
        .bytes()
        .fold(seed ^ 0xB007_5742 ^ (k as u64).rotate_left(40), |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        })
}

/// Progress of the audit (the CLI draws it).
pub trait AuditObserver {
    /// An attack begins at a split.
    fn attack_start(&mut self, _attack: &str, _split: usize) {}
    /// An attack finished.
    fn attack_end(&mut self, _record: &AttackRecord, _seconds: f64) {}
}

impl AuditObserver for () {}

/// Server-side features of `ds` at split `k`, with the images.
pub fn feature_set(eval: &Evaluator, ds: &Dataset, k: usize) -> FeatureSet {
    let (features, feature_shape) = eval.features(ds, k);
    FeatureSet {
        features,
        feature_shape,
        images: ds.images.clone(),
        image_shape: ds.shape,
    }
}

/// Runs every attack of `cfg` at every selected split of `model`, training
/// attackers on `aux` and scoring them on `test`; picture grids go to `out_dir`.
/// `device` must support autodiff (attackers are trained). Attacks already
/// in `done` (same name and split, from an interrupted run) are not re-run.
/// Reconstructions are re-identified when `cfg.reidentify` applies to `test`
/// (see [`Reidentifier::for_audit`]).
#[allow(clippy::too_many_arguments)]
pub fn run_audit(
    model: &SplitModel,
    aux: &Dataset,
    test: &Dataset,
    cfg: &AuditConfig,
    seed: u64,
    out_dir: &Path,
    device: &Device,
    done: &[AttackRecord],
    observer: &mut dyn AuditObserver,
) -> Result<Vec<AttackRecord>, crate::Error> {
    run_audit_with(
        model,
        aux,
        test,
        cfg,
        seed,
        out_dir,
        device,
        done,
        observer,
        Reidentifier::for_audit(model, aux, test, cfg, seed, device)?.as_ref(),
        &|_, z| Ok(z),
    )
}

/// What the edge applies to its flattened features at split `k` before
/// sending them (e.g. obfuscation): `(k, [N * D]) -> [N * D]`.
pub type FeatureTransform<'a> = &'a dyn Fn(usize, Vec<f32>) -> Result<Vec<f32>, crate::Error>;

/// [`run_audit`] where the server receives `transform(k, z)` instead of `z`
/// (the attackers attack exactly that) and reconstructions are re-identified
/// by `reid` when given.
#[allow(clippy::too_many_arguments)]
pub fn run_audit_with(
    model: &SplitModel,
    aux: &Dataset,
    test: &Dataset,
    cfg: &AuditConfig,
    seed: u64,
    out_dir: &Path,
    device: &Device,
    done: &[AttackRecord],
    observer: &mut dyn AuditObserver,
    reid: Option<&Reidentifier>,
    transform: FeatureTransform,
) -> Result<Vec<AttackRecord>, crate::Error> {
    let inner = device.clone().inner();
    let eval = Evaluator::new(model, &inner, 256);
    let mut records = Vec::new();
    let scoring = Scoring {
        out_dir,
        n_grid: cfg.grid_images.min(test.len()),
        reid,
    };
    let labels = attack_labels(&cfg.attacks);
    // One attacker per entry, kept across splits (DCI builds its synthetic
    // inputs and block inverses once, then serves every split).
    let mut attackers: Vec<Box<dyn Attack>> = cfg.attacks.iter().map(kinds::build).collect();
    // An attribute attack on attributes the data does not have is the
    // user's mistake, refused before any attack runs (exit code 2).
    let available: Vec<String> = test.hidden.iter().map(|a| a.name.clone()).collect();
    for (i, attack) in cfg.attacks.iter().enumerate() {
        if let AttackKind::Attribute(ac) = attack
            && let Some((field, msg)) = super::attribute::attribute_problems(ac, &available)
                .into_iter()
                .next()
        {
            let path = match field.is_empty() {
                true => format!("audit.attacks[{i}]"),
                false => format!("audit.attacks[{i}].{field}"),
            };
            return Err(crate::Error::setting(path, msg));
        }
    }
    for k in cfg.splits.resolve(model.len()) {
        if !model.split_points().contains(&k) {
            return Err(crate::model::ModelError::Split {
                split: k,
                blocks: model.len(),
            }
            .into());
        }
        let previous = |label: &str| -> Vec<AttackRecord> {
            done.iter()
                .filter(|r| r.key() == label && r.split == k)
                .cloned()
                .collect()
        };
        if labels.iter().all(|l| !previous(l).is_empty()) {
            records.extend(labels.iter().flat_map(|l| previous(l)));
            continue;
        }
        let mut aux_set = feature_set(&eval, aux, k);
        aux_set.features = transform(k, std::mem::take(&mut aux_set.features))?;
        let test_features = transform(k, eval.features(test, k).0)?;
        for (attacker, label) in attackers.iter_mut().zip(&labels) {
            let earlier = previous(label);
            if !earlier.is_empty() {
                records.extend(earlier);
                continue;
            }
            let inputs = SplitInputs {
                model,
                split: k,
                aux,
                test,
                aux_set: &aux_set,
                test_features: &test_features,
                seed,
                ci_seed: interval_seed(seed, label, k),
                label,
                device,
                scoring: &scoring,
                grid_images: cfg.grid_images,
            };
            records.extend(attacker.run(&inputs, observer)?);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_verdicts() {
        // One epoch, or a loss that never falls: flagged.
        assert!(curve_verdict(&[0.5], 1, 5).unwrap().contains("never fell"));
        assert!(curve_verdict(&[0.5, 0.6, 0.5], 10, 5).is_some());
        // Converged: best early, then flat; early-stopped before the cap.
        assert_eq!(curve_verdict(&[0.5, 0.3, 0.2, 0.2, 0.21], 40, 5), None);
        // Still falling at the cap: flagged; falling by under 1%: not.
        let falling: Vec<f64> = (0..10).map(|i| 1.0 / (i + 1) as f64).collect();
        assert!(
            curve_verdict(&falling, 10, 5)
                .unwrap()
                .contains("still falling")
        );
        let flat: Vec<f64> = (0..10)
            .map(|i| {
                if i < 5 {
                    1.0 - 0.1 * i as f64
                } else {
                    0.6 - 0.0001 * i as f64
                }
            })
            .collect();
        assert_eq!(curve_verdict(&flat, 10, 5), None);
        assert_eq!(curve_verdict(&[], 10, 5), None);
    }

    #[test]
    fn labels_number_repeats_and_name_the_paper_variant() {
        use crate::attack::{AttackerVariant, DecoderConfig};
        let d = AttackKind::Decoder(DecoderConfig::default());
        let p = AttackKind::Decoder(DecoderConfig {
            variant: AttackerVariant::Paper,
            ..DecoderConfig::default()
        });
        let a = AttackKind::Attribute(Default::default());
        assert_eq!(
            attack_labels(&[d.clone(), p.clone(), d.clone(), a, p]),
            [
                "decoder",
                "decoder-paper",
                "decoder-2",
                "attribute",
                "decoder-paper-2"
            ]
        );
        assert_eq!(attack_labels(&[d]), ["decoder"]);
    }
}
