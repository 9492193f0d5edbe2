//! The report of a recipe run with `repeats: N > 1`: every number of the
//! repeats' own reports (`rep_i/report.json`) as its mean, sample standard
//! deviation, 95% Student-t interval and per-repeat values (DESIGN section
//! 9: "a t interval over repeats").
//!
//! The aggregate keeps the stable keys of `report.json` (DESIGN section 10)
//! with the means as their values: `target_accuracy`, `split`, `edge_flops`
//! and `attacks` (each with `attack`, `split` and the mean `mse`/`psnr`/
//! `ssim` or `accuracy`/`chance`), so a pipeline or `splitguard compare`
//! that reads one run reads this too. Each of those objects adds
//! `over_repeats`: metric name -> [`RepeatStat`].
//!
//! It is built only from the repeats' `report.json` files as written, so a
//! run resumed after a kill (its finished repeats read back, not rerun)
//! aggregates exactly the numbers an uninterrupted run does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::markdown::{opt, table_head};
use super::{DataSummary, Report, plot};
use crate::Error;
use crate::attack::AttackRecord;
use crate::metrics::{Interval, t_interval};
use crate::recipe::Recipe;

/// One number over the repeats: its t interval and the values it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatStat {
    /// Mean, sample standard deviation and 95% interval (`null`s for one value).
    #[serde(flatten)]
    pub interval: Interval,
    /// The value of each repeat that has it, in repeat order.
    pub values: Vec<f64>,
}

impl RepeatStat {
    /// The statistics of `values`.
    pub fn of(values: Vec<f64>) -> Self {
        RepeatStat {
            interval: t_interval(&values),
            values,
        }
    }
}

/// One attack (at one split, on one attribute) over the repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatedAttack {
    /// The records' key (see [`record_key`]): the attack's label.
    pub attack: String,
    /// Split point attacked.
    pub split: usize,
    /// Attribute attacked (attribute inference).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attribute: Option<String>,
    /// Mean MSE over the repeats.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mse: Option<f64>,
    /// Mean PSNR (dB) over the repeats.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub psnr: Option<f64>,
    /// Mean SSIM over the repeats.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ssim: Option<f64>,
    /// Mean attack accuracy over the repeats.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    /// Mean chance rate over the repeats (each repeat splits the data anew).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chance: Option<f64>,
    /// Metric name (`mse`, `psnr`, ...) -> its statistics over the repeats.
    pub over_repeats: BTreeMap<String, RepeatStat>,
}

/// Everything a recipe with `repeats: N > 1` measured, over its repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatsReport {
    /// Recipe name.
    pub name: String,
    /// The recipe's seed (repeat 0's).
    pub seed: u64,
    /// Number of repeats.
    pub repeats: usize,
    /// Each repeat's seed, in repeat order (`rep_i/` used `seeds[i]`).
    pub seeds: Vec<u64>,
    /// splitguard version that wrote the report.
    pub version: String,
    /// Mean accuracy of the (defended) model on `test`, 0..1.
    pub target_accuracy: f64,
    /// Deployment split: the one most repeats deployed at (they differ only
    /// with `split: auto`); `edge_flops` and the rest are that split's.
    pub split: usize,
    /// Each repeat's deployment split, in repeat order.
    pub splits: Vec<usize>,
    /// FLOPs the edge spends per query at `split`.
    pub edge_flops: u64,
    /// Parameters on the edge at `split`.
    pub edge_params: u64,
    /// Bytes sent per query at `split`.
    pub bytes_per_query: u64,
    /// Training defenses in effect.
    pub defenses: Vec<String>,
    /// Architecture name.
    pub arch: String,
    /// Data sizes (repeat 0's; every repeat splits the same source).
    pub data: DataSummary,
    /// `target_accuracy` -> its statistics over the repeats.
    pub over_repeats: BTreeMap<String, RepeatStat>,
    /// The floors (no features, label only, chance) over the repeats.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub floors: BTreeMap<String, RepeatStat>,
    /// Every attack (by key, split and attribute) over the repeats, in the
    /// order repeat 0 ran them.
    pub attacks: Vec<RepeatedAttack>,
    /// The resolved recipe (with `repeats`).
    pub recipe: Recipe,
}

