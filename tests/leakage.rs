//! Gradient leakage and I2F (seed 003) against cases with known answers:
//! a linear model with squared loss, where the Jacobian of the gradient is
//! available in closed form; random small sigmoid networks for the bound;
//! a tiny example the attack must recover; a small end-to-end run.

use burn::prelude::*;
use splitguard::leakage::init::uniform_init;
use splitguard::leakage::jacobian::{dot, norm};
use splitguard::leakage::*;
use splitguard::model::{ActivationKind, BlockSpec, LinearSpec, SplitModel};

fn device() -> Device {
    Device::flex().autodiff()
}

fn linear(out: usize, activation: ActivationKind) -> BlockSpec {
    BlockSpec::Linear(LinearSpec {
        out_features: out,
        activation,
        batch_norm: false,
    })
}

/// A seeded model of `blocks` on `[1, h, w]` inputs, weights ~ U(-0.5, 0.5).
fn model(input: [usize; 3], blocks: &[BlockSpec], seed: u64) -> SplitModel {
    let dev = device();
    let m = SplitModel::from_blocks("test", &input, blocks, &dev).unwrap();
    uniform_init(m, 0.5, seed)
}

fn seeded(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    splitguard::leakage::defense::gaussian_vector(n, seed)
        .into_iter()
        .map(|z| lo + (hi - lo) * (0.5 + 0.5 * z.tanh()))
        .collect()
}

/// The linear model `f(x) = w.x + b` with `L = 0.5 (f(x) - y)^2` has
/// `g = (x r, r)` with `r = w.x + b - y`, so `J = [r I + w x^T | w]`
/// (D x (D + 1)): returned row-major.
fn closed_form_jacobian(w: &[f64], b: f64, x: &[f64], y: f64) -> Vec<Vec<f64>> {
    let r = dot(w, x) + b - y;
    (0..x.len())
        .map(|i| {
            let mut row: Vec<f64> = (0..x.len())
                .map(|j| if i == j { r } else { 0.0 } + w[i] * x[j])
                .collect();
            row.push(w[i]);
            row
        })
        .collect()
}

