//! The candidates of a search and the recipe each evaluation runs.
//!
//! A candidate is nothing but `--set` overrides on the undefended base
//! recipe (the user's recipe with its defenses, pruning and obfuscation
//! taken out), and a rung adds a few more (fewer epochs, one cheap
//! attacker), so every evaluation is a recipe typed and validated exactly
//! like a file, run by the ordinary pipeline, the way a sweep's points are
//! ([`crate::recipe::sweep`]).

use serde::{Deserialize, Serialize};

use super::config::{DefenseSpace, HardenConfig, Rung};
use crate::Error;
use crate::attack::{AttackKind, SplitSelection};
use crate::prune::PruneMethod;
use crate::recipe::{LoadedRecipe, Override, Recipe, SplitSetting};

/// The id of the undefended reference.
pub const REFERENCE: &str = "reference";

/// One point of the search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Deployment split asked for (with pruning: the deepest split allowed).
    pub split: usize,
    /// One training defense and its strength, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defense: Option<(String, f64)>,
    /// Pruning method, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneMethod>,
    /// Obfuscation's allowed accuracy drop (points), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obfuscation: Option<f64>,
}

impl Settings {
    /// A short filesystem-safe description: `split=2,nopeek=0.5,prune=l1`.
    pub fn label(&self) -> String {
        let mut parts = vec![format!("split={}", self.split)];
        if let Some((name, s)) = &self.defense {
            parts.push(format!("{name}={s}"));
        }
        if let Some(m) = self.prune {
            parts.push(format!("prune={}", prune_name(m)));
        }
        if let Some(p) = self.obfuscation {
            parts.push(format!("obfuscation={p}"));
        }
        parts.join(",")
    }

    /// The overrides that turn the base recipe into this candidate.
    pub fn overrides(&self, cfg: &HardenConfig) -> Vec<Override> {
        let o = |path: &str, value: String| Override {
            path: path.into(),
            value,
        };
        let mut out = Vec::new();
        match self.prune {
            None => out.push(o("split", self.split.to_string())),
            Some(m) => {
                let budget = match cfg.edge_flops {
                    Some(f) => format!("{{flops: {f}}}"),
                    None => format!(
                        "{{fraction: {}, reference_split: {}}}",
                        cfg.prune_fraction, self.split
                    ),
                };
                out.push(o("split", "null".into()));
                out.push(o(
                    "prune",
                    format!(
                        "{{method: {}, budget: {budget}, max_split: {}}}",
                        prune_name(m),
                        self.split
                    ),
                ));
            }
        }
        if let Some((name, s)) = &self.defense {
            out.push(o(
                &format!("training.defenses.{name}"),
                DefenseSpace::section(name, *s),
            ));
        }
        if let Some(p) = self.obfuscation {
            out.push(o(
                "obfuscation",
                format!("{{mode: {{kind: max_accuracy_drop, points: {p}}}}}"),
            ));
        }
        out
    }
}

fn prune_name(m: PruneMethod) -> &'static str {
    match m {
        PruneMethod::None => "none",
        PruneMethod::L1 => "l1",
        PruneMethod::Patrol => "patrol",
    }
}

/// The splits searched and the reference's split.
pub fn splits(recipe: &Recipe, cfg: &HardenConfig) -> Result<(Vec<usize>, usize), Error> {
    let fixed = match recipe.split {
        Some(SplitSetting::At(k)) => Some(k),
        None => Some(1),
        Some(SplitSetting::Auto(_)) => None,
    };
    let list = match (&cfg.splits, fixed) {
        (Some(s), _) => s.clone(),
        (None, Some(k)) => vec![k],
        (None, None) => {
            return Err(Error::setting(
                "harden.splits",
                "must be given when the recipe has split: auto (the search compares fixed deployments)",
            ));
        }
    };
    let reference = fixed.unwrap_or(list[0]);
    Ok((list, reference))
}

