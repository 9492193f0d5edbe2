//! The recipe's `obfuscation:` section and how a run applies it (seed 004,
//! sections 4.2, 4.3 and 5; DESIGN sections 5.4-5.6).
//!
//! The edge obfuscates what it sends at the deployment split; the server
//! (and every attacker, who sees exactly what the server sees) computes on
//! `z'`. A run reports the target accuracy on `z'` (`server_forward(z', k)`)
//! and the bytes per query before and after.
//!
//! `max_accuracy_drop: {points}` is calibrated on the model owner's `train`
//! part (the defender's own data; never the attacker's `aux`): the smallest
//! number of kept components `m'` whose accuracy there is within `points`
//! percentage points of the unobfuscated accuracy, by binary search over
//! `0..=rank` (accuracy grows with `m'` up to noise; the search returns a
//! `m'` that meets the bound).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::operator::{BasisCache, DEFAULT_MAX_ELEMENTS};
use super::{ObfuscationMode, SignalBasis, obfuscate_batch, raw_bytes};
use crate::data::Dataset;
use crate::metrics::argmax_rows;
use crate::model::{Features, SplitModel};
use crate::train::{Evaluator, to_vec};

/// What the edge sends, as written in a recipe (`kind: ...`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModeSetting {
    /// Send `z` (baseline).
    None,
    /// Send the signal content only (`W z' = W z`).
    DistortionFree,
    /// Theorem 1 with distortion budget `eps` on `W z`.
    DistortionBounded {
        /// Budget, finite and >= 0.
        eps: f32,
    },
    /// Keep the top `m` signal components.
    Keep {
        /// Components kept.
        m: usize,
    },
    /// The smallest `m'` losing at most `points` accuracy points on the
    /// owner's `train` part.
    MaxAccuracyDrop {
        /// Allowed drop in percentage points, in [0, 100].
        points: f64,
    },
}

/// Figure 3 / Figure 4 study settings (see
/// [`crate::attack::obfuscation_study`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Splits to study (default: every split of the model).
    #[serde(default)]
    pub splits: Option<Vec<usize>>,
    /// Accuracy budget of the distortion-bounded setting, in points (default 1).
    #[serde(default = "one")]
    pub accuracy_drop_points: f64,
    /// Values of `m'` for the trade-off curve (Figure 4).
    #[serde(default)]
    pub keep: Vec<usize>,
    /// Split of the trade-off curve (default: the split before the first
    /// linear block).
    #[serde(default)]
    pub tradeoff_split: Option<usize>,
    /// Beside each `m'` of the trade-off curve, seed 004's Figure 5
    /// baseline: the `m'` units the next layer weighs most kept (feature
    /// pruning, Li et al. 2016: values before a linear block, whole channels
    /// before a convolution) and the server fine-tuned on them (default
    /// false; left out of the resolved recipe when false, so older run
    /// folders resume).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pruning_baseline: bool,
}

fn one() -> f64 {
    1.0
}

/// The `obfuscation:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObfuscationConfig {
    /// What the edge sends at the deployment split (default `none`).
    #[serde(default = "none_mode")]
    pub mode: ModeSetting,
    /// Largest dense operator (rows x cols) whose SVD is computed (default
    /// 16 Mi elements).
    #[serde(default)]
    pub max_elements: Option<usize>,
    /// The signal-content / attribute-attack study (off when absent).
    #[serde(default)]
    pub study: Option<StudyConfig>,
}

fn none_mode() -> ModeSetting {
    ModeSetting::None
}

impl ObfuscationConfig {
    /// Validation problems as `(field path below obfuscation, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        match self.mode {
            ModeSetting::DistortionBounded { eps } if !(eps.is_finite() && eps >= 0.0) => p.push((
                "mode.eps".into(),
                format!("must be finite and >= 0, got {eps}"),
            )),
            ModeSetting::MaxAccuracyDrop { points } if !(0.0..=100.0).contains(&points) => {
                p.push((
                    "mode.points".into(),
                    format!("must be in [0, 100], got {points}"),
                ))
            }
            _ => {}
        }
        if self.max_elements == Some(0) {
            p.push(("max_elements".into(), "must be >= 1, got 0".into()));
        }
        if let Some(s) = &self.study
            && !(0.0..=100.0).contains(&s.accuracy_drop_points)
        {
            p.push((
                "study.accuracy_drop_points".into(),
                format!("must be in [0, 100], got {}", s.accuracy_drop_points),
            ));
        }
        p
    }

    /// A basis cache with this section's element limit.
    pub fn cache(&self) -> BasisCache {
        BasisCache::with_limit(self.max_elements.unwrap_or(DEFAULT_MAX_ELEMENTS))
    }
}