/// Dense solve by Gaussian elimination with partial pivoting.
fn solve(mut m: Vec<Vec<f64>>, b: &[f64]) -> Vec<f64> {
    let n = b.len();
    for (row, v) in m.iter_mut().zip(b) {
        row.push(*v);
    }
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

/// The linear model's network, its parameters split into (w, b), and a point.
fn linear_case(seed: u64) -> (NetworkLoss, Vec<f64>, f64, Vec<f64>, f64) {
    let dev = device();
    let m = model([1, 2, 3], &[linear(1, ActivationKind::None)], seed);
    let y = 0.3;
    let net = NetworkLoss::new(&m, LossKind::Squared { target: vec![y] }, &dev).unwrap();
    let slots = net.slots();
    assert_eq!(slots.len(), 2, "weight then bias");
    assert_eq!(slots[0].shape, vec![6, 1]);
    let theta = net.params().to_vec();
    let x = seeded(6, seed + 1, 0.0, 1.0);
    (net, theta[..6].to_vec(), theta[6], x, y)
}

#[test]
fn finite_difference_products_match_the_closed_form_jacobian() {
    for seed in 0..3 {
        let (net, w, b, x, y) = linear_case(seed);
        let j = closed_form_jacobian(&w, b, &x, y);
        // The gradient itself matches g = (x r, r).
        let r = dot(&w, &x) + b - y;
        let g = net.gradients(None, &x).params;
        for (i, gi) in g.iter().enumerate() {
            let want = if i < 6 { x[i] * r } else { r };
            assert!((gi - want).abs() < 1e-12, "g[{i}] {gi} vs {want}");
        }
        let jac = Jacobian::new(&net, &x, 1e-4);
        let v = seeded(6, 10 + seed, -1.0, 1.0);
        let u = seeded(7, 20 + seed, -1.0, 1.0);
        let jt_v: Vec<f64> = (0..7)
            .map(|c| (0..6).map(|i| j[i][c] * v[i]).sum())
            .collect();
        let j_u: Vec<f64> = j.iter().map(|row| dot(row, &u)).collect();
        for (a, e) in jac.jt_v(&v).iter().zip(&jt_v) {
            assert!((a - e).abs() < 1e-9 * (1.0 + e.abs()), "J^T v: {a} vs {e}");
        }
        for (a, e) in jac.j_u(&u).iter().zip(&j_u) {
            assert!((a - e).abs() < 1e-9 * (1.0 + e.abs()), "J u: {a} vs {e}");
        }
    }
}

#[test]
fn finite_difference_products_are_adjoint_on_a_sigmoid_network() {
    // No closed form here, but <v, J u> = <J^T v, u> must hold, and the two
    // sides come from different perturbations (input vs. parameters).
    let dev = device();
    let m = model(
        [1, 4, 4],
        &[
            linear(6, ActivationKind::Sigmoid),
            linear(3, ActivationKind::None),
        ],
        5,
    );
    let net = NetworkLoss::new(&m, LossKind::CrossEntropy { label: 1 }, &dev).unwrap();
    let x = seeded(16, 6, 0.0, 1.0);
    let jac = Jacobian::new(&net, &x, 1e-4);
    let v = seeded(16, 7, -1.0, 1.0);
    let u = seeded(net.num_params(), 8, -1.0, 1.0);
    let left = dot(&v, &jac.j_u(&u));
    let right = dot(&jac.jt_v(&v), &u);
    assert!(
        (left - right).abs() < 1e-7 * left.abs().max(right.abs()),
        "{left} vs {right}"
    );
}

#[test]
fn i2f_matches_the_closed_form_on_a_linear_model() {
    for (seed, damping) in [(0, 0.0), (1, 1e-3), (2, 0.5)] {
        let (net, w, b, x, y) = linear_case(seed);
        let j = closed_form_jacobian(&w, b, &x, y);
        let delta = seeded(7, 30 + seed, -0.1, 0.1);
        // Closed form: (J J^T + mu I)^-1 J delta.
        let jjt: Vec<Vec<f64>> = (0..6)
            .map(|i| {
                (0..6)
                    .map(|k| dot(&j[i], &j[k]) + if i == k { damping } else { 0.0 })
                    .collect()
            })
            .collect();
        let jd: Vec<f64> = j.iter().map(|row| dot(row, &delta)).collect();
        let exact = norm(&solve(jjt, &jd));

        let jac = Jacobian::new(&net, &x, 1e-4);
        let lm = lanczos_lambda_max(|v| jac.jjt(v), 6, 6, 1e-12, 1);
        let est = i2f_estimate(
            |v| jac.jjt(v),
            &jac.j_u(&delta),
            lm.value,
            damping,
            50,
            1e-12,
        );
        assert!(
            (est.i2f - exact).abs() < 1e-6 * exact,
            "seed {seed}: I2F {} vs closed form {exact}",
            est.i2f
        );
        assert!(est.lower_bound <= est.i2f);
    }
}

#[test]
fn lower_bound_never_exceeds_i2f_on_random_networks() {
    let dev = device();
    for seed in 0..6u64 {
        let hidden = 3 + seed as usize % 4;
        let m = model(
            [1, 3, 3],
            &[
                linear(hidden, ActivationKind::Sigmoid),
                linear(3, ActivationKind::None),
            ],
            100 + seed,
        );
        let label = (seed % 3) as u32;
        let net = NetworkLoss::new(&m, LossKind::CrossEntropy { label }, &dev).unwrap();
        let x = seeded(9, 200 + seed, 0.0, 1.0);
        let jac = Jacobian::new(&net, &x, 1e-4);
        let lm = lanczos_lambda_max(|v| jac.jjt(v), 9, 2 + seed as usize % 5, 1e-9, seed);
        for (k, scale) in [1e-4, 1e-2, 1.0].into_iter().enumerate() {
            let delta = GradientDefense::Noise { scale }
                .perturbation(&vec![0.0; net.num_params()], seed * 10 + k as u64);
            for damping in [0.0, 1e-3 * lm.value, lm.value] {
                let est = i2f_estimate(
                    |v| jac.jjt(v),
                    &jac.j_u(&delta),
                    lm.value,
                    damping,
                    30,
                    1e-8,
                );
                assert!(
                    est.lower_bound <= est.i2f,
                    "seed {seed} scale {scale} damping {damping}: bound {} > I2F {}",
                    est.lower_bound,
                    est.i2f
                );
            }
        }
    }
}

#[test]
fn attack_recovers_a_tiny_example_without_perturbation() {
    let dev = device();
    let m = model(
        [1, 4, 4],
        &[
            linear(12, ActivationKind::Sigmoid),
            linear(3, ActivationKind::None),
        ],
        11,
    );
    let x = seeded(16, 12, 0.0, 1.0);
    let net = NetworkLoss::new(&m, LossKind::CrossEntropy { label: 2 }, &dev).unwrap();
    let shared = net.gradients(None, &x).params;
    let label = infer_label(&shared, net.slots()).unwrap();
    assert_eq!(label, 2, "label read from the last layer's gradient");
    let attacker = net.relabel(LossKind::CrossEntropy { label }).unwrap();
    let cfg = AttackConfig {
        iterations: 400,
        tv_weight: 0.0,
        ..AttackConfig::default()
    };
    let inv = invert_gradient(&attacker, &shared, [1, 4, 4], &cfg, 3);
    let mse = x
        .iter()
        .zip(&inv.x)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / 16.0;
    assert!(mse < 1e-4, "MSE {mse}, matching {}", inv.matching);
    // And a perturbed gradient moves the result away, as I2F says it should.
    let delta = GradientDefense::Noise { scale: 0.05 }.perturbation(&shared, 4);
    let noisy: Vec<f64> = shared.iter().zip(&delta).map(|(a, b)| a + b).collect();
    let worse = invert_gradient(&attacker, &noisy, [1, 4, 4], &cfg, 3);
    let mse_noisy = x
        .iter()
        .zip(&worse.x)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / 16.0;
    assert!(mse_noisy > mse, "{mse_noisy} vs {mse}");
}

#[test]
fn a_small_leakage_run_writes_its_report() {
    let text = "name: tiny-leakage\nmodel: {arch: lenet}\ntraining: {lr_drops: {factor: 0.1}}\n\
        data: {limit: 300}\nleakage:\n  examples: 2\n  threads: 2\n  defenses:\n    - {kind: noise, scales: [0.0, 0.01]}\n    - {kind: prune, quantiles: [0.5]}\n  attack: {iterations: 20}\n  i2f: {cg_iterations: 10, lanczos_steps: 4}\n";
    let loaded = splitguard::recipe::from_str(text, "tiny.yaml", &[]).unwrap();
    let cfg = loaded.recipe.leakage.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = run_leakage(&loaded.recipe, &cfg, dir.path(), &device(), &mut ()).unwrap();
    assert_eq!(report.results.len(), 6);
    assert_eq!(report.settings.len(), 3);
    assert_eq!(report.attacks.len(), 3);
    assert_eq!(report.params, 13_426);
    let zero = &report.results[0];
    assert_eq!((zero.delta_norm, zero.i2f.i2f), (0.0, 0.0));
    assert!(
        report
            .results
            .iter()
            .all(|r| r.i2f.lower_bound <= r.i2f.i2f)
    );
    for f in [
        "report.json",
        "report.md",
        "leakage_grid.png",
        "i2f_vs_error.svg",
        "recipe.resolved.yaml",
    ] {
        assert!(dir.path().join(f).exists(), "{f} written");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["attacks"][0]["attack"], "gradient_inversion");
    assert!(json["i2f_vs_error"]["pairs"] == 6);
    // Same recipe, same seed: same numbers, whatever the thread count.
    let mut one = cfg.clone();
    one.threads = 1;
    let dir2 = tempfile::tempdir().unwrap();
    let again = run_leakage(&loaded.recipe, &one, dir2.path(), &device(), &mut ()).unwrap();
    assert_eq!(again.results, report.results);
}
