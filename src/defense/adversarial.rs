//! Adversarial reconstruction training (seed 001, PATROL; DESIGN section 5.3).
//!
//! A decoder attacker `f_adv` learns to rebuild the input from the split
//! features while the model learns to defeat it, a min-max game:
//! `min_model max_adv  L_task - beta * ||x - f_adv(f_e(x))||^2 / n` (the mean
//! squared reconstruction error over pixels, which is bounded because images
//! and the decoder's sigmoid output lie in [0, 1]).
//!
//! Each side's weights move only by its own loss:
//! - the model's term runs a frozen copy of the decoder (no gradient for its
//!   weights, batch-norm in inference mode, so the model's step changes
//!   nothing of the attacker, running statistics included);
//! - after the model's optimiser step, the attacker takes `attacker_steps`
//!   steps of its own Adam on the batch's detached features (computed before
//!   the model's step), so the model's weights receive no gradient from it.
//!
//! The decoder is [`crate::model::decoder::Decoder`], the audit's attacker
//! network, built lazily for the split's feature shape at the first step.
//! The audit never reuses it: the final model is attacked from scratch.
//!
//! The decoder and its Adam state carry over from step to step, so they are
//! part of the training checkpoint ([`Defense::state`], version
//! [`STATE_VERSION`]): a resumed run plays on against the same attacker.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::base::{restore_opponent, save_opponent};
use super::{Defense, DefenseState, StepContext};
use crate::model::decoder::Decoder;
use crate::model::{Features, SplitModel};
use crate::train::to_vec;

fn d_steps() -> usize {
    1
}
fn d_lr() -> f64 {
    1e-3
}
fn d_width() -> usize {
    32
}

/// Adversarial reconstruction settings (`training.defenses.adversarial`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdversarialConfig {
    /// `beta`: weight of the reconstruction error subtracted from the model's
    /// loss (0 turns the game off).
    pub weight: f32,
    /// Attacker optimiser steps per model step (default 1).
    #[serde(default = "d_steps")]
    pub attacker_steps: usize,
    /// The attacker's Adam learning rate (default 1e-3).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Channels of the decoder's first feature map (default 32).
    #[serde(default = "d_width")]
    pub width: usize,
}

impl AdversarialConfig {
    /// Validation problems as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            p.push((
                "weight".into(),
                format!("must be >= 0, got {}", self.weight),
            ));
        }
        if self.attacker_steps == 0 {
            p.push(("attacker_steps".into(), "must be >= 1, got 0".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            p.push(("lr".into(), format!("must be > 0, got {}", self.lr)));
        }
        if self.width < 8 {
            p.push(("width".into(), format!("must be >= 8, got {}", self.width)));
        }
        p
    }
}

/// Forces burn's lazy parameter initialisation. Clones of a lazy parameter
/// share its pending initialisation, so freezing a clone before the first
/// forward pass would also freeze the original attacker.
pub(crate) struct Materialize;
impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Mean squared error between reconstructions and images, `[1]`.
fn mse(reconstruction: Tensor<4>, images: Tensor<4>) -> Tensor<1> {
    (reconstruction - images).square().mean()
}

/// The layout of the saved state: `values` holds the decoder's input shape
/// and target `[C, H, W]` (or null before the first step); blobs `decoder`
/// (its module record) and `optimizer` (its Adam state).
pub const STATE_VERSION: u32 = 1;

/// The shapes a decoder was built for (enough to build it again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct DecoderShape {
    input: Vec<usize>,
    target: [usize; 3],
}

/// The min-max game against a training-time decoder attacker.
pub struct AdversarialReconstruction {
    cfg: AdversarialConfig,
    decoder: Option<Decoder>,
    shape: Option<DecoderShape>,
    optim: ModuleOptimizer,
    model_term_sum: f64,
    attacker_mse_sum: f64,
    model_steps: usize,
    attacker_steps: usize,
}

impl AdversarialReconstruction {
    /// A fresh game; the decoder is built at the first step.
    pub fn new(cfg: AdversarialConfig) -> Self {
        Self {
            cfg,
            decoder: None,
            shape: None,
            optim: AdamConfig::new().init(),
            model_term_sum: 0.0,
            attacker_mse_sum: 0.0,
            model_steps: 0,
            attacker_steps: 0,
        }
    }

    /// The attacker, once built.
    pub fn decoder(&self) -> Option<&Decoder> {
        self.decoder.as_ref()
    }

    fn decoder_for(&mut self, features: &Features, images: &Tensor<4>) -> &Decoder {
        if self.decoder.is_none() {
            let [_, c, h, w] = images.dims();
            let shape = DecoderShape {
                input: features.example_shape(),
                target: [c, h, w],
            };
            self.decoder = Some(self.build_decoder(&shape, &images.device()));
            self.shape = Some(shape);
        }
        self.decoder.as_ref().expect("the decoder was just built")
    }

    fn build_decoder(&self, shape: &DecoderShape, device: &Device) -> Decoder {
        let decoder = Decoder::new(
            &shape.input,
            shape.target,
            self.cfg.width,
            // The defender's own inversion model keeps the plain stack
            // (seed 004's adversary), not the audit's deeper decoder.
            0,
            device,
        );
        decoder.visit(&mut Materialize);
        decoder
    }

    /// The model's term `-beta * mse(x, f_adv(z))`, `[1]`, with the attacker
    /// frozen; `None` at `beta = 0`.
    pub fn model_term(&mut self, features: &Features, images: &Tensor<4>) -> Option<Tensor<1>> {
        if self.cfg.weight == 0.0 {
            return None;
        }
        let frozen = self.decoder_for(features, images).clone().freeze();
        let rec = frozen.forward(features.clone().flatten());
        let term = mse(rec, images.clone().detach()).mul_scalar(-self.cfg.weight);
        self.model_term_sum += to_vec(term.clone().detach())[0] as f64;
        self.model_steps += 1;
        Some(term)
    }

