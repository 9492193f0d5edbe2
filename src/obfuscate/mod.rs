//! Stage: obfuscate. Unsupervised information obfuscation at the split
//! (seed 004, Samragh et al., sections 4.2 and 4.3).
//!
//! The client removes from its feature vector `z` everything the server's
//! first linear operator `W` cannot see (the null content), and optionally the
//! low-energy part of what it can see (Theorem 1), before sending it.
//!
//! The stage works on plain `f32` slices, not on burn tensors, so it can be
//! tested against its definitions in isolation and reused by the trainer
//! (signal-content dropout), the audit and the CLI:
//! - [`svd`] ([`crate::signal`]): [`SignalBasis`], the right singular vectors
//!   of `W` and the signal/null decomposition of `z` (Definitions 1 and 2,
//!   Figure 2's ratio);
//! - [`mode`]: the obfuscation modes, what the client sends and its size;
//! - [`bounded`]: which components a query keeps (Theorem 1);
//! - [`conv_dense`] ([`crate::signal`]): a convolution written out as the
//!   dense matrix `W` it applies to a flattened CHW feature map;
//! - [`deploy`]: the obfuscation a run deploys at its split.

pub mod bounded;
pub mod deploy;
pub mod mode;
pub mod stage;

// The signal content's linear algebra lives below the defenses (signal
// dropout uses it too); the obfuscate stage is its main user.
pub(crate) use crate::signal::check_len;
#[cfg(test)]
pub(crate) use crate::signal::test_util;
pub use crate::signal::{ObfuscateError, conv_dense, operator, svd};
pub use conv_dense::{DenseMatrix, conv2d_as_dense, conv2d_output_hw};
pub use mode::{
    Obfuscated, ObfuscatedBatch, ObfuscationMode, bytes_per_query, obfuscate, obfuscate_batch,
    raw_bytes,
};
pub use svd::SignalBasis;
