//! Validation of a typed recipe: every rule, every problem collected with
//! its YAML path, so a user fixes a recipe in one pass.

use super::{DataSource, Recipe};
use crate::attack::{AttackKind, SplitSelection};
use crate::model::zoo;
use crate::train::OptimizerConfig;

/// Every problem of `r` as `path: message` lines (empty when valid).
pub fn problems(r: &Recipe) -> Vec<String> {
    let mut p: Vec<String> = Vec::new();
    let mut bad = |path: &str, msg: String| p.push(format!("{path}: {msg}"));

    if r.name.is_empty()
        || !r
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || r.name.starts_with('.')
    {
        bad(
            "name",
            format!(
                "must be a non-empty folder name of letters, digits, '-', '_' or '.', got '{}'",
                r.name
            ),
        );
    }

    // data
    let f = r.data.fractions;
    if f.iter().any(|x| !x.is_finite() || *x <= 0.0) {
        bad(
            "data.fractions",
            format!("each of train, aux, test must be > 0, got {f:?}"),
        );
    } else if (f.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
        bad(
            "data.fractions",
            format!("must sum to 1, got {f:?} (sum {})", f.iter().sum::<f64>()),
        );
    }
    if let Some(l) = r.data.limit
        && l < 30
    {
        bad("data.limit", format!("must be >= 30 images, got {l}"));
    }
    if let DataSource::Orl {
        downscale: Some(d), ..
    } = &r.data.source
        && !(1..=8).contains(d)
    {
        bad(
            "data.source.downscale",
            format!("must be in 1..=8, got {d}"),
        );
    }

    // model
    let spec = match &r.model.blocks {
        Some(blocks) => {
            if blocks.is_empty() {
                bad(
                    "model.blocks",
                    "must list at least two blocks, got none".into(),
                );
            }
            None
        }
        None => match zoo::spec(&r.model.arch) {
            Ok(s) => Some(s),
            Err(_) => {
                bad(
                    "model.arch",
                    format!(
                        "unknown architecture '{}': allowed {} (or give model.blocks)",
                        r.model.arch,
                        zoo::NAMES.join(", ")
                    ),
                );
                None
            }
        },
    };
    let blocks = spec
        .as_ref()
        .map(|s| s.blocks.len())
        .or(r.model.blocks.as_ref().map(|b| b.len()));
    let split_ok = |k: usize| blocks.is_none_or(|n| (1..n).contains(&k));
    let split_range = blocks
        .map(|n| format!("1..={}", n.saturating_sub(1)))
        .unwrap_or_else(|| "1..blocks".into());
    if let Some(k) = r.split
        && !split_ok(k)
    {
        bad(
            "split",
            format!("must be a split point in {split_range}, got {k}"),
        );
    }

    // training
    let t = &r.training;
    if t.epochs == 0 {
        bad("training.epochs", "must be >= 1, got 0".into());
    }
    if t.batch_size < 2 {
        bad(
            "training.batch_size",
            format!(
                "must be >= 2 (batch-norm needs two examples), got {}",
                t.batch_size
            ),
        );
    }
    let (lr, wd, momentum) = match &t.optimizer {
        OptimizerConfig::Adam { lr, weight_decay } => (*lr, *weight_decay, None),
        OptimizerConfig::Sgd {
            lr,
            momentum,
            weight_decay,
        } => (*lr, *weight_decay, Some(*momentum)),
    };
    if !(lr.is_finite() && lr > 0.0) {
        bad("training.optimizer.lr", format!("must be > 0, got {lr}"));
    }
    if !(wd.is_finite() && wd >= 0.0) {
        bad(
            "training.optimizer.weight_decay",
            format!("must be >= 0, got {wd}"),
        );
    }
    if let Some(m) = momentum
        && !(0.0..1.0).contains(&m)
    {
        bad(
            "training.optimizer.momentum",
            format!("must be in [0, 1), got {m}"),
        );
    }
    let fac = t.lr_drops.factor;
    if !(fac > 0.0 && fac <= 1.0) {
        bad(
            "training.lr_drops.factor",
            format!("must be in (0, 1], got {fac}"),
        );
    }
    for (i, e) in t.lr_drops.at_epochs.iter().enumerate() {
        if *e < 1 || *e > t.epochs.max(1) {
            bad(
                &format!("training.lr_drops.at_epochs[{i}]"),
                format!("must be an epoch in 1..={}, got {e}", t.epochs),
            );
        }
    }
    for (path, msg) in t.defenses.problems() {
        bad(&format!("training.defenses.{path}"), msg);
    }

    // audit
    if let SplitSelection::List(list) = &r.audit.splits {
        if list.is_empty() {
            bad(
                "audit.splits",
                "must be 'all' or a non-empty list of split points".into(),
            );
        }
        for (i, k) in list.iter().enumerate() {
            if !split_ok(*k) {
                bad(
                    &format!("audit.splits[{i}]"),
                    format!("must be a split point in {split_range}, got {k}"),
                );
            }
        }
    }
    if r.audit.grid_images == 0 {
        bad("audit.grid_images", "must be >= 1, got 0".into());
    }
    for (i, a) in r.audit.attacks.iter().enumerate() {
        let at = |f: &str| format!("audit.attacks[{i}].{f}");
        match a {
            AttackKind::Decoder(d) => {
                if d.epochs == 0 {
                    bad(&at("epochs"), "must be >= 1, got 0".into());
                }
                if d.batch_size < 2 {
                    bad(
                        &at("batch_size"),
                        format!("must be >= 2, got {}", d.batch_size),
                    );
                }
                if !(d.lr.is_finite() && d.lr > 0.0) {
                    bad(&at("lr"), format!("must be > 0, got {}", d.lr));
                }
                if d.width < 8 {
                    bad(&at("width"), format!("must be >= 8, got {}", d.width));
                }
                if d.restarts > 10 {
                    bad(
                        &at("restarts"),
                        format!("must be <= 10, got {}", d.restarts),
                    );
                }
            }
        }
    }
    if let Some(l) = &r.leakage {
        for (path, msg) in l.problems() {
            bad(&format!("leakage.{path}"), msg);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use crate::recipe::{Override, RecipeError, from_str};

    const BASE: &str = "name: t\nmodel: {arch: cnn6}\n";

    fn check(overrides: &[&str]) -> Result<(), RecipeError> {
        let o: Vec<Override> = overrides.iter().map(|s| s.parse().unwrap()).collect();
        from_str(BASE, "t.yaml", &o).map(|_| ())
    }

    /// Asserts that the override is rejected with a message naming `path`.
    fn rejects(overrides: &[&str], path: &str) {
        let err = check(overrides).expect_err("must be rejected").to_string();
        assert!(err.starts_with("t.yaml"), "names the file: {err}");
        assert!(err.contains(path), "expected '{path}' in: {err}");
    }

    #[test]
    fn base_recipe_is_valid_with_defaults() {
        let r = from_str(BASE, "t.yaml", &[]).unwrap().recipe;
        assert_eq!(r.seed, 42);
        assert_eq!(r.training.batch_size, 64);
        assert_eq!(r.data.fractions, [0.6, 0.2, 0.2]);
    }

    #[test]
    fn name_must_be_a_folder_name() {
        rejects(&["name=a/b"], "name: must be");
        rejects(&["name=''"], "name: must be");
    }

    #[test]
    fn data_fractions_must_be_positive() {
        rejects(&["data.fractions=[1.0, 0.0, 0.0]"], "data.fractions: each");
    }

    #[test]
    fn data_fractions_must_sum_to_one() {
        rejects(
            &["data.fractions=[0.5, 0.2, 0.2]"],
            "data.fractions: must sum to 1",
        );
    }

    #[test]
    fn data_limit_must_be_at_least_30() {
        rejects(&["data.limit=10"], "data.limit: must be >= 30");
    }

    #[test]
    fn orl_downscale_must_be_in_range() {
        rejects(
            &["data.source={kind: orl, dir: faces, downscale: 0}"],
            "data.source.downscale",
        );
    }

    #[test]
    fn model_arch_must_be_known() {
        rejects(
            &["model.arch=resnet9000"],
            "model.arch: unknown architecture 'resnet9000'",
        );
    }

    #[test]
    fn model_blocks_cannot_be_empty() {
        rejects(&["model.blocks=[]"], "model.blocks");
    }

    #[test]
    fn split_must_be_a_split_point() {
        rejects(&["split=6"], "split: must be a split point in 1..=5, got 6");
        rejects(&["split=0"], "split: must be a split point");
    }

    #[test]
    fn training_epochs_must_be_positive() {
        rejects(
            &["training.epochs=0"],
            "training.epochs: must be >= 1, got 0",
        );
    }

    #[test]
    fn training_batch_size_must_be_at_least_two() {
        rejects(
            &["training.batch_size=0"],
            "training.batch_size: must be >= 2",
        );
    }

    #[test]
    fn optimizer_lr_must_be_positive() {
        rejects(
            &["training.optimizer={kind: adam, lr: -1}"],
            "training.optimizer.lr",
        );
        rejects(
            &["training.optimizer={kind: sgd, lr: 0}"],
            "training.optimizer.lr",
        );
    }

    #[test]
    fn weight_decay_cannot_be_negative() {
        rejects(
            &["training.optimizer={kind: adam, weight_decay: -0.1}"],
            "training.optimizer.weight_decay: must be >= 0, got -0.1",
        );
    }

    #[test]
    fn momentum_must_be_below_one() {
        rejects(
            &["training.optimizer={kind: sgd, momentum: 1.5}"],
            "training.optimizer.momentum",
        );
    }

    #[test]
    fn lr_drop_factor_must_be_in_unit_interval() {
        rejects(&["training.lr_drops.factor=2"], "training.lr_drops.factor");
    }

    #[test]
    fn lr_drop_epochs_must_be_within_training() {
        rejects(
            &["training.lr_drops.at_epochs=[9]"],
            "training.lr_drops.at_epochs[0]",
        );
    }

    #[test]
    fn label_smoothing_strength_must_be_in_open_unit_interval() {
        rejects(
            &["training.defenses.label_smoothing.strength=1.0"],
            "training.defenses.label_smoothing.strength",
        );
        check(&["training.defenses.label_smoothing.strength=-0.3"]).unwrap();
    }

    #[test]
    fn audit_splits_must_be_split_points() {
        rejects(&["audit.splits=[1, 9]"], "audit.splits[1]");
        rejects(&["audit.splits=[]"], "audit.splits");
    }

    #[test]
    fn audit_grid_images_must_be_positive() {
        rejects(&["audit.grid_images=0"], "audit.grid_images");
    }

    #[test]
    fn decoder_settings_must_be_in_range() {
        rejects(
            &["audit.attacks=[{kind: decoder, epochs: 0}]"],
            "audit.attacks[0].epochs",
        );
        rejects(
            &["audit.attacks=[{kind: decoder, batch_size: 1}]"],
            "audit.attacks[0].batch_size",
        );
        rejects(
            &["audit.attacks=[{kind: decoder, lr: 0}]"],
            "audit.attacks[0].lr",
        );
        rejects(
            &["audit.attacks=[{kind: decoder, width: 2}]"],
            "audit.attacks[0].width",
        );
        rejects(
            &["audit.attacks=[{kind: decoder, restarts: 50}]"],
            "audit.attacks[0].restarts",
        );
    }

    #[test]
    fn unknown_field_is_rejected_with_its_path() {
        rejects(&["training.epochz=3"], "epochz");
        let err = from_str("name: t\nmodel: {arch: cnn6}\nbogus: 1\n", "t.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus") && err.contains("line"), "{err}");
    }

    #[test]
    fn wrong_type_is_rejected_with_its_path() {
        let err = check(&["training.epochs=many"]).unwrap_err().to_string();
        assert!(
            err.contains("training.epochs") || err.contains("epochs"),
            "{err}"
        );
    }

    #[test]
    fn unknown_technique_is_rejected() {
        rejects(&["audit.attacks=[{kind: telepathy}]"], "telepathy");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = check(&["training.epochs=0", "training.batch_size=1", "split=9"])
            .unwrap_err()
            .to_string();
        for p in ["training.epochs", "training.batch_size", "split:"] {
            assert!(err.contains(p), "missing {p} in {err}");
        }
    }

    #[test]
    fn overrides_reach_nested_fields_and_list_items() {
        let o: Vec<Override> = [
            "training.optimizer.lr=0.01",
            "audit.attacks.0.epochs=3",
            "seed=7",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let text = format!("{BASE}audit:\n  attacks:\n    - kind: decoder\n");
        let r = from_str(&text, "t.yaml", &o).unwrap().recipe;
        assert_eq!(r.training.optimizer.lr(), 0.01);
        assert_eq!(r.seed, 7);
        let crate::attack::AttackKind::Decoder(d) = &r.audit.attacks[0];
        assert_eq!(d.epochs, 3);
    }

    #[test]
    fn override_into_a_scalar_or_past_a_list_end_is_an_error() {
        let err = check(&["seed.x=1"]).unwrap_err().to_string();
        assert!(
            err.contains("--set seed.x") && err.contains("not a section"),
            "{err}"
        );
        let o: Vec<Override> = vec!["audit.attacks.3.epochs=1".parse().unwrap()];
        let err = from_str(
            &format!("{BASE}audit: {{attacks: [{{kind: decoder}}]}}\n"),
            "t.yaml",
            &o,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("out of range"), "{err}");
        assert!("novalue".parse::<Override>().is_err());
    }

    #[test]
    fn leakage_problems_are_reported_under_leakage() {
        rejects(&["leakage={examples: 0}"], "leakage.examples");
    }
}
