//! `report.md`: the tables and pictures of a run, for people.

use std::fmt::Write;

use super::Report;

/// `v` with `digits` decimals, or `-` when absent.
pub(crate) fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// Writes a Markdown table's header row and its separator row.
pub(crate) fn table_head(s: &mut String, columns: &[&str]) {
    let _ = writeln!(s, "| {} |", columns.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(columns.len()));
}

/// Renders the Markdown report; `plots` are SVG file names to embed.
pub fn render(r: &Report, plots: &[(&str, String)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# splitguard report: {}\n", r.name);
    let _ = writeln!(
        s,
        "Seed {}, splitguard {}. Data: {} ({} train / {} aux / {} test images, {}x{}x{}, {} classes; hidden attributes: {}).\n",
        r.seed,
        r.version,
        r.data.source,
        r.data.train,
        r.data.aux,
        r.data.test,
        r.data.image_shape[0],
        r.data.image_shape[1],
        r.data.image_shape[2],
        r.data.classes,
        if r.data.hidden.is_empty() {
            "none".to_string()
        } else {
            r.data.hidden.join(", ")
        }
    );
    let _ = writeln!(s, "## Summary\n");
    table_head(
        &mut s,
        &[
            "target accuracy (test)",
            "split",
            "edge FLOPs",
            "edge params",
            "bytes / query",
            "defenses",
        ],
    );
    let _ = writeln!(
        s,
        "| {:.2}% | {} | {} | {} | {} | {} |\n",
        100.0 * r.target_accuracy,
        r.split,
        r.edge_flops,
        r.edge_params,
        r.bytes_per_query,
        if r.defenses.is_empty() {
            "none".to_string()
        } else {
            r.defenses.join(", ")
        }
    );

    let _ = writeln!(s, "## Model `{}`\n", r.arch);
    table_head(&mut s, &["split", "block", "output", "FLOPs", "params"]);
    for b in &r.blocks {
        let _ = writeln!(
            s,
            "| {} | {} | {:?} | {} | {} |",
            b.index, b.description, b.output, b.flops, b.params
        );
    }
    s.push('\n');

    if let Some(p) = &r.prune {
        prune_section(&mut s, p);
    }

    let _ = writeln!(s, "## Training\n");
    table_head(
        &mut s,
        &["epoch", "lr", "loss", "task loss", "train accuracy"],
    );
    for e in &r.training {
        let _ = writeln!(
            s,
            "| {} | {:.2e} | {:.4} | {:.4} | {:.2}% |",
            e.epoch,
            e.lr,
            e.loss,
            e.task_loss,
            100.0 * e.train_accuracy
        );
    }
    s.push('\n');

    if let Some(p) = &r.partition {
        let _ = writeln!(
            s,
            "## Partition analysis (golden partition zone, seed 002)\n"
        );
        let _ = writeln!(
            s,
            "Intra-class variance R_c^2 of each split's features (classes by the model's predictions), normalised by the total variance. The transition is the largest relative drop; the golden zone is at and after it.\n"
        );
        table_head(
            &mut s,
            &[
                "split",
                "dim",
                "R_c^2",
                "R_c^2 / total",
                "entropy / dim",
                "edge FLOPs",
                "golden zone",
            ],
        );
        for row in &p.rows {
            let mark = if Some(row.split) == p.transition {
                " (transition)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "| {}{} | {} | {:.4} | {:.4} | {:.3} | {} | {} |",
                row.split,
                mark,
                row.dim,
                row.rc2,
                row.normalized_rc2,
                row.entropy_per_dim,
                row.edge_flops,
                if row.in_golden_zone { "yes" } else { "no" }
            );
        }
        let _ = writeln!(
            s,
            "\nChosen split: {} (budget {}). {}\n",
            p.chosen
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".into()),
            p.budget_flops
                .map(|b| format!("{b} FLOPs"))
                .unwrap_or_else(|| "none".into()),
            p.reason
        );
    }

    attacks_section(&mut s, r);
    for (title, file) in plots {
        let _ = writeln!(s, "### {title}\n\n![{title}]({file})\n");
    }
    let images: Vec<_> = r
        .attacks
        .iter()
        .filter_map(|a| a.image.as_ref().map(|i| (a, i)))
        .collect();
    if !images.is_empty() {
        let _ = writeln!(
            s,
            "## Reconstructions\n\nOriginals (top row) above reconstructions (bottom row).\n"
        );
        for (a, file) in images {
            let _ = writeln!(
                s,
                "**{} at split {}**\n\n![{} split {}]({})\n",
                a.key(),
                a.split,
                a.key(),
                a.split,
                file
            );
        }
    }
    s
}

/// `v` with its interval, `30.14 [29.90, 30.38]`, or `-` when absent.
pub(crate) fn with_ci(v: Option<f64>, ci: Option<[f64; 2]>, digits: usize) -> String {
    match (v, ci) {
        (Some(x), Some([lo, hi])) => format!("{x:.digits$} [{lo:.digits$}, {hi:.digits$}]"),
        _ => opt(v, digits),
    }
}

/// The attacks table (with bootstrap intervals and the margin over the
/// label floor), the floors, one sentence per split on label leakage, the
/// paper's attacker against the adaptive one, and the lower-bound flags.
fn attacks_section(s: &mut String, r: &Report) {
    use crate::attack::floors::BeyondLabel;
    let _ = writeln!(s, "## Attacks\n");
    let _ = writeln!(
        s,
        "Reconstruction metrics on the `test` queries (pixels in [0, 1]; higher PSNR/SSIM and lower MSE mean more leakage), each with its bootstrap 95% interval over the queries. The margin is the PSNR (dB) or accuracy above the label-only floor.\n"
    );
    // Re-identification only where it was measured (face data).
    let reid = r.attacks.iter().any(|a| a.reidentification.is_some());
    let mut columns = vec!["attack", "split", "MSE", "PSNR (dB)", "SSIM", "cosine"];
    if reid {
        columns.push("re-identified");
    }
    columns.extend(["attribute", "accuracy", "chance", "margin over label"]);
    table_head(s, &columns);
    for a in &r.attacks {
        let flag = if a.under_trained.is_empty() {
            ""
        } else {
            " (lower bound)"
        };
        let reid_cell = if reid {
            format!(
                " {} |",
                with_ci(a.reidentification, a.reidentification_ci, 3)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {} | {} |{reid_cell} {} | {} | {} | {} |",
            a.key(),
            flag,
            a.split,
            with_ci(a.mse, a.mse_ci, 4),
            with_ci(a.psnr, a.psnr_ci, 2),
            with_ci(a.ssim, a.ssim_ci, 3),
            with_ci(a.cosine, a.cosine_ci, 3),
            a.attribute.as_deref().unwrap_or("-"),
            with_ci(a.accuracy, a.accuracy_ci, 3),
            opt(a.chance, 3),
            match (a.margin_over_label, a.psnr) {
                (Some(m), Some(_)) => format!("{m:+.2} dB"),
                (Some(m), None) => format!("{m:+.3}"),
                _ => "-".into(),
            }
        );
    }
    s.push('\n');
    if let Some(f) = &r.floors {
        let _ = writeln!(s, "### Floors\n");
        let _ = writeln!(
            s,
            "What an attacker gets without the features, on the same queries: the mean image of its data (no features), and the mean image of its data's class that the model predicts for the query (only the label, which the server learns anyway). For attributes: chance (majority rate on `test`) and a label-only attacker (the attribute value most frequent among the attacker's images the model puts in the predicted class).\n"
        );
        table_head(s, &["floor", "MSE", "PSNR (dB)", "SSIM", "cosine"]);
        for (name, x) in [
            ("no features (mean image)", &f.mean_image),
            ("label only (class mean)", &f.label),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} |",
                with_ci(Some(x.mse), x.mse_ci, 4),
                with_ci(Some(x.psnr), x.psnr_ci, 2),
                with_ci(Some(x.ssim), x.ssim_ci, 3),
                with_ci(Some(x.cosine), x.cosine_ci, 3)
            );
        }
        s.push('\n');
        if let Some(ri) = &f.reidentification {
            let c = &ri.classifier;
            let _ = writeln!(
                s,
                "Re-identification: a face classifier with the model's architecture, trained on the attacker's images (validation accuracy {:.3}, best epoch {} of {}{}), names the right person for {} of the victims' original images (the ceiling; chance {:.3}) and for {} of the label-only reconstructions (the class-mean image of the predicted person: what the server's answer alone gives).\n",
                c.validation_accuracy,
                c.best_epoch,
                c.epochs_trained,
                if c.under_trained {
                    "; under-trained: every re-identification rate is a lower bound"
                } else {
                    ""
                },
                with_ci(Some(c.clean_accuracy), c.clean_accuracy_ci, 3),
                c.chance,
                with_ci(Some(ri.label_only), ri.label_only_ci, 3),
            );
        }
        if !f.attributes.is_empty() {
            table_head(s, &["attribute", "chance", "label-only accuracy"]);
            for a in &f.attributes {
                let _ = writeln!(
                    s,
                    "| {} | {:.3} | {} |",
                    a.attribute,
                    a.chance,
                    with_ci(Some(a.label_only), a.label_only_ci, 3)
                );
            }
            s.push('\n');
        }
        let mut sentences = Vec::new();
        for a in &r.attacks {
            let Some(v) = a.beyond_label else { continue };
            let what = match (&a.attribute, a.psnr) {
                (Some(attr), _) => format!(
                    "{} on `{attr}` reaches {} against {:.3} from the label alone",
                    a.key(),
                    with_ci(a.accuracy, a.accuracy_ci, 3),
                    a.accuracy.unwrap_or(0.0) - a.margin_over_label.unwrap_or(0.0)
                ),
                (None, Some(_)) => format!(
                    "{} reaches {} dB against {} dB from the label alone",
                    a.key(),
                    with_ci(a.psnr, a.psnr_ci, 2),
                    with_ci(Some(f.label.psnr), f.label.psnr_ci, 2)
                ),
                _ => continue,
            };
            let verdict = match v {
                BeyondLabel::More => "the features leak more than the label does",
                BeyondLabel::Indistinguishable => {
                    "the intervals overlap: no evidence that the features leak more than the label"
                }
                BeyondLabel::Less => {
                    "below the label-only attacker: this attacker reads less than the label gives"
                }
            };
            sentences.push(format!("- Split {}: {what}; {verdict}.", a.split));
        }
        if !sentences.is_empty() {
            let _ = writeln!(s, "{}\n", sentences.join("\n"));
        }
    }
    let pairs = paper_vs_adaptive(&r.attacks);
    if !pairs.is_empty() {
        let _ = writeln!(s, "### The papers' attacker against the adaptive one\n");
        let _ = writeln!(
            s,
            "The paper's variant trains on the raw features, as the defense papers evaluate; the adaptive one standardises them first. Where the adaptive attacker recovers more, a defense measured with the paper's attacker looks stronger than it is.\n"
        );
        for line in pairs {
            let _ = writeln!(s, "- {line}");
        }
        s.push('\n');
    }
    let flagged: Vec<_> = r
        .attacks
        .iter()
        .filter(|a| !a.under_trained.is_empty())
        .collect();
    if !flagged.is_empty() {
        let _ = writeln!(s, "### Lower bounds, not measurements\n");
        for a in flagged {
            let _ = writeln!(
                s,
                "- {} at split {}{}: {}. Its number is a lower bound of what the features give away.",
                a.key(),
                a.split,
                a.attribute
                    .as_ref()
                    .map(|x| format!(" (`{x}`)"))
                    .unwrap_or_default(),
                a.under_trained.join("; ")
            );
        }
        s.push('\n');
    }
}

