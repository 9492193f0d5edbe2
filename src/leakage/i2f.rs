//! The inversion influence function (seed 003: Zhang et al., "Understanding
//! Deep Gradient Leakage via Inversion Influence Functions", NeurIPS 2023).
//!
//! When a defense adds `delta` to the shared gradient `g(x0)`, the attack
//! `min_x ||g(x) - g(x0) - delta||^2` moves, to first order, by
//! `x - x0 = (J J^T)^-1 J delta` (linearise `g(x) ~ g(x0) + J^T (x - x0)`).
//! I2F is the norm of that move:
//!
//! `I2F = ||(J J^T + mu I)^-1 J delta||`,
//!
//! solved matrix-free by conjugate gradients with damping `mu` (the
//! seed's code solves the same damped system by gradient descent). Its lower
//! bound `||J delta|| / (lambda_max(J J^T) + mu)` needs only the top
//! eigenvalue, found by Lanczos iteration with full reorthogonalisation; at
//! `mu = 0` it is the paper's `||J delta|| / lambda_max(J J^T)`. Every product
//! with `J J^T` costs four gradient evaluations (see [`super::jacobian`]).

use serde::{Deserialize, Serialize};

use super::defense::gaussian_vector;
use super::jacobian::{axpy, dot, norm};

/// Result of a conjugate-gradient solve.
#[derive(Clone, Debug, PartialEq)]
pub struct CgSolution {
    /// The solution z of `(A + mu I) z = b`.
    pub z: Vec<f64>,
    /// Iterations used.
    pub iterations: usize,
    /// Final relative residual `||b - (A + mu I) z|| / ||b||` (as tracked).
    pub relative_residual: f64,
    /// Largest Rayleigh quotient `p^T A p / p^T p` over the search
    /// directions: a lower estimate of `lambda_max(A)`.
    pub max_rayleigh: f64,
}

/// Solves `(A + damping I) z = b` for a symmetric positive semi-definite `A`
/// given as a product, by conjugate gradients from `z = 0`; stops after
/// `max_iter` iterations or at relative residual `tol`.
pub fn conjugate_gradient(
    mut apply: impl FnMut(&[f64]) -> Vec<f64>,
    b: &[f64],
    damping: f64,
    max_iter: usize,
    tol: f64,
) -> CgSolution {
    let bn = norm(b);
    let mut z = vec![0.0; b.len()];
    if bn == 0.0 {
        return CgSolution {
            z,
            iterations: 0,
            relative_residual: 0.0,
            max_rayleigh: 0.0,
        };
    }
    let mut r = b.to_vec();
    let mut p = r.clone();
    let mut rs = dot(&r, &r);
    let mut iterations = 0;
    let mut max_rayleigh: f64 = 0.0;
    while iterations < max_iter && rs.sqrt() > tol * bn {
        let a_p = apply(&p);
        let pp = dot(&p, &p);
        max_rayleigh = max_rayleigh.max(dot(&p, &a_p) / pp);
        let ap = axpy(&a_p, damping, &p);
        let curvature = dot(&p, &ap);
        if curvature <= 0.0 || !curvature.is_finite() {
            // Round-off made the operator look indefinite along p: stop with
            // the best iterate so far.
            break;
        }
        let alpha = rs / curvature;
        z = axpy(&z, alpha, &p);
        r = axpy(&r, -alpha, &ap);
        let rs_new = dot(&r, &r);
        p = axpy(&r, rs_new / rs, &p);
        rs = rs_new;
        iterations += 1;
    }
    CgSolution {
        z,
        iterations,
        relative_residual: rs.sqrt() / bn,
        max_rayleigh,
    }
}

/// Number of eigenvalues of the symmetric tridiagonal matrix (diagonal `a`,
/// off-diagonal `b`) that are smaller than `x` (Sturm sequence).
fn count_below(a: &[f64], b: &[f64], x: f64) -> usize {
    let mut count = 0;
    let mut d = 1.0;
    for i in 0..a.len() {
        let off = if i == 0 { 0.0 } else { b[i - 1] * b[i - 1] / d };
        d = a[i] - x - off;
        if d == 0.0 {
            d = -f64::EPSILON * (a[i].abs() + x.abs()).max(f64::MIN_POSITIVE);
        }
        if d < 0.0 {
            count += 1;
        }
    }
    count
}

