//! Creating and loading any zoo model built from a [`VarBuilder`]: seeded creation with
//! PyTorch's default initialisation, and loading from safetensors with every tensor
//! checked (a missing, mis-shaped or unexpected tensor is a typed error naming it).
//!
//! ```no_run
//! use mirkit_models::{create, sample_cnn::{SampleCnn, SampleCnnConfig}};
//! let cfg = SampleCnnConfig::published(true);
//! // the same seed gives the same network on every machine
//! let (model, varmap) = create::seeded(|vb| SampleCnn::new(&cfg, vb), 42)?;
//! varmap.save("samplecnn_se.safetensors")?;
//! let again = create::load("samplecnn_se.safetensors", |vb| SampleCnn::new(&cfg, vb))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::Result;
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use std::path::Path;

/// A freshly built model whose every parameter is drawn from `seed` with PyTorch's
/// default scheme ([`mirkit_nn::init::reinit_pytorch_default`]); its [`VarMap`] holds the
/// trainable variables under the model's state-dict names.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use mirkit_models::create;
/// use mirkit_models::sample_cnn::{SampleCnn, SampleCnnConfig, INPUT_LEN};
/// let cfg = SampleCnnConfig { n_class: 10, ..SampleCnnConfig::published(false) };
/// let (a, vars_a) = create::seeded(|vb| SampleCnn::new(&cfg, vb), 42)?;
/// let (b, _) = create::seeded(|vb| SampleCnn::new(&cfg, vb), 42)?;
/// let x = Tensor::zeros((1, INPUT_LEN), candle_core::DType::F32, &Device::Cpu)?;
/// let (ya, yb) = (a.forward_t(&x, false)?, b.forward_t(&x, false)?);
/// assert_eq!(ya.to_vec2::<f32>()?, yb.to_vec2::<f32>()?); // same seed, same network
/// assert_eq!(ya.dims(), [1, 10]);
/// // save, and load with every tensor name and shape checked
/// let path = std::env::temp_dir().join(format!("mirkit-doc-scnn-{}.safetensors", std::process::id()));
/// vars_a.save(&path)?;
/// let c = create::load(&path, |vb| SampleCnn::new(&cfg, vb))?;
/// assert_eq!(c.forward_t(&x, false)?.to_vec2::<f32>()?, ya.to_vec2::<f32>()?);
/// let wrong = SampleCnnConfig { n_class: 50, ..cfg.clone() }; // shapes differ: refused
/// assert!(create::load(&path, |vb| SampleCnn::new(&wrong, vb)).is_err());
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seeded<M>(build: impl FnOnce(VarBuilder) -> Result<M>, seed: u64) -> Result<(M, VarMap)> {
    let vm = VarMap::new();
    let m = build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))?;
    mirkit_nn::init::reinit_pytorch_default(&vm, seed)?;
    Ok((m, vm))
}

/// Every tensor name and shape a model built by `build` reads, sorted by name.
pub fn layout<M>(build: impl FnOnce(VarBuilder) -> Result<M>) -> Result<Vec<(String, Vec<usize>)>> {
    let vm = VarMap::new();
    build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))?;
    let data = vm.data().lock().expect("VarMap lock poisoned");
    let mut v: Vec<(String, Vec<usize>)> = data
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    v.sort();
    Ok(v)
}

/// Loads a model from a safetensors file after checking that it holds exactly the
/// tensors `build` reads, with their shapes.
pub fn load<M>(path: impl AsRef<Path>, build: impl Fn(VarBuilder) -> Result<M>) -> Result<M> {
    let path = path.as_ref();
    let map = candle_core::safetensors::load(path, &Device::Cpu)?;
    from_tensors(map, &path.display().to_string(), build)
}

/// [`load`] from safetensors bytes; `label` names them in errors.
pub fn load_bytes<M>(
    bytes: &[u8],
    label: &str,
    build: impl Fn(VarBuilder) -> Result<M>,
) -> Result<M> {
    let map = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
    from_tensors(map, label, build)
}

fn from_tensors<M>(
    map: std::collections::HashMap<String, candle_core::Tensor>,
    file: &str,
    build: impl Fn(VarBuilder) -> Result<M>,
) -> Result<M> {
    crate::weights::check_layout(file, &map, &layout(&build)?)?;
    let map = map
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    build(VarBuilder::from_tensors(map, DType::F32, &Device::Cpu))
}
