//! Turning in-memory datasets into tensors, and batched inference helpers.

use burn::prelude::*;

use crate::data::Dataset;
use crate::metrics::argmax_rows;
use crate::model::{Features, SplitModel};

/// Images `indices` of `ds` as a `[n, C, H, W]` tensor.
pub fn images_tensor(ds: &Dataset, indices: &[usize], device: &Device) -> Tensor<4> {
    let [c, h, w] = ds.shape;
    let len = ds.image_len();
    let mut buf = Vec::with_capacity(indices.len() * len);
    for &i in indices {
        buf.extend_from_slice(ds.image(i));
    }
    Tensor::from_data(TensorData::new(buf, [indices.len(), c, h, w]), device)
}

/// One-hot (or smoothed, see [`crate::defense::label_smoothing`]) targets
/// `[n, classes]` for the given labels.
pub fn one_hot(labels: &[u32], classes: usize, device: &Device) -> Tensor<2> {
    let mut buf = vec![0f32; labels.len() * classes];
    for (row, &l) in labels.iter().enumerate() {
        buf[row * classes + l as usize] = 1.0;
    }
    Tensor::from_data(TensorData::new(buf, [labels.len(), classes]), device)
}

/// A tensor's values as a host vector.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("expected float tensor data")
}

/// Batched evaluation of a model in inference mode.
pub struct Evaluator<'a> {
    model: SplitModel,
    device: &'a Device,
    batch: usize,
}

impl<'a> Evaluator<'a> {
    /// Puts `model` in inference mode on `device` (batch-norm uses running
    /// statistics).
    pub fn new(model: &SplitModel, device: &'a Device, batch: usize) -> Self {
        Self {
            model: model.valid(),
            device,
            batch: batch.max(1),
        }
    }

    /// Logits for every image, `[N, classes]` row-major.
    pub fn logits(&self, ds: &Dataset) -> Vec<f32> {
        let idx: Vec<usize> = (0..ds.len()).collect();
        let mut out = Vec::new();
        for chunk in idx.chunks(self.batch) {
            let x = images_tensor(ds, chunk, self.device);
            out.extend(to_vec(self.model.forward(x)));
        }
        out
    }

    /// Predicted class of every image.
    pub fn predict(&self, ds: &Dataset) -> Vec<u32> {
        argmax_rows(&self.logits(ds), ds.num_classes.max(1))
            .expect("expected logits with one row per image")
    }

    /// Accuracy on `ds` (0..1).
    pub fn accuracy(&self, ds: &Dataset) -> f64 {
        let pred = self.predict(ds);
        let hits = pred.iter().zip(&ds.targets).filter(|(p, t)| p == t).count();
        hits as f64 / ds.len().max(1) as f64
    }

    /// Features sent at split `k` for every image, flattened: `([N * D], shape)`.
    pub fn features(&self, ds: &Dataset, k: usize) -> (Vec<f32>, Vec<usize>) {
        self.features_with(ds, k, |z| z)
    }

    /// Features at split `k` after a transformation applied on the edge
    /// (e.g. a VAE head's mean, or obfuscation), flattened.
    pub fn features_with(
        &self,
        ds: &Dataset,
        k: usize,
        transform: impl Fn(Features) -> Features,
    ) -> (Vec<f32>, Vec<usize>) {
        self.features_hooked(ds, k, &mut |j, z| if j == k { transform(z) } else { z })
    }

    /// Features at split `k` with every block's output `j` (1-based, up to
    /// and including `k`) passed through `hook(j, _)` on the way, as
    /// [`SplitModel::run_hooked`] does, flattened.
    pub fn features_hooked(
        &self,
        ds: &Dataset,
        k: usize,
        hook: &mut dyn FnMut(usize, Features) -> Features,
    ) -> (Vec<f32>, Vec<usize>) {
        let idx: Vec<usize> = (0..ds.len()).collect();
        let mut out = Vec::new();
        let mut shape = Vec::new();
        for chunk in idx.chunks(self.batch) {
            let x = images_tensor(ds, chunk, self.device);
            let z = self.model.run_hooked(Features::Map(x), 0, k, hook);
            shape = z.example_shape();
            out.extend(to_vec(z.flatten()));
        }
        (out, shape)
    }
}

/// What one training step reports: the scalar loss value and how many of the
/// batch's `labels` the `logits` `[N, classes]` got right.
pub fn step_outcome(
    loss: &Tensor<1>,
    logits: Tensor<2>,
    labels: &[u32],
    classes: usize,
) -> (f64, usize) {
    let value = to_vec(loss.clone().detach())[0] as f64;
    let pred = argmax_rows(&to_vec(logits.detach()), classes)
        .expect("expected logits with one row per example");
    let hits = pred.iter().zip(labels).filter(|(p, l)| p == l).count();
    (value, hits)
}

/// The rows `idx` of flat row-major values `z` (`dim` values a row), in
/// order: a mini-batch of features or images.
pub fn gather_rows(z: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * dim);
    for &i in idx {
        out.extend_from_slice(&z[i * dim..(i + 1) * dim]);
    }
    out
}
