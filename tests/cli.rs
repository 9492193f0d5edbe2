//! The command line's contract: exit code 2 and a message naming the file,
//! the field path and what is allowed, for bad input.

use std::process::Command;

fn splitguard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn bad_recipes_exit_2_naming_file_field_and_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown.yaml",
            "name: t\nmodel: {arch: cnn6}\ntraining: {epohcs: 3}\n",
            "epohcs",
        ),
        (
            "type.yaml",
            "name: t\nmodel: {arch: cnn6}\ntraining: {epochs: lots}\n",
            "epochs",
        ),
        (
            "range.yaml",
            "name: t\nmodel: {arch: cnn6}\ntraining: {batch_size: 0}\n",
            "training.batch_size: must be >= 2",
        ),
        (
            "wide.yaml",
            "name: t\nmodel: {arch: x, blocks: [{kind: conv, out_channels: 100000000}, {kind: linear, out_features: 10}]}\n",
            "model.blocks[0].out_channels: must be in 1..=65536",
        ),
        (
            "pool.yaml",
            "name: t\nmodel: {arch: x, blocks: [{kind: conv, out_channels: 4, pool: 64}, {kind: linear, out_features: 10}]}\n",
            "model.blocks: do not fit the input [1, 28, 28]",
        ),
    ];
    for (file, text, expected) in cases {
        let path = write(dir.path(), file, text);
        for cmd in [vec!["recipe", "check", &path], vec!["run", &path]] {
            let (code, _, err) = splitguard(&cmd);
            assert_eq!(code, 2, "{cmd:?}: {err}");
            assert!(err.contains(file), "names the file: {err}");
            assert!(err.contains(expected), "expected '{expected}' in: {err}");
        }
    }
}

#[test]
fn endless_or_huge_recipe_files_are_refused_in_bounded_memory() {
    // /dev/zero never ends: the read stops at the limit instead of
    // exhausting memory.
    let (code, _, err) = splitguard(&["recipe", "check", "/dev/zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/dev/zero") && err.contains("limit"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = splitguard(&["run", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("folder"), "{err}");
}

#[test]
fn recipe_check_accepts_the_shipped_recipes() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes");
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for dir in [root.to_string(), format!("{root}/repro")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                paths.push(path);
            }
        }
    }
    assert!(paths.len() >= 18, "{paths:?}");
    for path in paths {
        let (code, out, err) = splitguard(&["recipe", "check", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", path.display());
        assert!(out.contains("ok"));
    }
}

#[test]
fn bad_override_and_missing_file_exit_2() {
    let (code, _, err) = splitguard(&["recipe", "check", "nope.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.yaml"));
    let recipes = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes/quickstart.yaml");
    let (code, _, err) = splitguard(&["recipe", "check", recipes, "--set", "training.epochs=-1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("epochs"), "{err}");
}

#[test]
fn model_summary_lists_blocks_with_flops() {
    let (code, out, err) = splitguard(&["model", "summary", "--arch", "cnn6"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("conv 3x3 16 pool2 bn") && out.contains("[32, 7, 7]"),
        "{out}"
    );
    let (code, _, err) = splitguard(&["model", "summary", "--arch", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cnn6"), "lists allowed names: {err}");
}

#[test]
fn export_from_a_folder_that_is_not_a_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.npy");
    let (code, _, err) = splitguard(&[
        "export-features",
        "--run",
        dir.path().to_str().unwrap(),
        "--split",
        "1",
        "--part",
        "test",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a run folder"), "{err}");
}
