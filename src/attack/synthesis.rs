//! Data-free input synthesis from the target model alone (seed 000, DCI;
//! DESIGN section 9.3; Yin et al., "Dreaming to Distill: Data-free Knowledge
//! Transfer via DeepInversion", CVPR 2020, eq. 4-5).
//!
//! The DCI attacker has no real data, so it makes its own training inputs
//! from what the model remembers of its training set: the running statistics
//! of every batch-norm layer. Starting from noise, a batch `x = sigmoid(w)`
//! (box `[0, 1]` by parametrisation) is optimised with Adam on
//!
//! `R(x) = bn_weight * sum_l (||mu_l(x) - mu_l^run||_2 + ||var_l(x) - var_l^run||_2)
//!        + class_weight * CE(F(x), y_random) + tv_weight * TV(x)`
//!
//! where `mu_l(x)`, `var_l(x)` are the per-channel batch mean and (biased)
//! variance of the input of batch-norm layer `l` (inference mode, as the
//! deployed model runs), `y_random` are uniformly drawn target classes and
//! `TV` is the mean squared total variation of
//! [`total_variation`](super::optimisation::total_variation).
//! Each step the model sees the batch cyclically shifted by a random offset
//! of up to `jitter` pixels (DeepInversion's jitter augmentation).
//! Mode `noise` skips the optimisation and returns the uniform noise.
//!
//! The API takes the model, the settings, a seed and a device, and nothing
//! else: no dataset can reach it (a test pins the signature).

use burn::module::{Module, Param};
use burn::nn::BatchNorm;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::optimisation::{InversionError, first_problem, image_shape, total_variation, white_box};
use crate::model::{Block, ConvOrder, Features, SplitModel, activate};
use crate::train::{one_hot, soft_cross_entropy, to_vec};

/// How synthetic inputs are made.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SynthesisMode {
    /// Uniform noise in (0, 1), not optimised.
    Noise,
    /// Noise optimised to match the batch-norm running statistics.
    #[default]
    DeepInversion,
}

fn s_count() -> usize {
    256
}
fn s_steps() -> usize {
    200
}
fn s_lr() -> f64 {
    0.1
}
fn s_batch() -> usize {
    64
}
fn s_bn() -> f64 {
    1.0
}
fn s_class() -> f64 {
    1.0
}
fn s_tv() -> f64 {
    100.0
}
fn s_jitter() -> usize {
    0
}

/// Settings of the input synthesis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynthesisConfig {
    /// `noise` or `deep_inversion` (default).
    #[serde(default)]
    pub mode: SynthesisMode,
    /// Number of synthetic inputs (default 256).
    #[serde(default = "s_count")]
    pub count: usize,
    /// Adam steps per batch (default 200).
    #[serde(default = "s_steps")]
    pub steps: usize,
    /// Adam learning rate on the sigmoid pre-activations (default 0.1).
    #[serde(default = "s_lr")]
    pub lr: f64,
    /// Inputs optimised together; batch statistics need >= 2 (default 64).
    #[serde(default = "s_batch")]
    pub batch_size: usize,
    /// Weight of the batch-norm statistics term (default 1).
    #[serde(default = "s_bn")]
    pub bn_weight: f64,
    /// Weight of the cross-entropy on random target classes (default 1; 0 turns it off).
    #[serde(default = "s_class")]
    pub class_weight: f64,
    /// Weight of the total-variation prior (default 100; 0 turns it off).
    /// The TV term is a mean over pixels while the statistics term sums
    /// over layers, hence the large weight: at 100 the synthetic MNIST
    /// inputs are smooth strokes and blobs, at 1 pixel noise (measured on
    /// `cnn6`: block inverses trained on the smooth inputs invert real
    /// digits better and their cycle consistency ranks errors better).
    #[serde(default = "s_tv")]
    pub tv_weight: f64,
    /// Each step the model sees the batch shifted (cyclically) by up to this
    /// many pixels in each direction, DeepInversion's jitter: features must
    /// match wherever the content sits, which favours smooth, object-like
    /// inputs over pixel noise (default 0, off: within 200 steps it left
    /// the statistics further from the running ones on `cnn6`).
    #[serde(default = "s_jitter")]
    pub jitter: usize,
}

impl Default for SynthesisConfig {
    fn default() -> Self {
        Self {
            mode: SynthesisMode::default(),
            count: s_count(),
            steps: s_steps(),
            lr: s_lr(),
            batch_size: s_batch(),
            bn_weight: s_bn(),
            class_weight: s_class(),
            tv_weight: s_tv(),
            jitter: s_jitter(),
        }
    }
}

