//! The signal content of split features with respect to the server's first
//! layer (seed 004, Samragh et al., sections 3 and 4.2): that layer as a
//! matrix `W` ([`operator`], [`conv_dense`]) and the right singular vectors
//! of `W` that split a feature vector into what `W` sees and its null
//! content ([`svd`]). It sits below the defenses, which use it in training
//! (signal-content dropout), and below the obfuscate stage, which sends
//! only the signal content; both re-export it.

pub mod conv_dense;
pub mod operator;
pub mod svd;
#[cfg(test)]
pub(crate) mod test_util;

/// Everything that can go wrong with the signal content and its
/// obfuscation.
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
