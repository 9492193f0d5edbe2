//! Relative data paths mean the same files from any working directory: a
//! recipe's paths are relative to its own folder, and a run folder made from
//! it is usable by `attack`, `export-features` and `partition` from a third.

use std::path::Path;
use std::process::Command;

use splitguard::data::embedded_mnist;

fn splitguard(cwd: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Writes the first `n` embedded MNIST images and labels as IDX files.
fn write_idx(dir: &Path, n: usize) {
    let ds = embedded_mnist().unwrap();
    let mut images = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        images.extend(d.to_be_bytes());
    }
    images.extend(
        ds.images[..n * 784]
            .iter()
            .map(|&p| (p * 255.0).round() as u8),
    );
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    labels.extend(ds.targets[..n].iter().map(|&t| t as u8));
    std::fs::write(dir.join("images.idx"), images).unwrap();
    std::fs::write(dir.join("labels.idx"), labels).unwrap();
}

#[test]
fn relative_data_paths_work_from_any_working_directory() {
    let root = tempfile::tempdir().unwrap();
    let (project, elsewhere, third) = (
        root.path().join("project"),
        root.path().join("elsewhere"),
        root.path().join("third"),
    );
    for d in [
        &project.join("data"),
        &project.join("recipes"),
        &elsewhere,
        &third,
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_idx(&project.join("data"), 400);
    std::fs::write(
        project.join("recipes/r.yaml"),
        "name: rel\n\
         data:\n  source: {kind: idx, images: ../data/images.idx, labels: ../data/labels.idx}\n\
         model: {arch: cnn6}\n\
         training: {epochs: 1, batch_size: 32}\n\
         audit:\n  splits: [1]\n  attacks: [{kind: decoder, epochs: 1, restarts: 0, width: 8}]\n  grid_images: 2\n",
    )
    .unwrap();
    let run = root.path().join("runs/rel");
    let (code, out) = splitguard(
        &elsewhere,
        &[
            "run",
            "../project/recipes/r.yaml",
            "--out",
            run.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let npy = third.join("f.npy");
    let run_s = run.to_str().unwrap();
    for args in [
        vec![
            "export-features",
            "--run",
            run_s,
            "--split",
            "1",
            "--part",
            "test",
            "--out",
            npy.to_str().unwrap(),
        ],
        vec!["attack", "--run", run_s, "--out", "attack"],
        vec!["partition", "--run", run_s],
    ] {
        let (code, out) = splitguard(&third, &args);
        assert_eq!(code, 0, "{args:?}: {out}");
    }
    assert!(npy.exists() && third.join("attack/attacks.json").exists());
}
