//! Deep gradient leakage: rebuild a private example from its shared
//! gradient (DLG, Zhu et al. 2019; iDLG label inference, Zhao et al. 2020;
//! cosine matching and total variation as in Geiping et al. 2020, the attack
//! seed 003 analyses).
//!
//! The attacker knows the parameters theta and the shared gradient `g*`,
//! and minimises over a dummy input x in [0, 1]^D
//!
//! `M(x) + tv_weight * TV(x)`, with `M(x) = dist(g(x), g*)`,
//!
//! where `dist` is the squared L2 distance relative to `||g*||^2` or one
//! minus the cosine similarity. Its gradient `dM/dx = J (dM/dg)` is a
//! product with the Jacobian of the gradient, taken by central finite
//! differences of first-order gradients (three gradient evaluations per
//! gradient, see [`super::jacobian`]). Optimisation by L-BFGS as in DLG
//! (unconstrained, the result clipped to [0, 1]) or by projected Adam
//! ([`super::optimize`]).

use serde::{Deserialize, Serialize};

use super::LeakageError;
use super::config::AttackConfig;
use super::jacobian::{Jacobian, dot, norm};
use super::optimize::{Objective, Optimizer, adam, lbfgs};
use super::oracle::{GradientOracle, ParamSlot};

/// How the dummy gradient is compared with the shared one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    /// `||g - g*||^2 / ||g*||^2` (DLG, made scale-free).
    L2,
    /// `1 - <g, g*> / (||g|| ||g*||)` (Geiping et al.).
    #[default]
    Cosine,
}

/// Where the attacker's label comes from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// The attacker is told the true label.
    Known,
    /// Read from the last layer's gradient (iDLG).
    #[default]
    Inferred,
}

/// `dist(g, target)` and its gradient with respect to `g`.
pub fn distance_and_grad(distance: Distance, g: &[f64], target: &[f64]) -> (f64, Vec<f64>) {
    match distance {
        Distance::L2 => {
            let tn2 = dot(target, target).max(f64::MIN_POSITIVE);
            let diff: Vec<f64> = g.iter().zip(target).map(|(a, b)| a - b).collect();
            let value = dot(&diff, &diff) / tn2;
            (value, diff.iter().map(|d| 2.0 * d / tn2).collect())
        }
        Distance::Cosine => {
            let (gn, tn) = (norm(g), norm(target));
            if gn == 0.0 || tn == 0.0 {
                return (1.0, vec![0.0; g.len()]);
            }
            let c = dot(g, target) / (gn * tn);
            let grad = g
                .iter()
                .zip(target)
                .map(|(a, b)| -(b / (gn * tn) - c * a / (gn * gn)))
                .collect();
            (1.0 - c, grad)
        }
    }
}

/// Smoothed anisotropic total variation of `[C, H, W]` pixels, averaged over
/// neighbour pairs: `mean sqrt(d^2 + 1e-6)`, and its gradient.
pub fn total_variation(x: &[f64], shape: [usize; 3]) -> (f64, Vec<f64>) {
    const EPS2: f64 = 1e-6;
    let [c, h, w] = shape;
    let mut grad = vec![0.0; x.len()];
    let mut value = 0.0;
    let mut pairs = 0usize;
    let mut add = |a: usize, b: usize, grad: &mut Vec<f64>| {
        let d = x[a] - x[b];
        let s = (d * d + EPS2).sqrt();
        value += s;
        grad[a] += d / s;
        grad[b] -= d / s;
        pairs += 1;
    };
    for ch in 0..c {
        for i in 0..h {
            for j in 0..w {
                let p = (ch * h + i) * w + j;
                if j + 1 < w {
                    add(p + 1, p, &mut grad);
                }
                if i + 1 < h {
                    add(p + w, p, &mut grad);
                }
            }
        }
    }
    let n = pairs.max(1) as f64;
    grad.iter_mut().for_each(|g| *g /= n);
    (value / n, grad)
}

