//! Sweeps, `splitguard compare` and the HTML report, on one real tiny sweep
//! (two points, a small slice of the embedded MNIST) run once through the
//! command line in two shards and shared by the tests of this file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

fn splitguard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(args)
        .output()
        .expect("splitguard runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two points: label smoothing off and on; decoder and attribute attacks at
/// the deployed split 2, the decoder also at split 1.
const SWEEP: &str = "
name: tiny-sweep
seed: 5
data:
  source: {kind: embedded_mnist}
  limit: 300
model: {arch: cnn6}
split: 2
training:
  epochs: 1
  batch_size: 32
  defenses:
    label_smoothing: {strength: 0.0}
audit:
  splits: [1, 2]
  attacks:
    - {kind: decoder, epochs: 1, restarts: 0, width: 8}
    - {kind: attribute, epochs: 1}
  grid_images: 3
sweep:
  training.defenses.label_smoothing.strength: [0.0, 0.3]
";

const POINTS: [&str; 2] = [
    "000_training.defenses.label_smoothing.strength=0.0",
    "001_training.defenses.label_smoothing.strength=0.3",
];

struct Shared {
    recipe: PathBuf,
    sweep: PathBuf,
    /// stdout of shard 0/2 and of shard 1/2.
    shard_out: [String; 2],
    /// comparison.csv as shard 0/2 left it (before shard 1/2 ran).
    csv_after_shard0: String,
}

/// Runs the sweep once: shard 0/2, then shard 1/2.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        // A static is never dropped, so no TempDir: a fixed folder in
        // cargo's scratch space for integration tests, emptied first.
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare-sweep");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let recipe = root.join("sweep.yaml");
        std::fs::write(&recipe, SWEEP).unwrap();
        let sweep = root.join("sweep");
        let run = |shard: &str| {
            let (code, out, err) = splitguard(&[
                "run",
                recipe.to_str().unwrap(),
                "--out",
                sweep.to_str().unwrap(),
                "--shard",
                shard,
            ]);
            assert_eq!(code, 0, "shard {shard}: {err}");
            out
        };
        let first = run("0/2");
        let csv_after_shard0 = std::fs::read_to_string(sweep.join("comparison.csv")).unwrap();
        let second = run("1/2");
        Shared {
            recipe,
            sweep,
            shard_out: [first, second],
            csv_after_shard0,
        }
    })
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `header -> value` maps of a CSV without quoted commas in numeric columns.
fn csv_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines();
    let head: Vec<String> = split_csv(lines.next().unwrap());
    lines
        .map(|l| {
            let cells = split_csv(l);
            assert_eq!(cells.len(), head.len(), "{l}");
            head.iter().cloned().zip(cells).collect()
        })
        .collect()
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn record<'a>(report: &'a Value, attack: &str, split: u64) -> &'a Value {
    report["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attack"] == attack && a["split"] == split)
        .unwrap_or_else(|| panic!("no {attack} at split {split}"))
}

#[test]
fn each_shard_runs_its_points_once_and_compares_what_has_finished() {
    let s = shared();
    // Shard 0/2 ran point 0 only; its comparison had one run.
    assert!(s.shard_out[0].contains(POINTS[0]) && !s.shard_out[0].contains(POINTS[1]));
    assert!(s.shard_out[0].contains("1 run(s) left to other shards"));
    assert_eq!(csv_rows(&s.csv_after_shard0).len(), 1);
    // Shard 1/2 ran point 1 only, and compared both.
    assert!(s.shard_out[1].contains(POINTS[1]) && !s.shard_out[1].contains(POINTS[0]));
    assert!(s.shard_out[1].contains("compared 2 run(s)"));
    for p in POINTS {
        assert!(s.sweep.join(p).join("report.json").is_file(), "{p}");
        assert!(s.sweep.join(p).join("report.html").is_file(), "{p}");
    }
    // Each point's resolved recipe holds its swept value.
    for (p, strength) in POINTS.iter().zip(["0.0", "0.3"]) {
        let r = std::fs::read_to_string(s.sweep.join(p).join("recipe.resolved.yaml")).unwrap();
        assert!(r.contains(&format!("strength: {strength}")), "{p}: {r}");
        assert!(!r.contains("\nsweep:"), "{r}");
    }
    let manifest = json(&s.sweep.join("sweep.json"));
    assert_eq!(manifest["points"].as_array().unwrap().len(), 2);
    assert_eq!(manifest["points"][1]["label"], POINTS[1]);
}

