//! Signal-content dropout (seed 004, section 4.4 idea of training the server
//! to work from a truncated signal content; DESIGN section 5.6).
//!
//! With probability `rate` per step, the features sent at the defended split
//! lose the tail of their signal content: with `v_1..v_r` the signal basis
//! of the server's first operator (singular values non-increasing) and a
//! kept count `m = ceil(f r)` for `f ~ U[min_keep, 1]`,
//! `z' = z - sum_{j > m} (v_j . z) v_j`. The server thus learns to classify
//! from the leading components, which is what distortion-bounded
//! obfuscation keeps at inference. The basis is recomputed from the current
//! weights every `refresh_steps` steps.
//!
//! Deviation from "a random split layer": the trainer's transform hook acts
//! at the one defended split, so the dropout acts there too.

use std::sync::Arc;

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Defense, StepContext};
use crate::model::Features;
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
    rng: ChaCha8Rng,
    basis: Option<(usize, Arc<SignalBasis>)>,
    cache: BasisCache,
    failed: bool,
}

impl SignalDropout {
    /// A new defense; `seed` drives the random draws.
    pub fn new(rate: f32, min_keep: f32, refresh_steps: usize, seed: u64) -> Self {
        Self {
            rate,
            min_keep,
            refresh_steps: refresh_steps.max(1),
            rng: ChaCha8Rng::seed_from_u64(seed),
            basis: None,
            cache: BasisCache::default(),
            failed: false,
        }
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

    fn transform(&mut self, features: Features, ctx: &StepContext) -> Features {
        if self.rate == 0.0 || self.failed || self.rng.random::<f32>() >= self.rate {
            return features;
        }
        let stale = self
            .basis
            .as_ref()
            .is_none_or(|(at, _)| ctx.step >= at + self.refresh_steps);
        if stale {
            match self.cache.basis(ctx.model, ctx.split) {
                Ok(b) => self.basis = Some((ctx.step, b)),
                Err(_) => {
                    // No usable operator (residual block, too large): the
                    // recipe validation warns; training goes on unchanged.
                    self.failed = true;
                    return features;
                }
            }
        }
        let (_, basis) = self.basis.as_ref().expect("expected a basis after refresh");
        let f = self.rng.random_range(self.min_keep..=1.0f32);
        let m = ((f * basis.rank() as f32).ceil() as usize).min(basis.rank());
        let shape = features.example_shape();
        Features::from_flat(drop_tail(features.flatten(), basis, m), &shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::{DefensesConfig, SignalDropoutConfig};
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
            }),
            ..Default::default()
        };
        assert_eq!(plain, weights_after_one_epoch(cfg(0.0)));
        assert_ne!(plain, weights_after_one_epoch(cfg(1.0)));
    }
}
