//! Stage: metrics. Numbers every attack and report shares.
//!
//! Kernels take plain slices (pixels in `[C, H, W]` order, labels as `u32`)
//! rather than tensors, so the attack code, the CLI and the tests all call the
//! same code on host data and the numbers do not depend on a backend.

pub mod bootstrap;
pub mod classification;
pub mod correlation;
pub mod error;
pub mod interval;
pub mod quality;

pub use bootstrap::{BOOTSTRAP_RESAMPLES, bootstrap_accuracy_ci, bootstrap_mean_ci};
pub use classification::{accuracy, argmax_rows, majority_rate};
pub use correlation::{pearson, spearman};
pub use error::MetricsError;
pub use interval::{
    CONFIDENCE, Difference, Interval, t_cdf, t_interval, t_quantile, welch_difference,
};
pub use quality::{
    ImageMetrics, PSNR_CAP_DB, ReconstructionMetrics, cosine, mse, psnr_from_mse,
    reconstruction_metrics, ssim,
};
