//! The split model's edge-then-server output equals the full forward pass,
//! for every split of every zoo model, in training-free inference mode.

mod common;

use burn::module::Module;
use burn::prelude::*;

use splitguard::model::{BlockSpec, SplitModel, zoo};

#[test]
fn edge_then_server_equals_full_forward_for_every_split_of_every_zoo_model() {
    let device = Device::flex();
    for name in zoo::NAMES {
        let spec = zoo::spec(name).unwrap();
        let model = SplitModel::new(&spec, &device).unwrap().valid();
        let x = common::random_input(3, spec.input, &device);
        let full = common::values(model.forward(x.clone()));
        assert_eq!(full.len(), 3 * 10, "{name}: logits shape");
        for k in model.split_points() {
            let (edge, server) = model.split(k).unwrap();
            let z = edge.run(edge.wrap_input(x.clone()), 0, edge.len());
            let infos = model.infos().unwrap();
            assert_eq!(
                z.example_shape(),
                infos[k - 1].output,
                "{name} split {k}: feature shape"
            );
            let out = common::values(server.forward_features(z));
            let diff = common::max_abs_diff(&full, &out);
            assert!(diff < 1e-5, "{name} split {k}: max difference {diff}");
            // The in-place helpers agree with the split parts too.
            let out2 = common::values(model.server_forward(model.edge_forward(x.clone(), k), k));
            assert!(
                common::max_abs_diff(&full, &out2) < 1e-5,
                "{name} split {k}"
            );
        }
    }
}

#[test]
fn split_out_of_range_is_an_error_not_a_panic() {
    let device = Device::flex();
    let model = SplitModel::new(&zoo::spec("cnn6").unwrap(), &device).unwrap();
    for k in [0, 6, 100] {
        let err = model.split(k).unwrap_err().to_string();
        assert!(err.contains("1..=5"), "{err}");
    }
}

#[test]
fn parameter_count_matches_spec() {
    let device = Device::flex();
    for name in zoo::NAMES {
        let spec = zoo::spec(name).unwrap();
        let model = SplitModel::new(&spec, &device).unwrap();
        let infos = spec.infos().unwrap();
        let from_spec: u64 = infos.iter().map(|b| b.params).sum();
        // burn also counts batch-norm running mean and variance (state, not
        // trainable parameters, so the spec leaves them out): 2 per channel.
        // A residual block has two batch-norms, three with a 1x1-conv shortcut.
        let running: u64 = spec
            .blocks
            .iter()
            .zip(&infos)
            .map(|(b, info)| match b {
                BlockSpec::Conv(c) if c.batch_norm => 2 * c.out_channels as u64,
                BlockSpec::Linear(l) if l.batch_norm => 2 * l.out_features as u64,
                BlockSpec::Residual(r) => {
                    let norms = 2 + u64::from(r.has_downsample(info.input[0]));
                    2 * norms * info.output[0] as u64
                }
                _ => 0,
            })
            .sum();
        assert_eq!(model.num_params() as u64, from_spec + running, "{name}");
    }
}
