//! Obfuscation modes and what the client sends: distortion-free and
//! distortion-bounded obfuscation (seed 004, section 4.2, Definition 2 and
//! Theorem 1; section 4.3).
//!
//! Every mode keeps a *prefix* `v_1 .. v_k` of the signal basis (ordered by
//! non-increasing singular value), possibly with the last kept coefficient
//! shrunk; so a query is fully described by its `k` coefficients, which is
//! what the client sends (section 4.3: "the client ... can send only
//! `{a'_k}`"). The distortion `||W z - W z'||` is computed by Lemma 4,
//! `sqrt(sum_k s_k^2 (a_k - a'_k)^2)`, in f64; components below the basis'
//! rank tolerance are treated as null, so they add at most
//! `threshold * ||z_N||` (float noise) to the true value.

use super::bounded::{Plan, plan};
use super::svd::SignalBasis;
use super::{ObfuscateError, check_len};

/// Bytes per sent `f32`.
const F32_BYTES: usize = 4;

/// What the client sends in place of its feature vector `z`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ObfuscationMode {
    /// Send `z` unchanged (the baseline).
    None,
    /// Send the signal content `z_S` (Definition 2): `W z' = W z` exactly.
    DistortionFree,
    /// Theorem 1: drop signal components, smallest singular value first, until
    /// `||W z - W z'|| = eps` (the last one shrunk to use the budget exactly).
    DistortionBounded {
        /// Distortion budget on `W z`; finite and `>= 0`.
        eps: f32,
    },
    /// Keep the top `m` signal components by singular value (the `m'` of
    /// section 5.2, Figures 4 and 5); `m` above the rank keeps all of them.
    KeepComponents {
        /// Number of components kept.
        m: usize,
    },
}

impl ObfuscationMode {
    /// Checks the mode's parameters: `eps` must be finite and `>= 0`.
    pub fn validate(&self) -> Result<(), ObfuscateError> {
        match *self {
            Self::DistortionBounded { eps } if !(eps.is_finite() && eps >= 0.0) => {
                Err(ObfuscateError::InvalidParameter {
                    what: "distortion budget eps",
                    value: eps.to_string(),
                    allowed: "finite and >= 0",
                })
            }
            _ => Ok(()),
        }
    }
}

/// One obfuscated query.
#[derive(Debug, Clone, PartialEq)]
pub struct Obfuscated {
    /// `z' = sum_j coefficients[j] v_{kept[j]}` (or `z` itself for `None`).
    pub z_prime: Vec<f32>,
    /// The coefficients sent (empty for `None`, which sends `z`).
    pub coefficients: Vec<f32>,
    /// Basis indices of the coefficients (always `0..k`; empty for `None`).
    pub kept: Vec<usize>,
    /// `||W z - W z'||` by Lemma 4.
    pub distortion: f64,
    /// Bytes on the wire for this query ([`bytes_per_query`]).
    pub bytes_sent: usize,
}

/// A batch of obfuscated queries, `z'` as one row-major `[n, dim]` buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ObfuscatedBatch {
    /// Row-major `[n, dim]` obfuscated features, what the server computes on.
    pub z_prime: Vec<f32>,
    /// Number of queries.
    pub n: usize,
    /// Feature length.
    pub dim: usize,
    /// Coefficients sent per query (`dim` for `None`).
    pub n_kept: Vec<usize>,
    /// `||W z - W z'||` per query.
    pub distortion: Vec<f64>,
    /// Bytes on the wire per query.
    pub bytes_sent: Vec<usize>,
}

impl ObfuscatedBatch {
    /// Mean bytes per query (0 for an empty batch).
    pub fn mean_bytes_sent(&self) -> f64 {
        mean(self.bytes_sent.iter().map(|&b| b as f64), self.n)
    }

    /// Mean distortion per query (0 for an empty batch).
    pub fn mean_distortion(&self) -> f64 {
        mean(self.distortion.iter().copied(), self.n)
    }
}

fn mean(values: impl Iterator<Item = f64>, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        values.sum::<f64>() / n as f64
    }
}

