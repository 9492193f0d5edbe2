//! Feature pruning at the split with server fine-tuning: the unsupervised
//! baseline seed 004 compares its obfuscation with (section 5.2,
//! "Comparison to pruning", Figure 5).
//!
//! What the paper does, and what this file does:
//! - "we keep m' elements in z and set the rest to zero", choosing them with
//!   the filter-pruning criterion of Li et al. 2016: the L1 norm of the
//!   following layer's weights that read each element ([`element_scores`]:
//!   for a linear next layer the column of its weight matrix that
//!   multiplies the element; for a convolution the whole input-channel
//!   slice `W[:, c, :, :]`, shared by every element of channel `c`, which
//!   is Li et al.'s pruning of a feature map, so whole channels are kept
//!   or zeroed). Here the kept units (values before a linear layer,
//!   channels before a convolution) are `ceil(keep * U)` of the `U` units
//!   of one example, at least 1; ties go to the lower index;
//! - "after pruning, we fine-tune M_s to improve its accuracy": the server
//!   blocks (everything after the split) train on the owner's `train`
//!   features with the mask applied, with Adam, for `epochs` passes; the
//!   edge is untouched (its features are computed once, so no gradient can
//!   reach it). Batch-norm statistics of the server adapt as in any
//!   fine-tuning.
//!
//! Like Shredder's noise this is learned on the trained model when the
//! deployment is built (`run`, `attack`, `export-features`), from the
//! recipe's seed, so the model's own training is untouched and every
//! command rebuilds the same mask and the same fine-tuned server. The mask
//! is fixed: every query has the same elements zeroed, which is what the
//! attacker sees and what the fine-tuned server computes on (the other
//! split defenses, which would act on the pruned values after it, cannot be
//! combined with it: `recipe check` refuses them).

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Defense;
use super::at_split::{OwnerFeatures, Perturbation, SplitPerturbation, mix, tag};
use crate::model::{Block, Features, SplitModel};
use crate::train::{gather_rows, one_hot, soft_cross_entropy, to_vec};

fn d_epochs() -> usize {
    3
}
fn d_lr() -> f64 {
    1e-3
}
fn d_batch() -> usize {
    64
}

/// Feature-pruning settings (`training.defenses.feature_pruning`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeaturePruningConfig {
    /// Fraction of each example's split units kept, in (0, 1] (1: no
    /// effect): the `ceil(keep * U)` units the next layer weighs most, a
    /// unit being a value when a linear block follows the split and a
    /// channel when a convolution does.
    pub keep: f32,
    /// Passes of the server's fine-tuning over the owner's training data,
    /// >= 0 (default 3; 0: prune without fine-tuning).
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Adam learning rate of the fine-tuning, finite and > 0 (default 1e-3).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Batch size of the fine-tuning, >= 2 (default 64).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
}

impl FeaturePruningConfig {
    /// Validation problems as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Some(why) = super::at_split::fraction_problem(self.keep) {
            p.push(("keep".into(), why));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            p.push(("lr".into(), format!("must be > 0, got {}", self.lr)));
        }
        if self.batch_size < 2 {
            p.push((
                "batch_size".into(),
                format!("must be >= 2, got {}", self.batch_size),
            ));
        }
        p
    }

    /// False when everything is kept (the defense then does nothing).
    pub fn active(&self) -> bool {
        self.keep < 1.0
    }

    /// How many of `units` units are kept.
    pub fn kept(&self, units: usize) -> usize {
        super::at_split::fraction_count(self.keep, units)
    }

    /// The default fine-tuning schedule (3 epochs of Adam at 1e-3, batch
    /// 64), keeping `keep`.
    pub fn with_default_schedule(keep: f32) -> Self {
        Self {
            keep,
            epochs: d_epochs(),
            lr: d_lr(),
            batch_size: d_batch(),
        }
    }
}

/// Marks the defense in the training list (it acts after training; see the
/// module docs).
pub struct FeaturePruningMarker;

impl Defense for FeaturePruningMarker {
    fn name(&self) -> &'static str {
        "feature_pruning"
    }
}

/// Li et al.'s scores of the units of one example's split features: the
/// L1 norm of the next block's weights that read each unit.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitScores {
    /// One score per unit (per value before a linear block, per channel
    /// before a convolution).
    pub scores: Vec<f32>,
    /// Values per unit (1, or a channel's `H * W`).
    pub unit_len: usize,
}

