//! The allocator's settings for the binaries that install mimalloc as their
//! global allocator (the CLI and the equal-work benchmarks).
//!
//! A training step allocates and frees tensors of megabytes. mimalloc 3
//! hands freed memory back to the kernel after a second by default
//! (`purge_delay`), and the next epoch pays page faults and the kernel's
//! zeroing to get it back (`perf`: `clear_page_erms` and `memset` were
//! 8-13% of an audit decoder's step). Never handing it back made a whole
//! decoder attack 4-6% faster (README, benchmarks) and the quickstart
//! 106.1 -> 101.9 s; the process keeps its peak memory until it exits
//! instead (the quickstart's peak: 347 -> 341 MB in that run, 344 -> 370 MB
//! in an earlier one).

use std::ffi::{c_int, c_long};

// The `mimalloc` crate links the C library these symbols come from.
use mimalloc as _;

unsafe extern "C" {
    /// mimalloc's `mi_option_set_default`: sets an option unless the
    /// environment (`MIMALLOC_<OPTION>`) already did.
    fn mi_option_set_default(option: c_int, value: c_long);
}

/// `mi_option_purge_delay` in the `mi_option_e` enum of the bundled
/// mimalloc 3's `mimalloc.h` (libmimalloc-sys 0.1.49, pinned by Cargo.lock).
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Keeps freed memory in the process for reuse (mimalloc's purge delay -1),
/// unless `MIMALLOC_PURGE_DELAY` is set in the environment. Call it first
/// thing in `main` of a binary whose global allocator is mimalloc, before
/// any thread starts (mimalloc reads the option without synchronisation).
pub fn keep_freed_memory() {
    // SAFETY: sets one integer in mimalloc's option table; the index is a
    // valid option (checked by mimalloc, which ignores invalid ones).
    unsafe { mi_option_set_default(MI_OPTION_PURGE_DELAY, -1) }
}
