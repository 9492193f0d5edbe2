//! Lipschitz regularisation of the edge blocks (seed 001, PATROL; DESIGN
//! section 5.2).
//!
//! PATROL lowers the Lipschitz constant of each edge block so the edge map
//! contracts and inverting it becomes unstable: `L_lip = sum_i alpha_i k_i`
//! over the edge blocks `i = 1..=split`. Two estimates of `k_i`:
//!
//! - `perturbation` (PATROL's own, from its README): `k_i = ||f_i(u + d) -
//!   f_i(u)|| / ||d||` with Gaussian `d`, averaged over the examples of the
//!   batch and over `draws` draws. `u` is the block's input in the current
//!   forward pass, detached, so each `k_i` trains only block `i`; `d` has a
//!   standard deviation of `scale` times the RMS of each example's `u`. The
//!   clean and perturbed inputs run as one batch, so batch-norm sees the same
//!   batch statistics for both (that forward also updates the running
//!   statistics once more, like any training forward).
//! - `spectral`: the largest singular value of each block's weight matrix by
//!   power iteration (Miyato et al. 2018), warm-started from the previous
//!   step's vector; `sigma = u^T W v` with `u`, `v` fixed is differentiable in
//!   `W`. A convolution weight `[out, in, k, k]` is reshaped to `[out, in*k*k]`:
//!   this is the standard reshaped-kernel estimate, not the exact operator norm
//!   of the convolution (which is at most `k` times it, Tsuzuku et al. 2018).
//!   A following batch-norm's per-channel scale `|gamma| / sqrt(running_var +
//!   eps)` multiplies the rows (batch-norm would otherwise undo any shrinking
//!   of `W`); ReLU and max-pool are 1-Lipschitz per channel, so this bounds the
//!   block. A residual block counts as `1 + sigma_1 sigma_2`.
//!
//! Only first-order autodiff is available (no double backward), so no
//! gradient-norm penalty is used.

use std::collections::BTreeMap;

use burn::prelude::*;
use burn::tensor::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Defense, DefenseState, StepContext};
use crate::model::{Block, Features, SplitModel};
use crate::train::to_vec;

/// How `k_i` is estimated.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LipschitzMethod {
    /// Perturbation ratio `||f(u + d) - f(u)|| / ||d||` (PATROL).
    #[default]
    Perturbation,
    /// Spectral norm of the (reshaped) weights by power iteration.
    Spectral,
}

fn d_draws() -> usize {
    2
}
fn d_scale() -> f32 {
    0.05
}
fn d_iterations() -> usize {
    2
}

/// Lipschitz regularisation settings (`training.defenses.lipschitz`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LipschitzConfig {
    /// `alpha`: weight of each edge block's estimate (0 turns the term off).
    pub weight: f32,
    /// Per-block weights `alpha_i` for blocks 1, 2, ... (blocks past the end
    /// of the list use `weight`; default none).
    #[serde(default)]
    pub block_weights: Vec<f32>,
    /// The estimate (default `perturbation`).
    #[serde(default)]
    pub method: LipschitzMethod,
    /// Gaussian draws per step for `perturbation` (default 2).
    #[serde(default = "d_draws")]
    pub draws: usize,
    /// Standard deviation of `d` relative to the RMS of the block input
    /// (default 0.05).
    #[serde(default = "d_scale")]
    pub scale: f32,
    /// Power iterations per step for `spectral` (default 2, warm-started).
    #[serde(default = "d_iterations")]
    pub power_iterations: usize,
}

impl LipschitzConfig {
    /// Validation problems as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            p.push((
                "weight".into(),
                format!("must be >= 0, got {}", self.weight),
            ));
        }
        for (i, w) in self.block_weights.iter().enumerate() {
            if !(w.is_finite() && *w >= 0.0) {
                p.push((
                    format!("block_weights[{i}]"),
                    format!("must be >= 0, got {w}"),
                ));
            }
        }
        if self.draws == 0 {
            p.push(("draws".into(), "must be >= 1, got 0".into()));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            p.push(("scale".into(), format!("must be > 0, got {}", self.scale)));
        }
        if self.power_iterations == 0 {
            p.push(("power_iterations".into(), "must be >= 1, got 0".into()));
        }
        p
    }

    /// `alpha_i` for 0-based block `i`.
    pub fn alpha(&self, i: usize) -> f32 {
        self.block_weights.get(i).copied().unwrap_or(self.weight)
    }
}

