//! The split-able network: a sequence of blocks and its spec.

use burn::module::Module;
use burn::prelude::*;

use super::ModelError;
use super::block::{Block, Features};
use super::spec::{BlockInfo, BlockSpec, ModelSpec, block_infos};

/// A model as an ordered list of blocks. Split point `k` puts blocks `1..=k`
/// on the edge and the rest on the server (DESIGN section 3).
#[derive(Module, Debug)]
pub struct SplitModel {
    /// The blocks in execution order.
    pub blocks: Vec<Block>,
    /// Shape of one input example (`[C, H, W]`, or `[D]` for a server part
    /// that starts after a linear block).
    #[module(skip)]
    pub input: Vec<usize>,
    /// Architecture name.
    #[module(skip)]
    pub arch: String,
}

impl SplitModel {
    /// Builds a freshly initialised model from a spec (checked first).
    pub fn new(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::from_blocks(&spec.arch, &spec.input, &spec.blocks, device)
    }

    /// Builds freshly initialised blocks that start from features of shape
    /// `input` (`[C, H, W]` or `[D]`): a whole model, a server part, or an
    /// attacker with the server part's architecture.
    pub fn from_blocks(
        arch: &str,
        input: &[usize],
        blocks: &[BlockSpec],
        device: &Device,
    ) -> Result<Self, ModelError> {
        let infos = block_infos(input, blocks)?;
        let blocks = blocks
            .iter()
            .zip(&infos)
            .map(|(b, info)| Block::new(b, &info.input, device))
            .collect();
        Ok(Self {
            blocks,
            input: input.to_vec(),
            arch: arch.to_string(),
        })
    }

    /// Specs of the blocks, in order.
    pub fn block_specs(&self) -> Vec<BlockSpec> {
        self.blocks.iter().map(Block::spec).collect()
    }

    /// The spec this model was built from (reflects pruning).
    ///
    /// Only whole models (input `[C, H, W]`) have a spec; a server part that
    /// starts from a vector returns an error.
    pub fn spec(&self) -> Result<ModelSpec, ModelError> {
        let input: [usize; 3] = self.input.clone().try_into().map_err(|_| {
            ModelError::Spec(format!(
                "a model whose input is {:?} (a server part) has no stand-alone spec",
                self.input
            ))
        })?;
        Ok(ModelSpec {
            arch: self.arch.clone(),
            input,
            blocks: self.blocks.iter().map(Block::spec).collect(),
        })
    }

    /// Per-block shapes, FLOPs and parameters.
    pub fn infos(&self) -> Result<Vec<BlockInfo>, ModelError> {
        block_infos(&self.input, &self.block_specs())
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True when the model has no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Valid split points: `1..len` (the server keeps at least one block).
    pub fn split_points(&self) -> std::ops::RangeInclusive<usize> {
        1..=self.len().saturating_sub(1)
    }

    /// Wraps an input batch `[N, C, H, W]` as features.
    pub fn wrap_input(&self, x: Tensor<4>) -> Features {
        Features::Map(x)
    }

    /// Runs blocks `from+1..=to` (1-based, so `run(x, 0, k)` is the edge part
    /// of split `k`).
    pub fn run(&self, mut x: Features, from: usize, to: usize) -> Features {
        for block in &self.blocks[from..to] {
            x = block.forward(x);
        }
        x
    }

    /// Full forward pass: `[N, C, H, W] -> [N, classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(Features::Map(x), 0, self.len()).flatten()
    }

    /// Features after every block: element `k-1` is what split `k` sends.
    pub fn forward_all(&self, x: Tensor<4>) -> Vec<Features> {
        let mut out = Vec::with_capacity(self.len());
        let mut f = Features::Map(x);
        for block in &self.blocks {
            f = block.forward(f);
            out.push(f.clone());
        }
        out
    }

    /// Features the edge sends at split `k`.
    pub fn edge_forward(&self, x: Tensor<4>, k: usize) -> Features {
        self.run(Features::Map(x), 0, k)
    }

    /// Server part: runs blocks `k+1..` on split features, giving logits.
    pub fn server_forward(&self, z: Features, k: usize) -> Tensor<2> {
        self.run(z, k, self.len()).flatten()
    }

    /// Splits into (edge, server) models at `k` (`1 <= k < len`).
    pub fn split(&self, k: usize) -> Result<(SplitModel, SplitModel), ModelError> {
        if !self.split_points().contains(&k) {
            return Err(ModelError::Split {
                split: k,
                blocks: self.len(),
            });
        }
        let infos = self.infos()?;
        let edge = SplitModel {
            blocks: self.blocks[..k].to_vec(),
            input: self.input.clone(),
            arch: format!("{}-edge{k}", self.arch),
        };
        let server = SplitModel {
            blocks: self.blocks[k..].to_vec(),
            input: infos[k - 1].output.clone(),
            arch: format!("{}-server{k}", self.arch),
        };
        Ok((edge, server))
    }

    /// Runs a server part (from [`split`](Self::split)) on edge features.
    pub fn forward_features(&self, z: Features) -> Tensor<2> {
        self.run(z, 0, self.len()).flatten()
    }
}
