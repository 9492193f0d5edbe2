//! The crate's error: each stage's own error, wrapped.

use crate::compare::CompareError;
use crate::data::DataError;
use crate::formats::grid::GridError;
use crate::formats::npy::NpyError;
use crate::leakage::LeakageError;
use crate::metrics::MetricsError;
use crate::model::ModelError;
use crate::obfuscate::operator::OperatorError;
use crate::prune::PruneError;
use crate::recipe::RecipeError;
use crate::run_folder::RunFolderError;
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
    /// A run folder that cannot be used as asked.
    #[error(transparent)]
    Folder(#[from] RunFolderError),
    /// A recipe setting that the data or the model refuses, found when the
    /// run reaches them (e.g. `model.input` against the data's images).
    #[error("{field}: {message}")]
    Setting {
        /// The recipe field (`model.input`, `audit.attacks[1].attribute`).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A command-line flag that cannot be honoured.
    #[error("{flag}: {message}")]
    Usage {
        /// The flag (`--device cuda`, `--shard`).
        flag: String,
        /// Why.
        message: String,
    },
    /// The prune stage failed.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// The obfuscation operator could not be built. (Its message already
    /// holds its cause's, so it is not chained as a source: the command
    /// line prints each cause once.)
    #[error("obfuscation: {0}")]
    Obfuscation(OperatorError),
    /// A gradient-leakage experiment could not be set up.
    #[error(transparent)]
    Leakage(#[from] LeakageError),
    /// A loss became NaN or infinite while a defense trained its own part
    /// (Shredder's noise, feature pruning's server fine-tuning): valid
    /// settings that did not train, exit code 1 as for the trainer's own
    /// divergence.
    #[error("{stage}: {message}")]
    Diverged {
        /// The recipe section that trained (`training.defenses.shredder`).
        stage: String,
        /// When, and what to lower.
        message: String,
    },
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

impl From<OperatorError> for Error {
    fn from(e: OperatorError) -> Self {
        Error::Obfuscation(e)
    }
}

/// What an error's cause is, which decides the CLI's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user's input (recipe, data, weights, run folder, flags): exit 2.
    BadInput,
    /// splitguard failed on valid input: exit 1.
    Internal,
}

impl ErrorKind {
    /// The CLI's exit code for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::BadInput => 2,
            ErrorKind::Internal => 1,
        }
    }
}

impl Error {
    /// The error's kind, from its variant (never its message).
    pub fn kind(&self) -> ErrorKind {
        let bad = match self {
            Error::Recipe(_)
            | Error::Data(_)
            | Error::Folder(_)
            | Error::Setting { .. }
            | Error::Usage { .. }
            | Error::Leakage(_) => true,
            Error::Model(e) | Error::Train(TrainError::Model(e)) => e.is_bad_input(),
            Error::Train(TrainError::Resume(_)) => true,
            Error::Compare(e) => e.is_bad_input(),
            Error::Prune(e) => e.is_bad_input(),
            Error::Obfuscation(e) => e.is_bad_input(),
            Error::Train(_)
            | Error::Metrics(_)
            | Error::Grid(_)
            | Error::Npy(_)
            | Error::Io { .. }
            | Error::Diverged { .. }
            | Error::Internal { .. } => false,
        };
        if bad {
            ErrorKind::BadInput
        } else {
            ErrorKind::Internal
        }
    }

    /// True for errors caused by the user's input (recipe, data, checkpoint,
    /// run folder): the CLI exits with code 2 for these, 1 otherwise.
    pub fn is_bad_input(&self) -> bool {
        self.kind() == ErrorKind::BadInput
    }

    /// A recipe setting refused at run time.
    pub fn setting(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Setting {
            field: field.into(),
            message: message.to_string(),
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
        let folder = RunFolderError::NotARun { dir: "x".into() };
        assert!(Error::Folder(folder).is_bad_input());
        assert!(Error::setting("model.input", "x").is_bad_input());
        assert_eq!(Error::setting("split", "x").kind().exit_code(), 2);
        // A divergence of valid settings is not bad input.
        let nan = Error::Diverged {
            stage: "training.defenses.shredder".into(),
            message: "the task loss became NaN".into(),
        };
        assert_eq!(nan.kind().exit_code(), 1);
        let corrupt = ModelError::Checkpoint {
            path: "m.sgck".into(),
            reason: "cannot serialize (a corrupt file saying so)".into(),
        };
        assert!(Error::Model(corrupt).is_bad_input());
        assert!(!Error::io(std::path::Path::new("/x"), "disk full").is_bad_input());
    }
}
