//! safetensors files with metadata, written atomically (temporary sibling + rename), so
//! a process killed mid-write leaves the previous file intact.

use crate::error::{Result, TrainError};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Writes named f32 tensors and string metadata to `path` atomically.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        bufs.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = bufs
        .iter()
        .map(|(n, s, b)| {
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map_err(|e| TrainError::Checkpoint {
                        file: path.display().to_string(),
                        why: format!("{n}: {e}"),
                    })?,
            ))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::tensor::serialize(views, Some(metadata.clone())).map_err(|e| {
        TrainError::Checkpoint {
            file: path.display().to_string(),
            why: e.to_string(),
        }
    })?;
    let bytes = canonical_header(bytes);
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::io_err(dir, e))?;
        }
    }
    // checkpoints are always flushed: a resume after a power loss needs them
    mirkit_core::npy::write_atomic_with(path, mirkit_core::npy::Durability::Always, |w| {
        w.write_all(&bytes)
    })?;
    Ok(())
}

/// The safetensors crate writes `__metadata__` in `HashMap` order, which differs from
/// process to process: the header is re-serialised with its keys sorted (serde_json's
/// map is ordered) and padded with spaces to 8 bytes as the format asks, so the same
/// weights and metadata always give the same file, byte for byte. Tensor offsets are
/// relative to the data section, which is unchanged.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let parsed = bytes
        .get(..8)
        .map(|n| u64::from_le_bytes(n.try_into().expect("8 bytes")) as usize)
        .and_then(|n| Some((n, bytes.get(8..8 + n)?)))
        .and_then(|(n, h)| Some((n, serde_json::from_slice::<serde_json::Value>(h).ok()?)));
    let Some((n, header)) = parsed else {
        return bytes; // not ours to fix: written as the crate made it
    };
    let mut h = serde_json::to_vec(&header).expect("a parsed value serialises");
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// Reads every tensor (as f32 on the CPU) and the metadata of a safetensors file.
pub fn load(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| crate::error::io_err(path, e))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| TrainError::Checkpoint {
            file: file.clone(),
            why: e.to_string(),
        })?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
        TrainError::Checkpoint {
            file: file.clone(),
            why: e.to_string(),
        }
    })?;
    let tensors: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    // NaN or infinite weights (a diverged run, a corrupted file) are refused by name
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        mirkit_models::weights::check_finite(&file, name, &tensors[name]).map_err(|e| {
            TrainError::Checkpoint {
                file: file.clone(),
                why: match e {
                    mirkit_models::ModelError::Weights { why, .. } => why,
                    e => e.to_string(),
                },
            }
        })?;
    }
    Ok((tensors, metadata))
}
