//! The prune stage the pipeline runs after training (seed 001, PATROL;
//! DESIGN sections 2 and 7); its settings are [`super::config`].
//!
//! Before training, [`plan`] turns the budget into the deployment split: the
//! deepest split whose edge fits the budget with every prunable edge block
//! cut to `min_keep` of its channels (`method: none`: unpruned). Training and
//! its defenses then protect that split. After training, [`run_prune`]:
//! - `none`: keeps the model (the budget only chose the split);
//! - `l1`: scores channels by filter L1 norm and keeps the same fraction in
//!   every edge block (Li et al. 2016);
//! - `patrol`: trains soft channel masks with the sparsity penalty, together
//!   with the recipe's defenses (the Lipschitz and adversarial terms), keeps
//!   the channels above one mask threshold and folds the kept masks in;
//!
//! then cuts the model down so the edge fits the budget at that split,
//! re-estimates the batch-norm running statistics of the cut model (forward
//! passes over training batches, no weight update: the cut shifts every
//! later block's input distribution), fine-tunes it with the recipe's
//! defenses, and writes `pruned.sgck` (the smaller model, reloadable at its
//! size) and `prune.json` (the report section; written last, it marks the
//! stage as done for `--resume`).

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::PruneError;
use super::budget::{SelectionRule, deepest_split, select_channels};
use super::config::{PruneConfig, PruneMethod};
use super::l1::l1_scores;
use super::masks::{MaskRun, MaskedModel, SparsityWeights, train_masks};
use super::surgery::{prunable, prune_model};
use crate::data::{Dataset, Splits};
use crate::fsutil::write_atomic;
use crate::model::{Checkpoint, ModelSpec, SplitModel};
use crate::train::{
    EpochMetrics, EpochSummary, Evaluator, OptimizerConfig, TrainConfig, TrainObserver, TrainRun,
    images_tensor, train,
};

pub use crate::run_folder::{MASK_METRICS, MASKS, PRUNE_METRICS, PRUNE_REPORT, PRUNED_MODEL};

/// What the budget decides before training.
#[derive(Clone, Debug, PartialEq)]
pub struct PrunePlan {
    /// The budget in FLOPs.
    pub budget: u64,
    /// The deployment split.
    pub split: usize,
    /// The deepest split the budget allows without pruning, if any.
    pub unpruned_split: Option<usize>,
}

/// Resolves the budget and the split for the unpruned `spec`.
pub fn plan(cfg: &PruneConfig, spec: &ModelSpec) -> Result<PrunePlan, PruneError> {
    if let Some((_, why)) = cfg.model_problems(&spec.blocks).into_iter().next() {
        return Err(PruneError::Unprunable(why));
    }
    let budget = cfg.budget.resolve(spec)?;
    let unpruned_split = deepest_split(spec, budget, cfg.max_split, None).ok();
    let split = match cfg.method {
        PruneMethod::None => deepest_split(spec, budget, cfg.max_split, None)?,
        _ => deepest_split(spec, budget, cfg.max_split, Some(cfg.min_keep))?,
    };
    Ok(PrunePlan {
        budget,
        split,
        unpruned_split,
    })
}

/// One block before and after pruning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrunedBlock {
    /// 1-based block index.
    pub index: usize,
    /// Description before pruning.
    pub before: String,
    /// Description after pruning.
    pub after: String,
    /// Output channels (units) before.
    pub channels_before: usize,
    /// Output channels (units) after.
    pub channels_after: usize,
    /// FLOPs per query before.
    pub flops_before: u64,
    /// FLOPs per query after.
    pub flops_after: u64,
    /// True for the blocks on the edge.
    pub edge: bool,
}

/// The report's `prune` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruneReport {
    /// The method used.
    pub method: PruneMethod,
    /// The budget in FLOPs.
    pub budget_flops: u64,
    /// The split reached.
    pub split: usize,
    /// The deepest split the budget allows without pruning, if any.
    pub unpruned_split: Option<usize>,
    /// Edge FLOPs of the unpruned model at `split`.
    pub edge_flops_before: u64,
    /// Edge FLOPs of the pruned model at `split`.
    pub edge_flops_after: u64,
    /// Test accuracy of the trained model before pruning (0..1).
    pub accuracy_before: f64,
    /// Test accuracy right after the cut (batch-norm statistics
    /// re-estimated), before fine-tuning.
    pub accuracy_pruned: f64,
    /// Test accuracy after fine-tuning (the deployed model).
    pub accuracy: f64,
    /// Per-block channels and FLOPs.
    pub blocks: Vec<PrunedBlock>,
    /// Mask training epochs (`patrol`).
    pub mask_training: Vec<EpochSummary>,
    /// Fine-tuning epochs.
    pub fine_tuning: Vec<EpochSummary>,
}

