//! Learning-based inversion: a decoder `z -> x` trained on auxiliary data
//! (DESIGN section 9.1; the attack of seed 002 and the evaluation attacker of
//! seed 001).
//!
//! The attacker sees exactly the features the server receives, standardises
//! them with statistics of its own auxiliary split, and trains a
//! transposed-convolution decoder with MSE. Learned attackers can collapse to
//! the mean image (dead ReLUs), which silently under-reports leakage, so the
//! decoder uses batch-norm and leaky activations, a collapse check (variance
//! of the reconstructions across images far below the data's) triggers a
//! restart from another seed, and the restart with the lowest validation MSE
//! (on a held-out tenth of the auxiliary data, never the test queries) wins.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{AttackerVariant, FeatureSet};
use crate::train::{gather_rows as rows, to_vec};

fn d_epochs() -> usize {
    40
}
fn d_batch() -> usize {
    32
}
fn d_lr() -> f64 {
    1e-3
}
fn d_restarts() -> usize {
    2
}
fn d_width() -> usize {
    64
}
fn d_patience() -> usize {
    6
}
fn d_depth() -> usize {
    0
}

/// How the decoder's learning rate moves over its epochs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Cosine decay, step by step, from `lr` to `lr / 20` at the last epoch.
    /// (On the quickstart at 12 epochs it lost 1.5 dB at split 1 against
    /// the constant rate: the decoder is still improving when it decays.)
    Cosine,
}

impl LrSchedule {
    /// The rate at `step` of `total` steps for a base rate `lr`.
    pub fn at(self, lr: f64, step: usize, total: usize) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                let floor = lr / 20.0;
                floor + 0.5 * (lr - floor) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// Settings of the decoder attack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// Most training epochs over the auxiliary features (default 40); the
    /// schedule spans them and early stopping may end sooner. (On the
    /// quickstart at split 1, 12 epochs of batch 64 reached 27.0 dB, 40
    /// epochs of batch 32 reached 30.1 dB: the validation MSE still falls
    /// after 30 epochs on 1,800 auxiliary images.)
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Batch size (default 32: on small auxiliary sets more updates per
    /// epoch matter; 0.9 dB better than 64 at 12 epochs on the quickstart).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Adam learning rate (default 1e-3).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Extra attempts from new seeds when a decoder collapses (default 2).
    #[serde(default = "d_restarts")]
    pub restarts: usize,
    /// Channels of the decoder's first feature map (default 64).
    #[serde(default = "d_width")]
    pub width: usize,
    /// Learning-rate schedule over the epochs (default `constant`).
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Stop when the validation MSE (on the attacker's held-out tenth of
    /// `aux`) has not improved for this many epochs (default 6; 0 trains
    /// every epoch). The epoch with the lowest validation MSE is kept.
    #[serde(default = "d_patience")]
    pub patience: usize,
    /// Extra 3x3 convolutions (batch-norm, leaky ReLU) at every resolution
    /// of the decoder (default 0, the plain transposed-conv stack). More
    /// capacity at full resolution for shallow, large feature maps: on the
    /// quickstart at split 1, depth 1 reached 29.5 dB in 12 epochs (validation
    /// MSE 0.00121 against 0.00172 for depth 0), but each epoch costs ~2.5x on
    /// flex, so at equal wall time the plain stack is as strong (30.1 dB at
    /// 40 epochs); the default keeps it.
    #[serde(default = "d_depth")]
    pub depth: usize,
    /// `adaptive` (default) standardises the features with the attacker's
    /// own statistics; `paper` trains on the raw features, as seed 001's
    /// evaluation decoder does (see [`super::AttackerVariant`]).
    #[serde(default, skip_serializing_if = "AttackerVariant::is_adaptive")]
    pub variant: AttackerVariant,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            epochs: d_epochs(),
            batch_size: d_batch(),
            lr: d_lr(),
            restarts: d_restarts(),
            width: d_width(),
            schedule: LrSchedule::default(),
            patience: d_patience(),
            depth: d_depth(),
            variant: AttackerVariant::default(),
        }
    }
}

pub use crate::model::decoder::{Decoder, Refine, UpStage};

