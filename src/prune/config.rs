//! The `prune:` recipe section (seed 001, PATROL; DESIGN section 7):
//! method, edge FLOPs budget, fine-tuning, and the mask-training settings of
//! `patrol`. Defaults live here, documented on the fields.

use serde::{Deserialize, Serialize};

use super::budget::BudgetConfig;
use super::masks::SparsityWeights;

/// How channels are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PruneMethod {
    /// No pruning: the budget only chooses the split.
    None,
    /// Filter L1 norms, the same kept fraction per block (Li et al. 2016).
    L1,
    /// Soft masks trained with sparsity, Lipschitz and adversarial losses.
    Patrol,
}

fn d_min_keep() -> f64 {
    0.25
}
fn d_fine_tune() -> usize {
    2
}
fn d_mask_epochs() -> usize {
    2
}
fn d_mask_lr() -> f64 {
    0.01
}
fn d_sparsity() -> f32 {
    0.5
}

/// The `prune:` recipe section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// `none`, `l1` or `patrol`.
    pub method: PruneMethod,
    /// The edge FLOPs budget.
    pub budget: BudgetConfig,
    /// The deepest split allowed (default: the model's last split point).
    #[serde(default)]
    pub max_split: Option<usize>,
    /// Fraction of each prunable edge block's channels always kept (default 0.25).
    #[serde(default = "d_min_keep")]
    pub min_keep: f64,
    /// Fine-tuning epochs after the cut (default 2).
    #[serde(default = "d_fine_tune")]
    pub fine_tune_epochs: usize,
    /// Fine-tuning learning rate (default: the training optimiser's).
    #[serde(default)]
    pub fine_tune_lr: Option<f64>,
    /// `patrol`: epochs of mask training (default 2).
    #[serde(default = "d_mask_epochs")]
    pub mask_epochs: usize,
    /// `patrol`: Adam learning rate of the masks (default 0.01).
    #[serde(default = "d_mask_lr")]
    pub mask_lr: f64,
    /// `patrol`: `lambda`, weight of the sparsity penalty: the masks'
    /// FLOPs-weighted sum, 1 when every mask is 1 (default 0.5).
    #[serde(default = "d_sparsity")]
    pub sparsity: f32,
    /// `patrol`: how the penalty weighs channels, `flops` (by the edge FLOPs
    /// each costs) or `uniform` (plain L1) (default `flops`).
    #[serde(default)]
    pub sparsity_weights: SparsityWeights,
}

impl PruneConfig {
    /// Problems of pruning this model as `(field, message)`: a `method` other
    /// than `none` needs at least one prunable block (residual and pooling
    /// blocks are never cut; see [`super::surgery`]).
    pub fn model_problems(&self, blocks: &[crate::model::BlockSpec]) -> Vec<(String, String)> {
        match (self.method, super::surgery::unprunable_reason(blocks)) {
            (PruneMethod::None, _) | (_, None) => Vec::new(),
            (_, Some(why)) => vec![("method".to_string(), why)],
        }
    }

    /// Validation problems as `(field, message)`; split ranges are checked by
    /// the recipe validation, which knows the model.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = self
            .budget
            .problems()
            .into_iter()
            .map(|(f, m)| match f.is_empty() {
                true => ("budget".to_string(), m),
                false => (format!("budget.{f}"), m),
            })
            .collect();
        if !(self.min_keep > 0.0 && self.min_keep <= 1.0) {
            p.push((
                "min_keep".into(),
                format!("must be in (0, 1], got {}", self.min_keep),
            ));
        }
        if let Some(lr) = self.fine_tune_lr
            && !(lr.is_finite() && lr > 0.0)
        {
            p.push(("fine_tune_lr".into(), format!("must be > 0, got {lr}")));
        }
        if self.method == PruneMethod::Patrol && self.mask_epochs == 0 {
            p.push((
                "mask_epochs".into(),
                "must be >= 1 for method patrol, got 0".into(),
            ));
        }
        if !(self.mask_lr.is_finite() && self.mask_lr > 0.0) {
            p.push((
                "mask_lr".into(),
                format!("must be > 0, got {}", self.mask_lr),
            ));
        }
        if !(self.sparsity.is_finite() && self.sparsity >= 0.0) {
            p.push((
                "sparsity".into(),
                format!("must be >= 0, got {}", self.sparsity),
            ));
        }
        p
    }
}
