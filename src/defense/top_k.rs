//! Top-k sparsification at the split: of each example's flattened feature
//! vector the edge sends only the `k` entries of largest magnitude and
//! zeroes the rest, in training (the gradient flows through the kept
//! entries) and at inference: the sparsification baseline of DESIGN
//! section 5, a compression of the sent features that also removes the
//! low-magnitude detail an inversion attack could use. `k = ceil(keep * D)`
//! for `D` values per example, at
//! least 1; ties in magnitude are broken by the lower index, so exactly
//! `k` entries are kept.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::at_split::{Perturbation, SplitPerturbation, transform_in_training};
use super::{Defense, StepContext};
use crate::model::Features;

/// Top-k sparsification settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopKConfig {
    /// Fraction of each example's values kept, in (0, 1] (1: no effect).
    pub keep: f32,
}

impl TopKConfig {
    /// Validation problems as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Some(why) = super::at_split::fraction_problem(self.keep) {
            p.push(("keep".into(), why));
        }
        p
    }
}

/// Top-k sparsification at the split.
#[derive(Clone, Debug)]
pub struct TopK {
    /// The settings.
    pub config: TopKConfig,
}

impl TopK {
    /// The defense with these settings.
    pub fn new(config: TopKConfig) -> Self {
        Self { config }
    }

    /// How many of `dim` values are kept.
    pub fn kept(&self, dim: usize) -> usize {
        super::at_split::fraction_count(self.config.keep, dim)
    }
}

/// The 0/1 mask keeping the `k` largest-magnitude entries of each row of
/// `z` `[N * dim]` (ties: the lower index first).
pub fn top_k_mask(z: &[f32], dim: usize, k: usize) -> Vec<f32> {
    let mut mask = vec![0.0f32; z.len()];
    if dim == 0 {
        return mask;
    }
    let mut order: Vec<usize> = Vec::with_capacity(dim);
    for (row, m) in z.chunks(dim).zip(mask.chunks_mut(dim)) {
        order.clear();
        order.extend(0..row.len());
        let k = k.min(row.len());
        if k == 0 {
            continue;
        }
        let by_magnitude =
            |a: &usize, b: &usize| row[*b].abs().total_cmp(&row[*a].abs()).then(a.cmp(b));
        order.select_nth_unstable_by(k - 1, by_magnitude);
        for &i in &order[..k] {
            m[i] = 1.0;
        }
    }
    mask
}

impl SplitPerturbation for TopK {
    fn name(&self) -> &'static str {
        "top_k"
    }

    fn active(&self) -> bool {
        self.config.keep < 1.0
    }

    fn draw(&self, z: &[f32], dim: usize, _std: f32, _rng: &mut ChaCha8Rng) -> Perturbation {
        Perturbation::Mask(top_k_mask(z, dim, self.kept(dim)))
    }
}

impl Defense for TopK {
    fn name(&self) -> &'static str {
        "top_k"
    }

    fn transform(&mut self, features: Features, ctx: &StepContext) -> Features {
        transform_in_training(self, features, ctx)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::defense::DefensesConfig;
    use crate::defense::at_split::AtSplit;
    use crate::defense::decov::tests::weights_after_one_epoch;

    #[test]
    fn exactly_k_largest_entries_are_kept_per_example() {
        let (n, dim) = (20, 37);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut z: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
        // Ties in the first row: exactly k are still kept.
        z[..dim].iter_mut().for_each(|v| *v = -0.25);
        let topk = TopK::new(TopKConfig { keep: 0.2 });
        let k = topk.kept(dim);
        assert_eq!(k, 8, "ceil(0.2 * 37)");
        let out = AtSplit::new(vec![Box::new(topk)], dim, 1.0, 0)
            .unwrap()
            .apply(z.clone());
        for (r, (row, sent)) in z.chunks(dim).zip(out.chunks(dim)).enumerate() {
            let kept: Vec<usize> = (0..dim).filter(|&i| sent[i] != 0.0).collect();
            assert_eq!(kept.len(), k, "row {r}");
            // Kept values are unchanged and at least as large as any dropped.
            let smallest_kept = kept.iter().map(|&i| row[i].abs()).fold(f32::MAX, f32::min);
            for i in 0..dim {
                if sent[i] != 0.0 {
                    assert_eq!(sent[i], row[i]);
                } else {
                    assert!(row[i].abs() <= smallest_kept, "row {r}, {i}");
                }
            }
            // The naive definition: sort by magnitude, take the first k.
            let mut naive: Vec<usize> = (0..dim).collect();
            naive.sort_by(|a, b| row[*b].abs().total_cmp(&row[*a].abs()).then(a.cmp(b)));
            let mut naive = naive[..k].to_vec();
            naive.sort();
            assert_eq!(kept, naive, "row {r}");
        }
    }

    #[test]
    fn keep_one_trains_bit_identically() {
        let plain = weights_after_one_epoch(DefensesConfig::default());
        let cfg = |keep| DefensesConfig {
            top_k: Some(TopKConfig { keep }),
            ..Default::default()
        };
        assert_eq!(plain, weights_after_one_epoch(cfg(1.0)));
        assert_ne!(plain, weights_after_one_epoch(cfg(0.1)));
    }

    #[test]
    fn top_k_keep_must_be_in_zero_one() {
        for bad in [0.0f32, 1.5, f32::NAN] {
            let cfg = DefensesConfig {
                top_k: Some(TopKConfig { keep: bad }),
                ..Default::default()
            };
            let p = cfg.problems();
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].0, "top_k.keep");
            assert!(p[0].1.contains("(0, 1]"), "{}", p[0].1);
        }
    }
}
