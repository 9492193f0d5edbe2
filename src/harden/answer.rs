//! The answer of a search: `harden.json` (every decision and number; no
//! wall times, so a resumed search writes the same bytes), `harden.md` and
//! `harden.html` (the front, the choice beside the reference, a plain
//! sentence), `harden_front.svg`, and `hardened.yaml`, the chosen
//! deployment as a recipe `splitguard run` accepts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::search::{Evaluation, Plan};
use super::select::drop_points;
use super::space::REFERENCE;
use crate::Error;
use crate::fsutil::write_atomic;
use crate::recipe::Recipe;
use crate::report::plot;

/// File names a search writes into its folder.
pub mod files {
    /// Every decision and number.
    pub const JSON: &str = "harden.json";
    /// The answer in Markdown.
    pub const MARKDOWN: &str = "harden.md";
    /// The same, one self-contained page.
    pub const HTML: &str = "harden.html";
    /// The chosen deployment as a recipe.
    pub const RECIPE: &str = "hardened.yaml";
    /// Target accuracy vs. leakage of the full rung's points.
    pub const FRONT_PLOT: &str = "harden_front.svg";
}

/// One rung of the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RungSummary {
    /// 0-based.
    pub rung: usize,
    /// Whether it is the full rung (the recipe's own training and audit).
    pub full: bool,
    /// Training epochs of a cheap rung.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Attacker epochs of a cheap rung.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_epochs: Option<usize>,
    /// Images used by a cheap rung, when limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_limit: Option<usize>,
    /// Ids evaluated (the reference first).
    pub evaluated: Vec<String>,
    /// Candidates within both budgets.
    pub within: Vec<String>,
    /// Candidates promoted to the next rung (at the full rung: the finalists
    /// within the budgets).
    pub promoted: Vec<String>,
}

/// One candidate and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateSummary {
    /// `c000`, ...
    pub id: String,
    /// Its settings in words.
    pub label: String,
    /// Its overrides on the base recipe.
    pub set: Vec<String>,
    /// Where it left the search, or `final: within the budgets`.
    pub status: String,
    /// Its evaluations, one per rung reached.
    pub evaluations: Vec<Evaluation>,
}

/// A point of the full rung.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Candidate id (`reference` for the undefended model).
    pub id: String,
    /// Its settings in words.
    pub label: String,
    /// Accuracy lost against the reference, percentage points.
    pub accuracy_drop: f64,
    /// Whether it is on the Pareto front.
    pub on_front: bool,
    /// Its full evaluation.
    pub evaluation: Evaluation,
}

/// The chosen deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    /// Candidate id.
    pub id: String,
    /// Its settings in words.
    pub label: String,
    /// Accuracy lost against the reference, percentage points.
    pub accuracy_drop: f64,
    /// Its full evaluation.
    pub evaluation: Evaluation,
    /// The ready recipe (in the search folder).
    pub recipe: String,
    /// Its full audit report (relative to the search folder).
    pub report: String,
}

/// `harden.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Recipe name.
    pub name: String,
    /// The seed.
    pub seed: u64,
    /// splitguard version.
    pub version: String,
    /// Largest accuracy drop allowed (points).
    pub max_accuracy_drop: f64,
    /// Edge FLOPs budget, if any.
    pub edge_flops: Option<u64>,
    /// How leakage is judged.
    pub leakage: String,
    /// The undefended reference at the full rung.
    pub reference: Evaluation,
    /// Every point of the full rung (the reference first), front marked.
    pub points: Vec<Point>,
    /// Ids on the Pareto front (target accuracy vs. leakage).
    pub front: Vec<String>,
    /// The deployment chosen (least leakage within the budgets); `null`
    /// when no point is within them.
    pub chosen: Option<Chosen>,
    /// The answer in one sentence.
    pub sentence: String,
    /// The rungs of successive halving.
    pub rungs: Vec<RungSummary>,
    /// Every candidate planned, with its fate.
    pub candidates: Vec<CandidateSummary>,
    /// Grid points left out by `max_candidates`.
    pub not_sampled: usize,
}

