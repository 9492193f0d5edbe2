//! Bring your own weights: load a PyTorch `state_dict` (`.pt`/`.pth`) or a
//! safetensors file into a model built from its spec.
//!
//! The file is read in PyTorch's layout and naming, whatever its format:
//! linear weights `[out, in]`, batch-norm `weight`/`bias`, and one tensor per
//! parameter named after our module path with the enum variant left out
//! (`blocks.0.conv.weight`, `blocks.0.bn.running_mean`, ...; see
//! [`expected_tensors`]). burn's stores read the file and its
//! `PyTorchToBurnAdapter` transposes and renames on the way in.
//!
//! burn's own `load_from` applies what fits and reports the rest, tensor by
//! tensor, after it has changed the model; so the file's names and shapes are
//! checked against the model first, and a file that does not fit is refused
//! whole, with every missing, unexpected and mismatched tensor listed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot,
    ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;
use serde::{Deserialize, Serialize};

use super::{ModelError, SplitModel};

/// File format of a weights file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightsFormat {
    /// A safetensors file (`.safetensors`), e.g. from
    /// `safetensors.torch.save_file(model.state_dict(), path)`.
    Safetensors,
    /// A PyTorch pickle (`.pt`, `.pth`), e.g. from
    /// `torch.save(model.state_dict(), path)`.
    Pytorch,
}

impl WeightsFormat {
    /// The format a file name's extension implies: `.safetensors` or
    /// `.pt`/`.pth`/`.bin`/`.ckpt`; `None` for anything else.
    pub fn from_extension(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => Some(Self::Safetensors),
            "pt" | "pth" | "bin" | "ckpt" => Some(Self::Pytorch),
            _ => None,
        }
    }
}

/// The `model.weights:` section: a pretrained model's weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightsConfig {
    /// The file; a relative path is relative to the recipe's folder.
    pub path: PathBuf,
    /// `safetensors` or `pytorch` (default: from the extension, `.safetensors`
    /// or `.pt`/`.pth`/`.bin`/`.ckpt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WeightsFormat>,
    /// Renames applied to the file's tensor names before matching, in order:
    /// `[regex, replacement]` pairs, the replacement may use `$1`, ... (default
    /// none). E.g. `["^features\\.0\\.", "blocks.0.conv."]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_map: Vec<[String; 2]>,
    /// PyTorch files only: the entry of a checkpoint dictionary that holds the
    /// state dict, e.g. `state_dict` or `model_state_dict` (default: the file
    /// is the state dict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_level_key: Option<String>,
    /// Ignore tensors of the file that the model has no place for (default
    /// false: they are an error, since they usually mean the blocks do not
    /// describe the network the file came from). PyTorch's batch-norm
    /// `num_batches_tracked` counters are always ignored.
    #[serde(default)]
    pub allow_extra: bool,
}

impl WeightsConfig {
    /// The format: the one given, or the one the extension implies.
    pub fn resolved_format(&self) -> Result<WeightsFormat, ModelError> {
        self.format
            .or_else(|| WeightsFormat::from_extension(&self.path))
            .ok_or_else(|| {
                weights_err(
                    &self.path,
                    "cannot tell the format from the extension (.safetensors, .pt, .pth, .bin, .ckpt); set model.weights.format to safetensors or pytorch",
                )
            })
    }

    /// The key map as burn's remapper; an invalid regex is an error naming it.
    pub fn remapper(&self) -> Result<KeyRemapper, ModelError> {
        let mut r = KeyRemapper::new();
        for [from, to] in &self.key_map {
            r = r.add_pattern(from, to.clone()).map_err(|e| {
                weights_err(&self.path, format!("key_map: invalid regex '{from}': {e}"))
            })?;
        }
        Ok(r)
    }
}

fn weights_err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Weights {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// A tensor a weights file must hold: its name and its shape, both in
/// PyTorch's convention (linear weights `[out, in]`, batch-norm `weight`
/// and `bias`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorKey {
    /// E.g. `blocks.3.linear.weight`.
    pub name: String,
    /// E.g. `[128, 576]`.
    pub shape: Vec<usize>,
}

/// The tensors a weights file for `model` must hold, in module order.
///
/// Conv blocks hold `blocks.i.conv.{weight,bias}` and, with batch-norm,
/// `blocks.i.bn.{weight,bias,running_mean,running_var}`; linear blocks
/// `blocks.i.linear.*` and `blocks.i.bn.*`; residual blocks
/// `blocks.i.{conv1,bn1,conv2,bn2}.*`.
pub fn expected_tensors(model: &SplitModel) -> Vec<TensorKey> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| TensorKey {
            name: t.name.clone(),
            shape: t.shape.to_vec(),
        })
        .collect()
}

