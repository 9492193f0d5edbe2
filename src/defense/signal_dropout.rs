//! Signal-content dropout (seed 004, section 4.3 "Training": "at each
//! epoch, various fractions of the signal content of different layers are
//! removed (one layer at a time), so that the model becomes robust to
//! removing the components of the signal content"; DESIGN section 5.6).
//!
//! With probability `rate` per step, one layer's output loses the tail of
//! its signal content: with `v_1..v_r` the signal basis of the next block's
//! operator (singular values non-increasing) and a kept count
//! `m = ceil(f r)` for `f ~ U[min_keep, 1]`,
//! `z' = z - sum_{j > m} (v_j . z) v_j`. The layer is drawn uniformly from
//! the model's split points (`layer: random`, the paper's "different
//! layers, one at a time") or is always the deployment split
//! (`layer: split`). The server thus learns to classify from the leading
//! components, which is what distortion-bounded obfuscation keeps at
//! inference. Each layer's basis is recomputed from the current weights
//! every `refresh_steps` steps. Layers whose operator has no dense form
//! (a residual block next) or is too large for the SVD are skipped.
//!
//! The random draws come from the recipe's seed (mixed with the defense's
//! name, see [`super::DefensesConfig::build`]). The generator's position
//! and the cached bases carry over from step to step, so they are saved in
//! the training checkpoint ([`Defense::state`], version [`STATE_VERSION`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Defense, DefenseState, DropoutLayer};
use crate::model::{Features, SplitModel};
use crate::signal::operator::BasisCache;
use crate::signal::svd::SignalBasis;

/// The layout of the saved state: `values` is [`SavedValues`]; one blob
/// `basis/<layer>` per cached basis ([`SignalBasis::to_bytes`]).
pub const STATE_VERSION: u32 = 1;

/// The small part of the saved state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SavedValues {
    /// The generator's seed (hex), stream and word position (decimal, a u128).
    rng_seed: String,
    rng_stream: u64,
    rng_word_pos: String,
    /// Per cached layer, the step its basis was computed at.
    bases: Vec<(usize, usize)>,
    /// Layers without a usable operator.
    failed: Vec<usize>,
}

/// Signal-content dropout.
pub struct SignalDropout {
    /// Probability that a step drops (0 turns the defense off).
    pub rate: f32,
    /// Smallest kept fraction of the signal components, in (0, 1].
    pub min_keep: f32,
    /// Steps between basis recomputations (>= 1).
    pub refresh_steps: usize,
    /// Which layer drops.
    pub layer: DropoutLayer,
    rng: ChaCha8Rng,
    /// Per layer: the step its basis was computed at, and the basis.
    bases: HashMap<usize, (usize, Arc<SignalBasis>)>,
    /// Layers without a usable operator.
    failed: BTreeSet<usize>,
    /// Drops per layer in the current epoch (for the log).
    drops: HashMap<usize, usize>,
}

impl SignalDropout {
    /// A new defense at a random layer; `seed` drives the random draws.
    pub fn new(rate: f32, min_keep: f32, refresh_steps: usize, seed: u64) -> Self {
        Self {
            rate,
            min_keep,
            refresh_steps: refresh_steps.max(1),
            layer: DropoutLayer::Random,
            rng: ChaCha8Rng::seed_from_u64(seed),
            bases: HashMap::new(),
            failed: BTreeSet::new(),
            drops: HashMap::new(),
        }
    }

    /// The same defense acting on `layer`.
    pub fn at(mut self, layer: DropoutLayer) -> Self {
        self.layer = layer;
        self
    }

