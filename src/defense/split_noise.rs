//! Noise at the split: the edge adds i.i.d. Gaussian or Laplace noise to
//! every value it sends, in training (so the server learns to classify
//! noisy features) and at inference (so the server, the accuracy and every
//! attack see them). The classic additive-noise baseline of split learning
//! (e.g. Titcombe et al. 2021, "Practical defences against model inversion
//! attacks for split neural networks": Laplace noise added to the
//! intermediate features; Mireshghallah et al. 2020, Shredder, as the
//! non-learned noise its learned noise is compared with).
//!
//! `scale` is the distribution's scale parameter: the standard deviation
//! `sigma` for `gaussian` (density `exp(-x^2 / 2 sigma^2)`), `b` for
//! `laplace` (density `exp(-|x| / b) / 2b`, standard deviation `sqrt(2) b`).
//! With `relative: true` the parameter is `scale * std(z)`, the standard
//! deviation of all values of the features: of the batch in training, of
//! the model owner's training data at the split at inference (computed once
//! when the deployment is built, so a single query's noise does not depend
//! on the other queries sent with it).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::at_split::{Perturbation, SplitPerturbation, transform_in_training};
use super::{Defense, StepContext};
use crate::model::Features;

/// The noise distribution.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    /// Normal with standard deviation `scale`.
    #[default]
    Gaussian,
    /// Laplace with scale parameter `b = scale`.
    Laplace,
}

/// Noise-at-the-split settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitNoiseConfig {
    /// `gaussian` (default) or `laplace`.
    #[serde(default)]
    pub kind: NoiseKind,
    /// Scale parameter, finite and >= 0 (0: no effect): the standard
    /// deviation for `gaussian`, `b` for `laplace`; with `relative: true`, a
    /// multiple of the features' standard deviation.
    pub scale: f32,
    /// When true, the scale is `scale * std(features)` (of the batch in
    /// training, of the owner's training data at inference). Default false.
    #[serde(default)]
    pub relative: bool,
}

impl SplitNoiseConfig {
    /// Validation problems as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !(self.scale.is_finite() && self.scale >= 0.0) {
            p.push((
                "scale".into(),
                format!("must be finite and >= 0, got {}", self.scale),
            ));
        }
        p
    }
}

/// One standard normal draw (Box-Muller).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // u1 in (0, 1] so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One Laplace(0, 1) draw (inverse CDF: `-sign(u) ln(1 - 2|u|)`, u ~ U(-1/2, 1/2)).
pub fn standard_laplace(rng: &mut ChaCha8Rng) -> f64 {
    let u = rng.random::<f64>() - 0.5;
    // 1 - 2|u| is in (0, 1]: finite.
    -u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

/// Noise at the split.
#[derive(Clone, Debug)]
pub struct SplitNoise {
    /// The settings.
    pub config: SplitNoiseConfig,
}

impl SplitNoise {
    /// The defense with these settings.
    pub fn new(config: SplitNoiseConfig) -> Self {
        Self { config }
    }

    /// The scale parameter for features whose standard deviation is `std`.
    pub fn parameter(&self, std: f32) -> f32 {
        if self.config.relative {
            self.config.scale * std
        } else {
            self.config.scale
        }
    }
}

impl SplitPerturbation for SplitNoise {
    fn name(&self) -> &'static str {
        "split_noise"
    }

    fn active(&self) -> bool {
        self.config.scale != 0.0
    }

    fn draw(
        &self,
        z: &[f32],
        _dim: usize,
        reference_std: f32,
        rng: &mut ChaCha8Rng,
    ) -> Perturbation {
        let b = f64::from(self.parameter(reference_std));
        let sample: fn(&mut ChaCha8Rng) -> f64 = match self.config.kind {
            NoiseKind::Gaussian => standard_normal,
            NoiseKind::Laplace => standard_laplace,
        };
        Perturbation::Add(z.iter().map(|_| (b * sample(rng)) as f32).collect())
    }
}

impl Defense for SplitNoise {
    fn name(&self) -> &'static str {
        "split_noise"
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

    fn noise(kind: NoiseKind, scale: f32, relative: bool) -> SplitNoise {
        SplitNoise::new(SplitNoiseConfig {
            kind,
            scale,
            relative,
        })
    }

