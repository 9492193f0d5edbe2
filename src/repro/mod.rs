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

/// What can go wrong reading the runs or writing the document. Each message
/// holds its cause's, so the cause is not chained as a source as well (the
/// command line prints a chain, and would print it twice).
#[derive(Debug, thiserror::Error)]
pub enum ReproError {
    /// A file could not be read.
    #[error("{}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
    /// A report is not valid JSON.
    #[error("{}: not a valid report: {cause}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        cause: serde_json::Error,
    },
    /// The document or a picture could not be written.
    #[error("{}: {cause}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
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
    /// The section as the previous document had it, kept when this
    /// section's runs are no longer in the runs folder.
    pub previous: Option<Previous>,
    /// Set by [`Section::not_run`]: none of the section's runs is in the
    /// runs folder (only then does the previous text stand in).
    runs_missing: bool,
}

/// A section of an earlier `REPRODUCTIONS.md`, kept while its runs are not
/// in the runs folder (run folders are large and not committed; a section
/// rerun on its own replaces only itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Previous {
    /// Its Markdown, from its heading to the next section's.
    pub markdown: String,
    /// Its verdict as the summary table wrote it.
    pub verdict: String,
    /// Its compute as the summary table wrote it, in seconds.
    pub wall: u64,
}

/// The note a kept section carries.
const KEPT_NOTE: &str = "*Kept from the previous generation of this file: this section's runs \
                         were not in the runs folder when it was regenerated.*";

/// `12m34s` as seconds.
fn parse_minutes(s: &str) -> Option<u64> {
    let (m, rest) = s.trim().split_once('m')?;
    let sec = rest.strip_suffix('s')?;
    Some(m.parse::<u64>().ok()? * 60 + sec.parse::<u64>().ok()?)
}

