//! `repeats: N > 1`: the whole recipe N times, from seeds derived from
//! `seed`, each an ordinary single run in its own folder `rep_i/`, then the
//! aggregate report (mean, standard deviation, 95% t interval of every
//! number; [`crate::report::repeats`]) at the top of the run folder.
//!
//! Each repeat is exactly the run a recipe with `repeats: 1` and that seed
//! would make, so repeat 0 is the single run of `seed`, byte for byte, and
//! `--resume` works per repeat: a finished repeat (its `report.json`
//! exists) is read back, a partial one resumes from its checkpoints, later
//! ones start. The aggregate is always made from the repeats' files, so a
//! resumed run reports exactly what an uninterrupted one does.

use std::path::Path;

use burn::prelude::Device;

use super::{RunObserver, RunOptions, claim_folder, files, run_once};
use crate::Error;
use crate::recipe::LoadedRecipe;
use crate::report::Report;
use crate::report::repeats::{RepeatsReport, aggregate, rep_dir, write_all};

/// The seed of repeat `i` of a recipe with seed `seed`: `seed` itself for
/// repeat 0 (so it is the single run), otherwise the `i`-th output of the
/// SplitMix64 generator started at `seed` (Steele, Lea & Flood, OOPSLA
/// 2014), which spreads nearby seeds far apart.
pub fn repeat_seed(seed: u64, i: usize) -> u64 {
    if i == 0 {
        return seed;
    }
    let mut z = seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs (or resumes) every repeat of `loaded` into `opts.out_dir/rep_i/`
/// and writes the aggregate report at the top of the folder.
pub(super) fn run(
    loaded: &LoadedRecipe,
    opts: &RunOptions,
    device: &Device,
    obs: &mut dyn RunObserver,
) -> Result<RepeatsReport, Error> {
    let recipe = &loaded.recipe;
    let out = &opts.out_dir;
    claim_folder(recipe, out, opts.resume)?;
    let n = recipe.repeats;
    let mut reports = Vec::with_capacity(n);
    for i in 0..n {
        let rep = recipe.repeat(repeat_seed(recipe.seed, i));
        let dir = out.join(rep_dir(i));
        let report_path = dir.join(files::REPORT_JSON);
        let what = format!("{} of {n} (seed {}) in {}", i + 1, rep.seed, dir.display());
        // Each repeat's folder is locked while it is written or read back,
        // as a single run's is, so no command reads a half-written repeat.
        let _held = super::RunLock::acquire(&dir)?;
        if opts.resume && report_path.is_file() {
            // Finished before: read back, after checking it ran this recipe.
            claim_folder(&rep, &dir, true)?;
            obs.stage("repeat", &format!("{what}: finished, read back"));
        } else {
            obs.stage("repeat", &what);
            run_once(
                &LoadedRecipe {
                    recipe: rep,
                    source: loaded.source.clone(),
                },
                &RunOptions {
                    out_dir: dir,
                    resume: opts.resume,
                },
                device,
                obs,
            )?;
        }
        reports.push(read_report(&report_path)?);
    }
    obs.stage("report", "aggregating the repeats");
    let report = aggregate(recipe, &reports);
    write_all(&report, out)?;
    Ok(report)
}

/// A repeat's `report.json`.
fn read_report(path: &Path) -> Result<Report, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::io(
            path,
            format!("not a report of this splitguard version: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_0_keeps_the_seed_and_later_repeats_follow_splitmix64() {
        assert_eq!(repeat_seed(42, 0), 42);
        // SplitMix64's first outputs from state 0 (the reference values of
        // Vigna's splitmix64.c).
        assert_eq!(repeat_seed(0, 1), 0xE220_A839_7B1D_CDAF);
        assert_eq!(repeat_seed(0, 2), 0x6E78_9E6A_A1B9_65F4);
        let seeds: Vec<u64> = (0..100).map(|i| repeat_seed(42, i)).collect();
        let mut unique = seeds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 100);
    }
}
