//! `REPRODUCTIONS.md`: each seed paper's claim, our numbers with their
//! intervals and floors, and a verdict, regenerated from the run folders of
//! the recipes under `recipes/repro/` (issue 16; `scripts/reproduce.sh`
//! runs them, `splitguard reproductions` writes the document).
//!
//! Nothing in the document is typed by hand: every table is computed here
//! from the runs' `report.json` (and `obfuscation.json`, and the leakage
//! runs' reports), and every verdict from a rule written next to its
//! section, so a rerun on another machine regenerates it. A section whose
//! runs are missing says so and how to produce them.
//!
//! | section | runs (under the runs folder) | seed |
//! |---|---|---|
//! | [`obfuscation`] | `004-obfuscation/` (sweep: with and without training defenses) | 004 |
//! | [`golden`] | `002-golden-cnn6/` (sweep over label smoothing), `002-golden-vgg/` | 002 |
//! | [`patrol`] | `001-patrol-l1/`, `001-patrol/` (sweep over the privacy terms) | 001 |
//! | [`dci`] | `000-dci-vgg/` | 000 |
//! | [`leakage`] | `003-i2f/{matched,today,init-0.1,init-1.0}/` | 003 |

pub mod dci;
mod format;
pub mod golden;
pub mod leakage;
pub mod obfuscation;
pub mod patrol;
pub mod runs;

use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;

/// The file `scripts/reproduce.sh` writes the wall time (seconds) into,
/// in each run folder.
pub const WALL_FILE: &str = "wall_seconds.txt";

/// Where the document's pictures go, relative to the document.
pub const GRID_DIR: &str = "docs/repro";

/// What can go wrong reading the runs or writing the document.
#[derive(Debug, thiserror::Error)]
pub enum ReproError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A report is not valid JSON.
    #[error("{}: not a valid report: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The document or a picture could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The four verdicts the document gives, and the case of missing runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Our numbers support the claim.
    Holds,
    /// The claim holds against the attacker the paper evaluates with, not
    /// against the stronger (adaptive or default) one.
    HoldsOnlyPaper,
    /// Our numbers do not support the claim.
    DoesNotHold,
    /// The claim cannot be tested with what is here (the reason says why).
    NotTestable,
    /// The section's runs are not in the runs folder.
    NotRun,
}

impl Verdict {
    /// The verdict as the document writes it.
    pub fn text(self) -> &'static str {
        match self {
            Self::Holds => "**holds**",
            Self::HoldsOnlyPaper => "**holds only against the paper's attacker**",
            Self::DoesNotHold => "**does not hold here**",
            Self::NotTestable => "**not testable here**",
            Self::NotRun => "**not run**",
        }
    }
}

/// A reconstruction grid the document shows, copied next to it.
#[derive(Clone, Debug)]
pub struct Grid {
    /// The picture in its run folder.
    pub source: PathBuf,
    /// Its file name under [`GRID_DIR`].
    pub name: String,
    /// What it shows.
    pub caption: String,
}

/// One seed's section.
#[derive(Clone, Debug)]
pub struct Section {
    /// The seed's number (`004`).
    pub id: &'static str,
    /// The heading.
    pub title: &'static str,
    /// The paper's claim, in one sentence.
    pub claim: &'static str,
    /// How we test it.
    pub protocol: &'static str,
    /// Tables and text computed from the runs.
    pub body: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, from the numbers.
    pub reason: String,
    /// The run folders read, with their recorded wall time in seconds.
    pub runs: Vec<(PathBuf, Option<u64>)>,
    /// Pictures to show.
    pub grids: Vec<Grid>,
}

impl Section {
    /// A section with no numbers yet.
    pub fn new(
        id: &'static str,
        title: &'static str,
        claim: &'static str,
        protocol: &'static str,
    ) -> Self {
        Self {
            id,
            title,
            claim,
            protocol,
            body: String::new(),
            verdict: Verdict::NotRun,
            reason: String::new(),
            runs: Vec::new(),
            grids: Vec::new(),
        }
    }

    /// Records a run folder and its wall time.
    pub fn add_run(&mut self, dir: &Path, wall: Option<u64>) {
        self.runs.push((dir.to_path_buf(), wall));
    }

    /// The section when its runs are missing.
    pub fn not_run(mut self) -> Self {
        self.verdict = Verdict::NotRun;
        self.reason = format!(
            "no finished runs yet: `ONLY={} scripts/reproduce.sh` produces them",
            self.id
        );
        self.body.clear();
        self
    }

