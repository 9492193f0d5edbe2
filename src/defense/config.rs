//! The `training.defenses:` recipe section: one optional sub-section per
//! defense, keyed by its name, so defenses combine freely and a sweep can
//! address `training.defenses.<name>.<field>`.

use serde::{Deserialize, Serialize};

use super::at_split::{mix, tag};
use super::{
    AdversarialConfig, AdversarialReconstruction, Defense, LabelSmoothing, Lipschitz,
    LipschitzConfig,
};
use super::{AttributeAdversarial, AttributeAdversarialConfig};
use super::{DeCov, SignalDropout, Vae};
use super::{FeaturePruningConfig, FeaturePruningMarker};
use super::{
    NoPeek, NoPeekConfig, SplitDropout, SplitDropoutConfig, SplitNoise, SplitNoiseConfig,
    SplitPerturbation, TopK, TopKConfig,
};
use super::{ShredderConfig, ShredderMarker};

/// Label smoothing settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelSmoothingConfig {
    /// Signed strength `s` in (-1, 1): `1 - s` on the true class (seed 002 uses 0.3).
    pub strength: f32,
}

/// deCov settings (seed 004).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeCovConfig {
    /// Weight of the deCov loss, >= 0 (0: no effect).
    pub weight: f32,
}

fn d_min_keep() -> f32 {
    0.1
}
fn d_refresh() -> usize {
    100
}

/// Which layer signal-content dropout acts on.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DropoutLayer {
    /// A layer drawn uniformly from every split point of the model at each
    /// dropping step, on either side of the deployment split (seed 004: "the
    /// signal content of different layers are removed (one layer at a
    /// time)"), so any split can later be obfuscated.
    #[default]
    Random,
    /// Only the deployment split.
    Split,
}

/// VAE Gaussianisation settings (seed 004).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaeConfig {
    /// Weight of the KL term, >= 0 (0: no head, no effect).
    pub weight: f32,
}

/// Signal-content dropout settings (seed 004).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalDropoutConfig {
    /// Probability a step drops, in [0, 1] (0: no effect).
    pub rate: f32,
    /// Smallest kept fraction of signal components, in (0, 1] (default 0.1).
    #[serde(default = "d_min_keep")]
    pub min_keep: f32,
    /// Steps between basis recomputations, >= 1 (default 100).
    #[serde(default = "d_refresh")]
    pub refresh_steps: usize,
    /// `random` (default: a random split layer each dropping step) or `split`.
    #[serde(default)]
    pub layer: DropoutLayer,
}

/// All training defenses; absent ones are off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefensesConfig {
    /// Label smoothing (seed 002).
    #[serde(default)]
    pub label_smoothing: Option<LabelSmoothingConfig>,
    /// Lipschitz regularisation of the edge blocks (seed 001, PATROL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lipschitz: Option<LipschitzConfig>,
    /// Adversarial reconstruction training (seed 001, PATROL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<AdversarialConfig>,
    /// deCov feature decorrelation (seed 004).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decov: Option<DeCovConfig>,
    /// Signal-content dropout (seed 004).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_dropout: Option<SignalDropoutConfig>,
    /// VAE Gaussianisation at the split (seed 004).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae: Option<VaeConfig>,
    /// NoPeek: distance correlation between input and split features
    /// (Vepakomma et al. 2020).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nopeek: Option<NoPeekConfig>,
    /// Gaussian or Laplace noise added to the sent features, in training
    /// and at inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_noise: Option<SplitNoiseConfig>,
    /// Dropout of the sent features, in training and at inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_dropout: Option<SplitDropoutConfig>,
    /// Top-k sparsification of the sent features, in training and at
    /// inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<TopKConfig>,
    /// Shredder's learned noise at the split (Mireshghallah et al. 2020),
    /// learned on the trained, frozen model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shredder: Option<ShredderConfig>,
    /// Adversarial training against a known hidden attribute (seed 004's
    /// Figure 6 baseline, eq. 3; Feutry et al. 2018).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_adversarial: Option<AttributeAdversarialConfig>,
    /// Pruning of the split features by the next layer's weights, with the
    /// server fine-tuned on what is left, after training (seed 004's
    /// Figure 5 baseline; Li et al. 2016).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_pruning: Option<FeaturePruningConfig>,
}