/// Per-example L2 norms of `[N, D]` rows, `[N, 1]`.
fn row_norms(t: Tensor<2>) -> Tensor<2> {
    t.square().sum_dim(1).add_scalar(1e-12).sqrt()
}

/// Perturbation-ratio estimates `k_i` (each `[1]`) for blocks `0..split`,
/// where `block(i, u)` runs 0-based block `i` (with any mask) on `u`.
/// Block inputs come from the clean pass and are detached.
pub fn perturbation_estimates(
    block: &dyn Fn(usize, Features) -> Features,
    images: &Tensor<4>,
    split: usize,
    draws: usize,
    scale: f32,
) -> Vec<Tensor<1>> {
    let device = images.device();
    let mut u = Features::Map(images.clone().detach());
    let mut out = Vec::with_capacity(split);
    for i in 0..split {
        let shape = u.example_shape();
        let flat = u.flatten();
        let [n, dim] = flat.dims();
        let rms = flat.clone().square().mean_dim(1).sqrt().clamp_min(1e-3);
        let mut parts = vec![flat.clone()];
        let mut deltas = Vec::with_capacity(draws);
        for _ in 0..draws {
            let g = Tensor::<2>::random([n, dim], Distribution::Normal(0.0, 1.0), &device);
            let d = g * rms.clone().mul_scalar(scale);
            parts.push(flat.clone() + d.clone());
            deltas.push(d);
        }
        let y = block(i, Features::from_flat(Tensor::cat(parts, 0), &shape));
        let out_shape = y.example_shape();
        let chunks = y.flatten().chunk(draws + 1, 0);
        let base = chunks[0].clone();
        let mut k: Option<Tensor<1>> = None;
        for (d, perturbed) in deltas.into_iter().zip(&chunks[1..]) {
            let ratio = (row_norms(perturbed.clone() - base.clone()) / row_norms(d)).mean();
            k = Some(match k {
                Some(acc) => acc + ratio,
                None => ratio,
            });
        }
        out.push(
            k.expect("expected at least one draw")
                .div_scalar(draws as f32),
        );
        u = Features::from_flat(base.detach(), &out_shape);
    }
    out
}

/// The linear maps of a block whose spectral norms bound it, each `[out, n]`,
/// rows scaled by a following batch-norm's `|gamma| / sqrt(running_var + eps)`.
pub fn block_operators(block: &Block) -> Vec<Tensor<2>> {
    let bn_scale = |bn: &burn::nn::BatchNorm| -> Tensor<2> {
        let var = bn.running_var.value_sync().detach().add_scalar(bn.epsilon);
        (bn.gamma.val().abs() / var.sqrt()).unsqueeze_dim(1)
    };
    let conv = |c: &burn::nn::conv::Conv2d| -> Tensor<2> {
        let [o, i, kh, kw] = c.weight.val().dims();
        c.weight.val().reshape([o, i * kh * kw])
    };
    match block {
        Block::Conv(b) => {
            let w = conv(&b.conv);
            vec![match &b.bn {
                Some(bn) => w * bn_scale(bn),
                None => w,
            }]
        }
        Block::Linear(b) => {
            let w = b.linear.weight.val().transpose();
            vec![match &b.bn {
                Some(bn) => w * bn_scale(bn),
                None => w,
            }]
        }
        // The shortcut counts as 1, exact for the identity and for a pad
        // shortcut; a projection shortcut's own norm is left out.
        Block::Residual(b) => vec![
            conv(&b.conv1) * bn_scale(&b.bn1),
            conv(&b.conv2) * bn_scale(&b.bn2),
        ],
        // Parameter-free: nothing to regularise (see `spectral_estimates`).
        Block::MaxPool(_) | Block::GlobalAvgPool(_) => Vec::new(),
    }
}

/// Largest singular value of `w` `[m, n]` by `iterations` power iterations
/// from `v` (`[n, 1]`, updated in place); differentiable in `w` as `u^T w v`.
pub fn spectral_norm(w: Tensor<2>, v: &mut Tensor<2>, iterations: usize) -> Tensor<1> {
    let wd = w.clone().detach();
    let unit = |t: Tensor<2>| {
        let norm = t.clone().square().sum().add_scalar(1e-24).sqrt();
        t / norm.unsqueeze_dim(1)
    };
    let mut u = unit(wd.clone().matmul(v.clone()));
    for _ in 0..iterations {
        *v = unit(wd.clone().transpose().matmul(u.clone()));
        u = unit(wd.clone().matmul(v.clone()));
    }
    (w.matmul(v.clone()) * u).sum()
}