    /// The basis of layer `k`'s next operator, refreshed every
    /// `refresh_steps` steps; `None` where there is none.
    fn basis(&mut self, model: &SplitModel, k: usize, step: usize) -> Option<Arc<SignalBasis>> {
        if self.failed.contains(&k) {
            return None;
        }
        let stale = self
            .bases
            .get(&k)
            .is_none_or(|(at, _)| step >= at + self.refresh_steps);
        if stale {
            match BasisCache::default().basis(model, k) {
                Ok(b) => {
                    self.bases.insert(k, (step, b));
                }
                Err(_) => {
                    self.failed.insert(k);
                    self.bases.remove(&k);
                    return None;
                }
            }
        }
        self.bases.get(&k).map(|(_, b)| b.clone())
    }
}

/// `z - (z V_tail) V_tail^T` for `z` `[N, D]` and the basis columns `m..r`.
pub fn drop_tail(z: Tensor<2>, basis: &SignalBasis, m: usize) -> Tensor<2> {
    let (d, r) = (basis.dim(), basis.rank());
    if m >= r {
        return z;
    }
    let mut tail = Vec::with_capacity(d * (r - m));
    for j in m..r {
        tail.extend_from_slice(basis.vector(j).expect("expected j below the rank"));
    }
    // Column-major [d, r-m] = row-major [r-m, d]: that is V_tail^T.
    let vt = Tensor::<2>::from_data(TensorData::new(tail, [r - m, d]), &z.device());
    let coeff = z.clone().matmul(vt.clone().transpose());
    z - coeff.matmul(vt)
}

