//! Reading recipes: text -> YAML value -> overrides -> typed [`Recipe`].
//!
//! `from_path` only reads the file and calls `from_str`, so tests pass text.
//! `--set path=value` overrides are applied to the YAML value before typing,
//! so an override is checked exactly like a line of the file.

use std::path::{Path, PathBuf};

use serde_norway::Value;

use super::{Recipe, RecipeError};

/// A recipe with where it came from.
#[derive(Clone, Debug)]
pub struct LoadedRecipe {
    /// The typed, validated recipe (overrides applied, defaults filled,
    /// relative data paths resolved against the recipe's folder).
    pub recipe: ResolvedRecipe,
    /// The file it was read from (or `<string>`).
    pub source: String,
}

/// A recipe that passed validation, with its defaults filled and, when read
/// from a file, its data paths absolute (resolved against the file's
/// folder; text has no folder, so its paths stay as written, relative to
/// the working directory): what every stage after loading, and `open_run`, work
/// from. Only this module makes one (from text, a file or a run folder's
/// `recipe.resolved.yaml`), so a recipe that reaches a stage was checked,
/// and nothing after loading changes it: read it through `Deref`. A
/// repeat's recipe differs only in its seed ([`repeat`](Self::repeat)).
/// (`split: auto` stays `auto` here: only the trained model can resolve
/// it, which the deploy stage does once.)
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct ResolvedRecipe(pub(super) Recipe);

impl ResolvedRecipe {
    /// One repeat of this recipe: run once, with `seed` (neither is part
    /// of what validation checks beyond their ranges, which 1 and any seed
    /// meet).
    pub fn repeat(&self, seed: u64) -> Self {
        let mut r = self.0.clone();
        r.repeats = 1;
        r.seed = seed;
        Self(r)
    }
}

impl ResolvedRecipe {
    /// The recipe itself, to change and check again (e.g. a test's
    /// variant); a changed recipe is no longer resolved.
    pub fn into_inner(self) -> Recipe {
        self.0
    }
}

impl std::ops::Deref for ResolvedRecipe {
    type Target = Recipe;
    fn deref(&self) -> &Recipe {
        &self.0
    }
}

/// One `path=value` override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// Dotted path, list items by index: `training.optimizer.lr`, `audit.attacks.0.epochs`.
    pub path: String,
    /// The value, parsed as YAML (`3`, `0.1`, `true`, `[1, 2]`, `adam`).
    pub value: String,
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((p, v)) if !p.trim().is_empty() => Ok(Override {
                path: p.trim().to_string(),
                value: v.to_string(),
            }),
            _ => Err(format!(
                "'{s}' is not of the form path=value (e.g. training.epochs=3)"
            )),
        }
    }
}

/// Largest recipe file read (1 MiB): recipes are a page of YAML; anything
/// larger (or endless, like `/dev/zero`) is refused before it is read.
pub const MAX_RECIPE_BYTES: u64 = 1 << 20;

