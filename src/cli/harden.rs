//! `splitguard harden`: the search for the most private deployment within
//! an accuracy and an edge budget (see [`splitguard::harden`]).

use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::Device;
use clap::Args;

use splitguard::Error;
use splitguard::harden::{self, HardenOptions, HardenOutcome};
use splitguard::recipe::{self, Override, Shard};

use super::progress::Progress;

/// Arguments of `splitguard harden`.
#[derive(Args)]
pub struct HardenArgs {
    /// The recipe (YAML): model, data, the attacks that define leakage, and
    /// an optional `harden:` section (the search space; defaults: the
    /// seeds' defenses, pruning on/off, the recipe's split).
    recipe: PathBuf,
    /// Largest target-accuracy loss allowed, in percentage points below
    /// the undefended reference (overrides harden.max_accuracy_drop).
    #[arg(long, value_name = "P")]
    max_accuracy_drop: Option<f64>,
    /// Edge FLOPs budget per query (overrides harden.edge_flops).
    #[arg(long, value_name = "F")]
    edge_flops: Option<u64>,
    /// Stop starting evaluations after this many minutes (overrides
    /// harden.budget_minutes); --resume continues.
    #[arg(long, value_name = "M")]
    budget_minutes: Option<f64>,
    /// Search folder (default: checkpoints/<recipe name>-harden/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluate only the share of each rung with position % n == i (0-based);
    /// finish with an unsharded --resume on the gathered folders.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Continue a search in the search folder.
    #[arg(long)]
    resume: bool,
    /// Override a recipe field: --set training.epochs=3 (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<Override>,
}

/// `splitguard harden RECIPE.yaml [...]`.
pub fn run(args: HardenArgs, dev: &Device) -> anyhow::Result<()> {
    let loaded = match recipe::plan_from_path(&args.recipe, &args.overrides)? {
        recipe::Plan::Single(loaded) => *loaded,
        recipe::Plan::Sweep(_) => {
            return Err(Error::setting(
                format!("{}: sweep", args.recipe.display()),
                "a recipe with `sweep:` cannot be hardened; harden searches its own space (the `harden:` section)",
            )
            .into());
        }
    };
    let mut cfg = loaded.recipe.harden.clone().unwrap_or_default();
    if let Some(p) = args.max_accuracy_drop {
        cfg.max_accuracy_drop = p;
    }
    if let Some(f) = args.edge_flops {
        cfg.edge_flops = Some(f);
    }
    if let Some(m) = args.budget_minutes {
        cfg.budget_minutes = Some(m);
    }
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("checkpoints").join(format!("{}-harden", loaded.recipe.name))
    });
    tracing::info!("harden '{}' into {}", loaded.recipe.name, out.display());
    let outcome = harden::harden(
        &loaded,
        &cfg,
        &HardenOptions {
            out_dir: out.clone(),
            shard: args.shard,
            resume: args.resume,
            stop_after: None,
        },
        dev,
        &mut Progress::default(),
    )
    .with_context(|| format!("harden '{}' failed", loaded.recipe.name))?;
    match outcome {
        HardenOutcome::Answer { answer, ran, files } => {
            println!("{} evaluation(s) ran in this call", ran.len());
            println!("{}", answer.sentence);
            match &answer.chosen {
                Some(c) => println!(
                    "chosen: {} ({}); recipe: {}; report: {}",
                    c.id,
                    c.label,
                    out.join(&c.recipe).display(),
                    out.join(&c.report).display()
                ),
                None => println!("chosen: none within the budgets"),
            }
            for f in files {
                println!("wrote {}", f.display());
            }
        }
        HardenOutcome::Incomplete { ran, reason } => {
            println!(
                "{} evaluation(s) ran in this call; the search is not finished: {reason}",
                ran.len()
            );
        }
    }
    Ok(())
}
