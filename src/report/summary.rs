//! `report.json`: every number of a run, with its recipe and seed.
//!
//! The keys `target_accuracy`, `split`, `edge_flops` and `attacks` (each with
//! `attack`, `split`, and `mse`/`psnr`/`ssim`/`image` or
//! `attribute`/`accuracy`/`chance`) are a stable contract for pipelines
//! (DESIGN section 10). Wall times are kept out (they go to `timings.json`),
//! so the same recipe and seed give a byte-identical file.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::attack::AttackRecord;
use crate::data::Splits;
use crate::model::{BlockInfo, ModelSpec};
use crate::prune::PruneReport;
use crate::recipe::Recipe;
use crate::train::{EpochMetrics, EpochSummary};

/// Sizes of the data parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Dataset name.
    pub source: String,
    /// Images in `train`.
    pub train: usize,
    /// Images in `aux`.
    pub aux: usize,
    /// Images in `test`.
    pub test: usize,
    /// `[C, H, W]`.
    pub image_shape: [usize; 3],
    /// Number of target classes.
    pub classes: usize,
    /// Names of the hidden attributes.
    pub hidden: Vec<String>,
}

/// Everything a run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Recipe name.
    pub name: String,
    /// The seed.
    pub seed: u64,
    /// splitguard version that wrote the report.
    pub version: String,
    /// Accuracy of the (defended) model on `test`, 0..1.
    pub target_accuracy: f64,
    /// Deployment split (blocks on the edge).
    pub split: usize,
    /// FLOPs the edge spends per query at `split`.
    pub edge_flops: u64,
    /// Parameters on the edge at `split`.
    pub edge_params: u64,
    /// Bytes sent per query at `split`: the f32 features, or with an
    /// `obfuscation:` section the coefficients the edge sends (mean over
    /// `test`, rounded; seed 004).
    pub bytes_per_query: u64,
    /// Training defenses in effect.
    pub defenses: Vec<String>,
    /// Data sizes.
    pub data: DataSummary,
    /// Architecture name.
    pub arch: String,
    /// Per-block shapes and costs.
    pub blocks: Vec<BlockInfo>,
    /// Training history.
    pub training: Vec<EpochSummary>,
    /// Every attack's result.
    pub attacks: Vec<AttackRecord>,
    /// What an attacker gets without features (mean image), with only the
    /// label (class-mean image, label-only attribute attacker) and chance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floors: Option<crate::attack::Floors>,
    /// The golden-partition analysis, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<crate::partition::PartitionReport>,
    /// Pruning: channels and FLOPs per block before and after, split
    /// reached, accuracy (when the recipe prunes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneReport>,
    /// Each edge block's spectral Lipschitz estimate `k_i` at the deployed
    /// split ([`crate::defense::lipschitz::block_estimates`]; seed 001).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edge_lipschitz: Vec<f64>,
    /// RMS of the edge's features at the deployed split over the `test`
    /// queries, before any perturbation or obfuscation: the scale a
    /// non-standardising attacker sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_rms: Option<f64>,
    /// The resolved recipe.
    pub recipe: Recipe,
}

impl Report {
    /// Assembles the report of a finished run.
    pub fn new(
        recipe: &Recipe,
        spec: &ModelSpec,
        splits: &Splits,
        split: usize,
        target_accuracy: f64,
        history: &[EpochMetrics],
        attacks: Vec<AttackRecord>,
    ) -> Result<Self, Error> {
        let blocks = spec.infos()?;
        let edge = &blocks[..split.min(blocks.len())];
        let sent: u64 = edge
            .last()
            .map(|b| b.output.iter().product::<usize>() as u64)
            .unwrap_or(0);
        Ok(Self {
            name: recipe.name.clone(),
            seed: recipe.seed,
            version: env!("CARGO_PKG_VERSION").to_string(),
            target_accuracy,
            split,
            edge_flops: edge.iter().map(|b| b.flops).sum(),
            edge_params: edge.iter().map(|b| b.params).sum(),
            bytes_per_query: 4 * sent,
            defenses: recipe
                .training
                .defenses
                .names()
                .into_iter()
                .map(String::from)
                .collect(),
            data: DataSummary {
                source: splits.train.name.clone(),
                train: splits.train.len(),
                aux: splits.aux.len(),
                test: splits.test.len(),
                image_shape: splits.train.shape,
                classes: splits.train.num_classes,
                hidden: splits.train.hidden.iter().map(|a| a.name.clone()).collect(),
            },
            arch: spec.arch.clone(),
            blocks,
            training: EpochSummary::of(history),
            attacks,
            floors: None,
            partition: None,
            prune: None,
            edge_lipschitz: Vec::new(),
            feature_rms: None,
            recipe: recipe.clone(),
        })
    }
}
