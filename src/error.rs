//! The crate's error: each stage's own error, wrapped.

use crate::compare::CompareError;
use crate::data::DataError;
use crate::metrics::MetricsError;
use crate::model::ModelError;
use crate::recipe::RecipeError;
use crate::report::grid::GridError;
use crate::report::npy::NpyError;
use crate::train::TrainError;

/// Any splitguard failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad recipe.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// Unreadable or inconsistent data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Model or checkpoint trouble.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Metric computation failed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Picture output failed.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// NPY output failed.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// Any other file problem.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A comparison of run folders failed.
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// A run folder that does not hold what the command needs.
    #[error("{0}")]
    Run(String),
}

impl Error {
    /// True for errors caused by the user's input (recipe, data, checkpoint,
    /// run folder): the CLI exits with code 2 for these, 1 otherwise.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Recipe(_) | Error::Data(_) | Error::Run(_) => true,
            Error::Model(e) | Error::Train(TrainError::Model(e)) => {
                !matches!(e, ModelError::Checkpoint { reason, .. } if reason.starts_with("cannot serialize"))
            }
            Error::Train(TrainError::Resume(_)) => true,
            Error::Compare(e) => e.is_bad_input(),
            _ => false,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}
