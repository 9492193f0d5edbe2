//! Trainable soft channel masks: the privacy-oriented half of PATROL's
//! pruning (seed 001; DESIGN section 7).
//!
//! Each prunable edge block `i` gets a mask `m_i` in [0, 1] per output
//! channel (unit), multiplied into its output: `f_i'(u) = m_i * f_i(u)`
//! (after the block's batch-norm, so a zero mask gives an exactly zero
//! channel). The masks are trained together with the weights on
//! `L_task + lambda * sum_{i,c} w_ic m_ic + L_lip + L_adv`, where the
//! sparsity term pushes masks down in proportion to the edge FLOPs each
//! channel costs (`w_ic`: block `i`'s FLOPs per output channel, plus the
//! next block's FLOPs per input channel when that block is on the edge,
//! normalised to sum to 1, so the term is the share of the prunable edge
//! FLOPs still switched on), the Lipschitz term (PATROL's `sum_i alpha_i k_i`,
//! on the masked blocks) and the adversarial term (the min-max game on the
//! masked split features) decide which channels the task can lose and which
//! leak the input. Thresholding then keeps the channels with the highest
//! masks (ranked by their raw values, [`super::budget`]) and the kept masks are folded into the next
//! block's weights ([`super::surgery`]), so no mask survives into the model.
//!
//! Design: the masks wrap the model ([`MaskedModel`]) rather than being a
//! [`crate::defense::Defense`], because a defense only sees the split
//! features, while a mask must act inside the edge. Hence this phase has its
//! own loop, a copy of the trainer's step with the masked edge; it calls the
//! recipe's defenses like the trainer does (`transform`, `targets`, `loss`,
//! `after_step`), except the Lipschitz term, which it computes on the masked
//! blocks. The masks are stored as raw values `s` and used as
//! `clamp(s, 0, 1) = relu(s) - relu(s - 1)`, with their own Adam and
//! learning rate (`prune.mask_lr`); the weights use Adam at the training
//! learning rate.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::PruneError;
use crate::data::Dataset;
use crate::defense::{Defense, DefensesConfig, Lipschitz, StepContext};
use crate::model::{Features, SplitModel};
use crate::train::{
    EpochMetrics, TrainConfig, TrainObserver, images_tensor, one_hot, soft_cross_entropy,
    step_outcome, to_vec,
};

/// How the sparsity penalty weighs each mask entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SparsityWeights {
    /// By the edge FLOPs the channel costs (see the module docs).
    #[default]
    Flops,
    /// Every channel alike: plain L1 on the masks, normalised to sum to 1.
    Uniform,
}

/// The raw mask values, one `[channels]` vector per masked block.
#[derive(Module, Debug)]
pub struct ChannelMasks {
    /// Raw values `s` (the mask is `clamp(s, 0, 1)`).
    pub values: Vec<Param<Tensor<1>>>,
}

/// A model with soft masks on some blocks' outputs.
#[derive(Module, Debug)]
pub struct MaskedModel {
    /// The model.
    pub model: SplitModel,
    /// The masks, in the order of `blocks`.
    pub masks: ChannelMasks,
    /// 0-based indices of the masked blocks, increasing.
    #[module(skip)]
    pub blocks: Vec<usize>,
    /// Sparsity weight `w_ic` of each mask entry (edge FLOPs share), in the
    /// order of `blocks`.
    #[module(skip)]
    pub costs: Vec<Vec<f32>>,
}

fn clamp01<const D: usize>(s: Tensor<D>) -> Tensor<D> {
    relu(s.clone()) - relu(s.sub_scalar(1.0))
}

