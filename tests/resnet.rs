//! ResNet shapes model owners have: strided residual blocks with a 1x1
//! (or padded) shortcut, max-pool and global average pooling blocks, the
//! zoo's `resnet20`, and PyTorch ResNets loaded through `model.weights`.
//!
//! The PyTorch fixtures (`tests/fixtures/resnet20.pt`, `resnet18_w4.pt`, with
//! what PyTorch computed in `*.expected.json`) come from
//! `tests/fixtures/make_resnet_pt.py`, so these tests run without Python.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;

use splitguard::model::{
    Block, BlockSpec, Features, GlobalAvgPoolSpec, MaxPoolSpec, ResidualSpec, Shortcut, SplitModel,
    block_infos, zoo,
};
use splitguard::pipeline::{self, RunObserver, RunOptions};
use splitguard::recipe::{self, Recipe};
use splitguard::train::{TrainObserver, to_vec};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture_recipe(name: &str) -> Recipe {
    recipe::from_path(&fixtures().join(format!("{name}.yaml")), &[])
        .unwrap()
        .recipe
        .into_inner()
}

fn expected(name: &str) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("{name}.expected.json"))).unwrap(),
    )
    .unwrap()
}

fn build(recipe: &Recipe, device: &Device) -> SplitModel {
    let spec = pipeline::recipe_spec(recipe).unwrap();
    pipeline::build_model(recipe, &spec, device).unwrap()
}

/// `[2, 3, 32, 32]`, `x[i] = sin(0.37 i)` (as in `make_resnet_pt.py`).
fn fixed_input(d: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..2 * 3 * 32 * 32)
        .map(|i| (0.37 * i as f64).sin() as f32)
        .collect();
    Tensor::from_data(TensorData::new(v, [2, 3, 32, 32]), d)
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|y| y.as_f64().unwrap()).collect(),
            None => vec![x.as_f64().unwrap()],
        })
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0f64, f64::max);
    assert!(diff <= tol, "{what}: max difference {diff} > {tol}");
}

