//! PGM (portable graymap) decoding: binary `P5` and plain-text `P2`, any
//! maxval from 1 to 65535 (two big-endian bytes per sample above 255), `#`
//! comments in the header. Shared by the ORL and image-folder loaders.
//!
//! Sizes are checked against the bytes present before the raster is
//! allocated, so a lying header cannot make the loader allocate gigabytes.

use std::path::Path;

use super::error::DataError;

/// A decoded grayscale image: `height * width` samples in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Row-major samples divided by maxval.
    pub pixels: Vec<f32>,
}

/// True when `bytes` start like a PGM this module decodes (`P5` or `P2`).
pub fn is_pgm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"P5") || bytes.starts_with(b"P2")
}

/// Decodes a `P5` or `P2` PGM; `path` is only used in error messages.
/// Data after the first image (netpbm allows several per file) is ignored.
pub fn decode_pgm(bytes: &[u8], path: &Path) -> Result<Gray, DataError> {
    let binary = match bytes.get(..2) {
        Some(b"P5") => true,
        Some(b"P2") => false,
        _ => {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(2)]).into_owned();
            return Err(DataError::format(
                path,
                format!("starts with {start:?}, expected a PGM: P5 (binary) or P2 (plain)"),
            ));
        }
    };
    let mut cur = Cursor { bytes, pos: 2 };
    let width = cur.header_number(path, "width")?;
    let height = cur.header_number(path, "height")?;
    let maxval = cur.header_number(path, "maxval")?;
    if width == 0 || height == 0 {
        return Err(DataError::ZeroDim {
            path: path.to_path_buf(),
            what: "PGM width and height",
            dims: vec![width, height],
        });
    }
    if !(1..=65_535).contains(&maxval) {
        return Err(DataError::format(
            path,
            format!("maxval {maxval} is out of range; PGM allows 1..=65535"),
        ));
    }
    let samples = width.saturating_mul(height);
    let sample_bytes: u64 = if maxval > 255 { 2 } else { 1 };
    let what = format!("PGM raster {width}x{height} (maxval {maxval})");
    // One whitespace byte separates the header from the raster.
    match bytes.get(cur.pos) {
        Some(b) if b.is_ascii_whitespace() => cur.pos += 1,
        _ => {
            return Err(DataError::format(
                path,
                "expected one whitespace byte after maxval",
            ));
        }
    }
    let available = (bytes.len() - cur.pos) as u64;
    // A plain raster needs at least one byte per sample, a binary one exactly
    // `sample_bytes`.
    let needed = samples.saturating_mul(if binary { sample_bytes } else { 1 });
    if needed > available {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what,
            needed: (cur.pos as u64).saturating_add(needed),
            found: bytes.len() as u64,
        });
    }
    let samples = samples as usize;
    let mut pixels = Vec::with_capacity(samples);
    if binary {
        let raster = &bytes[cur.pos..cur.pos + samples * sample_bytes as usize];
        for chunk in raster.chunks_exact(sample_bytes as usize) {
            let v = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            pixels.push(check_sample(v, maxval, pixels.len(), path)? as f32 / maxval as f32);
        }
    } else {
        for k in 0..samples {
            let v = cur.number(path, "sample").map_err(|e| match e {
                DataError::Truncated { .. } => DataError::format(
                    path,
                    format!(
                        "plain PGM ends after {k} of the {samples} samples its header declares"
                    ),
                ),
                other => other,
            })?;
            pixels.push(check_sample(v, maxval, k, path)? as f32 / maxval as f32);
        }
    }
    Ok(Gray {
        height: height as usize,
        width: width as usize,
        pixels,
    })
}

fn check_sample(v: u64, maxval: u64, index: usize, path: &Path) -> Result<u64, DataError> {
    if v > maxval {
        return Err(DataError::format(
            path,
            format!("sample {index} is {v}, above maxval {maxval}"),
        ));
    }
    Ok(v)
}

