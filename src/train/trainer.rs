//! The training loop, written once; defenses are a list it calls.
//!
//! Every epoch ends with an atomic checkpoint (model, optimiser state,
//! epoch, metrics history, and the state of every defense that carries one
//! from step to step, typed and versioned) so `--resume` continues exactly
//! where a killed run stopped: batch order and the device's random draws are
//! derived from (seed, epoch), a defense's own generator is saved with it. A
//! checkpoint without the state a defense needs (written by an older
//! version) is refused rather than continued inexactly. A non-finite loss
//! stops the run with an error; the previous epoch's checkpoint stays as it
//! was.

use std::path::PathBuf;
use std::time::Instant;

use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig};
use burn::prelude::*;
use burn::tensor::Bytes;
use burn::tensor::activation::log_softmax;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batch::{images_tensor, one_hot, step_outcome, to_vec};
use super::config::{OptimizerConfig, TrainConfig};
use super::trainee::Trainee;
use super::{Defense, DefenseState, StepContext};
use super::{Kept, TrainError};
use crate::data::Dataset;
use crate::fsutil::write_atomic;
use crate::model::{Blobs, Checkpoint, Features, SplitModel};

/// The key of the defenses' states in a checkpoint's `extra`.
const DEFENSE_STATE: &str = "defense_state";
/// The key of a stateful trainee's state (PATROL's masks) in `extra`, and
/// the prefix of its blobs.
const TRAINEE_STATE: &str = "trainee_state";

/// What one epoch measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean total loss over the epoch's steps.
    pub loss: f64,
    /// Mean task (cross-entropy) loss.
    pub task_loss: f64,
    /// Running training accuracy (0..1).
    pub train_accuracy: f64,
    /// Wall time of the epoch in seconds (not part of the reproducible numbers).
    pub seconds: f64,
    /// Per-defense values (their losses), by name.
    #[serde(default)]
    pub defenses: std::collections::BTreeMap<String, f64>,
}

/// One epoch of training as reports keep it: [`EpochMetrics`] without its
/// wall time, so a report stays reproducible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Mean total loss.
    pub loss: f64,
    /// Mean task loss.
    pub task_loss: f64,
    /// Training accuracy.
    pub train_accuracy: f64,
    /// Defense values by name.
    pub defenses: std::collections::BTreeMap<String, f64>,
}

impl EpochSummary {
    /// The summaries of a training history, in order.
    pub fn of(history: &[EpochMetrics]) -> Vec<Self> {
        history
            .iter()
            .map(|m| Self {
                epoch: m.epoch,
                lr: m.lr,
                loss: m.loss,
                task_loss: m.task_loss,
                train_accuracy: m.train_accuracy,
                defenses: m.defenses.clone(),
            })
            .collect()
    }
}

/// Receives progress; the library never prints (the CLI draws bars).
pub trait TrainObserver {
    /// An epoch with `steps` steps begins.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// A step finished with this loss and batch accuracy.
    fn step(&mut self, _loss: f64, _accuracy: f64) {}
    /// An epoch finished.
    fn epoch_end(&mut self, _metrics: &EpochMetrics) {}
    /// Training resumed from the checkpoint `checkpoint` after `epoch`
    /// epochs (its file names the phase: the model, PATROL's masks, the
    /// pruned model's fine-tuning).
    fn resumed(&mut self, _epoch: usize, _checkpoint: &std::path::Path) {}
    /// Asked after each epoch's checkpoint is written: `true` stops the run
    /// there (as if killed), to be continued with `resume`.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl TrainObserver for Silent {}

/// Where and how one training run happens.
pub struct TrainRun<'a, D = ()> {
    /// The settings (their defenses are built by the caller, and passed
    /// to [`train`] as a list).
    pub config: &'a TrainConfig<D>,
    /// Seed for batch order and random draws.
    pub seed: u64,
    /// The defended split (blocks `1..=split` are the edge); the model's
    /// length when no defense needs one.
    pub split: usize,
    /// Checkpoint file written after every epoch (and read by `resume`).
    pub checkpoint: Option<PathBuf>,
    /// `metrics.jsonl` path (one JSON object per epoch).
    pub metrics_log: Option<PathBuf>,
    /// Continue from `checkpoint` if it exists.
    pub resume: bool,
}

/// A trained model (or other [`Trainee`]) and its history.
pub struct Trained<T = SplitModel> {
    /// The model (still on the training device).
    pub model: T,
    /// One entry per epoch, including epochs done before a resume.
    pub history: Vec<EpochMetrics>,
}