/// The scores of the units of the features at `split` (shape `shape`); an
/// error when the next block is not a convolution or a linear block.
pub fn unit_scores(
    model: &SplitModel,
    split: usize,
    shape: &[usize],
) -> Result<UnitScores, String> {
    let dim: usize = shape.iter().product();
    match model.blocks.get(split) {
        Some(Block::Linear(l)) => {
            // burn stores the weight as [in, out]: row i reads input i.
            let w = l.linear.weight.val();
            let [d_in, d_out] = w.dims();
            if d_in != dim {
                return Err(format!(
                    "the block after split {split} reads {d_in} values, the split sends {dim}"
                ));
            }
            let w = to_vec(w);
            Ok(UnitScores {
                scores: w
                    .chunks(d_out)
                    .map(|row| row.iter().map(|v| v.abs()).sum())
                    .collect(),
                unit_len: 1,
            })
        }
        Some(Block::Conv(c)) => {
            let w = c.conv.weight.val();
            let [d_out, d_in, kh, kw] = w.dims();
            let [channels, h, wd] = match shape {
                [c, h, w] => [*c, *h, *w],
                _ => {
                    return Err(format!(
                        "a convolution after split {split} needs map features, got shape {shape:?}"
                    ));
                }
            };
            if d_in != channels {
                return Err(format!(
                    "the convolution after split {split} reads {d_in} channels, the split sends {channels}"
                ));
            }
            let w = to_vec(w);
            let per_kernel = kh * kw;
            let mut scores = vec![0f32; d_in];
            for o in 0..d_out {
                for (c, s) in scores.iter_mut().enumerate() {
                    let at = (o * d_in + c) * per_kernel;
                    *s += w[at..at + per_kernel].iter().map(|v| v.abs()).sum::<f32>();
                }
            }
            Ok(UnitScores {
                scores,
                unit_len: h * wd,
            })
        }
        Some(_) => Err(format!(
            "feature pruning needs a convolution or linear block after split {split}"
        )),
        None => Err(format!("split {split} has no block after it")),
    }
}

/// The 0/1 mask of one example's values keeping the `k` units with the
/// highest scores (ties: the lower index).
pub fn keep_mask(units: &UnitScores, k: usize) -> Vec<f32> {
    let scores = &units.scores;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    let mut keep = vec![0f32; scores.len()];
    for &i in order.iter().take(k) {
        keep[i] = 1.0;
    }
    keep.iter()
        .flat_map(|&m| std::iter::repeat_n(m, units.unit_len))
        .collect()
}

/// The pruning as the edge applies it: the same mask on every query.
#[derive(Clone, Debug)]
pub struct PrunedFeatures {
    /// One example's mask (1 kept, 0 zeroed).
    pub mask: Vec<f32>,
}

impl PrunedFeatures {
    /// Values kept per example.
    pub fn kept(&self) -> usize {
        self.mask.iter().filter(|&&m| m != 0.0).count()
    }

    /// Zeroes the pruned values of flat features `z` (rows of the mask's length).
    pub fn apply(&self, z: &mut [f32]) {
        for row in z.chunks_mut(self.mask.len().max(1)) {
            row.iter_mut().zip(&self.mask).for_each(|(v, m)| *v *= m);
        }
    }
}

impl SplitPerturbation for PrunedFeatures {
    fn name(&self) -> &'static str {
        "feature_pruning"
    }

    fn active(&self) -> bool {
        true
    }

    fn draw(&self, z: &[f32], dim: usize, _std: f32, _rng: &mut ChaCha8Rng) -> Perturbation {
        let rows = z.len() / dim.max(1);
        Perturbation::Mask(self.mask.repeat(rows))
    }
}

/// A pruned deployment: the mask, the fine-tuned model (the edge unchanged)
/// and the fine-tuning's mean task loss per epoch.
pub struct Pruned {
    /// The mask the edge applies.
    pub features: PrunedFeatures,
    /// The model with its server part fine-tuned (inference mode).
    pub model: SplitModel,
    /// Mean cross-entropy of each fine-tuning epoch.
    pub history: Vec<f64>,
}

/// How many units to keep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kept {
    /// `ceil(fraction * units)`, at least 1 (the recipe's `keep`).
    Fraction(f32),
    /// Exactly this many (at most all).
    Units(usize),
}