/// Power iterations of [`block_estimates`]: enough for 1e-4 agreement
/// with an exact SVD on the zoo's layers.
pub const REPORT_ITERATIONS: usize = 100;

/// Each edge block's spectral estimate `k_i` (blocks `0..split`): the
/// product of the spectral norms of its linear maps with the batch-norm
/// scale folded in ([`block_operators`], convolution kernels reshaped to
/// `[out, in * kh * kw]`, as the spectral method regularises them; seed
/// 001, section 3.3), by [`REPORT_ITERATIONS`] power iterations from a
/// fixed start. Parameter-free blocks count 1. Reported for every run so
/// PATROL's effect on `k_i` can be read beside the attacks.
pub fn block_estimates(model: &SplitModel, split: usize) -> Vec<f64> {
    model
        .blocks
        .iter()
        .take(split)
        .enumerate()
        .map(|(i, b)| {
            block_operators(b)
                .into_iter()
                .enumerate()
                .map(|(j, w)| {
                    let w = w.detach();
                    let [_, n] = w.dims();
                    let mut v = start_vector(n, (i * 8 + j) as u64, &w.device());
                    f64::from(to_vec(spectral_norm(w, &mut v, REPORT_ITERATIONS))[0])
                })
                .product()
        })
        .collect()
}

/// A deterministic start vector `[n, 1]` for power iteration.
fn start_vector(n: usize, seed: u64, device: &Device) -> Tensor<2> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
    Tensor::from_data(TensorData::new(v, [n, 1]), device)
}

/// The layout of the spectral estimate's saved state: `values` lists
/// `[block, operator, length]` of each power-iteration vector, blob
/// `v{block}_{operator}` holds it as little-endian f32.
pub const SPECTRAL_STATE_VERSION: u32 = 1;

/// The Lipschitz defense (see the module docs).
pub struct Lipschitz {
    cfg: LipschitzConfig,
    vectors: BTreeMap<(usize, usize), Tensor<2>>,
    loss_sum: f64,
    k_sums: Vec<f64>,
    steps: usize,
}

impl Lipschitz {
    /// A fresh regulariser.
    pub fn new(cfg: LipschitzConfig) -> Self {
        Self {
            cfg,
            vectors: BTreeMap::new(),
            loss_sum: 0.0,
            k_sums: Vec::new(),
            steps: 0,
        }
    }

    /// Per-block spectral estimates for blocks `0..split` of `model`.
    pub fn spectral_estimates(&mut self, model: &SplitModel, split: usize) -> Vec<Tensor<1>> {
        let iters = self.cfg.power_iterations;
        (0..split)
            .map(|i| {
                let ops = block_operators(&model.blocks[i]);
                let residual = ops.len() > 1;
                let mut k: Option<Tensor<1>> = None;
                for (j, w) in ops.into_iter().enumerate() {
                    let [_, n] = w.dims();
                    let device = w.device();
                    let v = self
                        .vectors
                        .entry((i, j))
                        .or_insert_with(|| start_vector(n, (i * 31 + j) as u64, &device));
                    if v.dims()[0] != n {
                        // A restored vector of another length (a checkpoint
                        // of another model): start afresh, never multiply.
                        *v = start_vector(n, (i * 31 + j) as u64, &device);
                    }
                    let s = spectral_norm(w, v, iters);
                    k = Some(match k {
                        Some(acc) => acc * s,
                        None => s,
                    });
                }
                // A parameter-free block (a pool) counts as 1: it has
                // nothing for the loss to train.
                let Some(k) = k else {
                    let device = model.devices().into_iter().next().unwrap_or_default();
                    return Tensor::ones([1], &device);
                };
                if residual { k.add_scalar(1.0) } else { k }
            })
            .collect()
    }

