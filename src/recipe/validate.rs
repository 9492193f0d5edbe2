//! Validation of a typed recipe: every rule, every problem collected with
//! its YAML path, so a user fixes a recipe in one pass.

use super::{AttackerData, DataSource, Recipe, SplitSetting};
use crate::attack::{AttackKind, SplitSelection};
use crate::model::{BlockSpec, WeightsFormat, zoo};
use crate::train::OptimizerConfig;
use burn::store::KeyRemapper;

/// Widest block a recipe may describe (channels or features): far above any
/// network that runs on an edge device, far below what exhausts memory.
pub const MAX_WIDTH: usize = 1 << 16;

/// Most parameters a described model may have (a billion: 4 GB of f32).
pub const MAX_PARAMS: u64 = 1_000_000_000;

/// Most FLOPs per example a described model may cost (a hundred GFLOPs,
/// ~25x a ResNet-50 at 224x224).
pub const MAX_FLOPS: u64 = 100_000_000_000;

/// Problems of inline `model.blocks`: widths within `1..=MAX_WIDTH`, and,
/// where the input shape is known before the data is read (`model.input`,
/// or the embedded MNIST), shapes that fit (a pool no larger than its map)
/// and a size within [`MAX_PARAMS`] / [`MAX_FLOPS`], so that `recipe check`
/// refuses what `run` could not build.
fn model_size_problems(
    input: Option<[usize; 3]>,
    blocks: &[crate::model::BlockSpec],
    bad: &mut impl FnMut(&str, String),
) {
    let mut widths_ok = true;
    for (i, b) in blocks.iter().enumerate() {
        let (field, w) = match b {
            BlockSpec::Conv(c) => ("out_channels", c.out_channels),
            BlockSpec::Linear(l) => ("out_features", l.out_features),
            BlockSpec::Residual(r) => match r.out_channels {
                Some(w) => ("out_channels", w),
                None => continue,
            },
            BlockSpec::MaxPool(_) | BlockSpec::GlobalAvgPool(_) => continue,
        };
        if !(1..=MAX_WIDTH).contains(&w) {
            widths_ok = false;
            bad(
                &format!("model.blocks[{i}].{field}"),
                format!("must be in 1..={MAX_WIDTH}, got {w}"),
            );
        }
    }
    let (Some(input), true) = (input.filter(|i| !i.contains(&0)), widths_ok) else {
        return;
    };
    match crate::model::block_infos(&input, blocks) {
        Err(e) => bad(
            "model.blocks",
            format!("do not fit the input {input:?}: {e}"),
        ),
        Ok(infos) => {
            let params: u64 = infos.iter().map(|b| b.params).sum();
            let flops: u64 = infos.iter().map(|b| b.flops).sum();
            if params > MAX_PARAMS {
                bad(
                    "model.blocks",
                    format!("{params} parameters, more than the limit of {MAX_PARAMS}"),
                );
            }
            if flops > MAX_FLOPS {
                bad(
                    "model.blocks",
                    format!("{flops} FLOPs per example, more than the limit of {MAX_FLOPS}"),
                );
            }
        }
    }
}

/// What a recipe can know about its data before reading the images: one
/// image's shape and the names of the hidden attributes (`None`: not
/// known without reading the data).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataFacts {
    /// Shape of one image `[C, H, W]`.
    pub shape: Option<[usize; 3]>,
    /// Hidden attributes, the targets of attribute attacks.
    pub attributes: Option<Vec<String>>,
}

impl DataFacts {
    /// What the source's kind alone tells: the embedded MNIST and CIFAR
    /// have a fixed shape; the loaders of CIFAR, ORL and IDX give no hidden
    /// attributes; a folder's come from its CSV ([`file_facts`] reads it).
    pub fn of_source(source: &DataSource) -> Self {
        let names = |n: &[&str]| Some(n.iter().map(|s| s.to_string()).collect());
        match source {
            DataSource::EmbeddedMnist => DataFacts {
                shape: Some([1, 28, 28]),
                attributes: names(&["writer", "stroke"]),
            },
            DataSource::Cifar10 { .. } | DataSource::Cifar100 { .. } => DataFacts {
                shape: Some([3, 32, 32]),
                attributes: names(&[]),
            },
            DataSource::Orl { .. } | DataSource::Idx { .. } => DataFacts {
                shape: None,
                attributes: names(&[]),
            },
            DataSource::Folder { .. } => DataFacts::default(),
        }
    }
}

/// Largest IDX labels file `recipe check` reads to check the labels (a
/// million labels); a larger one is checked by `run` when it loads it.
const MAX_CHECKED_LABEL_BYTES: u64 = 1 << 20;

/// Largest first line of a folder source's CSV read for its header.
const MAX_CSV_HEADER: u64 = 64 * 1024;

/// What the data files of `r` (paths already resolved) tell in bounded
/// work: an IDX file's image shape from its header, its labels (when the
/// file is small), a folder CSV's attribute names from its header. Returns
/// the facts and the problems found reading them, as `(path, message)`.
pub fn file_facts(r: &Recipe) -> (DataFacts, Vec<(String, String)>) {
    let mut facts = DataFacts::of_source(&r.data.source);
    let mut p = Vec::new();
    match &r.data.source {
        DataSource::Idx {
            images,
            labels,
            classes,
        } => {
            // IDX labels are bytes: more than 256 classes cannot be labelled.
            if let Some(c) = classes
                && !(1..=256).contains(c)
            {
                p.push((
                    "data.source.classes".into(),
                    format!("must be in 1..=256 (IDX labels are bytes), got {c}"),
                ));
            }
            match crate::data::idx_image_shape(images) {
                Ok(shape) => facts.shape = Some(shape),
                Err(e) => p.push(("data.source.images".into(), e.to_string())),
            }
            match idx_labels_if_small(labels) {
                Ok(Some(values)) => {
                    if let Err(e) = crate::data::check_labels(&values, *classes, labels) {
                        p.push(("data.source.labels".into(), e.to_string()));
                    }
                }
                Ok(None) => {}
                Err(e) => p.push(("data.source.labels".into(), e)),
            }
        }
        DataSource::Folder { labels, .. } => match csv_header(labels) {
            Ok(cols) => facts.attributes = Some(cols.into_iter().skip(2).collect()),
            Err(e) => p.push(("data.source.labels".into(), e)),
        },
        _ => {}
    }
    (facts, p)
}

