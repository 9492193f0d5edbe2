//! One `splitguard run`: data, model, training with defenses, audit, report
//! (DESIGN section 2). Each stage reads and writes plain files in the run
//! folder, so a killed run resumes: training from its last epoch checkpoint,
//! the audit from the attacks already recorded.

mod lock;
mod repeats;
mod stages;

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::Error;
use crate::attack::{AttackRecord, AuditObserver, Reidentifier, run_audit_with};
use crate::data::{self, Dataset, Splits};
use crate::fsutil::write_atomic;
use crate::model::{ModelSpec, SplitModel, zoo};
use crate::recipe::{
    AttackerData, DataConfig, DataSource, LoadedRecipe, Recipe, ResolvedRecipe, SplitSetting,
};
use crate::report::{self, RepeatsReport, Report};
use crate::run_folder::RunFolderError;
use crate::train::{Evaluator, TrainObserver};
pub use lock::RunLock;
pub use repeats::repeat_seed;

/// File names inside a run folder (defined below every stage that writes
/// or reads them, in [`crate::run_folder`]).
pub use crate::run_folder as files;

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run folder.
    pub out_dir: PathBuf,
    /// Continue a run in `out_dir` instead of refusing to overwrite it.
    pub resume: bool,
}

/// Progress of a whole run: training and audit events plus stage changes.
pub trait RunObserver: TrainObserver + AuditObserver {
    /// A stage begins (`data`, `train`, `audit`, `report`).
    fn stage(&mut self, _name: &str, _detail: &str) {}
}

/// Loads the data source of a recipe (before splitting); with `limit`, a
/// subsample of that many images stratified by the target and every hidden
/// attribute, drawn with `seed` (the recipe's), so that every command that
/// re-opens a run re-creates the same images.
pub fn load_source(cfg: &DataConfig, seed: u64) -> Result<Dataset, Error> {
    let ds = match &cfg.source {
        DataSource::EmbeddedMnist => data::embedded_mnist()?,
        DataSource::Idx {
            images,
            labels,
            classes,
        } => data::load_idx(images, labels, *classes)?,
        DataSource::Orl { dir, downscale } => match downscale.unwrap_or(1) {
            1 => data::load_orl(dir)?,
            f => data::load_orl_scaled(dir, f)?,
        },
        DataSource::Folder { dir, labels } => data::load_image_folder(dir, labels)?,
        DataSource::Cifar10 { dir, files } => data::load_cifar10(dir, *files)?,
        DataSource::Cifar100 { dir, labels, files } => data::load_cifar100(dir, *labels, *files)?,
    };
    Ok(match cfg.limit {
        Some(n) => data::stratified_subsample(&ds, n, seed),
        None => ds,
    })
}

/// Loads and splits the recipe's data into train / aux / test.
pub fn prepare_data(recipe: &Recipe) -> Result<Splits, Error> {
    let ds = load_source(&recipe.data, recipe.seed)?;
    Ok(data::stratified_split(
        &ds,
        recipe.data.fractions,
        recipe.seed,
    )?)
}

/// The model spec a recipe asks for, for data of this shape.
pub fn model_spec(recipe: &Recipe, input: [usize; 3], classes: usize) -> Result<ModelSpec, Error> {
    if let Some(given) = recipe.model.input
        && given != input
    {
        return Err(Error::setting(
            "model.input",
            format!("{given:?}, but the data's images are {input:?}"),
        ));
    }
    let mut spec = match &recipe.model.blocks {
        Some(blocks) => ModelSpec {
            vae: None,
            arch: recipe.model.arch.clone(),
            input,
            blocks: blocks.clone(),
        },
        None => zoo::spec_for(&recipe.model.arch, input, classes)?,
    };
    if recipe.training.defenses.wants_vae_head() {
        // The VAE head sits at the deployment split (seed 004; model::vae).
        spec.vae = Some(crate::model::VaeSpec {
            at: training_split(recipe, spec.len()),
        });
    }
    let out = spec.output_shape()?;
    if out != vec![classes] {
        return Err(Error::setting(
            "model",
            format!(
                "the last block outputs {out:?} but the data has {classes} classes; end with a linear block of {classes} units"
            ),
        ));
    }
    Ok(spec)
}

