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
//! - [`svd`]: [`SignalBasis`], the right singular vectors of `W` and the
//!   signal/null decomposition of `z` (Definitions 1 and 2, Figure 2's ratio);
//! - [`mode`]: the obfuscation modes, what the client sends and its size;
//! - [`bounded`]: which components a query keeps (Theorem 1);
//! - [`conv_dense`]: a convolution written out as the dense matrix `W` it
//!   applies to a flattened CHW feature map.

pub mod bounded;
pub mod conv_dense;
pub mod mode;
pub mod operator;
pub mod stage;
pub mod study;
pub mod svd;
#[cfg(test)]
mod test_util;

pub use conv_dense::{DenseMatrix, conv2d_as_dense, conv2d_output_hw};
pub use mode::{
    Obfuscated, ObfuscatedBatch, ObfuscationMode, bytes_per_query, obfuscate, obfuscate_batch,
    raw_bytes,
};
pub use svd::SignalBasis;

/// Everything that can go wrong in the obfuscate stage.
#[derive(Debug, thiserror::Error)]
pub enum ObfuscateError {
    /// A slice does not have the length its shape requires.
    #[error("{what}: expected {expected} values, got {got}")]
    DimensionMismatch {
        /// What was being checked (e.g. "feature vector").
        what: &'static str,
        /// Length the shape requires.
        expected: usize,
        /// Length actually given.
        got: usize,
    },
    /// A dense matrix would exceed the allowed number of elements.
    #[error(
        "{what} would be {rows} x {cols} = {elements} elements, more than the limit of {limit}"
    )]
    MatrixTooLarge {
        /// Which matrix.
        what: &'static str,
        /// Its row count.
        rows: usize,
        /// Its column count.
        cols: usize,
        /// rows * cols (u128 so it cannot overflow).
        elements: u128,
        /// The largest number of elements allowed.
        limit: usize,
    },
    /// faer's SVD did not converge.
    #[error("SVD of the {rows} x {cols} operator did not converge")]
    SvdFailed {
        /// Rows of the operator.
        rows: usize,
        /// Columns of the operator.
        cols: usize,
    },
    /// A scalar parameter is out of its allowed range.
    #[error("{what} must be {allowed}, got {value}")]
    InvalidParameter {
        /// Parameter name.
        what: &'static str,
        /// The value given, formatted.
        value: String,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// An input contains NaN or an infinity.
    #[error("{what} contains a non-finite value ({value}) at index {index}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Flat index of the first bad value.
        index: usize,
        /// The bad value.
        value: f32,
    },
    /// A coefficient index does not name a component of the basis.
    #[error("component index {index} is out of range: the basis has {rank} components (0..{rank})")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// Number of components in the basis.
        rank: usize,
    },
}

/// Checks that `data` has `expected` values.
pub(crate) fn check_len(
    what: &'static str,
    data: &[f32],
    expected: usize,
) -> Result<(), ObfuscateError> {
    if data.len() == expected {
        Ok(())
    } else {
        Err(ObfuscateError::DimensionMismatch {
            what,
            expected,
            got: data.len(),
        })
    }
}

/// Checks that every value of `data` is finite.
pub(crate) fn check_finite(what: &'static str, data: &[f32]) -> Result<(), ObfuscateError> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(ObfuscateError::NonFinite {
            what,
            index,
            value: data[index],
        }),
    }
}
