//! Reading finished run folders: the stable keys of `report.json` (DESIGN
//! section 10) and the defenses from `recipe.resolved.yaml`.
//!
//! Reports are read as JSON values, not as the typed [`crate::report::Report`],
//! so a report written by another splitguard version (with fields added or
//! a recipe section this one does not know) still compares: only the keys
//! the contract keeps stable are required.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::CompareError;
use crate::attack::AttackRecord;
use crate::pipeline::files;
use crate::report::repeats::record_key;
use crate::report::{RepeatStat, RepeatedAttack};

/// The manifest a sweep writes into its folder (see [`super::sweep`]).
pub const SWEEP_MANIFEST: &str = "sweep.json";

/// What one finished run contributes to a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The run folder.
    pub dir: PathBuf,
    /// Row label: the folder's name (its path when two folders share a name).
    pub label: String,
    /// The recipe name from `report.json`.
    pub name: String,
    /// Defenses with their settings, from `recipe.resolved.yaml`
    /// (`lipschitz(weight=0.01, ...)`, `prune(method=patrol)`), or `none`.
    pub defenses: String,
    /// Deployment split (blocks on the edge).
    pub split: u64,
    /// FLOPs the edge spends per query.
    pub edge_flops: u64,
    /// Bytes sent per query, when the report has it.
    pub bytes_per_query: Option<u64>,
    /// Target accuracy on `test`, 0..1.
    pub target_accuracy: f64,
    /// Every attack record of the run (for a run with repeats, the means).
    pub attacks: Vec<AttackRecord>,
    /// For a run with `repeats: N > 1`: its numbers over the repeats.
    pub repeats: Option<Repeated>,
}

/// The spread over repeats of a run with `repeats: N > 1` (from its
/// aggregate `report.json`; [`crate::report::repeats`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Repeated {
    /// Number of repeats.
    pub n: usize,
    /// Target accuracy over the repeats.
    pub target_accuracy: RepeatStat,
    /// Every attack over the repeats.
    pub attacks: Vec<RepeatedAttack>,
}

impl RunSummary {
    /// The run's attack records at its deployed split.
    pub fn deployed_attacks(&self) -> impl Iterator<Item = &AttackRecord> {
        self.attacks.iter().filter(|a| a.split as u64 == self.split)
    }

    /// The statistics over repeats of `metric` (`mse`, `psnr`, `ssim`,
    /// `accuracy`, `chance`) of the run's record `a` (`None` for a single run).
    pub fn spread(&self, a: &AttackRecord, metric: &str) -> Option<&RepeatStat> {
        self.repeats
            .as_ref()?
            .attacks
            .iter()
            .find(|r| {
                r.attack == record_key(a) && r.split == a.split && r.attribute == a.attribute
            })?
            .over_repeats
            .get(metric)
    }
}

/// The runs found in the folders given, and the ones left out.
#[derive(Clone, Debug, Default)]
pub struct Gathered {
    /// Finished runs, in the order given (a sweep's points in grid order).
    pub runs: Vec<RunSummary>,
    /// Run folders inside a sweep or group folder that have not finished
    /// (or not started); named folders that have not finished are errors.
    pub unfinished: Vec<PathBuf>,
}

/// Reads every folder: a finished run folder (it holds `report.json`), or a
/// folder of run folders such as a sweep's (its finished runs, in name
/// order; unfinished ones are listed in [`Gathered::unfinished`]).
pub fn gather(dirs: &[PathBuf]) -> Result<Gathered, CompareError> {
    let mut out = Gathered::default();
    for dir in dirs {
        if dir.join(files::REPORT_JSON).is_file() {
            out.runs.push(load_run(dir)?);
            continue;
        }
        not_a_group_or_run(dir)?;
        let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| CompareError::NotARun {
                dir: dir.display().to_string(),
                reason: format!("cannot list the folder: {e}"),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join(files::RECIPE).is_file() || p.join(files::REPORT_JSON).is_file())
            .collect();
        children.sort();
        for child in children {
            match child.join(files::REPORT_JSON).is_file() {
                true => out.runs.push(load_run(&child)?),
                false => out.unfinished.push(child),
            }
        }
        // Sweep points that have not started have no folder yet.
        for label in manifest_labels(dir)? {
            let child = dir.join(&label);
            if !child.join(files::RECIPE).is_file() && !child.join(files::REPORT_JSON).is_file() {
                out.unfinished.push(child);
            }
        }
    }
    if out.runs.is_empty() {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(CompareError::Empty(names.join(", ")));
    }
    // Rows are labelled by folder name unless two runs share one.
    let mut names: Vec<&str> = out.runs.iter().map(|r| r.label.as_str()).collect();
    names.sort_unstable();
    let clash = names.windows(2).any(|w| w[0] == w[1]);
    if clash {
        for r in &mut out.runs {
            r.label = r.dir.display().to_string();
        }
    }
    Ok(out)
}

