//! Choosing the split: the best golden-zone candidate that fits the edge
//! compute budget (DESIGN.md section 8; seed 002, "Golden Partition Zone").
//!
//! Seed 002 reports that splits at or after the representational transition
//! all resist inversion far better than shallow ones (over 4x the
//! reconstruction MSE), so inside the zone privacy is taken as comparable and
//! edge compute is the cost. The rule:
//!
//! 1. Only golden-zone candidates whose `edge_flops <= budget` are eligible
//!    (all golden-zone candidates when there is no budget).
//! 2. If any eligible candidate carries a `score` (a measured privacy number
//!    where higher is better, e.g. an attack's reconstruction MSE), choose the
//!    highest score; eligible candidates without a score are not compared.
//!    Ties: fewer edge FLOPs, then the deeper split.
//! 3. Otherwise choose the cheapest eligible candidate (fewest edge FLOPs;
//!    with cumulative FLOPs that is the earliest split in the zone). Ties go
//!    to the deeper split, whose extra blocks (flatten, a free reshape) add
//!    depth at no cost.
//! 4. If none fits, nothing is chosen, and `nearest` names the golden-zone
//!    candidate with the fewest edge FLOPs, with its FLOPs against the budget
//!    in the reason.

use super::PartitionError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One candidate split point as the budget rule sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitCandidate {
    /// The split point: blocks `1..=split` run on the edge.
    pub split: usize,
    /// FLOPs of one forward pass of the edge part.
    pub edge_flops: u64,
    /// Whether the split lies in the golden partition zone.
    pub in_golden_zone: bool,
    /// Optional measured privacy score, higher is better (e.g. attack MSE).
    pub score: Option<f64>,
}

/// The outcome of [`choose_split`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitChoice {
    /// The chosen split point, if any golden-zone split fits the budget.
    pub chosen: Option<usize>,
    /// Why this split (or why none), in words, for logs and reports.
    pub reason: String,
    /// When nothing fits: the golden-zone split needing the fewest edge FLOPs.
    pub nearest: Option<usize>,
}

