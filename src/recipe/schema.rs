//! `splitguard recipe schema`: every recipe field with its type, default and
//! meaning, derived from the recipe types themselves (issue 8, item 5).
//!
//! One source: the recipe structs derive `schemars::JsonSchema`, which reads
//! their serde attributes (names, tags, defaults) and their `///` doc
//! comments, so the schema cannot drift from what the parser accepts. This
//! module walks that JSON Schema into one line per field. Fields of tagged
//! sections are listed per variant: `training.optimizer[kind=sgd].momentum`.
//!
//! The `model:` section is documented through [`ModelSchema`], a mirror of
//! [`super::ModelConfig`] whose block types live in `model/`; a test checks
//! that every field a parsed recipe has is in the schema, so a new field
//! there fails a test rather than going undocumented.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::Recipe;

/// The `model:` section as the schema documents it (see the module docs).
#[derive(schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ModelSchema {
    /// Zoo architecture (`cnn6`, `vgg11-mnist`, `lenet`; see `splitguard
    /// model summary --arch NAME`), or a label for `blocks`.
    arch: String,
    /// The network as a list of blocks (conv, linear, ...), instead of a zoo
    /// architecture.
    #[serde(default)]
    blocks: Option<Vec<Json>>,
    /// Shape of one input `[C, H, W]`; optional, must match the data when given.
    #[serde(default)]
    input: Option<[usize; 3]>,
    /// A pretrained model's weights (PyTorch `state_dict` or safetensors,
    /// PyTorch layout): `path`, `format`, `key_map`, `top_level_key`,
    /// `allow_extra` (see the README, "Bring your own model").
    #[serde(default)]
    weights: Option<crate::model::WeightsConfig>,
}

/// One recipe field.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDoc {
    /// Dotted path as `--set` and `sweep:` take it; fields of a tagged
    /// variant carry `[kind=NAME]` after the section.
    pub path: String,
    /// Type in words (`integer`, `number`, `string`, `list of integer`,
    /// `all | list of integer`, `section`, ...).
    pub ty: String,
    /// The default, as compact JSON/YAML (`None`: required, or absent when
    /// not given).
    pub default: Option<String>,
    /// Whether the recipe must give it.
    pub required: bool,
    /// Its meaning (the field's doc comment).
    pub description: String,
}

/// The JSON Schema of a recipe (draft 2020-12), for editors and validators.
pub fn json_schema() -> Json {
    schemars::schema_for!(Recipe).to_value()
}

/// Every field of a recipe, depth first, sections before their fields.
pub fn fields() -> Vec<FieldDoc> {
    let root = json_schema();
    let defs = root.get("$defs").cloned().unwrap_or(Json::Null);
    let mut out = Vec::new();
    walk(&root, &defs, "", &mut out, 0);
    out
}

/// The fields as text: `path  type  default` and the meaning indented below.
pub fn render_text(fields: &[FieldDoc]) -> String {
    let mut s = String::from(
        "Recipe fields (YAML). Paths are what --set and sweep: take; [kind=X] marks the fields of one variant of a tagged section.\n\n",
    );
    for f in fields {
        let default = match (&f.default, f.required) {
            (_, true) => "required".to_string(),
            // A section's default is its fields' defaults, listed below it.
            (Some(d), false) if f.ty == "section" && d.starts_with('{') => {
                "default: each field's default".to_string()
            }
            (Some(d), false) => format!("default {d}"),
            (None, false) => "optional".to_string(),
        };
        let _ = writeln!(s, "{}  ({}; {default})", f.path, f.ty);
        if !f.description.is_empty() {
            let _ = writeln!(s, "    {}", f.description);
        }
    }
    s
}

/// Follows `$ref`s into `$defs`.
fn resolve<'a>(s: &'a Json, defs: &'a Json) -> &'a Json {
    match s
        .get("$ref")
        .and_then(Json::as_str)
        .and_then(|r| defs.get(r.rsplit('/').next().unwrap_or(r)))
    {
        Some(target) => resolve(target, defs),
        None => s,
    }
}

fn is_null(s: &Json) -> bool {
    s.get("type").and_then(Json::as_str) == Some("null") || s.get("const") == Some(&Json::Null)
}

/// The alternatives a value may take (`anyOf`/`oneOf` flattened, `null` of
/// an `Option` dropped, references followed).
fn alternatives<'a>(s: &'a Json, defs: &'a Json) -> Vec<&'a Json> {
    let s = resolve(s, defs);
    for key in ["anyOf", "oneOf"] {
        if let Some(list) = s.get(key).and_then(Json::as_array) {
            return list
                .iter()
                .filter(|x| !is_null(x))
                .flat_map(|x| alternatives(x, defs))
                .collect();
        }
    }
    match s.get("allOf").and_then(Json::as_array).map(Vec::as_slice) {
        Some([one]) => alternatives(one, defs),
        _ => vec![s],
    }
}

