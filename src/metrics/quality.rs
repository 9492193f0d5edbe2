//! Image-reconstruction quality: MSE, PSNR, SSIM and cosine similarity
//! (DESIGN section 9, "Metrics").
//!
//! Pixels are taken on the [0, 1] scale (peak 1.0) so the numbers compare
//! with other tools. SSIM follows Wang, Bovik, Sheikh, Simoncelli, "Image
//! Quality Assessment: From Error Visibility to Structural Similarity" (IEEE
//! TIP 2004), eq. 13, with the paper's 11x11 Gaussian window (sigma 1.5),
//! K1 = 0.01, K2 = 0.03, L = 1, evaluated only where the window fits inside
//! the image ('valid' region) with population (not sample) local statistics:
//! the reference MATLAB `ssim_index`, and skimage's `structural_similarity`
//! with `gaussian_weights=True, use_sample_covariance=False, data_range=1`.
//!
//! Cosine similarity is seed 002's third metric (Golden Partition Zone,
//! evaluation: "MSE, PSNR and cosine similarity"): the cosine of the angle
//! between the flattened original and reconstruction, on the same [0, 1]
//! pixels, not centred. Pixels are non-negative, so a blank grey guess
//! already scores high; read it beside the floors, not alone.
//!
//! Sums accumulate in f64 whatever the pixel type, so a mean over a large test
//! set does not drift. The low-level kernels ([`mse`], [`ssim`]) expect inputs
//! already checked; [`reconstruction_metrics`] is the checked entry point.

use serde::{Deserialize, Serialize};

use super::MetricsError;

/// PSNR given for identical images (MSE 0), where the formula gives +inf, and
/// the ceiling for any PSNR: a finite number keeps means and JSON well defined.
pub const PSNR_CAP_DB: f64 = 100.0;

/// Side of the SSIM Gaussian window (Wang et al. 2004).
pub const SSIM_WINDOW: usize = 11;

/// Standard deviation of the SSIM Gaussian window, in pixels.
pub const SSIM_SIGMA: f64 = 1.5;

const SSIM_K1: f64 = 0.01;
const SSIM_K2: f64 = 0.03;
/// Dynamic range L of the pixel values (peak minus floor).
const DATA_RANGE: f64 = 1.0;

/// Mean squared error `mean((a - b)^2)`.
///
/// # Panics
/// If the slices differ in length or are empty (callers check first, as
/// [`reconstruction_metrics`] does).
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "mse expects slices of equal length");
    assert!(!a.is_empty(), "mse expects at least one value");
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum();
    sum / a.len() as f64
}

/// Cosine similarity `<a, b> / (|a| |b|)` of two flattened images; 1 when
/// both are all zero (identical), 0 when only one is (no direction shared).
///
/// # Panics
/// If the slices differ in length (callers check first).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "cosine expects slices of equal length");
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        return 1.0;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// PSNR in dB for peak value 1: `10 * log10(1 / mse)`, capped at
/// [`PSNR_CAP_DB`] (so identical images give exactly 100 dB).
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 0.0 {
        return PSNR_CAP_DB;
    }
    (10.0 * (1.0 / mse).log10()).min(PSNR_CAP_DB)
}

/// Normalised 1-D Gaussian weights of length `size`, centred on the middle.
fn gaussian_window(size: usize) -> Vec<f64> {
    let center = (size as f64 - 1.0) / 2.0;
    let raw: Vec<f64> = (0..size)
        .map(|i| {
            let d = i as f64 - center;
            (-d * d / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp()
        })
        .collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|v| v / total).collect()
}

