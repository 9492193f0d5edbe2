//! `splitguard compare` and the sweep branch of `splitguard run`.

use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::Device;
use clap::Args;

use splitguard::Error;
use splitguard::compare::{self, sweep};
use splitguard::recipe::{Shard, Sweep};

use super::progress::Progress;

/// Arguments of `splitguard compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// Finished run folders, or folders of runs (a sweep's folder: its
    /// finished points).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to write comparison.md/.csv and the trade-off plots.
    #[arg(long, default_value = "comparison")]
    out: PathBuf,
}

/// `splitguard compare RUN_DIR... [--out DIR]`.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let written = compare::compare(&args.runs, &args.out).map_err(Error::from)?;
    report(&written);
    Ok(())
}

fn report(w: &compare::Written) {
    println!("compared {} run(s)", w.runs.len());
    for u in &w.unfinished {
        tracing::warn!("left out (not finished): {}", u.display());
    }
    for f in &w.files {
        println!("wrote {}", f.display());
    }
}

/// Runs a sweep (or this shard of it) into `out` and writes its comparison.
pub fn run_sweep(
    s: &Sweep,
    out: PathBuf,
    shard: Option<Shard>,
    resume: bool,
    dev: &Device,
) -> anyhow::Result<()> {
    tracing::info!(
        "sweep '{}': {} runs into {}{}",
        s.name,
        s.points.len(),
        out.display(),
        shard.map_or_else(String::new, |sh| format!(
            " (shard {}/{}, 0-based)",
            sh.index, sh.count
        ))
    );
    let outcome = sweep::run_sweep(
        s,
        &sweep::SweepOptions {
            out_dir: out,
            shard,
            resume,
        },
        dev,
        &mut Progress::default(),
    )
    .with_context(|| format!("sweep '{}' failed", s.name))?;
    for (point, r) in &outcome.ran {
        let repeats = match r {
            splitguard::pipeline::RunOutcome::Repeats(rep) => {
                format!(" (mean of {} repeats)", rep.repeats)
            }
            splitguard::pipeline::RunOutcome::Single(_) => String::new(),
        };
        println!(
            "{}: target accuracy {:.2}%{repeats} at split {}",
            point.label,
            100.0 * r.target_accuracy(),
            r.split()
        );
    }
    if outcome.other_shards > 0 {
        println!("{} run(s) left to other shards", outcome.other_shards);
    }
    report(&outcome.comparison);
    Ok(())
}