impl DefensesConfig {
    /// Builds the configured defenses, in a fixed order. A defense that
    /// draws random numbers of its own gets a generator seeded from `seed`
    /// (the recipe's) mixed with its name, so each has its own stream and a
    /// new seed gives new draws.
    pub fn build(&self, seed: u64) -> Vec<Box<dyn Defense>> {
        let mut out: Vec<Box<dyn Defense>> = Vec::new();
        if let Some(ls) = &self.label_smoothing {
            out.push(Box::new(LabelSmoothing {
                strength: ls.strength,
            }));
        }
        if let Some(l) = &self.lipschitz {
            out.push(Box::new(Lipschitz::new(l.clone())));
        }
        if let Some(a) = &self.adversarial {
            out.push(Box::new(AdversarialReconstruction::new(a.clone())));
        }
        if let Some(d) = &self.decov {
            out.push(Box::new(DeCov::new(d.weight)));
        }
        if let Some(d) = &self.signal_dropout {
            let stream = mix(seed ^ tag("signal_dropout"));
            out.push(Box::new(
                SignalDropout::new(d.rate, d.min_keep, d.refresh_steps, stream).at(d.layer),
            ));
        }
        if let Some(v) = &self.vae {
            out.push(Box::new(Vae::new(v.weight)));
        }
        if let Some(n) = &self.nopeek {
            out.push(Box::new(NoPeek::new(n.weight)));
        }
        if let Some(a) = &self.attribute_adversarial {
            out.push(Box::new(AttributeAdversarial::new(a.clone())));
        }
        // The split perturbations last, in the order the edge applies them
        // at inference (see `split_perturbations`).
        if let Some(n) = &self.split_noise {
            out.push(Box::new(SplitNoise::new(n.clone())));
        }
        if let Some(d) = &self.split_dropout {
            out.push(Box::new(SplitDropout::new(d.clone())));
        }
        if let Some(t) = &self.top_k {
            out.push(Box::new(TopK::new(t.clone())));
        }
        if self.shredder.as_ref().is_some_and(ShredderConfig::active) {
            out.push(Box::new(ShredderMarker));
        }
        if self
            .feature_pruning
            .as_ref()
            .is_some_and(FeaturePruningConfig::active)
        {
            out.push(Box::new(FeaturePruningMarker));
        }
        out
    }

    /// The defenses that change what the edge sends at inference (noise,
    /// dropout, top-k), in the order training applies them. Shredder's noise
    /// is learned after training and goes before them (see
    /// [`shredder`](super::shredder)).
    pub fn split_perturbations(&self) -> Vec<Box<dyn SplitPerturbation>> {
        let mut out: Vec<Box<dyn SplitPerturbation>> = Vec::new();
        if let Some(n) = &self.split_noise {
            out.push(Box::new(SplitNoise::new(n.clone())));
        }
        if let Some(d) = &self.split_dropout {
            out.push(Box::new(SplitDropout::new(d.clone())));
        }
        if let Some(t) = &self.top_k {
            out.push(Box::new(TopK::new(t.clone())));
        }
        out
    }

