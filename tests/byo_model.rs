//! Bring your own model: a network described as blocks in a recipe, its
//! weights from a safetensors file or a PyTorch state_dict.
//!
//! The safetensors files are written here byte by byte, in PyTorch's layout
//! and naming (linear weights `[out, in]`, batch-norm `weight`/`bias`), from
//! known values; the same values are set by hand on a model built in code,
//! and both must compute the same function. The PyTorch fixture
//! (`tests/fixtures/byo_net.pt`, with the outputs PyTorch computed,
//! `byo_net.expected.json`) comes from `tests/fixtures/make_byo_pt.py`, so
//! this test runs without Python.

use std::path::{Path, PathBuf};

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::TensorData;

use splitguard::model::{Block, ModelError, SplitModel};
use splitguard::pipeline::{self, RunObserver, RunOptions, files};
use splitguard::recipe::{self, Recipe};
use splitguard::train::{Evaluator, Silent, TrainObserver, TrainRun};

/// One tensor of a weights file: name, PyTorch shape, values (row-major).
type Named = (String, Vec<usize>, Vec<f32>);

/// Writes a safetensors file (8-byte little-endian header length, JSON
/// header, raw little-endian f32 data).
fn write_safetensors(path: &Path, tensors: &[Named]) {
    write_safetensors_as(path, tensors, false)
}

/// As [`write_safetensors`], in f64 when `double` (PyTorch's `.double()`).
fn write_safetensors_as(path: &Path, tensors: &[Named], double: bool) {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, shape, values) in tensors {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
        let start = data.len();
        for v in values {
            if double {
                data.extend_from_slice(&(*v as f64).to_le_bytes());
            } else {
                data.extend_from_slice(&v.to_le_bytes());
            }
        }
        let dtype = if double { "F64" } else { "F32" };
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut head = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut bytes = (head.len() as u64).to_le_bytes().to_vec();
    bytes.extend(head);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// Deterministic, distinct values for tensor number `k`.
fn values(k: usize, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| scale * ((i as f32) * 0.73 + (k as f32) * 1.31).sin())
        .collect()
}

/// The test network's weights in PyTorch naming and layout:
/// conv 3x3 4 (pool 2, bn) -> residual 4 -> linear 3, on 1x8x8 inputs.
fn known_weights() -> Vec<Named> {
    let mut out: Vec<Named> = Vec::new();
    let mut push = |name: &str, shape: &[usize], scale: f32| {
        let n = shape.iter().product();
        let k = out.len();
        out.push((name.to_string(), shape.to_vec(), values(k, n, scale)));
    };
    push("blocks.0.conv.weight", &[4, 1, 3, 3], 0.5);
    push("blocks.0.conv.bias", &[4], 0.1);
    for (p, conv) in [
        ("blocks.0.bn", None),
        ("blocks.1.bn1", Some("blocks.1.conv1")),
    ]
    .into_iter()
    .chain([("blocks.1.bn2", Some("blocks.1.conv2"))])
    {
        if let Some(c) = conv {
            push(&format!("{c}.weight"), &[4, 4, 3, 3], 0.3);
            push(&format!("{c}.bias"), &[4], 0.1);
        }
        push(&format!("{p}.weight"), &[4], 0.4);
        push(&format!("{p}.bias"), &[4], 0.2);
        push(&format!("{p}.running_mean"), &[4], 0.3);
    }
    // Variances must be positive: shift them after the fact.
    let mut out: Vec<Named> = out
        .into_iter()
        .flat_map(|(name, shape, v)| {
            if let Some(p) = name.strip_suffix(".running_mean") {
                let var: Vec<f32> = v.iter().map(|x| 1.0 + x).collect();
                vec![
                    (name.clone(), shape.clone(), v),
                    (format!("{p}.running_var"), shape, var),
                ]
            } else {
                vec![(name, shape, v)]
            }
        })
        .collect();
    let k = out.len();
    out.push((
        "blocks.2.linear.weight".into(),
        vec![3, 64],
        values(k, 192, 0.3),
    ));
    out.push((
        "blocks.2.linear.bias".into(),
        vec![3],
        values(k + 1, 3, 0.1),
    ));
    out
}

const BLOCKS: &str = "
  blocks:
    - {kind: conv, out_channels: 4, pool: 2}
    - {kind: residual}
    - {kind: linear, out_features: 3, activation: none}
";

