//! A floor under the audit's strength: the decoder attack on a small fixed
//! run of real data (the embedded MNIST, a seeded cnn6 at split 1) must
//! reach at least the PSNR it reaches today, minus a margin for platform
//! noise. A change that weakens the attacker (fewer epochs, a smaller or
//! broken decoder, a lost best epoch) fails here instead of silently
//! under-stating leakage in every report.

use burn::prelude::*;
use splitguard::attack::{DecoderConfig, decoder_attack, feature_set};
use splitguard::data::embedded_mnist;
use splitguard::metrics::quality::{mse, psnr_from_mse};
use splitguard::model::{SplitModel, zoo};
use splitguard::train::Evaluator;

#[test]
fn decoder_attack_keeps_its_strength_on_a_fixed_small_run() {
    let device = Device::flex().autodiff();
    device.seed(11);
    let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
    let all = embedded_mnist().unwrap();
    let aux = all.subset(&(0..1200).collect::<Vec<_>>());
    let test = all.subset(&(5000..5200).collect::<Vec<_>>());
    let eval = Evaluator::new(&model, &device, 256);
    let aux_set = feature_set(&eval, &aux, 1);
    let (test_features, _) = eval.features(&test, 1);
    let cfg = DecoderConfig {
        epochs: 6,
        batch_size: 32,
        restarts: 0,
        width: 32,
        ..DecoderConfig::default()
    };
    let out = decoder_attack(&aux_set, &test_features, &cfg, 5, &device);
    let psnr = psnr_from_mse(mse(&out.reconstructions, &test.images));
    // Measured 2026-12-03 on the flex backend: 22.36 dB (best epoch 6, 21 s
    // on 2 cores). The floor leaves 0.86 dB for platform differences; raise
    // it when the attacker gets stronger, never lower it to pass.
    const FLOOR_DB: f64 = 21.5;
    assert!(
        psnr >= FLOOR_DB,
        "decoder PSNR {psnr:.2} dB below the floor {FLOOR_DB} dB (best epoch {})",
        out.best_epoch
    );
}