/// Mean SSIM of two images in `[channels, height, width]` order, averaged
/// over channels; 1 for identical images.
///
/// The window is 11x11; an image smaller than 11 in a dimension gets a window
/// shrunk to that dimension in that direction (same sigma, renormalised), so
/// tiny images still give a number instead of an empty 'valid' region.
///
/// # Panics
/// If a dimension is zero or a slice does not hold `channels * height * width`
/// values (callers check first, as [`reconstruction_metrics`] does).
pub fn ssim(a: &[f32], b: &[f32], channels: usize, height: usize, width: usize) -> f64 {
    let plane = height * width;
    assert!(
        channels > 0 && plane > 0,
        "ssim expects non-empty image dimensions"
    );
    assert_eq!(a.len(), channels * plane, "ssim expects a [C, H, W] image");
    assert_eq!(b.len(), channels * plane, "ssim expects a [C, H, W] image");
    let win_h = gaussian_window(height.min(SSIM_WINDOW));
    let win_w = gaussian_window(width.min(SSIM_WINDOW));
    let total: f64 = a
        .chunks_exact(plane)
        .zip(b.chunks_exact(plane))
        .map(|(pa, pb)| ssim_plane(pa, pb, height, width, &win_h, &win_w))
        .sum();
    total / channels as f64
}

/// Mean SSIM over the valid region of one channel, with a separable window.
fn ssim_plane(a: &[f32], b: &[f32], h: usize, w: usize, win_h: &[f64], win_w: &[f64]) -> f64 {
    let c1 = (SSIM_K1 * DATA_RANGE).powi(2);
    let c2 = (SSIM_K2 * DATA_RANGE).powi(2);
    let out_h = h - win_h.len() + 1;
    let out_w = w - win_w.len() + 1;
    // Horizontal pass: for each row, the windowed sums of x, y, x^2, y^2, xy.
    let mut rows = vec![[0.0f64; 5]; h * out_w];
    for r in 0..h {
        for j in 0..out_w {
            let mut acc = [0.0f64; 5];
            for (k, &g) in win_w.iter().enumerate() {
                let x = f64::from(a[r * w + j + k]);
                let y = f64::from(b[r * w + j + k]);
                acc[0] += g * x;
                acc[1] += g * y;
                acc[2] += g * x * x;
                acc[3] += g * y * y;
                acc[4] += g * x * y;
            }
            rows[r * out_w + j] = acc;
        }
    }
    // Vertical pass, then SSIM at each valid position.
    let mut sum = 0.0;
    for i in 0..out_h {
        for j in 0..out_w {
            let mut m = [0.0f64; 5];
            for (k, &g) in win_h.iter().enumerate() {
                let s = rows[(i + k) * out_w + j];
                for (mq, sq) in m.iter_mut().zip(s) {
                    *mq += g * sq;
                }
            }
            let (mu_x, mu_y) = (m[0], m[1]);
            let var_x = m[2] - mu_x * mu_x;
            let var_y = m[3] - mu_y * mu_y;
            let cov = m[4] - mu_x * mu_y;
            sum += ((2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2))
                / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2));
        }
    }
    sum / (out_h * out_w) as f64
}

/// Quality of one reconstructed image against its original.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageMetrics {
    /// Mean squared error over all pixels.
    pub mse: f64,
    /// PSNR in dB (peak 1, capped at [`PSNR_CAP_DB`]).
    pub psnr: f64,
    /// Mean SSIM over channels.
    pub ssim: f64,
    /// Cosine similarity of the flattened images ([`cosine`]).
    #[serde(default)]
    pub cosine: f64,
}

/// Reconstruction quality of a batch: means over images, plus each image's
/// own numbers (attacks correlate per-image errors with their estimates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionMetrics {
    /// Mean over images of the per-image MSE.
    pub mse: f64,
    /// Mean over images of the per-image PSNR (not the PSNR of the mean MSE).
    pub psnr: f64,
    /// Mean over images of the per-image SSIM.
    pub ssim: f64,
    /// Mean over images of the per-image cosine similarity.
    #[serde(default)]
    pub cosine: f64,
    /// Per-image metrics, in input order.
    pub per_image: Vec<ImageMetrics>,
}

