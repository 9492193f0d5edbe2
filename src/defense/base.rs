//! The defense interface the trainer calls.
//!
//! A defense adds a loss term, may transform the split features during
//! training, may replace the one-hot targets, and may act after the
//! optimiser step (e.g. an adversary's own update). It never owns the
//! optimiser or the loop: the trainer is written once and calls the list.

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::Dataset;
use crate::model::{Features, SplitModel};

/// One hidden attribute's values for the examples of a training batch
/// (what a defense against a known attribute trains against).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchAttribute {
    /// The attribute's name in the data (e.g. `writer`).
    pub name: String,
    /// Its value for each example of the batch.
    pub values: Vec<u32>,
    /// The number of values it can take.
    pub classes: usize,
}

impl BatchAttribute {
    /// Every hidden attribute of `data` for the batch `idx`.
    pub fn of_batch(data: &Dataset, idx: &[usize]) -> Vec<Self> {
        data.hidden
            .iter()
            .map(|a| Self {
                name: a.name.clone(),
                values: idx.iter().map(|&i| a.values[i]).collect(),
                classes: a.num_classes,
            })
            .collect()
    }
}

/// What a defense carries from one step to the next (an attacker network
/// and its optimiser, a random generator's position, cached bases), saved
/// in the training checkpoint so `--resume` continues it exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DefenseState {
    /// The layout of this state; a defense refuses versions it cannot read.
    pub version: u32,
    /// Small typed values (positions, shapes, counters), as JSON.
    pub values: serde_json::Value,
    /// Large binary parts (module records, optimiser state), by name.
    pub blobs: Vec<(String, Vec<u8>)>,
}

/// What a defense sees of one training step.
pub struct StepContext<'a> {
    /// The model being trained (autodiff device).
    pub model: &'a SplitModel,
    /// The input batch `[N, C, H, W]`.
    pub images: &'a Tensor<4>,
    /// Task labels of the batch.
    pub labels: &'a [u32],
    /// The data's hidden attributes for the batch (only a defense against
    /// a known attribute reads them).
    pub attributes: &'a [BatchAttribute],
    /// The defended split point (blocks `1..=split` are the edge).
    pub split: usize,
    /// Features the edge produced at the split (before any transform; the
    /// VAE mean where the model has a VAE head there).
    pub features: &'a Features,
    /// The VAE head's log-variance at the split, where there is one.
    pub log_var: Option<&'a Features>,
    /// Step number since the start of training (0-based).
    pub step: usize,
    /// The run's seed; a defense's random draws derive from it and `step`
    /// (so a resumed run draws the same numbers).
    pub seed: u64,
}

/// A training-time defense (DESIGN section 5).
pub trait Defense: Send {
    /// Short name used in logs and reports (e.g. `label_smoothing`).
    fn name(&self) -> &'static str;

    /// Targets `[N, classes]` to train against instead of one-hot labels.
    fn targets(&self, _labels: &[u32], _classes: usize, _device: &Device) -> Option<Tensor<2>> {
        None
    }

    /// Transforms the split features in training (VAE sampling, dropout of
    /// signal content). Identity by default.
    fn transform(&mut self, features: Features, _ctx: &StepContext) -> Features {
        features
    }

    /// Chooses, once per step, a layer `1..blocks` whose output this
    /// defense transforms in training with
    /// [`transform_layer`](Self::transform_layer); `None`: no layer this step.
    fn pick_layer(&mut self, _split: usize, _blocks: usize) -> Option<usize> {
        None
    }

    /// Transforms the output of block `layer` (as picked this step) in
    /// training, on the edge or the server side of the split.
    fn transform_layer(
        &mut self,
        _layer: usize,
        features: Features,
        _model: &SplitModel,
        _step: usize,
    ) -> Features {
        features
    }

    /// The weighted loss term this defense adds, `[1]`; `None` adds nothing
    /// (a zero weight must return `None`, so training stays bit-identical).
    fn loss(&mut self, _ctx: &StepContext) -> Option<Tensor<1>> {
        None
    }

    /// Called after the model's optimiser step with the updated model.
    fn after_step(&mut self, _model: &SplitModel, _ctx: &StepContext) {}

