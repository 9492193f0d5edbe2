//! The recipe's `harden:` section: the search space of `splitguard harden`
//! (which defenses at which strengths, pruning, splits, obfuscation), the
//! budgets, and the successive-halving schedule. Defaults live here,
//! documented on the fields; [`HardenConfig::problems`] checks values and
//! names each bad one by its path below `harden.`.

use serde::{Deserialize, Serialize};

use crate::prune::PruneMethod;

fn d_drop() -> f64 {
    1.0
}
fn d_prune() -> Vec<PruneMethod> {
    vec![PruneMethod::L1]
}
fn d_prune_fraction() -> f64 {
    0.5
}
fn d_max_candidates() -> usize {
    12
}
fn d_rungs() -> Vec<Rung> {
    vec![Rung {
        epochs: 1,
        attack_epochs: 3,
        data_limit: None,
    }]
}
fn d_eta() -> usize {
    3
}

/// The `harden:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HardenConfig {
    /// Largest loss of target accuracy allowed, in percentage points below
    /// the undefended reference trained the same way (default 1.0;
    /// `--max-accuracy-drop` overrides it).
    #[serde(default = "d_drop")]
    pub max_accuracy_drop: f64,
    /// Edge FLOPs allowed per query (default: no budget; `--edge-flops`
    /// overrides it). Candidates over it are dropped before they train;
    /// pruned candidates are pruned to fit it.
    #[serde(default)]
    pub edge_flops: Option<u64>,
    /// Wall-clock budget in minutes (default: none; `--budget-minutes`
    /// overrides it): once spent, no further evaluation starts and the
    /// search stops without an answer; `--resume` continues it.
    #[serde(default)]
    pub budget_minutes: Option<f64>,
    /// Deployment splits searched (default: the recipe's `split`).
    #[serde(default)]
    pub splits: Option<Vec<usize>>,
    /// Defenses and the strengths tried, one at a time (default: the seeds'
    /// defenses, see [`DefenseSpace::seeds`]). When given, only the
    /// defenses listed are searched.
    #[serde(default)]
    pub defenses: Option<DefenseSpace>,
    /// Pruning methods tried beside no pruning (default `[l1]`; `[]`: no
    /// pruning). A pruned candidate's edge is cut to `edge_flops`, or
    /// without it to `prune_fraction` of its split's unpruned edge FLOPs.
    #[serde(default = "d_prune")]
    pub prune: Vec<PruneMethod>,
    /// Budget of a pruned candidate without `edge_flops`: this fraction of
    /// the unpruned edge FLOPs at its split, in (0, 1] (default 0.5).
    #[serde(default = "d_prune_fraction")]
    pub prune_fraction: f64,
    /// Obfuscation settings tried beside none: each is the accuracy drop
    /// (percentage points, on the owner's data) the calibrated obfuscation
    /// may cost (seed 004; `obfuscation.mode: max_accuracy_drop`; default
    /// `[]`: no obfuscation).
    #[serde(default)]
    pub obfuscation: Vec<f64>,
    /// Most candidates searched (default 12): a larger grid is sampled
    /// without replacement, deterministically from the recipe's `seed`.
    #[serde(default = "d_max_candidates")]
    pub max_candidates: usize,
    /// Cheap evaluations before the full one, in order (default one rung:
    /// 1 training epoch, the first reconstruction attacker for 3 epochs).
    /// The last, full rung is the recipe itself (its training, its whole
    /// audit, its `repeats`).
    #[serde(default = "d_rungs")]
    pub rungs: Vec<Rung>,
    /// Successive halving's reduction factor: each cheap rung keeps the
    /// least-leaking `ceil(n / eta)` of the candidates within the budgets,
    /// >= 2 (default 3).
    #[serde(default = "d_eta")]
    pub eta: usize,
}

impl Default for HardenConfig {
    fn default() -> Self {
        Self {
            max_accuracy_drop: d_drop(),
            edge_flops: None,
            budget_minutes: None,
            splits: None,
            defenses: None,
            prune: d_prune(),
            prune_fraction: d_prune_fraction(),
            obfuscation: Vec::new(),
            max_candidates: d_max_candidates(),
            rungs: d_rungs(),
            eta: d_eta(),
        }
    }
}

/// One cheap evaluation of the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Training epochs, >= 1.
    pub epochs: usize,
    /// Epochs of the one attacker (the recipe's first decoder, or its first
    /// reconstruction attack as written), >= 1.
    pub attack_epochs: usize,
    /// Use only this many images (default: the recipe's data), >= 30.
    #[serde(default)]
    pub data_limit: Option<usize>,
}

