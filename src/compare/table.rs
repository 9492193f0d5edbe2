//! The comparison table, as Markdown (for people) and CSV (for pandas, R,
//! spreadsheets), and the privacy-utility points the plots draw.
//!
//! One row per run. Its attack columns are the attacks at the run's deployed
//! split (what the server of that deployment sees); the long table lists
//! every attack at every split. CSV numbers are written in full (Rust's
//! shortest round-trip form), so they parse back to exactly the numbers in
//! `report.json`; Markdown rounds them as `report.md` does.

use std::fmt::Write as _;

use super::RunSummary;
use crate::attack::AttackRecord;
use crate::report::RepeatStat;
use crate::report::markdown::{opt, table_head};
use crate::report::repeats::mean_pm;

/// An attack column group: reconstruction (MSE, PSNR, SSIM) or attribute
/// inference (accuracy, chance), keyed by attack name (and attribute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttackKey {
    /// Attack name (`decoder`, `attribute`, ...).
    pub attack: String,
    /// The attribute, for attribute inference.
    pub attribute: Option<String>,
}

impl AttackKey {
    fn of(a: &AttackRecord) -> Self {
        AttackKey {
            attack: a.key().to_string(),
            attribute: a.attribute.clone(),
        }
    }

    fn matches(&self, a: &AttackRecord) -> bool {
        a.key() == self.attack && a.attribute == self.attribute
    }

    /// `decoder`, or `attribute[writer]`.
    pub fn name(&self) -> String {
        match &self.attribute {
            Some(attr) => format!("{}[{attr}]", self.attack),
            None => self.attack.clone(),
        }
    }

    fn is_attribute(&self) -> bool {
        self.attribute.is_some()
    }
}

/// The attack column groups of a comparison: every attack seen at a run's
/// deployed split, in order of first appearance.
pub fn attack_keys(runs: &[RunSummary]) -> Vec<AttackKey> {
    let mut keys: Vec<AttackKey> = Vec::new();
    for a in runs.iter().flat_map(RunSummary::deployed_attacks) {
        let k = AttackKey::of(a);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// A run's record for `key` at its deployed split.
pub fn record<'a>(run: &'a RunSummary, key: &AttackKey) -> Option<&'a AttackRecord> {
    run.deployed_attacks().find(|a| key.matches(a))
}

/// A record's value of `metric` (`mse`, `psnr`, `ssim`, `cosine`,
/// `reidentification`, `accuracy`, `chance`).
fn metric_value(a: &AttackRecord, metric: &str) -> Option<f64> {
    match metric {
        "mse" => a.mse,
        "psnr" => a.psnr,
        "ssim" => a.ssim,
        "cosine" => a.cosine,
        "reidentification" => a.reidentification,
        "accuracy" => a.accuracy,
        "chance" => a.chance,
        _ => None,
    }
}

/// A metric of a run's record for a Markdown cell: `mean ± half-width` of
/// its 95% t interval when the run has repeats, else the value alone.
fn shown(run: &RunSummary, a: Option<&AttackRecord>, metric: &str, digits: usize) -> String {
    let Some(a) = a else {
        return "-".into();
    };
    match run.spread(a, metric) {
        Some(st) if st.interval.half_width().is_some() => mean_pm(&st.interval, digits),
        _ => opt(metric_value(a, metric), digits),
    }
}

/// A run's target accuracy for a Markdown cell, in percent (`± half-width`
/// with repeats).
fn accuracy_shown(run: &RunSummary) -> String {
    match run
        .repeats
        .as_ref()
        .and_then(|r| r.target_accuracy.interval.half_width())
    {
        Some(h) => format!("{:.2}% ± {:.2}", 100.0 * run.target_accuracy, 100.0 * h),
        None => format!("{:.2}%", 100.0 * run.target_accuracy),
    }
}

/// Whether any run has repeats (the tables then get interval columns).
fn any_repeats(runs: &[RunSummary]) -> bool {
    runs.iter().any(|r| r.repeats.is_some())
}

/// A run's number of repeats as a table cell (1 for a single run).
fn repeats_cell(run: &RunSummary) -> String {
    run.repeats.as_ref().map_or(1, |r| r.n).to_string()
}

/// The ends of a 95% interval as two CSV fields (empty without one).
fn csv_bounds(st: Option<&RepeatStat>) -> [String; 2] {
    let iv = st.map(|s| s.interval);
    [
        csv_num(iv.and_then(|i| i.lo)),
        csv_num(iv.and_then(|i| i.hi)),
    ]
}