impl SynthesisConfig {
    /// Every out-of-range setting as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.count < 2 {
            p.push(("count".into(), format!("must be >= 2, got {}", self.count)));
        }
        if self.batch_size < 2 {
            p.push((
                "batch_size".into(),
                format!(
                    "must be >= 2 (batch statistics need two inputs), got {}",
                    self.batch_size
                ),
            ));
        }
        if self.mode == SynthesisMode::DeepInversion && self.steps == 0 {
            p.push((
                "steps".into(),
                "must be >= 1 for deep_inversion, got 0".into(),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            p.push(("lr".into(), format!("must be > 0, got {}", self.lr)));
        }
        for (name, v) in [
            ("bn_weight", self.bn_weight),
            ("class_weight", self.class_weight),
            ("tv_weight", self.tv_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                p.push((name.into(), format!("must be >= 0, got {v}")));
            }
        }
        p
    }
}

/// Synthetic inputs and how well they match the model's statistics.
#[derive(Clone, Debug)]
pub struct Synthesised {
    /// Images `[count, C, H, W]`, pixels in (0, 1).
    pub images: Vec<f32>,
    /// Shape of one image.
    pub shape: [usize; 3],
    /// The random target class of each image (used by the class term).
    pub targets: Vec<u32>,
    /// Batch-norm statistics mismatch of the starting noise (mean over batches).
    pub bn_mismatch_start: f64,
    /// Batch-norm statistics mismatch of the returned images (mean over batches).
    pub bn_mismatch_end: f64,
}