/// Writes `name.yaml` (model of [`BLOCKS`] with the given weights section)
/// into `dir` and loads it.
fn recipe_with(dir: &Path, weights: &str) -> Recipe {
    // Three 8x8 images (the model's input shape) from the fixtures.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (images, labels) = (
        fixtures.join("byo_images.idx"),
        fixtures.join("byo_labels.idx"),
    );
    let text = format!(
        "name: byo\ndata:\n  source: {{kind: idx, images: '{}', labels: '{}'}}\nmodel:\n  arch: byo\n  input: [1, 8, 8]\n{BLOCKS}  weights: {weights}\ntraining: {{epochs: 0}}\n",
        images.display(),
        labels.display()
    );
    let path = dir.join("byo.yaml");
    std::fs::write(&path, text).unwrap();
    recipe::from_path(&path, &[]).unwrap().recipe.into_inner()
}

fn build(recipe: &Recipe, device: &Device) -> Result<SplitModel, splitguard::Error> {
    let spec = pipeline::recipe_spec(recipe)?;
    pipeline::build_model(recipe, &spec, device)
}

fn get<'a>(w: &'a [Named], name: &str) -> &'a Named {
    w.iter().find(|t| t.0 == name).unwrap()
}

fn param<const D: usize>(
    w: &[Named],
    name: &str,
    shape: [usize; D],
    d: &Device,
) -> Param<Tensor<D>> {
    Param::from_data(TensorData::new(get(w, name).2.clone(), shape), d)
}

fn set_bn(bn: &mut BatchNorm, w: &[Named], p: &str, d: &Device) {
    bn.gamma = param(w, &format!("{p}.weight"), [4], d);
    bn.beta = param(w, &format!("{p}.bias"), [4], d);
    let t = |s: &str| {
        Tensor::<1>::from_data(
            TensorData::new(get(w, &format!("{p}.{s}")).2.clone(), [4]),
            d,
        )
    };
    bn.running_mean = RunningState::new(t("running_mean"));
    bn.running_var = RunningState::new(t("running_var"));
}

/// The same network built in code, its weights set by hand (the linear
/// weight transposed to burn's `[in, out]` here, independently of burn's
/// adapter).
fn built_in_code(recipe: &Recipe, w: &[Named], d: &Device) -> SplitModel {
    let spec = pipeline::recipe_spec(recipe).unwrap();
    let mut m = SplitModel::new(&spec, d).unwrap();
    let Block::Conv(b) = &mut m.blocks[0] else {
        panic!("conv")
    };
    b.conv.weight = param(w, "blocks.0.conv.weight", [4, 1, 3, 3], d);
    b.conv.bias = Some(param(w, "blocks.0.conv.bias", [4], d));
    set_bn(b.bn.as_mut().unwrap(), w, "blocks.0.bn", d);
    let Block::Residual(b) = &mut m.blocks[1] else {
        panic!("residual")
    };
    b.conv1.weight = param(w, "blocks.1.conv1.weight", [4, 4, 3, 3], d);
    b.conv1.bias = Some(param(w, "blocks.1.conv1.bias", [4], d));
    b.conv2.weight = param(w, "blocks.1.conv2.weight", [4, 4, 3, 3], d);
    b.conv2.bias = Some(param(w, "blocks.1.conv2.bias", [4], d));
    set_bn(&mut b.bn1, w, "blocks.1.bn1", d);
    set_bn(&mut b.bn2, w, "blocks.1.bn2", d);
    let Block::Linear(b) = &mut m.blocks[2] else {
        panic!("linear")
    };
    let pt = &get(w, "blocks.2.linear.weight").2; // [3, 64]
    let transposed: Vec<f32> = (0..64)
        .flat_map(|i| (0..3).map(move |o| pt[o * 64 + i]))
        .collect();
    b.linear.weight = Param::from_data(TensorData::new(transposed, [64, 3]), d);
    b.linear.bias = Some(param(w, "blocks.2.linear.bias", [3], d));
    m
}

/// `[2, 1, 8, 8]`, `x[i] = sin(0.37 i)` (as in `make_byo_pt.py`).
fn fixed_input(d: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..128).map(|i| (0.37 * i as f64).sin() as f32).collect();
    Tensor::from_data(TensorData::new(v, [2, 1, 8, 8]), d)
}

fn outputs(m: &SplitModel, d: &Device) -> Vec<f32> {
    splitguard::train::to_vec(m.forward(fixed_input(d)))
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff <= tol, "max difference {diff} > {tol}: {a:?} vs {b:?}");
}

fn weights_error(e: splitguard::Error) -> String {
    assert!(
        e.is_bad_input(),
        "a bad weights file is bad input (exit 2): {e}"
    );
    assert!(
        matches!(e, splitguard::Error::Model(ModelError::Weights { .. })),
        "{e:?}"
    );
    e.to_string()
}

