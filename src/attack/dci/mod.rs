//! Data-free Divide-and-Conquer Inversion, DCI (seed 000: Dong et al.,
//! "Auditing Privacy Protection in Split Computing via Data-Free Model
//! Inversion Attack", section "Method"; DESIGN section 9.3).
//!
//! The attacker has the edge blocks `F_1 .. F_k` (white box) and no real
//! data. It synthesises inputs from the model ([`synthesise`]), then:
//!
//! 1. **Divide**: for every block `j <= k` trains a small inverse network
//!    `G_j` on the synthetic activations `u_j = F_{1:j-1}(x)` with
//!    `L_layer = ||u_j - G_j(F_j(u_j))||_1`. Block inverses do not depend on
//!    the split, so one attacker trains each block once and reuses it at
//!    every deeper split.
//! 2. **Conquer**: composes `G = G_1 o ... o G_k` and refines it end to end
//!    on the synthetic inputs with
//!    `L_img = ||x - G(F_{1:k}(x))||_1 + cycle_weight * ||F_{1:k}(G(z)) - z||_1 / ||z||_1`
//!    (means over elements; the cycle term back-propagates through the
//!    frozen edge).
//! 3. **Attack**: one forward pass `x' = clamp(G(z), 0, 1)` per query, with
//!    the attacker's own quality estimate, the cycle consistency
//!    `||F_{1:k}(x') - z||_2 / ||z||_2`, which needs no ground truth.
//!
//! The inverse networks and their block-wise training live in [`inverse`].
//!
//! The synthetic set is the attacker's data: a seeded tenth of it is held
//! out, every block inverse and the refinement validate on it after each
//! epoch, keep their best-validation epoch and stop after `patience` epochs
//! without improvement; their curves come back in [`DciOutcome`], with an
//! `under_trained` flag when a validation loss never fell.

mod inverse;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use inverse::{
    BlockFit, BlockInverse, ComposedInverse, ConvInverse, LinearInverse, train_block_inverse,
};

use super::diagnostics::{Curves, Holdout, fit_with_validation, loss_never_fell};
use super::optimisation::{InversionError, edge_flat, first_problem, white_box};
use super::synthesis::{SynthesisConfig, Synthesised, synthesise};
use crate::model::{Features, SplitModel};
use crate::train::to_vec;
use inverse::{Acts, held_out_l1};

fn d_width() -> usize {
    16
}
fn d_block_epochs() -> usize {
    20
}
fn d_refine_epochs() -> usize {
    10
}
fn d_batch() -> usize {
    32
}
fn d_lr() -> f64 {
    2e-3
}
fn d_cycle() -> f64 {
    0.1
}
fn d_patience() -> usize {
    5
}

/// Settings of the DCI attack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DciConfig {
    /// How the training inputs are synthesised (the attacker has no data).
    #[serde(default)]
    pub synthesis: SynthesisConfig,
    /// Channels of the convolutional inverses; dense inverses use 8x as many
    /// hidden units (default 16).
    #[serde(default = "d_width")]
    pub width: usize,
    /// Epochs over the synthetic set for each block inverse (default 20).
    #[serde(default = "d_block_epochs")]
    pub block_epochs: usize,
    /// Epochs of end-to-end refinement of the composition (default 10; 0 skips it).
    #[serde(default = "d_refine_epochs")]
    pub refine_epochs: usize,
    /// Batch size of both trainings (default 32).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Adam learning rate (default 0.002).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Weight of the cycle loss in the refinement (default 0.1; 0 turns it off).
    #[serde(default = "d_cycle")]
    pub cycle_weight: f64,
    /// Stop a block inverse's training, or the refinement, when its
    /// validation loss (on the held-out tenth of the synthetic set) has not
    /// improved for this many epochs (default 5; 0 trains every epoch). The
    /// best-validation epoch is kept.
    #[serde(default = "d_patience")]
    pub patience: usize,
}

impl Default for DciConfig {
    fn default() -> Self {
        Self {
            synthesis: SynthesisConfig::default(),
            width: d_width(),
            block_epochs: d_block_epochs(),
            refine_epochs: d_refine_epochs(),
            batch_size: d_batch(),
            lr: d_lr(),
            cycle_weight: d_cycle(),
            patience: d_patience(),
        }
    }
}

