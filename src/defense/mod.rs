//! Training-time defenses (DESIGN section 5): each adds a loss term or
//! transforms the split features, is configured by its own recipe section,
//! and combines with any other.

pub mod adversarial;
mod base;
mod config;
pub mod decov;
pub mod label_smoothing;
pub mod lipschitz;
pub mod signal_dropout;
pub mod vae;

pub use adversarial::{AdversarialConfig, AdversarialReconstruction};
pub use base::{Defense, StepContext};
pub use config::{
    DeCovConfig, DefensesConfig, DropoutLayer, LabelSmoothingConfig, SignalDropoutConfig, VaeConfig,
};
pub use decov::DeCov;
pub use label_smoothing::LabelSmoothing;
pub use lipschitz::{Lipschitz, LipschitzConfig, LipschitzMethod};
pub use signal_dropout::SignalDropout;
pub use vae::Vae;
