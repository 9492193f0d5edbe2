//! Choosing the components a query keeps: Theorem 1 of seed 004 (section
//! 4.2, eq. 8) for distortion-bounded obfuscation, and the plain top-`m`
//! selection of section 5.2 (Figures 4 and 5).
//!
//! Both work on the coefficients `a_k` alone: by Lemma 4 the distortion of
//! changing them is `||W z - W z'|| = sqrt(sum_k s_k^2 (a_k - a'_k)^2)`, so the
//! decision needs no matrix product. The arithmetic is f64, because `gamma`
//! is the square root of a difference and loses digits fast in f32.

use super::mode::ObfuscationMode;

/// What a mode does to one query's coefficients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    /// Components `0..n_kept` are kept.
    pub(crate) n_kept: usize,
    /// New value of component `n_kept - 1`, if Theorem 1 shrank it.
    pub(crate) shrunk: Option<f32>,
    /// `||W z - W z'||` by Lemma 4.
    pub(crate) distortion: f64,
}

/// Decides which components to keep for coefficients `a` and singular values
/// `s` (same length, `s` non-increasing). `mode` is not `None`.
pub(crate) fn plan(mode: ObfuscationMode, a: &[f32], s: &[f32]) -> Plan {
    // tail[k] = sum_{i >= k} (s_i a_i)^2: the squared distortion of dropping
    // every component from k on (Lemma 4); the paper's eps_k^2 with 1-based k.
    let m = a.len();
    let mut tail = vec![0.0f64; m + 1];
    for k in (0..m).rev() {
        let e = f64::from(s[k]) * f64::from(a[k]);
        tail[k] = tail[k + 1] + e * e;
    }
    match mode {
        ObfuscationMode::None | ObfuscationMode::DistortionFree => Plan {
            n_kept: m,
            shrunk: None,
            distortion: 0.0,
        },
        ObfuscationMode::KeepComponents { m: keep } => {
            let n_kept = keep.min(m);
            Plan {
                n_kept,
                shrunk: None,
                distortion: tail[n_kept].sqrt(),
            }
        }
        ObfuscationMode::DistortionBounded { eps } => theorem1(a, s, &tail, f64::from(eps)),
    }
}

