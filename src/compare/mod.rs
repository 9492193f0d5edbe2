//! Comparing finished runs side by side (DESIGN section 10, issue 8):
//! `splitguard compare RUN_DIR...` and the end of every sweep.
//!
//! A comparison reads only what runs leave in their folders (`report.json`'s
//! stable keys, `recipe.resolved.yaml` for the defenses), so it works on
//! folders copied back from other machines, e.g. the shards of a sweep run
//! as a cluster job array. It writes:
//!
//! | file | what |
//! |---|---|
//! | `comparison.md` | one row per run, the long table of every attack, the plots |
//! | `comparison.html` | the same, one self-contained page (plots inlined) |
//! | `comparison.csv` | the per-run table, numbers in full |
//! | `comparison_attacks.csv` | every attack of every run at every split |
//! | `tradeoff_error.svg` | target error vs. attack error, one labelled point per run (seed 004, Figures 5-6) |
//! | `tradeoff_psnr.svg` | target accuracy vs. reconstruction PSNR, one labelled point per run |
//!
//! A run with `repeats: N > 1` is read from its aggregate `report.json`
//! (means, and each number's 95% t interval over the repeats): the tables
//! show `mean ± half-width`, the CSV files the interval's ends, and the
//! plots draw the intervals as error bars; with two or more such runs, a
//! section gives each one's difference from the first with its Welch t
//! interval (did the setting change the number beyond seed noise?).

mod difference;
mod gather;
pub mod sweep;
pub(crate) mod table;
mod variants;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use difference::{DifferenceRow, differences, markdown_differences};
pub use gather::{
    Gathered, Repeated, RunSummary, SWEEP_MANIFEST, describe_defenses, gather, load_run,
};
pub use table::{
    AttackKey, attack_error, attack_error_interval, attack_keys, best_psnr, best_psnr_interval,
    csv_attacks, csv_runs, markdown_attacks, markdown_runs, target_accuracy_interval,
};
pub use variants::{VariantRow, markdown_variants, variant_rows};

use crate::fsutil::write_atomic;
use crate::report::plot;

/// File names a comparison writes.
pub mod files {
    /// Tables and plots, Markdown.
    pub const MARKDOWN: &str = "comparison.md";
    /// The same as one self-contained HTML page.
    pub const HTML: &str = "comparison.html";
    /// One row per run.
    pub const CSV: &str = "comparison.csv";
    /// Every attack of every run.
    pub const ATTACKS_CSV: &str = "comparison_attacks.csv";
    /// Target error vs. attack error.
    pub const TRADEOFF_ERROR: &str = "tradeoff_error.svg";
    /// Target accuracy vs. reconstruction PSNR.
    pub const TRADEOFF_PSNR: &str = "tradeoff_psnr.svg";
}

/// A comparison that cannot be made. Folder problems are the user's input
/// (exit code 2); a file that cannot be written is not.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A folder that is not a finished run (nor a folder of runs).
    #[error("{dir}: {reason}")]
    NotARun {
        /// The folder.
        dir: String,
        /// What is missing.
        reason: String,
    },
    /// A run file that cannot be read or lacks a stable key.
    #[error("{file}: {reason}")]
    BadFile {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// No finished run in any folder given.
    #[error("{0}: no finished run to compare (no report.json in the folder or its subfolders)")]
    Empty(String),
    /// An output file could not be written.
    #[error("{path}: cannot write: {reason}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl CompareError {
    /// True when the folders given are at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, CompareError::Write { .. })
    }
}

