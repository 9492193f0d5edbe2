//! What an attacker gets without the features: the floors every attack is
//! judged against.
//!
//! A reconstruction at a deep split can look like the digit because the
//! decoder draws the class it infers: that is label leakage, which the
//! server learns anyway from the model's answer, not input leakage. So the
//! audit measures, on the same `test` queries:
//! - the **no-feature floor**: every query reconstructed as the mean image
//!   of the attacker's data;
//! - the **label floor**: every query reconstructed as the mean image of the
//!   attacker's images of the class the model predicts for it;
//! - for attributes, **chance** (the majority rate on `test`) and a
//!   **label-only attacker** that predicts, for each predicted class, the
//!   attribute value most frequent among the attacker's images the model
//!   puts in that class;
//! - on face data, the **re-identification** rate of the label floor's
//!   reconstructions, with the face classifier's chance and ceiling (see
//!   [`super::reidentify`]).
//!
//! An attack's margin over the label floor, judged by both bootstrap
//! intervals, says whether the features leak more than the label does.

use serde::{Deserialize, Serialize};

use super::AttackRecord;
use super::reidentify::{Reidentifier, ReidentifierSummary};
use crate::data::Dataset;
use crate::metrics::{
    BOOTSTRAP_RESAMPLES, ReconstructionMetrics, bootstrap_accuracy_ci, bootstrap_mean_ci,
    majority_rate, reconstruction_metrics,
};
use crate::train::Evaluator;

/// Reconstruction quality with bootstrap 95% intervals over the queries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredReconstruction {
    /// Mean per-image MSE.
    pub mse: f64,
    /// Mean per-image PSNR (dB).
    pub psnr: f64,
    /// Mean per-image SSIM.
    pub ssim: f64,
    /// Interval of `mse`.
    pub mse_ci: Option<[f64; 2]>,
    /// Interval of `psnr`.
    pub psnr_ci: Option<[f64; 2]>,
    /// Interval of `ssim`.
    pub ssim_ci: Option<[f64; 2]>,
    /// Mean per-image cosine similarity.
    #[serde(default)]
    pub cosine: f64,
    /// Interval of `cosine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine_ci: Option<[f64; 2]>,
}

impl ScoredReconstruction {
    /// The means of `m` and their seeded bootstrap intervals.
    pub fn new(m: &ReconstructionMetrics, seed: u64) -> Self {
        let ci = |f: fn(&crate::metrics::ImageMetrics) -> f64, s: u64| {
            let v: Vec<f64> = m.per_image.iter().map(f).collect();
            bootstrap_mean_ci(&v, BOOTSTRAP_RESAMPLES, seed ^ s)
        };
        Self {
            mse: m.mse,
            psnr: m.psnr,
            ssim: m.ssim,
            mse_ci: ci(|p| p.mse, 1),
            psnr_ci: ci(|p| p.psnr, 2),
            ssim_ci: ci(|p| p.ssim, 3),
            cosine: m.cosine,
            cosine_ci: ci(|p| p.cosine, 4),
        }
    }
}

/// The floors of one hidden attribute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributeFloor {
    /// Attribute name.
    pub attribute: String,
    /// Majority-class rate on `test`.
    pub chance: f64,
    /// Accuracy of the label-only attacker on `test`.
    pub label_only: f64,
    /// Bootstrap interval of `label_only`.
    pub label_only_ci: Option<[f64; 2]>,
}

/// Every floor of an audit (the same at every split: none uses features).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Floors {
    /// Queries reconstructed as the mean image of the attacker's data.
    pub mean_image: ScoredReconstruction,
    /// Queries reconstructed as the attacker's class-mean image of the
    /// model's predicted label.
    pub label: ScoredReconstruction,
    /// Chance and label-only accuracy of each hidden attribute.
    pub attributes: Vec<AttributeFloor>,
    /// The face classifier of the re-identification metric and what it
    /// makes of the label-only reconstructions (face data only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reidentification: Option<ReidentificationFloor>,
}

/// The re-identification floors: the classifier's chance and ceiling, and
/// the rate at which it re-identifies the label-only reconstructions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReidentificationFloor {
    /// The classifier (its clean-image accuracy is the ceiling).
    pub classifier: ReidentifierSummary,
    /// Re-identification rate of the class-mean image of the predicted label.
    pub label_only: f64,
    /// Bootstrap interval of `label_only`.
    pub label_only_ci: Option<[f64; 2]>,
}

/// Whether an attack's features leak more than the label, by intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeyondLabel {
    /// The attack's interval lies above the label floor's.
    More,
    /// The intervals overlap: no evidence either way.
    Indistinguishable,
    /// The attack's interval lies below the label floor's: the attacker
    /// does worse than one that only knows the label.
    Less,
}

