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
//! Musicnn (Won 2020's PyTorch port of Pons et al.): vertical filters 67×7 and 38×7 (204
//! each, max over frequency) and horizontal filters 129, 65, 33 (51 each, on the
//! frequency-averaged input), a 3-layer residual 1-D back end (64 channels; 512 for MSD),
//! global max and mean pooling, dense 1506→200 (500) → BN → ReLU → 50, sigmoid; 3 s input.

use crate::error::{ModelError, Result};
use crate::weights::{check_layout, tags_from_meta, Header};
use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2dConfig, Linear, VarBuilder};
use mirkit_dsp::{Compression, FeatureConfig, FeatureExtractor};
use mirkit_nn::bandconv::BandConv;
use mirkit_nn::fused::{self, Act, ConvSpec, Epilogue};
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
    /// Won 2020's PyTorch Musicnn (Pons et al.'s front end: vertical and horizontal
    /// filters; 3 s input).
    Musicnn,
}

impl Arch {
    /// `fcn`, `crnn` or `musicnn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Fcn => "fcn",
            Arch::Crnn => "crnn",
            Arch::Musicnn => "musicnn",
        }
    }
    /// Parses [`Arch::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fcn" => Some(Arch::Fcn),
            "crnn" => Some(Arch::Crnn),
            "musicnn" => Some(Arch::Musicnn),
            _ => None,
        }
    }
    /// Samples per input window: 29 s for FCN/CRNN, 3 s for Musicnn.
    pub fn input_len(self) -> usize {
        match self {
            Arch::Fcn | Arch::Crnn => INPUT_LEN,
            Arch::Musicnn => MUSICNN_INPUT_LEN,
        }
    }
}

/// Samples per Musicnn window (3 s at 16 kHz).
pub const MUSICNN_INPUT_LEN: usize = 48_000;

/// Mel bands of the front end (torchaudio `n_mels=96`).
const N_MELS: usize = 96;

/// Conv (+BN, ReLU) of the Musicnn front and back ends.
struct ConvBn {
    conv2: Option<mirkit_nn::conv2d::Conv2dGemm>,
    conv1: Option<mirkit_nn::conv::Conv1dGemm>,
    bn: BatchNorm,
    /// width padding applied by hand for the 2-D (vertical) filters
    pad_w: usize,
    /// For a vertical filter of a frozen (loaded for inference) model: the same kernel
    /// as a band-axis DFT convolution, which gives the eval-mode max over frequency with
    /// 2.6× fewer multiply-adds ([`mirkit_nn::bandconv`]). `None` for trainable models:
    /// it is computed from the weights once, at load time, and would go stale when they
    /// change.
    band: Option<BandConv>,
}

