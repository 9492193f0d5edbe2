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
    /// A phase of the stage (mask training, fine-tuning) diverged. The
    /// trained model is kept either way, and the phase's own checkpoint
    /// when it wrote one.
    #[error(
        "pruning, {phase}: diverged, loss is {value} at epoch {epoch} of the phase, step {step}; the trained model{} is kept{}. Lower {knob} (it may change on --resume) or a defense weight",
        model.as_ref().map(|m| format!(" {}", m.display())).unwrap_or_default(),
        kept.as_ref().map(|k| format!(" and {} holds epoch {} of the phase", k.path, k.epoch)).unwrap_or_default()
    )]
    Diverged {
        /// `mask training` or `fine-tuning`.
        phase: &'static str,
        /// The setting to lower (`prune.mask_lr`, `prune.fine_tune_lr`).
        knob: &'static str,
        /// 1-based epoch of the phase.
        epoch: usize,
        /// Global step of the phase.
        step: usize,
        /// The loss value.
        value: f64,
        /// The trained model's checkpoint.
        model: Option<std::path::PathBuf>,
        /// The phase's last checkpoint, if it wrote one.
        kept: Option<crate::train::Kept>,
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
    /// A phase's training error, with a divergence told as the stage's
    /// own (the trainer's message would say nothing is kept, when the
    /// trained model is). `checkpoint` is the phase's checkpoint file, in
    /// the run folder.
    pub(crate) fn from_phase(
        e: TrainError,
        phase: &'static str,
        knob: &'static str,
        checkpoint: Option<&std::path::Path>,
    ) -> Self {
        match e {
            TrainError::NonFinite {
                epoch,
                step,
                value,
                kept,
            } => PruneError::Diverged {
                phase,
                knob,
                epoch,
                step,
                value,
                model: checkpoint
                    .and_then(|c| c.parent())
                    .map(|d| d.join(crate::run_folder::MODEL)),
                kept: kept.filter(|k| k.epoch > 0),
            },
            e => PruneError::Train(e),
        }
    }

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
    fn a_divergence_in_a_phase_says_the_trained_model_is_kept_and_what_may_change() {
        let nan = |epoch, kept| TrainError::NonFinite {
            epoch,
            step: 3,
            value: f64::NAN,
            kept,
        };
        let ck = std::path::Path::new("/runs/r/rep_1/masks.sgck");
        let first =
            PruneError::from_phase(nan(1, None), "mask training", "prune.mask_lr", Some(ck));
        let msg = first.to_string();
        assert!(
            msg.contains("the trained model /runs/r/rep_1/model.sgck is kept"),
            "{msg}"
        );
        assert!(
            msg.contains("pruning, mask training") && msg.contains("prune.mask_lr"),
            "{msg}"
        );
        assert!(!msg.contains("holds epoch"), "{msg}");
        // Valid settings that did not train: not bad input.
        assert!(!first.is_bad_input());
        let kept = crate::train::Kept {
            path: "/runs/r/pruned.sgck".into(),
            epoch: 1,
        };
        let later = PruneError::from_phase(
            nan(2, Some(kept)),
            "fine-tuning",
            "prune.fine_tune_lr",
            Some(std::path::Path::new("/runs/r/pruned.sgck")),
        )
        .to_string();
        assert!(
            later.contains("/runs/r/pruned.sgck holds epoch 1"),
            "{later}"
        );
        assert!(later.contains("prune.fine_tune_lr"), "{later}");
        // Any other trainer error passes through.
        let stop = PruneError::from_phase(
            TrainError::Interrupted { epoch: 1 },
            "fine-tuning",
            "prune.fine_tune_lr",
            None,
        );
        assert!(matches!(stop, PruneError::Train(_)));
    }
}