/// Errors for a folder that is neither a finished run nor a group of runs.
fn not_a_group_or_run(dir: &Path) -> Result<(), CompareError> {
    let fail = |reason: String| {
        Err(CompareError::NotARun {
            dir: dir.display().to_string(),
            reason,
        })
    };
    if !dir.is_dir() {
        return fail("no such folder".into());
    }
    if dir.join(files::RECIPE).is_file() {
        return fail(format!(
            "the run has not finished ({} missing); finish it with `splitguard run {} --out {} --resume`",
            files::REPORT_JSON,
            dir.join(files::RECIPE).display(),
            dir.display()
        ));
    }
    let has_runs = std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                let p = e.path();
                p.join(files::RECIPE).is_file() || p.join(files::REPORT_JSON).is_file()
            })
        })
        .unwrap_or(false);
    if !has_runs && !dir.join(SWEEP_MANIFEST).is_file() {
        return fail(format!(
            "not a run folder (no {}) nor a folder of runs such as a sweep's",
            files::REPORT_JSON
        ));
    }
    Ok(())
}

/// The point labels a sweep manifest lists (none without a manifest).
fn manifest_labels(dir: &Path) -> Result<Vec<String>, CompareError> {
    let path = dir.join(SWEEP_MANIFEST);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let bad = |reason: String| CompareError::BadFile {
        file: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let json: Json = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let points = json
        .get("points")
        .and_then(Json::as_array)
        .ok_or_else(|| bad("no `points` list".into()))?;
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.get("label")
                .and_then(Json::as_str)
                .map(String::from)
                .ok_or_else(|| bad(format!("points[{i}] has no `label`")))
        })
        .collect()
}

