//! The edge FLOPs budget: which split it allows, and how many channels each
//! edge block keeps so the edge fits it (seed 001, PATROL; DESIGN section 7).
//!
//! Edge FLOPs of split `k` are the sum of blocks `1..=k` (see
//! [`crate::model::BlockInfo::flops`]); a block's FLOPs fall with both its
//! own kept outputs and the kept outputs of the block before it. The deepest
//! split is found first, with every prunable edge block cut to its minimum
//! (`min_keep` of its channels, at least one); then the least pruning that
//! fits at that split is chosen by one of two monotone rules:
//! - [`SelectionRule::UniformRatio`]: every prunable edge block keeps the
//!   same fraction `r` of its channels, those with the highest scores (the
//!   L1 baseline: Li et al. 2016 prune each layer's smallest-norm filters);
//!   the largest `r` that fits wins;
//! - [`SelectionRule::GlobalThreshold`]: a channel is kept when its score is
//!   above one threshold shared by all edge blocks (soft masks live on one
//!   scale, [0, 1]); the lowest threshold that fits wins.

use serde::{Deserialize, Serialize};

use super::PruneError;
use super::surgery::{prunable, resized_spec};
use crate::model::ModelSpec;

/// The `prune.budget` section: `flops`, or `fraction` of the unpruned
/// model's edge FLOPs at `reference_split`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Edge FLOPs allowed per query.
    #[serde(default)]
    pub flops: Option<u64>,
    /// The budget as a fraction of the unpruned edge at `reference_split`.
    #[serde(default)]
    pub fraction: Option<f64>,
    /// The split `fraction` refers to.
    #[serde(default)]
    pub reference_split: Option<usize>,
}

impl BudgetConfig {
    /// Validation problems as `(field, message)` (split ranges are checked
    /// by the recipe validation, which knows the model).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        match (self.flops, self.fraction) {
            (Some(_), Some(_)) | (None, None) => p.push((
                String::new(),
                "give exactly one of flops or fraction (with reference_split)".into(),
            )),
            (Some(0), _) => p.push(("flops".into(), "must be > 0, got 0".into())),
            (None, Some(f)) => {
                if !(f.is_finite() && f > 0.0) {
                    p.push(("fraction".into(), format!("must be > 0, got {f}")));
                }
                if self.reference_split.is_none() {
                    p.push((
                        "reference_split".into(),
                        "is needed with fraction (the split whose unpruned edge FLOPs the fraction refers to)".into(),
                    ));
                }
            }
            _ => {}
        }
        if self.flops.is_some() && self.reference_split.is_some() {
            p.push((
                "reference_split".into(),
                "only goes with fraction, not with flops".into(),
            ));
        }
        p
    }

    /// The budget in FLOPs for the unpruned model `spec`.
    pub fn resolve(&self, spec: &ModelSpec) -> Result<u64, PruneError> {
        match (self.flops, self.fraction, self.reference_split) {
            (Some(f), None, None) => Ok(f),
            (None, Some(f), Some(k)) => {
                if !(1..spec.blocks.len()).contains(&k) {
                    return Err(PruneError::Budget(format!(
                        "reference_split must be in 1..={}, got {k}",
                        spec.blocks.len().saturating_sub(1)
                    )));
                }
                Ok((f * spec.edge_flops(k)? as f64).floor() as u64)
            }
            _ => Err(PruneError::Budget(
                "give exactly one of flops or fraction (with reference_split)".into(),
            )),
        }
    }
}

/// The fewest channels a prunable block of `n` keeps: `ceil(min_keep * n)`,
/// at least 1.
pub fn min_count(n: usize, min_keep: f64) -> usize {
    ((n as f64 * min_keep).ceil() as usize).clamp(1, n.max(1))
}

/// Edge FLOPs at `split` when block `i` keeps `counts[i]` outputs.
pub fn edge_flops_for(spec: &ModelSpec, counts: &[usize], split: usize) -> Result<u64, PruneError> {
    Ok(resized_spec(spec, counts)?.edge_flops(split)?)
}

/// Output channels (or units) of every block.
fn widths(spec: &ModelSpec) -> Result<Vec<usize>, PruneError> {
    Ok(spec.infos()?.iter().map(|b| b.output[0]).collect())
}