/// The labels of a small IDX1 file (`None` when larger than
/// [`MAX_CHECKED_LABEL_BYTES`], on disk or once gunzipped: a small gzip file
/// can unpack to gigabytes).
fn idx_labels_if_small(path: &std::path::Path) -> Result<Option<Vec<u32>>, String> {
    use std::io::Read;
    let show = |e: &dyn std::fmt::Display| format!("{}: cannot read: {e}", path.display());
    let len = std::fs::metadata(path).map_err(|e| show(&e))?.len();
    if len > MAX_CHECKED_LABEL_BYTES {
        return Ok(None);
    }
    let mut bytes = std::fs::read(path).map_err(|e| show(&e))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .take(MAX_CHECKED_LABEL_BYTES + 1)
            .read_to_end(&mut plain)
            .map_err(|e| show(&e))?;
        if plain.len() as u64 > MAX_CHECKED_LABEL_BYTES {
            return Ok(None);
        }
        bytes = plain;
    }
    // Parsed by the loader's own reader, so the format rules are one.
    crate::data::idx_labels_from_bytes(&bytes, path)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The columns of a CSV's first line (bounded read).
fn csv_header(path: &std::path::Path) -> Result<Vec<String>, String> {
    use std::io::{BufRead, Read};
    let show = |e: &dyn std::fmt::Display| format!("{}: cannot read: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| show(&e))?;
    let mut line = String::new();
    std::io::BufReader::new(file.take(MAX_CSV_HEADER))
        .read_line(&mut line)
        .map_err(|e| show(&e))?;
    Ok(line
        .trim()
        .split(',')
        .map(|c| c.trim().to_string())
        .collect())
}

/// Problems of `r` that depend on its data, given what is known of it: a
/// `model.input` that differs from the images, a model whose blocks (or
/// zoo architecture) do not fit them, attribute attacks on attributes the
/// data does not have. `recipe check` refuses what `run` would refuse.
pub fn data_problems(r: &Recipe, facts: &DataFacts) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = Vec::new();
    let mut bad = |path: &str, msg: String| p.push((path.to_string(), msg));
    if let (Some(given), Some(shape)) = (r.model.input, facts.shape)
        && given != shape
    {
        bad(
            "model.input",
            format!(
                "{given:?} does not match the data: data.source images are {shape:?} (C, H, W); give {shape:?} or leave model.input out"
            ),
        );
    }
    let input = r.model.input.or(facts.shape);
    match &r.model.blocks {
        Some(blocks) => model_size_problems(input, blocks, &mut bad),
        None => {
            if let Some(input) = input.filter(|i| !i.contains(&0))
                && zoo::NAMES.contains(&r.model.arch.as_str())
            {
                // Shapes do not depend on the class count; 10 stands in.
                let fits = zoo::spec_for(&r.model.arch, input, 10)
                    .and_then(|s| crate::model::block_infos(&input, &s.blocks));
                if let Err(e) = fits {
                    bad(
                        "model.arch",
                        format!(
                            "'{}' does not fit the data's images {input:?}: {e}",
                            r.model.arch
                        ),
                    );
                }
            }
        }
    }
    if let Some(available) = &facts.attributes {
        if let Some(a) = &r.training.defenses.attribute_adversarial {
            for (field, msg) in a.problems(Some(available)) {
                if field == "attribute" {
                    bad("training.defenses.attribute_adversarial.attribute", msg);
                }
            }
        }
        for (i, a) in r.audit.attacks.iter().enumerate() {
            if let AttackKind::Attribute(cfg) = a {
                for (field, msg) in crate::attack::attribute::attribute_problems(cfg, available) {
                    let path = match field.is_empty() {
                        true => format!("audit.attacks[{i}]"),
                        false => format!("audit.attacks[{i}].{field}"),
                    };
                    bad(&path, msg);
                }
            }
        }
    }
    p
}