fn build_optimizer(cfg: &OptimizerConfig) -> ModuleOptimizer {
    let decay = |wd: f64| (wd > 0.0).then(|| WeightDecayConfig::new(wd as f32));
    match cfg {
        OptimizerConfig::Adam { weight_decay, .. } => AdamConfig::new()
            .with_weight_decay(decay(*weight_decay))
            .init(),
        OptimizerConfig::Sgd {
            momentum,
            weight_decay,
            ..
        } => SgdConfig::new()
            .with_weight_decay(decay(*weight_decay))
            .with_momentum((*momentum > 0.0).then_some(MomentumConfig {
                momentum: *momentum,
                dampening: 0.0,
                nesterov: false,
            }))
            .init(),
    }
}

/// Cross-entropy of logits `[N, K]` against target distributions `[N, K]`.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (log_softmax(logits, 1) * targets).sum_dim(1).mean().neg()
}

/// Passes the output of block `k` through every defense that picked layer
/// `k` this step (the last block's output, the logits, is never picked).
fn layer_hooks(
    defenses: &mut [Box<dyn Defense>],
    picks: &[Option<usize>],
    k: usize,
    mut f: Features,
    model: &SplitModel,
    step: usize,
) -> Features {
    for (d, pick) in defenses.iter_mut().zip(picks) {
        if *pick == Some(k) && k < model.len() {
            f = d.transform_layer(k, f, model, step);
        }
    }
    f
}

/// The defenses' states for a checkpoint: `{name: {version, values}}` for
/// `extra`, and their blobs named `<defense>/<blob>`.
fn defense_states(defenses: &[Box<dyn Defense>]) -> Result<(serde_json::Value, Blobs), TrainError> {
    let mut values = serde_json::Map::new();
    let mut blobs = Vec::new();
    for d in defenses {
        let state = d.state().map_err(|e| {
            TrainError::Checkpoint(format!("state of the defense '{}': {e}", d.name()))
        })?;
        if let Some(state) = state {
            values.insert(
                d.name().into(),
                serde_json::json!({ "version": state.version, "values": state.values }),
            );
            for (blob, bytes) in state.blobs {
                blobs.push((format!("{}/{blob}", d.name()), bytes));
            }
        }
    }
    Ok((values.into(), blobs))
}

/// Restores every stateful defense from a checkpoint, refusing one that
/// lacks a defense's state or holds a version this build cannot read.
fn restore_defenses(
    defenses: &mut [Box<dyn Defense>],
    ck: &Checkpoint,
    path: &std::path::Path,
    device: &Device,
) -> Result<(), TrainError> {
    let saved = ck.meta.extra.get(DEFENSE_STATE);
    for d in defenses.iter_mut() {
        let Some(want) = d.state_version() else {
            continue;
        };
        let name = d.name();
        let Some(entry) = saved.and_then(|s| s.get(name)) else {
            return Err(TrainError::Resume(format!(
                "{}: holds no state of the defense '{name}' (written by an older splitguard), so training cannot continue exactly; delete it to train again from the start",
                path.display()
            )));
        };
        let version = entry.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(want)) {
            return Err(TrainError::Resume(format!(
                "{}: the state of the defense '{name}' has version {}, this splitguard reads version {want}; delete it to train again from the start",
                path.display(),
                version.map_or("(none)".to_string(), |v| v.to_string())
            )));
        }
        let prefix = format!("{name}/");
        let state = DefenseState {
            version: want,
            values: entry.get("values").cloned().unwrap_or_default(),
            blobs: ck
                .blobs
                .iter()
                .filter_map(|(n, b)| Some((n.strip_prefix(&prefix)?.to_string(), b.clone())))
                .collect(),
        };
        d.restore(state, device).map_err(|e| {
            TrainError::Resume(format!(
                "{}: state of the defense '{name}': {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// A checkpoint's `extra` for a trainer's position: the metrics `history`
/// (readable, and again with every float as its exact bits, since
/// serde_json's parser may miss a float's last bit and a resumed report
/// must be byte-identical) and the `seed`.
pub fn history_extra(history: &[EpochMetrics], seed: u64) -> serde_json::Value {
    let readable = serde_json::to_value(history).expect("metrics serialize");
    serde_json::json!({
        "history": readable,
        "history_exact": exact_floats(readable.clone()),
        "seed": seed,
    })
}

/// The metrics history stored by [`history_extra`] (the exact copy where
/// there is one).
fn read_history(extra: &serde_json::Value) -> Vec<EpochMetrics> {
    let exact = extra.get("history_exact").cloned().map(restore_floats);
    exact
        .or_else(|| extra.get("history").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

const FLOAT_BITS: &str = "f64:";

/// Every non-integer number of `v` as the string `f64:<hex bits>`.
fn exact_floats(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let bits = n.as_f64().expect("an f64 number").to_bits();
            Value::String(format!("{FLOAT_BITS}{bits:016x}"))
        }
        Value::Array(a) => Value::Array(a.into_iter().map(exact_floats).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, exact_floats(v))).collect())
        }
        other => other,
    }
}

/// The inverse of [`exact_floats`].
fn restore_floats(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) if s.starts_with(FLOAT_BITS) => {
            u64::from_str_radix(&s[FLOAT_BITS.len()..], 16)
                .ok()
                .and_then(|b| serde_json::Number::from_f64(f64::from_bits(b)))
                .map_or(Value::Null, Value::Number)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(restore_floats).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, restore_floats(v))).collect())
        }
        other => other,
    }
}

