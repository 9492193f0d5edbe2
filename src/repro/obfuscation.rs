//! Seed 004, unsupervised obfuscation: does sending the split features'
//! signal content with respect to the next layer (section 3, the null space
//! removed) and the calibrated top-m' of it (the distortion-bounded `z'`)
//! bring an attacker of an attribute the model never saw (the writer group)
//! towards chance, at no more than 1 point of accuracy (Figure 3)?
//!
//! The verdict reads Theorem 1's `z'` (`theorem1`: the largest distortion
//! budget `eps` within 1 point on the owner's data) at the deployed split.
//!
//! Read from `004-obfuscation/`, a sweep: point 0 trains with the seed's
//! defenses (signal-content dropout, deCov, VAE head), point 1 without
//! them (the control); 3 repeats each. Each repeat's `obfuscation.json`
//! holds Figure 3 (`figure3`: per split, `none` / `distortion_free` /
//! `bounded`, each with target accuracy and the attribute attacks) and
//! Figure 2 (`signal_content`).

use std::path::Path;

use serde_json::Value;

use super::format::{difference, mean_ci, table};
use super::runs::{Repeats, read_json, sweep_points, wall_seconds};
use super::{ReproError, Section, Verdict};

/// The hidden attribute the section reads.
const ATTRIBUTE: &str = "writer";

/// The split the recipe deploys at (before FC1, the seed's Figure 4).
const DEPLOYED: usize = 3;

/// The settings of Figure 3, as `obfuscation.json` names them.
const SETTINGS: [(&str, &str); 4] = [
    ("none", "z"),
    ("distortion_free", "signal content z_S"),
    ("bounded", "top-m' z' (<= 1 point)"),
    ("theorem1", "Theorem 1 z' (budget eps, <= 1 point)"),
];

/// Each repeat's `obfuscation.json` (repeats without one are skipped).
fn studies(run: &Repeats) -> Result<Vec<Value>, ReproError> {
    run.folders
        .iter()
        .map(|f| f.join("obfuscation.json"))
        .filter(|p| p.is_file())
        .map(|p| read_json(&p))
        .collect()
}

/// Figure 3's entry at `split` for `setting`.
fn entry<'a>(study: &'a Value, split: usize, setting: &str) -> Option<&'a Value> {
    study["figure3"]
        .as_array()?
        .iter()
        .find(|e| e["split"].as_u64() == Some(split as u64))
        .map(|e| &e[setting])
}

/// The attribute attack's accuracy (and chance) in a Figure 3 entry.
fn attack_number(e: &Value, field: &str) -> Option<f64> {
    e["attacks"]
        .as_array()?
        .iter()
        .find(|a| a["attribute"].as_str() == Some(ATTRIBUTE))?[field]
        .as_f64()
}

fn values(studies: &[Value], f: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
    studies.iter().filter_map(f).collect()
}

/// What the verdict reads at the deployed split.
#[derive(Clone, Copy, Debug)]
struct AtSplit {
    /// The attack on the obfuscated z' is lower than on z beyond seed noise.
    lower: Option<bool>,
    /// Test accuracy lost by z' (points).
    cost: f64,
    /// Mean attack accuracy on z.
    z: f64,
    /// Mean attack accuracy on z'.
    z_prime: f64,
    /// Mean chance.
    chance: f64,
    /// The obfuscation read: Theorem 1, or top-m' for older runs.
    setting: &'static str,
}

