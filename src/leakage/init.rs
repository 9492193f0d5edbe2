//! The target network's initialisation as in DLG (Zhu et al. 2019), whose
//! LeNet draws every weight and bias from `U(-0.5, 0.5)`; seed 003's LeNet
//! experiments inherit it. burn's default initialisation gives a sigmoid
//! network such small weights that its gradient barely depends on the
//! input, and gradient inversion recovers much less.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::SplitModel;

/// Redraws every float parameter from `U(-scale, scale)` with a seeded
/// generator: the initialisation of DLG's LeNet (`uniform_(-0.5, 0.5)` on
/// weights and biases), which seed 003's experiments inherit.
struct UniformInit {
    scale: f64,
    rng: ChaCha8Rng,
}

impl ModuleMapper for UniformInit {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (scale, rng) = (self.scale, &mut self.rng);
        param.map(|t| {
            let shape = t.dims();
            let device = t.device();
            let n = shape.iter().product::<usize>();
            let v: Vec<f32> = (0..n)
                .map(|_| ((2.0 * rng.random::<f64>() - 1.0) * scale) as f32)
                .collect();
            Tensor::from_data(TensorData::new(v, shape), &device)
                .set_require_grad(t.is_require_grad())
        })
    }
}

/// `model` with every parameter redrawn from `U(-scale, scale)` (seeded).
pub fn uniform_init(model: SplitModel, scale: f64, seed: u64) -> SplitModel {
    model.map(&mut UniformInit {
        scale,
        rng: ChaCha8Rng::seed_from_u64(seed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leakage::oracle::{GradientOracle, LossKind, NetworkLoss};
    use crate::model::zoo;

    #[test]
    fn uniform_init_stays_in_range_and_is_seeded() {
        let dev = Device::flex();
        let spec = zoo::spec_for("lenet", [1, 8, 8], 3).unwrap();
        let a = uniform_init(SplitModel::new(&spec, &dev).unwrap(), 0.25, 3);
        let b = uniform_init(SplitModel::new(&spec, &dev).unwrap(), 0.25, 3);
        let na = NetworkLoss::new(
            &a,
            LossKind::CrossEntropy { label: 0 },
            &Device::flex().autodiff(),
        )
        .unwrap();
        let nb = NetworkLoss::new(
            &b,
            LossKind::CrossEntropy { label: 0 },
            &Device::flex().autodiff(),
        )
        .unwrap();
        assert!(na.params().iter().all(|v| v.abs() <= 0.25 + 1e-7));
        assert!(na.params().iter().any(|v| v.abs() > 0.2));
        assert_eq!(na.params(), nb.params());
    }
}
