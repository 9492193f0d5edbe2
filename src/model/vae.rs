//! The VAE head at the split (seed 004, section 4.3 "Training": "the
//! distribution of z is forced to be close to Gaussian using the VAE approach
//! (Kingma and Welling, 2013)"; DESIGN sections 3 and 5.5).
//!
//! The head sits after block `at` (the deployment split) and maps that
//! block's output `h` to a mean `mu = M h + b` and a log-variance
//! `log sigma^2 = V h + c`, each the same shape as `h` (1x1 convolutions on
//! maps, square linear maps on vectors). In training the server sees the
//! reparameterised sample `mu + sigma * eps`, `eps ~ N(0, I)`, and the loss
//! adds `KL(N(mu, sigma^2) || N(0, I))` (see [`crate::defense::Vae`]); at
//! inference, and so for every attack of the audit, the edge sends `mu`.
//!
//! Design: the head belongs to the model (it is in the spec, the checkpoint
//! and the FLOPs of the edge), not to the defense, because the edge runs its
//! mean map at inference. It is not a block: split numbers stay those of
//! the network without it.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::block::Features;

/// Where the VAE head sits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeSpec {
    /// The head follows block `at` (1-based), i.e. split point `at`.
    pub at: usize,
}

/// Initial bias of the log-variance map: `sigma = e^-2 ~ 0.14` at the start,
/// so the first steps train like the plain network and the KL term then
/// widens the posterior as far as its weight asks.
const INITIAL_LOG_VAR: f32 = -4.0;

/// A shape-preserving affine map: 1x1 convolution on `[C, H, W]` maps, a
/// square linear map on `[D]` vectors.
#[derive(Module, Debug)]
pub enum AffineMap {
    /// `C -> C` 1x1 convolution.
    Conv(Conv2d),
    /// `D -> D` linear map.
    Linear(Linear),
}

impl AffineMap {
    /// Weight initialised to `weight_scale * I`, bias to `bias`.
    fn new(shape: &[usize], weight_scale: f32, bias: f32, device: &Device) -> Self {
        let n = shape[0];
        let eye: Vec<f32> = (0..n * n)
            .map(|i| if i / n == i % n { weight_scale } else { 0.0 })
            .collect();
        let bias = Tensor::<1>::from_data(TensorData::new(vec![bias; n], [n]), device);
        if shape.len() == 3 {
            let mut conv = Conv2dConfig::new([n, n], [1, 1]).init(device);
            conv.weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(eye, [n, n, 1, 1]),
                device,
            ));
            conv.bias = Some(Param::from_tensor(bias));
            AffineMap::Conv(conv)
        } else {
            let mut linear = LinearConfig::new(n, n).init(device);
            linear.weight =
                Param::from_tensor(Tensor::from_data(TensorData::new(eye, [n, n]), device));
            linear.bias = Some(Param::from_tensor(bias));
            AffineMap::Linear(linear)
        }
    }

    fn forward(&self, x: Features) -> Features {
        match (self, x) {
            (AffineMap::Conv(c), Features::Map(t)) => Features::Map(c.forward(t)),
            (AffineMap::Linear(l), Features::Flat(t)) => Features::Flat(l.forward(t)),
            (AffineMap::Conv(c), f) => {
                // Built for maps; a vector of the same size is a [D, 1, 1] map.
                let [n, d] = f.clone().flatten().dims();
                Features::Map(c.forward(f.flatten().reshape([n, d, 1, 1])))
            }
            (AffineMap::Linear(l), Features::Map(t)) => Features::Flat(l.forward(t.flatten(1, 3))),
        }
    }
}

/// The mean and log-variance maps (see the module docs).
#[derive(Module, Debug)]
pub struct VaeHead {
    /// `h -> mu`, initialised to the identity (the plain network's features).
    pub mean: AffineMap,
    /// `h -> log sigma^2`, initialised to the constant [`INITIAL_LOG_VAR`].
    pub log_var: AffineMap,
}

