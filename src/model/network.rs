//! The split-able network: a sequence of blocks and its spec.

use burn::module::Module;
use burn::prelude::*;

use super::ModelError;
use super::block::{Block, Features};
use super::spec::{BlockInfo, BlockSpec, ModelSpec, add_vae_cost, block_infos};
use super::vae::{VaeHead, VaeSpec};

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
    /// Optional VAE head after block `vae_at` (seed 004; [`super::vae`]).
    pub vae: Option<VaeHead>,
    /// The block the VAE head follows (1-based; 0 when there is none).
    #[module(skip)]
    pub vae_at: usize,
}

impl SplitModel {
    /// Builds a freshly initialised model from a spec (checked first).
    pub fn new(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let mut model = Self::from_blocks(&spec.arch, &spec.input, &spec.blocks, device)?;
        if let Some(v) = &spec.vae {
            let infos = spec.infos()?; // checks that `at` is a split point
            model.vae = Some(VaeHead::new(&infos[v.at - 1].output, device));
            model.vae_at = v.at;
        }
        Ok(model)
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
            vae: None,
            vae_at: 0,
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
            vae: self.vae_spec(),
        })
    }

    /// Where the VAE head sits, if there is one.
    pub fn vae_spec(&self) -> Option<VaeSpec> {
        self.vae.as_ref().map(|_| VaeSpec { at: self.vae_at })
    }

    /// Per-block shapes, FLOPs and parameters.
    pub fn infos(&self) -> Result<Vec<BlockInfo>, ModelError> {
        let mut infos = block_infos(&self.input, &self.block_specs())?;
        add_vae_cost(&mut infos, self.vae_spec().as_ref())?;
        Ok(infos)
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
    /// The VAE head's mean follows block `vae_at` when that block runs.
    pub fn run(&self, x: Features, from: usize, to: usize) -> Features {
        self.run_hooked(x, from, to, &mut |_, f| f)
    }

    /// Like [`run`](Self::run), passing the output of every block `k`
    /// (1-based, after the VAE mean where it sits) through `hook(k, _)`:
    /// how training-time defenses reach layers other than the split.
    pub fn run_hooked(
        &self,
        x: Features,
        from: usize,
        to: usize,
        hook: &mut dyn FnMut(usize, Features) -> Features,
    ) -> Features {
        self.run_blocks(x, from, to, &|i, u| self.blocks[i].forward(u), hook)
    }

    /// Like [`run_hooked`](Self::run_hooked), with `block(i, u)` standing for
    /// 0-based block `i` (a trainee that scales a block's output, as
    /// PATROL's channel masks do, passes its own).
    pub fn run_blocks(
        &self,
        mut x: Features,
        from: usize,
        to: usize,
        block: &dyn Fn(usize, Features) -> Features,
        hook: &mut dyn FnMut(usize, Features) -> Features,
    ) -> Features {
        for i in from..to {
            x = hook(i + 1, self.after_block(i + 1, block(i, x)));
        }
        x
    }

    /// Applies the VAE head's mean after 1-based block `k` if it sits there.
    fn after_block(&self, k: usize, x: Features) -> Features {
        match &self.vae {
            Some(head) if self.vae_at == k => head.mean(x),
            _ => x,
        }
    }

    /// Edge features at split `k` for training: `(mu, Some(log sigma^2))`
    /// when the VAE head sits at `k`, else `(features, None)`. `block(i, u)`
    /// stands for 0-based block `i` as in [`run_blocks`](Self::run_blocks);
    /// `hook` sees the output of blocks `1..k` (not `k` itself).
    pub fn edge_forward_moments(
        &self,
        x: Tensor<4>,
        k: usize,
        block: &dyn Fn(usize, Features) -> Features,
        hook: &mut dyn FnMut(usize, Features) -> Features,
    ) -> (Features, Option<Features>) {
        let h = self.run_blocks(Features::Map(x), 0, k.saturating_sub(1), block, hook);
        if k == 0 {
            return (h, None);
        }
        let h = block(k - 1, h);
        match &self.vae {
            Some(head) if self.vae_at == k => {
                let (mu, log_var) = head.moments(h);
                (mu, Some(log_var))
            }
            _ => (self.after_block(k, h), None),
        }
    }

    /// Full forward pass: `[N, C, H, W] -> [N, classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(Features::Map(x), 0, self.len()).flatten()
    }

    /// Features after every block: element `k-1` is what split `k` sends.
    pub fn forward_all(&self, x: Tensor<4>) -> Vec<Features> {
        let mut out = Vec::with_capacity(self.len());
        let mut f = Features::Map(x);
        for (i, block) in self.blocks.iter().enumerate() {
            f = self.after_block(i + 1, block.forward(f));
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
        let on_edge = self.vae.is_some() && self.vae_at <= k;
        let on_server = self.vae.is_some() && self.vae_at > k;
        let edge = SplitModel {
            blocks: self.blocks[..k].to_vec(),
            input: self.input.clone(),
            arch: format!("{}-edge{k}", self.arch),
            vae: self.vae.clone().filter(|_| on_edge),
            vae_at: if on_edge { self.vae_at } else { 0 },
        };
        let server = SplitModel {
            blocks: self.blocks[k..].to_vec(),
            input: infos[k - 1].output.clone(),
            arch: format!("{}-server{k}", self.arch),
            vae: self.vae.clone().filter(|_| on_server),
            vae_at: if on_server { self.vae_at - k } else { 0 },
        };
        Ok((edge, server))
    }

    /// Runs a server part (from [`split`](Self::split)) on edge features.
    pub fn forward_features(&self, z: Features) -> Tensor<2> {
        self.run(z, 0, self.len()).flatten()
    }
}