/// The deepest split (at most `max_split`) whose edge fits `budget`, with
/// every prunable edge block cut to [`min_count`] when `min_keep` is given,
/// unpruned otherwise.
pub fn deepest_split(
    spec: &ModelSpec,
    budget: u64,
    max_split: Option<usize>,
    min_keep: Option<f64>,
) -> Result<usize, PruneError> {
    let n = spec.blocks.len();
    let last = max_split.unwrap_or(n - 1).min(n - 1);
    let can = prunable(&spec.blocks);
    let full = widths(spec)?;
    for k in (1..=last).rev() {
        let counts: Vec<usize> = (0..n)
            .map(|i| match min_keep {
                Some(m) if i < k && can[i] => min_count(full[i], m),
                _ => full[i],
            })
            .collect();
        if edge_flops_for(spec, &counts, k)? <= budget {
            return Ok(k);
        }
    }
    let smallest = spec.edge_flops(1)?;
    Err(PruneError::Budget(format!(
        "{budget} FLOPs is too small: even split 1 needs {} FLOPs{}",
        match min_keep {
            Some(m) => {
                let mut c = full.clone();
                if can[0] {
                    c[0] = min_count(full[0], m);
                }
                edge_flops_for(spec, &c, 1)?
            }
            None => smallest,
        },
        if min_keep.is_some() {
            " with its channels pruned to min_keep"
        } else {
            " unpruned"
        }
    )))
}

/// How channel counts follow from scores (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectionRule {
    /// The same kept fraction in every prunable edge block.
    UniformRatio,
    /// One score threshold shared by all prunable edge blocks.
    GlobalThreshold,
}

/// Channels kept per block and the edge FLOPs they cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// Kept outputs of every block, increasing (all of them past the split).
    pub keep: Vec<Vec<usize>>,
    /// Edge FLOPs at the split.
    pub edge_flops: u64,
}

/// The `count` highest-scoring channels (ties to the lower index), increasing.
fn top(scores: &[f32], count: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(count);
    idx.sort_unstable();
    idx
}

