//! Correlation coefficients, used to check how well an attacker's own quality
//! estimate (DCI cycle consistency, DESIGN section 9.3; I2F, section 9.5)
//! predicts the true per-image error.
//!
//! Both return `None` rather than NaN when the coefficient is undefined, so a
//! report can say "undefined" instead of carrying a NaN into JSON.

/// Pearson's r: `cov(x, y) / (sd(x) sd(y))`, computed on centred values.
///
/// `None` if the slices differ in length, hold fewer than 2 points, contain a
/// non-finite value, or either has zero variance.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// Spearman's rho: Pearson's r of the ranks, tied values sharing the average
/// of the ranks they span.
///
/// `None` in the same cases as [`pearson`] (all values tied = zero variance).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// 1-based ranks, ties given the mean of their positions. Values are finite.
fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1..=end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn pearson_of_hand_computed_example() {
        // x centred: -1, 0, 1; y centred: -2/3, -2/3, 4/3.
        // sxy = 2/3 + 0 + 4/3 = 2, sxx = 2, syy = 4/9 + 4/9 + 16/9 = 8/3.
        let r = pearson(&[1.0, 2.0, 3.0], &[1.0, 1.0, 3.0]).unwrap();
        assert!(
            close(r, 2.0 / (2.0f64.sqrt() * (8.0f64 / 3.0).sqrt())),
            "{r}"
        );
        assert!(close(r, 0.75f64.sqrt()));
    }

    #[test]
    fn pearson_of_exact_lines_is_plus_or_minus_one() {
        let x = [0.5, 1.5, -2.0, 4.0];
        let up: Vec<f64> = x.iter().map(|v| 3.0 * v + 1.0).collect();
        let down: Vec<f64> = x.iter().map(|v| -0.5 * v).collect();
        assert!(close(pearson(&x, &up).unwrap(), 1.0));
        assert!(close(pearson(&x, &down).unwrap(), -1.0));
    }

    #[test]
    fn pearson_is_none_when_undefined() {
        assert_eq!(pearson(&[1.0], &[2.0]), None);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0, 20.0, 20.0]),
            vec![1.5, 4.0, 1.5, 6.0, 4.0, 4.0]
        );
    }

    #[test]
    fn spearman_of_monotone_but_nonlinear_is_one() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| v.powi(3)).collect();
        assert!(close(spearman(&x, &y).unwrap(), 1.0));
        assert!(pearson(&x, &y).unwrap() < 0.99);
    }

    #[test]
    fn spearman_with_ties_matches_hand_value() {
        // Ranks x: 1, 2.5, 2.5, 4; ranks y: 1, 2, 3, 4.
        // Centred: x -1.5, 0, 0, 1.5; y -1.5, -0.5, 0.5, 1.5.
        // sxy = 2.25 + 2.25 = 4.5, sxx = 4.5, syy = 5 -> rho = 4.5 / sqrt(22.5).
        let rho = spearman(&[1.0, 5.0, 5.0, 9.0], &[0.1, 0.2, 0.3, 0.4]).unwrap();
        assert!(close(rho, 4.5 / 22.5f64.sqrt()), "{rho}");
        assert_eq!(spearman(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), None);
    }
}
