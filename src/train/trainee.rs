//! What the trainer trains: a split model, or a split model with
//! parameters of its own beside it (PATROL's channel masks,
//! [`crate::prune::masks`]). The one training loop ([`super::train_trainee`])
//! drives either, the way burn-train's `TrainStep` lets one `Learner` drive
//! any model: the trainee says how its blocks run, which loss terms it adds,
//! how it applies its gradients and what it must save to resume.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;

use super::DefenseState;
use crate::model::{Features, SplitModel};

/// A model the trainer can train (see the module docs).
pub trait Trainee: Sized {
    /// The split model inside.
    fn model(&self) -> &SplitModel;

    /// The same trainee around `model` (a checkpoint's weights on resume).
    fn with_model(self, model: SplitModel) -> Self;

    /// The trainee's copy on `device`, in training mode.
    fn fork(self, device: &Device) -> Self;

    /// The output of 0-based block `i` on `u` (before the VAE head's mean
    /// where it sits); a trainee that scales a block's output says so here.
    fn block(&self, i: usize, u: Features) -> Features {
        self.model().blocks[i].forward(u)
    }

    /// The loss terms of the trainee's own, weighted, `[1]` each (PATROL's
    /// sparsity), for a batch of `examples`; the trainer adds them after the
    /// defenses' terms.
    fn loss_terms(&mut self, _examples: usize) -> Vec<Tensor<1>> {
        Vec::new()
    }

    /// Applies one step's gradients: the model's with `optim` at `lr` (the
    /// recipe's optimiser and schedule), its own parameters as it chooses.
    fn update(self, grads: Gradients, lr: f64, optim: &mut ModuleOptimizer) -> Self;

    /// Named values to log for the finished epoch.
    fn epoch_log(&mut self) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// The name its saved state goes under in a checkpoint, and the state's
    /// version; `None` for a trainee that is only its model.
    fn state_version(&self) -> Option<(&'static str, u32)> {
        None
    }

    /// The state to save with the model at the end of an epoch.
    fn state(&self) -> Result<Option<DefenseState>, String> {
        Ok(None)
    }

    /// Restores a state saved by [`state`](Self::state) (the trainer checks
    /// the version first); `device` is the training device.
    fn restore(&mut self, _state: DefenseState, _device: &Device) -> Result<(), String> {
        Err("this trainee keeps no state besides its model".into())
    }
}

impl Trainee for SplitModel {
    fn model(&self) -> &SplitModel {
        self
    }

    fn with_model(self, model: SplitModel) -> Self {
        model
    }

    fn fork(self, device: &Device) -> Self {
        Module::fork(self, device).train()
    }

    fn update(self, grads: Gradients, lr: f64, optim: &mut ModuleOptimizer) -> Self {
        let grads = GradientsParams::from_grads(grads, &self);
        optim.step(lr, self, grads)
    }
}