impl VaeHead {
    /// A head for features of one example's shape `shape` (`[C, H, W]` or `[D]`).
    pub fn new(shape: &[usize], device: &Device) -> Self {
        Self {
            mean: AffineMap::new(shape, 1.0, 0.0, device),
            log_var: AffineMap::new(shape, 0.0, INITIAL_LOG_VAR, device),
        }
    }

    /// The mean `mu`: what the edge sends at inference.
    pub fn mean(&self, h: Features) -> Features {
        self.mean.forward(h)
    }

    /// `(mu, log sigma^2)` for training.
    pub fn moments(&self, h: Features) -> (Features, Features) {
        (self.mean.forward(h.clone()), self.log_var.forward(h))
    }

    /// FLOPs per example of the mean map (the only part the edge runs at
    /// inference): `2 C^2 H W` for maps, `2 D^2` for vectors.
    pub fn flops(shape: &[usize]) -> u64 {
        let n = shape[0] as u64;
        let spatial: u64 = shape[1..].iter().map(|&s| s as u64).product();
        2 * n * n * spatial
    }

    /// Trainable parameters of both maps.
    pub fn params(shape: &[usize]) -> u64 {
        let n = shape[0] as u64;
        2 * (n * n + n)
    }
}

/// Mean over the batch of `KL(N(mu, sigma^2) || N(0, I))
/// = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)` (Kingma and
/// Welling 2013, Appendix B), `[1]`.
pub fn kl_divergence(mu: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
    let per_entry = mu.powf_scalar(2.0) + log_var.clone().exp() - log_var - 1.0;
    per_entry.sum_dim(1).mean() * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec_of(t: Tensor<2>) -> Vec<f32> {
        crate::train::to_vec(t)
    }

    #[test]
    fn kl_equals_a_naive_recomputation() {
        let dev = Device::flex();
        let mu = [0.5f32, -1.0, 0.0, 2.0, 0.1, -0.3];
        let lv = [0.0f32, -1.0, 0.7, -2.0, 0.3, 1.2];
        let t = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [2, 3]), &dev);
        let kl = crate::train::to_vec(kl_divergence(t(&mu), t(&lv)))[0];
        let mut naive = 0.0f64;
        for (m, l) in mu.iter().zip(&lv) {
            let (m, l) = (*m as f64, *l as f64);
            naive += 0.5 * (m * m + l.exp() - 1.0 - l);
        }
        naive /= 2.0;
        assert!((kl as f64 - naive).abs() < 1e-5, "{kl} vs {naive}");
        // KL of the prior itself is zero.
        let zero = kl_divergence(t(&[0.0; 6]), t(&[0.0; 6]));
        assert!(vec_of(zero.unsqueeze())[0].abs() < 1e-7);
    }

    #[test]
    fn a_fresh_head_sends_the_plain_features() {
        let dev = Device::flex();
        let x = Tensor::<4>::random([2, 3, 4, 4], burn::tensor::Distribution::Default, &dev);
        let head = VaeHead::new(&[3, 4, 4], &dev);
        let (mu, lv) = head.moments(Features::Map(x.clone()));
        let d = vec_of((mu.flatten() - x.flatten(1, 3)).abs());
        assert!(d.iter().all(|&v| v < 1e-6));
        let lv = vec_of(lv.flatten());
        assert!(lv.iter().all(|&v| (v - INITIAL_LOG_VAR).abs() < 1e-6));
        let y = Tensor::<2>::random([2, 5], burn::tensor::Distribution::Default, &dev);
        let head = VaeHead::new(&[5], &dev);
        let d = vec_of((head.mean(Features::Flat(y.clone())).flatten() - y).abs());
        assert!(d.iter().all(|&v| v < 1e-6));
        assert_eq!(VaeHead::flops(&[3, 4, 4]), 2 * 9 * 16);
        assert_eq!(VaeHead::params(&[5]), 2 * 30);
    }
}
