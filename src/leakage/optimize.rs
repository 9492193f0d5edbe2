//! The attack's optimisers over a host vector: projected Adam (the
//! inverting-gradients recipe) and L-BFGS (the optimiser of the original
//! DLG). The objective is evaluated through [`Objective`], so the attack can
//! charge a value without a gradient less (one gradient evaluation of the
//! network instead of three).

use serde::{Deserialize, Serialize};

use super::jacobian::{axpy, dot, norm};

/// Which optimiser the attack runs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// Adam with a cosine-decayed step, projected onto [0, 1] after each step.
    Adam,
    /// L-BFGS (memory 10) with a backtracking Armijo line search,
    /// unconstrained; the result is clipped to [0, 1].
    #[default]
    Lbfgs,
}

/// A function to minimise.
pub trait Objective {
    /// `f(x)`.
    fn value(&mut self, x: &[f64]) -> f64;
    /// `f(x)` and its gradient.
    fn value_and_grad(&mut self, x: &[f64]) -> (f64, Vec<f64>);
}

/// The best point found.
#[derive(Clone, Debug, PartialEq)]
pub struct Minimum {
    /// The point.
    pub x: Vec<f64>,
    /// `f(x)`.
    pub value: f64,
    /// Iterations run.
    pub iterations: usize,
}

/// Adam for `iterations` steps from `x0` with step `lr` decayed by a cosine
/// to 1%, each step projected onto `[lo, hi]`; returns the best iterate.
pub fn adam(
    obj: &mut dyn Objective,
    x0: Vec<f64>,
    iterations: usize,
    lr: f64,
    (lo, hi): (f64, f64),
) -> Minimum {
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let mut x = x0;
    let d = x.len();
    let (mut m, mut v) = (vec![0.0; d], vec![0.0; d]);
    let mut best = Minimum {
        x: x.clone(),
        value: f64::INFINITY,
        iterations,
    };
    for t in 0..iterations {
        let (f, grad) = obj.value_and_grad(&x);
        if f < best.value {
            best.value = f;
            best.x.clone_from(&x);
        }
        let progress = t as f64 / iterations as f64;
        let step = lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        let k = (t + 1) as i32;
        for i in 0..d {
            m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
            v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
            let mh = m[i] / (1.0 - b1.powi(k));
            let vh = v[i] / (1.0 - b2.powi(k));
            x[i] = (x[i] - step * mh / (vh.sqrt() + eps)).clamp(lo, hi);
        }
    }
    let f = obj.value(&x);
    if f < best.value {
        best.value = f;
        best.x = x;
    }
    best
}

/// L-BFGS direction `-H g` by the two-loop recursion over `(s, y)` pairs.
fn two_loop(g: &[f64], history: &[(Vec<f64>, Vec<f64>)]) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alphas = Vec::with_capacity(history.len());
    for (s, y) in history.iter().rev() {
        let a = dot(s, &q) / dot(y, s);
        q = axpy(&q, -a, y);
        alphas.push(a);
    }
    if let Some((s, y)) = history.last() {
        let gamma = dot(s, y) / dot(y, y);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for ((s, y), a) in history.iter().zip(alphas.iter().rev()) {
        let b = dot(y, &q) / dot(y, s);
        q = axpy(&q, a - b, s);
    }
    q.iter().map(|v| -v).collect()
}

/// L-BFGS (memory 10) for at most `iterations` iterations from `x0`; the
/// first step (and any restart) moves `first_step` along the normalised
/// negative gradient. Stops early when no step decreases `f`.
pub fn lbfgs(obj: &mut dyn Objective, x0: Vec<f64>, iterations: usize, first_step: f64) -> Minimum {
    const MEMORY: usize = 10;
    let mut x = x0;
    let (mut f, mut g) = obj.value_and_grad(&x);
    let mut history: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut done = 0;
    while done < iterations {
        done += 1;
        let mut d = two_loop(&g, &history);
        let mut slope = dot(&g, &d);
        if history.is_empty() || slope >= 0.0 || !slope.is_finite() {
            history.clear();
            let gn = norm(&g);
            if gn == 0.0 {
                break;
            }
            d = g.iter().map(|v| -v * first_step / gn).collect();
            slope = dot(&g, &d);
        }
        // Backtracking until the Armijo condition holds.
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            let trial = axpy(&x, t, &d);
            let ft = obj.value(&trial);
            if ft.is_finite() && ft <= f + 1e-4 * t * slope {
                accepted = Some(trial);
                break;
            }
            t *= 0.5;
        }
        let Some(next) = accepted else {
            if history.is_empty() {
                break;
            }
            history.clear();
            continue;
        };
        let (fn_, gn_) = obj.value_and_grad(&next);
        let s: Vec<f64> = next.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn_.iter().zip(&g).map(|(a, b)| a - b).collect();
        if dot(&s, &y) > 1e-12 * norm(&s) * norm(&y) {
            if history.len() == MEMORY {
                history.remove(0);
            }
            history.push((s, y));
        }
        (x, f, g) = (next, fn_, gn_);
    }
    Minimum {
        x,
        value: f,
        iterations: done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock `(1 - a)^2 + 100 (b - a^2)^2`, minimum 0 at (1, 1).
    struct Rosenbrock {
        calls: usize,
    }

    impl Objective for Rosenbrock {
        fn value(&mut self, x: &[f64]) -> f64 {
            self.calls += 1;
            (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2)
        }
        fn value_and_grad(&mut self, x: &[f64]) -> (f64, Vec<f64>) {
            let (a, b) = (x[0], x[1]);
            let g = vec![
                -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
                200.0 * (b - a * a),
            ];
            (self.value(x), g)
        }
    }

    #[test]
    fn lbfgs_finds_the_rosenbrock_minimum() {
        let m = lbfgs(&mut Rosenbrock { calls: 0 }, vec![-1.2, 1.0], 200, 0.1);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6,
            "{m:?}"
        );
        assert!(m.value < 1e-12);
    }

    #[test]
    fn adam_stays_in_the_box_and_approaches_the_minimum() {
        // Minimum of Rosenbrock inside [0, 0.9]^2 is near (0.9, 0.81).
        let m = adam(
            &mut Rosenbrock { calls: 0 },
            vec![0.1, 0.1],
            3000,
            0.05,
            (0.0, 0.9),
        );
        assert!(m.x.iter().all(|v| (0.0..=0.9).contains(v)), "{m:?}");
        assert!(
            (m.x[0] - 0.9).abs() < 1e-2 && (m.x[1] - 0.81).abs() < 2e-2,
            "{m:?}"
        );
    }

    #[test]
    fn two_loop_without_history_is_steepest_descent() {
        assert_eq!(two_loop(&[1.0, -2.0], &[]), vec![-1.0, 2.0]);
        // With one pair from a quadratic f = 0.5 * 4 x^2, H = 1/4 exactly.
        let d = two_loop(&[8.0], &[(vec![1.0], vec![4.0])]);
        assert!((d[0] + 2.0).abs() < 1e-12);
    }
}