/// The features PyTorch computed after block `k` (1-based) match ours:
/// shape, sum, sum of squares and values at fixed indices.
fn assert_split_matches(name: &str, k: usize, f: &Features, want: &serde_json::Value) {
    let what = format!("{name} split {k}");
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(f.example_shape(), shape, "{what}");
    let v = to_vec(f.clone().flatten());
    let sum: f64 = v.iter().map(|x| *x as f64).sum();
    let sum_sq: f64 = v.iter().map(|x| (*x as f64).powi(2)).sum();
    let (ws, wq) = (
        want["sum"].as_f64().unwrap(),
        want["sum_sq"].as_f64().unwrap(),
    );
    assert!(wq > 0.0, "{what}: the fixture's features are all zero");
    assert!(
        (sum - ws).abs() <= 1e-4 * wq.sqrt() * (v.len() as f64).sqrt() + 1e-4,
        "{what}: sum {sum} vs {ws}"
    );
    assert!(
        (sum_sq - wq).abs() <= 1e-4 * wq,
        "{what}: sum of squares {sum_sq} vs {wq}"
    );
    let probes: Vec<f32> = want["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| v[i.as_u64().unwrap() as usize])
        .collect();
    assert_close(&what, &probes, &floats(&want["values"]), 1e-4);
}

/// Loads the fixture through its recipe and checks the whole net and
/// edge-then-server at every split against PyTorch; returns the model.
fn check_against_pytorch(name: &str) -> SplitModel {
    let recipe = fixture_recipe(name);
    let want = expected(name);
    let d = Device::flex();
    let model = build(&recipe, &d);
    let x = fixed_input(&d);
    let logits = floats(&want["output"]);
    assert_close(name, &to_vec(model.forward(x.clone())), &logits, 1e-4);
    let splits = want["splits"].as_array().unwrap();
    assert_eq!(splits.len(), model.len() - 1, "one entry per split point");
    for k in model.split_points() {
        let (edge, server) = model.split(k).unwrap();
        let z = edge.edge_forward(x.clone(), k);
        assert_split_matches(name, k, &z, &splits[k - 1]);
        let out = to_vec(server.forward_features(z));
        assert_close(
            &format!("{name} server after split {k}"),
            &out,
            &logits,
            1e-4,
        );
    }
    // Not a vacuous match: a freshly initialised model computes something else.
    let fresh = SplitModel::new(&pipeline::recipe_spec(&recipe).unwrap(), &d).unwrap();
    let other = to_vec(fresh.forward(x));
    assert!(
        other
            .iter()
            .zip(&logits)
            .any(|(a, b)| (*a as f64 - b).abs() > 1e-3),
        "{other:?}"
    );
    // Nor are all logits the same (dead features would give the fc bias).
    assert!(
        logits[..10]
            .iter()
            .zip(&logits[10..])
            .any(|(a, b)| (a - b).abs() > 1e-4)
    );
    let params: u64 = model.infos().unwrap().iter().map(|b| b.params).sum();
    assert_eq!(params, want["params"].as_u64().unwrap(), "PyTorch's count");
    model
}

#[test]
fn resnet20_pytorch_weights_match_pytorch_whole_and_at_every_split() {
    let model = check_against_pytorch("resnet20");
    assert_eq!(model.len(), 12);
}

#[test]
fn resnet18_torchvision_layout_matches_pytorch_whole_and_at_every_split() {
    let model = check_against_pytorch("resnet18_w4");
    assert!(matches!(model.blocks[1], Block::MaxPool(_)));
}

#[test]
fn the_zoo_resnet20_is_the_recipe_described_one() {
    let recipe = fixture_recipe("resnet20");
    let zoo = zoo::spec_for("resnet20", [3, 32, 32], 10).unwrap();
    assert_eq!(Some(&zoo.blocks), recipe.model.blocks.as_ref());
    // He et al. 2016, section 4.2: 0.27M parameters; maps 32, 16, 8.
    let infos = zoo.infos().unwrap();
    let params: u64 = infos.iter().map(|b| b.params).sum();
    assert_eq!(params, 272_474);
    let outs: Vec<_> = infos.iter().map(|b| b.output.clone()).collect();
    assert_eq!(outs[3], vec![16, 32, 32]);
    assert_eq!(outs[4], vec![32, 16, 16]);
    assert_eq!(outs[7], vec![64, 8, 8]);
    assert_eq!(outs[10], vec![64]);
    assert_eq!(outs[11], vec![10]);
    // On the embedded MNIST too (28 -> 14 -> 7).
    let mnist = zoo::spec("resnet20").unwrap().infos().unwrap();
    assert_eq!(mnist[9].output, vec![64, 7, 7]);
}

fn residual(out: Option<usize>, stride: usize, shortcut: Shortcut, bias: bool) -> BlockSpec {
    BlockSpec::Residual(ResidualSpec {
        out_channels: out,
        stride,
        shortcut,
        bias,
        ..ResidualSpec::default()
    })
}

#[test]
fn new_blocks_shapes_flops_and_params_match_hand_counts() {
    let blocks = [
        residual(Some(32), 2, Shortcut::Conv, false),
        residual(None, 1, Shortcut::Conv, true),
        BlockSpec::MaxPool(MaxPoolSpec {
            kernel: 3,
            stride: Some(2),
            padding: 1,
        }),
        residual(Some(48), 2, Shortcut::Pad, false),
        BlockSpec::GlobalAvgPool(GlobalAvgPoolSpec {}),
    ];
    let infos = block_infos(&[16, 32, 32], &blocks).unwrap();
    let outs: Vec<_> = infos.iter().map(|b| b.output.clone()).collect();
    assert_eq!(
        outs,
        vec![
            vec![32, 16, 16],
            vec![32, 16, 16],
            vec![32, 8, 8], // (16 + 2 - 3) / 2 + 1
            vec![48, 4, 4],
            vec![48]
        ]
    );
    // 16 -> 32, stride 2, on 16x16 outputs: conv1 16*9*32, conv2 32*9*32,
    // 1x1 projection 16*32 multiply-accumulates per output pixel.
    let px = 16 * 16;
    assert_eq!(
        infos[0].flops,
        2 * (16 * 9 * 32 + 32 * 9 * 32 + 16 * 32) * px
    );
    assert_eq!(
        infos[0].params,
        (32 * 16 * 9 + 64) + (32 * 32 * 9 + 64) + (32 * 16 + 64)
    );
    assert!(
        infos[0].description.contains("1x1 shortcut"),
        "{}",
        infos[0].description
    );
    // Shape-keeping, with biases: the old identity block's count.
    assert_eq!(infos[1].flops, 2 * 2 * (32 * 9 * 32) * px);
    assert_eq!(infos[1].params, 2 * (32 * 32 * 9 + 32 + 64));
    // Pools cost no multiply-accumulates and have no parameters.
    assert_eq!((infos[2].flops, infos[2].params), (0, 0));
    assert_eq!((infos[4].flops, infos[4].params), (0, 0));
    // A pad shortcut has no parameters of its own.
    assert_eq!(infos[3].flops, 2 * (32 * 9 * 48 + 48 * 9 * 48) * 16);
    assert_eq!(infos[3].params, (48 * 32 * 9 + 96) + (48 * 48 * 9 + 96));
    // The built model has the tensors the counts describe (plus running
    // statistics: 2 per batch-norm channel).
    let m = SplitModel::from_blocks("t", &[16, 32, 32], &blocks, &Device::flex()).unwrap();
    let bn_channels = 3 * 32 + 2 * 32 + 2 * 48;
    assert_eq!(
        burn::module::Module::num_params(&m) as u64,
        infos.iter().map(|b| b.params).sum::<u64>() + 2 * bn_channels
    );
}

#[test]
fn bad_new_blocks_are_refused_with_their_index() {
    let cases: Vec<(BlockSpec, &str)> = vec![
        (
            residual(Some(8), 2, Shortcut::Pad, true),
            "pad shortcut can only add",
        ),
        (
            residual(None, 0, Shortcut::Conv, true),
            "stride must be > 0",
        ),
        (
            BlockSpec::MaxPool(MaxPoolSpec {
                kernel: 2,
                stride: None,
                padding: 2,
            }),
            "padding <= kernel / 2",
        ),
        (
            BlockSpec::MaxPool(MaxPoolSpec {
                kernel: 9,
                stride: None,
                padding: 0,
            }),
            "does not fit",
        ),
    ];
    for (b, msg) in cases {
        let err = block_infos(&[16, 4, 4], &[residual(None, 1, Shortcut::Conv, true), b])
            .unwrap_err()
            .to_string();
        assert!(err.contains("blocks[1]") && err.contains(msg), "{err}");
    }
    // Pooling and residual blocks need maps.
    let err = block_infos(&[8], &[BlockSpec::GlobalAvgPool(GlobalAvgPoolSpec {})])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("global_avg_pool block needs [C, H, W]"),
        "{err}"
    );
}

