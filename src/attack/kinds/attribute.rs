//! Attribute inference (seed 004, section 5.1) as an audit attack: one
//! record per hidden attribute of the data (or those the recipe names).

use super::{Attack, SplitInputs, timed};
use crate::attack::attribute::{AttributeConfig, attribute_attack};
use crate::attack::{AttackRecord, AuditObserver, curve_verdict};
use crate::metrics::bootstrap_accuracy_ci;

/// An attacker with the server's architecture per attribute.
pub struct Attribute(pub AttributeConfig);

impl Attribute {
    /// The record for the attribute `name` of `at.test` (its values in
    /// `aux` are `aux_values`).
    fn one(
        &self,
        at: &SplitInputs,
        attr: &crate::data::Attribute,
        aux_values: &[u32],
    ) -> Result<AttackRecord, crate::Error> {
        let (ac, k, test) = (&self.0, at.split, at.test);
        let server = at.model.block_specs()[k..].to_vec();
        let out = attribute_attack(
            &at.aux_set.features,
            aux_values,
            at.test_features,
            &attr.values,
            &at.aux_set.feature_shape,
            attr.num_classes,
            &server,
            ac,
            at.seed ^ (k as u64).wrapping_mul(0xA77),
            at.device,
        )?;
        let mut record = AttackRecord {
            attribute: Some(attr.name.clone()),
            accuracy: Some(out.accuracy),
            accuracy_ci: bootstrap_accuracy_ci(
                out.accuracy,
                test.len(),
                at.ci_seed ^ attr.name.len() as u64,
            ),
            chance: Some(out.chance),
            details: serde_json::json!({
                "train_accuracy": out.train_accuracy,
                "validation_accuracy": out.validation_accuracy,
                "validation_chance": out.validation_chance,
                "best_epoch": out.best_epoch,
                "epochs_trained": out.validation_curve.len(),
                "train_curve": out.train_curve,
                "validation_curve": out.validation_curve,
                "train_accuracy_curve": out.train_accuracy_curve,
                "validation_accuracy_curve": out.validation_accuracy_curve,
                "train_rows": out.train_rows,
                "validation_rows": out.validation_rows,
                "feature_shape": at.aux_set.feature_shape,
                "aux_images": at.aux.len(),
                "test_images": test.len(),
            }),
            ..at.record("attribute")
        };
        if out.under_trained {
            record.flag(format!(
                "under-trained: on its own validation data its loss never fell below the first epoch's, or its accuracy ({:.3}) did not beat the majority rate ({:.3})",
                out.validation_accuracy, out.validation_chance
            ));
        }
        if let Some(why) = curve_verdict(&out.validation_curve, ac.epochs, 5) {
            record.flag(format!("under-trained: {why}"));
        }
        Ok(record)
    }
}

impl Attack for Attribute {
    fn run(
        &mut self,
        at: &SplitInputs,
        observer: &mut dyn AuditObserver,
    ) -> Result<Vec<AttackRecord>, crate::Error> {
        let mut records = Vec::new();
        for attr in &at.test.hidden {
            if self
                .0
                .attributes
                .as_ref()
                .is_some_and(|a| !a.contains(&attr.name))
            {
                continue;
            }
            let Some(aux_attr) = at.aux.hidden.iter().find(|a| a.name == attr.name) else {
                continue;
            };
            records.push(timed(at, observer, || {
                self.one(at, attr, &aux_attr.values)
            })?);
        }
        Ok(records)
    }
}