/// The key that identifies "the same attack" across repeats, with the split
/// and the attribute: the attack's label (`decoder`, `decoder-paper`,
/// `decoder-2`; see [`AttackRecord::key`]).
pub fn record_key(r: &AttackRecord) -> &str {
    r.key()
}

/// How to read one metric of a record.
type Reader = fn(&AttackRecord) -> Option<f64>;

/// The metrics a record may carry, with how to read each.
const METRICS: [(&str, Reader); 8] = [
    ("mse", |a| a.mse),
    ("psnr", |a| a.psnr),
    ("ssim", |a| a.ssim),
    ("cosine", |a| a.cosine),
    ("reidentification", |a| a.reidentification),
    ("accuracy", |a| a.accuracy),
    ("chance", |a| a.chance),
    ("margin_over_label", |a| a.margin_over_label),
];

/// The floors of every repeat (see [`crate::attack::floors`]) as statistics
/// over the repeats: the no-feature and label-only PSNR, and per attribute
/// chance and the label-only attacker's accuracy.
fn floors_over_repeats(reports: &[Report]) -> BTreeMap<String, RepeatStat> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for f in reports.iter().filter_map(|r| r.floors.as_ref()) {
        let mut push = |k: String, v: f64| values.entry(k).or_default().push(v);
        push("no features (mean image): PSNR".into(), f.mean_image.psnr);
        push("label only (class mean): PSNR".into(), f.label.psnr);
        for a in &f.attributes {
            push(format!("{}: chance", a.attribute), a.chance);
            push(
                format!("{}: label-only accuracy", a.attribute),
                a.label_only,
            );
        }
    }
    values
        .into_iter()
        .map(|(k, v)| (k, RepeatStat::of(v)))
        .collect()
}

