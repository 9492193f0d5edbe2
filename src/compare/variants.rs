//! Does a defense's effect survive the adaptive attacker? Defense papers
//! often measure with an attacker that trains on the raw features (the
//! `paper` variant); an adversary standardises them first (`adaptive`, see
//! [`crate::attack::AttackerVariant`]). A defense that only rescales the
//! features looks effective against the first and not the second.
//!
//! For each defended run against the undefended one (the first run whose
//! defenses are `none`), at every split where both runs ran an attack and
//! its `-paper` variant: the change of each attacker's PSNR (or attribute
//! accuracy), and whether the adaptive attacker's number falls beyond its
//! interval in the undefended run (the defense's effect survives).

use std::fmt::Write as _;

use super::RunSummary;
use crate::attack::AttackRecord;
use crate::report::markdown::table_head;

/// One defended run at one split: both attackers' change and the verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantRow {
    /// The defended run's label.
    pub run: String,
    /// The attack (adaptive label, with `[attribute]`).
    pub what: String,
    /// The split.
    pub split: usize,
    /// Defended minus undefended, the paper's attacker.
    pub paper_change: f64,
    /// Defended minus undefended, the adaptive attacker.
    pub adaptive_change: f64,
    /// The paper's attacker shows protection (its interval lies below the
    /// undefended one's).
    pub paper_protects: bool,
    /// The adaptive attacker shows protection.
    pub adaptive_protects: bool,
}

/// The 95% interval of a record's leakage metric: over repeats when the run
/// has them, else the bootstrap over queries, else the point.
fn interval(run: &RunSummary, a: &AttackRecord) -> Option<(f64, [f64; 2])> {
    let (metric, value, ci) = match (a.psnr, a.accuracy) {
        (Some(p), _) => ("psnr", p, a.psnr_ci),
        (None, Some(acc)) => ("accuracy", acc, a.accuracy_ci),
        _ => return None,
    };
    let repeated = run
        .spread(a, metric)
        .and_then(|s| Some([s.interval.lo?, s.interval.hi?]));
    Some((value, repeated.or(ci).unwrap_or([value, value])))
}

/// Every defended run's paper-vs-adaptive rows (empty without an undefended
/// run, or without `-paper` attacks).
pub fn variant_rows(runs: &[RunSummary]) -> Vec<VariantRow> {
    let Some(base) = runs.iter().find(|r| r.defenses == "none") else {
        return Vec::new();
    };
    let find = |r: &RunSummary, key: &str, a: &AttackRecord| {
        r.attacks
            .iter()
            .find(|b| b.key() == key && b.split == a.split && b.attribute == a.attribute)
            .cloned()
    };
    let mut rows = Vec::new();
    for run in runs
        .iter()
        .filter(|r| r.dir != base.dir && r.defenses != "none")
    {
        for paper in &run.attacks {
            let Some(key) = paper.key().strip_suffix("-paper") else {
                continue;
            };
            let (Some(adaptive), Some(base_paper), Some(base_adaptive)) = (
                find(run, key, paper),
                find(base, paper.key(), paper),
                find(base, key, paper),
            ) else {
                continue;
            };
            let (Some((p, [_, p_hi])), Some((bp, [bp_lo, _]))) =
                (interval(run, paper), interval(base, &base_paper))
            else {
                continue;
            };
            let (Some((a, [_, a_hi])), Some((ba, [ba_lo, _]))) =
                (interval(run, &adaptive), interval(base, &base_adaptive))
            else {
                continue;
            };
            rows.push(VariantRow {
                run: run.label.clone(),
                what: match &paper.attribute {
                    Some(attr) => format!("{key}[{attr}]"),
                    None => key.to_string(),
                },
                split: paper.split,
                paper_change: p - bp,
                adaptive_change: a - ba,
                paper_protects: p_hi < bp_lo,
                adaptive_protects: a_hi < ba_lo,
            });
        }
    }
    rows
}

/// The comparison's section on the two attackers (empty without rows).
pub fn markdown_variants(runs: &[RunSummary]) -> String {
    let rows = variant_rows(runs);
    let mut s = String::new();
    if rows.is_empty() {
        return s;
    }
    let base = runs
        .iter()
        .find(|r| r.defenses == "none")
        .map_or("-", |r| r.label.as_str());
    let _ = writeln!(s, "## Does each defense survive the adaptive attacker?\n");
    let _ = writeln!(
        s,
        "Each defended run against the undefended `{base}`: the change of the paper's attacker (raw features) and of the adaptive one (standardised features), PSNR in dB or attribute accuracy; negative means less leakage. A change protects when the defended run's interval lies entirely below the undefended one's.\n"
    );
    table_head(
        &mut s,
        &[
            "run",
            "attack",
            "split",
            "paper's attacker",
            "adaptive attacker",
            "verdict",
        ],
    );
    for r in rows {
        let verdict = match (r.paper_protects, r.adaptive_protects) {
            (_, true) => "survives the adaptive attacker",
            (true, false) => "does not survive: only the paper's attacker is stopped",
            (false, false) => "no protection shown by either attacker",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:+.3} | {:+.3} | {verdict} |",
            r.run, r.what, r.split, r.paper_change, r.adaptive_change
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, split: usize, psnr: f64, ci: [f64; 2]) -> AttackRecord {
        AttackRecord {
            attack: "decoder".into(),
            label: (key != "decoder").then(|| key.to_string()),
            split,
            psnr: Some(psnr),
            psnr_ci: Some(ci),
            ..AttackRecord::default()
        }
    }

    fn run(label: &str, defenses: &str, attacks: Vec<AttackRecord>) -> RunSummary {
        RunSummary {
            dir: label.into(),
            label: label.into(),
            name: label.into(),
            defenses: defenses.into(),
            split: 1,
            edge_flops: 0,
            bytes_per_query: None,
            target_accuracy: 0.99,
            attacks,
            repeats: None,
        }
    }

    #[test]
    fn a_rescaling_defense_fools_only_the_papers_attacker() {
        let base = run(
            "vanilla",
            "none",
            vec![
                rec("decoder", 1, 30.0, [29.5, 30.5]),
                rec("decoder-paper", 1, 28.0, [27.5, 28.5]),
            ],
        );
        // The paper's attacker drops 6 dB; the adaptive one does not move.
        let rescaled = run(
            "lipschitz",
            "lipschitz(weight=1)",
            vec![
                rec("decoder", 1, 29.9, [29.4, 30.4]),
                rec("decoder-paper", 1, 22.0, [21.5, 22.5]),
            ],
        );
        // A real defense: both drop.
        let real = run(
            "noise",
            "noise(scale=1)",
            vec![
                rec("decoder", 1, 20.0, [19.5, 20.5]),
                rec("decoder-paper", 1, 19.0, [18.5, 19.5]),
            ],
        );
        let rows = variant_rows(&[base.clone(), rescaled.clone(), real]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].run.as_str(), rows[0].split), ("lipschitz", 1));
        assert!((rows[0].paper_change + 6.0).abs() < 1e-9);
        assert!((rows[0].adaptive_change + 0.1).abs() < 1e-9);
        assert!(rows[0].paper_protects && !rows[0].adaptive_protects);
        assert!(rows[1].paper_protects && rows[1].adaptive_protects);
        let md = markdown_variants(&[base, rescaled]);
        assert!(md.contains("does not survive"), "{md}");
        // Without an undefended run there is nothing to compare against.
        assert!(variant_rows(&[run("a", "x", vec![])]).is_empty());
    }
}
