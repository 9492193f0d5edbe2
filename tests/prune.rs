//! Pruning and the PATROL defenses (seed 001): surgery exactness, pruned
//! checkpoints, FLOPs of pruned blocks, bit-identical training at zero
//! weights, and the whole stage on a small slice of the real MNIST data.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use common::{max_abs_diff, synthetic, values};
use splitguard::attack::AuditObserver;
use splitguard::defense::{AdversarialConfig, DefensesConfig, LipschitzConfig, LipschitzMethod};
use splitguard::model::{
    ActivationKind, BlockSpec, Checkpoint, ConvSpec, Features, LinearSpec, ModelSpec, SplitModel,
    zoo,
};
use splitguard::pipeline::{self, RunObserver, RunOptions, files};
use splitguard::prune::{MaskRun, MaskedModel, l1_scores, prune_model, resized_spec, train_masks};
use splitguard::recipe;
use splitguard::train::{
    EpochSummary, LrDrops, OptimizerConfig, Silent, TrainConfig, TrainObserver, TrainRun, train,
};

/// burn's random draws come from one generator per backend, shared by the
/// test threads; the tests that compare runs for equality take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn conv(out: usize, pool: usize) -> BlockSpec {
    BlockSpec::Conv(ConvSpec {
        out_channels: out,
        kernel: 3,
        stride: 1,
        padding: None,
        pool,
        batch_norm: true,
        activation: ActivationKind::Relu,
        order: Default::default(),
        bias: true,
    })
}

fn fc(out: usize, bn: bool, activation: ActivationKind) -> BlockSpec {
    BlockSpec::Linear(LinearSpec {
        out_features: out,
        activation,
        batch_norm: bn,
    })
}

/// conv 4 (pool) -> conv 6 -> linear 8 -> linear 3 on 1x8x8, batch-norm
/// everywhere but the head: covers conv->conv, conv->linear (flatten) and
/// linear->linear cuts.
fn spec() -> ModelSpec {
    ModelSpec {
        vae: None,
        arch: "small".into(),
        input: [1, 8, 8],
        blocks: vec![
            conv(4, 2),
            conv(6, 0),
            fc(8, true, ActivationKind::Relu),
            fc(3, false, ActivationKind::None),
        ],
    }
}

fn config(epochs: usize, defenses: DefensesConfig) -> TrainConfig<DefensesConfig> {
    TrainConfig {
        epochs,
        batch_size: 16,
        defenses,
        ..Default::default()
    }
}

/// A model trained for one epoch on synthetic data, so weights and
/// batch-norm statistics are not at their initial values.
fn trained(device: &Device) -> SplitModel {
    device.seed(11);
    let model = SplitModel::new(&spec(), device).unwrap();
    let run = TrainRun {
        config: &config(1, DefensesConfig::default()),
        seed: 3,
        split: 2,
        checkpoint: None,
        metrics_log: None,
        resume: false,
    };
    train(model, &synthetic(64, 1), &mut [], &run, device, &mut Silent)
        .unwrap()
        .model
}

struct All(Vec<f32>);
impl ModuleVisitor for All {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.extend(values(p.val()));
    }
}
fn all_values<M: Module>(m: &M) -> Vec<f32> {
    let mut v = All(Vec::new());
    m.visit(&mut v);
    v.0
}