/// Obfuscates a flat `[N * dim]` batch, returning `z'` and mean bytes sent.
pub fn apply(
    basis: &SignalBasis,
    z: &[f32],
    mode: ObfuscationMode,
) -> Result<(Vec<f32>, f64), crate::Error> {
    if mode == ObfuscationMode::None {
        return Ok((z.to_vec(), raw_bytes(basis.dim()) as f64));
    }
    let n = z.len() / basis.dim().max(1);
    let out =
        obfuscate_batch(basis, z, n, mode).map_err(|e| crate::Error::internal("obfuscation", e))?;
    let bytes = out.mean_bytes_sent();
    Ok((out.z_prime, bytes))
}

/// Target accuracy when the server computes on `z_prime` (flat, one example
/// of `shape` per row) at split `k`.
pub fn server_accuracy(
    model: &SplitModel,
    z_prime: &[f32],
    shape: &[usize],
    k: usize,
    targets: &[u32],
    classes: usize,
    device: &Device,
) -> f64 {
    let dim: usize = shape.iter().product();
    let model = model.valid();
    let mut hits = 0usize;
    for (c, chunk) in z_prime.chunks(256 * dim.max(1)).enumerate() {
        let n = chunk.len() / dim.max(1);
        let t = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [n, dim]), device);
        let logits = to_vec(model.server_forward(Features::from_flat(t, shape), k));
        let pred = argmax_rows(&logits, classes).expect("expected one logit row per query");
        hits += pred
            .iter()
            .zip(&targets[c * 256..])
            .filter(|(p, t)| p == t)
            .count();
    }
    hits as f64 / targets.len().max(1) as f64
}

/// Accuracy on `ds` when the edge sends `mode`-obfuscated features at `k`,
/// with the mean bytes per query.
pub fn obfuscated_accuracy(
    model: &SplitModel,
    ds: &Dataset,
    k: usize,
    basis: &SignalBasis,
    mode: ObfuscationMode,
    device: &Device,
) -> Result<(f64, f64), crate::Error> {
    let (z, shape) = Evaluator::new(model, device, 256).features(ds, k);
    let (zp, bytes) = apply(basis, &z, mode)?;
    let acc = server_accuracy(model, &zp, &shape, k, &ds.targets, ds.num_classes, device);
    Ok((acc, bytes))
}

/// The owner's features at split `k`, and the server's accuracy on them
/// once obfuscated: what both calibrations search over, computed once.
pub struct OwnerAccuracy<'a> {
    model: &'a SplitModel,
    owner: &'a Dataset,
    k: usize,
    basis: &'a SignalBasis,
    device: &'a Device,
    /// The owner's features at `k`, flat `[N * dim]`.
    pub z: Vec<f32>,
    shape: Vec<usize>,
}

/// Bisection steps of [`OwnerAccuracy::eps_within`]: the budget is found
/// to 2^-14 of the largest `||W z||` on the owner's data.
const EPS_STEPS: usize = 14;

impl<'a> OwnerAccuracy<'a> {
    /// Computes the owner's features at `k` (inference mode).
    pub fn new(
        model: &'a SplitModel,
        owner: &'a Dataset,
        k: usize,
        basis: &'a SignalBasis,
        device: &'a Device,
    ) -> Self {
        let (z, shape) = Evaluator::new(model, device, 256).features(owner, k);
        Self {
            model,
            owner,
            k,
            basis,
            device,
            z,
            shape,
        }
    }

    /// Accuracy on the owner's data when the edge sends `mode`.
    pub fn at(&self, mode: ObfuscationMode) -> Result<f64, crate::Error> {
        let (zp, _) = apply(self.basis, &self.z, mode)?;
        Ok(server_accuracy(
            self.model,
            &zp,
            &self.shape,
            self.k,
            &self.owner.targets,
            self.owner.num_classes,
            self.device,
        ))
    }