/// The model spec of a recipe, without splitting its data: a `blocks` model
/// with `model.input` is taken as written; otherwise the input shape and the
/// class count come from the data source.
pub fn recipe_spec(recipe: &Recipe) -> Result<ModelSpec, Error> {
    if let (Some(input), Some(blocks)) = (recipe.model.input, &recipe.model.blocks) {
        // The class count is what the last block outputs.
        let infos = crate::model::block_infos(&input, blocks)?;
        let out = infos.last().map(|b| b.output.clone()).unwrap_or_default();
        let [classes] = out[..] else {
            return Err(Error::setting(
                "model.blocks",
                format!(
                    "the last block outputs {out:?}; end with a linear block of one unit per class"
                ),
            ));
        };
        return model_spec(recipe, input, classes);
    }
    let ds = load_source(&recipe.data, recipe.seed)?;
    model_spec(recipe, ds.shape, ds.num_classes)
}

/// Builds the recipe's model on `device`: initialised from the device's
/// seeded generator, then, with `model.weights`, loaded from the user's file
/// (which must fit the spec exactly; see [`crate::model::load_weights`]).
pub fn build_model(
    recipe: &Recipe,
    spec: &ModelSpec,
    device: &Device,
) -> Result<SplitModel, Error> {
    let model = SplitModel::new(spec, device)?;
    Ok(match &recipe.model.weights {
        Some(w) => crate::model::load_weights(model, w)?,
        None => model,
    })
}

/// The split the training defenses protect: the recipe's fixed split, or
/// (for `split: auto`, where no defense needs one) the whole model.
pub fn training_split(recipe: &Recipe, blocks: usize) -> usize {
    match recipe.split {
        None => 1,
        Some(SplitSetting::At(k)) => k,
        Some(SplitSetting::Auto(_)) => blocks,
    }
}

/// The images the learning attackers train on (DESIGN 9.1, seed 002's
/// "enhanced inversion" with other auxiliary data).
pub fn attacker_data(recipe: &Recipe, splits: &Splits) -> Result<Dataset, Error> {
    let aux = &splits.aux;
    let ds = match &recipe.audit.attacker_data {
        AttackerData::Aux => aux.clone(),
        AttackerData::AuxFraction { fraction } => data::stratified_subsample(
            aux,
            ((aux.len() as f64 * fraction).round() as usize).max(2),
            recipe.seed,
        ),
        AttackerData::Dataset { source, limit } => load_source(
            &DataConfig {
                source: source.clone(),
                fractions: [1.0, 0.0, 0.0],
                limit: *limit,
            },
            recipe.seed,
        )?,
    };
    if ds.shape != aux.shape {
        return Err(Error::setting(
            "audit.attacker_data",
            format!(
                "images of shape {:?} do not match the victims' {:?}",
                ds.shape, aux.shape
            ),
        ));
    }
    Ok(ds)
}

fn read_records(path: &Path) -> Vec<AttackRecord> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Appends finished attack records to `audit.jsonl` while forwarding events.
struct Recording<'a> {
    inner: &'a mut dyn RunObserver,
    path: PathBuf,
    records: Vec<AttackRecord>,
    seconds: Vec<serde_json::Value>,
    error: Option<Error>,
}

impl AuditObserver for Recording<'_> {
    fn attack_start(&mut self, attack: &str, split: usize) {
        self.inner.attack_start(attack, split);
    }
    fn attack_end(&mut self, record: &AttackRecord, seconds: f64) {
        self.seconds.push(serde_json::json!({
            "attack": record.attack,
            "split": record.split,
            "seconds": seconds,
        }));
        self.records.push(record.clone());
        let text: String = self
            .records
            .iter()
            .map(|r| serde_json::to_string(r).expect("record serializes") + "\n")
            .collect();
        if let Err(e) = write_atomic(&self.path, text.as_bytes()) {
            self.error.get_or_insert(Error::io(&self.path, e));
        }
        self.inner.attack_end(record, seconds);
    }
}

