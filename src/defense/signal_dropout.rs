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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Defense, DropoutLayer};
use crate::model::{Features, SplitModel};
use crate::obfuscate::SignalBasis;
use crate::obfuscate::operator::BasisCache;

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
