//! Seeded, stratified three-way split: the model owner's `train` data, the
//! attacker's `aux` data and the victims' `test` queries (DESIGN.md §4), and
//! the seeded stratified subsample behind `data.limit`.
//!
//! Strata are the pairs (target, first hidden attribute) for the split, and
//! (target, every hidden attribute) for the subsample, so every part sees
//! the same mix of classes *and* of hidden groups; otherwise an attribute
//! inference score could come from a skewed split rather than from leakage
//! (the embedded MNIST lists its 5,000 Census Bureau writers first, so its
//! first 1,000 images hold one writer group only).
//! Within a stratum the counts are the floors of `fraction * n`, and the few
//! left-over images go to the parts with a fractional remainder whose running
//! total (over the strata done so far) lags furthest behind its exact share.
//! So each stratum is within one image of its exact share, and the totals
//! stay within about one image too, instead of drifting towards whichever
//! part wins ties. With two parts (keep, drop) the running lag stays within
//! half an image, so a subsample of `n` images keeps exactly `n`.
//! [`stratified_indices`] does this for any list of stratum keys; the split,
//! the subsample and the attackers' validation hold-outs all use it.

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
    let keys: Vec<(u32, u32)> = (0..ds.len())
        .map(|i| (ds.targets[i], first_hidden.map_or(0, |a| a.values[i])))
        .collect();
    let [train, aux, test] = stratified_indices(&keys, shares, seed);
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

/// Stream of the subsample's generator, so that a subsample and the split
/// made from it with the same seed draw independent shuffles.
const SUBSAMPLE_STREAM: u64 = 0x5_1AB5;

/// A seeded subsample of `n` images (all of them when `n >= len()`),
/// stratified by the target and every hidden attribute jointly, in the
/// original order (`data.limit`). Each stratum keeps its share of `n`
/// within one image, the total is exactly `n`, and the same `seed` always
/// keeps the same images.
pub fn stratified_subsample(ds: &Dataset, n: usize, seed: u64) -> Dataset {
    if n >= ds.len() {
        return ds.clone();
    }
    let keys: Vec<Vec<u32>> = (0..ds.len())
        .map(|i| {
            std::iter::once(ds.targets[i])
                .chain(ds.hidden.iter().map(|a| a.values[i]))
                .collect()
        })
        .collect();
    let keep = n as f64 / ds.len() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(SUBSAMPLE_STREAM);
    let [kept, _, _] = stratified_indices_with(&keys, [keep, 1.0 - keep, 0.0], &mut rng);
    ds.subset(&kept)
}

/// Splits the indices `0..keys.len()` into three disjoint parts by `shares`
/// (>= 0, summing to 1), stratified by `keys` (items with equal keys form a
/// stratum), seeded; each part is sorted (original order).
pub fn stratified_indices<K: Ord + Clone>(
    keys: &[K],
    shares: [f64; 3],
    seed: u64,
) -> [Vec<usize>; 3] {
    stratified_indices_with(keys, shares, &mut ChaCha8Rng::seed_from_u64(seed))
}

fn stratified_indices_with<K: Ord + Clone>(
    keys: &[K],
    shares: [f64; 3],
    rng: &mut ChaCha8Rng,
) -> [Vec<usize>; 3] {
    let mut strata: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        strata.entry(k.clone()).or_default().push(i);
    }
    let mut parts: [Vec<usize>; 3] = Default::default();
    let mut lag = [0.0f64; 3];
    for mut members in strata.into_values() {
        members.shuffle(rng);
        let counts = allocate(members.len(), &shares, &mut lag);
        let mut rest = members.as_slice();
        for (part, &count) in parts.iter_mut().zip(&counts) {
            let (head, tail) = rest.split_at(count);
            part.extend_from_slice(head);
            rest = tail;
        }
        assert!(rest.is_empty(), "allocate should hand out every image");
    }
    parts.map(|mut p| {
        p.sort_unstable();
        p
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
    use crate::data::dataset::Attribute;
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
    fn subsample_is_exact_stratified_ordered_and_seeded() {
        // Two hidden attributes: the strata are (target, parity, third).
        let mut ds = toy(300, 3);
        ds.hidden.push(Attribute {
            name: "third".into(),
            values: (0..300u32).map(|i| u32::from(i % 3 == 0)).collect(),
            num_classes: 2,
        });
        let a = stratified_subsample(&ds, 100, 5);
        assert_eq!(a.len(), 100);
        let idx = indices(&a);
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "order kept");
        let share = 100.0 / 300.0;
        for t in 0..3u32 {
            for p in 0..2u32 {
                for q in 0..2u32 {
                    let count = |d: &Dataset| {
                        (0..d.len())
                            .filter(|&i| {
                                d.targets[i] == t
                                    && d.hidden[0].values[i] == p
                                    && d.hidden[1].values[i] == q
                            })
                            .count() as f64
                    };
                    let (got, want) = (count(&a), share * count(&ds));
                    assert!((got - want).abs() < 1.0, "({t},{p},{q}): {got} vs {want}");
                }
            }
        }
        assert_eq!(stratified_subsample(&ds, 100, 5), a, "same seed");
        assert_ne!(
            indices(&stratified_subsample(&ds, 100, 6)),
            idx,
            "other seed"
        );
        assert_eq!(stratified_subsample(&ds, 300, 5), ds);
        assert_eq!(stratified_subsample(&ds, 999, 5), ds);
    }

    #[test]
    fn subsample_total_is_exact_for_awkward_sizes() {
        let ds = toy(257, 7);
        for n in [1, 2, 30, 31, 100, 128, 255, 256] {
            assert_eq!(stratified_subsample(&ds, n, 3).len(), n, "n = {n}");
        }
    }

    /// The bug this pins: `limit` kept the first N images, and the embedded
    /// MNIST lists its 5,000 Census Bureau writers first, so any limit up to
    /// 5,000 held one writer group only.
    #[test]
    fn limit_keeps_both_writer_groups_in_proportion_on_embedded_mnist() {
        let ds = crate::data::embedded_mnist().unwrap();
        let writer_share = |d: &Dataset| {
            let w = d.attribute("writer").unwrap();
            w.values.iter().filter(|&&v| v == 1).count() as f64 / d.len() as f64
        };
        let sub = stratified_subsample(&ds, 1000, 42);
        assert_eq!(sub.len(), 1000);
        // Within a rounding (one image per stratum, 20 strata) of the full share.
        let (full, got) = (writer_share(&ds), writer_share(&sub));
        assert!((got - full).abs() <= 20.0 / 1000.0, "{got} vs {full}");
        assert!(got > 0.4, "{got}");
        for (c, (&k, &n)) in sub
            .class_counts()
            .iter()
            .zip(&ds.class_counts())
            .enumerate()
        {
            let want = n as f64 * 0.1;
            assert!((k as f64 - want).abs() <= 2.0, "digit {c}: {k} vs {want}");
        }
        // Kept in the original order: Census Bureau writers first.
        let w = &sub.attribute("writer").unwrap().values;
        assert!(w.windows(2).all(|p| p[0] <= p[1]));
        assert_eq!(stratified_subsample(&ds, 1000, 42), sub);
        assert_ne!(stratified_subsample(&ds, 1000, 43).images, sub.images);
    }

    #[test]
    fn split_of_empty_dataset_is_empty() {
        let ds = toy(0, 2);
        let s = stratified_split(&ds, [0.6, 0.2, 0.2], 0).unwrap();
        assert!(s.train.is_empty() && s.aux.is_empty() && s.test.is_empty());
    }
}
