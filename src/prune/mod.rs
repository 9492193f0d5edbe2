//! Stage: prune (seed 001, PATROL; DESIGN section 7).
//!
//! The edge device has a compute budget. Pruning lets more blocks fit in it,
//! and deeper features carry less that the task does not need. The stage
//! scores channels ([`l1`] filter norms, or [`masks`] trained with the
//! sparsity, Lipschitz and adversarial losses), picks per-block channel
//! counts so the edge fits the budget at the deepest split it allows
//! ([`budget`]), cuts the network down to a genuinely smaller one
//! ([`surgery`]) and fine-tunes it ([`stage`]).

pub mod budget;
pub mod config;
pub mod l1;
pub mod masks;
pub mod stage;
pub mod surgery;

pub use budget::{BudgetConfig, SelectionRule, deepest_split, select_channels};
pub use config::{PruneConfig, PruneMethod};
pub use l1::{filter_l1_norms, l1_scores};
pub use masks::{ChannelMasks, MaskRun, MaskTrainee, MaskedModel, SparsityWeights, train_masks};
pub use stage::{
    PrunePlan, PruneReport, PruneRun, Pruned, PrunedBlock, load_pruned, plan, run_prune,
};
pub use surgery::{output_width, prunable, prune_model, resized_spec, unprunable_reason};

use crate::model::ModelError;
use crate::train::TrainError;

/// Pruning failures.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The budget cannot be met or resolved.
    #[error("prune.budget: {0}")]
    Budget(String),
    /// Pruning asked of a model with no prunable block (e.g. a ResNet: see
    /// [`surgery::unprunable_reason`]).
    #[error("prune.method: {0}")]
    Unprunable(String),
    /// A channel plan that does not fit the model (an internal or API misuse).
    #[error("pruning: {0}")]
    Plan(String),
    /// The mask training's loss became NaN or infinite. The trained model
    /// (`model.sgck`) is kept either way; `masks` is the last mask epoch in
    /// `masks.sgck`, if one was written.
    #[error(
        "mask training (prune.method: patrol) diverged: loss is {value} at mask epoch {epoch}, step {step}; the trained model ({}) is kept{}. Lower prune.mask_lr (it may change on --resume) or a defense weight",
        crate::run_folder::MODEL,
        match masks {
            Some(e) => format!(" and {} holds mask epoch {e}", crate::run_folder::MASKS),
            None => String::new(),
        }
    )]
    MaskDiverged {
        /// 1-based mask epoch.
        epoch: usize,
        /// Global step of the mask phase.
        step: usize,
        /// The loss value.
        value: f64,
        /// The last mask epoch saved, if any.
        masks: Option<usize>,
    },
    /// Model or checkpoint trouble.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Fine-tuning failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A file could not be written or read.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl PruneError {
    /// A budget that cannot be met or a model that cannot be pruned is the
    /// recipe's (exit 2), as is a checkpoint that does not load; a channel
    /// plan that does not fit, a divergence or a failed write is not.
    pub fn is_bad_input(&self) -> bool {
        match self {
            PruneError::Budget(_) | PruneError::Unprunable(_) => true,
            PruneError::Model(e) | PruneError::Train(TrainError::Model(e)) => e.is_bad_input(),
            PruneError::Train(TrainError::Resume(_)) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_divergence_says_the_trained_model_is_kept_and_what_may_change() {
        let first = PruneError::MaskDiverged {
            epoch: 1,
            step: 3,
            value: f64::NAN,
            masks: None,
        };
        let msg = first.to_string();
        assert!(msg.contains("model.sgck) is kept"), "{msg}");
        assert!(msg.contains("prune.mask_lr"), "{msg}");
        assert!(!msg.contains("masks.sgck"), "{msg}");
        // Valid settings that did not train: not bad input.
        assert!(!first.is_bad_input());
        let later = PruneError::MaskDiverged {
            epoch: 2,
            step: 9,
            value: f64::INFINITY,
            masks: Some(1),
        }
        .to_string();
        assert!(later.contains("masks.sgck holds mask epoch 1"), "{later}");
    }
}
