//! Models as sequences of blocks with split points (DESIGN section 3).
//!
//! A [`ModelSpec`] describes the architecture (serializable, so pruned models
//! reload at their own size); a [`SplitModel`] is the burn module built from
//! it. Split `k` runs blocks `1..=k` on the edge and the rest on the server.

mod block;
mod checkpoint;
pub mod decoder;
mod leaky;
mod network;
mod spec;
pub mod vae;
mod weights;
pub mod zoo;

pub use block::{
    Block, ConvBlock, Downsample, Features, GlobalAvgPoolBlock, LinearBlock, MaxPoolBlock,
    ResidualBlock, activate,
};
pub use checkpoint::{Blobs, Checkpoint, CheckpointMeta};
pub use leaky::leaky_relu;
pub use network::SplitModel;
pub use spec::{
    ActivationKind, BlockInfo, BlockSpec, ConvOrder, ConvSpec, FeatureShape, GlobalAvgPoolSpec,
    LinearSpec, MaxPoolSpec, ModelSpec, ResidualSpec, Shortcut, block_infos, with_classes,
};
pub use vae::{VaeHead, VaeSpec, kl_divergence};
pub use weights::{
    TensorKey, WeightsCheck, WeightsConfig, WeightsFormat, expected_tensors, file_tensors,
    load_weights,
};

/// Errors of model building, splitting and checkpoint I/O.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The architecture description is inconsistent.
    #[error("invalid model: {0}")]
    Spec(String),
    /// Unknown zoo name.
    #[error(
        "unknown architecture '{name}': expected one of cnn6, vgg11-mnist, lenet, resnet20, or a list of blocks"
    )]
    UnknownArch {
        /// The name given.
        name: String,
    },
    /// Split point out of range.
    #[error("split {split} is out of range: a model of {blocks} blocks splits at 1..={}", blocks.saturating_sub(1))]
    Split {
        /// The split asked for.
        split: usize,
        /// Number of blocks.
        blocks: usize,
    },
    /// A checkpoint file could not be read or written, or is corrupt.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The model could not be encoded for a checkpoint (an internal failure,
    /// not a bad file).
    #[error("checkpoint {path}: cannot serialize weights: {reason}")]
    Serialize {
        /// The file being written.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A weights file that cannot be read or does not fit the model.
    #[error("weights {path}: {reason}")]
    Weights {
        /// The file.
        path: String,
        /// What went wrong, with every offending tensor listed.
        reason: String,
    },
}

impl ModelError {
    /// Every model or checkpoint problem is the input's (a recipe, a
    /// weights file, a checkpoint) except failing to write a checkpoint.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ModelError::Serialize { .. })
    }
}
