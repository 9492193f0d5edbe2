//! Checkpoints: a save/load round trip gives identical outputs; truncated,
//! corrupted or mismatched files are errors, never panics.

mod common;

use burn::module::Module;
use burn::prelude::*;

use splitguard::model::{Checkpoint, SplitModel, zoo};

fn trained_like_model(device: &Device) -> SplitModel {
    // Make batch-norm running statistics non-trivial so the test also covers them.
    let spec = zoo::spec("cnn6").unwrap();
    let model = SplitModel::new(&spec, &device.clone().autodiff())
        .unwrap()
        .train();
    let x = common::random_input(8, spec.input, &device.clone().autodiff());
    let _ = model.forward(x);
    model
}

#[test]
fn round_trip_gives_identical_outputs() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sgck");
    let model = trained_like_model(&device);
    Checkpoint::save(&path, &model, 3, serde_json::json!({"k": 1}), Some(b"opt")).unwrap();
    let ck = Checkpoint::load(&path, &device).unwrap();
    assert_eq!(ck.meta.epoch, 3);
    assert_eq!(ck.meta.extra["k"], 1);
    assert_eq!(ck.optimizer.as_deref(), Some(&b"opt"[..]));
    let x = common::random_input(4, [1, 28, 28], &device);
    let a = common::values(model.valid().forward(x.clone()));
    let b = common::values(ck.model.valid().forward(x));
    assert_eq!(a, b, "outputs differ after reload");
}

#[test]
fn truncated_file_is_an_error() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sgck");
    Checkpoint::save(
        &path,
        &trained_like_model(&device),
        1,
        serde_json::Value::Null,
        None,
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = Checkpoint::load(&path, &device)
            .err()
            .expect("must fail")
            .to_string();
        assert!(err.contains("m.sgck"), "message names the file: {err}");
    }
}

#[test]
fn flipped_byte_is_detected() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sgck");
    Checkpoint::save(
        &path,
        &trained_like_model(&device),
        1,
        serde_json::Value::Null,
        None,
    )
    .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let err = Checkpoint::load(&path, &device)
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("checksum") || err.contains("corrupt"), "{err}");
}

#[test]
fn not_a_checkpoint_and_missing_file_are_errors() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.sgck");
    std::fs::write(&path, b"hello world, not a checkpoint").unwrap();
    let err = Checkpoint::load(&path, &device).err().unwrap().to_string();
    assert!(err.contains("bad magic"), "{err}");
    let missing = dir.path().join("nope.sgck");
    assert!(Checkpoint::load(&missing, &device).is_err());
}

#[test]
fn mismatched_architecture_is_an_error() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sgck");
    Checkpoint::save(
        &path,
        &trained_like_model(&device),
        1,
        serde_json::Value::Null,
        None,
    )
    .unwrap();
    let other = zoo::spec("lenet").unwrap();
    let err = Checkpoint::load_expecting(&path, &other, &device)
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("architecture mismatch"), "{err}");
}
