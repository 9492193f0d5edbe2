//! The server's first linear operator at a split, and a cache of its SVD
//! basis (seed 004, section 4.2: `W` is "the first linear layer of the
//! server", a fully connected layer or a convolution).
//!
//! At split `k` the server's first block is `blocks[k]`:
//! - a linear block applies `W` (burn stores the weight `[d_in, d_out]`, the
//!   column-major form of the `d_out x d_in` operator) to the flattened
//!   features;
//! - a convolution block applies the dense matrix of its convolution to the
//!   CHW-flattened map ([`conv2d_as_dense`]), which must fit in
//!   `max_elements` values;
//! - a global average pooling block is linear: its operator is the
//!   `C x CHW` matrix that averages each channel's map;
//! - a residual block has a shortcut, which passes the null content of its
//!   convolution on to later layers, so it has no single first operator and
//!   is refused; so is a max-pool, which is not linear.
//!
//! The bias never matters (`W z + b - (W z' + b) = W (z - z')`), so it is
//! ignored.
//!
//! **Cache.** [`BasisCache`] keeps the bases of one run in memory, keyed by
//! split and a hash of the operator's weights (so a retrained or pruned
//! model never reuses a stale basis). Bases are not written to disk: the
//! largest cnn6 basis (split 2, 1568 x 1568 floats) costs seconds to
//! recompute, while a stale file would silently change results.

use std::collections::HashMap;
use std::sync::Arc;

use super::ObfuscateError;
use super::conv_dense::{DenseMatrix, conv2d_as_dense};
use super::svd::SignalBasis;
use crate::model::{Block, SplitModel};
use crate::train::to_vec;

/// Default limit on the dense operator's element count (16 Mi values, 64 MiB
/// of f32). cnn6's split 2 (3136 x 1568 = 4.9 M) fits; split 1 (6272 x 3136
/// = 19.7 M, an SVD of minutes on two cores) does not unless raised.
pub const DEFAULT_MAX_ELEMENTS: usize = 16 * 1024 * 1024;

/// Why a split has no usable operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// `k` is not a split point of the model.
    #[error("split {split} is not a split point of a {blocks}-block model (allowed 1..{blocks})")]
    Split {
        /// The split asked for.
        split: usize,
        /// Blocks in the model.
        blocks: usize,
    },
    /// The first server block is residual.
    #[error(
        "split {split}: the server's first block is residual; its identity shortcut passes the null content of the convolution on, so obfuscation needs a linear or convolution block after the split"
    )]
    Residual {
        /// The split.
        split: usize,
    },
    /// The first server block is a max-pool.
    #[error(
        "split {split}: the server's first block is a max-pool, which is not linear; obfuscation needs a linear, convolution or global average pooling block after the split"
    )]
    MaxPool {
        /// The split.
        split: usize,
    },
    /// The features at the split do not have the shape the block needs.
    #[error("split {split}: features of shape {shape:?} do not fit the server's first block")]
    Shape {
        /// The split.
        split: usize,
        /// Feature shape of one example.
        shape: Vec<usize>,
    },
    /// Building or decomposing the matrix failed (too large, SVD failure).
    /// The message holds the cause's, which is not chained again.
    #[error("split {split}: {error}")]
    Obfuscate {
        /// The split.
        split: usize,
        /// The underlying error.
        error: ObfuscateError,
    },
}

impl OperatorError {
    /// A split the recipe chose badly is the user's (exit 2); a matrix that
    /// could not be built or decomposed is splitguard's (exit 1).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, OperatorError::Obfuscate { .. })
    }
}

