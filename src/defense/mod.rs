//! Stage: defense (in progress).
