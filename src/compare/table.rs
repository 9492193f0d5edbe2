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
use crate::report::markdown::{opt, table_head};

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
            attack: a.attack.clone(),
            attribute: a.attribute.clone(),
        }
    }

    fn matches(&self, a: &AttackRecord) -> bool {
        a.attack == self.attack && a.attribute == self.attribute
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

/// Markdown cell text: pipes escaped, line breaks flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown table: one row per run (attacks at its deployed split).
pub fn markdown_runs(runs: &[RunSummary]) -> String {
    let keys = attack_keys(runs);
    let mut head = vec![
        "run".to_string(),
        "name".into(),
        "defenses".into(),
        "split".into(),
        "edge FLOPs".into(),
        "bytes / query".into(),
        "target accuracy".into(),
    ];
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
            format!("{:.2}%", 100.0 * r.target_accuracy),
        ];
        for k in &keys {
            let a = record(r, k);
            match k.is_attribute() {
                true => row.extend([
                    opt(a.and_then(|a| a.accuracy), 3),
                    opt(a.and_then(|a| a.chance), 3),
                ]),
                false => row.extend([
                    opt(a.and_then(|a| a.mse), 4),
                    opt(a.and_then(|a| a.psnr), 2),
                    opt(a.and_then(|a| a.ssim), 3),
                ]),
            }
        }
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s
}

/// The long Markdown table: every attack of every run at every split.
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
                cell(&a.attack),
                a.split,
                if a.split as u64 == r.split {
                    " (deployed)"
                } else {
                    ""
                },
                opt(a.mse, 4),
                opt(a.psnr, 2),
                opt(a.ssim, 3),
                cell(a.attribute.as_deref().unwrap_or("-")),
                opt(a.accuracy, 3),
                opt(a.chance, 3)
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
/// in full; empty fields where a run lacks a value.
pub fn csv_runs(runs: &[RunSummary]) -> String {
    let keys = attack_keys(runs);
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
    for k in &keys {
        let n = k.name();
        let cols: &[&str] = match k.is_attribute() {
            true => &["accuracy", "chance"],
            false => &["mse", "psnr", "ssim"],
        };
        head.extend(cols.iter().map(|c| format!("{n}_{c}")));
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
        for k in &keys {
            let a = record(r, k);
            match k.is_attribute() {
                true => row.extend([
                    csv_num(a.and_then(|a| a.accuracy)),
                    csv_num(a.and_then(|a| a.chance)),
                ]),
                false => row.extend([
                    csv_num(a.and_then(|a| a.mse)),
                    csv_num(a.and_then(|a| a.psnr)),
                    csv_num(a.and_then(|a| a.ssim)),
                ]),
            }
        }
        let _ = writeln!(s, "{}", row.join(","));
    }
    s
}

/// The long CSV table: every attack of every run at every split.
pub fn csv_attacks(runs: &[RunSummary]) -> String {
    let mut s = String::from("run,attack,split,deployed,mse,psnr,ssim,attribute,accuracy,chance\n");
    for r in runs {
        for a in &r.attacks {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{}",
                csv_field(&r.label),
                csv_field(&a.attack),
                a.split,
                a.split as u64 == r.split,
                csv_num(a.mse),
                csv_num(a.psnr),
                csv_num(a.ssim),
                csv_field(a.attribute.as_deref().unwrap_or("")),
                csv_num(a.accuracy),
                csv_num(a.chance)
            );
        }
    }
    s
}

/// The attack error a run's trade-off point uses, at its deployed split,
/// from the strongest attacker (the worst case for privacy): `1 -
/// accuracy` of the best attribute attack when `attribute` is true, else
/// the lowest reconstruction MSE.
pub fn attack_error(run: &RunSummary, attribute: bool) -> Option<f64> {
    let errors = run.deployed_attacks().filter_map(|a| match attribute {
        true => a.accuracy.map(|acc| 1.0 - acc),
        false => a.mse,
    });
    errors.filter(|e| e.is_finite()).reduce(f64::min)
}

/// The best reconstruction PSNR at the run's deployed split.
pub fn best_psnr(run: &RunSummary) -> Option<f64> {
    run.deployed_attacks()
        .filter_map(|a| a.psnr)
        .filter(|p| p.is_finite())
        .reduce(f64::max)
}
