//! deCov (Cogswell et al., ICLR 2016), used by seed 004 (section 4.4) to
//! decorrelate the split features so the signal content carries less
//! redundant information; DESIGN section 5.5.
//!
//! With `h` the flattened split features of a batch `[N, D]`, `mu` their
//! batch mean and `C = (h - mu)^T (h - mu) / N` their covariance,
//! `L = 0.5 (||C||_F^2 - ||diag C||_2^2)`, added with weight `w`.

use burn::prelude::*;

use super::{Defense, StepContext};

/// The deCov loss with its weight.
#[derive(Clone, Debug)]
pub struct DeCov {
    /// Weight of the loss term (0 turns it off).
    pub weight: f32,
    sum: f64,
    steps: usize,
}

impl DeCov {
    /// deCov with the given weight.
    pub fn new(weight: f32) -> Self {
        Self {
            weight,
            sum: 0.0,
            steps: 0,
        }
    }
}

/// `0.5 (||C||_F^2 - ||diag C||^2)` of a batch `[N, D]` (unweighted).
pub fn decov_loss(h: Tensor<2>) -> Tensor<1> {
    let n = h.dims()[0].max(1) as f32;
    let hc = h.clone() - h.mean_dim(0);
    let c = hc.clone().transpose().matmul(hc.clone()) / n;
    let frob = c.powi_scalar(2).sum();
    let diag = hc.powi_scalar(2).sum_dim(0) / n;
    (frob - diag.powi_scalar(2).sum()) * 0.5
}

impl Defense for DeCov {
    fn name(&self) -> &'static str {
        "decov"
    }

    fn loss(&mut self, ctx: &StepContext) -> Option<Tensor<1>> {
        if self.weight == 0.0 {
            return None;
        }
        let l = decov_loss(ctx.features.clone().flatten());
        self.sum += f64::from(crate::train::to_vec(l.clone())[0]);
        self.steps += 1;
        Some(l * self.weight)
    }

    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        let mean = self.sum / self.steps.max(1) as f64;
        self.sum = 0.0;
        self.steps = 0;
        vec![("decov".into(), mean)]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::defense::DefensesConfig;
    use crate::model::{SplitModel, zoo};
    use crate::train::{Silent, TrainConfig, TrainRun, to_vec, train};

    fn naive(h: &[f32], n: usize, d: usize) -> f64 {
        let mu: Vec<f64> = (0..d)
            .map(|j| (0..n).map(|i| f64::from(h[i * d + j])).sum::<f64>() / n as f64)
            .collect();
        let mut total = 0.0;
        for a in 0..d {
            for b in 0..d {
                if a == b {
                    continue;
                }
                let c: f64 = (0..n)
                    .map(|i| (f64::from(h[i * d + a]) - mu[a]) * (f64::from(h[i * d + b]) - mu[b]))
                    .sum::<f64>()
                    / n as f64;
                total += c * c;
            }
        }
        0.5 * total
    }

    #[test]
    fn loss_equals_the_naive_definition() {
        let (n, d) = (5, 4);
        let h: Vec<f32> = (0..n * d)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let t = Tensor::<2>::from_data(TensorData::new(h.clone(), [n, d]), &Device::flex());
        let got = f64::from(to_vec(decov_loss(t))[0]);
        let want = naive(&h, n, d);
        assert!((got - want).abs() < 1e-4 * want.max(1.0), "{got} vs {want}");
        assert!(want > 0.1, "the test must exercise off-diagonal terms");
    }

    /// A tiny synthetic dataset: 32 random 1x8x8 images, 2 classes.
    pub(crate) fn synthetic() -> Dataset {
        let n = 32;
        Dataset {
            name: "synthetic".into(),
            images: (0..n * 64)
                .map(|i| ((i * 7919) % 101) as f32 / 100.0)
                .collect(),
            shape: [1, 8, 8],
            targets: (0..n as u32).map(|i| i % 2).collect(),
            num_classes: 2,
            hidden: Vec::new(),
        }
    }

    /// One training epoch of `model` on [`synthetic`] with the given
    /// defenses (batch 16, seed 3, defended split 2).
    pub(crate) fn one_epoch(
        model: SplitModel,
        defenses: &DefensesConfig,
        dev: &Device,
    ) -> crate::train::Trained {
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: 16,
            defenses: defenses.clone(),
            ..Default::default()
        };
        let mut list = defenses.build(3);
        let run = TrainRun {
            config: &cfg,
            seed: 3,
            split: 2,
            checkpoint: None,
            metrics_log: None,
            resume: false,
        };
        train(model, &synthetic(), &mut list, &run, dev, &mut Silent).unwrap()
    }

    /// Weights after one epoch with the given defenses config.
    pub(crate) fn weights_after_one_epoch(defenses: DefensesConfig) -> Vec<f32> {
        let dev = Device::flex().autodiff();
        let spec = zoo::spec_for("cnn6", [1, 8, 8], 2).unwrap();
        dev.seed(5);
        let model = SplitModel::new(&spec, &dev).unwrap();
        let out = one_epoch(model, &defenses, &dev);
        let mut w = Vec::new();
        for b in &out.model.blocks {
            if let crate::model::Block::Linear(l) = b {
                w.extend(to_vec(l.linear.weight.val()));
            }
            if let crate::model::Block::Conv(c) = b {
                w.extend(to_vec(c.conv.weight.val()));
            }
        }
        w
    }

    #[test]
    fn weight_zero_trains_bit_identically() {
        let plain = weights_after_one_epoch(DefensesConfig::default());
        let zero = weights_after_one_epoch(DefensesConfig {
            decov: Some(crate::defense::DeCovConfig { weight: 0.0 }),
            ..Default::default()
        });
        assert_eq!(plain, zero);
        let on = weights_after_one_epoch(DefensesConfig {
            decov: Some(crate::defense::DeCovConfig { weight: 1.0 }),
            ..Default::default()
        });
        assert_ne!(plain, on, "a non-zero weight must change training");
    }
}
