//! Label smoothing (seed 002, Golden Partition Zone; DESIGN section 5.1).
//!
//! The target distribution puts `1 - s` on the true class and `s / (K - 1)`
//! on each other class. Positive `s` is reported to resist feature inversion
//! (seed 002); negative `s` (Struppek et al., ICLR 2024) is known to hinder
//! training-data model inversion, so both signs are allowed: the recipe
//! validation bounds `s` to `(-1, 1)`.

use burn::prelude::*;

use super::Defense;

/// Label smoothing with a signed strength `s`.
#[derive(Clone, Debug)]
pub struct LabelSmoothing {
    /// The strength `s` (negative values sharpen against the other classes).
    pub strength: f32,
}

/// The smoothed target row for one label: `1 - s` on `label`, `s / (K - 1)`
/// elsewhere. Sums to 1 for any `s`.
pub fn smoothed_targets(labels: &[u32], classes: usize, s: f32) -> Vec<f32> {
    let off = if classes > 1 {
        s / (classes as f32 - 1.0)
    } else {
        0.0
    };
    let mut out = vec![off; labels.len() * classes];
    for (row, &l) in labels.iter().enumerate() {
        out[row * classes + l as usize] = 1.0 - s;
    }
    out
}

impl Defense for LabelSmoothing {
    fn name(&self) -> &'static str {
        "label_smoothing"
    }

    fn targets(&self, labels: &[u32], classes: usize, device: &Device) -> Option<Tensor<2>> {
        (self.strength != 0.0).then(|| {
            Tensor::from_data(
                TensorData::new(
                    smoothed_targets(labels, classes, self.strength),
                    [labels.len(), classes],
                ),
                device,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_sum_to_one_and_match_formula_for_both_signs() {
        for s in [0.3f32, -0.2, 0.0] {
            let t = smoothed_targets(&[2, 0], 4, s);
            for row in t.chunks(4) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "s={s}");
            }
            assert!((t[2] - (1.0 - s)).abs() < 1e-7);
            assert!((t[0] - s / 3.0).abs() < 1e-7);
            assert!((t[4] - (1.0 - s)).abs() < 1e-7);
            assert!((t[5] - s / 3.0).abs() < 1e-7);
        }
    }
}
