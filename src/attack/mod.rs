//! Attacks that audit what the server's view still gives away (DESIGN section 9).
//!
//! Every attack receives exactly what the server would receive at a split
//! (after the run's defenses and obfuscation) and returns reconstructions or
//! predictions; the audit turns them into metrics and pictures.

pub mod attribute;
mod audit;
pub mod dci;
pub mod decoder;
pub mod diagnostics;
pub mod floors;
pub mod kinds;
pub mod obfuscation_study;
pub mod optimisation;
pub mod reidentify;
pub mod synthesis;

pub use attribute::{AttributeConfig, attribute_attack};
pub use audit::{
    AttackKind, AttackRecord, AuditConfig, AuditObserver, FeatureTransform, SplitSelection,
    attack_labels, curve_verdict, feature_set, run_audit, run_audit_with,
};
pub use decoder::{DecoderConfig, decoder_attack};
pub use floors::{Floors, judge_against_floors, measure_floors};
pub use reidentify::{Reidentifier, ReidentifyConfig};

use serde::{Deserialize, Serialize};

/// Which attacker a learned attack trains (issue: evidence; DESIGN 9).
///
/// Defense papers often evaluate with an attacker weaker than the one an
/// adversary would write: seed 001 (PATROL, section 5) and seed 004
/// (section 5.1) train their inversion and attribute models on the raw
/// features. A defense that only rescales the features (a Lipschitz term, a
/// noise scale) then looks effective against that attacker and not against
/// one that standardises first. The audit can run both and the report says
/// whether a defense's effect survives the adaptive one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AttackerVariant {
    /// Standardises the features with statistics of its own data (default).
    #[default]
    Adaptive,
    /// The papers' attacker: trains on the raw features.
    Paper,
}

impl AttackerVariant {
    /// True for the default, so recipes and reports that never name a
    /// variant keep their exact text.
    pub fn is_adaptive(&self) -> bool {
        *self == AttackerVariant::Adaptive
    }
}

/// Features the server receives for a set of images, with the images (the
/// attacker's auxiliary data, or ground truth for scoring).
#[derive(Clone, Debug)]
pub struct FeatureSet {
    /// Flattened features `[N, D]`.
    pub features: Vec<f32>,
    /// Shape of one example's features (`[C, h, w]` or `[D]`).
    pub feature_shape: Vec<usize>,
    /// Images `[N, C, H, W]`, pixels in [0, 1].
    pub images: Vec<f32>,
    /// Shape of one image.
    pub image_shape: [usize; 3],
}

impl FeatureSet {
    /// Feature dimension D.
    pub fn dim(&self) -> usize {
        self.feature_shape.iter().product()
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.features.len() / self.dim().max(1)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
