//! The blocks a model is made of, and the feature tensors that flow between them.
//!
//! Blocks are one `#[derive(Module)]` enum so a model is a plain `Vec<Block>`
//! that burn can save, load, map and differentiate; each variant is built from
//! its [`BlockSpec`], which stays beside it (skipped by the module machinery).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation;

use super::leaky::leaky_relu;
use super::spec::{
    ActivationKind, BlockSpec, ConvOrder, ConvSpec, FeatureShape, GlobalAvgPoolSpec, LinearSpec,
    MaxPoolSpec, ResidualSpec,
};

/// Features between blocks: spatial maps `[N, C, H, W]` or vectors `[N, D]`.
#[derive(Clone, Debug)]
pub enum Features {
    /// `[N, C, H, W]`.
    Map(Tensor<4>),
    /// `[N, D]`.
    Flat(Tensor<2>),
}

impl Features {
    /// Batch size N.
    pub fn batch(&self) -> usize {
        match self {
            Features::Map(t) => t.dims()[0],
            Features::Flat(t) => t.dims()[0],
        }
    }

    /// Shape of one example (`[C, H, W]` or `[D]`).
    pub fn example_shape(&self) -> FeatureShape {
        match self {
            Features::Map(t) => t.dims()[1..].to_vec(),
            Features::Flat(t) => vec![t.dims()[1]],
        }
    }

    /// The features flattened to `[N, prod(example_shape)]`.
    pub fn flatten(self) -> Tensor<2> {
        match self {
            Features::Map(t) => t.flatten(1, 3),
            Features::Flat(t) => t,
        }
    }

    /// Rebuilds features of the given example shape from a flat `[N, D]` tensor.
    pub fn from_flat(flat: Tensor<2>, shape: &[usize]) -> Self {
        match *shape {
            [c, h, w] => {
                let n = flat.dims()[0];
                Features::Map(flat.reshape([n, c, h, w]))
            }
            _ => Features::Flat(flat),
        }
    }

    /// Detaches the features from the autodiff graph.
    pub fn detach(self) -> Self {
        match self {
            Features::Map(t) => Features::Map(t.detach()),
            Features::Flat(t) => Features::Flat(t.detach()),
        }
    }

    /// Applies an element-wise map to the underlying tensor.
    pub fn map_values(self, f: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Self {
        let shape = self.example_shape();
        Features::from_flat(f(self.flatten()), &shape)
    }
}

/// Applies an activation kind.
pub fn activate<const D: usize>(x: Tensor<D>, kind: ActivationKind) -> Tensor<D> {
    match kind {
        ActivationKind::Relu => activation::relu(x),
        ActivationKind::LeakyRelu => leaky_relu(x, 0.01),
        ActivationKind::Sigmoid => activation::sigmoid(x),
        ActivationKind::Tanh => activation::tanh(x),
        ActivationKind::None => x,
    }
}

/// Convolution block (see [`ConvSpec`]).
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// The convolution.
    pub conv: Conv2d,
    /// Optional max-pool.
    pub pool: Option<MaxPool2d>,
    /// Optional batch-norm.
    pub bn: Option<BatchNorm>,
    /// The block's description.
    #[module(skip)]
    pub spec: ConvSpec,
}

impl ConvBlock {
    /// Builds the block for `in_channels` input channels.
    pub fn new(spec: &ConvSpec, in_channels: usize, device: &Device) -> Self {
        let p = spec.padding();
        let conv = Conv2dConfig::new([in_channels, spec.out_channels], [spec.kernel, spec.kernel])
            .with_stride([spec.stride, spec.stride])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(spec.bias)
            .init(device);
        let pool = (spec.pool > 1).then(|| {
            MaxPool2dConfig::new([spec.pool, spec.pool])
                .with_strides([spec.pool, spec.pool])
                .init()
        });
        let bn = spec
            .batch_norm
            .then(|| BatchNormConfig::new(spec.out_channels).init(device));
        Self {
            conv,
            pool,
            bn,
            spec: spec.clone(),
        }
    }

    /// `[N, Cin, H, W] -> [N, Cout, H', W']`, layers in the spec's
    /// [`ConvOrder`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let bn = |x: Tensor<4>| match &self.bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        let pool = |x: Tensor<4>| match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        let x = self.conv.forward(x);
        match self.spec.order {
            ConvOrder::ConvActPoolBn => bn(pool(activate(x, self.spec.activation))),
            ConvOrder::ConvBnActPool => pool(activate(bn(x), self.spec.activation)),
        }
    }
}

