//! NumPy `.npy` files, so features, labels and reconstructions move to and
//! from numpy/PyTorch (DESIGN section 10, `export-features`).
//!
//! Format: the NEP 1 / `numpy.lib.format` spec. Magic `\x93NUMPY`, version,
//! a little-endian header length, then an ASCII Python dict literal
//! (`descr`, `fortran_order`, `shape`) padded with spaces and ended by `\n` so
//! the data starts at a multiple of 64 bytes, then the raw little-endian
//! values in C order. We write version 1.0 and read 1.0, 2.0 and 3.0 (they
//! differ only in the header-length field); only `<f4` and `<i8` in C order are
//! supported, anything else is an error naming what was found.

use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
const ALIGN: usize = 64;

/// What can go wrong reading or writing a `.npy` file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not chained as a source: the
        /// command line would print it twice).
        cause: std::io::Error,
    },
    /// The file does not start with `\x93NUMPY`.
    #[error("{path}: not a .npy file (missing the \\x93NUMPY magic)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A format version other than 1.0, 2.0 or 3.0.
    #[error("{path}: .npy format version {major}.{minor} not supported (1.0, 2.0, 3.0 are)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The file ends before its header or its data does.
    #[error("{path}: truncated: {what} needs {needed} bytes, the file has {got}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part is cut short.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The header dict cannot be parsed.
    #[error("{path}: bad .npy header: {problem}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The array's dtype is not the one asked for.
    #[error("{path}: dtype '{found}' not supported here, expected '{expected}'")]
    WrongDtype {
        /// The file.
        path: PathBuf,
        /// The `descr` in the file.
        found: String,
        /// The `descr` asked for.
        expected: &'static str,
    },
    /// The array is stored in Fortran (column-major) order.
    #[error("{path}: Fortran-order arrays are not supported; save a C-order array")]
    FortranOrder {
        /// The file.
        path: PathBuf,
    },
    /// The data after the header is longer than the shape says.
    #[error("{path}: shape {shape:?} needs {expected} data bytes, the file has {got}")]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Shape from the header.
        shape: Vec<usize>,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// The values to write do not fill the given shape.
    #[error("{path}: {len} values cannot have shape {shape:?}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// Number of values given.
        len: usize,
        /// Shape given.
        shape: Vec<usize>,
    },
}

/// Writes `data` as a float32 array of `shape` (C order) to `path`.
pub fn write_npy_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<(), NpyError> {
    write_npy(path, "<f4", data.len(), shape, |out| {
        data.iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()))
    })
}

/// Writes `data` as an int64 array of `shape` (C order) to `path`.
pub fn write_npy_i64(path: &Path, data: &[i64], shape: &[usize]) -> Result<(), NpyError> {
    write_npy(path, "<i8", data.len(), shape, |out| {
        data.iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()))
    })
}

/// Reads a float32 (`<f4`, C order) `.npy` file: its values and its shape.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<f32>, Vec<usize>), NpyError> {
    let (bytes, start, shape) = read_npy(path, "<f4", 4)?;
    let values = bytes[start..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("chunk of 4 bytes")))
        .collect();
    Ok((values, shape))
}

/// Reads an int64 (`<i8`, C order) `.npy` file: its values and its shape.
pub fn read_npy_i64(path: &Path) -> Result<(Vec<i64>, Vec<usize>), NpyError> {
    let (bytes, start, shape) = read_npy(path, "<i8", 8)?;
    let values = bytes[start..]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8 bytes")))
        .collect();
    Ok((values, shape))
}

/// The version 1.0 preamble and padded header for a C-order array.
fn encode_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat((ALIGN - unpadded % ALIGN) % ALIGN));
    dict.push('\n');
    let len = u16::try_from(dict.len()).expect("a v1.0 header of a few dims fits u16");
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn write_npy(
    path: &Path,
    descr: &str,
    len: usize,
    shape: &[usize],
    fill: impl FnOnce(&mut Vec<u8>),
) -> Result<(), NpyError> {
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    // A v1.0 header holds at most 65535 bytes; ~20 bytes per dimension.
    if count != Some(len) || shape.len() > 1000 {
        return Err(NpyError::ShapeMismatch {
            path: path.to_path_buf(),
            len,
            shape: shape.to_vec(),
        });
    }
    let mut out = encode_header(descr, shape);
    fill(&mut out);
    write_atomic(path, &out).map_err(|cause| NpyError::Io {
        path: path.to_path_buf(),
        cause,
    })
}

