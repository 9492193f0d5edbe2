//! The `training.defenses:` recipe section: one optional sub-section per
//! defense, keyed by its name, so defenses combine freely and a sweep can
//! address `training.defenses.<name>.<field>`.

use serde::{Deserialize, Serialize};

use super::{
    AdversarialConfig, AdversarialReconstruction, Defense, LabelSmoothing, Lipschitz,
    LipschitzConfig,
};

/// Label smoothing settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSmoothingConfig {
    /// Signed strength `s` in (-1, 1): `1 - s` on the true class (seed 002 uses 0.3).
    pub strength: f32,
}

/// All training defenses; absent ones are off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
}

impl DefensesConfig {
    /// Builds the configured defenses, in a fixed order.
    pub fn build(&self) -> Vec<Box<dyn Defense>> {
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
        p
    }

    /// True when a defense acts on the split features during training (all
    /// but label smoothing), so the split must be fixed before training.
    pub fn needs_split(&self) -> bool {
        self.names().iter().any(|n| *n != "label_smoothing")
    }

    /// Names of the enabled defenses.
    pub fn names(&self) -> Vec<&'static str> {
        self.build().iter().map(|d| d.name()).collect()
    }
}