/// Largest eigenvalue of a symmetric tridiagonal matrix by bisection on the
/// Sturm count, to relative precision ~1e-15.
pub fn tridiagonal_max_eigenvalue(a: &[f64], b: &[f64]) -> f64 {
    assert!(
        !a.is_empty() && b.len() + 1 >= a.len(),
        "expected a tridiagonal matrix"
    );
    let radius = |i: usize| {
        (if i > 0 { b[i - 1].abs() } else { 0.0 })
            + (if i + 1 < a.len() { b[i].abs() } else { 0.0 })
    };
    let mut lo = (0..a.len())
        .map(|i| a[i] - radius(i))
        .fold(f64::INFINITY, f64::min);
    let mut hi = (0..a.len())
        .map(|i| a[i] + radius(i))
        .fold(f64::NEG_INFINITY, f64::max);
    let n = a.len();
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if count_below(a, b, mid) == n {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The top eigenvalue of a symmetric positive semi-definite operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LambdaMax {
    /// The estimate (a Ritz value: never above the true value).
    pub value: f64,
    /// Lanczos steps used.
    pub steps: usize,
    /// True when successive estimates agreed to the tolerance (or the
    /// Krylov space was exhausted).
    pub converged: bool,
}

/// Largest eigenvalue of the `dim` x `dim` operator `apply` by Lanczos with
/// full reorthogonalisation, from a seeded Gaussian start; stops after
/// `max_steps` or when the estimate changes by less than `tol` (relative).
pub fn lanczos_lambda_max(
    mut apply: impl FnMut(&[f64]) -> Vec<f64>,
    dim: usize,
    max_steps: usize,
    tol: f64,
    seed: u64,
) -> LambdaMax {
    let start = gaussian_vector(dim, seed);
    let n0 = norm(&start);
    let mut q: Vec<Vec<f64>> = vec![start.iter().map(|v| v / n0).collect()];
    let (mut alphas, mut betas) = (Vec::new(), Vec::new());
    let mut estimate = 0.0;
    for step in 1..=max_steps.min(dim).max(1) {
        let cur = q.last().expect("expected a Lanczos vector");
        let mut w = apply(cur);
        alphas.push(dot(cur, &w));
        // Full reorthogonalisation (twice is enough): keeps the Ritz values
        // clean of the ghost copies plain Lanczos produces in floating point.
        for _ in 0..2 {
            for qi in &q {
                let c = dot(qi, &w);
                w = axpy(&w, -c, qi);
            }
        }
        let next = tridiagonal_max_eigenvalue(&alphas, &betas);
        let beta = norm(&w);
        let settled = step > 1 && (next - estimate).abs() <= tol * next.abs();
        estimate = next;
        if settled || beta <= 1e-12 * estimate.abs().max(f64::MIN_POSITIVE) {
            return LambdaMax {
                value: estimate,
                steps: step,
                converged: true,
            };
        }
        betas.push(beta);
        q.push(w.iter().map(|v| v / beta).collect());
    }
    LambdaMax {
        value: estimate,
        steps: alphas.len(),
        converged: alphas.len() == dim,
    }
}

/// I2F and its lower bound for one perturbation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct I2fEstimate {
    /// `||(J J^T + mu I)^-1 J delta||`: the predicted L2 distance between the
    /// attack's result and the private input.
    pub i2f: f64,
    /// `||J delta|| / (lambda_max + mu)`: never above `i2f`.
    pub lower_bound: f64,
    /// `||J delta||`.
    pub j_delta_norm: f64,
    /// `lambda_max(J J^T)` used for the bound.
    pub lambda_max: f64,
    /// The damping mu.
    pub damping: f64,
    /// Conjugate-gradient iterations.
    pub cg_iterations: usize,
    /// Final relative residual of the solve.
    pub cg_residual: f64,
}

/// I2F of perturbation `j_delta = J delta` (a vector over the input) given
/// the operator `J J^T` and an estimate of `lambda_max(J J^T)`.
///
/// Both Lanczos and the solve only ever under-estimate `lambda_max`, so the
/// bound uses the larger of the given estimate and the largest Rayleigh
/// quotient met by conjugate gradients. With that, the computed bound never
/// exceeds the computed I2F: the first CG iterate already has norm
/// `||b||^3 / b^T (A + mu) b >= ||b|| / (lambda + mu)`, and the norms of CG
/// iterates from zero only grow.
pub fn i2f_estimate(
    jjt: impl FnMut(&[f64]) -> Vec<f64>,
    j_delta: &[f64],
    lambda_max: f64,
    damping: f64,
    max_iter: usize,
    tol: f64,
) -> I2fEstimate {
    let sol = conjugate_gradient(jjt, j_delta, damping, max_iter, tol);
    let jd = norm(j_delta);
    let lambda_max = lambda_max.max(sol.max_rayleigh);
    let denom = lambda_max + damping;
    I2fEstimate {
        i2f: norm(&sol.z),
        lower_bound: if denom > 0.0 { jd / denom } else { 0.0 },
        j_delta_norm: jd,
        lambda_max,
        damping,
        cg_iterations: sol.iterations,
        cg_residual: sol.relative_residual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leakage::defense::gaussian_vector;

    /// `B B^T` for a seeded `n x m` Gaussian `B`, as a dense row-major matrix.
    fn random_psd(n: usize, m: usize, seed: u64) -> Vec<f64> {
        let b = gaussian_vector(n * m, seed);
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..m).map(|k| b[i * m + k] * b[j * m + k]).sum();
            }
        }
        a
    }

    fn matvec(a: &[f64], v: &[f64]) -> Vec<f64> {
        let n = v.len();
        (0..n).map(|i| dot(&a[i * n..(i + 1) * n], v)).collect()
    }

    /// Dense solve by Gaussian elimination with partial pivoting.
    fn solve(a: &[f64], b: &[f64]) -> Vec<f64> {
        let n = b.len();
        let mut m: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let mut row = a[i * n..(i + 1) * n].to_vec();
                row.push(b[i]);
                row
            })
            .collect();
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))
                .unwrap();
            m.swap(c, p);
            for r in c + 1..n {
                let f = m[r][c] / m[c][c];
                let pivot = m[c].clone();
                for (a, b) in m[r].iter_mut().zip(&pivot).skip(c) {
                    *a -= f * b;
                }
            }
        }
        let mut x = vec![0.0; n];
        for r in (0..n).rev() {
            x[r] = (m[r][n] - (r + 1..n).map(|k| m[r][k] * x[k]).sum::<f64>()) / m[r][r];
        }
        x
    }

    #[test]
    fn conjugate_gradient_solves_a_damped_spd_system() {
        let n = 12;
        let a = random_psd(n, 8, 1); // rank 8: singular without damping
        let b = gaussian_vector(n, 2);
        let mu = 0.3;
        let sol = conjugate_gradient(|v| matvec(&a, v), &b, mu, 100, 1e-12);
        let mut damped = a.clone();
        for i in 0..n {
            damped[i * n + i] += mu;
        }
        let exact = solve(&damped, &b);
        for (x, y) in sol.z.iter().zip(&exact) {
            assert!((x - y).abs() < 1e-9 * (1.0 + y.abs()), "{x} vs {y}");
        }
        assert!(sol.iterations <= n + 1);
    }

    #[test]
    fn tridiagonal_top_eigenvalue_matches_the_two_by_two_formula() {
        // [[2, 1], [1, 3]]: (5 + sqrt(5)) / 2.
        let top = tridiagonal_max_eigenvalue(&[2.0, 3.0], &[1.0]);
        assert!((top - (5.0 + 5f64.sqrt()) / 2.0).abs() < 1e-12, "{top}");
        assert_eq!(tridiagonal_max_eigenvalue(&[4.0], &[]), 4.0);
    }

    #[test]
    fn lanczos_finds_the_largest_eigenvalue() {
        let diag: Vec<f64> = (1..=40).map(|i| i as f64 * 0.5).collect();
        let lm = lanczos_lambda_max(
            |v| v.iter().zip(&diag).map(|(a, d)| a * d).collect(),
            diag.len(),
            40,
            1e-12,
            5,
        );
        assert!((lm.value - 20.0).abs() < 1e-8, "{lm:?}");
        assert!(lm.converged);
    }

    #[test]
    fn bound_never_exceeds_i2f_for_random_operators() {
        for seed in 0..40u64 {
            let n = 6 + (seed as usize % 7);
            let a = random_psd(n, 3 + seed as usize % 9, 100 + seed);
            let b = gaussian_vector(n, 200 + seed);
            let steps = 2 + seed as usize % 4; // deliberately short Lanczos runs
            let lm = lanczos_lambda_max(|v| matvec(&a, v), n, steps, 0.0, seed);
            for mu in [0.0, 1e-3, 0.1, 10.0] {
                let e = i2f_estimate(
                    |v| matvec(&a, v),
                    &b,
                    lm.value,
                    mu,
                    1 + seed as usize % 5,
                    1e-9,
                );
                assert!(
                    e.lower_bound <= e.i2f * (1.0 + 1e-12),
                    "seed {seed} mu {mu}: bound {} > i2f {}",
                    e.lower_bound,
                    e.i2f
                );
            }
        }
    }
}