impl DciConfig {
    /// Every out-of-range setting as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = self
            .synthesis
            .problems()
            .into_iter()
            .map(|(f, m)| (format!("synthesis.{f}"), m))
            .collect();
        if self.width < 4 {
            p.push(("width".into(), format!("must be >= 4, got {}", self.width)));
        }
        if self.block_epochs == 0 {
            p.push(("block_epochs".into(), "must be >= 1, got 0".into()));
        }
        if self.batch_size == 0 {
            p.push(("batch_size".into(), "must be >= 1, got 0".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            p.push(("lr".into(), format!("must be > 0, got {}", self.lr)));
        }
        if !(self.cycle_weight.is_finite() && self.cycle_weight >= 0.0) {
            p.push((
                "cycle_weight".into(),
                format!("must be >= 0, got {}", self.cycle_weight),
            ));
        }
        p
    }
}

/// Result of DCI at one split.
#[derive(Clone, Debug)]
pub struct DciOutcome {
    /// Reconstructions `[N, C, H, W]` of the queries, in [0, 1].
    pub reconstructions: Vec<f32>,
    /// Per query, the cycle consistency `||F(x') - z||_2 / ||z||_2`.
    pub cycle: Vec<f64>,
    /// Training `L_layer` (mean L1) of each block inverse `G_1 .. G_k` at
    /// its kept (best-validation) epoch.
    pub block_l1: Vec<f64>,
    /// `L_img` (mean L1) of the kept composition on the synthetic training
    /// inputs (after refinement, or before it when it is skipped).
    pub image_l1: f64,
    /// Per block inverse `G_1 .. G_k`: training and validation `L_layer` per
    /// epoch and the kept epoch.
    pub block_curves: Vec<Curves>,
    /// The refinement's training `L_img` (with the cycle term, when on) and
    /// validation `L_img` per epoch and the kept epoch (empty when skipped).
    pub refine_curves: Curves,
    /// Per block inverse: its validation loss never fell below its first value.
    pub block_under_trained: Vec<bool>,
    /// A block inverse, or the refinement when it ran, never lowered its
    /// validation loss: the reconstruction error is a lower bound on what a
    /// better-trained attacker gets.
    pub under_trained: bool,
    /// Synthetic rows trained on.
    pub train_rows: usize,
    /// Synthetic rows held out for validation.
    pub validation_rows: usize,
}

/// A data-free attacker on one model: synthesises inputs once, trains each
/// block inverse once, and inverts features at any split.
pub struct DciAttacker {
    cfg: DciConfig,
    seed: u64,
    device: Device,
    frozen: SplitModel,
    synth: Synthesised,
    /// `acts[j]`: synthetic activations entering block `j + 1` (`acts[0]` = images).
    acts: Vec<Acts>,
    /// The synthetic rows trained on and those held out for validation.
    rows: Holdout,
    inverses: Vec<BlockFit>,
}

impl DciAttacker {
    /// Synthesises the attacker's training inputs from `model` alone (no
    /// dataset can be passed). `device` must support autodiff.
    pub fn new(
        model: &SplitModel,
        cfg: &DciConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self, InversionError> {
        first_problem(cfg.problems())?;
        let synth = synthesise(model, &cfg.synthesis, seed, device)?;
        let images = Acts {
            data: synth.images.clone(),
            shape: synth.shape.to_vec(),
        };
        let rows = Holdout::tenth(&vec![(); synth.len()], seed ^ 0xDC1_0DA7A);
        Ok(Self {
            cfg: cfg.clone(),
            seed,
            device: device.clone(),
            frozen: white_box(model, device),
            synth,
            acts: vec![images],
            rows,
            inverses: Vec::new(),
        })
    }

    /// The synthetic inputs the attacker trains on.
    pub fn synthesised(&self) -> &Synthesised {
        &self.synth
    }

    /// Trains block inverses up to block `k` (those not trained yet).
    fn ensure_blocks(&mut self, k: usize) {
        let n = self.synth.len();
        let all: Vec<usize> = (0..n).collect();
        while self.inverses.len() < k {
            let j = self.inverses.len();
            if self.acts.len() <= j + 1 {
                let mut data = Vec::new();
                let mut shape = Vec::new();
                for chunk in all.chunks(256) {
                    let u = self.acts[j].batch(chunk, &self.device);
                    let z = self.frozen.run(u, j, j + 1);
                    shape = z.example_shape();
                    data.extend(to_vec(z.flatten()));
                }
                self.acts.push(Acts { data, shape });
            }
            let (u, z) = (&self.acts[j], &self.acts[j + 1]);
            let seed = self.seed.wrapping_add(1 + j as u64);
            let trained = train_block_inverse(
                &u.data,
                &u.shape,
                &z.data,
                &z.shape,
                &self.rows,
                &self.cfg,
                seed,
                &self.device,
            );
            self.inverses.push(trained);
        }
    }

    /// Inverts `features` (`[N, D]` row-major) sent at split `k`: trains the
    /// missing block inverses, composes and refines them, and decodes every
    /// query in one forward pass.
    pub fn attack(&mut self, k: usize, features: &[f32]) -> Result<DciOutcome, InversionError> {
        if !self.frozen.split_points().contains(&k) {
            return Err(InversionError::Shape(format!(
                "split {k} is out of range: the model has {} blocks, so splits 1..={}",
                self.frozen.len(),
                self.frozen.len().saturating_sub(1)
            )));
        }
        self.ensure_blocks(k);
        let z_acts = &self.acts[k];
        let dim = z_acts.dim();
        if dim == 0 || !features.len().is_multiple_of(dim) {
            return Err(InversionError::Shape(format!(
                "features hold {} values, not a whole number of split-{k} feature vectors of {dim}",
                features.len()
            )));
        }
        let device = self.device.clone();
        let g = ComposedInverse {
            stages: self.inverses[..k]
                .iter()
                .map(|f| f.inverse.clone())
                .collect(),
        };
        let fits = &self.inverses[..k];
        let block_l1 = fits.iter().map(BlockFit::train_l1).collect();
        let block_curves: Vec<Curves> = fits.iter().map(|f| f.curves.clone()).collect();
        let block_under_trained: Vec<bool> =
            block_curves.iter().map(Curves::loss_never_fell).collect();
        let (g, image_l1, refine_curves) = self.refine(g, k);
        let under_trained = block_under_trained.iter().any(|&b| b)
            || (self.cfg.refine_epochs > 0 && loss_never_fell(&refine_curves.validation));

        let n = features.len() / dim;
        let [c, h, w] = self.synth.shape;
        let queries = Acts {
            data: features.to_vec(),
            shape: z_acts.shape.clone(),
        };
        let (mut reconstructions, mut cycle) = (Vec::with_capacity(n * c * h * w), Vec::new());
        let idx: Vec<usize> = (0..n).collect();
        for chunk in idx.chunks(256) {
            let z = queries.batch(chunk, &device).flatten();
            let x = g
                .forward(Features::from_flat(z.clone(), &queries.shape))
                .flatten()
                .reshape([chunk.len(), c, h, w])
                .clamp(0.0, 1.0);
            let zc = edge_flat(&self.frozen, x.clone(), k);
            let num = to_vec((zc - z.clone()).powi_scalar(2).sum_dim(1));
            let den = to_vec(z.powi_scalar(2).sum_dim(1));
            cycle.extend(
                num.iter()
                    .zip(&den)
                    .map(|(a, b)| (*a as f64 / (*b as f64).max(1e-12)).sqrt()),
            );
            reconstructions.extend(to_vec(x));
        }
        Ok(DciOutcome {
            reconstructions,
            cycle,
            block_l1,
            image_l1,
            block_curves,
            refine_curves,
            block_under_trained,
            under_trained,
            train_rows: self.rows.train.len(),
            validation_rows: self.rows.validation.len(),
        })
    }

    /// End-to-end refinement of the composition on the synthetic training
    /// rows, validated (`L_img`) on the held-out rows after every epoch;
    /// returns the kept composition, its training `L_img` and the curves.
    fn refine(&self, g: ComposedInverse, k: usize) -> (ComposedInverse, f64, Curves) {
        let images = &self.acts[0];
        let z_all = &self.acts[k];
        let [c, h, w] = self.synth.shape;
        let inner = self.device.clone().inner();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ (0xC0C0 + k as u64));
        let mut order = self.rows.train.clone();
        let mut optim = AdamConfig::new().init();
        let train_epoch = |mut g: ComposedInverse, _epoch: usize| {
            order.shuffle(&mut rng);
            let (mut sum, mut count) = (0.0, 0usize);
            for b in order.chunks(self.cfg.batch_size.max(1)) {
                let x = images.batch(b, &self.device).flatten();
                let z = z_all.batch(b, &self.device).flatten();
                let xr = g
                    .forward(Features::from_flat(z.clone(), &z_all.shape))
                    .flatten();
                let mut loss = (x - xr.clone()).abs().mean();
                if self.cfg.cycle_weight > 0.0 {
                    let zc = edge_flat(&self.frozen, xr.reshape([b.len(), c, h, w]), k);
                    let scale = z.clone().abs().mean().detach() + 1e-8;
                    let l_cyc = (zc - z).abs().mean() / scale;
                    loss = loss + l_cyc * self.cfg.cycle_weight;
                }
                sum += f64::from(to_vec(loss.clone().detach())[0]) * b.len() as f64;
                count += b.len();
                let grads = GradientsParams::from_grads(loss.backward(), &g);
                g = optim.step(self.cfg.lr, g, grads);
            }
            (g, sum / count.max(1) as f64)
        };
        let image_l1 = |g: &ComposedInverse, rows: &[usize]| {
            let g = g.valid();
            held_out_l1(|z| g.forward(z), z_all, images, rows, &inner)
        };
        let validate = |g: &ComposedInverse| image_l1(g, &self.rows.validation);
        let (g, curves) = fit_with_validation(
            g,
            self.cfg.refine_epochs,
            self.cfg.patience,
            train_epoch,
            validate,
        );
        let l1 = image_l1(&g, &self.rows.train);
        (g, l1, curves)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;

    #[test]
    fn dci_api_takes_no_dataset_and_attacks_features_only() {
        // Built from the model and settings alone; queries are features.
        let _new: fn(&SplitModel, &DciConfig, u64, &Device) -> Result<DciAttacker, InversionError> =
            DciAttacker::new;
        let _attack: fn(&mut DciAttacker, usize, &[f32]) -> Result<DciOutcome, InversionError> =
            DciAttacker::attack;
    }

    #[test]
    fn bad_settings_are_named_with_their_section() {
        assert!(DciConfig::default().problems().is_empty());
        let mut bad = DciConfig {
            width: 2,
            block_epochs: 0,
            batch_size: 0,
            lr: 0.0,
            cycle_weight: -1.0,
            ..DciConfig::default()
        };
        bad.synthesis.count = 0;
        let fields: Vec<String> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "synthesis.count",
                "width",
                "block_epochs",
                "batch_size",
                "lr",
                "cycle_weight"
            ]
        );
    }

