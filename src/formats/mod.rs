//! The file formats splitguard writes and reads, below every stage that
//! uses them: PNG image grids ([`grid`]), NPY arrays ([`npy`]) and SVG
//! plots ([`plot`]). The attacks, the obfuscation study and the reports all
//! write through these; `report::{grid, npy, plot}` re-export them.

pub mod grid;
pub mod npy;
pub mod plot;
