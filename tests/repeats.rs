//! `repeats: N` on a tiny slice of the real embedded MNIST: the repeats'
//! folders, the aggregate's numbers against the repeats' own, repeat 0
//! against the single run of the same seed, resume after a kill, a sweep
//! of repeated points in shards, and `compare` showing intervals.

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use splitguard::attack::AuditObserver;
use splitguard::metrics::t_interval;
use splitguard::pipeline::{self, RunObserver, RunOptions, RunOutcome, files};
use splitguard::recipe::{self, LoadedRecipe, Override, Plan};
use splitguard::train::TrainObserver;

const RECIPE: &str = "
name: rep
seed: 3
repeats: 2
data:
  source: {kind: embedded_mnist}
  limit: 300
model: {arch: cnn6}
split: 2
training:
  epochs: 2
  batch_size: 32
audit:
  splits: [2]
  attacks:
    - {kind: decoder, epochs: 1, restarts: 0, width: 8}
    - {kind: attribute, epochs: 1}
  grid_images: 2
";

/// Stops training after `stop_after` epochs in all (simulates a kill).
struct StopAfter(Option<usize>, usize);
impl TrainObserver for StopAfter {
    fn epoch_end(&mut self, _m: &splitguard::train::EpochMetrics) {
        self.1 += 1;
    }
    fn should_stop(&mut self) -> bool {
        self.0 == Some(self.1)
    }
}
impl AuditObserver for StopAfter {}
impl RunObserver for StopAfter {}

fn loaded(overrides: &[&str]) -> LoadedRecipe {
    let o: Vec<Override> = overrides.iter().map(|s| s.parse().unwrap()).collect();
    recipe::from_str(RECIPE, "rep.yaml", &o).unwrap()
}

fn run(
    loaded: &LoadedRecipe,
    dir: &Path,
    resume: bool,
    stop: Option<usize>,
) -> Result<RunOutcome, splitguard::Error> {
    pipeline::run(
        loaded,
        &RunOptions {
            out_dir: dir.to_path_buf(),
            resume,
        },
        &Device::flex().autodiff(),
        &mut StopAfter(stop, 0),
    )
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&text(path)).unwrap()
}

fn find<'a>(report: &'a Value, attack: &str) -> &'a Value {
    report["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attack"] == attack && a["split"] == 2)
        .unwrap_or_else(|| panic!("no {attack} at split 2"))
}

/// Equal up to float parsing: serde_json reads a float back to within an
/// ulp, not always exactly.
#[track_caller]
fn assert_close(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{got} vs {want}"
    );
}

/// Copies a folder tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        match e.file_type().unwrap().is_dir() {
            true => copy_dir(&e.path(), &dest),
            false => {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
}

