//! `splitguard leakage RECIPE`: gradient leakage and I2F (seed 003) from a
//! recipe's `leakage:` section.

use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::Device;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use splitguard::Error;
use splitguard::leakage::{ExampleResult, LeakageError, LeakageObserver, run_leakage};
use splitguard::recipe::{self, Override};

/// Arguments of `splitguard leakage`.
#[derive(Args)]
pub struct LeakageArgs {
    /// The recipe (YAML) with a `leakage:` section.
    recipe: PathBuf,
    /// Run folder (default: checkpoints/<recipe name>/leakage/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the results of an earlier leakage run in the folder.
    #[arg(long)]
    overwrite: bool,
    /// Override a recipe field: --set leakage.examples=4 (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<Override>,
}

/// Logs stages and draws a bar over the (example, defense) pairs.
#[derive(Default)]
struct Progress {
    bar: Option<ProgressBar>,
}

impl LeakageObserver for Progress {
    fn stage(&mut self, name: &str, detail: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!("{name}: {detail}");
    }

    fn pair_done(&mut self, done: usize, total: usize, r: &ExampleResult) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix("attack");
            bar
        });
        bar.set_position(done as u64);
        bar.set_message(format!(
            "ex {} {}: SSIM {:.3}, I2F {:.3}",
            r.example, r.defense, r.ssim, r.i2f.i2f
        ));
        tracing::debug!(
            "example {} ({}): MSE {:.5}, SSIM {:.3}, error {:.4}, I2F {:.4}, bound {:.2e}",
            r.example,
            r.defense,
            r.mse,
            r.ssim,
            r.error_norm,
            r.i2f.i2f,
            r.i2f.lower_bound
        );
    }
}

/// Runs the command on `device` (a plain device; autodiff is added here).
pub fn run(args: LeakageArgs, device: Device) -> anyhow::Result<()> {
    let loaded = recipe::from_path(&args.recipe, &args.overrides).map_err(Error::from)?;
    let r = &loaded.recipe;
    let cfg = r.leakage.as_ref().ok_or_else(|| {
        Error::from(LeakageError::MissingSection {
            file: args.recipe.display().to_string(),
        })
    })?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("checkpoints").join(&r.name).join("leakage"));
    let report_json = out.join(splitguard::pipeline::files::REPORT_JSON);
    if report_json.exists() && !args.overwrite {
        return Err(
            Error::from(splitguard::run_folder::RunFolderError::Occupied {
                dir: out,
                what: "a leakage run",
                hint: "pass --overwrite to replace it, or --out to write elsewhere",
            })
            .into(),
        );
    }
    tracing::info!("leakage '{}' into {}", r.name, out.display());
    let started = std::time::Instant::now();
    let report = run_leakage(r, cfg, &out, &device.autodiff(), &mut Progress::default())
        .with_context(|| format!("leakage run '{}' failed", r.name))?;
    println!(
        "{} ({} parameters), {} examples x {} defenses in {:.1}s; report: {}",
        report.arch,
        report.params,
        report.lambda_max.len(),
        report.settings.len(),
        started.elapsed().as_secs_f64(),
        out.join(splitguard::pipeline::files::REPORT_MD).display()
    );
    for s in &report.settings {
        println!(
            "  {:<12} SSIM {:.3}  PSNR {:6.2} dB  error {:.4}  I2F {:.4}  bound {:.2e}",
            s.defense, s.ssim, s.psnr, s.error_norm, s.i2f, s.lower_bound
        );
    }
    let sp = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    println!(
        "  Spearman(I2F, error) {} over {} pairs ({} over perturbed pairs)",
        sp(report.i2f_vs_error.spearman),
        report.i2f_vs_error.pairs,
        sp(report.i2f_vs_error_perturbed.spearman)
    );
    Ok(())
}
