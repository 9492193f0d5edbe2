//! Reading what the reproduction recipes leave in their run folders.
//!
//! Everything here reads `report.json` files (and a leakage run's, and
//! `obfuscation.json`) as JSON values: the reproductions only read the
//! stable keys the README documents, so a folder copied back from another
//! machine works as well as one written here.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ReproError;
use crate::pipeline::files::REPORT_JSON;

/// Reads and parses one JSON file.
pub fn read_json(path: &Path) -> Result<Value, ReproError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReproError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReproError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// One finished run, with its repeats: `rep_0/ .. rep_{n-1}/` when the
/// recipe had `repeats: n > 1`, else the folder itself.
#[derive(Clone, Debug)]
pub struct Repeats {
    /// The run folder.
    pub dir: PathBuf,
    /// Each repeat's folder, in order.
    pub folders: Vec<PathBuf>,
    /// Each repeat's `report.json`, in order.
    pub reports: Vec<Value>,
}

impl Repeats {
    /// Loads a finished run folder; `Ok(None)` when it holds no finished
    /// report (not run yet, or still running).
    pub fn load(dir: &Path) -> Result<Option<Self>, ReproError> {
        if !dir.join(REPORT_JSON).is_file() {
            return Ok(None);
        }
        let mut folders = Vec::new();
        for i in 0.. {
            let rep = dir.join(format!("rep_{i}"));
            if !rep.join(REPORT_JSON).is_file() {
                break;
            }
            folders.push(rep);
        }
        if folders.is_empty() {
            folders.push(dir.to_path_buf());
        }
        let reports = folders
            .iter()
            .map(|f| read_json(&f.join(REPORT_JSON)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self {
            dir: dir.to_path_buf(),
            folders,
            reports,
        }))
    }

    /// One number per repeat, where `f` finds it.
    pub fn values(&self, f: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
        self.reports.iter().filter_map(f).collect()
    }

    /// The attack `key`'s `metric` at `split`, one value per repeat.
    pub fn attack_values(&self, key: &str, split: usize, metric: &str) -> Vec<f64> {
        self.values(|r| attack(r, key, split).and_then(|a| a[metric].as_f64()))
    }

    /// How many repeats flag the attack `key` at `split` as a lower bound.
    pub fn flagged(&self, key: &str, split: usize) -> usize {
        self.reports
            .iter()
            .filter_map(|r| attack(r, key, split))
            .filter(|a| a["under_trained"].as_array().is_some_and(|u| !u.is_empty()))
            .count()
    }

    /// The first repeat's picture of the attack `key` at `split`, if any.
    pub fn image(&self, key: &str, split: usize) -> Option<PathBuf> {
        let a = attack(self.reports.first()?, key, split)?;
        Some(self.folders[0].join(a["image"].as_str()?))
    }
}

/// The record of the attack keyed `key` (its `label`, else its kind) at
/// `split` in a report.
pub fn attack<'a>(report: &'a Value, key: &str, split: usize) -> Option<&'a Value> {
    report["attacks"].as_array()?.iter().find(|a| {
        let k = a["label"].as_str().or_else(|| a["attack"].as_str());
        k == Some(key) && a["split"].as_u64() == Some(split as u64)
    })
}

/// The attack keys of a report, in order of first appearance.
pub fn attack_keys(report: &Value) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for a in report["attacks"].as_array().into_iter().flatten() {
        if let Some(k) = a["label"].as_str().or_else(|| a["attack"].as_str())
            && !keys.iter().any(|x| x == k)
        {
            keys.push(k.to_string());
        }
    }
    keys
}

/// The points of a sweep folder (`NNN_...` subfolders, in index order),
/// each loaded; a point not finished yet is `None`.
pub fn sweep_points(dir: &Path) -> Result<Vec<(String, Option<Repeats>)>, ReproError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| n.len() > 4 && n[..3].bytes().all(|b| b.is_ascii_digit()) && &n[3..4] == "_")
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let r = Repeats::load(&dir.join(&n))?;
            Ok((n, r))
        })
        .collect()
}

/// The wall time `scripts/reproduce.sh` recorded for a run folder, seconds.
pub fn wall_seconds(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(super::WALL_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}
