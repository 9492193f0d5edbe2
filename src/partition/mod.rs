//! Stage: partition, choosing where to split the network (DESIGN.md section 8).
//!
//! Follows the split-point analysis of seed 002, "Golden Partition Zone"
//! (arXiv 2506.15412), as summarised in `seeds/README.md`: on one batch of
//! real inputs, flatten every candidate split's features, measure how tightly
//! they cluster by predicted class ([`analysis`]), find the representational
//! transition where that intra-class variance drops most sharply
//! ([`transition`]), and pick the split inside the golden zone (at and after
//! the transition) that fits the edge compute budget ([`budget`]).
//!
//! Everything here works on plain slices and numbers, not tensors: the model
//! stage extracts features and FLOPs, this stage only does arithmetic, so it
//! is testable on hand-built inputs and runs the same on any backend.

pub mod analysis;
pub mod budget;
pub mod stage;
pub mod transition;

pub use analysis::{ClassStats, ENTROPY_VARIANCE_FLOOR, LayerStats, layer_stats};
pub use budget::{SplitCandidate, SplitChoice, choose_split};
pub use stage::{PartitionConfig, PartitionReport, PartitionRow, analyse};
pub use transition::{Transition, detect_transition, golden_zone};

/// What can go wrong in the partition stage; every message names the bad
/// value and what was allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PartitionError {
    /// An input that must hold data holds none.
    #[error("{what} is empty; at least one element is required")]
    Empty {
        /// Which input was empty.
        what: &'static str,
    },
    /// Two inputs disagree on a size.
    #[error("{what}: expected length {expected}, got {got}")]
    LengthMismatch {
        /// Which input has the wrong length, and what it must match.
        what: &'static str,
        /// The length required by the other inputs.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// Variances need at least two samples.
    #[error("need at least 2 samples to measure variance, got n = {n}")]
    TooFewSamples {
        /// The number of samples given.
        n: usize,
    },
    /// `n * dim` does not fit in `usize`.
    #[error("feature matrix size n = {n} x dim = {dim} overflows usize")]
    SizeOverflow {
        /// Number of samples.
        n: usize,
        /// Feature dimension.
        dim: usize,
    },
    /// A NaN or infinite number where only finite ones are allowed.
    #[error("{what}[{index}] = {value} is not finite; only finite values are allowed")]
    NonFinite {
        /// Which input holds it.
        what: &'static str,
        /// Its position in that input.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// Transition detection needs a drop, so two candidates at least.
    #[error("need at least 2 candidate splits to detect a transition, got {got}")]
    TooFewCandidates {
        /// The number of candidates given.
        got: usize,
    },
    /// The closeness margin for the two largest drops is out of range.
    #[error("margin must be finite and in [0, 1], got {margin}")]
    InvalidMargin {
        /// The margin given.
        margin: f64,
    },
    /// A transition index that does not name one of the candidates.
    #[error("transition at candidate {index} is out of range for {n_candidates} candidates")]
    TransitionOutOfRange {
        /// The transition's candidate index.
        index: usize,
        /// The number of candidates.
        n_candidates: usize,
    },
    /// Two candidates claim the same split point.
    #[error(
        "split {split} appears more than once in the candidate list; split points must be unique"
    )]
    DuplicateSplit {
        /// The repeated split point.
        split: usize,
    },
}