/// Reads the file, checks the header; returns bytes, data offset, shape.
fn read_npy(
    path: &Path,
    descr: &'static str,
    item: usize,
) -> Result<(Vec<u8>, usize, Vec<usize>), NpyError> {
    let p = || path.to_path_buf();
    let bytes = std::fs::read(path).map_err(|cause| NpyError::Io { path: p(), cause })?;
    let truncated = |what, needed, got| NpyError::Truncated {
        path: p(),
        what,
        needed,
        got,
    };
    if bytes.len() < 8 {
        return Err(if bytes.starts_with(&MAGIC[..bytes.len().min(6)]) {
            truncated("the preamble", 8, bytes.len())
        } else {
            NpyError::BadMagic { path: p() }
        });
    }
    if &bytes[..6] != MAGIC {
        return Err(NpyError::BadMagic { path: p() });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, header_len): (usize, usize) = match (major, minor) {
        (1, 0) if bytes.len() >= 10 => (2, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        (2 | 3, 0) if bytes.len() >= 12 => {
            let raw = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (4, usize::try_from(raw).unwrap_or(usize::MAX))
        }
        (1, 0) => return Err(truncated("the header length", 10, bytes.len())),
        (2 | 3, 0) => return Err(truncated("the header length", 12, bytes.len())),
        _ => {
            return Err(NpyError::UnsupportedVersion {
                path: p(),
                major,
                minor,
            });
        }
    };
    let start = (8 + len_bytes).saturating_add(header_len);
    if bytes.len() < start {
        return Err(truncated("the header", start, bytes.len()));
    }
    let text =
        std::str::from_utf8(&bytes[8 + len_bytes..start]).map_err(|_| NpyError::BadHeader {
            path: p(),
            problem: "header is not ASCII/UTF-8 text".into(),
        })?;
    let header =
        parse_header(text).map_err(|problem| NpyError::BadHeader { path: p(), problem })?;
    if header.descr != descr {
        return Err(NpyError::WrongDtype {
            path: p(),
            found: header.descr,
            expected: descr,
        });
    }
    if header.fortran_order && header.shape.len() > 1 {
        return Err(NpyError::FortranOrder { path: p() });
    }
    let expected = header
        .shape
        .iter()
        .try_fold(item, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| NpyError::BadHeader {
            path: p(),
            problem: format!("shape {:?} overflows", header.shape),
        })?;
    let got = bytes.len() - start;
    if got < expected {
        return Err(truncated("the data", start + expected, bytes.len()));
    }
    if got > expected {
        return Err(NpyError::TrailingData {
            path: p(),
            shape: header.shape,
            expected,
            got,
        });
    }
    Ok((bytes, start, header.shape))
}

/// The three fields of a `.npy` header dict.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`
/// (any key order, either quote style, optional trailing commas).
fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = Cursor {
        s: text.trim_end().as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key '{other}'")),
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.i));
    }
    Ok(Header {
        descr: descr.ok_or("missing key 'descr'")?,
        fortran_order: fortran.ok_or("missing key 'fortran_order'")?,
        shape: shape.ok_or("missing key 'shape'")?,
    })
}

