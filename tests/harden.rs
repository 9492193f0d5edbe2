//! `splitguard harden` on a tiny space (two candidates, one epoch, a tiny
//! decoder, 300 embedded MNIST digits): the answer's front and choice
//! against its own numbers, a killed search resumed to the same bytes,
//! shards that cover each rung once and gather to the same answer, and a
//! `hardened.yaml` that `recipe check` accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use burn::prelude::*;
use serde_json::Value;

use splitguard::attack::AuditObserver;
use splitguard::harden::select::{Scored, pareto_front};
use splitguard::harden::{self, HardenConfig, HardenOptions, HardenOutcome};
use splitguard::pipeline::RunObserver;
use splitguard::recipe::{self, LoadedRecipe, Shard};
use splitguard::train::TrainObserver;

const RECIPE: &str = "
name: hz
seed: 3
data:
  source: {kind: embedded_mnist}
  limit: 300
model: {arch: cnn6}
split: 2
training:
  epochs: 1
  batch_size: 32
audit:
  splits: [2]
  attacks:
    - {kind: decoder, epochs: 1, restarts: 0, width: 8}
  grid_images: 2
harden:
  defenses: {split_noise: [1.0], top_k: [0.05]}
  prune: []
  rungs: [{epochs: 1, attack_epochs: 1}]
  eta: 2
";

/// The accuracy budget the tests pass (on the command line for the
/// uninterrupted search).
const MAX_DROP: f64 = 2.0;

struct Quiet;
impl TrainObserver for Quiet {}
impl AuditObserver for Quiet {}
impl RunObserver for Quiet {}

fn loaded() -> LoadedRecipe {
    recipe::from_str(RECIPE, "hz.yaml", &[]).unwrap()
}

fn config() -> HardenConfig {
    let mut c = loaded().recipe.harden.clone().unwrap();
    c.max_accuracy_drop = MAX_DROP;
    c
}

/// burn's random draws come from one generator per backend, shared by the
/// test threads: runs whose results are compared take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn search(
    dir: &Path,
    shard: Option<Shard>,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<HardenOutcome, splitguard::Error> {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    harden::harden(
        &loaded(),
        &config(),
        &HardenOptions {
            out_dir: dir.to_path_buf(),
            shard,
            resume,
            stop_after,
        },
        &Device::flex().autodiff(),
        &mut Quiet,
    )
}

fn ran(o: &HardenOutcome) -> Vec<String> {
    match o {
        HardenOutcome::Answer { ran, .. } | HardenOutcome::Incomplete { ran, .. } => ran.clone(),
    }
}

/// The uninterrupted search, run once through the command line.
fn uninterrupted() -> &'static (tempfile::TempDir, PathBuf) {
    static ONE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    ONE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let recipe = tmp.path().join("hz.yaml");
        std::fs::write(&recipe, RECIPE).unwrap();
        let out = tmp.path().join("search");
        let o = Command::new(env!("CARGO_BIN_EXE_splitguard"))
            .arg("harden")
            .arg(&recipe)
            .arg("--out")
            .arg(&out)
            .arg("--max-accuracy-drop")
            .arg(MAX_DROP.to_string())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        let total = evaluations(&answer(&out)).len();
        assert!(
            stdout.contains(&format!("{total} evaluation(s) ran")),
            "{stdout}"
        );
        (tmp, out)
    })
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn answer(dir: &Path) -> Value {
    serde_json::from_slice(&bytes(&dir.join("harden.json"))).unwrap()
}

/// Every evaluation folder an answer's rungs list (`id/rung-r`).
fn evaluations(a: &Value) -> BTreeSet<String> {
    a["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let rung = r["rung"].as_u64().unwrap();
            r["evaluated"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |id| format!("candidates/{}/rung-{rung}", id.as_str().unwrap()))
        })
        .collect()
}

