//! The audit's evidence on a small slice of real data (embedded MNIST, a
//! seeded cnn6): intervals on every number, floors, the paper's attacker
//! beside the adaptive one, and flags on attackers that did not learn.

use burn::prelude::*;
use splitguard::attack::floors::{class_mean_images, mean_image};
use splitguard::attack::reidentify::When;
use splitguard::attack::{
    AttackKind, AttackRecord, AttackerVariant, AuditConfig, DecoderConfig, Reidentifier,
    ReidentifyConfig, SplitSelection, judge_against_floors, measure_floors, run_audit,
};
use splitguard::data::{Dataset, embedded_mnist};
use splitguard::metrics::{psnr_from_mse, quality::mse};
use splitguard::model::{SplitModel, zoo};
use splitguard::train::Evaluator;

/// The audit of `model` (seed 7) by `cfg`, pictures into `dir`.
fn audit(
    model: &SplitModel,
    (aux, test): (&Dataset, &Dataset),
    cfg: &AuditConfig,
    dir: &std::path::Path,
    device: &Device,
) -> Vec<AttackRecord> {
    run_audit(model, aux, test, cfg, 7, dir, device, &[], &mut ()).unwrap()
}

#[test]
fn audit_reports_intervals_floors_variants_and_flags_a_one_epoch_attacker() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
    let all = embedded_mnist().unwrap();
    let aux = all.subset(&(0..400).collect::<Vec<_>>());
    let test = all.subset(&(5000..5120).collect::<Vec<_>>());
    let one_epoch = DecoderConfig {
        epochs: 1,
        restarts: 0,
        width: 16,
        ..DecoderConfig::default()
    };
    let cfg = AuditConfig {
        splits: SplitSelection::List(vec![1]),
        attacks: vec![
            AttackKind::Decoder(one_epoch.clone()),
            AttackKind::Decoder(DecoderConfig {
                variant: AttackerVariant::Paper,
                ..one_epoch.clone()
            }),
            AttackKind::Decoder(DecoderConfig {
                width: 8,
                ..one_epoch
            }),
        ],
        grid_images: 4,
        ..AuditConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut records = audit(&model, (&aux, &test), &cfg, dir.path(), &device);
    let inner = device.clone().inner();
    let floors = measure_floors(&aux, &test, 7, &Evaluator::new(&model, &inner, 64), None).unwrap();
    judge_against_floors(&mut records, &floors);

    // Three records keyed by label, three pictures: none overwrites another.
    let keys: Vec<&str> = records.iter().map(|r| r.key()).collect();
    assert_eq!(keys, ["decoder", "decoder-paper", "decoder-2"]);
    for r in &records {
        let file = r.image.as_ref().unwrap();
        assert!(dir.path().join(file).exists(), "{file}");
        // Every metric carries an interval around its value.
        let [lo, hi] = r.psnr_ci.unwrap();
        assert!(lo <= r.psnr.unwrap() && r.psnr.unwrap() <= hi);
        assert!(r.mse_ci.is_some() && r.ssim_ci.is_some());
        // One epoch cannot show a falling validation loss: a lower bound.
        assert!(
            r.under_trained.iter().any(|w| w.contains("under-trained")),
            "{:?}",
            r.under_trained
        );
        let margin = r.margin_over_label.unwrap();
        assert!((margin - (r.psnr.unwrap() - floors.label.psnr)).abs() < 1e-12);
        assert!(r.beyond_label.is_some());
    }

    // The floors are what their definitions say, recomputed by hand.
    let il = test.image_len();
    let mean = mean_image(&aux.images, il);
    let by_hand: f64 = test
        .images
        .chunks(il)
        .map(|x| psnr_from_mse(mse(x, &mean)))
        .sum::<f64>()
        / test.len() as f64;
    assert!((floors.mean_image.psnr - by_hand).abs() < 1e-9);
    let predicted = Evaluator::new(&model, &inner, 64).predict(&test);
    let means = class_mean_images(&aux.images, &aux.targets, 10, il);
    let by_hand: f64 = test
        .images
        .chunks(il)
        .zip(&predicted)
        .map(|(x, &c)| psnr_from_mse(mse(x, &means[c as usize * il..(c as usize + 1) * il])))
        .sum::<f64>()
        / test.len() as f64;
    assert!((floors.label.psnr - by_hand).abs() < 1e-9);
    let writer = floors
        .attributes
        .iter()
        .find(|a| a.attribute == "writer")
        .unwrap();
    assert!((0.0..=1.0).contains(&writer.label_only) && writer.chance >= 0.5);
}