    fn tiny(block_epochs: usize, refine_epochs: usize) -> (SplitModel, DciConfig, Device) {
        let device = Device::flex().autodiff();
        let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
        let cfg = DciConfig {
            synthesis: SynthesisConfig {
                mode: super::super::synthesis::SynthesisMode::Noise,
                count: 20,
                batch_size: 10,
                ..SynthesisConfig::default()
            },
            width: 4,
            block_epochs,
            refine_epochs,
            patience: 0,
            ..DciConfig::default()
        };
        (model, cfg, device)
    }

    /// Every block inverse and the refinement keep one curve entry per
    /// epoch, on training rows disjoint from the held-out tenth.
    #[test]
    fn curves_have_one_entry_per_epoch_on_a_held_out_tenth() {
        let (model, cfg, device) = tiny(3, 2);
        let mut a = DciAttacker::new(&model, &cfg, 1, &device).unwrap();
        let out = a.attack(2, &[0.1; 2 * 32 * 7 * 7]).unwrap();
        assert_eq!((out.train_rows, out.validation_rows), (18, 2));
        assert_eq!(out.block_curves.len(), 2);
        for c in &out.block_curves {
            assert_eq!((c.train.len(), c.validation.len()), (3, 3));
            assert!((1..=3).contains(&c.best_epoch));
        }
        assert_eq!(out.block_l1[0], out.block_curves[0].best_train());
        let r = &out.refine_curves;
        assert_eq!((r.train.len(), r.validation.len()), (2, 2));
        assert_eq!(out.block_under_trained.len(), 2);
    }

