//! Signal and null content of a feature vector with respect to the server's
//! first linear operator (seed 004, section 4.2, Definitions 1 and 2).
//!
//! With the SVD `W = U S V^T` and `a_k = v_k . z` (eq. 7), the signal content
//! is `z_S = sum_{k<=m} a_k v_k` (eq. 9, `m` the numerical rank of `W`) and the
//! null content `z_N = z - z_S` (eq. 10): `W z_N = 0`, so the server's output
//! never depends on it and the client can drop it for free.
//!
//! Only `S` and the first `m` columns of `V` are ever needed, so the SVD is
//! asked for `V` alone (no `U`), and the basis is stored column-major so each
//! `v_k` is one contiguous slice. Batch methods do their projections as one
//! faer matrix product (`[N, n] x [n, m]`), which is where the time goes when
//! the audit obfuscates a whole test set.

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::matmul::matmul;
use faer::linalg::svd::{ComputeSvdVectors, svd, svd_scratch};
use faer::{Accum, Mat, MatMut, MatRef};

use super::conv_dense::DenseMatrix;
use super::{ObfuscateError, check_finite, check_len};

/// The right singular vectors of `W` that span its row space, with all of
/// `W`'s singular values (seed 004, Definition 1).
#[derive(Debug, Clone)]
pub struct SignalBasis {
    /// Length of `z` (columns of `W`).
    dim: usize,
    /// Rows of `W`.
    out_dim: usize,
    /// All `min(rows, cols)` singular values, non-increasing.
    singular_values: Vec<f32>,
    /// Numerical rank `m`: singular values above `threshold`.
    rank: usize,
    /// `v_1 .. v_m`, column-major `[dim, rank]`.
    basis: Vec<f32>,
    /// Absolute threshold a singular value had to exceed to be kept.
    threshold: f32,
}

impl SignalBasis {
    /// Relative rank tolerance used by [`SignalBasis::new`]: a singular value
    /// `s_k` counts when `s_k > max(rows, cols) * f32::EPSILON * s_1`, the
    /// convention of LAPACK/NumPy `matrix_rank` for single precision.
    pub fn default_relative_tolerance(rows: usize, cols: usize) -> f32 {
        rows.max(cols) as f32 * f32::EPSILON
    }

    /// Builds the basis of `W` (`rows x cols`, row-major, `z` has length
    /// `cols`) with the default rank tolerance.
    pub fn new(w: &[f32], rows: usize, cols: usize) -> Result<Self, ObfuscateError> {
        Self::with_relative_tolerance(w, rows, cols, Self::default_relative_tolerance(rows, cols))
    }

    /// Builds the basis of a [`DenseMatrix`] with the default rank tolerance.
    pub fn from_dense(w: &DenseMatrix) -> Result<Self, ObfuscateError> {
        Self::new(&w.data, w.rows, w.cols)
    }

    /// Builds the basis of `W`, keeping the singular vectors whose singular
    /// value exceeds `relative_tolerance * s_1`.
    pub fn with_relative_tolerance(
        w: &[f32],
        rows: usize,
        cols: usize,
        relative_tolerance: f32,
    ) -> Result<Self, ObfuscateError> {
        if rows == 0 || cols == 0 {
            return Err(ObfuscateError::InvalidParameter {
                what: "operator shape",
                value: format!("{rows} x {cols}"),
                allowed: "at least 1 x 1",
            });
        }
        if !(relative_tolerance.is_finite() && relative_tolerance >= 0.0) {
            return Err(ObfuscateError::InvalidParameter {
                what: "relative rank tolerance",
                value: relative_tolerance.to_string(),
                allowed: "finite and >= 0",
            });
        }
        check_len("operator W (rows * cols)", w, rows * cols)?;
        check_finite("operator W", w)?;

        let size = rows.min(cols);
        let a = MatRef::from_row_major_slice(w, rows, cols);
        let mut s = Diag::<f32>::zeros(size);
        let mut v = Mat::<f32>::zeros(cols, size);
        let par = faer::get_global_parallelism();
        let no = ComputeSvdVectors::No;
        let thin = ComputeSvdVectors::Thin;
        let mut mem = MemBuffer::new(svd_scratch::<f32>(
            rows,
            cols,
            no,
            thin,
            par,
            Default::default(),
        ));
        svd(
            a,
            s.as_mut(),
            None,
            Some(v.as_mut()),
            par,
            MemStack::new(&mut mem),
            Default::default(),
        )
        .map_err(|_| ObfuscateError::SvdFailed { rows, cols })?;

        let singular_values: Vec<f32> = s.column_vector().iter().copied().collect();
        let s_max = singular_values.first().copied().unwrap_or(0.0);
        let threshold = relative_tolerance * s_max;
        let rank = singular_values
            .iter()
            .take_while(|&&sk| sk > threshold && sk > 0.0)
            .count();
        let mut basis = Vec::with_capacity(cols * rank);
        for k in 0..rank {
            basis.extend(v.col(k).iter().copied());
        }
        Ok(Self {
            dim: cols,
            out_dim: rows,
            singular_values,
            rank,
            basis,
            threshold,
        })
    }