/// The label whose last-layer gradient is negative (iDLG): for cross-entropy
/// on one example, `dL/db_j = p_j - y_j` and `dL/dW_ij = a_i (p_j - y_j)`,
/// negative only at the true class when the activations `a_i` are positive
/// (sigmoid). Sums the bias entry and the weight column of each class, which
/// keeps the sign readable under gradient noise.
///
/// `slots` is the parameter layout; the last two tensors must be the final
/// linear layer's weight `[in, classes]` and bias `[classes]`.
pub fn infer_label(shared: &[f64], slots: &[ParamSlot]) -> Result<u32, LeakageError> {
    let n = slots.len();
    let (w, b) = match (n >= 2).then(|| (&slots[n - 2], &slots[n - 1])) {
        Some((w, b)) if w.shape.len() == 2 && b.shape.len() == 1 && w.shape[1] == b.shape[0] => {
            (w, b)
        }
        _ => {
            return Err(LeakageError::Model(
                "label inference needs a final linear layer with a bias (weight [in, classes], bias [classes]); use label: known".into(),
            ));
        }
    };
    let classes = b.shape[0];
    let mut score = shared[b.range()].to_vec();
    for (k, v) in shared[w.range()].iter().enumerate() {
        score[k % classes] += v;
    }
    let best = (0..classes)
        .min_by(|&i, &j| score[i].total_cmp(&score[j]))
        .expect("expected at least one class");
    Ok(best as u32)
}

/// The result of one gradient inversion.
#[derive(Clone, Debug, PartialEq)]
pub struct Inversion {
    /// The reconstruction, flat `[C, H, W]` in [0, 1].
    pub x: Vec<f64>,
    /// Matching distance `M` at the reconstruction.
    pub matching: f64,
    /// Objective (matching + TV term) at the reconstruction.
    pub objective: f64,
    /// Iterations run.
    pub iterations: usize,
}

/// `M(x) + tv_weight * TV(x)`, remembering `dM/dg` at the last point whose
/// value was asked for, so a line search's accepted point costs two more
/// gradient evaluations, not three.
struct Matching<'a, O: GradientOracle + ?Sized> {
    oracle: &'a O,
    shared: &'a [f64],
    shape: [usize; 3],
    cfg: &'a AttackConfig,
    last: Option<(Vec<f64>, f64, Vec<f64>)>,
}

impl<O: GradientOracle + ?Sized> Matching<'_, O> {
    fn matching(&mut self, x: &[f64]) -> (f64, Vec<f64>) {
        if let Some((at, m, u)) = &self.last
            && at.as_slice() == x
        {
            return (*m, u.clone());
        }
        let g = self.oracle.param_gradient(x);
        let (m, u) = distance_and_grad(self.cfg.distance, &g, self.shared);
        self.last = Some((x.to_vec(), m, u.clone()));
        (m, u)
    }
}

impl<O: GradientOracle + ?Sized> Objective for Matching<'_, O> {
    fn value(&mut self, x: &[f64]) -> f64 {
        self.matching(x).0 + self.cfg.tv_weight * total_variation(x, self.shape).0
    }

    fn value_and_grad(&mut self, x: &[f64]) -> (f64, Vec<f64>) {
        let (m, u) = self.matching(x);
        let (tv, tv_grad) = total_variation(x, self.shape);
        let mut grad = Jacobian::new(self.oracle, x, self.cfg.fd_step).j_u(&u);
        for (gi, ti) in grad.iter_mut().zip(&tv_grad) {
            *gi += self.cfg.tv_weight * ti;
        }
        (m + self.cfg.tv_weight * tv, grad)
    }
}