    /// `sum_i alpha_i k_i` over blocks `0..split`, with `block(i, u)` the
    /// block function the perturbation estimate uses (the spectral estimate
    /// reads `model`'s weights). `None` when every `alpha_i` is 0.
    pub fn loss_with(
        &mut self,
        model: &SplitModel,
        images: &Tensor<4>,
        split: usize,
        block: &dyn Fn(usize, Features) -> Features,
    ) -> Option<Tensor<1>> {
        let alphas: Vec<f32> = (0..split).map(|i| self.cfg.alpha(i)).collect();
        if alphas.iter().all(|&a| a == 0.0) {
            return None;
        }
        let ks = match self.cfg.method {
            LipschitzMethod::Perturbation => {
                perturbation_estimates(block, images, split, self.cfg.draws, self.cfg.scale)
            }
            LipschitzMethod::Spectral => self.spectral_estimates(model, split),
        };
        if self.k_sums.len() < ks.len() {
            self.k_sums.resize(ks.len(), 0.0);
        }
        let mut loss: Option<Tensor<1>> = None;
        for (i, (k, a)) in ks.into_iter().zip(alphas).enumerate() {
            self.k_sums[i] += to_vec(k.clone().detach())[0] as f64;
            let term = k.mul_scalar(a);
            loss = Some(match loss {
                Some(acc) => acc + term,
                None => term,
            });
        }
        let loss = loss?;
        self.loss_sum += to_vec(loss.clone().detach())[0] as f64;
        self.steps += 1;
        Some(loss)
    }
}

