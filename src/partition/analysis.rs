//! Per-split feature statistics: intra-class variance R_c^2 and a Gaussian
//! estimate of the class-conditional entropy H(Z|Y).
//!
//! Source: seed 002, "Golden Partition Zone" (arXiv 2506.15412), method as
//! summarised in `seeds/README.md`: flatten a candidate split's features,
//! group them by the model's *predicted* labels, and take R_c^2 = the mean
//! squared distance to the class centroid. The seed file holds only the
//! abstract, which names R_c^2, the feature dimension and H as the factors
//! behind the transition; the exact aggregation over classes is ours:
//!
//! - **R_c^2 is weighted by class size**: `(1/N) sum_i ||z_i - mu_{y_i}||^2`,
//!   i.e. `sum_c p_c R_c^2(c)` with `p_c = n_c / N`. This is the within-class
//!   scatter of LDA, so `intra + between = total` and the normalised value
//!   `intra / total` lies in `[0, 1]`. The unweighted mean over classes can be
//!   recomputed from [`LayerStats::classes`].
//! - **H(Z|Y) uses an isotropic Gaussian per class**:
//!   `H = sum_c p_c * (dim/2) * ln(2 pi e (sigma_c^2 + floor))` with
//!   `sigma_c^2 = R_c^2(c) / dim`, the differential entropy of
//!   `N(mu_c, sigma_c^2 I)` (Cover & Thomas, *Elements of Information
//!   Theory*, 2nd ed., Theorem 8.4.1). Among distributions with the same
//!   per-class total variance the isotropic Gaussian has the largest entropy
//!   (Theorem 8.6.5 plus AM-GM on the covariance eigenvalues), so this is an
//!   upper bound. A full or diagonal covariance would be singular whenever
//!   `dim > n_c` or a ReLU unit is dead within a class, which is the normal
//!   case for conv features; the isotropic one needs a floor only for a class
//!   with a single sample or identical samples.
//!
//! Variances are maximum-likelihood (divide by `n_c`, not `n_c - 1`), so
//! `sigma_c^2 * dim` is exactly the class's R_c^2. All sums run in f64; rows
//! are read class by class (one pass for class centroids, one for R_c^2, one
//! for the total variance) with `O(dim)` extra memory, whatever the number of
//! classes.

use super::PartitionError;
use serde::{Deserialize, Serialize};

/// Variance floor added to each class's per-dimension variance before the
/// logarithm in the entropy estimate, so a class with one sample (or with
/// identical samples) has a finite entropy.
pub const ENTROPY_VARIANCE_FLOOR: f64 = 1e-12;

/// R_c^2 of one predicted class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// The predicted label.
    pub label: u32,
    /// How many samples the model assigned to it.
    pub count: usize,
    /// Mean squared distance of its samples to its centroid.
    pub rc2: f64,
}

/// Statistics of one candidate split's features (seed 002).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// Number of samples.
    pub n: usize,
    /// Flattened feature dimension.
    pub dim: usize,
    /// Per predicted class, sorted by label.
    pub classes: Vec<ClassStats>,
    /// R_c^2: class-size-weighted mean of the per-class mean squared distance
    /// to the class centroid, `(1/N) sum_i ||z_i - mu_{y_i}||^2`.
    pub intra_class_variance: f64,
    /// Mean squared distance to the global centroid, `(1/N) sum_i ||z_i - mu||^2`.
    pub total_variance: f64,
    /// `intra_class_variance / total_variance`, in `[0, 1]`; 0 when the total
    /// variance is 0 (all features identical).
    pub normalized_rc2: f64,
    /// `intra_class_variance / dim`: the mean per-dimension class variance.
    pub per_dim_rc2: f64,
    /// Gaussian estimate of H(Z|Y) in nats (isotropic Gaussian per class).
    pub conditional_entropy: f64,
    /// `conditional_entropy / dim`, nats per feature dimension.
    pub conditional_entropy_per_dim: f64,
}