#[test]
fn a_pad_shortcut_subsamples_and_zero_pads_the_channels() {
    // With zero convolution weights (and fresh batch-norms, which map 0 to
    // 0 at inference) the block outputs relu(shortcut(x)).
    let d = Device::flex();
    let spec = residual(Some(4), 2, Shortcut::Pad, false);
    let mut m = SplitModel::from_blocks("t", &[2, 4, 4], &[spec], &d).unwrap();
    let Block::Residual(b) = &mut m.blocks[0] else {
        panic!("residual")
    };
    assert!(b.downsample.is_none());
    b.conv1.weight = burn::module::Param::from_tensor(Tensor::zeros([4, 2, 3, 3], &d));
    b.conv2.weight = burn::module::Param::from_tensor(Tensor::zeros([4, 4, 3, 3], &d));
    let x: Vec<f32> = (0..32).map(|i| i as f32 - 10.0).collect();
    let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 2, 4, 4]), &d);
    let got = to_vec(m.run(Features::Map(t), 0, 1).flatten());
    // Channels: [0, x[0, ::2, ::2], x[1, ::2, ::2], 0], then ReLU.
    let mut want = vec![0f32; 4];
    for c in 0..2 {
        for (i, j) in [(0, 0), (0, 2), (2, 0), (2, 2)] {
            want.push(x[c * 16 + i * 4 + j].max(0.0));
        }
    }
    want.extend([0f32; 4]);
    assert_eq!(got, want);
}

