//! Command-line front end. The library never prints; this module owns the
//! terminal: logs through `tracing` on stderr, progress bars through
//! `indicatif`, results on stdout.
//!
//! Exit codes: 0 success, 2 bad input (recipe, data, checkpoint, run
//! folder, arguments), 1 any other failure.

mod compare;
mod harden;
mod leakage;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use burn::prelude::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};

use splitguard::Error;
use splitguard::model::{SplitModel, zoo};
use splitguard::pipeline::{self, Part, RunOptions};
use splitguard::recipe::{self, Override};

/// Harden neural networks for split inference, and audit what leaks.
#[derive(Parser)]
#[command(name = "splitguard", version, about, long_about = None)]
struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu, global = true)]
    device: DeviceArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    /// burn's flex CPU backend.
    Cpu,
    /// burn's CUDA backend (build with `--features cuda`).
    Cuda,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole recipe: train with defenses, audit, report.
    Run(RunArgs),
    /// Recipe tools.
    #[command(subcommand)]
    Recipe(RecipeCmd),
    /// Model tools.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Write the features the server receives as NPY files.
    ExportFeatures(ExportArgs),
    /// Golden-partition analysis of a finished run: where features stop
    /// giving the input away (seed 002).
    Partition(PartitionArgs),
    /// Run the audit's attacks again on a finished run (e.g. other attacks
    /// or splits via --set audit...), into a folder of its own.
    Attack(AttackArgs),
    /// Gradient leakage and I2F from a recipe's `leakage:` section.
    Leakage(leakage::LeakageArgs),
    /// Put finished runs (or a sweep's folder) in one table (Markdown, CSV)
    /// and privacy-utility plots.
    Compare(compare::CompareArgs),
    /// Search defenses, strengths, pruning and splits for the most private
    /// deployment within an accuracy and an edge budget.
    Harden(harden::HardenArgs),
    /// Regenerate REPRODUCTIONS.md from the reproduction recipes' run
    /// folders (`scripts/reproduce.sh` runs them first).
    Reproductions(ReproArgs),
}

#[derive(Args)]
struct ReproArgs {
    /// The folder holding the reproduction runs (`004-obfuscation/`, ...).
    #[arg(long, default_value = "checkpoints/repro")]
    runs: PathBuf,
    /// The document to write; its pictures go to `docs/repro/` beside it.
    #[arg(long, default_value = "REPRODUCTIONS.md")]
    out: PathBuf,
}

#[derive(Args)]
struct AttackArgs {
    /// The run folder.
    #[arg(long)]
    run: PathBuf,
    /// Output folder (default: RUN/attack).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the run's recipe for this audit: --set audit.splits=[1,2] (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<Override>,
}

#[derive(Args)]
struct PartitionArgs {
    /// The run folder.
    #[arg(long)]
    run: PathBuf,
    /// Images of the owner's `train` part analysed (a stratified subsample).
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Relative margin within which two drops both count as the transition.
    #[arg(long, default_value_t = 0.1)]
    margin: f64,
    /// Edge compute budget (FLOPs per query).
    #[arg(long)]
    budget_flops: Option<u64>,
}

#[derive(Args)]
struct RunArgs {
    /// The recipe (YAML).
    recipe: PathBuf,
    /// Run folder (default: checkpoints/<recipe name>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue an interrupted run in the run folder.
    #[arg(long)]
    resume: bool,
    /// Override a recipe field: --set training.epochs=3 (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<Override>,
    /// For a recipe with `sweep:`, run only the points with index % n == i
    /// (i is 0-based: 0/3, 1/3, 2/3 cover every point once).
    #[arg(long, value_name = "I/N")]
    shard: Option<recipe::Shard>,
}

