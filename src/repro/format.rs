//! Numbers as the reproductions print them: means with their 95% interval.

use crate::compare::table::cell;
use crate::metrics::{Difference, t_interval, welch_difference};
use crate::report::repeats::interval_text;

/// `mean [lo, hi]` over repeats (Student t), `mean (n=1)` for one value,
/// `-` for none.
pub fn mean_ci(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let iv = t_interval(values);
    if iv.lo.is_none() {
        return format!("{:.digits$} (n={})", iv.mean, iv.n);
    }
    format!("{:.digits$} {}", iv.mean, interval_text(&iv, digits))
}

/// `mean(b) - mean(a)` as text with its Welch interval, and the difference
/// itself (`None` when a sample is empty).
pub fn difference(a: &[f64], b: &[f64], digits: usize) -> (String, Option<Difference>) {
    if a.is_empty() || b.is_empty() {
        return ("-".into(), None);
    }
    let d = welch_difference(a, b);
    let text = match (d.lo, d.hi) {
        (Some(lo), Some(hi)) => {
            format!("{:+.digits$} [{lo:+.digits$}, {hi:+.digits$}]", d.diff)
        }
        _ => format!("{:+.digits$}", d.diff),
    };
    (text, Some(d))
}

/// Whether `mean(b)` is below `mean(a)` beyond seed noise (the Welch
/// interval of the difference lies below 0).
pub fn lower(d: Option<Difference>) -> bool {
    d.is_some_and(|d| d.hi.is_some_and(|hi| hi < 0.0))
}

/// The mean of `values` (NaN for none).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The median of `values` (NaN for none).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A Markdown table from a header and rows (pipes in cells escaped).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let mut s = line(header.iter().map(|h| cell(h)).collect());
    s += &format!("|{}\n", "---|".repeat(header.len()));
    for r in rows {
        s += &line(r.iter().map(|c| cell(c)).collect());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn tables_escape_pipes_and_lower_reads_the_interval() {
        let t = table(&["a|b"], &[vec!["|z|".into()]]);
        assert_eq!(t, "| a\\|b |\n|---|\n| \\|z\\| |\n");
        let (_, d) = difference(&[3.0, 3.1, 2.9], &[1.0, 1.1, 0.9], 2);
        assert!(lower(d));
        let (_, d) = difference(&[1.0, 1.1, 0.9], &[3.0, 3.1, 2.9], 2);
        assert!(!lower(d));
        assert!(!lower(None));
    }

    #[test]
    fn mean_ci_says_when_there_is_no_interval() {
        assert_eq!(mean_ci(&[1.5], 2), "1.50 (n=1)");
        assert_eq!(mean_ci(&[], 2), "-");
        // Two values 1 and 3: mean 2, sd sqrt(2), t(0.975, 1) = 12.706.
        let half = 12.706_204_736 * 2f64.sqrt() / 2f64.sqrt();
        assert_eq!(
            mean_ci(&[1.0, 3.0], 2),
            format!("2.00 [{:.2}, {:.2}]", 2.0 - half, 2.0 + half)
        );
    }
}
