//! Stage: partition (in progress).