    /// Mean, standard deviation and mean absolute value of the noise added
    /// to `n` zeros.
    fn moments(p: &SplitNoise, n: usize, reference_std: f32) -> (f64, f64, f64, Vec<f64>) {
        let z = vec![0.0f32; n];
        let Perturbation::Add(a) = p.draw(&z, 10, reference_std, &mut ChaCha8Rng::seed_from_u64(9))
        else {
            panic!("expected additive noise");
        };
        let a: Vec<f64> = a.into_iter().map(f64::from).collect();
        let mean = a.iter().sum::<f64>() / n as f64;
        let std = (a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let mad = a.iter().map(|x| x.abs()).sum::<f64>() / n as f64;
        (mean, std, mad, a)
    }

    #[test]
    fn gaussian_noise_has_the_defined_mean_and_std() {
        let n = 200_000;
        let (mean, std, mad, _) = moments(&noise(NoiseKind::Gaussian, 0.5, false), n, 1.0);
        assert!(mean.abs() < 0.005, "{mean}");
        assert!((std - 0.5).abs() < 0.005, "{std}");
        // E|x| = sigma sqrt(2 / pi) for a normal.
        let want = 0.5 * (2.0 / std::f64::consts::PI).sqrt();
        assert!((mad - want).abs() < 0.005, "{mad} vs {want}");
    }

    #[test]
    fn laplace_noise_has_the_defined_shape() {
        let n = 200_000;
        let b = 0.3;
        let (mean, std, mad, a) = moments(&noise(NoiseKind::Laplace, b as f32, false), n, 1.0);
        assert!(mean.abs() < 0.005, "{mean}");
        // std = sqrt(2) b, E|x| = b, P(|x| > t) = exp(-t / b).
        assert!((std - 2f64.sqrt() * b).abs() < 0.006, "{std}");
        assert!((mad - b).abs() < 0.004, "{mad}");
        for t in [0.5 * b, b, 2.0 * b] {
            let tail = a.iter().filter(|x| x.abs() > t).count() as f64 / n as f64;
            assert!((tail - (-t / b).exp()).abs() < 0.005, "t={t}: {tail}");
        }
    }

    #[test]
    fn relative_scale_is_a_multiple_of_the_reference_std() {
        let (_, std, _, _) = moments(&noise(NoiseKind::Gaussian, 0.5, true), 100_000, 4.0);
        assert!((std - 2.0).abs() < 0.03, "{std}");
    }

    #[test]
    fn inference_noise_is_seeded_and_deterministic() {
        let z: Vec<f32> = (0..40).map(|i| i as f32 / 10.0).collect();
        let make = |seed| {
            AtSplit::new(
                vec![Box::new(noise(NoiseKind::Laplace, 0.2, false))],
                10,
                1.0,
                seed,
            )
            .unwrap()
        };
        let a = make(1).apply(z.clone());
        assert_eq!(a, make(1).apply(z.clone()), "same seed, same noise");
        assert_ne!(
            a,
            make(2).apply(z.clone()),
            "the recipe's seed drives the draws"
        );
        assert_ne!(a, z);
        assert!(
            AtSplit::new(
                vec![Box::new(noise(NoiseKind::Laplace, 0.0, false))],
                10,
                1.0,
                1
            )
            .is_none()
        );
    }

    #[test]
    fn scale_zero_trains_bit_identically() {
        let plain = weights_after_one_epoch(DefensesConfig::default());
        let cfg = |scale| DefensesConfig {
            split_noise: Some(SplitNoiseConfig {
                kind: NoiseKind::Laplace,
                scale,
                relative: true,
            }),
            ..Default::default()
        };
        assert_eq!(plain, weights_after_one_epoch(cfg(0.0)));
        assert_ne!(plain, weights_after_one_epoch(cfg(0.5)));
    }

    #[test]
    fn split_noise_scale_must_be_finite_and_non_negative() {
        for bad in [-0.1f32, f32::NAN, f32::INFINITY] {
            let cfg = DefensesConfig {
                split_noise: Some(SplitNoiseConfig {
                    kind: NoiseKind::Gaussian,
                    scale: bad,
                    relative: false,
                }),
                ..Default::default()
            };
            let p = cfg.problems();
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].0, "split_noise.scale");
            assert!(p[0].1.contains(">= 0"), "{}", p[0].1);
        }
    }
}