    /// Validation problems as `(field path below training.defenses, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Some(ls) = &self.label_smoothing
            && !(ls.strength > -1.0 && ls.strength < 1.0)
        {
            p.push((
                "label_smoothing.strength".into(),
                format!("must be in (-1, 1), got {}", ls.strength),
            ));
        }
        if let Some(l) = &self.lipschitz {
            p.extend(
                l.problems()
                    .into_iter()
                    .map(|(f, m)| (format!("lipschitz.{f}"), m)),
            );
        }
        if let Some(a) = &self.adversarial {
            p.extend(
                a.problems()
                    .into_iter()
                    .map(|(f, m)| (format!("adversarial.{f}"), m)),
            );
        }
        for (field, weight) in [
            ("decov.weight", self.decov.as_ref().map(|d| d.weight)),
            ("vae.weight", self.vae.as_ref().map(|v| v.weight)),
        ] {
            if let Some(w) = weight.filter(|w| !(w.is_finite() && *w >= 0.0)) {
                p.push((field.into(), format!("must be finite and >= 0, got {w}")));
            }
        }
        if let Some(d) = &self.signal_dropout {
            if !(0.0..=1.0).contains(&d.rate) {
                p.push((
                    "signal_dropout.rate".into(),
                    format!("must be in [0, 1], got {}", d.rate),
                ));
            }
            if !(d.min_keep > 0.0 && d.min_keep <= 1.0) {
                p.push((
                    "signal_dropout.min_keep".into(),
                    format!("must be in (0, 1], got {}", d.min_keep),
                ));
            }
            if d.refresh_steps == 0 {
                p.push((
                    "signal_dropout.refresh_steps".into(),
                    "must be >= 1, got 0".into(),
                ));
            }
        }
        type Problems = Vec<(String, String)>;
        let sections: [(&str, Option<Problems>); 7] = [
            ("nopeek", self.nopeek.as_ref().map(NoPeekConfig::problems)),
            (
                "split_noise",
                self.split_noise.as_ref().map(SplitNoiseConfig::problems),
            ),
            (
                "split_dropout",
                self.split_dropout
                    .as_ref()
                    .map(SplitDropoutConfig::problems),
            ),
            ("top_k", self.top_k.as_ref().map(TopKConfig::problems)),
            (
                "shredder",
                self.shredder.as_ref().map(ShredderConfig::problems),
            ),
            (
                "attribute_adversarial",
                self.attribute_adversarial
                    .as_ref()
                    .map(|a| a.problems(None)),
            ),
            (
                "feature_pruning",
                self.feature_pruning
                    .as_ref()
                    .map(FeaturePruningConfig::problems),
            ),
        ];
        for (section, problems) in sections {
            p.extend(
                problems
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(f, m)| (format!("{section}.{f}"), m)),
            );
        }
        p
    }

    /// True when the model needs a VAE head at the split.
    pub fn wants_vae_head(&self) -> bool {
        self.vae.as_ref().is_some_and(|v| v.weight > 0.0)
    }

    /// True when a defense acts on the split features during training (all
    /// but label smoothing), so the split must be fixed before training.
    pub fn needs_split(&self) -> bool {
        self.names().iter().any(|n| *n != "label_smoothing")
    }

    /// Names of the enabled defenses.
    pub fn names(&self) -> Vec<&'static str> {
        self.build(0).iter().map(|d| d.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::recipe::{from_str, schema};

    const BASELINES: &str = "
name: b
model: {arch: cnn6}
split: 2
training:
  defenses:
    nopeek: {weight: 0.2}
    split_noise: {kind: laplace, scale: 0.1, relative: true}
    split_dropout: {rate: 0.2}
    top_k: {keep: 0.5}
    shredder: {lambda: 0.1, scale: 0.5}
";

    #[test]
    fn baseline_defenses_parse_combine_and_fill_their_defaults() {
        let r = from_str(BASELINES, "b.yaml", &[]).unwrap().recipe;
        let d = &r.training.defenses;
        assert!(d.split_dropout.as_ref().unwrap().rescale);
        let s = d.shredder.as_ref().unwrap();
        assert_eq!((s.epochs, s.batch_size, s.relative), (3, 64, false));
        assert_eq!(
            d.names(),
            [
                "nopeek",
                "split_noise",
                "split_dropout",
                "top_k",
                "shredder"
            ]
        );
        assert!(d.needs_split());
        assert_eq!(d.split_perturbations().len(), 3);
    }

    #[test]
    fn bad_baseline_settings_name_their_recipe_path() {
        let text = BASELINES
            .replace("scale: 0.1", "scale: -0.1")
            .replace("keep: 0.5", "keep: 0");
        let e = from_str(&text, "b.yaml", &[]).unwrap_err().to_string();
        assert!(e.contains("training.defenses.split_noise.scale"), "{e}");
        assert!(e.contains("training.defenses.top_k.keep"), "{e}");
        let unknown = BASELINES.replace("keep: 0.5", "keep: 0.5, k: 3");
        let e = from_str(&unknown, "b.yaml", &[]).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        let kind = BASELINES.replace("kind: laplace", "kind: cauchy");
        let e = from_str(&kind, "b.yaml", &[]).unwrap_err().to_string();
        assert!(e.contains("gaussian") && e.contains("laplace"), "{e}");
    }

    #[test]
    fn baseline_defenses_are_in_the_schema() {
        let fields = schema::fields();
        for path in [
            "training.defenses.nopeek.weight",
            "training.defenses.split_noise.kind",
            "training.defenses.split_noise.relative",
            "training.defenses.split_dropout.rescale",
            "training.defenses.top_k.keep",
            "training.defenses.shredder.lambda",
            "training.defenses.shredder.epochs",
        ] {
            assert!(fields.iter().any(|f| f.path == path), "{path}");
        }
    }
}