/// Aggregates the repeats' reports (in repeat order) of `recipe`.
/// `reports` must not be empty.
pub fn aggregate(recipe: &Recipe, reports: &[Report]) -> RepeatsReport {
    let first = &reports[0];
    // The deployed split most repeats chose; ties go to the earlier repeat.
    let splits: Vec<usize> = reports.iter().map(|r| r.split).collect();
    let count = |k: usize| splits.iter().filter(|&&s| s == k).count();
    let split = splits
        .iter()
        .copied()
        .fold(first.split, |best, k| match count(k) > count(best) {
            true => k,
            false => best,
        });
    let at = reports.iter().find(|r| r.split == split).unwrap_or(first);

    let mut keys: Vec<(String, usize, Option<String>)> = Vec::new();
    for a in reports.iter().flat_map(|r| &r.attacks) {
        let key = (record_key(a).to_string(), a.split, a.attribute.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let attacks = keys
        .into_iter()
        .map(|(key, k, attribute)| {
            let records: Vec<&AttackRecord> = reports
                .iter()
                .filter_map(|r| {
                    r.attacks
                        .iter()
                        .find(|a| record_key(a) == key && a.split == k && a.attribute == attribute)
                })
                .collect();
            let mut over = BTreeMap::new();
            for (name, read) in METRICS {
                let values: Vec<f64> = records.iter().filter_map(|a| read(a)).collect();
                if !values.is_empty() {
                    over.insert(name.to_string(), RepeatStat::of(values));
                }
            }
            let mean = |m: &str| over.get(m).map(|s: &RepeatStat| s.interval.mean);
            RepeatedAttack {
                attack: key,
                split: k,
                mse: mean("mse"),
                psnr: mean("psnr"),
                ssim: mean("ssim"),
                accuracy: mean("accuracy"),
                chance: mean("chance"),
                attribute,
                over_repeats: over,
            }
        })
        .collect();
    let accuracy = RepeatStat::of(reports.iter().map(|r| r.target_accuracy).collect());
    RepeatsReport {
        name: recipe.name.clone(),
        seed: recipe.seed,
        repeats: reports.len(),
        seeds: reports.iter().map(|r| r.seed).collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        target_accuracy: accuracy.interval.mean,
        split,
        splits,
        edge_flops: at.edge_flops,
        edge_params: at.edge_params,
        bytes_per_query: at.bytes_per_query,
        defenses: first.defenses.clone(),
        arch: first.arch.clone(),
        data: first.data.clone(),
        over_repeats: BTreeMap::from([("target_accuracy".to_string(), accuracy)]),
        floors: floors_over_repeats(reports),
        attacks,
        recipe: recipe.clone(),
    }
}

/// The folder of repeat `i` inside a run folder: `rep_{i}`.
pub fn rep_dir(i: usize) -> String {
    format!("rep_{i}")
}

/// `[lo, hi]` with `digits` decimals, or `undefined (n = 1)` without an interval.
pub fn interval_text(iv: &Interval, digits: usize) -> String {
    match (iv.lo, iv.hi) {
        (Some(lo), Some(hi)) => format!("[{lo:.digits$}, {hi:.digits$}]"),
        _ => format!("undefined (n = {})", iv.n),
    }
}

/// `mean ± half-width` with `digits` decimals (`mean` alone without an interval).
pub fn mean_pm(iv: &Interval, digits: usize) -> String {
    match iv.half_width() {
        Some(h) => format!("{:.digits$} ± {h:.digits$}", iv.mean),
        None => format!("{:.digits$}", iv.mean),
    }
}

/// Decimals a metric is shown with (as `report.md` shows it).
fn digits(metric: &str) -> usize {
    match metric {
        "mse" => 4,
        "psnr" => 2,
        "margin_over_label" => 2,
        _ => 3,
    }
}

/// The aggregate's `report.md`; `plots` are SVG file names to embed.
pub fn render_markdown(r: &RepeatsReport, plots: &[(&str, String)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# splitguard report: {} ({} repeats)\n",
        r.name, r.repeats
    );
    let seeds: Vec<String> = r.seeds.iter().map(u64::to_string).collect();
    let _ = writeln!(
        s,
        "The whole recipe (training and audit) ran {} times, with seeds {} (repeat i in `rep_i/`, with its own report). Every number below is the mean over the repeats, with the sample standard deviation and the 95% Student-t interval `mean ± t(0.975, n-1) · sd / √n`; `report.json` also lists each repeat's value. splitguard {}. Data: {} ({} train / {} aux / {} test images per repeat).\n",
        r.repeats,
        seeds.join(", "),
        r.version,
        r.data.source,
        r.data.train,
        r.data.aux,
        r.data.test
    );
    let _ = writeln!(s, "## Summary\n");
    table_head(
        &mut s,
        &[
            "target accuracy (test)",
            "sd",
            "95% interval",
            "split",
            "edge FLOPs",
            "bytes / query",
            "defenses",
        ],
    );
    let pct = |v: Option<f64>| v.map(|x| 100.0 * x);
    if let Some(acc) = r.over_repeats.get("target_accuracy") {
        let iv = &acc.interval;
        let range = match (iv.lo, iv.hi) {
            (Some(lo), Some(hi)) => format!("[{:.2}%, {:.2}%]", 100.0 * lo, 100.0 * hi),
            _ => interval_text(iv, 2),
        };
        let _ = writeln!(
            s,
            "| {:.2}% | {} | {} | {} | {} | {} | {} |\n",
            100.0 * iv.mean,
            opt(pct(iv.sd), 2),
            range,
            r.split,
            r.edge_flops,
            r.bytes_per_query,
            if r.defenses.is_empty() {
                "none".to_string()
            } else {
                r.defenses.join(", ")
            }
        );
    }
    if r.splits.iter().any(|&k| k != r.split) {
        let splits: Vec<String> = r.splits.iter().map(usize::to_string).collect();
        let _ = writeln!(
            s,
            "The repeats deployed at different splits ({}); the summary shows split {}, the most common.\n",
            splits.join(", "),
            r.split
        );
    }

    let _ = writeln!(s, "## Attacks\n");
    let _ = writeln!(
        s,
        "On the `test` queries of each repeat (pixels in [0, 1]; higher PSNR/SSIM and lower MSE mean more leakage).\n"
    );
    table_head(
        &mut s,
        &[
            "attack",
            "split",
            "attribute",
            "metric",
            "mean",
            "sd",
            "95% interval",
            "per repeat",
        ],
    );
    for a in &r.attacks {
        for (metric, stat) in METRICS
            .iter()
            .filter_map(|(m, _)| a.over_repeats.get(*m).map(|st| (*m, st)))
        {
            let d = digits(metric);
            let values: Vec<String> = stat.values.iter().map(|v| format!("{v:.d$}")).collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.d$} | {} | {} | {} |",
                a.attack,
                a.split,
                a.attribute.as_deref().unwrap_or("-"),
                metric,
                stat.interval.mean,
                opt(stat.interval.sd, d),
                interval_text(&stat.interval, d),
                values.join(", ")
            );
        }
    }
    s.push('\n');
    if !r.floors.is_empty() {
        let _ = writeln!(
            s,
            "### Floors\n\nWhat an attacker gets without the features, per repeat on the same queries: the mean image of its data, the class-mean image of the label the model predicts, chance and a label-only attribute attacker. `margin_over_label` above is each attack's PSNR (or accuracy) above the label-only floor of its own repeat.\n"
        );
        table_head(
            &mut s,
            &["floor", "mean", "sd", "95% interval", "per repeat"],
        );
        for (name, stat) in &r.floors {
            let d = if name.ends_with("PSNR") { 2 } else { 3 };
            let values: Vec<String> = stat.values.iter().map(|v| format!("{v:.d$}")).collect();
            let _ = writeln!(
                s,
                "| {name} | {:.d$} | {} | {} | {} |",
                stat.interval.mean,
                opt(stat.interval.sd, d),
                interval_text(&stat.interval, d),
                values.join(", ")
            );
        }
        s.push('\n');
    }
    for (title, file) in plots {
        let _ = writeln!(s, "### {title}\n\n![{title}]({file})\n");
    }
    let _ = writeln!(s, "## Repeats\n");
    for (i, seed) in r.seeds.iter().enumerate() {
        let _ = writeln!(
            s,
            "- `{}/report.md`: seed {seed}, split {}",
            rep_dir(i),
            r.splits.get(i).copied().unwrap_or(r.split)
        );
    }
    s
}