    /// Length of the feature vector `z` (columns of `W`), `n` in the paper.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows of `W` (length of `W z`).
    pub fn output_dim(&self) -> usize {
        self.out_dim
    }

    /// Numerical rank `m`: the number of signal components.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// All `min(rows, cols)` singular values of `W`, non-increasing.
    pub fn singular_values(&self) -> &[f32] {
        &self.singular_values
    }

    /// The `rank()` singular values that belong to signal components.
    pub fn signal_singular_values(&self) -> &[f32] {
        &self.singular_values[..self.rank]
    }

    /// Absolute threshold a singular value had to exceed to count in the rank.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The basis as bytes, for a training checkpoint: u64 `dim`, `out_dim`,
    /// `rank` and singular-value count, then f32 `threshold`, the singular
    /// values and the basis (all little-endian). [`Self::from_bytes`] reads
    /// it back exactly.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sizes = [
            self.dim,
            self.out_dim,
            self.rank,
            self.singular_values.len(),
        ];
        let mut out = Vec::with_capacity(36 + 4 * (self.singular_values.len() + self.basis.len()));
        for n in sizes {
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
        let floats = std::iter::once(&self.threshold)
            .chain(&self.singular_values)
            .chain(&self.basis);
        for v in floats {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads [`Self::to_bytes`]' layout; `None` when the bytes do not hold
    /// one consistent basis.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let size = |i: usize| -> Option<usize> {
            let b = bytes.get(8 * i..8 * i + 8)?;
            usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok()
        };
        let (dim, out_dim, rank, n_sv) = (size(0)?, size(1)?, size(2)?, size(3)?);
        let floats: Vec<f32> = bytes
            .get(32..)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let want = 1usize
            .checked_add(n_sv)?
            .checked_add(dim.checked_mul(rank)?)?;
        if bytes.len() != 32 + 4 * floats.len() || floats.len() != want || rank > n_sv {
            return None;
        }
        Some(Self {
            dim,
            out_dim,
            rank,
            threshold: floats[0],
            singular_values: floats[1..1 + n_sv].to_vec(),
            basis: floats[1 + n_sv..].to_vec(),
        })
    }

    /// The right singular vector `v_k` (`k < rank()`), length `dim()`.
    pub fn vector(&self, k: usize) -> Result<&[f32], ObfuscateError> {
        if k >= self.rank {
            return Err(ObfuscateError::IndexOutOfRange {
                index: k,
                rank: self.rank,
            });
        }
        Ok(&self.basis[k * self.dim..(k + 1) * self.dim])
    }

    fn basis_ref(&self) -> MatRef<'_, f32> {
        MatRef::from_column_major_slice(&self.basis, self.dim, self.rank)
    }

    /// Coefficients `a_k = v_k . z` of one feature vector (eq. 7), `k < rank()`.
    pub fn coefficients(&self, z: &[f32]) -> Result<Vec<f32>, ObfuscateError> {
        check_len("feature vector z", z, self.dim)?;
        self.coefficients_batch(z, 1)
    }

    /// Coefficients of `n` feature vectors given row-major `[n, dim()]`;
    /// returns row-major `[n, rank()]` (one matrix product `Z V_m`).
    pub fn coefficients_batch(&self, zs: &[f32], n: usize) -> Result<Vec<f32>, ObfuscateError> {
        check_len("feature batch [n, dim]", zs, n * self.dim)?;
        let mut out = vec![0.0f32; n * self.rank];
        if n == 0 || self.rank == 0 {
            return Ok(out);
        }
        matmul(
            MatMut::from_row_major_slice_mut(&mut out, n, self.rank),
            Accum::Replace,
            MatRef::from_row_major_slice(zs, n, self.dim),
            self.basis_ref(),
            1.0f32,
            faer::get_global_parallelism(),
        );
        Ok(out)
    }

    /// Server-side rebuild from coefficients of the leading components:
    /// row-major `[n, k]` coefficients of `v_1 .. v_k` (`k <= rank()`) give
    /// row-major `[n, dim()]` vectors `sum_j c_j v_j` (one matrix product).
    pub fn from_leading_coefficients_batch(
        &self,
        coeffs: &[f32],
        n: usize,
        k: usize,
    ) -> Result<Vec<f32>, ObfuscateError> {
        if k > self.rank {
            return Err(ObfuscateError::IndexOutOfRange {
                index: k - 1,
                rank: self.rank,
            });
        }
        check_len("coefficient batch [n, k]", coeffs, n * k)?;
        let mut out = vec![0.0f32; n * self.dim];
        if n == 0 || k == 0 {
            return Ok(out);
        }
        let leading = MatRef::from_column_major_slice(&self.basis[..k * self.dim], self.dim, k);
        matmul(
            MatMut::from_row_major_slice_mut(&mut out, n, self.dim),
            Accum::Replace,
            MatRef::from_row_major_slice(coeffs, n, k),
            leading.transpose(),
            1.0f32,
            faer::get_global_parallelism(),
        );
        Ok(out)
    }

    /// Server-side rebuild of `z' = sum_j coeffs[j] v_{kept[j]}` from only the
    /// coefficients the client sent (seed 004, section 4.3, "Computational and
    /// Communication cost").
    pub fn from_coefficients(
        &self,
        coeffs: &[f32],
        kept: &[usize],
    ) -> Result<Vec<f32>, ObfuscateError> {
        check_len("coefficients (one per kept index)", coeffs, kept.len())?;
        let mut z = vec![0.0f32; self.dim];
        for (&c, &k) in coeffs.iter().zip(kept) {
            let v = self.vector(k)?;
            z.iter_mut().zip(v).for_each(|(zi, vi)| *zi += c * vi);
        }
        Ok(z)
    }

    /// Signal content `z_S = sum_{k<=m} a_k v_k` of one vector (eq. 9).
    pub fn signal_content(&self, z: &[f32]) -> Result<Vec<f32>, ObfuscateError> {
        check_len("feature vector z", z, self.dim)?;
        self.signal_content_batch(z, 1)
    }

    /// Signal content of row-major `[n, dim()]` vectors, `Z V_m V_m^T`.
    pub fn signal_content_batch(&self, zs: &[f32], n: usize) -> Result<Vec<f32>, ObfuscateError> {
        let coeffs = self.coefficients_batch(zs, n)?;
        self.from_leading_coefficients_batch(&coeffs, n, self.rank)
    }

    /// Null content `z_N = z - z_S` of one vector (eq. 10); `W z_N = 0`.
    pub fn null_content(&self, z: &[f32]) -> Result<Vec<f32>, ObfuscateError> {
        check_len("feature vector z", z, self.dim)?;
        self.null_content_batch(z, 1)
    }

    /// Null content of row-major `[n, dim()]` vectors.
    pub fn null_content_batch(&self, zs: &[f32], n: usize) -> Result<Vec<f32>, ObfuscateError> {
        let mut out = self.signal_content_batch(zs, n)?;
        out.iter_mut().zip(zs).for_each(|(s, z)| *s = z - *s);
        Ok(out)
    }

    /// `C_S(z) = log(||z_S||^2 / ||z||^2)` (natural log; seed 004, section
    /// 5.2, Figure 2). `||z_S||^2` is `sum_k a_k^2` (the `v_k` are
    /// orthonormal); the ratio is clamped to at most 1 so float error never
    /// gives a positive value. A zero vector loses nothing: it returns 0.
    pub fn log_signal_ratio(&self, z: &[f32]) -> Result<f64, ObfuscateError> {
        check_len("feature vector z", z, self.dim)?;
        Ok(self.log_signal_ratio_batch(z, 1)?[0])
    }

    /// [`SignalBasis::log_signal_ratio`] of each row of row-major `[n, dim()]`.
    pub fn log_signal_ratio_batch(&self, zs: &[f32], n: usize) -> Result<Vec<f64>, ObfuscateError> {
        let coeffs = self.coefficients_batch(zs, n)?;
        let ratios = (0..n)
            .map(|i| {
                let total = sq_norm(&zs[i * self.dim..(i + 1) * self.dim]);
                let signal = sq_norm(&coeffs[i * self.rank..(i + 1) * self.rank]);
                if total == 0.0 {
                    0.0
                } else {
                    (signal / total).min(1.0).ln()
                }
            })
            .collect();
        Ok(ratios)
    }
}