/// Bytes the client sends for one query that keeps `n_kept` coefficients of
/// an `n_features`-long feature vector: `4 n_features` for `None`, `4 n_kept`
/// for `DistortionFree` and `KeepComponents` (the kept set is the same fixed
/// prefix for every query, known to the server), and `4 n_kept + 4` for
/// `DistortionBounded` (the prefix length varies per query, so a `u32` count
/// goes with it; no indices are needed since the kept set is a prefix).
pub fn bytes_per_query(mode: ObfuscationMode, n_features: usize, n_kept: usize) -> usize {
    match mode {
        ObfuscationMode::None => raw_bytes(n_features),
        ObfuscationMode::DistortionFree | ObfuscationMode::KeepComponents { .. } => {
            F32_BYTES * n_kept
        }
        ObfuscationMode::DistortionBounded { .. } => F32_BYTES * n_kept + 4,
    }
}

/// Bytes of the raw `f32` feature vector, the baseline of section 4.3's
/// communication saving (`m' / n`).
pub fn raw_bytes(n_features: usize) -> usize {
    F32_BYTES * n_features
}

/// Obfuscates one feature vector `z` (length `basis.dim()`) with `mode`.
/// `z_prime` is rebuilt from the sent coefficients exactly as the server does
/// ([`SignalBasis::from_coefficients`]).
pub fn obfuscate(
    basis: &SignalBasis,
    z: &[f32],
    mode: ObfuscationMode,
) -> Result<Obfuscated, ObfuscateError> {
    mode.validate()?;
    check_len("feature vector z", z, basis.dim())?;
    if mode == ObfuscationMode::None {
        return Ok(Obfuscated {
            z_prime: z.to_vec(),
            coefficients: Vec::new(),
            kept: Vec::new(),
            distortion: 0.0,
            bytes_sent: raw_bytes(z.len()),
        });
    }
    let a = basis.coefficients(z)?;
    let p = plan(mode, &a, basis.signal_singular_values());
    let mut coefficients = a[..p.n_kept].to_vec();
    if let (Some(v), Some(last)) = (p.shrunk, coefficients.last_mut()) {
        *last = v;
    }
    let kept: Vec<usize> = (0..p.n_kept).collect();
    let z_prime = basis.from_coefficients(&coefficients, &kept)?;
    Ok(Obfuscated {
        z_prime,
        coefficients,
        kept,
        distortion: p.distortion,
        bytes_sent: bytes_per_query(mode, basis.dim(), p.n_kept),
    })
}

