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

/// Training failures.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error(
        "training diverged: loss is {value} at epoch {epoch}, step {step}; the last good checkpoint (end of the previous epoch) is kept. Lower the learning rate or a defense weight"
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
