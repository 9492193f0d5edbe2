//! Serializable model descriptions.
//!
//! A model is described by a [`ModelSpec`]: the input shape and an ordered list
//! of [`BlockSpec`]s. The spec, not the Rust type, fixes every layer's size, so
//! a pruned model (fewer channels) is just another spec: it is saved in the
//! checkpoint beside the weights and loads as the smaller model. Input sizes of
//! each block are inferred from the previous block, so a spec only names what
//! a block produces.

use serde::{Deserialize, Serialize};

use super::ModelError;

/// Element-wise non-linearity applied inside a block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    /// max(0, x).
    #[default]
    Relu,
    /// max(0.01 x, x).
    LeakyRelu,
    /// 1 / (1 + e^-x): twice differentiable, as used by gradient-leakage studies.
    Sigmoid,
    /// tanh(x).
    Tanh,
    /// Identity: the block stays linear (e.g. the classifier head).
    None,
}

/// The order of the layers inside a conv block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvOrder {
    /// conv, activation, max-pool, batch-norm (seed 004, Table 1; the zoo).
    #[default]
    ConvActPoolBn,
    /// conv, batch-norm, activation, max-pool: PyTorch's usual
    /// `Conv2d, BatchNorm2d, ReLU, MaxPool2d` (VGG-bn, ResNet stems), for
    /// bringing such a network's weights. Also accepted as `conv_bn_act`,
    /// which reads better for a block without a pool (`pool: 0`, the
    /// default), e.g. the CIFAR ResNet stem.
    #[serde(alias = "conv_bn_act")]
    ConvBnActPool,
}

impl ConvOrder {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_kernel() -> usize {
    3
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_one(n: &usize) -> bool {
    *n == 1
}

/// A convolution block: conv, activation, optional max-pool, optional
/// batch-norm, in that order (seed 004, Table 1), or in PyTorch's usual
/// order conv, batch-norm, activation, max-pool (see [`ConvOrder`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// Output channels of the convolution.
    pub out_channels: usize,
    /// Square kernel size (default 3).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// Stride (default 1).
    #[serde(default = "one")]
    pub stride: usize,
    /// Zero padding on each side (default `kernel / 2`, "same" for odd kernels).
    #[serde(default)]
    pub padding: Option<usize>,
    /// Max-pool size and stride after the activation; 0 or 1 means none (default 0).
    #[serde(default)]
    pub pool: usize,
    /// Batch-norm after the pool (default true).
    #[serde(default = "yes")]
    pub batch_norm: bool,
    /// Activation after the convolution (default relu).
    #[serde(default)]
    pub activation: ActivationKind,
    /// Layer order (default `conv_act_pool_bn`; `conv_bn_act_pool` for
    /// PyTorch's conv, batch-norm, ReLU, pool). Not written when default, so
    /// older specs and resolved recipes read and compare unchanged.
    #[serde(default, skip_serializing_if = "ConvOrder::is_default")]
    pub order: ConvOrder,
    /// Learned bias in the convolution (default true; false for PyTorch's
    /// `bias=False` convolutions before a batch-norm). Not written when true.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub bias: bool,
}

/// A fully connected block: (flatten), linear, activation, optional batch-norm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    /// Output units.
    pub out_features: usize,
    /// Activation after the linear map (default relu; `none` for a head).
    #[serde(default)]
    pub activation: ActivationKind,
    /// Batch-norm after the activation (default false).
    #[serde(default)]
    pub batch_norm: bool,
}

/// How a residual block's shortcut matches the shape of its main path when
/// the block changes the channel count or strides (He et al. 2016, "Deep
/// Residual Learning for Image Recognition", section 3.3, options A and B).
/// A block that keeps its shape always uses the identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortcut {
    /// Option B: a 1x1 convolution with the block's stride, then batch-norm
    /// (torchvision's `downsample = Sequential(conv1x1, BatchNorm2d)`; also
    /// the CIFAR ResNets of `chenyaofo/pytorch-cifar-models`).
    #[default]
    Conv,
    /// Option A: parameter-free; the input subsampled by the stride
    /// (`x[:, :, ::s, ::s]`) and zero-padded with `(out - in) / 2` channels
    /// in front and the rest behind, as the CIFAR ResNet-20 of the paper
    /// (section 4.2) and `akamaster/pytorch_resnet_cifar10` do.
    Pad,
}

