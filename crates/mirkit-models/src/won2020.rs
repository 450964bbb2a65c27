//! Won et al. 2020 ("Evaluation of CNN-based automatic music tagging models", SMC 2020)
//! FCN and CRNN, with their torchaudio front end, loading the authors' weights.
//!
//! Front end (torchaudio 0.3 as trained): 16 kHz mono, `MelSpectrogram(n_fft=512,
//! hop=256, f_min=0, f_max=8000, n_mels=96)` (periodic Hann, centred, reflect padding,
//! power 2, HTK mel, no norm — the bank itself is read from `spec.mel_scale.fb`), then
//! `AmplitudeToDB()` (`10·log10(max(x, 1e-10))`) and `BatchNorm2d(1)`.
//! FCN: five [conv 3×3 → BN → ReLU → max-pool] blocks, pools (2,4) (2,4) (2,4) (3,5)
//! (4,4), channels 64-128-128-128-64, dense 64→50, sigmoid; 29 s input (464 000 samples).
//! CRNN: four blocks, pools (2,2) (3,3) (4,4) (4,4), channels 64-128-128-128, a 2-layer
//! GRU(128→32), last step, dense 32→50, sigmoid.

use crate::error::{ModelError, Result};
use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Linear, VarBuilder};
use mirkit_dsp::{Compression, FeatureConfig, FeatureExtractor};
use mirkit_nn::rnn::{Rnn, RnnConfig, RnnKind};
use std::collections::HashMap;
use std::path::Path;

/// The architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// 5-layer fully convolutional network.
    Fcn,
    /// Convolutional recurrent network.
    Crnn,
}

/// Samples per input window (29 s at 16 kHz).
pub const INPUT_LEN: usize = 464_000;
/// Sample rate of the input.
pub const SAMPLE_RATE: u32 = 16_000;

struct Block {
    conv: Conv2d,
    bn: BatchNorm,
    pool: (usize, usize),
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.bn.forward_t(&self.conv.forward(x)?, false)?.relu()?;
        Ok(mirkit_nn::pool::max_pool2d(&x, self.pool, self.pool, (0, 0))?)
    }
}

/// A loaded Won et al. 2020 tagger.
pub struct Won2020 {
    arch: Arch,
    stft: FeatureExtractor,
    fb_t: Tensor,
    spec_bn: BatchNorm,
    blocks: Vec<Block>,
    gru: Option<Rnn>,
    dense: Linear,
    tags: Vec<String>,
    device: Device,
}

fn layout(arch: Arch, n_class: usize) -> (Vec<(usize, usize, (usize, usize))>, Vec<(String, Vec<usize>)>) {
    let blocks: Vec<(usize, usize, (usize, usize))> = match arch {
        Arch::Fcn => vec![(1, 64, (2, 4)), (64, 128, (2, 4)), (128, 128, (2, 4)), (128, 128, (3, 5)), (128, 64, (4, 4))],
        Arch::Crnn => vec![(1, 64, (2, 2)), (64, 128, (3, 3)), (128, 128, (4, 4)), (128, 128, (4, 4))],
    };
    let mut names: Vec<(String, Vec<usize>)> = vec![
        ("spec.spectrogram.window".into(), vec![512]),
        ("spec.mel_scale.fb".into(), vec![257, 96]),
    ];
    for p in ["weight", "bias", "running_mean", "running_var"] {
        names.push((format!("spec_bn.{p}"), vec![1]));
    }
    for (i, (cin, cout, _)) in blocks.iter().enumerate() {
        let l = format!("layer{}", i + 1);
        names.push((format!("{l}.conv.weight"), vec![*cout, *cin, 3, 3]));
        names.push((format!("{l}.conv.bias"), vec![*cout]));
        for p in ["weight", "bias", "running_mean", "running_var"] {
            names.push((format!("{l}.bn.{p}"), vec![*cout]));
        }
    }
    let dense_in = match arch {
        Arch::Fcn => 64,
        Arch::Crnn => {
            for l in 0..2 {
                let inp = if l == 0 { 128 } else { 32 };
                names.push((format!("layer5.weight_ih_l{l}"), vec![96, inp]));
                names.push((format!("layer5.weight_hh_l{l}"), vec![96, 32]));
                names.push((format!("layer5.bias_ih_l{l}"), vec![96]));
                names.push((format!("layer5.bias_hh_l{l}"), vec![96]));
            }
            32
        }
    };
    names.push(("dense.weight".into(), vec![n_class, dense_in]));
    names.push(("dense.bias".into(), vec![n_class]));
    (blocks, names)
}

