//! The `data:` recipe section and the attacker's data choice: where images
//! come from, how they are split, what the attacker trains on. They live
//! with the data stage that reads them (the recipe re-exports them), so
//! every stage that needs them looks down, never up at the recipe.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
        files: super::CifarFiles,
    },
    /// CIFAR-100's binary files (`cifar-100-binary/`): 3x32x32 colour
    /// images, 100 fine or 20 coarse classes.
    Cifar100 {
        /// The folder holding `train.bin` and `test.bin`.
        dir: PathBuf,
        /// The task label: `fine` (100 classes) or `coarse` (20); default `fine`.
        #[serde(default)]
        labels: super::Cifar100Labels,
        /// Which official files to read: `all` (train then test, 60,000
        /// images), `train` (50,000) or `test` (10,000); default `all`.
        #[serde(default)]
        files: super::CifarFiles,
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
