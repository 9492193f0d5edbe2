//! Adversarial training against a known hidden attribute: the supervised
//! baseline seed 004 compares its obfuscation with (section 2, eq. 3; section
//! 5.2, "Comparison with adversarial training", Figure 6; the framework of
//! Feutry et al. 2018).
//!
//! Eq. 3: `max_{M_c, M_s} min_{M_a} E[gamma * L(y_hid, M_a(M_c(x))) -
//! L(y_tar, M_s(M_c(x)))]` with `L` the cross-entropy: an adversary `M_a`
//! learns to read the hidden attribute (e.g. the writer group) from the
//! split features while the edge `M_c` and the server `M_s` learn the task
//! and to defeat it. Here, as a loss the trainer minimises:
//! - the model's term is `-gamma * mean_i min(CE_i, ln K)` over the
//!   batch, `CE_i` the adversary's cross-entropy on example `i`, with the
//!   adversary frozen (no gradient for its weights, batch-norm in inference
//!   mode), `K` the attribute's number of values. The cap at chance level
//!   `ln K`, per example, is this file's one departure from eq. 3: an
//!   uncapped cross-entropy rewards the edge without bound for making the
//!   adversary confidently wrong, which is itself a leak (flip the
//!   prediction) and makes the loss diverge; an example at or beyond
//!   chance gives the edge nothing more to gain (eq. 3's equilibrium),
//!   while the others still push, so a few confidently wrong examples
//!   cannot silence the whole batch;
//! - after the model's optimiser step the adversary takes
//!   `attacker_steps` Adam steps on the batch's detached features, so the
//!   model's weights receive no gradient from it.
//!
//! The adversary has the server part's architecture with its last layer
//! resized to the attribute's values, as the audit's attribute attacker
//! ([`crate::model::with_classes`]), built at the first step.
//! The audit never reuses it: the final model is attacked by a fresh
//! attacker. It and its optimiser are part of the training checkpoint
//! ([`STATE_VERSION`]), so a resumed run plays on against the same
//! adversary.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::adversarial::Materialize;
use super::base::{restore_opponent, save_opponent};
use super::{Defense, DefenseState, StepContext};
use crate::model::{BlockSpec, SplitModel};
use crate::train::{one_hot, soft_cross_entropy, to_vec};

fn d_steps() -> usize {
    1
}
fn d_lr() -> f64 {
    1e-3
}

/// Settings of adversarial training against a known attribute
/// (`training.defenses.attribute_adversarial`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeAdversarialConfig {
    /// The hidden attribute of the data to hide (e.g. `writer`).
    pub attribute: String,
    /// `gamma` of eq. 3, finite and >= 0 (the paper tries 0.1 to 1; 0 turns
    /// the game off).
    pub weight: f32,
    /// Adversary optimiser steps per model step, >= 1 (default 1).
    #[serde(default = "d_steps")]
    pub attacker_steps: usize,
    /// The adversary's Adam learning rate, finite and > 0 (default 1e-3).
    #[serde(default = "d_lr")]
    pub lr: f64,
}

impl AttributeAdversarialConfig {
    /// Validation problems as `(field, message)`; `available` are the
    /// data's hidden attributes, when known.
    pub fn problems(&self, available: Option<&[String]>) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            p.push((
                "weight".into(),
                format!("must be finite and >= 0, got {}", self.weight),
            ));
        }
        if self.attacker_steps == 0 {
            p.push(("attacker_steps".into(), "must be >= 1, got 0".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            p.push(("lr".into(), format!("must be > 0, got {}", self.lr)));
        }
        if let Some(available) = available
            && !available.contains(&self.attribute)
        {
            p.push((
                "attribute".into(),
                format!(
                    "the data has no hidden attribute '{}' (it has: {})",
                    self.attribute,
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    }
                ),
            ));
        }
        p
    }
}

/// The layout of the saved state: `values` holds the adversary's input
/// shape and blocks (or null before the first step); blobs `adversary`
/// (its module record) and `optimizer` (its Adam state).
pub const STATE_VERSION: u32 = 1;

/// What the adversary was built for (enough to build it again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AdversaryShape {
    input: Vec<usize>,
    blocks: Vec<BlockSpec>,
}

/// The min-max game of eq. 3 against an attribute adversary.
pub struct AttributeAdversarial {
    cfg: AttributeAdversarialConfig,
    adversary: Option<SplitModel>,
    shape: Option<AdversaryShape>,
    optim: ModuleOptimizer,
    model_term_sum: f64,
    adversary_ce_sum: f64,
    adversary_hits: usize,
    adversary_seen: usize,
    model_steps: usize,
    adversary_steps: usize,
}