/// Computes R_c^2, total variance and the Gaussian H(Z|Y) of one candidate
/// split's features, `features` being `[n, dim]` row-major and `predicted`
/// the model's predicted label of each row (see the module doc for the
/// formulas and their source).
pub fn layer_stats(
    features: &[f32],
    n: usize,
    dim: usize,
    predicted: &[u32],
) -> Result<LayerStats, PartitionError> {
    if n == 0 {
        return Err(PartitionError::Empty {
            what: "samples (n)",
        });
    }
    if dim == 0 {
        return Err(PartitionError::Empty {
            what: "feature dimension (dim)",
        });
    }
    if n < 2 {
        return Err(PartitionError::TooFewSamples { n });
    }
    let len = n
        .checked_mul(dim)
        .ok_or(PartitionError::SizeOverflow { n, dim })?;
    if features.len() != len {
        return Err(PartitionError::LengthMismatch {
            what: "features (must be n * dim)",
            expected: len,
            got: features.len(),
        });
    }
    if predicted.len() != n {
        return Err(PartitionError::LengthMismatch {
            what: "predicted labels (must be n)",
            expected: n,
            got: predicted.len(),
        });
    }

    let row = |i: usize| &features[i * dim..(i + 1) * dim];

    // Sample indices grouped by label (stable, so rows within a class keep
    // their order and the sums are reproducible).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| predicted[i]);

    let mut centroid = vec![0.0f64; dim];
    let mut global_sum = vec![0.0f64; dim];
    let mut within_ss = 0.0f64;
    let mut classes = Vec::new();
    for group in order.chunk_by(|&a, &b| predicted[a] == predicted[b]) {
        centroid.fill(0.0);
        for &i in group {
            for (c, &x) in centroid.iter_mut().zip(row(i)) {
                *c += f64::from(x);
            }
        }
        for (g, &c) in global_sum.iter_mut().zip(&centroid) {
            *g += c;
        }
        let count = group.len();
        let inv = 1.0 / count as f64;
        centroid.iter_mut().for_each(|c| *c *= inv);
        let class_ss: f64 = group.iter().map(|&i| sq_dist(row(i), &centroid)).sum();
        within_ss += class_ss;
        classes.push(ClassStats {
            label: predicted[group[0]],
            count,
            rc2: class_ss * inv,
        });
    }

    let inv_n = 1.0 / n as f64;
    global_sum.iter_mut().for_each(|g| *g *= inv_n);
    let total_ss: f64 = (0..n).map(|i| sq_dist(row(i), &global_sum)).sum();

    // Finite f32 inputs cannot overflow these f64 sums, so a non-finite
    // result means a non-finite input: name the first one.
    if !within_ss.is_finite() || !total_ss.is_finite() {
        let (index, &value) = features
            .iter()
            .enumerate()
            .find(|(_, x)| !x.is_finite())
            .expect("a non-finite variance comes from a non-finite feature");
        return Err(PartitionError::NonFinite {
            what: "features",
            index,
            value: f64::from(value),
        });
    }

    let intra = within_ss * inv_n;
    let total = total_ss * inv_n;
    let dim_f = dim as f64;
    let two_pi_e = 2.0 * std::f64::consts::PI * std::f64::consts::E;
    let entropy: f64 = classes
        .iter()
        .map(|c| {
            let sigma2 = c.rc2 / dim_f + ENTROPY_VARIANCE_FLOOR;
            (c.count as f64 * inv_n) * 0.5 * dim_f * (two_pi_e * sigma2).ln()
        })
        .sum();

    Ok(LayerStats {
        n,
        dim,
        classes,
        intra_class_variance: intra,
        total_variance: total,
        normalized_rc2: if total > 0.0 { intra / total } else { 0.0 },
        per_dim_rc2: intra / dim_f,
        conditional_entropy: entropy,
        conditional_entropy_per_dim: entropy / dim_f,
    })
}