/// The files a comparison wrote.
#[derive(Clone, Debug)]
pub struct Written {
    /// Runs compared (in table order).
    pub runs: Vec<RunSummary>,
    /// Unfinished run folders left out (inside sweep or group folders).
    pub unfinished: Vec<PathBuf>,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

/// Compares the runs in `dirs` (run folders, or folders of runs such as a
/// sweep's) and writes the tables and plots into `out` (created if needed).
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<Written, CompareError> {
    let gathered = gather(dirs)?;
    let files = write(&gathered, out)?;
    Ok(Written {
        runs: gathered.runs,
        unfinished: gathered.unfinished,
        files,
    })
}

/// Writes the comparison of gathered runs into `out`; returns the files.
pub fn write(g: &Gathered, out: &Path) -> Result<Vec<PathBuf>, CompareError> {
    std::fs::create_dir_all(out).map_err(|e| CompareError::Write {
        path: out.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut written = Vec::new();
    let mut save = |name: &str, text: &str| -> Result<(), CompareError> {
        let path = out.join(name);
        write_atomic(&path, text.as_bytes()).map_err(|e| CompareError::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        written.push(path);
        Ok(())
    };
    let runs = &g.runs;
    // Seed 004 plots attribute-attack error; without attribute attacks the
    // reconstruction MSE is the attack's error.
    let attribute = runs.iter().any(|r| attack_error(r, true).is_some());
    let metric = match attribute {
        true => "attack error (1 - attribute accuracy, strongest attack)",
        false => "attack error (reconstruction MSE, strongest attack)",
    };
    let error_plot = plot::scatter_plot(&plot::ScatterPlot {
        title: "Privacy-utility: target error vs. attack error".into(),
        x_label: metric.into(),
        y_label: "target error (1 - accuracy)".into(),
        points: runs
            .iter()
            .filter_map(|r| {
                attack_error(r, attribute).map(|x| plot::LabelledPoint {
                    x,
                    y: 1.0 - r.target_accuracy,
                    label: plot_label(&r.label),
                    x_err: attack_error_interval(r, attribute),
                    y_err: target_accuracy_interval(r).map(|(lo, hi)| (1.0 - hi, 1.0 - lo)),
                })
            })
            .collect(),
    });
    let psnr_plot = plot::scatter_plot(&plot::ScatterPlot {
        title: "Privacy-utility: target accuracy vs. reconstruction PSNR".into(),
        x_label: "reconstruction PSNR (dB, strongest attack; lower = more private)".into(),
        y_label: "target accuracy".into(),
        points: runs
            .iter()
            .filter_map(|r| {
                best_psnr(r).map(|x| plot::LabelledPoint {
                    x,
                    y: r.target_accuracy,
                    label: plot_label(&r.label),
                    x_err: best_psnr_interval(r),
                    y_err: target_accuracy_interval(r),
                })
            })
            .collect(),
    });
    save(files::TRADEOFF_ERROR, &error_plot)?;
    save(files::TRADEOFF_PSNR, &psnr_plot)?;
    save(files::CSV, &csv_runs(runs))?;
    save(files::ATTACKS_CSV, &csv_attacks(runs))?;
    let md = markdown(g, metric);
    save(files::MARKDOWN, &md)?;
    let page = crate::report::html::render("splitguard comparison", &md, out);
    save(files::HTML, &page)?;
    Ok(written)
}

/// A run's label shortened for a plot: a sweep point's dotted paths keep
/// their last segment (`003_training.epochs=2,training.defenses.lipschitz.weight=0.1`
/// becomes `003_epochs=2,weight=0.1`); other labels stay as they are.
pub fn plot_label(label: &str) -> String {
    let (index, body) = match label.split_once('_') {
        Some((i, b))
            if !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()) && b.contains('=') =>
        {
            (i, b)
        }
        _ => return label.to_string(),
    };
    let parts: Vec<String> = body
        .split(',')
        .map(|part| match part.split_once('=') {
            Some((key, value)) => {
                let key = key.rsplit('.').next().unwrap_or(key);
                format!("{key}={value}")
            }
            None => part.to_string(),
        })
        .collect();
    format!("{index}_{}", parts.join(","))
}

/// `comparison.md`.
fn markdown(g: &Gathered, metric: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# splitguard comparison\n");
    let _ = writeln!(
        s,
        "{} finished run(s). Attack columns: the attacks at each run's deployed split (what that deployment's server sees); pixels in [0, 1], higher PSNR/SSIM and lower MSE mean more leakage.\n",
        g.runs.len()
    );
    if g.runs.iter().any(|r| r.repeats.is_some()) {
        let _ = writeln!(
            s,
            "A run with `repeats` shows each number as its mean over the repeats ± the half-width of its 95% Student-t interval (mean ± t(0.975, n-1) · sd / √n; the CSV files give the interval's ends); the trade-off plots draw these intervals as error bars. Where two runs' intervals do not overlap, they differ beyond chance (at better than the 5% level); overlapping intervals alone do not show that they are the same.\n"
        );
    }
    s.push_str(&markdown_runs(&g.runs));
    if !g.unfinished.is_empty() {
        let _ = writeln!(s, "\nNot finished (left out):\n");
        for u in &g.unfinished {
            let _ = writeln!(s, "- `{}`", u.display());
        }
    }
    let _ = writeln!(s, "\n## Every attack at every split\n");
    s.push_str(&markdown_attacks(&g.runs));
    for section in [markdown_differences(&g.runs), markdown_variants(&g.runs)] {
        if !section.is_empty() {
            s.push('\n');
            s.push_str(&section);
        }
    }
    let _ = writeln!(s, "\n## Privacy-utility trade-offs\n");
    let _ = writeln!(
        s,
        "One point per run, labelled with its run. Target error against {metric}: better defenses sit to the right (attacks fail) and low (the task still works). Target accuracy against the best reconstruction PSNR: better defenses sit to the left and high.\n"
    );
    let _ = writeln!(
        s,
        "![target error vs attack error]({})\n",
        files::TRADEOFF_ERROR
    );
    let _ = writeln!(
        s,
        "![target accuracy vs reconstruction PSNR]({})",
        files::TRADEOFF_PSNR
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_labels_of_sweep_points_keep_the_last_path_segment() {
        assert_eq!(
            plot_label("003_training.epochs=2,training.defenses.lipschitz.weight=0.1"),
            "003_epochs=2,weight=0.1"
        );
        assert_eq!(plot_label("quickstart"), "quickstart");
        assert_eq!(plot_label("my_run"), "my_run");
    }
}
