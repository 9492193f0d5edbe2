//! Stage: model (in progress).
