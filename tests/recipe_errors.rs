//! Every recipe error names its field path, what was found and what is
//! allowed, and `recipe check` refuses what `run` would refuse (issue 13,
//! item 6): the messages a hostile user met, pinned one by one.

use std::path::Path;
use std::process::Command;

use splitguard::recipe::{from_path, from_str};

const BASE: &str = "name: t\nmodel: {arch: cnn6}\n";

/// The error of a recipe text (it must be refused).
fn error_of(text: &str) -> String {
    from_str(text, "r.yaml", &[])
        .expect_err("the recipe must be refused")
        .to_string()
}

/// Asserts that `err` contains every one of `parts`.
fn has_all(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "expected '{p}' in:\n{err}");
    }
}

#[test]
fn split_that_is_neither_a_number_nor_auto_names_both_forms() {
    let err = error_of(&format!("{BASE}split: automatic\n"));
    has_all(&err, &["split: expected", "'automatic'", "integer", "auto"]);
    assert!(!err.contains("untagged"), "{err}");
}

#[test]
fn audit_splits_that_is_neither_all_nor_a_list_names_both_forms() {
    let err = error_of(&format!("{BASE}audit: {{splits: every}}\n"));
    has_all(
        &err,
        &["audit.splits: expected", "'every'", "all", "a list of"],
    );
    let err = error_of(&format!("{BASE}audit: {{splits: [1, two]}}\n"));
    has_all(
        &err,
        &["audit.splits[1]: expected an integer >= 0, got 'two'"],
    );
}

#[test]
fn learning_rate_given_as_text_names_the_nested_field() {
    let err = error_of(&format!(
        "{BASE}training: {{optimizer: {{kind: adam, lr: fast}}}}\n"
    ));
    has_all(
        &err,
        &["training.optimizer.lr: expected a number, got 'fast'"],
    );
}

#[test]
fn momentum_under_adam_names_the_kind_and_its_fields() {
    let err = error_of(&format!(
        "{BASE}training: {{optimizer: {{kind: adam, momentum: 0.9}}}}\n"
    ));
    has_all(
        &err,
        &[
            "training.optimizer.momentum: unknown field for kind 'adam'",
            "allowed: kind, lr, weight_decay",
        ],
    );
}

#[test]
fn unknown_optimizer_kind_lists_the_kinds() {
    let err = error_of(&format!(
        "{BASE}training: {{optimizer: {{kind: rmsprop}}}}\n"
    ));
    has_all(
        &err,
        &["training.optimizer.kind: unknown kind 'rmsprop'; allowed: adam, sgd"],
    );
}

#[test]
fn idx_source_without_labels_says_what_is_missing() {
    let err = error_of(&format!(
        "{BASE}data: {{source: {{kind: idx, images: i.idx}}}}\n"
    ));
    has_all(
        &err,
        &[
            "data.source.labels: missing; required for kind 'idx'",
            "IDX1 labels file",
        ],
    );
}

#[test]
fn unknown_fields_of_variants_without_fields_are_refused() {
    // Regression (issue 13): these were accepted silently.
    for (text, path, allowed) in [
        (
            "data: {source: {kind: embedded_mnist, foo: 1}}",
            "data.source.foo: unknown field for kind 'embedded_mnist'",
            "allowed: kind",
        ),
        (
            "audit: {attacker_data: {kind: aux, foo: 1}}",
            "audit.attacker_data.foo: unknown field for kind 'aux'",
            "allowed: kind",
        ),
        (
            "obfuscation: {mode: {kind: distortion_free, eps: 1}}",
            "obfuscation.mode.eps: unknown field for kind 'distortion_free'",
            "allowed: kind",
        ),
        (
            "obfuscation: {mode: {kind: none, m: 3}}",
            "obfuscation.mode.m: unknown field for kind 'none'",
            "allowed: kind",
        ),
    ] {
        let err = error_of(&format!("{BASE}{text}\n"));
        has_all(&err, &[path, allowed]);
    }
}

