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