    /// Named values to log for the finished epoch (means over its steps).
    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// The version of the state this defense saves, `None` for a defense
    /// that carries nothing from one step to the next (the default).
    fn state_version(&self) -> Option<u32> {
        None
    }

    /// The state to save at the end of an epoch (`None`: nothing to save).
    fn state(&self) -> Result<Option<DefenseState>, String> {
        Ok(None)
    }

    /// Restores a state saved by [`state`](Self::state) (the trainer checks
    /// the version first); `device` is the training device.
    fn restore(&mut self, _state: DefenseState, _device: &Device) -> Result<(), String> {
        Err(format!("the defense '{}' keeps no state", self.name()))
    }
}

/// The state of a network a defense trains against the model (an attacker
/// or adversary): `values` holds what it was built for (`shape`; null
/// before the first step, when nothing was built), blob `name` its module
/// record, blob `optimizer` its Adam state.
pub(crate) fn save_opponent<M: Module, S: Serialize>(
    net: Option<(&M, &S)>,
    optim: &ModuleOptimizer,
    name: &str,
    version: u32,
) -> Result<Option<DefenseState>, String> {
    let Some((net, shape)) = net else {
        return Ok(Some(DefenseState {
            version,
            values: serde_json::Value::Null,
            blobs: Vec::new(),
        }));
    };
    // `valid()` first, as for the model: it merges pending batch-norm
    // running-statistic updates into what the record reads.
    let record = net
        .valid()
        .into_record()
        .into_bytes()
        .map_err(|e| format!("{name} weights: {e}"))?;
    let optim = optim
        .into_bytes()
        .map_err(|e| format!("{name} optimiser: {e}"))?;
    Ok(Some(DefenseState {
        version,
        values: serde_json::to_value(shape).map_err(|e| format!("{name} shapes: {e}"))?,
        blobs: vec![
            (name.into(), record.to_vec()),
            ("optimizer".into(), optim.to_vec()),
        ],
    }))
}

/// What [`restore_opponent`] gives back: the network, its shape (both
/// `None` when saved before the first step) and its Adam state.
pub(crate) type Opponent<M, S> = (Option<M>, Option<S>, ModuleOptimizer);

/// Restores what [`save_opponent`] saved: the network (`build` makes it
/// for its shape, then its weights are loaded), its shape and its Adam
/// state; nothing built and a fresh Adam when it was saved before the
/// first step.
pub(crate) fn restore_opponent<M: Module, S: DeserializeOwned>(
    state: DefenseState,
    name: &str,
    build: impl FnOnce(&S) -> Result<M, String>,
) -> Result<Opponent<M, S>, String> {
    if state.values.is_null() {
        return Ok((None, None, AdamConfig::new().init()));
    }
    let shape: S =
        serde_json::from_value(state.values).map_err(|e| format!("{name} shapes: {e}"))?;
    let blob = |blob: &str| {
        state
            .blobs
            .iter()
            .find(|(n, _)| n == blob)
            .map(|(_, b)| Bytes::from_bytes_vec(b.clone()))
            .ok_or_else(|| format!("the {blob} is missing"))
    };
    let record =
        ModuleRecord::from_bytes(blob(name)?).map_err(|e| format!("{name} weights: {e}"))?;
    let net = build(&shape)?
        .try_load_record(record)
        .map_err(|e| format!("{name} weights do not fit its shapes: {e}"))?;
    let optim = AdamConfig::new()
        .init()
        .from_bytes(blob("optimizer")?)
        .map_err(|e| format!("{name} optimiser: {e}"))?;
    Ok((Some(net), Some(shape), optim))
}

/// Every float parameter of a module, in visiting order (for tests that
/// check which weights moved).
#[cfg(test)]
pub(crate) fn param_values<M: Module>(m: &M) -> Vec<f32> {
    use burn::module::{ModuleVisitor, Param};
    struct Values(Vec<f32>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.extend(crate::train::to_vec(p.val()));
        }
    }
    let mut v = Values(Vec::new());
    m.visit(&mut v);
    v.0
}