/// Reads one finished run folder.
pub fn load_run(dir: &Path) -> Result<RunSummary, CompareError> {
    let path = dir.join(files::REPORT_JSON);
    let bad = |reason: String| CompareError::BadFile {
        file: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CompareError::NotARun {
            dir: dir.display().to_string(),
            reason: format!("no {} (the run has not finished)", files::REPORT_JSON),
        },
        _ => bad(e.to_string()),
    })?;
    let json: Json =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let number = |key: &str| -> Result<&Json, CompareError> {
        json.get(key)
            .filter(|v| v.is_number())
            .ok_or_else(|| bad(format!("missing key `{key}` (a number)")))
    };
    let target_accuracy = number("target_accuracy")?
        .as_f64()
        .ok_or_else(|| bad("`target_accuracy` is not a number".into()))?;
    let split = number("split")?
        .as_u64()
        .ok_or_else(|| bad("`split` must be a whole number >= 0".into()))?;
    let edge_flops = number("edge_flops")?
        .as_u64()
        .ok_or_else(|| bad("`edge_flops` must be a whole number >= 0".into()))?;
    let bytes_per_query = json.get("bytes_per_query").and_then(Json::as_u64);
    let attacks = json
        .get("attacks")
        .and_then(Json::as_array)
        .ok_or_else(|| bad("missing key `attacks` (a list)".into()))?
        .iter()
        .enumerate()
        .map(|(i, a)| {
            serde_json::from_value::<AttackRecord>(a.clone())
                .map_err(|e| bad(format!("attacks[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A run with repeats: its aggregate carries `over_repeats` beside the means.
    let repeats = match json.get("over_repeats") {
        None => None,
        Some(over) => {
            let target_accuracy = over
                .get("target_accuracy")
                .cloned()
                .ok_or_else(|| bad("`over_repeats` lacks `target_accuracy`".into()))
                .and_then(|v| {
                    serde_json::from_value::<RepeatStat>(v)
                        .map_err(|e| bad(format!("over_repeats.target_accuracy: {e}")))
                })?;
            let repeated = json
                .get("attacks")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, a)| {
                    serde_json::from_value::<RepeatedAttack>(a.clone())
                        .map_err(|e| bad(format!("attacks[{i}]: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(Repeated {
                n: json
                    .get("repeats")
                    .and_then(Json::as_u64)
                    .map_or(target_accuracy.interval.n, |n| n as usize),
                target_accuracy,
                attacks: repeated,
            })
        }
    };
    let label = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string());
    let name = json
        .get("name")
        .and_then(Json::as_str)
        .map(String::from)
        .unwrap_or_else(|| label.clone());
    let defenses = match read_recipe(dir)? {
        Some(recipe) => describe_defenses(&recipe),
        // An older folder without its recipe: the names from the report.
        None => json
            .get("defenses")
            .and_then(Json::as_array)
            .map(|d| {
                let names: Vec<&str> = d.iter().filter_map(Json::as_str).collect();
                names.join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into()),
    };
    Ok(RunSummary {
        dir: dir.to_path_buf(),
        label,
        name,
        defenses,
        split,
        edge_flops,
        bytes_per_query,
        target_accuracy,
        attacks,
        repeats,
    })
}

/// The run's `recipe.resolved.yaml` as a YAML tree (none if absent).
fn read_recipe(dir: &Path) -> Result<Option<Yaml>, CompareError> {
    let path = dir.join(files::RECIPE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CompareError::BadFile {
                file: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    };
    serde_norway::from_str(&text)
        .map(Some)
        .map_err(|e| CompareError::BadFile {
            file: path.display().to_string(),
            reason: format!("not valid YAML: {e}"),
        })
}

/// `name(key=value, ...)` for each training defense, then pruning and
/// obfuscation; `none` when the recipe has none.
pub fn describe_defenses(recipe: &Yaml) -> String {
    let mut out = Vec::new();
    if let Some(Yaml::Mapping(defs)) = recipe.get("training").and_then(|t| t.get("defenses")) {
        for (name, cfg) in defs {
            if cfg.is_null() {
                continue;
            }
            out.push(format!("{}{}", scalar(name), settings(cfg)));
        }
    }
    for section in ["prune", "obfuscation"] {
        if let Some(cfg) = recipe.get(section).filter(|v| !v.is_null()) {
            out.push(format!("{section}{}", settings(cfg)));
        }
    }
    match out.is_empty() {
        true => "none".into(),
        false => out.join(", "),
    }
}

/// `(key=value, ...)` of a mapping's scalar settings (nested ones by their
/// `kind`/`method`, others left out for brevity).
fn settings(cfg: &Yaml) -> String {
    let Yaml::Mapping(m) = cfg else {
        return format!("({})", scalar(cfg));
    };
    let parts: Vec<String> = m
        .iter()
        .filter_map(|(k, v)| match v {
            Yaml::Mapping(inner) => inner
                .get("kind")
                .map(|kind| format!("{}={}", scalar(k), scalar(kind))),
            Yaml::Sequence(_) | Yaml::Null => None,
            _ => Some(format!("{}={}", scalar(k), scalar(v))),
        })
        .collect();
    format!("({})", parts.join(", "))
}

fn scalar(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Null => "null".into(),
        other => serde_json::to_string(other).unwrap_or_else(|_| "?".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defenses_are_described_with_their_settings() {
        let y: Yaml = serde_norway::from_str(
            "training:\n  defenses:\n    label_smoothing: null\n    lipschitz: {weight: 0.01, draws: 1}\nprune:\n  method: patrol\n  budget: {fraction: 0.5}\n",
        )
        .unwrap();
        assert_eq!(
            describe_defenses(&y),
            "lipschitz(weight=0.01, draws=1), prune(method=patrol)"
        );
        let none: Yaml = serde_norway::from_str("training: {epochs: 1}").unwrap();
        assert_eq!(describe_defenses(&none), "none");
    }
}
