//! The shape of a recipe's YAML, checked against the recipe's own JSON
//! Schema before serde types it, so that every structural error names its
//! field path, what was found and what is allowed (issue 13, item 6).
//!
//! Why a second pass instead of serde's messages: serde buffers internally
//! tagged (`kind: ...`) and untagged enums before choosing a variant, and
//! the buffered value has lost its place in the file. Its messages then stop
//! at the enclosing section (`training: invalid type: string "fast"`) or say
//! nothing useful at all (`data did not match any variant of untagged enum
//! SplitSetting`), and a unit variant of a tagged enum (`{kind: aux, foo: 1}`)
//! silently ignores extra fields even with `deny_unknown_fields`. The JSON
//! Schema that `recipe schema` prints is derived from the same types (see
//! [`super::schema`]), so walking the YAML tree along it gives exact paths
//! (`training.optimizer.lr: expected a number, got 'fast'`) with the allowed
//! fields, kinds and values, and refuses unknown fields in every section,
//! unit variants included. serde still types the tree afterwards; its
//! messages remain the fallback for what the schema does not describe.
//!
//! `model.blocks` is described by the `model` module's own types, not by the
//! schema: each block is typed by serde alone and its message is prefixed
//! with `model.blocks[i]`.

use std::sync::OnceLock;

use serde_json::Value as Json;
use serde_norway::Value;

/// The recipe's JSON Schema, built once.
fn root_schema() -> &'static Json {
    static SCHEMA: OnceLock<Json> = OnceLock::new();
    SCHEMA.get_or_init(super::schema::json_schema)
}

/// Every structural problem of a recipe's YAML tree (the `sweep:` key
/// removed), as `path: message` lines; empty when serde can type it.
pub fn problems(value: &Value) -> Vec<String> {
    let root = root_schema();
    static NULL: Json = Json::Null;
    let defs = root.get("$defs").unwrap_or(&NULL);
    let mut out = Vec::new();
    Walker { defs }.check(value, root, "", &mut out);
    out
}

struct Walker<'a> {
    defs: &'a Json,
}

/// `path.field` (or `field` at the top level).
fn join(path: &str, field: &str) -> String {
    match path.is_empty() {
        true => field.to_string(),
        false => format!("{path}.{field}"),
    }
}

/// `path` for messages (`the recipe` at the top level).
fn at(path: &str) -> String {
    match path.is_empty() {
        true => "(top level)".into(),
        false => bounded(path),
    }
}

/// The most characters of a value or path a message shows.
const SHOWN: usize = 80;

/// A value or path as a message shows it (see [`cut`]).
fn bounded(s: &str) -> String {
    cut(s, SHOWN)
}

/// `s` whole up to `max` characters (`max >= 20`), else its start and how
/// long it is, so a hostile recipe cannot make a message as large as itself.
pub(super) fn cut(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let start: String = s.chars().take(max - 20).collect();
    format!("{start}... ({n} characters)")
}

/// A YAML value in a message: text quoted, numbers as written, lists and
/// sections by kind.
pub(super) fn found(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => bounded(&n.to_string()),
        Value::String(s) => format!("'{}'", bounded(s)),
        Value::Sequence(s) => format!("a list of {} items", s.len()),
        Value::Mapping(_) => "a section (key: value pairs)".into(),
        Value::Tagged(t) => format!("a YAML tag {}", bounded(&t.tag.to_string())),
    }
}

