//! One `splitguard leakage` run: for each private example and each gradient
//! defense, attack the shared gradient, measure the reconstruction against
//! the private example, estimate I2F and its bound, and check how well I2F
//! ranks the true errors (seed 003, section 4: I2F as an efficient proxy of
//! the attack's error).
//!
//! The model, data and seed come from the recipe; `leakage.init_scale`
//! redraws the weights as DLG's LeNet does, and `leakage.warmup_epochs`
//! optionally trains with the recipe's `training` section first. Writes
//! `report.json`, `report.md`, the picture grid and the scatter plot into the
//! run folder (see [`files`]).

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::LeakageConfig;
use super::i2f::{I2fEstimate, LambdaMax};
use super::init::uniform_init;
use super::oracle::check_blocks;
use super::report;
use super::worker::{ExampleRun, Job, Msg, attack_example};
use crate::Error;
use crate::attack::AttackRecord;
use crate::data::Dataset;
use crate::fsutil::write_atomic;
use crate::metrics::{pearson, spearman};
use crate::pipeline::{model_spec, prepare_data};
use crate::recipe::Recipe;
use crate::train::{Evaluator, Silent, TrainRun, train};

/// File names inside a leakage run folder.
pub mod files {
    /// Originals (top row) above the reconstructions, one row per defense.
    pub const GRID: &str = "leakage_grid.png";
    /// log10 I2F against log10 of the attack's true L2 error.
    pub const SCATTER: &str = "i2f_vs_error.svg";
}

/// Attack and I2F results for one (example, defense) pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExampleResult {
    /// Position among the attacked examples.
    pub example: usize,
    /// Index of the example in the `test` part.
    pub test_index: usize,
    /// The private label.
    pub label: u32,
    /// The label the attacker used.
    pub attack_label: u32,
    /// The defense's label (`noise 1e-3`, `prune 0.5`).
    pub defense: String,
    /// `||g||` of the true gradient.
    pub gradient_norm: f64,
    /// `||delta||` of the defense's perturbation.
    pub delta_norm: f64,
    /// MSE of the reconstruction (pixels in [0, 1]).
    pub mse: f64,
    /// PSNR in dB.
    pub psnr: f64,
    /// SSIM.
    pub ssim: f64,
    /// `||x_hat - x||`: the quantity I2F predicts.
    pub error_norm: f64,
    /// Gradient distance at the reconstruction.
    pub matching: f64,
    /// The I2F estimate and bound.
    pub i2f: I2fEstimate,
}

/// Means over the examples for one defense setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingSummary {
    /// The defense's label.
    pub defense: String,
    /// Mean MSE.
    pub mse: f64,
    /// Mean PSNR (dB).
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// Mean `||x_hat - x||`.
    pub error_norm: f64,
    /// Mean I2F.
    pub i2f: f64,
    /// Mean lower bound.
    pub lower_bound: f64,
    /// Fraction of examples whose label the attacker got right.
    pub label_accuracy: f64,
    /// I2F vs. the true error across the examples of this setting alone
    /// (the harder question: the overall correlation also ranks settings).
    pub within: Agreement,
}

/// Rank agreement between a predictor and the attack's true error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Spearman rank correlation (None when a side is constant).
    pub spearman: Option<f64>,
    /// Pearson correlation.
    pub pearson: Option<f64>,
    /// Number of (example, defense) pairs.
    pub pairs: usize,
}

impl Agreement {
    fn of(x: &[f64], y: &[f64]) -> Self {
        Self {
            spearman: spearman(x, y),
            pearson: pearson(x, y),
            pairs: x.len(),
        }
    }
}

/// Everything a leakage run measured (`report.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeakageReport {
    /// Recipe name.
    pub name: String,
    /// Recipe seed.
    pub seed: u64,
    /// splitguard version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// Parameters P (length of the shared gradient).
    pub params: usize,
    /// Input size D.
    pub input_len: usize,
    /// Test accuracy of the attacked model (at chance without warm-up).
    pub target_accuracy: f64,
    /// The `leakage:` section as run.
    pub config: LeakageConfig,
    /// `lambda_max(J J^T)` per example.
    pub lambda_max: Vec<LambdaMax>,
    /// One entry per (example, defense).
    pub results: Vec<ExampleResult>,
    /// Means per defense setting.
    pub settings: Vec<SettingSummary>,
    /// I2F vs. the true error over all pairs.
    pub i2f_vs_error: Agreement,
    /// I2F vs. the true error over the pairs with a non-zero perturbation.
    pub i2f_vs_error_perturbed: Agreement,
    /// The lower bound vs. the true error over all pairs.
    pub bound_vs_error: Agreement,
    /// Per-setting attack records (`attack: gradient_inversion`, split 0:
    /// the whole model's gradient), in the shape `report.json` of a run uses.
    pub attacks: Vec<AttackRecord>,
}

