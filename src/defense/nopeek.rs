//! NoPeek (Vepakomma et al. 2020, "NoPeek: Information leakage reduction
//! to share activations in distributed deep learning", its loss
//! `alpha_1 DCOR(X, Z) + alpha_2 CE(Y, f(X))`): the model is trained to
//! keep the task while the split features `Z` become statistically less
//! dependent on the input `X`, measured by distance correlation.
//!
//! The term is `weight * R*(X, Z)` with `X` `[N, C*H*W]` the flattened
//! input batch, `Z` `[N, D]` the flattened split features (before any
//! transform at the split) and `R*` the bias-corrected distance correlation
//! of Székely & Rizzo (2014, "Partial distance correlation with methods for
//! dissimilarities", Ann. Statist. 42(6): U-centred distance matrices and
//! the unbiased estimator of dCov^2 of its section 2, and the bias-corrected
//! dCor `R*` built from them; the `bcdcor` of R's `energy` package):
//!
//! - `a_ij = ||x_i - x_j||`, U-centred (for `i != j`, zero diagonal):
//!   `A_ij = a_ij - a_i. / (n - 2) - a_.j / (n - 2) + a_.. / ((n - 1)(n - 2))`;
//! - `(A . B) = sum_{i != j} A_ij B_ij / (n (n - 3))`, an unbiased estimator
//!   of the squared distance covariance;
//! - `R* = (A . B) / sqrt((A . A)(B . B))`, which estimates dCor^2 without
//!   the upward bias of the plug-in estimator in high dimension (it can be
//!   slightly negative for independent data).
//!
//! It needs `n >= 4`; a smaller batch adds no term. Everything is written
//! with tensor ops so the gradient reaches the edge blocks.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Defense, StepContext};

/// NoPeek settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoPeekConfig {
    /// Weight of the distance-correlation term, finite and >= 0 (0: no
    /// effect): the NoPeek paper's `alpha_1` (with `alpha_2 = 1`).
    pub weight: f32,
}

impl NoPeekConfig {
    /// Validation problems as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            p.push((
                "weight".into(),
                format!("must be finite and >= 0, got {}", self.weight),
            ));
        }
        p
    }
}

/// The NoPeek loss term.
#[derive(Clone, Debug)]
pub struct NoPeek {
    /// Weight of the term (0 turns it off).
    pub weight: f32,
    sum: f64,
    steps: usize,
}

impl NoPeek {
    /// NoPeek with the given weight.
    pub fn new(weight: f32) -> Self {
        Self {
            weight,
            sum: 0.0,
            steps: 0,
        }
    }
}

/// Pairwise Euclidean distances of the rows of `x` `[N, D]`, `[N, N]`, with
/// an exactly zero diagonal and a finite gradient everywhere.
fn distances(x: Tensor<2>) -> Tensor<2> {
    let n = x.dims()[0];
    // Centring does not change distances and keeps the Gram form accurate.
    let x = x.clone() - x.mean_dim(0);
    let sq = x.clone().powi_scalar(2).sum_dim(1);
    let gram = x.clone().matmul(x.transpose());
    let d2 = (sq.clone() + sq.transpose() - gram * 2.0).clamp_min(0.0);
    let off = Tensor::<2>::ones([n, n], &d2.device()) - Tensor::<2>::eye(n, &d2.device());
    // The epsilon keeps sqrt's gradient finite at 0 (the diagonal, masked out).
    (d2 + 1e-12).sqrt() * off
}

/// The U-centred distance matrix of `x` `[N, D]` (zero diagonal); `N >= 4`.
fn u_centred(x: Tensor<2>) -> Tensor<2> {
    let n = x.dims()[0];
    let a = distances(x);
    let nf = n as f32;
    let rows = a.clone().sum_dim(1) / (nf - 2.0);
    let cols = a.clone().sum_dim(0) / (nf - 2.0);
    let total = a.clone().sum().reshape([1, 1]) / ((nf - 1.0) * (nf - 2.0));
    let off = Tensor::<2>::ones([n, n], &a.device()) - Tensor::<2>::eye(n, &a.device());
    (a - rows - cols + total) * off
}

/// The bias-corrected distance correlation `R*(X, Z)` of two batches
/// `[N, Dx]` and `[N, Dz]` (see the module docs), `[1]`; `N >= 4`.
pub fn distance_correlation(x: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
    let n = x.dims()[0] as f32;
    let (a, b) = (u_centred(x), u_centred(z));
    let norm = n * (n - 3.0);
    let ab = (a.clone() * b.clone()).sum() / norm;
    let aa = a.powi_scalar(2).sum() / norm;
    let bb = b.powi_scalar(2).sum() / norm;
    ab / (aa * bb).clamp_min(1e-30).sqrt()
}