#[test]
fn yaml_model_with_safetensors_weights_computes_what_the_code_built_model_does() {
    let dir = tempfile::tempdir().unwrap();
    let w = known_weights();
    write_safetensors(&dir.path().join("net.safetensors"), &w);
    let recipe = recipe_with(dir.path(), "{path: net.safetensors}");
    let d = Device::flex();
    let loaded = build(&recipe, &d).unwrap();
    let by_hand = built_in_code(&recipe, &w, &d);
    let (a, b) = (outputs(&loaded, &d), outputs(&by_hand, &d));
    assert_close(&a, &b, 1e-5);
    // Not a vacuous match: a freshly initialised model computes something else.
    let fresh = SplitModel::new(&pipeline::recipe_spec(&recipe).unwrap(), &d).unwrap();
    let c = outputs(&fresh, &d);
    assert!(
        a.iter().zip(&c).any(|(x, y)| (x - y).abs() > 1e-3),
        "{a:?} vs {c:?}"
    );
}

#[test]
fn double_precision_weights_are_cast_to_the_models_f32() {
    let dir = tempfile::tempdir().unwrap();
    let w = known_weights();
    write_safetensors_as(&dir.path().join("net.safetensors"), &w, true);
    let recipe = recipe_with(dir.path(), "{path: net.safetensors}");
    let d = Device::flex();
    // An f64 parameter would meet f32 inputs in the conv and panic.
    let loaded = build(&recipe, &d).unwrap();
    let by_hand = built_in_code(&recipe, &w, &d);
    assert_close(&outputs(&loaded, &d), &outputs(&by_hand, &d), 1e-5);
}

#[test]
fn cli_model_keys_lists_the_names_and_exits_2_on_a_file_that_does_not_fit() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let recipe = fixtures.join("byo_net.yaml");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_splitguard"))
            .args(["model", "keys", "--recipe"])
            .arg(&recipe)
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = run(&[]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("blocks.3.linear.weight") && stdout.contains("[3, 24]"),
        "{stdout}"
    );
    assert!(stdout.contains("byo_net.pt: fits"), "{stdout}");
    let bad = run(&["--set", "model.weights.key_map=[]"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("missing: blocks.2.bn.running_var (expected shape [6])"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The fixtures folder and the recipe of `tests/fixtures/byo_net.yaml`.
fn fixture_recipe() -> (PathBuf, Recipe) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let recipe = recipe::from_path(&fixtures.join("byo_net.yaml"), &[])
        .unwrap()
        .recipe
        .into_inner();
    (fixtures, recipe)
}

#[test]
fn pytorch_state_dict_with_key_map_computes_what_pytorch_did() {
    let (fixtures, recipe) = fixture_recipe();
    let d = Device::flex();
    let model = build(&recipe, &d).unwrap();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("byo_net.expected.json")).unwrap(),
    )
    .unwrap();
    let want: Vec<f32> = expected["output"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    assert_eq!(want.len(), 6);
    assert_close(&outputs(&model, &d), &want, 1e-5);
    // The third block runs in PyTorch's order (conv, bn, ReLU, pool); in
    // the zoo's order (conv, ReLU, pool, bn) the same weights compute
    // something else, so the match above checks the order too.
    let zoo_order = recipe::from_path(
        &fixtures.join("byo_net.yaml"),
        &["model.blocks.2.order=conv_act_pool_bn".parse().unwrap()],
    )
    .unwrap()
    .recipe;
    let other = outputs(&build(&zoo_order, &d).unwrap(), &d);
    assert!(
        other.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-3),
        "{other:?} vs {want:?}"
    );
}

#[test]
fn a_pytorch_order_bias_free_model_survives_a_checkpoint_round_trip() {
    let (_, recipe) = fixture_recipe();
    let d = Device::flex();
    let model = build(&recipe, &d).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sgck");
    splitguard::model::Checkpoint::save(&path, &model, 0, serde_json::Value::Null, None).unwrap();
    let back = splitguard::model::Checkpoint::load(&path, &d).unwrap();
    assert_eq!(back.meta.spec, model.spec().unwrap());
    assert_eq!(outputs(&back.model, &d), outputs(&model, &d));
}