/// Prunes the split features of `model` at `split` to the `kept` units the
/// next layer weighs most and fine-tunes its server part on the owner's
/// features `data` with `fine_tune`'s schedule (see the module docs).
/// `device` is an inference device (the fine-tuning runs on its autodiff
/// twin).
#[allow(clippy::too_many_arguments)]
pub fn prune_and_fine_tune(
    model: &SplitModel,
    split: usize,
    kept: Kept,
    fine_tune: &FeaturePruningConfig,
    data: &OwnerFeatures,
    seed: u64,
    device: &Device,
) -> Result<Pruned, crate::Error> {
    let units = unit_scores(model, split, data.shape)
        .map_err(|e| crate::Error::setting("training.defenses.feature_pruning", e))?;
    let n = units.scores.len();
    let k = match kept {
        Kept::Fraction(f) => FeaturePruningConfig {
            keep: f,
            ..fine_tune.clone()
        }
        .kept(n),
        Kept::Units(k) => k.min(n),
    };
    let features = PrunedFeatures {
        mask: keep_mask(&units, k),
    };
    let dim = features.mask.len();
    let mut z = data.features.to_vec();
    features.apply(&mut z);
    let ad = device.clone().autodiff();
    let mut tuned = model.valid().fork(&ad).train();
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ tag("feature_pruning")));
    let rows = z.len() / dim.max(1);
    let mut order: Vec<usize> = (0..rows).collect();
    let mut history = Vec::new();
    for epoch in 0..fine_tune.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut seen) = (0f64, 0usize);
        for idx in order
            .chunks(fine_tune.batch_size.max(2))
            .filter(|b| b.len() > 1)
        {
            let zb = gather_rows(&z, dim, idx);
            let zt = Tensor::<2>::from_data(TensorData::new(zb, [idx.len(), dim]), &ad);
            let logits = tuned.server_forward(Features::from_flat(zt, data.shape), split);
            let labels: Vec<u32> = idx.iter().map(|&i| data.targets[i]).collect();
            let loss = soft_cross_entropy(logits, one_hot(&labels, data.classes, &ad));
            let value = f64::from(to_vec(loss.clone().detach())[0]);
            if !value.is_finite() {
                return Err(crate::Error::Diverged {
                    stage: "training.defenses.feature_pruning".into(),
                    message: format!(
                        "the server's task loss became {value} in epoch {} of its fine-tuning; lower lr",
                        epoch + 1
                    ),
                });
            }
            sum += value * idx.len() as f64;
            seen += idx.len();
            let grads = GradientsParams::from_grads(loss.backward(), &tuned);
            tuned = optim.step(fine_tune.lr, tuned, grads);
        }
        history.push(sum / seen.max(1) as f64);
    }
    Ok(Pruned {
        features,
        model: tuned.valid(),
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::at_split::std_of;
    use crate::defense::decov::tests::synthetic;
    use crate::model::zoo;
    use crate::obfuscate::stage::server_accuracy;
    use crate::train::Evaluator;

    #[test]
    fn scores_are_the_l1_norms_of_what_the_next_layer_reads() {
        let dev = Device::flex();
        dev.seed(3);
        let spec = zoo::spec_for("cnn6", [1, 8, 8], 2).unwrap();
        let model = SplitModel::new(&spec, &dev).unwrap();
        // Split 1: a convolution follows; every element of channel c gets
        // sum_{o,i,j} |W[o, c, i, j]|.
        let (_, shape) = Evaluator::new(&model, &dev, 8).features(&synthetic(), 1);
        let u = unit_scores(&model, 1, &shape).unwrap();
        let Block::Conv(c) = &model.blocks[1] else {
            panic!("cnn6's block 2 is a convolution")
        };
        let w = c.conv.weight.val();
        let [d_out, d_in, kh, kw] = w.dims();
        let w = to_vec(w);
        assert_eq!((u.scores.len(), u.unit_len), (d_in, shape[1] * shape[2]));
        for ch in 0..d_in {
            let mut want = 0f32;
            for o in 0..d_out {
                for t in 0..kh * kw {
                    want += w[(o * d_in + ch) * kh * kw + t].abs();
                }
            }
            assert!((u.scores[ch] - want).abs() <= 1e-4 * want, "{ch}");
        }
        // Whole channels are kept: the two best of them.
        let mask = keep_mask(&u, 2);
        let plane = u.unit_len;
        assert_eq!(mask.len(), d_in * plane);
        let kept: Vec<usize> = (0..d_in).filter(|c| mask[c * plane] == 1.0).collect();
        assert_eq!(kept.len(), 2);
        for c in 0..d_in {
            assert!(
                mask[c * plane..(c + 1) * plane]
                    .iter()
                    .all(|m| *m == mask[c * plane])
            );
            if !kept.contains(&c) {
                assert!(kept.iter().all(|&k| u.scores[k] >= u.scores[c]));
            }
        }
        // Split 3: a linear layer follows; element i gets the L1 norm of
        // the weights multiplying it.
        let (_, shape) = Evaluator::new(&model, &dev, 8).features(&synthetic(), 3);
        let u = unit_scores(&model, 3, &shape).unwrap();
        assert_eq!(u.unit_len, 1);
        let s = u.scores;
        let Block::Linear(l) = &model.blocks[3] else {
            panic!("cnn6's block 4 is linear")
        };
        let w = l.linear.weight.val();
        let [d_in, d_out] = w.dims();
        assert_eq!(s.len(), d_in);
        let w = to_vec(w);
        for (i, si) in s.iter().enumerate() {
            let want: f32 = (0..d_out).map(|o| w[i * d_out + o].abs()).sum();
            assert!((si - want).abs() <= 1e-4 * want, "{i}");
        }
    }

    #[test]
    fn the_mask_keeps_exactly_the_top_scores_with_ties_to_the_lower_index() {
        let units = |scores: &[f32], unit_len| UnitScores {
            scores: scores.to_vec(),
            unit_len,
        };
        let m = keep_mask(&units(&[0.5, 2.0, 1.0, 2.0, 0.1], 1), 2);
        assert_eq!(m, [0.0, 1.0, 0.0, 1.0, 0.0]);
        let m = keep_mask(&units(&[1.0, 1.0, 1.0], 1), 2);
        assert_eq!(m, [1.0, 1.0, 0.0]);
        let m = keep_mask(&units(&[1.0, 3.0], 2), 1);
        assert_eq!(m, [0.0, 0.0, 1.0, 1.0]);
        let cfg = FeaturePruningConfig {
            keep: 0.1,
            epochs: 0,
            lr: 1e-3,
            batch_size: 8,
        };
        assert_eq!((cfg.kept(576), cfg.kept(3), cfg.kept(10)), (58, 1, 1));
        let cfg = FeaturePruningConfig::with_default_schedule(0.3);
        assert_eq!((cfg.kept(10), cfg.kept(11), cfg.epochs), (3, 4, 3));
        let p = PrunedFeatures {
            mask: vec![1.0, 0.0, 1.0],
        };
        let mut z = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        p.apply(&mut z);
        assert_eq!(z, [1.0, 0.0, 3.0, 4.0, 0.0, 6.0]);
        assert_eq!(p.kept(), 2);
    }

    #[test]
    fn fine_tuning_moves_only_the_server_and_recovers_accuracy() {
        let dev = Device::flex();
        let ds = synthetic();
        let spec = zoo::spec_for("cnn6", [1, 8, 8], ds.num_classes).unwrap();
        dev.seed(5);
        let model = crate::defense::decov::tests::one_epoch(
            SplitModel::new(&spec, &dev.clone().autodiff()).unwrap(),
            &crate::defense::DefensesConfig::default(),
            &dev.clone().autodiff(),
        )
        .model
        .valid();
        let (z, shape) = Evaluator::new(&model, &dev, 64).features(&ds, 3);
        let data = OwnerFeatures {
            features: &z,
            shape: &shape,
            targets: &ds.targets,
            classes: ds.num_classes,
            std: std_of(&z),
        };
        let cfg = FeaturePruningConfig {
            keep: 0.25,
            epochs: 6,
            lr: 1e-2,
            batch_size: 16,
        };
        let dim: usize = shape.iter().product();
        let kept = cfg.kept(dim);
        let pruned =
            prune_and_fine_tune(&model, 3, Kept::Fraction(0.25), &cfg, &data, 1, &dev).unwrap();
        assert_eq!(pruned.features.kept(), kept);
        let blocks = |m: &SplitModel| -> Vec<Vec<f32>> {
            m.blocks
                .iter()
                .map(|b| match b {
                    Block::Conv(c) => to_vec(c.conv.weight.val()),
                    Block::Linear(l) => to_vec(l.linear.weight.val()),
                    _ => Vec::new(),
                })
                .collect()
        };
        let (before, after) = (blocks(&model), blocks(&pruned.model));
        assert_eq!(before[..3], after[..3], "the edge is untouched");
        assert_ne!(before[3..], after[3..], "the server moved");
        // Fine-tuning lowers the task loss on the pruned features, and the
        // tuned server is at least as accurate on them as the original.
        assert!(
            pruned.history.last().unwrap() < pruned.history.first().unwrap(),
            "{:?}",
            pruned.history
        );
        let mut zp = z.clone();
        pruned.features.apply(&mut zp);
        let acc =
            |m: &SplitModel| server_accuracy(m, &zp, &shape, 3, &ds.targets, ds.num_classes, &dev);
        assert!(
            acc(&pruned.model) >= acc(&model),
            "{} < {}",
            acc(&pruned.model),
            acc(&model)
        );
        // The same seed gives the same mask and the same server.
        let again =
            prune_and_fine_tune(&model, 3, Kept::Units(kept), &cfg, &data, 1, &dev).unwrap();
        assert_eq!(again.features.mask, pruned.features.mask);
        assert_eq!(blocks(&again.model), after);
    }
}