/// Reads a recipe file's text in bounded memory: a regular file (or a pipe
/// or device) of at most [`MAX_RECIPE_BYTES`], valid UTF-8.
pub(super) fn read_recipe_text(path: &Path) -> Result<String, RecipeError> {
    use std::io::Read;
    let err = |reason: String| RecipeError::Read {
        file: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(err("is a folder, not a recipe file".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_RECIPE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_RECIPE_BYTES {
        return Err(err(format!(
            "longer than the limit of {MAX_RECIPE_BYTES} bytes; a recipe is a page of YAML"
        )));
    }
    String::from_utf8(bytes).map_err(|e| err(format!("not UTF-8 text: {e}")))
}

/// The folder a recipe's relative paths are relative to, made absolute so
/// they mean the same file from any working directory (and when a run
/// folder's `recipe.resolved.yaml` is read back).
pub(super) fn recipe_dir(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Reads and checks a recipe file.
pub fn from_path(path: &Path, overrides: &[Override]) -> Result<LoadedRecipe, RecipeError> {
    let text = read_recipe_text(path)?;
    let mut loaded = from_str(&text, &path.display().to_string(), overrides)?;
    resolve_paths(&mut loaded.recipe.0, &recipe_dir(path));
    let problems = file_problems(&loaded.recipe);
    if !problems.is_empty() {
        return Err(RecipeError::Invalid {
            file: loaded.source,
            problems: at_most(problems),
        });
    }
    Ok(loaded)
}

/// Problems that only the data files tell (paths resolved), read in bounded
/// work: see [`super::validate::file_facts`]. `recipe check` thereby refuses
/// what `run` would refuse once it read the data.
pub(super) fn file_problems(recipe: &Recipe) -> Vec<String> {
    let (facts, read) = super::validate::file_facts(recipe);
    problems_given(recipe, &facts, read)
}

/// [`file_problems`] with the data's facts already read (`read`: the
/// problems met reading them).
pub(super) fn problems_given(
    recipe: &Recipe,
    facts: &super::validate::DataFacts,
    read: Vec<(String, String)>,
) -> Vec<String> {
    let mut p = read;
    p.extend(super::validate::data_problems(recipe, facts));
    let mut lines: Vec<String> = p
        .into_iter()
        .map(|(path, m)| format!("{path}: {m}"))
        .collect();
    lines.dedup();
    lines
}

/// Parses and checks recipe text; `source` names it in messages.
pub fn from_str(
    text: &str,
    source: &str,
    overrides: &[Override],
) -> Result<LoadedRecipe, RecipeError> {
    let mut value: Value = serde_norway::from_str(text).map_err(|e| RecipeError::Parse {
        file: source.to_string(),
        message: bounded_line(&e.to_string()),
    })?;
    for o in overrides {
        apply_override(&mut value, o).map_err(|message| RecipeError::Override {
            file: source.to_string(),
            path: o.path.clone(),
            message,
        })?;
    }
    // The shape first, against the recipe's schema: every problem with its
    // field path, what was found and what is allowed (see `typecheck`).
    let shape = super::typecheck::problems(&value);
    if !shape.is_empty() {
        let suffix = match overrides.is_empty() {
            true => "",
            false => " (in the recipe with --set overrides applied)",
        };
        return Err(RecipeError::Invalid {
            file: source.to_string(),
            problems: at_most(shape.into_iter().map(|p| format!("{p}{suffix}")).collect()),
        });
    }
    // Typed from text, not from the value, so messages carry the field path,
    // line and column; with overrides, of the text they produce.
    let typed = if overrides.is_empty() {
        serde_norway::from_str::<Recipe>(text)
    } else {
        let resolved = serde_norway::to_string(&value).map_err(|e| RecipeError::Parse {
            file: source.to_string(),
            message: e.to_string(),
        })?;
        serde_norway::from_str::<Recipe>(&resolved)
    };
    let recipe = typed.map_err(|e| RecipeError::Parse {
        file: source.to_string(),
        message: bounded_line(&if overrides.is_empty() {
            e.to_string()
        } else {
            format!("{e} (in the recipe with --set overrides applied)")
        }),
    })?;
    let problems = super::validate::problems(&recipe);
    if !problems.is_empty() {
        return Err(RecipeError::Invalid {
            file: source.to_string(),
            problems: at_most(problems),
        });
    }
    Ok(LoadedRecipe {
        recipe: ResolvedRecipe(recipe),
        source: source.to_string(),
    })
}

/// The most problems a message lists.
const LISTED: usize = 20;

/// The most characters of one problem a message shows.
const LINE: usize = 400;

/// The first [`LISTED`] problems, each cut to [`LINE`] characters, and how
/// many more there are, so a hostile recipe cannot make the message as
/// large as itself (whichever check found them: the schema's, the
/// validation's or the data files').
fn at_most(mut problems: Vec<String>) -> Vec<String> {
    if problems.len() > LISTED {
        let more = problems.len() - LISTED;
        problems.truncate(LISTED);
        problems.push(format!("... and {more} more problems"));
    }
    problems.iter().map(|p| bounded_line(p)).collect()
}

/// `s` cut to [`LINE`] characters, saying how long it was.
fn bounded_line(s: &str) -> String {
    super::typecheck::cut(s, LINE)
}

/// Sets `o.path` in a YAML tree, creating mappings for absent keys (the
/// typed pass then rejects keys that do not exist in the schema).
pub fn apply_override(root: &mut Value, o: &Override) -> Result<(), String> {
    let new: Value = serde_norway::from_str(&o.value)
        .map_err(|e| format!("value '{}' is not valid YAML: {e}", o.value))?;
    let parts: Vec<&str> = o.path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("empty path segment".into());
    }
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if cur.is_null() {
            *cur = Value::Mapping(Default::default());
        }
        cur = match cur {
            Value::Mapping(m) => {
                let key = Value::String(part.to_string());
                if last {
                    m.insert(key, new);
                    return Ok(());
                }
                m.entry(key).or_insert(Value::Null)
            }
            Value::Sequence(seq) => {
                let idx: usize = part.parse().map_err(|_| {
                    format!("'{part}' must be a list index (0..{}) here", seq.len())
                })?;
                let len = seq.len();
                let slot = seq.get_mut(idx).ok_or_else(|| {
                    format!("index {idx} is out of range: the list has {len} items")
                })?;
                if last {
                    *slot = new;
                    return Ok(());
                }
                slot
            }
            other => {
                return Err(format!(
                    "'{}' is a value ({}), not a section",
                    parts[..i].join("."),
                    serde_norway::to_string(other).unwrap_or_default().trim()
                ));
            }
        };
    }
    Ok(())
}

fn resolve(dir: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = dir.join(&*p);
    }
}

/// Makes relative data and weights paths relative to the recipe's folder
/// (the victims' data, the attacker's own dataset, the weights).
pub(super) fn resolve_paths(recipe: &mut Recipe, dir: &Path) {
    if let Some(w) = &mut recipe.model.weights {
        resolve(dir, &mut w.path);
    }
    resolve_source(&mut recipe.data.source, dir);
    if let super::AttackerData::Dataset { source, .. } = &mut recipe.audit.attacker_data {
        resolve_source(source, dir);
    }
}

fn resolve_source(source: &mut super::DataSource, dir: &Path) {
    use super::DataSource::*;
    match source {
        EmbeddedMnist => {}
        Idx { images, labels, .. } => {
            resolve(dir, images);
            resolve(dir, labels);
        }
        Orl { dir: d, .. } | Cifar10 { dir: d, .. } | Cifar100 { dir: d, .. } => resolve(dir, d),
        Folder { dir: d, labels } => {
            resolve(dir, d);
            resolve(dir, labels);
        }
    }
}