/// Squared Euclidean distance between an f32 row and an f64 point, in f64.
fn sq_dist(row: &[f32], point: &[f64]) -> f64 {
    row.iter()
        .zip(point)
        .map(|(&x, &c)| {
            let d = f64::from(x) - c;
            d * d
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-12;

    /// Naive re-computation straight from the definitions, on `Vec` rows.
    fn naive(rows: &[Vec<f64>], labels: &[u32]) -> (f64, f64) {
        let n = rows.len() as f64;
        let dim = rows[0].len();
        let mean = |idx: &[usize]| -> Vec<f64> {
            (0..dim)
                .map(|d| idx.iter().map(|&i| rows[i][d]).sum::<f64>() / idx.len() as f64)
                .collect()
        };
        let sq =
            |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum() };
        let all: Vec<usize> = (0..rows.len()).collect();
        let mu = mean(&all);
        let total = rows.iter().map(|r| sq(r, &mu)).sum::<f64>() / n;
        let mut intra = 0.0;
        let mut seen: Vec<u32> = labels.to_vec();
        seen.sort();
        seen.dedup();
        for c in seen {
            let idx: Vec<usize> = all.iter().copied().filter(|&i| labels[i] == c).collect();
            let mu_c = mean(&idx);
            let rc2_c = idx.iter().map(|&i| sq(&rows[i], &mu_c)).sum::<f64>() / idx.len() as f64;
            intra += idx.len() as f64 / n * rc2_c;
        }
        (intra, total)
    }

    fn flat(rows: &[Vec<f64>]) -> Vec<f32> {
        rows.iter().flatten().map(|&x| x as f32).collect()
    }

    #[test]
    fn two_clusters_match_hand_values() {
        // Class 0 around (1, 1), class 1 around (11, 11): each point at
        // squared distance 2, 2, 4 from its centroid, so R_c^2 = 8/3; the
        // global centroid is (6, 6) and the total is 316 / 6.
        let rows = vec![
            vec![0.0, 0.0],
            vec![2.0, 0.0],
            vec![1.0, 3.0],
            vec![10.0, 10.0],
            vec![12.0, 10.0],
            vec![11.0, 13.0],
        ];
        let labels = [0, 0, 0, 1, 1, 1];
        let s = layer_stats(&flat(&rows), 6, 2, &labels).unwrap();
        assert!((s.intra_class_variance - 8.0 / 3.0).abs() < TOL);
        assert!((s.total_variance - 316.0 / 6.0).abs() < TOL);
        assert!((s.normalized_rc2 - 16.0 / 316.0).abs() < TOL);
        assert!((s.per_dim_rc2 - 4.0 / 3.0).abs() < TOL);
        assert_eq!(s.classes.len(), 2);
        assert_eq!((s.classes[1].label, s.classes[1].count), (1, 3));
        assert!((s.classes[0].rc2 - 8.0 / 3.0).abs() < TOL);
        // Both classes: sigma^2 = 4/3, so H = 2 * 0.5 * ln(2 pi e 4/3).
        assert!((s.conditional_entropy - 3.125559138861126).abs() < 1e-9);
        assert!((s.conditional_entropy_per_dim - 3.125559138861126 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn unequal_interleaved_classes_match_naive_weighted_definition() {
        let rows = vec![
            vec![0.5, -1.0, 2.0],
            vec![3.0, 0.25, -1.5],
            vec![0.0, 4.0, 1.0],
            vec![-2.0, 1.0, 0.5],
            vec![1.5, 1.5, 1.5],
            vec![7.0, -3.0, 0.0],
            vec![2.0, 2.0, -2.0],
        ];
        let labels = [7, 3, 7, 3, 3, 9, 3];
        let s = layer_stats(&flat(&rows), 7, 3, &labels).unwrap();
        let (intra, total) = naive(&rows, &labels);
        assert!((s.intra_class_variance - intra).abs() < TOL);
        assert!((s.total_variance - total).abs() < TOL);
        let labels_seen: Vec<u32> = s.classes.iter().map(|c| c.label).collect();
        assert_eq!(labels_seen, vec![3, 7, 9]);
        // The singleton class 9 has rc2 0 and contributes the floored entropy.
        assert_eq!(s.classes[2].rc2, 0.0);
        let two_pi_e = 2.0 * std::f64::consts::PI * std::f64::consts::E;
        let h: f64 = s
            .classes
            .iter()
            .map(|c| {
                c.count as f64 / 7.0
                    * 1.5
                    * (two_pi_e * (c.rc2 / 3.0 + ENTROPY_VARIANCE_FLOOR)).ln()
            })
            .sum();
        assert!((s.conditional_entropy - h).abs() < 1e-9);
    }

    #[test]
    fn one_class_has_normalized_rc2_one() {
        let rows = vec![vec![1.0], vec![2.0], vec![4.0]];
        let s = layer_stats(&flat(&rows), 3, 1, &[5, 5, 5]).unwrap();
        assert!((s.normalized_rc2 - 1.0).abs() < TOL);
        assert!((s.intra_class_variance - 14.0 / 9.0).abs() < TOL);
    }

    #[test]
    fn identical_features_give_zero_normalized_rc2_and_finite_entropy() {
        let s = layer_stats(&[3.0; 8], 4, 2, &[0, 1, 0, 1]).unwrap();
        assert_eq!(s.total_variance, 0.0);
        assert_eq!(s.normalized_rc2, 0.0);
        let expected =
            (2.0 * std::f64::consts::PI * std::f64::consts::E * ENTROPY_VARIANCE_FLOOR).ln();
        assert!((s.conditional_entropy - expected).abs() < 1e-9);
    }

    #[test]
    fn features_length_must_be_n_times_dim() {
        let err = layer_stats(&[0.0; 5], 3, 2, &[0, 0, 1]).unwrap_err();
        assert_eq!(
            err,
            PartitionError::LengthMismatch {
                what: "features (must be n * dim)",
                expected: 6,
                got: 5
            }
        );
        assert!(err.to_string().contains("expected length 6, got 5"));
    }

    #[test]
    fn predicted_length_must_be_n() {
        let err = layer_stats(&[0.0; 6], 3, 2, &[0, 1]).unwrap_err();
        assert!(matches!(
            err,
            PartitionError::LengthMismatch {
                expected: 3,
                got: 2,
                ..
            }
        ));
    }

    #[test]
    fn need_at_least_two_samples() {
        assert_eq!(
            layer_stats(&[1.0, 2.0], 1, 2, &[0]).unwrap_err(),
            PartitionError::TooFewSamples { n: 1 }
        );
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(matches!(
            layer_stats(&[], 0, 4, &[]),
            Err(PartitionError::Empty { .. })
        ));
        assert!(matches!(
            layer_stats(&[], 3, 0, &[0, 0, 0]),
            Err(PartitionError::Empty { .. })
        ));
    }

    #[test]
    fn size_overflow_is_an_error() {
        let err = layer_stats(&[], 2, usize::MAX, &[0, 0]).unwrap_err();
        assert!(matches!(err, PartitionError::SizeOverflow { n: 2, .. }));
    }

    #[test]
    fn non_finite_feature_is_named() {
        let err = layer_stats(&[0.0, 1.0, f32::NAN, 2.0], 2, 2, &[0, 1]).unwrap_err();
        assert!(matches!(err, PartitionError::NonFinite { index: 2, .. }));
        let err = layer_stats(&[0.0, f32::INFINITY, 1.0, 2.0], 2, 2, &[0, 0]).unwrap_err();
        assert!(matches!(err, PartitionError::NonFinite { index: 1, .. }));
    }
}
