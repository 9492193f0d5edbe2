//! IDX files (the MNIST format): a big-endian magic `0x0000_08NN` (u8 data,
//! NN dimensions), NN big-endian u32 sizes, then the raw bytes.
//!
//! Files may be plain or gzip-compressed (detected by the gzip magic, not
//! the name). The header is read and checked first; the payload is then read
//! through `Read::take(size + 1)`, so memory only grows with data that is
//! really there, and a plain file's length is compared with the header before
//! anything is allocated.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::dataset::Dataset;
use super::error::DataError;

/// Magic number of an IDX file holding u8 images [N, H, W].
pub const IDX3_U8_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file holding u8 labels [N].
pub const IDX1_U8_MAGIC: u32 = 0x0000_0801;
/// Largest IDX payload accepted (4 GiB of u8, 16 GiB once stored as f32).
pub const MAX_IDX_BYTES: u64 = 1 << 32;

/// Loads an IDX3 u8 images file [N, H, W] and an IDX1 u8 labels file [N]
/// (each plain or gzip) as a 1-channel dataset; pixels are divided by 255.
/// No hidden attributes.
///
/// `classes`, when given, is the class count and every label must be below
/// it; otherwise it is the largest label + 1 and every class below it must
/// have an image, so that a stray label (a 200 among digits) is refused
/// instead of silently making 201 classes (see [`check_labels`]).
pub fn load_idx(
    images: &Path,
    labels: &Path,
    classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let image_bytes = std::fs::read(images).map_err(|e| DataError::io(images, e))?;
    let label_bytes = std::fs::read(labels).map_err(|e| DataError::io(labels, e))?;
    let name = images
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".gz").to_string())
        .unwrap_or_else(|| "idx".to_string());
    let ds = dataset_from_idx_bytes(name, &image_bytes, images, &label_bytes, labels)?;
    let num_classes = check_labels(&ds.targets, classes, labels)?;
    Ok(Dataset { num_classes, ..ds })
}

/// The class count of IDX labels: `classes` when given (every label must be
/// below it), else the largest label + 1, with every class below it holding
/// at least one label. The error names the file, the offending label and
/// its position, and what is allowed.
pub fn check_labels(
    labels: &[u32],
    classes: Option<usize>,
    path: &Path,
) -> Result<usize, DataError> {
    match classes {
        Some(c) => match labels.iter().position(|&l| l as usize >= c) {
            Some(i) => Err(DataError::format(
                path,
                format!(
                    "label {} (item {i}) is not below the declared class count {c} (data.source.classes); labels must be in 0..={}",
                    labels[i],
                    c.saturating_sub(1)
                ),
            )),
            None => Ok(c),
        },
        None => {
            let Some(&max) = labels.iter().max() else {
                return Ok(0);
            };
            let n = max as usize + 1;
            let mut seen = vec![false; n];
            for &l in labels {
                seen[l as usize] = true;
            }
            let empty: Vec<usize> = (0..n).filter(|&k| !seen[k]).collect();
            if empty.is_empty() {
                return Ok(n);
            }
            let at = labels.iter().position(|&l| l == max).unwrap_or(0);
            Err(DataError::format(
                path,
                format!(
                    "label {max} (item {at}) would make {n} classes, but {} of them ({}) have no image; labels must number the classes 0..C-1 with every class present, or declare the class count with data.source.classes",
                    empty.len(),
                    shown(&empty)
                ),
            ))
        }
    }
}

