//! Helpers the defenses share; the interface they implement
//! ([`Defense`], [`StepContext`], [`DefenseState`]) is
//! the trainer's ([`crate::train`]), re-exported here.

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::train::{Defense, DefenseState, StepContext};

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
    use burn::prelude::Tensor;
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
