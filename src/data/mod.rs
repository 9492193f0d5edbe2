//! Stage: data (in progress).