impl Shortcut {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A ResNet basic block (He et al. 2016, section 3 and Figure 2):
/// `act(shortcut(x) + bn2(conv2(act(bn1(conv1(x))))))` with 3x3
/// convolutions, `conv1` carrying the stride. The shortcut is the identity
/// when the block keeps its shape, else a [`Shortcut`] (a 1x1 convolution
/// and batch-norm by default, torchvision's `downsample`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidualSpec {
    /// Output channels (default: the input's). Not written when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_channels: Option<usize>,
    /// Stride of the first convolution and of the shortcut (default 1).
    /// Not written when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub stride: usize,
    /// How the shortcut matches a changed shape (default `conv`; see
    /// [`Shortcut`]). Not written when default.
    #[serde(default, skip_serializing_if = "Shortcut::is_default")]
    pub shortcut: Shortcut,
    /// Activation (default relu).
    #[serde(default)]
    pub activation: ActivationKind,
    /// Learned biases in every convolution of the block (default true; false
    /// for torchvision-style blocks, whose convolutions have `bias=False`).
    /// Not written when true.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub bias: bool,
}

impl Default for ResidualSpec {
    /// A shape-keeping block with biases and ReLU.
    fn default() -> Self {
        Self {
            out_channels: None,
            stride: 1,
            shortcut: Shortcut::Conv,
            activation: ActivationKind::Relu,
            bias: true,
        }
    }
}

impl ResidualSpec {
    /// Output channels for `in_channels` input channels.
    pub fn out_channels(&self, in_channels: usize) -> usize {
        self.out_channels.unwrap_or(in_channels)
    }

    /// True when the block changes its input's shape (a stride or another
    /// channel count), so the shortcut is not the identity.
    pub fn reshapes(&self, in_channels: usize) -> bool {
        self.stride != 1 || self.out_channels(in_channels) != in_channels
    }

    /// True when the shortcut is a 1x1 convolution with batch-norm.
    pub fn has_downsample(&self, in_channels: usize) -> bool {
        self.reshapes(in_channels) && self.shortcut == Shortcut::Conv
    }
}

/// A max-pool block: `kernel` x `kernel` windows with a stride and zero-size
/// padding that never wins (PyTorch's `MaxPool2d(kernel, stride, padding)`,
/// e.g. torchvision's ResNet stem `MaxPool2d(3, 2, 1)`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPoolSpec {
    /// Square window size.
    pub kernel: usize,
    /// Stride (default: the kernel size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
    /// Padding on each side, at most `kernel / 2` (default 0).
    #[serde(default)]
    pub padding: usize,
}

impl MaxPoolSpec {
    /// The stride actually used.
    pub fn stride(&self) -> usize {
        self.stride.unwrap_or(self.kernel)
    }
}

/// Global average pooling: `[C, H, W] -> [C]`, the mean of each channel's
/// map (ResNet's `AdaptiveAvgPool2d(1)` followed by `flatten`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalAvgPoolSpec {}

/// One block of a model; split points fall between blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockSpec {
    /// See [`ConvSpec`].
    Conv(ConvSpec),
    /// See [`LinearSpec`].
    Linear(LinearSpec),
    /// See [`ResidualSpec`].
    Residual(ResidualSpec),
    /// See [`MaxPoolSpec`].
    MaxPool(MaxPoolSpec),
    /// See [`GlobalAvgPoolSpec`].
    GlobalAvgPool(GlobalAvgPoolSpec),
}

/// The shape of one example's features: `[C, H, W]` maps or `[D]` vectors.
pub type FeatureShape = Vec<usize>;

/// A whole model: its input shape and its blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Architecture name (zoo name, or a user's label).
    pub arch: String,
    /// Shape of one input example, `[C, H, W]`.
    pub input: [usize; 3],
    /// The blocks, in execution order.
    pub blocks: Vec<BlockSpec>,
    /// Optional VAE head after one block (seed 004; see [`super::vae`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae: Option<super::vae::VaeSpec>,
}

/// Size and cost of one block, for edge budgets and summaries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// 1-based block index (= the split point after this block).
    pub index: usize,
    /// Short description, e.g. `conv 3x3 16 pool2 bn`.
    pub description: String,
    /// Input feature shape.
    pub input: FeatureShape,
    /// Output feature shape.
    pub output: FeatureShape,
    /// Floating-point operations for one example: 2 x multiply-accumulates of
    /// the convolutions and linear maps (activations, pooling and batch-norm
    /// are not counted; they are a few percent here).
    pub flops: u64,
    /// Trainable parameters (weights, biases, batch-norm scale and shift;
    /// running statistics are state, not parameters).
    pub params: u64,
}

impl ConvSpec {
    /// The padding actually used.
    pub fn padding(&self) -> usize {
        self.padding.unwrap_or(self.kernel / 2)
    }
}

