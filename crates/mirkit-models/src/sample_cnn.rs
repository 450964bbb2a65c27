//! SampleCNN (Lee et al. 2017, "Sample-level deep convolutional neural networks for
//! music auto-tagging using raw waveforms") and SampleCNN+SE (Kim et al. 2018), as in Won
//! et al. 2020: 59 049 raw samples (3^10) in, a stride-3 convolution then nine
//! [conv 3 → BN → ReLU → max-pool 3] blocks (residual squeeze-and-excitation blocks for
//! +SE), a 1×1 block, and a dense head (+SE: dense → BN → ReLU → dense). Parameter names
//! are Won 2020's (`layerN.conv`, `layerN.bn`, `layerN.conv_1` …, `dense`, `dense1`, `bn`,
//! `dense2`).

use crate::error::{ModelError, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv1dConfig, Linear, VarBuilder};
use mirkit_nn::blocks::ResSe1d;
use mirkit_nn::conv::Conv1dGemm as Conv1d;
use mirkit_nn::fused::{self, Act, ConvSpec, Epilogue};

/// Input length: 3^10 samples (≈ 3.7 s at 16 kHz).
pub const INPUT_LEN: usize = 59_049;

/// Configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleCnnConfig {
    /// Output channels of the 11 blocks.
    pub channels: [usize; 11],
    /// Number of tags.
    pub n_class: usize,
    /// Residual squeeze-and-excitation blocks (SampleCNN+SE).
    pub se: bool,
}

impl SampleCnnConfig {
    /// The published configuration (128, 128, 128, 256 ×6, 512, 512).
    pub fn published(se: bool) -> Self {
        Self {
            channels: [128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512],
            n_class: 50,
            se,
        }
    }
    fn layer(&self, i: usize) -> (usize, usize, usize, usize, usize) {
        // (cin, cout, kernel, stride, pooling)
        let cin = if i == 0 { 1 } else { self.channels[i - 1] };
        match i {
            0 => (cin, self.channels[0], 3, 3, 1),
            10 => (cin, self.channels[10], 1, 1, 1),
            _ => (cin, self.channels[i], 3, 1, 3),
        }
    }
    /// Trainable parameters (PyTorch's `sum(p.numel() for p in model.parameters())`).
    pub fn param_count(&self) -> usize {
        let mut n = 0;
        for i in 0..11 {
            let (cin, cout, k, stride, _) = self.layer(i);
            let conv = |ci: usize| ci * cout * k + cout;
            if self.se {
                n += conv(cin) + 2 * cout + conv(cout) + 2 * cout + 2 * (cout * cout + cout);
                if stride != 1 || cin != cout {
                    n += conv(cin) + 2 * cout;
                }
            } else {
                n += conv(cin) + 2 * cout;
            }
        }
        let c = self.channels[10];
        n + if self.se {
            c * c + c + 2 * c + c * self.n_class + self.n_class
        } else {
            c * self.n_class + self.n_class
        }
    }
}

// one value per layer of a ~12-layer network: the size difference does not matter
#[allow(clippy::large_enum_variant)]
enum Layer {
    Plain {
        conv: Conv1d,
        bn: BatchNorm,
        pooling: usize,
    },
    Se(ResSe1d),
}

/// A SampleCNN or SampleCNN+SE.
pub struct SampleCnn {
    layers: Vec<Layer>,
    head: (Option<Linear>, Option<(Linear, BatchNorm, Linear)>),
}

fn bn_cfg() -> BatchNormConfig {
    BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    }
}

impl SampleCnn {
    /// Builds the network from `vb` (weights under Won 2020's names).
    pub fn new(cfg: &SampleCnnConfig, vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::new();
        for i in 0..11 {
            let (cin, cout, k, stride, pooling) = cfg.layer(i);
            let l = vb.pp(format!("layer{}", i + 1));
            layers.push(if cfg.se {
                Layer::Se(ResSe1d::new(cin, cout, k, stride, pooling, l)?)
            } else {
                Layer::Plain {
                    conv: mirkit_nn::conv::conv1d(
                        cin,
                        cout,
                        k,
                        Conv1dConfig {
                            padding: k / 2,
                            stride,
                            ..Default::default()
                        },
                        l.pp("conv"),
                    )?,
                    bn: candle_nn::batch_norm(cout, bn_cfg(), l.pp("bn"))?,
                    pooling,
                }
            });
        }
        let c = cfg.channels[10];
        let head = if cfg.se {
            (
                None,
                Some((
                    candle_nn::linear(c, c, vb.pp("dense1"))?,
                    candle_nn::batch_norm(c, bn_cfg(), vb.pp("bn"))?,
                    candle_nn::linear(c, cfg.n_class, vb.pp("dense2"))?,
                )),
            )
        } else {
            (
                Some(candle_nn::linear(c, cfg.n_class, vb.pp("dense"))?),
                None,
            )
        };
        Ok(Self { layers, head })
    }

    /// The last block's output, `(B, C)`, from raw audio `(B, 59049)`.
    pub fn embedding_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.named(x, train, false)?.pop().expect("embedding").1)
    }

    /// Named intermediate features: `layer1` … `layer11` (`(B, C, L)`) and `embedding`
    /// (`(B, C)`, the last block squeezed).
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Vec<(String, Tensor)>> {
        self.named(x, train, true)
    }

    fn named(&self, x: &Tensor, train: bool, keep: bool) -> Result<Vec<(String, Tensor)>> {
        let d = x.dims();
        if d.len() != 2 || d[1] != INPUT_LEN {
            return Err(ModelError::Input(format!(
                "SampleCNN expects (B, {INPUT_LEN}) samples, got {d:?}"
            )));
        }
        let mut h = x.unsqueeze(1)?;
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            h = match l {
                Layer::Plain { conv, bn, pooling } => fused::conv_block(
                    &h,
                    ConvSpec::conv1d(conv),
                    Epilogue {
                        bn: Some(bn),
                        act: Act::Relu,
                        pool: (1, *pooling),
                    },
                    train,
                )?,
                Layer::Se(b) => b.forward_t(&h, train)?,
            };
            if keep {
                out.push((format!("layer{}", i + 1), h.clone()));
            }
        }
        out.push(("embedding".into(), h.squeeze(2)?));
        Ok(out)
    }

    /// Sigmoid tag scores `(B, n_class)` (dropout is the caller's, in training).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.logits_t(x, train)?)?)
    }

    /// Logits `(B, n_class)` (before the sigmoid).
    pub fn logits_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let e = self.embedding_t(x, train)?;
        Ok(match &self.head {
            (Some(d), _) => d.forward(&e)?,
            (None, Some((d1, bn, d2))) => {
                d2.forward(&bn.forward_t(&d1.forward(&e)?, train)?.relu()?)?
            }
            _ => unreachable!("a head is always built"),
        })
    }
}