impl MaskedModel {
    /// Masks of ones (the model's function unchanged) on `blocks` (0-based),
    /// weighted for the edge of split `split` (see the module docs).
    pub fn new(
        model: SplitModel,
        blocks: &[usize],
        split: usize,
        device: &Device,
    ) -> Result<Self, PruneError> {
        let infos = model.infos()?;
        let mut sorted = blocks.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if let Some(&bad) = sorted.iter().find(|&&i| i + 1 >= infos.len()) {
            return Err(PruneError::Plan(format!(
                "block {} cannot carry a mask (the last block or beyond)",
                bad + 1
            )));
        }
        let raw: Vec<Vec<f32>> = sorted
            .iter()
            .map(|&i| {
                let n = infos[i].output[0];
                let next = if i + 1 < split { infos[i + 1].flops } else { 0 };
                vec![(infos[i].flops + next) as f32 / n as f32; n]
            })
            .collect();
        let total: f32 = raw.iter().flatten().sum::<f32>().max(f32::MIN_POSITIVE);
        let costs = raw
            .into_iter()
            .map(|c| c.into_iter().map(|v| v / total).collect())
            .collect();
        let values = sorted
            .iter()
            .map(|&i| Param::from_tensor(Tensor::ones([infos[i].output[0]], device)))
            .collect();
        Ok(Self {
            model,
            masks: ChannelMasks { values },
            blocks: sorted,
            costs,
        })
    }

    /// The same masks with every sparsity weight `1 / channels`.
    pub fn with_uniform_weights(mut self) -> Self {
        let total: usize = self.costs.iter().map(Vec::len).sum();
        for c in &mut self.costs {
            c.fill(1.0 / total.max(1) as f32);
        }
        self
    }

    /// The mask of 0-based block `i` in [0, 1], if it has one.
    pub fn mask(&self, i: usize) -> Option<Tensor<1>> {
        let j = self.blocks.iter().position(|&b| b == i)?;
        Some(clamp01(self.masks.values[j].val()))
    }

    /// Runs 0-based block `i` and applies its mask.
    pub fn block_forward(&self, i: usize, u: Features) -> Features {
        let y = self.model.blocks[i].forward(u);
        match (self.mask(i), y) {
            (None, y) => y,
            (Some(m), Features::Map(t)) => {
                let c = m.dims()[0];
                Features::Map(t * m.reshape([1, c, 1, 1]))
            }
            (Some(m), Features::Flat(t)) => {
                let d = m.dims()[0];
                Features::Flat(t * m.reshape([1, d]))
            }
        }
    }

    /// The masked edge's features at split `k`: `[N, C, H, W]` images in.
    pub fn edge_forward(&self, x: Tensor<4>, k: usize) -> Features {
        (0..k).fold(Features::Map(x), |u, i| self.block_forward(i, u))
    }

    /// The sparsity term `sum_{i,c} w_ic m_ic`, `[1]` (`None` without masks).
    pub fn sparsity(&self) -> Option<Tensor<1>> {
        self.masks
            .values
            .iter()
            .zip(&self.costs)
            .map(|(s, w)| {
                let w = Tensor::<1>::from_data(TensorData::new(w.clone(), [w.len()]), &s.device());
                (clamp01(s.val()) * w).sum()
            })
            .reduce(|a, b| a + b)
    }

    /// Raw mask values `s` for every block (`None` where unmasked): the
    /// thresholding scores. They order channels like the masks do, and still
    /// tell apart channels whose masks all clamped to 0 (how far below 0
    /// each went), so a budget can stop between them.
    pub fn raw_values(&self) -> Vec<Option<Vec<f32>>> {
        (0..self.model.len())
            .map(|i| {
                let j = self.blocks.iter().position(|&b| b == i)?;
                Some(to_vec(self.masks.values[j].val()))
            })
            .collect()
    }

    /// Mean mask value over all masked channels (for logs).
    pub fn mean_mask(&self) -> f64 {
        let all: Vec<f32> = self.values().into_iter().flatten().flatten().collect();
        all.iter().map(|&v| v as f64).sum::<f64>() / all.len().max(1) as f64
    }

    /// Mask values in [0, 1] for every block of the model (`None` where unmasked).
    pub fn values(&self) -> Vec<Option<Vec<f32>>> {
        (0..self.model.len())
            .map(|i| self.mask(i).map(to_vec))
            .collect()
    }
}