/// What a run produced: one report, or with `repeats: N > 1` the
/// aggregate over its repeats (each repeat's own report is in `rep_i/`).
#[derive(Clone, Debug)]
pub enum RunOutcome {
    /// A recipe with `repeats: 1`.
    Single(Box<Report>),
    /// A recipe with `repeats: N > 1`.
    Repeats(Box<RepeatsReport>),
}

impl RunOutcome {
    /// Target accuracy on `test` (the mean over repeats).
    pub fn target_accuracy(&self) -> f64 {
        match self {
            RunOutcome::Single(r) => r.target_accuracy,
            RunOutcome::Repeats(r) => r.target_accuracy,
        }
    }

    /// The deployment split (the most common one over repeats).
    pub fn split(&self) -> usize {
        match self {
            RunOutcome::Single(r) => r.split,
            RunOutcome::Repeats(r) => r.split,
        }
    }

    /// The report of a single run (`None` for repeats).
    pub fn into_single(self) -> Option<Report> {
        match self {
            RunOutcome::Single(r) => Some(*r),
            RunOutcome::Repeats(_) => None,
        }
    }
}

/// Runs a whole recipe into `opts.out_dir`: once, or with `repeats: N > 1`
/// N times from derived seeds into `rep_0/ .. rep_{N-1}/` (see
/// [`repeat_seed`]), then the aggregate report at the top of the folder.
pub fn run(
    loaded: &LoadedRecipe,
    opts: &RunOptions,
    device: &Device,
    obs: &mut dyn RunObserver,
) -> Result<RunOutcome, Error> {
    // Held until this function returns, however it returns.
    let _lock = RunLock::acquire(&opts.out_dir)?;
    match loaded.recipe.repeats {
        n if n > 1 => {
            repeats::run(loaded, opts, device, obs).map(|r| RunOutcome::Repeats(Box::new(r)))
        }
        _ => run_once(loaded, opts, device, obs).map(|r| RunOutcome::Single(Box::new(r))),
    }
}

/// Claims a run folder for `recipe`: a new run never overwrites another's
/// results; a resumed run must be the same recipe, except for the fields
/// that may change on resume (see [`resumable_change`]). A changed recipe
/// is written back, so the folder says what the rest of the run used.
fn claim_folder(recipe: &ResolvedRecipe, out: &Path, resume: bool) -> Result<(), Error> {
    let resolved = serde_norway::to_string(recipe).expect("recipe serializes");
    let recipe_path = out.join(files::RECIPE);
    if recipe_path.exists() {
        if !resume {
            return Err(RunFolderError::Occupied {
                dir: out.to_path_buf(),
                what: "a run",
                hint: "pass --resume to continue it, or --out to write elsewhere",
            }
            .into());
        }
        let previous =
            std::fs::read_to_string(&recipe_path).map_err(|e| Error::io(&recipe_path, e))?;
        if previous == resolved {
            return Ok(());
        }
        if !resumable_change(&previous, recipe) {
            return Err(RunFolderError::RecipeChanged {
                recipe: recipe_path,
                may_change: RESUMABLE_FIELDS.join(", "),
            }
            .into());
        }
    }
    write_atomic(&recipe_path, resolved.as_bytes()).map_err(|e| Error::io(&recipe_path, e))
}

/// The recipe fields `--resume` may change: learning rates, which affect
/// only the steps still to come (the optimiser state, the checkpoints and
/// the defenses' states do not depend on them). Anything else is a
/// different recipe.
pub const RESUMABLE_FIELDS: [&str; 3] = [
    "training.optimizer.lr",
    "prune.mask_lr",
    "prune.fine_tune_lr",
];

/// True when `recipe` differs from the `previous` resolved recipe only in
/// [`RESUMABLE_FIELDS`].
fn resumable_change(previous: &str, recipe: &Recipe) -> bool {
    let Ok(old) = serde_norway::from_str::<Recipe>(previous) else {
        return false;
    };
    let mut same = recipe.clone();
    same.training.optimizer = same.training.optimizer.with_lr(old.training.optimizer.lr());
    if let (Some(p), Some(o)) = (same.prune.as_mut(), old.prune.as_ref()) {
        p.fine_tune_lr = o.fine_tune_lr;
        p.mask_lr = o.mask_lr;
    }
    serde_norway::to_string(&same).is_ok_and(|text| text == previous)
}