impl AttributeAdversarial {
    /// A fresh game; the adversary is built at the first step.
    pub fn new(cfg: AttributeAdversarialConfig) -> Self {
        Self {
            cfg,
            adversary: None,
            shape: None,
            optim: AdamConfig::new().init(),
            model_term_sum: 0.0,
            adversary_ce_sum: 0.0,
            adversary_hits: 0,
            adversary_seen: 0,
            model_steps: 0,
            adversary_steps: 0,
        }
    }

    /// The adversary, once built.
    pub fn adversary(&self) -> Option<&SplitModel> {
        self.adversary.as_ref()
    }

    /// The batch's values of the attribute and its number of values
    /// (`None` when the data lacks it, which the pipeline refuses before
    /// training).
    fn hidden(&self, ctx: &StepContext) -> Option<(Vec<u32>, usize)> {
        let a = ctx.hidden.iter().find(|a| a.name == self.cfg.attribute)?;
        Some((
            ctx.batch.iter().map(|&i| a.values[i]).collect(),
            a.num_classes,
        ))
    }

    fn build(shape: &AdversaryShape, device: &Device) -> Result<SplitModel, String> {
        let adversary =
            SplitModel::from_blocks("attribute-adversary", &shape.input, &shape.blocks, device)
                .map_err(|e| format!("the adversary does not fit the split features: {e}"))?;
        adversary.visit(&mut Materialize);
        Ok(adversary)
    }

    /// The adversary, built at the first call for the model's server part.
    fn adversary_for(&mut self, ctx: &StepContext, classes: usize) -> Option<&SplitModel> {
        if self.adversary.is_none() {
            let blocks =
                crate::model::with_classes(&ctx.model.block_specs()[ctx.split..], classes).ok()?;
            let shape = AdversaryShape {
                input: ctx.features.example_shape(),
                blocks,
            };
            self.adversary = Some(Self::build(&shape, &ctx.images.device()).ok()?);
            self.shape = Some(shape);
        }
        self.adversary.as_ref()
    }

    /// The model's term `-gamma * mean_i min(CE_i(y_hid, M_a(z)), ln K)`,
    /// `[1]`, with the adversary frozen; `None` at `gamma = 0` (and when the
    /// batch lacks the attribute or the adversary cannot be built, which
    /// the pipeline refuses before training).
    pub fn model_term(&mut self, ctx: &StepContext) -> Option<Tensor<1>> {
        if self.cfg.weight == 0.0 {
            return None;
        }
        let (values, classes) = self.hidden(ctx)?;
        let device = ctx.images.device();
        let frozen = self.adversary_for(ctx, classes)?.clone().freeze();
        let logits = frozen.forward_features(ctx.features.clone());
        // Each example's cross-entropy, capped at chance before the mean.
        let log_p = burn::tensor::activation::log_softmax(logits, 1);
        let ce = (log_p * one_hot(&values, classes, &device))
            .sum_dim(1)
            .neg()
            .clamp_max((classes as f32).ln());
        let term = ce.mean().mul_scalar(-self.cfg.weight);
        self.model_term_sum += f64::from(to_vec(term.clone().detach())[0]);
        self.model_steps += 1;
        Some(term)
    }

    /// `attacker_steps` steps of the adversary on the detached features;
    /// nothing at `gamma = 0`.
    pub fn adversary_step(&mut self, ctx: &StepContext) {
        if self.cfg.weight == 0.0 {
            return;
        }
        let Some((values, classes)) = self.hidden(ctx) else {
            return;
        };
        let device = ctx.images.device();
        if self.adversary_for(ctx, classes).is_none() {
            return;
        }
        let z = ctx.features.clone().detach();
        let target = one_hot(&values, classes, &device);
        for _ in 0..self.cfg.attacker_steps {
            let adv = self.adversary.take().expect("the adversary was just built");
            let logits = adv.forward_features(z.clone());
            let pred = crate::metrics::argmax_rows(&to_vec(logits.clone().detach()), classes)
                .expect("one row of logits per example");
            self.adversary_hits += pred.iter().zip(&values).filter(|(p, v)| p == v).count();
            self.adversary_seen += values.len();
            let loss = soft_cross_entropy(logits, target.clone());
            self.adversary_ce_sum += f64::from(to_vec(loss.clone().detach())[0]);
            self.adversary_steps += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &adv);
            self.adversary = Some(self.optim.step(self.cfg.lr, adv, grads));
        }
    }
}