/// Output spatial size of a convolution or pooling window.
fn window_out(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = size + 2 * padding;
    (padded >= kernel && stride > 0).then(|| (padded - kernel) / stride + 1)
}

impl ModelSpec {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True when there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Checks every block against its input shape and returns per-block info.
    /// The VAE head's mean map counts toward the block it follows.
    pub fn infos(&self) -> Result<Vec<BlockInfo>, ModelError> {
        let mut infos = block_infos(&self.input, &self.blocks)?;
        add_vae_cost(&mut infos, self.vae.as_ref())?;
        Ok(infos)
    }

    /// Shape of the model's output for one example.
    pub fn output_shape(&self) -> Result<FeatureShape, ModelError> {
        Ok(self
            .infos()?
            .last()
            .map(|b| b.output.clone())
            .unwrap_or_else(|| self.input.to_vec()))
    }

    /// Edge FLOPs for split `k` (blocks `1..=k` on the edge).
    pub fn edge_flops(&self, k: usize) -> Result<u64, ModelError> {
        Ok(self.infos()?.iter().take(k).map(|b| b.flops).sum())
    }
}

/// Adds the VAE head's cost to the block it follows (errors when `at` is
/// not a split point, i.e. not in `1..len`).
pub(crate) fn add_vae_cost(
    infos: &mut [BlockInfo],
    vae: Option<&super::vae::VaeSpec>,
) -> Result<(), ModelError> {
    let Some(v) = vae else { return Ok(()) };
    if v.at == 0 || v.at >= infos.len() {
        return Err(ModelError::Spec(format!(
            "vae.at = {}: the VAE head must follow a split point, 1..={}",
            v.at,
            infos.len().saturating_sub(1)
        )));
    }
    let info = &mut infos[v.at - 1];
    info.flops += super::vae::VaeHead::flops(&info.output);
    info.params += super::vae::VaeHead::params(&info.output);
    info.description.push_str(" + vae head");
    Ok(())
}