/// Every point of the space in a fixed order (split slowest, then defense
/// with none first, then pruning with none first, then obfuscation with
/// none first), without the reference (no defense, no pruning, no
/// obfuscation at the reference split), which is evaluated anyway.
pub fn grid(cfg: &HardenConfig, splits: &[usize], reference_split: usize) -> Vec<Settings> {
    let mut defenses: Vec<Option<(String, f64)>> = vec![None];
    defenses.extend(
        cfg.defense_space()
            .options()
            .into_iter()
            .map(|(n, s)| Some((n.to_string(), s))),
    );
    let mut prunes = vec![None];
    prunes.extend(cfg.prune.iter().copied().map(Some));
    let mut obfs = vec![None];
    obfs.extend(cfg.obfuscation.iter().copied().map(Some));
    let mut out = Vec::new();
    for &split in splits {
        for d in &defenses {
            for &prune in &prunes {
                for &obfuscation in &obfs {
                    let s = Settings {
                        split,
                        defense: d.clone(),
                        prune,
                        obfuscation,
                    };
                    if s != reference(reference_split) {
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

/// The reference's settings.
pub fn reference(split: usize) -> Settings {
    Settings {
        split,
        defense: None,
        prune: None,
        obfuscation: None,
    }
}

/// The base recipe as YAML text: the user's recipe without `harden`, its
/// defenses, pruning and obfuscation.
pub fn base_text(recipe: &Recipe) -> String {
    let mut r = recipe.clone();
    r.harden = None;
    r.prune = None;
    r.obfuscation = None;
    r.training.defenses = Default::default();
    serde_norway::to_string(&r).expect("recipe serializes")
}

/// The one attacker of a cheap rung: the recipe's first decoder with
/// `epochs` epochs, or else its first other reconstruction attack as
/// written; `None` when the recipe has no reconstruction attack.
pub fn cheap_attacker(attacks: &[AttackKind], epochs: usize) -> Option<AttackKind> {
    attacks
        .iter()
        .find_map(|a| match a {
            AttackKind::Decoder(d) => {
                let mut d = d.clone();
                d.epochs = epochs;
                Some(AttackKind::Decoder(d))
            }
            _ => None,
        })
        .or_else(|| {
            attacks
                .iter()
                .find(|a| matches!(a, AttackKind::Optimisation(_) | AttackKind::Dci(_)))
                .cloned()
        })
}

/// The recipe's learning-rate drops scaled to a rung of `epochs`: each
/// drop keeps its place in the schedule (rounded), and a drop that would
/// land at the first epoch (a lower rate from the start) is left out.
fn scaled_drops(drops: &[usize], full: usize, epochs: usize) -> Vec<usize> {
    let full = full.max(1);
    let mut out: Vec<usize> = drops
        .iter()
        .map(|&e| (e * epochs + full / 2) / full)
        .filter(|&e| e >= 2 && e <= epochs)
        .collect();
    out.dedup();
    out
}

/// The overrides of a rung for a candidate deployed at `split`: a cheap
/// rung trains `epochs` (with the recipe's learning-rate drops scaled to
/// them), attacks only there with one attacker, and runs once; the full
/// rung (`None`) is the recipe itself, with the deployed
/// split added to the audited ones when missing.
pub fn rung_overrides(recipe: &Recipe, rung: Option<&Rung>, split: usize) -> Vec<Override> {
    let o = |path: &str, value: String| Override {
        path: path.into(),
        value,
    };
    let Some(r) = rung else {
        return match &recipe.audit.splits {
            SplitSelection::List(l) if !l.contains(&split) => {
                let mut l = l.clone();
                l.push(split);
                l.sort_unstable();
                vec![o("audit.splits", format!("{l:?}"))]
            }
            _ => Vec::new(),
        };
    };
    let mut out = vec![
        o("training.epochs", r.epochs.to_string()),
        o("repeats", "1".into()),
        o("audit.splits", format!("[{split}]")),
    ];
    let drops = &recipe.training.lr_drops.at_epochs;
    if !drops.is_empty() {
        let scaled = scaled_drops(drops, recipe.training.epochs, r.epochs);
        out.push(o("training.lr_drops.at_epochs", format!("{scaled:?}")));
    }
    if let Some(a) = cheap_attacker(&recipe.audit.attacks, r.attack_epochs) {
        let text = serde_norway::to_string(&vec![a]).expect("attack serializes");
        out.push(o("audit.attacks", text));
    }
    if let Some(l) = r.data_limit {
        out.push(o("data.limit", l.to_string()));
    }
    out
}

/// A typed, validated recipe from the base text and overrides; `source`
/// names it in messages.
pub fn build(base: &str, source: &str, overrides: &[Override]) -> Result<LoadedRecipe, Error> {
    Ok(crate::recipe::from_str(base, source, overrides)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> HardenConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn the_grid_is_every_combination_but_the_reference_in_a_fixed_order() {
        let c = cfg("defenses: {nopeek: [0.5, 1]}\nprune: [l1]\nsplits: [1, 2]");
        let g = grid(&c, &[1, 2], 2);
        // 2 splits x 3 defense options x 2 prune options, less the reference.
        assert_eq!(g.len(), 11);
        assert_eq!(g[0].label(), "split=1");
        assert_eq!(g[1].label(), "split=1,prune=l1");
        assert_eq!(g[2].label(), "split=1,nopeek=0.5");
        assert!(!g.contains(&reference(2)));
        assert!(g.contains(&reference(1)));
        let mut labels: Vec<String> = g.iter().map(Settings::label).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), 11);
    }

    #[test]
    fn a_candidate_is_a_valid_recipe_made_of_overrides() {
        let base = "name: h\nmodel: {arch: cnn6}\nsplit: 2\n";
        let c = cfg("defenses: {split_noise: [0.5]}\nprune: [l1]");
        for s in grid(&c, &[2], 2) {
            let r = build(base, "t", &s.overrides(&c)).unwrap().recipe;
            assert_eq!(
                r.training.defenses.split_noise.is_some(),
                s.defense.is_some()
            );
            assert_eq!(r.prune.is_some(), s.prune.is_some());
            if s.prune.is_some() {
                assert_eq!(r.split, None);
                assert_eq!(r.prune.as_ref().unwrap().max_split, Some(2));
            } else {
                assert_eq!(r.split, Some(SplitSetting::At(2)));
            }
        }
    }

    #[test]
    fn every_default_defense_section_is_a_valid_recipe() {
        let base = "name: h\nmodel: {arch: cnn6}\nsplit: 2\n";
        let all = "defenses: {label_smoothing: [0.3], lipschitz: [0.1], adversarial: [1], decov: [0.1], signal_dropout: [0.5], vae: [0.01], nopeek: [1], split_noise: [0.5], split_dropout: [0.5], top_k: [0.5], shredder: [0.5]}\nprune: []";
        let c = cfg(all);
        let g = grid(&c, &[2], 2);
        assert_eq!(g.len(), 11);
        for s in g {
            build(base, "t", &s.overrides(&c)).unwrap_or_else(|e| panic!("{}: {e}", s.label()));
        }
    }

    #[test]
    fn a_cheap_rung_trains_less_and_attacks_once_at_the_deployed_split() {
        let base = "name: h\nmodel: {arch: cnn6}\nsplit: 2\nrepeats: 3\ntraining: {epochs: 6}\naudit: {splits: all, attacks: [{kind: attribute}, {kind: decoder, epochs: 40}]}\n";
        let r = build(base, "t", &[]).unwrap().recipe;
        let rung = Rung {
            epochs: 1,
            attack_epochs: 2,
            data_limit: Some(300),
        };
        let cheap = build(base, "t", &rung_overrides(&r, Some(&rung), 2))
            .unwrap()
            .recipe;
        assert_eq!(cheap.training.epochs, 1);
        assert_eq!(cheap.repeats, 1);
        assert_eq!(cheap.data.limit, Some(300));
        assert_eq!(cheap.audit.splits, SplitSelection::List(vec![2]));
        match &cheap.audit.attacks[..] {
            [AttackKind::Decoder(d)] => assert_eq!(d.epochs, 2),
            other => panic!("{other:?}"),
        }
        // Learning-rate drops follow the shorter schedule.
        let dropped = build(
            base,
            "t",
            &["training.lr_drops={at_epochs: [3, 5]}".parse().unwrap()],
        )
        .unwrap()
        .recipe;
        let two = Rung { epochs: 2, ..rung };
        let cheap = build(base, "t", &rung_overrides(&dropped, Some(&two), 2))
            .unwrap()
            .recipe;
        assert_eq!(cheap.training.lr_drops.at_epochs, [2]);
        assert_eq!(scaled_drops(&[3, 5], 6, 1), Vec::<usize>::new());
        assert_eq!(scaled_drops(&[20, 40], 50, 10), [4, 8]);
        // The full rung keeps the recipe and adds a missing deployed split.
        assert!(rung_overrides(&r, None, 2).is_empty());
        let listed = build(base, "t", &["audit.splits=[1]".parse().unwrap()])
            .unwrap()
            .recipe;
        let full = rung_overrides(&listed, None, 3);
        assert_eq!(full[0].value, "[1, 3]");
    }
}
