//! Optimisation-based white-box inversion (DESIGN section 9.2; Mahendran and
//! Vedaldi, "Understanding deep image representations by inverting them",
//! CVPR 2015, eq. 1; the "rMLE" attack of He et al., ACSAC 2019).
//!
//! Given the features `z` the server received at split `k` and the edge
//! blocks `F = F_{1:k}` (white box), the attacker solves
//!
//! `x* = argmin_x  ||F(x) - z||^2 / ||z||^2  +  lambda_tv * TV(x)`
//!
//! with `TV(x)` the mean squared difference of vertically and horizontally
//! neighbouring pixels (the beta = 2 total variation of the paper). The box
//! constraint `x in [0, 1]` is kept by parametrisation, `x = sigmoid(w)`, and
//! Adam optimises `w`: there is no projection step, so the optimiser sees one
//! smooth problem, and no pixel ever leaves the box. The start is either a
//! constant grey image (`w = 0`) or uniform noise.
//!
//! ReLUs give no gradient through units the current `x` switches off, so
//! the first `relax` fraction of the steps runs through a relaxed copy of
//! the edge whose ReLUs leak (slope 0.01) and the rest through the exact
//! edge; the reported feature error is always the exact one.
//!
//! White-box attacks back-propagate to the *input* through a frozen model:
//! [`white_box`] makes the copy they use (inference-mode batch-norm, no
//! parameter gradients, tensors on the autodiff device).

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

use crate::model::{ActivationKind, Block, Features, SplitModel};
use crate::train::to_vec;

/// Failures of the data-free and white-box inversion attacks.
#[derive(Debug, thiserror::Error)]
pub enum InversionError {
    /// A setting is out of range.
    #[error("{field}: {message}")]
    Config {
        /// The setting, as in the recipe (`steps`, `synthesis.count`, ...).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Inputs do not fit the model.
    #[error("{0}")]
    Shape(String),
}

/// Turns a list of `(field, message)` problems into the first error.
pub(crate) fn first_problem(problems: Vec<(String, String)>) -> Result<(), InversionError> {
    match problems.into_iter().next() {
        Some((field, message)) => Err(InversionError::Config { field, message }),
        None => Ok(()),
    }
}

/// A frozen, inference-mode copy of `model` on `device` (an autodiff device)
/// through which gradients reach an input that requires them, while no
/// parameter is tracked and batch-norm uses (and never updates) its running
/// statistics.
pub fn white_box(model: &SplitModel, device: &Device) -> SplitModel {
    model.valid().fork(device)
}

/// A copy of a frozen model whose ReLUs leak (slope 0.01): the relaxation
/// the optimisation starts with.
pub fn relaxed(model: &SplitModel) -> SplitModel {
    let leak = |a: &mut ActivationKind| {
        if *a == ActivationKind::Relu {
            *a = ActivationKind::LeakyRelu;
        }
    };
    let mut m = model.clone();
    for block in &mut m.blocks {
        match block {
            Block::Conv(b) => leak(&mut b.spec.activation),
            Block::Linear(b) => leak(&mut b.spec.activation),
            Block::Residual(b) => leak(&mut b.spec.activation),
            Block::MaxPool(_) | Block::GlobalAvgPool(_) => {}
        }
    }
    m
}

/// The image shape `[C, H, W]` of a whole model's input.
pub(crate) fn image_shape(model: &SplitModel) -> Result<[usize; 3], InversionError> {
    model.input.clone().try_into().map_err(|_| {
        InversionError::Shape(format!(
            "white-box inversion needs a whole model with an image input [C, H, W], got input {:?}",
            model.input
        ))
    })
}

/// Mean squared total variation of `[N, C, H, W]` images (mean over pixel
/// pairs of `(x[i+1, j] - x[i, j])^2` plus the same horizontally).
pub fn total_variation(x: Tensor<4>) -> Tensor<1> {
    let [n, c, h, w] = x.dims();
    let mut tv = Tensor::<1>::zeros([1], &x.device());
    if h > 1 {
        let d = x.clone().slice([0..n, 0..c, 1..h, 0..w])
            - x.clone().slice([0..n, 0..c, 0..h - 1, 0..w]);
        tv = tv + d.powi_scalar(2).mean();
    }
    if w > 1 {
        let d = x.clone().slice([0..n, 0..c, 0..h, 1..w]) - x.slice([0..n, 0..c, 0..h, 0..w - 1]);
        tv = tv + d.powi_scalar(2).mean();
    }
    tv
}

/// Where the optimisation starts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    /// A constant grey image, 0.5 everywhere.
    #[default]
    Constant,
    /// Uniform noise in (0, 1).
    Noise,
}