/// Reads the tensors of a weights file (names after `key_map`), without
/// their data.
fn read_tensors(cfg: &WeightsConfig) -> Result<Vec<PackTensor>, ModelError> {
    let path = &cfg.path;
    if !path.is_file() {
        return Err(weights_err(path, "no such file"));
    }
    let format = cfg.resolved_format()?;
    let remapper = cfg.remapper()?;
    let read_err = |e: &dyn std::fmt::Display| {
        weights_err(
            path,
            format!("cannot read it as a {format:?} file: {e}").to_lowercase(),
        )
    };
    // Index renumbering is off: names match exactly what the file and the
    // key map say, the same for both formats.
    let tensors: Vec<PackTensor> = match format {
        WeightsFormat::Safetensors => {
            if cfg.top_level_key.is_some() {
                return Err(weights_err(
                    path,
                    "top_level_key applies to PyTorch files only",
                ));
            }
            let mut store = SafetensorsStore::from_file(path)
                .remap(remapper)
                .map_indices_contiguous(false);
            store
                .get_all_tensors()
                .map_err(|e| read_err(&e))?
                .values()
                .cloned()
                .collect()
        }
        WeightsFormat::Pytorch => {
            let mut store = PytorchStore::from_file(path)
                .remap(remapper)
                .map_indices_contiguous(false);
            if let Some(key) = &cfg.top_level_key {
                store = store.with_top_level_key(key.clone());
            }
            store
                .get_all_tensors()
                .map_err(|e| read_err(&e))?
                .values()
                .cloned()
                .collect()
        }
    };
    Ok(tensors)
}

/// How a file's tensors compare with what a model needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeightsCheck {
    /// Tensors the model needs that the file lacks (with the expected shape).
    pub missing: Vec<TensorKey>,
    /// Tensors the file has that the model has no place for (with their shape).
    pub unexpected: Vec<TensorKey>,
    /// Tensors whose shape differs: (name, expected, found).
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Tensors whose data type is not a float: (name, dtype).
    pub not_float: Vec<(String, String)>,
}

impl WeightsCheck {
    /// Compares a file's tensors (name, shape, is-float, dtype) with the
    /// expected ones. `num_batches_tracked` counters are ignored.
    pub fn compare(expected: &[TensorKey], found: &[(String, Vec<usize>, bool, String)]) -> Self {
        let found: BTreeMap<&str, _> = found
            .iter()
            .filter(|(n, ..)| !n.ends_with("num_batches_tracked"))
            .map(|(n, s, f, d)| (n.as_str(), (s, *f, d)))
            .collect();
        let mut check = Self::default();
        for key in expected {
            match found.get(key.name.as_str()) {
                None => check.missing.push(key.clone()),
                Some((shape, is_float, dtype)) => {
                    if **shape != key.shape {
                        check.mismatched.push((
                            key.name.clone(),
                            key.shape.clone(),
                            (*shape).clone(),
                        ));
                    } else if !is_float {
                        check.not_float.push((key.name.clone(), (*dtype).clone()));
                    }
                }
            }
        }
        let names: std::collections::HashSet<&str> =
            expected.iter().map(|k| k.name.as_str()).collect();
        for (name, (shape, ..)) in &found {
            if !names.contains(name) {
                check.unexpected.push(TensorKey {
                    name: name.to_string(),
                    shape: (*shape).clone(),
                });
            }
        }
        check
    }

    /// True when the file fits (unexpected tensors count only without
    /// `allow_extra`).
    pub fn fits(&self, allow_extra: bool) -> bool {
        self.missing.is_empty()
            && self.mismatched.is_empty()
            && self.not_float.is_empty()
            && (allow_extra || self.unexpected.is_empty())
    }

