//! The recipe as written in YAML (the raw, parsed form).
//!
//! Every struct denies unknown fields and every technique is a tagged enum,
//! so a typo is an error naming the field, never a silently ignored line.
//! Defaults live here, documented on the field.

use serde::{Deserialize, Serialize};

pub use crate::data::config::{AttackerData, DataConfig, DataSource};

use crate::attack::AuditConfig;
use crate::defense::DefensesConfig;
use crate::model::{BlockSpec, WeightsConfig};
use crate::prune::PruneConfig;
use crate::train::TrainConfig;

fn default_seed() -> u64 {
    42
}

fn default_repeats() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// The most repeats a recipe may ask for.
pub const MAX_REPEATS: usize = 100;

/// A whole recipe: one `splitguard run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Run name; the default output folder is `checkpoints/<name>/`.
    pub name: String,
    /// Seed of every random choice (data split, initialisation, batch order,
    /// attackers). Same recipe + same seed + same backend = same numbers.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Run the whole recipe (training and audit) this many times, from
    /// seeds derived from `seed` (repeat 0 uses `seed` itself, repeat `i`
    /// the `i`-th SplitMix64 output from `seed`), into `rep_0/ ..
    /// rep_{N-1}/` of the run folder; the top-level report then gives every
    /// number's mean, standard deviation and 95% Student-t interval over the
    /// repeats (1..=100, default 1: one run, no `rep_0/`).
    #[serde(default = "default_repeats", skip_serializing_if = "is_one")]
    // schemars leaves out a default that `skip_serializing_if` skips: state it.
    #[schemars(extend("default" = 1), range(min = 1, max = 100))]
    pub repeats: usize,
    /// Where the images come from and how they are split.
    #[serde(default)]
    pub data: DataConfig,
    /// The network.
    #[schemars(with = "super::schema::ModelSchema")]
    pub model: ModelConfig,
    /// The deployment split: blocks `1..=split` run on the edge, and the
    /// training defenses protect the features sent there; `auto` chooses it
    /// with the partition analysis (seed 002) after training (default 1).
    #[serde(default)]
    pub split: Option<SplitSetting>,
    /// The golden-partition analysis (default: off, unless `split: auto`).
    #[serde(default)]
    pub partition: Option<crate::partition::PartitionConfig>,
    /// Training (with its defenses).
    #[serde(default)]
    pub training: TrainConfig<DefensesConfig>,
    /// The attacks that audit the result.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Budget-driven pruning after training (seed 001, PATROL); when given,
    /// the edge FLOPs budget chooses the split (default: no pruning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneConfig>,
    /// Obfuscation at the deployment split (seed 004; default: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obfuscation: Option<crate::obfuscate::stage::ObfuscationConfig>,
    /// Gradient leakage and I2F (`splitguard leakage`; seed 003).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leakage: Option<crate::leakage::LeakageConfig>,
    /// The search space and budgets of `splitguard harden` (issue 17;
    /// `splitguard run` ignores it; default: the seeds' defenses, pruning
    /// on/off, the recipe's split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harden: Option<crate::harden::HardenConfig>,
}

/// The deployment split: a number, or `auto`.
///
/// Deserialised by hand (not `#[serde(untagged)]`, whose only message is
/// "data did not match any variant"): anything else is refused with what
/// was found and the two allowed forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SplitSetting {
    /// A fixed split point (1 = after the first block).
    At(#[schemars(range(min = 1))] usize),
    /// Chosen by the partition analysis.
    Auto(AutoSplit),
}

impl<'de> Deserialize<'de> for SplitSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SplitSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a split point (an integer >= 1) or `auto`")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SplitSetting, E> {
                usize::try_from(v)
                    .map(SplitSetting::At)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SplitSetting, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SplitSetting, E> {
                match v {
                    "auto" => Ok(SplitSetting::Auto(AutoSplit::Auto)),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The word `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoSplit {
    /// Choose the split from the golden partition zone.
    Auto,
}

/// The `model:` section: a zoo name or a list of blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Zoo architecture (`cnn6`, `vgg11-mnist`, `lenet`), or a label for `blocks`.
    pub arch: String,
    /// Shape of one input image `[C, H, W]` (default: the data's). When
    /// given it must match the data; it lets `splitguard model keys` describe
    /// a `blocks` model without loading data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<[usize; 3]>,
    /// The network as a list of blocks, instead of a zoo architecture.
    #[serde(default)]
    pub blocks: Option<Vec<BlockSpec>>,
    /// Pretrained weights to start from (a PyTorch `state_dict` or a
    /// safetensors file, in PyTorch layout); training fine-tunes them, and
    /// `training.epochs: 0` audits them as they are (default: random
    /// initialisation from the seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsConfig>,
}

#[cfg(test)]
mod tests {
    use super::{AutoSplit, SplitSetting};

    #[test]
    fn split_setting_takes_a_number_or_auto_and_says_so_otherwise() {
        let parse = |s: &str| serde_norway::from_str::<SplitSetting>(s);
        assert_eq!(parse("3").unwrap(), SplitSetting::At(3));
        assert_eq!(parse("auto").unwrap(), SplitSetting::Auto(AutoSplit::Auto));
        for bad in ["automatic", "-1", "[1]"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("a split point (an integer >= 1) or `auto`"),
                "{bad}: {e}"
            );
            assert!(!e.contains("untagged"), "{e}");
        }
    }
}
