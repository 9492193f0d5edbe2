//! Seeded bootstrap intervals for a mean over test queries.
//!
//! An attack's PSNR, MSE, SSIM or accuracy is a mean over the `test` queries;
//! its 95% interval comes from the percentile bootstrap (Efron & Tibshirani,
//! *An Introduction to the Bootstrap*, 1993, section 13.3): draw `n` of the
//! `n` per-query values with replacement, `B` times, take the mean of each
//! draw, and report the 2.5% and 97.5% quantiles of those means. The draws
//! come from a generator seeded by the caller, so a report stays
//! byte-identical from run to run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Resamples per interval (B): enough that the 2.5% / 97.5% quantiles move
/// by well under a tenth of the interval's width between seeds.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The percentile-bootstrap 95% interval `[lo, hi]` of the mean of `values`,
/// from `resamples` draws seeded by `seed`. `None` for fewer than two values
/// or no resamples (there is no spread to resample); non-finite values are
/// kept (an infinite PSNR makes the interval infinite, honestly).
pub fn bootstrap_mean_ci(values: &[f64], resamples: usize, seed: u64) -> Option<[f64; 2]> {
    let n = values.len();
    if n < 2 || resamples == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Some([quantile(&means, 0.025), quantile(&means, 0.975)])
}

/// The interval of an accuracy measured as `correct / n`: the bootstrap of
/// `correct` ones and `n - correct` zeros (the resampled mean depends only
/// on the counts, so the per-query order does not matter).
pub fn bootstrap_accuracy_ci(accuracy: f64, n: usize, seed: u64) -> Option<[f64; 2]> {
    let correct = (accuracy * n as f64).round() as usize;
    let values: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i < correct))).collect();
    bootstrap_mean_ci(&values, BOOTSTRAP_RESAMPLES, seed)
}

/// The `q` quantile of sorted `v` with linear interpolation between order
/// statistics (type 7 of Hyndman & Fan, numpy's default).
pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition written out the long way: every resample's index list
    /// drawn from the same generator, its mean, then the sorted quantiles.
    fn naive(values: &[f64], b: usize, seed: u64) -> [f64; 2] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = values.len();
        let mut means = Vec::new();
        for _ in 0..b {
            let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let sample: Vec<f64> = idx.iter().map(|&i| values[i]).collect();
            means.push(sample.iter().sum::<f64>() / n as f64);
        }
        means.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let at = |q: f64| {
            let pos = q * (b - 1) as f64;
            let (l, h) = (pos.floor() as usize, pos.ceil() as usize);
            means[l] * (1.0 - (pos - l as f64)) + means[h] * (pos - l as f64)
        };
        [at(0.025), at(0.975)]
    }

    #[test]
    fn matches_a_naive_recomputation_on_hand_data() {
        let v = [12.0, 15.5, 9.25, 20.0, 18.0, 11.0, 14.5];
        let got = bootstrap_mean_ci(&v, 500, 9).unwrap();
        let want = naive(&v, 500, 9);
        assert!((got[0] - want[0]).abs() < 1e-12 && (got[1] - want[1]).abs() < 1e-12);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!(got[0] < mean && mean < got[1], "{got:?} around {mean}");
        assert!(got[0] >= 9.25 && got[1] <= 20.0);
    }

    #[test]
    fn width_matches_the_normal_theory_for_many_queries() {
        // 400 values with sample standard deviation s: the mean's 95%
        // interval is about +-1.96 s / sqrt(n).
        let v: Vec<f64> = (0..400).map(|i| ((i * 37) % 101) as f64).collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let [lo, hi] = bootstrap_mean_ci(&v, BOOTSTRAP_RESAMPLES, 1).unwrap();
        let theory = 2.0 * 1.96 * sd / n.sqrt();
        assert!(
            ((hi - lo) / theory - 1.0).abs() < 0.1,
            "{} vs {theory}",
            hi - lo
        );
        assert!(((lo + hi) / 2.0 - mean).abs() < 0.1 * theory);
    }

    #[test]
    fn seeded_and_degenerate_cases() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(bootstrap_mean_ci(&v, 100, 3), bootstrap_mean_ci(&v, 100, 3));
        let w: Vec<f64> = (0..20).map(|i| (i * i % 13) as f64).collect();
        assert_ne!(bootstrap_mean_ci(&w, 100, 3), bootstrap_mean_ci(&w, 100, 4));
        assert_eq!(bootstrap_mean_ci(&[5.0], 100, 3), None);
        assert_eq!(bootstrap_mean_ci(&v, 0, 3), None);
        assert_eq!(bootstrap_mean_ci(&[2.0; 10], 50, 0), Some([2.0, 2.0]));
    }

    #[test]
    fn accuracy_interval_brackets_the_rate() {
        let [lo, hi] = bootstrap_accuracy_ci(0.7, 200, 5).unwrap();
        assert!(lo < 0.7 && 0.7 < hi);
        // Binomial standard error sqrt(0.7 * 0.3 / 200) = 0.0324.
        assert!(((hi - lo) / (2.0 * 1.96 * 0.0324) - 1.0).abs() < 0.15);
        assert_eq!(bootstrap_accuracy_ci(1.0, 50, 5), Some([1.0, 1.0]));
    }
}