/// Fully connected block (see [`LinearSpec`]).
#[derive(Module, Debug)]
pub struct LinearBlock {
    /// The linear map; burn stores its weight as `[in, out]`.
    pub linear: Linear,
    /// Optional batch-norm.
    pub bn: Option<BatchNorm>,
    /// The block's description.
    #[module(skip)]
    pub spec: LinearSpec,
}

impl LinearBlock {
    /// Builds the block for `in_features` inputs.
    pub fn new(spec: &LinearSpec, in_features: usize, device: &Device) -> Self {
        Self {
            linear: LinearConfig::new(in_features, spec.out_features).init(device),
            bn: spec
                .batch_norm
                .then(|| BatchNormConfig::new(spec.out_features).init(device)),
            spec: spec.clone(),
        }
    }

    /// `[N, D_in] -> [N, D_out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = activate(self.linear.forward(x), self.spec.activation);
        if let Some(bn) = &self.bn {
            x = bn.forward(x);
        }
        x
    }
}

/// A residual block's projection shortcut: a 1x1 convolution with the
/// block's stride, then batch-norm (torchvision's `downsample.0` and
/// `downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1x1 convolution, `[Cin] -> [Cout]` channels, with the block's stride.
    pub conv: Conv2d,
    /// Batch-norm after it.
    pub bn: BatchNorm,
}

/// ResNet basic block (see [`ResidualSpec`]): two 3x3 convolutions, the
/// first with the stride, and a shortcut that is the identity, a
/// [`Downsample`] projection, or zero-padding of a subsampled input.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// First 3x3 convolution (carries the stride).
    pub conv1: Conv2d,
    /// Batch-norm after the first convolution.
    pub bn1: BatchNorm,
    /// Second 3x3 convolution.
    pub conv2: Conv2d,
    /// Batch-norm after the second convolution.
    pub bn2: BatchNorm,
    /// The projection shortcut, when the block changes shape and its
    /// shortcut is `conv`.
    pub downsample: Option<Downsample>,
    /// Input channels (what a `pad` shortcut pads from).
    #[module(skip)]
    pub in_channels: usize,
    /// The block's description.
    #[module(skip)]
    pub spec: ResidualSpec,
}

impl ResidualBlock {
    /// Builds the block for `channels` input channels.
    pub fn new(spec: &ResidualSpec, channels: usize, device: &Device) -> Self {
        let out = spec.out_channels(channels);
        let s = spec.stride;
        let conv = |cin: usize, kernel: usize, stride: usize, pad: usize| {
            Conv2dConfig::new([cin, out], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(spec.bias)
                .init(device)
        };
        Self {
            conv1: conv(channels, 3, s, 1),
            bn1: BatchNormConfig::new(out).init(device),
            conv2: conv(out, 3, 1, 1),
            bn2: BatchNormConfig::new(out).init(device),
            downsample: spec.has_downsample(channels).then(|| Downsample {
                conv: conv(channels, 1, s, 0),
                bn: BatchNormConfig::new(out).init(device),
            }),
            in_channels: channels,
            spec: spec.clone(),
        }
    }

    /// `[N, Cin, H, W] -> [N, Cout, H', W']` with `H' = (H - 1) / stride + 1`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let act = self.spec.activation;
        let y = activate(self.bn1.forward(self.conv1.forward(x.clone())), act);
        let y = self.bn2.forward(self.conv2.forward(y));
        activate(self.shortcut(x) + y, act)
    }

    /// The shortcut path: identity, projection, or (option A) the input
    /// subsampled by the stride and zero-padded to the output channels.
    pub fn shortcut(&self, x: Tensor<4>) -> Tensor<4> {
        if let Some(d) = &self.downsample {
            return d.bn.forward(d.conv.forward(x));
        }
        if !self.spec.reshapes(self.in_channels) {
            return x;
        }
        let s = self.spec.stride as isize;
        let x = if s > 1 {
            x.slice(burn::tensor::s![.., .., ..;s, ..;s])
        } else {
            x
        };
        let [n, cin, h, w] = x.dims();
        let extra = self.spec.out_channels(cin) - cin;
        let front = extra / 2;
        let device = x.device();
        let mut parts = Vec::with_capacity(3);
        if front > 0 {
            parts.push(Tensor::zeros([n, front, h, w], &device));
        }
        parts.push(x);
        if extra > front {
            parts.push(Tensor::zeros([n, extra - front, h, w], &device));
        }
        Tensor::cat(parts, 1)
    }
}

