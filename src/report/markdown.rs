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

    let _ = writeln!(s, "## Attacks\n");
    let _ = writeln!(
        s,
        "Reconstruction metrics on the `test` queries (pixels in [0, 1]; higher PSNR/SSIM and lower MSE mean more leakage).\n"
    );
    table_head(
        &mut s,
        &[
            "attack",
            "split",
            "MSE",
            "PSNR (dB)",
            "SSIM",
            "attribute",
            "accuracy",
            "chance",
        ],
    );
    for a in &r.attacks {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            a.attack,
            a.split,
            opt(a.mse, 4),
            opt(a.psnr, 2),
            opt(a.ssim, 3),
            a.attribute.as_deref().unwrap_or("-"),
            opt(a.accuracy, 3),
            opt(a.chance, 3)
        );
    }
    s.push('\n');
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
                a.attack, a.split, a.attack, a.split, file
            );
        }
    }
    s
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