/// Progress of a leakage run (the CLI draws it).
pub trait LeakageObserver {
    /// A stage begins (`data`, `warmup`, `attack`, `report`).
    fn stage(&mut self, _name: &str, _detail: &str) {}
    /// One (example, defense) pair finished.
    fn pair_done(&mut self, _done: usize, _total: usize, _result: &ExampleResult) {}
}

impl LeakageObserver for () {}

/// The attacked examples: the first of each class of `test` in turn
/// (0, 1, 2, ... then the second of each class), `n` in all.
pub fn pick_examples(test: &Dataset, n: usize) -> Vec<usize> {
    let mut by_class: Vec<std::collections::VecDeque<usize>> =
        vec![Default::default(); test.num_classes.max(1)];
    for (i, &t) in test.targets.iter().enumerate() {
        by_class[t as usize].push_back(i);
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n && by_class.iter().any(|q| !q.is_empty()) {
        for q in by_class.iter_mut() {
            if out.len() < n
                && let Some(i) = q.pop_front()
            {
                out.push(i);
            }
        }
    }
    out
}

/// Runs `cfg` (the recipe's `leakage:` section) into `out`; `device` must be
/// an autodiff device.
pub fn run_leakage(
    recipe: &Recipe,
    cfg: &LeakageConfig,
    out: &Path,
    device: &Device,
    obs: &mut dyn LeakageObserver,
) -> Result<LeakageReport, Error> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let resolved = serde_norway::to_string(recipe).expect("recipe serializes");
    let path = out.join(crate::pipeline::files::RECIPE);
    write_atomic(&path, resolved.as_bytes()).map_err(|e| Error::io(&path, e))?;

    obs.stage("data", "loading and splitting");
    let splits = prepare_data(recipe)?;
    let shape = splits.test.shape;
    let spec = model_spec(recipe, shape, splits.test.num_classes)?;
    check_blocks(&spec.blocks)?;
    device.seed(recipe.seed);
    let mut model = crate::pipeline::build_model(recipe, &spec, device)?;
    if let Some(scale) = cfg.init_scale {
        model = uniform_init(model, scale, recipe.seed);
    }
    if cfg.warmup_epochs > 0 {
        obs.stage("warmup", &format!("{} epochs", cfg.warmup_epochs));
        let mut tc = recipe.training.clone();
        tc.epochs = cfg.warmup_epochs;
        let run = TrainRun {
            config: &tc,
            seed: recipe.seed,
            split: model.len(),
            checkpoint: None,
            metrics_log: None,
            resume: false,
        };
        model = train(model, &splits.train, &mut [], &run, device, &mut Silent)?.model;
    }
    let inner = device.clone().inner();
    let target_accuracy = Evaluator::new(&model, &inner, 256).accuracy(&splits.test);

    let examples = pick_examples(&splits.test, cfg.examples);
    let settings = cfg.settings();
    let total = examples.len() * settings.len();
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, examples.len().max(1));
    obs.stage(
        "attack",
        &format!(
            "{} examples x {} defenses on {threads} threads",
            examples.len(),
            settings.len()
        ),
    );
    let d: usize = shape.iter().product();
    let jobs: Vec<Job> = examples
        .iter()
        .enumerate()
        .map(|(e, &ti)| Job {
            example: e,
            test_index: ti,
            label: splits.test.targets[ti],
            image: splits.test.image(ti).to_vec(),
            seed: recipe.seed,
        })
        .collect();
    let mut runs: Vec<Option<ExampleRun>> = (0..jobs.len()).map(|_| None).collect();
    let mut first_error: Option<Error> = None;
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (tx, model, device) = (tx.clone(), model.clone(), device.clone());
            let (jobs, settings) = (&jobs, &settings);
            scope.spawn(move || {
                for job in jobs.iter().skip(t).step_by(threads) {
                    let run = attack_example(&model, job, shape, settings, cfg, &device, &tx);
                    if tx.send(Msg::Done(job.example, Box::new(run))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for msg in rx {
            match msg {
                Msg::Pair(r) => {
                    done += 1;
                    obs.pair_done(done, total, &r);
                }
                Msg::Done(e, run) => match *run {
                    Ok(run) => runs[e] = Some(run),
                    Err(err) => {
                        first_error.get_or_insert(err);
                    }
                },
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    let runs: Vec<ExampleRun> = runs
        .into_iter()
        .map(|r| r.expect("expected every example to finish or fail"))
        .collect();
    let params = runs.first().map_or(0, |r| r.params);
    let mut originals: Vec<f32> = Vec::with_capacity(jobs.len() * d);
    let mut recons: Vec<Vec<f32>> = vec![Vec::with_capacity(jobs.len() * d); settings.len()];
    for (job, run) in jobs.iter().zip(&runs) {
        originals.extend(&job.image);
        for (row, rec) in recons.iter_mut().zip(&run.recons) {
            row.extend(rec);
        }
    }
    let lambdas: Vec<LambdaMax> = runs.iter().map(|r| r.lambda.clone()).collect();
    let results: Vec<ExampleResult> = runs.into_iter().flat_map(|r| r.results).collect();

    obs.stage("report", &out.display().to_string());
    let column = |f: fn(&ExampleResult) -> f64, keep: fn(&ExampleResult) -> bool| -> Vec<f64> {
        results.iter().filter(|r| keep(r)).map(f).collect()
    };
    let all = |_: &ExampleResult| true;
    let perturbed = |r: &ExampleResult| r.delta_norm > 0.0;
    let err = |r: &ExampleResult| r.error_norm;
    let summaries: Vec<SettingSummary> = settings
        .iter()
        .map(|s| {
            let label = s.label();
            let rs: Vec<&ExampleResult> = results.iter().filter(|r| r.defense == label).collect();
            let mean = |f: &dyn Fn(&ExampleResult) -> f64| {
                rs.iter().map(|r| f(r)).sum::<f64>() / rs.len().max(1) as f64
            };
            SettingSummary {
                mse: mean(&|r| r.mse),
                psnr: mean(&|r| r.psnr),
                ssim: mean(&|r| r.ssim),
                error_norm: mean(&|r| r.error_norm),
                i2f: mean(&|r| r.i2f.i2f),
                lower_bound: mean(&|r| r.i2f.lower_bound),
                label_accuracy: mean(&|r| f64::from(u8::from(r.attack_label == r.label))),
                within: Agreement::of(
                    &rs.iter().map(|r| r.i2f.i2f).collect::<Vec<_>>(),
                    &rs.iter().map(|r| r.error_norm).collect::<Vec<_>>(),
                ),
                defense: label,
            }
        })
        .collect();
    let attacks = summaries
        .iter()
        .map(|s| AttackRecord {
            attack: "gradient_inversion".into(),
            split: 0,
            mse: Some(s.mse),
            psnr: Some(s.psnr),
            ssim: Some(s.ssim),
            image: Some(files::GRID.into()),
            details: serde_json::json!({
                "defense": s.defense,
                "i2f": s.i2f,
                "i2f_lower_bound": s.lower_bound,
                "error_norm": s.error_norm,
                "label_accuracy": s.label_accuracy,
            }),
            ..AttackRecord::default()
        })
        .collect();
    let report = LeakageReport {
        name: recipe.name.clone(),
        seed: recipe.seed,
        version: env!("CARGO_PKG_VERSION").into(),
        arch: spec.arch.clone(),
        params,
        input_len: d,
        target_accuracy,
        config: cfg.clone(),
        lambda_max: lambdas,
        i2f_vs_error: Agreement::of(&column(|r| r.i2f.i2f, all), &column(err, all)),
        i2f_vs_error_perturbed: Agreement::of(
            &column(|r| r.i2f.i2f, perturbed),
            &column(err, perturbed),
        ),
        bound_vs_error: Agreement::of(&column(|r| r.i2f.lower_bound, all), &column(err, all)),
        results,
        settings: summaries,
        attacks,
    };
    let rows: Vec<&[f32]> = std::iter::once(originals.as_slice())
        .chain(recons.iter().map(Vec::as_slice))
        .collect();
    report::write(&report, &rows, shape, out)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_cycle_through_the_classes() {
        let ds = Dataset {
            name: "t".into(),
            images: vec![0.0; 7],
            shape: [1, 1, 1],
            targets: vec![1, 0, 1, 2, 0, 1, 1],
            num_classes: 3,
            hidden: Vec::new(),
        };
        assert_eq!(pick_examples(&ds, 5), vec![1, 0, 3, 4, 2]);
        assert_eq!(pick_examples(&ds, 20).len(), 7);
    }
}