/// Max-pool block (see [`MaxPoolSpec`]).
#[derive(Module, Debug)]
pub struct MaxPoolBlock {
    /// The pool.
    pub pool: MaxPool2d,
    /// The block's description.
    #[module(skip)]
    pub spec: MaxPoolSpec,
}

impl MaxPoolBlock {
    /// Builds the block.
    pub fn new(spec: &MaxPoolSpec) -> Self {
        let (k, s, p) = (spec.kernel, spec.stride(), spec.padding);
        Self {
            pool: MaxPool2dConfig::new([k, k])
                .with_strides([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init(),
            spec: spec.clone(),
        }
    }

    /// `[N, C, H, W] -> [N, C, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool.forward(x)
    }
}

/// Global average pooling block (see [`GlobalAvgPoolSpec`]).
#[derive(Module, Debug)]
pub struct GlobalAvgPoolBlock {
    /// The block's description.
    #[module(skip)]
    pub spec: GlobalAvgPoolSpec,
}

impl GlobalAvgPoolBlock {
    /// `[N, C, H, W] -> [N, C]`, the mean over each channel's map.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = x.dims();
        x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
    }
}

/// One block of a split-able model.
///
/// Variants differ in size (a pooling block holds no tensors); boxing them
/// would put the module derive's paths and every `match` behind a box for a
/// list of a few dozen blocks at most.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Block {
    /// Convolution block.
    Conv(ConvBlock),
    /// Fully connected block (flattens a map input).
    Linear(LinearBlock),
    /// Residual block.
    Residual(ResidualBlock),
    /// Max-pool block (no parameters).
    MaxPool(MaxPoolBlock),
    /// Global average pooling block (no parameters; outputs a vector).
    GlobalAvgPool(GlobalAvgPoolBlock),
}

impl Block {
    /// Builds a block from its spec for the given input shape (checked by
    /// [`ModelSpec::infos`](super::ModelSpec::infos) beforehand).
    pub fn new(spec: &BlockSpec, input: &[usize], device: &Device) -> Self {
        match spec {
            BlockSpec::Conv(c) => Block::Conv(ConvBlock::new(c, input[0], device)),
            BlockSpec::Linear(l) => {
                Block::Linear(LinearBlock::new(l, input.iter().product(), device))
            }
            BlockSpec::Residual(r) => Block::Residual(ResidualBlock::new(r, input[0], device)),
            BlockSpec::MaxPool(p) => Block::MaxPool(MaxPoolBlock::new(p)),
            BlockSpec::GlobalAvgPool(g) => {
                Block::GlobalAvgPool(GlobalAvgPoolBlock { spec: g.clone() })
            }
        }
    }

    /// The block's spec.
    pub fn spec(&self) -> BlockSpec {
        match self {
            Block::Conv(b) => BlockSpec::Conv(b.spec.clone()),
            Block::Linear(b) => BlockSpec::Linear(b.spec.clone()),
            Block::Residual(b) => BlockSpec::Residual(b.spec.clone()),
            Block::MaxPool(b) => BlockSpec::MaxPool(b.spec.clone()),
            Block::GlobalAvgPool(b) => BlockSpec::GlobalAvgPool(b.spec.clone()),
        }
    }

    /// Runs the block.
    pub fn forward(&self, x: Features) -> Features {
        match (self, x) {
            (Block::Conv(b), Features::Map(t)) => Features::Map(b.forward(t)),
            (Block::Residual(b), Features::Map(t)) => Features::Map(b.forward(t)),
            (Block::MaxPool(b), Features::Map(t)) => Features::Map(b.forward(t)),
            (Block::GlobalAvgPool(b), Features::Map(t)) => Features::Flat(b.forward(t)),
            (Block::Linear(b), x) => Features::Flat(b.forward(x.flatten())),
            (b, Features::Flat(_)) => {
                panic!(
                    "expected a validated spec: {:?} got flat features",
                    b.spec()
                )
            }
        }
    }
}