fn o_steps() -> usize {
    300
}
fn o_lr() -> f64 {
    0.1
}
fn o_tv() -> f64 {
    1.0
}
fn o_queries() -> usize {
    256
}
fn o_batch() -> usize {
    128
}
fn o_relax() -> f64 {
    0.5
}

/// Settings of the optimisation attack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimisationConfig {
    /// Adam steps per batch of queries (default 300).
    #[serde(default = "o_steps")]
    pub steps: usize,
    /// Adam learning rate on the sigmoid pre-activations `w` (default 0.1).
    #[serde(default = "o_lr")]
    pub lr: f64,
    /// Weight of the total-variation prior (default 1; 0 turns it off).
    #[serde(default = "o_tv")]
    pub tv_weight: f64,
    /// Start image (default `constant`).
    #[serde(default)]
    pub start: StartKind,
    /// Test queries inverted: the first `queries` of the test part, since
    /// every query is its own optimisation (default 256; 0 means all).
    #[serde(default = "o_queries")]
    pub queries: usize,
    /// Queries optimised together (default 128).
    #[serde(default = "o_batch")]
    pub batch_size: usize,
    /// Fraction of the steps run through a relaxed edge whose ReLUs leak
    /// (slope 0.01), so inputs that switch a unit off still receive a
    /// gradient from it; the remaining steps use the exact edge (default 0.5).
    #[serde(default = "o_relax")]
    pub relax: f64,
}

impl Default for OptimisationConfig {
    fn default() -> Self {
        Self {
            steps: o_steps(),
            lr: o_lr(),
            tv_weight: o_tv(),
            start: StartKind::default(),
            queries: o_queries(),
            batch_size: o_batch(),
            relax: o_relax(),
        }
    }
}

impl OptimisationConfig {
    /// Every out-of-range setting as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.steps == 0 {
            p.push(("steps".into(), "must be >= 1, got 0".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            p.push(("lr".into(), format!("must be > 0, got {}", self.lr)));
        }
        if !(self.tv_weight.is_finite() && self.tv_weight >= 0.0) {
            p.push((
                "tv_weight".into(),
                format!("must be >= 0, got {}", self.tv_weight),
            ));
        }
        if self.batch_size == 0 {
            p.push(("batch_size".into(), "must be >= 1, got 0".into()));
        }
        if !(0.0..=1.0).contains(&self.relax) {
            p.push((
                "relax".into(),
                format!("must be in [0, 1], got {}", self.relax),
            ));
        }
        p
    }

    /// How many of `available` queries are inverted.
    pub fn query_count(&self, available: usize) -> usize {
        if self.queries == 0 {
            available
        } else {
            self.queries.min(available)
        }
    }
}

/// The optimised pre-activations `w` (`x = sigmoid(w)`).
#[derive(Module, Debug)]
struct Latent {
    w: Param<Tensor<4>>,
}

/// Result of the optimisation attack.
pub struct OptimisationOutcome {
    /// Reconstructions `[Q, C, H, W]` of the first `Q` queries.
    pub reconstructions: Vec<f32>,
    /// Per query, the final relative feature error `||F(x*) - z|| / ||z||`.
    pub feature_error: Vec<f64>,
}