#[test]
fn pruning_zero_masked_channels_leaves_outputs_unchanged() {
    let _turn = serial();
    let device = Device::flex().autodiff();
    let model = trained(&device);
    let mut masked = MaskedModel::new(model, &[0, 1, 2], 3, &device).unwrap();
    let raw: [&[f32]; 3] = [
        &[1.0, 0.0, 0.7, 0.0],
        &[0.3, 1.0, 0.0, 1.0, 0.5, 0.0],
        &[1.0, 0.0, 1.0, 1.0, 0.0, 0.2, 1.0, 1.0],
    ];
    for (j, r) in raw.iter().enumerate() {
        masked.masks.values[j] = Param::from_data(TensorData::new(r.to_vec(), [r.len()]), &device);
    }
    let mask_values = masked.values();
    let keep: Vec<Vec<usize>> = (0..4)
        .map(|i| match &mask_values[i] {
            Some(m) => (0..m.len()).filter(|&c| m[c] != 0.0).collect(),
            None => (0..3).collect(),
        })
        .collect();
    let pruned = prune_model(&masked.model, &keep, &mask_values).unwrap();
    let widths: Vec<usize> = pruned
        .infos()
        .unwrap()
        .iter()
        .map(|b| b.output[0])
        .collect();
    assert_eq!(widths, vec![2, 4, 6, 3]);

    let x = common::random_input(10, [1, 8, 8], &device.clone().inner());
    let masked = masked.valid();
    let expected = (0..4)
        .fold(Features::Map(x.clone()), |u, i| masked.block_forward(i, u))
        .flatten();
    let got = pruned.valid().forward(x);
    let diff = max_abs_diff(&values(expected), &values(got));
    assert!(diff < 1e-5, "outputs changed by {diff}");
    let before = spec().infos().unwrap();
    let after = pruned.infos().unwrap();
    assert!(after.iter().zip(&before).all(|(a, b)| a.flops <= b.flops));
    assert!(after[1].flops < before[1].flops);
}

#[test]
fn pruned_checkpoint_saves_loads_and_runs_at_the_smaller_size() {
    let _turn = serial();
    let device = Device::flex().autodiff();
    let model = trained(&device);
    let scores = l1_scores(&model, 3);
    let top = |s: &[f32], n: usize| {
        let mut idx: Vec<usize> = (0..s.len()).collect();
        idx.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        idx.truncate(n);
        idx.sort_unstable();
        idx
    };
    let keep = vec![
        top(scores[0].as_ref().unwrap(), 2),
        top(scores[1].as_ref().unwrap(), 3),
        top(scores[2].as_ref().unwrap(), 5),
        vec![0, 1, 2],
    ];
    let pruned = prune_model(&model, &keep, &[None, None, None, None]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pruned.sgck");
    Checkpoint::save(&path, &pruned, 1, serde_json::Value::Null, None).unwrap();

    let inner = device.clone().inner();
    let ck = Checkpoint::load(&path, &inner).unwrap();
    assert_eq!(ck.meta.spec, pruned.spec().unwrap());
    assert_eq!(
        ck.meta.spec,
        resized_spec(&spec(), &[2, 3, 5, 3]).unwrap(),
        "the checkpoint holds the smaller architecture"
    );
    let x = common::random_input(4, [1, 8, 8], &inner);
    let a = values(ck.model.valid().forward(x.clone()));
    let b = values(pruned.valid().forward(x));
    assert_eq!(a.len(), 4 * 3);
    assert!(max_abs_diff(&a, &b) < 1e-6);
    assert!(ck.model.num_params() < model.num_params());
    let err = Checkpoint::load_expecting(&path, &spec(), &inner)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("architecture mismatch"), "{err}");
}

#[test]
fn flops_of_a_pruned_block_match_a_hand_count() {
    let device = Device::flex();
    let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
    let keep = vec![
        vec![0, 3, 5, 9],             // conv1: 4 of 16
        (0..32).step_by(2).collect(), // conv2: 16 of 32
        (0..64).collect(),
        (0..128).collect(),
        (0..64).collect(),
        (0..10).collect(),
    ];
    let pruned = prune_model(&model, &keep, &vec![None; 6]).unwrap();
    let infos = pruned.infos().unwrap();
    // 2 x MACs: conv1 1*3*3*4 per pixel on 28x28 (pooled after); conv2
    // 4*3*3*16 on 14x14; conv3 16*3*3*64 on 7x7; fc128 on 64*3*3 inputs.
    assert_eq!(infos[0].flops, 2 * 9 * 4 * 28 * 28);
    assert_eq!(infos[1].flops, 2 * 4 * 9 * 16 * 14 * 14);
    assert_eq!(infos[2].flops, 2 * 16 * 9 * 64 * 7 * 7);
    assert_eq!(infos[3].flops, 2 * 576 * 128);
    assert_eq!(infos[1].params, (16 * 4 * 9 + 16 + 2 * 16) as u64);
    let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
    assert_eq!(pruned.forward(x).dims(), [2, 10]);
}