/// The least pruning of the edge blocks before `split` that fits `budget`.
/// `scores[i]` rates block `i`'s outputs; blocks that are not prunable or
/// lie past the split, or have no scores, keep everything.
pub fn select_channels(
    spec: &ModelSpec,
    split: usize,
    budget: u64,
    scores: &[Option<Vec<f32>>],
    rule: SelectionRule,
    min_keep: f64,
) -> Result<Selection, PruneError> {
    let n = spec.blocks.len();
    let full = widths(spec)?;
    let can = prunable(&spec.blocks);
    let active: Vec<Option<&Vec<f32>>> = (0..n)
        .map(|i| {
            scores
                .get(i)
                .and_then(|s| s.as_ref())
                .filter(|s| i < split && can[i] && s.len() == full[i])
        })
        .collect();
    let counts_for = |count: &dyn Fn(usize, &[f32]) -> usize| -> Vec<usize> {
        (0..n)
            .map(|i| match active[i] {
                Some(s) => count(i, s).clamp(min_count(full[i], min_keep), full[i]),
                None => full[i],
            })
            .collect()
    };
    let candidates: Vec<Vec<usize>> = match rule {
        SelectionRule::UniformRatio => {
            let mut ratios: Vec<f64> = vec![1.0];
            for (i, s) in active.iter().enumerate() {
                if s.is_some() {
                    ratios.extend((1..full[i]).map(|j| j as f64 / full[i] as f64));
                }
            }
            ratios.sort_by(|a, b| b.total_cmp(a));
            ratios.dedup();
            ratios
                .iter()
                .map(|&r| counts_for(&|i, _| (r * full[i] as f64 - 1e-9).ceil() as usize))
                .collect()
        }
        SelectionRule::GlobalThreshold => {
            let mut thresholds: Vec<f32> = active
                .iter()
                .flatten()
                .flat_map(|s| s.iter().copied())
                .collect();
            thresholds.sort_by(f32::total_cmp);
            thresholds.dedup();
            std::iter::once(counts_for(&|i, _| full[i]))
                .chain(
                    thresholds
                        .iter()
                        .map(|&t| counts_for(&|_, s| s.iter().filter(|&&v| v > t).count())),
                )
                .collect()
        }
    };
    for counts in candidates {
        let flops = edge_flops_for(spec, &counts, split)?;
        if flops <= budget {
            let keep = (0..n)
                .map(|i| match active[i] {
                    Some(s) => top(s, counts[i]),
                    None => (0..full[i]).collect(),
                })
                .collect();
            return Ok(Selection {
                keep,
                edge_flops: flops,
            });
        }
    }
    Err(PruneError::Budget(format!(
        "{budget} FLOPs cannot be met at split {split} with at least {min_keep} of each block's channels kept"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivationKind, BlockSpec, ConvSpec, LinearSpec, zoo};

    // cnn6 edge FLOPs (hand count, 2 x MACs): conv1 2*9*16*784 = 225,792;
    // conv2 2*16*9*32*196 = 1,806,336.
    const SPLIT1: u64 = 225_792;
    const SPLIT2: u64 = 225_792 + 1_806_336;

    #[test]
    fn deepest_unpruned_split_is_the_last_that_fits() {
        let spec = zoo::spec("cnn6").unwrap();
        assert_eq!(deepest_split(&spec, SPLIT2, None, None).unwrap(), 2);
        assert_eq!(deepest_split(&spec, SPLIT2 - 1, None, None).unwrap(), 1);
        let err = deepest_split(&spec, SPLIT1 - 1, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("225792") && err.contains("unpruned"), "{err}");
    }

    #[test]
    fn pruning_to_min_keep_reaches_deeper_splits() {
        let spec = zoo::spec("cnn6").unwrap();
        // min_keep 0.25: 4, 8, 16, 32, 16 channels; split 2 costs
        // 2*9*4*784 + 2*4*9*8*196 = 169,344, split 3 adds 2*8*9*16*49 = 112,896.
        assert_eq!(deepest_split(&spec, SPLIT1, None, Some(0.25)).unwrap(), 2);
        assert_eq!(deepest_split(&spec, SPLIT2, None, Some(0.25)).unwrap(), 5);
        assert_eq!(
            deepest_split(&spec, SPLIT2, Some(3), Some(0.25)).unwrap(),
            3
        );
    }

    #[test]
    fn uniform_ratio_keeps_the_largest_fraction_that_fits() {
        let spec = zoo::spec("cnn6").unwrap();
        let s1: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let s2: Vec<f32> = (0..32).map(|i| -(i as f32)).collect();
        let scores = vec![Some(s1), Some(s2), None, None, None, None];
        // r = 9/32 keeps 5 and 9 channels: 14112*5 + 3528*5*9 = 229,320 > budget;
        // r = 1/4 keeps 4 and 8: 56,448 + 112,896 = 169,344.
        let sel =
            select_channels(&spec, 2, SPLIT1, &scores, SelectionRule::UniformRatio, 0.1).unwrap();
        assert_eq!(sel.keep[0], vec![12, 13, 14, 15]);
        assert_eq!(sel.keep[1], (0..8).collect::<Vec<_>>());
        assert_eq!(
            sel.keep[2].len(),
            64,
            "blocks past the split keep everything"
        );
        assert_eq!(sel.edge_flops, 169_344);
    }

    fn small() -> ModelSpec {
        let conv = |out| {
            BlockSpec::Conv(ConvSpec {
                out_channels: out,
                kernel: 1,
                stride: 1,
                padding: None,
                pool: 0,
                batch_norm: false,
                activation: ActivationKind::Relu,
                order: Default::default(),
                bias: true,
            })
        };
        let head = BlockSpec::Linear(LinearSpec {
            out_features: 3,
            activation: ActivationKind::None,
            batch_norm: false,
        });
        ModelSpec {
            vae: None,
            arch: "small".into(),
            input: [1, 4, 4],
            blocks: vec![conv(4), conv(2), head],
        }
    }

    #[test]
    fn global_threshold_drops_the_lowest_scores_until_the_edge_fits() {
        // Edge FLOPs at split 2: 32 c1 + 32 c1 c2.
        let spec = small();
        let scores = vec![Some(vec![0.9, 0.1, 0.5, 0.0]), Some(vec![0.2, 0.8]), None];
        let rule = SelectionRule::GlobalThreshold;
        let sel = select_channels(&spec, 2, 384, &scores, rule, 0.25).unwrap();
        assert_eq!(
            (sel.keep[0].len(), sel.keep[1].len(), sel.edge_flops),
            (4, 2, 384)
        );
        // t = 0.1 keeps {0.9, 0.5} and both: 64 + 128 = 192.
        let sel = select_channels(&spec, 2, 200, &scores, rule, 0.25).unwrap();
        assert_eq!(
            (sel.keep[0].clone(), sel.keep[1].clone(), sel.edge_flops),
            (vec![0, 2], vec![0, 1], 192)
        );
        // t = 0.2 also drops 0.2: 64 + 64 = 128.
        let sel = select_channels(&spec, 2, 150, &scores, rule, 0.25).unwrap();
        assert_eq!(
            (sel.keep[0].clone(), sel.keep[1].clone(), sel.edge_flops),
            (vec![0, 2], vec![1], 128)
        );
        assert_eq!(sel.keep[2], vec![0, 1, 2]);
        let err = select_channels(&spec, 2, 10, &scores, rule, 0.25)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be met at split 2"), "{err}");
    }

    #[test]
    fn budget_resolves_flops_or_a_fraction_of_a_reference_split() {
        let spec = zoo::spec("cnn6").unwrap();
        let flops = BudgetConfig {
            flops: Some(1000),
            ..Default::default()
        };
        assert_eq!(flops.resolve(&spec).unwrap(), 1000);
        let frac = BudgetConfig {
            fraction: Some(0.5),
            reference_split: Some(2),
            ..Default::default()
        };
        assert_eq!(frac.resolve(&spec).unwrap(), SPLIT2 / 2);
        assert!(frac.problems().is_empty() && flops.problems().is_empty());
        assert!(!BudgetConfig::default().problems().is_empty());
        assert_eq!(min_count(16, 0.25), 4);
        assert_eq!(min_count(3, 0.01), 1);
    }
}