/// Obfuscates row-major `[n, basis.dim()]` feature vectors: one matrix
/// product for the coefficients, one for the rebuild.
pub fn obfuscate_batch(
    basis: &SignalBasis,
    zs: &[f32],
    n: usize,
    mode: ObfuscationMode,
) -> Result<ObfuscatedBatch, ObfuscateError> {
    mode.validate()?;
    let dim = basis.dim();
    check_len("feature batch [n, dim]", zs, n * dim)?;
    if mode == ObfuscationMode::None {
        return Ok(ObfuscatedBatch {
            z_prime: zs.to_vec(),
            n,
            dim,
            n_kept: vec![dim; n],
            distortion: vec![0.0; n],
            bytes_sent: vec![raw_bytes(dim); n],
        });
    }
    let rank = basis.rank();
    let a = basis.coefficients_batch(zs, n)?;
    let s = basis.signal_singular_values();
    let plans: Vec<Plan> = (0..n)
        .map(|i| plan(mode, &a[i * rank..(i + 1) * rank], s))
        .collect();
    let width = plans.iter().map(|p| p.n_kept).max().unwrap_or(0);
    let mut sent = vec![0.0f32; n * width];
    for (i, p) in plans.iter().enumerate() {
        let row = &mut sent[i * width..i * width + p.n_kept];
        row.copy_from_slice(&a[i * rank..i * rank + p.n_kept]);
        if let (Some(v), Some(last)) = (p.shrunk, row.last_mut()) {
            *last = v;
        }
    }
    let z_prime = basis.from_leading_coefficients_batch(&sent, n, width)?;
    Ok(ObfuscatedBatch {
        z_prime,
        n,
        dim,
        n_kept: plans.iter().map(|p| p.n_kept).collect(),
        distortion: plans.iter().map(|p| p.distortion).collect(),
        bytes_sent: plans
            .iter()
            .map(|p| bytes_per_query(mode, dim, p.n_kept))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obfuscate::svd::sq_norm;
    use crate::obfuscate::test_util::{assert_close, direct_distortion, matvec, random_vec};

    #[test]
    fn distortion_free_preserves_w_z() {
        let (rows, cols) = (5, 12);
        let w = random_vec(7, rows * cols);
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = random_vec(8, cols);
        let out = obfuscate(&b, &z, ObfuscationMode::DistortionFree).unwrap();
        let (wz, wzp) = (
            matvec(&w, rows, cols, &z),
            matvec(&w, rows, cols, &out.z_prime),
        );
        assert!(
            wz.iter().zip(&wzp).all(|(a, c)| (a - c).abs() < 1e-5),
            "{wz:?} vs {wzp:?}"
        );
        assert_close(&out.z_prime, &b.signal_content(&z).unwrap(), 1e-6);
        assert_eq!(out.distortion, 0.0);
        assert_eq!(out.kept.len(), 5);
        assert_eq!(out.bytes_sent, 20);
        // z' is genuinely different from z: a 7-dim null content was removed
        assert!(sq_norm(&z) - sq_norm(&out.z_prime) > 1e-2);
    }

    #[test]
    fn eps_zero_and_keep_rank_equal_distortion_free() {
        let (rows, cols) = (4, 9);
        let w = random_vec(9, rows * cols);
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = random_vec(10, cols);
        let free = obfuscate(&b, &z, ObfuscationMode::DistortionFree).unwrap();
        let keep = obfuscate(&b, &z, ObfuscationMode::KeepComponents { m: b.rank() }).unwrap();
        let more = obfuscate(&b, &z, ObfuscationMode::KeepComponents { m: 99 }).unwrap();
        let zero = obfuscate(&b, &z, ObfuscationMode::DistortionBounded { eps: 0.0 }).unwrap();
        assert_eq!(keep, free);
        assert_eq!(more.z_prime, free.z_prime);
        assert_eq!(zero.z_prime, free.z_prime);
    }

    #[test]
    fn keep_components_reports_lemma4_distortion() {
        let (rows, cols) = (5, 8);
        let w = random_vec(11, rows * cols);
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = random_vec(12, cols);
        for m in 0..=5 {
            let out = obfuscate(&b, &z, ObfuscationMode::KeepComponents { m }).unwrap();
            assert_eq!(out.kept, (0..m).collect::<Vec<_>>());
            let direct = direct_distortion(&w, rows, cols, &z, &out.z_prime);
            assert!(
                (direct - out.distortion).abs() < 1e-4,
                "m={m}: {direct} vs {}",
                out.distortion
            );
        }
    }

    #[test]
    fn batch_matches_single_queries() {
        let (rows, cols, n) = (5, 8, 6);
        let w = random_vec(13, rows * cols);
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let zs = random_vec(14, n * cols);
        for mode in [
            ObfuscationMode::None,
            ObfuscationMode::DistortionFree,
            ObfuscationMode::DistortionBounded { eps: 0.5 },
            ObfuscationMode::KeepComponents { m: 2 },
        ] {
            let batch = obfuscate_batch(&b, &zs, n, mode).unwrap();
            for i in 0..n {
                let one = obfuscate(&b, &zs[i * cols..(i + 1) * cols], mode).unwrap();
                assert_close(&batch.z_prime[i * cols..(i + 1) * cols], &one.z_prime, 1e-5);
                assert_eq!(batch.bytes_sent[i], one.bytes_sent);
                assert!((batch.distortion[i] - one.distortion).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn bytes_per_query_per_mode() {
        assert_eq!(bytes_per_query(ObfuscationMode::None, 100, 3), 400);
        assert_eq!(bytes_per_query(ObfuscationMode::DistortionFree, 100, 3), 12);
        assert_eq!(
            bytes_per_query(ObfuscationMode::KeepComponents { m: 3 }, 100, 3),
            12
        );
        let bounded = ObfuscationMode::DistortionBounded { eps: 1.0 };
        assert_eq!(bytes_per_query(bounded, 100, 3), 16);
        assert_eq!(raw_bytes(100), 400);
    }

    #[test]
    fn eps_must_be_finite_and_non_negative() {
        let b = SignalBasis::new(&[1.0, 0.0], 1, 2).unwrap();
        for eps in [-0.1, f32::NAN, f32::INFINITY] {
            let err = obfuscate(&b, &[1.0, 1.0], ObfuscationMode::DistortionBounded { eps });
            assert!(
                matches!(err, Err(ObfuscateError::InvalidParameter { .. })),
                "{eps}"
            );
        }
        let err = obfuscate(&b, &[1.0], ObfuscationMode::DistortionFree).unwrap_err();
        assert!(
            err.to_string().contains("expected 2 values, got 1"),
            "{err}"
        );
    }
}
