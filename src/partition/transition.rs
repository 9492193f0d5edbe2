//! Representational-transition detection and the golden partition zone.
//!
//! Source: seed 002, "Golden Partition Zone" (arXiv 2506.15412), as
//! summarised in `seeds/README.md`: over the candidate splits in network
//! order, take the relative drop of R_c^2 between consecutive candidates,
//! `drop_k = (v[k-1] - v[k]) / v[k-1]`, and place the transition at the
//! candidate after the largest drop; when the two largest drops are close,
//! report both layers. The golden zone is every candidate at and after the
//! transition, decision layers included (DESIGN.md section 8).
//!
//! The input is any per-candidate curve where a sharp *fall* marks the
//! transition (R_c^2, its normalised form, or the conditional entropy per
//! dimension); indices here are positions in that list, not split numbers.
//! A relative drop is only meaningful from a positive value, so a candidate
//! whose predecessor is `<= 0` gets drop 0. A curve with no positive drop at
//! all (flat or increasing) has no transition: [`detect_transition`] returns
//! `None`, and the caller decides (the natural fallback is the decision
//! layer, the last candidate).

use super::PartitionError;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Where the representational transition lies in a list of candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Candidate index right after the largest relative drop.
    pub primary: usize,
    /// Candidate index after the second-largest drop, when that drop is
    /// within the margin of the largest.
    pub secondary: Option<usize>,
    /// Relative drop into each candidate, aligned with the input:
    /// `drops[0] = 0`, `drops[k] = (v[k-1] - v[k]) / v[k-1]` (0 when
    /// `v[k-1] <= 0`). Negative values are rises.
    pub drops: Vec<f64>,
}

impl Transition {
    /// The first candidate of the golden zone: the earlier of the primary and
    /// secondary transitions.
    pub fn start(&self) -> usize {
        self.secondary.map_or(self.primary, |s| s.min(self.primary))
    }
}

/// Finds the candidate after the largest relative drop of `values` (one value
/// per candidate split, in network order). `margin` in `[0, 1]` says how close
/// the second-largest drop must be to be reported too: it qualifies when
/// `d2 >= (1 - margin) * d1`, so 0.1 means "within 10% of the largest".
/// Ties go to the earlier candidate. Returns `Ok(None)` when no drop is
/// positive (see the module doc).
pub fn detect_transition(
    values: &[f64],
    margin: f64,
) -> Result<Option<Transition>, PartitionError> {
    if values.len() < 2 {
        return Err(PartitionError::TooFewCandidates { got: values.len() });
    }
    if !(0.0..=1.0).contains(&margin) {
        return Err(PartitionError::InvalidMargin { margin });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(PartitionError::NonFinite {
            what: "candidate values",
            index,
            value,
        });
    }

    let mut drops = Vec::with_capacity(values.len());
    drops.push(0.0);
    drops.extend(values.windows(2).map(|w| {
        if w[0] > 0.0 {
            (w[0] - w[1]) / w[0]
        } else {
            0.0
        }
    }));

    let Some(primary) = largest_positive(&drops, None) else {
        return Ok(None);
    };
    let threshold = (1.0 - margin) * drops[primary];
    let secondary = largest_positive(&drops, Some(primary)).filter(|&k| drops[k] >= threshold);
    Ok(Some(Transition {
        primary,
        secondary,
        drops,
    }))
}

/// Index of the largest strictly positive drop, skipping `except`; the
/// earliest one on ties.
fn largest_positive(drops: &[f64], except: Option<usize>) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (k, &d) in drops.iter().enumerate() {
        if Some(k) == except || d <= 0.0 {
            continue;
        }
        if best.is_none_or(|b| d > drops[b]) {
            best = Some(k);
        }
    }
    best
}

