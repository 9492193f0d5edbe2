//! Equal-work benchmarks: the audit's and the trainer's hot steps, with the
//! same networks, shapes, batch sizes and optimiser as the PyTorch twin in
//! `benches/pytorch/bench.py`, timed the same way (median, min and max over
//! `--steps` timed steps after `--warmup` untimed ones).
//!
//! Inputs are seeded random tensors: these measure speed only, never privacy.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo bench --bench equal_work -- [--json F] [--only a,b] [--steps N] [--warmup N]
//! benches/run-comparison.sh      # both frameworks side by side and the ratio table
//! ```
//!
//! A plain harness (no criterion): criterion's dependencies change the
//! features of crates burn builds on, so `cargo test --release` would
//! recompile burn after `cargo run --release`.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Distribution;

use splitguard::attack::FeatureSet;
use splitguard::attack::attribute::attacker_specs;
use splitguard::attack::dci::BlockInverse;
use splitguard::attack::decoder::{Decoder, DecoderConfig, decoder_attack};
use splitguard::model::{Features, SplitModel, zoo};
use splitguard::train::{one_hot, soft_cross_entropy, to_vec};

/// The CLI's allocator and its settings (`src/main.rs`), so the steps cost
/// what a run pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    json: Option<String>,
    only: Option<Vec<String>>,
    steps: usize,
    warmup: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        json: None,
        only: None,
        steps: 30,
        warmup: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--json" => a.json = it.next(),
            "--only" => a.only = it.next().map(|s| s.split(',').map(String::from).collect()),
            "--steps" => a.steps = it.next().and_then(|s| s.parse().ok()).unwrap_or(a.steps),
            "--warmup" => a.warmup = it.next().and_then(|s| s.parse().ok()).unwrap_or(a.warmup),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    a
}

struct Timing {
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    steps: usize,
    params: usize,
}

fn time(steps: usize, warmup: usize, params: usize, mut step: impl FnMut()) -> Timing {
    for _ in 0..warmup {
        step();
    }
    let mut ms: Vec<f64> = (0..steps.max(1))
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    Timing {
        median_ms: ms[ms.len() / 2],
        min_ms: ms[0],
        max_ms: ms[ms.len() - 1],
        steps: ms.len(),
        params,
    }
}

/// One optimiser step of `module` on `loss_of(module)`; returns the module.
fn adam_step<M: Module>(
    module: M,
    optim: &mut ModuleOptimizer,
    lr: f64,
    loss_of: impl Fn(&M) -> Tensor<1>,
) -> M {
    let loss = loss_of(&module);
    let grads = GradientsParams::from_grads(loss.backward(), &module);
    optim.step(lr, module, grads)
}

/// Trainable parameters only (burn's `num_params` also counts batch-norm
/// running statistics, which PyTorch keeps as buffers).
fn trainable<M: Module>(m: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if p.val().is_require_grad() {
                self.0 += p.lazy_shape().num_elements();
            }
        }
    }
    let mut c = Count(0);
    m.visit(&mut c);
    c.0
}

fn uniform<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(0.0, 1.0), device)
}

fn normal<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn decoder_step(input: [usize; 3], steps: usize, warmup: usize, device: &Device) -> Timing {
    let [c, h, w] = input;
    let z = normal([64, c * h * w], device);
    let x = uniform([64, 1, 28, 28], device);
    let mut dec = Some(Decoder::new(
        &input,
        [1, 28, 28],
        64,
        DecoderConfig::default().depth,
        device,
    ));
    let params = dec.as_ref().map_or(0, trainable);
    let mut optim = AdamConfig::new().init();
    time(steps, warmup, params, || {
        let d = dec.take().expect("decoder");
        dec = Some(adam_step(d, &mut optim, 1e-3, |d| {
            (d.forward(z.clone()) - x.clone()).powi_scalar(2).mean()
        }));
    })
}