/// One sentence per split where both a `<kind>` and a `<kind>-paper` record
/// exist: how much more (or less) the adaptive attacker recovers, judged by
/// the intervals.
fn paper_vs_adaptive(attacks: &[crate::attack::AttackRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for p in attacks {
        let Some(base) = p.key().strip_suffix("-paper") else {
            continue;
        };
        let Some(a) = attacks
            .iter()
            .find(|a| a.key() == base && a.split == p.split && a.attribute == p.attribute)
        else {
            continue;
        };
        let (va, vp, ca, cp, unit) = match (a.psnr, p.psnr, a.accuracy, p.accuracy) {
            (Some(x), Some(y), _, _) => (x, y, a.psnr_ci, p.psnr_ci, " dB"),
            (_, _, Some(x), Some(y)) => (x, y, a.accuracy_ci, p.accuracy_ci, ""),
            _ => continue,
        };
        let verdict = match crate::attack::floors::BeyondLabel::judge(va, ca, vp, cp) {
            crate::attack::floors::BeyondLabel::More => {
                "the adaptive attacker is stronger: the paper's attacker under-states leakage"
            }
            crate::attack::floors::BeyondLabel::Less => "the paper's attacker is stronger here",
            crate::attack::floors::BeyondLabel::Indistinguishable => {
                "the intervals overlap: the two attackers agree"
            }
        };
        out.push(format!(
            "Split {}{}: adaptive {:.3}{unit}, paper {:.3}{unit} ({:+.3}{unit}); {verdict}.",
            p.split,
            p.attribute
                .as_ref()
                .map(|x| format!(" (`{x}`)"))
                .unwrap_or_default(),
            va,
            vp,
            va - vp
        ));
    }
    out
}

/// The `prune` section: budget, split reached, per-block channels and FLOPs.
fn prune_section(s: &mut String, p: &crate::prune::PruneReport) {
    let _ = writeln!(s, "## Pruning ({:?})\n", p.method);
    let _ = writeln!(
        s,
        "Edge budget {} FLOPs: split {} reached (without pruning the budget allows split {}). Edge FLOPs at split {}: {} before, {} after. Test accuracy: {:.2}% before pruning, {:.2}% after the cut, {:.2}% after fine-tuning.\n",
        p.budget_flops,
        p.split,
        p.unpruned_split
            .map_or_else(|| "none".to_string(), |k| k.to_string()),
        p.split,
        p.edge_flops_before,
        p.edge_flops_after,
        100.0 * p.accuracy_before,
        100.0 * p.accuracy_pruned,
        100.0 * p.accuracy
    );
    table_head(
        s,
        &[
            "block",
            "before",
            "after",
            "channels",
            "FLOPs before",
            "FLOPs after",
            "on the edge",
        ],
    );
    for b in &p.blocks {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} -> {} | {} | {} | {} |",
            b.index,
            b.before,
            b.after,
            b.channels_before,
            b.channels_after,
            b.flops_before,
            b.flops_after,
            if b.edge { "yes" } else { "no" }
        );
    }
    s.push('\n');
}
