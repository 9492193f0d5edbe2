//! The obfuscation study of a run (seed 004, Figures 2, 3 and 4): the
//! attribute attack against every split and obfuscation budget, written to
//! `obfuscation.json`, `obfuscation.md` and two SVG plots in the run folder.
//!
//! - Figure 2: per split with a linear server operator, the mean of
//!   `log(||z_S||^2 / ||z||^2)` over the owner's `train` and its cumulative sum.
//! - Figure 3: per split, the attribute attack's accuracy when the edge sends
//!   `z` (none), `z_S` (distortion-free), the top-`m'` `z'` (`bounded`: the
//!   fewest components that lose at most `accuracy_drop_points` on the
//!   owner's `train`) and Theorem 1's distortion-bounded `z'` (`theorem1`:
//!   the largest distortion budget `eps` that loses at most as much, in
//!   `eps`), with target accuracy and bytes per query for each.
//! - Figure 4: target error and attack error as `m'` varies at one split.
//!
//! The defender's steps (the signal content it measures, the `m'` it
//! calibrates) use the model owner's data; the attacker's steps (training
//! the attribute attackers) use the attacker's data; every score is on `test`.

use std::path::Path;

use burn::prelude::*;
use serde_json::json;

use super::{AttributeConfig, attribute_attack};
use crate::data::Dataset;
use crate::formats::plot::{LinePlot, Series, line_plot, save_svg};
use crate::model::{Block, SplitModel};
use crate::obfuscate::ObfuscationMode;
use crate::obfuscate::deploy::Deployment;
use crate::obfuscate::operator::BasisCache;
use crate::obfuscate::stage::{OwnerAccuracy, StudyConfig, apply, server_accuracy};
use crate::train::Evaluator;

/// The mean of the finite values (0 for none).
fn finite_mean(values: Vec<f64>) -> f64 {
    let finite: Vec<f64> = values.into_iter().filter(|r| r.is_finite()).collect();
    finite.iter().sum::<f64>() / finite.len().max(1) as f64
}

/// The owner's features at split `k` when the edge discards the null
/// content of every split in `earlier` on the way (each block's output
/// replaced by its signal content w.r.t. the next layer, `z_S`), as seed
/// 004's Figure 2 measures the signal content layer by layer.
fn discarded_features(
    model: &SplitModel,
    owner: &Dataset,
    k: usize,
    earlier: &[(usize, std::sync::Arc<crate::obfuscate::SignalBasis>)],
    device: &Device,
) -> Result<Vec<f32>, crate::Error> {
    use crate::model::Features;
    use crate::train::to_vec;
    let mut failed = None;
    let mut hook = |j: usize, f: Features| -> Features {
        let Some((_, b)) = earlier.iter().find(|(s, _)| *s == j) else {
            return f;
        };
        let shape = f.example_shape();
        let flat = f.flatten();
        let values = to_vec(flat.clone());
        let n = values.len() / b.dim().max(1);
        match crate::obfuscate::obfuscate_batch(b, &values, n, ObfuscationMode::DistortionFree) {
            Ok(o) => Features::from_flat(
                Tensor::<2>::from_data(TensorData::new(o.z_prime, [n, b.dim()]), device),
                &shape,
            ),
            Err(e) => {
                failed.get_or_insert(e);
                Features::from_flat(flat, &shape)
            }
        }
    };
    let (z, _) = Evaluator::new(model, device, 256).features_hooked(owner, k, &mut hook);
    match failed {
        Some(e) => Err(crate::Error::internal("obfuscation", e)),
        None => Ok(z),
    }
}

/// The settings of Figure 3, as `obfuscation.json` names them.
const SETTINGS: [&str; 4] = ["none", "distortion_free", "bounded", "theorem1"];