#[test]
fn the_answer_holds_the_front_and_a_choice_within_the_budget() {
    let (_, dir) = uninterrupted();
    let a = answer(dir);
    // Two cheap candidates + the reference, then one finalist + the reference.
    let rungs = a["rungs"].as_array().unwrap();
    assert_eq!(rungs.len(), 2);
    assert_eq!(rungs[0]["evaluated"].as_array().unwrap().len(), 3);
    assert_eq!(rungs[0]["evaluated"][0], "reference");
    assert!(rungs[0]["promoted"].as_array().unwrap().len() <= 1);
    let points = a["points"].as_array().unwrap();
    assert_eq!(points[0]["id"], "reference");
    // The front, recomputed naively from the points' own numbers.
    let scored: Vec<Scored> = points
        .iter()
        .map(|p| Scored {
            id: p["id"].as_str().unwrap().into(),
            accuracy: p["evaluation"]["target_accuracy"].as_f64().unwrap(),
            leakage: p["evaluation"]["leakage"].as_f64().unwrap(),
            edge_flops: p["evaluation"]["edge_flops"].as_u64().unwrap(),
        })
        .collect();
    let front: Vec<Value> = pareto_front(&scored)
        .into_iter()
        .map(|i| Value::from(scored[i].id.clone()))
        .collect();
    assert_eq!(a["front"].as_array().unwrap(), &front);
    // Leakage is the upper end of the strongest attack's interval.
    for p in points {
        let e = &p["evaluation"];
        let hi = e["psnr_interval"][1].as_f64().unwrap();
        assert_eq!(
            e["leakage"].as_f64().unwrap(),
            hi.max(e["psnr"].as_f64().unwrap())
        );
        // Read from the run's own report.
        let report: Value = serde_json::from_slice(&bytes(
            &dir.join(e["dir"].as_str().unwrap()).join("report.json"),
        ))
        .unwrap();
        let dec = &report["attacks"][0];
        assert_eq!(dec["psnr_ci"][1].as_f64().unwrap(), hi);
        assert_eq!(
            report["target_accuracy"].as_f64(),
            e["target_accuracy"].as_f64()
        );
    }
    // The choice: within the budget, least leaking among those within.
    let reference_acc = a["reference"]["target_accuracy"].as_f64().unwrap();
    let within: Vec<&Scored> = scored
        .iter()
        .filter(|s| 100.0 * (reference_acc - s.accuracy) <= MAX_DROP + 1e-9)
        .collect();
    let best = within
        .iter()
        .min_by(|x, y| x.leakage.total_cmp(&y.leakage))
        .unwrap();
    let chosen = &a["chosen"];
    assert_eq!(chosen["id"].as_str().unwrap(), best.id);
    assert!(chosen["accuracy_drop"].as_f64().unwrap() <= MAX_DROP + 1e-9);
    // Candidates dropped for accuracy at any rung are never chosen.
    for c in a["candidates"].as_array().unwrap() {
        if c["status"]
            .as_str()
            .unwrap()
            .contains("over the accuracy budget")
        {
            assert_ne!(c["id"], chosen["id"]);
        }
    }
    assert!(a["sentence"].as_str().unwrap().ends_with('.'));
    for f in [
        "harden.md",
        "harden.html",
        "harden_front.svg",
        "hardened.yaml",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let report = dir.join(chosen["report"].as_str().unwrap());
    assert!(report.is_file(), "{}", report.display());
}

#[test]
fn hardened_yaml_passes_recipe_check_and_is_the_chosen_run() {
    let (_, dir) = uninterrupted();
    let path = dir.join("hardened.yaml");
    let o = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(["recipe", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hardened = recipe::from_path(&path, &[]).unwrap().recipe;
    let a = answer(dir);
    let run_dir = dir.join(a["chosen"]["evaluation"]["dir"].as_str().unwrap());
    let ran = recipe::from_path(&run_dir.join("recipe.resolved.yaml"), &[])
        .unwrap()
        .recipe;
    assert_eq!(hardened, ran);
    assert!(hardened.harden.is_none());
}

#[test]
fn a_killed_search_resumes_to_the_same_answer() {
    let (_, full) = uninterrupted();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("search");
    // Killed after the first evaluation (the reference's cheap run).
    let first = search(&dir, None, false, Some(1)).unwrap();
    assert!(matches!(first, HardenOutcome::Incomplete { .. }));
    assert_eq!(ran(&first), ["candidates/reference/rung-0"]);
    assert!(!dir.join("harden.json").exists());
    // Without --resume the folder is refused.
    let e = search(&dir, None, false, None).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    let second = search(&dir, None, true, None).unwrap();
    assert!(matches!(second, HardenOutcome::Answer { .. }));
    // The finished evaluation was read back, not run again.
    assert_eq!(ran(&second).len(), evaluations(&answer(full)).len() - 1);
    assert!(!ran(&second).contains(&"candidates/reference/rung-0".to_string()));
    assert_eq!(
        bytes(&dir.join("harden.json")),
        bytes(&full.join("harden.json"))
    );
}

#[test]
fn shards_cover_each_rung_once_and_gather_to_the_same_answer() {
    let (_, full) = uninterrupted();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("search");
    let s0 = search(&dir, Some("0/2".parse().unwrap()), false, None).unwrap();
    let s1 = search(&dir, Some("1/2".parse().unwrap()), false, None).unwrap();
    assert!(matches!(s0, HardenOutcome::Incomplete { .. }));
    assert!(matches!(s1, HardenOutcome::Incomplete { .. }));
    let (r0, r1) = (ran(&s0), ran(&s1));
    let rung0 = |r: &[String]| -> BTreeSet<String> {
        r.iter()
            .filter(|p| p.ends_with("rung-0"))
            .cloned()
            .collect()
    };
    // Rung 0 (reference + two candidates): shard 0 takes positions 0 and 2,
    // shard 1 position 1; together each exactly once.
    assert_eq!(rung0(&r0).len(), 2);
    assert_eq!(rung0(&r1).len(), 1);
    assert!(rung0(&r0).is_disjoint(&rung0(&r1)));
    let all: BTreeSet<String> = rung0(&r0).union(&rung0(&r1)).cloned().collect();
    let expected: BTreeSet<String> = ["reference", "c000", "c001"]
        .iter()
        .map(|id| format!("candidates/{id}/rung-0"))
        .collect();
    assert_eq!(all, expected);
    // Gathered (here: one shared folder), an unsharded --resume finishes.
    let last = search(&dir, None, true, None).unwrap();
    assert!(matches!(last, HardenOutcome::Answer { .. }));
    let every: Vec<String> = r0.into_iter().chain(r1).chain(ran(&last)).collect();
    let unique: BTreeSet<String> = every.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        every.len(),
        "no evaluation ran twice: {every:?}"
    );
    assert_eq!(unique, evaluations(&answer(full)));
    assert_eq!(
        bytes(&dir.join("harden.json")),
        bytes(&full.join("harden.json"))
    );
}

#[test]
fn harden_section_errors_name_the_field() {
    let bad = format!("{RECIPE}  max_accuracy_drop: -3\n");
    let e = recipe::from_str(&bad, "hz.yaml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("harden.max_accuracy_drop: must be in [0, 100]"),
        "{e}"
    );
    let o = "harden.defenses={top_k: [2]}".parse().unwrap();
    let e = recipe::from_str(RECIPE, "hz.yaml", &[o])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("harden.defenses.top_k[0]: must be in (0, 1], got 2"),
        "{e}"
    );
    let o = "harden.bogus=1".parse().unwrap();
    let e = recipe::from_str(RECIPE, "hz.yaml", &[o])
        .unwrap_err()
        .to_string();
    assert!(e.contains("harden.bogus: unknown field"), "{e}");
}
