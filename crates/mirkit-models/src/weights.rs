//! Weight files: safetensors headers read through the `safetensors` crate (metadata and
//! tensor names without loading the data), the tag list stored in the metadata, and the
//! layout check every model runs at load time (each expected tensor present with its
//! shape, nothing unexpected).
//!
//! ```no_run
//! use mirkit_models::weights::Header;
//! let h = Header::read("fine_tuned.safetensors")?;
//! println!("{:?} {}", h.metadata().get("arch"), h.has_tensor("dense.weight"));
//! # Ok::<(), mirkit_models::ModelError>(())
//! ```

use crate::error::{ModelError, Result};
use candle_core::Tensor;
use safetensors::tensor::{Metadata, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// The header of a safetensors file or buffer: tensor names, shapes and metadata.
#[derive(Debug, Clone)]
pub struct Header {
    meta: Metadata,
}

fn werr(file: &str, why: impl Into<String>) -> ModelError {
    ModelError::Weights {
        file: file.to_string(),
        why: why.into(),
    }
}

impl Header {
    /// Reads the header of a file (not the tensor data).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        use std::io::Read;
        let path = path.as_ref();
        let file = path.display().to_string();
        let mut f = std::fs::File::open(path).map_err(|e| werr(&file, e.to_string()))?;
        let mut n = [0u8; 8];
        f.read_exact(&mut n)
            .map_err(|e| werr(&file, format!("not a safetensors file ({e})")))?;
        let n = u64::from_le_bytes(n);
        // the safetensors crate's own bound on header sizes
        if n > 100_000_000 {
            return Err(werr(
                &file,
                format!("header of {n} bytes: not a safetensors file"),
            ));
        }
        let mut h = vec![0u8; n as usize];
        f.read_exact(&mut h)
            .map_err(|e| werr(&file, format!("truncated header ({e})")))?;
        let meta: Metadata =
            serde_json::from_slice(&h).map_err(|e| werr(&file, format!("bad header: {e}")))?;
        Ok(Self { meta })
    }

    /// Parses the header of a whole safetensors buffer (e.g. weights compiled into a
    /// binary), checking that the buffer holds every tensor it announces.
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| werr(label, format!("not a valid safetensors buffer: {e}")))?;
        Ok(Self { meta })
    }

    /// The `__metadata__` map (empty when the file has none).
    pub fn metadata(&self) -> HashMap<String, String> {
        self.meta.metadata().clone().unwrap_or_default()
    }

    /// Whether the file holds a tensor of this name.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.meta.info(name).is_some()
    }
}

/// The `__metadata__` of a safetensors file, reading its header only.
pub fn metadata(path: impl AsRef<Path>) -> Result<HashMap<String, String>> {
    Ok(Header::read(path)?.metadata())
}

/// The tag list stored as JSON under `tags` in a weights file's metadata.
pub fn tags_from_meta(meta: &HashMap<String, String>, file: &str) -> Result<Vec<String>> {
    match meta.get("tags") {
        Some(t) => serde_json::from_str(t).map_err(|e| werr(file, format!("tags: {e}"))),
        None => Err(werr(file, "no tag list in the metadata")),
    }
}

/// Checks that `map` holds exactly the tensors of `expected` with their shapes, all
/// values finite: a missing, mis-shaped or unexpected tensor, or a NaN or infinite value
/// (weights of a diverged training, a corrupted file), is an error naming it.
pub fn check_layout(
    file: &str,
    map: &HashMap<String, Tensor>,
    expected: &[(String, Vec<usize>)],
) -> Result<()> {
    for (name, shape) in expected {
        match map.get(name) {
            None => {
                return Err(ModelError::MissingTensor {
                    file: file.to_string(),
                    name: name.clone(),
                })
            }
            Some(t) if t.dims() != shape.as_slice() => {
                return Err(ModelError::WrongShape {
                    file: file.to_string(),
                    name: name.clone(),
                    got: t.dims().to_vec(),
                    expected: shape.clone(),
                })
            }
            _ => {}
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<String> = map
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(ModelError::UnexpectedTensors {
            file: file.to_string(),
            names: extra,
        });
    }
    for (name, _) in expected {
        check_finite(file, name, &map[name])?;
    }
    Ok(())
}

/// A tensor's values all finite, or an error naming the file, the tensor and the first
/// bad value.
pub fn check_finite(file: &str, name: &str, t: &Tensor) -> Result<()> {
    let v: Vec<f32> = t
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(werr(
            file,
            format!("tensor {name} holds {} at index {i}", v[i]),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_from_bytes_and_file_agree_and_bad_input_is_named() {
        let t = Tensor::zeros((2, 3), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let dir = mirkit_core::testing::TmpDir::new("mirkit-weights-");
        let path = dir.join("w.safetensors");
        let meta: HashMap<String, String> = [("tags".to_string(), "[\"a\",\"b\"]".to_string())]
            .into_iter()
            .collect();
        candle_core::safetensors::save(&[("x", t)].into_iter().collect(), &path).unwrap();
        // candle writes no metadata: add it through the safetensors crate
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
        let with_meta = safetensors::serialize(views, Some(meta.clone())).unwrap();
        std::fs::write(&path, &with_meta).unwrap();
        let a = Header::read(&path).unwrap();
        let b = Header::from_bytes(&with_meta, "w").unwrap();
        assert_eq!(a.metadata(), meta);
        assert_eq!(b.metadata(), meta);
        assert!(a.has_tensor("x") && !a.has_tensor("y"));
        assert_eq!(tags_from_meta(&a.metadata(), "w").unwrap(), ["a", "b"]);
        // a truncated buffer names the label; garbage files name the file
        let e = Header::from_bytes(&with_meta[..with_meta.len() - 4], "cut").unwrap_err();
        assert!(e.to_string().starts_with("cut: "), "{e}");
        std::fs::write(&path, b"definitely not weights").unwrap();
        let e = Header::read(&path).unwrap_err().to_string();
        assert!(e.contains("w.safetensors"), "{e}");
    }

    /// Issue #19 item 11: NaN or infinite weights are refused by name, wherever the model
    /// comes from (every loader checks its layout here).
    #[test]
    fn non_finite_weights_are_refused_by_name() {
        let dev = candle_core::Device::Cpu;
        let ok = Tensor::new(&[1.0f32, -2.0, 0.5], &dev).unwrap();
        let expected = vec![("a".to_string(), vec![3]), ("b".to_string(), vec![3])];
        for bad in [f32::NAN, f32::INFINITY] {
            let b = Tensor::new(&[0.0f32, 1.0, bad], &dev).unwrap();
            let map: HashMap<String, Tensor> =
                [("a".to_string(), ok.clone()), ("b".to_string(), b)].into();
            let e = check_layout("m.safetensors", &map, &expected)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("m.safetensors")
                    && e.contains("tensor b holds")
                    && e.contains("index 2"),
                "{e}"
            );
        }
        let map: HashMap<String, Tensor> =
            [("a".to_string(), ok.clone()), ("b".to_string(), ok)].into();
        check_layout("m.safetensors", &map, &expected).unwrap();
    }
}
