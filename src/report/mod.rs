//! Stage: report (in progress).