#[test]
fn obfuscation_operator_of_a_global_average_pool_averages_each_channel() {
    use splitguard::obfuscate::operator::{OperatorError, server_operator};
    let d = Device::flex();
    let spec = zoo::spec_for("resnet20", [3, 8, 8], 10).unwrap();
    let model = SplitModel::new(&spec, &d).unwrap();
    // Split 10: the server starts with the pool over [64, 2, 2] maps.
    let w = server_operator(&model, 10, 1 << 20).unwrap();
    assert_eq!((w.rows, w.cols), (64, 256));
    let z: Vec<f32> = (0..256).map(|i| (i as f32 * 0.7).sin()).collect();
    let wz: Vec<f32> = (0..64)
        .map(|r| (0..256).map(|c| w.data[r * 256 + c] * z[c]).sum())
        .collect();
    let t = Tensor::<2>::from_data(TensorData::new(z.clone(), [1, 256]), &d);
    let Block::GlobalAvgPool(gap) = &model.blocks[10] else {
        panic!("pool")
    };
    let pooled = to_vec(gap.forward(t.reshape([1, 64, 2, 2])));
    for (a, b) in wz.iter().zip(&pooled) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // A residual or max-pool block after the split has no single operator.
    assert!(matches!(
        server_operator(&model, 5, 1 << 20),
        Err(OperatorError::Residual { split: 5 })
    ));
    let r18 = build(&fixture_recipe("resnet18_w4"), &d);
    let err = server_operator(&r18, 1, 1 << 20).unwrap_err();
    assert!(matches!(err, OperatorError::MaxPool { split: 1 }), "{err}");
    assert!(err.to_string().contains("not linear"));
}

#[test]
fn recipe_check_accepts_resnet20_and_refuses_pruning_it() {
    let ok = "name: r\ndata: {limit: 100}\nmodel: {arch: resnet20}\nsplit: 4\n";
    recipe::from_str(ok, "r.yaml", &[]).unwrap();
    let pruned = "name: r\ndata: {limit: 100}\nmodel: {arch: resnet20}\nprune: {method: l1, budget: {flops: 1000000}}\n";
    let err = recipe::from_str(pruned, "r.yaml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("prune.method")
            && err.contains("no prunable block")
            && err.contains("residual blocks 2, 3"),
        "{err}"
    );
    assert!(err.contains("method: none"), "names the way out: {err}");
    // method: none only lets the budget choose the split.
    let none = "name: r\ndata: {limit: 100}\nmodel: {arch: resnet20}\nprune: {method: none, budget: {flops: 1000000}}\n";
    recipe::from_str(none, "r.yaml", &[]).unwrap();
    // The same refusal for inline blocks, and at run time.
    let spec = zoo::spec("resnet20").unwrap();
    let cfg: splitguard::prune::PruneConfig =
        serde_norway::from_str("{method: patrol, budget: {flops: 1000000}}").unwrap();
    let err = splitguard::prune::plan(&cfg, &spec)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("prune.method: this model has no prunable block"),
        "{err}"
    );
}

struct Quiet;
impl TrainObserver for Quiet {}
impl splitguard::attack::AuditObserver for Quiet {}
impl RunObserver for Quiet {}

#[test]
fn resnet20_runs_end_to_end_on_the_embedded_mnist() {
    // Split 5: after the first strided block, [32, 14, 14]; the decoder
    // must upsample back to 28x28.
    let text = "
name: resnet20-e2e
seed: 3
data: {limit: 240}
model: {arch: resnet20}
split: 5
training: {epochs: 1, batch_size: 32}
audit:
  splits: [5]
  attacks: [{kind: decoder, epochs: 1, restarts: 0, width: 8}]
  grid_images: 2
";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yaml");
    std::fs::write(&path, text).unwrap();
    let loaded = recipe::from_path(&path, &[]).unwrap();
    let out = dir.path().join("run");
    let report = pipeline::run(
        &loaded,
        &RunOptions {
            out_dir: out,
            resume: false,
        },
        &Device::flex().autodiff(),
        &mut Quiet,
    )
    .unwrap()
    .into_single()
    .expect("one run");
    assert_eq!(report.training.len(), 1);
    assert!(report.target_accuracy.is_finite());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["blocks"][4]["output"], serde_json::json!([32, 14, 14]));
    let attack = &json["attacks"][0];
    assert_eq!(attack["split"], 5);
    for key in ["mse", "psnr", "ssim"] {
        assert!(
            attack[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {attack}"
        );
    }
}