/// Strengths tried per defense (each alone, on top of the recipe). A
/// number is the defense's one strength setting (see [`DefenseSpace::section`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefenseSpace {
    /// Label smoothing `strength` in (-1, 1) (seed 002).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_smoothing: Vec<f64>,
    /// Lipschitz regularisation `weight` >= 0 (seed 001).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lipschitz: Vec<f64>,
    /// Adversarial reconstruction training `weight` >= 0 (seed 001).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adversarial: Vec<f64>,
    /// deCov `weight` >= 0 (seed 004).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decov: Vec<f64>,
    /// Signal-content dropout `rate` in [0, 1] (seed 004).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signal_dropout: Vec<f64>,
    /// VAE Gaussianisation KL `weight` >= 0 (seed 004; never with pruning).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vae: Vec<f64>,
    /// NoPeek `weight` >= 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nopeek: Vec<f64>,
    /// Gaussian noise at the split, `scale` >= 0 relative to the features'
    /// standard deviation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split_noise: Vec<f64>,
    /// Dropout at the split, `rate` in [0, 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split_dropout: Vec<f64>,
    /// Top-k sparsification at the split, fraction kept in (0, 1].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_k: Vec<f64>,
    /// Shredder's learned noise, initial `scale` >= 0 relative to the
    /// features (lambda 0.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shredder: Vec<f64>,
}

/// How a strength must lie, in words and as a check.
struct Range {
    words: &'static str,
    ok: fn(f64) -> bool,
}

const NON_NEGATIVE: Range = Range {
    words: "must be finite and >= 0",
    ok: |v| v.is_finite() && v >= 0.0,
};

impl DefenseSpace {
    /// The seeds' defenses at strengths their papers and this project's
    /// recipes use: label smoothing 0.3 (seed 002), Lipschitz 0.02 and
    /// adversarial 1 and 4 (seed 001, `recipes/mnist-patrol.yaml`), deCov
    /// 0.001 and 0.01, signal-content dropout 0.5, VAE 0.001 (seed 004,
    /// `recipes/mnist-obfuscation.yaml`).
    pub fn seeds() -> Self {
        Self {
            label_smoothing: vec![0.3],
            lipschitz: vec![0.02],
            adversarial: vec![1.0, 4.0],
            decov: vec![0.001, 0.01],
            signal_dropout: vec![0.5],
            vae: vec![0.001],
            ..Self::default()
        }
    }

    /// Every `(defense, strength)` option, in a fixed order.
    pub fn options(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        for (name, values, _) in self.lists() {
            out.extend(values.iter().map(|&v| (name, v)));
        }
        out
    }

    fn lists(&self) -> [(&'static str, &Vec<f64>, Range); 11] {
        let unit_open = Range {
            words: "must be in [0, 1)",
            ok: |v| (0.0..1.0).contains(&v),
        };
        [
            (
                "label_smoothing",
                &self.label_smoothing,
                Range {
                    words: "must be in (-1, 1)",
                    ok: |v| v > -1.0 && v < 1.0,
                },
            ),
            ("lipschitz", &self.lipschitz, NON_NEGATIVE),
            ("adversarial", &self.adversarial, NON_NEGATIVE),
            ("decov", &self.decov, NON_NEGATIVE),
            (
                "signal_dropout",
                &self.signal_dropout,
                Range {
                    words: "must be in [0, 1]",
                    ok: |v| (0.0..=1.0).contains(&v),
                },
            ),
            ("vae", &self.vae, NON_NEGATIVE),
            ("nopeek", &self.nopeek, NON_NEGATIVE),
            ("split_noise", &self.split_noise, NON_NEGATIVE),
            ("split_dropout", &self.split_dropout, unit_open),
            (
                "top_k",
                &self.top_k,
                Range {
                    words: "must be in (0, 1]",
                    ok: |v| v > 0.0 && v <= 1.0,
                },
            ),
            ("shredder", &self.shredder, NON_NEGATIVE),
        ]
    }

    /// The `training.defenses.<name>` section (YAML) of one option.
    pub fn section(name: &str, strength: f64) -> String {
        match name {
            "label_smoothing" => format!("{{strength: {strength}}}"),
            "signal_dropout" | "split_dropout" => format!("{{rate: {strength}}}"),
            "split_noise" => format!("{{kind: gaussian, scale: {strength}, relative: true}}"),
            "top_k" => format!("{{keep: {strength}}}"),
            "shredder" => format!("{{lambda: 0.1, scale: {strength}, relative: true}}"),
            _ => format!("{{weight: {strength}}}"),
        }
    }

    /// Validation problems as `(path below defenses, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (name, values, range) in self.lists() {
            for (i, &v) in values.iter().enumerate() {
                if !(range.ok)(v) {
                    p.push((format!("{name}[{i}]"), format!("{}, got {v}", range.words)));
                }
            }
        }
        p
    }
}

impl HardenConfig {
    /// The defense options searched (the given ones, or the seeds').
    pub fn defense_space(&self) -> DefenseSpace {
        self.defenses.clone().unwrap_or_else(DefenseSpace::seeds)
    }