/// Squared Euclidean norm, accumulated in f64.
pub(crate) fn sq_norm(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::test_util::{matvec, max_abs_diff, random_vec};

    /// Rank-2 3x5 matrix: row 3 = row 1 + row 2.
    fn rank2() -> (Vec<f32>, usize, usize) {
        let w = vec![
            1.0, 2.0, 0.0, -1.0, 0.5, //
            0.0, 1.0, 3.0, 1.0, -2.0, //
            1.0, 3.0, 3.0, 0.0, -1.5,
        ];
        (w, 3, 5)
    }

    #[test]
    fn rank_and_singular_values_of_a_diagonal_matrix() {
        // diag(3, 0, 2) padded with a zero column: singular values 3, 2, 0.
        let w = [3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0];
        let b = SignalBasis::new(&w, 3, 4).unwrap();
        assert_eq!(b.rank(), 2);
        assert_eq!(b.dim(), 4);
        let s = b.singular_values();
        assert!((s[0] - 3.0).abs() < 1e-6 && (s[1] - 2.0).abs() < 1e-6 && s[2].abs() < 1e-6);
        // v_1 = +-e_0, v_2 = +-e_2.
        assert!((b.vector(0).unwrap()[0].abs() - 1.0).abs() < 1e-6);
        assert!((b.vector(1).unwrap()[2].abs() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn basis_is_orthonormal() {
        let (rows, cols) = (6, 9);
        let b = SignalBasis::new(&random_vec(1, rows * cols), rows, cols).unwrap();
        assert_eq!(b.rank(), 6);
        for i in 0..b.rank() {
            for j in 0..b.rank() {
                let dot: f32 = (0..cols)
                    .map(|c| b.vector(i).unwrap()[c] * b.vector(j).unwrap()[c])
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "v{i}.v{j} = {dot}");
            }
        }
    }

    #[test]
    fn signal_plus_null_is_z_and_w_kills_null() {
        let (w, rows, cols) = rank2();
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        assert_eq!(b.rank(), 2);
        let z = random_vec(2, cols);
        let zs = b.signal_content(&z).unwrap();
        let zn = b.null_content(&z).unwrap();
        let sum: Vec<f32> = zs.iter().zip(&zn).map(|(a, c)| a + c).collect();
        assert!(max_abs_diff(&sum, &z) < 1e-6);
        let wn = matvec(&w, rows, cols, &zn);
        assert!(wn.iter().all(|x| x.abs() < 1e-5), "W z_N = {wn:?}");
        // and the signal content carries all of W z
        let (wz, wzs) = (matvec(&w, rows, cols, &z), matvec(&w, rows, cols, &zs));
        assert!(wz.iter().zip(&wzs).all(|(a, c)| (a - c).abs() < 1e-5));
        // the null content is not trivially zero for this z
        assert!(sq_norm(&zn) > 1e-3);
    }

    #[test]
    fn coefficients_are_dot_products_and_rebuild_signal_content() {
        let (rows, cols) = (4, 7);
        let w = random_vec(3, rows * cols);
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = random_vec(4, cols);
        let a = b.coefficients(&z).unwrap();
        for (k, ak) in a.iter().enumerate() {
            let naive: f32 = b
                .vector(k)
                .unwrap()
                .iter()
                .zip(&z)
                .map(|(v, x)| v * x)
                .sum();
            assert!((ak - naive).abs() < 1e-5);
        }
        let kept: Vec<usize> = (0..b.rank()).collect();
        let rebuilt = b.from_coefficients(&a, &kept).unwrap();
        assert!(max_abs_diff(&rebuilt, &b.signal_content(&z).unwrap()) < 1e-5);
    }

    #[test]
    fn batch_matches_single_vectors() {
        let (rows, cols, n) = (3, 5, 4);
        let (w, _, _) = rank2();
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let zs = random_vec(5, n * cols);
        let batch = b.signal_content_batch(&zs, n).unwrap();
        let ratios = b.log_signal_ratio_batch(&zs, n).unwrap();
        for i in 0..n {
            let z = &zs[i * cols..(i + 1) * cols];
            let one = b.signal_content(z).unwrap();
            assert!(max_abs_diff(&one, &batch[i * cols..(i + 1) * cols]) < 1e-6);
            assert!((b.log_signal_ratio(z).unwrap() - ratios[i]).abs() < 1e-6);
        }
    }

    #[test]
    fn log_signal_ratio_matches_definition_and_is_zero_in_row_space() {
        let (w, rows, cols) = rank2();
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        let z = random_vec(6, cols);
        let zs = b.signal_content(&z).unwrap();
        let naive = (sq_norm(&zs) / sq_norm(&z)).ln();
        let got = b.log_signal_ratio(&z).unwrap();
        assert!(got <= 0.0 && (got - naive).abs() < 1e-5, "{got} vs {naive}");
        assert!(got < -1e-3, "z has null content, ratio must be < 0");
        // a row of W lies in the row space
        let in_row_space = b.log_signal_ratio(&w[cols..2 * cols]).unwrap();
        assert!(in_row_space <= 0.0 && in_row_space > -1e-5);
        assert_eq!(b.log_signal_ratio(&[0.0; 5]).unwrap(), 0.0);
    }

    #[test]
    fn from_coefficients_checks_indices_and_lengths() {
        let (w, rows, cols) = rank2();
        let b = SignalBasis::new(&w, rows, cols).unwrap();
        assert!(matches!(
            b.from_coefficients(&[1.0], &[2]),
            Err(ObfuscateError::IndexOutOfRange { index: 2, rank: 2 })
        ));
        assert!(matches!(
            b.from_coefficients(&[1.0, 2.0], &[0]),
            Err(ObfuscateError::DimensionMismatch {
                expected: 1,
                got: 2,
                ..
            })
        ));
    }

    #[test]
    fn wrong_lengths_and_bad_values_are_errors() {
        assert!(matches!(
            SignalBasis::new(&[1.0; 5], 2, 3),
            Err(ObfuscateError::DimensionMismatch {
                expected: 6,
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            SignalBasis::new(&[1.0, f32::NAN], 1, 2),
            Err(ObfuscateError::NonFinite { index: 1, .. })
        ));
        assert!(SignalBasis::new(&[], 0, 3).is_err());
        let b = SignalBasis::new(&[1.0, 2.0], 1, 2).unwrap();
        let err = b.coefficients(&[1.0; 3]).unwrap_err().to_string();
        assert!(err.contains("expected 2") && err.contains("got 3"), "{err}");
    }

    #[test]
    fn zero_operator_has_rank_zero_and_everything_is_null() {
        let b = SignalBasis::new(&[0.0; 6], 2, 3).unwrap();
        assert_eq!(b.rank(), 0);
        let z = [1.0, -2.0, 3.0];
        assert_eq!(b.null_content(&z).unwrap(), z.to_vec());
        assert_eq!(b.log_signal_ratio(&z).unwrap(), f64::NEG_INFINITY);
    }
}
