//! Errors of the data stage.
//!
//! Every message names the file (or the value, when there is no file), what
//! is wrong with it, and what would have been accepted, so a user can fix
//! the input without reading the loader's source.

use std::path::PathBuf;

/// Largest number of classes a label column may imply (`max label + 1`).
///
/// A typo such as `4000000000` in a labels CSV would otherwise make every
/// model built on the dataset allocate a classifier head of that size.
pub const MAX_CLASSES: u32 = 65_536;

/// Everything that can go wrong while loading or splitting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or folder could not be opened or read (including a corrupt
    /// gzip stream).
    #[error("{}: cannot read: {cause}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error (in the message, so not chained as a
        /// source: the command line would print it twice).
        cause: std::io::Error,
    },
    /// An IDX file starts with the wrong magic number.
    #[error("{}: bad magic 0x{found:08x}, expected 0x{expected:08x} ({what})", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number found in the file.
        found: u32,
        /// The magic number that was expected.
        expected: u32,
        /// What the expected magic number stands for.
        what: &'static str,
    },
    /// The file ends before the data its header announces.
    #[error("{}: truncated: {what} needs {needed} bytes, found only {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file holds more data than its header announces.
    #[error(
        "{}: more data than the header declares: {what} takes exactly {needed} bytes",
        path.display()
    )]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// What the header declares.
        what: String,
        /// Bytes the header accounts for.
        needed: u64,
    },
    /// A header declares a dimension of size zero.
    #[error("{}: {what} {dims:?} must all be >= 1", path.display())]
    ZeroDim {
        /// The file.
        path: PathBuf,
        /// Which dimensions.
        what: &'static str,
        /// The dimensions found.
        dims: Vec<u64>,
    },
    /// A header declares more data than this loader accepts.
    #[error("{}: {what} is {bytes} bytes, more than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What the header declares.
        what: String,
        /// Size it would take.
        bytes: u128,
        /// The limit.
        limit: u64,
    },
    /// Images and labels disagree on the number of examples.
    #[error(
        "{}: {images} images but {}: {labels} labels; the counts must be equal",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A label (or hidden-attribute value) is larger than [`MAX_CLASSES`] allows.
    #[error(
        "{}: {what} {value} is too large: values must be below {MAX_CLASSES}",
        path.display()
    )]
    LabelTooLarge {
        /// The file.
        path: PathBuf,
        /// Which column or field.
        what: String,
        /// The value found.
        value: u32,
    },
    /// An image file is malformed (PGM header, sample values, unknown format).
    #[error("{}: {problem}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A PNG file could not be decoded.
    #[error("{}: cannot decode PNG: {cause}", path.display())]
    Png {
        /// The file.
        path: PathBuf,
        /// The decoder's error (in the message, not chained).
        cause: image::ImageError,
    },
    /// Two images of one dataset differ in size.
    #[error(
        "{}: image is {found:?} (C, H, W) but {} is {expected:?}; all images must share one size",
        path.display(),
        first_path.display()
    )]
    ShapeMismatch {
        /// The odd image.
        path: PathBuf,
        /// Its shape.
        found: [usize; 3],
        /// The first image loaded.
        first_path: PathBuf,
        /// The first image's shape.
        expected: [usize; 3],
    },
    /// A line of a labels CSV is malformed.
    #[error("{} line {line}: {problem}", path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A file the dataset's layout requires is not there.
    #[error("{}: not found; {expected}", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// The files the layout requires, in words.
        expected: &'static str,
    },
    /// A folder holds no example in the expected layout.
    #[error("{}: no images found; expected {expected}", path.display())]
    Empty {
        /// The folder or file.
        path: PathBuf,
        /// The layout that was looked for.
        expected: &'static str,
    },
    /// A downscale factor does not fit the images.
    #[error(
        "{}: downscale factor {factor} must be between 1 and the image size {height}x{width}",
        path.display()
    )]
    ScaleFactor {
        /// The dataset folder.
        path: PathBuf,
        /// The factor asked for.
        factor: usize,
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
    },
    /// Split fractions are negative, not finite, or do not sum to one.
    #[error(
        "split fractions {fractions:?} (train, aux, test) must each be >= 0 and sum to 1 \
         (within 1e-6); they sum to {sum}"
    )]
    Fractions {
        /// The fractions given.
        fractions: [f64; 3],
        /// Their sum.
        sum: f64,
    },
}

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            cause,
        }
    }

    /// A format problem in `path`.
    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line prints an error's chain (`{:#}`): a cause that is
    /// both in the message and chained as a source would appear twice.
    #[test]
    fn a_cause_appears_once_in_the_printed_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let chain = format!("{:#}", anyhow::Error::new(DataError::io("data/x.idx", io)));
        assert_eq!(chain.matches("no such file").count(), 1, "{chain}");
        assert!(chain.starts_with("data/x.idx: cannot read"), "{chain}");
        let bad = image::load_from_memory_with_format(b"not a png", image::ImageFormat::Png)
            .expect_err("not a PNG");
        let cause = bad.to_string();
        let png = DataError::Png {
            path: "faces/1.png".into(),
            cause: bad,
        };
        let chain = format!("{:#}", anyhow::Error::new(png));
        assert_eq!(chain.matches(cause.as_str()).count(), 1, "{chain}");
    }
}