#[test]
fn compare_table_numbers_equal_each_runs_report_json() {
    let s = shared();
    let rows = csv_rows(&std::fs::read_to_string(s.sweep.join("comparison.csv")).unwrap());
    assert_eq!(rows.len(), 2);
    let md = std::fs::read_to_string(s.sweep.join("comparison.md")).unwrap();
    for (row, p) in rows.iter().zip(POINTS) {
        let report = json(&s.sweep.join(p).join("report.json"));
        assert_eq!(row["run"], p);
        assert_eq!(row["name"], "tiny-sweep");
        let num = |k: &str| row[k].parse::<f64>().unwrap();
        assert_eq!(
            num("target_accuracy"),
            report["target_accuracy"].as_f64().unwrap()
        );
        assert_eq!(row["split"], report["split"].to_string());
        assert_eq!(row["edge_flops"], report["edge_flops"].to_string());
        assert_eq!(
            row["bytes_per_query"],
            report["bytes_per_query"].to_string()
        );
        let dec = record(&report, "decoder", 2);
        for m in ["mse", "psnr", "ssim"] {
            assert_eq!(
                num(&format!("decoder_{m}")),
                dec[m].as_f64().unwrap(),
                "{m}"
            );
        }
        let att = record(&report, "attribute", 2);
        let key = format!("attribute[{}]", att["attribute"].as_str().unwrap());
        for m in ["accuracy", "chance"] {
            assert_eq!(num(&format!("{key}_{m}")), att[m].as_f64().unwrap(), "{m}");
        }
        // The Markdown row shows the same numbers, rounded as report.md does.
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {p} |")))
            .unwrap();
        for shown in [
            format!(
                "{:.2}%",
                100.0 * report["target_accuracy"].as_f64().unwrap()
            ),
            format!("{:.4}", dec["mse"].as_f64().unwrap()),
            format!("{:.2}", dec["psnr"].as_f64().unwrap()),
            format!("{:.3}", dec["ssim"].as_f64().unwrap()),
            format!("{:.3}", att["accuracy"].as_f64().unwrap()),
        ] {
            assert!(line.contains(&format!("| {shown} |")), "{shown} in {line}");
        }
        assert!(
            line.contains(&format!(
                "| label_smoothing(strength={}) |",
                if p.ends_with("0.3") { "0.3" } else { "0.0" }
            )),
            "{line}"
        );
    }
    // The long table has every attack of every run (decoder at 2 splits,
    // attribute at 2 splits for each of the embedded MNIST's 2 attributes,
    // writer and stroke).
    let long = std::fs::read_to_string(s.sweep.join("comparison_attacks.csv")).unwrap();
    assert_eq!(csv_rows(&long).len(), 2 * (2 + 2 * 2));
}

