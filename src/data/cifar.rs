//! CIFAR-10 and CIFAR-100 in their official binary format, by folder.
//!
//! The datasets are Krizhevsky's: A. Krizhevsky, "Learning Multiple Layers
//! of Features from Tiny Images", tech. report, University of Toronto, 2009.
//! The binary layout is the one described on the CIFAR page
//! (<https://www.cs.toronto.edu/~kriz/cifar.html>, "Binary version"):
//! a file is a plain sequence of fixed-size records, no header.
//! - CIFAR-10 (`cifar-10-binary.tar.gz` -> `cifar-10-batches-bin/`):
//!   `data_batch_1.bin` .. `data_batch_5.bin` (training, 10,000 records
//!   each) and `test_batch.bin` (10,000); a record is 1 label byte (0..=9)
//!   then 3072 pixel bytes.
//! - CIFAR-100 (`cifar-100-binary.tar.gz` -> `cifar-100-binary/`):
//!   `train.bin` (50,000 records) and `test.bin` (10,000); a record is 1
//!   coarse label byte (0..=19), 1 fine label byte (0..=99), then 3072
//!   pixel bytes.
//!
//! The 3072 pixel bytes are the 32x32 red plane, then green, then blue, each
//! row-major: exactly the crate's C*H*W layout, so a record's pixels are
//! copied in order and divided by 255.
//!
//! Like every loader here the files are untrusted: a file's size is read
//! from its metadata and checked against [`MAX_CIFAR_FILE_BYTES`] and the
//! record size before anything is allocated, and the read itself is capped,
//! so a wrong path to a huge file fails fast instead of exhausting memory.
//! The official train/test files are pooled (or one of them chosen with
//! [`CifarFiles`]) and then split into train / aux / test like every other
//! source, because the audit needs three disjoint parts, not two.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::error::DataError;

/// Largest CIFAR file read (512 MiB; the official files are 30 MB for a
/// CIFAR-10 batch and 154 MB for CIFAR-100's `train.bin`).
pub const MAX_CIFAR_FILE_BYTES: u64 = 512 << 20;

/// Pixel bytes of one record: 3 planes of 32x32.
const PIXELS: usize = 3 * 32 * 32;

/// Which of the official files a CIFAR source reads.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CifarFiles {
    /// The training files, then the test file (60,000 images).
    #[default]
    All,
    /// The training files only (50,000 images).
    Train,
    /// The test file only (10,000 images): smaller, quicker to load.
    Test,
}

/// Which CIFAR-100 label becomes the task label.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Cifar100Labels {
    /// The 100 fine classes.
    #[default]
    Fine,
    /// The 20 coarse classes (superclasses).
    Coarse,
}

/// One record layout: its files and where its label byte sits.
struct Format {
    /// Dataset name, for reports.
    name: &'static str,
    /// Dataset name, for messages.
    title: &'static str,
    /// Training files, in order.
    train: &'static [&'static str],
    /// Test files.
    test: &'static [&'static str],
    /// Label bytes before the pixels.
    label_bytes: usize,
    /// Which of them is the task label.
    label_at: usize,
    /// Number of classes of that label.
    classes: usize,
    /// What the label is called in messages.
    label_name: &'static str,
    /// The files a folder must hold, in words.
    expected: &'static str,
}

const CIFAR10: Format = Format {
    name: "cifar10",
    title: "CIFAR-10",
    train: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test: &["test_batch.bin"],
    label_bytes: 1,
    label_at: 0,
    classes: 10,
    label_name: "label",
    expected: "a CIFAR-10 binary folder holds data_batch_1.bin .. data_batch_5.bin and \
               test_batch.bin (cifar-10-batches-bin/ from cifar-10-binary.tar.gz)",
};

const CIFAR100_EXPECTED: &str = "a CIFAR-100 binary folder holds train.bin and test.bin \
                                 (cifar-100-binary/ from cifar-100-binary.tar.gz)";

const CIFAR100_FINE: Format = Format {
    name: "cifar100",
    title: "CIFAR-100",
    train: &["train.bin"],
    test: &["test.bin"],
    label_bytes: 2,
    label_at: 1,
    classes: 100,
    label_name: "fine label",
    expected: CIFAR100_EXPECTED,
};