/// Re-identification on real images (the digit's class stands in for the
/// identity with `when: always`): every reconstruction record carries the
/// rate and its interval; the floors carry the classifier's ceiling, chance
/// and the label-only rate, which is what the classifier makes of the
/// class-mean image of each predicted class, recomputed here by hand.
#[test]
fn reidentification_is_scored_on_reconstructions_and_on_the_label_floor() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
    let all = embedded_mnist().unwrap();
    // The attacker's part and the victims' part of one source.
    let mut aux = all.subset(&(0..600).collect::<Vec<_>>());
    aux.name = "mnist/aux".into();
    let mut test = all.subset(&(5000..5100).collect::<Vec<_>>());
    test.name = "mnist/test".into();
    let cfg = AuditConfig {
        splits: SplitSelection::List(vec![1]),
        attacks: vec![AttackKind::Decoder(DecoderConfig {
            epochs: 2,
            restarts: 0,
            width: 8,
            ..DecoderConfig::default()
        })],
        grid_images: 2,
        reidentify: ReidentifyConfig {
            when: When::Always,
            epochs: 6,
            ..ReidentifyConfig::default()
        },
        ..AuditConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let records = audit(&model, (&aux, &test), &cfg, dir.path(), &device);
    let r = &records[0];
    let (acc, [lo, hi]) = (r.reidentification.unwrap(), r.reidentification_ci.unwrap());
    assert!(
        (0.0..=1.0).contains(&acc) && lo <= acc && acc <= hi,
        "{acc} {lo} {hi}"
    );
    let cos = r.cosine.unwrap();
    assert!(cos > 0.0 && cos <= 1.0 + 1e-9, "{cos}");

    // The same classifier as the audit's (same seed), for the floors.
    let reid = Reidentifier::for_audit(&model, &aux, &test, &cfg, 7, &device)
        .unwrap()
        .unwrap();
    let c = &reid.summary;
    // Six epochs on 540 digits: far above chance on the original images.
    assert!(
        c.clean_accuracy > 0.5 && c.clean_accuracy > 2.0 * c.chance,
        "{c:?}"
    );
    let inner = device.clone().inner();
    let eval = Evaluator::new(&model, &inner, 64);
    let floors = measure_floors(&aux, &test, 7, &eval, Some(&reid)).unwrap();
    let f = floors.reidentification.as_ref().unwrap();
    // Another dataset's images cannot re-identify these people.
    let mut other = aux.clone();
    other.name = "elsewhere".into();
    let e = Reidentifier::for_audit(&model, &other, &test, &cfg, 7, &device).err();
    assert!(e.unwrap().to_string().contains("audit.reidentify"));
    assert_eq!(&f.classifier, c);
    let il = test.image_len();
    let means = class_mean_images(&aux.images, &aux.targets, 10, il);
    let label_rec: Vec<f32> = eval
        .predict(&test)
        .iter()
        .flat_map(|&p| means[p as usize * il..(p as usize + 1) * il].to_vec())
        .collect();
    assert_eq!(f.label_only, reid.score(&label_rec, il).unwrap().0);
    // Cosine of the floors is the mean of per-image cosines.
    let by_hand: f64 = test
        .images
        .chunks(il)
        .zip(label_rec.chunks(il))
        .map(|(x, y)| splitguard::metrics::cosine(x, y))
        .sum::<f64>()
        / test.len() as f64;
    assert!((floors.label.cosine - by_hand).abs() < 1e-9);
}