/// Markdown cell text: pipes escaped, line breaks flattened.
pub(crate) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown table: one row per run (attacks at its deployed split);
/// a run with repeats shows `mean ± half-width` of each 95% t interval.
pub fn markdown_runs(runs: &[RunSummary]) -> String {
    let keys = attack_keys(runs);
    let repeats = any_repeats(runs);
    let mut head = vec![
        "run".to_string(),
        "name".into(),
        "defenses".into(),
        "split".into(),
        "edge FLOPs".into(),
        "bytes / query".into(),
        "target accuracy".into(),
    ];
    if repeats {
        head.push("repeats".into());
    }
    for k in &keys {
        let n = k.name();
        match k.is_attribute() {
            true => head.extend([format!("{n} accuracy"), format!("{n} chance")]),
            false => head.extend([
                format!("{n} MSE"),
                format!("{n} PSNR (dB)"),
                format!("{n} SSIM"),
            ]),
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    for r in runs {
        let mut row = vec![
            cell(&r.label),
            cell(&r.name),
            cell(&r.defenses),
            r.split.to_string(),
            r.edge_flops.to_string(),
            r.bytes_per_query
                .map_or_else(|| "-".into(), |b| b.to_string()),
            accuracy_shown(r),
        ];
        if repeats {
            row.push(repeats_cell(r));
        }
        for k in &keys {
            let a = record(r, k);
            match k.is_attribute() {
                true => row.extend([shown(r, a, "accuracy", 3), shown(r, a, "chance", 3)]),
                false => row.extend([
                    shown(r, a, "mse", 4),
                    shown(r, a, "psnr", 2),
                    shown(r, a, "ssim", 3),
                ]),
            }
        }
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s
}

/// The long Markdown table: every attack of every run at every split (with
/// intervals for runs with repeats, as [`markdown_runs`]).
pub fn markdown_attacks(runs: &[RunSummary]) -> String {
    let mut s = String::new();
    table_head(
        &mut s,
        &[
            "run",
            "attack",
            "split",
            "MSE",
            "PSNR (dB)",
            "SSIM",
            "attribute",
            "accuracy",
            "chance",
        ],
    );
    for r in runs {
        for a in &r.attacks {
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {} | {} | {} | {} | {} | {} |",
                cell(&r.label),
                cell(a.key()),
                a.split,
                if a.split as u64 == r.split {
                    " (deployed)"
                } else {
                    ""
                },
                shown(r, Some(a), "mse", 4),
                shown(r, Some(a), "psnr", 2),
                shown(r, Some(a), "ssim", 3),
                cell(a.attribute.as_deref().unwrap_or("-")),
                shown(r, Some(a), "accuracy", 3),
                shown(r, Some(a), "chance", 3)
            );
        }
    }
    s
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The CSV table, one row per run (attacks at its deployed split), numbers
/// in full; empty fields where a run lacks a value. When a run has
/// repeats, a `repeats` column and the ends of each number's 95% t
/// interval (`..._lo`, `..._hi`) follow it.
pub fn csv_runs(runs: &[RunSummary]) -> String {
    let keys = attack_keys(runs);
    let repeats = any_repeats(runs);
    let mut head: Vec<String> = [
        "run",
        "name",
        "defenses",
        "split",
        "edge_flops",
        "bytes_per_query",
        "target_accuracy",
    ]
    .map(String::from)
    .to_vec();
    if repeats {
        head.extend(["target_accuracy_lo", "target_accuracy_hi", "repeats"].map(String::from));
    }
    for k in &keys {
        let n = k.name();
        for c in metrics_of(k) {
            head.push(format!("{n}_{c}"));
            if repeats {
                head.extend([format!("{n}_{c}_lo"), format!("{n}_{c}_hi")]);
            }
        }
    }
    let mut s = String::new();
    let head: Vec<String> = head.iter().map(|h| csv_field(h)).collect();
    let _ = writeln!(s, "{}", head.join(","));
    for r in runs {
        let mut row = vec![
            csv_field(&r.label),
            csv_field(&r.name),
            csv_field(&r.defenses),
            r.split.to_string(),
            r.edge_flops.to_string(),
            r.bytes_per_query.map(|b| b.to_string()).unwrap_or_default(),
            r.target_accuracy.to_string(),
        ];
        if repeats {
            row.extend(csv_bounds(
                r.repeats.as_ref().map(|rep| &rep.target_accuracy),
            ));
            row.push(repeats_cell(r));
        }
        for k in &keys {
            let a = record(r, k);
            for c in metrics_of(k) {
                row.push(csv_num(a.and_then(|a| metric_value(a, c))));
                if repeats {
                    row.extend(csv_bounds(a.and_then(|a| r.spread(a, c))));
                }
            }
        }
        let _ = writeln!(s, "{}", row.join(","));
    }
    s
}

/// The metrics of an attack column group.
fn metrics_of(k: &AttackKey) -> &'static [&'static str] {
    match k.is_attribute() {
        true => &["accuracy", "chance"],
        false => &["mse", "psnr", "ssim"],
    }
}

/// The long CSV table: every attack of every run at every split (with
/// `repeats` and interval-end columns when a run has repeats, as
/// [`csv_runs`]).
pub fn csv_attacks(runs: &[RunSummary]) -> String {
    const METRICS: [&str; 5] = ["mse", "psnr", "ssim", "accuracy", "chance"];
    let repeats = any_repeats(runs);
    let mut head: Vec<String> = ["run", "attack", "split", "deployed"]
        .map(String::from)
        .to_vec();
    if repeats {
        head.push("repeats".into());
    }
    for m in METRICS {
        if m == "accuracy" {
            head.push("attribute".into());
        }
        head.push(m.into());
        if repeats {
            head.extend([format!("{m}_lo"), format!("{m}_hi")]);
        }
    }
    let mut s = head.join(",") + "\n";
    for r in runs {
        for a in &r.attacks {
            let mut row = vec![
                csv_field(&r.label),
                csv_field(a.key()),
                a.split.to_string(),
                (a.split as u64 == r.split).to_string(),
            ];
            if repeats {
                row.push(repeats_cell(r));
            }
            for m in METRICS {
                if m == "accuracy" {
                    row.push(csv_field(a.attribute.as_deref().unwrap_or("")));
                }
                row.push(csv_num(metric_value(a, m)));
                if repeats {
                    row.extend(csv_bounds(r.spread(a, m)));
                }
            }
            let _ = writeln!(s, "{}", row.join(","));
        }
    }
    s
}

/// The record a run's attack-error trade-off point uses, at its deployed
/// split: the strongest attacker (the worst case for privacy), the best
/// attribute attack when `attribute` is true, else the lowest
/// reconstruction MSE.
fn strongest(run: &RunSummary, attribute: bool) -> Option<(&AttackRecord, f64)> {
    run.deployed_attacks()
        .filter_map(|a| match attribute {
            true => a.accuracy.map(|acc| (a, 1.0 - acc)),
            false => a.mse.map(|e| (a, e)),
        })
        .filter(|(_, e)| e.is_finite())
        .fold(None, |best, (a, e)| match best {
            Some((_, b)) if b <= e => best,
            _ => Some((a, e)),
        })
}

/// The attack error a run's trade-off point uses, at its deployed split,
/// from the strongest attacker (the worst case for privacy): `1 -
/// accuracy` of the best attribute attack when `attribute` is true, else
/// the lowest reconstruction MSE.
pub fn attack_error(run: &RunSummary, attribute: bool) -> Option<f64> {
    strongest(run, attribute).map(|(_, e)| e)
}

/// The 95% t interval (over repeats) of [`attack_error`], as `(lo, hi)`.
pub fn attack_error_interval(run: &RunSummary, attribute: bool) -> Option<(f64, f64)> {
    let (a, _) = strongest(run, attribute)?;
    let iv = run
        .spread(a, if attribute { "accuracy" } else { "mse" })?
        .interval;
    let (lo, hi) = (iv.lo?, iv.hi?);
    Some(match attribute {
        true => (1.0 - hi, 1.0 - lo),
        false => (lo, hi),
    })
}

/// The best reconstruction PSNR at the run's deployed split.
pub fn best_psnr(run: &RunSummary) -> Option<f64> {
    best_psnr_record(run).and_then(|a| a.psnr)
}

fn best_psnr_record(run: &RunSummary) -> Option<&AttackRecord> {
    run.deployed_attacks()
        .filter(|a| a.psnr.is_some_and(f64::is_finite))
        .fold(None, |best: Option<&AttackRecord>, a| match best {
            Some(b) if b.psnr >= a.psnr => Some(b),
            _ => Some(a),
        })
}

/// The 95% t interval (over repeats) of [`best_psnr`], as `(lo, hi)`.
pub fn best_psnr_interval(run: &RunSummary) -> Option<(f64, f64)> {
    let iv = run.spread(best_psnr_record(run)?, "psnr")?.interval;
    Some((iv.lo?, iv.hi?))
}

/// The 95% t interval (over repeats) of the run's target accuracy.
pub fn target_accuracy_interval(run: &RunSummary) -> Option<(f64, f64)> {
    let iv = run.repeats.as_ref()?.target_accuracy.interval;
    Some((iv.lo?, iv.hi?))
}
