//! Student-t confidence intervals over repeats (DESIGN section 9: "every
//! number carries an interval: ... a t interval over repeats").
//!
//! A recipe with `repeats: N` runs N times from derived seeds; each number
//! of the report is then a sample of N values, and its 95% interval is
//! `mean +- t_{0.975, N-1} * sd / sqrt(N)` with `sd` the sample standard
//! deviation (divisor N - 1; Student, 1908). The quantile is computed, not
//! tabled: the t CDF is written through the regularized incomplete beta
//! function, `F(t) = 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2` for `t >= 0`
//! (Abramowitz & Stegun 26.7.1 with 26.5.27), evaluated by its continued
//! fraction (Numerical Recipes, 3rd ed., section 6.4), and inverted by
//! bisection, so any degree of freedom gets an exact-to-float quantile.
//!
//! One value has no spread: its standard deviation and interval are `None`
//! (`null` in JSON), never a zero-width interval that would claim certainty.

use serde::{Deserialize, Serialize};

/// The confidence level of [`t_interval`].
pub const CONFIDENCE: f64 = 0.95;

/// Mean, sample standard deviation and 95% Student-t interval of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Number of values.
    pub n: usize,
    /// Their mean (NaN for no values).
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`); `None` for fewer than 2 values.
    pub sd: Option<f64>,
    /// Lower end of the 95% interval; `None` for fewer than 2 values.
    pub lo: Option<f64>,
    /// Upper end of the 95% interval; `None` for fewer than 2 values.
    pub hi: Option<f64>,
}

impl Interval {
    /// Half the interval's width, `t * sd / sqrt(n)` (`None` without an interval).
    pub fn half_width(&self) -> Option<f64> {
        Some((self.hi? - self.lo?) / 2.0)
    }
}

/// The 95% Student-t interval of `values` (see the module docs).
pub fn t_interval(values: &[f64]) -> Interval {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Interval {
            n,
            mean,
            sd: None,
            lo: None,
            hi: None,
        };
    }
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    let sd = (ss / (n - 1) as f64).sqrt();
    let half = t_quantile(0.5 + CONFIDENCE / 2.0, (n - 1) as f64) * sd / (n as f64).sqrt();
    Interval {
        n,
        mean,
        sd: Some(sd),
        lo: Some(mean - half),
        hi: Some(mean + half),
    }
}

/// The difference of two samples' means, `mean(b) - mean(a)`, with its 95%
/// Welch t interval (unequal variances; Welch 1947, with the
/// Welch-Satterthwaite degrees of freedom).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// `mean(b) - mean(a)`.
    pub diff: f64,
    /// Welch-Satterthwaite degrees of freedom (`None` when both samples have
    /// no spread, or either has fewer than 2 values).
    pub df: Option<f64>,
    /// Lower end of the 95% interval (`None` as for `df`).
    pub lo: Option<f64>,
    /// Upper end of the 95% interval.
    pub hi: Option<f64>,
}

impl Difference {
    /// Whether the interval excludes 0: the means differ beyond chance at
    /// the 5% level (`None` without an interval).
    pub fn excludes_zero(&self) -> Option<bool> {
        Some(self.lo? > 0.0 || self.hi? < 0.0)
    }
}

/// `mean(b) - mean(a)` with its 95% Welch t interval (see [`Difference`]).
pub fn welch_difference(a: &[f64], b: &[f64]) -> Difference {
    let (ia, ib) = (t_interval(a), t_interval(b));
    let diff = ib.mean - ia.mean;
    let none = Difference {
        diff,
        df: None,
        lo: None,
        hi: None,
    };
    let (Some(sa), Some(sb)) = (ia.sd, ib.sd) else {
        return none;
    };
    let (va, vb) = (sa * sa / ia.n as f64, sb * sb / ib.n as f64);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return none;
    }
    let df = se2 * se2 / (va * va / (ia.n - 1) as f64 + vb * vb / (ib.n - 1) as f64);
    let half = t_quantile(0.5 + CONFIDENCE / 2.0, df) * se2.sqrt();
    Difference {
        diff,
        df: Some(df),
        lo: Some(diff - half),
        hi: Some(diff + half),
    }
}

/// The `p` quantile of Student's t distribution with `df` degrees of
/// freedom: the `t` with `P(T <= t) = p`. NaN unless `0 < p < 1` and `df > 0`.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0 && df > 0.0 && df.is_finite()) {
        return f64::NAN;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    if p == 0.5 {
        return 0.0;
    }
    // Bracket, then bisect: the CDF is increasing in t.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while t_cdf(hi, df) < p {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        match t_cdf(mid, df) < p {
            true => lo = mid,
            false => hi = mid,
        }
    }
    0.5 * (lo + hi)
}

/// `P(T <= t)` for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / (df + t * t), df / 2.0, 0.5);
    match t >= 0.0 {
        true => 1.0 - tail,
        false => tail,
    }
}

/// The regularized incomplete beta function `I_x(a, b)`, for `a, b > 0`.
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2);
    // beyond it, use the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
    match x < (a + 1.0) / (a + b + 2.0) {
        true => front * beta_fraction(x, a, b) / a,
        false => 1.0 - front * beta_fraction(1.0 - x, b, a) / b,
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// `ln Gamma(x)` for `x > 0` (Lanczos, g = 7, 9 terms; ~15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_published_table() {
        // Two-sided 95% critical values (e.g. NIST/SEMATECH e-Handbook, 1.3.6.7.2).
        for (df, want) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (10.0, 2.228),
            (30.0, 2.042),
            (100.0, 1.984),
        ] {
            let got = t_quantile(0.975, df);
            assert!((got - want).abs() < 5e-4, "df {df}: {got} vs {want}");
        }
        // Closed forms: df 1 is Cauchy, df 2 is t = (2p - 1) / sqrt(2 p (1 - p)).
        let p: f64 = 0.975;
        let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
        assert!((t_quantile(p, 1.0) - cauchy).abs() < 1e-9);
        let df2 = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
        assert!((t_quantile(p, 2.0) - df2).abs() < 1e-9);
        // Large df approaches the normal quantile 1.959964.
        assert!((t_quantile(0.975, 1e6) - 1.959_964).abs() < 1e-4);
        // Symmetry and the centre.
        assert_eq!(t_quantile(0.5, 3.0), 0.0);
        assert!((t_quantile(0.025, 4.0) + t_quantile(0.975, 4.0)).abs() < 1e-12);
        assert!(t_quantile(1.0, 3.0).is_nan() && t_quantile(0.9, 0.0).is_nan());
    }

    #[test]
    fn t_interval_equals_a_naive_recomputation_on_hand_data() {
        let xs = [24.1, 25.3, 23.8];
        let iv = t_interval(&xs);
        // By hand: mean 24.4, deviations -0.3, 0.9, -0.6, squares sum 1.26,
        // sd = sqrt(1.26 / 2) = 0.793725, t(0.975, 2) = 4.302653.
        let mean = (24.1 + 25.3 + 23.8) / 3.0;
        let sd = (((24.1f64 - mean).powi(2) + (25.3 - mean).powi(2) + (23.8 - mean).powi(2)) / 2.0)
            .sqrt();
        let half = 4.302_652_729_911 * sd / 3f64.sqrt();
        assert_eq!(iv.n, 3);
        assert!((iv.mean - 24.4).abs() < 1e-12);
        assert!((iv.sd.unwrap() - 0.793_725_393_319_377).abs() < 1e-12);
        assert!((iv.lo.unwrap() - (mean - half)).abs() < 1e-9);
        assert!((iv.hi.unwrap() - (mean + half)).abs() < 1e-9);
        assert!((iv.half_width().unwrap() - 1.971_723_18).abs() < 1e-7);
        // Two values: t(0.975, 1) = 12.706205.
        let iv = t_interval(&[0.9, 0.95]);
        let half = 12.706_204_736 * (0.05f64 / 2f64.sqrt()) / 2f64.sqrt();
        assert!((iv.half_width().unwrap() - half).abs() < 1e-8);
        // Equal values: a true zero spread.
        let iv = t_interval(&[2.0, 2.0, 2.0]);
        assert_eq!((iv.sd, iv.lo, iv.hi), (Some(0.0), Some(2.0), Some(2.0)));
    }

    #[test]
    fn welch_difference_equals_a_naive_recomputation() {
        let a = [20.0, 22.0, 21.0];
        let b = [18.0, 18.5, 17.0, 18.1];
        let d = welch_difference(&a, &b);
        // By hand: means 21 and 17.9, variances 1 and 0.406667.
        let (ma, mb) = (21.0, 17.9);
        let va = ((20.0f64 - ma).powi(2) + 1.0 + 0.0) / 2.0;
        let vb = [18.0f64, 18.5, 17.0, 18.1]
            .iter()
            .map(|x| (x - mb).powi(2))
            .sum::<f64>()
            / 3.0;
        let (sa, sb) = (va / 3.0, vb / 4.0);
        let df = (sa + sb).powi(2) / (sa * sa / 2.0 + sb * sb / 3.0);
        let half = t_quantile(0.975, df) * (sa + sb).sqrt();
        assert!((d.diff - (mb - ma)).abs() < 1e-12);
        assert!((d.df.unwrap() - df).abs() < 1e-9);
        assert!((d.lo.unwrap() - (mb - ma - half)).abs() < 1e-9);
        assert_eq!(d.excludes_zero(), Some(true));
        // Noisy samples that overlap: no difference shown.
        let d = welch_difference(&[1.0, 3.0], &[2.0, 2.5]);
        assert_eq!(d.excludes_zero(), Some(false));
        // One value, or no spread at all: no interval.
        assert_eq!(welch_difference(&[1.0], &[2.0, 3.0]).excludes_zero(), None);
        assert_eq!(welch_difference(&[1.0, 1.0], &[2.0, 2.0]).lo, None);
    }

    #[test]
    fn one_value_has_no_interval() {
        let iv = t_interval(&[0.97]);
        assert_eq!(iv.n, 1);
        assert_eq!(iv.mean, 0.97);
        assert_eq!(
            (iv.sd, iv.lo, iv.hi, iv.half_width()),
            (None, None, None, None)
        );
        let json = serde_json::to_string(&iv).unwrap();
        assert_eq!(json, r#"{"n":1,"mean":0.97,"sd":null,"lo":null,"hi":null}"#);
        assert_eq!(serde_json::from_str::<Interval>(&json).unwrap(), iv);
    }
}
