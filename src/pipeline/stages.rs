//! The stages of one run, in order (DESIGN section 2): data, train, prune,
//! deploy (choose the split, build the server's view), audit, report. Each
//! takes the typed values of the stages before it and returns its own, so
//! [`super::run_once`] is the list of them and the split is decided in one
//! place ([`deploy`]) for everything after training.

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;

use super::{
    Recording, RunObserver, RunOptions, ServerView, attacker_data, audit_view, build_model,
    feature_rms, files, model_spec, prepare_data, read_records, training_split,
};
use crate::Error;
use crate::attack::{AttackRecord, Floors};
use crate::data::{Dataset, Splits};
use crate::fsutil::write_atomic;
use crate::model::{BlockSpec, ModelSpec, SplitModel};
use crate::partition::{PartitionConfig, PartitionReport};
use crate::prune::{PrunePlan, PruneReport};
use crate::recipe::{ResolvedRecipe, SplitSetting};
use crate::report::{self, Report};
use crate::train::{EpochMetrics, Evaluator, TrainRun, train as train_model};

/// Wall times of the stages, written to `timings.json` (kept out of
/// `report.json`, which must be reproducible).
pub(super) struct Clock {
    started: Instant,
    timings: serde_json::Map<String, serde_json::Value>,
}

impl Clock {
    pub(super) fn start() -> Self {
        Self {
            started: Instant::now(),
            timings: serde_json::Map::new(),
        }
    }

    fn record(&mut self, key: &str, since: Instant) {
        self.timings
            .insert(key.into(), since.elapsed().as_secs_f64().into());
    }

    /// Writes `timings.json` with the total.
    pub(super) fn finish(mut self, out: &Path) -> Result<(), Error> {
        self.record("total_seconds", self.started);
        let path = out.join(files::TIMINGS);
        let text = serde_json::to_string_pretty(&self.timings).expect("json");
        write_atomic(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))
    }
}

/// The data stage's result: the owner's splits, the model's spec, and the
/// split training protects (the recipe's, or the pruning budget's).
pub(super) struct Prepared {
    pub splits: Splits,
    pub spec: ModelSpec,
    pub prune_plan: Option<PrunePlan>,
    pub training_split: usize,
}

/// Loads and splits the data, resolves the model and the training split.
pub(super) fn data(recipe: &ResolvedRecipe, obs: &mut dyn RunObserver) -> Result<Prepared, Error> {
    obs.stage("data", "loading and splitting");
    let splits = prepare_data(recipe)?;
    let spec = model_spec(recipe, splits.train.shape, splits.train.num_classes)?;
    // With `prune:`, the edge FLOPs budget chooses the split (seed 001, PATROL).
    let prune_plan = match &recipe.prune {
        Some(p) => Some(crate::prune::plan(p, &spec)?),
        None => None,
    };
    let split = prune_plan
        .as_ref()
        .map_or_else(|| training_split(recipe, spec.blocks.len()), |p| p.split);
    if !(1..=spec.blocks.len()).contains(&split) {
        return Err(Error::setting(
            "split",
            format!(
                "must be in 1..={} for this model, got {split}",
                spec.blocks.len() - 1
            ),
        ));
    }
    seed_004_baselines_fit(recipe, &splits, &spec, split)?;
    Ok(Prepared {
        splits,
        spec,
        prune_plan,
        training_split: split,
    })
}

/// What only the data and the training split can tell about seed 004's
/// baselines, refused before training rather than after it: the attribute
/// an adversarially trained model hides must be in the data, its adversary
/// (the server part, last block resized) must be buildable, and feature
/// pruning needs a convolution or linear block after the split.
fn seed_004_baselines_fit(
    recipe: &ResolvedRecipe,
    splits: &Splits,
    spec: &ModelSpec,
    split: usize,
) -> Result<(), Error> {
    let defenses = &recipe.training.defenses;
    if let Some(a) = &defenses.attribute_adversarial {
        // The data's attributes are known only now for some sources.
        let have: Vec<String> = splits.train.hidden.iter().map(|h| h.name.clone()).collect();
        if let Some((field, msg)) = a.problems(Some(&have)).into_iter().next() {
            return Err(Error::setting(
                format!("training.defenses.attribute_adversarial.{field}"),
                msg,
            ));
        }
        crate::attack::attribute::attacker_specs(&spec.blocks[split..], 2)
            .map_err(|e| Error::setting("training.defenses.attribute_adversarial", e))?;
    }
    if defenses
        .feature_pruning
        .as_ref()
        .is_some_and(|p| p.active())
        && !matches!(
            spec.blocks.get(split),
            Some(BlockSpec::Conv(_) | BlockSpec::Linear(_))
        )
    {
        return Err(Error::setting(
            "training.defenses.feature_pruning",
            format!(
                "needs a convolution or linear block right after the split; block {} (after split {split}) is neither",
                split + 1
            ),
        ));
    }
    Ok(())
}

