//! Stage: prune (in progress).
