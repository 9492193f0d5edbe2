//! Stage: metrics (in progress).