/// The `kind` a tagged variant's schema fixes, if any.
fn tag(s: &Json) -> Option<String> {
    let k = s.get("properties")?.get("kind")?;
    k.get("const")
        .or_else(|| k.get("enum").and_then(|e| e.get(0)))
        .and_then(Json::as_str)
        .map(String::from)
}

fn compact(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value's type in words.
fn type_name(s: &Json, defs: &Json) -> String {
    let mut names: Vec<String> = Vec::new();
    for a in alternatives(s, defs) {
        let n = one_type(a, defs);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    match names.is_empty() {
        true => "any".into(),
        false => names.join(" | "),
    }
}

fn one_type(a: &Json, defs: &Json) -> String {
    if let Some(c) = a.get("const") {
        return compact(c);
    }
    if let Some(e) = a.get("enum").and_then(Json::as_array) {
        return e.iter().map(compact).collect::<Vec<_>>().join(" | ");
    }
    if let Some(t) = tag(a) {
        return format!("{{kind: {t}, ...}}");
    }
    let ty = match a.get("type") {
        Some(Json::String(t)) => t.clone(),
        Some(Json::Array(ts)) => ts
            .iter()
            .filter_map(Json::as_str)
            .find(|t| *t != "null")
            .unwrap_or("any")
            .to_string(),
        _ => {
            return if a.get("properties").is_some() {
                "section".into()
            } else {
                "any".into()
            };
        }
    };
    match ty.as_str() {
        "integer" => match a.get("minimum").and_then(Json::as_f64) {
            Some(m) if m >= 0.0 => "integer >= 0".into(),
            _ => "integer".into(),
        },
        "array" => {
            if let Some(items) = a.get("prefixItems").and_then(Json::as_array) {
                let first = items.first().map_or("any".into(), |i| type_name(i, defs));
                format!("list of {} {first}", items.len())
            } else if let Some(items) = a.get("items") {
                format!("list of {}", type_name(items, defs))
            } else {
                "list".into()
            }
        }
        "object" if a.get("properties").is_some() => "section".into(),
        "object" => match a.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map of {}", type_name(v, defs)),
            _ => "map".into(),
        },
        _ => ty,
    }
}

/// Words of a doc comment on one line (paragraphs joined).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn walk(s: &Json, defs: &Json, path: &str, out: &mut Vec<FieldDoc>, depth: usize) {
    if depth > 12 {
        return;
    }
    let alts = alternatives(s, defs);
    let tagged = alts.len() > 1;
    for alt in alts {
        // A list's items are documented under the list's own path
        // (`audit.attacks[kind=decoder].epochs`; `--set` takes an index:
        // `audit.attacks.0.epochs`).
        if let Some(items) = alt.get("items").filter(|i| i.is_object()) {
            walk(items, defs, path, out, depth + 1);
            continue;
        }
        let Some(props) = alt.get("properties").and_then(Json::as_object) else {
            continue;
        };
        let kind = tag(alt);
        let prefix = match (&kind, tagged || kind.is_some()) {
            (Some(k), true) => format!("{path}[kind={k}]"),
            _ => path.to_string(),
        };
        let required: Vec<&str> = alt
            .get("required")
            .and_then(Json::as_array)
            .map(|r| r.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        for (name, prop) in props {
            if kind.is_some() && name == "kind" {
                continue;
            }
            let field = match prefix.is_empty() {
                true => name.clone(),
                false => format!("{prefix}.{name}"),
            };
            let description = prop
                .get("description")
                .or_else(|| resolve(prop, defs).get("description"))
                .and_then(Json::as_str)
                .map(one_line)
                .unwrap_or_default();
            out.push(FieldDoc {
                path: field.clone(),
                ty: type_name(prop, defs),
                default: prop.get("default").map(compact),
                required: required.contains(&name.as_str()),
                description,
            });
            walk(prop, defs, &field, out, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_norway::Value as Yaml;

    fn find<'a>(fields: &'a [FieldDoc], path: &str) -> &'a FieldDoc {
        fields
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} not in the schema"))
    }

    #[test]
    fn schema_lists_known_fields_with_type_default_and_meaning() {
        let fields = fields();
        let epochs = find(&fields, "training.epochs");
        assert_eq!(epochs.ty, "integer >= 0");
        assert_eq!(
            epochs.default.as_deref(),
            Some(
                crate::train::TrainConfig::<()>::default()
                    .epochs
                    .to_string()
                    .as_str()
            )
        );
        assert!(!epochs.required);
        assert!(!epochs.description.is_empty());
        let name = find(&fields, "name");
        assert!(name.required && name.ty == "string");
        assert!(name.description.contains("output folder"));
        assert_eq!(find(&fields, "seed").default.as_deref(), Some("42"));
        assert_eq!(
            find(&fields, "data.fractions").default.as_deref(),
            Some("[0.6,0.2,0.2]")
        );
        // Tagged variants: each variant's own fields.
        find(&fields, "training.optimizer[kind=sgd].momentum");
        find(&fields, "audit.attacks[kind=decoder].epochs");
        find(&fields, "training.defenses.lipschitz.weight");
        find(&fields, "model.arch");
        find(&fields, "data.source[kind=cifar10].dir");
        assert_eq!(
            find(&fields, "data.source[kind=cifar100].labels")
                .default
                .as_deref(),
            Some("fine")
        );
        let split = find(&fields, "split");
        assert!(
            split.ty.contains("integer") && split.ty.contains("auto"),
            "{}",
            split.ty
        );
        let text = render_text(&fields);
        assert!(text.contains("training.epochs  (integer >= 0; default "));
    }

    /// Every leaf of `v` as a dotted path (list items are not descended).
    fn leaves(v: &Yaml, path: &str, out: &mut Vec<(String, Yaml)>) {
        match v {
            Yaml::Mapping(m) if !m.is_empty() => {
                // A tagged section's fields are listed per variant.
                let path = match m.get("kind").and_then(Yaml::as_str) {
                    Some(kind) => format!("{path}[kind={kind}]"),
                    None => path.to_string(),
                };
                for (k, v) in m {
                    let k = k.as_str().unwrap_or_default();
                    if k == "kind" && !path.is_empty() {
                        continue;
                    }
                    let p = if path.is_empty() {
                        k.to_string()
                    } else {
                        format!("{path}.{k}")
                    };
                    out.push((p.clone(), v.clone()));
                    leaves(v, &p, out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_field_of_a_parsed_recipe_is_in_the_schema_with_its_default() {
        // A minimal recipe with every optional section present, so their
        // defaults are filled in by the parser.
        let text = "
name: s
model: {arch: cnn6}
partition: {}
training: {defenses: {lipschitz: {weight: 0.1}, adversarial: {weight: 1.0}, decov: {weight: 0.1}, signal_dropout: {rate: 0.1}, label_smoothing: {strength: 0.1}}}
audit: {}
obfuscation: {}
";
        let r = super::super::from_str(text, "t.yaml", &[]).unwrap().recipe;
        let y: Yaml = serde_norway::to_value(&r).unwrap();
        let fields = fields();
        let mut all = Vec::new();
        leaves(&y, "", &mut all);
        assert!(all.len() > 30);
        for (path, value) in all {
            let f = fields
                .iter()
                .find(|f| f.path == path)
                .unwrap_or_else(|| panic!("{path} is in a parsed recipe but not in the schema"));
            // Where the schema states a default and the recipe text did not
            // set the field, the parsed value is that default.
            let set_in_text = [
                "lipschitz.weight",
                "adversarial.weight",
                "decov.weight",
                "signal_dropout.rate",
                "label_smoothing.strength",
                "arch",
                "name",
            ]
            .iter()
            .any(|s| path.ends_with(s));
            // Sections are checked field by field (some are set in the text).
            if let (Some(d), false, false) = (&f.default, set_in_text, value.is_mapping()) {
                let parsed: Json = serde_json::to_value(&value).unwrap();
                let default: Json = serde_json::from_str(d).unwrap_or(Json::String(d.clone()));
                let close = match (parsed.as_f64(), default.as_f64()) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    _ => parsed == default,
                };
                assert!(close, "{path}: parsed {parsed}, schema default {default}");
            }
        }
    }

    #[test]
    fn every_schema_default_deserialises_when_set() {
        // Setting a field to its documented default through --set keeps the
        // recipe valid (paths outside tagged variants, parents present).
        let base = "name: s\nmodel: {arch: cnn6}\n";
        let mut checked = 0;
        for f in fields() {
            let Some(d) = &f.default else { continue };
            if f.path.contains('[')
                || f.path.contains('.')
                    && !f.path.starts_with("training.")
                    && !f.path.starts_with("data.")
                    && !f.path.starts_with("audit.")
            {
                continue;
            }
            if f.path.starts_with("training.defenses.") && f.path.matches('.').count() > 2 {
                continue;
            }
            let o = crate::recipe::Override {
                path: f.path.clone(),
                value: d.clone(),
            };
            let r = super::super::from_str(base, "t.yaml", std::slice::from_ref(&o));
            assert!(r.is_ok(), "--set {}={d}: {}", f.path, r.unwrap_err());
            checked += 1;
        }
        assert!(checked > 10, "{checked}");
    }
}
