//! Exact resume and safe run folders (issue 13): a run killed between
//! epochs (the same as a kill inside the next epoch: nothing is written
//! mid-epoch) and resumed writes a byte-identical `report.json`, with the
//! stateful defenses (adversarial reconstruction, signal dropout) and with
//! PATROL pruning; a kill between the pruned model and `prune.json`
//! resumes; a run folder is locked; a folder whose checkpoint and recipe
//! disagree is refused; NaN messages say what is kept and `--resume` may
//! lower the learning rate.

use std::path::Path;

use burn::prelude::*;

use splitguard::attack::AuditObserver;
use splitguard::model::Checkpoint;
use splitguard::pipeline::{self, RunObserver, RunOptions, files};
use splitguard::recipe::{self, LoadedRecipe, Override};
use splitguard::train::TrainObserver;

/// A small slice and a tiny model: each run takes a few seconds.
fn recipe_text(defenses: &str, extra: &str) -> String {
    format!(
        "
name: resume
seed: 7
data:
  source: {{kind: embedded_mnist}}
  limit: 240
  fractions: [0.5, 0.25, 0.25]
model:
  arch: tiny
  input: [1, 28, 28]
  blocks:
    - {{kind: conv, out_channels: 4, pool: 2}}
    - {{kind: conv, out_channels: 8, pool: 2}}
    - {{kind: linear, out_features: 10, activation: none}}
split: 1
training:
  epochs: 3
  batch_size: 32
  optimizer: {{kind: adam, lr: 0.003}}
  defenses:
{defenses}
audit:
  splits: [1]
  attacks:
    - {{kind: decoder, epochs: 1, restarts: 0, width: 8}}
  grid_images: 2
{extra}"
    )
}

fn load(text: &str, sets: &[&str]) -> LoadedRecipe {
    let overrides: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    recipe::from_str(text, "resume.yaml", &overrides).unwrap()
}

/// Stops at the `n`-th time a trainer asks whether to stop (after an
/// epoch's checkpoint is written), as a kill there would.
struct StopAt(Option<usize>, usize);
impl TrainObserver for StopAt {
    fn should_stop(&mut self) -> bool {
        self.1 += 1;
        self.0 == Some(self.1)
    }
}
impl AuditObserver for StopAt {}
impl RunObserver for StopAt {}

/// burn's random draws come from one generator per backend, shared by the
/// test threads: runs whose results are compared take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(
    loaded: &LoadedRecipe,
    dir: &Path,
    resume: bool,
    stop: Option<usize>,
) -> Result<(), splitguard::Error> {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pipeline::run(
        loaded,
        &RunOptions {
            out_dir: dir.to_path_buf(),
            resume,
        },
        &Device::flex().autodiff(),
        &mut StopAt(stop, 0),
    )
    .map(|_| ())
}

fn report_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(files::REPORT_JSON)).unwrap()
}

/// An uninterrupted run and one stopped at each `stops` and resumed give
/// byte-identical reports; returns the root folder and the report.
fn resumes_exactly(text: &str, stops: &[usize]) -> (tempfile::TempDir, String) {
    let loaded = load(text, &[]);
    let root = tempfile::tempdir().unwrap();
    let whole = root.path().join("whole");
    run(&loaded, &whole, false, None).unwrap();
    let expected = report_text(&whole);
    for &stop in stops {
        let dir = root.path().join(format!("stopped_{stop}"));
        let err = run(&loaded, &dir, false, Some(stop))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--resume"), "{err}");
        assert!(!dir.join(files::REPORT_JSON).exists());
        run(&loaded, &dir, true, None).unwrap();
        assert_eq!(expected, report_text(&dir), "stopped at {stop}");
    }
    (root, expected)
}

const ADVERSARIAL: &str = "    adversarial: {weight: 0.5, width: 8, attacker_steps: 2}";
const SIGNAL_DROPOUT: &str =
    "    signal_dropout: {rate: 0.7, min_keep: 0.2, refresh_steps: 3, layer: random}";

