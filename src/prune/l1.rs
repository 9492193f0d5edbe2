//! Filter L1 norms (Li, Kadav, Durdanovic, Samet, Graf: "Pruning Filters
//! for Efficient ConvNets", ICLR 2017, arXiv 1608.08710, section 3.1): the
//! importance of output channel `j` is `s_j = sum |F_j|`, the sum of the
//! absolute kernel weights of its filter; the smallest are pruned. Linear
//! units are scored the same way, over their input weights.

use super::surgery::prunable;
use crate::model::{Block, SplitModel};
use crate::train::to_vec;

/// `s_j = sum_{i,h,w} |W[j, i, h, w]|` of a conv block, or
/// `sum_i |W[i, j]|` of a linear block (burn's `[in, out]` layout); `None`
/// for residual and pooling blocks.
pub fn filter_l1_norms(block: &Block) -> Option<Vec<f32>> {
    match block {
        Block::Conv(b) => {
            let [out, cin, kh, kw] = b.conv.weight.val().dims();
            let w = to_vec(b.conv.weight.val());
            let per = cin * kh * kw;
            Some(
                (0..out)
                    .map(|j| w[j * per..(j + 1) * per].iter().map(|v| v.abs()).sum())
                    .collect(),
            )
        }
        Block::Linear(b) => {
            let [din, dout] = b.linear.weight.val().dims();
            let w = to_vec(b.linear.weight.val());
            let mut s = vec![0f32; dout];
            for i in 0..din {
                for (j, acc) in s.iter_mut().enumerate() {
                    *acc += w[i * dout + j].abs();
                }
            }
            Some(s)
        }
        Block::Residual(_) | Block::MaxPool(_) | Block::GlobalAvgPool(_) => None,
    }
}

/// Filter L1 norms of the prunable blocks before `split` (`None` elsewhere).
pub fn l1_scores(model: &SplitModel, split: usize) -> Vec<Option<Vec<f32>>> {
    let can = prunable(&model.block_specs());
    model
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if i < split && can[i] {
                filter_l1_norms(b)
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivationKind, BlockSpec, ConvSpec, LinearSpec};
    use burn::module::Param;
    use burn::prelude::*;

    #[test]
    fn norms_sum_absolute_filter_weights() {
        let device = Device::flex();
        let blocks = [
            BlockSpec::Conv(ConvSpec {
                out_channels: 2,
                kernel: 1,
                stride: 1,
                padding: None,
                pool: 0,
                batch_norm: false,
                activation: ActivationKind::Relu,
                order: Default::default(),
                bias: true,
            }),
            BlockSpec::Linear(LinearSpec {
                out_features: 3,
                activation: ActivationKind::None,
                batch_norm: false,
            }),
        ];
        let mut model = SplitModel::from_blocks("t", &[2, 1, 1], &blocks, &device).unwrap();
        if let Block::Conv(b) = &mut model.blocks[0] {
            // filter 0: [1, -2], filter 1: [0.5, 0.25]
            b.conv.weight = Param::from_data(
                TensorData::new(vec![1.0f32, -2.0, 0.5, 0.25], [2, 2, 1, 1]),
                &device,
            );
        }
        if let Block::Linear(b) = &mut model.blocks[1] {
            // [in=2, out=3]
            b.linear.weight = Param::from_data(
                TensorData::new(vec![1.0f32, -1.0, 0.0, 2.0, 0.5, -3.0], [2, 3]),
                &device,
            );
        }
        assert_eq!(filter_l1_norms(&model.blocks[0]).unwrap(), vec![3.0, 0.75]);
        assert_eq!(
            filter_l1_norms(&model.blocks[1]).unwrap(),
            vec![3.0, 1.5, 3.0]
        );
        let scores = l1_scores(&model, 1);
        assert_eq!(scores[0].as_deref(), Some(&[3.0f32, 0.75][..]));
        assert!(scores[1].is_none(), "the head is never pruned");
    }
}
