//! The recipe as written in YAML (the raw, parsed form).
//!
//! Every struct denies unknown fields and every technique is a tagged enum,
//! so a typo is an error naming the field, never a silently ignored line.
//! Defaults live here, documented on the field.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::attack::AuditConfig;
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
    pub training: TrainConfig,
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

/// The data an attacker trains on (seed 002's "enhanced inversion" varies it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttackerData {
    /// The `aux` part: same distribution as the victims (default).
    #[default]
    Aux,
    /// A `fraction` of `aux` (a weaker attacker): a subsample stratified by
    /// the target and every hidden attribute, drawn with the recipe's `seed`.
    AuxFraction {
        /// In (0, 1].
        fraction: f64,
    },
    /// Another dataset of the same image shape (e.g. another IDX set).
    Dataset {
        /// Where it comes from.
        source: DataSource,
        /// Use only `limit` of its images: a subsample stratified by the
        /// target and every hidden attribute, drawn with the recipe's
        /// `seed`, in the source's order (default: all).
        #[serde(default)]
        limit: Option<usize>,
    },
}

/// Dataset source, chosen by `kind`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// The MNIST test set shipped in the repository (10,000 digits; hidden
    /// attribute: writer group).
    #[default]
    EmbeddedMnist,
    /// Any IDX dataset (MNIST, Fashion-MNIST, ...), plain or gzipped.
    Idx {
        /// The IDX3 images file.
        images: PathBuf,
        /// The IDX1 labels file.
        labels: PathBuf,
        /// Number of classes; every label must be below it (default: the
        /// largest label + 1, and then every class below it must have an
        /// image, so that a stray label is refused rather than making
        /// empty classes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<usize>,
    },
    /// The ORL/AT&T faces folder (`sN/M.pgm`).
    Orl {
        /// The folder holding `s1/ .. s40/`.
        dir: PathBuf,
        /// Downscale factor (1 = 112x92, 2 = 56x46; default 1).
        #[serde(default)]
        downscale: Option<usize>,
    },
    /// A folder of PNG/PGM images with a `file,label[,attr...]` CSV.
    Folder {
        /// The images folder.
        dir: PathBuf,
        /// The labels CSV.
        labels: PathBuf,
    },
    /// CIFAR-10's binary files (`cifar-10-batches-bin/`): 3x32x32 colour
    /// images, 10 classes.
    Cifar10 {
        /// The folder holding `data_batch_1.bin` .. `data_batch_5.bin` and
        /// `test_batch.bin`.
        dir: PathBuf,
        /// Which official files to read: `all` (train then test, 60,000
        /// images), `train` (50,000) or `test` (10,000); default `all`.
        #[serde(default)]
        files: crate::data::CifarFiles,
    },
    /// CIFAR-100's binary files (`cifar-100-binary/`): 3x32x32 colour
    /// images, 100 fine or 20 coarse classes.
    Cifar100 {
        /// The folder holding `train.bin` and `test.bin`.
        dir: PathBuf,
        /// The task label: `fine` (100 classes) or `coarse` (20); default `fine`.
        #[serde(default)]
        labels: crate::data::Cifar100Labels,
        /// Which official files to read: `all` (train then test, 60,000
        /// images), `train` (50,000) or `test` (10,000); default `all`.
        #[serde(default)]
        files: crate::data::CifarFiles,
    },
}

fn default_fractions() -> [f64; 3] {
    [0.6, 0.2, 0.2]
}

/// The `data:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Where the images come from (default: the embedded MNIST test set).
    #[serde(default)]
    pub source: DataSource,
    /// Fractions for the `train` (model owner), `aux` (attacker) and `test`
    /// (victim queries) parts, stratified and disjoint (default [0.6, 0.2, 0.2]).
    #[serde(default = "default_fractions")]
    pub fractions: [f64; 3],
    /// Use only `limit` images of the source (default: all): a subsample
    /// stratified by the target and every hidden attribute jointly (each
    /// group keeps its share within one image), drawn with the recipe's
    /// `seed`, in the source's order; the parts are split from it.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: DataSource::default(),
            fractions: default_fractions(),
            limit: None,
        }
    }
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