#[test]
fn adversarial_training_resumes_to_a_byte_identical_report() {
    let (root, report) = resumes_exactly(&recipe_text(ADVERSARIAL, ""), &[1, 2]);
    assert!(report.contains("adversarial_attacker_mse"), "{report}");

    // A checkpoint without the attacker's state (an older splitguard) is
    // refused, not continued with a fresh attacker.
    let loaded = load(&recipe_text(ADVERSARIAL, ""), &[]);
    let dir = root.path().join("old");
    run(&loaded, &dir, false, Some(1)).unwrap_err();
    let path = dir.join(files::MODEL);
    let ck = Checkpoint::load(&path, &Device::flex().autodiff()).unwrap();
    let mut extra = ck.meta.extra.clone();
    extra.as_object_mut().unwrap().remove("defense_state");
    Checkpoint::save(&path, &ck.model, 1, extra, ck.optimizer.as_deref()).unwrap();
    let err = run(&loaded, &dir, true, None).unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("model.sgck") && msg.contains("no state of the defense 'adversarial'"),
        "{msg}"
    );
}

#[test]
fn signal_dropout_resumes_to_a_byte_identical_report() {
    resumes_exactly(&recipe_text(SIGNAL_DROPOUT, ""), &[1]);
}

const PATROL: &str = "prune:
  method: patrol
  budget: {fraction: 0.6, reference_split: 1}
  mask_epochs: 2
  fine_tune_epochs: 2
";

#[test]
fn patrol_resumes_from_a_kill_in_mask_training_in_fine_tuning_and_before_prune_json() {
    // Both stateful defenses train with the masks (through the trainer,
    // so signal dropout's layer hooks apply there too).
    let defenses = format!("{ADVERSARIAL}\n{SIGNAL_DROPOUT}");
    let text = recipe_text(&defenses, PATROL)
        .replace("epochs: 3", "epochs: 1")
        .replace("split: 1\n", "");
    // The main training has one epoch and asks nothing; the first stop
    // question comes after mask training's first epoch, the second after
    // fine-tuning's first.
    let (root, expected) = resumes_exactly(&text, &[1, 2]);
    assert!(expected.contains("\"fine_tuning\""), "{expected}");
    assert!(expected.contains("\"mask_training\""), "{expected}");

    // Killed after `pruned.sgck` was written, before `prune.json`: resume
    // completes the stage and reports the same numbers.
    let loaded = load(&text, &[]);
    let dir = root.path().join("before_prune_json");
    run(&loaded, &dir, false, None).unwrap();
    for name in [
        splitguard::prune::stage::PRUNE_REPORT,
        files::AUDIT,
        files::REPORT_JSON,
        files::REPORT_MD,
        files::REPORT_HTML,
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    run(&loaded, &dir, true, None).unwrap();
    assert_eq!(expected, report_text(&dir));
}

#[test]
fn a_locked_run_folder_refuses_a_second_run() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    let loaded = load(&recipe_text(ADVERSARIAL, ""), &[]);
    let held = pipeline::RunLock::acquire(&dir).unwrap();
    for resume in [false, true] {
        let err = run(&loaded, &dir, resume, None).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        assert!(msg.contains("in use by splitguard process"), "{msg}");
    }
    assert!(!dir.join(files::RECIPE).exists(), "nothing was written");
    drop(held);

    // The command line: exit 2, naming the folder and the holder.
    let held = pipeline::RunLock::acquire(&dir).unwrap();
    let recipe_path = root.path().join("r.yaml");
    std::fs::write(&recipe_path, recipe_text(ADVERSARIAL, "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(["run", recipe_path.to_str().unwrap(), "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("process {}", std::process::id())),
        "{stderr}"
    );
    drop(held);
}

