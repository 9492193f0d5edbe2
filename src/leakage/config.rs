//! The `leakage:` recipe section: which examples are attacked, the gradient
//! defenses swept, and the attack and I2F settings. Defaults live here,
//! documented on each field; [`LeakageConfig::problems`] is the validation.

use serde::{Deserialize, Serialize};

use super::attack::{Distance, LabelSource};
use super::defense::GradientDefense;
use super::jacobian::DEFAULT_STEP;
use super::optimize::Optimizer;

fn default_examples() -> usize {
    8
}
fn default_defenses() -> Vec<DefenseSweep> {
    vec![
        DefenseSweep::Noise {
            scales: vec![0.0, 1e-3, 1e-2, 1e-1],
        },
        DefenseSweep::Prune {
            quantiles: vec![0.5],
        },
    ]
}
fn default_init() -> Option<f64> {
    Some(0.5)
}
fn default_iterations() -> usize {
    500
}
fn default_lr() -> f64 {
    0.1
}
fn default_tv() -> f64 {
    1e-4
}
fn default_step() -> f64 {
    DEFAULT_STEP
}
fn default_damping() -> f64 {
    1e-4
}
fn default_cg_iterations() -> usize {
    100
}
fn default_cg_tolerance() -> f64 {
    1e-3
}
fn default_lanczos_steps() -> usize {
    30
}

/// Defense strengths to sweep, by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DefenseSweep {
    /// Gaussian gradient noise at each standard deviation (0 = no defense).
    Noise {
        /// Standard deviations, absolute, in gradient units.
        scales: Vec<f64>,
    },
    /// Pruning of the smallest gradient entries, at each fraction.
    Prune {
        /// Fractions of entries zeroed, each in [0, 1).
        quantiles: Vec<f64>,
    },
}

/// The gradient-inversion attack's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttackConfig {
    /// Gradient distance: `cosine` (default) or `l2`.
    #[serde(default)]
    pub distance: Distance,
    /// `inferred` from the last layer's gradient (default) or `known`.
    #[serde(default)]
    pub label: LabelSource,
    /// `lbfgs` (default, DLG's optimiser) or `adam`.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// Iterations (default 500; about three gradient evaluations each).
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// Step size on pixels in [0, 1] (default 0.1): Adam's initial step,
    /// cosine-decayed to 1%; for L-BFGS, the length of the first
    /// steepest-descent step.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Weight of the total-variation prior (default 1e-4).
    #[serde(default = "default_tv")]
    pub tv_weight: f64,
    /// Relative finite-difference step for `J (dM/dg)` (default 1e-4).
    #[serde(default = "default_step")]
    pub fd_step: f64,
}

impl Default for AttackConfig {
    fn default() -> Self {
        Self {
            distance: Distance::default(),
            label: LabelSource::default(),
            optimizer: Optimizer::default(),
            iterations: default_iterations(),
            lr: default_lr(),
            tv_weight: default_tv(),
            fd_step: default_step(),
        }
    }
}

/// The I2F estimator's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct I2fConfig {
    /// Damping mu added to `J J^T`, relative to `lambda_max(J J^T)`
    /// (default 1e-4): the solve uses `J J^T + mu * lambda_max * I`, which
    /// keeps the estimate independent of the gradient's scale. Smaller
    /// values trust the small eigenvalues of `J J^T` more (on the recipe's
    /// LeNet, 1e-4 put I2F within a factor 1.6 of the measured error).
    #[serde(default = "default_damping")]
    pub damping: f64,
    /// Conjugate-gradient iterations at most (default 100; four gradient
    /// evaluations each).
    #[serde(default = "default_cg_iterations")]
    pub cg_iterations: usize,
    /// Relative residual at which conjugate gradients stop (default 1e-3).
    #[serde(default = "default_cg_tolerance")]
    pub cg_tolerance: f64,
    /// Lanczos steps at most for `lambda_max(J J^T)` (default 30).
    #[serde(default = "default_lanczos_steps")]
    pub lanczos_steps: usize,
    /// Relative finite-difference step for the products with `J` (default 1e-4).
    #[serde(default = "default_step")]
    pub fd_step: f64,
}

impl Default for I2fConfig {
    fn default() -> Self {
        Self {
            damping: default_damping(),
            cg_iterations: default_cg_iterations(),
            cg_tolerance: default_cg_tolerance(),
            lanczos_steps: default_lanczos_steps(),
            fd_step: default_step(),
        }
    }
}