/// Figure 3 of one sweep point as a table, and what the verdict reads at
/// the deployed split.
fn figure3(st: &[Value]) -> (String, AtSplit) {
    let mut verdict = AtSplit {
        lower: None,
        cost: f64::NAN,
        z: f64::NAN,
        z_prime: f64::NAN,
        chance: f64::NAN,
        setting: "Theorem 1",
    };
    let Some(first) = st.first() else {
        return (String::new(), verdict);
    };
    let splits: Vec<usize> = first["figure3"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["split"].as_u64().map(|x| x as usize))
        .collect();
    let mut rows = Vec::new();
    for k in splits {
        let chance = values(st, |s| attack_number(entry(s, k, "none")?, "chance"));
        let mut row = vec![k.to_string(), mean_ci(&chance, 3)];
        for (key, _) in SETTINGS {
            let acc = values(st, |s| attack_number(entry(s, k, key)?, "accuracy"));
            let target = values(st, |s| {
                entry(s, k, key)?["target_accuracy"]
                    .as_f64()
                    .map(|a| 100.0 * a)
            });
            row.push(format!("{} / {}", mean_ci(&acc, 3), mean_ci(&target, 1)));
        }
        let eps = values(st, |s| {
            s["figure3"]
                .as_array()?
                .iter()
                .find(|e| e["split"].as_u64() == Some(k as u64))?["eps"]
                .as_f64()
        });
        row.push(mean_ci(&eps, 3));
        if k == DEPLOYED {
            // Theorem 1's z' is the paper's; older runs have only top-m'.
            let key = if eps.is_empty() {
                "bounded"
            } else {
                "theorem1"
            };
            let z = values(st, |s| attack_number(entry(s, k, "none")?, "accuracy"));
            let zb = values(st, |s| attack_number(entry(s, k, key)?, "accuracy"));
            let (_, d) = difference(&z, &zb, 3);
            let tz = values(st, |s| entry(s, k, "none")?["target_accuracy"].as_f64());
            let tb = values(st, |s| entry(s, k, key)?["target_accuracy"].as_f64());
            let cost = 100.0 * (super::format::mean(&tz) - super::format::mean(&tb));
            verdict = AtSplit {
                lower: Some(super::format::lower(d)),
                cost,
                z: super::format::mean(&z),
                z_prime: super::format::mean(&zb),
                chance: super::format::mean(&chance),
                setting: if key == "theorem1" {
                    "Theorem 1"
                } else {
                    "top-m'"
                },
            };
        }
        rows.push(row);
    }
    let header: Vec<String> = ["split".to_string(), "chance".to_string()]
        .into_iter()
        .chain(
            SETTINGS
                .iter()
                .map(|(_, n)| format!("{n}: attack acc. / target acc. (%)")),
        )
        .chain(["Theorem 1 budget eps".to_string()])
        .collect();
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    (table(&h, &rows), verdict)
}