    /// A one-epoch inverse cannot show a falling validation loss: flagged.
    #[test]
    fn a_one_epoch_inverse_is_flagged_under_trained() {
        let (model, cfg, device) = tiny(1, 0);
        let mut a = DciAttacker::new(&model, &cfg, 1, &device).unwrap();
        let out = a.attack(1, &[0.1; 16 * 14 * 14]).unwrap();
        assert_eq!(out.block_curves[0].validation.len(), 1);
        assert_eq!(out.block_under_trained, [true]);
        assert!(out.under_trained);
        assert!(out.refine_curves.train.is_empty(), "refinement skipped");
    }

    #[test]
    fn features_of_the_wrong_size_are_an_error() {
        let device = Device::flex().autodiff();
        let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
        let cfg = DciConfig {
            synthesis: SynthesisConfig {
                mode: super::super::synthesis::SynthesisMode::Noise,
                count: 4,
                batch_size: 2,
                ..SynthesisConfig::default()
            },
            block_epochs: 1,
            refine_epochs: 0,
            ..DciConfig::default()
        };
        let mut a = DciAttacker::new(&model, &cfg, 1, &device).unwrap();
        let Err(err) = a.attack(4, &[0.0; 100]) else {
            panic!("expected a shape error")
        };
        assert!(err.to_string().contains("128"), "{err}");
        assert!(a.attack(6, &[0.0; 128]).is_err(), "split 6 of 6 blocks");
    }
}