/// Every problem of `r` as `path: message` lines (empty when valid).
pub fn problems(r: &Recipe) -> Vec<String> {
    let mut p: Vec<String> = Vec::new();
    let mut bad = |path: &str, msg: String| p.push(format!("{path}: {msg}"));

    if r.name.is_empty()
        || !r
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || r.name.starts_with('.')
    {
        bad(
            "name",
            format!(
                "must be a non-empty folder name of letters, digits, '-', '_' or '.', got '{}'",
                r.name
            ),
        );
    }

    if !(1..=super::types::MAX_REPEATS).contains(&r.repeats) {
        bad(
            "repeats",
            format!(
                "must be in 1..={} (runs of the whole recipe), got {}",
                super::types::MAX_REPEATS,
                r.repeats
            ),
        );
    }

    // data
    let f = r.data.fractions;
    if f.iter().any(|x| !x.is_finite() || *x <= 0.0) {
        bad(
            "data.fractions",
            format!("each of train, aux, test must be > 0, got {f:?}"),
        );
    } else if (f.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
        bad(
            "data.fractions",
            format!("must sum to 1, got {f:?} (sum {})", f.iter().sum::<f64>()),
        );
    }
    if let Some(l) = r.data.limit
        && l < 30
    {
        bad("data.limit", format!("must be >= 30 images, got {l}"));
    }
    if let DataSource::Orl {
        downscale: Some(d), ..
    } = &r.data.source
        && !(1..=8).contains(d)
    {
        bad(
            "data.source.downscale",
            format!("must be in 1..=8, got {d}"),
        );
    }

    // model
    let spec = match &r.model.blocks {
        Some(blocks) => {
            if blocks.is_empty() {
                bad(
                    "model.blocks",
                    "must list at least two blocks, got none".into(),
                );
            }
            None
        }
        None => match zoo::spec(&r.model.arch) {
            Ok(s) => Some(s),
            Err(_) => {
                bad(
                    "model.arch",
                    format!(
                        "unknown architecture '{}': allowed {} (or give model.blocks)",
                        r.model.arch,
                        zoo::NAMES.join(", ")
                    ),
                );
                None
            }
        },
    };
    if let Some(w) = &r.model.weights {
        if w.path.as_os_str().is_empty() {
            bad("model.weights.path", "must name a file, got ''".into());
        } else if let Err(e) = w.resolved_format() {
            bad("model.weights.format", e.to_string());
        }
        for (i, [from, _]) in w.key_map.iter().enumerate() {
            if let Err(e) = KeyRemapper::new().add_pattern(from, "") {
                bad(
                    &format!("model.weights.key_map[{i}]"),
                    format!("invalid regex '{from}': {e}"),
                );
            }
        }
        if w.top_level_key.is_some()
            && matches!(w.resolved_format(), Ok(WeightsFormat::Safetensors))
        {
            bad(
                "model.weights.top_level_key",
                "applies to PyTorch files only; a safetensors file has no nesting".into(),
            );
        }
    }
    if let Some(input) = r.model.input
        && input.contains(&0)
    {
        bad(
            "model.input",
            format!("each of C, H, W must be >= 1, got {input:?}"),
        );
    }
    let facts = DataFacts::of_source(&r.data.source);
    for (path, msg) in data_problems(r, &facts) {
        bad(&path, msg);
    }
    let blocks = spec
        .as_ref()
        .map(|s| s.blocks.len())
        .or(r.model.blocks.as_ref().map(|b| b.len()));
    let split_ok = |k: usize| blocks.is_none_or(|n| (1..n).contains(&k));
    let split_range = blocks
        .map(|n| format!("1..={}", n.saturating_sub(1)))
        .unwrap_or_else(|| "1..blocks".into());
    match r.split {
        Some(SplitSetting::At(k)) if !split_ok(k) => {
            bad(
                "split",
                format!("must be a split point in {split_range} or 'auto', got {k}"),
            );
        }
        Some(SplitSetting::Auto(_)) if r.training.defenses.needs_split() => bad(
            "split",
            format!(
                "'auto' is chosen after training, but the defenses {:?} protect a split during training: give split a number",
                r.training.defenses.names()
            ),
        ),
        _ => {}
    }
    // Feature pruning scores the units the next block reads: a convolution
    // or a linear block must follow the split (the recipe's, or split 1
    // when it names none; with `prune:` the budget's, checked by `run`
    // before training). The adversary of attribute_adversarial has the
    // server part's architecture with its last block resized: it must end
    // in a linear block.
    let block_specs = spec
        .as_ref()
        .map(|s| s.blocks.as_slice())
        .or(r.model.blocks.as_deref());
    let defenses = &r.training.defenses;
    let pruning = defenses
        .feature_pruning
        .as_ref()
        .is_some_and(|p| p.active());
    let fixed_split = match r.split {
        Some(SplitSetting::At(k)) => Some(k),
        None if r.prune.is_none() => Some(1),
        _ => None,
    };
    if let (Some(k), Some(blocks)) = (fixed_split, block_specs)
        && pruning
        && let Some(next) = blocks.get(k)
        && !matches!(next, BlockSpec::Conv(_) | BlockSpec::Linear(_))
    {
        bad(
            "training.defenses.feature_pruning",
            format!(
                "needs a convolution or linear block right after the split; block {} (after split {k}) is neither",
                k + 1
            ),
        );
    }
    if defenses.attribute_adversarial.is_some()
        && let Some(last) = block_specs.and_then(|b| b.last())
        && !matches!(last, BlockSpec::Linear(_))
    {
        bad(
            "training.defenses.attribute_adversarial",
            "needs a model whose last block is linear (its adversary is the server part with that block resized to the attribute's values)".into(),
        );
    }
    if pruning {
        let others: Vec<&str> = defenses
            .split_perturbations()
            .iter()
            .filter(|p| p.active())
            .map(|p| p.name())
            .chain(
                defenses
                    .shredder
                    .as_ref()
                    .filter(|s| s.active())
                    .map(|_| "shredder"),
            )
            .collect();
        if !others.is_empty() {
            bad(
                "training.defenses.feature_pruning",
                format!(
                    "cannot be combined with {} (they would change the pruned values after the mask, and the server is fine-tuned on the mask alone); use one",
                    others.join(", ")
                ),
            );
        }
    }
    if r.prune.is_some() && r.training.defenses.wants_vae_head() {
        bad(
            "training.defenses.vae",
            "cannot be combined with prune: pruning changes the channels the VAE head maps; train the VAE model without a prune section".into(),
        );
    }
    if let Some(pc) = &r.partition {
        if pc.samples < 20 {
            bad(
                "partition.samples",
                format!("must be >= 20 images, got {}", pc.samples),
            );
        }
        if !(0.0..1.0).contains(&pc.margin) {
            bad(
                "partition.margin",
                format!("must be in [0, 1), got {}", pc.margin),
            );
        }
        if pc.budget_flops == Some(0) {
            bad("partition.budget_flops", "must be > 0 FLOPs, got 0".into());
        }
    }
    match &r.audit.attacker_data {
        AttackerData::AuxFraction { fraction } if !(*fraction > 0.0 && *fraction <= 1.0) => bad(
            "audit.attacker_data.fraction",
            format!("must be in (0, 1], got {fraction}"),
        ),
        AttackerData::Dataset { limit: Some(l), .. } if *l < 10 => bad(
            "audit.attacker_data.limit",
            format!("must be >= 10 images, got {l}"),
        ),
        _ => {}
    }

    // training
    let t = &r.training;
    if t.epochs == 0 && r.model.weights.is_none() {
        bad(
            "training.epochs",
            "must be >= 1, got 0 (0 is allowed with model.weights: audit a pretrained model as it is)".into(),
        );
    }
    if t.batch_size < 2 {
        bad(
            "training.batch_size",
            format!(
                "must be >= 2 (batch-norm needs two examples), got {}",
                t.batch_size
            ),
        );
    }
    let (lr, wd, momentum) = match &t.optimizer {
        OptimizerConfig::Adam { lr, weight_decay } => (*lr, *weight_decay, None),
        OptimizerConfig::Sgd {
            lr,
            momentum,
            weight_decay,
        } => (*lr, *weight_decay, Some(*momentum)),
    };
    if !(lr.is_finite() && lr > 0.0) {
        bad("training.optimizer.lr", format!("must be > 0, got {lr}"));
    }
    if !(wd.is_finite() && wd >= 0.0) {
        bad(
            "training.optimizer.weight_decay",
            format!("must be >= 0, got {wd}"),
        );
    }
    if let Some(m) = momentum
        && !(0.0..1.0).contains(&m)
    {
        bad(
            "training.optimizer.momentum",
            format!("must be in [0, 1), got {m}"),
        );
    }
    let fac = t.lr_drops.factor;
    if !(fac > 0.0 && fac <= 1.0) {
        bad(
            "training.lr_drops.factor",
            format!("must be in (0, 1], got {fac}"),
        );
    }
    for (i, e) in t.lr_drops.at_epochs.iter().enumerate() {
        if *e < 1 || *e > t.epochs.max(1) {
            bad(
                &format!("training.lr_drops.at_epochs[{i}]"),
                format!("must be an epoch in 1..={}, got {e}", t.epochs),
            );
        }
    }
    for (path, msg) in t.defenses.problems() {
        bad(&format!("training.defenses.{path}"), msg);
    }

    // prune (seed 001, PATROL)
    if let Some(pr) = &r.prune {
        for (path, msg) in pr.problems() {
            bad(&format!("prune.{path}"), msg);
        }
        let model_blocks = spec.as_ref().map(|s| &s.blocks).or(r.model.blocks.as_ref());
        for (path, msg) in model_blocks.map_or_else(Vec::new, |b| pr.model_problems(b)) {
            bad(&format!("prune.{path}"), msg);
        }
        if r.split.is_some() {
            bad(
                "split",
                "must not be set with prune: the edge FLOPs budget chooses the split (cap it with prune.max_split)".into(),
            );
        }
        if let Some(k) = pr.max_split
            && !split_ok(k)
        {
            bad(
                "prune.max_split",
                format!("must be a split point in {split_range}, got {k}"),
            );
        }
        if let Some(k) = pr.budget.reference_split
            && !split_ok(k)
        {
            bad(
                "prune.budget.reference_split",
                format!("must be a split point in {split_range}, got {k}"),
            );
        }
    }

    // audit
    if let SplitSelection::List(list) = &r.audit.splits {
        if list.is_empty() {
            bad(
                "audit.splits",
                "must be 'all' or a non-empty list of split points".into(),
            );
        }
        for (i, k) in list.iter().enumerate() {
            if !split_ok(*k) {
                bad(
                    &format!("audit.splits[{i}]"),
                    format!("must be a split point in {split_range}, got {k}"),
                );
            }
        }
    }
    if let Some(o) = &r.obfuscation {
        for (path, msg) in o.problems() {
            bad(&format!("obfuscation.{path}"), msg);
        }
        if r.training
            .defenses
            .feature_pruning
            .as_ref()
            .is_some_and(|p| p.active())
        {
            // Both change what the next layer reads: the obfuscation's basis
            // is of the unpruned model's next layer, the fine-tuned server
            // would not be the one it was computed for.
            bad(
                "training.defenses.feature_pruning",
                "cannot be combined with obfuscation (both decide what the server's next layer reads); use one".into(),
            );
        }
    }
    if r.audit.grid_images == 0 {
        bad("audit.grid_images", "must be >= 1, got 0".into());
    }
    for (i, a) in r.audit.attacks.iter().enumerate() {
        let at = |f: &str| format!("audit.attacks[{i}].{f}");
        match a {
            AttackKind::Decoder(d) => {
                for (field, msg) in attacker_training_problems(d.epochs, d.batch_size, d.lr) {
                    bad(&at(field), msg);
                }
                if d.width < 8 {
                    bad(&at("width"), format!("must be >= 8, got {}", d.width));
                }
                if d.restarts > 10 {
                    bad(
                        &at("restarts"),
                        format!("must be <= 10, got {}", d.restarts),
                    );
                }
                if d.depth > 8 {
                    bad(&at("depth"), format!("must be <= 8, got {}", d.depth));
                }
            }
            AttackKind::Optimisation(o) => {
                for (field, msg) in o.problems() {
                    bad(&at(&field), msg);
                }
            }
            AttackKind::Dci(d) => {
                for (field, msg) in d.problems() {
                    bad(&at(&field), msg);
                }
            }
            AttackKind::Attribute(d) => {
                for (field, msg) in attacker_training_problems(d.epochs, d.batch_size, d.lr) {
                    bad(&at(field), msg);
                }
            }
        }
    }
    let reid = &r.audit.reidentify;
    for (field, msg) in attacker_training_problems(reid.epochs, reid.batch_size, reid.lr) {
        bad(&format!("audit.reidentify.{field}"), msg);
    }
    if let Some(l) = &r.leakage {
        for (path, msg) in l.problems() {
            bad(&format!("leakage.{path}"), msg);
        }
    }
    if let Some(h) = &r.harden {
        for (path, msg) in h.problems() {
            bad(&format!("harden.{path}"), msg);
        }
    }
    p
}

