//! Stage: obfuscate (in progress).
