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
//! [`crate::train::Defense`], because a defense only sees the split
//! features, while a mask must act inside the edge. The masked model is a
//! [`Trainee`] ([`MaskTrainee`]) that the one trainer drives: it runs each
//! edge block with its mask ([`Trainee::block`], which the layer hooks and
//! the Lipschitz term's perturbation estimate see), adds
//! the sparsity term to the defenses' terms, and steps the masks with their
//! own Adam at `prune.mask_lr` while the weights follow the recipe's
//! optimiser and learning-rate schedule (counted in mask epochs). So weight
//! decay, `lr_drops`, signal dropout's layer hooks, NaN checks, per-epoch
//! checkpoints (`masks.sgck`, the masks and their optimiser with the model)
//! and `--resume` all apply as in training. The masks are stored as raw
//! values `s` and used as `clamp(s, 0, 1) = relu(s) - relu(s - 1)`.

use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::{Bytes, Gradients};
use serde::{Deserialize, Serialize};

use super::PruneError;
use crate::data::Dataset;
use crate::model::{Features, SplitModel};
use crate::train::{
    DefenseState, EpochMetrics, TrainConfig, TrainObserver, TrainRun, Trainee, to_vec,
    train_trainee,
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

/// The version of the state a [`MaskTrainee`] saves in a checkpoint.
const MASK_STATE_VERSION: u32 = 1;

/// PATROL's masks as the trainer's [`Trainee`]: the masked model, the
/// masks' own Adam at `prune.mask_lr`, and the sparsity term
/// `lambda * sum_{i,c} w_ic m_ic` it adds to the defenses' terms.
pub struct MaskTrainee {
    /// The model and its masks.
    pub masked: MaskedModel,
    optim: ModuleOptimizer,
    mask_lr: f64,
    sparsity: f32,
    // The sparsity term's sum over the epoch's examples, and their count,
    // for the log (a mean over examples, as the trainer's losses).
    sparse_sum: f64,
    seen: usize,
}

impl MaskTrainee {
    /// Masks trained with Adam at `mask_lr`, the sparsity term weighted by
    /// `sparsity` (`lambda`).
    pub fn new(masked: MaskedModel, mask_lr: f64, sparsity: f32) -> Self {
        Self {
            masked,
            optim: AdamConfig::new().init(),
            mask_lr,
            sparsity,
            sparse_sum: 0.0,
            seen: 0,
        }
    }
}

impl Trainee for MaskTrainee {
    fn model(&self) -> &SplitModel {
        &self.masked.model
    }

    fn with_model(mut self, model: SplitModel) -> Self {
        self.masked.model = model;
        self
    }

    fn fork(mut self, device: &Device) -> Self {
        self.masked = self.masked.fork(device).train();
        self
    }

    fn block(&self, i: usize, u: Features) -> Features {
        self.masked.block_forward(i, u)
    }

    fn loss_terms(&mut self, examples: usize) -> Vec<Tensor<1>> {
        let Some(s) = self.masked.sparsity() else {
            return Vec::new();
        };
        self.sparse_sum += to_vec(s.clone().detach())[0] as f64 * examples as f64;
        self.seen += examples;
        match self.sparsity {
            0.0 => Vec::new(),
            lambda => vec![s.mul_scalar(lambda)],
        }
    }

    fn update(self, mut grads: Gradients, lr: f64, optim: &mut ModuleOptimizer) -> Self {
        let Self {
            masked,
            optim: mut optim_m,
            mask_lr,
            sparsity,
            sparse_sum,
            seen,
        } = self;
        let gw = GradientsParams::from_module(&mut grads, &masked.model);
        let gm = GradientsParams::from_module(&mut grads, &masked.masks);
        let MaskedModel {
            model,
            masks,
            blocks,
            costs,
        } = masked;
        Self {
            masked: MaskedModel {
                model: optim.step(lr, model, gw),
                masks: optim_m.step(mask_lr, masks, gm),
                blocks,
                costs,
            },
            optim: optim_m,
            mask_lr,
            sparsity,
            sparse_sum,
            seen,
        }
    }

    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        let mean = self.sparse_sum / self.seen.max(1) as f64;
        (self.sparse_sum, self.seen) = (0.0, 0);
        vec![
            ("mask_sparsity".into(), mean),
            ("mask_mean".into(), self.masked.mean_mask()),
            // The weights' rate is the epoch's `lr`; the masks' is their own
            // (it may change on --resume).
            ("mask_lr".into(), self.mask_lr),
        ]
    }

    fn state_version(&self) -> Option<(&'static str, u32)> {
        Some(("PATROL masks", MASK_STATE_VERSION))
    }

    /// The raw mask values (exact bits) and the masks' Adam state.
    fn state(&self) -> Result<Option<DefenseState>, String> {
        let mut blobs: Vec<(String, Vec<u8>)> = self
            .masked
            .masks
            .values
            .iter()
            .zip(&self.masked.blocks)
            .map(|(v, b)| {
                (
                    format!("mask_{b}"),
                    DefenseState::f32_blob(&to_vec(v.val())),
                )
            })
            .collect();
        blobs.push((
            "optimizer".into(),
            self.optim.into_bytes().map_err(|e| e.to_string())?.to_vec(),
        ));
        Ok(Some(DefenseState {
            version: MASK_STATE_VERSION,
            // The parameter ids key the masks' Adam state.
            values: serde_json::json!({
                "blocks": self.masked.blocks,
                "ids": self.masked.masks.values.iter().map(|v| v.id.val()).collect::<Vec<u64>>(),
            }),
            blobs,
        }))
    }

    fn restore(&mut self, state: DefenseState, device: &Device) -> Result<(), String> {
        let blocks: Vec<usize> = state
            .values
            .get("blocks")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or("no list of masked blocks")?;
        if blocks != self.masked.blocks {
            return Err(format!(
                "masks of blocks {blocks:?}, this run masks {:?}",
                self.masked.blocks
            ));
        }
        let ids: Vec<u64> = state
            .values
            .get("ids")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .filter(|ids: &Vec<u64>| ids.len() == blocks.len())
            .ok_or("no parameter id for every mask")?;
        for ((value, b), id) in self.masked.masks.values.iter_mut().zip(&blocks).zip(ids) {
            let n = value.val().dims()[0];
            let v = state.f32s(
                &format!("mask_{b}"),
                n,
                &format!("the mask of block {}", b + 1),
            )?;
            let mut param = Param::from_tensor(Tensor::from_data(TensorData::new(v, [n]), device));
            param.id = id.into();
            *value = param;
        }
        let optimizer = state
            .blobs
            .iter()
            .find(|(n, _)| n == "optimizer")
            .map(|(_, b)| b.clone())
            .ok_or("the masks' optimiser state is missing")?;
        self.optim = AdamConfig::new()
            .init()
            .from_bytes(Bytes::from_bytes_vec(optimizer))
            .map_err(|e| format!("the masks' optimiser: {e}"))?;
        Ok(())
    }
}

