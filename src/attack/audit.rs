//! The audit: every configured attack at every selected split.

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::FeatureSet;
use super::attribute::{AttributeConfig, attribute_attack};
use super::dci::{DciAttacker, DciConfig};
use super::decoder::{DecoderConfig, decoder_attack};
use super::optimisation::{InversionError, OptimisationConfig, optimisation_attack};
use crate::data::Dataset;
use crate::metrics::{ReconstructionMetrics, reconstruction_metrics, spearman};
use crate::model::SplitModel;
use crate::report::grid::save_image_grid;
use crate::train::Evaluator;

/// Which splits to audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    pub attacker_data: crate::recipe::AttackerData,
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
        }
    }
}

/// One attack's result, as written to `report.json` (DESIGN section 10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackRecord {
    /// Attack name (`decoder`, ...).
    pub attack: String,
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
    /// File name of the picture grid (originals above reconstructions).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image: Option<String>,
    /// Attribute attacked (attribute inference).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attribute: Option<String>,
    /// Attack accuracy (attribute inference).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    /// Majority-class rate (attribute inference).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chance: Option<f64>,
    /// Attack-specific details (attempts, validation loss, ...).
    #[serde(default)]
    pub details: serde_json::Value,
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
        &|_, z| Ok(z),
    )
}

/// What the edge applies to its flattened features at split `k` before
/// sending them (e.g. obfuscation): `(k, [N * D]) -> [N * D]`.
pub type FeatureTransform<'a> = &'a dyn Fn(usize, Vec<f32>) -> Result<Vec<f32>, crate::Error>;

