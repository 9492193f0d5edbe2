//! The attacks of the audit as one trait: each kind is a value that attacks
//! what the server receives at one split and returns its records
//! ([`Attack`]); the audit (`run_audit_with`) is a loop over them. Adding
//! an attack is a file here, a variant of [`super::AttackKind`] and its
//! line in [`build`].

mod attribute;
mod dci;
mod decoder;
mod optimisation;

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;

use super::floors::ScoredReconstruction;
use super::reidentify::Reidentifier;
use super::{AttackKind, AttackRecord, AuditObserver, FeatureSet};
use crate::data::Dataset;
use crate::formats::grid::save_image_grid;
use crate::metrics::{ReconstructionMetrics, reconstruction_metrics};
use crate::model::SplitModel;

/// What every attack gets at one split: the model, the attacker's data
/// (`aux`) and the victims' queries (`test`) as the server receives them,
/// the seeds, and where its pictures go.
pub struct SplitInputs<'a> {
    /// The model under audit (inference).
    pub model: &'a SplitModel,
    /// The split.
    pub split: usize,
    /// The attacker's data (images, labels, attributes).
    pub aux: &'a Dataset,
    /// The victims' queries.
    pub test: &'a Dataset,
    /// What the server receives for `aux` at the split, with the images.
    pub aux_set: &'a FeatureSet,
    /// What the server receives for `test` at the split.
    pub test_features: &'a [f32],
    /// The run's seed.
    pub seed: u64,
    /// The seed of this attack's bootstrap intervals at this split.
    pub ci_seed: u64,
    /// The attack's label (its record key and file prefix).
    pub label: &'a str,
    /// The training device (autodiff).
    pub device: &'a Device,
    /// How reconstructions are scored.
    pub scoring: &'a Scoring<'a>,
    /// `audit.grid_images` as the recipe gives it.
    pub grid_images: usize,
}

impl SplitInputs<'_> {
    /// An empty record of `attack` at this split, keyed by this label.
    pub fn record(&self, attack: &str) -> AttackRecord {
        AttackRecord {
            attack: attack.into(),
            label: (self.label != attack).then(|| self.label.to_string()),
            split: self.split,
            ..AttackRecord::default()
        }
    }
}

/// One attack of the audit.
pub trait Attack {
    /// Its records at a split (one, or one per attribute), telling
    /// `observer` when each starts and ends (wall times go there, never
    /// into a record).
    fn run(
        &mut self,
        at: &SplitInputs,
        observer: &mut dyn AuditObserver,
    ) -> Result<Vec<AttackRecord>, crate::Error>;
}

/// An attack with one record per split: [`Attack::run`] tells the
/// observer around it.
pub trait OneRecord {
    /// The record at one split.
    fn record(&mut self, at: &SplitInputs) -> Result<AttackRecord, crate::Error>;
}

impl<T: OneRecord> Attack for T {
    fn run(
        &mut self,
        at: &SplitInputs,
        observer: &mut dyn AuditObserver,
    ) -> Result<Vec<AttackRecord>, crate::Error> {
        timed(at, observer, || self.record(at)).map(|r| vec![r])
    }
}

/// Makes one record with `attack`, telling `observer` around it.
pub fn timed(
    at: &SplitInputs,
    observer: &mut dyn AuditObserver,
    attack: impl FnOnce() -> Result<AttackRecord, crate::Error>,
) -> Result<AttackRecord, crate::Error> {
    observer.attack_start(at.label, at.split);
    let started = Instant::now();
    let record = attack()?;
    observer.attack_end(&record, started.elapsed().as_secs_f64());
    Ok(record)
}

/// The attack of a recipe's `audit.attacks` entry.
pub fn build(kind: &AttackKind) -> Box<dyn Attack> {
    match kind {
        AttackKind::Decoder(c) => Box::new(decoder::Decoder(c.clone())),
        AttackKind::Optimisation(c) => Box::new(optimisation::Optimisation(c.clone())),
        AttackKind::Dci(c) => Box::new(dci::Dci::new(c.clone())),
        AttackKind::Attribute(c) => Box::new(attribute::Attribute(c.clone())),
    }
}

/// How the audit scores reconstructions: where their grids go, how many
/// images a grid shows, and the face classifier that re-identifies them.
pub struct Scoring<'a> {
    /// Where grids go.
    pub out_dir: &'a Path,
    /// Images a grid shows.
    pub n_grid: usize,
    /// The face classifier, when the audit re-identifies.
    pub reid: Option<&'a Reidentifier>,
}

/// Scores reconstructions against `originals` (`[n, C, H, W]`, the first
/// `n` test queries) with bootstrap intervals seeded by `ci_seed`, saves the
/// grid of the first `scoring.n_grid` as `<label>_split<k>.png` and returns
/// `record` filled in, with the metrics.
pub fn reconstruction_record(
    mut record: AttackRecord,
    originals: &[f32],
    recons: &[f32],
    shape: [usize; 3],
    scoring: &Scoring,
    ci_seed: u64,
) -> Result<(AttackRecord, ReconstructionMetrics), crate::Error> {
    let il: usize = shape.iter().product();
    let n = originals.len() / il.max(1);
    let m = reconstruction_metrics(originals, recons, n, shape)?;
    let shown = scoring.n_grid.min(n);
    let file = format!("{}_split{}.png", record.key(), record.split);
    save_image_grid(
        &scoring.out_dir.join(&file),
        &[&originals[..shown * il], &recons[..shown * il]],
        shown,
        shape,
        3,
    )?;
    record.set_reconstruction(&ScoredReconstruction::new(&m, ci_seed));
    if let Some(r) = scoring.reid {
        let (acc, ci) = r.score(recons, il)?;
        record.reidentification = Some(acc);
        record.reidentification_ci = ci;
        if r.summary.under_trained {
            record.flag("re-identification: the face classifier did not learn on its own validation data; its rate is a lower bound".into());
        }
    }
    record.image = Some(file);
    Ok((record, m))
}

/// An inversion attack's failure at split `k`: internal (exit code 1).
fn inversion_error(attack: &str, k: usize, e: super::optimisation::InversionError) -> crate::Error {
    crate::Error::internal(format!("{attack} attack at split {k}"), e)
}
