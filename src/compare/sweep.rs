//! Running a sweep: every grid point of this shard into its own run folder
//! inside the sweep folder, then the comparison of whatever has finished
//! there (so each shard of a cluster job array leaves an up-to-date
//! comparison, and `splitguard compare SWEEP_DIR` gathers them all later).
//!
//! The sweep folder holds `sweep.json` (the axes and every point's label
//! and overrides), one folder per point named by [`SweepPoint::label`], and
//! the comparison files (see [`super::files`]).

use std::path::{Path, PathBuf};

use burn::prelude::Device;

use super::{SWEEP_MANIFEST, Written};
use crate::Error;
use crate::fsutil::write_atomic;
use crate::pipeline::{self, RunObserver, RunOptions, RunOutcome};
use crate::recipe::{Shard, Sweep, SweepPoint};

/// How to run a sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// The sweep folder (points go in subfolders).
    pub out_dir: PathBuf,
    /// Run only this shard's points (`None`: all of them).
    pub shard: Option<Shard>,
    /// Continue interrupted points instead of refusing to overwrite them.
    pub resume: bool,
}

/// What a sweep (or one shard of it) did.
#[derive(Debug)]
pub struct SweepOutcome {
    /// The points this shard ran, with their reports (a point with
    /// `repeats: N > 1` ran its repeats inside its own folder).
    pub ran: Vec<(SweepPoint, RunOutcome)>,
    /// Points left to other shards.
    pub other_shards: usize,
    /// The comparison of every finished point in the sweep folder.
    pub comparison: Written,
}

/// The `sweep.json` manifest of a sweep.
pub fn manifest(sweep: &Sweep) -> serde_json::Value {
    serde_json::json!({
        "name": sweep.name,
        "axes": sweep
            .axes
            .iter()
            .map(|(path, values)| serde_json::json!({"path": path, "values": values}))
            .collect::<Vec<_>>(),
        "points": sweep
            .points
            .iter()
            .map(|p| serde_json::json!({
                "index": p.index,
                "label": p.label,
                "set": p.overrides.iter().map(|o| format!("{}={}", o.path, o.value.trim())).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>(),
    })
}

/// Writes the manifest; a folder holding another sweep's is an error.
fn write_manifest(sweep: &Sweep, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(SWEEP_MANIFEST);
    let text = serde_json::to_string_pretty(&manifest(sweep)).expect("manifest serializes") + "\n";
    if let Ok(previous) = std::fs::read_to_string(&path)
        && previous != text
    {
        return Err(crate::run_folder::RunFolderError::Foreign {
            dir: dir.to_path_buf(),
            what: format!("the folder holds another sweep (its {SWEEP_MANIFEST} differs)"),
        }
        .into());
    }
    write_atomic(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))
}

/// Runs this shard's points of `sweep`, one run folder each, then writes the
/// comparison of every finished point into the sweep folder.
pub fn run_sweep(
    sweep: &Sweep,
    opts: &SweepOptions,
    device: &Device,
    obs: &mut dyn RunObserver,
) -> Result<SweepOutcome, Error> {
    write_manifest(sweep, &opts.out_dir)?;
    let mine: Vec<&SweepPoint> = sweep
        .points
        .iter()
        .filter(|p| opts.shard.is_none_or(|s| s.includes(p.index)))
        .collect();
    let other_shards = sweep.points.len() - mine.len();
    let mut ran = Vec::new();
    for (k, point) in mine.iter().enumerate() {
        obs.stage(
            "sweep",
            &format!(
                "point {} ({} of {} in this shard): {}",
                point.index,
                k + 1,
                mine.len(),
                point.label
            ),
        );
        let report = pipeline::run(
            &point.loaded,
            &RunOptions {
                out_dir: opts.out_dir.join(&point.label),
                resume: opts.resume,
            },
            device,
            obs,
        )?;
        ran.push(((*point).clone(), report));
    }
    obs.stage("compare", "comparing the finished points");
    let comparison = super::compare(std::slice::from_ref(&opts.out_dir), &opts.out_dir)?;
    Ok(SweepOutcome {
        ran,
        other_shards,
        comparison,
    })
}
