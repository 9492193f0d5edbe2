//! A 2-D convolution written out as the dense matrix it applies to a
//! flattened CHW feature map (DESIGN section 6: seed 004 designs `g` for "the
//! first linear layer (a convolutional or fully-connected layer)" of the
//! server, section 4.2).
//!
//! The bias is left out on purpose: Theorem 1 and the distortion
//! `||W z - W z'||` only involve the linear part, and the bias cancels in the
//! difference. The matrix is mostly zeros and grows as `(C_out H W) x (C_in H
//! W)`, so callers pass a limit on its element count and get an error naming
//! the size rather than an allocation that takes the machine down.

use super::{ObfuscateError, check_len};

/// A row-major `rows x cols` matrix of `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseMatrix {
    /// Number of rows (length of `W z`).
    pub rows: usize,
    /// Number of columns (length of `z`).
    pub cols: usize,
    /// Row-major values, `rows * cols` of them.
    pub data: Vec<f32>,
}

impl DenseMatrix {
    /// Wraps row-major `data`, checking its length.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, ObfuscateError> {
        check_len("dense matrix (rows * cols)", &data, rows * cols)?;
        Ok(Self { rows, cols, data })
    }

    /// Builds the matrix from column-major `data`. A row-major `[d_in, d_out]`
    /// weight (burn's `Linear` layout, `y = x W`) is the column-major form of
    /// the `d_out x d_in` operator, so `from_col_major(d_out, d_in, weight)`.
    pub fn from_col_major(rows: usize, cols: usize, data: &[f32]) -> Result<Self, ObfuscateError> {
        check_len("dense matrix (rows * cols)", data, rows * cols)?;
        let mut out = vec![0.0f32; rows * cols];
        for c in 0..cols {
            for r in 0..rows {
                out[r * cols + c] = data[c * rows + r];
            }
        }
        Ok(Self {
            rows,
            cols,
            data: out,
        })
    }

    /// `W x` for `x` of length `cols`.
    pub fn matvec(&self, x: &[f32]) -> Result<Vec<f32>, ObfuscateError> {
        check_len("vector multiplied by the dense matrix", x, self.cols)?;
        Ok(self
            .data
            .chunks_exact(self.cols.max(1))
            .take(self.rows)
            .map(|row| row.iter().zip(x).map(|(w, v)| w * v).sum())
            .collect())
    }
}

