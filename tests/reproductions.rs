//! `splitguard reproductions` (issue 16): the document is computed from run
//! folders, never typed. A tiny leakage run stands in for the seed-003
//! experiment; the section's table must match the runs' own `report.json`.

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;
use splitguard::leakage::run_leakage;
use splitguard::repro::{self, Verdict};

/// Runs a tiny leakage experiment into `dir` with `extra` recipe lines
/// under `attack:`.
fn tiny_leakage(dir: &Path, attack: &str) -> Value {
    let text = format!(
        "name: tiny-repro\nmodel: {{arch: lenet}}\ntraining: {{lr_drops: {{factor: 0.1}}}}\n\
         data: {{limit: 300}}\nleakage:\n  examples: 4\n  threads: 2\n  defenses:\n    \
         - {{kind: noise, scales: [0.01, 0.03]}}\n  attack: {{iterations: 15, {attack}}}\n  \
         i2f: {{cg_iterations: 10, lanczos_steps: 4}}\n"
    );
    let loaded = splitguard::recipe::from_str(&text, "tiny.yaml", &[]).unwrap();
    let cfg = loaded.recipe.leakage.clone().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    run_leakage(
        &loaded.recipe,
        &cfg,
        dir,
        &Device::flex().autodiff(),
        &mut (),
    )
    .unwrap();
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// The cells of the Markdown table rows that start with `| {first} |`.
fn rows<'a>(doc: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    doc.lines()
        .filter(|l| l.starts_with(&format!("| {first} |")))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect()
}

#[test]
fn the_leakage_section_is_computed_from_the_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let matched = tiny_leakage(
        &runs.join("003-i2f/matched"),
        "distance: l2, label: known, tv_weight: 0.0",
    );
    tiny_leakage(&runs.join("003-i2f/today"), "distance: cosine");
    std::fs::write(runs.join("003-i2f/matched/wall_seconds.txt"), "75\n").unwrap();
    let out = tmp.path().join("REPRODUCTIONS.md");
    let written = repro::write(&runs, &out).unwrap();
    let doc = std::fs::read_to_string(&out).unwrap();

    // One row per defense setting, in the report's order, with the report's
    // own numbers: examples, mean PSNR and the within-setting Spearman that
    // `leakage` computed itself.
    // The row label comes from the report's own attack settings.
    let table = rows(&doc, "matched: l2 matching, known labels, TV off");
    let settings = matched["settings"].as_array().unwrap();
    assert_eq!(table.len(), settings.len());
    for (row, s) in table.iter().zip(settings) {
        assert_eq!(row[1], s["defense"].as_str().unwrap());
        assert_eq!(row[2], s["within"]["pairs"].to_string());
        assert_eq!(row[3], format!("{:.2}", s["psnr"].as_f64().unwrap()));
        let rho = s["within"]["spearman"].as_f64().unwrap();
        assert!(
            row[4].starts_with(&format!("{rho:.2} [")),
            "{} vs {rho}",
            row[4]
        );
        // The bound's share, from the per-example results.
        let results: Vec<&Value> = matched["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["defense"] == s["defense"])
            .collect();
        let below = results
            .iter()
            .filter(|r| r["i2f"]["lower_bound"].as_f64() <= r["error_norm"].as_f64())
            .count();
        assert_eq!(
            row[6],
            format!("{:.0}%", 100.0 * below as f64 / results.len() as f64)
        );
    }
    // Today's run here keeps the default labels (inferred) and TV (1e-4).
    assert_eq!(
        rows(&doc, "today: cosine matching, inferred labels, TV 1e-4").len(),
        2
    );

    // The verdict and the summary come from the same section; the sections
    // without runs say so; the run's wall time is listed; the grid is copied.
    let sections = repro::sections(&runs).unwrap();
    let leak = sections.iter().find(|s| s.id == "003").unwrap();
    // The verdict follows its rule on the table's own intervals: the rank
    // correlation's interval above 0 in every setting (and the bound below
    // the error in 95% of examples) for the matched attack, then for today's.
    let above = |first: &str| {
        rows(&doc, first).iter().all(|r| {
            let lo = r[4].split('[').nth(1).and_then(|x| x.split(',').next());
            lo.and_then(|x| x.trim().parse::<f64>().ok())
                .is_some_and(|lo| lo > 0.0)
        })
    };
    let bound = table
        .iter()
        .all(|r| r[6].trim_end_matches('%').parse::<f64>().unwrap() >= 95.0);
    let expected = match (
        above("matched: l2 matching, known labels, TV off") && bound,
        above("today: cosine matching, inferred labels, TV 1e-4"),
    ) {
        (false, _) => Verdict::DoesNotHold,
        (true, true) => Verdict::Holds,
        (true, false) => Verdict::HoldsOnlyPaper,
    };
    assert_eq!(leak.verdict, expected);
    assert!(doc.contains(&format!("| {} |", leak.verdict.text())));
    for id in ["004", "002", "001", "000"] {
        let s = sections.iter().find(|s| s.id == id).unwrap();
        assert_eq!(s.verdict, Verdict::NotRun, "{id}");
    }
    assert!(doc.contains("`003-i2f/matched` (1m15s)"), "{doc}");
    let grid = tmp.path().join("docs/repro/003-matched.png");
    assert!(written.contains(&grid) && grid.is_file());

    // Regenerating gives the same document, byte for byte.
    repro::write(&runs, &out).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), doc);
}

#[test]
fn a_broken_report_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("003-i2f/matched");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.json"), "{ not json").unwrap();
    let err = repro::write(tmp.path(), &tmp.path().join("R.md")).unwrap_err();
    assert!(matches!(err, repro::ReproError::Json { .. }));
    assert!(
        err.to_string().contains("003-i2f/matched/report.json"),
        "{err}"
    );
    assert!(!tmp.path().join("R.md").exists());
}
