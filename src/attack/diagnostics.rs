//! What a learned attacker's own training says about it (DESIGN section 9:
//! "attackers are part of the measurement").
//!
//! A learned attacker is trained on a part of its own data and validated
//! after every epoch on the rest (never on the victims' `test` queries); the
//! epoch with the lowest validation loss is kept, training stops after
//! `patience` epochs without improvement, and both curves are returned. An
//! attacker whose validation loss never fell below its first value, or (a
//! classifier) whose validation accuracy is no better than always answering
//! its validation labels' majority class, did not learn what it was meant to:
//! its score is a lower bound on the leakage, not a measurement.
//!
//! The decoder (`decoder.rs`) predates this module and keeps its own loop;
//! the attribute attacker and DCI's inverses share [`fit_with_validation`].

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::data::stratified_indices;

/// An attacker's data split into the part it trains on and the part it
/// validates on; disjoint, and both drawn from the attacker's own data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holdout {
    /// Rows trained on (ascending).
    pub train: Vec<usize>,
    /// Rows validated on (ascending).
    pub validation: Vec<usize>,
}

impl Holdout {
    /// Holds out a seeded tenth of the rows `0..keys.len()`, stratified by
    /// `keys` (e.g. the attribute's labels; all equal for plain random).
    /// With two or more rows, at least one is held out and one is trained on.
    pub fn tenth<K: Ord + Clone>(keys: &[K], seed: u64) -> Self {
        let [mut train, mut validation, _] = stratified_indices(keys, [0.9, 0.1, 0.0], seed);
        if validation.is_empty() && train.len() >= 2 {
            validation = train.pop().into_iter().collect();
        }
        Self { train, validation }
    }
}

/// Per-epoch curves of one trained attacker and the epoch it kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    /// Mean training loss of each epoch (one entry per epoch trained).
    pub train: Vec<f64>,
    /// Validation loss after each epoch (one entry per epoch trained).
    pub validation: Vec<f64>,
    /// The epoch (1-based) whose weights were kept: the lowest validation
    /// loss (0 when nothing was trained).
    pub best_epoch: usize,
}

impl Curves {
    /// The training loss of the kept epoch (NaN when nothing was trained).
    pub fn best_train(&self) -> f64 {
        self.at(&self.train)
    }

    /// The validation loss of the kept epoch (NaN when nothing was trained).
    pub fn best_validation(&self) -> f64 {
        self.at(&self.validation)
    }

    fn at(&self, curve: &[f64]) -> f64 {
        self.best_epoch
            .checked_sub(1)
            .and_then(|i| curve.get(i))
            .copied()
            .unwrap_or(f64::NAN)
    }

    /// True when the validation loss never fell below its first value.
    pub fn loss_never_fell(&self) -> bool {
        loss_never_fell(&self.validation)
    }
}

/// True when no value of `validation` after the first is below the first
/// (also when the curve is empty or starts at NaN): the attacker did not
/// improve on what one epoch gave it. A one-epoch attacker is flagged.
pub fn loss_never_fell(validation: &[f64]) -> bool {
    match validation.split_first() {
        Some((first, rest)) => !rest.iter().any(|v| v < first),
        None => true,
    }
}

/// The under-trained flag of a learned attacker: its validation loss never
/// fell below its first value, or (for a classifier, `accuracy` = its
/// validation accuracy and the majority-class rate of its validation labels)
/// it is no better than always answering the majority class.
pub fn under_trained(validation: &[f64], accuracy: Option<(f64, f64)>) -> bool {
    loss_never_fell(validation)
        || accuracy.is_some_and(|(acc, majority)| acc.is_nan() || acc <= majority)
}