/// Rebuilds the input whose gradient under `oracle` (already carrying the
/// attacker's label) matches `shared`, starting from grey noise
/// (`0.5 + 0.1 z`, clipped) drawn from `seed`.
pub fn invert_gradient(
    oracle: &(impl GradientOracle + ?Sized),
    shared: &[f64],
    shape: [usize; 3],
    cfg: &AttackConfig,
    seed: u64,
) -> Inversion {
    let d = oracle.input_len();
    assert_eq!(
        d,
        shape.iter().product::<usize>(),
        "expected the model's input shape"
    );
    assert_eq!(
        shared.len(),
        oracle.num_params(),
        "expected a full gradient"
    );
    let x0: Vec<f64> = super::defense::gaussian_vector(d, seed)
        .into_iter()
        .map(|z| (0.5 + 0.1 * z).clamp(0.0, 1.0))
        .collect();
    let mut obj = Matching {
        oracle,
        shared,
        shape,
        cfg,
        last: None,
    };
    let found = match cfg.optimizer {
        Optimizer::Adam => adam(&mut obj, x0, cfg.iterations, cfg.lr, (0.0, 1.0)),
        Optimizer::Lbfgs => lbfgs(&mut obj, x0, cfg.iterations, cfg.lr),
    };
    let x: Vec<f64> = found.x.iter().map(|v| v.clamp(0.0, 1.0)).collect();
    let objective = obj.value(&x);
    let matching = obj.matching(&x).0;
    Inversion {
        x,
        matching,
        objective,
        iterations: found.iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_grad(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
        (0..x.len())
            .map(|i| {
                let h = 1e-6;
                let (mut p, mut m) = (x.to_vec(), x.to_vec());
                p[i] += h;
                m[i] -= h;
                (f(&p) - f(&m)) / (2.0 * h)
            })
            .collect()
    }

    #[test]
    fn distances_and_their_gradients_match_the_definitions() {
        let g = [0.3, -1.2, 0.5, 2.0];
        let t = [0.1, -1.0, 0.7, 1.5];
        let (l2, dl2) = distance_and_grad(Distance::L2, &g, &t);
        // ||g - t||^2 / ||t||^2 = (0.04 + 0.04 + 0.04 + 0.25) / 3.75
        assert!((l2 - 0.37 / 3.75).abs() < 1e-12, "{l2}");
        let (cos, dcos) = distance_and_grad(Distance::Cosine, &g, &t);
        let naive = 1.0 - dot(&g, &t) / (norm(&g) * norm(&t));
        assert!((cos - naive).abs() < 1e-12);
        for (dist, grad) in [(Distance::L2, dl2), (Distance::Cosine, dcos)] {
            let num = numeric_grad(|x| distance_and_grad(dist, x, &t).0, &g);
            for (a, b) in grad.iter().zip(&num) {
                assert!((a - b).abs() < 1e-7, "{dist:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn total_variation_of_a_two_by_two_image() {
        // Pairs: (0,1): 1, (2,3): 0.5, (0,2): 0, (1,3): 0.5 -> mean of
        // sqrt(d^2 + 1e-6) over 4 pairs.
        let x = [0.0, 1.0, 0.0, 0.5];
        let (tv, grad) = total_variation(&x, [1, 2, 2]);
        let s = |d: f64| (d * d + 1e-6f64).sqrt();
        let naive = (s(1.0) + s(0.5) + s(0.0) + s(0.5)) / 4.0;
        assert!((tv - naive).abs() < 1e-12, "{tv} vs {naive}");
        let num = numeric_grad(|v| total_variation(v, [1, 2, 2]).0, &x);
        for (a, b) in grad.iter().zip(&num) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn label_is_read_from_the_negative_last_layer_column() {
        // Last layer: weight [2 in, 3 classes], bias [3]; class 1 is negative.
        let slots = vec![
            ParamSlot {
                offset: 0,
                shape: vec![4],
            },
            ParamSlot {
                offset: 4,
                shape: vec![2, 3],
            },
            ParamSlot {
                offset: 10,
                shape: vec![3],
            },
        ];
        let (a, p) = ([0.4, 0.7], [0.2, -0.9, 0.7]);
        let mut g = vec![9.0; 4];
        for ai in a {
            g.extend(p.iter().map(|pj| ai * pj));
        }
        g.extend(p);
        assert_eq!(infer_label(&g, &slots).unwrap(), 1);
        assert!(infer_label(&g[..4], &slots[..1]).is_err());
    }
}