/// The `__metadata__` of a safetensors file.
pub fn safetensors_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let file = path.display().to_string();
    let werr = |why: String| ModelError::Weights { file: file.clone(), why };
    let mut f = std::fs::File::open(path).map_err(|e| werr(e.to_string()))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| werr(format!("not a safetensors file ({e})")))?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 {
        return Err(werr(format!("header of {n} bytes: not a safetensors file")));
    }
    let mut h = vec![0u8; n as usize];
    f.read_exact(&mut h).map_err(|e| werr(format!("truncated header ({e})")))?;
    let v: serde_json::Value = serde_json::from_slice(&h).map_err(|e| werr(format!("bad header: {e}")))?;
    Ok(v.get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default())
}

impl Won2020 {
    /// Loads `arch` from a safetensors file written by `tools/convert_won2020.py`. Every
    /// tensor is checked: missing, mis-shaped or unexpected ones are errors naming them.
    pub fn load(arch: Arch, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let meta = safetensors_metadata(path)?;
        let tags: Vec<String> = match meta.get("tags") {
            Some(t) => serde_json::from_str(t).map_err(|e| ModelError::Weights { file: file.clone(), why: format!("tags: {e}") })?,
            None => return Err(ModelError::Weights { file, why: "no tag list in the metadata".into() }),
        };
        let device = Device::Cpu;
        let map = candle_core::safetensors::load(path, &device)?;
        let (blocks_spec, expected) = layout(arch, tags.len());
        for (name, shape) in &expected {
            match map.get(name) {
                None => return Err(ModelError::MissingTensor { file: file.clone(), name: name.clone() }),
                Some(t) if t.dims() != shape.as_slice() => {
                    return Err(ModelError::WrongShape { file: file.clone(), name: name.clone(), got: t.dims().to_vec(), expected: shape.clone() })
                }
                _ => {}
            }
        }
        let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let mut extra: Vec<String> = map.keys().filter(|k| !known.contains(k.as_str())).cloned().collect();
        if !extra.is_empty() {
            extra.sort();
            return Err(ModelError::UnexpectedTensors { file, names: extra });
        }
        let map: HashMap<String, Tensor> = map.into_iter().map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?))).collect::<Result<_>>()?;
        let vb = VarBuilder::from_tensors(map, DType::F32, &device);
        let bn_cfg = BatchNormConfig { eps: 1e-5, remove_mean: true, affine: true, momentum: 0.1 };
        let mut blocks = Vec::new();
        for (i, (cin, cout, pool)) in blocks_spec.iter().enumerate() {
            let l = vb.pp(format!("layer{}", i + 1));
            blocks.push(Block {
                conv: candle_nn::conv2d(*cin, *cout, 3, Conv2dConfig { padding: 1, ..Default::default() }, l.pp("conv"))?,
                bn: candle_nn::batch_norm(*cout, bn_cfg, l.pp("bn"))?,
                pool: *pool,
            });
        }
        let gru = match arch {
            Arch::Crnn => Some(Rnn::new(RnnKind::Gru, RnnConfig { input_size: 128, hidden_size: 32, num_layers: 2, bidirectional: false }, vb.pp("layer5"))?),
            Arch::Fcn => None,
        };
        let dense_in = if arch == Arch::Fcn { 64 } else { 32 };
        let dense = candle_nn::linear(dense_in, tags.len(), vb.pp("dense"))?;
        let fb_t = vb.get((257, 96), "spec.mel_scale.fb")?.t()?.contiguous()?;
        let spec_bn = candle_nn::batch_norm(1, bn_cfg, vb.pp("spec_bn"))?;
        let mut cfg = FeatureConfig::won2020();
        cfg.mel = None;
        cfg.compression = Compression::None;
        let stft = FeatureExtractor::new(cfg)?;
        Ok(Self { arch, stft, fb_t, spec_bn, blocks, gru, dense, tags, device })
    }

    /// Tag names, in output order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// Samples per window.
    pub fn input_len(&self) -> usize {
        INPUT_LEN
    }
    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Front end of one window: `(1, 1, 96, frames)` after `spec_bn`.
    pub fn front_end(&self, audio: &[f32]) -> Result<Tensor> {
        let s = self.stft.compute(audio)?.into_array(); // (257, T) power
        let (bins, frames) = s.dim();
        let s = Tensor::from_vec(s.into_raw_vec_and_offset().0, (bins, frames), &self.device)?;
        let mel = self.fb_t.matmul(&s)?; // (96, T)
        let db = (mel.clamp(1e-10f32, f32::MAX)?.log()? * (10.0 / std::f64::consts::LN_10))?;
        Ok(self.spec_bn.forward_t(&db.reshape((1, 1, 96, frames))?, false)?)
    }

    /// Sigmoid scores of a batch of front-end outputs `(B, 1, 96, frames)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        let x = match &self.gru {
            None => x.flatten_from(1)?,
            Some(g) => {
                let x = x.squeeze(2)?.permute((0, 2, 1))?.contiguous()?;
                let o = g.forward(&x)?.output;
                let t = o.dim(1)?;
                o.narrow(1, t - 1, 1)?.squeeze(1)?
            }
        };
        Ok(candle_nn::ops::sigmoid(&self.dense.forward(&x)?)?)
    }

    /// Scores of exactly one 29 s window of 16 kHz mono audio.
    pub fn tag(&self, audio: &[f32]) -> Result<Vec<f32>> {
        if audio.len() != INPUT_LEN {
            return Err(ModelError::Input(format!("expected {INPUT_LEN} samples (29 s at 16 kHz), got {}", audio.len())));
        }
        if let Some(i) = audio.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Input(format!("non-finite sample at {i}")));
        }
        let x = self.front_end(audio)?;
        Ok(self.forward(&x)?.squeeze(0)?.to_vec1::<f32>()?)
    }

    /// Won 2020's protocol for a whole file: non-overlapping windows, a trailing remainder
    /// shorter than a window dropped, a file shorter than one window zero-padded; returns
    /// the per-window scores (average them for the file).
    pub fn tag_windows(&self, audio: &[f32]) -> Result<Vec<Vec<f32>>> {
        if audio.is_empty() {
            return Err(ModelError::Input("empty audio".into()));
        }
        if audio.len() < INPUT_LEN {
            let mut v = audio.to_vec();
            v.resize(INPUT_LEN, 0.0);
            return Ok(vec![self.tag(&v)?]);
        }
        audio.chunks_exact(INPUT_LEN).map(|w| self.tag(w)).collect()
    }

    /// Indices and scores of the `k` highest scores, highest first.
    pub fn top_k<'a>(&'a self, scores: &[f32], k: usize) -> Vec<(&'a str, f32)> {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        idx.into_iter().take(k).map(|i| (self.tags[i].as_str(), scores[i])).collect()
    }
}

/// Mean of per-window scores.
pub fn average(windows: &[Vec<f32>]) -> Vec<f32> {
    let n = windows.len().max(1) as f32;
    let m = windows.first().map(|w| w.len()).unwrap_or(0);
    (0..m).map(|j| windows.iter().map(|w| w[j]).sum::<f32>() / n).collect()
}