impl ConvBn {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_pool(x, train, false)
    }

    /// With `max_over_rows` (a 2-D filter), the max over the whole frequency axis as
    /// well, `(B, C, 1, T)`: the pooling of the vertical filters (Won 2020's
    /// `MaxPool2d((freq, 1))`), fused with the block — in training too, where the
    /// block's one op keeps each column's argmax and routes the gradient there, as
    /// PyTorch's max pooling does, instead of keeping the unpooled output for a
    /// separate max.
    fn forward_pool(&self, x: &Tensor, train: bool, max_over_rows: bool) -> Result<Tensor> {
        let epi = |pool| Epilogue {
            bn: Some(&self.bn),
            act: Act::Relu,
            pool,
        };
        Ok(match (&self.conv2, &self.conv1) {
            (Some(c), _) => {
                let spec = ConvSpec {
                    padding: (c.padding, c.padding + self.pad_w),
                    ..ConvSpec::conv2d(c)
                };
                let rows = if max_over_rows {
                    let (h, kh) = (x.dim(2)?, c.weight.dim(2)?);
                    (h + 2 * c.padding).saturating_sub(kh) / c.stride + 1
                } else {
                    1
                };
                fused::conv_block(x, spec, epi((rows, 1)), train)?
            }
            (_, Some(c)) => fused::conv_block(x, ConvSpec::conv1d(c), epi((1, 1)), train)?,
            _ => unreachable!("one convolution is always set"),
        })
    }

    /// A vertical filter's block with the max over frequency, `(B, C, 1, T)`: the band
    /// path ([`Self::band_max`]) in eval mode where it applies, else
    /// [`Self::forward_pool`]. `bands` caches the frames × bands input between the
    /// filters of one forward (keyed by the time padding).
    fn vertical_max(
        &self,
        x: &Tensor,
        train: bool,
        bands: &mut Option<(usize, Tensor)>,
    ) -> Result<Tensor> {
        if !train && fused::fused_eval() {
            if let Some(y) = self.band_max(x, bands)? {
                return Ok(y);
            }
        }
        self.forward_pool(x, train, true)
    }

    /// Eval mode, a vertical filter of a frozen model on a CPU f32 input `(B, 1, 96, T)`:
    /// the convolution's max and min over frequency from [`BandConv`], then bias → batch
    /// norm → ReLU on both and the larger kept — every step is a per-channel monotone map
    /// (the batch-norm scale may be negative), so that is the max over frequency of the
    /// block's output. `(B, C, 1, T)`, or `None` where the input or the filter does not
    /// fit (the caller then runs the im2col block).
    fn band_max(&self, x: &Tensor, bands: &mut Option<(usize, Tensor)>) -> Result<Option<Tensor>> {
        let (Some(band), Some(c)) = (&self.band, &self.conv2) else {
            return Ok(None);
        };
        let fits = x.device().is_cpu()
            && x.dtype() == DType::F32
            && c.stride == 1
            && c.padding == 0
            && matches!(x.dims(), [b, 1, N_MELS, t] if *b > 0 && t + 2 * self.pad_w >= band.taps());
        if !fits {
            return Ok(None);
        }
        // frames × bands, padded in time as the convolution pads it (once per padding)
        let xt = match bands {
            Some((pad, t)) if *pad == self.pad_w => t,
            _ => {
                let t = x
                    .transpose(2, 3)?
                    .pad_with_zeros(2, self.pad_w, self.pad_w)?
                    .contiguous()?;
                &bands.insert((self.pad_w, t)).1
            }
        };
        let (mx, mn) = band.max_min(xt)?; // (B, C, T, 1)
        let f = |t: Tensor| -> Result<Tensor> {
            let t = match &c.bias {
                Some(b) => t.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
                None => t,
            };
            Ok(self.bn.forward_t(&t, false)?.relu()?)
        };
        Ok(Some(f(mx)?.maximum(&f(mn)?)?.transpose(2, 3)?))
    }
}

struct MusicnnBody {
    vertical: Vec<ConvBn>,
    horizontal: Vec<ConvBn>,
    back: Vec<ConvBn>,
    dense1: Linear,
    bn: BatchNorm,
    dense2: Linear,
}

impl MusicnnBody {
    /// Named intermediate features, each mean-pooled over time: front end (561), back-end
    /// layers 1–3, and the dense embedding (from the same pass, not a second forward).
    fn layers(&self, x: &Tensor) -> Result<Vec<(String, Tensor)>> {
        let [front, r1, r2, r3] = self.trunk(x, false)?;
        let embedding = self.embed(&front, &r1, &r2, &r3, false)?;
        Ok(vec![
            ("front".to_string(), front.mean(2)?),
            ("layer1".to_string(), r1.mean(2)?),
            ("layer2".to_string(), r2.mean(2)?),
            ("layer3".to_string(), r3.mean(2)?),
            ("embedding".to_string(), embedding),
        ])
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let [front, r1, r2, r3] = self.trunk(x, train)?;
        self.embed(&front, &r1, &r2, &r3, train)
    }

    /// The front end `(B, 561, T)` and the three back-end layers `(B, C, T)`.
    fn trunk(&self, x: &Tensor, train: bool) -> Result<[Tensor; 4]> {
        let mut outs = Vec::new();
        // eval mode: a frozen model's vertical filters share one frames × bands copy
        let mut bands = None;
        for v in &self.vertical {
            // (B, C, F', T) -> max over frequency (B, C, T)
            outs.push(v.vertical_max(x, train, &mut bands)?.squeeze(2)?);
        }
        let avg = x.mean_keepdim(2)?.squeeze(2)?; // (B, 1, T)
        for h in &self.horizontal {
            outs.push(h.forward(&avg, train)?);
        }
        let front = Tensor::cat(&outs, 1)?; // (B, 561, T)
        let r1 = self.back[0].forward(&front, train)?;
        let r2 = (self.back[1].forward(&r1, train)? + &r1)?;
        let r3 = (self.back[2].forward(&r2, train)? + &r2)?;
        Ok([front, r1, r2, r3])
    }