/// One (split, setting) row of Figure 3 / Figure 4.
#[allow(clippy::too_many_arguments)]
fn row(
    model: &SplitModel,
    (aux, test): (&Dataset, &Dataset),
    k: usize,
    basis: &crate::obfuscate::SignalBasis,
    mode: ObfuscationMode,
    attack: &AttributeConfig,
    seed: u64,
    device: &Device,
) -> Result<serde_json::Value, crate::Error> {
    let inner = device.clone().inner();
    let eval = Evaluator::new(model, &inner, 256);
    let (za, shape) = eval.features(aux, k);
    let (zt, _) = eval.features(test, k);
    let (za, _) = apply(basis, &za, mode)?;
    let (zt, bytes) = apply(basis, &zt, mode)?;
    let (acc, attacks) = score_sent(
        model,
        model,
        (aux, test),
        k,
        (&za, &zt),
        &shape,
        attack,
        seed,
        device,
    )?;
    Ok(json!({
        "split": k,
        "target_accuracy": acc,
        "bytes_per_query": bytes,
        "raw_bytes_per_query": 4 * basis.dim(),
        "kept": match mode { ObfuscationMode::KeepComponents { m } => m.min(basis.rank()), ObfuscationMode::None => basis.dim(), _ => basis.rank() },
        "attacks": attacks,
    }))
}

/// What the edge sends of `aux` and `test` at split `k` (`za`, `zt`),
/// scored: the accuracy of `server` (the model's server part, or a
/// fine-tuned one) on `zt`, and every attribute attack, each attacker with
/// the server part's architecture.
#[allow(clippy::too_many_arguments)]
fn score_sent(
    model: &SplitModel,
    server: &SplitModel,
    (aux, test): (&Dataset, &Dataset),
    k: usize,
    (za, zt): (&[f32], &[f32]),
    shape: &[usize],
    attack: &AttributeConfig,
    seed: u64,
    device: &Device,
) -> Result<(f64, Vec<serde_json::Value>), crate::Error> {
    let inner = device.clone().inner();
    let acc = server_accuracy(
        server,
        zt,
        shape,
        k,
        &test.targets,
        test.num_classes,
        &inner,
    );
    let server = model.block_specs()[k..].to_vec();
    let mut attacks = Vec::new();
    for attr in &test.hidden {
        let Some(a) = aux.hidden.iter().find(|a| a.name == attr.name) else {
            continue;
        };
        let out = attribute_attack(
            za,
            &a.values,
            zt,
            &attr.values,
            shape,
            attr.num_classes,
            &server,
            attack,
            seed ^ k as u64,
            device,
        )?;
        attacks
            .push(json!({"attribute": attr.name, "accuracy": out.accuracy, "chance": out.chance}));
    }
    Ok((acc, attacks))
}

/// The model's features of the owner's, the attacker's and the victims'
/// images at one split, with one example's shape.
struct SplitFeatures {
    owner: Vec<f32>,
    aux: Vec<f32>,
    test: Vec<f32>,
    shape: Vec<usize>,
}

impl SplitFeatures {
    fn new(
        model: &SplitModel,
        (owner, aux, test): (&Dataset, &Dataset, &Dataset),
        k: usize,
        device: &Device,
    ) -> Self {
        let inner = device.clone().inner();
        let eval = Evaluator::new(model, &inner, 256);
        let (owner, shape) = eval.features(owner, k);
        Self {
            owner,
            aux: eval.features(aux, k).0,
            test: eval.features(test, k).0,
            shape,
        }
    }
}

