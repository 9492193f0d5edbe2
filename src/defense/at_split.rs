//! Defenses that change what the edge sends: noise, dropout and top-k
//! sparsification at the split (and Shredder's learned noise). Unlike a
//! loss term they act at inference too, so the server, the accuracy
//! measurement and every attack see the perturbed features.
//!
//! One CPU implementation per defense ([`SplitPerturbation::draw`]) serves
//! both places, so training and inference follow the same definition and
//! the tests of the definition cover both: in training the perturbation is
//! drawn from the detached batch and applied to the autodiff tensor (an
//! added constant, or a constant mask the gradient flows through); at
//! inference the pipeline's server view applies the same draw to the flat
//! features ([`AtSplit`]).
//!
//! Random draws come from the recipe's seed: in training from
//! `(seed, step, defense)`, so a resumed run draws the same numbers; at
//! inference from `(seed, defense, the bits of the features)`, so a query
//! set gets the same noise whatever order the attacks run in and whether or
//! not the audit was resumed.

use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::StepContext;
use crate::model::Features;
use crate::train::to_vec;

/// How a split defense changes flat features `z` `[N * D]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Perturbation {
    /// `z + a` (noise).
    Add(Vec<f32>),
    /// `z * m` element-wise (dropout and top-k masks).
    Mask(Vec<f32>),
}

impl Perturbation {
    /// Applies the perturbation to flat features.
    pub fn apply_flat(&self, z: &mut [f32]) {
        match self {
            Perturbation::Add(a) => z.iter_mut().zip(a).for_each(|(z, a)| *z += a),
            Perturbation::Mask(m) => z.iter_mut().zip(m).for_each(|(z, m)| *z *= m),
        }
    }

    /// Applies the perturbation to a `[N, D]` tensor (the gradient flows
    /// through `z`; the perturbation is a constant).
    pub fn apply_tensor(self, z: Tensor<2>) -> Tensor<2> {
        let dims = z.dims();
        let (v, add) = match self {
            Perturbation::Add(a) => (a, true),
            Perturbation::Mask(m) => (m, false),
        };
        let t = Tensor::<2>::from_data(TensorData::new(v, dims), &z.device());
        if add { z + t } else { z * t }
    }
}

/// A defense acting on the features the server receives.
pub trait SplitPerturbation: Send + Sync {
    /// The defense's name (as in the recipe).
    fn name(&self) -> &'static str;

    /// False when the configured strength is zero: the defense then leaves
    /// the features untouched (and draws nothing).
    fn active(&self) -> bool;

    /// The perturbation for flat features `z` `[N * dim]`. `reference_std`
    /// is the standard deviation relative scales are taken of (the batch's
    /// in training, the owner's training data's at inference).
    fn draw(&self, z: &[f32], dim: usize, reference_std: f32, rng: &mut ChaCha8Rng)
    -> Perturbation;
}

/// The trained model's features of the owner's `train` data at the split,
/// what the defenses learned after training (Shredder's noise, feature
/// pruning's fine-tuning) learn from.
pub struct OwnerFeatures<'a> {
    /// The features `[N * D]`.
    pub features: &'a [f32],
    /// One example's feature shape.
    pub shape: &'a [usize],
    /// Task labels, `N`.
    pub targets: &'a [u32],
    /// Number of classes.
    pub classes: usize,
    /// Standard deviation of `features` (for relative scales).
    pub std: f32,
}

impl<'a> OwnerFeatures<'a> {
    /// `features` of `owner`'s images, one example of `shape` a row.
    pub fn of(features: &'a [f32], shape: &'a [usize], owner: &'a crate::data::Dataset) -> Self {
        Self {
            features,
            shape,
            targets: &owner.targets,
            classes: owner.num_classes,
            std: std_of(features),
        }
    }
}

/// Why `fraction` is not a kept fraction in (0, 1], if it is not.
pub fn fraction_problem(fraction: f32) -> Option<String> {
    (!(fraction > 0.0 && fraction <= 1.0)).then(|| format!("must be in (0, 1], got {fraction}"))
}

/// `ceil(fraction * n)` clamped to `1..=n` (0 for `n = 0`), where a product within f32
/// precision of an integer counts as that integer: `fraction` comes from an
/// f32 setting, so `0.1 * 10` counts 1, not the 2 that `0.1f32`'s binary
/// value (0.1000000015) would give.
pub fn fraction_count(fraction: f32, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let x = f64::from(fraction) * n as f64;
    let near = x.round();
    // Rounding a decimal setting to f32 moves it by at most half an f32
    // epsilon, relative.
    let k = if (x - near).abs() <= 0.5 * f64::from(f32::EPSILON) * x.max(1.0) * (1.0 + 1e-9) {
        near
    } else {
        x.ceil()
    };
    (k as usize).clamp(1, n)
}

