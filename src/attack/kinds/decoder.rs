//! The learned decoder inversion (DESIGN 9.1) as an audit attack.

use super::{OneRecord, SplitInputs, reconstruction_record};
use crate::attack::AttackRecord;
use crate::attack::curve_verdict;
use crate::attack::decoder::{DecoderConfig, decoder_attack};

/// A decoder trained on the attacker's data at each split.
pub struct Decoder(pub DecoderConfig);

impl OneRecord for Decoder {
    fn record(&mut self, at: &SplitInputs) -> Result<AttackRecord, crate::Error> {
        let (dc, test, k) = (&self.0, at.test, at.split);
        let out = decoder_attack(
            at.aux_set,
            at.test_features,
            dc,
            at.seed ^ k as u64,
            at.device,
        );
        let mut record = reconstruction_record(
            at.record("decoder"),
            &test.images,
            &out.reconstructions,
            test.shape,
            at.scoring,
            at.ci_seed,
        )?
        .0;
        if let Some(why) = curve_verdict(&out.validation_curve, dc.epochs, 5) {
            record.flag(format!("under-trained: {why}"));
        }
        record.details = serde_json::json!({
            "validation_mse": out.validation_mse,
            "best_epoch": out.best_epoch,
            "epochs_trained": out.validation_curve.len(),
            "train_curve": out.train_curve,
            "validation_curve": out.validation_curve,
            "attempts": out.attempts,
            "collapsed_attempts": out.collapsed,
            "feature_shape": at.aux_set.feature_shape,
            "aux_images": at.aux.len(),
            "test_images": test.len(),
        });
        Ok(record)
    }
}