/// Trains for at most `epochs` epochs, validating after each, and returns
/// the weights of the epoch with the lowest validation loss with the curves.
/// `train_epoch(model, epoch)` runs one epoch (1-based) and returns the
/// model and its mean training loss; `validate` returns the validation loss.
/// Stops after `patience` epochs without improvement (0: never early).
///
/// The kept epoch is a deep copy (`valid()`, then `train()` on return): a
/// plain `clone()` of a burn module shares its batch-norm running
/// statistics with the original, so later epochs would change the "kept"
/// weights' statistics.
pub fn fit_with_validation<M: Module>(
    mut model: M,
    epochs: usize,
    patience: usize,
    mut train_epoch: impl FnMut(M, usize) -> (M, f64),
    mut validate: impl FnMut(&M) -> f64,
) -> (M, Curves) {
    let mut curves = Curves::default();
    let mut best: Option<(f64, M)> = None;
    let mut since_best = 0;
    for epoch in 1..=epochs {
        let (next, loss) = train_epoch(model, epoch);
        model = next;
        let val = validate(&model);
        curves.train.push(loss);
        curves.validation.push(val);
        if best.as_ref().is_none_or(|(b, _)| val < *b) {
            best = Some((val, model.valid()));
            curves.best_epoch = epoch;
            since_best = 0;
        } else {
            since_best += 1;
            if patience > 0 && since_best >= patience {
                break;
            }
        }
    }
    match best {
        Some((_, kept)) => (kept.train(), curves),
        None => (model, curves),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use burn::nn::{BatchNorm, BatchNormConfig};
    use burn::prelude::*;

    use super::*;

    #[test]
    fn holdout_is_a_disjoint_stratified_tenth() {
        let keys: Vec<u32> = (0..200).map(|i| u32::from(i < 40)).collect();
        let h = Holdout::tenth(&keys, 3);
        assert_eq!(h.validation.len(), 20);
        let mut all = [h.train.clone(), h.validation.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..200).collect::<Vec<_>>(), "disjoint, covers all");
        let ones = h.validation.iter().filter(|&&i| keys[i] == 1).count();
        assert_eq!(ones, 4, "a tenth of each stratum");
        assert_eq!(Holdout::tenth(&keys, 3), h);
        assert_ne!(Holdout::tenth(&keys, 4), h);
    }

    #[test]
    fn holdout_of_a_few_rows_still_validates_on_one() {
        let h = Holdout::tenth(&[0u8, 0, 0], 1);
        assert_eq!((h.train.len(), h.validation.len()), (2, 1));
        let h = Holdout::tenth(&[0u8], 1);
        assert_eq!((h.train.len(), h.validation.len()), (1, 0));
    }

    #[test]
    fn a_one_epoch_attacker_is_under_trained() {
        assert!(loss_never_fell(&[0.7]));
        assert!(under_trained(&[0.7], None));
        assert!(loss_never_fell(&[]));
        assert!(loss_never_fell(&[f64::NAN, 0.1]));
    }

    #[test]
    fn a_falling_validation_loss_is_not_flagged_unless_at_chance() {
        assert!(!under_trained(&[0.7, 0.6, 0.65], None));
        assert!(
            under_trained(&[0.7, 0.7, 0.8], None),
            "never below the first"
        );
        assert!(!under_trained(&[0.7, 0.5], Some((0.8, 0.5))));
        assert!(under_trained(&[0.7, 0.5], Some((0.5, 0.5))), "at majority");
        assert!(under_trained(&[0.7, 0.5], Some((0.4, 0.5))), "below");
    }

    /// Validation losses per epoch of the fitting tests.
    const VAL: [f64; 8] = [5.0, 3.0, 4.0, 2.0, 2.5, 2.6, 2.7, 1.0];

    /// Fits a batch-norm layer (momentum 1) whose epoch `e` sees a batch of
    /// mean `e`, so its running mean tells the epoch it was last trained in.
    fn fit(epochs: usize, patience: usize) -> (f32, Curves) {
        let device = Device::flex().autodiff();
        let bn = BatchNormConfig::new(1).with_momentum(1.0).init(&device);
        let epoch = Cell::new(0);
        let train_epoch = |bn: BatchNorm, e: usize| {
            let x = Tensor::<3>::from_data(TensorData::new(vec![e as f32; 4], [4, 1, 1]), &device);
            let _ = bn.forward(x);
            epoch.set(e);
            (bn, 10.0 - e as f64)
        };
        let validate = |_: &BatchNorm| VAL[epoch.get() - 1];
        let (bn, curves) = fit_with_validation(bn, epochs, patience, train_epoch, validate);
        let mean = crate::train::to_vec(bn.running_mean.value())[0];
        (mean, curves)
    }

    #[test]
    fn fit_keeps_the_best_epoch_and_stops_after_patience() {
        let (mean, c) = fit(VAL.len(), 3);
        assert_eq!(c.best_epoch, 4);
        assert_eq!(c.validation, VAL[..7], "stopped 3 epochs after the best");
        assert_eq!(c.train.len(), c.validation.len());
        assert_eq!((c.best_train(), c.best_validation()), (6.0, 2.0));
        // Regression: a plain clone shares batch-norm statistics, so the kept
        // copy would read a later epoch's mean (6 with a plain clone), not 4.
        assert_eq!(mean, 4.0, "the kept epoch's running statistics");
        let (mean, c) = fit(VAL.len(), 0);
        assert_eq!((c.best_epoch, c.train.len(), mean), (8, 8, 8.0));
        let (mean, c) = fit(0, 1);
        assert_eq!((c.best_epoch, mean), (0, 0.0));
        assert!(c.best_train().is_nan() && c.loss_never_fell());
    }
}