#[test]
fn repeats_aggregate_their_numbers_and_resume_to_the_same_report() {
    let root = tempfile::tempdir().unwrap();
    let (a, single) = (root.path().join("a"), root.path().join("single"));
    let rec = loaded(&[]);
    let outcome = run(&rec, &a, false, None).unwrap();
    let RunOutcome::Repeats(agg) = outcome else {
        panic!("repeats: 2 gives the aggregate");
    };
    assert_eq!(agg.repeats, 2);
    assert_eq!(agg.seeds, [3, pipeline::repeat_seed(3, 1)]);

    // Each repeat is an ordinary run in its own folder, with its own seed.
    let reps: Vec<Value> = (0..2)
        .map(|i| json(&a.join(format!("rep_{i}")).join(files::REPORT_JSON)))
        .collect();
    assert_eq!(reps[0]["seed"], 3);
    assert_eq!(reps[1]["seed"], pipeline::repeat_seed(3, 1));
    assert!(!text(&a.join("rep_1").join(files::RECIPE)).contains("repeats"));
    assert!(text(&a.join(files::RECIPE)).contains("repeats: 2"));

    // The aggregate: the mean and t interval of the repeats' numbers.
    let top = json(&a.join(files::REPORT_JSON));
    let acc: Vec<f64> = reps
        .iter()
        .map(|r| r["target_accuracy"].as_f64().unwrap())
        .collect();
    assert_close(
        top["target_accuracy"].as_f64().unwrap(),
        (acc[0] + acc[1]) / 2.0,
    );
    let iv = t_interval(&acc);
    let stat = &top["over_repeats"]["target_accuracy"];
    for (key, want) in [("lo", iv.lo), ("hi", iv.hi)] {
        assert_close(stat[key].as_f64().unwrap(), want.unwrap());
    }
    assert_eq!(stat["values"].as_array().unwrap().len(), 2);
    for (attack, metrics) in [
        ("decoder", &["mse", "psnr", "ssim"][..]),
        ("attribute", &["accuracy", "chance"][..]),
    ] {
        let got = find(&top, attack);
        for m in metrics {
            let values: Vec<f64> = reps
                .iter()
                .map(|r| find(r, attack)[m].as_f64().unwrap())
                .collect();
            assert_close(got[m].as_f64().unwrap(), (values[0] + values[1]) / 2.0);
            let iv = t_interval(&values);
            for (key, want) in [("sd", iv.sd), ("lo", iv.lo), ("hi", iv.hi)] {
                assert_close(got["over_repeats"][m][key].as_f64().unwrap(), want.unwrap());
            }
        }
    }
    let md = text(&a.join(files::REPORT_MD));
    assert!(
        md.contains("(2 repeats)") && md.contains("95% interval"),
        "{md}"
    );
    assert!(a.join(files::REPORT_HTML).is_file() && a.join("leakage_psnr.svg").is_file());

    // Repeat 0 is the single run of the recipe's seed, byte for byte.
    run(&loaded(&["repeats=1"]), &single, false, None).unwrap();
    assert!(!single.join("rep_0").exists());
    assert_eq!(
        text(&single.join(files::REPORT_JSON)),
        text(&a.join("rep_0").join(files::REPORT_JSON))
    );
    assert_eq!(
        text(&single.join(files::RECIPE)),
        text(&a.join("rep_0").join(files::RECIPE))
    );

    // Killed in repeat 1's training (after 3 epochs in all), then resumed:
    // the same aggregate, byte for byte.
    let c = root.path().join("c");
    let err = run(&rec, &c, false, Some(3)).unwrap_err().to_string();
    assert!(err.contains("stopped after epoch 1"), "{err}");
    assert!(c.join("rep_0").join(files::REPORT_JSON).is_file());
    assert!(!c.join("rep_1").join(files::REPORT_JSON).exists());
    assert!(!c.join(files::REPORT_JSON).exists());
    let err = run(&rec, &c, false, None).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("--resume"),
        "{err}"
    );
    run(&rec, &c, true, None).unwrap();
    assert_eq!(
        text(&c.join(files::REPORT_JSON)),
        text(&a.join(files::REPORT_JSON))
    );
    assert_eq!(
        text(&c.join(files::REPORT_MD)),
        text(&a.join(files::REPORT_MD))
    );

    // Killed in repeat 1's audit (its last attack not recorded), then resumed.
    let d = root.path().join("d");
    copy_dir(&a, &d);
    for f in [files::REPORT_JSON, files::REPORT_MD, files::REPORT_HTML] {
        std::fs::remove_file(d.join(f)).unwrap();
        std::fs::remove_file(d.join("rep_1").join(f)).unwrap();
    }
    let audit = d.join("rep_1").join(files::AUDIT);
    let lines: Vec<String> = text(&audit).lines().map(String::from).collect();
    assert!(lines.len() >= 2);
    std::fs::write(&audit, lines[..1].join("\n") + "\n").unwrap();
    run(&rec, &d, true, None).unwrap();
    assert_eq!(
        text(&d.join(files::REPORT_JSON)),
        text(&a.join(files::REPORT_JSON))
    );

    // A different recipe (3 repeats) does not resume the folder.
    let err = run(&loaded(&["repeats=3"]), &c, true, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("recipe differs"), "{err}");
    // Commands that need one model point at a repeat's folder.
    let err = pipeline::open_run(&a, &Device::flex())
        .err()
        .expect("a repeats folder holds no model")
        .to_string();
    assert!(err.contains("rep_0") && err.contains("2 repeats"), "{err}");
}