impl Synthesised {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len() / self.shape.iter().product::<usize>().max(1)
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

fn bn_term(bn: &BatchNorm, mean: Tensor<1>, var: Tensor<1>) -> Tensor<1> {
    let dev = mean.device();
    let rm = bn.running_mean.value().to_device(&dev);
    let rv = bn.running_var.value().to_device(&dev);
    let l2 = |d: Tensor<1>| (d.powi_scalar(2).sum() + 1e-12).sqrt();
    l2(mean - rm) + l2(var - rv)
}

/// Per-channel batch mean and biased variance of `[N, C, H, W]`.
fn map_stats(a: Tensor<4>) -> (Tensor<1>, Tensor<1>) {
    let [n, c, h, w] = a.dims();
    let t = a.swap_dims(0, 1).reshape([c, n * h * w]);
    let mean = t.clone().mean_dim(1);
    let var = (t - mean.clone()).powi_scalar(2).mean_dim(1);
    (mean.reshape([c]), var.reshape([c]))
}

/// Per-unit batch mean and biased variance of `[N, D]`.
fn flat_stats(a: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let d = a.dims()[1];
    let mean = a.clone().mean_dim(0);
    let var = (a - mean.clone()).powi_scalar(2).mean_dim(0);
    (mean.reshape([d]), var.reshape([d]))
}

/// Runs `model` on `x` (`[N, C, H, W]`) exactly as [`SplitModel::forward`]
/// does, and sums the batch-norm statistics mismatch of every batch-norm
/// layer: returns (logits `[N, classes]`, mismatch `[1]`). Differentiable in
/// `x`; use a [`white_box`] copy to back-propagate.
pub fn forward_with_bn_mismatch(model: &SplitModel, x: Tensor<4>) -> (Tensor<2>, Tensor<1>) {
    let mut total = Tensor::<1>::zeros([1], &x.device());
    let mut f = Features::Map(x);
    for block in &model.blocks {
        f = match (block, f) {
            (Block::Conv(b), Features::Map(t)) => {
                let mut norm = |y: Tensor<4>| match &b.bn {
                    Some(bn) => {
                        let (m, v) = map_stats(y.clone());
                        total = total.clone() + bn_term(bn, m, v);
                        bn.forward(y)
                    }
                    None => y,
                };
                let pool = |y: Tensor<4>| match &b.pool {
                    Some(pool) => pool.forward(y),
                    None => y,
                };
                let y = b.conv.forward(t);
                Features::Map(match b.spec.order {
                    ConvOrder::ConvActPoolBn => norm(pool(activate(y, b.spec.activation))),
                    ConvOrder::ConvBnActPool => pool(activate(norm(y), b.spec.activation)),
                })
            }
            (Block::Linear(b), f) => {
                let mut y = activate(b.linear.forward(f.flatten()), b.spec.activation);
                if let Some(bn) = &b.bn {
                    let (m, v) = flat_stats(y.clone());
                    total = total + bn_term(bn, m, v);
                    y = bn.forward(y);
                }
                Features::Flat(y)
            }
            (Block::Residual(b), Features::Map(t)) => {
                let act = b.spec.activation;
                let a1 = b.conv1.forward(t.clone());
                let (m, v) = map_stats(a1.clone());
                total = total + bn_term(&b.bn1, m, v);
                let y = activate(b.bn1.forward(a1), act);
                let a2 = b.conv2.forward(y);
                let (m, v) = map_stats(a2.clone());
                total = total + bn_term(&b.bn2, m, v);
                let shortcut = match &b.downsample {
                    Some(d) => {
                        let a = d.conv.forward(t);
                        let (m, v) = map_stats(a.clone());
                        total = total + bn_term(&d.bn, m, v);
                        d.bn.forward(a)
                    }
                    None => b.shortcut(t),
                };
                Features::Map(activate(shortcut + b.bn2.forward(a2), act))
            }
            (Block::MaxPool(b), Features::Map(t)) => Features::Map(b.forward(t)),
            (Block::GlobalAvgPool(b), Features::Map(t)) => Features::Flat(b.forward(t)),
            (b, Features::Flat(_)) => panic!(
                "expected a validated spec: {:?} got flat features",
                b.spec()
            ),
        };
    }
    (f.flatten(), total)
}

/// The batch-norm statistics mismatch of a batch of images under `model`
/// (0 for a model without batch-norm).
pub fn bn_mismatch(model: &SplitModel, images: &[f32], shape: [usize; 3], device: &Device) -> f64 {
    let [c, h, w] = shape;
    let n = images.len() / (c * h * w).max(1);
    let x = Tensor::<4>::from_data(TensorData::new(images.to_vec(), [n, c, h, w]), device);
    let (_, m) = forward_with_bn_mismatch(&model.valid(), x);
    to_vec(m)[0] as f64
}

/// The optimised pre-activations.
#[derive(Module, Debug)]
struct Latent {
    w: Param<Tensor<4>>,
}

/// Synthesises `cfg.count` inputs from `model` alone (see the module docs).
/// `device` must support autodiff for `deep_inversion`.
pub fn synthesise(
    model: &SplitModel,
    cfg: &SynthesisConfig,
    seed: u64,
    device: &Device,
) -> Result<Synthesised, InversionError> {
    first_problem(cfg.problems())?;
    let shape = image_shape(model)?;
    let [c, h, w] = shape;
    let frozen = white_box(model, device);
    let classes = {
        let probe = Tensor::<4>::zeros([1, c, h, w], device);
        frozen.forward(probe).dims()[1]
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_DA7A);
    let targets: Vec<u32> = (0..cfg.count)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    device.seed(seed);
    let (mut images, mut start_sum, mut end_sum, mut batches) = (Vec::new(), 0.0, 0.0, 0usize);
    let mut first = 0;
    while first < cfg.count {
        // A last batch of one would have no variance: fold it into this one.
        let mut b = cfg.batch_size.min(cfg.count - first);
        if cfg.count - first - b == 1 {
            b += 1;
        }
        let u = Tensor::<4>::random(
            [b, c, h, w],
            burn::tensor::Distribution::Uniform(0.02, 0.98),
            device,
        );
        let w0 = (u.clone() / (u.neg() + 1.0)).log();
        let start = forward_with_bn_mismatch(&frozen, sigmoid(w0.clone())).1;
        start_sum += to_vec(start)[0] as f64;
        let mut latent = Latent {
            w: Param::from_tensor(w0),
        };
        if cfg.mode == SynthesisMode::DeepInversion {
            let y = one_hot(&targets[first..first + b], classes, device);
            let mut optim = AdamConfig::new().init();
            let j = cfg.jitter.min(h.min(w) / 2) as i64;
            for _ in 0..cfg.steps {
                let x = sigmoid(latent.w.val());
                let seen = if j > 0 {
                    let (dy, dx) = (rng.random_range(-j..=j), rng.random_range(-j..=j));
                    x.clone().roll(&[dy, dx], &[2, 3])
                } else {
                    x.clone()
                };
                let (logits, bn) = forward_with_bn_mismatch(&frozen, seen);
                let mut loss = bn * cfg.bn_weight;
                if cfg.class_weight > 0.0 {
                    loss = loss + soft_cross_entropy(logits, y.clone()) * cfg.class_weight;
                }
                if cfg.tv_weight > 0.0 {
                    loss = loss + total_variation(x) * cfg.tv_weight;
                }
                let grads = GradientsParams::from_grads(loss.backward(), &latent);
                latent = optim.step(cfg.lr, latent, grads);
            }
        }
        let x = sigmoid(latent.w.val().detach());
        end_sum += to_vec(forward_with_bn_mismatch(&frozen, x.clone()).1)[0] as f64;
        images.extend(to_vec(x));
        batches += 1;
        first += b;
    }
    Ok(Synthesised {
        images,
        shape,
        targets,
        bn_mismatch_start: start_sum / batches as f64,
        bn_mismatch_end: end_sum / batches as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;
    use burn::module::RunningState;
    use burn::nn::BatchNormConfig;

    #[test]
    fn synthesis_api_takes_no_dataset() {
        // The whole input of the synthesis is the model, the settings, a seed
        // and a device; this line stops compiling if a parameter is added.
        let _only_model: fn(
            &SplitModel,
            &SynthesisConfig,
            u64,
            &Device,
        ) -> Result<Synthesised, InversionError> = synthesise;
        // And the settings are plain numbers: no field can hold images.
        let keys: Vec<String> = serde_json::to_value(SynthesisConfig::default())
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut expected = [
            "batch_size",
            "bn_weight",
            "class_weight",
            "count",
            "lr",
            "mode",
            "steps",
            "jitter",
            "tv_weight",
        ];
        expected.sort();
        assert_eq!(keys, expected);
    }

    #[test]
    fn bn_mismatch_walk_computes_the_models_own_forward() {
        let device = Device::flex();
        // cnn6 with PyTorch's layer order too (conv, bn, act, pool), where the
        // batch-norm statistics are taken before the activation.
        let mut bn_first = zoo::spec("cnn6").unwrap();
        for b in &mut bn_first.blocks {
            if let crate::model::BlockSpec::Conv(c) = b {
                c.order = ConvOrder::ConvBnActPool;
            }
        }
        let specs = [
            ("cnn6", zoo::spec("cnn6").unwrap()),
            ("vgg11-mnist", zoo::spec("vgg11-mnist").unwrap()),
            ("cnn6 bn-first", bn_first),
        ];
        for (name, spec) in specs {
            device.seed(2);
            let model = SplitModel::new(&spec, &device).unwrap().valid();
            let x = Tensor::<4>::random(
                [3, 1, 28, 28],
                burn::tensor::Distribution::Uniform(0.0, 1.0),
                &device,
            );
            let want = to_vec(model.forward(x.clone()));
            let (logits, m) = forward_with_bn_mismatch(&model, x);
            let got = to_vec(logits);
            let diff = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "{name}: {diff}");
            assert!(to_vec(m)[0] > 0.0);
        }
    }

    #[test]
    fn bn_term_is_the_l2_distance_of_batch_statistics() {
        let device = Device::flex();
        let mut bn = BatchNormConfig::new(2).init(&device);
        let t = |v: [f32; 2]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [2]), &device);
        bn.running_mean = RunningState::new(t([0.5, -1.0]));
        bn.running_var = RunningState::new(t([2.0, 1.0]));
        // Batch of two 1x2 maps: channel 0 holds [1, 3, 2, 2], channel 1 [0, 0, 4, 4].
        let a = Tensor::<4>::from_data(
            TensorData::new(vec![1.0, 3.0, 0.0, 0.0, 2.0, 2.0, 4.0, 4.0], [2, 2, 1, 2]),
            &device,
        );
        let (m, v) = map_stats(a);
        assert_eq!(to_vec(m.clone()), [2.0, 2.0]);
        assert_eq!(to_vec(v.clone()), [0.5, 4.0]);
        let want = ((2.0f64 - 0.5).powi(2) + 3.0f64.powi(2)).sqrt()
            + ((0.5f64 - 2.0).powi(2) + 3.0f64.powi(2)).sqrt();
        let got = to_vec(bn_term(&bn, m, v))[0] as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn synthesis_is_reproducible_and_counts_every_image() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
        // 5 with batches of 2: 2 + 3 (no batch of one).
        let cfg = SynthesisConfig {
            count: 5,
            steps: 2,
            batch_size: 2,
            ..SynthesisConfig::default()
        };
        let a = synthesise(&model, &cfg, 8, &device).unwrap();
        let b = synthesise(&model, &cfg, 8, &device).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a.targets.len(), 5);
        assert!(a.targets.iter().all(|t| *t < 10));
        assert_eq!(a.images, b.images);
        let c = synthesise(&model, &cfg, 9, &device).unwrap();
        assert_ne!(a.images, c.images);
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(SynthesisConfig::default().problems().is_empty());
        let bad = SynthesisConfig {
            count: 1,
            batch_size: 1,
            steps: 0,
            lr: 0.0,
            bn_weight: -1.0,
            class_weight: -1.0,
            tv_weight: -1.0,
            ..SynthesisConfig::default()
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "count",
                "batch_size",
                "steps",
                "lr",
                "bn_weight",
                "class_weight",
                "tv_weight"
            ]
        );
        let noise = SynthesisConfig {
            mode: SynthesisMode::Noise,
            steps: 0,
            ..SynthesisConfig::default()
        };
        assert!(noise.problems().is_empty(), "noise needs no steps");
    }
}