/// On resume, what a run folder holds beyond an unfinished training
/// (pruning, attack records, reports) belongs to a model that is no longer
/// there (a deleted or incomplete `model.sgck` means training starts or
/// goes on): removed, so it is made again for the model this run trains.
fn discard_stale(recipe: &ResolvedRecipe, out: &Path) -> Result<(), Error> {
    let trained = crate::model::Checkpoint::read_meta(&out.join(files::MODEL))
        .is_ok_and(|m| m.epoch >= recipe.training.epochs);
    if trained {
        return Ok(());
    }
    use crate::prune::stage::{MASK_METRICS, MASKS, PRUNE_METRICS, PRUNE_REPORT, PRUNED_MODEL};
    for name in [
        files::AUDIT,
        MASKS,
        MASK_METRICS,
        PRUNED_MODEL,
        PRUNE_REPORT,
        PRUNE_METRICS,
        files::REPORT_JSON,
        files::REPORT_MD,
        files::REPORT_HTML,
    ] {
        let path = out.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(())
}

/// Runs a recipe once (its `seed`, ignoring `repeats`) into `opts.out_dir`.
fn run_once(
    loaded: &LoadedRecipe,
    opts: &RunOptions,
    device: &Device,
    obs: &mut dyn RunObserver,
) -> Result<Report, Error> {
    let (recipe, out) = (&loaded.recipe, opts.out_dir.as_path());
    let mut clock = stages::Clock::start();
    claim_folder(recipe, out, opts.resume)?;
    if opts.resume {
        discard_stale(recipe, out)?;
    }
    let data = stages::data(recipe, obs)?;
    let fitted = stages::train(recipe, &data, opts, device, obs, &mut clock)?;
    let fitted = stages::prune(recipe, &data, fitted, opts, device, obs, &mut clock)?;
    let mut deployment = stages::deploy(recipe, &data, &fitted, out, device, obs)?;
    let model = &fitted.model;
    let audited = stages::audit(
        recipe,
        &data,
        model,
        &mut deployment,
        opts,
        device,
        obs,
        &mut clock,
    )?;
    let report = stages::report(recipe, &data, fitted, deployment, audited, out, device, obs)?;
    clock.finish(out)?;
    Ok(report)
}

/// RMS of the edge's features at split `k` over `ds`.
fn feature_rms(model: &SplitModel, ds: &Dataset, k: usize, device: &Device) -> f64 {
    let (z, _) = Evaluator::new(model, device, 256).features(ds, k);
    let ss: f64 = z.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (ss / z.len().max(1) as f64).sqrt()
}

/// What the server receives: the edge's features at every split, and at the
/// deployment split the run's split defenses (noise, dropout, top-k: what
/// the edge applies before sending, as in training) followed by its
/// obfuscation (seed 004), resolved and calibrated exactly as the run does.
/// `run`, `attack` and `export-features` all attack or export through this
/// one view (the VAE mean, where the model has a VAE head, is already what
/// the edge model outputs).
pub struct ServerView {
    /// The deployment split.
    pub split: usize,
    /// The split defenses at `split`, when the recipe has active ones.
    pub at_split: Option<crate::defense::AtSplit>,
    /// The obfuscation at `split`, when the recipe has one.
    pub obfuscation: Option<crate::obfuscate::deploy::Deployment>,
    /// Target accuracy on `test` when the server computes on what this view
    /// sends, measured when split defenses are active (else the obfuscation
    /// measures it, or the plain model's accuracy stands).
    pub target_accuracy: Option<f64>,
    /// How Shredder's noise was learned, when the recipe has it: per epoch
    /// the task loss and `mean |n|`, and the fresh Laplace scale.
    pub shredder: Option<serde_json::Value>,
    /// How feature pruning was applied, when the recipe has it: the values
    /// kept of each example's, and the server's fine-tuning loss per epoch.
    pub feature_pruning: Option<serde_json::Value>,
}

impl ServerView {
    /// The view of `model` deployed at `split` under `recipe`: the
    /// obfuscation is calibrated, and relative noise scales measured, on the
    /// owner's `train` data (the defender never uses the attacker's data);
    /// the split defenses draw from the recipe's seed. `device` is an
    /// inference device.
    pub fn new(
        recipe: &Recipe,
        model: &SplitModel,
        splits: &Splits,
        split: usize,
        device: &Device,
    ) -> Result<Self, Error> {
        let defenses = &recipe.training.defenses;
        let mut perturbations: Vec<_> = defenses
            .split_perturbations()
            .into_iter()
            .filter(|p| p.active())
            .collect();
        let shredder = defenses.shredder.as_ref().filter(|s| s.active());
        let pruning = defenses.feature_pruning.as_ref().filter(|p| p.active());
        let mut shredder_log = None;
        let mut pruning_log = None;
        let mut server = None;
        let at_split = if !perturbations.is_empty() || shredder.is_some() || pruning.is_some() {
            let (mut owner, shape) =
                Evaluator::new(model, device, 256).features(&splits.train, split);
            let dim: usize = shape.iter().product();
            let mut pruned = None;
            if let Some(cfg) = pruning {
                // The edge's pruning and the server's fine-tuning, rebuilt
                // from the trained model and the recipe's seed wherever the
                // deployment is built.
                let p = crate::defense::feature_pruning::prune_and_fine_tune(
                    model,
                    split,
                    crate::defense::feature_pruning::Kept::Fraction(cfg.keep),
                    cfg,
                    &crate::defense::OwnerFeatures::of(&owner, &shape, &splits.train),
                    recipe.seed,
                    device,
                )?;
                p.features.apply(&mut owner);
                pruning_log = Some(serde_json::json!({
                    "split": split,
                    "kept_values": p.features.kept(),
                    "of_values": dim,
                    "fine_tune_loss": p.history,
                }));
                server = Some(p.model);
                pruned = Some(p.features);
            }
            let frozen = server.as_ref().unwrap_or(model);
            let std = crate::defense::at_split::std_of(&owner);
            if let Some(cfg) = shredder {
                // Learned on the frozen model, from the recipe's seed, so
                // every command that builds this view gets the same noise.
                let noise = crate::defense::shredder::learn_noise(
                    cfg,
                    frozen,
                    split,
                    &crate::defense::OwnerFeatures::of(&owner, &shape, &splits.train),
                    &perturbations,
                    recipe.seed,
                    device,
                )?;
                shredder_log = Some(serde_json::json!({
                    "split": split,
                    "fresh_scale": noise.fresh_scale,
                    "mean_abs_noise": noise.history.iter().map(|h| h.1).collect::<Vec<_>>(),
                    "task_loss": noise.history.iter().map(|h| h.0).collect::<Vec<_>>(),
                }));
                perturbations.insert(0, Box::new(noise));
            }
            if let Some(p) = pruned {
                perturbations.insert(0, Box::new(p));
            }
            crate::defense::AtSplit::new(perturbations, dim, std, recipe.seed)
        } else {
            None
        };
        let obfuscation = match &recipe.obfuscation {
            Some(cfg) => Some(crate::obfuscate::deploy::deploy(
                cfg,
                model,
                &splits.train,
                &splits.test,
                split,
                device,
            )?),
            None => None,
        };
        let mut view = Self {
            split,
            at_split,
            obfuscation,
            target_accuracy: None,
            shredder: shredder_log,
            feature_pruning: pruning_log,
        };
        if view.at_split.is_some() {
            let test = &splits.test;
            let (z, shape) = Evaluator::new(model, device, 256).features(test, split);
            let sent = view.apply(split, z)?;
            view.target_accuracy = Some(crate::obfuscate::stage::server_accuracy(
                server.as_ref().unwrap_or(model),
                &sent,
                &shape,
                split,
                &test.targets,
                test.num_classes,
                device,
            ));
        }
        Ok(view)
    }

    /// What the server receives for flattened edge features `z` of split `k`.
    pub fn apply(&self, k: usize, z: Vec<f32>) -> Result<Vec<f32>, Error> {
        if k != self.split {
            return Ok(z);
        }
        let z = match &self.at_split {
            Some(a) => a.apply(z),
            None => z,
        };
        match &self.obfuscation {
            Some(o) => o.apply(z),
            None => Ok(z),
        }
    }
}

/// Re-attacks a finished run through its server view (`splitguard attack`):
/// `recipe` is the run's recipe with any new `audit` settings; records go
/// to `out` with their pictures, judged against the floors.
pub fn attack_run(
    run: &OpenedRun,
    recipe: &Recipe,
    out: &Path,
    device: &Device,
    observer: &mut dyn AuditObserver,
) -> Result<Vec<AttackRecord>, Error> {
    let inner = device.clone().inner();
    let attacker = attacker_data(recipe, &run.splits)?;
    let view = ServerView::new(recipe, &run.model, &run.splits, run.split, &inner)?;
    let audited = audit_view(
        &run.model,
        (&attacker, &run.splits.test),
        recipe,
        &view,
        out,
        device,
        &[],
        observer,
    )?;
    Ok(audited.records)
}

/// What [`audit_view`] found.
struct ViewAudit {
    /// Every attack's record, judged against the floors.
    records: Vec<AttackRecord>,
    /// The floors.
    floors: crate::attack::Floors,
    /// Seconds the re-identifier took to train, when the audit has one.
    reidentifier_seconds: Option<f64>,
}

/// Attacks what `view` sends (the audit's re-identifier first, when it has
/// one; the attacks in `done` are taken as recorded), then measures the
/// floors of `model` (attacker data, queries) and judges every record
/// against them (see [`crate::attack::floors`]): the audit of `run` and of
/// `attack` alike.
#[allow(clippy::too_many_arguments)]
fn audit_view(
    model: &SplitModel,
    (attacker, test): (&Dataset, &Dataset),
    recipe: &Recipe,
    view: &ServerView,
    out: &Path,
    device: &Device,
    done: &[AttackRecord],
    observer: &mut dyn AuditObserver,
) -> Result<ViewAudit, Error> {
    let started = std::time::Instant::now();
    let reid = Reidentifier::for_audit(model, attacker, test, &recipe.audit, recipe.seed, device)?;
    let reidentifier_seconds = reid.as_ref().map(|_| started.elapsed().as_secs_f64());
    let mut records = run_audit_with(
        model,
        attacker,
        test,
        &recipe.audit,
        recipe.seed,
        out,
        device,
        done,
        observer,
        reid.as_ref(),
        &|k, z| view.apply(k, z),
    )?;
    let inner = device.clone().inner();
    let eval = Evaluator::new(model, &inner, 256);
    let floors = crate::attack::measure_floors(attacker, test, recipe.seed, &eval, reid.as_ref())?;
    crate::attack::judge_against_floors(&mut records, &floors);
    Ok(ViewAudit {
        records,
        floors,
        reidentifier_seconds,
    })
}

/// A finished (or partly finished) run folder, opened for later commands.
pub struct OpenedRun {
    /// The recipe the run used.
    pub recipe: ResolvedRecipe,
    /// The trained model.
    pub model: SplitModel,
    /// The data parts, re-created from the recipe and seed.
    pub splits: Splits,
    /// The deployment split: `split` of the run's `report.json` when the run
    /// finished, else the split its training protected.
    pub split: usize,
    /// The folder held shared while it is open, so no `run` rewrites it
    /// under the command reading it (see [`RunLock::share`]).
    _lock: Option<RunLock>,
}

/// The deployment split of a run folder (see [`OpenedRun::split`]).
fn deployed_split(dir: &Path, recipe: &Recipe, model: &SplitModel) -> usize {
    std::fs::read_to_string(dir.join(files::REPORT_JSON))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("split")?.as_u64())
        .map(|k| k as usize)
        .filter(|k| model.split_points().contains(k))
        .unwrap_or_else(|| training_split(recipe, model.len()).min(model.len().saturating_sub(1)))
}