#[test]
fn all_problems_of_the_shape_are_reported_at_once() {
    let err = error_of(&format!(
        "{BASE}seed: many\ntraining: {{epochs: -1, optimizer: {{kind: sgd, lr: fast}}}}\n"
    ));
    has_all(
        &err,
        &[
            "seed: expected an integer >= 0, got 'many'",
            "training.epochs: expected an integer >= 0, got -1",
            "training.optimizer.lr: expected a number, got 'fast'",
        ],
    );
}

#[test]
fn model_input_that_does_not_match_the_data_is_refused_by_check() {
    let err = error_of("name: t\nmodel: {arch: cnn6, input: [3, 32, 32]}\n");
    has_all(
        &err,
        &[
            "model.input: [3, 32, 32] does not match the data",
            "[1, 28, 28]",
        ],
    );
    from_str(
        "name: t\nmodel: {arch: cnn6, input: [1, 28, 28]}\n",
        "r.yaml",
        &[],
    )
    .unwrap();
}

#[test]
fn model_input_with_zero_channels_is_refused() {
    let err = error_of(
        "name: t\nmodel: {arch: x, input: [0, 28, 28], blocks: [{kind: linear, out_features: 10}]}\n",
    );
    has_all(
        &err,
        &["model.input: each of C, H, W must be >= 1, got [0, 28, 28]"],
    );
}

#[test]
fn attribute_attack_on_an_attribute_the_data_lacks_is_refused() {
    let err = error_of(&format!(
        "{BASE}audit: {{attacks: [{{kind: decoder}}, {{kind: attribute, attributes: [writer, hat]}}]}}\n"
    ));
    has_all(
        &err,
        &[
            "audit.attacks[1].attributes[1]: 'hat' is not a hidden attribute of the data",
            "allowed: writer, stroke",
        ],
    );
    // CIFAR has no hidden attribute at all.
    let err = error_of(&format!(
        "{BASE}data: {{source: {{kind: cifar10, dir: c}}}}\naudit: {{attacks: [{{kind: attribute}}]}}\n"
    ));
    has_all(
        &err,
        &["audit.attacks[0]: the data has no hidden attributes"],
    );
}

/// Writes `n` IDX images of `h`x`w` and the given labels into `dir`.
fn write_idx(dir: &Path, h: u32, w: u32, labels: &[u8]) {
    let n = labels.len() as u32;
    let mut images = vec![0, 0, 8, 3];
    for d in [n, h, w] {
        images.extend(d.to_be_bytes());
    }
    images.extend((0..n * h * w).map(|i| (i % 251) as u8));
    let mut l = vec![0, 0, 8, 1];
    l.extend(n.to_be_bytes());
    l.extend_from_slice(labels);
    std::fs::write(dir.join("images.idx"), images).unwrap();
    std::fs::write(dir.join("labels.idx"), l).unwrap();
}

/// Writes a recipe reading `images.idx` / `labels.idx` beside it.
fn idx_recipe(dir: &Path, extra_source: &str, rest: &str) -> std::path::PathBuf {
    let p = dir.join("r.yaml");
    std::fs::write(
        &p,
        format!(
            "name: t\ndata: {{source: {{kind: idx, images: images.idx, labels: labels.idx{extra_source}}}}}\n{rest}"
        ),
    )
    .unwrap();
    p
}

fn digits(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

#[test]
fn a_pool_larger_than_an_idx_image_is_refused_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(dir.path(), 8, 8, &digits(40));
    let p = idx_recipe(
        dir.path(),
        "",
        "model: {arch: x, blocks: [{kind: conv, out_channels: 4, pool: 16}, {kind: linear, out_features: 10}]}\n",
    );
    let err = from_path(&p, &[]).unwrap_err().to_string();
    has_all(
        &err,
        &["r.yaml", "model.blocks: do not fit the input [1, 8, 8]"],
    );
    // A zoo architecture too deep for the images.
    write_idx(dir.path(), 4, 4, &digits(40));
    let p = idx_recipe(dir.path(), "", "model: {arch: cnn6}\n");
    let err = from_path(&p, &[]).unwrap_err().to_string();
    has_all(
        &err,
        &["model.arch: 'cnn6' does not fit the data's images [1, 4, 4]"],
    );
    // And model.input against the header.
    let p = idx_recipe(dir.path(), "", "model: {arch: cnn6, input: [1, 28, 28]}\n");
    let err = from_path(&p, &[]).unwrap_err().to_string();
    has_all(
        &err,
        &["model.input: [1, 28, 28] does not match the data: data.source images are [1, 4, 4]"],
    );
}