/// Leakage per split with the 95% interval as error bars; (title, file) pairs.
fn write_plots(r: &RepeatsReport, dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let mut names: Vec<&str> = Vec::new();
    for a in r.attacks.iter().filter(|a| a.ssim.is_some()) {
        if !names.contains(&a.attack.as_str()) {
            names.push(&a.attack);
        }
    }
    let mut out = Vec::new();
    if names.is_empty() {
        return Ok(out);
    }
    for (file, title, y, metric) in [
        (
            "leakage_ssim.svg",
            "Reconstruction SSIM per split (95% t interval over repeats)",
            "SSIM",
            "ssim",
        ),
        (
            "leakage_psnr.svg",
            "Reconstruction PSNR per split (95% t interval over repeats)",
            "PSNR (dB)",
            "psnr",
        ),
    ] {
        let mut series = Vec::new();
        let mut bars = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let mut points = Vec::new();
            for a in r.attacks.iter().filter(|a| a.attack == *n) {
                let Some(stat) = a.over_repeats.get(metric) else {
                    continue;
                };
                points.push((a.split as f64, stat.interval.mean));
                if let (Some(lo), Some(hi)) = (stat.interval.lo, stat.interval.hi) {
                    bars.push(plot::ErrorBar {
                        series: i,
                        x: a.split as f64,
                        lo,
                        hi,
                    });
                }
            }
            series.push(plot::Series {
                name: n.to_string(),
                points,
            });
        }
        let p = plot::LinePlot {
            title: title.into(),
            x_label: "split (blocks on the edge)".into(),
            y_label: y.into(),
            series,
            markers: vec![plot::VMarker {
                x: r.split as f64,
                label: format!("deployed split {}", r.split),
            }],
        };
        let path = dir.join(file);
        plot::save_svg(&path, &plot::line_plot_with_bars(&p, &bars))
            .map_err(|e| Error::io(&path, e))?;
        out.push((title.to_string(), file.to_string()));
    }
    Ok(out)
}