/// What [`assemble`] needs.
pub struct Parts<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The rungs.
    pub rungs: Vec<RungSummary>,
    /// The reference at the full rung.
    pub reference: Evaluation,
    /// Every candidate.
    pub candidates: Vec<CandidateSummary>,
    /// Ids on the front.
    pub front: Vec<String>,
    /// Every full-rung point (the reference first).
    pub finalists: Vec<(String, Evaluation)>,
    /// The chosen id.
    pub chosen: Option<String>,
}

/// What leakage means in this search.
pub const LEAKAGE: &str = "the upper end of the 95% interval of the strongest reconstruction attack's PSNR (dB) at the deployed split (a bootstrap over test queries, or over repeats a t interval); lower is more private";

/// Builds the answer.
pub fn assemble(p: Parts<'_>) -> Answer {
    let label = |id: &str| -> String {
        if id == REFERENCE {
            return format!("{} (undefended)", p.plan.reference.label);
        }
        p.plan
            .candidates
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| id.to_string(), |c| c.label.clone())
    };
    let ref_acc = p.reference.target_accuracy;
    let points: Vec<Point> = p
        .finalists
        .iter()
        .map(|(id, e)| Point {
            id: id.clone(),
            label: label(id),
            accuracy_drop: drop_points(ref_acc, e.target_accuracy),
            on_front: p.front.contains(id),
            evaluation: e.clone(),
        })
        .collect();
    let chosen = p.chosen.as_ref().and_then(|id| {
        let point = points.iter().find(|x| &x.id == id)?;
        Some(Chosen {
            id: id.clone(),
            label: point.label.clone(),
            accuracy_drop: point.accuracy_drop,
            evaluation: point.evaluation.clone(),
            recipe: files::RECIPE.into(),
            report: format!(
                "{}/{}",
                point.evaluation.dir,
                crate::pipeline::files::REPORT_MD
            ),
        })
    });
    let sentence = sentence(
        &p.reference,
        chosen.as_ref(),
        p.plan.config.max_accuracy_drop,
    );
    Answer {
        name: p.plan.name.clone(),
        seed: p.plan.seed,
        version: env!("CARGO_PKG_VERSION").into(),
        max_accuracy_drop: p.plan.config.max_accuracy_drop,
        edge_flops: p.plan.config.edge_flops,
        leakage: LEAKAGE.into(),
        reference: p.reference,
        points,
        front: p.front,
        chosen,
        sentence,
        rungs: p.rungs,
        candidates: p.candidates,
        not_sampled: p.plan.not_sampled,
    }
}

/// The answer in one plain sentence.
pub fn sentence(reference: &Evaluation, chosen: Option<&Chosen>, max_drop: f64) -> String {
    let Some(c) = chosen else {
        return format!(
            "No deployment stays within the budgets ({max_drop} points of accuracy and the edge FLOPs budget); loosen them or widen the search."
        );
    };
    let e = &c.evaluation;
    if c.id == REFERENCE {
        return format!(
            "No candidate within the budgets leaks less than the undefended model: the {}'s PSNR stays at {:.1} dB (upper end of its 95% interval), so the search keeps the model undefended.",
            e.attack, e.leakage
        );
    }
    let cost = match c.accuracy_drop {
        d if d >= 0.0 => format!("At {d:.1} points of accuracy"),
        d => format!("While gaining {:.1} points of accuracy", -d),
    };
    let who = match reference.attack == e.attack {
        true => format!("the {}'s PSNR", e.attack),
        false => format!(
            "the strongest attack's PSNR ({} undefended, {} deployed)",
            reference.attack, e.attack
        ),
    };
    let floor = match e.label_floor_psnr {
        Some(f) if e.leakage < f - 1.0 => format!(
            ", below the label-only floor of {f:.1} dB (no more than the predicted label gives away)"
        ),
        Some(f) if e.leakage - f <= 1.0 => format!(", near the label-only floor of {f:.1} dB"),
        Some(f) => format!(
            ", {:.1} dB above the label-only floor of {f:.1} dB",
            e.leakage - f
        ),
        None => String::new(),
    };
    format!(
        "{cost}, {who} falls from {:.1} to {:.1} dB{floor} (upper ends of 95% intervals).",
        reference.leakage, e.leakage
    )
}

fn interval(iv: Option<[f64; 2]>, digits: usize) -> String {
    iv.map_or_else(
        || "-".into(),
        |[lo, hi]| format!("[{lo:.digits$}, {hi:.digits$}]"),
    )
}