impl BeyondLabel {
    /// Compares two intervals (falling back to the points where one is
    /// missing).
    pub fn judge(
        attack: f64,
        attack_ci: Option<[f64; 2]>,
        floor: f64,
        floor_ci: Option<[f64; 2]>,
    ) -> Self {
        let [alo, ahi] = attack_ci.unwrap_or([attack, attack]);
        let [flo, fhi] = floor_ci.unwrap_or([floor, floor]);
        if alo > fhi {
            BeyondLabel::More
        } else if ahi < flo {
            BeyondLabel::Less
        } else {
            BeyondLabel::Indistinguishable
        }
    }
}

/// Mean image of each class, `[classes, image_len]`, from `images` with
/// their `labels`; a class without images gets the mean of all images.
pub fn class_mean_images(
    images: &[f32],
    labels: &[u32],
    classes: usize,
    image_len: usize,
) -> Vec<f32> {
    let overall = mean_image(images, image_len);
    let mut sum = vec![0f64; classes * image_len];
    let mut count = vec![0usize; classes];
    for (img, &c) in images.chunks_exact(image_len).zip(labels) {
        let c = c as usize;
        if c >= classes {
            continue;
        }
        count[c] += 1;
        for (s, &v) in sum[c * image_len..(c + 1) * image_len].iter_mut().zip(img) {
            *s += f64::from(v);
        }
    }
    let mut out = Vec::with_capacity(classes * image_len);
    for c in 0..classes {
        if count[c] == 0 {
            out.extend_from_slice(&overall);
        } else {
            let row = &sum[c * image_len..(c + 1) * image_len];
            out.extend(row.iter().map(|s| (s / count[c] as f64) as f32));
        }
    }
    out
}

/// Mean of row-major `[n, image_len]` images (zeros when there are none).
pub fn mean_image(images: &[f32], image_len: usize) -> Vec<f32> {
    let n = images.len() / image_len.max(1);
    let mut sum = vec![0f64; image_len];
    for img in images.chunks_exact(image_len.max(1)) {
        for (s, &v) in sum.iter_mut().zip(img) {
            *s += f64::from(v);
        }
    }
    sum.iter().map(|s| (s / n.max(1) as f64) as f32).collect()
}

/// The label-only attribute attacker: for each class, the attribute value
/// most frequent among the attacker's examples predicted as that class
/// (ties to the smaller value; an unseen class gets the overall majority).
pub fn label_only_rule(
    predicted: &[u32],
    values: &[u32],
    classes: usize,
    values_count: usize,
) -> Vec<u32> {
    let argmax = |counts: &[usize]| {
        counts
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .map_or(0, |(i, _)| i as u32)
    };
    let mut table = vec![0usize; classes * values_count];
    let mut overall = vec![0usize; values_count];
    for (&c, &v) in predicted.iter().zip(values) {
        let (c, v) = (c as usize, v as usize);
        if c < classes && v < values_count {
            table[c * values_count + v] += 1;
            overall[v] += 1;
        }
    }
    let fallback = argmax(&overall);
    (0..classes)
        .map(|c| {
            let row = &table[c * values_count..(c + 1) * values_count];
            if row.iter().all(|&n| n == 0) {
                fallback
            } else {
                argmax(row)
            }
        })
        .collect()
}

