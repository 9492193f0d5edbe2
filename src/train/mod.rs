//! Training with defenses, checkpoints and resume.

mod batch;
mod config;
mod defense_api;
mod trainee;
mod trainer;

pub use batch::{Evaluator, gather_rows, images_tensor, one_hot, step_outcome, to_vec};
pub use config::{LrDrops, OptimizerConfig, TrainConfig};
pub use defense_api::{Defense, DefenseState, StepContext};
pub use trainee::Trainee;
pub use trainer::{
    EpochMetrics, EpochSummary, Silent, TrainObserver, TrainRun, Trained, history_extra,
    soft_cross_entropy, train, train_trainee,
};

use crate::model::ModelError;

/// The checkpoint a divergence leaves on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct Kept {
    /// The checkpoint file.
    pub path: String,
    /// The epochs it holds (the last good one).
    pub epoch: usize,
}

/// What a divergence leaves behind, truthfully: the checkpoint on disk
/// (written by this run or the one it resumed), or none.
fn kept_checkpoint(kept: &Option<Kept>) -> String {
    match kept {
        None => "no checkpoint was written before it diverged, so nothing is kept".into(),
        Some(Kept { path, epoch: 0 }) => {
            format!("{path} holds the model before training (epoch 0)")
        }
        Some(Kept { path, epoch }) => {
            format!("{path} holds epoch {epoch}, the last good one")
        }
    }
}

/// Training failures.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error(
        "training diverged: loss is {value} at epoch {epoch}, step {step}; {}. Lower the learning rate or a defense weight",
        kept_checkpoint(kept)
    )]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// Global step.
        step: usize,
        /// The loss value.
        value: f64,
        /// The checkpoint left on disk, if any.
        kept: Option<Kept>,
    },
    /// Checkpoint trouble.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Writing the checkpoint failed.
    #[error("cannot write checkpoint: {0}")]
    Checkpoint(String),
    /// The observer asked to stop; the checkpoint of `epoch` is on disk.
    #[error("stopped after epoch {epoch} as asked; continue with --resume")]
    Interrupted {
        /// Last finished epoch.
        epoch: usize,
    },
    /// Resume failed.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// File output failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn a_divergence_message_tells_what_is_kept() {
        let first = TrainError::NonFinite {
            epoch: 1,
            step: 3,
            value: f64::NAN,
            kept: None,
        }
        .to_string();
        assert!(first.contains("no checkpoint was written"), "{first}");
        assert!(!first.contains("last good"), "{first}");
        let later = TrainError::NonFinite {
            epoch: 4,
            step: 90,
            value: f64::INFINITY,
            kept: Some(Kept {
                path: "run/model.sgck".into(),
                epoch: 3,
            }),
        }
        .to_string();
        assert!(later.contains("run/model.sgck holds epoch 3"), "{later}");
    }
}