/// Settings of one mask-training phase.
pub struct MaskRun<'a> {
    /// The recipe's training settings (batch, optimiser and schedule of the
    /// weights, defenses); its `epochs` are replaced by [`epochs`](Self::epochs).
    pub training: &'a TrainConfig<crate::defense::DefensesConfig>,
    /// Passes over the data.
    pub epochs: usize,
    /// Adam learning rate of the masks.
    pub mask_lr: f64,
    /// `lambda`, the weight of the sparsity term.
    pub sparsity: f32,
    /// Seed of the batch order, the random draws and the defenses.
    pub seed: u64,
    /// The split whose features the defenses protect.
    pub split: usize,
    /// Checkpoint written after every epoch (and read on resume).
    pub checkpoint: Option<PathBuf>,
    /// Per-epoch metrics, one JSON object a line.
    pub metrics_log: Option<PathBuf>,
    /// Continue from `checkpoint` if it exists.
    pub resume: bool,
}

/// Trains weights and masks together through the trainer (see the module
/// docs). `device` must support autodiff.
pub fn train_masks(
    masked: MaskedModel,
    data: &Dataset,
    run: &MaskRun,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<(MaskedModel, Vec<EpochMetrics>), PruneError> {
    let config = TrainConfig {
        epochs: run.epochs,
        ..run.training.clone()
    };
    let mut defenses = run.training.defenses.build(run.seed);
    let trained = train_trainee(
        MaskTrainee::new(masked, run.mask_lr, run.sparsity),
        data,
        &mut defenses,
        &TrainRun {
            config: &config,
            seed: run.seed,
            split: run.split,
            checkpoint: run.checkpoint.clone(),
            metrics_log: run.metrics_log.clone(),
            resume: run.resume,
        },
        device,
        observer,
    )
    .map_err(|e| {
        PruneError::from_phase(
            e,
            "mask training",
            "prune.mask_lr",
            run.checkpoint.as_deref(),
        )
    })?;
    Ok((trained.model.masked, trained.history))
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
