//! Training settings (the recipe's `training:` section).

use serde::{Deserialize, Serialize};

fn default_epochs() -> usize {
    5
}
fn default_batch() -> usize {
    64
}
fn default_lr() -> f64 {
    1e-3
}
fn default_gamma() -> f64 {
    0.1
}

/// The optimiser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam (Kingma and Ba) with optional decoupled-from-nothing L2 weight decay.
    Adam {
        /// Learning rate (default 1e-3).
        #[serde(default = "default_lr")]
        lr: f64,
        /// L2 weight decay (default 0).
        #[serde(default)]
        weight_decay: f64,
    },
    /// Stochastic gradient descent with optional momentum.
    Sgd {
        /// Learning rate (default 1e-3).
        #[serde(default = "default_lr")]
        lr: f64,
        /// Momentum (default 0).
        #[serde(default)]
        momentum: f64,
        /// L2 weight decay (default 0).
        #[serde(default)]
        weight_decay: f64,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam {
            lr: default_lr(),
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Sgd { lr, .. } => *lr,
        }
    }

    /// The same optimiser with base learning rate `lr`.
    pub fn with_lr(&self, lr: f64) -> Self {
        let mut out = self.clone();
        match &mut out {
            OptimizerConfig::Adam { lr: l, .. } | OptimizerConfig::Sgd { lr: l, .. } => *l = lr,
        }
        out
    }
}

/// Step learning-rate drops: the rate is multiplied by `factor` at the start
/// of each epoch listed in `at_epochs` (1-based).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LrDrops {
    /// Epochs (1-based) at whose start the rate drops.
    #[serde(default)]
    pub at_epochs: Vec<usize>,
    /// Multiplier applied at each drop (default 0.1).
    #[serde(default = "default_gamma")]
    pub factor: f64,
}

impl Default for LrDrops {
    fn default() -> Self {
        Self {
            at_epochs: Vec::new(),
            factor: default_gamma(),
        }
    }
}

/// Training settings: the schedule the trainer follows, and the defenses
/// trained with the model. `D` is the recipe's defense list
/// ([`crate::defense::DefensesConfig`]); the trainer never reads it (it
/// calls the defenses built from it), so this module does not depend on
/// the defenses, which sit above it. Without defenses, `D` is `()`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "D: Deserialize<'de> + Default")
)]
#[schemars(bound = "D: schemars::JsonSchema + Default + Serialize")]
pub struct TrainConfig<D = ()> {
    /// Passes over the training data (default 5).
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Examples per step (default 64).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// The optimiser (default Adam, lr 1e-3).
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Learning-rate drops (default none).
    #[serde(default)]
    pub lr_drops: LrDrops,
    /// Defenses trained with the model (default none).
    #[serde(default)]
    pub defenses: D,
}

impl<D: Default> Default for TrainConfig<D> {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch(),
            optimizer: OptimizerConfig::default(),
            lr_drops: LrDrops::default(),
            defenses: D::default(),
        }
    }
}

impl<D> TrainConfig<D> {
    /// Learning rate in force during `epoch` (1-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let drops = self
            .lr_drops
            .at_epochs
            .iter()
            .filter(|&&e| e <= epoch)
            .count();
        self.optimizer.lr() * self.lr_drops.factor.powi(drops as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_drops_apply_from_the_listed_epoch() {
        let cfg: TrainConfig = TrainConfig {
            lr_drops: LrDrops {
                at_epochs: vec![3, 5],
                factor: 0.5,
            },
            ..Default::default()
        };
        assert_eq!(cfg.lr_at(1), 1e-3);
        assert_eq!(cfg.lr_at(2), 1e-3);
        assert_eq!(cfg.lr_at(3), 5e-4);
        assert_eq!(cfg.lr_at(5), 2.5e-4);
    }
}
