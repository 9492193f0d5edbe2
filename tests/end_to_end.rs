//! One end-to-end recipe on a small slice of the real embedded MNIST data:
//! reproducibility (same recipe + seed = identical report.json) and resume
//! (a run stopped after epoch 1 and resumed ends with the same numbers as an
//! uninterrupted one).

use std::path::Path;

use burn::prelude::*;

use splitguard::attack::AuditObserver;
use splitguard::pipeline::{self, RunObserver, RunOptions, files};
use splitguard::recipe::{self, LoadedRecipe};
use splitguard::train::TrainObserver;

const RECIPE: &str = "
name: e2e
seed: 3
data:
  source: {kind: embedded_mnist}
  limit: 900
  fractions: [0.6, 0.2, 0.2]
model: {arch: cnn6}
split: 2
partition: {samples: 100}
training:
  epochs: 2
  batch_size: 32
  optimizer: {kind: adam, lr: 0.002}
audit:
  splits: [1, 4]
  attacks:
    - {kind: decoder, epochs: 2, restarts: 0, width: 16}
  grid_images: 4
";

/// Stops training after `stop_after` epochs (simulates a killed run).
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

fn run(
    loaded: &LoadedRecipe,
    dir: &Path,
    resume: bool,
    stop: Option<usize>,
) -> Result<(), splitguard::Error> {
    let device = Device::flex().autodiff();
    pipeline::run(
        loaded,
        &RunOptions {
            out_dir: dir.to_path_buf(),
            resume,
        },
        &device,
        &mut StopAfter(stop, 0),
    )
    .map(|_| ())
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(files::REPORT_JSON)).unwrap()).unwrap()
}

#[test]
fn recipe_runs_reproducibly_and_resumes_to_the_same_numbers() {
    let loaded = recipe::from_str(RECIPE, "e2e.yaml", &[]).unwrap();
    let root = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
    );

    run(&loaded, &a, false, None).unwrap();
    let ra = report(&a);
    // The stable keys of the report contract.
    assert!(
        ra["target_accuracy"].as_f64().unwrap() > 0.5,
        "{}",
        ra["target_accuracy"]
    );
    assert_eq!(ra["split"], 2);
    assert!(ra["edge_flops"].as_u64().unwrap() > 0);
    let attacks = ra["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 2);
    for at in attacks {
        assert_eq!(at["attack"], "decoder");
        for key in ["mse", "psnr", "ssim"] {
            assert!(at[key].as_f64().unwrap().is_finite(), "{key}");
        }
        assert!(a.join(at["image"].as_str().unwrap()).exists());
    }
    assert!(a.join(files::REPORT_MD).exists());
    // The partition analysis ran on every candidate split (the logits included).
    let rows = ra["partition"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter()
            .all(|r| (0.0..=1.0).contains(&r["normalized_rc2"].as_f64().unwrap()))
    );
    assert!(a.join("partition.svg").exists());
    // The partition is the defender's step: on the owner's data, not `aux`.
    assert_eq!(ra["partition"]["data"], "mnist-t10k/train");
    assert_eq!(ra["partition"]["samples"], 100);
    assert_eq!(
        std::fs::read_to_string(a.join(files::METRICS))
            .unwrap()
            .lines()
            .count(),
        2
    );

    // Same recipe, same seed: byte-identical report.
    run(&loaded, &b, false, None).unwrap();
    assert_eq!(
        std::fs::read_to_string(a.join(files::REPORT_JSON)).unwrap(),
        std::fs::read_to_string(b.join(files::REPORT_JSON)).unwrap()
    );

    // Stopped after epoch 1, then resumed: the same numbers.
    let err = run(&loaded, &c, false, Some(1)).unwrap_err().to_string();
    assert!(err.contains("stopped after epoch 1"), "{err}");
    assert!(!c.join(files::REPORT_JSON).exists());
    // A second start without --resume refuses to overwrite the run.
    let err = run(&loaded, &c, false, None).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("--resume"),
        "{err}"
    );
    run(&loaded, &c, true, None).unwrap();
    assert_eq!(ra, report(&c));

    // Resuming with a different recipe is refused.
    let other = recipe::from_str(RECIPE, "e2e.yaml", &["seed=4".parse().unwrap()]).unwrap();
    let err = run(&other, &c, true, None).unwrap_err().to_string();
    assert!(err.contains("recipe differs"), "{err}");

    // Exported features match the model's edge output shape, with labels beside them.
    let dev = Device::flex();
    let opened = pipeline::open_run(&a, &dev).unwrap();
    let out = root.path().join("feat.npy");
    let written =
        pipeline::export_features(&opened, 2, pipeline::Part::Test, &out, true, &dev).unwrap();
    assert_eq!(written.len(), 4);
    let (f, shape) = splitguard::report::npy::read_npy_f32(&out).unwrap();
    assert_eq!(shape[1..], [32, 7, 7]);
    assert_eq!(f.len(), shape.iter().product::<usize>());
    let (labels, lshape) =
        splitguard::report::npy::read_npy_i64(&root.path().join("feat.labels.npy")).unwrap();
    assert_eq!(lshape, vec![shape[0]]);
    assert!(labels.iter().all(|&l| (0..10).contains(&l)));

    // With an obfuscation section, export at the deployment split writes what
    // the server receives: z' in the span of the top 3 signal vectors of the
    // server's first operator (seed 004), unlike the plain features.
    let mut obf = pipeline::open_run(&a, &dev).unwrap();
    assert_eq!(obf.split, 2);
    // The opened run's recipe with an obfuscation section, checked again
    // (a resolved recipe is only ever made by loading one).
    let text = serde_norway::to_string(&*obf.recipe).unwrap();
    let set: splitguard::recipe::Override =
        "obfuscation={mode: {kind: keep, m: 3}}".parse().unwrap();
    obf.recipe = splitguard::recipe::from_str(&text, "obf.yaml", &[set])
        .unwrap()
        .recipe;
    assert_eq!(
        obf.recipe.obfuscation.as_ref().map(|o| o.mode.clone()),
        Some(splitguard::obfuscate::stage::ModeSetting::Keep { m: 3 })
    );
    let out_obf = root.path().join("obf.npy");
    pipeline::export_features(&obf, 2, pipeline::Part::Test, &out_obf, false, &dev).unwrap();
    let (zp, zshape) = splitguard::report::npy::read_npy_f32(&out_obf).unwrap();
    assert_eq!(zshape, shape);
    assert_ne!(zp, f);
    let basis = splitguard::obfuscate::operator::BasisCache::default()
        .basis(&obf.model, 2)
        .unwrap();
    let d = basis.dim();
    for row in zp.chunks(d).take(20) {
        let mut rest = row.to_vec();
        for j in 0..3 {
            let v = basis.vector(j).unwrap();
            let c: f32 = v.iter().zip(row).map(|(a, b)| a * b).sum();
            for (r, vi) in rest.iter_mut().zip(v) {
                *r -= c * vi;
            }
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        let off = rest.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(off <= 1e-3 * norm.max(1.0), "{off} vs {norm}");
    }
}

