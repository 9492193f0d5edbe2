//! Gradient defenses: what a client does to its gradient before sharing it
//! (seed 003, section 5: Gaussian noise and gradient pruning).
//!
//! A defense is described by the perturbation `delta` it adds, so the shared
//! gradient is `g + delta`; that same `delta` is what I2F takes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A standard normal draw (Box-Muller; `rand_distr` is not a dependency).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` independent standard normal draws from a seeded generator.
pub fn gaussian_vector(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| standard_normal(&mut rng)).collect()
}

/// One defense setting applied to a shared gradient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GradientDefense {
    /// Adds independent Gaussian noise of standard deviation `scale` to every
    /// entry: `delta ~ N(0, scale^2 I)` (scale 0: no defense).
    Noise {
        /// Standard deviation (absolute, in gradient units).
        scale: f64,
    },
    /// Zeroes the fraction `quantile` of entries with the smallest magnitude:
    /// `delta_j = -g_j` on those, 0 elsewhere.
    Prune {
        /// Fraction of entries removed, in [0, 1).
        quantile: f64,
    },
}

impl GradientDefense {
    /// Short label for tables and plots, e.g. `noise 1e-3`, `prune 0.5`.
    pub fn label(&self) -> String {
        match self {
            GradientDefense::Noise { scale } if *scale == 0.0 => "noise 0".into(),
            GradientDefense::Noise { scale } => format!("noise {scale:e}"),
            GradientDefense::Prune { quantile } => format!("prune {quantile}"),
        }
    }

    /// The perturbation `delta` this defense adds to gradient `g` (noise
    /// drawn from `seed`).
    pub fn perturbation(&self, g: &[f64], seed: u64) -> Vec<f64> {
        match self {
            GradientDefense::Noise { scale } => {
                if *scale == 0.0 {
                    return vec![0.0; g.len()];
                }
                gaussian_vector(g.len(), seed)
                    .into_iter()
                    .map(|z| z * scale)
                    .collect()
            }
            GradientDefense::Prune { quantile } => {
                let k = ((quantile * g.len() as f64).round() as usize).min(g.len());
                let mut order: Vec<usize> = (0..g.len()).collect();
                order.sort_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()).then(a.cmp(&b)));
                let mut delta = vec![0.0; g.len()];
                for &j in &order[..k] {
                    delta[j] = -g[j];
                }
                delta
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_noise_is_no_perturbation() {
        let d = GradientDefense::Noise { scale: 0.0 }.perturbation(&[1.0, -2.0], 7);
        assert_eq!(d, vec![0.0, 0.0]);
    }

    #[test]
    fn noise_has_the_requested_scale_and_is_seeded() {
        let g = vec![0.0; 20_000];
        let d = GradientDefense::Noise { scale: 0.01 }.perturbation(&g, 3);
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
        assert!(mean.abs() < 3e-4, "mean {mean}");
        assert!((sd - 0.01).abs() < 3e-4, "sd {sd}");
        assert_eq!(
            d,
            GradientDefense::Noise { scale: 0.01 }.perturbation(&g, 3)
        );
        assert_ne!(
            d,
            GradientDefense::Noise { scale: 0.01 }.perturbation(&g, 4)
        );
    }

    #[test]
    fn pruning_removes_the_smallest_entries() {
        let g = [0.5, -0.1, 2.0, 0.05, -3.0];
        let d = GradientDefense::Prune { quantile: 0.4 }.perturbation(&g, 0);
        // The two smallest magnitudes (0.05 and -0.1) are zeroed.
        let shared: Vec<f64> = g.iter().zip(&d).map(|(a, b)| a + b).collect();
        assert_eq!(shared, vec![0.5, 0.0, 2.0, 0.0, -3.0]);
        let none = GradientDefense::Prune { quantile: 0.0 }.perturbation(&g, 0);
        assert!(none.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn labels_name_the_setting() {
        assert_eq!(
            GradientDefense::Noise { scale: 0.001 }.label(),
            "noise 1e-3"
        );
        assert_eq!(
            GradientDefense::Prune { quantile: 0.5 }.label(),
            "prune 0.5"
        );
    }
}
