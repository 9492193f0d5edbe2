//! The per-example work of a leakage run, spread over threads: each worker
//! takes every `threads`-th example and, for each defense setting, runs the
//! attack and the I2F estimate. Examples are independent and seeded by
//! their index, so the numbers do not depend on the thread count.

use burn::prelude::*;

use super::attack::{LabelSource, infer_label, invert_gradient};
use super::config::LeakageConfig;
use super::defense::GradientDefense;
use super::experiment::ExampleResult;
use super::i2f::{LambdaMax, i2f_estimate, lanczos_lambda_max};
use super::jacobian::{Jacobian, norm};
use super::oracle::{GradientOracle, LossKind, NetworkLoss};
use crate::Error;
use crate::metrics::reconstruction_metrics;
use crate::model::SplitModel;

/// A seed for (run seed, example, purpose).
pub(super) fn mix(seed: u64, a: u64, b: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ a.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ b
}

/// One private example to attack.
pub(super) struct Job {
    pub example: usize,
    pub test_index: usize,
    pub label: u32,
    pub image: Vec<f32>,
    pub seed: u64,
}

/// What one example's attacks produced.
pub(super) struct ExampleRun {
    pub results: Vec<ExampleResult>,
    /// One reconstruction per defense setting.
    pub recons: Vec<Vec<f32>>,
    pub lambda: LambdaMax,
    pub params: usize,
}

/// Messages from the worker threads.
pub(super) enum Msg {
    Pair(ExampleResult),
    Done(usize, Box<Result<ExampleRun, Error>>),
}

/// Attacks one example under every defense setting and estimates I2F.
pub(super) fn attack_example(
    model: &SplitModel,
    job: &Job,
    shape: [usize; 3],
    settings: &[GradientDefense],
    cfg: &LeakageConfig,
    device: &Device,
    tx: &std::sync::mpsc::Sender<Msg>,
) -> Result<ExampleRun, Error> {
    let (e, label) = (job.example as u64, job.label);
    let x: Vec<f64> = job.image.iter().map(|&v| v as f64).collect();
    let net = NetworkLoss::new(model, LossKind::CrossEntropy { label }, device)?;
    let g = net.gradients(None, &x).params;
    let jac = Jacobian::new(&net, &x, cfg.i2f.fd_step);
    let d = x.len();
    let lambda = lanczos_lambda_max(
        |w| jac.jjt(w),
        d,
        cfg.i2f.lanczos_steps,
        1e-6,
        mix(job.seed, e, 1),
    );
    let mut results = Vec::with_capacity(settings.len());
    let mut recons = Vec::with_capacity(settings.len());
    for (s, setting) in settings.iter().enumerate() {
        let delta = setting.perturbation(&g, mix(job.seed, e, 100 + s as u64));
        let shared: Vec<f64> = g.iter().zip(&delta).map(|(a, b)| a + b).collect();
        let attack_label = match cfg.attack.label {
            LabelSource::Known => label,
            LabelSource::Inferred => infer_label(&shared, net.slots())?,
        };
        let attacker = net.relabel(LossKind::CrossEntropy {
            label: attack_label,
        })?;
        let inv = invert_gradient(&attacker, &shared, shape, &cfg.attack, mix(job.seed, e, 2));
        let est = i2f_estimate(
            |w| jac.jjt(w),
            &jac.j_u(&delta),
            lambda.value,
            cfg.i2f.damping * lambda.value,
            cfg.i2f.cg_iterations,
            cfg.i2f.cg_tolerance,
        );
        let rec: Vec<f32> = inv.x.iter().map(|&v| v as f32).collect();
        let m = reconstruction_metrics(&job.image, &rec, 1, shape)?;
        let diff: Vec<f64> = x.iter().zip(&inv.x).map(|(a, b)| a - b).collect();
        let r = ExampleResult {
            example: job.example,
            test_index: job.test_index,
            label,
            attack_label,
            defense: setting.label(),
            gradient_norm: norm(&g),
            delta_norm: norm(&delta),
            mse: m.mse,
            psnr: m.psnr,
            ssim: m.ssim,
            error_norm: norm(&diff),
            matching: inv.matching,
            i2f: est,
        };
        // The receiver only goes away when the run is abandoned.
        let _ = tx.send(Msg::Pair(r.clone()));
        results.push(r);
        recons.push(rec);
    }
    Ok(ExampleRun {
        results,
        recons,
        lambda,
        params: net.num_params(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_seeds_differ_per_example_and_purpose() {
        assert_ne!(mix(1, 0, 1), mix(1, 1, 1));
        assert_ne!(mix(1, 0, 1), mix(1, 0, 2));
        assert_ne!(mix(1, 0, 1), mix(2, 0, 1));
    }
}