    /// `attacker_steps` steps of the attacker on detached features; nothing
    /// at `beta = 0`.
    pub fn attacker_step(&mut self, features: &Features, images: &Tensor<4>) {
        if self.cfg.weight == 0.0 {
            return;
        }
        let z = features.clone().detach().flatten();
        let x = images.clone().detach();
        self.decoder_for(features, images);
        for _ in 0..self.cfg.attacker_steps {
            let dec = self.decoder.take().expect("decoder was just built");
            let loss = mse(dec.forward(z.clone()), x.clone());
            self.attacker_mse_sum += to_vec(loss.clone().detach())[0] as f64;
            self.attacker_steps += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &dec);
            self.decoder = Some(self.optim.step(self.cfg.lr, dec, grads));
        }
    }
}

impl Defense for AdversarialReconstruction {
    fn name(&self) -> &'static str {
        "adversarial"
    }

    fn loss(&mut self, ctx: &StepContext) -> Option<Tensor<1>> {
        self.model_term(ctx.features, ctx.images)
    }

    fn after_step(&mut self, _model: &SplitModel, ctx: &StepContext) {
        self.attacker_step(ctx.features, ctx.images);
    }

    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        if self.model_steps > 0 {
            out.push((
                "adversarial".to_string(),
                self.model_term_sum / self.model_steps as f64,
            ));
        }
        if self.attacker_steps > 0 {
            out.push((
                "adversarial_attacker_mse".to_string(),
                self.attacker_mse_sum / self.attacker_steps as f64,
            ));
        }
        self.model_term_sum = 0.0;
        self.attacker_mse_sum = 0.0;
        self.model_steps = 0;
        self.attacker_steps = 0;
        out
    }

    fn state_version(&self) -> Option<u32> {
        Some(STATE_VERSION)
    }

    fn state(&self) -> Result<Option<DefenseState>, String> {
        let net = self.decoder.as_ref().zip(self.shape.as_ref());
        save_opponent(net, &self.optim, "decoder", STATE_VERSION)
    }

    fn restore(&mut self, state: DefenseState, device: &Device) -> Result<(), String> {
        (self.decoder, self.shape, self.optim) =
            restore_opponent(state, "decoder", |shape: &DecoderShape| {
                Ok(self.build_decoder(shape, device))
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivationKind, BlockSpec, ConvSpec, LinearSpec, ModelSpec};
    use crate::train::{one_hot, soft_cross_entropy};

    use crate::defense::base::param_values as values;

    fn tiny(device: &Device) -> SplitModel {
        let spec = ModelSpec {
            vae: None,
            arch: "t".into(),
            input: [1, 8, 8],
            blocks: vec![
                BlockSpec::Conv(ConvSpec {
                    out_channels: 3,
                    kernel: 3,
                    stride: 1,
                    padding: None,
                    pool: 2,
                    batch_norm: true,
                    activation: ActivationKind::Relu,
                    order: Default::default(),
                    bias: true,
                }),
                BlockSpec::Linear(LinearSpec {
                    out_features: 2,
                    activation: ActivationKind::None,
                    batch_norm: false,
                }),
            ],
        };
        SplitModel::new(&spec, device).unwrap()
    }

    #[test]
    fn each_side_steps_only_its_own_weights() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let mut model = tiny(&device);
        let x = Tensor::<4>::random([6, 1, 8, 8], burn::tensor::Distribution::Default, &device);
        let mut adv = AdversarialReconstruction::new(AdversarialConfig {
            weight: 1.0,
            attacker_steps: 2,
            lr: 1e-2,
            width: 8,
        });
        // The model's step comes first (it builds the attacker): no gradient
        // reaches the attacker, and nothing of it changes.
        let z = model.edge_forward(x.clone(), 1);
        let task = soft_cross_entropy(
            model.server_forward(z.clone(), 1),
            one_hot(&[0, 1, 0, 1, 0, 1], 2, &device),
        );
        let loss = task + adv.model_term(&z, &x).expect("beta > 0 adds a term");
        let attacker_before = values(adv.decoder().unwrap());
        let mut grads = loss.backward();
        assert!(GradientsParams::from_module(&mut grads, adv.decoder().unwrap()).is_empty());
        let model_grads = GradientsParams::from_module(&mut grads, &model);
        let model_before = values(&model);
        model = AdamConfig::new().init().step(1e-2, model, model_grads);
        assert_ne!(values(&model), model_before, "the model moved");
        assert_eq!(values(adv.decoder().unwrap()), attacker_before);

        // The attacker's step: the model is untouched.
        let model_before = values(&model);
        adv.attacker_step(&z, &x);
        assert_eq!(values(&model), model_before);
        assert_ne!(
            values(adv.decoder().unwrap()),
            attacker_before,
            "the attacker moved"
        );
        let log = adv.epoch_log();
        assert_eq!(log[0].0, "adversarial");
        assert!(log[0].1 < 0.0, "the model's term is minus the error");
    }

    #[test]
    fn zero_beta_builds_nothing() {
        let device = Device::flex().autodiff();
        let model = tiny(&device);
        let x = Tensor::<4>::zeros([2, 1, 8, 8], &device);
        let z = model.edge_forward(x.clone(), 1);
        let mut adv = AdversarialReconstruction::new(AdversarialConfig {
            weight: 0.0,
            attacker_steps: 1,
            lr: 1e-3,
            width: 8,
        });
        assert!(adv.model_term(&z, &x).is_none());
        adv.attacker_step(&z, &x);
        assert!(adv.decoder().is_none());
        assert!(adv.epoch_log().is_empty());
    }
}
