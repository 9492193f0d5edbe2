//! PNG grids of images: originals above, reconstructions below (DESIGN
//! section 9, "Reconstructions are saved as PNG grids").
//!
//! The grid is built in memory and encoded to PNG bytes before anything
//! touches the disk, then written with [`write_atomic`], so a failed encode
//! never leaves a file and a crash never leaves half of one.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};

use crate::fsutil::write_atomic;

/// Width in output pixels of the white gap between images and between rows.
pub const SEPARATOR_PX: usize = 2;

/// Largest grid accepted, in pixels (width * height), to keep memory bounded.
pub const MAX_GRID_PIXELS: usize = 1 << 28;

/// What can go wrong when writing an image grid.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// The arguments describe no valid grid.
    #[error("image grid {path}: {problem}")]
    InvalidShape {
        /// Destination file.
        path: PathBuf,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// One row's buffer does not hold `n` images of the given shape.
    #[error(
        "image grid {path}: row {row} has {len} values, but {n} images of shape [{c}, {h}, {w}] need {expected}",
        c = shape[0],
        h = shape[1],
        w = shape[2]
    )]
    RowLength {
        /// Destination file.
        path: PathBuf,
        /// Index of the bad row.
        row: usize,
        /// Its length.
        len: usize,
        /// Images per row.
        n: usize,
        /// Image shape `[C, H, W]`.
        shape: [usize; 3],
        /// `n * C * H * W`.
        expected: usize,
    },
    /// PNG encoding failed.
    #[error("image grid {path}: PNG encoding failed: {cause}")]
    Encode {
        /// Destination file.
        path: PathBuf,
        /// The encoder's error (in the message, so not chained as a
        /// source: the command line would print it twice).
        cause: image::ImageError,
    },
    /// Writing the file failed.
    #[error("image grid {path}: cannot write file: {cause}")]
    Io {
        /// Destination file.
        path: PathBuf,
        /// The I/O error (in the message, not chained).
        cause: std::io::Error,
    },
}

/// Writes a PNG grid to `path`: each entry of `rows` is a flat `[n, C, H, W]`
/// batch laid out left to right (row 0 the originals, row 1 the
/// reconstructions, any further rows below), with a white
/// [`SEPARATOR_PX`]-pixel gap between images and rows.
///
/// Pixel values are clamped to [0, 1] and NaN shows as black. `C` must be 1
/// (grayscale) or 3 (RGB, channel-first); each image pixel becomes a
/// `scale` x `scale` block (nearest neighbour).
pub fn save_image_grid(
    path: &Path,
    rows: &[&[f32]],
    n: usize,
    shape: [usize; 3],
    scale: u32,
) -> Result<(), GridError> {
    let [c, h, w] = shape;
    let invalid = |problem: String| GridError::InvalidShape {
        path: path.to_path_buf(),
        problem,
    };
    if rows.is_empty() {
        return Err(invalid("no rows given; need at least one".into()));
    }
    if n == 0 || h == 0 || w == 0 {
        return Err(invalid(format!(
            "{n} images of shape [{c}, {h}, {w}]: the count, height and width must be >= 1"
        )));
    }
    if c != 1 && c != 3 {
        return Err(invalid(format!(
            "{c} channels; allowed are 1 (grayscale) or 3 (RGB)"
        )));
    }
    if scale == 0 {
        return Err(invalid("scale 0; must be >= 1".into()));
    }
    let s = scale as usize;
    let cell_w = w.checked_mul(s);
    let cell_h = h.checked_mul(s);
    let width = cell_w
        .and_then(|cw| cw.checked_mul(n))
        .and_then(|v| v.checked_add((n - 1).saturating_mul(SEPARATOR_PX)));
    let height = cell_h
        .and_then(|ch| ch.checked_mul(rows.len()))
        .and_then(|v| v.checked_add((rows.len() - 1).saturating_mul(SEPARATOR_PX)));
    let (width, height) = match (width, height) {
        (Some(wd), Some(ht)) if wd.checked_mul(ht).is_some_and(|p| p <= MAX_GRID_PIXELS) => {
            (wd, ht)
        }
        _ => {
            return Err(invalid(format!(
                "{} rows of {n} images of {h}x{w} at scale {scale} exceed {MAX_GRID_PIXELS} pixels",
                rows.len()
            )));
        }
    };
    let plane = h * w;
    let expected = n * c * plane;
    for (row, data) in rows.iter().enumerate() {
        if data.len() != expected {
            return Err(GridError::RowLength {
                path: path.to_path_buf(),
                row,
                len: data.len(),
                n,
                shape,
                expected,
            });
        }
    }

    let (cell_w, cell_h) = (w * s, h * s);
    let mut buf = vec![255u8; width * height * c];
    for (r, data) in rows.iter().enumerate() {
        let top = r * (cell_h + SEPARATOR_PX);
        for (i, img) in data.chunks_exact(c * plane).enumerate() {
            let left = i * (cell_w + SEPARATOR_PX);
            for y in 0..cell_h {
                for x in 0..cell_w {
                    let src = (y / s) * w + x / s;
                    let dst = ((top + y) * width + left + x) * c;
                    for ch in 0..c {
                        buf[dst + ch] = to_u8(img[ch * plane + src]);
                    }
                }
            }
        }
    }

    let color = if c == 1 {
        ExtendedColorType::L8
    } else {
        ExtendedColorType::Rgb8
    };
    let mut png = Cursor::new(Vec::new());
    let width = u32::try_from(width).expect("grid width fits u32: bounded by MAX_GRID_PIXELS");
    let height = u32::try_from(height).expect("grid height fits u32: bounded by MAX_GRID_PIXELS");
    PngEncoder::new(&mut png)
        .write_image(&buf, width, height, color)
        .map_err(|cause| GridError::Encode {
            path: path.to_path_buf(),
            cause,
        })?;
    write_atomic(path, png.get_ref()).map_err(|cause| GridError::Io {
        path: path.to_path_buf(),
        cause,
    })
}