/// The sections of an earlier document by id, with their summary rows.
pub fn previous_sections(text: &str) -> Vec<(String, Previous)> {
    let mut out = Vec::new();
    let starts: Vec<usize> = text.match_indices("\n## ").map(|(i, _)| i + 1).collect();
    for (n, &at) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(text.len());
        let chunk = &text[at..end];
        let Some(id) = chunk[3..].split(':').next().map(str::to_string) else {
            continue;
        };
        // Its summary row: `| [id](#...) | title | verdict | compute |`.
        let row = text.lines().find(|l| l.starts_with(&format!("| [{id}](")));
        let cells: Vec<&str> = row
            .map(|r| r.trim_matches('|').split(" | ").map(str::trim).collect())
            .unwrap_or_default();
        let (Some(verdict), Some(wall)) = (
            cells.get(2).map(|v| v.to_string()),
            cells.get(3).and_then(|w| parse_minutes(w)),
        ) else {
            continue;
        };
        if verdict == Verdict::NotRun.text() {
            continue;
        }
        let mut markdown = chunk.trim_end().to_string() + "\n\n";
        if !markdown.contains(KEPT_NOTE) {
            markdown += KEPT_NOTE;
            markdown += "\n\n";
        }
        out.push((
            id,
            Previous {
                markdown,
                verdict,
                wall,
            },
        ));
    }
    out
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
            previous: None,
            runs_missing: false,
        }
    }

    /// Records a run folder and its wall time.
    pub fn add_run(&mut self, dir: &Path, wall: Option<u64>) {
        self.runs.push((dir.to_path_buf(), wall));
    }

    /// The section when its runs are missing.
    pub fn not_run(mut self) -> Self {
        self.verdict = Verdict::NotRun;
        self.runs_missing = true;
        self.reason = format!(
            "no finished runs yet: `ONLY={} scripts/reproduce.sh` produces them",
            self.id
        );
        self.body.clear();
        self
    }

    /// Total recorded wall time of the section's runs, seconds.
    pub fn wall(&self) -> u64 {
        match self.kept() {
            Some(p) => p.wall,
            None => self.runs.iter().filter_map(|(_, w)| *w).sum(),
        }
    }

    /// The earlier text this section shows, when its runs are missing.
    fn kept(&self) -> Option<&Previous> {
        self.previous.as_ref().filter(|_| self.runs_missing)
    }

    /// The verdict as the summary table writes it.
    fn verdict_text(&self) -> String {
        match self.kept() {
            Some(p) => p.verdict.clone(),
            None => self.verdict.text().to_string(),
        }
    }

    /// The section as Markdown; `runs` is the runs folder as the reader
    /// should see it (paths are shown relative to it).
    fn markdown(&self, runs: &Path) -> String {
        if let Some(p) = self.kept() {
            return p.markdown.clone();
        }
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
            x.verdict_text(),
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
///
/// A section whose runs are missing keeps its text from the document
/// already at `out`, marked as kept, so one seed's experiment can be rerun
/// and regenerated alone.
pub fn write(runs: &Path, out: &Path) -> Result<Vec<PathBuf>, ReproError> {
    let mut sections = sections(runs)?;
    if let Ok(old) = std::fs::read_to_string(out) {
        let previous = previous_sections(&old);
        for s in &mut sections {
            s.previous = previous
                .iter()
                .find(|(id, _)| id == s.id)
                .map(|(_, p)| p.clone());
        }
    }
    let text = markdown(&sections, runs);
    let base = out.parent().unwrap_or(Path::new("."));
    let mut written = Vec::new();
    let werr = |path: &Path, cause: std::io::Error| ReproError::Write {
        path: path.to_path_buf(),
        cause,
    };
    for g in sections.iter().flat_map(|s| &s.grids) {
        let dir = base.join(GRID_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| werr(&dir, e))?;
        let to = dir.join(&g.name);
        let bytes = std::fs::read(&g.source).map_err(|cause| ReproError::Read {
            path: g.source.clone(),
            cause,
        })?;
        write_atomic(&to, &bytes).map_err(|e| werr(&to, e))?;
        written.push(to);
    }
    write_atomic(out, text.as_bytes()).map_err(|e| werr(out, e))?;
    written.push(out.to_path_buf());
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line prints an error's chain (`{:#}`): each cause once.
    #[test]
    fn a_cause_appears_once_in_the_printed_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let chain = format!(
            "{:#}",
            anyhow::Error::new(ReproError::Read {
                path: "runs/x/report.json".into(),
                cause: io,
            })
        );
        assert_eq!(chain, "runs/x/report.json: no such file");
        let bad = serde_json::from_str::<serde_json::Value>("{").expect_err("not JSON");
        let cause = bad.to_string();
        let chain = format!(
            "{:#}",
            anyhow::Error::new(ReproError::Json {
                path: "r.json".into(),
                cause: bad,
            })
        );
        assert_eq!(chain.matches(cause.as_str()).count(), 1, "{chain}");
    }

    fn section(id: &'static str, verdict: Verdict, wall: u64) -> Section {
        let mut s = Section::new(id, "A title", "A claim.", "A protocol.");
        s.verdict = verdict;
        s.reason = format!("because of {id}");
        s.add_run(Path::new("/runs/x"), Some(wall));
        s
    }

    #[test]
    fn a_section_whose_runs_are_missing_keeps_its_previous_text() {
        let runs = Path::new("/runs");
        let old = markdown(
            &[
                section("004", Verdict::Holds, 125),
                section("002", Verdict::DoesNotHold, 61),
            ],
            runs,
        );
        let previous = previous_sections(&old);
        assert_eq!(previous.len(), 2);
        assert_eq!(previous[1].1.wall, 61);
        assert_eq!(previous[1].1.verdict, Verdict::DoesNotHold.text());
        // 004 rerun (a new verdict), 002 not run now: 002 is kept as it was.
        let mut now = vec![
            section("004", Verdict::NotTestable, 30),
            section("002", Verdict::NotRun, 0).not_run(),
        ];
        for s in &mut now {
            s.previous = previous
                .iter()
                .find(|(id, _)| id == s.id)
                .map(|(_, p)| p.clone());
        }
        let text = markdown(&now, runs);
        assert!(text.contains("because of 004") && text.contains("because of 002"));
        assert!(text.contains(Verdict::NotTestable.text()));
        assert!(!text.contains(Verdict::NotRun.text()), "{text}");
        assert!(text.contains("Total compute: 1m31s"), "{text}");
        assert_eq!(text.matches(KEPT_NOTE).count(), 1, "{text}");
        // Kept again on the next generation: the note is not repeated.
        let again = previous_sections(&text);
        assert_eq!(again[1].1.markdown.matches(KEPT_NOTE).count(), 1);
        // A section whose runs are there but gave no verdict is not
        // replaced by the old text.
        let mut ran = section("002", Verdict::NotRun, 5);
        ran.previous = previous[1..].first().map(|(_, p)| p.clone());
        let text = markdown(&[ran], runs);
        assert!(!text.contains(KEPT_NOTE), "{text}");
        // A section that was never run has nothing to keep.
        let never = markdown(&[section("000", Verdict::NotRun, 0).not_run()], runs);
        assert!(previous_sections(&never).is_empty());
    }
}