/// The server's first linear operator at split `k` as a dense matrix over
/// the flattened split features.
pub fn server_operator(
    model: &SplitModel,
    k: usize,
    max_elements: usize,
) -> Result<DenseMatrix, OperatorError> {
    if !model.split_points().contains(&k) {
        return Err(OperatorError::Split {
            split: k,
            blocks: model.len(),
        });
    }
    let wrap = |error| OperatorError::Obfuscate { split: k, error };
    let shape = model.infos().map_err(|_| OperatorError::Shape {
        split: k,
        shape: model.input.clone(),
    })?[k - 1]
        .output
        .clone();
    match &model.blocks[k] {
        Block::Linear(b) => {
            let w = b.linear.weight.val();
            let [d_in, d_out] = w.dims();
            let rows = d_out as u128;
            if rows * d_in as u128 > max_elements as u128 {
                return Err(wrap(ObfuscateError::MatrixTooLarge {
                    what: "linear operator",
                    rows: d_out,
                    cols: d_in,
                    elements: rows * d_in as u128,
                    limit: max_elements,
                }));
            }
            DenseMatrix::from_col_major(d_out, d_in, &to_vec(w)).map_err(wrap)
        }
        Block::Conv(b) => {
            let [c, h, w] = shape[..] else {
                return Err(OperatorError::Shape { split: k, shape });
            };
            let weight = b.conv.weight.val();
            let dims = weight.dims();
            if dims[1] != c {
                return Err(OperatorError::Shape { split: k, shape });
            }
            let (s, p) = (b.spec.stride, b.spec.padding());
            conv2d_as_dense(&to_vec(weight), dims, [h, w], [s, s], [p, p], max_elements)
                .map_err(wrap)
        }
        Block::GlobalAvgPool(_) => {
            let [c, h, w] = shape[..] else {
                return Err(OperatorError::Shape { split: k, shape });
            };
            global_avg_pool_as_dense(c, h * w, max_elements).map_err(wrap)
        }
        Block::Residual(_) => Err(OperatorError::Residual { split: k }),
        Block::MaxPool(_) => Err(OperatorError::MaxPool { split: k }),
    }
}

/// The `c x (c * pixels)` matrix of global average pooling over
/// CHW-flattened maps: row `i` holds `1 / pixels` on channel `i`'s pixels.
fn global_avg_pool_as_dense(
    c: usize,
    pixels: usize,
    max_elements: usize,
) -> Result<DenseMatrix, ObfuscateError> {
    let cols = c * pixels;
    let elements = c as u128 * cols as u128;
    if elements > max_elements as u128 {
        return Err(ObfuscateError::MatrixTooLarge {
            what: "global average pooling operator",
            rows: c,
            cols,
            elements,
            limit: max_elements,
        });
    }
    let mut data = vec![0f32; c * cols];
    for i in 0..c {
        data[i * cols + i * pixels..i * cols + (i + 1) * pixels].fill(1.0 / pixels as f32);
    }
    DenseMatrix::new(c, cols, data)
}

/// FNV-1a hash of a matrix' shape and bits (the cache key).
fn hash_matrix(m: &DenseMatrix) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(m.rows as u64);
    eat(m.cols as u64);
    for v in &m.data {
        eat(u64::from(v.to_bits()));
    }
    h
}

/// In-memory cache of signal bases for one run, keyed by split and a hash of
/// the operator (see the module docs).
#[derive(Debug, Default)]
pub struct BasisCache {
    bases: HashMap<(usize, u64), Arc<SignalBasis>>,
    /// Largest dense operator allowed ([`DEFAULT_MAX_ELEMENTS`] by default).
    pub max_elements: Option<usize>,
}

impl BasisCache {
    /// An empty cache with a given element limit.
    pub fn with_limit(max_elements: usize) -> Self {
        Self {
            bases: HashMap::new(),
            max_elements: Some(max_elements),
        }
    }

    /// The signal basis of the server's operator at split `k`, computed once
    /// per distinct operator.
    pub fn basis(
        &mut self,
        model: &SplitModel,
        k: usize,
    ) -> Result<Arc<SignalBasis>, OperatorError> {
        let w = server_operator(model, k, self.max_elements.unwrap_or(DEFAULT_MAX_ELEMENTS))?;
        let key = (k, hash_matrix(&w));
        if let Some(b) = self.bases.get(&key) {
            return Ok(b.clone());
        }
        let b = Arc::new(
            SignalBasis::from_dense(&w)
                .map_err(|error| OperatorError::Obfuscate { split: k, error })?,
        );
        self.bases.insert(key, b.clone());
        Ok(b)
    }

