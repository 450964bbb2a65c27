//! The 1-D CNN of Dieleman & Schrauwen 2014 ("End-to-end learning for music audio",
//! ICASSP): convolutions over time with the mel bands as channels — two [conv 8 → ReLU →
//! max pool 4] layers with 32 filters, dense 100 → ReLU → dense → sigmoid. The raw-audio
//! variant replaces the mel spectrogram by a learned strided convolution on the waveform
//! (length = stride = 256, 128 filters, no nonlinearity). Default input: 3 s — 94 frames
//! of a 128-band mel (16 kHz, n_fft 1024, hop 512), or 48 000 samples for the raw
//! variant. Names: `frontend` (raw), `conv1`, `conv2`, `dense1`, `dense2`
//! (tools/make_model_fixtures.py has the PyTorch port).

use crate::error::{ModelError, Result};
use candle_core::{Module, Tensor};
use candle_nn::{Conv1dConfig, Linear, VarBuilder};
use mirkit_core::Rng;
use mirkit_nn::conv::Conv1dGemm as Conv1d;
use mirkit_nn::fused::{self, Act, ConvSpec, Epilogue};

/// Which input the network takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A mel spectrogram `(B, n_mels, frames)`.
    Mel,
    /// Raw audio `(B, samples)`; the strided front end makes `samples / 256` frames.
    Raw,
}

/// Configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Cnn1dConfig {
    /// Mel input or raw audio.
    pub input: Input,
    /// Mel bands (or front-end filters for raw input): 128.
    pub n_mels: usize,
    /// Frames per input (mel) — for raw input, `samples / 256` (a remainder is ignored).
    pub frames: usize,
    /// Filters per convolution (32).
    pub channels: usize,
    /// Hidden units (100).
    pub hidden: usize,
    /// Number of tags.
    pub n_class: usize,
}

/// Front-end filter length and stride of the raw variant.
pub const RAW_STRIDE: usize = 256;

impl Cnn1dConfig {
    /// The published configuration for `input` (3 s excerpts, 50 tags): 55 774 parameters
    /// on mel input, 107 870 on raw audio.
    pub fn published(input: Input) -> Self {
        Self {
            input,
            n_mels: 128,
            frames: match input {
                Input::Mel => 94,
                Input::Raw => 187,
            },
            channels: 32,
            hidden: 100,
            n_class: 50,
        }
    }
    /// Time steps left after the two conv/pool layers.
    pub fn out_frames(&self) -> usize {
        (self.frames.saturating_sub(7) / 4).saturating_sub(7) / 4
    }
    /// Trainable parameters.
    pub fn param_count(&self) -> usize {
        let c = self.channels;
        let front = match self.input {
            Input::Mel => 0,
            Input::Raw => RAW_STRIDE * self.n_mels + self.n_mels,
        };
        front
            + (self.n_mels * 8 * c + c)
            + (c * 8 * c + c)
            + (c * self.out_frames() * self.hidden + self.hidden)
            + (self.hidden * self.n_class + self.n_class)
    }
}

/// A Dieleman & Schrauwen 2014 1-D CNN.
pub struct Cnn1d {
    cfg: Cnn1dConfig,
    frontend: Option<Conv1d>,
    conv1: Conv1d,
    conv2: Conv1d,
    dense1: Linear,
    dense2: Linear,
}

impl Cnn1d {
    /// Builds the network from `vb` (see [`crate::create`]).
    pub fn new(cfg: &Cnn1dConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.out_frames() == 0 || cfg.channels == 0 || cfg.hidden == 0 || cfg.n_class == 0 {
            return Err(ModelError::Input(format!(
                "1-D CNN configuration {cfg:?} leaves no frames after the two layers"
            )));
        }
        let frontend = match cfg.input {
            Input::Mel => None,
            Input::Raw => Some(mirkit_nn::conv::conv1d(
                1,
                cfg.n_mels,
                RAW_STRIDE,
                Conv1dConfig {
                    stride: RAW_STRIDE,
                    ..Default::default()
                },
                vb.pp("frontend"),
            )?),
        };
        let c = cfg.channels;
        Ok(Self {
            cfg: cfg.clone(),
            frontend,
            conv1: mirkit_nn::conv::conv1d(cfg.n_mels, c, 8, Default::default(), vb.pp("conv1"))?,
            conv2: mirkit_nn::conv::conv1d(c, c, 8, Default::default(), vb.pp("conv2"))?,
            dense1: candle_nn::linear(c * cfg.out_frames(), cfg.hidden, vb.pp("dense1"))?,
            dense2: candle_nn::linear(cfg.hidden, cfg.n_class, vb.pp("dense2"))?,
        })
    }

    /// Named features: `frontend` (raw variant, `(B, n_mels, frames)`), `conv1`, `conv2`
    /// (after pooling) and `embedding` (`(B, hidden)`, after ReLU).
    pub fn features(&self, x: &Tensor) -> Result<Vec<(String, Tensor)>> {
        self.features_t(x, false)
    }

    /// [`Self::features`] in training (`train`: every layer differentiable) or eval mode
    /// (inference: the convolution blocks run fused, without gradients).
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        let h = match (&self.frontend, x.dims()) {
            (None, [_, m, t]) if *m == self.cfg.n_mels && *t == self.cfg.frames => x.clone(),
            (Some(f), [_, n]) if *n / RAW_STRIDE == self.cfg.frames => {
                let h = f.forward(&x.unsqueeze(1)?)?;
                out.push(("frontend".to_string(), h.clone()));
                h
            }
            (_, d) => {
                return Err(ModelError::Input(format!(
                    "1-D CNN ({:?}) expects {}, got {d:?}",
                    self.cfg.input,
                    match self.cfg.input {
                        Input::Mel => format!("(B, {}, {})", self.cfg.n_mels, self.cfg.frames),
                        Input::Raw => format!(
                            "(B, {}..{}) samples",
                            RAW_STRIDE * self.cfg.frames,
                            RAW_STRIDE * (self.cfg.frames + 1)
                        ),
                    }
                )))
            }
        };
        let block = |h: &Tensor, c: &Conv1d| {
            let epi = Epilogue {
                bn: None,
                act: Act::Relu,
                pool: (1, 4),
            };
            fused::conv_block(h, ConvSpec::conv1d(c), epi, train)
        };
        let h = block(&h, &self.conv1)?;
        out.push(("conv1".into(), h.clone()));
        let h = block(&h, &self.conv2)?;
        out.push(("conv2".into(), h.clone()));
        let e = self.dense1.forward(&h.flatten_from(1)?)?.relu()?;
        out.push(("embedding".into(), e));
        Ok(out)
    }

    /// Sigmoid tag scores `(B, n_class)`. `dropout` `Some((p, rng))` is training mode:
    /// every layer differentiable and dropout (p, may be 0) on the embedding drawn from
    /// `rng`; `None` is inference (fused convolution blocks, no gradients).
    pub fn forward(&self, x: &Tensor, dropout: Option<(f64, &mut Rng)>) -> Result<Tensor> {
        let f = self.features_t(x, dropout.is_some())?;
        let e = &f.last().expect("embedding").1;
        let e = match dropout {
            Some((p, rng)) => mirkit_nn::dropout::dropout(e, p, true, rng)?,
            None => e.clone(),
        };
        Ok(candle_nn::ops::sigmoid(&self.dense2.forward(&e)?)?)
    }
}
