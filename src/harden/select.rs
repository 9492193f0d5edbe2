//! The search's decisions as pure functions over numbers: which candidates
//! are within the budgets, which survive a rung of successive halving, the
//! Pareto front, the chosen deployment, the deterministic sample of a large
//! grid, and a shard's share. The search ([`super::search`]) only feeds
//! them what the runs measured, so each rule is tested on hand-made numbers.

use std::cmp::Ordering;

/// What one evaluation contributes to the decisions.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// Candidate id (`reference`, `c000`, ...).
    pub id: String,
    /// Target accuracy on `test`, 0..1.
    pub accuracy: f64,
    /// Leakage: the upper end of the strongest reconstruction attack's PSNR
    /// interval at the deployed split (dB; lower is more private).
    pub leakage: f64,
    /// Edge FLOPs per query at the deployed split.
    pub edge_flops: u64,
}

/// Why a candidate is out of the running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within both budgets.
    Within,
    /// Loses more accuracy than allowed.
    OverAccuracy,
    /// Spends more edge FLOPs than allowed.
    OverEdge,
}

/// Accuracy lost against the reference, in percentage points (negative:
/// gained).
pub fn drop_points(reference_accuracy: f64, accuracy: f64) -> f64 {
    100.0 * (reference_accuracy - accuracy)
}

/// Whether `s` is within `max_drop` points of `reference_accuracy` and
/// within the edge budget (a tiny tolerance keeps a drop of exactly the
/// budget inside despite rounding).
pub fn verdict(s: &Scored, reference_accuracy: f64, max_drop: f64, edge: Option<u64>) -> Verdict {
    if edge.is_some_and(|b| s.edge_flops > b) {
        Verdict::OverEdge
    } else if drop_points(reference_accuracy, s.accuracy)
        .partial_cmp(&(max_drop + 1e-9))
        .is_none_or(|o| o == Ordering::Greater)
    {
        // (A NaN accuracy is over the budget, never within it.)
        Verdict::OverAccuracy
    } else {
        Verdict::Within
    }
}

/// Order of preference: less leakage, then more accuracy, then the
/// undefended reference (a defense that changes nothing is not chosen over
/// no defense), then id.
fn better(a: &Scored, b: &Scored) -> Ordering {
    let defended = |s: &Scored| s.id != "reference";
    a.leakage
        .total_cmp(&b.leakage)
        .then(b.accuracy.total_cmp(&a.accuracy))
        .then(defended(a).cmp(&defended(b)))
        .then(a.id.cmp(&b.id))
}

/// One rung of successive halving (Jamieson & Talwalkar, AISTATS 2016,
/// Algorithm 1; Li et al., JMLR 2018, "Hyperband"): of the candidates within
/// the budgets, the `ceil(n / eta)` least leaking go on (ties: more
/// accuracy, then id). Returns their ids in preference order.
pub fn halve(within: &[Scored], eta: usize) -> Vec<String> {
    let keep = within.len().div_ceil(eta.max(1));
    let mut sorted: Vec<&Scored> = within.iter().collect();
    sorted.sort_by(|a, b| better(a, b));
    sorted
        .into_iter()
        .take(keep)
        .map(|s| s.id.clone())
        .collect()
}

/// Indices of the Pareto front (more accuracy and less leakage are both
/// better): the points no other point matches or beats on both while
/// beating on one. In input order.
pub fn pareto_front(points: &[Scored]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| {
            let p = &points[i];
            !points.iter().any(|q| {
                q.accuracy >= p.accuracy
                    && q.leakage <= p.leakage
                    && (q.accuracy > p.accuracy || q.leakage < p.leakage)
            })
        })
        .collect()
}

/// The deployment: of the points within the budgets, the least leaking
/// (ties: more accuracy, then id); `None` when none is within them.
pub fn choose(
    points: &[Scored],
    reference_accuracy: f64,
    max_drop: f64,
    edge: Option<u64>,
) -> Option<usize> {
    (0..points.len())
        .filter(|&i| verdict(&points[i], reference_accuracy, max_drop, edge) == Verdict::Within)
        .min_by(|&a, &b| better(&points[a], &points[b]))
}