/// A sweep of two points with two repeats each, run in two shards: each
/// point runs its repeats in its own folder, and the comparison shows
/// every number with its interval.
#[test]
fn a_sweep_of_repeated_points_runs_in_shards_and_compares_with_intervals() {
    let root = tempfile::tempdir().unwrap();
    let sweep_text =
        format!("{RECIPE}sweep:\n  training.defenses.label_smoothing.strength: [0.0, 0.3]\n");
    let Plan::Sweep(sweep) = recipe::plan_from_str(
        &sweep_text,
        "rep.yaml",
        &["training.epochs=1".parse().unwrap()],
    )
    .unwrap() else {
        panic!("a sweep");
    };
    let out = root.path().join("sweep");
    let dev = Device::flex().autodiff();
    for shard in ["0/2", "1/2"] {
        let outcome = splitguard::compare::sweep::run_sweep(
            &sweep,
            &splitguard::compare::sweep::SweepOptions {
                out_dir: out.clone(),
                shard: Some(shard.parse().unwrap()),
                resume: false,
            },
            &dev,
            &mut StopAfter(None, 0),
        )
        .unwrap();
        assert_eq!(outcome.ran.len(), 1);
        assert!(matches!(outcome.ran[0].1, RunOutcome::Repeats(_)));
    }
    let points: Vec<String> = sweep.points.iter().map(|p| p.label.clone()).collect();
    for p in &points {
        for f in ["rep_0/report.json", "rep_1/report.json", "report.json"] {
            assert!(out.join(p).join(f).is_file(), "{p}/{f}");
        }
    }
    // Resuming the finished sweep reruns nothing and changes nothing.
    let before = text(&out.join(&points[1]).join(files::REPORT_JSON));
    splitguard::compare::sweep::run_sweep(
        &sweep,
        &splitguard::compare::sweep::SweepOptions {
            out_dir: out.clone(),
            shard: None,
            resume: true,
        },
        &dev,
        &mut StopAfter(None, 0),
    )
    .unwrap();
    assert_eq!(text(&out.join(&points[1]).join(files::REPORT_JSON)), before);

    // The comparison: `mean ± half-width`, the interval's ends in the CSV.
    let md = text(&out.join("comparison.md"));
    let csv = text(&out.join("comparison.csv"));
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| {
        head.iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name} in {head:?}"))
    };
    for (p, row) in points.iter().zip(csv.lines().skip(1)) {
        let cells: Vec<&str> = row.split(',').collect();
        let report = json(&out.join(p).join(files::REPORT_JSON));
        let dec = find(&report, "decoder");
        let psnr = &dec["over_repeats"]["psnr"];
        let num = |c: &str| cells[col(c)].parse::<f64>().unwrap();
        assert_eq!(num("decoder_psnr"), psnr["mean"].as_f64().unwrap());
        assert_eq!(num("decoder_psnr_lo"), psnr["lo"].as_f64().unwrap());
        assert_eq!(num("decoder_psnr_hi"), psnr["hi"].as_f64().unwrap());
        assert_eq!(cells[col("repeats")], "2");
        let half = (psnr["hi"].as_f64().unwrap() - psnr["lo"].as_f64().unwrap()) / 2.0;
        let shown = format!("| {:.2} ± {half:.2} |", psnr["mean"].as_f64().unwrap());
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {p} |")))
            .unwrap();
        assert!(line.contains(&shown), "{shown} in {line}");
        assert!(line.contains("% ± "), "{line}");
    }
    assert!(md.contains("95% Student-t interval"), "{md}");
    // Point 1 against point 0: the difference of the means with its Welch interval.
    assert!(md.contains("## Differences beyond seed noise"), "{md}");
    let row = md
        .lines()
        .find(|l| l.starts_with(&format!("| {} | decoder psnr | 2 |", points[1])))
        .unwrap_or_else(|| panic!("no decoder row in {md}"));
    let psnr = |i: usize| {
        let r = json(&out.join(&points[i]).join(files::REPORT_JSON));
        find(&r, "decoder")["over_repeats"]["psnr"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let d = splitguard::metrics::welch_difference(&psnr(0), &psnr(1));
    assert!(row.contains(&format!("| {:+.2} dB |", d.diff)), "{row}");
    // Error bars on the trade-off plots: per run, an x and a y bar, each a
    // stem and two caps.
    for svg in ["tradeoff_psnr.svg", "tradeoff_error.svg"] {
        let svg = text(&out.join(svg));
        assert_eq!(
            svg.matches(r#"stroke-width="1.5""#).count(),
            2 * 2 * 3,
            "{svg}"
        );
    }
}