/// Inputs of the stage.
pub struct PruneRun<'a> {
    /// The `prune:` section.
    pub config: &'a PruneConfig,
    /// The recipe's training settings (batch, optimiser, defenses).
    pub training: &'a TrainConfig<crate::defense::DefensesConfig>,
    /// The plan made before training.
    pub plan: &'a PrunePlan,
    /// The recipe's seed.
    pub seed: u64,
    /// The run folder.
    pub out_dir: &'a Path,
    /// Continue a stage that was interrupted.
    pub resume: bool,
}

/// The stage's result.
pub struct Pruned {
    /// The pruned, fine-tuned model (on the training device).
    pub model: SplitModel,
    /// The report section.
    pub report: PruneReport,
}

fn io(path: &Path, e: impl std::fmt::Display) -> PruneError {
    PruneError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The finished stage of a run folder (`pruned.sgck` and `prune.json`), if
/// it finished.
pub fn load_pruned(dir: &Path, device: &Device) -> Result<Option<Pruned>, PruneError> {
    let (mpath, rpath) = (dir.join(PRUNED_MODEL), dir.join(PRUNE_REPORT));
    if !(mpath.exists() && rpath.exists()) {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&rpath).map_err(|e| io(&rpath, e))?;
    let report = serde_json::from_str(&text).map_err(|e| io(&rpath, e))?;
    let model = Checkpoint::load(&mpath, device)?.model;
    Ok(Some(Pruned { model, report }))
}

/// Saves `model` after merging its pending batch-norm running-statistic
/// updates (`valid()` syncs them), so the file reloads to the same numbers.
/// The fine-tuning `history` goes with it: a run killed before `prune.json`
/// is written resumes from this file as from a finished fine-tuning.
fn save_synced(
    path: &Path,
    model: &SplitModel,
    history: &[EpochMetrics],
    seed: u64,
) -> Result<(), PruneError> {
    let _ = model.valid();
    let extra = crate::train::history_extra(history, seed);
    Ok(Checkpoint::save(path, model, history.len(), extra, None)?)
}

/// Batches used to re-estimate batch-norm statistics after a cut (with
/// burn's momentum 0.1, the old statistics keep a weight of 0.9^50 < 1%).
const RECALIBRATION_BATCHES: usize = 50;

/// Re-estimates the batch-norm running statistics of `model` by training-mode
/// forward passes over shuffled training batches, without any weight update.
pub fn recalibrate_batch_norm(
    model: SplitModel,
    data: &Dataset,
    batch: usize,
    seed: u64,
    device: &Device,
) -> SplitModel {
    let model = model.fork(device).train();
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    for idx in order
        .chunks(batch.max(2))
        .filter(|b| b.len() > 1)
        .take(RECALIBRATION_BATCHES)
    {
        let _ = model.forward(images_tensor(data, idx, device)).detach();
    }
    model
}

fn block_rows(
    before: &ModelSpec,
    after: &ModelSpec,
    split: usize,
) -> Result<Vec<PrunedBlock>, PruneError> {
    let (b, a) = (before.infos()?, after.infos()?);
    Ok(b.iter()
        .zip(&a)
        .map(|(b, a)| PrunedBlock {
            index: b.index,
            before: b.description.clone(),
            after: a.description.clone(),
            channels_before: b.output[0],
            channels_after: a.output[0],
            flops_before: b.flops,
            flops_after: a.flops,
            edge: b.index <= split,
        })
        .collect())
}

/// Prunes the trained `model` to the plan's budget and split, fine-tunes it,
/// and writes `pruned.sgck` and `prune.json` into the run folder. `device`
/// must support autodiff.
pub fn run_prune(
    model: SplitModel,
    splits: &Splits,
    run: &PruneRun,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<Pruned, PruneError> {
    if run.resume
        && let Some(done) = load_pruned(run.out_dir, device)?
    {
        return Ok(done);
    }
    let cfg = run.config;
    let (split, budget) = (run.plan.split, run.plan.budget);
    let inner = device.clone().inner();
    let accuracy = |m: &SplitModel| Evaluator::new(m, &inner, 256).accuracy(&splits.test);
    let before = model.spec()?;
    let accuracy_before = accuracy(&model);
    let n = model.len();
    let (cut, mask_history) = match cfg.method {
        PruneMethod::None => (model, Vec::new()),
        PruneMethod::L1 => {
            let scores = l1_scores(&model, split);
            let sel = select_channels(
                &before,
                split,
                budget,
                &scores,
                SelectionRule::UniformRatio,
                cfg.min_keep,
            )?;
            (prune_model(&model, &sel.keep, &vec![None; n])?, Vec::new())
        }
        PruneMethod::Patrol => {
            let can = prunable(&before.blocks);
            let blocks: Vec<usize> = (0..split).filter(|&i| can[i]).collect();
            let masked = MaskedModel::new(model, &blocks, split, device)?;
            let masked = match cfg.sparsity_weights {
                SparsityWeights::Flops => masked,
                SparsityWeights::Uniform => masked.with_uniform_weights(),
            };
            let mask_run = MaskRun {
                training: run.training,
                epochs: cfg.mask_epochs,
                mask_lr: cfg.mask_lr,
                sparsity: cfg.sparsity,
                seed: run.seed ^ 0x4D41_534B,
                split,
                checkpoint: Some(run.out_dir.join(MASKS)),
                metrics_log: Some(run.out_dir.join(MASK_METRICS)),
                resume: run.resume,
            };
            let (masked, history) =
                train_masks(masked, &splits.train, &mask_run, device, observer)?;
            let (scores, values) = (masked.raw_values(), masked.values());
            let sel = select_channels(
                &before,
                split,
                budget,
                &scores,
                SelectionRule::GlobalThreshold,
                cfg.min_keep,
            )?;
            (prune_model(&masked.model, &sel.keep, &values)?, history)
        }
    };
    let cut = match cfg.method {
        PruneMethod::None => cut,
        _ => recalibrate_batch_norm(
            cut,
            &splits.train,
            run.training.batch_size,
            run.seed,
            device,
        ),
    };
    let accuracy_pruned = accuracy(&cut);
    let mpath = run.out_dir.join(PRUNED_MODEL);
    let (model, fine_history) = if cfg.method != PruneMethod::None && cfg.fine_tune_epochs > 0 {
        let optimizer = match (&run.training.optimizer, cfg.fine_tune_lr) {
            (OptimizerConfig::Adam { weight_decay, .. }, Some(lr)) => OptimizerConfig::Adam {
                lr,
                weight_decay: *weight_decay,
            },
            (
                OptimizerConfig::Sgd {
                    momentum,
                    weight_decay,
                    ..
                },
                Some(lr),
            ) => OptimizerConfig::Sgd {
                lr,
                momentum: *momentum,
                weight_decay: *weight_decay,
            },
            (o, None) => o.clone(),
        };
        let config = TrainConfig {
            epochs: cfg.fine_tune_epochs,
            optimizer,
            lr_drops: Default::default(),
            ..run.training.clone()
        };
        let seed = run.seed ^ 0x5052_554E;
        let mut defenses = run.training.defenses.build(seed);
        let tuned = train(
            cut,
            &splits.train,
            &mut defenses,
            &TrainRun {
                config: &config,
                seed,
                split,
                checkpoint: Some(mpath.clone()),
                metrics_log: Some(run.out_dir.join(PRUNE_METRICS)),
                resume: run.resume,
            },
            device,
            observer,
        )
        .map_err(|e| {
            PruneError::from_phase(e, "fine-tuning", "prune.fine_tune_lr", Some(&mpath))
        })?;
        // The trainer's last checkpoint may miss the last batch-norm update
        // (burn merges running statistics lazily); write the synced model.
        save_synced(&mpath, &tuned.model, &tuned.history, run.seed)?;
        (tuned.model, tuned.history)
    } else {
        save_synced(&mpath, &cut, &[], run.seed)?;
        (cut, Vec::new())
    };
    let after = model.spec()?;
    let report = PruneReport {
        method: cfg.method,
        budget_flops: budget,
        split,
        unpruned_split: run.plan.unpruned_split,
        edge_flops_before: before.edge_flops(split)?,
        edge_flops_after: after.edge_flops(split)?,
        accuracy_before,
        accuracy_pruned,
        accuracy: accuracy(&model),
        blocks: block_rows(&before, &after, split)?,
        mask_training: EpochSummary::of(&mask_history),
        fine_tuning: EpochSummary::of(&fine_history),
    };
    let rpath = run.out_dir.join(PRUNE_REPORT);
    let json = serde_json::to_string_pretty(&report).expect("prune report serializes");
    write_atomic(&rpath, json.as_bytes()).map_err(|e| io(&rpath, e))?;
    Ok(Pruned { model, report })
}
