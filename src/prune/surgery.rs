//! Structured pruning surgery: a genuinely smaller [`SplitModel`].
//!
//! Removing output channel `c` of block `i` removes filter `c` (weights,
//! bias, batch-norm scale, shift and running statistics) from block `i` and
//! input channel `c` from block `i + 1`: the slice `[:, c, :, :]` of a
//! convolution's weight, or the rows `c*H*W .. (c+1)*H*W` of a linear
//! block's weight when it flattens a map (one row per unit after a linear
//! block). So the new model has fewer channels and FLOPs, and its spec (saved
//! in every checkpoint) reloads it at the smaller size.
//!
//! A block's output can be scaled per channel before it is cut (the soft
//! masks of [`super::masks`]): the scale is folded into the next block's input
//! weights, which is exact because the next block is linear in its input
//! before its activation. Hence a model whose removed channels were already
//! masked to zero gives the same outputs after surgery.
//!
//! Only conv and linear blocks followed by a conv or linear block are
//! prunable: residual blocks keep their width (the shortcut ties the
//! channels of the input and of the output: cutting one would need the
//! input, both convolutions and the projection cut together), pooling
//! blocks pass their input's channels on, and the last block is the
//! classifier head. A model with no prunable block is refused by
//! [`unprunable_reason`] before anything trains.

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::prelude::*;

use super::PruneError;
use crate::model::{Block, BlockSpec, ConvBlock, FeatureShape, LinearBlock, ModelSpec, SplitModel};
use crate::train::to_vec;

/// Output channels (conv) or units (linear) of a block; `None` for residual
/// and pooling blocks, whose width pruning never changes.
pub fn output_width(spec: &BlockSpec) -> Option<usize> {
    match spec {
        BlockSpec::Conv(c) => Some(c.out_channels),
        BlockSpec::Linear(l) => Some(l.out_features),
        BlockSpec::Residual(_) | BlockSpec::MaxPool(_) | BlockSpec::GlobalAvgPool(_) => None,
    }
}

/// Why structured pruning cannot apply to `blocks` (no block is
/// [`prunable`]), naming the blocks in the way; `None` when it can.
pub fn unprunable_reason(blocks: &[BlockSpec]) -> Option<String> {
    if prunable(blocks).contains(&true) {
        return None;
    }
    let residual: Vec<String> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| matches!(b, BlockSpec::Residual(_)))
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    let why = if residual.is_empty() {
        String::new()
    } else {
        format!(
            " (residual blocks {} keep their width: their shortcut ties input and output channels, which would have to be cut together)",
            residual.join(", ")
        )
    };
    Some(format!(
        "this model has no prunable block: pruning cuts a conv or linear block that feeds a conv or linear block{why}; use method: none to let the edge budget choose the split without pruning"
    ))
}

/// For each block: can its outputs be removed (a conv or linear block
/// followed by a conv or linear block)?
pub fn prunable(blocks: &[BlockSpec]) -> Vec<bool> {
    (0..blocks.len())
        .map(|i| {
            output_width(&blocks[i]).is_some() && blocks.get(i + 1).and_then(output_width).is_some()
        })
        .collect()
}

/// `spec` with block `i` producing `counts[i]` outputs (residual blocks keep
/// their width); checked with [`ModelSpec::infos`].
pub fn resized_spec(spec: &ModelSpec, counts: &[usize]) -> Result<ModelSpec, PruneError> {
    if counts.len() != spec.blocks.len() {
        return Err(PruneError::Plan(format!(
            "expected {} channel counts, got {}",
            spec.blocks.len(),
            counts.len()
        )));
    }
    let mut out = spec.clone();
    for (b, &n) in out.blocks.iter_mut().zip(counts) {
        match b {
            BlockSpec::Conv(c) => c.out_channels = n,
            BlockSpec::Linear(l) => l.out_features = n,
            BlockSpec::Residual(_) | BlockSpec::MaxPool(_) | BlockSpec::GlobalAvgPool(_) => {}
        }
    }
    out.infos()?;
    Ok(out)
}

fn param<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_data(TensorData::new(values, shape), device)
}

fn pick(values: &[f32], keep: &[usize]) -> Vec<f32> {
    keep.iter().map(|&i| values[i]).collect()
}

