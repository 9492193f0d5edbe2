//! The file names of a run folder, in one place below every stage: the
//! stages that write them (pipeline, prune, the folder's lock) and the
//! commands and reports that read them all use these (`pipeline::files`
//! is this module).

/// The recipe as resolved (overrides applied), YAML.
pub const RECIPE: &str = "recipe.resolved.yaml";
/// The model checkpoint (updated every epoch; final after training).
pub const MODEL: &str = "model.sgck";
/// Per-epoch training metrics, one JSON object a line.
pub const METRICS: &str = "metrics.jsonl";
/// Attack records written as they finish (for resume).
pub const AUDIT: &str = "audit.jsonl";
/// Every number of the run.
pub const REPORT_JSON: &str = "report.json";
/// The human-readable report.
pub const REPORT_MD: &str = "report.md";
/// The same report as one self-contained HTML page (pictures inlined).
pub const REPORT_HTML: &str = "report.html";
/// Wall times of the stages (not reproducible, kept out of report.json).
pub const TIMINGS: &str = "timings.json";
/// How Shredder's noise was learned (per epoch: task loss, mean |n|),
/// when the recipe has it.
pub const SHREDDER: &str = "shredder.json";
/// How feature pruning was applied (kept values, fine-tuning loss).
pub const FEATURE_PRUNING: &str = "feature_pruning.json";
/// The lock a running `run` holds on its folder (it names the holder).
pub const LOCK: &str = "run.lock";
/// The pruned model's checkpoint (seed 001's prune stage).
pub const PRUNED_MODEL: &str = "pruned.sgck";
/// PATROL's mask training checkpoint (model, masks and both optimisers;
/// updated every epoch of the prune stage's mask phase).
pub const MASKS: &str = "masks.sgck";
/// PATROL's mask-training metrics, one JSON object a line.
pub const MASK_METRICS: &str = "mask_metrics.jsonl";
/// The prune stage's report section (written last).
pub const PRUNE_REPORT: &str = "prune.json";
/// The prune stage's fine-tuning metrics, one JSON object a line.
pub const PRUNE_METRICS: &str = "prune_metrics.jsonl";

use std::path::PathBuf;

/// A run folder that cannot be used as asked: the user's input (exit
/// code 2). Every variant names the folder (or its file).
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    /// Another process holds the folder's lock.
    #[error(
        "{}: the run folder is in use by {holder}, or by a command reading it (lock file {}); wait for it to finish, or write to another --out",
        dir.display(), lock.display()
    )]
    InUse {
        /// The folder.
        dir: PathBuf,
        /// Who holds it, as its lock file says.
        holder: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// A `run` writes the folder a reading command asked for.
    #[error(
        "{}: the run folder is being written by {holder} (lock file {}); wait for it to finish",
        dir.display(), lock.display()
    )]
    BeingWritten {
        /// The folder.
        dir: PathBuf,
        /// Who holds it, as its lock file says.
        holder: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// The folder already holds what a fresh start would write.
    #[error("{} already holds {what}; {hint}", dir.display())]
    Occupied {
        /// The folder.
        dir: PathBuf,
        /// What it holds (`a run`, `this search`, ...).
        what: &'static str,
        /// How to go on (`--resume`, `--overwrite`, `--out`).
        hint: &'static str,
    },
    /// The folder holds the output of something else (another sweep,
    /// search or recipe).
    #[error("{}: {what}; pass --out to write elsewhere", dir.display())]
    Foreign {
        /// The folder.
        dir: PathBuf,
        /// What it holds instead.
        what: String,
    },
    /// `--resume` with a recipe that differs in more than the fields that
    /// may change.
    #[error(
        "{}: the recipe differs from the one this run started with; --resume needs the same recipe and overrides (only {may_change} may change)",
        recipe.display()
    )]
    RecipeChanged {
        /// The folder's resolved recipe.
        recipe: PathBuf,
        /// The fields that may change on resume.
        may_change: String,
    },
    /// The checkpoint does not belong to the folder's recipe.
    #[error(
        "{}: the checkpoint and the recipe disagree: {what}; the folder was changed after its run (re-run the recipe into a new folder)",
        dir.display()
    )]
    Disagrees {
        /// The folder.
        dir: PathBuf,
        /// What differs.
        what: String,
    },
    /// No resolved recipe inside.
    #[error("{}: not a run folder (no {RECIPE} inside)", dir.display())]
    NotARun {
        /// The folder.
        dir: PathBuf,
    },
    /// The folder of a run with repeats, where one repeat's is needed.
    #[error(
        "{}: a run of {repeats} repeats, each with its own model; give one repeat's folder, e.g. {}",
        dir.display(), example.display()
    )]
    Repeats {
        /// The folder.
        dir: PathBuf,
        /// Its repeats.
        repeats: usize,
        /// The first repeat's folder.
        example: PathBuf,
    },
    /// The run has not got as far as the command needs.
    #[error("{}: {what}", path.display())]
    Unfinished {
        /// The folder or the file that is missing or short.
        path: PathBuf,
        /// What is missing, and how to finish it.
        what: String,
    },
}
