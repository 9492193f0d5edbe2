//! Any folder of images with a labels CSV, so users can bring their own data.
//!
//! The CSV is deliberately simple (no quoting): `file,label[,attr1,...]`,
//! one image per line, every value a non-negative integer except the file
//! name. Extra columns become hidden attributes, the targets of
//! attribute-inference attacks, named by the header.

use std::path::{Path, PathBuf};

use super::dataset::{Attribute, Dataset};
use super::error::{DataError, MAX_CLASSES};
use super::pgm::{decode_pgm, is_pgm};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Loads the images listed in `labels_csv` (paths relative to `dir`, or
/// absolute), in CSV order.
///
/// The header must start with `file,label`; further columns are hidden
/// attributes. Blank lines are skipped; fields are trimmed; there is no
/// quoting, so file names cannot contain commas. Images are PNG or PGM
/// (P5/P2), recognised by content: grayscale images give 1 channel, colour
/// PNGs 3 (RGB); an alpha channel is dropped. All images must share one
/// [C, H, W]. `num_classes` of the label and of each attribute is its largest
/// value + 1.
pub fn load_image_folder(dir: &Path, labels_csv: &Path) -> Result<Dataset, DataError> {
    let rows = read_csv(labels_csv)?;
    let mut images = Vec::new();
    let mut first: Option<(PathBuf, [usize; 3])> = None;
    for row in &rows.rows {
        let path = dir.join(&row.file);
        let (shape, pixels) = load_image(&path)?;
        match &first {
            None => first = Some((path.clone(), shape)),
            Some((first_path, expected)) if *expected != shape => {
                return Err(DataError::ShapeMismatch {
                    path,
                    found: shape,
                    first_path: first_path.clone(),
                    expected: *expected,
                });
            }
            Some(_) => {}
        }
        images.extend_from_slice(&pixels);
    }
    let Some((_, shape)) = first else {
        return Err(DataError::Empty {
            path: labels_csv.to_path_buf(),
            expected: "a header `file,label[,attr...]` and at least one image line",
        });
    };
    let column = |k: usize| -> Vec<u32> { rows.rows.iter().map(|r| r.values[k]).collect() };
    let classes = |values: &[u32]| values.iter().max().map_or(0, |&m| m as usize + 1);
    let targets = column(0);
    let hidden = rows
        .names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let values = column(k + 1);
            Attribute {
                name: name.clone(),
                num_classes: classes(&values),
                values,
            }
        })
        .collect();
    let name = dir.file_name().map_or_else(
        || "images".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(Dataset {
        name,
        images,
        shape,
        num_classes: classes(&targets),
        targets,
        hidden,
    })
}

/// Largest image file read (64 MiB).
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// Longest image side accepted (pixels): checked from a PNG's header before
/// it is decoded, so a 20000x20000 picture is refused without allocating it.
pub const MAX_IMAGE_SIDE: usize = 4096;

/// A PNG's `(width, height)` from its IHDR chunk (always the first chunk).
fn png_dimensions(bytes: &[u8]) -> Option<(usize, usize)> {
    let ihdr = bytes.get(8..24)?;
    if &ihdr[4..8] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    Some((be(&ihdr[8..12]), be(&ihdr[12..16])))
}

/// Decodes one PNG or PGM file into [C, H, W] and CHW pixels in [0, 1].
fn load_image(path: &Path) -> Result<([usize; 3], Vec<f32>), DataError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(DataError::format(
            path,
            format!("is larger than the limit of {MAX_IMAGE_BYTES} bytes for one image"),
        ));
    }
    if is_pgm(&bytes) {
        let g = decode_pgm(&bytes, path)?;
        return Ok(([1, g.height, g.width], g.pixels));
    }
    if !bytes.starts_with(PNG_MAGIC) {
        return Err(DataError::format(
            path,
            "is neither a PNG nor a PGM (P5/P2) file; only those image formats are supported",
        ));
    }
    match png_dimensions(&bytes) {
        Some((w, h)) if w <= MAX_IMAGE_SIDE && h <= MAX_IMAGE_SIDE => {}
        Some((w, h)) => {
            return Err(DataError::format(
                path,
                format!(
                    "is {w}x{h} pixels; images may be at most {MAX_IMAGE_SIDE} pixels a side (checked before decoding)"
                ),
            ));
        }
        None => return Err(DataError::format(path, "is a PNG without its IHDR header")),
    }
    let img =
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).map_err(|cause| {
            DataError::Png {
                path: path.to_path_buf(),
                cause,
            }
        })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if img.color().has_color() {
        // Interleaved HWC -> planar CHW.
        let rgb = img.to_rgb32f().into_raw();
        let mut chw = vec![0.0; rgb.len()];
        for (k, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * h * w + k] = px[c];
            }
        }
        Ok(([3, h, w], chw))
    } else {
        Ok(([1, h, w], img.to_luma32f().into_raw()))
    }
}