/// A 64-bit mix (splitmix64's finaliser).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A stable tag of a name, to give each defense its own stream.
pub(crate) fn tag(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

/// Standard deviation of all entries (population, f64 accumulation).
pub fn std_of(z: &[f32]) -> f32 {
    let n = z.len().max(1) as f64;
    let mean = z.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = z
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    var.sqrt() as f32
}

/// Applies `p` to the features of a training step: draws from the detached
/// batch with a generator seeded by `(ctx.seed, ctx.step, p.name())`; relative
/// scales use the batch's standard deviation.
pub fn transform_in_training(
    p: &dyn SplitPerturbation,
    features: Features,
    ctx: &StepContext,
) -> Features {
    if !p.active() {
        return features;
    }
    let shape = features.example_shape();
    let flat = features.flatten();
    let [_, dim] = flat.dims();
    let values = to_vec(flat.clone().detach());
    let mut rng = ChaCha8Rng::seed_from_u64(mix(
        ctx.seed ^ mix(ctx.step as u64 ^ tag(p.name()).rotate_left(17))
    ));
    let drawn = p.draw(&values, dim, std_of(&values), &mut rng);
    Features::from_flat(drawn.apply_tensor(flat), &shape)
}

/// The split defenses as the deployed edge applies them at inference, in
/// the recipe's order, to flat features `[N * dim]`.
pub struct AtSplit {
    perturbations: Vec<Box<dyn SplitPerturbation>>,
    dim: usize,
    reference_std: f32,
    seed: u64,
}

impl AtSplit {
    /// The active perturbations of `list` for features of `dim` values per
    /// example; relative scales use `reference_std` (of the owner's training
    /// features at the split). `None` when none is active.
    pub fn new(
        list: Vec<Box<dyn SplitPerturbation>>,
        dim: usize,
        reference_std: f32,
        seed: u64,
    ) -> Option<Self> {
        let perturbations: Vec<_> = list.into_iter().filter(|p| p.active()).collect();
        (!perturbations.is_empty()).then_some(Self {
            perturbations,
            dim,
            reference_std,
            seed,
        })
    }

    /// Names of the active perturbations.
    pub fn names(&self) -> Vec<&'static str> {
        self.perturbations.iter().map(|p| p.name()).collect()
    }

    /// What the server receives for flat features `z` `[N * dim]`.
    pub fn apply(&self, mut z: Vec<f32>) -> Vec<f32> {
        let content = z
            .iter()
            .fold(mix(z.len() as u64), |h, v| mix(h ^ u64::from(v.to_bits())));
        for p in &self.perturbations {
            let mut rng =
                ChaCha8Rng::seed_from_u64(mix(self.seed ^ content ^ tag(p.name()).rotate_left(29)));
            let drawn = p.draw(&z, self.dim, self.reference_std, &mut rng);
            drawn.apply_flat(&mut z);
        }
        z
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fraction_counts_take_the_ceiling_of_what_the_setting_means() {
        use super::fraction_count as f;
        // 0.1f32 is 0.1000000015: ten units keep 1, not 2.
        assert_eq!((f(0.1, 10), f(0.3, 10), f(0.2, 5)), (1, 3, 1));
        // Otherwise the ceiling, at least 1, at most n.
        assert_eq!((f(0.1, 576), f(0.25, 576), f(0.15, 10)), (58, 144, 2));
        assert_eq!((f(0.01, 5), f(1.0, 5), f(0.999_999, 3)), (1, 5, 3));
        assert_eq!(f(0.5, 0), 0);
    }

    use super::*;

    #[test]
    fn std_of_matches_the_definition() {
        let z = [1.0f32, 3.0, 5.0, 7.0];
        assert!((std_of(&z) - 5.0f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn perturbations_apply_the_same_on_tensors_and_slices() {
        let z = vec![1.0f32, -2.0, 3.0, 0.5];
        for p in [
            Perturbation::Add(vec![0.5, 0.25, -1.0, 2.0]),
            Perturbation::Mask(vec![0.0, 2.0, 1.0, 0.0]),
        ] {
            let mut flat = z.clone();
            p.apply_flat(&mut flat);
            let t = Tensor::<2>::from_data(TensorData::new(z.clone(), [2, 2]), &Device::flex());
            assert_eq!(to_vec(p.apply_tensor(t)), flat);
        }
    }
}
