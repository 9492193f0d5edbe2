//! splitguard: hardening neural networks for split inference, and auditing
//! what still leaks.
//!
//! In split inference an edge device runs the first blocks of a network and
//! sends the features to a server that runs the rest. Whoever sees those
//! features can try to rebuild the private input or read attributes out of
//! it. splitguard trains networks with defenses, chooses and protects the
//! split, and attacks its own result with strong attackers.
//!
//! # Main types and how data flows
//!
//! - [`recipe::Recipe`]: a YAML run description (parsed, then validated with
//!   every problem reported by path).
//! - [`data::Dataset`] / [`data::Splits`]: in-memory images with a target and
//!   hidden attributes, split into `train` (owner), `aux` (attacker) and
//!   `test` (victims' queries).
//! - [`model::ModelSpec`] -> [`model::SplitModel`]: a serializable list of
//!   blocks and the burn module built from it; split `k` puts blocks `1..=k`
//!   on the edge. [`model::Checkpoint`] stores spec + weights (+ optimiser).
//! - [`train::train`] with a list of [`defense::Defense`]s: the loop is
//!   written once; each defense adds a loss term or transforms the features.
//! - [`attack`]: attackers that see exactly what the server sees and return
//!   [`attack::AttackRecord`]s with [`metrics`] (MSE, PSNR, SSIM, accuracy).
//! - [`report::Report`]: `report.json` (stable keys) and `report.md`.
//! - [`pipeline::run`] chains the stages for `splitguard run` (with
//!   `repeats: N`, N times from derived seeds, then
//!   [`report::RepeatsReport`]: every number's mean and t interval);
//!   [`compare`] puts finished runs (or a sweep's) in one table and plot.

pub mod allocator;
pub mod attack;
pub mod compare;
pub mod data;
pub mod defense;
mod error;
pub mod formats;
pub mod fsutil;
pub mod harden;
pub mod leakage;
pub mod metrics;
pub mod model;
pub mod obfuscate;
pub mod partition;
pub mod pipeline;
pub mod prune;
pub mod recipe;
pub mod report;
pub mod repro;
pub mod run_folder;
pub mod signal;
pub mod train;

pub use error::{Error, ErrorKind};