/// A byte cursor for the header's tiny subset of Python literals.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&b);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", b as char, self.i))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        let begin = self.i + 1;
        let end = self.s[begin..]
            .iter()
            .position(|&b| b == quote)
            .ok_or("unterminated string")?;
        self.i = begin + end + 1;
        Ok(String::from_utf8_lossy(&self.s[begin..begin + end]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        for (word, value) in [("True", true), ("False", false)] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(format!("expected True or False at byte {}", self.i))
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let begin = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[begin..self.i]).expect("ASCII digits");
            let dim = digits
                .parse::<usize>()
                .map_err(|_| format!("expected a dimension at byte {begin}"))?;
            dims.push(dim);
            self.eat(b'L'); // Python 2 long suffix
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line prints an error's chain (`{:#}`): the OS error once.
    #[test]
    fn a_missing_file_prints_its_cause_once() {
        let path = std::env::temp_dir().join("splitguard-npy-test-no-such-file.npy");
        let err = read_npy(&path, "<f4", 4).expect_err("no such file");
        let cause = std::fs::read(&path).expect_err("no such file").to_string();
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert!(chain.starts_with(&path.display().to_string()), "{chain}");
        assert_eq!(chain.matches(cause.as_str()).count(), 1, "{chain}");
    }

    #[test]
    fn header_bytes_of_a_tiny_array_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        write_npy_f32(&path, &[1.0, -2.5, 0.0], &[3]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
        let mut expected = b"\x93NUMPY\x01\x00".to_vec();
        // 10 preamble bytes + 57 dict bytes + 1 newline = 68: pad to 128 with
        // 60 spaces, so the header length field says 128 - 10 = 118.
        assert_eq!(dict.len(), 57);
        expected.extend_from_slice(&118u16.to_le_bytes());
        expected.extend_from_slice(dict.as_bytes());
        expected.extend_from_slice(&[b' '; 60]);
        expected.push(b'\n');
        assert_eq!(expected.len(), 128);
        let data: Vec<u8> = [1.0f32, -2.5, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        expected.extend_from_slice(&data);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn f32_round_trip_keeps_values_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_npy_f32(&path, &data, &[2, 3, 4]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 24 * 4) % ALIGN, 0);
        assert_eq!(read_npy_f32(&path).unwrap(), (data, vec![2, 3, 4]));
    }

    #[test]
    fn i64_round_trip_including_scalar_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.npy");
        let data = [i64::MIN, -1, 0, 7, i64::MAX, 42];
        write_npy_i64(&path, &data, &[6, 1]).unwrap();
        assert_eq!(read_npy_i64(&path).unwrap(), (data.to_vec(), vec![6, 1]));
        write_npy_i64(&path, &[5], &[]).unwrap();
        assert_eq!(read_npy_i64(&path).unwrap(), (vec![5], vec![]));
        write_npy_i64(&path, &[], &[0, 3]).unwrap();
        assert_eq!(read_npy_i64(&path).unwrap(), (vec![], vec![0, 3]));
    }

    #[test]
    fn reads_numpy_style_header_variants() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        // Version 2.0, other key order, double quotes, Python 2 long suffix.
        let dict = "{\"shape\": (2L, 1), 'fortran_order': False, \"descr\": '<i8'}   \n";
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(&3i64.to_le_bytes());
        bytes.extend_from_slice(&(-4i64).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_npy_i64(&path).unwrap(), (vec![3, -4], vec![2, 1]));
    }

    #[test]
    fn wrong_magic_dtype_and_truncation_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        std::fs::write(&path, b"PK\x03\x04 this is a zip").unwrap();
        let err = read_npy_f32(&path).unwrap_err();
        assert!(matches!(err, NpyError::BadMagic { .. }), "{err}");
        assert!(err.to_string().contains("e.npy"));

        write_npy_i64(&path, &[1, 2, 3], &[3]).unwrap();
        let err = read_npy_f32(&path).unwrap_err();
        assert!(
            err.to_string().contains("'<i8'") && err.to_string().contains("'<f4'"),
            "{err}"
        );

        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let err = read_npy_i64(&path).unwrap_err();
        assert!(
            matches!(
                err,
                NpyError::Truncated {
                    what: "the data",
                    ..
                }
            ),
            "{err}"
        );
        std::fs::write(&path, &full[..30]).unwrap();
        let err = read_npy_i64(&path).unwrap_err();
        assert!(
            matches!(
                err,
                NpyError::Truncated {
                    what: "the header",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn fortran_order_bad_header_and_bad_shape_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.npy");
        let mut bytes = encode_header("<f4", &[2, 2]);
        let text = String::from_utf8(bytes[10..].to_vec()).unwrap();
        let swapped = text.replace("False", "True ");
        bytes.truncate(10);
        bytes.extend_from_slice(swapped.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            read_npy_f32(&path),
            Err(NpyError::FortranOrder { .. })
        ));

        assert!(parse_header("{'descr': '<f4', 'shape': (1,)}").is_err());
        assert!(parse_header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': ()}").is_err());
        assert!(parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (x,)}").is_err());

        let err = write_npy_f32(&path, &[1.0; 5], &[2, 3]).unwrap_err();
        assert!(
            matches!(err, NpyError::ShapeMismatch { len: 5, .. }),
            "{err}"
        );
    }
}
