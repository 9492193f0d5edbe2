//! Classification metrics: target accuracy, and attribute-inference accuracy
//! against chance (DESIGN section 9.4, seed 004 section 5).
//!
//! "Chance" for attribute inference is the majority-class rate of the
//! evaluated labels: the accuracy of always guessing the most common value,
//! which is what an attacker learning nothing from the features achieves.

use std::collections::HashMap;

use super::MetricsError;

/// Fraction of positions where `pred` equals `truth`.
///
/// Errors if the slices differ in length or are empty.
pub fn accuracy(pred: &[u32], truth: &[u32]) -> Result<f64, MetricsError> {
    if pred.len() != truth.len() {
        return Err(MetricsError::LengthMismatch {
            left_name: "predictions",
            left: pred.len(),
            right_name: "labels",
            right: truth.len(),
        });
    }
    if pred.is_empty() {
        return Err(MetricsError::Empty {
            what: "predictions",
        });
    }
    let hits = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    Ok(hits as f64 / pred.len() as f64)
}

/// Share of the most frequent label: the accuracy of always guessing it.
///
/// Errors if `labels` is empty.
pub fn majority_rate(labels: &[u32]) -> Result<f64, MetricsError> {
    if labels.is_empty() {
        return Err(MetricsError::Empty { what: "labels" });
    }
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &l in labels {
        *counts.entry(l).or_default() += 1;
    }
    let top = counts.values().copied().max().unwrap_or(0);
    Ok(top as f64 / labels.len() as f64)
}

/// Index of the largest value in each row of a flat row-major `[rows, cols]`
/// buffer. Ties go to the first index; NaN never wins (an all-NaN row gives 0).
///
/// Errors if `cols` is 0, above `u32::MAX`, or does not divide `logits.len()`.
pub fn argmax_rows(logits: &[f32], cols: usize) -> Result<Vec<u32>, MetricsError> {
    if cols == 0 || u32::try_from(cols).is_err() || !logits.len().is_multiple_of(cols) {
        return Err(MetricsError::RaggedRows {
            len: logits.len(),
            cols,
        });
    }
    Ok(logits
        .chunks_exact(cols)
        .map(|row| {
            let mut best = 0usize;
            let mut best_val = f32::NEG_INFINITY;
            let mut found = false;
            for (i, &v) in row.iter().enumerate() {
                if !v.is_nan() && (!found || v > best_val) {
                    best = i;
                    best_val = v;
                    found = true;
                }
            }
            u32::try_from(best).expect("column index fits u32: cols was checked")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_matches() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 0, 3, 0]).unwrap(), 0.5);
        assert_eq!(accuracy(&[7], &[7]).unwrap(), 1.0);
    }

    #[test]
    fn accuracy_rejects_length_mismatch_and_empty() {
        let msg = accuracy(&[1, 2, 3], &[1, 2]).unwrap_err().to_string();
        assert!(msg.contains("3 values") && msg.contains("2"), "{msg}");
        assert!(matches!(
            accuracy(&[], &[]),
            Err(MetricsError::Empty { .. })
        ));
    }

    #[test]
    fn majority_rate_is_share_of_most_common_label() {
        assert_eq!(majority_rate(&[0, 1, 1, 2, 1, 0]).unwrap(), 0.5);
        assert_eq!(majority_rate(&[3, 3, 3]).unwrap(), 1.0);
        assert!(majority_rate(&[]).is_err());
    }

    #[test]
    fn argmax_rows_picks_first_maximum_and_skips_nan() {
        let logits = [
            0.1,
            0.9,
            0.3, //
            2.0,
            2.0,
            -1.0, //
            f32::NAN,
            -5.0,
            -7.0, //
            f32::NAN,
            f32::NAN,
            f32::NAN,
        ];
        assert_eq!(argmax_rows(&logits, 3).unwrap(), vec![1, 0, 1, 0]);
    }

    #[test]
    fn argmax_rows_rejects_ragged_buffers() {
        assert!(matches!(
            argmax_rows(&[1.0; 7], 3),
            Err(MetricsError::RaggedRows { len: 7, cols: 3 })
        ));
        assert!(argmax_rows(&[1.0; 6], 0).is_err());
    }
}
