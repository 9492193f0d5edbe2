//! The crate's error: each stage's own error, wrapped.

use crate::compare::CompareError;
use crate::data::DataError;
use crate::formats::grid::GridError;
use crate::formats::npy::NpyError;
use crate::metrics::MetricsError;
use crate::model::ModelError;
use crate::recipe::RecipeError;
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
    /// The user's input (a run folder, a setting that only the data can
    /// check, a flag) does not allow what was asked: exit code 2.
    #[error("{0}")]
    Run(String),
    /// splitguard itself failed on valid input (a decomposition that did not
    /// converge, an attack that broke, a file that could not be written):
    /// exit code 1.
    #[error("{stage}: {message}")]
    Internal {
        /// The stage that failed (`obfuscation`, `partition`, `dci attack at split 2`, ...).
        stage: String,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// True for errors caused by the user's input (recipe, data, checkpoint,
    /// run folder): the CLI exits with code 2 for these, 1 otherwise.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Recipe(_) | Error::Data(_) | Error::Run(_) => true,
            Error::Model(e) | Error::Train(TrainError::Model(e)) => {
                !matches!(e, ModelError::Serialize { .. })
            }
            Error::Train(TrainError::Resume(_)) => true,
            Error::Compare(e) => e.is_bad_input(),
            _ => false,
        }
    }

    /// An internal failure of `stage`.
    pub fn internal(stage: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Internal {
            stage: stage.into(),
            message: message.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_not_the_message_decides_the_exit_code() {
        // Internal failures exit 1 whatever their message says.
        assert!(!Error::internal("obfuscation", "SVD did not converge").is_bad_input());
        assert!(!Error::internal("run", "not a run folder").is_bad_input());
        let serialize = ModelError::Serialize {
            path: "m.sgck".into(),
            reason: "x".into(),
        };
        assert!(!Error::Model(serialize).is_bad_input());
        // The user's input exits 2.
        assert!(Error::Run("x: not a run folder".into()).is_bad_input());
        let corrupt = ModelError::Checkpoint {
            path: "m.sgck".into(),
            reason: "cannot serialize (a corrupt file saying so)".into(),
        };
        assert!(Error::Model(corrupt).is_bad_input());
        assert!(!Error::io(std::path::Path::new("/x"), "disk full").is_bad_input());
    }
}
