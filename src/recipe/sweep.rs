//! Sweeps: a recipe's top-level `sweep:` section lists values for any field
//! (`sweep: {training.defenses.lipschitz.weight: [0, 0.01, 0.1]}`), and the
//! recipe expands into one run per point of the grid (DESIGN section 10,
//! issue 8).
//!
//! A grid point is nothing but `--set path=value` overrides, applied by the
//! same machinery as the command line ([`super::apply_override`] through
//! [`super::from_str`]), so a swept value is checked exactly like a line of
//! the file. Every point is typed and validated before anything runs: a bad
//! path or value is an error naming the path, the value and what is allowed.
//!
//! Order is stable: the cartesian product in the order the keys are written,
//! the first key varying slowest (as nested loops would), so point `i` is
//! the same run on every machine and `--shard` can split the list.

use std::path::Path;

use serde_norway::Value;

use super::load::{
    file_problems, from_str, problems_given, read_recipe_text, recipe_dir, resolve_paths,
};
use super::{LoadedRecipe, Override, RecipeError};

/// The top-level key that holds the sweep.
pub const SWEEP_KEY: &str = "sweep";

/// Most grid points a sweep may expand to: each point is a whole run (and
/// a typed recipe in memory), so a larger grid is a mistake, refused before
/// anything is expanded.
pub const MAX_SWEEP_POINTS: usize = 1000;

/// Longest folder name a point gets (its index prefix keeps names unique).
const MAX_LABEL: usize = 150;

/// What a recipe file asks for: one run, or a grid of runs.
#[derive(Clone, Debug)]
pub enum Plan {
    /// A recipe without `sweep:`.
    Single(Box<LoadedRecipe>),
    /// A recipe with `sweep:`, expanded.
    Sweep(Sweep),
}

/// An expanded sweep: every grid point as a typed, validated recipe.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The recipe's name (the default sweep folder is `checkpoints/<name>/`).
    pub name: String,
    /// The swept paths and their values, in the order written.
    pub axes: Vec<(String, Vec<Value>)>,
    /// The grid points in stable order (point `i` has `index == i`).
    pub points: Vec<SweepPoint>,
}

/// One point of a sweep's grid.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    /// Position in the grid (0-based).
    pub index: usize,
    /// Folder name inside the sweep folder: `NNN_path=value,path=value`,
    /// with every character outside `A-Z a-z 0-9 . _ + - =` and `,` written
    /// as `_`; the zero-padded index prefix keeps names unique and sorted.
    pub label: String,
    /// The overrides of this point (`path=value`, values as YAML).
    pub overrides: Vec<Override>,
    /// The recipe with the user's overrides and this point's values applied.
    pub loaded: LoadedRecipe,
}

/// Runs `index % count == index_of_this_shard` of a list: `--shard i/n`,
/// `i` **0-based** (`0/3`, `1/3`, `2/3` together cover every run once),
/// matching Slurm's `--array=0-(n-1)` and Kubernetes' indexed jobs
/// (`JOB_COMPLETION_INDEX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, in `0..count`.
    pub index: usize,
    /// Number of shards, >= 1.
    pub count: usize,
}