    /// Number of cached bases.
    pub fn len(&self) -> usize {
        self.bases.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Features;
    use crate::model::{ActivationKind, BlockSpec, ConvSpec, LinearSpec, ModelSpec, ResidualSpec};
    use crate::obfuscate::{ObfuscationMode, obfuscate_batch};
    use crate::signal::test_util::random_vec;
    use burn::prelude::*;

    fn conv(out: usize, pool: usize) -> BlockSpec {
        BlockSpec::Conv(ConvSpec {
            out_channels: out,
            kernel: 3,
            stride: 1,
            padding: None,
            pool,
            batch_norm: false,
            activation: ActivationKind::Relu,
            order: Default::default(),
            bias: true,
        })
    }

    fn fc(out: usize) -> BlockSpec {
        BlockSpec::Linear(LinearSpec {
            out_features: out,
            activation: ActivationKind::None,
            batch_norm: false,
        })
    }

    fn tiny() -> SplitModel {
        let spec = ModelSpec {
            vae: None,
            arch: "tiny".into(),
            input: [1, 6, 6],
            blocks: vec![conv(2, 2), conv(3, 0), fc(30), fc(4), fc(3)],
        };
        SplitModel::new(&spec, &Device::flex()).unwrap()
    }

    /// Runs only the server's first block (bias included) on flat features.
    fn first_server_block(model: &SplitModel, k: usize, z: &[f32], n: usize) -> Vec<f32> {
        let shape = model.infos().unwrap()[k - 1].output.clone();
        let d: usize = shape.iter().product();
        let t = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [n, d]), &Device::flex());
        let x = Features::from_flat(t, &shape);
        let y = match &model.blocks[k] {
            Block::Conv(b) => match x {
                Features::Map(m) => Features::Map(b.conv.forward(m)),
                _ => unreachable!(),
            },
            Block::Linear(b) => Features::Flat(b.linear.forward(x.flatten())),
            Block::GlobalAvgPool(b) => match x {
                Features::Map(m) => Features::Flat(b.forward(m)),
                _ => unreachable!(),
            },
            Block::Residual(_) | Block::MaxPool(_) => unreachable!(),
        };
        to_vec(y.flatten())
    }

    #[test]
    fn operator_matches_the_block_on_real_models() {
        let model = tiny();
        for k in 1..=4 {
            let w = server_operator(&model, k, 1 << 20).unwrap();
            let z = random_vec(k as u64, w.cols);
            let zero = vec![0.0; w.cols];
            let (y, b) = (
                first_server_block(&model, k, &z, 1),
                first_server_block(&model, k, &zero, 1),
            );
            let wz = w.matvec(&z).unwrap();
            for i in 0..w.rows {
                assert!((y[i] - b[i] - wz[i]).abs() < 1e-4, "split {k} row {i}");
            }
        }
    }

    #[test]
    fn distortion_free_keeps_the_server_output_on_linear_and_conv_splits() {
        let model = tiny();
        let mut cache = BasisCache::default();
        // split 1: conv 2x3x3 -> conv 3 (18 -> 27, full column rank or not);
        // split 2: 27 -> FC30; split 3: 30 -> FC4 (rank 4, big null space).
        for k in 1..=3 {
            let basis = cache.basis(&model, k).unwrap();
            let n = 3;
            let zs = random_vec(40 + k as u64, n * basis.dim());
            let out = obfuscate_batch(&basis, &zs, n, ObfuscationMode::DistortionFree).unwrap();
            let y = first_server_block(&model, k, &zs, n);
            let yp = first_server_block(&model, k, &out.z_prime, n);
            let scale = y.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            for (a, b) in y.iter().zip(&yp) {
                assert!((a - b).abs() < 1e-4 * scale, "split {k}: {a} vs {b}");
            }
            if k == 3 {
                assert_eq!(basis.rank(), 4);
                let moved: f32 = zs
                    .iter()
                    .zip(&out.z_prime)
                    .map(|(a, b)| (a - b).abs())
                    .sum();
                assert!(moved > 0.1, "the null content should have been removed");
            }
        }
        assert_eq!(cache.len(), 3);
        cache.basis(&model, 1).unwrap();
        assert_eq!(cache.len(), 3, "second request must hit the cache");
    }

    #[test]
    fn refuses_residual_bad_splits_and_oversized_operators() {
        let spec = ModelSpec {
            vae: None,
            arch: "res".into(),
            input: [1, 4, 4],
            blocks: vec![
                conv(2, 0),
                BlockSpec::Residual(ResidualSpec::default()),
                fc(3),
            ],
        };
        let model = SplitModel::new(&spec, &Device::flex()).unwrap();
        let e = server_operator(&model, 1, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("residual"), "{e}");
        let e = server_operator(&model, 3, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("split 3"), "{e}");
        let e = server_operator(&tiny(), 1, 100).unwrap_err();
        assert!(e.to_string().contains("27 x 18 = 486 elements"), "{e}");
    }
}