impl Defense for SignalDropout {
    fn name(&self) -> &'static str {
        "signal_dropout"
    }

    fn pick_layer(&mut self, split: usize, blocks: usize) -> Option<usize> {
        if self.rate == 0.0 || self.rng.random::<f32>() >= self.rate {
            return None;
        }
        match self.layer {
            DropoutLayer::Split => (!self.failed.contains(&split)).then_some(split),
            DropoutLayer::Random => {
                let usable: Vec<usize> = (1..blocks).filter(|k| !self.failed.contains(k)).collect();
                (!usable.is_empty()).then(|| usable[self.rng.random_range(0..usable.len())])
            }
        }
    }

    fn transform_layer(
        &mut self,
        layer: usize,
        features: Features,
        model: &SplitModel,
        step: usize,
    ) -> Features {
        let Some(basis) = self.basis(model, layer, step) else {
            return features;
        };
        let f = self.rng.random_range(self.min_keep..=1.0f32);
        let m = ((f * basis.rank() as f32).ceil() as usize).min(basis.rank());
        *self.drops.entry(layer).or_default() += 1;
        let shape = features.example_shape();
        Features::from_flat(drop_tail(features.flatten(), &basis, m), &shape)
    }

    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        let total: usize = self.drops.values().sum();
        self.drops.clear();
        vec![("signal_dropout_steps".into(), total as f64)]
    }

    fn state_version(&self) -> Option<u32> {
        Some(STATE_VERSION)
    }

    fn state(&self) -> Result<Option<DefenseState>, String> {
        let mut layers: Vec<usize> = self.bases.keys().copied().collect();
        layers.sort_unstable();
        let values = SavedValues {
            rng_seed: self
                .rng
                .get_seed()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
            bases: layers.iter().map(|k| (*k, self.bases[k].0)).collect(),
            failed: self.failed.iter().copied().collect(),
        };
        Ok(Some(DefenseState {
            version: STATE_VERSION,
            values: serde_json::to_value(values).expect("state serializes"),
            blobs: layers
                .iter()
                .map(|k| (format!("basis/{k}"), self.bases[k].1.to_bytes()))
                .collect(),
        }))
    }

    fn restore(&mut self, state: DefenseState, _device: &Device) -> Result<(), String> {
        let v: SavedValues =
            serde_json::from_value(state.values).map_err(|e| format!("bad values: {e}"))?;
        let mut seed = [0u8; 32];
        let hex = v.rng_seed.as_bytes();
        if hex.len() != 64 {
            return Err(format!(
                "rng_seed: 64 hex digits expected, got {}",
                hex.len()
            ));
        }
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| "rng_seed: not hex".to_string())?;
            seed[i] =
                u8::from_str_radix(text, 16).map_err(|_| format!("rng_seed: {text} is not hex"))?;
        }
        let word_pos: u128 = v
            .rng_word_pos
            .parse()
            .map_err(|_| format!("rng_word_pos: {} is not a number", v.rng_word_pos))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(v.rng_stream);
        rng.set_word_pos(word_pos);
        let mut bases = HashMap::new();
        for (k, at) in v.bases {
            let name = format!("basis/{k}");
            let bytes = state
                .blobs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b)
                .ok_or_else(|| format!("the {name} blob is missing"))?;
            let basis = SignalBasis::from_bytes(bytes)
                .ok_or_else(|| format!("the {name} blob is not a basis"))?;
            bases.insert(k, (at, Arc::new(basis)));
        }
        self.rng = rng;
        self.bases = bases;
        self.failed = v.failed.into_iter().collect();
        self.drops.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::{DefensesConfig, DropoutLayer, SignalDropoutConfig};
    use crate::obfuscate::{ObfuscationMode, obfuscate};

    #[test]
    fn drop_tail_equals_keeping_the_top_components() {
        let (rows, cols) = (3, 6);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0)
            .collect();
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z: Vec<f32> = (0..cols).map(|i| i as f32 / 3.0 - 0.7).collect();
        let t = Tensor::<2>::from_data(TensorData::new(z.clone(), [1, cols]), &Device::flex());
        let got = crate::train::to_vec(drop_tail(t, &b, 1));
        // Keeping component 0 of z_S plus all of z_N.
        let keep = obfuscate(&b, &z, ObfuscationMode::KeepComponents { m: 1 }).unwrap();
        let null = b.null_content(&z).unwrap();
        for i in 0..cols {
            assert!((got[i] - keep.z_prime[i] - null[i]).abs() < 1e-5, "{i}");
        }
    }

    /// The layers picked over 200 steps by the defense `build` makes.
    fn picks(seed: u64) -> Vec<Option<usize>> {
        let cfg = DefensesConfig {
            signal_dropout: Some(SignalDropoutConfig {
                rate: 0.5,
                min_keep: 0.1,
                refresh_steps: 1,
                layer: DropoutLayer::Random,
            }),
            ..Default::default()
        };
        let mut d = cfg.build(seed).pop().unwrap();
        (0..200).map(|_| d.pick_layer(2, 6)).collect()
    }

    #[test]
    fn the_draws_follow_the_recipe_seed() {
        assert_eq!(picks(1), picks(1));
        assert_ne!(picks(1), picks(2));
        assert!(picks(1).iter().any(Option::is_some));
    }

    #[test]
    fn a_restored_state_continues_the_same_draws() {
        let mut a = SignalDropout::new(0.5, 0.1, 1, 9);
        for _ in 0..37 {
            a.pick_layer(2, 6);
        }
        let state = a.state().unwrap().unwrap();
        let mut b = SignalDropout::new(0.5, 0.1, 1, 1234);
        b.restore(state, &Device::flex()).unwrap();
        let next = |d: &mut SignalDropout| (0..50).map(|_| d.pick_layer(2, 6)).collect::<Vec<_>>();
        assert_eq!(next(&mut a), next(&mut b));
    }

    #[test]
    fn rate_zero_trains_bit_identically() {
        use crate::defense::decov::tests::weights_after_one_epoch;
        let plain = weights_after_one_epoch(DefensesConfig::default());
        let cfg = |rate| DefensesConfig {
            signal_dropout: Some(SignalDropoutConfig {
                rate,
                min_keep: 0.1,
                refresh_steps: 1,
                layer: DropoutLayer::Split,
            }),
            ..Default::default()
        };
        assert_eq!(plain, weights_after_one_epoch(cfg(0.0)));
        assert_ne!(plain, weights_after_one_epoch(cfg(1.0)));
    }
}
