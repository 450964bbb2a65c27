//! Zoo models wrapped for training from scratch: a log-mel front end computed with
//! mirkit-dsp on the loader threads, an input batch norm, and the network.
//!
//! Every architecture takes 3.69 s (59 049 samples at 16 kHz):
//! * the short-chunk CNN / ResNet (Won et al. 2020) through torchaudio's
//!   `MelSpectrogram(n_fft=512, hop=256, f_max=8000, n_mels=128)` (HTK, no norm) and
//!   `AmplitudeToDB`;
//! * SampleCNN, SampleCNN+SE (Lee et al. 2017; Kim et al. 2018 as in Won 2020) and
//!   ReSE-2-Multi (Kim et al. 2018) on the raw waveform.
//!
//! The base width `channels` scales each down (published: 128 — e.g. 3.7 M parameters
//! for the short-chunk CNN; 16 trains on a laptop CPU in minutes). The raw-waveform models
//! train without their in-block dropout, so that a resumed run stays bit-identical to an
//! uninterrupted one (the dropout generator's state is not part of the checkpoint).

use crate::data::TargetScaling;
use crate::error::{invalid, Result, TrainError};
use crate::trainer::{sorted_vars, Trainable};
use candle_core::{DType, Device, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, ModuleT, VarBuilder, VarMap};
use mirkit_dsp::{FeatureConfig, FeatureExtractor};
use mirkit_models::rese2::{ReSe2, ReSe2Config};
use mirkit_models::sample_cnn::{SampleCnn, SampleCnnConfig};
use mirkit_models::short_chunk::{ShortChunk, ShortChunkConfig};
use std::collections::HashMap;
use std::path::Path;

/// Samples per short-chunk input (3^10 = 59 049, 3.69 s at 16 kHz).
pub const SHORT_CHUNK_LEN: usize = 59_049;

/// Architectures trainable from scratch by name.
pub const ARCHITECTURES: [&str; 5] = [
    "short-chunk-cnn",
    "short-chunk-resnet",
    "samplecnn",
    "samplecnn-se",
    "rese2",
];

/// The network of a [`ScratchModel`].
enum Net {
    /// Log-mel input.
    ShortChunk(ShortChunk),
    /// Raw waveform input.
    SampleCnn(SampleCnn),
    /// Raw waveform input.
    ReSe2(ReSe2),
}

/// A zoo model with its front end, ready for [`crate::trainer::train`].
pub struct ScratchModel {
    arch: String,
    channels: usize,
    classes: Vec<String>,
    fx: FeatureExtractor,
    spec_bn: Option<BatchNorm>,
    net: Net,
    vm: VarMap,
    /// Regression: the standardisation of the targets.
    scaling: Option<TargetScaling>,
}

fn front_end() -> Result<FeatureExtractor> {
    let mut cfg = FeatureConfig::won2020();
    if let Some(m) = cfg.mel.as_mut() {
        m.n_mels = 128;
    }
    Ok(FeatureExtractor::new(cfg)?)
}

impl ScratchModel {
    /// A freshly initialised model (`arch` one of [`ARCHITECTURES`]; PyTorch's default
    /// initialisation drawn from `seed`).
    pub fn new(arch: &str, channels: usize, classes: &[String], seed: u64) -> Result<Self> {
        let m = Self::build(arch, channels, classes)?;
        // seeded re-initialisation (Candle's own RNG cannot be seeded): PyTorch's defaults
        mirkit_nn::init::reinit_pytorch_default(&m.vm, seed)?;
        Ok(m)
    }

    fn build(arch: &str, channels: usize, classes: &[String]) -> Result<Self> {
        if !ARCHITECTURES.contains(&arch) {
            return Err(invalid(
                "architecture",
                arch,
                &format!("one of {}", ARCHITECTURES.join(", ")),
            ));
        }
        if channels == 0 || classes.is_empty() {
            return Err(invalid(
                "channels/classes",
                format!("{channels}/{}", classes.len()),
                "must be positive",
            ));
        }
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let map = |e: mirkit_models::ModelError| invalid("model", arch, &e.to_string());
        let n_class = classes.len();
        let (net, spec_bn) = match arch {
            "short-chunk-cnn" | "short-chunk-resnet" => {
                let cfg = ShortChunkConfig {
                    channels,
                    residual: arch == "short-chunk-resnet",
                    n_class,
                };
                let net = ShortChunk::new(&cfg, vb.clone()).map_err(map)?;
                let bn = candle_nn::batch_norm(
                    1,
                    BatchNormConfig {
                        eps: 1e-5,
                        remove_mean: true,
                        affine: true,
                        momentum: 0.1,
                    },
                    vb.pp("spec_bn"),
                )?;
                (Net::ShortChunk(net), Some(bn))
            }
            "samplecnn" | "samplecnn-se" => {
                let (c, c2, c4) = (channels, 2 * channels, 4 * channels);
                let cfg = SampleCnnConfig {
                    channels: [c, c, c, c2, c2, c2, c2, c2, c2, c4, c4],
                    n_class,
                    se: arch == "samplecnn-se",
                };
                (Net::SampleCnn(SampleCnn::new(&cfg, vb).map_err(map)?), None)
            }
            _ => {
                let cfg = ReSe2Config {
                    init: channels,
                    alpha: 16,
                    n_class,
                };
                (Net::ReSe2(ReSe2::new(&cfg, vb).map_err(map)?), None)
            }
        };
        Ok(Self {
            arch: arch.into(),
            channels,
            classes: classes.to_vec(),
            fx: front_end()?,
            spec_bn,
            net,
            vm,
            scaling: None,
        })
    }