/// Problems with a trained attacker's epochs, mini-batch size and learning
/// rate, as `(field, message)`.
fn attacker_training_problems(
    epochs: usize,
    batch_size: usize,
    lr: f64,
) -> Vec<(&'static str, String)> {
    let mut p = Vec::new();
    if epochs == 0 {
        p.push(("epochs", "must be >= 1, got 0".to_string()));
    }
    if batch_size < 2 {
        p.push(("batch_size", format!("must be >= 2, got {batch_size}")));
    }
    if !(lr.is_finite() && lr > 0.0) {
        p.push(("lr", format!("must be > 0, got {lr}")));
    }
    p
}

#[cfg(test)]
mod tests {
    use crate::recipe::{Override, RecipeError, from_str};

    const BASE: &str = "name: t\nmodel: {arch: cnn6}\n";

    fn check(overrides: &[&str]) -> Result<(), RecipeError> {
        let o: Vec<Override> = overrides.iter().map(|s| s.parse().unwrap()).collect();
        from_str(BASE, "t.yaml", &o).map(|_| ())
    }

    /// Asserts that the override is rejected with a message naming `path`.
    fn rejects(overrides: &[&str], path: &str) {
        let err = check(overrides).expect_err("must be rejected").to_string();
        assert!(err.starts_with("t.yaml"), "names the file: {err}");
        assert!(err.contains(path), "expected '{path}' in: {err}");
    }

    #[test]
    fn seed_004_baselines_are_checked_against_the_model_the_data_and_obfuscation() {
        // cnn6: block 4 (after split 3) is linear, fine; an inline model
        // with a max-pool after the split is refused.
        check(&["split=3", "training.defenses.feature_pruning={keep: 0.1}"]).unwrap();
        rejects(
            &[
                "model.blocks=[{kind: conv, out_channels: 4}, {kind: max_pool, kernel: 2}, {kind: linear, out_features: 10, activation: none}]",
                "split=1",
                "training.defenses.feature_pruning={keep: 0.1}",
            ],
            "training.defenses.feature_pruning: needs a convolution or linear block",
        );
        rejects(
            &["split=3", "training.defenses.feature_pruning={keep: 0}"],
            "training.defenses.feature_pruning.keep",
        );
        rejects(
            &[
                "split=3",
                "training.defenses.feature_pruning={keep: 0.5}",
                "training.defenses.top_k={keep: 0.5}",
            ],
            "training.defenses.feature_pruning: cannot be combined with top_k",
        );
        // No split: training protects split 1, which resnet20 follows with
        // a residual block.
        rejects(
            &[
                "model.arch=resnet20",
                "training.defenses.feature_pruning={keep: 0.5}",
            ],
            "training.defenses.feature_pruning: needs a convolution or linear block",
        );
        rejects(
            &[
                "split=3",
                "training.defenses.feature_pruning={keep: 0.5}",
                "obfuscation={mode: {kind: distortion_free}}",
            ],
            "training.defenses.feature_pruning: cannot be combined with obfuscation",
        );
        // The embedded MNIST has `writer` and `stroke`, nothing else.
        check(&[
            "split=2",
            "training.defenses.attribute_adversarial={attribute: writer, weight: 0.5}",
        ])
        .unwrap();
        rejects(
            &[
                "split=2",
                "training.defenses.attribute_adversarial={attribute: age, weight: 0.5}",
            ],
            "training.defenses.attribute_adversarial.attribute: the data has no hidden attribute 'age' (it has: writer, stroke)",
        );
        rejects(
            &[
                "split=2",
                "training.defenses.attribute_adversarial={attribute: writer, weight: -1, attacker_steps: 0}",
            ],
            "training.defenses.attribute_adversarial.attacker_steps",
        );
        rejects(
            &[
                "model.blocks=[{kind: conv, out_channels: 4}, {kind: conv, out_channels: 10}, {kind: global_avg_pool}]",
                "split=1",
                "training.defenses.attribute_adversarial={attribute: writer, weight: 0.5}",
            ],
            "training.defenses.attribute_adversarial: needs a model whose last block is linear",
        );
    }