/// The seed-004 pipeline on a small slice: training with every seed-004
/// defense (signal-content dropout at a random layer, deCov, a VAE head at
/// the split), then keep-4 obfuscation at the split. The report counts the
/// 4 coefficients sent, the checkpoint carries the VAE head, and the
/// exported features are its mean projected onto 4 signal vectors.
#[test]
fn seed_004_defenses_and_obfuscation_run_end_to_end() {
    const OBF: &str = "
name: e2e-obf
seed: 3
data:
  source: {kind: embedded_mnist}
  limit: 400
model: {arch: cnn6}
split: 3
training:
  epochs: 1
  batch_size: 32
  defenses:
    signal_dropout: {rate: 0.5, refresh_steps: 5, layer: random}
    decov: {weight: 0.001}
    vae: {weight: 0.001}
obfuscation:
  mode: {kind: keep, m: 4}
audit:
  splits: [3]
  attacks:
    - {kind: attribute, epochs: 1}
";
    let loaded = recipe::from_str(OBF, "e2e-obf.yaml", &[]).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    run(&loaded, &dir, false, None).unwrap();
    let r = report(&dir);
    assert_eq!(r["split"], 3);
    assert_eq!(r["bytes_per_query"], 16, "4 f32 coefficients per query");
    let defenses: Vec<&str> = r["defenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(defenses, ["decov", "signal_dropout", "vae"]);
    let history = std::fs::read_to_string(dir.join(files::METRICS)).unwrap();
    for key in ["\"vae_kl\"", "\"decov\"", "\"signal_dropout_steps\""] {
        assert!(history.contains(key), "{key} missing from {history}");
    }
    let dev = Device::flex();
    let opened = pipeline::open_run(&dir, &dev).unwrap();
    assert_eq!(
        opened.model.vae_spec(),
        Some(splitguard::model::VaeSpec { at: 3 })
    );
    // `attack` on the run folder sees what the run's server saw (the
    // obfuscated features) and so reproduces the run's own numbers.
    let again = root.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let records = pipeline::attack_run(
        &opened,
        &opened.recipe,
        &again,
        &Device::flex().autodiff(),
        &mut (),
    )
    .unwrap();
    // Both sides through JSON text: the report was read back from its
    // file, and serde_json's default float parsing can differ by an ulp.
    let again: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&records).unwrap()).unwrap();
    assert!(!records.is_empty());
    assert_eq!(again, r["attacks"]);
    let out = root.path().join("z.npy");
    pipeline::export_features(&opened, 3, pipeline::Part::Test, &out, false, &dev).unwrap();
    let (z, shape) = splitguard::report::npy::read_npy_f32(&out).unwrap();
    assert_eq!(shape[1..], [64, 3, 3]);
    let basis = splitguard::obfuscate::operator::BasisCache::default()
        .basis(&opened.model, 3)
        .unwrap();
    for row in z.chunks(basis.dim()).take(10) {
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        let kept: f32 = (0..4)
            .map(|j| {
                let c: f32 = basis
                    .vector(j)
                    .unwrap()
                    .iter()
                    .zip(row)
                    .map(|(a, b)| a * b)
                    .sum();
                c * c
            })
            .sum::<f32>()
            .sqrt();
        assert!(
            (kept - norm).abs() <= 1e-3 * norm.max(1.0),
            "{kept} vs {norm}"
        );
    }
}
