//! Reading what the reproduction recipes leave in their run folders.
//!
//! Everything here reads `report.json` files (and a leakage run's, and
//! `obfuscation.json`) as JSON values, by the keys their writers use
//! (`AttackRecord`, `Floors`, `PartitionReport`, `Report`, the obfuscation
//! study, `LeakageReport`), so a folder copied back from another machine
//! works as well as one written here.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ReproError;
use crate::pipeline::files::REPORT_JSON;

/// Reads and parses one JSON file.
pub fn read_json(path: &Path) -> Result<Value, ReproError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ReproError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    serde_json::from_str(&text).map_err(|cause| ReproError::Json {
        path: path.to_path_buf(),
        cause,
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
            let rep = dir.join(crate::report::repeats::rep_dir(i));
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

    /// The first repeat's picture of the attack `key` at `split`, if the
    /// record names one and the file is there.
    pub fn image(&self, key: &str, split: usize) -> Option<PathBuf> {
        let a = attack(self.reports.first()?, key, split)?;
        let p = self.folders.first()?.join(a["image"].as_str()?);
        p.is_file().then_some(p)
    }

    /// The attribute attack's `metric` on `attribute` at `split`, one value
    /// per repeat.
    pub fn attribute_values(&self, attribute: &str, split: usize, metric: &str) -> Vec<f64> {
        self.values(|r| {
            r["attacks"].as_array()?.iter().find(|a| {
                a["attack"].as_str() == Some("attribute")
                    && a["attribute"].as_str() == Some(attribute)
                    && a["split"].as_u64() == Some(split as u64)
            })?[metric]
                .as_f64()
        })
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

/// The finished points of a sweep folder by their grid index (the `NNN`
/// of their `NNN_...` folder), in index order; a point not started or not
/// finished is absent, so callers look points up by index, never by
/// position.
pub fn sweep_points(dir: &Path) -> Result<Vec<(usize, Repeats)>, ReproError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut points: Vec<(usize, String)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter_map(|n| {
            let b = n.as_bytes();
            let ok = b.len() > 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b'_';
            ok.then(|| n[..3].parse().ok().map(|i| (i, n.clone())))
                .flatten()
        })
        .collect();
    points.sort();
    let mut out = Vec::new();
    for (i, n) in points {
        if let Some(r) = Repeats::load(&dir.join(&n))? {
            out.push((i, r));
        }
    }
    Ok(out)
}

/// The finished sweep point with grid index `index`, if any.
pub fn point(points: &[(usize, Repeats)], index: usize) -> Option<&Repeats> {
    points.iter().find(|(i, _)| *i == index).map(|(_, r)| r)
}

/// The wall time `scripts/reproduce.sh` recorded for a run folder, seconds.
pub fn wall_seconds(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(super::WALL_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}