#[test]
fn a_folder_whose_checkpoint_and_recipe_disagree_is_refused() {
    let text = recipe_text("    {}", "").replace("epochs: 3", "epochs: 1");
    let loaded = load(&text, &[]);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    run(&loaded, &dir, false, None).unwrap();
    let dev = Device::flex();
    let opened = pipeline::open_run(&dir, &dev).unwrap();
    // Readers share the folder; a run into it while one reads is refused,
    // and a reader is refused while a run writes there.
    pipeline::open_run(&dir, &dev).expect("a second reader");
    let err = run(&loaded, &dir, true, None).unwrap_err().to_string();
    assert!(err.contains("in use by"), "{err}");
    drop(opened);
    let held = pipeline::RunLock::acquire(&dir).unwrap();
    let err = pipeline::open_run(&dir, &dev).err().unwrap().to_string();
    assert!(err.contains("being written by"), "{err}");
    drop(held);

    // An edited seed in the resolved recipe.
    let rpath = dir.join(files::RECIPE);
    let original = std::fs::read_to_string(&rpath).unwrap();
    assert!(original.contains("seed: 7\n"), "{original}");
    std::fs::write(&rpath, original.replace("seed: 7\n", "seed: 8\n")).unwrap();
    let err = pipeline::open_run(&dir, &dev).err().unwrap();
    let msg = err.to_string();
    assert!(err.is_bad_input(), "{msg}");
    assert!(msg.contains("seed 7") && msg.contains("seed 8"), "{msg}");
    std::fs::write(&rpath, &original).unwrap();

    // A checkpoint of another architecture.
    let mpath = dir.join(files::MODEL);
    let saved = std::fs::read(&mpath).unwrap();
    let other = load(&text.replace("out_channels: 8", "out_channels: 6"), &[]);
    let odir = root.path().join("other");
    run(&other, &odir, false, None).unwrap();
    std::fs::copy(odir.join(files::MODEL), &mpath).unwrap();
    let err = pipeline::open_run(&dir, &dev).err().unwrap();
    let msg = err.to_string();
    assert!(err.is_bad_input(), "{msg}");
    assert!(msg.contains("disagree") && msg.contains("blocks"), "{msg}");
    std::fs::write(&mpath, saved).unwrap();

    // Deleting the model and resuming retrains it and attacks it afresh:
    // the old records (here one with a planted number) are not kept.
    let apath = dir.join(files::AUDIT);
    let audit = std::fs::read_to_string(&apath).unwrap();
    let record: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    let mse = record["mse"].as_f64().unwrap();
    let planted = audit.replace(&format!("\"mse\":{mse}"), "\"mse\":12345.0");
    assert_ne!(planted, audit);
    std::fs::write(&apath, planted).unwrap();
    std::fs::remove_file(&mpath).unwrap();
    let before = report_text(&dir);
    run(&loaded, &dir, true, None).unwrap();
    assert!(!std::fs::read_to_string(&apath).unwrap().contains("12345"));
    assert_eq!(before, report_text(&dir), "retrained to the same numbers");
}