    /// One line per problem, for the error message.
    pub fn describe(&self, allow_extra: bool) -> String {
        let mut lines = Vec::new();
        for k in &self.missing {
            lines.push(format!(
                "missing: {} (expected shape {:?})",
                k.name, k.shape
            ));
        }
        for (name, expected, found) in &self.mismatched {
            lines.push(format!(
                "shape mismatch: {name}: expected {expected:?}, found {found:?}"
            ));
        }
        for (name, dtype) in &self.not_float {
            lines.push(format!(
                "wrong type: {name}: expected a float tensor, found {dtype}"
            ));
        }
        if !allow_extra {
            for k in &self.unexpected {
                lines.push(format!("unexpected: {} (shape {:?})", k.name, k.shape));
            }
        }
        let mut msg = format!(
            "the file does not fit the model ({} problem{}):\n    {}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n    ")
        );
        if !self.missing.is_empty() || !self.unexpected.is_empty() {
            msg += "\n  tensor names follow the model's module paths in PyTorch layout (list them with `splitguard model keys --recipe R.yaml`); rename the file's with model.weights.key_map";
        }
        if !allow_extra && !self.unexpected.is_empty() && self.missing.is_empty() {
            msg += ", or ignore extra tensors with model.weights.allow_extra: true";
        }
        msg
    }
}

/// Lists a file's tensor names and shapes (after `key_map`), sorted.
pub fn file_tensors(cfg: &WeightsConfig) -> Result<Vec<TensorKey>, ModelError> {
    Ok(read_tensors(cfg)?
        .into_iter()
        .map(|t| TensorKey {
            name: t.name.clone(),
            shape: t.shape.to_vec(),
        })
        .collect())
}