/// The golden partition zone: candidate indices from the transition (the
/// earlier of primary and secondary) to the last of `n_candidates`, decision
/// layers included.
pub fn golden_zone(
    transition: &Transition,
    n_candidates: usize,
) -> Result<Range<usize>, PartitionError> {
    let last = transition
        .secondary
        .map_or(transition.primary, |s| s.max(transition.primary));
    if last >= n_candidates {
        return Err(PartitionError::TransitionOutOfRange {
            index: last,
            n_candidates,
        });
    }
    Ok(transition.start()..n_candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive relative drops, straight from the definition.
    fn naive_drops(v: &[f64]) -> Vec<f64> {
        let mut d = vec![0.0];
        for k in 1..v.len() {
            d.push(if v[k - 1] > 0.0 {
                (v[k - 1] - v[k]) / v[k - 1]
            } else {
                0.0
            });
        }
        d
    }

    #[test]
    fn one_sharp_drop_is_the_transition() {
        // Drops: 0.1, 0.056, 0.765, 0.1, 0.056: the sharp one is into index 3.
        let v = [10.0, 9.0, 8.5, 2.0, 1.8, 1.7];
        let t = detect_transition(&v, 0.1).unwrap().unwrap();
        assert_eq!(t.primary, 3);
        assert_eq!(t.secondary, None);
        for (a, b) in t.drops.iter().zip(naive_drops(&v)) {
            assert!((a - b).abs() < 1e-15);
        }
        assert!((t.drops[3] - 6.5 / 8.5).abs() < 1e-15);
        assert_eq!(golden_zone(&t, v.len()).unwrap(), 3..6);
    }

    #[test]
    fn two_close_drops_give_both_and_the_zone_starts_at_the_earlier() {
        // Drops: 0.48 into 1, 0.038 into 2, 0.52 into 3; 0.48 >= 0.9 * 0.52.
        let v = [10.0, 5.2, 5.0, 2.4];
        let t = detect_transition(&v, 0.1).unwrap().unwrap();
        assert_eq!((t.primary, t.secondary), (3, Some(1)));
        assert_eq!(t.start(), 1);
        assert_eq!(golden_zone(&t, 4).unwrap(), 1..4);
    }

    #[test]
    fn drops_outside_the_margin_give_only_the_primary() {
        let v = [10.0, 5.2, 5.0, 2.4];
        let t = detect_transition(&v, 0.05).unwrap().unwrap();
        assert_eq!((t.primary, t.secondary), (3, None));
        assert_eq!(golden_zone(&t, 4).unwrap(), 3..4);
    }

    #[test]
    fn equal_drops_break_ties_to_the_earlier_candidate() {
        let v = [8.0, 4.0, 2.0];
        let t = detect_transition(&v, 0.0).unwrap().unwrap();
        assert_eq!((t.primary, t.secondary), (1, Some(2)));
    }

    #[test]
    fn monotone_increasing_sequence_has_no_transition() {
        assert_eq!(
            detect_transition(&[1.0, 2.0, 3.0, 10.0], 0.1).unwrap(),
            None
        );
        assert_eq!(detect_transition(&[4.0, 4.0, 4.0], 0.1).unwrap(), None);
    }

    #[test]
    fn drop_from_a_non_positive_value_counts_as_zero() {
        assert_eq!(detect_transition(&[0.0, -1.0, -5.0], 0.1).unwrap(), None);
        let t = detect_transition(&[-1.0, 2.0, 1.0], 0.1).unwrap().unwrap();
        assert_eq!(t.drops, vec![0.0, 0.0, 0.5]);
        assert_eq!(t.primary, 2);
    }

    #[test]
    fn need_at_least_two_candidates() {
        assert_eq!(
            detect_transition(&[1.0], 0.1).unwrap_err(),
            PartitionError::TooFewCandidates { got: 1 }
        );
        assert!(detect_transition(&[], 0.1).is_err());
    }

    #[test]
    fn margin_must_be_in_unit_interval() {
        for m in [-0.1, 1.5, f64::NAN] {
            assert!(matches!(
                detect_transition(&[2.0, 1.0], m),
                Err(PartitionError::InvalidMargin { .. })
            ));
        }
    }

    #[test]
    fn non_finite_value_is_named() {
        let err = detect_transition(&[2.0, f64::NAN, 1.0], 0.1).unwrap_err();
        assert!(matches!(err, PartitionError::NonFinite { index: 1, .. }));
    }

    #[test]
    fn golden_zone_rejects_transition_past_the_candidates() {
        let t = Transition {
            primary: 2,
            secondary: Some(5),
            drops: vec![0.0; 3],
        };
        assert_eq!(
            golden_zone(&t, 3).unwrap_err(),
            PartitionError::TransitionOutOfRange {
                index: 5,
                n_candidates: 3
            }
        );
    }
}
