//! The partition stage on a trained model: the layer analysis at every
//! candidate split, the representational transition, the golden zone and
//! the split choice under the edge budget (seed 002; DESIGN section 8).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    SplitCandidate, SplitChoice, choose_split, detect_transition, golden_zone, layer_stats,
};
use crate::Error;
use crate::data::Dataset;
use crate::model::SplitModel;
use crate::train::Evaluator;

fn d_samples() -> usize {
    1000
}
fn d_margin() -> f64 {
    0.1
}

/// The recipe's `partition:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// Images of the model owner's `train` part analysed: a subsample
    /// stratified by the target and every hidden attribute, drawn with the
    /// recipe's seed (default 1000). The partition is the defender's choice,
    /// so it never looks at the attacker's `aux`.
    #[serde(default = "d_samples")]
    pub samples: usize,
    /// Two drops within this relative margin of each other both count as
    /// the transition (default 0.1).
    #[serde(default = "d_margin")]
    pub margin: f64,
    /// Edge compute budget in FLOPs per query (default: none).
    #[serde(default)]
    pub budget_flops: Option<u64>,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            samples: d_samples(),
            margin: d_margin(),
            budget_flops: None,
        }
    }
}

/// One candidate split's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionRow {
    /// Split point (blocks on the edge); the last one is the logits.
    pub split: usize,
    /// Feature dimension.
    pub dim: usize,
    /// Intra-class variance R_c^2 (classes by predicted label).
    pub rc2: f64,
    /// R_c^2 / total variance.
    pub normalized_rc2: f64,
    /// Gaussian class-conditional entropy per dimension (nats).
    pub entropy_per_dim: f64,
    /// Edge FLOPs per query at this split.
    pub edge_flops: u64,
    /// In the golden zone: at or after the transition, and the deepest
    /// split point when the transition falls into the logits.
    pub in_golden_zone: bool,
}

/// The analysis and the choice it leads to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// One row per candidate split.
    pub rows: Vec<PartitionRow>,
    /// Split after the largest relative drop of normalised R_c^2.
    pub transition: Option<usize>,
    /// A second transition candidate within the margin.
    pub secondary: Option<usize>,
    /// The chosen split (a valid split point: the server keeps a block).
    pub chosen: Option<usize>,
    /// Why.
    pub reason: String,
    /// When nothing fits the budget: the nearest golden-zone split.
    pub nearest: Option<usize>,
    /// The budget used.
    pub budget_flops: Option<u64>,
    /// The data analysed (the dataset's name, e.g. `mnist-t10k/train`).
    #[serde(default)]
    pub data: String,
    /// How many of its images were analysed.
    #[serde(default)]
    pub samples: usize,
}

/// Runs the analysis on `cfg.samples` images of `held` (the owner's data),
/// a subsample stratified by the target and every hidden attribute, drawn
/// with `seed`.
pub fn analyse(
    model: &SplitModel,
    held: &Dataset,
    cfg: &PartitionConfig,
    seed: u64,
    device: &Device,
) -> Result<PartitionReport, Error> {
    let held = crate::data::stratified_subsample(held, cfg.samples, seed);
    let eval = Evaluator::new(model, device, 256);
    let predicted = eval.predict(&held);
    let infos = model.infos()?;
    let n = held.len();
    let mut rows = Vec::with_capacity(infos.len());
    let mut flops = 0u64;
    for (i, info) in infos.iter().enumerate() {
        let k = i + 1;
        flops += info.flops;
        let (features, shape) = eval.features(&held, k);
        let dim: usize = shape.iter().product();
        let s = layer_stats(&features, n, dim, &predicted)
            .map_err(|e| Error::internal(format!("partition at split {k}"), e))?;
        rows.push(PartitionRow {
            split: k,
            dim,
            rc2: s.intra_class_variance,
            normalized_rc2: s.normalized_rc2,
            entropy_per_dim: s.conditional_entropy_per_dim,
            edge_flops: flops,
            in_golden_zone: false,
        });
    }
    let curve: Vec<f64> = rows.iter().map(|r| r.normalized_rc2).collect();
    let t = detect_transition(&curve, cfg.margin).map_err(|e| Error::internal("partition", e))?;
    let zone = zone_rows(t.as_ref(), rows.len()).map_err(|e| Error::internal("partition", e))?;
    for r in rows.iter_mut().skip(zone.start).take(zone.len()) {
        r.in_golden_zone = true;
    }
    // The logits (last row) are analysed but are not a split point.
    let candidates: Vec<SplitCandidate> = rows[..rows.len().saturating_sub(1)]
        .iter()
        .map(|r| SplitCandidate {
            split: r.split,
            edge_flops: r.edge_flops,
            in_golden_zone: r.in_golden_zone,
            score: None,
        })
        .collect();
    let SplitChoice {
        chosen,
        reason,
        nearest,
    } = choose_split(&candidates, cfg.budget_flops).map_err(|e| Error::internal("partition", e))?;
    Ok(PartitionReport {
        transition: t.as_ref().map(|t| rows[t.primary].split),
        secondary: t.as_ref().and_then(|t| t.secondary.map(|s| rows[s].split)),
        rows,
        chosen,
        reason,
        nearest,
        budget_flops: cfg.budget_flops,
        data: held.name.clone(),
        samples: n,
    })
}

/// The rows (in a curve of `n` rows, the last one the logits) that form the
/// golden zone: from the transition on, or only the decision layers when no
/// drop was found. A transition into the logits would leave no split point
/// in the zone (the logits are not one), so the deepest split point counts
/// too (the zone includes the decision layers, DESIGN section 8) and
/// `split: auto` always has a candidate.
fn zone_rows(
    t: Option<&crate::partition::Transition>,
    n: usize,
) -> Result<std::ops::Range<usize>, crate::partition::PartitionError> {
    let zone = match t {
        Some(t) => golden_zone(t, n)?,
        None => n.saturating_sub(2)..n,
    };
    Ok(zone.start.min(n.saturating_sub(2))..zone.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Transition;

    fn at(primary: usize) -> Transition {
        Transition {
            primary,
            secondary: None,
            drops: vec![0.0; 6],
        }
    }

    #[test]
    fn the_zone_always_holds_a_split_point() {
        // Six rows: splits 1..=5 and the logits.
        assert_eq!(zone_rows(Some(&at(2)), 6).unwrap(), 2..6);
        assert_eq!(zone_rows(None, 6).unwrap(), 4..6);
        // A transition into the logits: the deepest split joins the zone.
        assert_eq!(zone_rows(Some(&at(5)), 6).unwrap(), 4..6);
    }
}