/// Settings of one mask-training phase.
pub struct MaskRun<'a> {
    /// Batch size, learning rate of the weights, and the defenses to train with.
    pub training: &'a TrainConfig,
    /// Passes over the data.
    pub epochs: usize,
    /// Adam learning rate of the masks.
    pub mask_lr: f64,
    /// `lambda`, the weight of `sum_i mean(m_i)`.
    pub sparsity: f32,
    /// Seed of the batch order and random draws.
    pub seed: u64,
    /// The split whose features the defenses protect.
    pub split: usize,
}

/// Trains weights and masks together (see the module docs). `device` must
/// support autodiff.
pub fn train_masks(
    masked: MaskedModel,
    data: &Dataset,
    run: &MaskRun,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<(MaskedModel, Vec<EpochMetrics>), PruneError> {
    let mut masked = masked.fork(device).train();
    let (mut opt_w, mut opt_m) = (AdamConfig::new().init(), AdamConfig::new().init());
    let mut lip = run.training.defenses.lipschitz.clone().map(Lipschitz::new);
    let mut others = DefensesConfig {
        lipschitz: None,
        ..run.training.defenses.clone()
    }
    .build(run.seed);
    let (classes, split, lr) = (data.num_classes, run.split, run.training.optimizer.lr());
    let batch = run.training.batch_size.max(2);
    let mut history = Vec::new();
    let mut step = 0;
    for epoch in 1..=run.epochs {
        let started = Instant::now();
        let epoch_seed =
            run.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (0x4D41_534B + epoch as u64);
        device.seed(epoch_seed);
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch_seed));
        let batches: Vec<&[usize]> = order.chunks(batch).filter(|b| b.len() > 1).collect();
        observer.epoch_start(epoch, run.epochs, batches.len());
        let (mut loss_sum, mut task_sum, mut sparse_sum, mut hits, mut seen) =
            (0f64, 0f64, 0f64, 0usize, 0usize);
        for idx in batches {
            let labels: Vec<u32> = idx.iter().map(|&i| data.targets[i]).collect();
            let x = images_tensor(data, idx, device);
            let z = masked.edge_forward(x.clone(), split);
            let (loss, task, logits) = {
                let ctx = StepContext {
                    log_var: None,
                    model: &masked.model,
                    images: &x,
                    labels: &labels,
                    hidden: &data.hidden,
                    batch: idx,
                    split,
                    features: &z,
                    step,
                    seed: run.seed,
                };
                let mut z_sent = z.clone();
                for d in others.iter_mut() {
                    z_sent = d.transform(z_sent, &ctx);
                }
                let logits = masked.model.server_forward(z_sent, split);
                let targets = others
                    .iter()
                    .find_map(|d| d.targets(&labels, classes, device))
                    .unwrap_or_else(|| one_hot(&labels, classes, device));
                let task = soft_cross_entropy(logits.clone(), targets);
                let mut loss = task.clone();
                for d in others.iter_mut() {
                    if let Some(t) = d.loss(&ctx) {
                        loss = loss + t;
                    }
                }
                if let Some(l) = lip.as_mut() {
                    let m = &masked;
                    if let Some(t) = l.loss_with(&m.model, &x, split, &|i, u| m.block_forward(i, u))
                    {
                        loss = loss + t;
                    }
                }
                if let Some(s) = masked.sparsity() {
                    sparse_sum += to_vec(s.clone().detach())[0] as f64 * labels.len() as f64;
                    if run.sparsity != 0.0 {
                        loss = loss + s.mul_scalar(run.sparsity);
                    }
                }
                (loss, task, logits)
            };
            let (loss_value, batch_hits) = step_outcome(&loss, logits, &labels, classes);
            if !loss_value.is_finite() {
                return Err(PruneError::NonFinite {
                    epoch,
                    step,
                    value: loss_value,
                });
            }
            let mut grads = loss.backward();
            let gw = GradientsParams::from_module(&mut grads, &masked.model);
            let gm = GradientsParams::from_module(&mut grads, &masked.masks);
            let MaskedModel {
                model,
                masks,
                blocks,
                costs,
            } = masked;
            masked = MaskedModel {
                model: opt_w.step(lr, model, gw),
                masks: opt_m.step(run.mask_lr, masks, gm),
                blocks,
                costs,
            };
            let ctx = StepContext {
                log_var: None,
                model: &masked.model,
                images: &x,
                labels: &labels,
                hidden: &data.hidden,
                batch: idx,
                split,
                features: &z,
                step,
                seed: run.seed,
            };
            for d in others.iter_mut() {
                d.after_step(&masked.model, &ctx);
            }
            loss_sum += loss_value * labels.len() as f64;
            task_sum += to_vec(task.detach())[0] as f64 * labels.len() as f64;
            hits += batch_hits;
            seen += labels.len();
            step += 1;
            observer.step(loss_value, batch_hits as f64 / labels.len() as f64);
        }
        let seen_f = seen.max(1) as f64;
        let mut defenses: BTreeMap<String, f64> =
            others.iter_mut().flat_map(|d| d.epoch_log()).collect();
        if let Some(l) = lip.as_mut() {
            defenses.extend(l.epoch_log());
        }
        defenses.insert("mask_sparsity".into(), sparse_sum / seen_f);
        defenses.insert("mask_mean".into(), masked.mean_mask());
        let metrics = EpochMetrics {
            epoch,
            lr,
            loss: loss_sum / seen_f,
            task_loss: task_sum / seen_f,
            train_accuracy: hits as f64 / seen_f,
            seconds: started.elapsed().as_secs_f64(),
            defenses,
        };
        observer.epoch_end(&metrics);
        history.push(metrics);
    }
    Ok((masked, history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivationKind, BlockSpec, ConvSpec, LinearSpec};

    #[test]
    fn masks_clamp_to_unit_interval_and_scale_channels() {
        let device = Device::flex();
        let blocks = [
            BlockSpec::Conv(ConvSpec {
                out_channels: 3,
                kernel: 1,
                stride: 1,
                padding: None,
                pool: 0,
                batch_norm: false,
                activation: ActivationKind::None,
                order: Default::default(),
                bias: true,
            }),
            BlockSpec::Linear(LinearSpec {
                out_features: 2,
                activation: ActivationKind::None,
                batch_norm: false,
            }),
        ];
        let model = SplitModel::from_blocks("t", &[1, 2, 2], &blocks, &device).unwrap();
        let mut masked = MaskedModel::new(model, &[0], 1, &device).unwrap();
        assert!(MaskedModel::new(masked.model.clone(), &[1], 1, &device).is_err());
        masked.masks.values[0] = Param::from_data([1.5f32, -0.2, 0.5], &device);
        assert_eq!(masked.values()[0].as_deref(), Some(&[1.0f32, 0.0, 0.5][..]));
        assert!(masked.values()[1].is_none());
        assert_eq!(
            masked.raw_values()[0].as_deref(),
            Some(&[1.5f32, -0.2, 0.5][..])
        );
        // One masked block: every channel costs 1/3 of the total.
        let s = to_vec(masked.sparsity().unwrap())[0];
        assert!((s - 0.5).abs() < 1e-6);
        assert!((masked.mean_mask() - 0.5).abs() < 1e-6);
        let x = Tensor::<4>::ones([1, 1, 2, 2], &device);
        let plain = to_vec(masked.model.edge_forward(x.clone(), 1).flatten());
        let out = to_vec(masked.edge_forward(x, 1).flatten());
        for (p, (o, m)) in plain.chunks(4).zip(out.chunks(4).zip([1.0f32, 0.0, 0.5])) {
            for (a, b) in p.iter().zip(o) {
                assert!((a * m - b).abs() < 1e-6);
            }
        }
    }
}