fn compact(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn types_of(s: &Json) -> Vec<&str> {
    match s.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The `kind` a tagged variant's schema fixes.
fn tag(s: &Json) -> Option<&str> {
    s.get("properties")?.get("kind")?.get("const")?.as_str()
}

impl<'a> Walker<'a> {
    /// Follows `$ref`s into `$defs`.
    fn resolve(&self, s: &'a Json) -> &'a Json {
        let mut s = s;
        for _ in 0..32 {
            match s
                .get("$ref")
                .and_then(Json::as_str)
                .and_then(|r| self.defs.get(r.rsplit('/').next().unwrap_or(r)))
            {
                Some(t) => s = t,
                None => break,
            }
        }
        s
    }

    /// The alternatives of an `anyOf`/`oneOf` (nested ones flattened,
    /// references followed), or the schema itself.
    fn alternatives(&self, s: &'a Json) -> Vec<&'a Json> {
        let s = self.resolve(s);
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = s.get(key).and_then(Json::as_array) {
                return list.iter().flat_map(|x| self.alternatives(x)).collect();
            }
        }
        vec![s]
    }

    /// What a schema allows, in words.
    fn describe(&self, s: &'a Json) -> String {
        let mut alts = self.alternatives(s);
        if alts.len() > 1 {
            alts.retain(|a| types_of(a) != ["null"]);
        }
        if alts.len() > 1 {
            let kinds: Vec<&str> = alts.iter().filter_map(|a| tag(a)).collect();
            if !kinds.is_empty() && kinds.len() == alts.len() {
                return format!(
                    "a section {{kind: ...}} with kind one of {}",
                    kinds.join(", ")
                );
            }
            return alts
                .iter()
                .map(|a| self.describe_one(a))
                .collect::<Vec<_>>()
                .join(", or ");
        }
        self.describe_one(alts[0])
    }

    fn describe_one(&self, s: &'a Json) -> String {
        if let Some(c) = s.get("const") {
            return compact(c);
        }
        if let Some(e) = s.get("enum").and_then(Json::as_array) {
            if let [one] = &e[..] {
                return compact(one);
            }
            return format!(
                "one of {}",
                e.iter().map(compact).collect::<Vec<_>>().join(", ")
            );
        }
        let ty: Vec<&str> = types_of(s).into_iter().filter(|t| *t != "null").collect();
        match ty.first().copied() {
            Some("integer") => {
                let min = s.get("minimum").and_then(Json::as_f64);
                let max = s.get("maximum").and_then(Json::as_f64);
                match (min, max) {
                    (Some(a), Some(b)) => format!("an integer in {a}..={b}"),
                    (Some(a), None) => format!("an integer >= {a}"),
                    _ => "an integer".into(),
                }
            }
            Some("number") => "a number".into(),
            Some("string") => "a text".into(),
            Some("boolean") => "true or false".into(),
            Some("array") => {
                let n = match (
                    s.get("minItems").and_then(Json::as_u64),
                    s.get("maxItems").and_then(Json::as_u64),
                ) {
                    (Some(a), Some(b)) if a == b => format!("{a} "),
                    _ => String::new(),
                };
                match s.get("items").filter(|i| i.is_object()) {
                    Some(items) => format!("a list of {n}({})", self.describe(items)),
                    None => format!("a list of {n}items"),
                }
            }
            Some("object") | None if s.get("properties").is_some() => {
                let fields: Vec<&str> = s
                    .get("properties")
                    .and_then(Json::as_object)
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                format!("a section with fields {}", fields.join(", "))
            }
            Some("object") => "a section (key: value pairs)".into(),
            Some(other) => other.to_string(),
            None => "any value".into(),
        }
    }

    fn check(&self, v: &Value, s: &'a Json, path: &str, out: &mut Vec<String>) {
        // YAML tags (`!x`) are left to serde (recipes do not use them).
        if matches!(v, Value::Tagged(_)) {
            return;
        }
        let alts = self.alternatives(s);
        if alts.len() > 1 {
            return self.check_alternatives(v, s, &alts, path, out);
        }
        let s = alts[0];
        if s.as_bool() == Some(true) || s.as_object().is_some_and(|o| o.is_empty()) {
            return;
        }
        if let Some(c) = s.get("const") {
            if !matches_const(v, c) {
                out.push(format!(
                    "{}: expected {}, got {}",
                    at(path),
                    compact(c),
                    found(v)
                ));
            }
            return;
        }
        if let Some(e) = s.get("enum").and_then(Json::as_array) {
            if !e.iter().any(|c| matches_const(v, c)) {
                out.push(format!(
                    "{}: unknown {}; allowed: {}",
                    at(path),
                    found(v),
                    e.iter().map(compact).collect::<Vec<_>>().join(", ")
                ));
            }
            return;
        }
        let types = types_of(s);
        if v.is_null() && types.contains(&"null") {
            return;
        }
        let ok = types.is_empty()
            || types.iter().any(|t| match *t {
                "integer" => v.is_u64() || v.is_i64(),
                "number" => v.is_number(),
                // serde_norway reads any scalar as text.
                "string" => v.is_string() || v.is_number() || v.is_bool(),
                "boolean" => v.is_bool(),
                "array" => v.is_sequence(),
                "object" => v.is_mapping(),
                _ => false,
            });
        if !ok {
            out.push(format!(
                "{}: expected {}, got {}",
                at(path),
                self.describe_one(s),
                found(v)
            ));
            return;
        }
        match v {
            Value::Number(n) if types.contains(&"integer") => {
                let x = n.as_f64().unwrap_or(0.0);
                let below = s
                    .get("minimum")
                    .and_then(Json::as_f64)
                    .is_some_and(|m| x < m);
                let above = s
                    .get("maximum")
                    .and_then(Json::as_f64)
                    .is_some_and(|m| x > m);
                if below || above {
                    out.push(format!(
                        "{}: expected {}, got {}",
                        at(path),
                        self.describe_one(s),
                        bounded(&n.to_string())
                    ));
                }
            }
            Value::Sequence(items) => self.check_list(items, s, path, out),
            Value::Mapping(m) => self.check_section(m, s, path, None, out),
            _ => {}
        }
    }

    fn check_list(&self, items: &[Value], s: &'a Json, path: &str, out: &mut Vec<String>) {
        let min = s.get("minItems").and_then(Json::as_u64);
        let max = s.get("maxItems").and_then(Json::as_u64);
        let n = items.len() as u64;
        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
            out.push(format!(
                "{}: expected {}, got {} items",
                at(path),
                self.describe_one(s),
                n
            ));
            return;
        }
        let Some(item_schema) = s.get("items") else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if path == "model.blocks" {
                // Blocks are typed by the model module's serde types.
                if let Err(e) = serde_norway::from_value::<crate::model::BlockSpec>(item.clone()) {
                    out.push(format!("{p}: {e}"));
                }
                continue;
            }
            self.check(item, item_schema, &p, out);
        }
    }

    /// A section: known fields, every required one present, each checked.
    /// `kind` names the tagged variant this section is, for messages.
    fn check_section(
        &self,
        m: &serde_norway::Mapping,
        s: &'a Json,
        path: &str,
        kind: Option<&str>,
        out: &mut Vec<String>,
    ) {
        let props = s.get("properties").and_then(Json::as_object);
        let prop = |k: &str| props.and_then(|p| p.get(k));
        let extra = s.get("additionalProperties");
        let for_kind = kind.map(|k| format!(" for kind '{k}'")).unwrap_or_default();
        let allowed = || {
            props
                .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        for (k, val) in m {
            let Some(key) = k.as_str() else {
                out.push(format!(
                    "{}: a field name must be text, got {}",
                    at(path),
                    found(k)
                ));
                continue;
            };
            let p = join(path, key);
            match (prop(key), extra) {
                (Some(prop), _) => self.check(val, prop, &p, out),
                (None, Some(Json::Bool(false))) => out.push(format!(
                    "{}: unknown field{for_kind}; allowed: {}",
                    at(&p),
                    allowed()
                )),
                (None, Some(map_values)) if map_values.is_object() => {
                    self.check(val, map_values, &p, out)
                }
                (None, _) => {}
            }
        }
        for req in s
            .get("required")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
        {
            if !m.contains_key(req) {
                let what = prop(req)
                    .map(|p| {
                        let d = p
                            .get("description")
                            .and_then(Json::as_str)
                            .map(|d| {
                                format!(" ({})", d.split_whitespace().collect::<Vec<_>>().join(" "))
                            })
                            .unwrap_or_default();
                        format!("{}{d}", self.describe(p))
                    })
                    .unwrap_or_default();
                out.push(format!(
                    "{}: missing; required{for_kind}: {what}",
                    join(path, req)
                ));
            }
        }
    }

    fn check_alternatives(
        &self,
        v: &Value,
        s: &'a Json,
        alts: &[&'a Json],
        path: &str,
        out: &mut Vec<String>,
    ) {
        let nullable = alts.iter().any(|a| types_of(a) == ["null"]);
        if v.is_null() && nullable {
            return;
        }
        let alts: Vec<&Json> = alts
            .iter()
            .copied()
            .filter(|a| types_of(a) != ["null"])
            .collect();
        let kinds: Vec<&str> = alts.iter().filter_map(|a| tag(a)).collect();
        if !kinds.is_empty() && kinds.len() == alts.len() {
            return self.check_tagged(v, &alts, &kinds, path, out);
        }
        if alts.len() == 1 {
            return self.check(v, alts[0], path, out);
        }
        // A plain enum whose variants are documented: one const each.
        let words: Option<Vec<String>> = alts
            .iter()
            .map(
                |a| match (a.get("const"), a.get("enum").and_then(Json::as_array)) {
                    (Some(c), _) => Some(vec![compact(c)]),
                    (None, Some(e)) => Some(e.iter().map(compact).collect()),
                    _ => None,
                },
            )
            .collect::<Option<Vec<_>>>()
            .map(|w| w.concat());
        if let Some(words) = words {
            if !words.iter().any(|w| v.as_str() == Some(w.as_str())) {
                out.push(format!(
                    "{}: unknown {}; allowed: {}",
                    at(path),
                    found(v),
                    words.join(", ")
                ));
            }
            return;
        }
        // Untagged: the value fits one of the alternatives.
        let mut fitting = Vec::new();
        for a in &alts {
            let mut p = Vec::new();
            self.check(v, a, path, &mut p);
            if p.is_empty() {
                return;
            }
            fitting.push((a, p));
        }
        // When exactly one alternative has the value's form (a list, a
        // section), its own problems are the precise ones.
        let same_form: Vec<_> = fitting
            .into_iter()
            .filter(|(a, _)| {
                let t = types_of(a);
                (v.is_sequence() && t.contains(&"array"))
                    || (v.is_mapping() && (t.contains(&"object") || a.get("properties").is_some()))
            })
            .collect();
        if let [(_, problems)] = &same_form[..] {
            out.extend(problems.iter().cloned());
            return;
        }
        out.push(format!(
            "{}: expected {}, got {}",
            at(path),
            self.describe(s),
            found(v)
        ));
    }

    fn check_tagged(
        &self,
        v: &Value,
        alts: &[&'a Json],
        kinds: &[&str],
        path: &str,
        out: &mut Vec<String>,
    ) {
        let allowed = kinds.join(", ");
        let Value::Mapping(m) = v else {
            out.push(format!(
                "{}: expected a section {{kind: ...}} with kind one of {allowed}, got {}",
                at(path),
                found(v)
            ));
            return;
        };
        let Some(kind) = m.get("kind") else {
            out.push(format!(
                "{}: missing; required: one of {allowed}",
                join(path, "kind")
            ));
            return;
        };
        let chosen = kind
            .as_str()
            .and_then(|k| kinds.iter().position(|x| *x == k));
        match chosen {
            Some(i) => self.check_section(m, alts[i], path, Some(kinds[i]), out),
            None => out.push(format!(
                "{}: unknown kind {}; allowed: {allowed}",
                join(path, "kind"),
                found(kind)
            )),
        }
    }
}

fn matches_const(v: &Value, c: &Json) -> bool {
    match (v, c) {
        (Value::String(a), Json::String(b)) => a == b,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Number(a), Json::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Null, Json::Null) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::problems;

    fn problems_of(text: &str) -> Vec<String> {
        problems(&serde_norway::from_str(text).unwrap())
    }

    fn one(text: &str) -> String {
        let p = problems_of(text);
        assert_eq!(p.len(), 1, "{p:?}");
        p[0].clone()
    }

    const BASE: &str = "name: t\nmodel: {arch: cnn6}\n";

    #[test]
    fn every_recipe_in_the_repository_passes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        // recipes/ and its subfolders (recipes/repro/).
        let mut paths = Vec::new();
        let mut dirs = vec![dir];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|x| x == "yaml") {
                    paths.push(path);
                }
            }
        }
        let mut n = 0;
        for path in paths {
            let mut v: serde_norway::Value =
                serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if let Some(m) = v.as_mapping_mut() {
                m.remove("sweep");
            }
            assert_eq!(problems(&v), Vec::<String>::new(), "{}", path.display());
            n += 1;
        }
        assert!(n >= 18, "{n} recipes");
        assert!(problems_of(BASE).is_empty());
    }

    #[test]
    fn untagged_split_names_the_field_and_both_forms() {
        let m = one(&format!("{BASE}split: automatic\n"));
        assert!(m.starts_with("split: expected"), "{m}");
        assert!(
            m.contains("auto") && m.contains("integer") && m.contains("'automatic'"),
            "{m}"
        );
        assert!(problems_of(&format!("{BASE}split: auto\n")).is_empty());
        assert!(problems_of(&format!("{BASE}split: 3\n")).is_empty());
    }

    #[test]
    fn a_number_field_given_text_names_the_nested_field() {
        let m = one(&format!(
            "{BASE}training: {{optimizer: {{kind: adam, lr: fast}}}}\n"
        ));
        assert_eq!(m, "training.optimizer.lr: expected a number, got 'fast'");
    }

    #[test]
    fn an_unknown_field_of_a_unit_variant_is_refused() {
        let m = one(&format!(
            "{BASE}data: {{source: {{kind: embedded_mnist, foo: 1}}}}\n"
        ));
        assert!(
            m.starts_with("data.source.foo: unknown field for kind 'embedded_mnist'"),
            "{m}"
        );
        assert!(m.contains("allowed: kind"), "{m}");
    }

    #[test]
    fn a_missing_required_field_says_what_it_is() {
        let m = one(&format!(
            "{BASE}data: {{source: {{kind: idx, images: a}}}}\n"
        ));
        assert!(
            m.starts_with("data.source.labels: missing; required for kind 'idx'"),
            "{m}"
        );
        assert!(m.contains("IDX1 labels file"), "{m}");
    }

    #[test]
    fn an_unknown_kind_lists_the_allowed_kinds() {
        let m = one(&format!(
            "{BASE}audit: {{attacks: [{{kind: decoder}}, {{kind: telepathy}}]}}\n"
        ));
        assert!(
            m.starts_with("audit.attacks[1].kind: unknown kind 'telepathy'"),
            "{m}"
        );
        assert!(m.contains("decoder, optimisation, dci, attribute"), "{m}");
    }

    #[test]
    fn a_negative_count_is_refused_with_the_bound() {
        let m = one(&format!("{BASE}training: {{epochs: -3}}\n"));
        assert_eq!(m, "training.epochs: expected an integer >= 0, got -3");
    }

    #[test]
    fn a_wrong_length_tuple_is_refused() {
        let m = one(&format!("{BASE}data: {{fractions: [0.5, 0.5]}}\n"));
        assert!(m.starts_with("data.fractions: expected a list of 3"), "{m}");
    }

    #[test]
    fn a_bad_block_is_named_by_its_index() {
        let p = problems_of(
            "name: t\nmodel: {arch: x, blocks: [{kind: linear, out_features: 10}, {kind: conv, out_channels: 4, bogus: 1}]}\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("model.blocks[1]: ") && p[0].contains("bogus"),
            "{p:?}"
        );
    }

    #[test]
    fn messages_stay_short_whatever_the_recipe_holds() {
        let long = "x".repeat(5000);
        let text = format!(
            "name: t\nmodel: {{arch: cnn6}}\ntraining: {{optimizer: {{kind: adam, lr: '{long}'}}}}\n"
        );
        let m = crate::recipe::from_str(&text, "t.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(m.len() < 300, "{} characters: {m}", m.len());
        assert!(
            m.contains("training.optimizer.lr") && m.contains("(5000 characters)"),
            "{m}"
        );
        // Many unknown fields: the first 20 listed, and a count.
        let fields: String = (0..500).map(|i| format!("  f{i}: 1\n")).collect();
        let text = format!("name: t\nmodel: {{arch: cnn6}}\ntraining:\n{fields}");
        let m = crate::recipe::from_str(&text, "t.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(m.contains("... and 480 more problems"), "{m}");
        assert!(m.lines().count() < 30, "{m}");
        // The validation's own messages are bounded too (a name it repeats).
        let text = format!("name: '{long}!'\nmodel: {{arch: cnn6}}\n");
        let m = crate::recipe::from_str(&text, "t.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("name:") && m.len() < 600,
            "{} characters",
            m.len()
        );
        // A split of 0 is refused by the schema's range.
        let m = crate::recipe::from_str("name: t\nmodel: {arch: cnn6}\nsplit: 0\n", "t.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(m.contains("split: expected an integer >= 1"), "{m}");
    }
}