/// Inverts features `z` (`[Q, D]` row-major, `Q = features.len() / D`) sent
/// at split `k` of `model` by optimising the input (see the module docs).
/// `device` must support autodiff.
pub fn optimisation_attack(
    model: &SplitModel,
    k: usize,
    features: &[f32],
    cfg: &OptimisationConfig,
    seed: u64,
    device: &Device,
) -> Result<OptimisationOutcome, InversionError> {
    first_problem(cfg.problems())?;
    let [c, h, w] = image_shape(model)?;
    if !model.split_points().contains(&k) {
        return Err(InversionError::Shape(format!(
            "split {k} is out of range: the model has {} blocks, so splits 1..={}",
            model.len(),
            model.len().saturating_sub(1)
        )));
    }
    let f = white_box(model, device);
    let f_relaxed = relaxed(&f);
    let relaxed_steps = (cfg.relax * cfg.steps as f64).round() as usize;
    let dim = {
        let probe = Tensor::<4>::zeros([1, c, h, w], device);
        f.edge_forward(probe, k)
            .example_shape()
            .iter()
            .product::<usize>()
    };
    if dim == 0 || !features.len().is_multiple_of(dim) {
        return Err(InversionError::Shape(format!(
            "features hold {} values, not a whole number of split-{k} feature vectors of {dim}",
            features.len()
        )));
    }
    let n = features.len() / dim;
    let mut reconstructions = Vec::with_capacity(n * c * h * w);
    let mut feature_error = Vec::with_capacity(n);
    device.seed(seed);
    for start in (0..n).step_by(cfg.batch_size) {
        let b = (n - start).min(cfg.batch_size);
        let z = Tensor::<2>::from_data(
            TensorData::new(features[start * dim..(start + b) * dim].to_vec(), [b, dim]),
            device,
        );
        let z_sq = z.clone().powi_scalar(2).sum_dim(1).clamp_min(1e-12);
        let w0 = match cfg.start {
            StartKind::Constant => Tensor::<4>::zeros([b, c, h, w], device),
            StartKind::Noise => {
                let u = Tensor::<4>::random(
                    [b, c, h, w],
                    burn::tensor::Distribution::Uniform(0.02, 0.98),
                    device,
                );
                (u.clone() / (u.neg() + 1.0)).log()
            }
        };
        let mut latent = Latent {
            w: Param::from_tensor(w0),
        };
        let mut optim = AdamConfig::new().init();
        for step in 0..cfg.steps {
            let x = sigmoid(latent.w.val());
            let edge = if step < relaxed_steps { &f_relaxed } else { &f };
            let rel = (edge.edge_forward(x.clone(), k).flatten() - z.clone())
                .powi_scalar(2)
                .sum_dim(1)
                / z_sq.clone();
            let mut loss = rel.mean();
            if cfg.tv_weight > 0.0 {
                loss = loss + total_variation(x) * cfg.tv_weight;
            }
            let grads = GradientsParams::from_grads(loss.backward(), &latent);
            latent = optim.step(cfg.lr, latent, grads);
        }
        let x = sigmoid(latent.w.val().detach());
        let rel = (f.edge_forward(x.clone(), k).flatten() - z)
            .powi_scalar(2)
            .sum_dim(1)
            / z_sq;
        feature_error.extend(to_vec(rel).into_iter().map(|v| (v as f64).sqrt()));
        reconstructions.extend(to_vec(x));
    }
    Ok(OptimisationOutcome {
        reconstructions,
        feature_error,
    })
}

