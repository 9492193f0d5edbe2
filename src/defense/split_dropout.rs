//! Dropout at the split: every value the edge sends is zeroed with
//! probability `rate`, independently, in training and at inference, as
//! the GLASS paper evaluates dropout as a defense (Li et al., "GAN you see
//! me? Enhanced data reconstruction attacks against split inference",
//! NeurIPS 2023, its evaluation against defenses: dropout kept on for the
//! intermediate features the server receives at inference). With
//! `rescale: true` (default, "inverted" dropout as in Srivastava et al.
//! 2014) the kept values are multiplied by `1 / (1 - rate)` so the
//! expectation of each value is unchanged; with `rescale: false` they are
//! sent as they are.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::at_split::{Perturbation, SplitPerturbation, transform_in_training};
use super::{Defense, StepContext};
use crate::model::Features;

fn d_rescale() -> bool {
    true
}

/// Dropout-at-the-split settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitDropoutConfig {
    /// Probability each sent value is zeroed, in [0, 1) (0: no effect).
    pub rate: f32,
    /// Multiply the kept values by `1 / (1 - rate)` (default true).
    #[serde(default = "d_rescale")]
    pub rescale: bool,
}

impl SplitDropoutConfig {
    /// Validation problems as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !(self.rate >= 0.0 && self.rate < 1.0) {
            p.push((
                "rate".into(),
                format!("must be in [0, 1), got {}", self.rate),
            ));
        }
        p
    }
}

/// Dropout at the split.
#[derive(Clone, Debug)]
pub struct SplitDropout {
    /// The settings.
    pub config: SplitDropoutConfig,
}

impl SplitDropout {
    /// The defense with these settings.
    pub fn new(config: SplitDropoutConfig) -> Self {
        Self { config }
    }
}

impl SplitPerturbation for SplitDropout {
    fn name(&self) -> &'static str {
        "split_dropout"
    }

    fn active(&self) -> bool {
        self.config.rate != 0.0
    }

    fn draw(&self, z: &[f32], _dim: usize, _std: f32, rng: &mut ChaCha8Rng) -> Perturbation {
        let rate = self.config.rate;
        let kept = if self.config.rescale {
            1.0 / (1.0 - rate)
        } else {
            1.0
        };
        Perturbation::Mask(
            z.iter()
                .map(|_| {
                    if rng.random::<f32>() < rate {
                        0.0
                    } else {
                        kept
                    }
                })
                .collect(),
        )
    }
}

impl Defense for SplitDropout {
    fn name(&self) -> &'static str {
        "split_dropout"
    }

    fn transform(&mut self, features: Features, ctx: &StepContext) -> Features {
        transform_in_training(self, features, ctx)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::defense::DefensesConfig;
    use crate::defense::at_split::AtSplit;
    use crate::defense::decov::tests::weights_after_one_epoch;

    fn dropout(rate: f32, rescale: bool) -> SplitDropout {
        SplitDropout::new(SplitDropoutConfig { rate, rescale })
    }

    #[test]
    fn values_are_dropped_at_the_rate_and_kept_ones_rescaled() {
        let n = 100_000;
        let z: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
        for rescale in [true, false] {
            let at = AtSplit::new(vec![Box::new(dropout(0.3, rescale))], 10, 1.0, 4).unwrap();
            let out = at.apply(z.clone());
            let zeros = out.iter().filter(|v| **v == 0.0).count() as f64 / n as f64;
            assert!((zeros - 0.3).abs() < 0.005, "{zeros}");
            let factor = if rescale { 1.0 / 0.7 } else { 1.0 };
            for (o, v) in out.iter().zip(&z) {
                assert!(*o == 0.0 || (o - v * factor).abs() < 1e-5, "{o} {v}");
            }
            if rescale {
                // The expectation is unchanged.
                let (so, sz): (f64, f64) = (
                    out.iter().map(|&v| f64::from(v)).sum(),
                    z.iter().map(|&v| f64::from(v)).sum(),
                );
                assert!((so / sz - 1.0).abs() < 0.01, "{}", so / sz);
            }
        }
    }

    #[test]
    fn the_mask_is_seeded() {
        let p = dropout(0.5, true);
        let z = vec![1.0f32; 64];
        let draw = |s| p.draw(&z, 8, 1.0, &mut ChaCha8Rng::seed_from_u64(s));
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn rate_zero_trains_bit_identically() {
        let plain = weights_after_one_epoch(DefensesConfig::default());
        let cfg = |rate| DefensesConfig {
            split_dropout: Some(SplitDropoutConfig {
                rate,
                rescale: true,
            }),
            ..Default::default()
        };
        assert_eq!(plain, weights_after_one_epoch(cfg(0.0)));
        assert_ne!(plain, weights_after_one_epoch(cfg(0.5)));
    }

    #[test]
    fn split_dropout_rate_must_be_below_one() {
        for bad in [1.0f32, -0.1, f32::NAN] {
            let cfg = DefensesConfig {
                split_dropout: Some(SplitDropoutConfig {
                    rate: bad,
                    rescale: true,
                }),
                ..Default::default()
            };
            let p = cfg.problems();
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].0, "split_dropout.rate");
            assert!(p[0].1.contains("[0, 1)"), "{}", p[0].1);
        }
    }
}