/// A batch-norm restricted to the kept channels (scale, shift, running
/// statistics; same momentum and epsilon).
fn pruned_bn(bn: &BatchNorm, keep: &[usize], device: &Device) -> BatchNorm {
    let n = keep.len();
    let state = |t: Tensor<1>| {
        RunningState::new(Tensor::from_data(
            TensorData::new(pick(&to_vec(t), keep), [n]),
            device,
        ))
    };
    BatchNorm {
        gamma: param(pick(&to_vec(bn.gamma.val()), keep), [n], device),
        beta: param(pick(&to_vec(bn.beta.val()), keep), [n], device),
        training: bn.training.clone(),
        running_mean: state(bn.running_mean.value_sync()),
        running_var: state(bn.running_var.value_sync()),
        momentum: bn.momentum,
        epsilon: bn.epsilon,
    }
}

/// How the input of one block changes: kept input channels, their scales,
/// and the spatial size per channel (1 for vector inputs).
struct InputCut<'a> {
    keep: &'a [usize],
    scale: Option<&'a [f32]>,
    per_channel: usize,
}

impl InputCut<'_> {
    fn factor(&self, channel: usize) -> f32 {
        self.scale.map_or(1.0, |s| s[channel])
    }
}

fn cut_conv(
    b: &ConvBlock,
    spec: &BlockSpec,
    cut: &InputCut,
    out: &[usize],
    device: &Device,
) -> Block {
    let BlockSpec::Conv(cs) = spec else {
        panic!("expected a conv spec for a conv block")
    };
    let mut nb = ConvBlock::new(cs, cut.keep.len(), device);
    let [_, cin, kh, kw] = b.conv.weight.val().dims();
    let w = to_vec(b.conv.weight.val());
    let kk = kh * kw;
    let mut nw = Vec::with_capacity(out.len() * cut.keep.len() * kk);
    for &o in out {
        for &i in cut.keep {
            let f = cut.factor(i);
            let start = (o * cin + i) * kk;
            nw.extend(w[start..start + kk].iter().map(|v| v * f));
        }
    }
    nb.conv.weight = param(nw, [out.len(), cut.keep.len(), kh, kw], device);
    nb.conv.bias = b
        .conv
        .bias
        .as_ref()
        .map(|bias| param(pick(&to_vec(bias.val()), out), [out.len()], device));
    nb.bn = b.bn.as_ref().map(|bn| pruned_bn(bn, out, device));
    Block::Conv(nb)
}

fn cut_linear(
    b: &LinearBlock,
    spec: &BlockSpec,
    cut: &InputCut,
    out: &[usize],
    device: &Device,
) -> Block {
    let BlockSpec::Linear(ls) = spec else {
        panic!("expected a linear spec for a linear block")
    };
    let rows: Vec<(usize, f32)> = cut
        .keep
        .iter()
        .flat_map(|&c| (0..cut.per_channel).map(move |p| (c * cut.per_channel + p, c)))
        .map(|(r, c)| (r, cut.factor(c)))
        .collect();
    let mut nb = LinearBlock::new(ls, rows.len(), device);
    // burn stores the weight as [in, out].
    let [_, dout] = b.linear.weight.val().dims();
    let w = to_vec(b.linear.weight.val());
    let mut nw = Vec::with_capacity(rows.len() * out.len());
    for &(r, f) in &rows {
        nw.extend(out.iter().map(|&o| w[r * dout + o] * f));
    }
    nb.linear.weight = param(nw, [rows.len(), out.len()], device);
    nb.linear.bias = b
        .linear
        .bias
        .as_ref()
        .map(|bias| param(pick(&to_vec(bias.val()), out), [out.len()], device));
    nb.bn = b.bn.as_ref().map(|bn| pruned_bn(bn, out, device));
    Block::Linear(nb)
}