/// Seed 004's Figure 5 baseline at split `k`: the `m` units of each
/// example the next layer weighs most kept (values before a linear block,
/// as at the paper's FC1 split; channels before a convolution), the rest zeroed, the server
/// fine-tuned on the owner's pruned features
/// ([`crate::defense::feature_pruning`], its default schedule); target
/// accuracy on `test` with the fine-tuned server, and the attribute attacks
/// on the pruned features. `f` are the unpruned features at `k`.
#[allow(clippy::too_many_arguments)]
fn pruning_row(
    model: &SplitModel,
    (owner, aux, test): (&Dataset, &Dataset, &Dataset),
    f: &SplitFeatures,
    k: usize,
    m: usize,
    attack: &AttributeConfig,
    seed: u64,
    device: &Device,
) -> Result<serde_json::Value, crate::Error> {
    use crate::defense::feature_pruning::{FeaturePruningConfig, Kept, prune_and_fine_tune};
    let inner = device.clone().inner();
    let shape = &f.shape;
    let schedule = FeaturePruningConfig::with_default_schedule(1.0);
    let data = crate::defense::OwnerFeatures::of(&f.owner, shape, owner);
    let pruned = prune_and_fine_tune(model, k, Kept::Units(m), &schedule, &data, seed, &inner)?;
    let (mut za, mut zt) = (f.aux.clone(), f.test.clone());
    pruned.features.apply(&mut za);
    pruned.features.apply(&mut zt);
    let (acc, attacks) = score_sent(
        model,
        &pruned.model,
        (aux, test),
        k,
        (&za, &zt),
        shape,
        attack,
        seed,
        device,
    )?;
    Ok(json!({
        "m": m,
        "kept_values": pruned.features.kept(),
        "target_accuracy": acc,
        "target_error": 1.0 - acc,
        "attack_error": 1.0 - attacks.first().and_then(|a| a["accuracy"].as_f64()).unwrap_or(f64::NAN),
        "attacks": attacks,
        "fine_tune_loss": pruned.history,
    }))
}

fn first_attack(r: &serde_json::Value) -> f64 {
    r["attacks"][0]["accuracy"].as_f64().unwrap_or(f64::NAN)
}

