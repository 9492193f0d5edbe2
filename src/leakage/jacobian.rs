//! Products with the Jacobian of the shared gradient, by central finite
//! differences of first-order gradients (DESIGN sections 9.5 and 12).
//!
//! With `g(x) = d L / d theta` in R^P and the input x in R^D, `J` is D x P
//! with `J_ij = d g_j / d x_i`. burn has no double backward, but both
//! products need only first-order gradients:
//!
//! - `J^T v = d/dt g(x + t v)` at 0: a change of the input;
//! - `J u = d/dt grad_x L(theta + t u, x)` at 0: a change of the parameters,
//!   by the symmetry of mixed second derivatives.
//!
//! Each derivative is a central difference along the unit direction with a
//! step relative to the size of the point (`step * max(||point||, 1)`),
//! scaled back by the direction's norm; it is exact for quadratics and has
//! an O(step^2) truncation error otherwise. In f64 the default relative step
//! 1e-4 keeps both truncation (~1e-8) and round-off (~1e-12) small.

use super::oracle::GradientOracle;

/// Default relative finite-difference step.
pub const DEFAULT_STEP: f64 = 1e-4;

/// Euclidean norm.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// Dot product.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a + s * b`.
pub fn axpy(a: &[f64], s: f64, b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + s * y).collect()
}

/// The Jacobian `J` of the shared gradient at one input, as a matrix-free
/// operator.
pub struct Jacobian<'a, O: GradientOracle + ?Sized> {
    oracle: &'a O,
    x: Vec<f64>,
    step: f64,
}

impl<'a, O: GradientOracle + ?Sized> Jacobian<'a, O> {
    /// `J` of `oracle`'s gradient at input `x`, with relative step `step`.
    pub fn new(oracle: &'a O, x: &[f64], step: f64) -> Self {
        assert!(step > 0.0, "expected a positive finite-difference step");
        Self {
            oracle,
            x: x.to_vec(),
            step,
        }
    }

    /// Input dimension D (rows of `J`).
    pub fn rows(&self) -> usize {
        self.oracle.input_len()
    }

    /// Parameter count P (columns of `J`).
    pub fn cols(&self) -> usize {
        self.oracle.num_params()
    }

    /// `J^T v` in R^P for `v` in R^D: `(g(x + h v^) - g(x - h v^)) / 2h * ||v||`.
    pub fn jt_v(&self, v: &[f64]) -> Vec<f64> {
        assert_eq!(v.len(), self.rows(), "expected a vector over the input");
        let n = norm(v);
        if n == 0.0 {
            return vec![0.0; self.cols()];
        }
        let h = self.step * norm(&self.x).max(1.0);
        let plus = axpy(&self.x, h / n, v);
        let minus = axpy(&self.x, -h / n, v);
        let gp = self.oracle.param_gradient(&plus);
        let gm = self.oracle.param_gradient(&minus);
        let scale = n / (2.0 * h);
        gp.iter().zip(&gm).map(|(a, b)| (a - b) * scale).collect()
    }

    /// `J u` in R^D for `u` in R^P:
    /// `(grad_x L(theta + h u^, x) - grad_x L(theta - h u^, x)) / 2h * ||u||`.
    pub fn j_u(&self, u: &[f64]) -> Vec<f64> {
        assert_eq!(
            u.len(),
            self.cols(),
            "expected a vector over the parameters"
        );
        let n = norm(u);
        if n == 0.0 {
            return vec![0.0; self.rows()];
        }
        let h = self.step * norm(self.oracle.params()).max(1.0);
        let shift: Vec<f64> = u.iter().map(|a| a * h / n).collect();
        let back: Vec<f64> = shift.iter().map(|a| -a).collect();
        let gp = self.oracle.input_gradient(Some(&shift), &self.x);
        let gm = self.oracle.input_gradient(Some(&back), &self.x);
        let scale = n / (2.0 * h);
        gp.iter().zip(&gm).map(|(a, b)| (a - b) * scale).collect()
    }

    /// `J J^T w` in R^D (four gradient evaluations).
    pub fn jjt(&self, w: &[f64]) -> Vec<f64> {
        self.j_u(&self.jt_v(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leakage::oracle::LossGradients;

    /// `L(theta, x) = sum_j sin(theta_j x_j)`: `g_j = x_j cos(theta_j x_j)`,
    /// `J` diagonal with `J_jj = cos(t) - t sin(t)`, `t = theta_j x_j`.
    struct SinLoss {
        theta: Vec<f64>,
    }

    impl GradientOracle for SinLoss {
        fn num_params(&self) -> usize {
            self.theta.len()
        }
        fn input_len(&self) -> usize {
            self.theta.len()
        }
        fn params(&self) -> &[f64] {
            &self.theta
        }
        fn gradients(&self, dtheta: Option<&[f64]>, x: &[f64]) -> LossGradients {
            let th: Vec<f64> = match dtheta {
                Some(d) => axpy(&self.theta, 1.0, d),
                None => self.theta.clone(),
            };
            LossGradients {
                loss: th.iter().zip(x).map(|(t, v)| (t * v).sin()).sum(),
                params: th.iter().zip(x).map(|(t, v)| v * (t * v).cos()).collect(),
                input: th.iter().zip(x).map(|(t, v)| t * (t * v).cos()).collect(),
            }
        }
    }

    #[test]
    fn products_match_the_exact_jacobian_of_a_nonlinear_loss() {
        let oracle = SinLoss {
            theta: vec![0.7, -1.3, 2.1, 0.4],
        };
        let x = [0.9, 0.2, -0.6, 1.5];
        let jdiag: Vec<f64> = oracle
            .theta
            .iter()
            .zip(&x)
            .map(|(t, v)| (t * v).cos() - t * v * (t * v).sin())
            .collect();
        let jac = Jacobian::new(&oracle, &x, DEFAULT_STEP);
        let v = [0.5, -2.0, 1.0, 0.25];
        let exact: Vec<f64> = jdiag.iter().zip(&v).map(|(j, a)| j * a).collect();
        for got in [jac.jt_v(&v), jac.j_u(&v)] {
            for (a, b) in got.iter().zip(&exact) {
                assert!((a - b).abs() < 1e-7, "{a} vs {b}");
            }
        }
        let jjt = jac.jjt(&v);
        for ((a, j), b) in jjt.iter().zip(&jdiag).zip(&v) {
            assert!((a - j * j * b).abs() < 1e-6, "{a} vs {}", j * j * b);
        }
        assert_eq!(jac.j_u(&[0.0; 4]), vec![0.0; 4]);
    }

    #[test]
    fn error_shrinks_with_the_step_as_a_central_difference_should() {
        let oracle = SinLoss {
            theta: vec![1.9, -2.4],
        };
        let x = [1.1, 0.8];
        let exact = |i: usize| {
            let t = oracle.theta[i] * x[i];
            t.cos() - t * t.sin()
        };
        let err =
            |step: f64| (Jacobian::new(&oracle, &x, step).jt_v(&[1.0, 0.0])[0] - exact(0)).abs();
        // O(h^2): a 10x smaller step gives about 100x less error.
        let (big, small) = (err(1e-2), err(1e-3));
        assert!(small < big / 50.0, "{big} -> {small}");
    }
}
