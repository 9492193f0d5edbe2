//! Training with defenses, checkpoints and resume.

mod batch;
mod config;
mod trainer;

pub use batch::{Evaluator, images_tensor, one_hot, step_outcome, to_vec};
pub use config::{LrDrops, OptimizerConfig, TrainConfig};
pub use trainer::{
    EpochMetrics, Silent, TrainObserver, TrainRun, Trained, soft_cross_entropy, train,
};

use crate::model::ModelError;

/// What a divergence at `epoch` leaves behind, truthfully: nothing in the
/// first epoch, else the checkpoint of the previous epoch.
fn kept_checkpoint(epoch: usize) -> String {
    match epoch {
        0 | 1 => "it diverged in the first epoch, so no checkpoint was written".into(),
        e => format!(
            "the checkpoint of epoch {} (the last good one) is kept",
            e - 1
        ),
    }
}

/// Training failures.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error(
        "training diverged: loss is {value} at epoch {epoch}, step {step}; {}. Lower the learning rate or a defense weight",
        kept_checkpoint(*epoch)
    )]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// Global step.
        step: usize,
        /// The loss value.
        value: f64,
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
        }
        .to_string();
        assert!(first.contains("no checkpoint was written"), "{first}");
        let later = TrainError::NonFinite {
            epoch: 4,
            step: 90,
            value: f64::INFINITY,
        }
        .to_string();
        assert!(later.contains("checkpoint of epoch 3"), "{later}");
    }
}