    #[test]
    fn base_recipe_is_valid_with_defaults() {
        let r = from_str(BASE, "t.yaml", &[]).unwrap().recipe;
        assert_eq!(r.seed, 42);
        assert_eq!(r.training.batch_size, 64);
        assert_eq!(r.data.fractions, [0.6, 0.2, 0.2]);
    }

    #[test]
    fn repeats_must_be_between_1_and_100() {
        rejects(
            &["repeats=0"],
            "repeats: expected an integer in 1..=100, got 0",
        );
        rejects(
            &["repeats=101"],
            "repeats: expected an integer in 1..=100, got 101",
        );
        check(&["repeats=100"]).unwrap();
        let r = from_str(BASE, "t.yaml", &[]).unwrap().recipe;
        assert_eq!(r.repeats, 1);
        // The default is not written, so resolved recipes of older runs stay the same.
        assert!(!serde_norway::to_string(&r).unwrap().contains("repeats"));
        let o: Override = "repeats=3".parse().unwrap();
        let r = from_str(BASE, "t.yaml", &[o]).unwrap().recipe;
        assert!(serde_norway::to_string(&r).unwrap().contains("repeats: 3"));
    }

    #[test]
    fn obfuscation_values_are_checked() {
        rejects(
            &["obfuscation.mode={kind: max_accuracy_drop, points: 150}"],
            "obfuscation.mode.points: must be in [0, 100]",
        );
        rejects(
            &["obfuscation.mode={kind: distortion_bounded, eps: -1}"],
            "obfuscation.mode.eps: must be finite",
        );
    }

    #[test]
    fn decov_weight_must_be_non_negative() {
        rejects(
            &["training.defenses.decov={weight: -1}"],
            "training.defenses.decov.weight: must be finite and >= 0",
        );
    }

    #[test]
    fn signal_dropout_values_are_checked() {
        rejects(
            &["training.defenses.signal_dropout={rate: 2}"],
            "training.defenses.signal_dropout.rate: must be in [0, 1]",
        );
        rejects(
            &["training.defenses.signal_dropout={rate: 0.5, min_keep: 0}"],
            "training.defenses.signal_dropout.min_keep: must be in (0, 1]",
        );
        rejects(
            &["training.defenses.signal_dropout={rate: 0.5, refresh_steps: 0}"],
            "training.defenses.signal_dropout.refresh_steps: must be >= 1",
        );
    }

    #[test]
    fn attribute_attack_values_are_checked() {
        rejects(
            &["audit.attacks=[{kind: attribute, epochs: 0}]"],
            "audit.attacks[0].epochs: must be >= 1",
        );
    }

    #[test]
    fn name_must_be_a_folder_name() {
        rejects(&["name=a/b"], "name: must be");
        rejects(&["name=''"], "name: must be");
    }

    #[test]
    fn data_fractions_must_be_positive() {
        rejects(&["data.fractions=[1.0, 0.0, 0.0]"], "data.fractions: each");
    }

    #[test]
    fn data_fractions_must_sum_to_one() {
        rejects(
            &["data.fractions=[0.5, 0.2, 0.2]"],
            "data.fractions: must sum to 1",
        );
    }

    #[test]
    fn data_limit_must_be_at_least_30() {
        rejects(&["data.limit=10"], "data.limit: must be >= 30");
    }

    #[test]
    fn orl_downscale_must_be_in_range() {
        rejects(
            &["data.source={kind: orl, dir: faces, downscale: 0}"],
            "data.source.downscale",
        );
    }

    #[test]
    fn cifar_sources_parse_with_their_defaults() {
        use crate::data::{Cifar100Labels, CifarFiles};
        use crate::recipe::DataSource;
        let parse = |o: &str| {
            let o: Override = o.parse().unwrap();
            from_str(BASE, "t.yaml", &[o])
                .unwrap()
                .recipe
                .data
                .source
                .clone()
        };
        assert_eq!(
            parse("data.source={kind: cifar10, dir: c10}"),
            DataSource::Cifar10 {
                dir: "c10".into(),
                files: CifarFiles::All
            }
        );
        assert_eq!(
            parse("data.source={kind: cifar100, dir: c100, labels: coarse, files: test}"),
            DataSource::Cifar100 {
                dir: "c100".into(),
                labels: Cifar100Labels::Coarse,
                files: CifarFiles::Test
            }
        );
        assert_eq!(
            parse("data.source={kind: cifar100, dir: c100}"),
            DataSource::Cifar100 {
                dir: "c100".into(),
                labels: Cifar100Labels::Fine,
                files: CifarFiles::All
            }
        );
    }

    #[test]
    fn cifar100_labels_must_be_fine_or_coarse() {
        rejects(
            &["data.source={kind: cifar100, dir: c, labels: medium}"],
            "data.source.labels: unknown 'medium'; allowed: fine, coarse",
        );
        rejects(
            &["data.source={kind: cifar10, dir: c, labels: fine}"],
            "data.source.labels: unknown field for kind 'cifar10'",
        );
    }

    #[test]
    fn cifar_blocks_are_checked_against_3x32x32() {
        // The check needs no data file: a CIFAR source implies the shape.
        rejects(
            &[
                "data.source={kind: cifar10, dir: c}",
                "model.blocks=[{kind: conv, out_channels: 4, kernel: 33, padding: 0}, {kind: linear, out_features: 10}]",
            ],
            "model.blocks: do not fit the input [3, 32, 32]",
        );
    }

    #[test]
    fn model_arch_must_be_known() {
        rejects(
            &["model.arch=resnet9000"],
            "model.arch: unknown architecture 'resnet9000'",
        );
    }

    #[test]
    fn model_blocks_cannot_be_empty() {
        rejects(&["model.blocks=[]"], "model.blocks");
    }