    /// The dense embedding from the trunk: max and mean over time of every layer, dense,
    /// batch norm, ReLU.
    fn embed(
        &self,
        front: &Tensor,
        r1: &Tensor,
        r2: &Tensor,
        r3: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let all = Tensor::cat(&[front, r1, r2, r3], 1)?;
        let pooled = Tensor::cat(&[all.max(2)?, all.mean(2)?], 1)?;
        Ok(self
            .bn
            .forward_t(&self.dense1.forward(&pooled)?, train)?
            .relu()?)
    }
}

/// Samples per input window (29 s at 16 kHz).
pub const INPUT_LEN: usize = 464_000;
/// Sample rate of the input.
pub const SAMPLE_RATE: u32 = 16_000;

struct Block {
    conv: mirkit_nn::conv2d::Conv2dGemm,
    bn: BatchNorm,
    pool: (usize, usize),
}

impl Block {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(fused::conv_block(
            x,
            ConvSpec::conv2d(&self.conv),
            Epilogue {
                bn: Some(&self.bn),
                act: Act::Relu,
                pool: self.pool,
            },
            train,
        )?)
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
    dense: Option<Linear>,
    musicnn: Option<MusicnnBody>,
    tags: Vec<String>,
    device: Device,
}

fn bn_names(names: &mut Vec<(String, Vec<usize>)>, prefix: &str, n: usize) {
    for p in ["weight", "bias", "running_mean", "running_var"] {
        names.push((format!("{prefix}.{p}"), vec![n]));
    }
}

/// Musicnn's filter shapes: vertical (freq × time) and horizontal (time) filters.
const MUSICNN_V: [(usize, usize, usize); 2] = [(204, 67, 7), (204, 38, 7)];
const MUSICNN_H: [(usize, usize); 3] = [(51, 129), (51, 65), (51, 33)];

/// Conv blocks `(in, out, pool)` and every tensor `(name, shape)` of an architecture.
type Layout = (
    Vec<(usize, usize, (usize, usize))>,
    Vec<(String, Vec<usize>)>,
);