/// Picks the best golden-zone split within `budget_flops` (no limit when
/// `None`) by the rule in the module doc.
pub fn choose_split(
    candidates: &[SplitCandidate],
    budget_flops: Option<u64>,
) -> Result<SplitChoice, PartitionError> {
    if candidates.is_empty() {
        return Err(PartitionError::Empty {
            what: "split candidates",
        });
    }
    let mut seen = HashSet::new();
    for (index, c) in candidates.iter().enumerate() {
        if !seen.insert(c.split) {
            return Err(PartitionError::DuplicateSplit { split: c.split });
        }
        if let Some(value) = c.score.filter(|s| !s.is_finite()) {
            return Err(PartitionError::NonFinite {
                what: "candidate scores",
                index,
                value,
            });
        }
    }

    let zone: Vec<&SplitCandidate> = candidates.iter().filter(|c| c.in_golden_zone).collect();
    if zone.is_empty() {
        return Ok(SplitChoice {
            chosen: None,
            reason: "no candidate split is in the golden zone".to_string(),
            nearest: None,
        });
    }
    let budget_text = budget_flops.map_or_else(
        || "no edge budget: every split fits".to_string(),
        |b| format!("fitting the edge budget of {b} FLOPs"),
    );
    let fits: Vec<&SplitCandidate> = zone
        .iter()
        .copied()
        .filter(|c| budget_flops.is_none_or(|b| c.edge_flops <= b))
        .collect();

    // Fewest FLOPs, ties to the deeper split.
    let cheapest = |set: &[&SplitCandidate]| -> Option<SplitCandidate> {
        set.iter()
            .min_by(|a, b| a.edge_flops.cmp(&b.edge_flops).then(b.split.cmp(&a.split)))
            .map(|c| (*c).clone())
    };

    if fits.is_empty() {
        let near = cheapest(&zone).expect("the golden zone is non-empty here");
        let budget = budget_flops.expect("without a budget every zone split fits");
        return Ok(SplitChoice {
            chosen: None,
            reason: format!(
                "no golden-zone split fits the edge budget of {budget} FLOPs; the cheapest, split {}, needs {} FLOPs ({} over)",
                near.split,
                near.edge_flops,
                near.edge_flops - budget
            ),
            nearest: Some(near.split),
        });
    }

    let scored: Vec<(&SplitCandidate, f64)> = fits
        .iter()
        .filter_map(|c| c.score.map(|s| (*c, s)))
        .collect();
    let best_scored = scored.iter().max_by(|(a, sa), (b, sb)| {
        sa.total_cmp(sb)
            .then(b.edge_flops.cmp(&a.edge_flops))
            .then(a.split.cmp(&b.split))
    });
    let (chosen, reason) = match best_scored {
        Some((c, s)) => (
            c.split,
            format!(
                "split {}: highest score {s} among {} scored golden-zone splits, {budget_text} ({} edge FLOPs)",
                c.split,
                scored.len(),
                c.edge_flops
            ),
        ),
        None => {
            let c = cheapest(&fits).expect("at least one zone split fits here");
            (
                c.split,
                format!(
                    "split {}: cheapest of {} golden-zone splits, {budget_text} ({} edge FLOPs)",
                    c.split,
                    fits.len(),
                    c.edge_flops
                ),
            )
        }
    };
    Ok(SplitChoice {
        chosen: Some(chosen),
        reason,
        nearest: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits 1..=6 with cumulative FLOPs; the golden zone is splits 3..=6.
    fn table(scores: [Option<f64>; 6]) -> Vec<SplitCandidate> {
        let flops = [100, 300, 600, 1000, 1500, 1600];
        (0..6)
            .map(|i| SplitCandidate {
                split: i + 1,
                edge_flops: flops[i],
                in_golden_zone: i >= 2,
                score: scores[i],
            })
            .collect()
    }

    #[test]
    fn no_budget_picks_first_split_in_zone() {
        let c = choose_split(&table([None; 6]), None).unwrap();
        assert_eq!((c.chosen, c.nearest), (Some(3), None));
        assert!(c.reason.contains("no edge budget"), "{}", c.reason);
    }

    #[test]
    fn budget_picks_cheapest_zone_split_that_fits() {
        let c = choose_split(&table([None; 6]), Some(1200)).unwrap();
        assert_eq!(c.chosen, Some(3));
        assert!(c.reason.contains("600 edge FLOPs"), "{}", c.reason);
    }

    #[test]
    fn cheapest_wins_even_when_flops_are_not_monotone() {
        // A pruned deeper split can be cheaper than a shallower one.
        let mut t = table([None; 6]);
        t[2].edge_flops = 900;
        t[3].edge_flops = 700;
        assert_eq!(choose_split(&t, Some(1000)).unwrap().chosen, Some(4));
    }

    #[test]
    fn equal_flops_go_to_the_deeper_split() {
        let mut t = table([None; 6]);
        t[3].edge_flops = 600; // split 4 is a free flatten after split 3
        assert_eq!(choose_split(&t, None).unwrap().chosen, Some(4));
    }

    #[test]
    fn highest_score_among_those_that_fit() {
        let scores = [
            Some(0.5),
            Some(0.6),
            Some(0.02),
            Some(0.05),
            Some(0.09),
            Some(0.08),
        ];
        // Splits 1 and 2 score higher but are outside the zone.
        assert_eq!(
            choose_split(&table(scores), Some(1200)).unwrap().chosen,
            Some(4)
        );
        assert_eq!(choose_split(&table(scores), None).unwrap().chosen, Some(5));
    }

    #[test]
    fn unscored_candidates_are_not_compared_with_scored_ones() {
        let scores = [None, None, None, Some(0.01), None, None];
        assert_eq!(choose_split(&table(scores), None).unwrap().chosen, Some(4));
    }

    #[test]
    fn none_fits_names_the_nearest_and_its_flops() {
        let c = choose_split(&table([None; 6]), Some(500)).unwrap();
        assert_eq!((c.chosen, c.nearest), (None, Some(3)));
        assert!(c.reason.contains("600 FLOPs"), "{}", c.reason);
        assert!(c.reason.contains("500 FLOPs"), "{}", c.reason);
        assert!(c.reason.contains("100 over"), "{}", c.reason);
    }

    #[test]
    fn no_zone_candidates_chooses_nothing() {
        let mut t = table([None; 6]);
        t.iter_mut().for_each(|c| c.in_golden_zone = false);
        let c = choose_split(&t, None).unwrap();
        assert_eq!((c.chosen, c.nearest), (None, None));
    }

    #[test]
    fn candidates_cannot_be_empty() {
        assert!(matches!(
            choose_split(&[], None),
            Err(PartitionError::Empty { .. })
        ));
    }

    #[test]
    fn split_points_must_be_unique() {
        let mut t = table([None; 6]);
        t[4].split = 3;
        assert_eq!(
            choose_split(&t, None).unwrap_err(),
            PartitionError::DuplicateSplit { split: 3 }
        );
    }

    #[test]
    fn scores_must_be_finite() {
        let mut scores = [None; 6];
        scores[4] = Some(f64::NAN);
        let err = choose_split(&table(scores), None).unwrap_err();
        assert!(matches!(err, PartitionError::NonFinite { index: 4, .. }));
    }
}
