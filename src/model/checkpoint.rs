//! Self-describing checkpoint files.
//!
//! One file holds the model's spec and training position (JSON), its weights
//! (a burn `ModuleRecord`, which also restores parameter ids so optimiser
//! state keyed by id resumes correctly) and, optionally, the optimiser state.
//! Layout: magic `SGCK1\n`, then three length-prefixed sections (meta JSON,
//! model bytes, optimiser bytes; u64 little-endian lengths), then an FNV-1a
//! 64 checksum of everything before it. A truncated or altered file is an
//! error, never a panic; files are written atomically.

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::{ModelError, ModelSpec, SplitModel};
use crate::fsutil::write_atomic;

const MAGIC: &[u8; 6] = b"SGCK1\n";

/// What a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The model's architecture (after any pruning).
    pub spec: ModelSpec,
    /// Epochs completed when this was written.
    pub epoch: usize,
    /// Free-form state of the stage that wrote it (e.g. the trainer's
    /// metrics history), stored verbatim.
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The metadata.
    pub meta: CheckpointMeta,
    /// The model, on the device it was loaded to.
    pub model: SplitModel,
    /// Serialized optimiser state, if one was saved.
    pub optimizer: Option<Vec<u8>>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

fn err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl Checkpoint {
    /// Writes `model` (and optimiser bytes) atomically to `path`.
    pub fn save(
        path: &Path,
        model: &SplitModel,
        epoch: usize,
        extra: serde_json::Value,
        optimizer: Option<&[u8]>,
    ) -> Result<(), ModelError> {
        let meta = CheckpointMeta {
            spec: model.spec()?,
            epoch,
            extra,
        };
        let meta = serde_json::to_vec(&meta).map_err(|e| err(path, e.to_string()))?;
        // `valid()` first: batch-norm running statistics keep their latest
        // update in a per-thread slot until synced, and a record reads only
        // the synced value (burn 0.22 `RunningState`).
        let weights =
            model
                .valid()
                .into_record()
                .into_bytes()
                .map_err(|e| ModelError::Serialize {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
        let optim = optimizer.unwrap_or(&[]);
        let mut buf = Vec::with_capacity(meta.len() + weights.len() + optim.len() + 64);
        buf.extend_from_slice(MAGIC);
        for section in [&meta[..], &weights[..], optim] {
            buf.extend_from_slice(&(section.len() as u64).to_le_bytes());
            buf.extend_from_slice(section);
        }
        let sum = fnv1a(&buf);
        buf.extend_from_slice(&sum.to_le_bytes());
        write_atomic(path, &buf).map_err(|e| err(path, e.to_string()))
    }

    /// Reads only the metadata (checks the whole file's integrity).
    pub fn read_meta(path: &Path) -> Result<CheckpointMeta, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
        let sections = parse(path, &bytes)?;
        serde_json::from_slice(sections[0]).map_err(|e| err(path, format!("bad metadata: {e}")))
    }

    /// Loads a checkpoint, building the model from the spec stored in it.
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
        let sections = parse(path, &bytes)?;
        let meta: CheckpointMeta = serde_json::from_slice(sections[0])
            .map_err(|e| err(path, format!("bad metadata: {e}")))?;
        let model = SplitModel::new(&meta.spec, device)
            .map_err(|e| err(path, format!("stored architecture is invalid: {e}")))?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(sections[1].to_vec()))
            .map_err(|e| err(path, format!("bad weights: {e}")))?;
        let model = model.try_load_record(record).map_err(|e| {
            err(
                path,
                format!("weights do not fit the stored architecture: {e}"),
            )
        })?;
        let optimizer = (!sections[2].is_empty()).then(|| sections[2].to_vec());
        Ok(Self {
            meta,
            model,
            optimizer,
        })
    }

    /// Loads a checkpoint and checks that its architecture is `expected`.
    pub fn load_expecting(
        path: &Path,
        expected: &ModelSpec,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let ck = Self::load(path, device)?;
        if &ck.meta.spec != expected {
            return Err(err(
                path,
                format!(
                    "architecture mismatch: the checkpoint holds '{}' with {} blocks, the recipe asks for '{}' with {} blocks (or the block sizes differ)",
                    ck.meta.spec.arch,
                    ck.meta.spec.blocks.len(),
                    expected.arch,
                    expected.blocks.len()
                ),
            ));
        }
        Ok(ck)
    }
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<[&'a [u8]; 3], ModelError> {
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(err(path, "not a splitguard checkpoint (bad magic)"));
    }
    let body_end = bytes.len() - 8;
    let stored = u64::from_le_bytes(bytes[body_end..].try_into().expect("8 bytes"));
    let mut pos = MAGIC.len();
    let mut out: [&[u8]; 3] = [&[]; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        if pos + 8 > body_end {
            return Err(err(path, format!("truncated (section {i} header missing)")));
        }
        let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes")) as usize;
        pos += 8;
        if len > body_end - pos {
            return Err(err(
                path,
                format!(
                    "truncated: section {i} claims {len} bytes, {} remain",
                    body_end - pos
                ),
            ));
        }
        *slot = &bytes[pos..pos + len];
        pos += len;
    }
    if pos != body_end || fnv1a(&bytes[..body_end]) != stored {
        return Err(err(path, "corrupt: checksum mismatch"));
    }
    Ok(out)
}
