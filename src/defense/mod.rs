//! Training-time defenses (DESIGN section 5): each adds a loss term or
//! transforms the split features, is configured by its own recipe section,
//! and combines with any other.

pub mod adversarial;
pub mod at_split;
pub mod attribute_adversarial;
mod base;
mod config;
pub mod decov;
pub mod feature_pruning;
pub mod label_smoothing;
pub mod lipschitz;
pub mod nopeek;
pub mod shredder;
pub mod signal_dropout;
pub mod split_dropout;
pub mod split_noise;
pub mod top_k;
pub mod vae;

pub use adversarial::{AdversarialConfig, AdversarialReconstruction};
pub use at_split::{AtSplit, OwnerFeatures, Perturbation, SplitPerturbation};
pub use attribute_adversarial::{AttributeAdversarial, AttributeAdversarialConfig};
pub use base::{Defense, DefenseState, StepContext};
pub use config::{
    DeCovConfig, DefensesConfig, DropoutLayer, LabelSmoothingConfig, SignalDropoutConfig, VaeConfig,
};
pub use decov::DeCov;
pub use feature_pruning::{FeaturePruningConfig, FeaturePruningMarker};
pub use label_smoothing::LabelSmoothing;
pub use lipschitz::{Lipschitz, LipschitzConfig, LipschitzMethod};
pub use nopeek::{NoPeek, NoPeekConfig};
pub use shredder::{ShredderConfig, ShredderMarker, ShredderNoise};
pub use signal_dropout::SignalDropout;
pub use split_dropout::{SplitDropout, SplitDropoutConfig};
pub use split_noise::{NoiseKind, SplitNoise, SplitNoiseConfig};
pub use top_k::{TopK, TopKConfig};
pub use vae::Vae;