    #[test]
    fn weights_format_must_be_known_or_given() {
        rejects(
            &["model.weights={path: net.bin2}"],
            "model.weights.format: weights net.bin2: cannot tell the format",
        );
        check(&["model.weights={path: net.bin2, format: pytorch}"]).unwrap();
        check(&["model.weights={path: net.safetensors}"]).unwrap();
        check(&["model.weights={path: net.pth}"]).unwrap();
        rejects(
            &["model.weights={path: net.pt, format: onnx}"],
            "model.weights.format: unknown 'onnx'; allowed: safetensors, pytorch",
        );
    }

    #[test]
    fn weights_key_map_must_be_valid_regex() {
        rejects(
            &[r#"model.weights={path: n.pt, key_map: [["^a\\.", "b."], ["(", "x"]]}"#],
            "model.weights.key_map[1]: invalid regex '('",
        );
    }

    #[test]
    fn weights_top_level_key_is_for_pytorch_files() {
        rejects(
            &["model.weights={path: n.safetensors, top_level_key: state_dict}"],
            "model.weights.top_level_key",
        );
        check(&["model.weights={path: n.pt, top_level_key: state_dict}"]).unwrap();
    }

    #[test]
    fn zero_epochs_are_allowed_with_weights() {
        check(&["training.epochs=0", "model.weights={path: n.safetensors}"]).unwrap();
    }

    #[test]
    fn weights_path_is_relative_to_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(
            &path,
            "name: t\nmodel: {arch: cnn6, weights: {path: w/net.safetensors}}\n",
        )
        .unwrap();
        let r = crate::recipe::from_path(&path, &[]).unwrap().recipe;
        let w = r.model.weights.clone().unwrap();
        assert_eq!(w.path, dir.path().join("w/net.safetensors"));
    }

    #[test]
    fn split_must_be_a_split_point() {
        rejects(
            &["split=6"],
            "split: must be a split point in 1..=5 or 'auto', got 6",
        );
        rejects(&["split=0"], "split: expected an integer >= 1");
    }

    #[test]
    fn auto_split_cannot_serve_training_defenses() {
        check(&["split=auto"]).unwrap();
    }

    #[test]
    fn partition_settings_must_be_in_range() {
        rejects(&["partition.samples=5"], "partition.samples");
        rejects(&["partition.margin=1.5"], "partition.margin");
        rejects(&["partition.budget_flops=0"], "partition.budget_flops");
    }

    #[test]
    fn attacker_data_fraction_must_be_in_unit_interval() {
        rejects(
            &["audit.attacker_data={kind: aux_fraction, fraction: 0}"],
            "audit.attacker_data.fraction",
        );
        rejects(
            &["audit.attacker_data={kind: dataset, source: {kind: embedded_mnist}, limit: 3}"],
            "audit.attacker_data.limit",
        );
    }

    #[test]
    fn training_epochs_must_be_positive() {
        rejects(
            &["training.epochs=0"],
            "training.epochs: must be >= 1, got 0",
        );
    }

    #[test]
    fn training_batch_size_must_be_at_least_two() {
        rejects(
            &["training.batch_size=0"],
            "training.batch_size: must be >= 2",
        );
    }

    #[test]
    fn optimizer_lr_must_be_positive() {
        rejects(
            &["training.optimizer={kind: adam, lr: -1}"],
            "training.optimizer.lr",
        );
        rejects(
            &["training.optimizer={kind: sgd, lr: 0}"],
            "training.optimizer.lr",
        );
    }

    #[test]
    fn weight_decay_cannot_be_negative() {
        rejects(
            &["training.optimizer={kind: adam, weight_decay: -0.1}"],
            "training.optimizer.weight_decay: must be >= 0, got -0.1",
        );
    }

    #[test]
    fn momentum_must_be_below_one() {
        rejects(
            &["training.optimizer={kind: sgd, momentum: 1.5}"],
            "training.optimizer.momentum",
        );
    }

    #[test]
    fn lr_drop_factor_must_be_in_unit_interval() {
        rejects(&["training.lr_drops.factor=2"], "training.lr_drops.factor");
    }

    #[test]
    fn lr_drop_epochs_must_be_within_training() {
        rejects(
            &["training.lr_drops.at_epochs=[9]"],
            "training.lr_drops.at_epochs[0]",
        );
    }

    #[test]
    fn label_smoothing_strength_must_be_in_open_unit_interval() {
        rejects(
            &["training.defenses.label_smoothing.strength=1.0"],
            "training.defenses.label_smoothing.strength",
        );
        check(&["training.defenses.label_smoothing.strength=-0.3"]).unwrap();
    }

    #[test]
    fn lipschitz_weight_cannot_be_negative() {
        rejects(
            &["training.defenses.lipschitz={weight: -0.1}"],
            "training.defenses.lipschitz.weight: must be >= 0, got -0.1",
        );
        check(&["training.defenses.lipschitz={weight: 0}"]).unwrap();
    }

    #[test]
    fn lipschitz_block_weights_cannot_be_negative() {
        rejects(
            &["training.defenses.lipschitz={weight: 1, block_weights: [1, -2]}"],
            "training.defenses.lipschitz.block_weights[1]",
        );
    }

    #[test]
    fn lipschitz_draws_must_be_positive() {
        rejects(
            &["training.defenses.lipschitz={weight: 1, draws: 0}"],
            "training.defenses.lipschitz.draws",
        );
    }

    #[test]
    fn lipschitz_scale_must_be_positive() {
        rejects(
            &["training.defenses.lipschitz={weight: 1, scale: 0}"],
            "training.defenses.lipschitz.scale",
        );
    }

    #[test]
    fn lipschitz_power_iterations_must_be_positive() {
        rejects(
            &["training.defenses.lipschitz={weight: 1, method: spectral, power_iterations: 0}"],
            "training.defenses.lipschitz.power_iterations",
        );
    }

    #[test]
    fn adversarial_weight_cannot_be_negative() {
        rejects(
            &["training.defenses.adversarial={weight: -1}"],
            "training.defenses.adversarial.weight: must be >= 0",
        );
    }

    #[test]
    fn adversarial_attacker_steps_must_be_positive() {
        rejects(
            &["training.defenses.adversarial={weight: 1, attacker_steps: 0}"],
            "training.defenses.adversarial.attacker_steps",
        );
    }

    #[test]
    fn adversarial_lr_must_be_positive() {
        rejects(
            &["training.defenses.adversarial={weight: 1, lr: 0}"],
            "training.defenses.adversarial.lr",
        );
    }

    #[test]
    fn adversarial_width_must_be_at_least_8() {
        rejects(
            &["training.defenses.adversarial={weight: 1, width: 4}"],
            "training.defenses.adversarial.width",
        );
    }