/// Runs the study and writes its files into `out`; returns the JSON summary.
/// `owner` is the model owner's data (signal content, calibration), `aux`
/// the attacker's (attribute attackers), `test` the victims' queries.
#[allow(clippy::too_many_arguments)]
pub fn run_study(
    model: &SplitModel,
    (owner, aux): (&Dataset, &Dataset),
    test: &Dataset,
    cfg: &StudyConfig,
    cache: &mut BasisCache,
    attack: &AttributeConfig,
    seed: u64,
    out: &Path,
    device: &Device,
) -> Result<serde_json::Value, crate::Error> {
    let inner = device.clone().inner();
    let splits: Vec<usize> = cfg
        .splits
        .clone()
        .unwrap_or_else(|| model.split_points().collect());
    let mut curve = Vec::new();
    let mut fig3 = Vec::new();
    let mut skipped = Vec::new();
    let mut cum = 0.0;
    let mut cum_discarded = 0.0;
    let mut earlier: Vec<(usize, std::sync::Arc<crate::obfuscate::SignalBasis>)> = Vec::new();
    for &k in &splits {
        let basis = match cache.basis(model, k) {
            Ok(b) => b,
            Err(e) => {
                skipped.push(json!({"split": k, "reason": e.to_string()}));
                continue;
            }
        };
        // The owner's features at k, computed once for the signal content
        // and both calibrations.
        let owned = OwnerAccuracy::new(model, owner, k, &basis, &inner);
        let z = &owned.z;
        let n = z.len() / basis.dim();
        let ratios = basis
            .log_signal_ratio_batch(z, n)
            .map_err(|e| crate::Error::internal("obfuscation", e))?;
        let mean = finite_mean(ratios);
        cum += mean;
        // The paper's Figure 2: every earlier split's null content discarded
        // on the way, so each layer's ratio is of what the layers before it kept.
        let zd = discarded_features(model, owner, k, &earlier, &inner)?;
        let discarded = finite_mean(
            basis
                .log_signal_ratio_batch(&zd, n)
                .map_err(|e| crate::Error::internal("obfuscation", e))?,
        );
        cum_discarded += discarded;
        earlier.push((k, basis.clone()));
        curve.push(json!({"split": k, "dim": basis.dim(), "rank": basis.rank(), "mean_log_ratio": mean, "cumulative": cum, "mean_log_ratio_discarded": discarded, "cumulative_discarded": cum_discarded}));
        let m = owned.keep_within(cfg.accuracy_drop_points)?;
        let eps = owned.eps_within(cfg.accuracy_drop_points)?;
        let mut entry = json!({"split": k, "eps": eps});
        for (name, mode) in [
            ("none", ObfuscationMode::None),
            ("distortion_free", ObfuscationMode::DistortionFree),
            ("bounded", ObfuscationMode::KeepComponents { m }),
            ("theorem1", ObfuscationMode::DistortionBounded { eps }),
        ] {
            entry[name] = row(model, (aux, test), k, &basis, mode, attack, seed, device)?;
        }
        fig3.push(entry);
    }
    let tk = cfg
        .tradeoff_split
        .or_else(|| (1..model.len()).find(|&k| matches!(model.blocks[k], Block::Linear(_))));
    let mut fig4 = Vec::new();
    if let Some(k) = tk.filter(|_| !cfg.keep.is_empty()) {
        let basis = cache.basis(model, k)?;
        // The pruning baseline prunes the same features at every m'.
        let unpruned = (cfg.pruning_baseline
            && matches!(model.blocks.get(k), Some(Block::Conv(_) | Block::Linear(_))))
        .then(|| SplitFeatures::new(model, (owner, aux, test), k, device));
        for &m in &cfg.keep {
            let r = row(
                model,
                (aux, test),
                k,
                &basis,
                ObfuscationMode::KeepComponents { m },
                attack,
                seed,
                device,
            )?;
            // `attack_error` is the first attribute's; every attribute's is
            // in `attack_errors`.
            let errors: serde_json::Map<String, serde_json::Value> = r["attacks"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            let name = x["attribute"].as_str().unwrap_or("?").to_string();
                            (
                                name,
                                json!(1.0 - x["accuracy"].as_f64().unwrap_or(f64::NAN)),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut point = json!({"m": m, "target_error": 1.0 - r["target_accuracy"].as_f64().unwrap_or(f64::NAN), "attack_error": 1.0 - first_attack(&r), "attack_errors": errors, "bytes_per_query": r["bytes_per_query"]});
            if cfg.pruning_baseline {
                point["pruning"] = match &unpruned {
                    Some(f) => {
                        pruning_row(model, (owner, aux, test), f, k, m, attack, seed, device)?
                    }
                    None => json!({"skipped": format!(
                        "feature pruning needs a convolution or linear block after split {k}"
                    )}),
                };
            }
            fig4.push(point);
        }
    }
    let summary = json!({"signal_content": curve, "figure3": fig3, "tradeoff_split": tk, "tradeoff": fig4, "skipped": skipped});
    write_outputs(&summary, out)?;
    Ok(summary)
}

fn pts(
    rows: &[serde_json::Value],
    x: &str,
    y: impl Fn(&serde_json::Value) -> f64,
) -> Vec<(f64, f64)> {
    rows.iter()
        .map(|r| (r[x].as_f64().unwrap_or(f64::NAN), y(r)))
        .collect()
}

fn write_outputs(s: &serde_json::Value, out: &Path) -> Result<(), crate::Error> {
    let empty = Vec::new();
    let arr = |k: &str| s[k].as_array().unwrap_or(&empty).clone();
    let (curve, fig3, fig4) = (arr("signal_content"), arr("figure3"), arr("tradeoff"));
    let mut md = String::from(
        "# Obfuscation study (seed 004)\n\n## Signal content per split (Figure 2)\n\n| split | dim | rank | mean log(‖z_S‖²/‖z‖²) | cumulative |\n|---|---|---|---|---|\n",
    );
    for r in &curve {
        md += &format!(
            "| {} | {} | {} | {:.4} | {:.4} |\n",
            r["split"],
            r["dim"],
            r["rank"],
            r["mean_log_ratio"].as_f64().unwrap_or(0.0),
            r["cumulative"].as_f64().unwrap_or(0.0)
        );
    }
    md += "\n## Attribute attack per split (Figure 3)\n\n| split | setting | kept | bytes/query | target acc | attribute | attack acc | chance |\n|---|---|---|---|---|---|---|---|\n";
    for e in &fig3 {
        for name in SETTINGS {
            let r = &e[name];
            for a in r["attacks"].as_array().unwrap_or(&empty) {
                md += &format!(
                    "| {} | {name} | {} | {:.0} | {:.4} | {} | {:.4} | {:.4} |\n",
                    e["split"],
                    r["kept"],
                    r["bytes_per_query"].as_f64().unwrap_or(0.0),
                    r["target_accuracy"].as_f64().unwrap_or(0.0),
                    a["attribute"].as_str().unwrap_or("?"),
                    a["accuracy"].as_f64().unwrap_or(f64::NAN),
                    a["chance"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
    }
    let names: Vec<String> = fig4
        .first()
        .and_then(|r| r["attack_errors"].as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    md += &format!(
        "\n## Trade-off at split {} (Figure 4)\n\n| m' | bytes/query | target error |{}\n|---|---|---|{}\n",
        s["tradeoff_split"],
        names
            .iter()
            .map(|n| format!(" attack error ({n}) |"))
            .collect::<String>(),
        "---|".repeat(names.len())
    );
    for r in &fig4 {
        md += &format!(
            "| {} | {} | {:.4} |{}\n",
            r["m"],
            r["bytes_per_query"],
            r["target_error"].as_f64().unwrap_or(0.0),
            names
                .iter()
                .map(|n| format!(
                    " {:.4} |",
                    r["attack_errors"][n].as_f64().unwrap_or(f64::NAN)
                ))
                .collect::<String>()
        );
    }
    for r in s["skipped"].as_array().unwrap_or(&empty) {
        md += &format!(
            "\nSkipped split {}: {}\n",
            r["split"],
            r["reason"].as_str().unwrap_or("")
        );
    }
    let io = |p: &Path, e: &dyn std::fmt::Display| crate::Error::io(p, e);
    let p = out.join("obfuscation.md");
    crate::fsutil::write_atomic(&p, md.as_bytes()).map_err(|e| io(&p, &e))?;
    let p = out.join("obfuscation.json");
    let text = serde_json::to_string_pretty(s).expect("json");
    crate::fsutil::write_atomic(&p, text.as_bytes()).map_err(|e| io(&p, &e))?;
    let mut fig3_series = Vec::new();
    let attributes: Vec<String> = fig3
        .first()
        .and_then(|e| e["none"]["attacks"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x["attribute"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for (i, attr) in attributes.iter().enumerate() {
        for name in SETTINGS {
            fig3_series.push(Series {
                name: if attributes.len() > 1 {
                    format!("{attr}: {name}")
                } else {
                    name.into()
                },
                points: fig3
                    .iter()
                    .map(|e| {
                        let acc = e[name]["attacks"][i]["accuracy"].as_f64();
                        (e["split"].as_f64().unwrap_or(0.0), acc.unwrap_or(f64::NAN))
                    })
                    .collect(),
            });
        }
    }
    let plots = [
        (
            "signal_content.svg",
            "Signal content per split (seed 004 Fig. 2)",
            "split",
            "log ratio",
            vec![
                Series {
                    name: "mean log ratio".into(),
                    points: pts(&curve, "split", |r| {
                        r["mean_log_ratio"].as_f64().unwrap_or(0.0)
                    }),
                },
                Series {
                    name: "cumulative".into(),
                    points: pts(&curve, "split", |r| r["cumulative"].as_f64().unwrap_or(0.0)),
                },
            ],
        ),
        (
            "attribute_attack.svg",
            "Attribute attack accuracy (seed 004 Fig. 3)",
            "split",
            "attack accuracy",
            fig3_series,
        ),
        (
            "tradeoff.svg",
            "Target vs attack error (seed 004 Fig. 4)",
            "m'",
            "error",
            vec![
                Series {
                    name: "target error".into(),
                    points: pts(&fig4, "m", |r| r["target_error"].as_f64().unwrap_or(0.0)),
                },
                Series {
                    name: "attack error".into(),
                    points: pts(&fig4, "m", |r| r["attack_error"].as_f64().unwrap_or(0.0)),
                },
            ],
        ),
    ];
    for (file, title, x, y, series) in plots {
        let svg = line_plot(&LinePlot {
            title: title.into(),
            x_label: x.into(),
            y_label: y.into(),
            series,
            markers: vec![],
        });
        let p = out.join(file);
        save_svg(&p, &svg).map_err(|e| io(&p, &e))?;
    }
    Ok(())
}

/// Writes `obfuscation_deployment.json` and runs the study when configured:
/// the defender's steps on `owner` (the model owner's data), the attribute
/// attackers on `aux` (the attacker's). `device` must support autodiff (the
/// attribute attackers are trained).
#[allow(clippy::too_many_arguments)]
pub fn finish(
    cfg: &crate::obfuscate::stage::ObfuscationConfig,
    mut dep: Deployment,
    model: &SplitModel,
    (owner, aux): (&Dataset, &Dataset),
    test: &Dataset,
    audit: &super::AuditConfig,
    seed: u64,
    out: &Path,
    device: &Device,
) -> Result<(), crate::Error> {
    let summary = json!({
        "split": dep.split,
        "mode": format!("{:?}", dep.mode),
        "target_accuracy_plain": dep.plain_accuracy,
        "target_accuracy": dep.target_accuracy,
        "bytes_per_query_before": dep.raw_bytes_per_query,
        "bytes_per_query_after": dep.bytes_per_query,
        "calibrated_on": dep.calibrated_on,
    });
    let p = out.join("obfuscation_deployment.json");
    let text = serde_json::to_string_pretty(&summary).expect("json");
    crate::fsutil::write_atomic(&p, text.as_bytes()).map_err(|e| crate::Error::io(&p, e))?;
    if let Some(study) = &cfg.study {
        let attack = audit
            .attacks
            .iter()
            .find_map(|a| match a {
                super::AttackKind::Attribute(c) => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_default();
        run_study(
            model,
            (owner, aux),
            test,
            study,
            &mut dep.cache,
            &attack,
            seed,
            out,
            device,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Attribute;
    use crate::model::{ActivationKind, BlockSpec, LinearSpec};
    use crate::obfuscate::deploy::deploy;
    use crate::obfuscate::stage::{ModeSetting, ObfuscationConfig};

    fn data(name: &str, n: usize, seed: u64) -> Dataset {
        let images = crate::obfuscate::test_util::random_vec(seed, 2 * n)
            .iter()
            .map(|v| 0.5 + 0.5 * v)
            .collect::<Vec<_>>();
        let targets = images.chunks(2).map(|p| u32::from(p[0] > p[1])).collect();
        Dataset {
            name: name.into(),
            images,
            shape: [1, 1, 2],
            targets,
            num_classes: 2,
            hidden: vec![Attribute {
                name: "group".into(),
                values: vec![0; n],
                num_classes: 2,
            }],
        }
    }

    /// A 2-input, 4-hidden, 2-class MLP.
    fn tiny_model(device: &Device) -> SplitModel {
        let fc = |out, activation| {
            BlockSpec::Linear(LinearSpec {
                out_features: out,
                activation,
                batch_norm: false,
            })
        };
        let blocks = [fc(4, ActivationKind::Relu), fc(2, ActivationKind::None)];
        SplitModel::from_blocks("tiny", &[1, 1, 2], &blocks, device).unwrap()
    }

    /// The defender calibrates `m'` on the owner's data it is given, and
    /// says so in the deployment (the run passes `train`, never `aux`).
    #[test]
    fn calibration_uses_and_records_the_owners_data() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let (owner, test) = (data("toy/train", 40, 1), data("toy/test", 20, 2));
        let mut cfg = ObfuscationConfig {
            mode: ModeSetting::MaxAccuracyDrop { points: 100.0 },
            max_elements: None,
            study: None,
        };
        let dep = deploy(&cfg, &model, &owner, &test, 1, &device).unwrap();
        assert_eq!(dep.calibrated_on.as_deref(), Some("toy/train (40 images)"));
        // A 100-point budget allows sending nothing.
        assert_eq!(dep.mode, ObfuscationMode::KeepComponents { m: 0 });
        cfg.mode = ModeSetting::Keep { m: 1 };
        let dep = deploy(&cfg, &model, &owner, &test, 1, &device).unwrap();
        assert_eq!(dep.calibrated_on, None, "nothing calibrated");
    }

    /// Figure 2 as the paper computes it: split 2's features are what block
    /// 2 makes of split 1's signal content, not of split 1's features.
    #[test]
    fn null_content_is_discarded_on_the_way() {
        use crate::model::Features;
        let device = Device::flex();
        let fc = |out, activation| {
            BlockSpec::Linear(LinearSpec {
                out_features: out,
                activation,
                batch_norm: false,
            })
        };
        // 2 -> 6 -> 3 -> 2: block 2's weight [3, 6] has a null space of
        // dimension >= 3, so discarding it at split 1 changes nothing the
        // server computes, but does change z_1.
        let blocks = [
            fc(6, ActivationKind::None),
            fc(3, ActivationKind::Relu),
            fc(2, ActivationKind::None),
        ];
        let model = SplitModel::from_blocks("mlp", &[1, 1, 2], &blocks, &device).unwrap();
        let owner = data("toy/train", 10, 4);
        let mut cache = BasisCache::default();
        let b1 = cache.basis(&model, 1).unwrap();
        let eval = Evaluator::new(&model, &device, 256);
        // Nothing discarded before split 1: the plain features.
        let plain1 = eval.features(&owner, 1).0;
        assert_eq!(
            discarded_features(&model, &owner, 1, &[], &device).unwrap(),
            plain1
        );
        // At split 2: block 2 on z_1's signal content.
        let z1s =
            crate::obfuscate::obfuscate_batch(&b1, &plain1, 10, ObfuscationMode::DistortionFree)
                .unwrap()
                .z_prime;
        assert_ne!(z1s, plain1, "the null space is not empty");
        let t = Tensor::<2>::from_data(TensorData::new(z1s, [10, 6]), &device);
        let by_hand = to_vec_f(model.valid().run(Features::from_flat(t, &[6]), 1, 2));
        let got = discarded_features(&model, &owner, 2, &[(1, b1)], &device).unwrap();
        assert_eq!(got.len(), by_hand.len());
        for (a, b) in got.iter().zip(&by_hand) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // And block 2 sees no difference: its output equals the plain one.
        let plain2 = eval.features(&owner, 2).0;
        for (a, b) in got.iter().zip(&plain2) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    fn to_vec_f(f: crate::model::Features) -> Vec<f32> {
        crate::train::to_vec(f.flatten())
    }

    /// Theorem 1's budget: the largest `eps` within the accuracy drop.
    #[test]
    fn the_distortion_budget_is_the_largest_within_the_accuracy_drop() {
        use crate::obfuscate::stage::{calibrate_eps, obfuscated_accuracy};
        let device = Device::flex();
        let model = tiny_model(&device);
        let owner = data("toy/train", 60, 3);
        let mut cache = BasisCache::default();
        let basis = cache.basis(&model, 1).unwrap();
        let acc = |eps: f32| {
            obfuscated_accuracy(
                &model,
                &owner,
                1,
                &basis,
                ObfuscationMode::DistortionBounded { eps },
                &device,
            )
            .unwrap()
            .0
        };
        // A 100-point budget allows removing everything: eps reaches the
        // largest ||W z||, where every query's z' is 0 in the signal space.
        let top = calibrate_eps(&model, &owner, 1, &basis, 100.0, &device).unwrap();
        let (z, _) = Evaluator::new(&model, &device, 256).features(&owner, 1);
        let n = z.len() / basis.dim();
        let all = crate::obfuscate::obfuscate_batch(
            &basis,
            &z,
            n,
            ObfuscationMode::DistortionBounded { eps: f32::MAX },
        )
        .unwrap();
        let largest = all.distortion.iter().copied().fold(0.0f64, f64::max) as f32;
        assert_eq!(top, largest);
        // No drop allowed: the budget found keeps the plain accuracy, and
        // is below the largest budget unless that one keeps it too.
        let plain = acc(0.0);
        let eps = calibrate_eps(&model, &owner, 1, &basis, 0.0, &device).unwrap();
        assert!(acc(eps) >= plain, "{eps}: {} < {plain}", acc(eps));
        assert!(eps <= largest);
    }
}