/// [0, 1] to 0..=255, clamped, NaN to 0.
fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grayscale_grid_has_expected_size_and_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        // Two 2x3 grayscale images per row.
        let originals: Vec<f32> = vec![
            0.0,
            0.5,
            1.0,
            0.25,
            2.0,
            -1.0, // image 0
            1.0,
            1.0,
            1.0,
            0.0,
            0.0,
            f32::NAN, // image 1
        ];
        let recons = vec![0.2f32; 12];
        save_image_grid(&path, &[&originals, &recons], 2, [1, 2, 3], 2).unwrap();
        let img = image::open(&path).unwrap().to_luma8();
        // Width 2 * 3 * 2 + 2 = 14, height 2 * 2 * 2 + 2 = 10.
        assert_eq!(img.dimensions(), (14, 10));
        let px = |x, y| img.get_pixel(x, y).0[0];
        assert_eq!(px(0, 0), 0);
        assert_eq!((px(2, 0), px(3, 1)), (128, 128)); // 0.5, upscaled 2x2
        assert_eq!(px(4, 0), 255);
        assert_eq!(px(2, 2), 255); // 2.0 clamped
        assert_eq!(px(4, 3), 0); // -1.0 clamped
        assert_eq!((px(6, 0), px(7, 3)), (255, 255)); // separator columns
        assert_eq!(px(8 + 5, 3), 0); // image 1's NaN is black
        assert_eq!((px(0, 4), px(13, 5)), (255, 255)); // separator rows
        assert_eq!((px(0, 6), px(13, 9)), (51, 51)); // 0.2 reconstructions
    }

    #[test]
    fn rgb_grid_keeps_channels_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rgb.png");
        // One 1x2 RGB image, channel-first: R = [1, 0], G = [0, 1], B = [0, 0.5].
        let img = [1.0f32, 0.0, 0.0, 1.0, 0.0, 0.5];
        save_image_grid(&path, &[&img], 1, [3, 1, 2], 1).unwrap();
        let out = image::open(&path).unwrap().to_rgb8();
        assert_eq!(out.dimensions(), (2, 1));
        assert_eq!(out.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(1, 0).0, [0, 255, 128]);
    }

    #[test]
    fn bad_arguments_are_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let row = [0.0f32; 8];
        let err = save_image_grid(&path, &[&row, &row[..6]], 2, [1, 2, 2], 1).unwrap_err();
        assert!(matches!(err, GridError::RowLength { row: 1, len: 6, .. }));
        assert!(err.to_string().contains("bad.png"), "{err}");
        let err = save_image_grid(&path, &[&row], 2, [2, 2, 1], 1).unwrap_err();
        assert!(err.to_string().contains("2 channels"), "{err}");
        assert!(save_image_grid(&path, &[], 2, [1, 2, 2], 1).is_err());
        assert!(save_image_grid(&path, &[&row], 2, [1, 2, 2], 0).is_err());
        assert!(!path.exists());
    }
}