fn main() {
    splitguard::allocator::keep_freed_memory();
    let args = parse_args();
    let device = Device::flex().autodiff();
    device.seed(0);
    let wanted = |name: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    };
    let (steps, warmup) = (args.steps, args.warmup);
    let mut out: BTreeMap<&str, Timing> = BTreeMap::new();
    let spec = zoo::spec("cnn6").expect("zoo model cnn6");

    let x = uniform([64, 1, 28, 28], &device);
    let labels: Vec<u32> = (0..64).map(|i| i % 10).collect();
    let y = one_hot(&labels, 10, &device);
    let mut model = Some(SplitModel::new(&spec, &device).expect("cnn6").train());
    let cnn_params = model.as_ref().map_or(0, trainable);
    if wanted("cnn6_train_step") {
        let mut optim = AdamConfig::new().init();
        let t = time(steps, warmup, cnn_params, || {
            let m = model.take().expect("model");
            model = Some(adam_step(m, &mut optim, 1e-3, |m| {
                soft_cross_entropy(m.forward(x.clone()), y.clone())
            }));
        });
        out.insert("cnn6_train_step", t);
    }
    if wanted("cnn6_infer_batch") {
        let eval = model.as_ref().expect("model").valid();
        let xi = x.clone().inner();
        let t = time(steps, warmup, cnn_params, || {
            let _ = eval.forward(xi.clone()).into_data();
        });
        out.insert("cnn6_infer_batch", t);
    }
    if wanted("decoder_step_split1") {
        out.insert(
            "decoder_step_split1",
            decoder_step([16, 14, 14], steps, warmup, &device),
        );
    }
    if wanted("decoder_step_split2") {
        out.insert(
            "decoder_step_split2",
            decoder_step([32, 7, 7], steps, warmup, &device),
        );
    }
    if wanted("dci_inverse_step") {
        // The inverse of cnn6's block 2 (16x14x14 -> 32x7x7), batch 32 as
        // DciConfig's default, on features precomputed by the frozen block.
        let eval = model.as_ref().expect("model").valid();
        let u = uniform([32, 16, 14, 14], &device);
        let z = eval.run(Features::Map(u.clone().inner()), 1, 2).flatten();
        let z = Tensor::<2>::from_data(z.into_data(), &device).reshape([32, 32, 7, 7]);
        let mut g = Some(BlockInverse::new(&[16, 14, 14], &[32, 7, 7], 16, &device));
        let params = g.as_ref().map_or(0, trainable);
        let mut optim = AdamConfig::new().init();
        let t = time(steps, warmup, params, || {
            let gi = g.take().expect("inverse");
            g = Some(adam_step(gi, &mut optim, 2e-3, |g| {
                (g.forward(Features::Map(z.clone())).flatten() - u.clone().flatten(1, 3))
                    .abs()
                    .mean()
            }));
        });
        out.insert("dci_inverse_step", t);
    }
    if wanted("attribute_step") {
        let specs = attacker_specs(&spec.blocks[2..], 2).expect("server part");
        let shape = [32usize, 7, 7];
        let mut m = Some(
            SplitModel::from_blocks("attribute-attacker", &shape, &specs, &device)
                .expect("attacker"),
        );
        let params = m.as_ref().map_or(0, trainable);
        let z = normal([64, 32 * 7 * 7], &device);
        let labels: Vec<u32> = (0..64).map(|i| i % 2).collect();
        let t2 = one_hot(&labels, 2, &device);
        let mut optim = AdamConfig::new().init();
        let t = time(steps, warmup, params, || {
            let mi = m.take().expect("attacker");
            m = Some(adam_step(mi, &mut optim, 1e-3, |m| {
                let logits = m.forward_features(Features::from_flat(z.clone(), &shape));
                soft_cross_entropy(logits, t2.clone())
            }));
        });
        out.insert("attribute_step", t);
    }
    if wanted("audit_decoder_split1") {
        // The whole decoder attack at split 1 (2000 aux, 2000 test, 2 epochs).
        let n = 2000;
        let aux = FeatureSet {
            features: to_vec(normal([n, 16 * 14 * 14], &device)),
            feature_shape: vec![16, 14, 14],
            images: to_vec(uniform([n, 28 * 28], &device)),
            image_shape: [1, 28, 28],
        };
        let test = to_vec(normal([n, 16 * 14 * 14], &device));
        let cfg = DecoderConfig {
            epochs: 2,
            restarts: 0,
            ..DecoderConfig::default()
        };
        let params = trainable(&Decoder::new(
            &[16, 14, 14],
            [1, 28, 28],
            cfg.width,
            cfg.depth,
            &device,
        ));
        let t = time(steps.min(3), warmup.min(1), params, || {
            let _ = decoder_attack(&aux, &test, &cfg, 7, &device);
        });
        out.insert("audit_decoder_split1", t);
    }

    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    println!("splitguard equal-work benchmarks (RAYON_NUM_THREADS={threads})");
    for (name, t) in &out {
        println!(
            "{name:<22} median {:>9.2} ms  min {:>9.2}  max {:>9.2}  ({} steps, {} params)",
            t.median_ms, t.min_ms, t.max_ms, t.steps, t.params
        );
    }
    if let Some(path) = args.json {
        let workloads: serde_json::Map<String, serde_json::Value> = out
            .iter()
            .map(|(k, t)| {
                (
                    k.to_string(),
                    serde_json::json!({"median_ms": t.median_ms, "min_ms": t.min_ms,
                        "max_ms": t.max_ms, "steps": t.steps, "params": t.params}),
                )
            })
            .collect();
        let doc = serde_json::json!({"framework": "splitguard", "threads": threads,
            "workloads": workloads});
        if let Some(dir) = std::path::Path::new(&path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, format!("{doc:#}\n")) {
            eprintln!("could not write {path}: {e}");
            std::process::exit(1);
        }
    }
}