#[test]
fn compare_command_writes_tables_and_labelled_trade_off_plots() {
    let s = shared();
    let out = tempfile::tempdir().unwrap();
    let dirs: Vec<String> = POINTS
        .iter()
        .map(|p| s.sweep.join(p).display().to_string())
        .collect();
    let (code, stdout, err) = splitguard(&[
        "compare",
        &dirs[0],
        &dirs[1],
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("compared 2 run(s)"), "{stdout}");
    // Same table as the sweep's own comparison.
    assert_eq!(
        std::fs::read_to_string(out.path().join("comparison.csv")).unwrap(),
        std::fs::read_to_string(s.sweep.join("comparison.csv")).unwrap()
    );
    for svg in ["tradeoff_error.svg", "tradeoff_psnr.svg"] {
        let text = std::fs::read_to_string(out.path().join(svg)).unwrap();
        // Plot labels keep the last segment of each dotted path.
        for p in ["000_strength=0.0", "001_strength=0.3"] {
            assert!(text.contains(&format!(">{p}</text>")), "{svg} lacks {p}");
        }
        assert_eq!(text.matches("<circle").count(), 2, "{svg}");
    }
    let err_plot = std::fs::read_to_string(out.path().join("tradeoff_error.svg")).unwrap();
    assert!(err_plot.contains("1 - attribute accuracy"));
}

#[test]
fn compare_on_bad_or_unfinished_folders_exits_2_naming_them() {
    let s = shared();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("cmp");
    let out = out.to_str().unwrap();
    // A folder that does not exist.
    let missing = root.path().join("nope");
    let (code, _, err) = splitguard(&["compare", missing.to_str().unwrap(), "--out", out]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nope") && err.contains("no such folder"),
        "{err}"
    );
    // An unfinished run: its recipe but no report.json.
    let unfinished = root.path().join("half");
    std::fs::create_dir_all(&unfinished).unwrap();
    std::fs::copy(
        s.sweep.join(POINTS[0]).join("recipe.resolved.yaml"),
        unfinished.join("recipe.resolved.yaml"),
    )
    .unwrap();
    let (code, _, err) = splitguard(&["compare", unfinished.to_str().unwrap(), "--out", out]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("half") && err.contains("has not finished"),
        "{err}"
    );
    // A report.json without a stable key.
    let broken = root.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("report.json"),
        r#"{"target_accuracy": 0.9, "attacks": []}"#,
    )
    .unwrap();
    let (code, _, err) = splitguard(&["compare", broken.to_str().unwrap(), "--out", out]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("broken/report.json") && err.contains("`split`"),
        "{err}"
    );
    // Not JSON at all.
    std::fs::write(broken.join("report.json"), "{").unwrap();
    let (code, _, err) = splitguard(&["compare", broken.to_str().unwrap(), "--out", out]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("broken/report.json") && err.contains("not valid JSON"),
        "{err}"
    );
    // A folder of runs (the sweep) beside one unfinished run inside it.
    let group = root.path().join("group");
    std::fs::create_dir_all(&group).unwrap();
    std::fs::rename(&unfinished, group.join("half")).unwrap();
    let (code, stdout, err) = splitguard(&["compare", group.to_str().unwrap(), "--out", out]);
    assert_eq!(code, 2, "{stdout} {err}");
    assert!(err.contains("no finished run"), "{err}");
}

#[test]
fn bad_shards_and_bad_sweeps_exit_2() {
    let s = shared();
    let recipe = s.recipe.to_str().unwrap();
    let (code, _, err) = splitguard(&["run", recipe, "--shard", "2/2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("0-based"), "{err}");
    let plain = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes/quickstart.yaml");
    let (code, _, err) = splitguard(&["run", plain, "--shard", "0/2", "--out", "/nonexistent/x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no `sweep:` section"), "{err}");
    let (code, _, err) = splitguard(&[
        "recipe",
        "check",
        recipe,
        "--set",
        "sweep={training.epochz: [1, 2]}",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("training.epochz"), "{err}");
    let (code, out, err) = splitguard(&["recipe", "check", recipe]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sweep 'tiny-sweep' of 2 runs"), "{out}");
}

#[test]
fn html_report_inlines_every_picture_and_holds_every_table_of_report_md() {
    let s = shared();
    let run = s.sweep.join(POINTS[1]);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // No reference to any file: every picture is inline.
    assert!(
        !html.contains("src=\"")
            || html.matches("src=\"").count()
                == html.matches("src=\"data:image/png;base64,").count()
    );
    for ext in [".png\"", ".svg\"", "href="] {
        assert!(!html.contains(ext), "{ext} referenced");
    }
    assert!(!html.contains("<script"));
    let pngs = md.matches(".png)").count();
    assert!(pngs >= 2, "{md}");
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), pngs);
    let svgs = md.matches(".svg)").count();
    assert_eq!(html.matches("<svg ").count(), svgs);
    // Every table of report.md: as many tables, and each header row's
    // cells and each body cell text appear in order.
    let md_tables = md
        .lines()
        .zip(md.lines().skip(1))
        .filter(|(h, sep)| h.starts_with('|') && sep.starts_with("|---"))
        .count();
    assert!(md_tables >= 4);
    assert_eq!(html.matches("<table>").count(), md_tables);
    assert_eq!(
        html.matches("<table>").count(),
        html.matches("</table>").count()
    );
    for line in md
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let row = cells
            .iter()
            .map(|c| splitguard::report::html::escape(c))
            .collect::<Vec<_>>();
        let tr_th = format!("<th>{}</th>", row.join("</th><th>"));
        let tr_td = format!("<td>{}</td>", row.join("</td><td>"));
        assert!(html.contains(&tr_th) || html.contains(&tr_td), "row {line}");
    }
}
