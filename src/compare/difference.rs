//! Did a setting change a number beyond seed-to-seed noise? For runs with
//! `repeats`, each run against the first such run (the baseline, e.g. a
//! sweep's first point): the difference of the means with its 95% Welch t
//! interval over the two runs' repeats ([`crate::metrics::welch_difference`]),
//! for the target accuracy and, at every split both runs attacked, the
//! reconstruction PSNR or the attribute-attack accuracy.
//!
//! Comparing two intervals by eye (overlap or not) is conservative; the
//! interval of the difference answers the question directly.

use std::fmt::Write as _;

use super::RunSummary;
use crate::metrics::{Difference, welch_difference};
use crate::report::markdown::table_head;

/// One number of one run against the baseline run.
#[derive(Clone, Debug, PartialEq)]
pub struct DifferenceRow {
    /// The run's label.
    pub run: String,
    /// `target accuracy`, or the attack's name (with `[attribute]`).
    pub what: String,
    /// The split, for attacks.
    pub split: Option<usize>,
    /// `accuracy`, `psnr`.
    pub metric: String,
    /// Run minus baseline, with its interval.
    pub difference: Difference,
}

/// The differences of every run with repeats from the first one (none when
/// fewer than two runs have repeats).
pub fn differences(runs: &[RunSummary]) -> Vec<DifferenceRow> {
    let mut with = runs.iter().filter(|r| r.repeats.is_some());
    let Some(base) = with.next() else {
        return Vec::new();
    };
    let Some(base_rep) = &base.repeats else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for run in with {
        let Some(rep) = &run.repeats else { continue };
        rows.push(DifferenceRow {
            run: run.label.clone(),
            what: "target accuracy".into(),
            split: None,
            metric: "accuracy".into(),
            difference: welch_difference(
                &base_rep.target_accuracy.values,
                &rep.target_accuracy.values,
            ),
        });
        for a in &rep.attacks {
            let Some(b) = base_rep
                .attacks
                .iter()
                .find(|b| b.attack == a.attack && b.split == a.split && b.attribute == a.attribute)
            else {
                continue;
            };
            let metric = match a.attribute.is_some() {
                true => "accuracy",
                false => "psnr",
            };
            let (Some(x), Some(y)) = (b.over_repeats.get(metric), a.over_repeats.get(metric))
            else {
                continue;
            };
            rows.push(DifferenceRow {
                run: run.label.clone(),
                what: match &a.attribute {
                    Some(attr) => format!("{}[{attr}]", a.attack),
                    None => a.attack.clone(),
                },
                split: Some(a.split),
                metric: metric.into(),
                difference: welch_difference(&x.values, &y.values),
            });
        }
    }
    rows
}

/// The differences as a Markdown section (empty without rows).
pub fn markdown_differences(runs: &[RunSummary]) -> String {
    let rows = differences(runs);
    let Some(base) = runs.iter().find(|r| r.repeats.is_some()) else {
        return String::new();
    };
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let _ = writeln!(s, "## Differences beyond seed noise\n");
    let _ = writeln!(
        s,
        "Each run with repeats against `{}`: the difference of the means (run minus that run) with its 95% Welch t interval over both runs' repeats. \"yes\" where the interval excludes 0 (a change beyond seed-to-seed noise at the 5% level), \"no\" where it holds 0 (no change shown: the effect, if any, is within the interval).\n",
        base.label
    );
    table_head(
        &mut s,
        &[
            "run",
            "number",
            "split",
            "difference",
            "95% interval",
            "changed",
        ],
    );
    for r in rows {
        let (scale, digits, unit) = match (r.metric.as_str(), r.split) {
            ("accuracy", None) => (100.0, 2, " pp"),
            ("accuracy", Some(_)) => (1.0, 3, ""),
            _ => (1.0, 2, " dB"),
        };
        let d = &r.difference;
        let interval = match (d.lo, d.hi) {
            (Some(lo), Some(hi)) => {
                format!("[{:+.digits$}, {:+.digits$}]{unit}", scale * lo, scale * hi)
            }
            _ => "undefined".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:+.digits$}{unit} | {} | {} |",
            r.run.replace('|', "\\|"),
            match r.split {
                None => r.what.clone(),
                Some(_) => format!("{} {}", r.what, r.metric),
            },
            r.split.map_or_else(|| "-".into(), |k| k.to_string()),
            scale * d.diff,
            interval,
            match d.excludes_zero() {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }
        );
    }
    s
}
