//! Colour images through every stage: a tiny CIFAR-10-format folder written
//! by the test (3x32x32, class-coloured, seeded noise) goes through
//! loading, training, one decoder attack, the reconstruction grid and the
//! metrics. Mechanics only: the numbers mean nothing about CIFAR.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use splitguard::attack::AuditObserver;
use splitguard::pipeline::{self, RunObserver, RunOptions, files};
use splitguard::recipe;
use splitguard::train::TrainObserver;

struct Quiet;
impl TrainObserver for Quiet {}
impl AuditObserver for Quiet {}
impl RunObserver for Quiet {}

/// `n` CIFAR-10 records, labels `i % 3`; class k is bright in plane k, dark
/// in the others, plus noise, so the three planes differ.
fn write_cifar10_test_batch(dir: &Path, n: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut bytes = Vec::with_capacity(n * 3073);
    for i in 0..n {
        let label = (i % 3) as u8;
        bytes.push(label);
        for plane in 0..3u8 {
            let base: u8 = if plane == label { 180 } else { 40 };
            bytes.extend((0..1024).map(|_| base + rng.random_range(0..60u8)));
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("test_batch.bin"), bytes).unwrap();
}

const RECIPE: &str = "
name: colour
seed: 1
data:
  source: {kind: cifar10, dir: cifar, files: test}
model:
  arch: tiny-colour
  blocks:
    - {kind: conv, out_channels: 4, pool: 2}
    - {kind: conv, out_channels: 8, pool: 2}
    - {kind: linear, out_features: 10, activation: none}
split: 1
training: {epochs: 1, batch_size: 16}
audit:
  splits: [1]
  attacks: [{kind: decoder, epochs: 1, restarts: 0, width: 8}]
  grid_images: 4
";

/// Every file under `dir` whose name ends with `suffix`.
fn find(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            find(&p, suffix, out);
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
}

#[test]
fn colour_cifar_runs_training_decoder_grid_and_metrics() {
    let root = tempfile::tempdir().unwrap();
    write_cifar10_test_batch(&root.path().join("cifar"), 60);
    let recipe_path = root.path().join("colour.yaml");
    std::fs::write(&recipe_path, RECIPE).unwrap();
    let loaded = recipe::from_path(&recipe_path, &[]).unwrap();
    let run = root.path().join("run");
    let device = Device::flex().autodiff();
    pipeline::run(
        &loaded,
        &RunOptions {
            out_dir: run.clone(),
            resume: false,
        },
        &device,
        &mut Quiet,
    )
    .unwrap();

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join(files::REPORT_JSON)).unwrap())
            .unwrap();
    assert_eq!(
        report["data"]["image_shape"],
        serde_json::json!([3, 32, 32])
    );
    assert_eq!(report["data"]["classes"], 10);
    assert_eq!(report["blocks"][0]["input"], serde_json::json!([3, 32, 32]));
    let attack = &report["attacks"][0];
    assert_eq!(attack["attack"], "decoder");
    for key in ["mse", "psnr", "ssim"] {
        let v = attack[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite(), "{key} = {}", attack[key]);
    }
    assert!(attack["mse"].as_f64().unwrap() > 0.0);
    assert!(attack["ssim"].as_f64().unwrap() <= 1.0);

    // The grid is an RGB PNG: 2 rows (originals, reconstructions) of 4
    // images of 32x32 at scale 3, with 2-pixel separators.
    let name = attack["image"].as_str().unwrap();
    let mut grids = Vec::new();
    find(&run, name, &mut grids);
    assert_eq!(grids.len(), 1, "{name} under {}", run.display());
    let grid = image::open(&grids[0]).unwrap();
    assert_eq!(grid.color(), image::ColorType::Rgb8);
    let rgb = grid.to_rgb8();
    assert_eq!(rgb.dimensions(), (4 * 96 + 3 * 2, 2 * 96 + 2));
    // Originals are class-coloured: in the first row, pixels whose planes
    // differ by far (a grid of channel 0 alone would be grey).
    let coloured = (0..96)
        .flat_map(|y| (0..rgb.width()).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = rgb.get_pixel(x, y).0;
            p.iter().max().unwrap() - p.iter().min().unwrap() > 60
        })
        .count();
    assert!(
        coloured > 4 * 32 * 32,
        "{coloured} strongly coloured pixels"
    );
}