impl Defense for Lipschitz {
    fn name(&self) -> &'static str {
        "lipschitz"
    }

    fn loss(&mut self, ctx: &StepContext) -> Option<Tensor<1>> {
        self.loss_with(ctx.model, ctx.images, ctx.split, ctx.block)
    }

    /// The spectral estimate's power-iteration vectors carry over from step
    /// to step (warm starts): they are saved with the checkpoint so a
    /// resumed run continues them. The perturbation estimate keeps nothing.
    fn state_version(&self) -> Option<u32> {
        (self.cfg.method == LipschitzMethod::Spectral).then_some(SPECTRAL_STATE_VERSION)
    }

    fn state(&self) -> Result<Option<DefenseState>, String> {
        if self.state_version().is_none() {
            return Ok(None);
        }
        let keys: Vec<[usize; 3]> = self
            .vectors
            .iter()
            .map(|(&(i, j), v)| [i, j, v.dims()[0]])
            .collect();
        let blobs = self
            .vectors
            .iter()
            .map(|(&(i, j), v)| {
                let bytes = DefenseState::f32_blob(&to_vec(v.clone().detach()));
                (format!("v{i}_{j}"), bytes)
            })
            .collect();
        Ok(Some(DefenseState {
            version: SPECTRAL_STATE_VERSION,
            values: serde_json::json!(keys),
            blobs,
        }))
    }

    fn restore(&mut self, state: DefenseState, device: &Device) -> Result<(), String> {
        let keys: Vec<[usize; 3]> = serde_json::from_value(state.values.clone())
            .map_err(|e| format!("power-iteration vectors: {e}"))?;
        let mut vectors = BTreeMap::new();
        for [i, j, n] in keys {
            let name = format!("v{i}_{j}");
            let v = state.f32s(&name, n, &format!("the power-iteration vector {name}"))?;
            vectors.insert(
                (i, j),
                Tensor::from_data(TensorData::new(v, [n, 1]), device),
            );
        }
        self.vectors = vectors;
        Ok(())
    }

    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        if self.steps == 0 {
            return Vec::new();
        }
        let n = self.steps as f64;
        let mut out = vec![("lipschitz".to_string(), self.loss_sum / n)];
        for (i, s) in self.k_sums.iter().enumerate() {
            out.push((format!("lipschitz_k{}", i + 1), s / n));
        }
        self.loss_sum = 0.0;
        self.k_sums.clear();
        self.steps = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivationKind, BlockSpec, ConvSpec, LinearSpec};

    fn singular_values(w: &[f32], rows: usize, cols: usize) -> Vec<f64> {
        faer::Mat::<f64>::from_fn(rows, cols, |i, j| w[i * cols + j] as f64)
            .singular_values()
            .expect("svd converges")
    }

    fn linear_model(inputs: usize, outputs: usize, device: &Device) -> SplitModel {
        let spec = BlockSpec::Linear(LinearSpec {
            out_features: outputs,
            activation: ActivationKind::None,
            batch_norm: false,
        });
        device.seed(5);
        SplitModel::from_blocks("lin", &[1, 1, inputs], &[spec], device).unwrap()
    }

    #[test]
    fn perturbation_ratio_of_a_linear_map_lies_between_its_singular_values() {
        let device = Device::flex();
        let model = linear_model(4, 6, &device);
        let Block::Linear(b) = &model.blocks[0] else {
            panic!("expected a linear block")
        };
        // burn stores [in, out]; the map is W^T, whose singular values are W's.
        let s = singular_values(&to_vec(b.linear.weight.val()), 4, 6);
        let (smax, smin) = (s[0], s[s.len() - 1]);
        device.seed(9);
        let x = Tensor::<4>::random([16, 1, 1, 4], Distribution::Default, &device);
        for scale in [0.01f32, 1.0] {
            let k = perturbation_estimates(&|i, u| model.blocks[i].forward(u), &x, 1, 3, scale);
            let k = to_vec(k[0].clone())[0] as f64;
            assert!(
                k >= smin * 0.999 && k <= smax * 1.001,
                "{smin} <= {k} <= {smax}"
            );
        }
        assert!(smax / smin > 1.2, "the test needs distinct singular values");
    }

    #[test]
    fn spectral_norm_matches_faers_largest_singular_value() {
        let device = Device::flex();
        let linear = linear_model(7, 5, &device);
        let conv_spec = BlockSpec::Conv(ConvSpec {
            out_channels: 3,
            kernel: 3,
            stride: 1,
            padding: None,
            pool: 0,
            batch_norm: false,
            activation: ActivationKind::Relu,
            order: Default::default(),
            bias: true,
        });
        let conv = SplitModel::from_blocks("c", &[2, 5, 5], &[conv_spec], &device).unwrap();
        for (model, rows, cols) in [(&linear, 5, 7), (&conv, 3, 18)] {
            let w = block_operators(&model.blocks[0]).remove(0);
            assert_eq!(w.dims(), [rows, cols]);
            let expected = singular_values(&to_vec(w.clone()), rows, cols)[0];
            let mut v = start_vector(cols, 1, &device);
            let s = to_vec(spectral_norm(w, &mut v, 200))[0] as f64;
            assert!((s - expected).abs() < 1e-4 * expected, "{s} vs {expected}");
        }
    }

    #[test]
    fn block_estimates_are_the_blocks_spectral_norms() {
        let device = Device::flex();
        let model = linear_model(7, 5, &device);
        let w = block_operators(&model.blocks[0]).remove(0);
        let expected = singular_values(&to_vec(w), 5, 7)[0];
        let k = block_estimates(&model, 1);
        assert_eq!(k.len(), 1);
        assert!(
            (k[0] - expected).abs() < 1e-4 * expected,
            "{} vs {expected}",
            k[0]
        );
        assert!(block_estimates(&model, 0).is_empty());
    }

    #[test]
    fn batch_norm_scale_multiplies_the_rows() {
        let device = Device::flex();
        let spec = BlockSpec::Linear(LinearSpec {
            out_features: 2,
            activation: ActivationKind::Relu,
            batch_norm: true,
        });
        let mut model = SplitModel::from_blocks("bn", &[3], &[spec], &device).unwrap();
        let Block::Linear(b) = &mut model.blocks[0] else {
            panic!("expected a linear block")
        };
        b.bn.as_mut().unwrap().gamma = burn::module::Param::from_data([2.0f32, -0.5], &device);
        let w = to_vec(b.linear.weight.val().transpose());
        let op = to_vec(block_operators(&model.blocks[0]).remove(0));
        let eps = 1e-5f32;
        for j in 0..3 {
            assert!((op[j] - w[j] * 2.0 / (1.0 + eps).sqrt()).abs() < 1e-6);
            assert!((op[3 + j] - w[3 + j] * 0.5 / (1.0 + eps).sqrt()).abs() < 1e-6);
        }
    }

    #[test]
    fn zero_weights_add_no_term() {
        let device = Device::flex().autodiff();
        let model = linear_model(4, 4, &device);
        let x = Tensor::<4>::ones([2, 1, 1, 4], &device);
        let mut lip = Lipschitz::new(LipschitzConfig {
            weight: 0.0,
            block_weights: vec![],
            method: LipschitzMethod::Perturbation,
            draws: 1,
            scale: 0.1,
            power_iterations: 1,
        });
        assert!(
            lip.loss_with(&model, &x, 1, &|i, u| model.blocks[i].forward(u))
                .is_none()
        );
        lip.cfg.block_weights = vec![0.5];
        assert!(
            lip.loss_with(&model, &x, 1, &|i, u| model.blocks[i].forward(u))
                .is_some()
        );
        assert_eq!(lip.epoch_log()[0].0, "lipschitz");
    }
}