/// A parsed labels CSV: attribute names and one row per image.
struct Csv {
    names: Vec<String>,
    rows: Vec<Row>,
}

/// One image line: its file and its values (label first, then attributes).
struct Row {
    file: String,
    values: Vec<u32>,
}

fn read_csv(path: &Path) -> Result<Csv, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        DataError::format(path, format!("is not UTF-8 text ({e}); a CSV is expected"))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let csv_err = |line: usize, problem: String| DataError::Csv {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(k, l)| (k + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            expected: "a header `file,label[,attr...]` and at least one image line",
        });
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    if columns.len() < 2
        || !columns[0].eq_ignore_ascii_case("file")
        || !columns[1].eq_ignore_ascii_case("label")
    {
        return Err(csv_err(
            header_line,
            format!(
                "header '{header}' must start with `file,label` (then optional attribute names)"
            ),
        ));
    }
    let names: Vec<String> = columns[2..].iter().map(|s| s.to_string()).collect();
    if let Some(k) = names.iter().position(|n| n.is_empty()) {
        return Err(csv_err(
            header_line,
            format!(
                "column {} has an empty name; attribute columns need names",
                k + 3
            ),
        ));
    }
    let mut rows = Vec::new();
    for (line, text) in lines {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(csv_err(
                line,
                format!(
                    "{} fields, but the header has {} columns",
                    fields.len(),
                    columns.len()
                ),
            ));
        }
        if fields[0].is_empty() {
            return Err(csv_err(line, "the file name is empty".to_string()));
        }
        let mut values = Vec::with_capacity(fields.len() - 1);
        for (k, field) in fields[1..].iter().enumerate() {
            let what = if k == 0 {
                "label".to_string()
            } else {
                format!("{} value", names[k - 1])
            };
            let value: u32 = field.parse().map_err(|_| {
                csv_err(
                    line,
                    format!("{what} '{field}' is not a non-negative integer"),
                )
            })?;
            if value >= MAX_CLASSES {
                return Err(DataError::LabelTooLarge {
                    path: path.to_path_buf(),
                    what: format!("line {line}: {what}"),
                    value,
                });
            }
            values.push(value);
        }
        rows.push(Row {
            file: fields[0].to_string(),
            values,
        });
    }
    Ok(Csv { names, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pgm::encode_pgm;
    use crate::fsutil::write_atomic;

    #[test]
    fn a_huge_png_is_refused_from_its_header_before_decoding() {
        // A valid 1x1 PNG whose header claims 20000x20000: refused by the
        // header check, never decoded (decoding would fail or allocate GBs).
        let mut bytes = png(image::DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(1, 1, vec![7]).unwrap(),
        ));
        bytes[16..20].copy_from_slice(&20000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&20000u32.to_be_bytes());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.png");
        std::fs::write(&p, &bytes).unwrap();
        let e = load_image(&p).unwrap_err().to_string();
        assert!(e.contains("20000x20000") && e.contains("big.png"), "{e}");
        assert_eq!(png_dimensions(&bytes), Some((20000, 20000)));
    }

    fn png(img: image::DynamicImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// 3x2 gray images: a.pgm (P5), b.pgm (P2), c.png (L8).
    fn gray_folder(csv: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_atomic(
            &d.join("a.pgm"),
            &encode_pgm(3, 2, 255, &[0, 51, 102, 153, 204, 255], false),
        )
        .unwrap();
        write_atomic(
            &d.join("sub/b.pgm"),
            &encode_pgm(3, 2, 5, &[5, 4, 3, 2, 1, 0], true),
        )
        .unwrap();
        let gray = image::GrayImage::from_raw(3, 2, vec![255, 0, 255, 0, 255, 0]).unwrap();
        write_atomic(&d.join("c.png"), &png(gray.into())).unwrap();
        write_atomic(&d.join("labels.csv"), csv.as_bytes()).unwrap();
        dir
    }

    #[test]
    fn folder_loads_pgm_and_png_with_attributes() {
        let dir = gray_folder("file,label,writer\na.pgm,2,0\n\nsub/b.pgm, 0 ,1\nc.png,1,3\n");
        let ds = load_image_folder(dir.path(), &dir.path().join("labels.csv")).unwrap();
        assert_eq!(ds.shape, [1, 2, 3]);
        assert_eq!(ds.targets, vec![2, 0, 1]);
        assert_eq!(ds.num_classes, 3);
        assert_eq!(ds.hidden.len(), 1);
        assert_eq!(ds.hidden[0].name, "writer");
        assert_eq!(ds.hidden[0].values, vec![0, 1, 3]);
        assert_eq!(ds.hidden[0].num_classes, 4);
        let want = [
            [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            [1.0, 0.8, 0.6, 0.4, 0.2, 0.0],
            [1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        ];
        for (i, w) in want.iter().enumerate() {
            for (a, b) in ds.image(i).iter().zip(w) {
                assert!((a - b).abs() < 1e-6, "image {i}: {:?}", ds.image(i));
            }
        }
        assert!(ds.validate().is_ok());
    }

    #[test]
    fn folder_rgb_png_gives_three_planar_channels() {
        let dir = tempfile::tempdir().unwrap();
        // 2x1 pixels: red, then (0, 255, 51).
        let rgb = image::RgbImage::from_raw(2, 1, vec![255, 0, 0, 0, 255, 51]).unwrap();
        write_atomic(&dir.path().join("x.png"), &png(rgb.into())).unwrap();
        write_atomic(&dir.path().join("l.csv"), b"file,label\nx.png,0\n").unwrap();
        let ds = load_image_folder(dir.path(), &dir.path().join("l.csv")).unwrap();
        assert_eq!(ds.shape, [3, 1, 2]);
        let want = [1.0, 0.0, 0.0, 1.0, 0.0, 0.2];
        for (a, b) in ds.image(0).iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?}", ds.image(0));
        }
    }

    #[test]
    fn folder_bad_label_names_line_and_value() {
        let dir = gray_folder("file,label\na.pgm,1\nc.png,2\n\nsub/b.pgm,abc\n");
        let msg = load_image_folder(dir.path(), &dir.path().join("labels.csv"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.ends_with("labels.csv line 5: label 'abc' is not a non-negative integer"),
            "{msg}"
        );
    }

    #[test]
    fn folder_csv_rules() {
        let cases = [
            ("name,label\na.pgm,1\n", "must start with `file,label`"),
            ("file,label,w\na.pgm,1\n", "2 fields, but the header has 3"),
            ("file,label,\na.pgm,1,1\n", "empty name"),
            (
                "file,label,w\na.pgm,1,-1\n",
                "w value '-1' is not a non-negative integer",
            ),
            ("file,label\na.pgm,70000\n", "values must be below 65536"),
            ("file,label\n", "at least one image line"),
            ("file,label\nmissing.png,0\n", "cannot read"),
            ("file,label\nlabels.csv,0\n", "neither a PNG nor a PGM"),
            ("file,label\na.pgm,0\nc.png,0\n\u{20}", ""),
        ];
        for (csv, want) in cases {
            let dir = gray_folder(csv);
            let res = load_image_folder(dir.path(), &dir.path().join("labels.csv"));
            match res {
                Err(e) => assert!(
                    !want.is_empty() && e.to_string().contains(want),
                    "{csv:?}: {e}"
                ),
                Ok(ds) => assert!(want.is_empty() && ds.len() == 2, "{csv:?} should fail"),
            }
        }
    }

    #[test]
    fn folder_mixed_sizes_are_rejected() {
        let dir = gray_folder("file,label\na.pgm,0\nd.pgm,1\n");
        write_atomic(
            &dir.path().join("d.pgm"),
            &encode_pgm(2, 2, 9, &[1; 4], false),
        )
        .unwrap();
        let err = load_image_folder(dir.path(), &dir.path().join("labels.csv")).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ShapeMismatch {
                    found: [1, 2, 2],
                    expected: [1, 2, 3],
                    ..
                }
            ),
            "{err}"
        );
    }
}