    /// Smallest `m'` whose accuracy is at least the unobfuscated accuracy
    /// minus `points / 100` (binary search over `0..=rank`).
    pub fn keep_within(&self, points: f64) -> Result<usize, crate::Error> {
        let goal = self.at(ObfuscationMode::None)? - points / 100.0;
        let (mut lo, mut hi) = (0usize, self.basis.rank());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.at(ObfuscationMode::KeepComponents { m: mid })? >= goal {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// Largest distortion budget `eps` (Theorem 1 of seed 004, section 4.2,
    /// eq. 8: every query's `||W z - W z'|| <= eps`) whose accuracy is at
    /// least the unobfuscated accuracy minus `points / 100`: bisection
    /// between 0 (distortion-free, the accuracy of `z`) and the largest
    /// `||W z||` (everything removed).
    pub fn eps_within(&self, points: f64) -> Result<f32, crate::Error> {
        let goal = self.at(ObfuscationMode::None)? - points / 100.0;
        let n = self.z.len() / self.basis.dim().max(1);
        let all = obfuscate_batch(
            self.basis,
            &self.z,
            n,
            ObfuscationMode::DistortionBounded { eps: f32::MAX },
        )
        .map_err(|e| crate::Error::internal("obfuscation", e))?;
        let top = all.distortion.iter().copied().fold(0.0f64, f64::max) as f32;
        let bounded = |eps| self.at(ObfuscationMode::DistortionBounded { eps });
        if bounded(top)? >= goal {
            return Ok(top);
        }
        let (mut lo, mut hi) = (0.0f32, top);
        for _ in 0..EPS_STEPS {
            let mid = 0.5 * (lo + hi);
            if bounded(mid)? >= goal {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// Smallest `m'` whose accuracy on `owner` (the defender's data) is at
/// least its unobfuscated accuracy minus `points / 100`
/// ([`OwnerAccuracy::keep_within`]).
pub fn calibrate_keep(
    model: &SplitModel,
    owner: &Dataset,
    k: usize,
    basis: &SignalBasis,
    points: f64,
    device: &Device,
) -> Result<usize, crate::Error> {
    OwnerAccuracy::new(model, owner, k, basis, device).keep_within(points)
}

/// Largest Theorem 1 budget `eps` whose accuracy on `owner` is within
/// `points` of its unobfuscated accuracy ([`OwnerAccuracy::eps_within`]).
pub fn calibrate_eps(
    model: &SplitModel,
    owner: &Dataset,
    k: usize,
    basis: &SignalBasis,
    points: f64,
    device: &Device,
) -> Result<f32, crate::Error> {
    OwnerAccuracy::new(model, owner, k, basis, device).eps_within(points)
}

/// The mode a setting stands for at split `k` (calibrating
/// `max_accuracy_drop` on `owner`, the defender's data).
pub fn resolve_mode(
    setting: &ModeSetting,
    model: &SplitModel,
    owner: &Dataset,
    k: usize,
    basis: &SignalBasis,
    device: &Device,
) -> Result<ObfuscationMode, crate::Error> {
    Ok(match *setting {
        ModeSetting::None => ObfuscationMode::None,
        ModeSetting::DistortionFree => ObfuscationMode::DistortionFree,
        ModeSetting::DistortionBounded { eps } => ObfuscationMode::DistortionBounded { eps },
        ModeSetting::Keep { m } => ObfuscationMode::KeepComponents { m },
        ModeSetting::MaxAccuracyDrop { points } => ObfuscationMode::KeepComponents {
            m: calibrate_keep(model, owner, k, basis, points, device)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obfuscate::test_util::{assert_close, random_vec};

    #[test]
    fn parses_every_mode_and_flags_bad_values() {
        for (text, want) in [
            ("{kind: none}", ModeSetting::None),
            ("{kind: distortion_free}", ModeSetting::DistortionFree),
            (
                "{kind: distortion_bounded, eps: 0.5}",
                ModeSetting::DistortionBounded { eps: 0.5 },
            ),
            ("{kind: keep, m: 3}", ModeSetting::Keep { m: 3 }),
            (
                "{kind: max_accuracy_drop, points: 1}",
                ModeSetting::MaxAccuracyDrop { points: 1.0 },
            ),
        ] {
            let m: ModeSetting = serde_norway::from_str(text).unwrap();
            assert_eq!(m, want);
        }
        let bad = ObfuscationConfig {
            mode: ModeSetting::MaxAccuracyDrop { points: 120.0 },
            max_elements: Some(0),
            study: None,
        };
        let p = bad.problems();
        assert_eq!(p.len(), 2, "{p:?}");
    }

    /// The server rebuilds `z'` from the coefficients the client sends.
    #[test]
    fn rebuilding_from_sent_coefficients_gives_the_same_z_prime() {
        let (rows, cols) = (4, 9);
        let w = random_vec(5, rows * cols);
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = random_vec(6, cols);
        for mode in [
            ObfuscationMode::DistortionFree,
            ObfuscationMode::KeepComponents { m: 2 },
            ObfuscationMode::DistortionBounded { eps: 0.3 },
        ] {
            let out = crate::obfuscate::obfuscate(&b, &z, mode).unwrap();
            let mut rebuilt = vec![0.0f32; cols];
            for (c, &j) in out.coefficients.iter().zip(&out.kept) {
                for (r, v) in rebuilt.iter_mut().zip(b.vector(j).unwrap()) {
                    *r += c * v;
                }
            }
            assert_close(&rebuilt, &out.z_prime, 1e-5);
            let (batch, _) = apply(&b, &z, mode).unwrap();
            assert_close(&batch, &out.z_prime, 1e-5);
        }
    }
}
