//! The baseline defenses end to end on a small slice of the real embedded
//! data: NoPeek's term is logged, and what the server receives at the
//! deployment split (for the accuracy, every attack and export-features) is
//! the features after the edge's noise and top-k sparsification, drawn from
//! the recipe's seed; other splits are not perturbed.

use burn::prelude::*;

use splitguard::pipeline::{self, RunOptions, files};
use splitguard::recipe;
use splitguard::train::Evaluator;

const RECIPE: &str = "
name: e2e-baselines
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
    nopeek: {weight: 0.1}
    split_noise: {kind: laplace, scale: 0.5, relative: true}
    top_k: {keep: 0.25}
audit:
  splits: [1, 2]
  attacks:
    - {kind: attribute, epochs: 1}
";

#[test]
fn the_server_sees_noisy_sparse_features_at_the_split() {
    let (root, dir, report) = run_recipe(RECIPE, "e2e-baselines.yaml");
    let names: Vec<&str> = report["defenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for n in ["nopeek", "split_noise", "top_k"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let history = std::fs::read_to_string(dir.join(files::METRICS)).unwrap();
    assert!(history.contains("\"nopeek_dcor\""), "{history}");

    let dev = Device::flex();
    let opened = pipeline::open_run(&dir, &dev).unwrap();
    let view =
        pipeline::ServerView::new(&opened.recipe, &opened.model, &opened.splits, 2, &dev).unwrap();
    assert_eq!(
        view.at_split.as_ref().unwrap().names(),
        ["split_noise", "top_k"]
    );
    // The reported accuracy is the server's on what it receives.
    let reported = report["target_accuracy"].as_f64().unwrap();
    assert!((reported - view.target_accuracy.unwrap()).abs() < 1e-9);

    let (clean, shape) = Evaluator::new(&opened.model, &dev, 256).features(&opened.splits.test, 2);
    let dim: usize = shape.iter().product();
    let export = |k: usize, name: &str| {
        let out = root.path().join(name);
        pipeline::export_features(&opened, k, pipeline::Part::Test, &out, false, &dev).unwrap();
        splitguard::report::npy::read_npy_f32(&out).unwrap().0
    };
    let sent = export(2, "a.npy");
    assert_eq!(sent, export(2, "b.npy"), "the draws are seeded");
    assert_eq!(sent.len(), clean.len());
    let k = (0.25 * dim as f64).ceil() as usize;
    let mut diffs = Vec::new();
    for (row, c) in sent.chunks(dim).zip(clean.chunks(dim)) {
        assert_eq!(row.iter().filter(|v| **v != 0.0).count(), k);
        diffs.extend(
            row.iter()
                .zip(c)
                .filter(|(s, _)| **s != 0.0)
                .map(|(s, c)| f64::from((s - c).abs())),
        );
    }
    // Laplace noise with b = 0.5 std(owner's features) on the kept values.
    let (owner, _) = Evaluator::new(&opened.model, &dev, 256).features(&opened.splits.train, 2);
    let b = 0.5 * f64::from(splitguard::defense::at_split::std_of(&owner));
    let mad = diffs.iter().sum::<f64>() / diffs.len() as f64;
    assert!(mad > 0.2 * b && mad < 5.0 * b, "mean |noise| {mad}, b {b}");
    // Split 1 is not the deployment split: sent as computed.
    let (clean1, _) = Evaluator::new(&opened.model, &dev, 256).features(&opened.splits.test, 1);
    assert_eq!(export(1, "c.npy"), clean1);
}

/// Runs `text` into a fresh temporary folder: (the folder, the run
/// directory inside it, its report.json).
fn run_recipe(
    text: &str,
    name: &str,
) -> (tempfile::TempDir, std::path::PathBuf, serde_json::Value) {
    let loaded = recipe::from_str(text, name, &[]).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    pipeline::run(
        &loaded,
        &RunOptions {
            out_dir: dir.clone(),
            resume: false,
        },
        &Device::flex().autodiff(),
        &mut NoObserver,
    )
    .unwrap();
    let report =
        serde_json::from_str(&std::fs::read_to_string(dir.join(files::REPORT_JSON)).unwrap())
            .unwrap();
    (root, dir, report)
}

struct NoObserver;
impl splitguard::train::TrainObserver for NoObserver {}
impl splitguard::attack::AuditObserver for NoObserver {}
impl pipeline::RunObserver for NoObserver {}

/// Shredder: the noise is learned on the trained model when the deployment
/// is built, the same in every command (run, export), and what the server
/// receives is the features plus that noise.
#[test]
fn shredder_noise_is_learned_once_per_recipe_and_sent() {
    let text = RECIPE
        .replace("e2e-baselines", "e2e-shredder")
        .replace(
            "    nopeek: {weight: 0.1}\n    split_noise: {kind: laplace, scale: 0.5, relative: true}\n    top_k: {keep: 0.25}\n",
            "    shredder: {lambda: 0.5, scale: 0.5, relative: true, epochs: 2}\n",
        );
    assert!(text.contains("shredder"));
    let (root, dir, report) = run_recipe(&text, "e2e-shredder.yaml");
    assert_eq!(report["defenses"], serde_json::json!(["shredder"]));
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(files::SHREDDER)).unwrap()).unwrap();
    assert_eq!(log["mean_abs_noise"].as_array().unwrap().len(), 2, "{log}");
    assert!(log["fresh_scale"].as_f64().unwrap() > 0.0);
    let dev = Device::flex();
    let opened = pipeline::open_run(&dir, &dev).unwrap();
    let view =
        pipeline::ServerView::new(&opened.recipe, &opened.model, &opened.splits, 2, &dev).unwrap();
    assert_eq!(view.at_split.as_ref().unwrap().names(), ["shredder"]);
    let reported = report["target_accuracy"].as_f64().unwrap();
    assert!((reported - view.target_accuracy.unwrap()).abs() < 1e-9);
    let (clean, _) = Evaluator::new(&opened.model, &dev, 256).features(&opened.splits.test, 2);
    let out = root.path().join("z.npy");
    pipeline::export_features(&opened, 2, pipeline::Part::Test, &out, false, &dev).unwrap();
    let sent = splitguard::report::npy::read_npy_f32(&out).unwrap().0;
    assert_eq!(sent, view.apply(2, clean.clone()).unwrap());
    let moved = sent.iter().zip(&clean).filter(|(s, c)| s != c).count();
    assert!(moved > clean.len() * 9 / 10, "{moved} of {}", clean.len());
}