/// `harden.md`.
pub fn markdown(a: &Answer) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# splitguard harden: {}\n", a.name);
    let _ = writeln!(s, "{}\n", a.sentence);
    let edge = a
        .edge_flops
        .map_or_else(|| "none".to_string(), |f| f.to_string());
    let _ = writeln!(
        s,
        "Budgets: at most {} points of target accuracy below the undefended reference; edge FLOPs per query: {edge}. Leakage: {}.\n",
        a.max_accuracy_drop, a.leakage
    );
    let _ = writeln!(s, "## Chosen deployment\n");
    match &a.chosen {
        Some(c) => {
            let _ = writeln!(
                s,
                "`{}` ({}): ready recipe [`{}`]({}) (`splitguard run {}`), full audit report [{}]({}).\n",
                c.id, c.label, c.recipe, c.recipe, c.recipe, c.report, c.report
            );
        }
        None => {
            let _ = writeln!(s, "None: no point is within the budgets.\n");
        }
    }
    let _ = writeln!(
        s,
        "| | id | settings | target accuracy | drop (points) | split | edge FLOPs | strongest attack | PSNR (dB) | 95% interval | leakage (dB) | label floor (dB) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let reference = a.points.iter().find(|p| p.id == REFERENCE);
    let chosen = a
        .chosen
        .as_ref()
        .and_then(|c| a.points.iter().find(|p| p.id == c.id));
    for (what, p) in [("undefended", reference), ("chosen", chosen)] {
        if let Some(p) = p {
            row(&mut s, what, p);
        }
    }
    let _ = writeln!(s, "\n## Pareto front (full rung)\n");
    let _ = writeln!(
        s,
        "Every point trained and audited in full; on the front (★) no other point has both more accuracy and less leakage.\n"
    );
    let _ = writeln!(
        s,
        "| | id | settings | target accuracy | drop (points) | split | edge FLOPs | strongest attack | PSNR (dB) | 95% interval | leakage (dB) | label floor (dB) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &a.points {
        row(&mut s, if p.on_front { "★" } else { "" }, p);
    }
    let _ = writeln!(
        s,
        "\n![target accuracy vs leakage]({})\n",
        files::FRONT_PLOT
    );
    let _ = writeln!(s, "## Successive halving\n");
    let _ = writeln!(
        s,
        "| rung | training | attacker | evaluated | within budgets | promoted |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for r in &a.rungs {
        let (train, attack) = match r.full {
            true => ("the recipe's".to_string(), "the recipe's audit".to_string()),
            false => (
                format!(
                    "{} epoch(s){}",
                    r.epochs.unwrap_or(0),
                    r.data_limit
                        .map_or_else(String::new, |l| format!(", {l} images"))
                ),
                format!("one, {} epoch(s)", r.attack_epochs.unwrap_or(0)),
            ),
        };
        let _ = writeln!(
            s,
            "| {} | {train} | {attack} | {} | {} | {} |",
            r.rung,
            r.evaluated.len(),
            r.within.len(),
            r.promoted.join(", ")
        );
    }
    let _ = writeln!(s, "\n## Every candidate\n");
    if a.not_sampled > 0 {
        let _ = writeln!(
            s,
            "{} grid point(s) were left out by `max_candidates` (a seeded sample was searched).\n",
            a.not_sampled
        );
    }
    let _ = writeln!(
        s,
        "| id | settings | status | rungs: accuracy / leakage (dB) |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for c in &a.candidates {
        let numbers: Vec<String> = c
            .evaluations
            .iter()
            .map(|e| {
                format!(
                    "r{}: [{:.3} / {:.2}]({}/{})",
                    e.rung,
                    e.target_accuracy,
                    e.leakage,
                    e.dir,
                    crate::pipeline::files::REPORT_MD
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            c.id,
            c.label,
            c.status,
            numbers.join(", ")
        );
    }
    s
}

fn row(s: &mut String, mark: &str, p: &Point) {
    let e = &p.evaluation;
    let _ = writeln!(
        s,
        "| {mark} | [{}]({}/{}) | {} | {:.4} {} | {:+.2} | {} | {} | {} | {:.2} | {} | {:.2} | {} |",
        p.id,
        e.dir,
        crate::pipeline::files::REPORT_MD,
        p.label,
        e.target_accuracy,
        interval(e.accuracy_interval, 4),
        p.accuracy_drop,
        e.split,
        e.edge_flops,
        e.attack,
        e.psnr,
        interval(e.psnr_interval, 2),
        e.leakage,
        e.label_floor_psnr
            .map_or_else(|| "-".into(), |f| format!("{f:.2}"))
    );
}

/// The front plot: target accuracy vs. leakage, one labelled point per
/// full-rung point, with its PSNR interval.
fn front_plot(a: &Answer) -> String {
    plot::scatter_plot(&plot::ScatterPlot {
        title: "Target accuracy vs. leakage (full rung)".into(),
        x_label: "leakage: PSNR upper end (dB, strongest attack; lower = more private)".into(),
        y_label: "target accuracy".into(),
        points: a
            .points
            .iter()
            .map(|p| plot::LabelledPoint {
                x: p.evaluation.leakage,
                y: p.evaluation.target_accuracy,
                label: match p.on_front {
                    true => format!("{} *", p.id),
                    false => p.id.clone(),
                },
                x_err: p.evaluation.psnr_interval.map(|[lo, hi]| (lo, hi)),
                y_err: p.evaluation.accuracy_interval.map(|[lo, hi]| (lo, hi)),
            })
            .collect(),
    })
}

/// Writes the answer files into `dir`; `chosen` is the chosen deployment's
/// recipe (its full-rung recipe). Returns the files written.
pub fn write(a: &Answer, chosen: Option<&Recipe>, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    let mut save = |name: &str, text: &str| -> Result<(), Error> {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))?;
        written.push(path);
        Ok(())
    };
    if let (Some(r), Some(c)) = (chosen, &a.chosen) {
        let header = format!(
            "# The deployment `splitguard harden` chose for '{}': {} ({}).\n# {}\n# Its full audit: {}\n",
            a.name, c.id, c.label, a.sentence, c.report
        );
        save(
            files::RECIPE,
            &(header + &serde_norway::to_string(r).expect("recipe serializes")),
        )?;
    }
    save(files::FRONT_PLOT, &front_plot(a))?;
    save(
        files::JSON,
        &(serde_json::to_string_pretty(a).expect("answer serializes") + "\n"),
    )?;
    let md = markdown(a);
    save(files::MARKDOWN, &md)?;
    let page = crate::report::html::render(&format!("splitguard harden: {}", a.name), &md, dir);
    save(files::HTML, &page)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(acc: f64, psnr: f64, hi: f64, floor: Option<f64>) -> Evaluation {
        Evaluation {
            rung: 1,
            dir: "candidates/x/rung-1".into(),
            target_accuracy: acc,
            accuracy_interval: None,
            split: 2,
            edge_flops: 1000,
            attack: "decoder".into(),
            psnr,
            psnr_interval: Some([psnr - 0.5, hi]),
            leakage: hi,
            label_floor_psnr: floor,
        }
    }

    #[test]
    fn the_sentence_gives_cost_fall_and_floor() {
        let reference = eval(0.95, 22.7, 23.2, Some(14.6));
        let c = Chosen {
            id: "c001".into(),
            label: "split=2,nopeek=1".into(),
            accuracy_drop: 0.8,
            evaluation: eval(0.942, 14.6, 15.1, Some(14.6)),
            recipe: files::RECIPE.into(),
            report: "r".into(),
        };
        assert_eq!(
            sentence(&reference, Some(&c), 1.0),
            "At 0.8 points of accuracy, the decoder's PSNR falls from 23.2 to 15.1 dB, near the label-only floor of 14.6 dB (upper ends of 95% intervals)."
        );
        let mut far = c.clone();
        far.evaluation = eval(0.942, 18.0, 18.6, Some(14.6));
        assert!(
            sentence(&reference, Some(&far), 1.0).contains("4.0 dB above the label-only floor")
        );
        let mut below = far.clone();
        below.evaluation = eval(0.942, 9.0, 9.5, Some(14.6));
        assert!(
            sentence(&reference, Some(&below), 1.0)
                .contains("below the label-only floor of 14.6 dB")
        );
        let mut same = c;
        same.id = REFERENCE.into();
        assert!(
            sentence(&reference, Some(&same), 1.0).starts_with("No candidate within the budgets")
        );
        assert!(sentence(&reference, None, 1.0).starts_with("No deployment"));
    }
}