    const PRUNE: &str = "prune={method: patrol, budget: {flops: 1000000}}";

    #[test]
    fn prune_budget_needs_exactly_one_of_flops_or_fraction() {
        check(&[PRUNE]).unwrap();
        rejects(
            &["prune={method: l1, budget: {}}"],
            "prune.budget: give exactly one",
        );
        rejects(
            &["prune={method: l1, budget: {flops: 5, fraction: 0.5, reference_split: 1}}"],
            "prune.budget: give exactly one",
        );
    }

    #[test]
    fn prune_budget_flops_must_be_positive() {
        rejects(
            &["prune={method: l1, budget: {flops: 0}}"],
            "prune.budget.flops",
        );
    }

    #[test]
    fn prune_budget_fraction_must_be_positive() {
        rejects(
            &["prune={method: l1, budget: {fraction: 0, reference_split: 1}}"],
            "prune.budget.fraction: must be > 0",
        );
    }

    #[test]
    fn prune_budget_fraction_needs_reference_split() {
        rejects(
            &["prune={method: l1, budget: {fraction: 0.5}}"],
            "prune.budget.reference_split: is needed",
        );
    }

    #[test]
    fn prune_budget_reference_split_only_goes_with_fraction() {
        rejects(
            &["prune={method: l1, budget: {flops: 10, reference_split: 1}}"],
            "prune.budget.reference_split: only goes with fraction",
        );
    }

    #[test]
    fn prune_budget_reference_split_must_be_a_split_point() {
        rejects(
            &["prune={method: l1, budget: {fraction: 0.5, reference_split: 6}}"],
            "prune.budget.reference_split: must be a split point in 1..=5, got 6",
        );
    }

    #[test]
    fn prune_max_split_must_be_a_split_point() {
        rejects(
            &[PRUNE, "prune.max_split=0"],
            "prune.max_split: must be a split point",
        );
    }

    #[test]
    fn prune_min_keep_must_be_in_unit_interval() {
        rejects(
            &[PRUNE, "prune.min_keep=0"],
            "prune.min_keep: must be in (0, 1]",
        );
        rejects(&[PRUNE, "prune.min_keep=1.5"], "prune.min_keep");
    }

    #[test]
    fn prune_fine_tune_lr_must_be_positive() {
        rejects(&[PRUNE, "prune.fine_tune_lr=0"], "prune.fine_tune_lr");
    }

    #[test]
    fn prune_mask_epochs_must_be_positive_for_patrol() {
        rejects(&[PRUNE, "prune.mask_epochs=0"], "prune.mask_epochs");
        check(&[PRUNE, "prune.method=l1", "prune.mask_epochs=0"]).unwrap();
    }

    #[test]
    fn prune_mask_lr_must_be_positive() {
        rejects(&[PRUNE, "prune.mask_lr=-1"], "prune.mask_lr");
    }

    #[test]
    fn prune_sparsity_cannot_be_negative() {
        rejects(&[PRUNE, "prune.sparsity=-0.5"], "prune.sparsity");
    }

    #[test]
    fn split_and_prune_are_exclusive() {
        rejects(&[PRUNE, "split=2"], "split: must not be set with prune");
    }

    #[test]
    fn audit_splits_must_be_split_points() {
        rejects(&["audit.splits=[1, 9]"], "audit.splits[1]");
        rejects(&["audit.splits=[]"], "audit.splits");
    }

    #[test]
    fn audit_grid_images_must_be_positive() {
        rejects(&["audit.grid_images=0"], "audit.grid_images");
    }

    #[test]
    fn decoder_settings_must_be_in_range() {
        rejects(
            &["audit.attacks=[{kind: decoder, epochs: 0}]"],
            "audit.attacks[0].epochs",
        );
        rejects(
            &["audit.attacks=[{kind: decoder, batch_size: 1}]"],
            "audit.attacks[0].batch_size",
        );
        rejects(
            &["audit.attacks=[{kind: decoder, lr: 0}]"],
            "audit.attacks[0].lr",
        );
        rejects(
            &["audit.attacks=[{kind: decoder, width: 2}]"],
            "audit.attacks[0].width",
        );
        rejects(
            &["audit.attacks=[{kind: decoder, restarts: 50}]"],
            "audit.attacks[0].restarts",
        );
    }

    #[test]
    fn optimisation_steps_must_be_positive() {
        rejects(
            &["audit.attacks=[{kind: optimisation, steps: 0}]"],
            "audit.attacks[0].steps: must be >= 1",
        );
    }

    #[test]
    fn optimisation_lr_must_be_positive() {
        rejects(
            &["audit.attacks=[{kind: optimisation, lr: 0}]"],
            "audit.attacks[0].lr: must be > 0",
        );
    }

    #[test]
    fn optimisation_tv_weight_cannot_be_negative() {
        rejects(
            &["audit.attacks=[{kind: optimisation, tv_weight: -1}]"],
            "audit.attacks[0].tv_weight: must be >= 0",
        );
    }

    #[test]
    fn optimisation_batch_size_must_be_positive() {
        rejects(
            &["audit.attacks=[{kind: optimisation, batch_size: 0}]"],
            "audit.attacks[0].batch_size: must be >= 1",
        );
    }

    #[test]
    fn optimisation_relax_must_be_a_fraction() {
        rejects(
            &["audit.attacks=[{kind: optimisation, relax: 2}]"],
            "audit.attacks[0].relax: must be in [0, 1]",
        );
    }

    #[test]
    fn dci_width_must_be_at_least_four() {
        rejects(
            &["audit.attacks=[{kind: dci, width: 2}]"],
            "audit.attacks[0].width: must be >= 4",
        );
    }

    #[test]
    fn dci_block_epochs_must_be_positive() {
        rejects(
            &["audit.attacks=[{kind: dci, block_epochs: 0}]"],
            "audit.attacks[0].block_epochs: must be >= 1",
        );
    }

    #[test]
    fn dci_batch_size_must_be_positive() {
        rejects(
            &["audit.attacks=[{kind: dci, batch_size: 0}]"],
            "audit.attacks[0].batch_size: must be >= 1",
        );
    }

    #[test]
    fn dci_lr_must_be_positive() {
        rejects(
            &["audit.attacks=[{kind: dci, lr: -0.1}]"],
            "audit.attacks[0].lr: must be > 0",
        );
    }

    #[test]
    fn dci_cycle_weight_cannot_be_negative() {
        rejects(
            &["audit.attacks=[{kind: dci, cycle_weight: -1}]"],
            "audit.attacks[0].cycle_weight: must be >= 0",
        );
    }