/// Feature pruning (seed 004's Figure 5 baseline): the server receives the
/// split features with the same values zeroed in every query, those the
/// next layer weighs least, and the reported accuracy is the fine-tuned
/// server's on them; `export-features` sends the same.
#[test]
fn feature_pruning_zeroes_the_same_values_and_fine_tunes_the_server() {
    let text = RECIPE.replace("e2e-baselines", "e2e-pruning").replace(
        "    nopeek: {weight: 0.1}\n    split_noise: {kind: laplace, scale: 0.5, relative: true}\n    top_k: {keep: 0.25}\n",
        "    feature_pruning: {keep: 0.1, epochs: 2}\n",
    );
    assert!(text.contains("feature_pruning"));
    let (root, dir, report) = run_recipe(&text, "e2e-pruning.yaml");
    assert_eq!(report["defenses"], serde_json::json!(["feature_pruning"]));
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(files::FEATURE_PRUNING)).unwrap())
            .unwrap();
    let (kept, of) = (
        log["kept_values"].as_u64().unwrap() as usize,
        log["of_values"].as_u64().unwrap() as usize,
    );
    assert_eq!(log["fine_tune_loss"].as_array().unwrap().len(), 2);

    let dev = Device::flex();
    let opened = pipeline::open_run(&dir, &dev).unwrap();
    let view =
        pipeline::ServerView::new(&opened.recipe, &opened.model, &opened.splits, 2, &dev).unwrap();
    assert_eq!(view.at_split.as_ref().unwrap().names(), ["feature_pruning"]);
    let reported = report["target_accuracy"].as_f64().unwrap();
    assert!((reported - view.target_accuracy.unwrap()).abs() < 1e-9);
    let (clean, shape) = Evaluator::new(&opened.model, &dev, 256).features(&opened.splits.test, 2);
    let out = root.path().join("z.npy");
    pipeline::export_features(&opened, 2, pipeline::Part::Test, &out, false, &dev).unwrap();
    let sent = splitguard::report::npy::read_npy_f32(&out).unwrap().0;
    let dim: usize = shape.iter().product();
    // A convolution follows split 2: of its channels, ceil(0.1 * C) are
    // kept whole, those with the highest next-layer scores, the same in
    // every row, holding the unmodified features.
    use splitguard::defense::feature_pruning::{keep_mask, unit_scores};
    let units = unit_scores(&opened.model, 2, &shape).unwrap();
    let channels = units.scores.len();
    assert_eq!((channels, units.unit_len), (shape[0], shape[1] * shape[2]));
    let want_channels = (0.1 * channels as f64).ceil() as usize;
    assert_eq!(kept, want_channels * units.unit_len);
    assert_eq!(of, dim);
    let mask = keep_mask(&units, want_channels);
    for (row, c) in sent.chunks(dim).zip(clean.chunks(dim)) {
        for ((s, c), m) in row.iter().zip(c).zip(&mask) {
            assert_eq!(*s, if *m == 1.0 { *c } else { 0.0 });
        }
    }
}

/// Adversarial training against a known attribute (seed 004's Figure 6
/// baseline): the adversary's cross-entropy and accuracy are logged per
/// epoch, and a recipe naming an attribute the data lacks is refused.
#[test]
fn attribute_adversarial_training_logs_its_adversary_and_checks_the_attribute() {
    let text = RECIPE.replace("e2e-baselines", "e2e-at").replace(
        "    nopeek: {weight: 0.1}\n    split_noise: {kind: laplace, scale: 0.5, relative: true}\n    top_k: {keep: 0.25}\n",
        "    attribute_adversarial: {attribute: writer, weight: 0.5}\n",
    );
    let (_root, dir, report) = run_recipe(&text, "e2e-at.yaml");
    assert_eq!(
        report["defenses"],
        serde_json::json!(["attribute_adversarial"])
    );
    let history = std::fs::read_to_string(dir.join(files::METRICS)).unwrap();
    for key in [
        "\"attribute_adversarial\"",
        "\"attribute_adversary_ce\"",
        "\"attribute_adversary_accuracy\"",
    ] {
        assert!(history.contains(key), "{key} missing: {history}");
    }
    let bad = text.replace("attribute: writer", "attribute: hat");
    let err = recipe::from_str(&bad, "e2e-at.yaml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("training.defenses.attribute_adversarial.attribute") && err.contains("writer"),
        "{err}"
    );
}
