//! Stage: recipe (in progress).
