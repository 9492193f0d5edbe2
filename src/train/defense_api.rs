//! The interface between the trainer and the defenses (DESIGN section 5):
//! the trainer owns it, the defenses ([`crate::defense`]) implement it.
//!
//! A defense adds a loss term, may transform the split features during
//! training, may replace the one-hot targets, and may act after the
//! optimiser step (e.g. an adversary's own update). It never owns the
//! optimiser or the loop: the trainer is written once and calls the list.

use burn::prelude::*;

use crate::data::Attribute;
use crate::model::{Features, SplitModel};

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

impl DefenseState {
    /// A blob of `f32` values (little-endian, exact bits).
    pub fn f32_blob(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The `len` `f32` values of the blob `name` ([`f32_blob`](Self::f32_blob)),
    /// refusing a missing blob or one of another length; `what` names it in
    /// the message.
    pub fn f32s(&self, name: &str, len: usize, what: &str) -> Result<Vec<f32>, String> {
        let bytes = self
            .blobs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .ok_or_else(|| format!("{what} is missing"))?;
        if len.checked_mul(4) != Some(bytes.len()) {
            return Err(format!(
                "{what} holds {} bytes, not {}",
                bytes.len(),
                len.saturating_mul(4)
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// What a defense sees of one training step.
pub struct StepContext<'a> {
    /// The model being trained (autodiff device).
    pub model: &'a SplitModel,
    /// 0-based block `i` of the model as trained, on its input: the
    /// model's own block, or with PATROL's channel mask applied while masks
    /// are trained (a defense that runs edge blocks itself uses this).
    pub block: &'a dyn Fn(usize, Features) -> Features,
    /// The input batch `[N, C, H, W]`.
    pub images: &'a Tensor<4>,
    /// Task labels of the batch.
    pub labels: &'a [u32],
    /// The training data's hidden attributes (every image's values; only a
    /// defense against a known attribute reads them, at [`batch`](Self::batch)).
    pub hidden: &'a [Attribute],
    /// The batch's indices into the training data.
    pub batch: &'a [usize],
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