    /// Validation problems as `(path below harden, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let d = self.max_accuracy_drop;
        if !(d.is_finite() && (0.0..=100.0).contains(&d)) {
            p.push((
                "max_accuracy_drop".into(),
                format!("must be in [0, 100] percentage points, got {d}"),
            ));
        }
        if self.edge_flops == Some(0) {
            p.push(("edge_flops".into(), "must be > 0, got 0".into()));
        }
        if let Some(m) = self.budget_minutes
            && !(m.is_finite() && m > 0.0)
        {
            p.push(("budget_minutes".into(), format!("must be > 0, got {m}")));
        }
        if let Some(s) = &self.splits {
            if s.is_empty() {
                p.push((
                    "splits".into(),
                    "must list at least one split, got []".into(),
                ));
            }
            if let Some(z) = s.iter().position(|&k| k == 0) {
                p.push((format!("splits[{z}]"), "must be >= 1, got 0".into()));
            }
        }
        if let Some(space) = &self.defenses {
            for (path, msg) in space.problems() {
                p.push((format!("defenses.{path}"), msg));
            }
        }
        if let Some(i) = self.prune.iter().position(|m| *m == PruneMethod::None) {
            p.push((
                format!("prune[{i}]"),
                "must be l1 or patrol (no pruning is always tried), got none".into(),
            ));
        }
        let f = self.prune_fraction;
        if !(f.is_finite() && f > 0.0 && f <= 1.0) {
            p.push((
                "prune_fraction".into(),
                format!("must be in (0, 1], got {f}"),
            ));
        }
        for (i, &o) in self.obfuscation.iter().enumerate() {
            if !(o.is_finite() && (0.0..=100.0).contains(&o)) {
                p.push((
                    format!("obfuscation[{i}]"),
                    format!("must be in [0, 100] percentage points, got {o}"),
                ));
            }
        }
        if self.max_candidates == 0 {
            p.push(("max_candidates".into(), "must be >= 1, got 0".into()));
        }
        for (i, r) in self.rungs.iter().enumerate() {
            if r.epochs == 0 {
                p.push((format!("rungs[{i}].epochs"), "must be >= 1, got 0".into()));
            }
            if r.attack_epochs == 0 {
                p.push((
                    format!("rungs[{i}].attack_epochs"),
                    "must be >= 1, got 0".into(),
                ));
            }
            if let Some(l) = r.data_limit
                && l < 30
            {
                p.push((
                    format!("rungs[{i}].data_limit"),
                    format!("must be >= 30 images, got {l}"),
                ));
            }
        }
        if self.eta < 2 {
            p.push((
                "eta".into(),
                format!(
                    "must be >= 2 (each cheap rung keeps 1/eta of the candidates), got {}",
                    self.eta
                ),
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let c: HardenConfig = serde_norway::from_str(yaml).unwrap();
        c.problems()
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_cover_the_seeds_defenses() {
        let c: HardenConfig = serde_norway::from_str("{}").unwrap();
        assert_eq!(c, HardenConfig::default());
        assert!(c.problems().is_empty());
        let names: Vec<&str> = c.defense_space().options().iter().map(|o| o.0).collect();
        for seed in [
            "label_smoothing",
            "lipschitz",
            "adversarial",
            "decov",
            "signal_dropout",
            "vae",
        ] {
            assert!(names.contains(&seed), "{seed}");
        }
    }

    #[test]
    fn given_defenses_replace_the_defaults() {
        let c: HardenConfig = serde_norway::from_str("defenses: {nopeek: [0.5, 1]}").unwrap();
        assert_eq!(
            c.defense_space().options(),
            [("nopeek", 0.5), ("nopeek", 1.0)]
        );
    }

    #[test]
    fn max_accuracy_drop_must_be_in_0_100() {
        assert_eq!(
            problems("max_accuracy_drop: -1"),
            ["max_accuracy_drop: must be in [0, 100] percentage points, got -1"]
        );
    }

    #[test]
    fn defense_strengths_are_checked_with_their_index() {
        assert_eq!(
            problems("defenses: {top_k: [0.5, 2], nopeek: [-1]}"),
            [
                "defenses.nopeek[0]: must be finite and >= 0, got -1",
                "defenses.top_k[1]: must be in (0, 1], got 2"
            ]
        );
    }

    #[test]
    fn eta_must_be_at_least_2() {
        assert!(problems("eta: 1")[0].starts_with("eta: must be >= 2"));
    }

    #[test]
    fn rung_epochs_must_be_positive() {
        assert_eq!(
            problems("rungs: [{epochs: 0, attack_epochs: 1}]"),
            ["rungs[0].epochs: must be >= 1, got 0"]
        );
    }

    #[test]
    fn prune_none_is_not_a_method_to_try() {
        assert!(problems("prune: [none]")[0].starts_with("prune[0]: must be l1 or patrol"));
    }

    #[test]
    fn unknown_fields_are_errors() {
        let e = serde_norway::from_str::<HardenConfig>("max_acuracy_drop: 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
        let e = serde_norway::from_str::<HardenConfig>("defenses: {nopeak: [1]}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nopeak"), "{e}");
    }
}