/// Checks that a run folder's checkpoint belongs to its recipe: the same
/// architecture (`spec`, from the recipe and the data) and the same seed.
fn check_agrees(
    dir: &Path,
    ckpath: &Path,
    meta: &crate::model::CheckpointMeta,
    spec: Option<&ModelSpec>,
    seed: u64,
) -> Result<(), Error> {
    let rpath = dir.join(files::RECIPE);
    let disagree = |what: String| {
        Error::from(RunFolderError::Disagrees {
            dir: dir.to_path_buf(),
            what,
        })
    };
    if let Some(spec) = spec
        && &meta.spec != spec
    {
        return Err(disagree(format!(
            "{} holds '{}' with {} blocks, {} describes '{}' with {} blocks (or the block sizes differ)",
            ckpath.display(),
            meta.spec.arch,
            meta.spec.blocks.len(),
            rpath.display(),
            spec.arch,
            spec.blocks.len()
        )));
    }
    match meta.extra.get("seed").and_then(|v| v.as_u64()) {
        Some(s) if s == seed => Ok(()),
        Some(s) => Err(disagree(format!(
            "{} was trained with seed {s}, {} says seed {seed}",
            ckpath.display(),
            rpath.display()
        ))),
        None => Err(disagree(format!(
            "{} records no seed to check against seed {seed} of {}",
            ckpath.display(),
            rpath.display()
        ))),
    }
}