#[test]
fn pytorch_names_without_key_map_are_listed_as_missing_and_unexpected() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let recipe = recipe::from_path(
        &fixtures.join("byo_net.yaml"),
        &["model.weights.key_map=[]".parse().unwrap()],
    )
    .unwrap()
    .recipe;
    let err = weights_error(build(&recipe, &Device::flex()).unwrap_err());
    assert!(err.contains("byo_net.pt"), "names the file: {err}");
    assert!(
        err.contains("missing: blocks.0.conv.weight (expected shape [4, 1, 3, 3])"),
        "{err}"
    );
    assert!(
        err.contains("unexpected: features.0.weight (shape [4, 1, 3, 3])"),
        "{err}"
    );
    assert!(err.contains("key_map"), "hints at the fix: {err}");
    // num_batches_tracked is PyTorch bookkeeping, never reported.
    assert!(!err.contains("num_batches_tracked"), "{err}");
}

#[test]
fn a_missing_tensor_is_an_error_listing_it() {
    let dir = tempfile::tempdir().unwrap();
    let w: Vec<Named> = known_weights()
        .into_iter()
        .filter(|t| t.0 != "blocks.1.bn2.running_var" && t.0 != "blocks.2.linear.bias")
        .collect();
    write_safetensors(&dir.path().join("net.safetensors"), &w);
    let recipe = recipe_with(dir.path(), "{path: net.safetensors}");
    let err = weights_error(build(&recipe, &Device::flex()).unwrap_err());
    assert!(
        err.contains(&dir.path().join("net.safetensors").display().to_string()),
        "{err}"
    );
    assert!(err.contains("(2 problems)"), "{err}");
    assert!(
        err.contains("missing: blocks.1.bn2.running_var (expected shape [4])"),
        "{err}"
    );
    assert!(
        err.contains("missing: blocks.2.linear.bias (expected shape [3])"),
        "{err}"
    );
}

#[test]
fn a_shape_mismatch_lists_expected_and_found_shapes() {
    let dir = tempfile::tempdir().unwrap();
    // The linear weight in burn's [in, out] layout instead of PyTorch's [out, in],
    // and a conv with 3 output channels instead of 4.
    let w: Vec<Named> = known_weights()
        .into_iter()
        .map(|(n, s, v)| match n.as_str() {
            "blocks.2.linear.weight" => (n, vec![64, 3], v),
            "blocks.0.conv.weight" => (n, vec![3, 1, 3, 3], v[..27].to_vec()),
            _ => (n, s, v),
        })
        .collect();
    write_safetensors(&dir.path().join("net.safetensors"), &w);
    let recipe = recipe_with(dir.path(), "{path: net.safetensors}");
    let err = weights_error(build(&recipe, &Device::flex()).unwrap_err());
    assert!(
        err.contains("shape mismatch: blocks.2.linear.weight: expected [3, 64], found [64, 3]"),
        "{err}"
    );
    assert!(
        err.contains(
            "shape mismatch: blocks.0.conv.weight: expected [4, 1, 3, 3], found [3, 1, 3, 3]"
        ),
        "{err}"
    );
}

#[test]
fn an_unexpected_tensor_is_an_error_unless_allow_extra() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = known_weights();
    w.push(("head.weight".into(), vec![2], vec![1.0, 2.0]));
    write_safetensors(&dir.path().join("net.safetensors"), &w);
    let recipe = recipe_with(dir.path(), "{path: net.safetensors}");
    let err = weights_error(build(&recipe, &Device::flex()).unwrap_err());
    assert!(err.contains("unexpected: head.weight (shape [2])"), "{err}");
    assert!(err.contains("allow_extra"), "{err}");
    let recipe = recipe_with(dir.path(), "{path: net.safetensors, allow_extra: true}");
    build(&recipe, &Device::flex()).unwrap();
}

#[test]
fn a_corrupt_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (file, bytes) in [
        ("net.safetensors", b"\x10\0\0\0\0\0\0\0{not json".to_vec()),
        ("net.safetensors", vec![0xff; 5]),
        ("net.pt", b"PK\x03\x04 not really a zip".to_vec()),
        ("net.pt", Vec::new()),
    ] {
        std::fs::write(dir.path().join(file), &bytes).unwrap();
        let recipe = recipe_with(dir.path(), &format!("{{path: {file}}}"));
        let err = weights_error(build(&recipe, &Device::flex()).unwrap_err());
        assert!(err.contains(file) && err.contains("cannot read"), "{err}");
    }
}