/// Loads `cfg`'s file into `model`: every tensor the model needs must be in
/// the file with the right shape, else nothing is loaded and the error lists
/// each missing, mismatched and (without `allow_extra`) unexpected tensor.
/// Half and double precision tensors are cast to the model's f32.
pub fn load_weights(mut model: SplitModel, cfg: &WeightsConfig) -> Result<SplitModel, ModelError> {
    let tensors = read_tensors(cfg)?;
    let found: Vec<(String, Vec<usize>, bool, String)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.to_vec(),
                t.dtype.is_float(),
                format!("{:?}", t.dtype),
            )
        })
        .collect();
    let check = WeightsCheck::compare(&expected_tensors(&model), &found);
    if !check.fits(cfg.allow_extra) {
        return Err(weights_err(&cfg.path, check.describe(cfg.allow_extra)));
    }
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)));
    let result = model.apply(tensors, None, Some(adapter), true);
    if !result.errors.is_empty() || !result.missing.is_empty() {
        let mut lines: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        lines.extend(result.missing.iter().map(|(p, _)| format!("missing: {p}")));
        return Err(weights_err(
            &cfg.path,
            format!("loading failed:\n    {}", lines.join("\n    ")),
        ));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BlockSpec, ModelSpec};
    use burn::prelude::Device;

    /// conv 3x3 4 (pool 2, bn) -> residual 4 -> linear 3, on 1x8x8.
    fn small_spec() -> ModelSpec {
        serde_norway::from_str(
            "arch: small\ninput: [1, 8, 8]\nblocks:\n  - {kind: conv, out_channels: 4, pool: 2}\n  - {kind: residual}\n  - {kind: linear, out_features: 3, activation: none}\n",
        )
        .expect("a valid spec")
    }

    fn key(name: &str, shape: &[usize]) -> TensorKey {
        TensorKey {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn expected_tensors_use_pytorch_names_and_layout() {
        let model = SplitModel::new(&small_spec(), &Device::flex()).unwrap();
        let mut got = expected_tensors(&model);
        got.sort_by(|a, b| a.name.cmp(&b.name));
        let bn = |p: &str| {
            ["weight", "bias", "running_mean", "running_var"]
                .map(|s| key(&format!("{p}.{s}"), &[4]))
        };
        let mut want = vec![
            key("blocks.0.conv.weight", &[4, 1, 3, 3]),
            key("blocks.0.conv.bias", &[4]),
            key("blocks.1.conv1.weight", &[4, 4, 3, 3]),
            key("blocks.1.conv1.bias", &[4]),
            key("blocks.1.conv2.weight", &[4, 4, 3, 3]),
            key("blocks.1.conv2.bias", &[4]),
            // PyTorch's [out, in], not burn's [in, out].
            key("blocks.2.linear.weight", &[3, 64]),
            key("blocks.2.linear.bias", &[3]),
        ];
        want.extend(bn("blocks.0.bn"));
        want.extend(bn("blocks.1.bn1"));
        want.extend(bn("blocks.1.bn2"));
        want.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(got, want);
    }

    #[test]
    fn convolutions_without_bias_expect_no_bias_tensor() {
        let mut spec = small_spec();
        for b in &mut spec.blocks {
            match b {
                BlockSpec::Conv(c) => c.bias = false,
                BlockSpec::Residual(r) => r.bias = false,
                _ => {}
            }
        }
        let model = SplitModel::new(&spec, &Device::flex()).unwrap();
        let names: Vec<String> = expected_tensors(&model)
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names.len(), 20 - 3, "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.contains("conv") && n.ends_with("bias"))
        );
        let infos = spec.infos().unwrap();
        // conv: 4*9 weights + 8 batch-norm; residual: 2 * (4*4*9 + 8).
        assert_eq!((infos[0].params, infos[1].params), (36 + 8, 2 * (144 + 8)));
        // burn also counts the running statistics (2 x 4 in each of the 3
        // batch-norm layers); the spec's count leaves them out.
        assert_eq!(
            burn::module::Module::num_params(&model) as u64,
            infos.iter().map(|i| i.params).sum::<u64>() + 3 * 8
        );
    }

    fn found(entries: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>, bool, String)> {
        entries
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec(), true, "F32".to_string()))
            .collect()
    }

    #[test]
    fn check_lists_missing_mismatched_and_unexpected_tensors() {
        let expected = vec![
            key("a.weight", &[3, 2]),
            key("a.bias", &[3]),
            key("b", &[1]),
        ];
        let check = WeightsCheck::compare(
            &expected,
            &found(&[("a.weight", &[2, 3]), ("b", &[1]), ("c", &[5])]),
        );
        assert_eq!(check.missing, vec![key("a.bias", &[3])]);
        assert_eq!(
            check.mismatched,
            vec![("a.weight".to_string(), vec![3, 2], vec![2, 3])]
        );
        assert_eq!(check.unexpected, vec![key("c", &[5])]);
        assert!(!check.fits(true));
        let msg = check.describe(false);
        assert!(
            msg.contains("missing: a.bias (expected shape [3])"),
            "{msg}"
        );
        assert!(
            msg.contains("shape mismatch: a.weight: expected [3, 2], found [2, 3]"),
            "{msg}"
        );
        assert!(msg.contains("unexpected: c (shape [5])"), "{msg}");
        assert!(msg.contains("(3 problems)"), "{msg}");
    }

    #[test]
    fn unexpected_tensors_fail_only_without_allow_extra() {
        let expected = vec![key("a", &[1])];
        let check = WeightsCheck::compare(&expected, &found(&[("a", &[1]), ("extra", &[2])]));
        assert!(!check.fits(false));
        assert!(check.fits(true));
        assert!(check.describe(false).contains("allow_extra"));
    }

    #[test]
    fn num_batches_tracked_counters_are_ignored() {
        let expected = vec![key("bn.weight", &[2])];
        let check = WeightsCheck::compare(
            &expected,
            &found(&[("bn.weight", &[2]), ("bn.num_batches_tracked", &[])]),
        );
        assert!(check.fits(false), "{check:?}");
    }

    #[test]
    fn integer_tensor_in_a_float_slot_is_reported() {
        let expected = vec![key("w", &[2])];
        let found = vec![("w".to_string(), vec![2], false, "I64".to_string())];
        let check = WeightsCheck::compare(&expected, &found);
        assert!(!check.fits(true));
        assert!(check.describe(true).contains("wrong type: w"));
    }

    #[test]
    fn format_follows_the_extension_unless_given() {
        let cfg = |p: &str, f: Option<WeightsFormat>| WeightsConfig {
            path: p.into(),
            format: f,
            key_map: vec![],
            top_level_key: None,
            allow_extra: false,
        };
        assert_eq!(
            cfg("n.safetensors", None).resolved_format().unwrap(),
            WeightsFormat::Safetensors
        );
        assert_eq!(
            cfg("n.PTH", None).resolved_format().unwrap(),
            WeightsFormat::Pytorch
        );
        assert_eq!(
            cfg("n.weights", Some(WeightsFormat::Pytorch))
                .resolved_format()
                .unwrap(),
            WeightsFormat::Pytorch
        );
        let err = cfg("n.weights", None).resolved_format().unwrap_err();
        assert!(err.to_string().contains("n.weights"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let model = SplitModel::new(&small_spec(), &Device::flex()).unwrap();
        let cfg = WeightsConfig {
            path: "/nonexistent/net.safetensors".into(),
            format: None,
            key_map: vec![],
            top_level_key: None,
            allow_extra: false,
        };
        let err = load_weights(model, &cfg).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/net.safetensors") && err.contains("no such file"),
            "{err}"
        );
    }
}
