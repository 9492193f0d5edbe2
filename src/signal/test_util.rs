//! Shared helpers for the stage's unit tests: seeded random data and naive
//! re-computations of the definitions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Uniform values in [-1, 1] from a fixed seed.
pub(crate) fn random_vec(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Naive `W x` for row-major `W`, in f64.
pub(crate) fn matvec(w: &[f32], rows: usize, cols: usize, x: &[f32]) -> Vec<f64> {
    (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| f64::from(w[r * cols + c]) * f64::from(x[c]))
                .sum()
        })
        .collect()
}

/// Largest absolute element-wise difference.
pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `||W z - W z'||` computed directly, in f64.
pub(crate) fn direct_distortion(w: &[f32], rows: usize, cols: usize, z: &[f32], zp: &[f32]) -> f64 {
    let (wz, wzp) = (matvec(w, rows, cols, z), matvec(w, rows, cols, zp));
    wz.iter()
        .zip(&wzp)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt()
}

/// Asserts equal lengths and max |a - b| < tol.
pub(crate) fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(a.len() == b.len() && d < tol, "{a:?} vs {b:?}");
}