fn train_with(defenses: DefensesConfig) -> Vec<f32> {
    let device = Device::flex().autodiff();
    device.seed(5);
    let model = SplitModel::new(&spec(), &device).unwrap();
    let cfg = config(2, defenses);
    let mut built = cfg.defenses.build(9);
    let run = TrainRun {
        config: &cfg,
        seed: 9,
        split: 2,
        checkpoint: None,
        metrics_log: None,
        resume: false,
    };
    let out = train(
        model,
        &synthetic(48, 2),
        &mut built,
        &run,
        &device,
        &mut Silent,
    )
    .unwrap();
    all_values(&out.model)
}

fn patrol_defenses(lipschitz: f32, adversarial: f32, method: LipschitzMethod) -> DefensesConfig {
    DefensesConfig {
        lipschitz: Some(LipschitzConfig {
            weight: lipschitz,
            block_weights: vec![],
            method,
            draws: 2,
            scale: 0.05,
            power_iterations: 2,
        }),
        adversarial: Some(AdversarialConfig {
            weight: adversarial,
            attacker_steps: 2,
            lr: 1e-3,
            width: 8,
        }),
        ..Default::default()
    }
}

#[test]
fn zero_weights_on_every_term_give_plain_training_bit_identical() {
    let _turn = serial();
    let plain = train_with(DefensesConfig::default());
    assert_eq!(
        plain,
        train_with(DefensesConfig::default()),
        "same seed, same result"
    );
    for method in [LipschitzMethod::Perturbation, LipschitzMethod::Spectral] {
        assert_eq!(train_with(patrol_defenses(0.0, 0.0, method)), plain);
        assert_ne!(
            train_with(patrol_defenses(0.5, 0.0, method)),
            plain,
            "the Lipschitz term moves the weights ({method:?})"
        );
    }
    assert_ne!(
        train_with(patrol_defenses(0.0, 1.0, LipschitzMethod::Perturbation)),
        plain,
        "the adversarial term moves the weights"
    );
}

const RECIPE: &str = "
name: patrol-e2e
seed: 3
data:
  source: {kind: embedded_mnist}
  limit: 600
model: {arch: cnn6}
training:
  epochs: 1
  batch_size: 32
  optimizer: {kind: adam, lr: 0.002}
  defenses:
    lipschitz: {weight: 0.02, draws: 1}
    adversarial: {weight: 1.0, width: 8}
prune:
  method: patrol
  budget: {fraction: 0.5, reference_split: 2}
  mask_epochs: 1
  fine_tune_epochs: 1
audit:
  splits: [5]
  attacks:
    - {kind: decoder, epochs: 1, restarts: 0, width: 16}
  grid_images: 2
";

struct Quiet;
impl TrainObserver for Quiet {}
impl AuditObserver for Quiet {}
impl RunObserver for Quiet {}