impl Defense for NoPeek {
    fn name(&self) -> &'static str {
        "nopeek"
    }

    fn loss(&mut self, ctx: &StepContext) -> Option<Tensor<1>> {
        let n = ctx.images.dims()[0];
        if self.weight == 0.0 || n < 4 {
            return None;
        }
        let x = ctx.images.clone().flatten(1, 3);
        let r = distance_correlation(x, ctx.features.clone().flatten());
        self.sum += f64::from(crate::train::to_vec(r.clone().detach())[0]);
        self.steps += 1;
        Some(r * self.weight)
    }

    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        let mean = self.sum / self.steps.max(1) as f64;
        (self.sum, self.steps) = (0.0, 0);
        vec![("nopeek_dcor".into(), mean)]
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::defense::DefensesConfig;
    use crate::defense::decov::tests::weights_after_one_epoch;
    use crate::train::to_vec;

    /// `R*` by the definition, in f64 loops.
    fn naive(x: &[f64], dx: usize, z: &[f64], dz: usize) -> f64 {
        let n = x.len() / dx;
        let dist = |v: &[f64], d: usize| -> Vec<Vec<f64>> {
            (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| {
                            (0..d)
                                .map(|k| (v[i * d + k] - v[j * d + k]).powi(2))
                                .sum::<f64>()
                                .sqrt()
                        })
                        .collect()
                })
                .collect()
        };
        let centre = |a: Vec<Vec<f64>>| -> Vec<Vec<f64>> {
            let nf = n as f64;
            let row: Vec<f64> = a.iter().map(|r| r.iter().sum()).collect();
            let col: Vec<f64> = (0..n).map(|j| a.iter().map(|r| r[j]).sum()).collect();
            let tot: f64 = row.iter().sum();
            (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| {
                            if i == j {
                                0.0
                            } else {
                                a[i][j] - row[i] / (nf - 2.0) - col[j] / (nf - 2.0)
                                    + tot / ((nf - 1.0) * (nf - 2.0))
                            }
                        })
                        .collect()
                })
                .collect()
        };
        let (a, b) = (centre(dist(x, dx)), centre(dist(z, dz)));
        let dot = |p: &Vec<Vec<f64>>, q: &Vec<Vec<f64>>| -> f64 {
            let mut s = 0.0;
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        s += p[i][j] * q[i][j];
                    }
                }
            }
            s / (n as f64 * (n as f64 - 3.0))
        };
        dot(&a, &b) / (dot(&a, &a) * dot(&b, &b)).sqrt()
    }

    fn random(n: usize, d: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| rng.random::<f64>() * 2.0 - 1.0)
            .collect()
    }

    fn tensor(v: &[f64], n: usize, d: usize) -> Tensor<2> {
        let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::from_data(TensorData::new(v, [n, d]), &Device::flex())
    }

    fn dcor(x: &[f64], dx: usize, z: &[f64], dz: usize) -> f64 {
        let n = x.len() / dx;
        f64::from(to_vec(distance_correlation(tensor(x, n, dx), tensor(z, n, dz)))[0])
    }

    #[test]
    fn dcor_equals_the_naive_definition() {
        for (n, dx, dz, seed) in [(6, 5, 3, 1), (9, 7, 4, 2), (16, 12, 6, 3)] {
            let x = random(n, dx, seed);
            // Z depends on X (a nonlinear map) plus independent noise.
            let noise = random(n, dz, seed + 100);
            let z: Vec<f64> = (0..n * dz)
                .map(|i| (x[(i / dz) * dx + i % dz] * 2.0).tanh() + 0.5 * noise[i])
                .collect();
            let (got, want) = (dcor(&x, dx, &z, dz), naive(&x, dx, &z, dz));
            assert!((got - want).abs() < 1e-4, "n={n}: {got} vs {want}");
            let indep = random(n, dz, seed + 200);
            let (got, want) = (dcor(&x, dx, &indep, dz), naive(&x, dx, &indep, dz));
            assert!((got - want).abs() < 1e-4, "n={n}: {got} vs {want}");
        }
    }

    #[test]
    fn dcor_is_one_with_itself_and_near_zero_when_independent() {
        let (n, d) = (200, 10);
        let x = random(n, d, 7);
        assert!((dcor(&x, d, &x, d) - 1.0).abs() < 1e-4);
        // Invariant to scaling and translation.
        let y: Vec<f64> = x.iter().map(|v| 3.0 * v + 1.0).collect();
        assert!((dcor(&x, d, &y, d) - 1.0).abs() < 1e-4);
        let indep = random(n, 4, 8);
        let r = dcor(&x, d, &indep, 4);
        assert!(r.abs() < 0.02, "independent: {r}");
        // A dependent but uncorrelated relation (x, x^2 on [-1, 1]) is
        // detected: its population dCor^2 is about 0.24.
        let x1 = random(n, 1, 9);
        let sq: Vec<f64> = x1.iter().map(|v| v * v).collect();
        let r = dcor(&x1, 1, &sq, 1);
        assert!(r > 0.1, "x, x^2: {r}");
    }

    #[test]
    fn weight_zero_trains_bit_identically() {
        let plain = weights_after_one_epoch(DefensesConfig::default());
        let cfg = |weight| DefensesConfig {
            nopeek: Some(NoPeekConfig { weight }),
            ..Default::default()
        };
        assert_eq!(plain, weights_after_one_epoch(cfg(0.0)));
        assert_ne!(plain, weights_after_one_epoch(cfg(1.0)));
    }

    #[test]
    fn the_term_moves_the_edge_gradient() {
        let dev = Device::flex().autodiff();
        let x = Tensor::<2>::from_data(
            TensorData::new(
                random(8, 6, 4)
                    .iter()
                    .map(|&v| v as f32)
                    .collect::<Vec<_>>(),
                [8, 6],
            ),
            &dev,
        );
        let w = Tensor::<2>::from_data(
            TensorData::new(
                random(6, 3, 5)
                    .iter()
                    .map(|&v| v as f32)
                    .collect::<Vec<_>>(),
                [6, 3],
            ),
            &dev,
        )
        .require_grad();
        let r = distance_correlation(x.clone(), x.matmul(w.clone()));
        let g = to_vec(w.grad(&r.backward()).expect("a gradient for w"));
        assert!(g.iter().all(|v| v.is_finite()));
        assert!(g.iter().any(|v| v.abs() > 1e-6));
    }

    #[test]
    fn nopeek_weight_cannot_be_negative() {
        let cfg = DefensesConfig {
            nopeek: Some(NoPeekConfig { weight: -0.1 }),
            ..Default::default()
        };
        let p = cfg.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "nopeek.weight");
        assert!(p[0].1.contains("-0.1"));
    }
}