/// The trained model (pruned, when the recipe prunes), its spec, training
/// history and pruning report.
pub(super) struct Fitted {
    pub model: SplitModel,
    pub spec: ModelSpec,
    pub history: Vec<EpochMetrics>,
    pub prune: Option<PruneReport>,
}

/// Trains the model with the recipe's defenses (resuming from the folder's
/// checkpoint with `--resume`).
pub(super) fn train(
    recipe: &ResolvedRecipe,
    data: &Prepared,
    opts: &RunOptions,
    device: &Device,
    obs: &mut dyn RunObserver,
    clock: &mut Clock,
) -> Result<Fitted, Error> {
    let out = &opts.out_dir;
    obs.stage(
        "train",
        &format!("{} on {} images", data.spec.arch, data.splits.train.len()),
    );
    let t0 = Instant::now();
    device.seed(recipe.seed);
    let model = build_model(recipe, &data.spec, device)?;
    let mut defenses = recipe.training.defenses.build(recipe.seed);
    let trained = train_model(
        model,
        &data.splits.train,
        &mut defenses,
        &TrainRun {
            config: &recipe.training,
            seed: recipe.seed,
            split: data.training_split,
            checkpoint: Some(out.join(files::MODEL)),
            metrics_log: Some(out.join(files::METRICS)),
            resume: opts.resume,
        },
        device,
        obs,
    )?;
    clock.record("train_seconds", t0);
    Ok(Fitted {
        model: trained.model,
        spec: data.spec.clone(),
        history: trained.history,
        prune: None,
    })
}

/// Prunes the trained model to the edge budget (seed 001), when the recipe
/// has `prune:`; otherwise returns it unchanged.
pub(super) fn prune(
    recipe: &ResolvedRecipe,
    data: &Prepared,
    fitted: Fitted,
    opts: &RunOptions,
    device: &Device,
    obs: &mut dyn RunObserver,
    clock: &mut Clock,
) -> Result<Fitted, Error> {
    let (Some(cfg), Some(plan)) = (&recipe.prune, &data.prune_plan) else {
        return Ok(fitted);
    };
    obs.stage(
        "prune",
        &format!(
            "{:?} to {} edge FLOPs at split {}",
            cfg.method, plan.budget, plan.split
        ),
    );
    let t0 = Instant::now();
    let pruned = crate::prune::run_prune(
        fitted.model,
        &data.splits,
        &crate::prune::PruneRun {
            config: cfg,
            training: &recipe.training,
            plan,
            seed: recipe.seed,
            out_dir: &opts.out_dir,
            resume: opts.resume,
        },
        device,
        obs,
    )?;
    clock.record("prune_seconds", t0);
    Ok(Fitted {
        spec: pruned.model.spec()?,
        model: pruned.model,
        history: fitted.history,
        prune: Some(pruned.report),
    })
}

/// Where and how the model is deployed: the split (decided here, once),
/// the golden-partition analysis behind it, what the server receives there
/// and the target accuracy it computes with.
pub(super) struct Deployment {
    pub split: usize,
    pub partition: Option<PartitionReport>,
    pub view: ServerView,
    pub target_accuracy: f64,
    /// What the edge sends per query once obfuscated (mean over `test`).
    pub bytes_per_query: Option<u64>,
}

/// Chooses the deployment split (the training split, or the golden
/// partition's with `split: auto`) and builds the server's view there,
/// writing the logs of the defenses learned on the trained model.
pub(super) fn deploy(
    recipe: &ResolvedRecipe,
    data: &Prepared,
    fitted: &Fitted,
    out: &Path,
    device: &Device,
    obs: &mut dyn RunObserver,
) -> Result<Deployment, Error> {
    let inner = device.clone().inner();
    let model = &fitted.model;
    let plain_accuracy = Evaluator::new(model, &inner, 256).accuracy(&data.splits.test);
    let auto = matches!(recipe.split, Some(SplitSetting::Auto(_)));
    let partition = match (&recipe.partition, auto) {
        (Some(cfg), _) => Some(cfg.clone()),
        (None, true) => Some(PartitionConfig::default()),
        (None, false) => None,
    };
    let partition = match partition {
        Some(cfg) => {
            obs.stage("partition", "layer analysis for the golden partition zone");
            // The defender's choice: on the owner's data, never the attacker's.
            Some(crate::partition::analyse(
                model,
                &data.splits.train,
                &cfg,
                recipe.seed,
                &inner,
            )?)
        }
        None => None,
    };
    let split = match (&partition, auto) {
        (Some(p), true) => p.chosen.or(p.nearest).ok_or_else(|| {
            Error::setting(
                "split",
                format!("auto found no split to choose: {}", p.reason),
            )
        })?,
        _ => data.training_split,
    };
    obs.stage("audit", "attacking the split features");
    let view = ServerView::new(recipe, model, &data.splits, split, &inner)?;
    for (log, name) in [
        (&view.shredder, files::SHREDDER),
        (&view.feature_pruning, files::FEATURE_PRUNING),
    ] {
        if let Some(log) = log {
            let path = out.join(name);
            let text = serde_json::to_string_pretty(log).expect("json");
            write_atomic(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))?;
        }
    }
    let obf = view.obfuscation.as_ref();
    let target_accuracy = view
        .target_accuracy
        .unwrap_or(obf.map_or(plain_accuracy, |o| o.target_accuracy));
    let bytes_per_query = obf.map(|o| o.bytes_per_query.round() as u64);
    Ok(Deployment {
        split,
        partition,
        view,
        target_accuracy,
        bytes_per_query,
    })
}