    /// Makes this a regression network: one output per name given to [`Self::new`],
    /// trained on targets standardised with `scaling` (see
    /// [`crate::trainer::Trainable::target_scaling`]); saved with the model.
    pub fn regression(mut self, scaling: TargetScaling) -> Result<Self> {
        if scaling.len() != self.classes.len() {
            return Err(TrainError::Mismatch {
                what: "target scaling vs outputs".into(),
                got: scaling.len(),
                expected: self.classes.len(),
            });
        }
        self.scaling = Some(scaling);
        Ok(self)
    }

    /// Loads a model saved by training (`best.safetensors`): architecture, width and
    /// classes from its metadata, every tensor checked.
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = crate::ckpt::load(path)?;
        let file = path.display().to_string();
        let bad = |why: String| TrainError::Checkpoint {
            file: file.clone(),
            why,
        };
        let arch = meta
            .get("arch")
            .ok_or_else(|| bad("no arch in the metadata".into()))?;
        let channels: usize = meta
            .get("channels")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("no channels in the metadata".into()))?;
        let classes: Vec<String> = serde_json::from_str(
            meta.get("tags")
                .ok_or_else(|| bad("no tags in the metadata".into()))?,
        )
        .map_err(|e| bad(e.to_string()))?;
        let mut m = Self::build(arch, channels, &classes)?;
        m.scaling = TargetScaling::from_metadata(&meta, classes.len(), &file)?;
        for (name, v) in sorted_vars(&m.vm) {
            let t = tensors
                .get(&name)
                .ok_or_else(|| bad(format!("missing tensor {name}")))?;
            if t.dims() != v.dims() {
                return Err(bad(format!(
                    "{name} has shape {:?}, expected {:?}",
                    t.dims(),
                    v.dims()
                )));
            }
            v.set(t)?;
        }
        if tensors.len() != sorted_vars(&m.vm).len() {
            return Err(bad(format!(
                "{} tensors, the model has {}",
                tensors.len(),
                sorted_vars(&m.vm).len()
            )));
        }
        Ok(m)
    }

    /// Class names.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Samples per input chunk.
    pub fn input_len(&self) -> usize {
        SHORT_CHUNK_LEN
    }

    /// Trainable parameters (batch-norm running statistics excluded).
    pub fn param_count(&self) -> usize {
        sorted_vars(&self.vm)
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, v)| v.elem_count())
            .sum()
    }
}

impl Trainable for ScratchModel {
    fn prepare(&self, chunk: &[f32]) -> Result<Tensor> {
        if !matches!(self.net, Net::ShortChunk(_)) {
            return Ok(Tensor::from_slice(chunk, chunk.len(), &Device::Cpu)?);
        }
        let m = self.fx.compute(chunk)?.into_array();
        let (r, t) = m.dim();
        Ok(Tensor::from_vec(
            m.into_raw_vec_and_offset().0,
            (1, r, t),
            &Device::Cpu,
        )?)
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let bad = |e: mirkit_models::ModelError| {
            invalid("input", format!("{:?}", x.dims()), &e.to_string())
        };
        match (&self.net, &self.spec_bn) {
            (Net::ShortChunk(n), Some(bn)) => n.logits_t(&bn.forward_t(x, train)?, train),
            (Net::SampleCnn(n), _) => n.logits_t(x, train),
            (Net::ReSe2(n), _) => n.logits(x, train, None),
            (Net::ShortChunk(_), None) => unreachable!("short-chunk models have spec_bn"),
        }
        .map_err(bad)
    }

    fn varmap(&self) -> &VarMap {
        &self.vm
    }

    fn param_groups(&self) -> Vec<crate::trainer::ParamGroup> {
        vec![crate::trainer::ParamGroup {
            name: "all".into(),
            vars: sorted_vars(&self.vm)
                .into_iter()
                .filter(|(k, _)| !k.contains("running_"))
                .map(|(_, v)| v)
                .collect(),
            lr_mult: 1.0,
        }]
    }

    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("arch".into(), self.arch.clone());
        m.insert("channels".into(), self.channels.to_string());
        m.insert("tags".into(), serde_json::to_string(&self.classes).unwrap());
        if let Some(s) = &self.scaling {
            s.to_metadata(&mut m);
        }
        m
    }

    fn target_scaling(&self) -> Option<&TargetScaling> {
        self.scaling.as_ref()
    }
}
