//! ReSE-2 with multi-level feature aggregation (Kim, Lee & Nam 2018, "Sample-level CNN
//! architectures for music auto-tagging using raw waveforms", ICASSP; the authors' Keras
//! `resemul(block_type="rese", multi=True, amplifying_ratio=16, drop_rate=0.5)`).
//!
//! 59 049 raw samples → conv 3 stride 3 (128) → BN → ReLU → nine ReSE-2 blocks (widths
//! 128, 128, 256 × 6, 512; each conv–BN–ReLU–dropout 0.2–conv–BN, squeeze-and-excitation
//! amplified 16×, residual with a 1×1 projection when the width changes, ReLU, max-pool 3)
//! → the last three blocks' outputs globally max-pooled and concatenated (1024) → dense
//! 1024 → BN → ReLU → dropout 0.5 → dense → sigmoid. Batch norm uses Keras' ε = 1e-3.
//! Parameter names follow PyTorch conventions (`conv0`, `bn0`, `blockN.conv_1` …
//! `blockN.se_1`, `dense1`, `bn`, `dense2`; tools/make_model_fixtures.py has the PyTorch
//! port the tests compare with).

use crate::error::{ModelError, Result};
use candle_core::{Module, ModuleT, Tensor, D};
use candle_nn::{BatchNorm, Conv1dConfig, Linear, VarBuilder};
use mirkit_core::Rng;
use mirkit_nn::blocks::{bn_eps, ResSe1d};
use mirkit_nn::conv::Conv1dGemm as Conv1d;
use mirkit_nn::fused::{self, Act, ConvSpec, Epilogue};

/// Input length: 3^10 samples (≈ 3.7 s at 16 kHz).
pub const INPUT_LEN: usize = 59_049;

/// Configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ReSe2Config {
    /// Width of the first convolution (128); the blocks use 1×, 1×, 2× (six), 4×.
    pub init: usize,
    /// Squeeze-and-excitation amplifying ratio (16).
    pub alpha: usize,
    /// Number of tags.
    pub n_class: usize,
}

impl ReSe2Config {
    /// The published configuration (128 filters, α = 16, 50 tags): 26 980 146 parameters.
    pub fn published() -> Self {
        Self {
            init: 128,
            alpha: 16,
            n_class: 50,
        }
    }
    fn widths(&self) -> [usize; 9] {
        let mut w = [0; 9];
        let mut c = self.init;
        for (i, x) in w.iter_mut().enumerate() {
            if i == 2 || i == 8 {
                c *= 2;
            }
            *x = c;
        }
        w
    }
    /// Width of the multi-level feature (the last three blocks concatenated).
    pub fn feature_dim(&self) -> usize {
        let w = self.widths();
        w[6] + w[7] + w[8]
    }
    /// Trainable parameters (as PyTorch's `sum(p.numel())`).
    pub fn param_count(&self) -> usize {
        let mut n = 3 * self.init + self.init + 2 * self.init;
        let mut cin = self.init;
        for c in self.widths() {
            let h = self.alpha * c;
            n += (cin * 3 * c + c) + 2 * c + (c * 3 * c + c) + 2 * c + (c * h + h) + (h * c + c);
            if cin != c {
                n += cin * c + c + 2 * c;
            }
            cin = c;
        }
        let f = self.feature_dim();
        n + f * f + f + 2 * f + f * self.n_class + self.n_class
    }
}

/// A ReSE-2-Multi network.
pub struct ReSe2 {
    conv0: Conv1d,
    bn0: BatchNorm,
    blocks: Vec<ResSe1d>,
    dense1: Linear,
    bn: BatchNorm,
    dense2: Linear,
}

impl ReSe2 {
    /// Builds the network from `vb` (see [`crate::create`] for seeded creation and
    /// checked loading).
    pub fn new(cfg: &ReSe2Config, vb: VarBuilder) -> Result<Self> {
        if cfg.init == 0 || cfg.alpha == 0 || cfg.n_class == 0 {
            return Err(ModelError::Input(format!("ReSE-2 configuration {cfg:?}")));
        }
        let conv0 = mirkit_nn::conv::conv1d(
            1,
            cfg.init,
            3,
            Conv1dConfig {
                stride: 3,
                ..Default::default()
            },
            vb.pp("conv0"),
        )?;
        let bn0 = candle_nn::batch_norm(cfg.init, bn_eps(1e-3), vb.pp("bn0"))?;
        let mut blocks = Vec::new();
        let mut cin = cfg.init;
        for (i, c) in cfg.widths().into_iter().enumerate() {
            blocks.push(ResSe1d::rese2(
                cin,
                c,
                cfg.alpha,
                vb.pp(format!("block{}", i + 1)),
            )?);
            cin = c;
        }
        let f = cfg.feature_dim();
        Ok(Self {
            conv0,
            bn0,
            blocks,
            dense1: candle_nn::linear(f, f, vb.pp("dense1"))?,
            bn: candle_nn::batch_norm(f, bn_eps(1e-3), vb.pp("bn"))?,
            dense2: candle_nn::linear(f, cfg.n_class, vb.pp("dense2"))?,
        })
    }

    /// Named intermediate features of raw audio `(B, 59049)`: `block1` … `block9` (each
    /// `(B, C, L)`) and `multi_level` (`(B, 1024)`, the concatenated global maxima), and
    /// `embedding` (`(B, 1024)`, after dense–BN–ReLU). With `rng` in training, the blocks'
    /// dropout is applied.
    pub fn features(
        &self,
        x: &Tensor,
        train: bool,
        mut rng: Option<&mut Rng>,
    ) -> Result<Vec<(String, Tensor)>> {
        match x.dims() {
            [_, INPUT_LEN] => {}
            d => {
                return Err(ModelError::Input(format!(
                    "ReSE-2 expects (B, {INPUT_LEN}) samples, got {d:?}"
                )))
            }
        }
        let mut h = fused::conv_block(
            &x.unsqueeze(1)?,
            ConvSpec::conv1d(&self.conv0),
            Epilogue {
                bn: Some(&self.bn0),
                act: Act::Relu,
                pool: (1, 1),
            },
            train,
        )?;
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            h = b.forward_drop(&h, train, rng.as_deref_mut())?;
            out.push((format!("block{}", i + 1), h.clone()));
        }
        let multi = Tensor::cat(
            &out[6..]
                .iter()
                .map(|(_, t)| t.max(D::Minus1))
                .collect::<candle_core::Result<Vec<_>>>()?,
            1,
        )?;
        let e = self
            .bn
            .forward_t(&self.dense1.forward(&multi)?, train)?
            .relu()?;
        out.push(("multi_level".into(), multi));
        out.push(("embedding".into(), e));
        Ok(out)
    }

    /// Sigmoid tag scores `(B, n_class)`; in training with `rng`, dropout (0.2 in the
    /// blocks, 0.5 before the output layer) as the original.
    pub fn forward(&self, x: &Tensor, train: bool, rng: Option<&mut Rng>) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.logits(x, train, rng)?)?)
    }

    /// Logits `(B, n_class)` (before the sigmoid), dropout as [`Self::forward`].
    pub fn logits(&self, x: &Tensor, train: bool, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let f = self.features(x, train, rng.as_deref_mut())?;
        let e = &f.last().expect("embedding").1;
        let e = match rng {
            Some(r) if train => mirkit_nn::dropout::dropout(e, 0.5, true, r)?,
            _ => e.clone(),
        };
        Ok(self.dense2.forward(&e)?)
    }
}