    #[test]
    fn synthesis_count_must_be_at_least_two() {
        rejects(
            &["audit.attacks=[{kind: dci, synthesis: {count: 1}}]"],
            "audit.attacks[0].synthesis.count: must be >= 2",
        );
    }

    #[test]
    fn synthesis_batch_size_must_be_at_least_two() {
        rejects(
            &["audit.attacks=[{kind: dci, synthesis: {batch_size: 1}}]"],
            "audit.attacks[0].synthesis.batch_size: must be >= 2",
        );
    }

    #[test]
    fn synthesis_steps_must_be_positive_for_deep_inversion() {
        rejects(
            &["audit.attacks=[{kind: dci, synthesis: {steps: 0}}]"],
            "audit.attacks[0].synthesis.steps: must be >= 1",
        );
    }

    #[test]
    fn synthesis_lr_must_be_positive() {
        rejects(
            &["audit.attacks=[{kind: dci, synthesis: {lr: 0}}]"],
            "audit.attacks[0].synthesis.lr: must be > 0",
        );
    }

    #[test]
    fn synthesis_bn_weight_cannot_be_negative() {
        rejects(
            &["audit.attacks=[{kind: dci, synthesis: {bn_weight: -1}}]"],
            "audit.attacks[0].synthesis.bn_weight: must be >= 0",
        );
    }

    #[test]
    fn synthesis_class_weight_cannot_be_negative() {
        rejects(
            &["audit.attacks=[{kind: dci, synthesis: {class_weight: -1}}]"],
            "audit.attacks[0].synthesis.class_weight: must be >= 0",
        );
    }

    #[test]
    fn synthesis_tv_weight_cannot_be_negative() {
        rejects(
            &["audit.attacks=[{kind: dci, synthesis: {tv_weight: -1}}]"],
            "audit.attacks[0].synthesis.tv_weight: must be >= 0",
        );
    }

    #[test]
    fn optimisation_and_dci_defaults_are_valid() {
        check(&["audit.attacks=[{kind: optimisation}, {kind: dci}]"]).unwrap();
        check(&["audit.attacks=[{kind: dci, synthesis: {mode: noise, steps: 0}}]"]).unwrap();
    }

    #[test]
    fn unknown_field_is_rejected_with_its_path() {
        rejects(&["training.epochz=3"], "epochz");
        let err = from_str("name: t\nmodel: {arch: cnn6}\nbogus: 1\n", "t.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus: unknown field; allowed: "), "{err}");
    }

    #[test]
    fn wrong_type_is_rejected_with_its_path() {
        let err = check(&["training.epochs=many"]).unwrap_err().to_string();
        assert!(
            err.contains("training.epochs") || err.contains("epochs"),
            "{err}"
        );
    }

    #[test]
    fn unknown_technique_is_rejected() {
        rejects(&["audit.attacks=[{kind: telepathy}]"], "telepathy");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = check(&["training.epochs=0", "training.batch_size=1", "split=9"])
            .unwrap_err()
            .to_string();
        for p in ["training.epochs", "training.batch_size", "split:"] {
            assert!(err.contains(p), "missing {p} in {err}");
        }
    }

    #[test]
    fn overrides_reach_nested_fields_and_list_items() {
        let o: Vec<Override> = [
            "training.optimizer.kind=adam",
            "training.optimizer.lr=0.01",
            "audit.attacks.0.epochs=3",
            "seed=7",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let text = format!("{BASE}audit:\n  attacks:\n    - kind: decoder\n");
        let r = from_str(&text, "t.yaml", &o).unwrap().recipe;
        assert_eq!(r.training.optimizer.lr(), 0.01);
        assert_eq!(r.seed, 7);
        let crate::attack::AttackKind::Decoder(d) = &r.audit.attacks[0] else {
            panic!("expected a decoder attack");
        };
        assert_eq!(d.epochs, 3);
    }

    #[test]
    fn override_into_a_scalar_or_past_a_list_end_is_an_error() {
        let o: Vec<Override> = vec!["seed.x=1".parse().unwrap()];
        let err = from_str(&format!("{BASE}seed: 3\n"), "t.yaml", &o)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--set seed.x") && err.contains("not a section"),
            "{err}"
        );
        // Into an absent scalar field: the typed pass names the field.
        let err = check(&["seed.x=1"]).unwrap_err().to_string();
        assert!(
            err.contains("seed: expected an integer >= 0, got a section"),
            "{err}"
        );
        let o: Vec<Override> = vec!["audit.attacks.3.epochs=1".parse().unwrap()];
        let err = from_str(
            &format!("{BASE}audit: {{attacks: [{{kind: decoder}}]}}\n"),
            "t.yaml",
            &o,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("out of range"), "{err}");
        assert!("novalue".parse::<Override>().is_err());
    }

    #[test]
    fn model_input_must_match_the_embedded_images() {
        rejects(
            &["model.input=[3, 32, 32]"],
            "model.input: [3, 32, 32] does not match the data: data.source images are [1, 28, 28]",
        );
        check(&["model.input=[1, 28, 28]"]).unwrap();
    }

    #[test]
    fn model_input_sizes_must_be_positive() {
        rejects(
            &["model.input=[1, 0, 28]"],
            "model.input: each of C, H, W must be >= 1",
        );
    }

    #[test]
    fn zoo_architecture_must_fit_the_images() {
        rejects(
            &[
                "data.source={kind: cifar10, dir: c}",
                "model.input=[3, 4, 4]",
            ],
            "model.input: [3, 4, 4] does not match",
        );
        let err = check(&[
            "model.input=[1, 4, 4]",
            "data.source={kind: idx, images: i, labels: l}",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("model.arch: 'cnn6' does not fit the data's images [1, 4, 4]"),
            "{err}"
        );
    }

    #[test]
    fn attribute_attacks_must_name_attributes_the_data_has() {
        rejects(
            &["audit.attacks=[{kind: attribute, attributes: [hat]}]"],
            "audit.attacks[0].attributes[0]: 'hat' is not a hidden attribute of the data; allowed: writer, stroke",
        );
        rejects(
            &["audit.attacks=[{kind: attribute, attributes: []}]"],
            "audit.attacks[0].attributes: must name at least one attribute",
        );
        rejects(
            &[
                "data.source={kind: orl, dir: o}",
                "audit.attacks=[{kind: attribute}]",
            ],
            "audit.attacks[0]: the data has no hidden attributes",
        );
        check(&["audit.attacks=[{kind: attribute, attributes: [stroke]}]"]).unwrap();
    }

    #[test]
    fn leakage_problems_are_reported_under_leakage() {
        rejects(&["leakage={examples: 0}"], "leakage.examples");
    }
}