/// A position in the file, for reading whitespace-separated decimal numbers.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// Skips whitespace and `#` comments (to the end of the line).
    fn skip_space(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == b'#' {
                while self
                    .bytes
                    .get(self.pos)
                    .is_some_and(|&c| c != b'\n' && c != b'\r')
                {
                    self.pos += 1;
                }
            } else if b.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Reads a header field; a missing one is a truncation.
    fn header_number(&mut self, path: &Path, field: &str) -> Result<u64, DataError> {
        self.number(path, field).map_err(|e| match e {
            DataError::Truncated { .. } => DataError::format(
                path,
                format!("PGM header ends before its {field}; expected `P5|P2 width height maxval`"),
            ),
            other => other,
        })
    }

    /// Reads one decimal number (at most 9 digits), after whitespace.
    fn number(&mut self, path: &Path, field: &str) -> Result<u64, DataError> {
        self.skip_space();
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        if start == self.pos {
            return match self.bytes.get(self.pos) {
                None => Err(DataError::Truncated {
                    path: path.to_path_buf(),
                    what: field.to_string(),
                    needed: self.pos as u64 + 1,
                    found: self.pos as u64,
                }),
                Some(&b) => Err(DataError::format(
                    path,
                    format!(
                        "byte {} is {:?} where the {field} should be; expected a decimal number",
                        self.pos, b as char
                    ),
                )),
            };
        }
        let digits = &self.bytes[start..self.pos];
        if digits.len() > 9 {
            return Err(DataError::format(
                path,
                format!("{field} has {} digits; at most 9 are allowed", digits.len()),
            ));
        }
        Ok(digits
            .iter()
            .fold(0, |acc, &d| acc * 10 + u64::from(d - b'0')))
    }
}

/// Encodes a P5 (maxval <= 255) or P2 PGM, for tests.
#[cfg(test)]
pub(crate) fn encode_pgm(
    width: usize,
    height: usize,
    maxval: u16,
    samples: &[u16],
    plain: bool,
) -> Vec<u8> {
    let magic = if plain { "P2" } else { "P5" };
    let mut out = format!("{magic}\n# test image\n{width} {height}\n{maxval}\n").into_bytes();
    if plain {
        for row in samples.chunks(width) {
            let line: Vec<String> = row.iter().map(|s| s.to_string()).collect();
            out.extend_from_slice(line.join(" ").as_bytes());
            out.push(b'\n');
        }
    } else if maxval > 255 {
        samples
            .iter()
            .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
    } else {
        samples.iter().for_each(|&s| out.push(s as u8));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> &Path {
        Path::new(name)
    }

    #[test]
    fn pgm_p5_and_p2_decode_to_the_same_scaled_pixels() {
        let samples: Vec<u16> = (0..12).map(|i| i * 20).collect();
        for plain in [false, true] {
            let g = decode_pgm(&encode_pgm(4, 3, 220, &samples, plain), p("a.pgm")).unwrap();
            assert_eq!((g.height, g.width), (3, 4));
            for (k, &v) in g.pixels.iter().enumerate() {
                assert!((v - samples[k] as f32 / 220.0).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn pgm_sixteen_bit_samples_are_big_endian() {
        let g = decode_pgm(&encode_pgm(2, 1, 1000, &[1000, 258], false), p("w.pgm")).unwrap();
        assert_eq!(g.pixels.len(), 2);
        assert!((g.pixels[0] - 1.0).abs() < 1e-6 && (g.pixels[1] - 0.258).abs() < 1e-6);
    }

    #[test]
    fn pgm_truncated_raster_is_rejected() {
        let bytes = encode_pgm(4, 3, 255, &[7; 12], false);
        let err = decode_pgm(&bytes[..bytes.len() - 1], p("t.pgm")).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
        let bytes = encode_pgm(4, 3, 255, &[7; 12], true);
        let err = decode_pgm(&bytes[..bytes.len() - 4], p("t.pgm")).unwrap_err();
        assert!(err.to_string().contains("ends after 10 of the 12"), "{err}");
    }

    #[test]
    fn pgm_absurd_size_fails_without_allocating() {
        let err = decode_pgm(b"P5 999999999 999999999 255\n\0", p("h.pgm")).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    }

    #[test]
    fn pgm_bad_header_values_are_named() {
        let err = decode_pgm(b"P6 1 1 255\n\0\0\0", p("c.ppm")).unwrap_err();
        assert!(err.to_string().contains("expected a PGM"), "{err}");
        let err = decode_pgm(b"P5 0 3 255\n", p("z.pgm")).unwrap_err();
        assert!(matches!(err, DataError::ZeroDim { .. }), "{err}");
        let err = decode_pgm(b"P5 1 1 0\n\0", p("m.pgm")).unwrap_err();
        assert!(err.to_string().contains("maxval 0"), "{err}");
        let err = decode_pgm(b"P2 1 1 9\n12\n", p("s.pgm")).unwrap_err();
        assert!(err.to_string().contains("above maxval 9"), "{err}");
        let err = decode_pgm(b"P5 2 x", p("x.pgm")).unwrap_err();
        assert!(err.to_string().contains("'x' where the height"), "{err}");
        let err = decode_pgm(b"P5 2", p("e.pgm")).unwrap_err();
        assert!(err.to_string().contains("ends before its height"), "{err}");
        assert!(decode_pgm(b"", p("empty.pgm")).is_err());
    }
}