/// Theorem 1 (eq. 8): `m'` is the smallest `k` with `eps_k <= eps`; components
/// after `m'` are zeroed and `a_{m'}` moves towards zero by
/// `gamma = sqrt(eps^2 - eps_{m'}^2) / s_{m'}`, so the distortion is exactly
/// `eps`. Components are ordered by singular value, as the theorem and its
/// proof state ("modifying the `a_k`'s corresponding to the smaller singular
/// values towards zero one at a time"), not by their contribution `s_k |a_k|`.
/// If `||W z|| <= eps` every component goes (`m' = 0`) and the distortion is
/// `||W z||`.
fn theorem1(a: &[f32], s: &[f32], tail: &[f64], eps: f64) -> Plan {
    let eps2 = eps * eps;
    let m_prime = tail
        .iter()
        .position(|&t| t <= eps2)
        .expect("tail[m] is 0, which is <= eps^2");
    if m_prime == 0 {
        return Plan {
            n_kept: 0,
            shrunk: None,
            distortion: tail[0].sqrt(),
        };
    }
    let k = m_prime - 1;
    let ak = f64::from(a[k]);
    // Minimality of m' gives tail[k] > eps^2, so s_k |a_k| > sqrt(eps^2 -
    // tail[m']) and gamma < |a_k|; the clamp only guards rounding.
    let gamma = ((eps2 - tail[m_prime]).max(0.0).sqrt() / f64::from(s[k])).min(ak.abs());
    let new_ak = ak - gamma * ak.signum();
    let removed = f64::from(s[k]) * gamma;
    Plan {
        n_kept: m_prime,
        shrunk: Some(new_ak as f32),
        distortion: (tail[m_prime] + removed * removed).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obfuscate::mode::obfuscate;
    use crate::obfuscate::svd::SignalBasis;
    use crate::obfuscate::test_util::{assert_close, direct_distortion, matvec, random_vec};

    /// 4 x 5, `W = [diag(4, 3, 2, 1) | 0]`: `v_k = +-e_k`, the last
    /// coordinate is the null space.
    fn diag_w() -> (Vec<f32>, usize, usize) {
        let mut w = vec![0.0f32; 20];
        for (k, s) in [4.0, 3.0, 2.0, 1.0].into_iter().enumerate() {
            w[k * 5 + k] = s;
        }
        (w, 4, 5)
    }

    #[test]
    fn theorem1_by_hand_on_a_diagonal_matrix() {
        // z = (0.1, -1, 1, 1, 5): contributions s_k |a_k| = 0.4, 3, 2, 1.
        // eps^2 = 6.25. eps_k^2 (1-based): eps_4 = 0, eps_3 = 1, eps_2 = 5,
        // eps_1 = 14 -> m' = 2. Components 3 and 4 are zeroed (even though
        // component 1 contributes least: the theorem orders by singular value),
        // a_2 = -1 shrinks by gamma = sqrt(6.25 - 5) / 3 towards 0.
        let (w, rows, cols) = diag_w();
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = [0.1, -1.0, 1.0, 1.0, 5.0];
        let out = obfuscate(&b, &z, ObfuscationMode::DistortionBounded { eps: 2.5 }).unwrap();
        let gamma = (1.25f32).sqrt() / 3.0;
        assert_close(&out.z_prime, &[0.1, -(1.0 - gamma), 0.0, 0.0, 0.0], 1e-6);
        assert_eq!(out.kept, vec![0, 1]);
        assert!((out.coefficients[0].abs() - 0.1).abs() < 1e-6);
        assert!((out.coefficients[1].abs() - (1.0 - gamma)).abs() < 1e-6);
        assert!((out.distortion - 2.5).abs() < 1e-6);
        assert!((direct_distortion(&w, rows, cols, &z, &out.z_prime) - 2.5).abs() < 1e-5);
        assert_eq!(out.bytes_sent, 2 * 4 + 4);
    }

    #[test]
    fn theorem1_budget_between_whole_components() {
        // z = (0.1, -1, 1.5, 4, 5): contributions 0.4, 3, 3, 4, so eps_3^2 =
        // 16, eps_2^2 = 25, eps_1^2 = 34. With eps = 5 components 3 and 4 go
        // whole and gamma = 0 (or, if rounding puts eps_2 a hair above 5,
        // m' = 3 and gamma = |a_3|: the same z').
        let (w, rows, cols) = diag_w();
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = [0.1, -1.0, 1.5, 4.0, 5.0];
        let out = obfuscate(&b, &z, ObfuscationMode::DistortionBounded { eps: 5.0 }).unwrap();
        assert_close(&out.z_prime, &[0.1, -1.0, 0.0, 0.0, 0.0], 1e-5);
        assert!((out.distortion - 5.0).abs() < 1e-5);
    }

    #[test]
    fn budget_above_the_whole_signal_sends_nothing() {
        let (w, rows, cols) = diag_w();
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = [0.1, -1.0, 1.0, 1.0, 5.0];
        let out = obfuscate(&b, &z, ObfuscationMode::DistortionBounded { eps: 10.0 }).unwrap();
        assert!(out.kept.is_empty() && out.z_prime.iter().all(|&x| x == 0.0));
        // ||W z||^2 = 0.4^2 + 3^2 + 2^2 + 1^2 = 14.16
        assert!((out.distortion - 14.16f64.sqrt()).abs() < 1e-5);
    }

    #[test]
    fn distortion_bounded_hits_eps_on_random_matrices() {
        for seed in 0..5u64 {
            let (rows, cols) = (6, 10);
            let w = random_vec(100 + seed, rows * cols);
            let b = SignalBasis::new(&w, rows, cols).unwrap();
            let z = random_vec(200 + seed, cols);
            let wz_norm = matvec(&w, rows, cols, &z)
                .iter()
                .map(|x| x * x)
                .sum::<f64>()
                .sqrt();
            let eps = (0.4 * wz_norm) as f32;
            let out = obfuscate(&b, &z, ObfuscationMode::DistortionBounded { eps }).unwrap();
            let direct = direct_distortion(&w, rows, cols, &z, &out.z_prime);
            assert!(
                (direct - f64::from(eps)).abs() < 1e-4 * wz_norm,
                "{direct} vs {eps}"
            );
            assert!((out.distortion - f64::from(eps)).abs() < 1e-5 * wz_norm);
            // m' is the smallest k whose tail fits the budget (naive recomputation)
            let a = b.coefficients(&z).unwrap();
            let s = b.signal_singular_values();
            let tail = |k: usize| -> f64 {
                (k..a.len())
                    .map(|i| (f64::from(s[i]) * f64::from(a[i])).powi(2))
                    .sum()
            };
            let k = out.kept.len();
            let eps2 = f64::from(eps).powi(2);
            assert!(tail(k) <= eps2 && tail(k - 1) > eps2);
            // all but the last kept coefficient unchanged, the last shrunk in magnitude
            assert_close(&out.coefficients[..k - 1], &a[..k - 1], 1e-6);
            assert!(out.coefficients[k - 1].abs() < a[k - 1].abs());
            assert!(out.coefficients[k - 1] * a[k - 1] >= 0.0);
            // the server's rebuild from what was sent is z'
            let rebuilt = b.from_coefficients(&out.coefficients, &out.kept).unwrap();
            assert_eq!(rebuilt, out.z_prime);
        }
    }
}
