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
pub mod optimisation;
pub mod synthesis;

pub use attribute::{AttributeConfig, attribute_attack};
pub use audit::{
    AttackKind, AttackRecord, AuditConfig, AuditObserver, FeatureTransform, SplitSelection,
    feature_set, run_audit, run_audit_with,
};
pub use decoder::{DecoderConfig, decoder_attack};

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