/// The `i`-th output of SplitMix64 from `seed` (Steele, Lea & Flood,
/// OOPSLA 2014).
fn splitmix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `k` of `0..n` without replacement, deterministic in `seed`, in ascending
/// order (a partial Fisher-Yates shuffle); all of them when `k >= n`.
pub fn sample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if k >= n {
        return idx;
    }
    for i in 0..k {
        let j = i + (splitmix(seed, i as u64) % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut out = idx[..k].to_vec();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, accuracy: f64, leakage: f64) -> Scored {
        Scored {
            id: id.into(),
            accuracy,
            leakage,
            edge_flops: 100,
        }
    }

    #[test]
    fn the_front_keeps_exactly_the_undominated_points() {
        // Hand-made: b dominates d (more accuracy, less leakage); c trades
        // accuracy for privacy; e ties a exactly (both stay).
        let pts = [
            s("a", 0.95, 20.0),
            s("b", 0.94, 16.0),
            s("c", 0.90, 12.0),
            s("d", 0.93, 17.0),
            s("e", 0.95, 20.0),
            s("f", 0.95, 21.0),
        ];
        assert_eq!(pareto_front(&pts), [0, 1, 2, 4]);
        // A naive recomputation: i is on the front iff no j is >= on both
        // and > on one.
        for (i, p) in pts.iter().enumerate() {
            let dominated = pts.iter().any(|q| {
                (q.accuracy > p.accuracy && q.leakage <= p.leakage)
                    || (q.accuracy >= p.accuracy && q.leakage < p.leakage)
            });
            assert_eq!(pareto_front(&pts).contains(&i), !dominated, "{}", p.id);
        }
    }

    #[test]
    fn a_candidate_over_the_accuracy_budget_is_never_chosen() {
        // c leaks least but loses 5 points; b loses 1.0 (exactly the budget).
        let pts = [
            s("reference", 0.95, 20.0),
            s("b", 0.94, 16.0),
            s("c", 0.90, 12.0),
        ];
        assert_eq!(choose(&pts, 0.95, 1.0, None), Some(1));
        assert_eq!(verdict(&pts[2], 0.95, 1.0, None), Verdict::OverAccuracy);
        // With a budget of 0.5 points only the reference is left.
        assert_eq!(choose(&pts, 0.95, 0.5, None), Some(0));
        // Nothing within a budget no point meets.
        assert_eq!(choose(&pts[1..], 0.99, 0.5, None), None);
    }

    #[test]
    fn a_candidate_over_the_edge_budget_is_never_chosen() {
        let mut cheap = s("cheap", 0.95, 18.0);
        cheap.edge_flops = 50;
        let pts = [s("big", 0.95, 10.0), cheap];
        assert_eq!(choose(&pts, 0.95, 1.0, Some(60)), Some(1));
        assert_eq!(verdict(&pts[0], 0.95, 1.0, Some(60)), Verdict::OverEdge);
    }

    #[test]
    fn halving_keeps_the_least_leaking_third_rounded_up() {
        let pts = [
            s("c0", 0.9, 15.0),
            s("c1", 0.9, 11.0),
            s("c2", 0.9, 13.0),
            s("c3", 0.9, 12.0),
        ];
        assert_eq!(halve(&pts, 3), ["c1", "c3"]);
        assert_eq!(halve(&pts, 2), ["c1", "c3"]);
        assert_eq!(halve(&pts[..1], 3), ["c0"]);
        assert!(halve(&[], 3).is_empty());
        // Ties in leakage go to the more accurate.
        let tie = [s("x", 0.8, 10.0), s("y", 0.9, 10.0)];
        assert_eq!(halve(&tie, 2), ["y"]);
    }

    #[test]
    fn sampling_is_deterministic_without_replacement() {
        let a = sample(20, 5, 42);
        assert_eq!(a, sample(20, 5, 42));
        assert_eq!(a.len(), 5);
        let mut d = a.clone();
        d.dedup();
        assert_eq!(d, a, "sorted and distinct");
        assert!(a.iter().all(|&i| i < 20));
        assert_ne!(a, sample(20, 5, 43));
        assert_eq!(sample(3, 5, 1), [0, 1, 2]);
    }
}
