//! YAML recipes: parsing (raw, typed), overrides and validation.
//!
//! Parsing and validation are separate steps: the YAML tree is checked
//! against the recipe's own JSON Schema (`typecheck`: unknown fields,
//! unknown kinds, wrong types and missing fields, each with its field path,
//! what was found and what is allowed), serde types it, then
//! [`validate::problems`] checks values and reports every problem with its
//! path, e.g. `training.batch_size: must be >= 2 (...), got 0`.

mod load;
pub mod schema;
pub mod sweep;
mod typecheck;
mod types;
pub mod validate;

pub use load::{LoadedRecipe, Override, ResolvedRecipe, apply_override, from_path, from_str};
pub use sweep::{Plan, Shard, Sweep, SweepPoint, plan_from_path, plan_from_str};
pub use types::{
    AttackerData, AutoSplit, DataConfig, DataSource, MAX_REPEATS, ModelConfig, Recipe, SplitSetting,
};

/// A recipe that cannot be used. Messages name the file, the field and what
/// is allowed.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The file could not be read.
    #[error("{file}: cannot read recipe: {reason}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// YAML syntax, an unknown field or a wrong type.
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// serde_norway's message (field path, line, column).
        message: String,
    },
    /// A `--set` override could not be applied.
    #[error("{file}: --set {path}: {message}")]
    Override {
        /// The file.
        file: String,
        /// The override's path.
        path: String,
        /// Why.
        message: String,
    },
    /// Values out of range.
    #[error("{file}: invalid recipe:\n  {}", problems.join("\n  "))]
    Invalid {
        /// The file.
        file: String,
        /// `path: message` lines.
        problems: Vec<String>,
    },
    /// A `sweep:` section that cannot be expanded, or a grid point that is
    /// not a valid recipe.
    #[error("{file}: invalid sweep:\n  {}", problems.join("\n  "))]
    Sweep {
        /// The file.
        file: String,
        /// `path: message` lines (or `point LABEL: message`).
        problems: Vec<String>,
    },
}