fn run_recipe(dir: &std::path::Path, resume: bool) -> serde_json::Value {
    let loaded = recipe::from_str(RECIPE, "patrol.yaml", &[]).unwrap();
    let device = Device::flex().autodiff();
    let opts = RunOptions {
        out_dir: dir.to_path_buf(),
        resume,
    };
    pipeline::run(&loaded, &opts, &device, &mut Quiet).unwrap();
    let text = std::fs::read_to_string(dir.join(files::REPORT_JSON)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn patrol_recipe_prunes_to_the_budget_at_the_deepest_split_and_resumes() {
    let _turn = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let ra = run_recipe(&a, false);
    // Budget: half the unpruned edge of split 2 (2*9*16*784 + 2*16*9*32*196).
    let budget = (225_792 + 1_806_336) / 2;
    assert_eq!(ra["split"], 5, "min_keep 0.25 lets the deepest split fit");
    assert_eq!(ra["prune"]["split"], 5);
    assert_eq!(ra["prune"]["unpruned_split"], 1);
    assert_eq!(ra["prune"]["budget_flops"], budget);
    let edge = ra["edge_flops"].as_u64().unwrap();
    assert!(
        edge <= budget && edge == ra["prune"]["edge_flops_after"],
        "{edge}"
    );
    let blocks = ra["prune"]["blocks"].as_array().unwrap();
    assert!(
        blocks
            .iter()
            .any(|b| b["channels_after"].as_u64() < b["channels_before"].as_u64())
    );
    assert_eq!(ra["blocks"][0]["output"][0], blocks[0]["channels_after"]);
    assert_eq!(ra["prune"]["mask_training"].as_array().unwrap().len(), 1);
    assert!(ra["prune"]["mask_training"][0]["defenses"]["adversarial"].is_number());
    assert!(
        std::fs::read_to_string(a.join(files::REPORT_MD))
            .unwrap()
            .contains("## Pruning")
    );

    // The deployed model is the pruned one, reloaded at its size.
    let dev = Device::flex();
    let opened = pipeline::open_run(&a, &dev).unwrap();
    assert_eq!(opened.model.spec().unwrap().edge_flops(5).unwrap(), edge);
    // A command reading the folder holds it shared: done reading first.
    drop(opened);

    // Resuming a finished run reads the stage back; a fresh run reproduces it.
    assert_eq!(run_recipe(&a, true), ra);
    assert_eq!(run_recipe(&b, false), ra);
}

/// `spec()` without batch-norm, so every value a visitor sees is a weight.
fn spec_without_batch_norm() -> ModelSpec {
    let mut s = spec();
    for b in &mut s.blocks {
        match b {
            BlockSpec::Conv(c) => c.batch_norm = false,
            BlockSpec::Linear(l) => l.batch_norm = false,
            _ => {}
        }
    }
    s
}

#[test]
fn mask_training_runs_through_the_trainer_with_the_recipes_schedule_and_resumes() {
    let _turn = serial();
    let device = Device::flex().autodiff();
    device.seed(5);
    let model = SplitModel::new(&spec_without_batch_norm(), &device).unwrap();
    let initial = all_values(&model);
    // The weights follow the recipe's optimiser and schedule (here SGD, and
    // a drop to a rate of 0 from the second epoch); the masks their own Adam.
    let training = TrainConfig {
        optimizer: OptimizerConfig::Sgd {
            lr: 0.5,
            momentum: 0.0,
            weight_decay: 0.0,
        },
        lr_drops: LrDrops {
            at_epochs: vec![2],
            factor: 0.0,
        },
        ..config(1, DefensesConfig::default())
    };
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic(48, 2);
    let masked = MaskedModel::new(model, &[0, 1], 2, &device).unwrap();
    let train_for = |epochs: usize, file: &str, resume: bool| {
        let run = MaskRun {
            training: &training,
            epochs,
            mask_lr: 0.05,
            sparsity: 1.0,
            seed: 4,
            split: 2,
            checkpoint: Some(dir.path().join(file)),
            metrics_log: None,
            resume,
        };
        train_masks(masked.clone(), &data, &run, &device, &mut Silent).unwrap()
    };
    let (one, _) = train_for(1, "one.sgck", false);
    let (two, history) = train_for(2, "two.sgck", false);
    assert_ne!(all_values(&one.model), initial, "epoch 1 moves the weights");
    assert_eq!(
        all_values(&two.model),
        all_values(&one.model),
        "at a rate of 0 the weights stay"
    );
    assert_ne!(two.values(), one.values(), "the masks go on learning");
    assert_eq!(history[1].lr, 0.0);
    assert!(history[1].defenses["mask_sparsity"] > 0.0);
    // Resumed from the checkpoint of epoch 1: the masks, their optimiser
    // and the weights continue exactly.
    let (resumed, again) = train_for(2, "one.sgck", true);
    assert_eq!(resumed.raw_values(), two.raw_values());
    assert_eq!(all_values(&resumed.model), all_values(&two.model));
    assert_eq!(EpochSummary::of(&again), EpochSummary::of(&history));
}
