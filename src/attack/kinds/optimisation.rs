//! The white-box optimisation inversion (DESIGN 9.2) as an audit attack.

use super::{OneRecord, SplitInputs, inversion_error, reconstruction_record};
use crate::attack::AttackRecord;
use crate::attack::optimisation::{OptimisationConfig, optimisation_attack};

/// Gradient descent on the input, per query, through the edge.
pub struct Optimisation(pub OptimisationConfig);

impl OneRecord for Optimisation {
    fn record(&mut self, at: &SplitInputs) -> Result<AttackRecord, crate::Error> {
        let (oc, test, k) = (&self.0, at.test, at.split);
        let q = oc.query_count(test.len());
        let dim = at.test_features.len() / test.len().max(1);
        let out = optimisation_attack(
            at.model,
            k,
            &at.test_features[..q * dim],
            oc,
            at.seed ^ k as u64,
            at.device,
        )
        .map_err(|e| inversion_error(at.label, k, e))?;
        let originals = &test.images[..q * test.image_len()];
        let (mut record, _) = reconstruction_record(
            at.record("optimisation"),
            originals,
            &out.reconstructions,
            test.shape,
            at.scoring,
            at.ci_seed,
        )?;
        let fe = &out.feature_error;
        record.details = serde_json::json!({
            "queries": q,
            "feature_relative_error": fe.iter().sum::<f64>() / fe.len().max(1) as f64,
            "steps": oc.steps,
            "tv_weight": oc.tv_weight,
            "test_images": test.len(),
        });
        Ok(record)
    }
}
