//! VAE Gaussianisation (seed 004, section 4.3 "Training"; DESIGN section
//! 5.5): the edge emits a mean and a log-variance at the split (the model's
//! [`VaeHead`](crate::model::VaeHead)); in training the server sees the
//! reparameterised sample `mu + sigma * eps` and the loss adds
//! `weight * KL(N(mu, sigma^2) || N(0, I))` (mean over the batch); at
//! inference the edge sends `mu`. The pipeline adds the head to the model at
//! the deployment split when this defense is configured with a weight > 0.

use burn::prelude::*;
use burn::tensor::Distribution;

use super::{Defense, StepContext};
use crate::model::{Features, kl_divergence};

/// The VAE defense: sampling at the split and the KL term.
pub struct Vae {
    /// Weight of the KL term (0: the defense does nothing and the pipeline
    /// adds no head).
    pub weight: f32,
    kl_sum: f64,
    steps: usize,
}

impl Vae {
    /// A new defense with the KL weight.
    pub fn new(weight: f32) -> Self {
        Self {
            weight,
            kl_sum: 0.0,
            steps: 0,
        }
    }
}

impl Defense for Vae {
    fn name(&self) -> &'static str {
        "vae"
    }

    fn transform(&mut self, features: Features, ctx: &StepContext) -> Features {
        let Some(log_var) = ctx.log_var.filter(|_| self.weight > 0.0) else {
            return features;
        };
        let shape = features.example_shape();
        let mu = features.flatten();
        let sigma = (log_var.clone().flatten() * 0.5).exp();
        let eps = Tensor::<2>::random(mu.dims(), Distribution::Normal(0.0, 1.0), &mu.device());
        Features::from_flat(mu + sigma * eps, &shape)
    }

    fn loss(&mut self, ctx: &StepContext) -> Option<Tensor<1>> {
        let log_var = ctx.log_var.filter(|_| self.weight > 0.0)?;
        let kl = kl_divergence(ctx.features.clone().flatten(), log_var.clone().flatten());
        self.kl_sum += crate::train::to_vec(kl.clone().detach())[0] as f64;
        self.steps += 1;
        Some(kl * self.weight)
    }

    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        let mean = self.kl_sum / self.steps.max(1) as f64;
        (self.kl_sum, self.steps) = (0.0, 0);
        vec![("vae_kl".into(), mean)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::decov::tests::{one_epoch, synthetic, weights_after_one_epoch};
    use crate::defense::{DefensesConfig, VaeConfig};
    use crate::model::{SplitModel, VaeSpec, zoo};
    use crate::train::to_vec;

    fn vae(weight: f32) -> DefensesConfig {
        DefensesConfig {
            vae: Some(VaeConfig { weight }),
            ..Default::default()
        }
    }

    #[test]
    fn weight_zero_trains_bit_identically() {
        assert!(!vae(0.0).wants_vae_head());
        assert_eq!(
            weights_after_one_epoch(DefensesConfig::default()),
            weights_after_one_epoch(vae(0.0))
        );
    }

    /// One epoch of a cnn6 with a VAE head at split 2: the KL term trains the
    /// log-variance map, the inference edge sends the mean, and the split
    /// model's edge-then-server output equals the full forward pass.
    #[test]
    fn the_head_trains_and_inference_sends_the_mean() {
        let ds = synthetic();
        let dev = Device::flex().autodiff();
        let mut spec = zoo::spec_for("cnn6", [1, 8, 8], 2).unwrap();
        spec.vae = Some(VaeSpec { at: 2 });
        dev.seed(5);
        let model = SplitModel::new(&spec, &dev).unwrap();
        let log_var_of = |m: &SplitModel| match &m.vae.as_ref().unwrap().log_var {
            crate::model::vae::AffineMap::Conv(c) => to_vec(c.bias.as_ref().unwrap().val()),
            crate::model::vae::AffineMap::Linear(l) => to_vec(l.bias.as_ref().unwrap().val()),
        };
        let before = log_var_of(&model);
        let out = one_epoch(model, &vae(1.0), &dev);
        let after = log_var_of(&out.model);
        // KL pulls log sigma^2 from -4 towards 0 (sigma towards 1).
        assert!(
            after.iter().zip(&before).all(|(a, b)| a > b),
            "{before:?} -> {after:?}"
        );
        let kl = out.history[0].defenses["vae_kl"];
        assert!(kl.is_finite() && kl > 0.0);

        let model = out.model.valid();
        let x = crate::train::images_tensor(&ds, &[0, 1, 2, 3], &model.devices()[0]);
        let (mu, log_var) = model.edge_forward_moments(
            x.clone(),
            2,
            &|i, u| model.blocks[i].forward(u),
            &mut |_, f| f,
        );
        assert!(log_var.is_some());
        let sent = model.edge_forward(x.clone(), 2).flatten();
        assert_eq!(to_vec(sent.clone()), to_vec(mu.flatten()));
        let (edge, server) = model.split(2).unwrap();
        assert!(edge.vae.is_some() && server.vae.is_none());
        let split_out = to_vec(server.forward_features(edge.edge_forward(x.clone(), 2)));
        let full = to_vec(model.forward(x));
        for (a, b) in split_out.iter().zip(&full) {
            assert!((a - b).abs() < 1e-5);
        }
        // The head is in the spec, its cost in the edge FLOPs.
        let s = model.spec().unwrap();
        assert_eq!(s.vae, Some(VaeSpec { at: 2 }));
        let plain = zoo::spec_for("cnn6", [1, 8, 8], 2).unwrap();
        let out2 = plain.infos().unwrap()[1].output.clone();
        assert_eq!(
            s.edge_flops(2).unwrap(),
            plain.edge_flops(2).unwrap() + crate::model::VaeHead::flops(&out2)
        );
    }
}