/// Writes the aggregate's `report.json`, `report.md`, `report.html` and
/// plots into the run folder `dir`.
pub fn write_all(r: &RepeatsReport, dir: &Path) -> Result<(), Error> {
    let plots = write_plots(r, dir)?;
    super::write_report_files(
        dir,
        r,
        &format!("splitguard report: {} ({} repeats)", r.name, r.repeats),
        |refs| render_markdown(r, refs),
        &plots,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(attack: &str, split: usize, psnr: f64) -> AttackRecord {
        // Through JSON, so fields added to the record keep this compiling.
        serde_json::from_value(serde_json::json!({
            "attack": attack, "split": split, "mse": 10f64.powf(-psnr / 10.0),
            "psnr": psnr, "ssim": psnr / 40.0,
        }))
        .unwrap()
    }

    fn report(seed: u64, acc: f64, split: usize, attacks: Vec<AttackRecord>) -> Report {
        let json = serde_json::json!({
            "name": "r", "seed": seed, "version": "0", "target_accuracy": acc,
            "split": split, "edge_flops": 100 * split, "edge_params": 10, "bytes_per_query": 4,
            "defenses": [], "arch": "cnn6", "blocks": [], "training": [], "attacks": [],
            "data": {"source": "mnist", "train": 6, "aux": 2, "test": 2,
                     "image_shape": [1, 28, 28], "classes": 10, "hidden": []},
            "recipe": serde_norway::from_str::<serde_json::Value>("name: r\nmodel: {arch: cnn6}\n").unwrap(),
        });
        let mut r: Report = serde_json::from_value(json).unwrap();
        r.attacks = attacks;
        r
    }

    #[test]
    fn aggregate_gives_each_numbers_mean_and_t_interval_over_repeats() {
        let recipe: Recipe =
            serde_norway::from_str("name: r\nrepeats: 3\nmodel: {arch: cnn6}\n").unwrap();
        let reports = [
            report(
                1,
                0.90,
                2,
                vec![record("decoder", 1, 20.0), record("decoder", 2, 15.0)],
            ),
            report(
                2,
                0.92,
                2,
                vec![record("decoder", 1, 22.0), record("decoder", 2, 16.0)],
            ),
            report(3, 0.97, 3, vec![record("decoder", 1, 21.0)]),
        ];
        let agg = aggregate(&recipe, &reports);
        assert_eq!(agg.seeds, [1, 2, 3]);
        assert_eq!((agg.split, agg.splits.clone()), (2, vec![2, 2, 3]));
        assert_eq!(agg.edge_flops, 200);
        let acc = &agg.over_repeats["target_accuracy"];
        assert_eq!(acc.values, [0.90, 0.92, 0.97]);
        assert!((agg.target_accuracy - 0.93).abs() < 1e-12);
        assert_eq!(acc.interval, t_interval(&[0.90, 0.92, 0.97]));
        assert_eq!(agg.attacks.len(), 2);
        let s1 = &agg.attacks[0];
        assert_eq!((s1.attack.as_str(), s1.split), ("decoder", 1));
        assert_eq!(s1.psnr, Some(21.0));
        assert_eq!(s1.over_repeats["psnr"].values, [20.0, 22.0, 21.0]);
        assert_eq!(s1.over_repeats["psnr"].interval.sd, Some(1.0));
        assert!(!s1.over_repeats.contains_key("accuracy"));
        // Split 2 was attacked by two repeats only: n = 2.
        let s2 = &agg.attacks[1];
        assert_eq!(s2.over_repeats["psnr"].interval.n, 2);
        assert_eq!(s2.psnr, Some(15.5));
        // The aggregate's attacks read as plain attack records (the stable keys).
        let json = serde_json::to_value(&agg).unwrap();
        let back: AttackRecord = serde_json::from_value(json["attacks"][0].clone()).unwrap();
        assert_eq!((back.attack.as_str(), back.psnr), ("decoder", Some(21.0)));
        let md = render_markdown(&agg, &[]);
        assert!(
            md.contains("| decoder | 1 | - | psnr | 21.00 | 1.00 |"),
            "{md}"
        );
        assert!(md.contains("20.00, 22.00, 21.00"), "{md}");
        assert!(md.contains("`rep_2/report.md`: seed 3, split 3"), "{md}");
    }

    #[test]
    fn one_repeat_of_a_number_shows_no_interval() {
        let iv = t_interval(&[0.5]);
        assert_eq!(interval_text(&iv, 2), "undefined (n = 1)");
        assert_eq!(mean_pm(&iv, 2), "0.50");
        let iv = t_interval(&[1.0, 3.0]);
        assert_eq!(mean_pm(&iv, 1), format!("2.0 ± {:.1}", 12.706_204_736));
    }
}