/// Per-dimension standardisation fitted on the attacker's auxiliary features.
#[derive(Clone, Debug)]
pub struct Standardizer {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Standardizer {
    /// Fits mean and standard deviation per feature dimension.
    pub fn fit(features: &[f32], dim: usize) -> Self {
        let (mean, var) = column_moments(features, dim);
        let inv_std = var
            .iter()
            .map(|v| (1.0 / (v.sqrt() + 1e-6)) as f32)
            .collect();
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            inv_std,
        }
    }

    /// The standardisation `variant` trains with: fitted on `features` for
    /// the adaptive attacker, the identity for the paper's.
    pub fn for_variant(variant: AttackerVariant, features: &[f32], dim: usize) -> Self {
        match variant {
            AttackerVariant::Adaptive => Self::fit(features, dim),
            AttackerVariant::Paper => Self {
                mean: vec![0.0; dim],
                inv_std: vec![1.0; dim],
            },
        }
    }

    /// Applies the standardisation.
    pub fn apply(&self, features: &[f32]) -> Vec<f32> {
        let dim = self.mean.len();
        let mut out = features.to_vec();
        for row in out.chunks_mut(dim) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[j]) * self.inv_std[j];
            }
        }
        out
    }
}

/// Outcome of one decoder attack.
pub struct DecoderOutcome {
    /// Reconstructions of the test queries, `[N, C, H, W]` row-major.
    pub reconstructions: Vec<f32>,
    /// Validation MSE of the chosen attempt (on held-out auxiliary data).
    pub validation_mse: f64,
    /// Attempts made (1 + restarts used).
    pub attempts: usize,
    /// Attempts detected as collapsed.
    pub collapsed: usize,
    /// The chosen attempt's training curve: mean training MSE per epoch.
    pub train_curve: Vec<f64>,
    /// The chosen attempt's validation MSE after each epoch.
    pub validation_curve: Vec<f64>,
    /// The epoch (1-based) whose weights were kept: the lowest validation MSE.
    pub best_epoch: usize,
}

/// One trained attempt: the best epoch's decoder and the curves.
struct Fit {
    dec: Decoder,
    val_mse: f64,
    val_rec: Vec<f32>,
    train_curve: Vec<f64>,
    validation_curve: Vec<f64>,
    best_epoch: usize,
}

fn decode_all(dec: &Decoder, z: &[f32], dim: usize, device: &Device) -> Vec<f32> {
    let dec = dec.valid();
    let n = z.len() / dim;
    let mut out = Vec::new();
    for start in (0..n).step_by(256) {
        let end = (start + 256).min(n);
        let zt = Tensor::<2>::from_data(
            TensorData::new(z[start * dim..end * dim].to_vec(), [end - start, dim]),
            device,
        );
        out.extend(to_vec(dec.forward(zt)));
    }
    out
}

fn mean_sq_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64
}

/// Per-column mean and (population) variance of row-major `[n, dim]` data.
fn column_moments(data: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (data.len() / dim.max(1)).max(1) as f64;
    let mut sum = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for row in data.chunks(dim) {
        for (j, &v) in row.iter().enumerate() {
            sum[j] += v as f64;
            sq[j] += (v as f64) * (v as f64);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let var = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| (s / n - m * m).max(0.0))
        .collect();
    (mean, var)
}

/// Mean over pixels of the variance across images.
fn across_image_variance(images: &[f32], image_len: usize) -> f64 {
    let (_, var) = column_moments(images, image_len);
    var.iter().sum::<f64>() / image_len.max(1) as f64
}

/// Trains decoders on (aux features, aux images) and reconstructs the test
/// queries from their features. `device` must support autodiff.
pub fn decoder_attack(
    aux: &FeatureSet,
    test_features: &[f32],
    cfg: &DecoderConfig,
    seed: u64,
    device: &Device,
) -> DecoderOutcome {
    let dim = aux.dim();
    let image_len: usize = aux.image_shape.iter().product();
    let n = aux.len();
    let std = Standardizer::for_variant(cfg.variant, &aux.features, dim);
    let z_all = std.apply(&aux.features);
    let z_test = std.apply(test_features);

    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0xDEC0DE));
    let n_val = (n / 10).clamp(1.min(n), 500);
    let (val_idx, train_idx) = order.split_at(n_val);
    let z_val = rows(&z_all, dim, val_idx);
    let x_val = rows(&aux.images, image_len, val_idx);
    let data_var = across_image_variance(&aux.images, image_len);

    let mut best: Option<Fit> = None;
    let (mut attempts, mut collapsed) = (0, 0);
    for attempt in 0..=cfg.restarts {
        attempts += 1;
        let attempt_seed = seed.wrapping_add(attempt as u64 * 7919);
        let data = TrainData {
            z: &z_all,
            dim,
            images: &aux.images,
            image_shape: aux.image_shape,
            train_idx,
            z_val: &z_val,
            x_val: &x_val,
        };
        let fit = fit_decoder(&data, &aux.feature_shape, cfg, attempt_seed, device);
        let is_collapsed = across_image_variance(&fit.val_rec, image_len) < 0.01 * data_var;
        if is_collapsed {
            collapsed += 1;
        }
        if best.as_ref().is_none_or(|b| fit.val_mse < b.val_mse) {
            best = Some(fit);
        }
        if !is_collapsed {
            break;
        }
    }
    let fit = best.expect("at least one attempt");
    DecoderOutcome {
        reconstructions: decode_all(&fit.dec, &z_test, dim, device),
        validation_mse: fit.val_mse,
        attempts,
        collapsed,
        train_curve: fit.train_curve,
        validation_curve: fit.validation_curve,
        best_epoch: fit.best_epoch,
    }
}

