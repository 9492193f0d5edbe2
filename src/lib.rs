//! splitguard: hardening neural networks for split inference.
//!
//! (Overview written as the crate takes shape.)

pub mod attack;
pub mod data;
pub mod fsutil;
pub mod defense;
pub mod metrics;
pub mod model;
pub mod obfuscate;
pub mod partition;
pub mod prune;
pub mod recipe;
pub mod report;
pub mod train;
