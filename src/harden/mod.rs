//! `splitguard harden`: the most private deployment within an accuracy and
//! an edge budget (DESIGN section 10, "Closing the loop"; issue 17).
//!
//! The search is built from the parts every run already has: a candidate is
//! the user's recipe with one defense at one strength, pruning and
//! obfuscation switched by `--set` overrides ([`space`]), and each
//! evaluation is an ordinary run folder made by [`crate::pipeline::run`].
//! The undefended reference is evaluated first at every rung; candidates
//! are evaluated cheaply (few epochs, one attacker with few epochs) and the
//! least leaking within the budgets are promoted by successive halving to
//! the full rung, the recipe's own training and audit (with its repeats).
//! Leakage is judged conservatively: the strongest reconstruction attack at
//! the deployed split, by the upper end of its interval. The decisions are
//! pure functions ([`select`]); the I/O is at the edges ([`search`] runs and
//! reads folders, [`answer`] writes `harden.json/.md/.html` and
//! `hardened.yaml`).

pub mod answer;
mod config;
pub mod search;
pub mod select;
pub mod space;

pub use answer::Answer;
pub use config::{DefenseSpace, HardenConfig, Rung};
pub use search::{HardenOptions, HardenOutcome, PLAN, harden};