#[test]
fn a_divergence_says_what_is_kept_and_resume_may_lower_the_learning_rate() {
    let text = recipe_text("    {}", "").replace("epochs: 3", "epochs: 2");
    let root = tempfile::tempdir().unwrap();

    // NaN in the first epoch: no checkpoint exists, and the message says so.
    let dir = root.path().join("first");
    let wild = load(&text, &["training.optimizer.lr=1e30"]);
    let msg = run(&wild, &dir, false, None).unwrap_err().to_string();
    assert!(msg.contains("diverged") && msg.contains("epoch 1"), "{msg}");
    assert!(msg.contains("no checkpoint was written"), "{msg}");
    assert!(!msg.contains("last good"), "{msg}");
    assert!(!dir.join(files::MODEL).exists());
    // A divergence is not bad input (the settings are valid; they did not
    // train): the command line exits 1, not 2, whatever the message says.
    let recipe_path = root.path().join("wild.yaml");
    std::fs::write(&recipe_path, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(["run", recipe_path.to_str().unwrap(), "--set"])
        .arg("training.optimizer.lr=1e30")
        .arg("--out")
        .arg(root.path().join("cli"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("diverged"), "{stderr}");
    // Resuming with a lower learning rate is allowed, and runs.
    let tame = load(&text, &[]);
    run(&tame, &dir, true, None).unwrap();
    let whole = root.path().join("whole");
    run(&tame, &whole, false, None).unwrap();
    assert_eq!(report_text(&whole), report_text(&dir));

    // NaN in epoch 2: the message names the checkpoint of epoch 1.
    let dir = root.path().join("second");
    run(&tame, &dir, false, Some(1)).unwrap_err();
    let msg = run(&wild, &dir, true, None).unwrap_err().to_string();
    assert!(msg.contains("epoch 2"), "{msg}");
    assert!(
        msg.contains(&format!(
            "{} holds epoch 1",
            dir.join(files::MODEL).display()
        )),
        "{msg}"
    );
    // Any other change is still a different recipe.
    let bigger = load(&text, &["training.batch_size=16"]);
    let msg = run(&bigger, &dir, true, None).unwrap_err().to_string();
    assert!(msg.contains("recipe differs"), "{msg}");
    assert!(msg.contains("training.optimizer.lr"), "{msg}");
    run(&tame, &dir, true, None).unwrap();
    let history = std::fs::read_to_string(dir.join(files::METRICS)).unwrap();
    assert_eq!(history.lines().count(), 2);
}

#[test]
fn attribute_adversarial_training_resumes_to_a_byte_identical_report() {
    let (_, report) = resumes_exactly(
        &recipe_text(
            "    attribute_adversarial: {attribute: writer, weight: 0.5, attacker_steps: 2}",
            "",
        ),
        &[1, 2],
    );
    assert!(report.contains("attribute_adversary_ce"), "{report}");
}

/// A kill during the audit, after its first attack was recorded (the
/// records are written as each attack ends; the report comes last), and a
/// kill between two repeats: `--resume` gives a byte-identical report.
#[test]
fn kills_in_the_audit_and_between_repeats_resume_to_byte_identical_reports() {
    let sets = [
        "audit.attacks=[{kind: decoder, epochs: 1, restarts: 0, width: 8}, {kind: attribute, epochs: 1}]",
    ];
    let loaded = load(&recipe_text(SIGNAL_DROPOUT, ""), &sets);
    let root = tempfile::tempdir().unwrap();
    let whole = root.path().join("whole");
    run(&loaded, &whole, false, None).unwrap();
    let expected = report_text(&whole);

    // In the audit: a copy of the finished run with only the first attack
    // recorded and no report, as a kill during the second attack leaves it.
    let dir = root.path().join("audit_kill");
    copy_dir(&whole, &dir);
    let audit = std::fs::read_to_string(dir.join(files::AUDIT)).unwrap();
    let lines: Vec<&str> = audit.lines().collect();
    assert!(lines.len() >= 2, "two attacks recorded: {audit}");
    std::fs::write(dir.join(files::AUDIT), format!("{}\n", lines[0])).unwrap();
    for f in [files::REPORT_JSON, files::REPORT_MD, files::REPORT_HTML] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    run(&loaded, &dir, true, None).unwrap();
    assert_eq!(expected, report_text(&dir), "resumed in the audit");

    // Between repeats: repeat 0 finished, repeat 1 not started.
    let two = load(&recipe_text(SIGNAL_DROPOUT, "repeats: 2\n"), &sets);
    let whole = root.path().join("repeats_whole");
    run(&two, &whole, false, None).unwrap();
    let expected = report_text(&whole);
    let dir = root.path().join("repeats_kill");
    copy_dir(&whole, &dir);
    std::fs::remove_dir_all(dir.join("rep_1")).unwrap();
    std::fs::remove_file(dir.join(files::REPORT_JSON)).unwrap();
    run(&two, &dir, true, None).unwrap();
    assert_eq!(expected, report_text(&dir), "resumed between repeats");
}

/// Copies a run folder (files and sub-folders), lock file excluded.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "run.lock" {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn spectral_lipschitz_resumes_to_a_byte_identical_report() {
    // The power iterations warm-start from the previous step's vectors,
    // which the checkpoint carries.
    resumes_exactly(
        &recipe_text(
            "    lipschitz: {weight: 0.05, method: spectral, power_iterations: 1}",
            "",
        ),
        &[1, 2],
    );
}