const CIFAR100_COARSE: Format = Format {
    name: "cifar100-coarse",
    label_at: 0,
    classes: 20,
    label_name: "coarse label",
    ..CIFAR100_FINE
};

/// Loads a CIFAR-10 binary folder (see the module docs for its files) as
/// [3, 32, 32] images in [0, 1] with 10 classes; no hidden attributes.
pub fn load_cifar10(dir: &Path, files: CifarFiles) -> Result<Dataset, DataError> {
    load(dir, &CIFAR10, files)
}

/// Loads a CIFAR-100 binary folder as [3, 32, 32] images in [0, 1], labelled
/// by the 100 fine or the 20 coarse classes; no hidden attributes.
pub fn load_cifar100(
    dir: &Path,
    labels: Cifar100Labels,
    files: CifarFiles,
) -> Result<Dataset, DataError> {
    let format = match labels {
        Cifar100Labels::Fine => &CIFAR100_FINE,
        Cifar100Labels::Coarse => &CIFAR100_COARSE,
    };
    load(dir, format, files)
}

fn load(dir: &Path, format: &Format, files: CifarFiles) -> Result<Dataset, DataError> {
    let names: Vec<&str> = match files {
        CifarFiles::All => format.train.iter().chain(format.test).copied().collect(),
        CifarFiles::Train => format.train.to_vec(),
        CifarFiles::Test => format.test.to_vec(),
    };
    let record = format.label_bytes + PIXELS;
    // Check every file before reading any, so a wrong folder fails at once.
    let mut checked = Vec::with_capacity(names.len());
    let mut total_records = 0u64;
    for name in &names {
        let path = dir.join(name);
        let len = checked_len(&path, format, record)?;
        total_records += len / record as u64;
        checked.push((path, len));
    }
    let mut images = Vec::with_capacity(total_records as usize * PIXELS);
    let mut targets = Vec::with_capacity(total_records as usize);
    for (path, len) in &checked {
        let bytes = read_capped(path, *len)?;
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            let label = rec[format.label_at];
            if usize::from(label) >= format.classes {
                return Err(DataError::format(
                    path,
                    format!(
                        "record {i} (byte offset {}): {} {label} is out of range; {} {}s are 0..={}",
                        i * record,
                        format.label_name,
                        format.title,
                        format.label_name,
                        format.classes - 1
                    ),
                ));
            }
            targets.push(u32::from(label));
            images.extend(
                rec[format.label_bytes..]
                    .iter()
                    .map(|&p| f32::from(p) / 255.0),
            );
        }
    }
    let name = match files {
        CifarFiles::All => format.name.to_string(),
        CifarFiles::Train => format!("{}-train", format.name),
        CifarFiles::Test => format!("{}-test", format.name),
    };
    Ok(Dataset {
        name,
        images,
        shape: [3, 32, 32],
        targets,
        num_classes: format.classes,
        hidden: Vec::new(),
    })
}

