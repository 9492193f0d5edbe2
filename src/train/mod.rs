//! Stage: train (in progress).