/// Compares `n` original images with their reconstructions, both flat
/// `[n, C, H, W]` buffers of pixels on the [0, 1] scale (values outside are
/// used as they are, not clamped).
///
/// Errors if the buffers differ in length, do not hold `n` images of `shape`,
/// hold no pixels, or contain a NaN or infinity.
pub fn reconstruction_metrics(
    originals: &[f32],
    recons: &[f32],
    n: usize,
    shape: [usize; 3],
) -> Result<ReconstructionMetrics, MetricsError> {
    if originals.len() != recons.len() {
        return Err(MetricsError::LengthMismatch {
            left_name: "originals",
            left: originals.len(),
            right_name: "reconstructions",
            right: recons.len(),
        });
    }
    let [c, h, w] = shape;
    let per = c.saturating_mul(h).saturating_mul(w);
    if n == 0 || per == 0 {
        return Err(MetricsError::EmptyShape { n, shape });
    }
    let expected = per.saturating_mul(n);
    if originals.len() != expected {
        return Err(MetricsError::ShapeMismatch {
            what: "originals",
            len: originals.len(),
            n,
            shape,
            expected,
        });
    }
    for (what, data) in [("originals", originals), ("reconstructions", recons)] {
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(MetricsError::NonFinite { what, index, value });
        }
    }
    let per_image: Vec<ImageMetrics> = originals
        .chunks_exact(per)
        .zip(recons.chunks_exact(per))
        .map(|(o, r)| {
            let e = mse(o, r);
            ImageMetrics {
                mse: e,
                psnr: psnr_from_mse(e),
                ssim: ssim(o, r, c, h, w),
                cosine: cosine(o, r),
            }
        })
        .collect();
    let mean = |f: fn(&ImageMetrics) -> f64| per_image.iter().map(f).sum::<f64>() / n as f64;
    Ok(ReconstructionMetrics {
        mse: mean(|m| m.mse),
        psnr: mean(|m| m.psnr),
        ssim: mean(|m| m.ssim),
        cosine: mean(|m| m.cosine),
        per_image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn random_image(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.random::<f32>()).collect()
    }

    /// SSIM straight from the definition: a full 2-D Gaussian window at each
    /// valid position, two-pass (centred) variances.
    fn naive_ssim(a: &[f32], b: &[f32], c: usize, h: usize, w: usize) -> f64 {
        let (wh, ww) = (h.min(11), w.min(11));
        let (ch, cw) = ((wh as f64 - 1.0) / 2.0, (ww as f64 - 1.0) / 2.0);
        let mut g = vec![0.0; wh * ww];
        for i in 0..wh {
            for j in 0..ww {
                let d2 = (i as f64 - ch).powi(2) + (j as f64 - cw).powi(2);
                g[i * ww + j] = (-d2 / (2.0 * 1.5 * 1.5)).exp();
            }
        }
        let gs: f64 = g.iter().sum();
        g.iter_mut().for_each(|v| *v /= gs);
        let (c1, c2) = (0.0001, 0.0009);
        let mut total = 0.0;
        for k in 0..c {
            let px = |img: &[f32], i: usize, j: usize| f64::from(img[k * h * w + i * w + j]);
            let mut sum = 0.0;
            let mut count = 0;
            for y0 in 0..=(h - wh) {
                for x0 in 0..=(w - ww) {
                    let (mut mx, mut my) = (0.0, 0.0);
                    for i in 0..wh {
                        for j in 0..ww {
                            mx += g[i * ww + j] * px(a, y0 + i, x0 + j);
                            my += g[i * ww + j] * px(b, y0 + i, x0 + j);
                        }
                    }
                    let (mut vx, mut vy, mut cxy) = (0.0, 0.0, 0.0);
                    for i in 0..wh {
                        for j in 0..ww {
                            let dx = px(a, y0 + i, x0 + j) - mx;
                            let dy = px(b, y0 + i, x0 + j) - my;
                            vx += g[i * ww + j] * dx * dx;
                            vy += g[i * ww + j] * dy * dy;
                            cxy += g[i * ww + j] * dx * dy;
                        }
                    }
                    sum += ((2.0 * mx * my + c1) * (2.0 * cxy + c2))
                        / ((mx * mx + my * my + c1) * (vx + vy + c2));
                    count += 1;
                }
            }
            total += sum / count as f64;
        }
        total / c as f64
    }

    #[test]
    fn mse_and_psnr_of_small_arrays() {
        // Differences 0.5, 0, 0.25, 0.25 -> squares 0.25, 0, 0.0625, 0.0625.
        let a = [0.5f32, 0.0, 1.0, 0.25];
        let b = [0.0f32, 0.0, 0.75, 0.5];
        let e = mse(&a, &b);
        assert!(close(e, 0.375 / 4.0, 1e-12), "mse {e}");
        assert!(close(psnr_from_mse(0.01), 20.0, 1e-12));
        assert!(close(
            psnr_from_mse(e),
            10.0 * (4.0f64 / 0.375).log10(),
            1e-12
        ));
    }

    #[test]
    fn psnr_of_identical_images_is_capped() {
        assert_eq!(psnr_from_mse(0.0), PSNR_CAP_DB);
        assert_eq!(psnr_from_mse(1e-30), PSNR_CAP_DB);
        let img = [0.3f32; 16];
        let m = reconstruction_metrics(&img, &img, 1, [1, 4, 4]).unwrap();
        assert_eq!((m.mse, m.psnr), (0.0, PSNR_CAP_DB));
    }

    #[test]
    fn ssim_of_identical_images_is_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let img = random_image(&mut rng, 3 * 20 * 17);
        assert!(close(ssim(&img, &img, 3, 20, 17), 1.0, 1e-12));
    }

    #[test]
    fn ssim_of_two_constant_images_is_the_luminance_term() {
        let a = vec![0.2f32; 12 * 12];
        let b = vec![0.6f32; 12 * 12];
        // Zero variances: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
        let (ma, mb) = (f64::from(0.2f32), f64::from(0.6f32));
        let expected = (2.0 * ma * mb + 1e-4) / (ma * ma + mb * mb + 1e-4);
        assert!(close(expected, 0.2401 / 0.4001, 1e-6));
        assert!(close(ssim(&a, &b, 1, 12, 12), expected, 1e-12));
    }

    #[test]
    fn ssim_matches_naive_definition_on_random_16x16() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let a = random_image(&mut rng, 2 * 16 * 16);
        // A noisy copy, so SSIM is well away from both 0 and 1.
        let b: Vec<f32> = a
            .iter()
            .map(|&v| (v + 0.3 * (rng.random::<f32>() - 0.5)).clamp(0.0, 1.0))
            .collect();
        let fast = ssim(&a, &b, 2, 16, 16);
        let slow = naive_ssim(&a, &b, 2, 16, 16);
        assert!(close(fast, slow, 1e-9), "fast {fast} vs naive {slow}");
        assert!(fast > 0.1 && fast < 0.99, "ssim {fast}");
    }

    #[test]
    fn ssim_shrinks_window_on_small_images() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a = random_image(&mut rng, 6 * 14);
        let b = random_image(&mut rng, 6 * 14);
        let fast = ssim(&a, &b, 1, 6, 14);
        assert!(fast.is_finite());
        assert!(close(fast, naive_ssim(&a, &b, 1, 6, 14), 1e-9));
    }

    #[test]
    fn ssim_is_symmetric() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let a = random_image(&mut rng, 13 * 15);
        let b = random_image(&mut rng, 13 * 15);
        assert!(close(
            ssim(&a, &b, 1, 13, 15),
            ssim(&b, &a, 1, 13, 15),
            1e-12
        ));
    }

    #[test]
    fn reconstruction_metrics_are_means_of_per_image_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, shape) = (3, [1, 12, 12]);
        let orig = random_image(&mut rng, n * 144);
        let rec = random_image(&mut rng, n * 144);
        let m = reconstruction_metrics(&orig, &rec, n, shape).unwrap();
        assert_eq!(m.per_image.len(), n);
        for (i, pi) in m.per_image.iter().enumerate() {
            let (o, r) = (&orig[i * 144..][..144], &rec[i * 144..][..144]);
            assert!(close(pi.mse, mse(o, r), 1e-15));
            assert!(close(pi.psnr, psnr_from_mse(pi.mse), 1e-15));
            assert!(close(pi.ssim, naive_ssim(o, r, 1, 12, 12), 1e-9));
            assert!(close(pi.cosine, naive_cosine(o, r), 1e-12));
        }
        let mean_cosine = m.per_image.iter().map(|p| p.cosine).sum::<f64>() / 3.0;
        assert!(close(m.cosine, mean_cosine, 1e-12));
        let mean_psnr = m.per_image.iter().map(|p| p.psnr).sum::<f64>() / 3.0;
        assert!(close(m.psnr, mean_psnr, 1e-12));
    }

    /// Cosine from the definition: the dot product over the product of norms.
    fn naive_cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum();
        let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    }

    #[test]
    fn cosine_is_one_for_scaled_copies_zero_for_disjoint_support_and_defined_for_blank() {
        let a = [0.1f32, 0.5, 0.0, 0.9];
        let b: Vec<f32> = a.iter().map(|v| v * 0.3).collect();
        assert!(close(cosine(&a, &b), 1.0, 1e-7));
        assert!(close(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0, 1e-15));
        assert!(close(cosine(&[0.6, 0.8], &[1.0, 0.0]), 0.6, 1e-7));
        assert_eq!(cosine(&[0.0; 4], &a), 0.0);
        assert_eq!(cosine(&[0.0; 4], &[0.0; 4]), 1.0);
        assert!(close(cosine(&a, &a), 1.0, 1e-12));
    }

    #[test]
    fn colour_metrics_cover_every_channel() {
        // Only the blue plane differs: MSE counts it over all 3 planes and
        // SSIM is the mean of the three per-channel values (1, 1, blue's).
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let plane = 10 * 10;
        let a = random_image(&mut rng, 3 * plane);
        let mut b = a.clone();
        for v in &mut b[2 * plane..] {
            *v = (*v + 0.2).min(1.0);
        }
        let m = reconstruction_metrics(&a, &b, 1, [3, 10, 10]).unwrap();
        let blue_sq: f64 = a[2 * plane..]
            .iter()
            .zip(&b[2 * plane..])
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum();
        assert!(close(m.mse, blue_sq / (3 * plane) as f64, 1e-12));
        let blue = ssim(&a[2 * plane..], &b[2 * plane..], 1, 10, 10);
        assert!(blue < 0.99, "blue ssim {blue}");
        assert!(close(m.ssim, (2.0 + blue) / 3.0, 1e-12), "{}", m.ssim);
    }

    #[test]
    fn reconstruction_metrics_reject_length_mismatch() {
        let err = reconstruction_metrics(&[0.0; 8], &[0.0; 6], 2, [1, 2, 2]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains('8') && msg.contains('6'), "{msg}");
    }

    #[test]
    fn reconstruction_metrics_reject_wrong_shape_empty_and_nan() {
        let err = reconstruction_metrics(&[0.0; 8], &[0.0; 8], 3, [1, 2, 2]).unwrap_err();
        assert!(matches!(
            err,
            MetricsError::ShapeMismatch { expected: 12, .. }
        ));
        let err = reconstruction_metrics(&[], &[], 0, [1, 2, 2]).unwrap_err();
        assert!(matches!(err, MetricsError::EmptyShape { .. }));
        let mut bad = [0.0f32; 4];
        bad[2] = f32::NAN;
        let err = reconstruction_metrics(&[0.0; 4], &bad, 1, [1, 2, 2]).unwrap_err();
        assert!(matches!(
            err,
            MetricsError::NonFinite {
                what: "reconstructions",
                index: 2,
                ..
            }
        ));
    }
}