/// Writes the epoch's checkpoint: model, optimiser, history, seed, the
/// defenses' states and a stateful trainee's own (PATROL's masks).
fn save_checkpoint<T: Trainee>(
    path: &std::path::Path,
    trainee: &T,
    epoch: usize,
    history: &[EpochMetrics],
    seed: u64,
    defenses: &[Box<dyn Defense>],
    optim: Option<&ModuleOptimizer>,
) -> Result<(), TrainError> {
    let optim_bytes = optim
        .map(|o| o.into_bytes())
        .transpose()
        .map_err(|e| TrainError::Checkpoint(format!("optimiser state: {e}")))?;
    let (states, mut blobs) = defense_states(defenses)?;
    let mut extra = history_extra(history, seed);
    extra[DEFENSE_STATE] = states;
    if let Some((name, _)) = trainee.state_version() {
        let state = trainee
            .state()
            .map_err(|e| TrainError::Checkpoint(format!("state of the {name}: {e}")))?
            .ok_or_else(|| TrainError::Checkpoint(format!("the {name} gave no state")))?;
        extra[TRAINEE_STATE] =
            serde_json::json!({ "version": state.version, "values": state.values });
        blobs.extend(
            state
                .blobs
                .into_iter()
                .map(|(blob, bytes)| (format!("{TRAINEE_STATE}/{blob}"), bytes)),
        );
    }
    Checkpoint::save_with_blobs(
        path,
        trainee.model(),
        epoch,
        extra,
        optim_bytes.as_deref(),
        &blobs,
    )?;
    Ok(())
}

/// Restores a stateful trainee from a checkpoint (see [`restore_defenses`]).
fn restore_trainee<T: Trainee>(
    trainee: &mut T,
    ck: &Checkpoint,
    path: &std::path::Path,
    device: &Device,
) -> Result<(), TrainError> {
    let Some((name, want)) = trainee.state_version() else {
        return Ok(());
    };
    let entry = ck.meta.extra.get(TRAINEE_STATE);
    let version = entry
        .and_then(|e| e.get("version"))
        .and_then(|v| v.as_u64());
    if version != Some(u64::from(want)) {
        return Err(TrainError::Resume(format!(
            "{}: holds no state of the {name} this splitguard reads (version {want}); delete it to train again from the start",
            path.display()
        )));
    }
    let prefix = format!("{TRAINEE_STATE}/");
    let state = DefenseState {
        version: want,
        values: entry
            .and_then(|e| e.get("values"))
            .cloned()
            .unwrap_or_default(),
        blobs: ck
            .blobs
            .iter()
            .filter_map(|(n, b)| Some((n.strip_prefix(&prefix)?.to_string(), b.clone())))
            .collect(),
    };
    trainee
        .restore(state, device)
        .map_err(|e| TrainError::Resume(format!("{}: state of the {name}: {e}", path.display())))
}

