//! Built-in architectures.

use super::ModelError;
use super::spec::{
    ActivationKind, BlockSpec, ConvOrder, ConvSpec, GlobalAvgPoolSpec, LinearSpec, ModelSpec,
    ResidualSpec,
};

/// Names of the built-in architectures, for error messages and `--help`.
pub const NAMES: [&str; 4] = ["cnn6", "vgg11-mnist", "lenet", "resnet20"];

fn conv(out: usize, pool: usize) -> BlockSpec {
    BlockSpec::Conv(ConvSpec {
        out_channels: out,
        kernel: 3,
        stride: 1,
        padding: None,
        pool,
        batch_norm: true,
        activation: ActivationKind::Relu,
        order: Default::default(),
        bias: true,
    })
}

fn fc(out: usize, bn: bool, activation: ActivationKind) -> BlockSpec {
    BlockSpec::Linear(LinearSpec {
        out_features: out,
        activation,
        batch_norm: bn,
    })
}

/// A bias-free ResNet basic block of `out` channels (identity shortcut when
/// `out` is `None` and `stride` 1, else a 1x1 convolution and batch-norm).
fn basic(out: Option<usize>, stride: usize) -> BlockSpec {
    BlockSpec::Residual(ResidualSpec {
        out_channels: out,
        stride,
        bias: false,
        ..ResidualSpec::default()
    })
}

/// The CIFAR ResNet-20 of He et al. 2016, section 4.2: a 3x3 conv of 16
/// channels (batch-norm, ReLU), three stages of three basic blocks of 16,
/// 32 and 64 channels (the first block of stages 2 and 3 strides by 2),
/// global average pooling and a linear classifier. Shortcuts that change
/// shape are 1x1 convolutions with batch-norm (option B), as in
/// `chenyaofo/pytorch-cifar-models`, whose `cifar10_resnet20` state dict
/// loads with the key map of `tests/fixtures/resnet20.yaml`.
fn resnet20(classes: usize) -> Vec<BlockSpec> {
    let stem = BlockSpec::Conv(ConvSpec {
        out_channels: 16,
        kernel: 3,
        stride: 1,
        padding: None,
        pool: 0,
        batch_norm: true,
        activation: ActivationKind::Relu,
        order: ConvOrder::ConvBnActPool,
        bias: false,
    });
    let mut blocks = vec![stem];
    for (stage, width) in [16, 32, 64].into_iter().enumerate() {
        let first = match stage {
            0 => basic(None, 1),
            _ => basic(Some(width), 2),
        };
        blocks.extend([first, basic(None, 1), basic(None, 1)]);
    }
    blocks.push(BlockSpec::GlobalAvgPool(GlobalAvgPoolSpec {}));
    blocks.push(fc(classes, false, ActivationKind::None));
    blocks
}

/// The spec of a zoo model for 1x28x28 inputs and 10 classes.
pub fn spec(name: &str) -> Result<ModelSpec, ModelError> {
    spec_for(name, [1, 28, 28], 10)
}

/// The spec of a zoo model for the given input shape and class count.
///
/// - `cnn6`: seed 004, Table 1: three conv blocks (conv 3x3, ReLU, max-pool
///   2, batch-norm) of 16, 32, 64 channels, then FC128 and FC64 (ReLU,
///   batch-norm) and FC`classes`. Six blocks, five split points.
/// - `vgg11-mnist`: a VGG-style net with 10 conv blocks (16-16-32-32-64-64-
///   64-128-128-128 channels, pooling after the 2nd, 4th and 7th) then FC128
///   and FC`classes`: 12 blocks, for deep-split experiments.
/// - `lenet`: a LeNet-size net with sigmoid activations and no batch-norm
///   (conv 12 s2, conv 12 s2, conv 12, FC`classes`), the setting of the
///   gradient-leakage literature (DLG, seed 003).
/// - `resnet20`: the CIFAR ResNet-20 (He et al. 2016, section 4.2; see
///   [`resnet20`]): stem conv, nine residual blocks, global average pooling,
///   FC`classes`. Twelve blocks, eleven split points; any input size (made
///   for 3x32x32).
pub fn spec_for(name: &str, input: [usize; 3], classes: usize) -> Result<ModelSpec, ModelError> {
    use ActivationKind::{None as Linear, Relu, Sigmoid};
    let blocks = match name {
        "cnn6" => vec![
            conv(16, 2),
            conv(32, 2),
            conv(64, 2),
            fc(128, true, Relu),
            fc(64, true, Relu),
            fc(classes, false, Linear),
        ],
        "vgg11-mnist" => vec![
            conv(16, 0),
            conv(16, 2),
            conv(32, 0),
            conv(32, 2),
            conv(64, 0),
            conv(64, 0),
            conv(64, 2),
            conv(128, 0),
            conv(128, 0),
            conv(128, 0),
            fc(128, true, Relu),
            fc(classes, false, Linear),
        ],
        "resnet20" => resnet20(classes),
        "lenet" => {
            let c = |stride| {
                BlockSpec::Conv(ConvSpec {
                    out_channels: 12,
                    kernel: 5,
                    stride,
                    padding: Some(2),
                    pool: 0,
                    batch_norm: false,
                    activation: Sigmoid,
                    order: Default::default(),
                    bias: true,
                })
            };
            vec![c(2), c(2), c(1), fc(classes, false, Linear)]
        }
        other => {
            return Err(ModelError::UnknownArch {
                name: other.to_string(),
            });
        }
    };
    let spec = ModelSpec {
        vae: None,
        arch: name.to_string(),
        input,
        blocks,
    };
    spec.infos()?;
    Ok(spec)
}
