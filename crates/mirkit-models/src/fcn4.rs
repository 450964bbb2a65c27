//! FCN-4 (Choi, Fazekas & Sandler 2016, "Automatic tagging using deep convolutional
//! neural networks", ISMIR, Table 1): a 96-band × 1366-frame log-mel (29.1 s at 12 kHz,
//! n_fft 512, hop 256) → input batch norm → four [3×3 conv → BN → ELU → max pool] layers
//! with 128, 384, 768, 2048 channels and pools (2,4), (4,5), (3,8), (4,8), which leave
//! 1 × 1 → dense → sigmoid. Names: `bn_in`, `layerN.conv`, `layerN.bn`, `dense`
//! (the PyTorch port in tools/make_model_fixtures.py).

use crate::error::{ModelError, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, Conv2dConfig, Linear, VarBuilder};
use mirkit_dsp::{Compression, DbConfig, DbRef, FeatureConfig, StftConfig};
use mirkit_nn::blocks::bn_eps;
use mirkit_nn::fused::{self, Act, ConvSpec, Epilogue};

/// Mel bands of the input.
pub const N_MELS: usize = 96;
/// Frames of the input (29.1 s at 12 kHz, hop 256).
pub const FRAMES: usize = 1366;
/// Max-pool sizes (frequency, time) after each layer.
pub const POOLS: [(usize, usize); 4] = [(2, 4), (4, 5), (3, 8), (4, 8)];

/// The front end Choi et al. 2016 used: 12 kHz mono, n_fft 512, hop 256, 96 Slaney mels,
/// `10·log10(power)` with reference 1 (librosa's `logamplitude(ref_power=1.0)`).
pub fn front_end() -> FeatureConfig {
    let mut cfg = FeatureConfig::librosa();
    cfg.sample_rate = 12_000;
    cfg.stft = StftConfig::new(512).hop(256);
    if let Some(m) = cfg.mel.as_mut() {
        m.n_mels = N_MELS;
    }
    cfg.compression = Compression::Db(DbConfig {
        reference: DbRef::Value(1.0),
        top_db: None,
        ..DbConfig::default()
    });
    cfg
}

/// Configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Fcn4Config {
    /// Channels of the four layers (128, 384, 768, 2048).
    pub channels: [usize; 4],
    /// Number of tags.
    pub n_class: usize,
}

impl Fcn4Config {
    /// The published configuration: 17 365 940 parameters.
    pub fn published() -> Self {
        Self {
            channels: [128, 384, 768, 2048],
            n_class: 50,
        }
    }
    /// Trainable parameters.
    pub fn param_count(&self) -> usize {
        let mut n = 2;
        let mut cin = 1;
        for c in self.channels {
            n += cin * 9 * c + c + 2 * c;
            cin = c;
        }
        n + cin * self.n_class + self.n_class
    }
}

/// An FCN-4.
pub struct Fcn4 {
    bn_in: BatchNorm,
    layers: Vec<(mirkit_nn::conv2d::Conv2dGemm, BatchNorm)>,
    dense: Linear,
}

impl Fcn4 {
    /// Builds the network from `vb` (see [`crate::create`]).
    pub fn new(cfg: &Fcn4Config, vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::new();
        let mut cin = 1;
        for (i, c) in cfg.channels.into_iter().enumerate() {
            let l = vb.pp(format!("layer{}", i + 1));
            let conv = mirkit_nn::conv2d::conv2d(
                cin,
                c,
                3,
                Conv2dConfig {
                    padding: 1,
                    ..Default::default()
                },
                l.pp("conv"),
            )?;
            layers.push((conv, candle_nn::batch_norm(c, bn_eps(1e-5), l.pp("bn"))?));
            cin = c;
        }
        Ok(Self {
            bn_in: candle_nn::batch_norm(1, bn_eps(1e-5), vb.pp("bn_in"))?,
            layers,
            dense: candle_nn::linear(cin, cfg.n_class, vb.pp("dense"))?,
        })
    }

    /// Named features of a log-mel batch `(B, 96, 1366)`: `layer1` … `layer4` (after
    /// pooling) and `embedding` (`(B, 2048)`, the flattened last layer).
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Vec<(String, Tensor)>> {
        match x.dims() {
            [_, N_MELS, FRAMES] => {}
            d => {
                return Err(ModelError::Input(format!(
                    "FCN-4 expects (B, {N_MELS}, {FRAMES}) log-mel, got {d:?}"
                )))
            }
        }
        let mut h = self.bn_in.forward_t(&x.unsqueeze(1)?, train)?;
        let mut out = Vec::new();
        for (i, ((conv, bn), p)) in self.layers.iter().zip(POOLS).enumerate() {
            h = fused::conv_block(
                &h,
                ConvSpec::conv2d(conv),
                Epilogue {
                    bn: Some(bn),
                    act: Act::Elu(1.0),
                    pool: p,
                },
                train,
            )?;
            out.push((format!("layer{}", i + 1), h.clone()));
        }
        out.push(("embedding".into(), h.flatten_from(1)?));
        Ok(out)
    }

    /// Sigmoid tag scores `(B, n_class)`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let f = self.features(x, train)?;
        let e = &f.last().expect("embedding").1;
        Ok(candle_nn::ops::sigmoid(&self.dense.forward(e)?)?)
    }
}