#[derive(Subcommand)]
enum RecipeCmd {
    /// Validate a recipe without running it.
    Check {
        /// The recipe (YAML).
        recipe: PathBuf,
        /// Override a recipe field (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<Override>,
    },
    /// Print every recipe field with its type, default and meaning.
    Schema {
        /// Print the JSON Schema (draft 2020-12) instead, for editors.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Print blocks, output shapes, FLOPs and parameters.
    Summary {
        /// Zoo architecture.
        #[arg(long)]
        arch: String,
    },
    /// List the tensors a weights file must hold for a recipe's model (names
    /// and shapes in PyTorch layout), and check `model.weights` against them.
    Keys {
        /// The recipe (YAML).
        #[arg(long)]
        recipe: PathBuf,
        /// Override a recipe field (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<Override>,
    },
}

#[derive(Args)]
struct ExportArgs {
    /// The run folder.
    #[arg(long)]
    run: PathBuf,
    /// Split point (blocks on the edge).
    #[arg(long)]
    split: usize,
    /// Which data part.
    #[arg(long, value_enum)]
    part: PartArg,
    /// Output file (F.npy; F.labels.npy and F.hidden.npy are written beside it).
    #[arg(long)]
    out: PathBuf,
    /// Also write the input images as F.inputs.npy.
    #[arg(long)]
    inputs: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PartArg {
    Aux,
    Test,
}

fn device(arg: DeviceArg) -> anyhow::Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda => Ok(Device::cuda(0)),
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda => Err(anyhow::Error::new(Error::Usage {
            flag: "--device cuda".into(),
            message: "this splitguard was built without the `cuda` feature (cargo build --release --features cuda)".into(),
        })),
    }
}

/// Entry point: runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPLITGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("splitguard={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The exit code of a failed command: the kind of the first splitguard
/// error in the chain decides (2 bad input, 1 internal); the errors of the
/// commands that do not go through [`Error`] are bad input when they are a
/// recipe's, a data file's or an unreadable reproduction run's.
fn exit_code(e: &anyhow::Error) -> u8 {
    for c in e.chain() {
        if let Some(err) = c.downcast_ref::<Error>() {
            return err.kind().exit_code();
        }
        let bad = c.downcast_ref::<recipe::RecipeError>().is_some()
            || c.downcast_ref::<splitguard::data::DataError>().is_some()
            || matches!(
                c.downcast_ref::<splitguard::repro::ReproError>(),
                Some(
                    splitguard::repro::ReproError::Json { .. }
                        | splitguard::repro::ReproError::Read { .. }
                )
            );
        if bad {
            return splitguard::ErrorKind::BadInput.exit_code();
        }
    }
    splitguard::ErrorKind::Internal.exit_code()
}

fn print_attacks(records: &[splitguard::attack::AttackRecord]) {
    for a in records {
        let ci = |c: Option<[f64; 2]>, d: usize| {
            c.map(|[lo, hi]| format!(" [{lo:.d$}, {hi:.d$}]"))
                .unwrap_or_default()
        };
        let margin = a
            .margin_over_label
            .map(|m| format!(", {m:+.2} over the label floor"))
            .unwrap_or_default();
        if let (Some(psnr), Some(ssim)) = (a.psnr, a.ssim) {
            println!(
                "  {:<14} split {:>2}: PSNR {psnr:6.2}{} dB, SSIM {ssim:.3}{margin}",
                a.key(),
                a.split,
                ci(a.psnr_ci, 2)
            );
        } else if let (Some(acc), Some(ch)) = (a.accuracy, a.chance) {
            let attr = a.attribute.as_deref().unwrap_or("");
            println!(
                "  {:<14} split {:>2}: {attr} accuracy {acc:.3}{} (chance {ch:.3}){margin}",
                a.key(),
                a.split,
                ci(a.accuracy_ci, 3)
            );
        }
        for why in &a.under_trained {
            println!("  {:<14}           lower bound: {why}", "");
        }
    }
}

