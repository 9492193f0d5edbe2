//! The files of a leakage run: `report.json` (every number), `report.md`
//! (tables and pictures), the picture grid and the I2F scatter plot.

use std::fmt::Write as _;
use std::path::Path;

use super::experiment::{Agreement, LeakageReport, files};
use crate::Error;
use crate::fsutil::write_atomic;
use crate::pipeline::files::{REPORT_JSON, REPORT_MD};
use crate::report::grid::save_image_grid;
use crate::report::markdown::{opt, table_head};
use crate::report::plot::{LabelledPoint, ScatterPlot, save_svg, scatter_plot};

/// Scale of each pixel in the grid PNG.
const GRID_SCALE: u32 = 3;

/// Writes the grid (`rows[0]` the originals, then one row per defense),
/// the scatter plot, `report.json` and `report.md` into `out`.
pub fn write(
    report: &LeakageReport,
    rows: &[&[f32]],
    shape: [usize; 3],
    out: &Path,
) -> Result<(), Error> {
    let n = report.lambda_max.len();
    save_image_grid(&out.join(files::GRID), rows, n, shape, GRID_SCALE)?;

    let points = report
        .results
        .iter()
        .map(|r| LabelledPoint {
            x: r.i2f.i2f.log10(),
            y: r.error_norm.log10(),
            label: r.defense.replace("noise ", "").replace("prune ", "p"),
            ..Default::default()
        })
        .collect();
    let svg = scatter_plot(&ScatterPlot {
        title: format!(
            "I2F vs. attack error (Spearman {})",
            opt(report.i2f_vs_error.spearman, 3)
        ),
        x_label: "log10 I2F (predicted ||x_hat - x||)".into(),
        y_label: "log10 ||x_hat - x|| (attack)".into(),
        points,
    });
    let path = out.join(files::SCATTER);
    save_svg(&path, &svg).map_err(|e| Error::io(&path, e))?;

    let json = serde_json::to_string_pretty(report).expect("report serializes");
    let path = out.join(REPORT_JSON);
    write_atomic(&path, json.as_bytes()).map_err(|e| Error::io(&path, e))?;
    let path = out.join(REPORT_MD);
    write_atomic(&path, markdown(report).as_bytes()).map_err(|e| Error::io(&path, e))?;
    Ok(())
}

fn agreement_row(s: &mut String, what: &str, a: &Agreement) {
    let _ = writeln!(
        s,
        "| {what} | {} | {} | {} |",
        opt(a.spearman, 3),
        opt(a.pearson, 3),
        a.pairs
    );
}

/// The Markdown report.
pub fn markdown(r: &LeakageReport) -> String {
    let mut s = String::new();
    let c = &r.config;
    let _ = writeln!(s, "# splitguard gradient leakage: {}\n", r.name);
    let _ = writeln!(
        s,
        "Seed {}, splitguard {}. Model `{}` ({} parameters, input {} values), initialisation {}, {} warm-up epochs; test accuracy {:.2}%.\n",
        r.seed,
        r.version,
        r.arch,
        r.params,
        r.input_len,
        c.init_scale
            .map(|a| format!("U(-{a}, {a})"))
            .unwrap_or_else(|| "burn default".into()),
        c.warmup_epochs,
        100.0 * r.target_accuracy
    );
    let _ = writeln!(
        s,
        "Attack: {:?} gradient matching, label {:?}, {} {:?} iterations (step {}), TV weight {}. I2F: damping {} x lambda_max, at most {} CG iterations (tolerance {}), Lanczos {} steps; finite-difference steps {} / {} (relative).\n",
        c.attack.distance,
        c.attack.label,
        c.attack.iterations,
        c.attack.optimizer,
        c.attack.lr,
        c.attack.tv_weight,
        c.i2f.damping,
        c.i2f.cg_iterations,
        c.i2f.cg_tolerance,
        c.i2f.lanczos_steps,
        c.attack.fd_step,
        c.i2f.fd_step
    );
    let _ = writeln!(s, "## Does I2F rank the attack's error?\n");
    table_head(
        &mut s,
        &[
            "predictor vs. `||x_hat - x||`",
            "Spearman",
            "Pearson",
            "pairs",
        ],
    );
    agreement_row(&mut s, "I2F, all pairs", &r.i2f_vs_error);
    agreement_row(&mut s, "I2F, perturbed pairs", &r.i2f_vs_error_perturbed);
    agreement_row(&mut s, "lower bound, all pairs", &r.bound_vs_error);
    let _ = writeln!(s, "\n![I2F vs. error]({})\n", files::SCATTER);
    let _ = writeln!(s, "## Per defense (means over the examples)\n");
    table_head(
        &mut s,
        &[
            "defense",
            "MSE",
            "PSNR (dB)",
            "SSIM",
            "`||x_hat - x||`",
            "I2F",
            "lower bound",
            "label right",
            "Spearman within",
        ],
    );
    for t in &r.settings {
        let _ = writeln!(
            s,
            "| {} | {:.5} | {:.2} | {:.3} | {:.4} | {:.4} | {:.2e} | {:.0}% | {} |",
            t.defense,
            t.mse,
            t.psnr,
            t.ssim,
            t.error_norm,
            t.i2f,
            t.lower_bound,
            100.0 * t.label_accuracy,
            opt(t.within.spearman, 3)
        );
    }
    let _ = writeln!(
        s,
        "\n![originals (top), then one row of reconstructions per defense, in table order]({})\n",
        files::GRID
    );
    let _ = writeln!(s, "## Per example\n");
    table_head(
        &mut s,
        &[
            "example",
            "label (attacker)",
            "defense",
            "MSE",
            "SSIM",
            "`||x_hat - x||`",
            "I2F",
            "bound",
            "CG its",
        ],
    );
    for e in &r.results {
        let _ = writeln!(
            s,
            "| {} (test {}) | {} ({}) | {} | {:.5} | {:.3} | {:.4} | {:.4} | {:.2e} | {} |",
            e.example,
            e.test_index,
            e.label,
            e.attack_label,
            e.defense,
            e.mse,
            e.ssim,
            e.error_norm,
            e.i2f.i2f,
            e.i2f.lower_bound,
            e.i2f.cg_iterations
        );
    }
    let _ = writeln!(s, "\n`lambda_max(J J^T)` per example:");
    for (i, l) in r.lambda_max.iter().enumerate() {
        let _ = writeln!(s, "- {i}: {:.4e} ({} Lanczos steps)", l.value, l.steps);
    }
    s
}