/// The audit's results: every attack's record, judged against the floors.
pub(super) struct Audited {
    pub attacks: Vec<AttackRecord>,
    pub floors: Floors,
}

/// Attacks what the server receives (resuming from the records already in
/// `audit.jsonl` with `--resume`), runs the obfuscation study when the
/// recipe has one, and judges every record against the floors.
/// The obfuscation deployment moves into the study (its last use).
#[allow(clippy::too_many_arguments)]
pub(super) fn audit(
    recipe: &ResolvedRecipe,
    data: &Prepared,
    model: &SplitModel,
    deployment: &mut Deployment,
    opts: &RunOptions,
    device: &Device,
    obs: &mut dyn RunObserver,
    clock: &mut Clock,
) -> Result<Audited, Error> {
    let out = &opts.out_dir;
    let t0 = Instant::now();
    let attacker: Dataset = attacker_data(recipe, &data.splits)?;
    let audit_path = out.join(files::AUDIT);
    let done = if opts.resume {
        read_records(&audit_path)
    } else {
        Vec::new()
    };
    let mut rec = Recording {
        inner: obs,
        path: audit_path,
        records: done.clone(),
        seconds: Vec::new(),
        error: None,
    };
    let test = &data.splits.test;
    // The floors need no random draw, so judging before the study below
    // gives the numbers judging after it did.
    let audited = audit_view(
        model,
        (&attacker, test),
        recipe,
        &deployment.view,
        out,
        device,
        &done,
        &mut rec,
    )?;
    if let Some(s) = audited.reidentifier_seconds {
        clock
            .timings
            .insert("reidentifier_seconds".into(), s.into());
    }
    if let (Some(cfg), Some(o)) = (&recipe.obfuscation, deployment.view.obfuscation.take()) {
        rec.inner
            .stage("obfuscation", "signal content and attribute-attack study");
        crate::attack::obfuscation_study::finish(
            cfg,
            o,
            model,
            (&data.splits.train, &attacker),
            test,
            &recipe.audit,
            recipe.seed,
            out,
            device,
        )?;
    }
    if let Some(e) = rec.error {
        return Err(e);
    }
    clock.timings.insert("attacks".into(), rec.seconds.into());
    clock.record("audit_seconds", t0);
    Ok(Audited {
        attacks: audited.records,
        floors: audited.floors,
    })
}

/// Writes `report.json`, `report.md` and `report.html`.
#[allow(clippy::too_many_arguments)]
pub(super) fn report(
    recipe: &ResolvedRecipe,
    data: &Prepared,
    fitted: Fitted,
    deployment: Deployment,
    audited: Audited,
    out: &Path,
    device: &Device,
    obs: &mut dyn RunObserver,
) -> Result<Report, Error> {
    obs.stage("report", "writing report.json and report.md");
    let inner = device.clone().inner();
    let split = deployment.split;
    let mut report = Report::new(
        recipe,
        &fitted.spec,
        &data.splits,
        split,
        deployment.target_accuracy,
        &fitted.history,
        audited.attacks,
    )?;
    if let Some(bytes) = deployment.bytes_per_query {
        report.bytes_per_query = bytes;
    }
    report.partition = deployment.partition;
    report.prune = fitted.prune;
    report.floors = Some(audited.floors);
    report.edge_lipschitz = crate::defense::lipschitz::block_estimates(&fitted.model, split);
    report.feature_rms = Some(feature_rms(&fitted.model, &data.splits.test, split, &inner));
    report::write_all(&report, out)?;
    Ok(report)
}