    /// Total recorded wall time of the section's runs, seconds.
    pub fn wall(&self) -> u64 {
        self.runs.iter().filter_map(|(_, w)| *w).sum()
    }

    /// The section as Markdown; `runs` is the runs folder as the reader
    /// should see it (paths are shown relative to it).
    fn markdown(&self, runs: &Path) -> String {
        let mut s = format!("## {}: {}\n\n", self.id, self.title);
        s += &format!("**Claim.** {}\n\n", self.claim);
        s += &format!("**Protocol.** {}\n\n", self.protocol);
        if !self.body.is_empty() {
            s += &self.body;
            s += "\n";
        }
        s += &format!("**Verdict:** {}. {}\n\n", self.verdict.text(), self.reason);
        for g in &self.grids {
            s += &format!(
                "![{}]({GRID_DIR}/{})\n\n*{}*\n\n",
                g.caption, g.name, g.caption
            );
        }
        s += "Runs: ";
        s += &self
            .runs
            .iter()
            .map(|(d, w)| {
                let rel = d.strip_prefix(runs).unwrap_or(d);
                match w {
                    Some(w) => format!("`{}` ({})", rel.display(), minutes(*w)),
                    None => format!("`{}`", rel.display()),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        s += "\n\n";
        s
    }
}

/// Seconds as `12m34s`.
fn minutes(s: u64) -> String {
    format!("{}m{:02}s", s / 60, s % 60)
}

/// Every section, in the document's order (the order: 004, 002,
/// 001, 000, 003).
pub fn sections(runs: &Path) -> Result<Vec<Section>, ReproError> {
    Ok(vec![
        obfuscation::section(runs)?,
        golden::section(runs)?,
        patrol::section(runs)?,
        dci::section(runs)?,
        leakage::section(runs)?,
    ])
}

/// The whole document for `sections` read from `runs`.
pub fn markdown(sections: &[Section], runs: &Path) -> String {
    let mut s = String::from(
        "# Reproductions\n\n\
         <!-- Generated by `splitguard reproductions` from the run folders of \
         `scripts/reproduce.sh`; do not edit by hand. -->\n\n\
         Each seed paper's central claim, tested with the recipes under \
         [`recipes/repro/`](recipes/repro/) on the embedded MNIST, on a \
         2-core CPU. Where a model is trained, every number is the mean over \
         3 seeds with its 95% Student-t interval `[lo, hi]`; differences come \
         with their Welch interval. This file is generated by `splitguard \
         reproductions` from the run folders (`scripts/reproduce.sh` runs \
         every recipe, then regenerates it); every number traces to a \
         recipe and a run folder listed under its section.\n\n",
    );
    s += "| seed | experiment | verdict | compute |\n|---|---|---|---|\n";
    let mut total = 0;
    for x in sections {
        total += x.wall();
        s += &format!(
            "| [{}](#{}) | {} | {} | {} |\n",
            x.id,
            anchor(x.id, x.title),
            x.title,
            x.verdict.text(),
            minutes(x.wall())
        );
    }
    s += &format!(
        "\nTotal compute: {} on 2 cores (wall time recorded by `scripts/reproduce.sh`).\n\n",
        minutes(total)
    );
    for x in sections {
        s += &x.markdown(runs);
    }
    s
}

/// GitHub's anchor for a `## id: title` heading.
fn anchor(id: &str, title: &str) -> String {
    format!("{id}: {title}")
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// Regenerates the document from `runs` into `out`, copying the pictures
/// into [`GRID_DIR`] beside it. Returns the files written.
pub fn write(runs: &Path, out: &Path) -> Result<Vec<PathBuf>, ReproError> {
    let sections = sections(runs)?;
    let text = markdown(&sections, runs);
    let base = out.parent().unwrap_or(Path::new("."));
    let mut written = Vec::new();
    let werr = |path: &Path, source: std::io::Error| ReproError::Write {
        path: path.to_path_buf(),
        source,
    };
    for g in sections.iter().flat_map(|s| &s.grids) {
        let dir = base.join(GRID_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| werr(&dir, e))?;
        let to = dir.join(&g.name);
        let bytes = std::fs::read(&g.source).map_err(|source| ReproError::Read {
            path: g.source.clone(),
            source,
        })?;
        write_atomic(&to, &bytes).map_err(|e| werr(&to, e))?;
        written.push(to);
    }
    write_atomic(out, text.as_bytes()).map_err(|e| werr(out, e))?;
    written.push(out.to_path_buf());
    Ok(written)
}
