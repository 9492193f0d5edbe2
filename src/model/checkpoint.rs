//! Self-describing checkpoint files.
//!
//! One file holds the model's spec and training position (JSON), its weights
//! (a burn `ModuleRecord`, which also restores parameter ids so optimiser
//! state keyed by id resumes correctly), optionally the optimiser state, and
//! named binary blobs of whatever else carries state across steps (a
//! defense's attacker network and its optimiser, a cached basis), the way
//! burn-train's `Checkpointer` saves model, optimiser and scheduler together.
//! Layout: magic `SGCK2\n`, then four length-prefixed sections (meta JSON,
//! model bytes, optimiser bytes, blobs; u64 little-endian lengths), then an
//! FNV-1a 64 checksum of everything before it. The blobs section is a list
//! of (name, bytes) pairs, each length-prefixed the same way. Files of the
//! first layout (`SGCK1\n`, three sections, no blobs) still load. A
//! truncated or altered file is an error, never a panic; files are written
//! atomically.

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::{ModelError, ModelSpec, SplitModel};
use crate::fsutil::write_atomic;

const MAGIC: &[u8; 6] = b"SGCK2\n";
/// The first layout: no blobs section.
const MAGIC_V1: &[u8; 6] = b"SGCK1\n";

/// Named binary state saved beside the model (see the module docs).
pub type Blobs = Vec<(String, Vec<u8>)>;

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
    /// Named binary state of the stage that wrote it (empty in files of the
    /// first layout).
    pub blobs: Blobs,
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
        Self::save_with_blobs(path, model, epoch, extra, optimizer, &[])
    }

    /// Writes `model`, optimiser bytes and named `blobs` atomically to `path`.
    pub fn save_with_blobs(
        path: &Path,
        model: &SplitModel,
        epoch: usize,
        extra: serde_json::Value,
        optimizer: Option<&[u8]>,
        blobs: &[(String, Vec<u8>)],
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
        let mut named = Vec::new();
        for (name, bytes) in blobs {
            for part in [name.as_bytes(), &bytes[..]] {
                named.extend_from_slice(&(part.len() as u64).to_le_bytes());
                named.extend_from_slice(part);
            }
        }
        let mut buf =
            Vec::with_capacity(meta.len() + weights.len() + optim.len() + named.len() + 64);
        buf.extend_from_slice(MAGIC);
        for section in [&meta[..], &weights[..], optim, &named[..]] {
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
        let blobs = parse_blobs(path, sections[3])?;
        Ok(Self {
            meta,
            model,
            optimizer,
            blobs,
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

/// Reads the length-prefixed sections of `bytes`: four in the current
/// layout, three (and an empty blobs section) in the first.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<[&'a [u8]; 4], ModelError> {
    let count = match bytes.get(..MAGIC.len()) {
        Some(m) if m == MAGIC => 4,
        Some(m) if m == MAGIC_V1 => 3,
        _ => return Err(err(path, "not a splitguard checkpoint (bad magic)")),
    };
    if bytes.len() < MAGIC.len() + 8 {
        return Err(err(path, "not a splitguard checkpoint (bad magic)"));
    }
    let body_end = bytes.len() - 8;
    let stored = u64::from_le_bytes(bytes[body_end..].try_into().expect("8 bytes"));
    let mut pos = MAGIC.len();
    let mut out: [&[u8]; 4] = [&[]; 4];
    for (i, slot) in out.iter_mut().enumerate().take(count) {
        *slot = take(path, bytes, &mut pos, body_end, &format!("section {i}"))?;
    }
    if pos != body_end || fnv1a(&bytes[..body_end]) != stored {
        return Err(err(path, "corrupt: checksum mismatch"));
    }
    Ok(out)
}

/// One length-prefixed part of `bytes[..end]` at `pos`, moving `pos` past it.
fn take<'a>(
    path: &Path,
    bytes: &'a [u8],
    pos: &mut usize,
    end: usize,
    what: &str,
) -> Result<&'a [u8], ModelError> {
    if *pos + 8 > end {
        return Err(err(path, format!("truncated ({what} header missing)")));
    }
    let len = u64::from_le_bytes(bytes[*pos..*pos + 8].try_into().expect("8 bytes")) as usize;
    *pos += 8;
    if len > end - *pos {
        return Err(err(
            path,
            format!(
                "truncated: {what} claims {len} bytes, {} remain",
                end - *pos
            ),
        ));
    }
    let part = &bytes[*pos..*pos + len];
    *pos += len;
    Ok(part)
}

/// The (name, bytes) pairs of the blobs section.
fn parse_blobs(path: &Path, section: &[u8]) -> Result<Blobs, ModelError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < section.len() {
        let name = take(path, section, &mut pos, section.len(), "blob name")?;
        let name = std::str::from_utf8(name)
            .map_err(|_| err(path, "corrupt: a blob name is not UTF-8"))?;
        let data = take(path, section, &mut pos, section.len(), "blob")?;
        out.push((name.to_string(), data.to_vec()));
    }
    Ok(out)
}