/// The attacker's standardised features and images, split into its own
/// training rows and validation rows.
struct TrainData<'a> {
    z: &'a [f32],
    dim: usize,
    images: &'a [f32],
    image_shape: [usize; 3],
    train_idx: &'a [usize],
    z_val: &'a [f32],
    x_val: &'a [f32],
}

/// Trains one decoder from `seed`: MSE, Adam, the configured schedule, a
/// validation pass after every epoch; keeps the epoch with the lowest
/// validation MSE and stops after `patience` epochs without improvement.
fn fit_decoder(
    data: &TrainData,
    feature_shape: &[usize],
    cfg: &DecoderConfig,
    seed: u64,
    device: &Device,
) -> Fit {
    device.seed(seed);
    let mut dec = Decoder::new(
        feature_shape,
        data.image_shape,
        cfg.width,
        cfg.depth,
        device,
    );
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = data.train_idx.to_vec();
    let [c, h, w] = data.image_shape;
    let image_len = c * h * w;
    let batch = cfg.batch_size.max(2);
    let steps_per_epoch = idx.chunks(batch).filter(|b| b.len() > 1).count();
    let total_steps = steps_per_epoch * cfg.epochs;
    let (mut step, mut since_best) = (0, 0);
    // The best epoch so far: (validation MSE, decoder, its validation reconstructions, epoch).
    let mut best: Option<(f64, Decoder, Vec<f32>, usize)> = None;
    let (mut train_curve, mut validation_curve) = (Vec::new(), Vec::new());
    for epoch in 1..=cfg.epochs {
        idx.shuffle(&mut rng);
        // Summed on the device and read once per epoch, not once per step.
        let (mut sum, mut count) = (Tensor::<1>::zeros([1], device), 0usize);
        for b in idx.chunks(batch).filter(|b| b.len() > 1) {
            let z = Tensor::<2>::from_data(
                TensorData::new(rows(data.z, data.dim, b), [b.len(), data.dim]),
                device,
            );
            let x = Tensor::<4>::from_data(
                TensorData::new(rows(data.images, image_len, b), [b.len(), c, h, w]),
                device,
            );
            let loss = (dec.forward(z) - x).powi_scalar(2).mean();
            sum = sum + loss.clone().detach().mul_scalar(b.len() as f64);
            count += b.len();
            let grads = GradientsParams::from_grads(loss.backward(), &dec);
            dec = optim.step(cfg.schedule.at(cfg.lr, step, total_steps), dec, grads);
            step += 1;
        }
        train_curve.push(f64::from(to_vec(sum)[0]) / count.max(1) as f64);
        let val_rec = decode_all(&dec, data.z_val, data.dim, device);
        let val_mse = mean_sq_diff(&val_rec, data.x_val);
        validation_curve.push(val_mse);
        if best.as_ref().is_none_or(|b| val_mse < b.0) {
            since_best = 0;
            // A deep copy: `clone()` would share the batch-norm running
            // statistics, which later epochs keep updating.
            best = Some((val_mse, dec.valid(), val_rec, epoch));
        } else {
            since_best += 1;
            if cfg.patience > 0 && since_best >= cfg.patience {
                break;
            }
        }
    }
    let (val_mse, dec, val_rec, best_epoch) = best.expect("at least one epoch");
    Fit {
        dec,
        val_mse,
        val_rec,
        train_curve,
        validation_curve,
        best_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_papers_variant_sees_the_raw_features() {
        let data = vec![1.0, 10.0, 3.0, 10.0, 5.0, 30.0];
        let paper = Standardizer::for_variant(AttackerVariant::Paper, &data, 2);
        assert_eq!(paper.apply(&data), data);
        let adaptive = Standardizer::for_variant(AttackerVariant::Adaptive, &data, 2);
        assert_eq!(
            adaptive.apply(&data),
            Standardizer::fit(&data, 2).apply(&data)
        );
        assert_ne!(adaptive.apply(&data), data);
    }

    #[test]
    fn standardizer_gives_zero_mean_unit_variance() {
        let data = vec![1.0, 10.0, 3.0, 10.0, 5.0, 10.0];
        let s = Standardizer::fit(&data, 2);
        let out = s.apply(&data);
        let col0: Vec<f32> = out.iter().step_by(2).copied().collect();
        let mean: f32 = col0.iter().sum::<f32>() / 3.0;
        let var: f32 = col0.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3, "{col0:?}");
        // A constant column stays finite (no division by zero).
        assert!(
            out.iter()
                .skip(1)
                .step_by(2)
                .all(|v| v.is_finite() && v.abs() < 1e-3)
        );
    }

    #[test]
    fn across_image_variance_is_zero_for_identical_images_only() {
        let same = vec![0.5f32; 4 * 3];
        assert_eq!(across_image_variance(&same, 4), 0.0);
        let diff = vec![0.0, 0.0, 1.0, 1.0];
        // two 2-pixel images: per pixel variance 0.25
        assert!((across_image_variance(&diff, 2) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn decoder_maps_any_feature_shape_to_the_image_shape() {
        let device = Device::flex();
        for input in [vec![16, 14, 14], vec![64, 3, 3], vec![128], vec![10]] {
            let dec = Decoder::new(&input, [1, 28, 28], 16, 1, &device).valid();
            let d: usize = input.iter().product();
            let out = dec.forward(Tensor::<2>::zeros([2, d], &device));
            assert_eq!(out.dims(), [2, 1, 28, 28], "{input:?}");
            let v = to_vec(out);
            assert!(v.iter().all(|x| *x > 0.0 && *x < 1.0));
        }
        // Odd sizes (ORL faces downscaled) are met exactly too.
        let dec = Decoder::new(&[8, 7, 6], [1, 56, 46], 16, 1, &device).valid();
        assert_eq!(
            dec.forward(Tensor::<2>::zeros([1, 8 * 42], &device)).dims(),
            [1, 1, 56, 46]
        );
    }

    #[test]
    fn decoder_learns_an_identity_feature_map() {
        // Features that are the image itself (split 0): a decoder must beat the mean image.
        let device = Device::flex().autodiff();
        let n = 64;
        let mut images = Vec::new();
        for i in 0..n {
            for p in 0..64 {
                images.push(if (p + i) % 7 < 3 { 1.0 } else { 0.0 });
            }
        }
        let aux = FeatureSet {
            features: images.clone(),
            feature_shape: vec![1, 8, 8],
            images: images.clone(),
            image_shape: [1, 8, 8],
        };
        let cfg = DecoderConfig {
            epochs: 30,
            batch_size: 16,
            lr: 3e-3,
            restarts: 0,
            width: 16,
            ..DecoderConfig::default()
        };
        let out = decoder_attack(&aux, &images, &cfg, 1, &device);
        let mse = mean_sq_diff(&out.reconstructions, &images);
        let mean_img_mse = across_image_variance(&images, 64);
        assert!(
            mse < 0.5 * mean_img_mse,
            "decoder mse {mse} vs mean-image mse {mean_img_mse}"
        );
        assert_eq!(out.attempts, 1);
    }
}