#[test]
fn fine_tuning_starts_from_the_file_weights() {
    let dir = tempfile::tempdir().unwrap();
    let w = known_weights();
    write_safetensors(&dir.path().join("net.safetensors"), &w);
    let recipe = recipe_with(dir.path(), "{path: net.safetensors}");
    let d = Device::flex().autodiff();
    let model = build(&recipe, &d).unwrap();
    let data = synthetic_8x8(40);
    let mut cfg = recipe.training.clone();
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.optimizer = splitguard::train::OptimizerConfig::Sgd {
        lr: 1e-3,
        momentum: 0.0,
        weight_decay: 0.0,
    };
    let run = TrainRun {
        config: &cfg,
        seed: 1,
        split: 1,
        checkpoint: None,
        metrics_log: None,
        resume: false,
    };
    let trained = splitguard::train::train(model, &data, &mut [], &run, &d, &mut Silent).unwrap();
    let Block::Conv(b) = &trained.model.blocks[0] else {
        panic!("conv")
    };
    let after = splitguard::train::to_vec(b.conv.weight.val());
    let before = &get(&w, "blocks.0.conv.weight").2;
    let moved = after
        .iter()
        .zip(before)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    // Five small SGD steps move the file's weights a little; a random start
    // would be off by the weights' own scale (0.5).
    assert!(moved > 0.0 && moved < 0.05, "moved by {moved}");
}

/// 1x8x8 images, 3 classes, for training mechanics only.
fn synthetic_8x8(n: usize) -> splitguard::data::Dataset {
    splitguard::data::Dataset {
        name: "synthetic".into(),
        shape: [1, 8, 8],
        images: (0..n * 64)
            .map(|i| ((i * 37 % 101) as f32) / 101.0)
            .collect(),
        targets: (0..n).map(|i| (i % 3) as u32).collect(),
        num_classes: 3,
        hidden: Vec::new(),
    }
}

struct Quiet;
impl TrainObserver for Quiet {}
impl splitguard::attack::AuditObserver for Quiet {}
impl RunObserver for Quiet {}

/// A 1x28x28 model for the embedded MNIST: conv 3x3 4 (pool 2, bn), linear 10.
const MNIST_MODEL: &str = "
model:
  arch: byo-mnist
  blocks:
    - {kind: conv, out_channels: 4, pool: 2}
    - {kind: linear, out_features: 10, activation: none}
  weights: {path: mnist.safetensors}
";

#[test]
fn zero_epochs_audit_the_pretrained_model_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // The model owner's network: trained elsewhere; here, a seeded init
    // exported in PyTorch layout through burn's own adapter.
    let d = Device::flex();
    d.seed(11);
    let text = format!(
        "name: byo-audit\nseed: 5\ndata: {{limit: 300}}\n{MNIST_MODEL}training: {{epochs: 0}}\naudit:\n  splits: [1]\n  attacks: [{{kind: attribute, epochs: 1}}]\n  grid_images: 2\n"
    );
    let rpath = dir.path().join("audit.yaml");
    std::fs::write(&rpath, &text).unwrap();
    let loaded = recipe::from_path(&rpath, &[]).unwrap();
    let spec = pipeline::model_spec(&loaded.recipe, [1, 28, 28], 10).unwrap();
    let owner = SplitModel::new(&spec, &d).unwrap();
    export_pytorch_layout(&owner, &dir.path().join("mnist.safetensors"));

    let out = dir.path().join("run");
    let dev = Device::flex().autodiff();
    let report = pipeline::run(
        &loaded,
        &RunOptions {
            out_dir: out.clone(),
            resume: false,
        },
        &dev,
        &mut Quiet,
    )
    .unwrap()
    .into_single()
    .expect("one run");
    assert!(report.training.is_empty(), "no epoch was trained");
    let splits = pipeline::prepare_data(&loaded.recipe).unwrap();
    let acc = Evaluator::new(&owner, &d, 256).accuracy(&splits.test);
    assert_eq!(
        report.target_accuracy, acc,
        "the audited model is the owner's"
    );
    // The run folder holds the owner's model as epoch 0, so later commands open it.
    let opened = pipeline::open_run(&out, &d).unwrap();
    let ck = splitguard::model::Checkpoint::read_meta(&out.join(files::MODEL)).unwrap();
    assert_eq!(ck.epoch, 0);
    assert_eq!(
        Evaluator::new(&opened.model, &d, 256).logits(&splits.test),
        Evaluator::new(&owner, &d, 256).logits(&splits.test)
    );
}

/// Writes `model` as a PyTorch-layout safetensors file (what a PyTorch user
/// would hand over), with burn's exporter.
fn export_pytorch_layout(model: &SplitModel, path: &PathBuf) {
    use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .overwrite(true);
    model.save_into(&mut store).unwrap();
}