/// [`run_audit`] where the server receives `transform(k, z)` instead of `z`
/// (the attackers attack exactly that).
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
    transform: FeatureTransform,
) -> Result<Vec<AttackRecord>, crate::Error> {
    let inner = device.clone().inner();
    let eval = Evaluator::new(model, &inner, 256);
    let mut records = Vec::new();
    let shape = test.shape;
    let n_grid = cfg.grid_images.min(test.len());
    // DCI attackers synthesise their inputs and train each block inverse
    // once, then serve every split.
    let mut dci_attackers: Vec<Option<DciAttacker>> = cfg.attacks.iter().map(|_| None).collect();
    for k in cfg.splits.resolve(model.len()) {
        if !model.split_points().contains(&k) {
            return Err(crate::model::ModelError::Split {
                split: k,
                blocks: model.len(),
            }
            .into());
        }
        let previous = |a: &AttackKind| {
            done.iter()
                .find(|r| r.attack == a.name() && r.split == k)
                .cloned()
        };
        if cfg.attacks.iter().all(|a| previous(a).is_some()) {
            records.extend(cfg.attacks.iter().filter_map(previous));
            continue;
        }
        let mut aux_set = feature_set(&eval, aux, k);
        aux_set.features = transform(k, std::mem::take(&mut aux_set.features))?;
        let test_features = transform(k, eval.features(test, k).0)?;
        for (ai, attack) in cfg.attacks.iter().enumerate() {
            if let Some(r) = previous(attack) {
                records.extend(
                    done.iter()
                        .filter(|d| d.attack == r.attack && d.split == k)
                        .cloned(),
                );
                continue;
            }
            if let AttackKind::Attribute(ac) = attack {
                for attr in &test.hidden {
                    if ac
                        .attributes
                        .as_ref()
                        .is_some_and(|a| !a.contains(&attr.name))
                    {
                        continue;
                    }
                    let Some(aux_attr) = aux.hidden.iter().find(|a| a.name == attr.name) else {
                        continue;
                    };
                    observer.attack_start("attribute", k);
                    let started = Instant::now();
                    let server = model.block_specs()[k..].to_vec();
                    let out = attribute_attack(
                        &aux_set.features,
                        &aux_attr.values,
                        &test_features,
                        &attr.values,
                        &aux_set.feature_shape,
                        attr.num_classes,
                        &server,
                        ac,
                        seed ^ (k as u64).wrapping_mul(0xA77),
                        device,
                    )?;
                    let record = AttackRecord {
                        attack: "attribute".into(),
                        split: k,
                        mse: None,
                        psnr: None,
                        ssim: None,
                        image: None,
                        attribute: Some(attr.name.clone()),
                        accuracy: Some(out.accuracy),
                        chance: Some(out.chance),
                        details: serde_json::json!({
                            "train_accuracy": out.train_accuracy,
                            "feature_shape": aux_set.feature_shape,
                            "aux_images": aux.len(),
                            "test_images": test.len(),
                        }),
                    };
                    observer.attack_end(&record, started.elapsed().as_secs_f64());
                    records.push(record);
                }
                continue;
            }
            observer.attack_start(attack.name(), k);
            let started = Instant::now();
            let record = match attack {
                AttackKind::Attribute(_) => unreachable!("handled above"),
                AttackKind::Decoder(dc) => {
                    let out = decoder_attack(&aux_set, &test_features, dc, seed ^ k as u64, device);
                    let m = reconstruction_metrics(
                        &test.images,
                        &out.reconstructions,
                        test.len(),
                        shape,
                    )?;
                    let file = format!("decoder_split{k}.png");
                    let il = test.image_len();
                    save_image_grid(
                        &out_dir.join(&file),
                        &[
                            &test.images[..n_grid * il],
                            &out.reconstructions[..n_grid * il],
                        ],
                        n_grid,
                        shape,
                        3,
                    )?;
                    AttackRecord {
                        attack: "decoder".into(),
                        split: k,
                        mse: Some(m.mse),
                        psnr: Some(m.psnr),
                        ssim: Some(m.ssim),
                        image: Some(file),
                        attribute: None,
                        accuracy: None,
                        chance: None,
                        details: serde_json::json!({
                            "validation_mse": out.validation_mse,
                            "best_epoch": out.best_epoch,
                            "epochs_trained": out.validation_curve.len(),
                            "train_curve": out.train_curve,
                            "validation_curve": out.validation_curve,
                            "attempts": out.attempts,
                            "collapsed_attempts": out.collapsed,
                            "feature_shape": aux_set.feature_shape,
                            "aux_images": aux.len(),
                            "test_images": test.len(),
                        }),
                    }
                }
                AttackKind::Optimisation(oc) => {
                    let q = oc.query_count(test.len());
                    let dim = test_features.len() / test.len().max(1);
                    let out = optimisation_attack(
                        model,
                        k,
                        &test_features[..q * dim],
                        oc,
                        seed ^ k as u64,
                        device,
                    )
                    .map_err(|e| inversion_error("optimisation", k, e))?;
                    let originals = &test.images[..q * test.image_len()];
                    let (mut record, _) = reconstruction_record(
                        "optimisation",
                        k,
                        originals,
                        &out.reconstructions,
                        shape,
                        out_dir,
                        n_grid,
                    )?;
                    let fe = &out.feature_error;
                    record.details = serde_json::json!({
                        "queries": q,
                        "feature_relative_error": fe.iter().sum::<f64>() / fe.len().max(1) as f64,
                        "steps": oc.steps,
                        "tv_weight": oc.tv_weight,
                        "test_images": test.len(),
                    });
                    record
                }
                AttackKind::Dci(dc) => {
                    let mut synthesis = serde_json::Value::Null;
                    if dci_attackers[ai].is_none() {
                        let a = DciAttacker::new(model, dc, seed, device)
                            .map_err(|e| inversion_error("dci", k, e))?;
                        let s = a.synthesised();
                        let file = "dci_synthesised.png".to_string();
                        let shown = (2 * cfg.grid_images).min(s.len());
                        let il = s.shape.iter().product::<usize>();
                        save_image_grid(
                            &out_dir.join(&file),
                            &[&s.images[..shown * il]],
                            shown,
                            s.shape,
                            3,
                        )?;
                        synthesis = serde_json::json!({
                            "mode": dc.synthesis.mode,
                            "count": s.len(),
                            "bn_mismatch_start": s.bn_mismatch_start,
                            "bn_mismatch_end": s.bn_mismatch_end,
                            "image": file,
                        });
                        dci_attackers[ai] = Some(a);
                    }
                    let attacker = dci_attackers[ai]
                        .as_mut()
                        .expect("expected the DCI attacker created above");
                    let out = attacker
                        .attack(k, &test_features)
                        .map_err(|e| inversion_error("dci", k, e))?;
                    let (mut record, m) = reconstruction_record(
                        "dci",
                        k,
                        &test.images,
                        &out.reconstructions,
                        shape,
                        out_dir,
                        n_grid,
                    )?;
                    let true_mse: Vec<f64> = m.per_image.iter().map(|p| p.mse).collect();
                    let rho = spearman(&out.cycle, &true_mse);
                    let cycle_file = format!("dci_split{k}_cycle.npy");
                    let pairs: Vec<f32> = out
                        .cycle
                        .iter()
                        .zip(&true_mse)
                        .flat_map(|(c, e)| [*c as f32, *e as f32])
                        .collect();
                    crate::report::npy::write_npy_f32(
                        &out_dir.join(&cycle_file),
                        &pairs,
                        &[true_mse.len(), 2],
                    )?;
                    let cyc = &out.cycle;
                    record.details = serde_json::json!({
                        "cycle_consistency_mean": cyc.iter().sum::<f64>() / cyc.len().max(1) as f64,
                        "cycle_error_spearman": rho,
                        "cycle_file": cycle_file,
                        "block_l1": out.block_l1,
                        "synthetic_image_l1": out.image_l1,
                        "synthesis": synthesis,
                        "test_images": test.len(),
                    });
                    record
                }
            };
            // Wall times go to the observer (and the run's timings.json),
            // never into the record: report.json stays reproducible.
            observer.attack_end(&record, started.elapsed().as_secs_f64());
            records.push(record);
        }
    }
    Ok(records)
}

fn inversion_error(attack: &str, k: usize, e: InversionError) -> crate::Error {
    crate::Error::Run(format!("{attack} attack at split {k}: {e}"))
}

/// Scores reconstructions against `originals` (`[n, C, H, W]`), saves the
/// grid of the first `n_grid` as `<attack>_split<k>.png` and returns the
/// record (details empty) with the metrics.
fn reconstruction_record(
    attack: &str,
    k: usize,
    originals: &[f32],
    recons: &[f32],
    shape: [usize; 3],
    out_dir: &Path,
    n_grid: usize,
) -> Result<(AttackRecord, ReconstructionMetrics), crate::Error> {
    let il: usize = shape.iter().product();
    let n = originals.len() / il.max(1);
    let m = reconstruction_metrics(originals, recons, n, shape)?;
    let shown = n_grid.min(n);
    let file = format!("{attack}_split{k}.png");
    save_image_grid(
        &out_dir.join(&file),
        &[&originals[..shown * il], &recons[..shown * il]],
        shown,
        shape,
        3,
    )?;
    let record = AttackRecord {
        attack: attack.into(),
        split: k,
        mse: Some(m.mse),
        psnr: Some(m.psnr),
        ssim: Some(m.ssim),
        image: Some(file),
        attribute: None,
        accuracy: None,
        chance: None,
        details: serde_json::Value::Null,
    };
    Ok((record, m))
}