/// Checks `blocks` in order starting from features of shape `input`
/// (`[C, H, W]` or `[D]`) and returns per-block info. Server parts and
/// attacker heads start from split features, so this is not tied to images.
pub fn block_infos(input: &[usize], blocks: &[BlockSpec]) -> Result<Vec<BlockInfo>, ModelError> {
    let mut shape: FeatureShape = input.to_vec();
    if input.contains(&0) || !(input.len() == 1 || input.len() == 3) {
        return Err(ModelError::Spec(format!(
            "input shape {input:?} must be [C, H, W] or [D] with no zero dimension"
        )));
    }
    let mut infos = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let bad = |msg: String| ModelError::Spec(format!("blocks[{i}]: {msg}"));
        let (out, flops, params, description) = match block {
            BlockSpec::Conv(c) => {
                if shape.len() != 3 {
                    return Err(bad(format!(
                        "a conv block needs [C, H, W] input, got {shape:?} (conv blocks must come before linear ones)"
                    )));
                }
                if c.out_channels == 0 || c.kernel == 0 || c.stride == 0 {
                    return Err(bad(format!(
                        "out_channels, kernel and stride must be > 0, got {}, {}, {}",
                        c.out_channels, c.kernel, c.stride
                    )));
                }
                let (cin, h, w) = (shape[0], shape[1], shape[2]);
                let pad = c.padding();
                let (oh, ow) = match (
                    window_out(h, c.kernel, c.stride, pad),
                    window_out(w, c.kernel, c.stride, pad),
                ) {
                    (Some(a), Some(b)) => (a, b),
                    _ => {
                        return Err(bad(format!(
                            "kernel {} does not fit the {h}x{w} input with padding {pad}",
                            c.kernel
                        )));
                    }
                };
                let macs = (cin * c.kernel * c.kernel * c.out_channels * oh * ow) as u64;
                let (ph, pw) = if c.pool > 1 {
                    (oh / c.pool, ow / c.pool)
                } else {
                    (oh, ow)
                };
                if ph == 0 || pw == 0 {
                    return Err(bad(format!(
                        "pool {} does not fit the {oh}x{ow} feature map",
                        c.pool
                    )));
                }
                let bias = if c.bias { c.out_channels } else { 0 };
                let params = (c.out_channels * cin * c.kernel * c.kernel + bias) as u64
                    + if c.batch_norm {
                        2 * c.out_channels as u64
                    } else {
                        0
                    };
                let mut d = format!("conv {}x{} {}", c.kernel, c.kernel, c.out_channels);
                if c.stride > 1 {
                    d += &format!(" s{}", c.stride);
                }
                if c.pool > 1 {
                    d += &format!(" pool{}", c.pool);
                }
                if c.batch_norm {
                    d += " bn";
                }
                if c.order == ConvOrder::ConvBnActPool {
                    d += " (bn first)";
                }
                (vec![c.out_channels, ph, pw], 2 * macs, params, d)
            }
            BlockSpec::Linear(l) => {
                if l.out_features == 0 {
                    return Err(bad("out_features must be > 0, got 0".into()));
                }
                let fin: usize = shape.iter().product();
                let params = (fin * l.out_features + l.out_features) as u64
                    + if l.batch_norm {
                        2 * l.out_features as u64
                    } else {
                        0
                    };
                let mut d = format!("linear {}", l.out_features);
                if l.batch_norm {
                    d += " bn";
                }
                if l.activation == ActivationKind::None {
                    d += " (no activation)";
                }
                (
                    vec![l.out_features],
                    2 * (fin * l.out_features) as u64,
                    params,
                    d,
                )
            }
            BlockSpec::Residual(r) => {
                if shape.len() != 3 {
                    return Err(bad(format!(
                        "a residual block needs [C, H, W] input, got {shape:?}"
                    )));
                }
                residual_info(r, &shape).map_err(bad)?
            }
            BlockSpec::MaxPool(p) => {
                if shape.len() != 3 {
                    return Err(bad(format!(
                        "a max_pool block needs [C, H, W] input, got {shape:?}"
                    )));
                }
                let s = p.stride();
                if p.kernel == 0 || s == 0 || 2 * p.padding > p.kernel {
                    return Err(bad(format!(
                        "max_pool needs kernel and stride > 0 and padding <= kernel / 2, got kernel {}, stride {s}, padding {}",
                        p.kernel, p.padding
                    )));
                }
                let (c, h, w) = (shape[0], shape[1], shape[2]);
                let (Some(oh), Some(ow)) = (
                    window_out(h, p.kernel, s, p.padding),
                    window_out(w, p.kernel, s, p.padding),
                ) else {
                    return Err(bad(format!(
                        "max_pool kernel {} does not fit the {h}x{w} input with padding {}",
                        p.kernel, p.padding
                    )));
                };
                let mut d = format!("max_pool {}x{}", p.kernel, p.kernel);
                if s != p.kernel {
                    d += &format!(" s{s}");
                }
                if p.padding > 0 {
                    d += &format!(" p{}", p.padding);
                }
                (vec![c, oh, ow], 0, 0, d)
            }
            BlockSpec::GlobalAvgPool(_) => {
                if shape.len() != 3 {
                    return Err(bad(format!(
                        "a global_avg_pool block needs [C, H, W] input, got {shape:?}"
                    )));
                }
                (vec![shape[0]], 0, 0, "global_avg_pool".to_string())
            }
        };
        infos.push(BlockInfo {
            index: i + 1,
            description,
            input: shape.clone(),
            output: out.clone(),
            flops,
            params,
        });
        shape = out;
    }
    Ok(infos)
}

/// Output shape, FLOPs, parameters and description of a residual block on
/// a `[C, H, W]` input; the error says what does not fit.
fn residual_info(
    r: &ResidualSpec,
    shape: &[usize],
) -> Result<(FeatureShape, u64, u64, String), String> {
    let (cin, h, w) = (shape[0], shape[1], shape[2]);
    let cout = r.out_channels(cin);
    if cout == 0 || r.stride == 0 {
        return Err(format!(
            "out_channels and stride must be > 0, got {cout}, {}",
            r.stride
        ));
    }
    if r.reshapes(cin) && r.shortcut == Shortcut::Pad && cout < cin {
        return Err(format!(
            "a pad shortcut can only add channels, got {cin} -> {cout}; use shortcut: conv"
        ));
    }
    // 3x3 with padding 1 and a 1x1 without padding give the same size.
    let (oh, ow) = ((h - 1) / r.stride + 1, (w - 1) / r.stride + 1);
    let pixels = (oh * ow) as u64;
    let (cin, cout64) = (cin as u64, cout as u64);
    let bias = if r.bias { cout64 } else { 0 };
    let mut macs = (cin * 9 * cout64 + cout64 * 9 * cout64) * pixels;
    let mut params =
        (cout64 * cin * 9 + bias + 2 * cout64) + (cout64 * cout64 * 9 + bias + 2 * cout64);
    let mut d = if cout64 == cin {
        format!("residual {cout}")
    } else {
        format!("residual {cin}->{cout}")
    };
    if r.stride > 1 {
        d += &format!(" s{}", r.stride);
    }
    if r.has_downsample(cin as usize) {
        macs += cin * cout64 * pixels;
        params += cin * cout64 + bias + 2 * cout64;
        d += " (1x1 shortcut)";
    } else if r.reshapes(cin as usize) {
        d += " (pad shortcut)";
    }
    Ok((vec![cout, oh, ow], 2 * macs, params, d))
}