/// The length of `path` from its metadata, checked to exist, to be within
/// [`MAX_CIFAR_FILE_BYTES`] and to hold a whole, non-zero number of records.
fn checked_len(path: &Path, format: &Format, record: usize) -> Result<u64, DataError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::Missing {
                path: path.to_path_buf(),
                expected: format.expected,
            });
        }
        Err(e) => return Err(DataError::io(path, e)),
    };
    if !meta.is_file() {
        return Err(DataError::format(
            path,
            format!("is not a regular file; {}", format.expected),
        ));
    }
    let len = meta.len();
    if len > MAX_CIFAR_FILE_BYTES {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            what: format!("{} file", format.title),
            bytes: u128::from(len),
            limit: MAX_CIFAR_FILE_BYTES,
        });
    }
    if len == 0 || len % record as u64 != 0 {
        return Err(DataError::format(
            path,
            format!(
                "length {len} bytes is not a non-zero multiple of the {} record size, {record} bytes \
                 ({} label byte{} + {PIXELS} pixel bytes)",
                format.title,
                format.label_bytes,
                if format.label_bytes == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(len)
}

/// Reads `path`, whose metadata said `len` bytes, refusing to read more
/// (the file may have changed since).
fn read_capped(path: &Path, len: u64) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    if bytes.len() as u64 != len {
        return Err(DataError::format(
            path,
            format!(
                "changed while being read: {len} bytes expected, {} read",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::write_atomic;

    /// Pixel byte `k` of record `r`: distinct across records, planes and
    /// positions, and covering 0 and 255.
    fn pixel(r: usize, k: usize) -> u8 {
        ((r * 37 + k * 11 + k / 1024) % 256) as u8
    }

    /// `labels.len()` records, each the label bytes then 3072 pixels.
    fn records(labels: &[&[u8]], first: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            out.extend_from_slice(l);
            out.extend((0..PIXELS).map(|k| pixel(first + i, k)));
        }
        out
    }

    /// A CIFAR-10 folder: batches 1..5 hold records 2i, 2i+1 (labels
    /// 2i and 2i+1), the test batch records 10, 11 (labels 9, 0).
    fn cifar10_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for b in 0..5 {
            let l = [[2 * b as u8], [2 * b as u8 + 1]];
            let bytes = records(&[&l[0], &l[1]], 2 * b);
            write_atomic(&dir.path().join(CIFAR10.train[b]), &bytes).unwrap();
        }
        let bytes = records(&[&[9], &[0]], 10);
        write_atomic(&dir.path().join("test_batch.bin"), &bytes).unwrap();
        dir
    }

    /// A CIFAR-100 folder: train.bin records (coarse, fine) = (19, 99),
    /// (0, 5), (7, 42); test.bin one record (3, 14).
    fn cifar100_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let bytes = records(&[&[19, 99], &[0, 5], &[7, 42]], 0);
        write_atomic(&dir.path().join("train.bin"), &bytes).unwrap();
        write_atomic(&dir.path().join("test.bin"), &records(&[&[3, 14]], 3)).unwrap();
        dir
    }

    /// Image `i` of `ds` equals record `r`'s pixels / 255, exactly, with
    /// the red, green and blue planes in CHW order.
    fn assert_record(ds: &Dataset, i: usize, r: usize) {
        let img = ds.image(i);
        assert_eq!(img.len(), PIXELS);
        for (k, &v) in img.iter().enumerate() {
            assert_eq!(v, f32::from(pixel(r, k)) / 255.0, "image {i} value {k}");
        }
    }

    #[test]
    fn cifar10_loads_training_batches_then_test_pixel_exact() {
        let dir = cifar10_dir();
        let ds = load_cifar10(dir.path(), CifarFiles::All).unwrap();
        assert_eq!(ds.name, "cifar10");
        assert_eq!(ds.shape, [3, 32, 32]);
        assert_eq!(ds.num_classes, 10);
        assert_eq!(ds.targets, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 0]);
        for r in 0..12 {
            assert_record(&ds, r, r);
        }
        // Plane order: value (row 1, col 2) of the green plane.
        let k = 1024 + 32 + 2;
        assert_eq!(ds.image(3)[k], f32::from(pixel(3, k)) / 255.0);
        assert!(ds.validate().is_ok());
    }

    #[test]
    fn cifar10_files_train_or_test_reads_only_those() {
        let dir = cifar10_dir();
        let train = load_cifar10(dir.path(), CifarFiles::Train).unwrap();
        assert_eq!(train.len(), 10);
        assert_eq!(train.name, "cifar10-train");
        let test = load_cifar10(dir.path(), CifarFiles::Test).unwrap();
        assert_eq!(test.targets, vec![9, 0]);
        assert_record(&test, 1, 11);
        // Only the test file is needed for `test`.
        std::fs::remove_file(dir.path().join("data_batch_3.bin")).unwrap();
        assert!(load_cifar10(dir.path(), CifarFiles::Test).is_ok());
    }

    #[test]
    fn cifar100_fine_and_coarse_labels() {
        let dir = cifar100_dir();
        let fine = load_cifar100(dir.path(), Cifar100Labels::Fine, CifarFiles::All).unwrap();
        assert_eq!(fine.num_classes, 100);
        assert_eq!(fine.targets, vec![99, 5, 42, 14]);
        assert_eq!(fine.shape, [3, 32, 32]);
        for r in 0..4 {
            assert_record(&fine, r, r);
        }
        let coarse = load_cifar100(dir.path(), Cifar100Labels::Coarse, CifarFiles::All).unwrap();
        assert_eq!(coarse.num_classes, 20);
        assert_eq!(coarse.targets, vec![19, 0, 7, 3]);
        assert_eq!(coarse.images, fine.images);
        let test = load_cifar100(dir.path(), Cifar100Labels::Coarse, CifarFiles::Test).unwrap();
        assert_eq!(test.targets, vec![3]);
        assert!(fine.validate().is_ok() && coarse.validate().is_ok());
    }

    #[test]
    fn cifar_missing_file_is_named_with_the_expected_files() {
        let dir = cifar10_dir();
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        let err = load_cifar10(dir.path(), CifarFiles::All).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Missing { .. }), "{msg}");
        assert!(
            msg.contains("data_batch_4.bin") && msg.contains("test_batch.bin"),
            "{msg}"
        );
        let empty = tempfile::tempdir().unwrap();
        let msg = load_cifar100(empty.path(), Cifar100Labels::Fine, CifarFiles::All)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("train.bin") && msg.contains("cifar-100-binary"),
            "{msg}"
        );
    }

    #[test]
    fn cifar_length_must_be_a_multiple_of_the_record_size() {
        let dir = cifar100_dir();
        let mut bytes = records(&[&[1, 2]], 0);
        bytes.pop();
        write_atomic(&dir.path().join("test.bin"), &bytes).unwrap();
        let msg = load_cifar100(dir.path(), Cifar100Labels::Fine, CifarFiles::All)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("test.bin") && msg.contains("length 3073 bytes") && msg.contains("3074"),
            "{msg}"
        );
        // A CIFAR-10 record is one byte shorter: CIFAR-100 files are refused.
        let dir10 = cifar10_dir();
        write_atomic(
            &dir10.path().join("test_batch.bin"),
            &records(&[&[1, 2]], 0),
        )
        .unwrap();
        let msg = load_cifar10(dir10.path(), CifarFiles::Test)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("length 3074 bytes") && msg.contains("3073"),
            "{msg}"
        );
        // An empty file holds no record.
        write_atomic(&dir10.path().join("test_batch.bin"), b"").unwrap();
        let msg = load_cifar10(dir10.path(), CifarFiles::Test)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("length 0 bytes"), "{msg}");
    }

    #[test]
    fn cifar_label_out_of_range_names_the_record() {
        let dir = cifar10_dir();
        write_atomic(
            &dir.path().join("data_batch_2.bin"),
            &records(&[&[3], &[10]], 0),
        )
        .unwrap();
        let msg = load_cifar10(dir.path(), CifarFiles::All)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("data_batch_2.bin")
                && msg.contains("record 1 (byte offset 3073)")
                && msg.contains("label 10")
                && msg.contains("0..=9"),
            "{msg}"
        );
        // A fine label is fine for `fine` but out of range as a coarse one.
        let dir = cifar100_dir();
        write_atomic(&dir.path().join("test.bin"), &records(&[&[20, 50]], 0)).unwrap();
        assert!(load_cifar100(dir.path(), Cifar100Labels::Fine, CifarFiles::All).is_ok());
        let msg = load_cifar100(dir.path(), Cifar100Labels::Coarse, CifarFiles::All)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("coarse label 20") && msg.contains("0..=19"),
            "{msg}"
        );
    }

    #[test]
    fn cifar_files_above_the_cap_are_refused_before_reading() {
        let dir = cifar10_dir();
        let path = dir.path().join("test_batch.bin");
        // A sparse file: its length is over the cap, nothing is written.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(MAX_CIFAR_FILE_BYTES + 3073).unwrap();
        drop(file);
        let err = load_cifar10(dir.path(), CifarFiles::Test).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::TooLarge { .. }), "{msg}");
        assert!(
            msg.contains("test_batch.bin") && msg.contains("limit"),
            "{msg}"
        );
    }

    #[test]
    fn cifar_file_that_is_a_folder_is_reported() {
        let dir = cifar100_dir();
        std::fs::remove_file(dir.path().join("test.bin")).unwrap();
        std::fs::create_dir(dir.path().join("test.bin")).unwrap();
        let msg = load_cifar100(dir.path(), Cifar100Labels::Fine, CifarFiles::All)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("test.bin") && msg.contains("not a regular file"),
            "{msg}"
        );
    }
}
