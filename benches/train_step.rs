//! Speed of the core workloads, the same as `../shared/tools/torch-baseline`
//! (bench_cnn.py): a `cnn6` training step (batch 64, Adam lr 1e-3,
//! cross-entropy), a batch-64 inference, and a decoder-attacker step on the
//! 32x7x7 features of blocks 1-2. Inputs are random (speed only).
//!
//! Run: `cargo bench --bench train_step` (set RAYON_NUM_THREADS=2 to match
//! the baseline's 2 threads).

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{Criterion, criterion_group, criterion_main};

use splitguard::attack::decoder::Decoder;
use splitguard::model::{SplitModel, zoo};
use splitguard::train::{one_hot, soft_cross_entropy};

fn bench(c: &mut Criterion) {
    let device = Device::flex().autodiff();
    device.seed(0);
    let spec = zoo::spec("cnn6").expect("zoo model");
    let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
    let labels: Vec<u32> = (0..64).map(|i| i % 10).collect();
    let y = one_hot(&labels, 10, &device);

    let mut model = SplitModel::new(&spec, &device).expect("model").train();
    let mut optim = AdamConfig::new().init();
    c.bench_function("cnn_train_step", |b| {
        b.iter(|| {
            let loss = soft_cross_entropy(model.forward(x.clone()), y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model.clone(), grads);
            model.blocks.len()
        })
    });

    let inner = device.clone().inner();
    let eval = model.valid();
    let xi = x.clone().inner();
    c.bench_function("cnn_infer_batch", |b| {
        b.iter(|| eval.forward(xi.clone()).into_data())
    });

    let feats = eval.edge_forward(xi.clone(), 2).flatten();
    let z = Tensor::<2>::from_data(feats.into_data(), &device);
    let mut dec = Decoder::new(&[32, 7, 7], [1, 28, 28], 32, &device);
    let mut dopt = AdamConfig::new().init();
    c.bench_function("decoder_only_step", |b| {
        b.iter(|| {
            let loss = (dec.forward(z.clone()) - x.clone()).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &dec);
            dec = dopt.step(1e-3, dec.clone(), grads);
        })
    });
    let _ = inner;
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