/// `specs` (a model's server part) with the last block resized to
/// `classes` outputs: the architecture of a classifier of another label
/// on the same features (an attribute attacker or adversary). An error
/// when the last block is not linear.
pub fn with_classes(
    specs: &[BlockSpec],
    classes: usize,
) -> Result<Vec<BlockSpec>, super::ModelError> {
    let mut specs = specs.to_vec();
    match specs.last_mut() {
        Some(BlockSpec::Linear(l)) => {
            l.out_features = classes;
            Ok(specs)
        }
        other => Err(super::ModelError::Spec(format!(
            "the server part must end with a linear block to classify another label, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;

    #[test]
    fn cnn6_shapes_and_flops_match_hand_count() {
        let spec = zoo::spec("cnn6").unwrap();
        let infos = spec.infos().unwrap();
        let outs: Vec<_> = infos.iter().map(|b| b.output.clone()).collect();
        assert_eq!(
            outs,
            vec![
                vec![16, 14, 14],
                vec![32, 7, 7],
                vec![64, 3, 3],
                vec![128],
                vec![64],
                vec![10]
            ]
        );
        // conv1: 1*3*3*16 MACs per output pixel, 28*28 pixels (pad 1, pool after).
        assert_eq!(infos[0].flops, 2 * 9 * 16 * 28 * 28);
        assert_eq!(infos[1].flops, 2 * 16 * 9 * 32 * 14 * 14);
        assert_eq!(infos[3].flops, 2 * 576 * 128);
        // conv1 params: 16*9 weights + 16 bias + 32 batch-norm.
        assert_eq!(infos[0].params, 144 + 16 + 32);
        assert_eq!(spec.edge_flops(2).unwrap(), infos[0].flops + infos[1].flops);
    }

    #[test]
    fn conv_after_linear_is_rejected_with_block_index() {
        let spec = ModelSpec {
            vae: None,
            arch: "bad".into(),
            input: [1, 8, 8],
            blocks: vec![
                BlockSpec::Linear(LinearSpec {
                    out_features: 4,
                    activation: ActivationKind::Relu,
                    batch_norm: false,
                }),
                BlockSpec::Conv(ConvSpec {
                    out_channels: 2,
                    kernel: 3,
                    stride: 1,
                    padding: None,
                    pool: 0,
                    batch_norm: false,
                    activation: ActivationKind::Relu,
                    order: Default::default(),
                    bias: true,
                }),
            ],
        };
        let err = spec.infos().unwrap_err().to_string();
        assert!(err.contains("blocks[1]"), "{err}");
    }

    #[test]
    fn conv_order_is_optional_and_not_written_when_default() {
        let yaml = "arch: t\ninput: [1, 8, 8]\nblocks:\n  - {kind: conv, out_channels: 2, pool: 2}\n  - {kind: conv, out_channels: 2, order: conv_bn_act_pool}\n";
        let spec: ModelSpec = serde_norway::from_str(yaml).unwrap();
        let orders: Vec<_> = spec
            .blocks
            .iter()
            .map(|b| match b {
                BlockSpec::Conv(c) => c.order,
                _ => panic!("expected conv"),
            })
            .collect();
        assert_eq!(orders, [ConvOrder::ConvActPoolBn, ConvOrder::ConvBnActPool]);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json.matches("order").count(), 1, "{json}");
        let infos = spec.infos().unwrap();
        assert!(infos[1].description.ends_with("(bn first)"));
        assert!(!infos[0].description.contains("first"));
    }

    #[test]
    fn spec_round_trips_through_yaml_with_defaults() {
        let yaml = "arch: tiny\ninput: [1, 8, 8]\nblocks:\n  - kind: conv\n    out_channels: 4\n    pool: 2\n  - kind: linear\n    out_features: 3\n    activation: none\n";
        let spec: ModelSpec = serde_norway::from_str(yaml).unwrap();
        let BlockSpec::Conv(c) = &spec.blocks[0] else {
            panic!("expected conv")
        };
        assert_eq!(
            (c.kernel, c.stride, c.padding(), c.batch_norm),
            (3, 1, 1, true)
        );
        assert_eq!(spec.output_shape().unwrap(), vec![3]);
        let back: ModelSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }
}