/// Measures every floor on the `test` queries, with the attacker's data
/// `aux` and the model behind `eval` (its predicted labels). Intervals are
/// seeded by `seed`. With a face classifier `reid`, also the rate at which it
/// re-identifies the label-only reconstructions.
pub fn measure_floors(
    aux: &Dataset,
    test: &Dataset,
    seed: u64,
    eval: &Evaluator,
    reid: Option<&Reidentifier>,
) -> Result<Floors, crate::Error> {
    let il = test.image_len();
    let n = test.len();
    let classes = test.num_classes.max(aux.num_classes);
    let mean = mean_image(&aux.images, il);
    let mean_rec: Vec<f32> = mean.iter().copied().cycle().take(n * il).collect();
    let m = reconstruction_metrics(&test.images, &mean_rec, n, test.shape)?;
    let mean_image = ScoredReconstruction::new(&m, seed ^ 0xF100);

    let class_means = class_mean_images(&aux.images, &aux.targets, classes, il);
    let predicted = eval.predict(test);
    let label_rec: Vec<f32> = predicted
        .iter()
        .flat_map(|&c| {
            let c = (c as usize).min(classes.saturating_sub(1));
            class_means[c * il..(c + 1) * il].iter().copied()
        })
        .collect();
    let m = reconstruction_metrics(&test.images, &label_rec, n, test.shape)?;
    let label = ScoredReconstruction::new(&m, seed ^ 0xF200);
    let reidentification = match reid {
        Some(r) => {
            let (label_only, label_only_ci) = r.score(&label_rec, il)?;
            Some(ReidentificationFloor {
                classifier: r.summary.clone(),
                label_only,
                label_only_ci,
            })
        }
        None => None,
    };

    let aux_predicted = eval.predict(aux);
    let mut attributes = Vec::new();
    for attr in &test.hidden {
        let Some(aux_attr) = aux.hidden.iter().find(|a| a.name == attr.name) else {
            continue;
        };
        let rule = label_only_rule(&aux_predicted, &aux_attr.values, classes, attr.num_classes);
        let hits = predicted
            .iter()
            .zip(&attr.values)
            .filter(|&(&c, &v)| rule.get(c as usize) == Some(&v))
            .count();
        let label_only = hits as f64 / n.max(1) as f64;
        attributes.push(AttributeFloor {
            attribute: attr.name.clone(),
            chance: majority_rate(&attr.values)?,
            label_only,
            label_only_ci: bootstrap_accuracy_ci(label_only, n, seed ^ 0xF300),
        });
    }
    Ok(Floors {
        mean_image,
        label,
        attributes,
        reidentification,
    })
}

/// Sets each record's margin over the label floor and its verdict, and
/// flags attacks that score below the no-feature floor or chance (their
/// numbers are lower bounds of what the features give away).
pub fn judge_against_floors(records: &mut [AttackRecord], floors: &Floors) {
    for r in records {
        if let Some(psnr) = r.psnr {
            let f = &floors.label;
            r.margin_over_label = Some(psnr - f.psnr);
            r.beyond_label = Some(BeyondLabel::judge(psnr, r.psnr_ci, f.psnr, f.psnr_ci));
            let [_, hi] = r.psnr_ci.unwrap_or([psnr, psnr]);
            if hi < floors.mean_image.psnr {
                r.flag(format!(
                    "scores below the no-feature floor (mean image, {:.2} dB): the attacker failed to learn",
                    floors.mean_image.psnr
                ));
            }
        }
        if let (Some(acc), Some(name)) = (r.accuracy, r.attribute.as_deref()) {
            if let Some(f) = floors.attributes.iter().find(|f| f.attribute == name) {
                r.margin_over_label = Some(acc - f.label_only);
                r.beyond_label = Some(BeyondLabel::judge(
                    acc,
                    r.accuracy_ci,
                    f.label_only,
                    f.label_only_ci,
                ));
            }
            if let Some(chance) = r.chance
                && acc < chance
            {
                r.flag(format!(
                    "scores below chance ({:.3}): the attacker failed to learn",
                    chance
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_mean_images_by_hand() {
        // Four 2-pixel images, classes 0, 1, 0 and (out of range) 5; class 2 unseen.
        let images = [0.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.9, 0.9];
        let labels = [0, 1, 0, 5];
        let m = class_mean_images(&images, &labels, 3, 2);
        let overall = [(0.0 + 1.0 + 0.5 + 0.9) / 4.0, (1.0 + 1.0 + 0.0 + 0.9) / 4.0];
        let want = [0.25, 0.5, 1.0, 1.0, overall[0], overall[1]];
        for (g, w) in m.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{m:?}");
        }
        assert_eq!(mean_image(&images, 2).len(), 2);
    }

    #[test]
    fn label_only_rule_by_hand() {
        // class 0: values 1, 1, 0 -> 1; class 1: 0, 1 -> tie -> 0; class 2 unseen -> overall majority 1.
        let pred = [0, 0, 0, 1, 1];
        let vals = [1, 1, 0, 0, 1];
        assert_eq!(label_only_rule(&pred, &vals, 3, 2), vec![1, 0, 1]);
    }

    #[test]
    fn verdicts_by_interval() {
        assert_eq!(
            BeyondLabel::judge(20.0, Some([19.0, 21.0]), 15.0, Some([14.0, 18.9])),
            BeyondLabel::More
        );
        assert_eq!(
            BeyondLabel::judge(20.0, Some([19.0, 21.0]), 18.0, Some([17.0, 19.5])),
            BeyondLabel::Indistinguishable
        );
        assert_eq!(
            BeyondLabel::judge(12.0, Some([11.0, 13.0]), 15.0, Some([14.0, 16.0])),
            BeyondLabel::Less
        );
        assert_eq!(
            BeyondLabel::judge(12.0, None, 12.0, None),
            BeyondLabel::Indistinguishable
        );
    }
}