/// The aggregate of a run with repeats: means with their 95% t intervals.
fn print_repeats(r: &splitguard::report::RepeatsReport, report_md: &std::path::Path) {
    use splitguard::report::repeats::mean_pm;
    let stat = |m: &std::collections::BTreeMap<String, splitguard::report::RepeatStat>,
                key: &str,
                digits: usize| {
        m.get(key)
            .map_or_else(|| "-".to_string(), |s| mean_pm(&s.interval, digits))
    };
    let acc = r.over_repeats.get("target_accuracy").map_or_else(
        || format!("{:.2}%", 100.0 * r.target_accuracy),
        |s| {
            let mut iv = s.interval;
            iv.mean *= 100.0;
            iv.lo = iv.lo.map(|v| 100.0 * v);
            iv.hi = iv.hi.map(|v| 100.0 * v);
            format!("{}%", mean_pm(&iv, 2))
        },
    );
    println!(
        "{} repeats: target accuracy {acc} at split {} ({} edge FLOPs; mean ± half-width of the 95% t interval); report: {}",
        r.repeats,
        r.split,
        r.edge_flops,
        report_md.display()
    );
    for a in &r.attacks {
        let o = &a.over_repeats;
        if a.psnr.is_some() && a.ssim.is_some() {
            println!(
                "  {:<12} split {:>2}: PSNR {} dB, SSIM {}",
                a.attack,
                a.split,
                stat(o, "psnr", 2),
                stat(o, "ssim", 3)
            );
        } else if a.accuracy.is_some() {
            println!(
                "  {:<12} split {:>2}: {} accuracy {} (chance {})",
                a.attack,
                a.split,
                a.attribute.as_deref().unwrap_or(""),
                stat(o, "accuracy", 3),
                stat(o, "chance", 3)
            );
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let loaded = match recipe::plan_from_path(&args.recipe, &args.overrides)? {
                recipe::Plan::Single(loaded) => *loaded,
                recipe::Plan::Sweep(s) => {
                    let out = args
                        .out
                        .unwrap_or_else(|| PathBuf::from("checkpoints").join(&s.name));
                    let dev = device(cli.device)?.autodiff();
                    return compare::run_sweep(&s, out, args.shard, args.resume, &dev);
                }
            };
            if args.shard.is_some() {
                return Err(Error::Usage {
                    flag: "--shard".into(),
                    message: format!(
                        "{} has no `sweep:` section, so there is nothing to share out",
                        args.recipe.display()
                    ),
                }
                .into());
            }
            let out = args
                .out
                .unwrap_or_else(|| PathBuf::from("checkpoints").join(&loaded.recipe.name));
            let dev = device(cli.device)?.autodiff();
            tracing::info!("run '{}' into {}", loaded.recipe.name, out.display());
            let outcome = pipeline::run(
                &loaded,
                &RunOptions {
                    out_dir: out.clone(),
                    resume: args.resume,
                },
                &dev,
                &mut progress::Progress::default(),
            )
            .with_context(|| format!("run '{}' failed", loaded.recipe.name))?;
            let report_md = out.join(pipeline::files::REPORT_MD);
            match outcome {
                pipeline::RunOutcome::Single(report) => {
                    println!(
                        "target accuracy {:.2}% at split {} ({} edge FLOPs); report: {}",
                        100.0 * report.target_accuracy,
                        report.split,
                        report.edge_flops,
                        report_md.display()
                    );
                    print_attacks(&report.attacks);
                }
                pipeline::RunOutcome::Repeats(report) => print_repeats(&report, &report_md),
            }
            Ok(())
        }
        Command::Recipe(RecipeCmd::Check { recipe, overrides }) => {
            match recipe::plan_from_path(&recipe, &overrides)? {
                recipe::Plan::Single(loaded) => {
                    println!("{}: ok (recipe '{}')", recipe.display(), loaded.recipe.name)
                }
                recipe::Plan::Sweep(s) => println!(
                    "{}: ok (sweep '{}' of {} runs)",
                    recipe.display(),
                    s.name,
                    s.points.len()
                ),
            }
            Ok(())
        }
        Command::Recipe(RecipeCmd::Schema { json }) => {
            match json {
                true => println!(
                    "{}",
                    serde_json::to_string_pretty(&recipe::schema::json_schema())?
                ),
                false => print!("{}", recipe::schema::render_text(&recipe::schema::fields())),
            }
            Ok(())
        }
        Command::Model(ModelCmd::Summary { arch }) => {
            let spec = zoo::spec(&arch).map_err(Error::from)?;
            let model = SplitModel::new(&spec, &Device::flex()).map_err(Error::from)?;
            println!("{} (input {:?})", spec.arch, spec.input);
            println!(
                "{:>5}  {:<26} {:<14} {:>12} {:>10} {:>14}",
                "split", "block", "output", "FLOPs", "params", "edge FLOPs"
            );
            let mut edge = 0u64;
            for b in model.infos().map_err(Error::from)? {
                edge += b.flops;
                println!(
                    "{:>5}  {:<26} {:<14} {:>12} {:>10} {:>14}",
                    b.index,
                    b.description,
                    format!("{:?}", b.output),
                    b.flops,
                    b.params,
                    edge
                );
            }
            println!(
                "total parameters: {}",
                burn::module::Module::num_params(&model)
            );
            Ok(())
        }
        Command::Model(ModelCmd::Keys { recipe, overrides }) => {
            let loaded = recipe::from_path(&recipe, &overrides)?;
            let spec = pipeline::recipe_spec(&loaded.recipe)?;
            let dev = Device::flex();
            let model = SplitModel::new(&spec, &dev).map_err(Error::from)?;
            let keys = splitguard::model::expected_tensors(&model);
            println!(
                "{} (input {:?}): {} tensors, PyTorch layout (linear weights [out, in])",
                spec.arch,
                spec.input,
                keys.len()
            );
            for k in &keys {
                println!("  {:<32} {:?}", k.name, k.shape);
            }
            if let Some(w) = &loaded.recipe.model.weights {
                splitguard::model::load_weights(model, w).map_err(Error::from)?;
                println!("{}: fits", w.path.display());
            }
            Ok(())
        }
        Command::Attack(args) => {
            let dev = device(cli.device)?.autodiff();
            let run = pipeline::open_run(&args.run, &dev.clone().inner())?;
            let rpath = args.run.join(pipeline::files::RECIPE);
            let recipe = recipe::from_path(&rpath, &args.overrides)?.recipe;
            let out = args.out.unwrap_or_else(|| args.run.join("attack"));
            std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
            let records = pipeline::attack_run(
                &run,
                &recipe,
                &out,
                &dev,
                &mut progress::Progress::default(),
            )?;
            let path = out.join("attacks.json");
            splitguard::fsutil::write_atomic(
                &path,
                serde_json::to_string_pretty(&records)?.as_bytes(),
            )
            .map_err(|e| Error::io(&path, e))?;
            print_attacks(&records);
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Partition(args) => {
            let dev = device(cli.device)?;
            let run = pipeline::open_run(&args.run, &dev)?;
            let cfg = splitguard::partition::PartitionConfig {
                samples: args.samples.max(20),
                margin: args.margin.clamp(0.0, 0.99),
                budget_flops: args.budget_flops,
            };
            let p = splitguard::partition::analyse(
                &run.model,
                &run.splits.train,
                &cfg,
                run.recipe.seed,
                &dev,
            )?;
            let written = pipeline::write_partition(&p, &args.run)?;
            println!(
                "{:>5} {:>7} {:>12} {:>10} {:>12} {:>14}  zone",
                "split", "dim", "R_c^2", "R_c^2/tot", "entropy/dim", "edge FLOPs"
            );
            for r in &p.rows {
                println!(
                    "{:>5} {:>7} {:>12.4} {:>10.4} {:>12.3} {:>14}  {}{}",
                    r.split,
                    r.dim,
                    r.rc2,
                    r.normalized_rc2,
                    r.entropy_per_dim,
                    r.edge_flops,
                    if r.in_golden_zone { "golden" } else { "-" },
                    if Some(r.split) == p.transition {
                        " (transition)"
                    } else {
                        ""
                    }
                );
            }
            println!(
                "chosen split: {}. {}",
                p.chosen
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "none".into()),
                p.reason
            );
            for w in written {
                println!("wrote {}", w.display());
            }
            Ok(())
        }
        Command::Leakage(args) => leakage::run(args, device(cli.device)?),
        Command::Compare(args) => compare::run(args),
        Command::Harden(args) => harden::run(args, &device(cli.device)?.autodiff()),
        Command::Reproductions(args) => {
            for w in splitguard::repro::write(&args.runs, &args.out)? {
                println!("wrote {}", w.display());
            }
            Ok(())
        }
        Command::ExportFeatures(args) => {
            let dev = device(cli.device)?;
            let run = pipeline::open_run(&args.run, &dev)?;
            let part = match args.part {
                PartArg::Aux => Part::Aux,
                PartArg::Test => Part::Test,
            };
            for p in
                pipeline::export_features(&run, args.split, part, &args.out, args.inputs, &dev)?
            {
                println!("wrote {}", p.display());
            }
            Ok(())
        }
    }
}
