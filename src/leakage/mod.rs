//! Stage: gradient leakage and inversion influence functions (seed 003,
//! DESIGN section 9.5).
//!
//! A client shares the gradient `g = dL/dtheta` of its loss on one private
//! example; an attacker who knows theta rebuilds the example by matching
//! that gradient ([`attack`]); a defense perturbs the gradient by `delta`
//! ([`defense`]); the inversion influence function predicts how far the
//! attack lands from the private example without running it ([`i2f`]).
//!
//! burn has only first-order autodiff, so every product with the Jacobian
//! of the gradient (`J`, D x P) is a central finite difference of
//! first-order gradients ([`jacobian`]) of a loss evaluated in f64
//! ([`oracle`]). The attack's optimisers are in [`optimize`], DLG's
//! initialisation of the target in [`init`]. [`experiment`] runs a recipe's
//! `leakage:` section and writes its report.

pub mod attack;
pub mod config;
pub mod defense;
pub mod experiment;
pub mod i2f;
pub mod init;
pub mod jacobian;
pub mod optimize;
pub mod oracle;
mod report;
mod worker;

pub use attack::{Distance, Inversion, LabelSource, infer_label, invert_gradient};
pub use config::{AttackConfig, DefenseSweep, I2fConfig, LeakageConfig};
pub use defense::GradientDefense;
pub use experiment::{ExampleResult, LeakageObserver, LeakageReport, run_leakage};
pub use i2f::{I2fEstimate, LambdaMax, conjugate_gradient, i2f_estimate, lanczos_lambda_max};
pub use jacobian::Jacobian;
pub use optimize::Optimizer;
pub use oracle::{GradientOracle, LossGradients, LossKind, NetworkLoss, ParamSlot};

/// A gradient-leakage problem.
#[derive(Debug, thiserror::Error)]
pub enum LeakageError {
    /// The model or loss does not fit the setting.
    #[error("leakage: {0}")]
    Model(String),
    /// A recipe without the section the command needs.
    #[error("{file}: has no `leakage:` section; add one (see recipes/mnist-leakage.yaml)")]
    MissingSection {
        /// The recipe file.
        file: String,
    },
}