/// Features of `x` at split `k` of a frozen model, flattened `[N, D]`.
pub(crate) fn edge_flat(f: &SplitModel, x: Tensor<4>, k: usize) -> Tensor<2> {
    match f.edge_forward(x, k) {
        Features::Map(t) => t.flatten(1, 3),
        Features::Flat(t) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Block, zoo};

    #[test]
    fn total_variation_is_the_mean_squared_neighbour_difference() {
        let device = Device::flex();
        // One 2x3 image: rows [0, 1, 3] and [2, 2, 2].
        let v = [0.0f32, 1.0, 3.0, 2.0, 2.0, 2.0];
        let x = Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 2, 3]), &device);
        let vertical = ((2.0f32).powi(2) + 1.0 + 1.0) / 3.0;
        let horizontal = (1.0 + 4.0 + 0.0 + 0.0) / 4.0;
        let got = to_vec(total_variation(x))[0];
        assert!((got - (vertical + horizontal)).abs() < 1e-6, "{got}");
    }

    #[test]
    fn white_box_passes_gradients_to_the_input_and_never_to_the_model() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
        let f = white_box(&model, &device);
        let running = |m: &SplitModel| match &m.blocks[0] {
            Block::Conv(b) => to_vec(b.bn.as_ref().unwrap().running_mean.value()),
            _ => unreachable!("cnn6 starts with a conv block"),
        };
        let before = running(&model);
        let x = Tensor::<4>::random(
            [4, 1, 28, 28],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        )
        .require_grad();
        let loss = edge_flat(&f, x.clone(), 2).powi_scalar(2).sum();
        let grads = loss.backward();
        let gx = x.grad(&grads).expect("a gradient for the input");
        assert!(to_vec(gx).iter().any(|v| *v != 0.0));
        let Block::Conv(b) = &f.blocks[0] else {
            unreachable!("cnn6 starts with a conv block")
        };
        assert!(b.conv.weight.val().grad(&grads).is_none());
        assert_eq!(before, running(&model), "running statistics unchanged");
    }

    #[test]
    fn default_settings_are_valid_and_bad_ones_are_named() {
        assert!(OptimisationConfig::default().problems().is_empty());
        let bad = OptimisationConfig {
            steps: 0,
            lr: -1.0,
            tv_weight: f64::NAN,
            batch_size: 0,
            relax: 1.5,
            ..OptimisationConfig::default()
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["steps", "lr", "tv_weight", "batch_size", "relax"]);
        assert!(matches!(
            first_problem(bad.problems()),
            Err(InversionError::Config { field, .. }) if field == "steps"
        ));
    }

    #[test]
    fn relaxed_copy_leaks_only_the_relus() {
        let device = Device::flex();
        let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
        let r = relaxed(&model);
        let acts: Vec<ActivationKind> = r
            .block_specs()
            .iter()
            .map(|b| match b {
                crate::model::BlockSpec::Conv(c) => c.activation,
                crate::model::BlockSpec::Linear(l) => l.activation,
                crate::model::BlockSpec::Residual(x) => x.activation,
                _ => ActivationKind::None,
            })
            .collect();
        let mut want = vec![ActivationKind::LeakyRelu; 5];
        want.push(ActivationKind::None);
        assert_eq!(acts, want);
        // The original keeps its ReLUs.
        assert!(
            matches!(&model.blocks[0], Block::Conv(b) if b.spec.activation == ActivationKind::Relu)
        );
    }

    #[test]
    fn query_count_caps_at_what_is_available_and_zero_means_all() {
        let mut cfg = OptimisationConfig {
            queries: 10,
            ..Default::default()
        };
        assert_eq!(cfg.query_count(4), 4);
        assert_eq!(cfg.query_count(40), 10);
        cfg.queries = 0;
        assert_eq!(cfg.query_count(40), 40);
    }

    #[test]
    fn features_of_the_wrong_size_are_an_error() {
        let device = Device::flex().autodiff();
        let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
        // Split 1 of cnn6 sends 16x14x14 = 3136 values per query.
        let err = optimisation_attack(
            &model,
            1,
            &[0.0; 100],
            &OptimisationConfig::default(),
            0,
            &device,
        )
        .err()
        .expect("a shape error");
        assert!(err.to_string().contains("3136"), "{err}");
        let err = optimisation_attack(
            &model,
            9,
            &[0.0; 100],
            &OptimisationConfig::default(),
            0,
            &device,
        )
        .err()
        .expect("a split error");
        assert!(err.to_string().contains("split 9"), "{err}");
    }
}