impl Shard {
    /// Whether the run at `position` in the grid belongs to this shard.
    pub fn includes(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("'{s}' is not a shard: write i/n with n >= 1 and i in 0..n (0-based), e.g. 0/3")
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Reads a recipe file that may hold a `sweep:`; relative data paths are
/// resolved against the file's folder, as [`super::from_path`] does.
pub fn plan_from_path(path: &Path, overrides: &[Override]) -> Result<Plan, RecipeError> {
    let text = read_recipe_text(path)?;
    let mut plan = plan_from_str(&text, &path.display().to_string(), overrides)?;
    let dir = recipe_dir(path);
    let file = path.display().to_string();
    match &mut plan {
        Plan::Single(l) => {
            resolve_paths(&mut l.recipe.0, &dir);
            let problems = file_problems(&l.recipe);
            if !problems.is_empty() {
                return Err(RecipeError::Invalid { file, problems });
            }
        }
        Plan::Sweep(s) => {
            // The data files are read once per distinct data section.
            type Facts = (super::validate::DataFacts, Vec<(String, String)>);
            let mut seen: Vec<(super::DataConfig, Facts)> = Vec::new();
            let mut problems = Vec::new();
            for p in &mut s.points {
                resolve_paths(&mut p.loaded.recipe.0, &dir);
                let r = &p.loaded.recipe;
                let i = match seen.iter().position(|(d, _)| *d == r.data) {
                    Some(i) => i,
                    None => {
                        seen.push((r.data.clone(), super::validate::file_facts(r)));
                        seen.len() - 1
                    }
                };
                let (facts, read) = &seen[i].1;
                let found = problems_given(r, facts, read.clone());
                problems.extend(found.iter().map(|m| format!("point {}: {m}", p.label)));
            }
            if !problems.is_empty() {
                return Err(RecipeError::Sweep { file, problems });
            }
        }
    }
    Ok(plan)
}

/// Parses recipe text and expands its `sweep:` (if any); `source` names the
/// text in messages. The user's `overrides` apply first (so `--set
/// 'sweep={training.epochs: [1, 2]}'` adds a sweep), then each point's.
pub fn plan_from_str(
    text: &str,
    source: &str,
    overrides: &[Override],
) -> Result<Plan, RecipeError> {
    let mut value: Value = serde_norway::from_str(text).map_err(|e| RecipeError::Parse {
        file: source.to_string(),
        message: e.to_string(),
    })?;
    for o in overrides {
        super::apply_override(&mut value, o).map_err(|message| RecipeError::Override {
            file: source.to_string(),
            path: o.path.clone(),
            message,
        })?;
    }
    let sweep = match &mut value {
        Value::Mapping(m) => m.remove(SWEEP_KEY),
        _ => None,
    };
    let Some(sweep) = sweep else {
        // No sweep: the plain path, with its line/column messages.
        return from_str(text, source, overrides).map(|l| Plan::Single(Box::new(l)));
    };
    let invalid = |problems: Vec<String>| RecipeError::Sweep {
        file: source.to_string(),
        problems,
    };
    let axes = axes(&sweep).map_err(invalid)?;
    let sizes: Vec<usize> = axes.iter().map(|(_, v)| v.len()).collect();
    let count = sizes
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .filter(|&c| c <= MAX_SWEEP_POINTS);
    if count.is_none() {
        let shown: Vec<String> = sizes.iter().map(usize::to_string).collect();
        return Err(invalid(vec![format!(
            "sweep: the grid has {} points, more than the limit of {MAX_SWEEP_POINTS} runs; sweep fewer fields or values, or split the sweep into several recipes",
            shown.join(" x ")
        )]));
    }
    let base = serde_norway::to_string(&value).map_err(|e| RecipeError::Parse {
        file: source.to_string(),
        message: e.to_string(),
    })?;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(SWEEP_KEY)
        .to_string();

    // When the recipe is valid without its sweep, each value is tried on its
    // own first, so an error names the path and value that caused it.
    let mut problems = Vec::new();
    if from_str(&base, source, &[]).is_ok() {
        for (path, values) in &axes {
            for (i, v) in values.iter().enumerate() {
                let o = override_for(path, v);
                if let Err(e) = from_str(&base, source, std::slice::from_ref(&o)) {
                    problems.push(format!(
                        "{path}: value {} (item {i}): {}",
                        o.value.trim(),
                        inner(&e)
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
    }

    let grid = grid(&axes);
    let width = grid.len().saturating_sub(1).to_string().len().max(3);
    let mut points = Vec::with_capacity(grid.len());
    for (index, choice) in grid.iter().enumerate() {
        let overrides: Vec<Override> = axes
            .iter()
            .zip(choice)
            .map(|((path, values), &k)| override_for(path, &values[k]))
            .collect();
        let label = label(index, width, &axes, choice);
        match from_str(&base, source, &overrides) {
            Ok(loaded) => points.push(SweepPoint {
                index,
                label,
                overrides,
                loaded,
            }),
            Err(e) => problems.push(format!("point {label}: {}", inner(&e))),
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(Plan::Sweep(Sweep { name, axes, points }))
}

/// The swept paths and values, checked: a mapping of non-empty dotted paths
/// to non-empty lists.
fn axes(sweep: &Value) -> Result<Vec<(String, Vec<Value>)>, Vec<String>> {
    let Value::Mapping(m) = sweep else {
        return Err(vec![format!(
            "sweep: must map field paths to lists of values (e.g. training.epochs: [1, 2]), got {}",
            compact(sweep)
        )]);
    };
    if m.is_empty() {
        return Err(vec![
            "sweep: must list at least one field path, got none".into(),
        ]);
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (k, v) in m {
        let Some(path) = k.as_str() else {
            problems.push(format!(
                "{}: a field path must be text (e.g. training.epochs)",
                compact(k)
            ));
            continue;
        };
        if path.is_empty() || path.split('.').any(str::is_empty) || path == SWEEP_KEY {
            problems.push(format!(
                "{path}: must be a dotted field path like training.epochs"
            ));
            continue;
        }
        match v {
            Value::Sequence(values) if !values.is_empty() => {
                out.push((path.to_string(), values.clone()))
            }
            Value::Sequence(_) => problems.push(format!("{path}: must list at least one value")),
            other => problems.push(format!(
                "{path}: must be a list of values (e.g. [0, 0.1]), got {}",
                compact(other)
            )),
        }
    }
    match problems.is_empty() {
        true => Ok(out),
        false => Err(problems),
    }
}

/// The cartesian product of the axes as value indices, first axis slowest.
fn grid(axes: &[(String, Vec<Value>)]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new()];
    for (_, values) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..values.len()).map(move |k| {
                    let mut p = prefix.clone();
                    p.push(k);
                    p
                })
            })
            .collect();
    }
    out
}

fn override_for(path: &str, v: &Value) -> Override {
    Override {
        path: path.to_string(),
        value: serde_norway::to_string(v).unwrap_or_else(|_| "null".into()),
    }
}

/// A value on one line: strings bare, anything else as compact JSON.
fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_else(|_| "?".into()),
    }
}

/// `NNN_path=value,...`, filesystem-safe (see [`SweepPoint::label`]).
fn label(index: usize, width: usize, axes: &[(String, Vec<Value>)], choice: &[usize]) -> String {
    let parts: Vec<String> = axes
        .iter()
        .zip(choice)
        .map(|((path, values), &k)| format!("{path}={}", compact(&values[k])))
        .collect();
    let mut body: String = parts
        .join(",")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    body.truncate(MAX_LABEL);
    format!("{index:0width$}_{body}")
}

/// A recipe error's message without its file prefix.
fn inner(e: &RecipeError) -> String {
    match e {
        RecipeError::Read { reason, .. } => reason.clone(),
        RecipeError::Parse { message, .. } => message.clone(),
        RecipeError::Override { path, message, .. } => format!("{path}: {message}"),
        RecipeError::Invalid { problems, .. } | RecipeError::Sweep { problems, .. } => {
            problems.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "
name: sw
model: {arch: cnn6}
split: 2
training:
  epochs: 1
  defenses:
    lipschitz: {weight: 0.0}
";

    fn sweep(text: &str) -> Sweep {
        match plan_from_str(text, "t.yaml", &[]).unwrap() {
            Plan::Sweep(s) => s,
            Plan::Single(_) => panic!("expected a sweep"),
        }
    }

    fn error(text: &str) -> String {
        plan_from_str(text, "t.yaml", &[]).unwrap_err().to_string()
    }

    #[test]
    fn a_2x3_grid_expands_to_6_recipes_with_the_right_values_in_order() {
        let s = sweep(&format!(
            "{BASE}sweep:\n  training.epochs: [1, 2]\n  training.defenses.lipschitz.weight: [0, 0.01, 0.1]\n"
        ));
        assert_eq!(s.name, "sw");
        assert_eq!(s.points.len(), 6);
        let got: Vec<(usize, f32)> = s
            .points
            .iter()
            .map(|p| {
                let r = &p.loaded.recipe;
                let w = r.training.defenses.lipschitz.as_ref().unwrap().weight;
                (r.training.epochs, w)
            })
            .collect();
        assert_eq!(
            got,
            [(1, 0.0), (1, 0.01), (1, 0.1), (2, 0.0), (2, 0.01), (2, 0.1)]
        );
        for (i, p) in s.points.iter().enumerate() {
            assert_eq!(p.index, i);
            // Everything else is the base recipe.
            assert_eq!(p.loaded.recipe.name, "sw");
            assert_eq!(p.overrides.len(), 2);
        }
        assert_eq!(
            s.points[4].label,
            "004_training.epochs=2,training.defenses.lipschitz.weight=0.01"
        );
        let mut labels: Vec<&str> = s.points.iter().map(|p| p.label.as_str()).collect();
        labels.dedup();
        assert_eq!(labels.len(), 6);
    }

    #[test]
    fn a_recipe_without_sweep_is_a_single_run() {
        assert!(matches!(
            plan_from_str(BASE, "t.yaml", &[]).unwrap(),
            Plan::Single(_)
        ));
    }

    #[test]
    fn a_sweep_can_come_from_a_set_override() {
        let o: Override = "sweep={training.batch_size: [16, 32]}".parse().unwrap();
        let Plan::Sweep(s) = plan_from_str(BASE, "t.yaml", &[o]).unwrap() else {
            panic!("expected a sweep");
        };
        let sizes: Vec<usize> = s
            .points
            .iter()
            .map(|p| p.loaded.recipe.training.batch_size)
            .collect();
        assert_eq!(sizes, [16, 32]);
    }

    #[test]
    fn labels_are_filesystem_safe() {
        let s = sweep(&format!(
            "{BASE}sweep:\n  audit.splits: [[1, 2], all]\n  training.optimizer: [{{kind: sgd, lr: 0.1}}]\n"
        ));
        for p in &s.points {
            assert!(
                p.label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-=,".contains(c)),
                "{}",
                p.label
            );
        }
        assert!(s.points[1].label.starts_with("001_audit.splits=all,"));
    }

    #[test]
    fn sweep_path_must_exist_in_the_schema() {
        let e = error(&format!("{BASE}sweep:\n  training.epochz: [1, 2]\n"));
        assert!(e.contains("t.yaml") && e.contains("training.epochz"), "{e}");
        assert!(e.contains("epochz"), "{e}");
    }

    #[test]
    fn sweep_value_must_be_valid_for_its_field() {
        let e = error(&format!("{BASE}sweep:\n  training.epochs: [1, 0]\n"));
        assert!(
            e.contains("training.epochs: value 0 (item 1)") && e.contains("must be >= 1"),
            "{e}"
        );
        let e = error(&format!("{BASE}sweep:\n  training.epochs: [one]\n"));
        assert!(e.contains("training.epochs: value one"), "{e}");
    }

    #[test]
    fn a_grid_beyond_the_limit_is_refused_before_expanding() {
        // 9 keys x 10 values: 10^9 points, refused at once in bounded memory.
        let keys: String = (0..9)
            .map(|i| format!("  training.x{i}: [0,1,2,3,4,5,6,7,8,9]\n"))
            .collect();
        let e = error(&format!("{BASE}sweep:\n{keys}"));
        assert!(
            e.contains("10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 points")
                && e.contains("limit of 1000"),
            "{e}"
        );
    }

    #[test]
    fn sweep_values_must_be_a_non_empty_list() {
        let e = error(&format!("{BASE}sweep:\n  training.epochs: 3\n"));
        assert!(e.contains("training.epochs: must be a list"), "{e}");
        let e = error(&format!("{BASE}sweep:\n  training.epochs: []\n"));
        assert!(
            e.contains("training.epochs: must list at least one value"),
            "{e}"
        );
        let e = error(&format!("{BASE}sweep: [1, 2]\n"));
        assert!(e.contains("sweep: must map field paths"), "{e}");
        let e = error(&format!("{BASE}sweep:\n  training..epochs: [1]\n"));
        assert!(
            e.contains("training..epochs: must be a dotted field path"),
            "{e}"
        );
    }

    #[test]
    fn sharding_6_runs_over_3_shards_covers_each_exactly_once() {
        let shards: Vec<Shard> = ["0/3", "1/3", "2/3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut seen = [0usize; 6];
        for sh in &shards {
            let mine: Vec<usize> = (0..6).filter(|&i| sh.includes(i)).collect();
            assert_eq!(mine.len(), 2);
            for i in mine {
                seen[i] += 1;
            }
        }
        assert_eq!(seen, [1; 6]);
        assert_eq!(shards[1], Shard { index: 1, count: 3 });
        assert_eq!(
            (0..6)
                .filter(|&i| shards[1].includes(i))
                .collect::<Vec<_>>(),
            [1, 4]
        );
    }

    #[test]
    fn shard_must_be_i_of_n_with_i_below_n() {
        for bad in ["3/3", "1/0", "-1/3", "1", "a/b", "1/3/4", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("0-based") && e.contains(bad), "{bad}: {e}");
        }
        assert_eq!(
            "0/1".parse::<Shard>().unwrap(),
            Shard { index: 0, count: 1 }
        );
    }
}