/// `a, b, c` or `a..b` for a long run of numbers, for messages.
fn shown(v: &[usize]) -> String {
    match v {
        [a, .., b] if v.len() > 5 && b - a + 1 == v.len() => format!("{a}..={b}"),
        _ if v.len() > 5 => format!(
            "{}, ... ({} in all)",
            v[..5]
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            v.len()
        ),
        _ => v
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The labels of an IDX1 u8 file's bytes (plain or gzip); `path` names it
/// in messages.
pub fn idx_labels_from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<u32>, DataError> {
    let (_, labels) = parse_idx(bytes, path, 1)?;
    Ok(labels.iter().map(|&l| u32::from(l)).collect())
}

/// The shape `[1, H, W]` of one image of an IDX3 u8 images file (plain or
/// gzip), from its 16-byte header alone: bounded work whatever the file's
/// size, for `recipe check`.
pub fn idx_image_shape(images: &Path) -> Result<[usize; 3], DataError> {
    let mut file = std::fs::File::open(images).map_err(|e| DataError::io(images, e))?;
    let mut head = [0u8; 16];
    let got = read_up_to(&mut file, &mut head).map_err(|e| DataError::io(images, e))?;
    let header: Vec<u8> = if head[..got].starts_with(&[0x1f, 0x8b]) {
        let file = std::fs::File::open(images).map_err(|e| DataError::io(images, e))?;
        let mut gz = MultiGzDecoder::new(file);
        let mut h = [0u8; 16];
        let n = read_up_to(&mut gz, &mut h).map_err(|e| DataError::io(images, e))?;
        h[..n].to_vec()
    } else {
        head[..got].to_vec()
    };
    let magic = header
        .get(..4)
        .map(|m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
    if let Some(found) = magic
        && found != IDX3_U8_MAGIC
    {
        return Err(DataError::BadMagic {
            path: images.to_path_buf(),
            found,
            expected: IDX3_U8_MAGIC,
            what: kind(3),
        });
    }
    if header.len() < 16 {
        return Err(DataError::Truncated {
            path: images.to_path_buf(),
            what: format!("{} header", kind(3)),
            needed: 16,
            found: header.len() as u64,
        });
    }
    let dim = |k: usize| {
        u32::from_be_bytes([header[k], header[k + 1], header[k + 2], header[k + 3]]) as usize
    };
    Ok([1, dim(8), dim(12)])
}

/// Builds a dataset from the bytes of an images and a labels IDX file
/// (plain or gzip); the paths are only used in error messages.
pub(crate) fn dataset_from_idx_bytes(
    name: String,
    image_bytes: &[u8],
    images_path: &Path,
    label_bytes: &[u8],
    labels_path: &Path,
) -> Result<Dataset, DataError> {
    let (dims, pixels) = parse_idx(image_bytes, images_path, 3)?;
    let (ldims, labels) = parse_idx(label_bytes, labels_path, 1)?;
    if dims[0] != ldims[0] {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: dims[0],
            labels_path: labels_path.to_path_buf(),
            labels: ldims[0],
        });
    }
    let num_classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    Ok(Dataset {
        name,
        images: pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
        shape: [1, dims[1], dims[2]],
        targets: labels.iter().map(|&l| u32::from(l)).collect(),
        num_classes,
        hidden: Vec::new(),
    })
}

/// Parses an IDX file of u8 data with `ndims` dimensions from its bytes
/// (gzip detected by magic). Returns the dimensions and the payload.
pub(crate) fn parse_idx(
    bytes: &[u8],
    path: &Path,
    ndims: u8,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        read_idx(MultiGzDecoder::new(bytes), path, ndims, None)
    } else {
        read_idx(bytes, path, ndims, Some(bytes.len() as u64))
    }
}

/// What an IDX file of `ndims` u8 dimensions holds, for messages.
fn kind(ndims: u8) -> &'static str {
    if ndims == 3 {
        "IDX3 u8 images"
    } else {
        "IDX1 u8 labels"
    }
}

/// Reads an IDX stream; `total_len` is the stream length when known (plain
/// files), so a short or long file is rejected before allocating.
fn read_idx<R: Read>(
    mut reader: R,
    path: &Path,
    ndims: u8,
    total_len: Option<u64>,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let what = kind(ndims);
    let header_len = 4 + 4 * u64::from(ndims);
    let mut header = vec![0u8; header_len as usize];
    let got = read_up_to(&mut reader, &mut header).map_err(|e| DataError::io(path, e))?;
    if got >= 4 {
        let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let expected = 0x0000_0800 | u32::from(ndims);
        if magic != expected {
            return Err(DataError::BadMagic {
                path: path.to_path_buf(),
                found: magic,
                expected,
                what,
            });
        }
    }
    if (got as u64) < header_len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("{what} header"),
            needed: header_len,
            found: got as u64,
        });
    }
    let dims: Vec<u64> = header[4..]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    if dims.contains(&0) {
        return Err(DataError::ZeroDim {
            path: path.to_path_buf(),
            what: "IDX dimensions",
            dims,
        });
    }
    let payload: u128 = dims.iter().map(|&d| u128::from(d)).product();
    let described = format!("{what} {dims:?}");
    if payload > u128::from(MAX_IDX_BYTES) {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            what: described,
            bytes: payload,
            limit: MAX_IDX_BYTES,
        });
    }
    let payload = payload as u64;
    let needed = header_len + payload;
    if let Some(total) = total_len {
        if total < needed {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                what: described,
                needed,
                found: total,
            });
        }
        if total > needed {
            return Err(DataError::TrailingData {
                path: path.to_path_buf(),
                what: described,
                needed,
            });
        }
    }
    let mut data = Vec::new();
    reader
        .take(payload + 1)
        .read_to_end(&mut data)
        .map_err(|e| DataError::io(path, e))?;
    let got = data.len() as u64;
    if got < payload {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("{described} (decompressed)"),
            needed,
            found: header_len + got,
        });
    }
    if got > payload {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            what: format!("{described} (decompressed)"),
            needed,
        });
    }
    Ok((dims.iter().map(|&d| d as usize).collect(), data))
}