/// Trains `model` on `data` with the given defenses.
///
/// `device` must be an autodiff device; the model is moved there.
pub fn train<D>(
    model: SplitModel,
    data: &Dataset,
    defenses: &mut [Box<dyn Defense>],
    run: &TrainRun<D>,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<Trained, TrainError> {
    train_trainee(model, data, defenses, run, device, observer)
}

/// Trains any [`Trainee`] (a split model, or one with parameters of its
/// own such as PATROL's masks) on `data` with the given defenses: the one
/// training loop, with the recipe's optimiser and schedule, the defenses'
/// layer hooks and terms, NaN checks, checkpoints and resume.
///
/// `device` must be an autodiff device; the trainee is moved there.
pub fn train_trainee<T: Trainee, D>(
    trainee: T,
    data: &Dataset,
    defenses: &mut [Box<dyn Defense>],
    run: &TrainRun<D>,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<Trained<T>, TrainError> {
    let cfg = run.config;
    let mut trainee = trainee.fork(device);
    let mut optim = build_optimizer(&cfg.optimizer);
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut start_epoch = 1;
    // The epoch of the checkpoint on disk, once there is one.
    let mut last_saved: Option<usize> = None;

    if run.resume
        && let Some(path) = run.checkpoint.as_ref().filter(|p| p.exists())
    {
        let spec = trainee.model().spec()?;
        let ck = Checkpoint::load_expecting(path, &spec, device)?;
        history = read_history(&ck.meta.extra);
        if history.len() != ck.meta.epoch {
            return Err(TrainError::Resume(format!(
                "{}: holds {} epochs but a history of {}",
                path.display(),
                ck.meta.epoch,
                history.len()
            )));
        }
        if ck.meta.epoch < cfg.epochs {
            // Training goes on: with the same seed, and every defense
            // continues from where it was.
            if let Some(seed) = ck.meta.extra.get("seed").and_then(|v| v.as_u64())
                && seed != run.seed
            {
                return Err(TrainError::Resume(format!(
                    "{}: trained with seed {seed}, but this run's seed is {}",
                    path.display(),
                    run.seed
                )));
            }
            restore_defenses(defenses, &ck, path, device)?;
        }
        // The trainee's own parameters (masks) are part of what it is, so
        // they come back even when training is already over.
        restore_trainee(&mut trainee, &ck, path, device)?;
        last_saved = Some(ck.meta.epoch);
        if let Some(bytes) = ck.optimizer {
            optim = optim
                .from_bytes(Bytes::from_bytes_vec(bytes))
                .map_err(|e| {
                    TrainError::Resume(format!("{}: optimiser state: {e}", path.display()))
                })?;
        }
        trainee = trainee.with_model(ck.model).fork(device);
        start_epoch = ck.meta.epoch + 1;
        observer.resumed(ck.meta.epoch, path);
    }

    let classes = data.num_classes;
    let n = data.len();
    let batch = cfg.batch_size.max(1);
    // Steps per epoch as trained below (a last batch of one is dropped), so
    // a resumed run counts the steps the uninterrupted one took.
    let per_epoch = n / batch + usize::from(n % batch > 1);
    let mut step = (start_epoch - 1) * per_epoch;
    for epoch in start_epoch..=cfg.epochs {
        let started = Instant::now();
        let lr = cfg.lr_at(epoch);
        let epoch_seed = run.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch as u64;
        device.seed(epoch_seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch_seed));
        // A batch-norm layer cannot train on a single example: drop a last batch of one.
        let batches: Vec<&[usize]> = order.chunks(batch).filter(|b| b.len() > 1).collect();
        observer.epoch_start(epoch, cfg.epochs, batches.len());
        let (mut loss_sum, mut task_sum, mut hits, mut seen) = (0f64, 0f64, 0usize, 0usize);
        for idx in batches {
            let labels: Vec<u32> = idx.iter().map(|&i| data.targets[i]).collect();
            let x = images_tensor(data, idx, device);
            let model = trainee.model();
            let block = |i: usize, u: Features| trainee.block(i, u);
            // Layers the defenses transform this step (signal-content dropout
            // at a random layer), applied on both sides of the split.
            let picks: Vec<Option<usize>> = defenses
                .iter_mut()
                .map(|d| d.pick_layer(run.split, model.len()))
                .collect();
            let (z, log_var) =
                model.edge_forward_moments(x.clone(), run.split, &block, &mut |k, f| {
                    layer_hooks(defenses, &picks, k, f, model, step)
                });
            let ctx = StepContext {
                model,
                block: &block,
                images: &x,
                labels: &labels,
                hidden: &data.hidden,
                batch: idx,
                split: run.split,
                features: &z,
                log_var: log_var.as_ref(),
                step,
                seed: run.seed,
            };
            let mut z_sent = z.clone();
            for d in defenses.iter_mut() {
                z_sent = d.transform(z_sent, &ctx);
            }
            let z_sent = layer_hooks(defenses, &picks, run.split, z_sent, model, step);
            let logits = model
                .run_blocks(z_sent, run.split, model.len(), &block, &mut |k, f| {
                    layer_hooks(defenses, &picks, k, f, model, step)
                })
                .flatten();
            let targets = defenses
                .iter()
                .find_map(|d| d.targets(&labels, classes, device))
                .unwrap_or_else(|| one_hot(&labels, classes, device));
            let task = soft_cross_entropy(logits.clone(), targets);
            let mut loss = task.clone();
            for d in defenses.iter_mut() {
                if let Some(term) = d.loss(&ctx) {
                    loss = loss + term;
                }
            }
            for term in trainee.loss_terms(labels.len()) {
                loss = loss + term;
            }
            let (loss_value, batch_hits) = step_outcome(&loss, logits, &labels, classes);
            if !loss_value.is_finite() {
                let kept = run
                    .checkpoint
                    .as_ref()
                    .zip(last_saved)
                    .map(|(path, epoch)| Kept {
                        path: path.display().to_string(),
                        epoch,
                    });
                return Err(TrainError::NonFinite {
                    epoch,
                    step,
                    value: loss_value,
                    kept,
                });
            }
            trainee = trainee.update(loss.backward(), lr, &mut optim);
            let model = trainee.model();
            let ctx = StepContext {
                model,
                block: &|i, u| trainee.block(i, u),
                images: &x,
                labels: &labels,
                hidden: &data.hidden,
                batch: idx,
                split: run.split,
                features: &z,
                log_var: log_var.as_ref(),
                step,
                seed: run.seed,
            };
            for d in defenses.iter_mut() {
                d.after_step(model, &ctx);
            }
            loss_sum += loss_value * labels.len() as f64;
            task_sum += to_vec(task.detach())[0] as f64 * labels.len() as f64;
            hits += batch_hits;
            seen += labels.len();
            step += 1;
            observer.step(loss_value, batch_hits as f64 / labels.len() as f64);
        }
        let seen_f = seen.max(1) as f64;
        let mut logged: std::collections::BTreeMap<String, f64> =
            defenses.iter_mut().flat_map(|d| d.epoch_log()).collect();
        logged.extend(trainee.epoch_log());
        let metrics = EpochMetrics {
            epoch,
            lr,
            loss: loss_sum / seen_f,
            task_loss: task_sum / seen_f,
            train_accuracy: hits as f64 / seen_f,
            seconds: started.elapsed().as_secs_f64(),
            defenses: logged,
        };
        history.push(metrics.clone());
        if let Some(path) = &run.checkpoint {
            save_checkpoint(
                path,
                &trainee,
                epoch,
                &history,
                run.seed,
                defenses,
                Some(&optim),
            )?;
            last_saved = Some(epoch);
        }
        if let Some(path) = &run.metrics_log {
            let mut text = String::new();
            for m in &history {
                text += &serde_json::to_string(m).expect("metrics serialize");
                text.push('\n');
            }
            write_atomic(path, text.as_bytes()).map_err(|e| TrainError::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        observer.epoch_end(&metrics);
        if epoch < cfg.epochs && observer.should_stop() {
            return Err(TrainError::Interrupted { epoch });
        }
    }
    if cfg.epochs == 0
        && let Some(path) = &run.checkpoint
    {
        // Nothing to train (a pretrained model audited as it is): the
        // checkpoint still records the model, as epoch 0.
        save_checkpoint(path, &trainee, 0, &history, run.seed, defenses, None)?;
    }
    Ok(Trained {
        model: trainee,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_comes_back_from_a_checkpoint_to_the_last_bit() {
        // Floats whose shortest text serde_json's fast parser reads back a
        // bit off would change a resumed report.
        let history: Vec<EpochMetrics> = (1..200)
            .map(|i| {
                // The first: a value a resumed report once got a bit off.
                let x = match i {
                    1 => -0.112_188_514_322_042_47,
                    _ => 1.0 / (i as f64 * 3.7) - 0.112_188_514_322_042_47,
                };
                EpochMetrics {
                    epoch: i,
                    lr: x * 1e-3,
                    loss: x,
                    task_loss: x.abs().sqrt() + 1e-300,
                    train_accuracy: x / 7.0,
                    seconds: x * 1e7,
                    defenses: [("d".to_string(), -x / 3.0)].into(),
                }
            })
            .collect();
        let text = serde_json::to_string(&history_extra(&history, 3)).unwrap();
        let back = read_history(&serde_json::from_str(&text).unwrap());
        assert_eq!(history, back);
    }
}