/// Opens a run folder: its resolved recipe, model checkpoint and data. A
/// checkpoint that does not belong to the recipe (another architecture,
/// another seed) is refused.
pub fn open_run(dir: &Path, device: &Device) -> Result<OpenedRun, Error> {
    let rpath = dir.join(files::RECIPE);
    if !rpath.exists() {
        return Err(RunFolderError::NotARun {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    let lock = RunLock::share(dir)?;
    let loaded = crate::recipe::from_path(&rpath, &[])?;
    if loaded.recipe.repeats > 1 {
        return Err(RunFolderError::Repeats {
            dir: dir.to_path_buf(),
            repeats: loaded.recipe.repeats,
            example: dir.join(report::repeats::rep_dir(0)),
        }
        .into());
    }
    let mpath = dir.join(files::MODEL);
    if !mpath.exists() {
        return Err(RunFolderError::Unfinished {
            path: dir.to_path_buf(),
            what: format!(
                "the run has no trained model yet ({} missing)",
                files::MODEL
            ),
        }
        .into());
    }
    let ck = crate::model::Checkpoint::load(&mpath, device)?;
    let splits = prepare_data(&loaded.recipe)?;
    let spec = model_spec(&loaded.recipe, splits.train.shape, splits.train.num_classes)?;
    check_agrees(dir, &mpath, &ck.meta, Some(&spec), loaded.recipe.seed)?;
    if loaded.recipe.prune.is_some() {
        // The deployed model is the pruned one.
        let pruned = crate::prune::load_pruned(dir, device)?.ok_or_else(|| {
            Error::from(RunFolderError::Unfinished {
                path: dir.to_path_buf(),
                what: format!(
                    "the run has not finished pruning ({} missing); finish it with `splitguard run {} --out {} --resume`",
                    crate::prune::stage::PRUNE_REPORT,
                    rpath.display(),
                    dir.display()
                ),
            })
        })?;
        let ppath = dir.join(crate::prune::stage::PRUNED_MODEL);
        let pmeta = crate::model::Checkpoint::read_meta(&ppath)?;
        check_agrees(dir, &ppath, &pmeta, None, loaded.recipe.seed)?;
        let split = deployed_split(dir, &loaded.recipe, &pruned.model);
        return Ok(OpenedRun {
            recipe: loaded.recipe,
            model: pruned.model,
            splits,
            split,
            _lock: lock,
        });
    }
    if ck.meta.epoch < loaded.recipe.training.epochs {
        return Err(RunFolderError::Unfinished {
            path: mpath,
            what: format!(
                "training stopped after epoch {} of {}; finish it with `splitguard run {} --out {} --resume`",
                ck.meta.epoch,
                loaded.recipe.training.epochs,
                rpath.display(),
                dir.display()
            ),
        }
        .into());
    }
    let split = deployed_split(dir, &loaded.recipe, &ck.model);
    Ok(OpenedRun {
        recipe: loaded.recipe,
        model: ck.model,
        splits,
        split,
        _lock: lock,
    })
}

/// Which data part to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The attacker's auxiliary data.
    Aux,
    /// The victims' queries.
    Test,
}

/// Writes the features the server receives at split `k` (after the run's
/// obfuscation, when `k` is its deployment split; the VAE mean, where the
/// model has a VAE head) for a data part as
/// float32 `[N, ...]` NPY, with `.labels.npy` (target) and `.hidden.npy`
/// (first hidden attribute, or all of them as `[N, A]`) beside it, and the
/// input images as `.inputs.npy` when asked (DESIGN section 10).
pub fn export_features(
    run: &OpenedRun,
    k: usize,
    part: Part,
    out: &Path,
    inputs: bool,
    device: &Device,
) -> Result<Vec<PathBuf>, Error> {
    use crate::report::npy::{write_npy_f32, write_npy_i64};
    if !run.model.split_points().contains(&k) {
        return Err(crate::model::ModelError::Split {
            split: k,
            blocks: run.model.len(),
        }
        .into());
    }
    let ds = match part {
        Part::Aux => &run.splits.aux,
        Part::Test => &run.splits.test,
    };
    let eval = Evaluator::new(&run.model, device, 256);
    let (features, shape) = eval.features(ds, k);
    let features = ServerView::new(&run.recipe, &run.model, &run.splits, run.split, device)?
        .apply(k, features)?;
    let mut full_shape = vec![ds.len()];
    full_shape.extend(&shape);
    let sibling = |suffix: &str| -> PathBuf {
        let stem = out
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        out.with_file_name(format!("{stem}.{suffix}.npy"))
    };
    let mut written = vec![out.to_path_buf()];
    write_npy_f32(out, &features, &full_shape)?;
    let labels: Vec<i64> = ds.targets.iter().map(|&t| t as i64).collect();
    let lpath = sibling("labels");
    write_npy_i64(&lpath, &labels, &[ds.len()])?;
    written.push(lpath);
    if !ds.hidden.is_empty() {
        let a = ds.hidden.len();
        let mut hidden = Vec::with_capacity(ds.len() * a);
        for i in 0..ds.len() {
            hidden.extend(ds.hidden.iter().map(|h| h.values[i] as i64));
        }
        let hpath = sibling("hidden");
        let hshape = if a == 1 {
            vec![ds.len()]
        } else {
            vec![ds.len(), a]
        };
        write_npy_i64(&hpath, &hidden, &hshape)?;
        written.push(hpath);
    }
    if inputs {
        let ipath = sibling("inputs");
        let [c, h, w] = ds.shape;
        write_npy_f32(&ipath, &ds.images, &[ds.len(), c, h, w])?;
        written.push(ipath);
    }
    Ok(written)
}

/// Writes a partition analysis into a run folder (`partition.json`, `partition.svg`).
pub fn write_partition(
    p: &crate::partition::PartitionReport,
    dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let json = dir.join("partition.json");
    write_atomic(
        &json,
        serde_json::to_string_pretty(p).expect("json").as_bytes(),
    )
    .map_err(|e| Error::io(&json, e))?;
    let svg = dir.join("partition.svg");
    crate::report::plot::save_svg(&svg, &crate::report::partition_plot(p))
        .map_err(|e| Error::io(&svg, e))?;
    Ok(vec![json, svg])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_may_change_the_learning_rates_and_nothing_else() {
        let text = "name: r\nmodel: {arch: cnn6}\ntraining: {optimizer: {kind: adam}}\nprune: {method: patrol, budget: {fraction: 0.5, reference_split: 2}}\n";
        let load = |sets: &[&str]| {
            let o: Vec<crate::recipe::Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
            crate::recipe::from_str(text, "r.yaml", &o).unwrap().recipe
        };
        let previous = serde_norway::to_string(&*load(&[])).unwrap();
        for lr in [
            "training.optimizer.lr=0.0001",
            "prune.mask_lr=0.001",
            "prune.fine_tune_lr=0.0001",
        ] {
            assert!(resumable_change(&previous, &load(&[lr])), "{lr}");
        }
        for other in ["prune.sparsity=1.0", "training.batch_size=16", "seed=1"] {
            assert!(!resumable_change(&previous, &load(&[other])), "{other}");
        }
    }
}
