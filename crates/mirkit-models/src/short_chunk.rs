//! Short-chunk CNN and short-chunk ResNet (Won et al. 2020, "Evaluation of CNN-based
//! automatic music tagging models"): seven [conv 3×3 → BN → ReLU → max-pool 2] blocks (or
//! seven stride-2 residual blocks) over a 128-band log-mel of 3.69 s, global max pooling
//! over time, dense → BN → ReLU → dense, sigmoid. Channels `c, c, 2c, 2c, 2c, 2c, 4c`
//! (`c = 128` published). Takes the front-end output `(B, 1, 128, frames)` (after
//! `spec_bn`); parameter names follow Won 2020 (`layerN.conv`/`.bn` or
//! `layerN.conv_1` …, `dense1`, `bn`, `dense2`).

use crate::error::{ModelError, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2dConfig, Linear, VarBuilder};
use mirkit_nn::blocks::Res2d;
use mirkit_nn::fused::{self, Act, ConvSpec, Epilogue};

fn bn_cfg() -> BatchNormConfig {
    BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    }
}

/// Configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortChunkConfig {
    /// Base width `c`.
    pub channels: usize,
    /// Residual blocks (short-chunk ResNet) instead of plain ones.
    pub residual: bool,
    /// Number of tags.
    pub n_class: usize,
}

impl ShortChunkConfig {
    /// Published widths (`c = 128`, 50 tags).
    pub fn published(residual: bool) -> Self {
        Self {
            channels: 128,
            residual,
            n_class: 50,
        }
    }
    fn widths(&self) -> [usize; 8] {
        let c = self.channels;
        [1, c, c, 2 * c, 2 * c, 2 * c, 2 * c, 4 * c]
    }
    /// Trainable parameters (PyTorch's count).
    pub fn param_count(&self) -> usize {
        let w = self.widths();
        let conv = |ci: usize, co: usize| ci * co * 9 + co;
        let mut n = 0;
        for i in 0..7 {
            let (ci, co) = (w[i], w[i + 1]);
            n += if self.residual {
                conv(ci, co) + 2 * co + conv(co, co) + 2 * co + conv(ci, co) + 2 * co
            } else {
                conv(ci, co) + 2 * co
            };
        }
        let c4 = w[7];
        n + c4 * c4 + c4 + 2 * c4 + c4 * self.n_class + self.n_class
    }
}

enum Layer {
    Plain(mirkit_nn::conv2d::Conv2dGemm, BatchNorm),
    Res(Res2d),
}

/// A short-chunk CNN or ResNet.
pub struct ShortChunk {
    layers: Vec<Layer>,
    dense1: Linear,
    bn: BatchNorm,
    dense2: Linear,
}

impl ShortChunk {
    /// Builds the network from `vb`.
    pub fn new(cfg: &ShortChunkConfig, vb: VarBuilder) -> Result<Self> {
        let w = cfg.widths();
        let mut layers = Vec::new();
        for i in 0..7 {
            let l = vb.pp(format!("layer{}", i + 1));
            layers.push(if cfg.residual {
                Layer::Res(Res2d::new(w[i], w[i + 1], 3, 2, l)?)
            } else {
                Layer::Plain(
                    mirkit_nn::conv2d::conv2d(
                        w[i],
                        w[i + 1],
                        3,
                        Conv2dConfig {
                            padding: 1,
                            ..Default::default()
                        },
                        l.pp("conv"),
                    )?,
                    candle_nn::batch_norm(w[i + 1], bn_cfg(), l.pp("bn"))?,
                )
            });
        }
        let c4 = w[7];
        Ok(Self {
            layers,
            dense1: candle_nn::linear(c4, c4, vb.pp("dense1"))?,
            bn: candle_nn::batch_norm(c4, bn_cfg(), vb.pp("bn"))?,
            dense2: candle_nn::linear(c4, cfg.n_class, vb.pp("dense2"))?,
        })
    }

    /// Globally max-pooled features `(B, 4c)` of a front-end output `(B, 1, 128, T)`.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.named(x, train, false)?.pop().expect("pooled").1)
    }

    /// Named intermediate features: `layer1` … `layer7` (`(B, C, H, W)`), `pooled`
    /// (`(B, 4c)`, global max over time) and `embedding` (`(B, 4c)`, dense → BN → ReLU).
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Vec<(String, Tensor)>> {
        let mut v = self.named(x, train, true)?;
        let e = self
            .bn
            .forward_t(&self.dense1.forward(&v.last().expect("pooled").1)?, train)?
            .relu()?;
        v.push(("embedding".into(), e));
        Ok(v)
    }

    fn named(&self, x: &Tensor, train: bool, keep: bool) -> Result<Vec<(String, Tensor)>> {
        let d = x.dims();
        if d.len() != 4 || d[1] != 1 || d[2] != 128 {
            return Err(ModelError::Input(format!(
                "short-chunk models expect (B, 1, 128, frames), got {d:?}"
            )));
        }
        let mut h = x.clone();
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            h = match l {
                Layer::Plain(c, b) => fused::conv_block(
                    &h,
                    ConvSpec::conv2d(c),
                    Epilogue {
                        bn: Some(b),
                        act: Act::Relu,
                        pool: (2, 2),
                    },
                    train,
                )?,
                Layer::Res(r) => r.forward_t(&h, train)?,
            };
            if keep {
                out.push((format!("layer{}", i + 1), h.clone()));
            }
        }
        // (B, C, 1, T') -> global max over time (gradient to the argmax)
        out.push((
            "pooled".into(),
            mirkit_nn::pool::global_max_pool(&h.squeeze(2)?)?,
        ));
        Ok(out)
    }

    /// The 4c-dimensional embedding (dense → BN → ReLU).
    pub fn embedding_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self
            .bn
            .forward_t(&self.dense1.forward(&self.features_t(x, train)?)?, train)?
            .relu()?)
    }

    /// Logits `(B, n_class)` (before the sigmoid).
    pub fn logits_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.dense2.forward(&self.embedding_t(x, train)?)?)
    }

    /// Sigmoid tag scores `(B, n_class)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let e = self.embedding_t(x, train)?;
        Ok(candle_nn::ops::sigmoid(&self.dense2.forward(&e)?)?.contiguous()?)
    }
}
