//! Reports and the files they are made of: `report.json` (every number),
//! `report.md` (tables and pictures), `report.html` (the same, one
//! self-contained page), SVG plots, PNG grids, NPY exports.

pub use crate::formats::{grid, npy, plot};
pub mod html;
pub(crate) mod markdown;
pub mod repeats;
mod summary;

use std::path::Path;

pub use crate::train::EpochSummary;
pub use markdown::render as render_markdown;
pub use repeats::{RepeatStat, RepeatedAttack, RepeatsReport};
pub use summary::{DataSummary, Report};

use crate::Error;
use crate::fsutil::write_atomic;

/// Writes `report.json`, `report.md`, `report.html` and the plots into `dir`.
pub fn write_all(report: &Report, dir: &Path) -> Result<(), Error> {
    let plots = write_plots(report, dir)?;
    write_report_files(
        dir,
        report,
        &format!("splitguard report: {}", report.name),
        |refs| render_markdown(report, refs),
        &plots,
    )
}

/// Writes a report's `report.json`, `report.md` (rendered by `markdown`
/// with the plots' `(title, file)` pairs) and `report.html` (titled
/// `title`) into `dir`: one routine for a run's report and the aggregate of
/// its repeats.
pub(crate) fn write_report_files<R: serde::Serialize>(
    dir: &Path,
    report: &R,
    title: &str,
    markdown: impl FnOnce(&[(&str, String)]) -> String,
    plots: &[(String, String)],
) -> Result<(), Error> {
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    let path = dir.join(crate::run_folder::REPORT_JSON);
    write_atomic(&path, json.as_bytes()).map_err(|e| Error::io(&path, e))?;
    let refs: Vec<(&str, String)> = plots.iter().map(|(t, f)| (t.as_str(), f.clone())).collect();
    let md = markdown(&refs);
    let path = dir.join(crate::run_folder::REPORT_MD);
    write_atomic(&path, md.as_bytes()).map_err(|e| Error::io(&path, e))?;
    let page = html::render(title, &md, dir);
    let path = dir.join(crate::run_folder::REPORT_HTML);
    write_atomic(&path, page.as_bytes()).map_err(|e| Error::io(&path, e))?;
    Ok(())
}

/// Training curve and leakage-per-split plots; returns (title, file) pairs.
fn write_plots(report: &Report, dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    let save = |name: &str, svg: String| -> Result<(), Error> {
        let path = dir.join(name);
        plot::save_svg(&path, &svg).map_err(|e| Error::io(&path, e))
    };
    if !report.training.is_empty() {
        let curve = plot::LinePlot {
            title: "Training".into(),
            x_label: "epoch".into(),
            y_label: "value".into(),
            series: vec![
                plot::Series {
                    name: "task loss".into(),
                    points: report
                        .training
                        .iter()
                        .map(|e| (e.epoch as f64, e.task_loss))
                        .collect(),
                },
                plot::Series {
                    name: "train accuracy".into(),
                    points: report
                        .training
                        .iter()
                        .map(|e| (e.epoch as f64, e.train_accuracy))
                        .collect(),
                },
            ],
            markers: vec![],
        };
        save("training.svg", plot::line_plot(&curve))?;
        out.push(("Training curve".to_string(), "training.svg".to_string()));
    }
    if let Some(p) = &report.partition {
        save("partition.svg", partition_plot(p))?;
        out.push(("Partition curve".to_string(), "partition.svg".to_string()));
    }
    let mut names: Vec<&str> = report
        .attacks
        .iter()
        .filter(|a| a.ssim.is_some())
        .map(|a| a.attack.as_str())
        .collect();
    names.dedup();
    if !names.is_empty() {
        let series =
            |metric: fn(&crate::attack::AttackRecord) -> Option<f64>| -> Vec<plot::Series> {
                names
                    .iter()
                    .map(|n| plot::Series {
                        name: n.to_string(),
                        points: report
                            .attacks
                            .iter()
                            .filter(|a| a.attack == *n)
                            .filter_map(|a| metric(a).map(|v| (a.split as f64, v)))
                            .collect(),
                    })
                    .collect()
            };
        let marker = vec![plot::VMarker {
            x: report.split as f64,
            label: format!("deployed split {}", report.split),
        }];
        for (file, title, y, metric) in [
            (
                "leakage_ssim.svg",
                "Reconstruction SSIM per split",
                "SSIM",
                (|a: &crate::attack::AttackRecord| a.ssim) as fn(&_) -> _,
            ),
            (
                "leakage_psnr.svg",
                "Reconstruction PSNR per split",
                "PSNR (dB)",
                |a: &crate::attack::AttackRecord| a.psnr,
            ),
        ] {
            let p = plot::LinePlot {
                title: title.into(),
                x_label: "split (blocks on the edge)".into(),
                y_label: y.into(),
                series: series(metric),
                markers: marker.clone(),
            };
            save(file, plot::line_plot(&p))?;
            out.push((title.to_string(), file.to_string()));
        }
    }
    Ok(out)
}

/// The partition curve (normalised R_c^2 per split) with the transition
/// and the chosen split marked, as SVG.
pub fn partition_plot(p: &crate::partition::PartitionReport) -> String {
    let mut markers = Vec::new();
    if let Some(t) = p.transition {
        markers.push(plot::VMarker {
            x: t as f64,
            label: format!("transition {t}"),
        });
    }
    if let Some(c) = p.chosen {
        markers.push(plot::VMarker {
            x: c as f64,
            label: format!("chosen {c}"),
        });
    }
    plot::line_plot(&plot::LinePlot {
        title: "Partition curve: normalised intra-class variance".into(),
        x_label: "split (blocks on the edge)".into(),
        y_label: "R_c^2 / total variance".into(),
        series: vec![plot::Series {
            name: "R_c^2 / total".into(),
            points: p
                .rows
                .iter()
                .map(|r| (r.split as f64, r.normalized_rc2))
                .collect(),
        }],
        markers,
    })
}
