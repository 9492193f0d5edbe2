//! The obfuscation the run deploys at its split (seed 004): the recipe's
//! mode resolved (calibrated on the model owner's data), with the target
//! accuracy and bytes per query it costs on `test`. The audit attacks what
//! [`Deployment::apply`] sends; the study of every split and budget is
//! [`crate::attack::obfuscation_study`].

use burn::prelude::*;

use super::ObfuscationMode;
use super::operator::BasisCache;
use super::stage::{apply, server_accuracy};
use crate::data::Dataset;
use crate::model::SplitModel;
use crate::train::Evaluator;

/// Obfuscation at the deployment split, ready for the audit.
pub struct Deployment {
    /// The split.
    pub split: usize,
    /// The basis (absent for mode `none`).
    pub basis: Option<std::sync::Arc<super::SignalBasis>>,
    /// The resolved mode.
    pub mode: ObfuscationMode,
    /// Target accuracy on `test` without obfuscation.
    pub plain_accuracy: f64,
    /// Target accuracy on `test` when the server computes on `z'`.
    pub target_accuracy: f64,
    /// Mean bytes per query sent.
    pub bytes_per_query: f64,
    /// Bytes per query of the raw features.
    pub raw_bytes_per_query: usize,
    /// Bases computed so far (reused by the study).
    pub cache: BasisCache,
    /// The data `m'` was calibrated on (`<name> (<n> images)`), when the
    /// mode is calibrated (`max_accuracy_drop`).
    pub calibrated_on: Option<String>,
}

impl Deployment {
    /// What the server receives for flat features `z` at the split.
    pub fn apply(&self, z: Vec<f32>) -> Result<Vec<f32>, crate::Error> {
        match &self.basis {
            Some(b) if self.mode != ObfuscationMode::None => Ok(apply(b, &z, self.mode)?.0),
            _ => Ok(z),
        }
    }
}

/// Resolves the recipe's mode at `split` (calibrating on `owner`, the model
/// owner's data, never the attacker's) and measures target accuracy and
/// bytes per query on `test`. `device` is an inference device.
pub fn deploy(
    cfg: &super::stage::ObfuscationConfig,
    model: &SplitModel,
    owner: &Dataset,
    test: &Dataset,
    split: usize,
    device: &Device,
) -> Result<Deployment, crate::Error> {
    let mut cache = cfg.cache();
    let eval = Evaluator::new(model, device, 256);
    let plain_accuracy = eval.accuracy(test);
    let (z, shape) = eval.features(test, split);
    let raw = super::raw_bytes(z.len() / test.len().max(1));
    if cfg.mode == super::stage::ModeSetting::None {
        return Ok(Deployment {
            split,
            basis: None,
            mode: ObfuscationMode::None,
            plain_accuracy,
            target_accuracy: plain_accuracy,
            bytes_per_query: raw as f64,
            raw_bytes_per_query: raw,
            cache,
            calibrated_on: None,
        });
    }
    let basis = cache.basis(model, split)?;
    let mode = super::stage::resolve_mode(&cfg.mode, model, owner, split, &basis, device)?;
    let calibrated_on = matches!(cfg.mode, super::stage::ModeSetting::MaxAccuracyDrop { .. })
        .then(|| format!("{} ({} images)", owner.name, owner.len()));
    let (zp, bytes) = apply(&basis, &z, mode)?;
    let acc = server_accuracy(
        model,
        &zp,
        &shape,
        split,
        &test.targets,
        test.num_classes,
        device,
    );
    Ok(Deployment {
        split,
        basis: Some(basis),
        mode,
        plain_accuracy,
        target_accuracy: acc,
        bytes_per_query: bytes,
        raw_bytes_per_query: raw,
        cache,
        calibrated_on,
    })
}