fn layout(arch: Arch, n_class: usize, musicnn: (usize, usize)) -> Layout {
    let blocks: Vec<(usize, usize, (usize, usize))> = match arch {
        Arch::Fcn => vec![
            (1, 64, (2, 4)),
            (64, 128, (2, 4)),
            (128, 128, (2, 4)),
            (128, 128, (3, 5)),
            (128, 64, (4, 4)),
        ],
        Arch::Crnn => vec![
            (1, 64, (2, 2)),
            (64, 128, (3, 3)),
            (128, 128, (4, 4)),
            (128, 128, (4, 4)),
        ],
        Arch::Musicnn => vec![],
    };
    let mut names: Vec<(String, Vec<usize>)> = vec![
        ("spec.spectrogram.window".into(), vec![512]),
        ("spec.mel_scale.fb".into(), vec![257, N_MELS]),
    ];
    bn_names(&mut names, "spec_bn", 1);
    if arch == Arch::Musicnn {
        let (back, dense) = musicnn;
        for (i, (c, f, t)) in MUSICNN_V.iter().enumerate() {
            names.push((format!("layers.{i}.conv.weight"), vec![*c, 1, *f, *t]));
            names.push((format!("layers.{i}.conv.bias"), vec![*c]));
            bn_names(&mut names, &format!("layers.{i}.bn"), *c);
        }
        for (j, (c, k)) in MUSICNN_H.iter().enumerate() {
            let i = j + 2;
            names.push((format!("layers.{i}.conv.weight"), vec![*c, 1, *k]));
            names.push((format!("layers.{i}.conv.bias"), vec![*c]));
            bn_names(&mut names, &format!("layers.{i}.bn"), *c);
        }
        for (i, cin) in [561, back, back].iter().enumerate() {
            names.push((format!("layer{}.conv.weight", i + 1), vec![back, *cin, 7]));
            names.push((format!("layer{}.conv.bias", i + 1), vec![back]));
            bn_names(&mut names, &format!("layer{}.bn", i + 1), back);
        }
        names.push(("dense1.weight".into(), vec![dense, (561 + 3 * back) * 2]));
        names.push(("dense1.bias".into(), vec![dense]));
        bn_names(&mut names, "bn", dense);
        names.push(("dense2.weight".into(), vec![n_class, dense]));
        names.push(("dense2.bias".into(), vec![n_class]));
        return (blocks, names);
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
        Arch::Fcn | Arch::Musicnn => 64,
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

impl Won2020 {
    /// Loads `arch` from a safetensors file written by `tools/convert_won2020.py`. Every
    /// tensor is checked: missing, mis-shaped or unexpected ones are errors naming them.
    pub fn load(arch: Arch, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let meta = crate::weights::metadata(path)?;
        let map = candle_core::safetensors::load(path, &Device::Cpu)?;
        Self::from_parts(arch, map, &meta, file)
    }

    /// Loads a file of any of the three architectures, telling which from its metadata
    /// (`arch`: `fcn`, `crnn`, `musicnn`) or else from its tensor names.
    pub fn load_any(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::load(Self::detect_arch(path)?, path)
    }

    /// The architecture of a weights file, from its metadata (`arch`) or else its tensor
    /// names; reads the header only.
    pub fn detect_arch(path: impl AsRef<Path>) -> Result<Arch> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let h = Header::read(path)?;
        if let Some(a) = h.metadata().get("arch") {
            return Arch::parse(a).ok_or_else(|| ModelError::Weights {
                file,
                why: format!("unknown arch {a:?} in the metadata"),
            });
        }
        Ok(if h.has_tensor("layer5.weight_ih_l0") {
            Arch::Crnn
        } else if h.has_tensor("dense1.weight") {
            Arch::Musicnn
        } else {
            Arch::Fcn
        })
    }

    /// Loads from the bytes of a safetensors file (e.g. weights compiled into a binary).
    pub fn from_bytes(arch: Arch, bytes: &[u8], label: &str) -> Result<Self> {
        let meta = Header::from_bytes(bytes, label)?.metadata();
        let map = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        Self::from_parts(arch, map, &meta, label.to_string())
    }

    fn from_parts(
        arch: Arch,
        map: HashMap<String, Tensor>,
        meta: &HashMap<String, String>,
        file: String,
    ) -> Result<Self> {
        let tags = tags_from_meta(meta, &file)?;
        let device = Device::Cpu;
        // Musicnn's back-end and dense widths differ between data sets (MSD: 512/500)
        let musicnn = (
            map.get("layer1.conv.weight")
                .map(|t| t.dims()[0])
                .unwrap_or(64),
            map.get("dense1.weight").map(|t| t.dims()[0]).unwrap_or(200),
        );
        let (_, expected) = layout(arch, tags.len(), musicnn);
        check_layout(&file, &map, &expected)?;
        let map: HashMap<String, Tensor> = map
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
            .collect::<Result<_>>()?;
        let vb = VarBuilder::from_tensors(map, DType::F32, &device);
        Self::build(arch, vb, tags, musicnn, true)
    }

    /// A trainable copy of a saved model: every tensor becomes a variable of the returned
    /// [`candle_nn::VarMap`] (same names, so `VarMap` contents save back as a file
    /// [`Self::load`] reads). With `new_tags`, the output layer (`dense` for FCN/CRNN,
    /// `dense2` for Musicnn) is replaced by a freshly initialised one of that size
    /// (PyTorch's `Linear` default, seeded) for transfer to a new tag set.
    pub fn load_trainable(
        arch: Arch,
        path: impl AsRef<Path>,
        new_tags: Option<Vec<String>>,
        seed: u64,
    ) -> Result<(Self, candle_nn::VarMap)> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::Weights {
            file: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::trainable_from_bytes(arch, &bytes, &path.display().to_string(), new_tags, seed)
    }

    /// [`Self::load_trainable`] from the bytes of a safetensors file (e.g. a registry
    /// model compiled into the binary).
    pub fn trainable_from_bytes(
        arch: Arch,
        bytes: &[u8],
        label: &str,
        new_tags: Option<Vec<String>>,
        seed: u64,
    ) -> Result<(Self, candle_nn::VarMap)> {
        // validates every tensor exactly as `load` does
        let checked = Self::from_bytes(arch, bytes, label)?;
        let map = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let musicnn = (
            map.get("layer1.conv.weight")
                .map(|t| t.dims()[0])
                .unwrap_or(64),
            map.get("dense1.weight").map(|t| t.dims()[0]).unwrap_or(200),
        );
        let vm = candle_nn::VarMap::new();
        {
            let mut data = vm.data().lock().expect("VarMap lock");
            for (k, t) in map {
                data.insert(k, candle_core::Var::from_tensor(&t.to_dtype(DType::F32)?)?);
            }
        }
        let tags = match new_tags {
            None => checked.tags.clone(),
            Some(tags) => {
                if tags.is_empty() {
                    return Err(ModelError::Input("new tag set is empty".into()));
                }
                let (name, fan_in) = match arch {
                    Arch::Fcn => ("dense", 64),
                    Arch::Crnn => ("dense", 32),
                    Arch::Musicnn => ("dense2", musicnn.1),
                };
                let mut rng = mirkit_core::rng::Rng::new(seed);
                let init = mirkit_nn::init::Init::KaimingUniformDefault;
                mirkit_nn::init::seeded_var(
                    &vm,
                    &format!("{name}.weight"),
                    &[tags.len(), fan_in],
                    init,
                    &mut rng,
                    &Device::Cpu,
                )?;
                let b = 1.0 / (fan_in as f64).sqrt();
                mirkit_nn::init::seeded_var(
                    &vm,
                    &format!("{name}.bias"),
                    &[tags.len()],
                    mirkit_nn::init::Init::Uniform(b),
                    &mut rng,
                    &Device::Cpu,
                )?;
                tags
            }
        };
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let m = Self::build(arch, vb, tags, musicnn, false)?;
        Ok((m, vm))
    }

    /// The network from its tensors; `frozen`: loaded for inference only (its weights
    /// never change, so derived forms of them may be computed once here).
    fn build(
        arch: Arch,
        vb: VarBuilder,
        tags: Vec<String>,
        musicnn: (usize, usize),
        frozen: bool,
    ) -> Result<Self> {
        let device = Device::Cpu;
        let (blocks_spec, _) = layout(arch, tags.len(), musicnn);
        let bn_cfg = BatchNormConfig {
            eps: 1e-5,
            remove_mean: true,
            affine: true,
            momentum: 0.1,
        };
        let mut blocks = Vec::new();
        for (i, (cin, cout, pool)) in blocks_spec.iter().enumerate() {
            let l = vb.pp(format!("layer{}", i + 1));
            blocks.push(Block {
                conv: mirkit_nn::conv2d::conv2d(
                    *cin,
                    *cout,
                    3,
                    Conv2dConfig {
                        padding: 1,
                        ..Default::default()
                    },
                    l.pp("conv"),
                )?,
                bn: candle_nn::batch_norm(*cout, bn_cfg, l.pp("bn"))?,
                pool: *pool,
            });
        }
        let gru = match arch {
            Arch::Crnn => Some(Rnn::new(
                RnnKind::Gru,
                RnnConfig {
                    input_size: 128,
                    hidden_size: 32,
                    num_layers: 2,
                    bidirectional: false,
                },
                vb.pp("layer5"),
            )?),
            Arch::Fcn | Arch::Musicnn => None,
        };
        let dense = match arch {
            Arch::Fcn => Some(candle_nn::linear(64, tags.len(), vb.pp("dense"))?),
            Arch::Crnn => Some(candle_nn::linear(32, tags.len(), vb.pp("dense"))?),
            Arch::Musicnn => None,
        };
        let musicnn = if arch == Arch::Musicnn {
            let (back, dense_ch) = musicnn;
            let cbn = |p: String, n: usize| candle_nn::batch_norm(n, bn_cfg, vb.pp(p));
            let mut vertical = Vec::new();
            for (i, (c, f, t)) in MUSICNN_V.iter().enumerate() {
                let l = vb.pp(format!("layers.{i}"));
                let conv = mirkit_nn::conv2d::Conv2dGemm {
                    weight: l.get((*c, 1, *f, *t), "conv.weight")?,
                    bias: Some(l.get(*c, "conv.bias")?),
                    stride: 1,
                    padding: 0,
                };
                // (C, 1, freq, time) → (C, 1, time, freq): taps × band width
                let band = if frozen {
                    let k = conv.weight.permute((0, 1, 3, 2))?.contiguous()?;
                    Some(BandConv::new(&k, N_MELS)?)
                } else {
                    None
                };
                vertical.push(ConvBn {
                    conv2: Some(conv),
                    conv1: None,
                    bn: cbn(format!("layers.{i}.bn"), *c)?,
                    pad_w: t / 2,
                    band,
                });
            }
            let mut horizontal = Vec::new();
            for (j, (c, k)) in MUSICNN_H.iter().enumerate() {
                let i = j + 2;
                let cfg = candle_nn::Conv1dConfig {
                    padding: k / 2,
                    ..Default::default()
                };
                let conv =
                    mirkit_nn::conv::conv1d(1, *c, *k, cfg, vb.pp(format!("layers.{i}.conv")))?;
                horizontal.push(ConvBn {
                    conv2: None,
                    conv1: Some(conv),
                    bn: cbn(format!("layers.{i}.bn"), *c)?,
                    pad_w: 0,
                    band: None,
                });
            }
            let mut back_layers = Vec::new();
            for (i, cin) in [561, back, back].iter().enumerate() {
                let cfg = candle_nn::Conv1dConfig {
                    padding: 3,
                    ..Default::default()
                };
                let conv = mirkit_nn::conv::conv1d(
                    *cin,
                    back,
                    7,
                    cfg,
                    vb.pp(format!("layer{}.conv", i + 1)),
                )?;
                back_layers.push(ConvBn {
                    conv2: None,
                    conv1: Some(conv),
                    bn: cbn(format!("layer{}.bn", i + 1), back)?,
                    pad_w: 0,
                    band: None,
                });
            }
            Some(MusicnnBody {
                vertical,
                horizontal,
                back: back_layers,
                dense1: candle_nn::linear((561 + 3 * back) * 2, dense_ch, vb.pp("dense1"))?,
                bn: cbn("bn".into(), dense_ch)?,
                dense2: candle_nn::linear(dense_ch, tags.len(), vb.pp("dense2"))?,
            })
        } else {
            None
        };
        let fb_t = vb
            .get((257, N_MELS), "spec.mel_scale.fb")?
            .t()?
            .contiguous()?;
        let spec_bn = candle_nn::batch_norm(1, bn_cfg, vb.pp("spec_bn"))?;
        let mut cfg = FeatureConfig::won2020();
        cfg.mel = None;
        cfg.compression = Compression::None;
        let stft = FeatureExtractor::new(cfg)?;
        Ok(Self {
            arch,
            stft,
            fb_t,
            spec_bn,
            blocks,
            gru,
            dense,
            musicnn,
            tags,
            device,
        })
    }

    /// Tag names, in output order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// Samples per window.
    pub fn input_len(&self) -> usize {
        self.arch.input_len()
    }
    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Front end of one window: `(1, 1, 96, frames)` after `spec_bn`.
    pub fn front_end(&self, audio: &[f32]) -> Result<Tensor> {
        self.spec_bn_t(&self.log_mel(audio)?, false)
    }

    /// Sigmoid scores of a batch of front-end outputs `(B, 1, 96, frames)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.head(&self.embedding(x)?)
    }

    /// The output layer on embeddings: sigmoid scores.
    fn head(&self, e: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.logits(e)?)?)
    }

    /// The output layer on embeddings: logits (before the sigmoid).
    pub fn logits(&self, e: &Tensor) -> Result<Tensor> {
        Ok(match (&self.musicnn, &self.dense) {
            (Some(m), _) => m.dense2.forward(e)?,
            (None, Some(d)) => d.forward(e)?,
            _ => unreachable!("every architecture has an output layer"),
        })
    }

    /// Log-mel (dB) of one window, `(1, 1, 96, frames)`, before `spec_bn`.
    pub fn log_mel(&self, audio: &[f32]) -> Result<Tensor> {
        let s = self.stft.compute(audio)?.into_array(); // (257, T) power
        let (bins, frames) = s.dim();
        let s = Tensor::from_vec(s.into_raw_vec_and_offset().0, (bins, frames), &self.device)?;
        let mel = self.fb_t.matmul(&s)?; // (96, T)
        let db = (mel.clamp(1e-10f32, f32::MAX)?.log()? * (10.0 / std::f64::consts::LN_10))?;
        Ok(db.reshape((1, 1, 96, frames))?)
    }

    /// The input batch norm (`spec_bn`) on a batch of [`Self::log_mel`] outputs.
    pub fn spec_bn_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.spec_bn.forward_t(x, train)?)
    }

    /// The penultimate representation of a batch of front-end outputs: FCN 64-d (after
    /// the last block), CRNN 32-d (last GRU state), Musicnn 200-d (dense → BN → ReLU).
    pub fn embedding(&self, x: &Tensor) -> Result<Tensor> {
        self.embedding_t(x, false)
    }

    /// [`Self::embedding`] in training (`train`: batch statistics in every batch norm,
    /// running statistics updated) or evaluation mode.
    pub fn embedding_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if let Some(m) = &self.musicnn {
            return m.forward(x, train);
        }
        let mut x = x.clone();
        for b in &self.blocks {
            x = b.forward(&x, train)?;
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
        Ok(x)
    }

    /// Named intermediate features of one window, each pooled to a vector (Choi et al.
    /// 2017's transfer-learning features): FCN/CRNN — every convolutional block averaged
    /// over frequency and time, then the penultimate embedding; Musicnn — front end and
    /// back-end layers averaged over time, then the embedding.
    pub fn embed_layers_window(&self, audio: &[f32]) -> Result<Vec<(String, Vec<f32>)>> {
        self.check_window(audio)?;
        let x = self.front_end(audio)?;
        let named: Vec<(String, Tensor)> = match &self.musicnn {
            Some(m) => m.layers(&x)?,
            None => {
                let mut v = Vec::new();
                let mut h = x.clone();
                for (i, b) in self.blocks.iter().enumerate() {
                    h = b.forward(&h, false)?;
                    v.push((format!("layer{}", i + 1), h.mean(3)?.mean(2)?));
                }
                v.push(("embedding".to_string(), self.embedding(&x)?));
                v
            }
        };
        named
            .into_iter()
            .map(|(n, t)| Ok((n, t.squeeze(0)?.to_vec1::<f32>()?)))
            .collect()
    }

    /// Embedding of one window ([`Self::input_len`] samples).
    pub fn embed_window(&self, audio: &[f32]) -> Result<Vec<f32>> {
        self.check_window(audio)?;
        Ok(self
            .embedding(&self.front_end(audio)?)?
            .squeeze(0)?
            .to_vec1::<f32>()?)
    }

    fn check_window(&self, audio: &[f32]) -> Result<()> {
        let n = self.input_len();
        if audio.len() != n {
            return Err(ModelError::Input(format!(
                "expected {n} samples ({} s at 16 kHz), got {}",
                n / 16000,
                audio.len()
            )));
        }
        if let Some(i) = audio.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Input(format!("non-finite sample at {i}")));
        }
        Ok(())
    }

    /// Scores of exactly one window of 16 kHz mono audio ([`Self::input_len`] samples).
    /// A whole signal goes through [`crate::registry::Pretrained::tag`], which applies Won
    /// 2020's windowing ([`crate::windows`]).
    pub fn tag_window(&self, audio: &[f32]) -> Result<Vec<f32>> {
        self.check_window(audio)?;
        let x = self.front_end(audio)?;
        Ok(self.forward(&x)?.squeeze(0)?.to_vec1::<f32>()?)
    }

    /// Scores of several windows at once (one batched forward pass; faster than calling
    /// [`Self::tag_window`] per window).
    pub fn tag_batch(&self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        if windows.is_empty() {
            return Ok(vec![]);
        }
        let mut xs = Vec::with_capacity(windows.len());
        for w in windows {
            self.check_window(w)?;
            xs.push(self.front_end(w)?);
        }
        Ok(self.forward(&Tensor::cat(&xs, 0)?)?.to_vec2::<f32>()?)
    }

    /// Indices and scores of the `k` highest scores, highest first.
    pub fn top_k<'a>(&'a self, scores: &[f32], k: usize) -> Vec<(&'a str, f32)> {
        crate::scores::top_k(&self.tags, scores, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vertical filter block with random weights, batch-norm scales of both signs, and
    /// the band-axis DFT form attached or not.
    fn vertical(seed: u64, band: bool) -> ConvBn {
        let dev = Device::Cpu;
        let mut rng = mirkit_core::Rng::new(seed);
        let mut r = |shape: &[usize], lo: f64, hi: f64| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.range(lo, hi) as f32).collect();
            Tensor::from_vec(v, shape, &dev).unwrap()
        };
        let (c, f, t) = (6, 38, 7);
        let weight = r(&[c, 1, f, t], -0.3, 0.3);
        let mut map = HashMap::new();
        map.insert("bn.weight".to_string(), r(&[c], -2.0, 2.0));
        map.insert("bn.bias".to_string(), r(&[c], -1.0, 1.0));
        map.insert("bn.running_mean".to_string(), r(&[c], -1.0, 1.0));
        map.insert("bn.running_var".to_string(), r(&[c], 0.1, 2.0));
        let g: Vec<f32> = map["bn.weight"].to_vec1().unwrap();
        assert!(g.iter().any(|&v| v < 0.0) && g.iter().any(|&v| v > 0.0));
        let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
        let cfg = BatchNormConfig {
            eps: 1e-5,
            remove_mean: true,
            affine: true,
            momentum: 0.1,
        };
        let band = band.then(|| {
            let k = weight.permute((0, 1, 3, 2)).unwrap().contiguous().unwrap();
            BandConv::new(&k, N_MELS).unwrap()
        });
        ConvBn {
            conv2: Some(mirkit_nn::conv2d::Conv2dGemm {
                weight,
                bias: Some(r(&[c], -0.5, 0.5)),
                stride: 1,
                padding: 0,
            }),
            conv1: None,
            bn: candle_nn::batch_norm(c, cfg, vb.pp("bn")).unwrap(),
            pad_w: t / 2,
            band,
        }
    }

    /// The eval-mode max over frequency of a frozen model's vertical filter (band-axis
    /// DFT, bias → batch norm → ReLU on the max and the min) against the im2col block of
    /// a trainable one with the same weights, and against the composed, differentiable
    /// ops; the DFT's f32 round-off is ~1e-6 of the values' scale (bound 1e-5 of the
    /// largest output, as in `mirkit_nn::bandconv`'s own test).
    #[test]
    fn frozen_vertical_filters_equal_the_im2col_block() {
        let x = Tensor::randn(0f32, 1.0, (2, 1, N_MELS, 41), &Device::Cpu).unwrap();
        let (fast, slow) = (vertical(5, true), vertical(5, false));
        let mut bands = None;
        let got = fast.vertical_max(&x, false, &mut bands).unwrap();
        // a second filter of the same forward reuses the cached frames × bands input
        assert!(bands.is_some());
        let again = fast.vertical_max(&x, false, &mut bands).unwrap();
        assert_eq!(
            again.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            got.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let want = slow.forward_pool(&x, false, true).unwrap();
        let composed = {
            let _g = fused::DifferentiableEval::new();
            slow.forward_pool(&x, false, true).unwrap()
        };
        assert_eq!(got.dims(), &[2, 6, 1, 41]);
        let max_abs = |t: &Tensor| -> f32 {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let scale = max_abs(&want);
        assert!(scale > 1.0, "{scale}");
        for w in [want, composed] {
            assert_eq!(got.dims(), w.dims());
            let err = max_abs(&(&got - &w).unwrap());
            assert!(err <= 1e-5 * scale, "{err} (largest value {scale})");
        }
        // an input of another band count, or off the band path's shape, takes the im2col
        // block (the same result as the trainable model)
        let x80 = Tensor::randn(0f32, 1.0, (1, 1, 80, 20), &Device::Cpu).unwrap();
        let run = |m: &ConvBn| -> Vec<f32> {
            let y = m.vertical_max(&x80, false, &mut None).unwrap();
            y.flatten_all().unwrap().to_vec1().unwrap()
        };
        assert_eq!(run(&fast), run(&slow));
    }
}