/// The `leakage:` section (run by `splitguard leakage RECIPE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakageConfig {
    /// Private examples attacked: the first ones of the `test` part, one
    /// class after another (default 8).
    #[serde(default = "default_examples")]
    pub examples: usize,
    /// Redraw every parameter from `U(-a, a)` with the recipe's seed before
    /// anything else (default 0.5: DLG's LeNet initialisation, the setting
    /// of seed 003; `null` keeps burn's default initialisation, whose small
    /// weights make a sigmoid network's gradient nearly independent of the
    /// input, so the attack recovers much less).
    #[serde(default = "default_init")]
    pub init_scale: Option<f64>,
    /// Epochs of plain training with the recipe's `training` settings
    /// before the attack (default 0: the seeded initialisation, the setting
    /// of DLG and seed 003).
    #[serde(default)]
    pub warmup_epochs: usize,
    /// Gradient defenses to sweep (default: noise 0, 1e-3, 1e-2, 1e-1 and
    /// pruning of half the entries).
    #[serde(default = "default_defenses")]
    pub defenses: Vec<DefenseSweep>,
    /// Worker threads, one example each at a time (default 0: one per
    /// core). The numbers do not depend on it.
    #[serde(default)]
    pub threads: usize,
    /// The attack.
    #[serde(default)]
    pub attack: AttackConfig,
    /// The I2F estimator.
    #[serde(default)]
    pub i2f: I2fConfig,
}

impl Default for LeakageConfig {
    fn default() -> Self {
        Self {
            examples: default_examples(),
            init_scale: default_init(),
            warmup_epochs: 0,
            threads: 0,
            defenses: default_defenses(),
            attack: AttackConfig::default(),
            i2f: I2fConfig::default(),
        }
    }
}

/// Largest number of attacked examples (one grid row holds them all).
pub const MAX_EXAMPLES: usize = 64;

impl LeakageConfig {
    /// Every defense setting, in recipe order.
    pub fn settings(&self) -> Vec<GradientDefense> {
        self.defenses
            .iter()
            .flat_map(|s| match s {
                DefenseSweep::Noise { scales } => scales
                    .iter()
                    .map(|&scale| GradientDefense::Noise { scale })
                    .collect::<Vec<_>>(),
                DefenseSweep::Prune { quantiles } => quantiles
                    .iter()
                    .map(|&quantile| GradientDefense::Prune { quantile })
                    .collect(),
            })
            .collect()
    }