/// Output `[oh, ow]` of a convolution: `(h + 2 p - k) / s + 1` per axis.
/// Errors on a zero stride or a kernel larger than the padded input.
pub fn conv2d_output_hw(
    kernel_hw: [usize; 2],
    input_hw: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<[usize; 2], ObfuscateError> {
    let mut out = [0usize; 2];
    for axis in 0..2 {
        if stride[axis] == 0 {
            return Err(ObfuscateError::InvalidParameter {
                what: "convolution stride",
                value: format!("{stride:?}"),
                allowed: ">= 1 on both axes",
            });
        }
        let padded = input_hw[axis] + 2 * padding[axis];
        if kernel_hw[axis] == 0 || kernel_hw[axis] > padded {
            return Err(ObfuscateError::InvalidParameter {
                what: "convolution kernel size",
                value: format!("{kernel_hw:?}"),
                allowed: "between 1 and the padded input size on both axes",
            });
        }
        out[axis] = (padded - kernel_hw[axis]) / stride[axis] + 1;
    }
    Ok(out)
}

/// The `(cout*oh*ow) x (cin*h*w)` matrix of a bias-free 2-D convolution
/// (cross-correlation, as in burn and PyTorch) with `weight` laid out
/// `[cout, cin, kh, kw]`, acting on a CHW input flattened row-major; rows are
/// the CHW-flattened output. Errors when the matrix would hold more than
/// `max_elements` values.
pub fn conv2d_as_dense(
    weight: &[f32],
    shape: [usize; 4],
    input_hw: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    max_elements: usize,
) -> Result<DenseMatrix, ObfuscateError> {
    let [cout, cin, kh, kw] = shape;
    if shape.contains(&0) || input_hw.contains(&0) {
        return Err(ObfuscateError::InvalidParameter {
            what: "convolution shape",
            value: format!("weight {shape:?}, input {input_hw:?}"),
            allowed: "all dimensions >= 1",
        });
    }
    check_len(
        "convolution weight [cout, cin, kh, kw]",
        weight,
        cout * cin * kh * kw,
    )?;
    let [h, w] = input_hw;
    let [oh, ow] = conv2d_output_hw([kh, kw], input_hw, stride, padding)?;
    let (rows, cols) = (cout * oh * ow, cin * h * w);
    let elements = rows as u128 * cols as u128;
    if elements > max_elements as u128 {
        return Err(ObfuscateError::MatrixTooLarge {
            what: "dense matrix of the convolution",
            rows,
            cols,
            elements,
            limit: max_elements,
        });
    }
    let mut data = vec![0.0f32; rows * cols];
    for co in 0..cout {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &mut data[((co * oh + oy) * ow + ox) * cols..][..cols];
                for ci in 0..cin {
                    for ky in 0..kh {
                        let Some(iy) = (oy * stride[0] + ky).checked_sub(padding[0]) else {
                            continue;
                        };
                        if iy >= h {
                            continue;
                        }
                        for kx in 0..kw {
                            let Some(ix) = (ox * stride[1] + kx).checked_sub(padding[1]) else {
                                continue;
                            };
                            if ix < w {
                                row[(ci * h + iy) * w + ix] +=
                                    weight[((co * cin + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(DenseMatrix { rows, cols, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::test_util::random_vec;

    /// Naive direct convolution over a zero-padded CHW input.
    #[allow(clippy::too_many_arguments)]
    fn direct_conv(
        x: &[f32],
        weight: &[f32],
        [cout, cin, kh, kw]: [usize; 4],
        [h, w]: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Vec<f32> {
        let oh = (h + 2 * padding[0] - kh) / stride[0] + 1;
        let ow = (w + 2 * padding[1] - kw) / stride[1] + 1;
        let mut out = vec![0.0f32; cout * oh * ow];
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0f32;
                    for ci in 0..cin {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride[0] + ky) as isize - padding[0] as isize;
                                let ix = (ox * stride[1] + kx) as isize - padding[1] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += weight[((co * cin + ci) * kh + ky) * kw + kx]
                                        * x[(ci * h + iy as usize) * w + ix as usize];
                                }
                            }
                        }
                    }
                    out[(co * oh + oy) * ow + ox] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn one_channel_2x2_kernel_by_hand() {
        // 1x1x2x2 kernel [[1,2],[3,4]] over a 2x3 input, no padding: 1x2 output.
        let m = conv2d_as_dense(
            &[1.0, 2.0, 3.0, 4.0],
            [1, 1, 2, 2],
            [2, 3],
            [1, 1],
            [0, 0],
            100,
        )
        .unwrap();
        assert_eq!((m.rows, m.cols), (2, 6));
        #[rustfmt::skip]
        let want = vec![
            1.0, 2.0, 0.0, 3.0, 4.0, 0.0,
            0.0, 1.0, 2.0, 0.0, 3.0, 4.0,
        ];
        assert_eq!(m.data, want);
    }

    #[test]
    fn dense_matrix_matches_direct_convolution() {
        let cases = [
            ([3, 2, 3, 3], [5, 6], [1, 1], [1, 1]),
            ([4, 3, 3, 2], [7, 5], [2, 1], [1, 0]),
            ([2, 1, 1, 1], [4, 4], [2, 2], [0, 0]),
            ([2, 2, 5, 5], [3, 3], [1, 1], [2, 2]),
        ];
        for (i, (shape, hw, stride, padding)) in cases.into_iter().enumerate() {
            let weight = random_vec(30 + i as u64, shape.iter().product());
            let x = random_vec(40 + i as u64, shape[1] * hw[0] * hw[1]);
            let m = conv2d_as_dense(&weight, shape, hw, stride, padding, 1 << 20).unwrap();
            let got = m.matvec(&x).unwrap();
            let want = direct_conv(&x, &weight, shape, hw, stride, padding);
            assert_eq!(got.len(), want.len(), "case {i}");
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-5, "case {i}: max error {err}");
        }
    }

    #[test]
    fn too_large_matrix_names_size_and_limit() {
        let err = conv2d_as_dense(
            &[0.0; 8 * 4 * 9],
            [8, 4, 3, 3],
            [10, 10],
            [1, 1],
            [1, 1],
            1000,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("800 x 400 = 320000") && msg.contains("limit of 1000"),
            "{msg}"
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        let w = [0.0f32; 4];
        let zero_stride = conv2d_as_dense(&w, [1, 1, 2, 2], [3, 3], [0, 1], [0, 0], 100);
        assert!(matches!(
            zero_stride,
            Err(ObfuscateError::InvalidParameter { .. })
        ));
        let big_kernel = conv2d_as_dense(&w, [1, 1, 2, 2], [1, 1], [1, 1], [0, 0], 100);
        assert!(matches!(
            big_kernel,
            Err(ObfuscateError::InvalidParameter { .. })
        ));
        let short = conv2d_as_dense(&w[..3], [1, 1, 2, 2], [3, 3], [1, 1], [0, 0], 100);
        assert!(matches!(
            short,
            Err(ObfuscateError::DimensionMismatch {
                expected: 4,
                got: 3,
                ..
            })
        ));
    }

    #[test]
    fn from_col_major_transposes_a_burn_linear_weight() {
        // burn Linear weight [d_in = 3, d_out = 2], row-major; y = x W.
        let weight = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let m = DenseMatrix::from_col_major(2, 3, &weight).unwrap();
        assert_eq!(m.data, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        // x W with x = (1, 1, 1) is (9, 12)
        assert_eq!(m.matvec(&[1.0, 1.0, 1.0]).unwrap(), vec![9.0, 12.0]);
    }
}