/// Reads into `buf` until it is full or the stream ends; returns the count.
fn read_up_to<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fsutil::write_atomic;
    use std::io::Write;

    /// Bytes of an IDX file with the given magic, dims and payload.
    pub(crate) fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Three 2x3 images with pixels 0..18 and labels [2, 0, 5].
    fn tiny() -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..18).map(|i| i * 15).collect();
        (
            idx_bytes(IDX3_U8_MAGIC, &[3, 2, 3], &pixels),
            idx_bytes(IDX1_U8_MAGIC, &[3], &[2, 0, 5]),
        )
    }

    fn write_pair(
        dir: &Path,
        images: &[u8],
        labels: &[u8],
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let (ip, lp) = (dir.join("images.idx"), dir.join("labels.idx"));
        write_atomic(&ip, images).unwrap();
        write_atomic(&lp, labels).unwrap();
        (ip, lp)
    }

    fn check_tiny(ds: &Dataset) {
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.shape, [1, 2, 3]);
        assert_eq!(ds.targets, vec![2, 0, 5]);
        assert_eq!(ds.num_classes, 6);
        for (i, &p) in ds.images.iter().enumerate() {
            assert!((p - (i as f32 * 15.0) / 255.0).abs() < 1e-6);
        }
        assert!(ds.validate().is_ok());
    }

    #[test]
    fn idx_round_trip_plain() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = tiny();
        let (ip, lp) = write_pair(dir.path(), &images, &labels);
        check_tiny(&load_idx(&ip, &lp, Some(6)).unwrap());
    }

    #[test]
    fn idx_round_trip_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = tiny();
        let (ip, lp) = write_pair(dir.path(), &gzip(&images), &gzip(&labels));
        check_tiny(&load_idx(&ip, &lp, Some(6)).unwrap());
    }

    #[test]
    fn idx_bad_magic_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (_, labels) = tiny();
        // Labels passed where images are expected.
        let (ip, lp) = write_pair(dir.path(), &labels, &labels);
        let err = load_idx(&ip, &lp, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::BadMagic { found: 0x801, .. }));
        assert!(msg.contains("bad magic 0x00000801, expected 0x00000803 (IDX3 u8 images)"));
        assert!(msg.contains("images.idx"), "{msg}");
    }

    #[test]
    fn idx_truncated_payload_plain_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = tiny();
        let short = &images[..images.len() - 1];
        let (ip, lp) = write_pair(dir.path(), short, &labels);
        let err = load_idx(&ip, &lp, None).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    needed: 34,
                    found: 33,
                    ..
                }
            ),
            "{err}"
        );
        let (ip, lp) = write_pair(dir.path(), &gzip(short), &labels);
        let err = load_idx(&ip, &lp, None).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    needed: 34,
                    found: 33,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn idx_truncated_header_and_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = tiny();
        let (ip, lp) = write_pair(dir.path(), &images[..7], &labels);
        assert!(matches!(
            load_idx(&ip, &lp, None).unwrap_err(),
            DataError::Truncated {
                needed: 16,
                found: 7,
                ..
            }
        ));
        let (ip, lp) = write_pair(dir.path(), &[], &labels);
        assert!(matches!(
            load_idx(&ip, &lp, None).unwrap_err(),
            DataError::Truncated { found: 0, .. }
        ));
    }

    #[test]
    fn idx_trailing_bytes_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (mut images, labels) = tiny();
        images.push(0);
        let (ip, lp) = write_pair(dir.path(), &images, &labels);
        assert!(matches!(
            load_idx(&ip, &lp, None).unwrap_err(),
            DataError::TrailingData { needed: 34, .. }
        ));
    }

    #[test]
    fn idx_zero_and_absurd_dims_are_rejected_before_reading() {
        let zero = idx_bytes(IDX3_U8_MAGIC, &[3, 0, 3], &[]);
        let err = parse_idx(&zero, Path::new("z.idx"), 3).unwrap_err();
        assert!(
            err.to_string().contains("[3, 0, 3] must all be >= 1"),
            "{err}"
        );
        let huge = idx_bytes(IDX3_U8_MAGIC, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2]);
        let err = parse_idx(&huge, Path::new("h.idx"), 3).unwrap_err();
        assert!(matches!(err, DataError::TooLarge { .. }), "{err}");
        // Plausible size but a tiny file: caught by the length check.
        let big = idx_bytes(IDX3_U8_MAGIC, &[60_000, 28, 28], &[1, 2]);
        let err = parse_idx(&gzip(&big), Path::new("b.idx.gz"), 3).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    }

    #[test]
    fn idx_count_mismatch_names_both_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (images, _) = tiny();
        let labels = idx_bytes(IDX1_U8_MAGIC, &[2], &[1, 1]);
        let (ip, lp) = write_pair(dir.path(), &images, &labels);
        let msg = load_idx(&ip, &lp, None).unwrap_err().to_string();
        assert!(
            msg.contains("3 images") && msg.contains("2 labels"),
            "{msg}"
        );
    }

    #[test]
    fn idx_corrupt_gzip_is_an_error() {
        let (images, _) = tiny();
        let mut gz = gzip(&images);
        let mid = gz.len() / 2;
        gz[mid..].iter_mut().for_each(|b| *b ^= 0xa5);
        assert!(parse_idx(&gz, Path::new("c.gz"), 3).is_err());
    }

    #[test]
    fn missing_file_names_path() {
        let err = load_idx(Path::new("/nonexistent/x.idx"), Path::new("y"), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/x.idx: cannot read")
        );
    }

    #[test]
    fn a_stray_label_is_refused_instead_of_making_empty_classes() {
        // Regression (issue 13): labels 0..9 and one 200 made 201 classes.
        let dir = tempfile::tempdir().unwrap();
        let (images, _) = tiny();
        let labels = idx_bytes(IDX1_U8_MAGIC, &[3], &[0, 1, 200]);
        let (ip, lp) = write_pair(dir.path(), &images, &labels);
        let msg = load_idx(&ip, &lp, None).unwrap_err().to_string();
        assert!(msg.contains("label 200 (item 2)"), "{msg}");
        assert!(
            msg.contains("2..=199") && msg.contains("data.source.classes"),
            "{msg}"
        );
        // A declared class count below the label: refused, with the range.
        let msg = load_idx(&ip, &lp, Some(10)).unwrap_err().to_string();
        assert!(
            msg.contains("label 200 (item 2)") && msg.contains("0..=9"),
            "{msg}"
        );
        // Declared large enough: accepted with that many classes.
        assert_eq!(load_idx(&ip, &lp, Some(201)).unwrap().num_classes, 201);
        // Dense labels need no declaration.
        let labels = idx_bytes(IDX1_U8_MAGIC, &[3], &[0, 2, 1]);
        let (ip, lp) = write_pair(dir.path(), &images, &labels);
        assert_eq!(load_idx(&ip, &lp, None).unwrap().num_classes, 3);
    }

    #[test]
    fn image_shape_is_read_from_the_header_alone() {
        let dir = tempfile::tempdir().unwrap();
        // A header announcing 60000 images of 7x5 with no payload: the
        // shape is known without reading (or needing) the images.
        let head = idx_bytes(IDX3_U8_MAGIC, &[60_000, 7, 5], &[]);
        let (ip, _) = write_pair(dir.path(), &head, &[]);
        assert_eq!(idx_image_shape(&ip).unwrap(), [1, 7, 5]);
        std::fs::write(&ip, gzip(&head)).unwrap();
        assert_eq!(idx_image_shape(&ip).unwrap(), [1, 7, 5]);
        std::fs::write(&ip, idx_bytes(IDX1_U8_MAGIC, &[3], &[1, 2, 3])).unwrap();
        assert!(matches!(
            idx_image_shape(&ip),
            Err(DataError::BadMagic { .. })
        ));
        std::fs::write(&ip, &head[..10]).unwrap();
        assert!(matches!(
            idx_image_shape(&ip),
            Err(DataError::Truncated { .. })
        ));
    }
}