/// Figure 2: mean log signal-content ratio per split.
fn figure2(st: &[Value]) -> String {
    let Some(first) = st.first() else {
        return String::new();
    };
    let rows: Vec<Vec<String>> = first["signal_content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["split"].as_u64())
        .map(|k| {
            let at = |s: &Value, f: &str| -> Option<f64> {
                s["signal_content"]
                    .as_array()?
                    .iter()
                    .find(|e| e["split"].as_u64() == Some(k))?[f]
                    .as_f64()
            };
            vec![
                k.to_string(),
                mean_ci(&values(st, |s| at(s, "mean_log_ratio")), 3),
                mean_ci(&values(st, |s| at(s, "cumulative")), 3),
                mean_ci(&values(st, |s| at(s, "mean_log_ratio_discarded")), 3),
                mean_ci(&values(st, |s| at(s, "cumulative_discarded")), 3),
            ]
        })
        .collect();
    table(
        &[
            "split",
            "mean log(|z_S|^2 / |z|^2), unmodified features",
            "cumulative",
            "mean log ratio, null content discarded layer by layer (the paper's)",
            "cumulative (the paper's)",
        ],
        &rows,
    )
}

/// The section, from `runs/004-obfuscation/`.
pub fn section(runs: &Path) -> Result<Section, ReproError> {
    let mut s = Section::new(
        "004",
        "Unsupervised obfuscation (signal content, null space removed)",
        "Sending only the signal content of the split features with respect \
         to the next layer, cut to a distortion that costs at most 1 point of \
         accuracy, brings an attacker of attributes unknown at training time \
         towards chance (Figure 3).",
        "cnn6 on a 4,000-image slice of the embedded MNIST (stratified by \
         digit and writer group), target = digit, hidden attribute = writer \
         group. Trained as the seed trains it (signal-content dropout, deCov, \
         VAE head) for 8 epochs with drops at 4 and 6 (the paper: 50 epochs \
         with drops at 20 and 40; shortened for 2 cores), and a control \
         trained without those defenses; 3 seeds each. At every split: the \
         attribute attacker (adaptive, up to 20 epochs, early-stopped on its \
         own validation tenth) on z, on z_S, on the top-m' z' (m' calibrated \
         on the owner's train data to lose at most 1 point) and on Theorem \
         1's z' (the largest distortion budget eps that loses at most 1 point \
         there). The deployment split 3 sends the top-m' z'. Recipe: `recipes/repro/004-obfuscation.yaml`.",
    );
    let dir = runs.join("004-obfuscation");
    s.add_run(&dir, wall_seconds(&dir));
    let points = sweep_points(&dir)?;
    if points.is_empty() {
        return Ok(s.not_run());
    }
    let mut verdicts = Vec::new();
    for (i, run) in &points {
        let name = if *i == 0 {
            "with the seed's training defenses"
        } else {
            "control: no training defenses"
        };
        let st = studies(run)?;
        let (fig3, at) = figure3(&st);
        s.body += &format!("### {name} (Figure 3, attribute `{ATTRIBUTE}`)\n\n{fig3}\n");
        let audit = run.attribute_values(ATTRIBUTE, DEPLOYED, "accuracy");
        let acc = run.values(|r| r["target_accuracy"].as_f64().map(|a| 100.0 * a));
        s.body += &format!(
            "Deployed at split {DEPLOYED} (z'): target accuracy {} %, the audit's attribute attack \
             {} (lower-bound flags {}/{}).\n\n",
            mean_ci(&acc, 2),
            mean_ci(&audit, 3),
            run.flagged("attribute", DEPLOYED),
            run.reports.len()
        );
        if *i == 0 {
            s.body += "Figure 2 (signal content per split: of each split's unmodified features, and as \
                       the paper computes it, with every earlier split's null content discarded on \
                       the way; runs before this column show `-`):\n\n";
            s.body += &figure2(&st);
            s.body += "\n";
        }
        verdicts.push((*i, name, at));
    }
    let defended = verdicts
        .iter()
        .find(|(i, _, _)| *i == 0)
        .map(|(_, _, a)| *a);
    let chance = defended.map_or(f64::NAN, |a| a.chance);
    s.body += &format!(
        "Not computed here yet (issue 16): the paper's Figure 5 / Figure 6 baselines (feature pruning with server fine-tuning; \
         adversarial training against a known attribute). {}\n\n",
        if !chance.is_finite() {
            "No chance level was recorded at the deployed split."
        } else if (chance - 0.5).abs() < 0.01 {
            "The writer groups are balanced in these slices (chance 0.50)."
        } else {
            "The writer groups are not balanced in these slices (see the chance column)."
        }
    );
    // Holds: the attack on Theorem 1's z' falls beyond seed noise, at no
    // more than 1 point of accuracy on the victims' queries.
    s.verdict = match defended {
        None => Verdict::NotRun,
        Some(a) if !(a.cost.is_finite() && a.z.is_finite() && a.z_prime.is_finite()) => {
            Verdict::NotTestable
        }
        Some(a) if a.lower == Some(true) && a.cost <= 1.0 + 1e-9 => Verdict::Holds,
        Some(_) => Verdict::DoesNotHold,
    };
    s.reason = verdicts
        .iter()
        .map(|(_, n, a)| {
            format!(
                "{n}: at split {DEPLOYED} the attack on {}'s z' scores {:.3} against {:.3} \
                 on z (chance {:.2}), {} beyond seed noise, at {:.2} points of test accuracy \
                 (calibrated to at most 1 point on the owner's training data)",
                a.setting,
                a.z_prime,
                a.z,
                a.chance,
                if a.lower == Some(true) {
                    "lower"
                } else {
                    "not lower"
                },
                a.cost
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
        + ". The verdict reads the run with the seed's training defenses and asks for both a \
           lower attack and at most 1 point of test accuracy; the paper's Figure 5 and 6 \
           baselines were not run.";
    Ok(s)
}