    /// Validation problems as `(field path below leakage, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut bad = |path: String, msg: String| p.push((path, msg));
        if !(1..=MAX_EXAMPLES).contains(&self.examples) {
            bad(
                "examples".into(),
                format!("must be in 1..={MAX_EXAMPLES}, got {}", self.examples),
            );
        }
        if let Some(a) = self.init_scale
            && !(a > 0.0 && a <= 10.0)
        {
            bad(
                "init_scale".into(),
                format!("must be in (0, 10] (or null for burn's initialisation), got {a}"),
            );
        }
        if self.warmup_epochs > 100 {
            bad(
                "warmup_epochs".into(),
                format!("must be <= 100, got {}", self.warmup_epochs),
            );
        }
        if self.threads > 256 {
            bad(
                "threads".into(),
                format!("must be <= 256 (0 = one per core), got {}", self.threads),
            );
        }
        if self.defenses.is_empty() {
            bad(
                "defenses".into(),
                "must list at least one defense sweep (noise with scale 0 means none)".into(),
            );
        }
        for (i, s) in self.defenses.iter().enumerate() {
            type Rule = fn(f64) -> bool;
            let (field, values, ok, allowed): (&str, &Vec<f64>, Rule, &str) = match s {
                DefenseSweep::Noise { scales } => {
                    ("scales", scales, |v| v.is_finite() && v >= 0.0, ">= 0")
                }
                DefenseSweep::Prune { quantiles } => (
                    "quantiles",
                    quantiles,
                    |v| (0.0..1.0).contains(&v),
                    "in [0, 1)",
                ),
            };
            if values.is_empty() {
                bad(
                    format!("defenses[{i}].{field}"),
                    "must list at least one value".into(),
                );
            }
            for (j, v) in values.iter().enumerate() {
                if !ok(*v) {
                    bad(
                        format!("defenses[{i}].{field}[{j}]"),
                        format!("must be {allowed}, got {v}"),
                    );
                }
            }
        }
        let a = &self.attack;
        if a.iterations == 0 || a.iterations > 100_000 {
            bad(
                "attack.iterations".into(),
                format!("must be in 1..=100000, got {}", a.iterations),
            );
        }
        if !(a.lr.is_finite() && a.lr > 0.0) {
            bad("attack.lr".into(), format!("must be > 0, got {}", a.lr));
        }
        if !(a.tv_weight.is_finite() && a.tv_weight >= 0.0) {
            bad(
                "attack.tv_weight".into(),
                format!("must be >= 0, got {}", a.tv_weight),
            );
        }
        let i = &self.i2f;
        for (path, step) in [("attack.fd_step", a.fd_step), ("i2f.fd_step", i.fd_step)] {
            if !(step > 0.0 && step <= 0.1) {
                bad(path.into(), format!("must be in (0, 0.1], got {step}"));
            }
        }
        if !(i.damping.is_finite() && i.damping >= 0.0) {
            bad(
                "i2f.damping".into(),
                format!("must be >= 0, got {}", i.damping),
            );
        }
        if i.cg_iterations == 0 {
            bad("i2f.cg_iterations".into(), "must be >= 1, got 0".into());
        }
        if !(i.cg_tolerance > 0.0 && i.cg_tolerance < 1.0) {
            bad(
                "i2f.cg_tolerance".into(),
                format!("must be in (0, 1), got {}", i.cg_tolerance),
            );
        }
        if i.lanczos_steps < 2 {
            bad(
                "i2f.lanczos_steps".into(),
                format!("must be >= 2, got {}", i.lanczos_steps),
            );
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use crate::recipe::{Override, RecipeError, from_str};

    const BASE: &str =
        "name: t\nmodel: {arch: lenet}\ntraining: {lr_drops: {factor: 0.1}}\nleakage: {}\n";

    fn check(overrides: &[&str]) -> Result<(), RecipeError> {
        let o: Vec<Override> = overrides.iter().map(|s| s.parse().unwrap()).collect();
        from_str(BASE, "t.yaml", &o).map(|_| ())
    }

    /// Asserts that the override is rejected with a message naming `path`.
    fn rejects(overrides: &[&str], path: &str) {
        let err = check(overrides).expect_err("must be rejected").to_string();
        assert!(
            err.contains(&format!("leakage.{path}:")),
            "expected 'leakage.{path}' in: {err}"
        );
    }

    #[test]
    fn defaults_are_valid_and_sweep_noise_and_pruning() {
        let r = from_str(BASE, "t.yaml", &[]).unwrap().recipe;
        let l = r.leakage.clone().expect("section present");
        assert_eq!(l.examples, 8);
        assert_eq!(l.init_scale, Some(0.5));
        assert_eq!(l.settings().len(), 5);
        check(&["leakage.init_scale=null"]).unwrap();
    }

    #[test]
    fn examples_must_be_in_range() {
        rejects(&["leakage.examples=0"], "examples");
        rejects(&["leakage.examples=65"], "examples");
    }

    #[test]
    fn init_scale_must_be_positive_and_at_most_ten() {
        rejects(&["leakage.init_scale=0"], "init_scale");
        rejects(&["leakage.init_scale=11"], "init_scale");
    }

    #[test]
    fn warmup_epochs_must_be_at_most_100() {
        rejects(&["leakage.warmup_epochs=101"], "warmup_epochs");
    }

    #[test]
    fn threads_must_be_at_most_256() {
        rejects(&["leakage.threads=257"], "threads");
    }

    #[test]
    fn defenses_cannot_be_empty() {
        rejects(&["leakage.defenses=[]"], "defenses");
    }

    #[test]
    fn a_defense_sweep_needs_values() {
        rejects(
            &["leakage.defenses=[{kind: noise, scales: []}]"],
            "defenses[0].scales",
        );
    }

    #[test]
    fn noise_scales_cannot_be_negative() {
        rejects(
            &["leakage.defenses=[{kind: noise, scales: [0.1, -1]}]"],
            "defenses[0].scales[1]",
        );
    }

    #[test]
    fn prune_quantiles_must_be_in_unit_interval() {
        rejects(
            &["leakage.defenses=[{kind: prune, quantiles: [1.0]}]"],
            "defenses[0].quantiles[0]",
        );
    }

    #[test]
    fn attack_iterations_must_be_in_range() {
        rejects(&["leakage.attack.iterations=0"], "attack.iterations");
    }

    #[test]
    fn attack_lr_must_be_positive() {
        rejects(&["leakage.attack.lr=0"], "attack.lr");
    }

    #[test]
    fn tv_weight_cannot_be_negative() {
        rejects(&["leakage.attack.tv_weight=-1e-3"], "attack.tv_weight");
    }

    #[test]
    fn finite_difference_steps_must_be_in_range() {
        rejects(&["leakage.attack.fd_step=0"], "attack.fd_step");
        rejects(&["leakage.i2f.fd_step=0.5"], "i2f.fd_step");
    }

    #[test]
    fn damping_cannot_be_negative() {
        rejects(&["leakage.i2f.damping=-1"], "i2f.damping");
    }

    #[test]
    fn cg_iterations_must_be_positive() {
        rejects(&["leakage.i2f.cg_iterations=0"], "i2f.cg_iterations");
    }

    #[test]
    fn cg_tolerance_must_be_in_open_unit_interval() {
        rejects(&["leakage.i2f.cg_tolerance=1"], "i2f.cg_tolerance");
    }

    #[test]
    fn lanczos_steps_must_be_at_least_two() {
        rejects(&["leakage.i2f.lanczos_steps=1"], "i2f.lanczos_steps");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = check(&["leakage.atack={}"]).unwrap_err().to_string();
        assert!(err.contains("atack"), "{err}");
    }
}
