//! Numbers as the reproductions print them: means with their 95% interval.

use crate::metrics::{Interval, t_interval, welch_difference};

/// `mean [lo, hi]` over repeats (Student t), `mean (n=1)` for one value,
/// `-` for none.
pub fn mean_ci(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "-".into();
    }
    interval_text(&t_interval(values), digits)
}

/// An interval as `mean [lo, hi]`.
pub fn interval_text(iv: &Interval, digits: usize) -> String {
    match (iv.lo, iv.hi) {
        (Some(lo), Some(hi)) => format!("{:.digits$} [{lo:.digits$}, {hi:.digits$}]", iv.mean),
        _ => format!("{:.digits$} (n={})", iv.mean, iv.n),
    }
}

/// `mean(b) - mean(a)` with its Welch interval, and whether it excludes 0.
pub fn difference(a: &[f64], b: &[f64], digits: usize) -> (String, Option<bool>) {
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
    (text, d.excludes_zero())
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

/// A Markdown table from a header and rows.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        s += &format!("| {} |\n", r.join(" | "));
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
