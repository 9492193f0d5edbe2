//! Stage: attack (in progress).
