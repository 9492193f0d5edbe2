//! The metrics stage's error type.

/// What can go wrong when computing a metric from caller-supplied data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// Two inputs that must pair up element by element differ in length.
    #[error("{left_name} has {left} values but {right_name} has {right}; they must be equal")]
    LengthMismatch {
        /// Name of the first input.
        left_name: &'static str,
        /// Length of the first input.
        left: usize,
        /// Name of the second input.
        right_name: &'static str,
        /// Length of the second input.
        right: usize,
    },
    /// A flat pixel buffer does not hold `n` images of the given shape.
    #[error(
        "{what} has {len} values, but {n} images of shape [{c}, {h}, {w}] need {expected}",
        c = shape[0],
        h = shape[1],
        w = shape[2]
    )]
    ShapeMismatch {
        /// Which buffer.
        what: &'static str,
        /// Its length.
        len: usize,
        /// Number of images claimed.
        n: usize,
        /// Image shape `[C, H, W]` claimed.
        shape: [usize; 3],
        /// `n * C * H * W` (saturating).
        expected: usize,
    },
    /// The image count or an image dimension is zero.
    #[error(
        "{n} images of shape [{c}, {h}, {w}] hold no pixels; the count and every dimension must be >= 1",
        c = shape[0],
        h = shape[1],
        w = shape[2]
    )]
    EmptyShape {
        /// Number of images claimed.
        n: usize,
        /// Image shape `[C, H, W]` claimed.
        shape: [usize; 3],
    },
    /// A pixel value is NaN or infinite.
    #[error("{what}[{index}] is {value}; pixel values must be finite")]
    NonFinite {
        /// Which buffer.
        what: &'static str,
        /// Flat index of the first bad value.
        index: usize,
        /// The bad value.
        value: f32,
    },
    /// An input that needs at least one element is empty.
    #[error("{what} is empty; need at least one value")]
    Empty {
        /// Which input.
        what: &'static str,
    },
    /// A flat logits buffer cannot be cut into rows of `cols` values.
    #[error(
        "logits have {len} values, which is not a whole number of rows of {cols} columns \
         (columns must be in 1..=4294967295)"
    )]
    RaggedRows {
        /// Length of the logits buffer.
        len: usize,
        /// Columns per row asked for.
        cols: usize,
    },
}