impl Defense for AttributeAdversarial {
    fn name(&self) -> &'static str {
        "attribute_adversarial"
    }

    fn loss(&mut self, ctx: &StepContext) -> Option<Tensor<1>> {
        self.model_term(ctx)
    }

    fn after_step(&mut self, _model: &SplitModel, ctx: &StepContext) {
        self.adversary_step(ctx);
    }

    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        if self.model_steps > 0 {
            out.push((
                "attribute_adversarial".to_string(),
                self.model_term_sum / self.model_steps as f64,
            ));
        }
        if self.adversary_steps > 0 {
            out.push((
                "attribute_adversary_ce".to_string(),
                self.adversary_ce_sum / self.adversary_steps as f64,
            ));
            out.push((
                "attribute_adversary_accuracy".to_string(),
                self.adversary_hits as f64 / self.adversary_seen.max(1) as f64,
            ));
        }
        self.model_term_sum = 0.0;
        self.adversary_ce_sum = 0.0;
        self.adversary_hits = 0;
        self.adversary_seen = 0;
        self.model_steps = 0;
        self.adversary_steps = 0;
        out
    }

    fn state_version(&self) -> Option<u32> {
        Some(STATE_VERSION)
    }

    fn state(&self) -> Result<Option<DefenseState>, String> {
        let net = self.adversary.as_ref().zip(self.shape.as_ref());
        save_opponent(net, &self.optim, "adversary", STATE_VERSION)
    }

    fn restore(&mut self, state: DefenseState, device: &Device) -> Result<(), String> {
        (self.adversary, self.shape, self.optim) =
            restore_opponent(state, "adversary", |shape: &AdversaryShape| {
                Self::build(shape, device)
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Attribute;
    use crate::model::zoo;

    use crate::defense::base::param_values as values;

    fn cfg(weight: f32) -> AttributeAdversarialConfig {
        AttributeAdversarialConfig {
            attribute: "parity".into(),
            weight,
            attacker_steps: 2,
            lr: 1e-2,
        }
    }

    /// A cnn6 on 8x8 inputs, a batch of 8 and its parity attribute.
    fn setup(device: &Device) -> (SplitModel, Tensor<4>, Vec<u32>, Vec<Attribute>) {
        device.seed(4);
        let spec = zoo::spec_for("cnn6", [1, 8, 8], 2).unwrap();
        let model = SplitModel::new(&spec, device).unwrap();
        let x = Tensor::<4>::random([8, 1, 8, 8], burn::tensor::Distribution::Default, device);
        let labels: Vec<u32> = (0..8).map(|i| (i / 2) % 2).collect();
        let attrs = vec![Attribute {
            name: "parity".into(),
            values: (0..8).map(|i| i % 2).collect(),
            num_classes: 2,
        }];
        (model, x, labels, attrs)
    }

    fn unused_block(_: usize, u: crate::model::Features) -> crate::model::Features {
        u
    }

    fn ctx<'a>(
        model: &'a SplitModel,
        x: &'a Tensor<4>,
        labels: &'a [u32],
        attrs: &'a [Attribute],
        z: &'a crate::model::Features,
    ) -> StepContext<'a> {
        StepContext {
            model,
            // The defense reads only the split features, never a block.
            block: &unused_block,
            images: x,
            labels,
            hidden: attrs,
            batch: &[0, 1, 2, 3, 4, 5, 6, 7],
            split: 2,
            features: z,
            log_var: None,
            step: 0,
            seed: 1,
        }
    }

    #[test]
    fn the_term_is_minus_gamma_times_the_capped_cross_entropy_and_moves_only_the_model() {
        let device = Device::flex().autodiff();
        let (model, x, labels, attrs) = setup(&device);
        let z = model.edge_forward(x.clone(), 2);
        let mut at = AttributeAdversarial::new(cfg(0.5));
        let c = ctx(&model, &x, &labels, &attrs, &z);
        let term = at.model_term(&c).expect("gamma > 0 adds a term");
        // The definition, from the adversary's own logits in inference mode.
        let logits = to_vec(
            at.adversary()
                .unwrap()
                .clone()
                .freeze()
                .forward_features(z.clone().detach()),
        );
        let mut capped = 0f64;
        for (row, &y) in logits.chunks(2).zip(&attrs[0].values) {
            let m = row[0].max(row[1]);
            let lse = m + ((row[0] - m).exp() + (row[1] - m).exp()).ln();
            capped += f64::from(lse - row[y as usize]).min(2f64.ln());
        }
        let want = -0.5 * capped / 8.0;
        let got = f64::from(to_vec(term.clone().detach())[0]);
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        // No gradient reaches the adversary; the edge gets one.
        let mut grads = term.backward();
        assert!(GradientsParams::from_module(&mut grads, at.adversary().unwrap()).is_empty());
        assert!(!GradientsParams::from_module(&mut grads, &model).is_empty());

        // The adversary's step changes it.
        let a0 = values(at.adversary().unwrap());
        at.adversary_step(&c);
        assert_ne!(values(at.adversary().unwrap()), a0);
        let log = at.epoch_log();
        let names: Vec<&str> = log.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "attribute_adversarial",
                "attribute_adversary_ce",
                "attribute_adversary_accuracy"
            ]
        );
        assert!(log[0].1 < 0.0 && log[0].1 >= -0.5 * 2f64.ln() - 1e-6);
    }

    #[test]
    fn the_adversary_learns_the_attribute_when_the_edge_carries_it() {
        // Features that are the attribute itself: the adversary's
        // cross-entropy falls well below chance, so the capped term reaches
        // its floor only when the adversary is beaten.
        let device = Device::flex().autodiff();
        let (model, _, labels, attrs) = setup(&device);
        let signal: Vec<f32> = attrs[0]
            .values
            .iter()
            .flat_map(|&v| {
                let s = if v == 1 { 3.0 } else { -3.0 };
                std::iter::repeat_n(s, 64)
            })
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(signal, [8, 1, 8, 8]), &device);
        let z = model.edge_forward(x.clone(), 2).detach();
        let mut at = AttributeAdversarial::new(AttributeAdversarialConfig {
            attacker_steps: 60,
            ..cfg(1.0)
        });
        let c = ctx(&model, &x, &labels, &attrs, &z);
        at.adversary_step(&c);
        let after = -f64::from(to_vec(at.model_term(&c).unwrap().detach())[0]);
        assert!(
            after < 0.2,
            "the adversary's cross-entropy {after} stays near chance"
        );
    }

    #[test]
    fn zero_gamma_trains_bit_identically_to_no_defense() {
        use crate::defense::DefensesConfig;
        use crate::defense::decov::tests::weights_after_one_epoch;
        let plain = weights_after_one_epoch(DefensesConfig::default());
        let zero = weights_after_one_epoch(DefensesConfig {
            attribute_adversarial: Some(cfg(0.0)),
            ..Default::default()
        });
        assert_eq!(plain, zero);
    }

    #[test]
    fn state_round_trips_and_zero_gamma_builds_nothing() {
        let device = Device::flex().autodiff();
        let (model, x, labels, attrs) = setup(&device);
        let z = model.edge_forward(x.clone(), 2);
        let c = ctx(&model, &x, &labels, &attrs, &z);
        let mut off = AttributeAdversarial::new(cfg(0.0));
        assert!(off.model_term(&c).is_none());
        off.adversary_step(&c);
        assert!(off.adversary().is_none() && off.epoch_log().is_empty());

        let mut at = AttributeAdversarial::new(cfg(0.5));
        at.adversary_step(&c);
        let state = at.state().unwrap().unwrap();
        let mut back = AttributeAdversarial::new(cfg(0.5));
        back.restore(state.clone(), &device).unwrap();
        assert_eq!(
            values(back.adversary().unwrap()),
            values(at.adversary().unwrap())
        );
        // Both continue identically (same weights, same optimiser state).
        at.adversary_step(&c);
        back.adversary_step(&c);
        assert_eq!(
            values(back.adversary().unwrap()),
            values(at.adversary().unwrap())
        );
        // A state saved before the first step restores to nothing built.
        let empty = AttributeAdversarial::new(cfg(0.5))
            .state()
            .unwrap()
            .unwrap();
        let mut fresh = AttributeAdversarial::new(cfg(0.5));
        fresh.restore(empty, &device).unwrap();
        assert!(fresh.adversary().is_none());
        let wrong = DefenseState {
            blobs: Vec::new(),
            ..state
        };
        assert!(
            AttributeAdversarial::new(cfg(0.5))
                .restore(wrong, &device)
                .unwrap_err()
                .contains("missing")
        );
    }
}
