//! Seeded, stratified three-way split: the model owner's `train` data, the
//! attacker's `aux` data and the victims' `test` queries (DESIGN.md §4).
//!
//! Strata are the pairs (target, first hidden attribute), so every part sees
//! the same mix of classes *and* of hidden groups; otherwise an attribute
//! inference score could come from a skewed split rather than from leakage.
//! Within a stratum the counts are the floors of `fraction * n`, and the few
//! left-over images go to the parts with a fractional remainder whose running
//! total (over the strata done so far) lags furthest behind its exact share.
//! So each stratum is within one image of its exact share, and the totals
//! stay within about one image too, instead of drifting towards whichever
//! part wins ties.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::dataset::Dataset;
use super::error::DataError;

/// The three disjoint parts of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// The model owner's training data.
    pub train: Dataset,
    /// The attacker's auxiliary data.
    pub aux: Dataset,
    /// The victims' queries every metric is computed on.
    pub test: Dataset,
}

/// Stratified by (target, first hidden attribute) jointly, seeded (rand_chacha ChaCha8Rng), disjoint.
///
/// `fractions` are (train, aux, test); each must be >= 0 and they must sum
/// to 1 within 1e-6. Every image lands in exactly one part; each part keeps
/// the original order of its images and is named `<name>/train` etc. The same
/// `seed` always gives the same split.
pub fn stratified_split(ds: &Dataset, fractions: [f64; 3], seed: u64) -> Result<Splits, DataError> {
    let sum: f64 = fractions.iter().sum();
    if fractions.iter().any(|f| !f.is_finite() || *f < 0.0) || (sum - 1.0).abs() > 1e-6 {
        return Err(DataError::Fractions { fractions, sum });
    }
    let shares = fractions.map(|f| f / sum);
    let first_hidden = ds.hidden.first();
    let mut strata: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
    for (i, &t) in ds.targets.iter().enumerate() {
        let h = first_hidden.map_or(0, |a| a.values[i]);
        strata.entry((t, h)).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut parts: [Vec<usize>; 3] = Default::default();
    let mut lag = [0.0f64; 3];
    for mut members in strata.into_values() {
        members.shuffle(&mut rng);
        let counts = allocate(members.len(), &shares, &mut lag);
        let mut rest = members.as_slice();
        for (part, &count) in parts.iter_mut().zip(&counts) {
            let (head, tail) = rest.split_at(count);
            part.extend_from_slice(head);
            rest = tail;
        }
        assert!(rest.is_empty(), "allocate should hand out every image");
    }
    let [train, aux, test] = parts.map(|mut p| {
        p.sort_unstable();
        p
    });
    let named = |indices: &[usize], part: &str| {
        let mut sub = ds.subset(indices);
        sub.name = format!("{}/{part}", ds.name);
        sub
    };
    Ok(Splits {
        train: named(&train, "train"),
        aux: named(&aux, "aux"),
        test: named(&test, "test"),
    })
}

/// Splits `n` images by `shares` (summing to 1): floors first, then one more
/// for parts with a fractional remainder, most-lagging first. `lag` carries
/// each part's (exact - given) total across strata.
fn allocate(n: usize, shares: &[f64; 3], lag: &mut [f64; 3]) -> [usize; 3] {
    let exact = shares.map(|s| s * n as f64);
    let mut counts = exact.map(|e| e.floor() as usize);
    let mut left = n.saturating_sub(counts.iter().sum());
    let remainder = |j: usize, counts: &[usize; 3]| exact[j] - counts[j] as f64;
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by(|&a, &b| {
        let key = |j: usize| {
            let r = remainder(j, &counts);
            (r > 1e-9, lag[j] + r)
        };
        let (ka, kb) = (key(a), key(b));
        kb.0.cmp(&ka.0).then(kb.1.total_cmp(&ka.1)).then(a.cmp(&b))
    });
    for &j in order.iter().cycle().take(3 * left) {
        if left == 0 {
            break;
        }
        counts[j] += 1;
        left -= 1;
    }
    for j in 0..3 {
        lag[j] += exact[j] - counts[j] as f64;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::tests::toy;

    /// Original indices of a part (toy pixels encode the index).
    fn indices(part: &Dataset) -> Vec<usize> {
        (0..part.len()).map(|i| part.image(i)[0] as usize).collect()
    }

    #[test]
    fn split_is_disjoint_and_covers_everything() {
        let ds = toy(103, 4);
        let s = stratified_split(&ds, [0.6, 0.2, 0.2], 7).unwrap();
        let mut all: Vec<usize> = [&s.train, &s.aux, &s.test]
            .iter()
            .flat_map(|p| indices(p))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        for p in [&s.train, &s.aux, &s.test] {
            assert!(p.validate().is_ok());
            let idx = indices(p);
            assert!(idx.windows(2).all(|w| w[0] < w[1]), "order kept");
            // Labels and attributes travel with their image.
            for (k, &i) in idx.iter().enumerate() {
                assert_eq!(p.targets[k], ds.targets[i]);
                assert_eq!(p.hidden[0].values[k], ds.hidden[0].values[i]);
            }
        }
        assert_eq!(s.aux.name, "toy/aux");
    }

    #[test]
    fn split_proportions_within_one_per_stratum() {
        let ds = toy(257, 5);
        let f = [0.55, 0.3, 0.15];
        let s = stratified_split(&ds, f, 1).unwrap();
        for t in 0..5u32 {
            for h in 0..2u32 {
                let in_stratum = |d: &Dataset| {
                    (0..d.len())
                        .filter(|&i| d.targets[i] == t && d.hidden[0].values[i] == h)
                        .count()
                };
                let n = in_stratum(&ds) as f64;
                for (part, share) in [&s.train, &s.aux, &s.test].iter().zip(f) {
                    let got = in_stratum(part) as f64;
                    assert!(
                        (got - share * n).abs() < 1.0,
                        "stratum ({t},{h}): {got} vs {}",
                        share * n
                    );
                }
            }
        }
    }

    #[test]
    fn split_ties_do_not_pile_up_on_one_part() {
        // 40 strata of 10 at (0.5, 0.25, 0.25): each stratum has 2.5 + 2.5.
        let mut ds = toy(400, 40);
        ds.hidden.clear();
        let s = stratified_split(&ds, [0.5, 0.25, 0.25], 3).unwrap();
        assert_eq!((s.train.len(), s.aux.len(), s.test.len()), (200, 100, 100));
    }

    #[test]
    fn split_zero_fraction_gives_empty_part() {
        let ds = toy(50, 3);
        let s = stratified_split(&ds, [0.5, 0.5, 0.0], 0).unwrap();
        assert!(s.test.is_empty());
        assert_eq!(s.train.len() + s.aux.len(), 50);
    }

    #[test]
    fn split_same_seed_same_split_different_seed_differs() {
        let ds = toy(200, 4);
        let a = stratified_split(&ds, [0.5, 0.3, 0.2], 42).unwrap();
        let b = stratified_split(&ds, [0.5, 0.3, 0.2], 42).unwrap();
        let c = stratified_split(&ds, [0.5, 0.3, 0.2], 43).unwrap();
        assert_eq!(a, b);
        assert_ne!(indices(&a.train), indices(&c.train));
        assert_eq!(a.train.len(), c.train.len());
    }

    #[test]
    fn split_fractions_must_sum_to_one() {
        let ds = toy(10, 2);
        let err = stratified_split(&ds, [0.5, 0.3, 0.3], 0).unwrap_err();
        assert!(err.to_string().contains("[0.5, 0.3, 0.3]"), "{err}");
        assert!(err.to_string().contains("sum to 1.1"), "{err}");
        assert!(stratified_split(&ds, [0.5, 0.5 + 1e-7, 0.0], 0).is_ok());
    }

    #[test]
    fn split_fractions_cannot_be_negative_or_nan() {
        let ds = toy(10, 2);
        assert!(stratified_split(&ds, [1.2, -0.2, 0.0], 0).is_err());
        assert!(stratified_split(&ds, [f64::NAN, 0.5, 0.5], 0).is_err());
    }

    #[test]
    fn split_of_empty_dataset_is_empty() {
        let ds = toy(0, 2);
        let s = stratified_split(&ds, [0.6, 0.2, 0.2], 0).unwrap();
        assert!(s.train.is_empty() && s.aux.is_empty() && s.test.is_empty());
    }
}