/// The model keeping outputs `keep[i]` (increasing indices) of each block,
/// with block `i`'s kept outputs first multiplied by `scales[i]` (indexed
/// by the original channel; folded into block `i + 1`). Non-prunable blocks
/// must keep every output and carry no scale. The new model lives on the
/// same device, with fresh parameter ids and its own copies of every conv
/// and linear block's tensors (batch-norm running statistics included).
pub fn prune_model(
    model: &SplitModel,
    keep: &[Vec<usize>],
    scales: &[Option<Vec<f32>>],
) -> Result<SplitModel, PruneError> {
    let specs = model.block_specs();
    let n = specs.len();
    if keep.len() != n || scales.len() != n {
        return Err(PruneError::Plan(format!(
            "expected a keep list and a scale entry for each of the {n} blocks, got {} and {}",
            keep.len(),
            scales.len()
        )));
    }
    let infos = model.infos()?;
    let can = prunable(&specs);
    let mut counts = Vec::with_capacity(n);
    for i in 0..n {
        let width = output_width(&specs[i]).unwrap_or(infos[i].output[0]);
        let k = &keep[i];
        if k.is_empty() || k.windows(2).any(|w| w[0] >= w[1]) || k[k.len() - 1] >= width {
            return Err(PruneError::Plan(format!(
                "block {}: kept outputs must be non-empty, increasing and below {width}",
                i + 1
            )));
        }
        if !can[i] && (k.len() != width || scales[i].is_some()) {
            return Err(PruneError::Plan(format!(
                "block {} ({}) cannot be pruned or scaled",
                i + 1,
                infos[i].description
            )));
        }
        if scales[i].as_ref().is_some_and(|s| s.len() != width) {
            return Err(PruneError::Plan(format!(
                "block {}: expected {width} scales",
                i + 1
            )));
        }
        counts.push(k.len());
    }
    let new_spec = resized_spec(&model.spec()?, &counts)?;
    let device = burn::module::Module::devices(model)
        .into_iter()
        .next()
        .unwrap_or_default();
    let all_inputs: Vec<usize> = (0..model.input[0]).collect();
    let mut blocks = Vec::with_capacity(n);
    for i in 0..n {
        let (in_keep, in_scale) = match i {
            0 => (&all_inputs[..], None),
            _ => (&keep[i - 1][..], scales[i - 1].as_deref()),
        };
        let input: &FeatureShape = &infos[i].input;
        if !matches!(&model.blocks[i], Block::Conv(_) | Block::Linear(_)) {
            if in_keep.len() != input[0] || in_scale.is_some() {
                return Err(PruneError::Plan(format!(
                    "block {} ({}): a residual or pooling block's input cannot change",
                    i + 1,
                    infos[i].description
                )));
            }
            // Shares batch-norm running statistics with `model` (burn clones
            // share them); residual and pooling blocks are never cut.
            blocks.push(model.blocks[i].clone());
            continue;
        }
        let cut = InputCut {
            keep: in_keep,
            scale: in_scale,
            per_channel: input[1..].iter().product(),
        };
        blocks.push(match &model.blocks[i] {
            Block::Conv(b) => cut_conv(b, &new_spec.blocks[i], &cut, &keep[i], &device),
            Block::Linear(b) => cut_linear(b, &new_spec.blocks[i], &cut, &keep[i], &device),
            _ => unreachable!("residual and pooling blocks are copied above"),
        });
    }
    Ok(SplitModel {
        blocks,
        input: model.input.clone(),
        arch: model.arch.clone(),
        vae: None, // pruning a model with a VAE head is refused by validation
        vae_at: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;

    #[test]
    fn only_blocks_feeding_conv_or_linear_blocks_are_prunable() {
        let spec = zoo::spec("cnn6").unwrap();
        assert_eq!(
            prunable(&spec.blocks),
            vec![true, true, true, true, true, false]
        );
    }

    #[test]
    fn resized_spec_changes_widths_and_rejects_a_wrong_count() {
        let spec = zoo::spec("cnn6").unwrap();
        let small = resized_spec(&spec, &[4, 8, 16, 32, 16, 10]).unwrap();
        let widths: Vec<_> = small.blocks.iter().filter_map(output_width).collect();
        assert_eq!(widths, vec![4, 8, 16, 32, 16, 10]);
        assert!(resized_spec(&spec, &[4]).is_err());
    }

    #[test]
    fn a_plan_that_cuts_the_head_is_refused() {
        let device = Device::flex();
        let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
        let mut keep: Vec<Vec<usize>> = model
            .infos()
            .unwrap()
            .iter()
            .map(|b| (0..b.output[0]).collect())
            .collect();
        keep[5] = vec![0, 1];
        let err = prune_model(&model, &keep, &vec![None; 6])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("block 6") && err.contains("cannot be pruned"),
            "{err}"
        );
        keep[5] = (0..10).collect();
        keep[0] = vec![3, 1];
        assert!(
            prune_model(&model, &keep, &vec![None; 6]).is_err(),
            "unsorted keep list"
        );
    }
}