#[test]
fn a_stray_idx_label_is_refused_and_classes_declares_the_count() {
    // Regression (issue 13): a label of 200 among digits made 201 classes.
    let dir = tempfile::tempdir().unwrap();
    let mut labels = digits(39);
    labels.push(200);
    write_idx(dir.path(), 28, 28, &labels);
    let p = idx_recipe(dir.path(), "", "model: {arch: cnn6}\n");
    let err = from_path(&p, &[]).unwrap_err().to_string();
    has_all(
        &err,
        &[
            "data.source.labels: ",
            "label 200 (item 39)",
            "10..=199",
            "data.source.classes",
        ],
    );
    let p = idx_recipe(dir.path(), ", classes: 10", "model: {arch: cnn6}\n");
    let err = from_path(&p, &[]).unwrap_err().to_string();
    has_all(&err, &["label 200 (item 39)", "must be in 0..=9"]);
    let p = idx_recipe(dir.path(), ", classes: 201", "model: {arch: cnn6}\n");
    from_path(&p, &[]).unwrap();
}

#[test]
fn an_idx_source_has_no_attributes_to_attack() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(dir.path(), 28, 28, &digits(40));
    let p = idx_recipe(
        dir.path(),
        "",
        "model: {arch: cnn6}\naudit: {attacks: [{kind: attribute}]}\n",
    );
    let err = from_path(&p, &[]).unwrap_err().to_string();
    has_all(
        &err,
        &["audit.attacks[0]: the data has no hidden attributes"],
    );
}

#[test]
fn a_folder_source_offers_its_csv_columns_as_attributes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("labels.csv"), "file,label,age\na.png,0,1\n").unwrap();
    let p = dir.path().join("r.yaml");
    std::fs::write(
        &p,
        "name: t\ndata: {source: {kind: folder, dir: ., labels: labels.csv}}\nmodel: {arch: cnn6}\naudit: {attacks: [{kind: attribute, attributes: [sex]}]}\n",
    )
    .unwrap();
    let err = from_path(&p, &[]).unwrap_err().to_string();
    has_all(
        &err,
        &[
            "audit.attacks[0].attributes[0]: 'sex' is not a hidden attribute of the data; allowed: age",
        ],
    );
}

fn splitguard(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_and_run_both_exit_2_with_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut labels = digits(39);
    labels.push(200);
    write_idx(dir.path(), 28, 28, &labels);
    let idx = idx_recipe(dir.path(), "", "model: {arch: cnn6}\n");
    let split = dir.path().join("split.yaml");
    std::fs::write(&split, format!("{BASE}split: automatic\n")).unwrap();
    let attr = dir.path().join("attr.yaml");
    std::fs::write(
        &attr,
        format!("{BASE}audit: {{attacks: [{{kind: attribute, attributes: [hat]}}]}}\n"),
    )
    .unwrap();
    let aux = dir.path().join("aux.yaml");
    std::fs::write(
        &aux,
        format!("{BASE}audit: {{attacker_data: {{kind: aux, foo: 1}}}}\n"),
    )
    .unwrap();
    for (path, expected) in [
        (&idx, "data.source.labels: "),
        (&split, "split: expected"),
        (&attr, "audit.attacks[0].attributes[0]: 'hat'"),
        (&aux, "audit.attacker_data.foo: unknown field"),
    ] {
        let p = path.to_str().unwrap();
        let out = dir.path().join("out");
        for cmd in [
            vec!["recipe", "check", p],
            vec!["run", p, "--out", out.to_str().unwrap()],
        ] {
            let (code, err) = splitguard(&cmd);
            assert_eq!(code, 2, "{cmd:?}: {err}");
            has_all(&err, &[expected]);
        }
        assert!(!out.exists(), "a refused recipe writes nothing");
    }
}
