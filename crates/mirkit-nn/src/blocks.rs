//! Convolutional building blocks of the music-tagging zoo, with the parameter names of
//! Won et al. 2020's `modules.py` (`conv_1`, `bn_1`, …, `dense1`, `dense2`) and a
//! train/eval switch for batch normalisation (batch statistics in training, running
//! statistics in evaluation, as PyTorch).
//!
//! * [`ResSe1d`]: residual 1-D block with squeeze-and-excitation (SampleCNN+SE, Kim et al.
//!   2018): conv–BN–ReLU–conv–BN, channel gates `σ(W₂ ReLU(W₁ mean_t(x)))`, a projected
//!   shortcut when shape changes, ReLU, max-pool.
//! * [`Res2d`]: residual 2-D block (short-chunk ResNet, Won 2020).

use crate::error::Result;
use candle_core::{Module, ModuleT, Tensor, D};
use candle_nn::{
    BatchNorm, BatchNormConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Linear, VarBuilder,
};

fn bn_cfg() -> BatchNormConfig {
    BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    }
}

/// Residual 1-D block with squeeze-and-excitation.
pub struct ResSe1d {
    conv_1: Conv1d,
    bn_1: BatchNorm,
    conv_2: Conv1d,
    bn_2: BatchNorm,
    dense1: Linear,
    dense2: Linear,
    shortcut: Option<(Conv1d, BatchNorm)>,
    pooling: usize,
}

impl ResSe1d {
    /// Loads (or, from a `VarMap`-backed builder, creates) the block.
    pub fn new(
        cin: usize,
        cout: usize,
        shape: usize,
        stride: usize,
        pooling: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let c = |cin, stride, name: &str| {
            candle_nn::conv1d(
                cin,
                cout,
                shape,
                Conv1dConfig {
                    padding: shape / 2,
                    stride,
                    ..Default::default()
                },
                vb.pp(name),
            )
        };
        let shortcut = if stride != 1 || cin != cout {
            Some((
                c(cin, stride, "conv_3")?,
                candle_nn::batch_norm(cout, bn_cfg(), vb.pp("bn_3"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv_1: c(cin, stride, "conv_1")?,
            bn_1: candle_nn::batch_norm(cout, bn_cfg(), vb.pp("bn_1"))?,
            conv_2: c(cout, 1, "conv_2")?,
            bn_2: candle_nn::batch_norm(cout, bn_cfg(), vb.pp("bn_2"))?,
            dense1: candle_nn::linear(cout, cout, vb.pp("dense1"))?,
            dense2: candle_nn::linear(cout, cout, vb.pp("dense2"))?,
            shortcut,
            pooling,
        })
    }

    /// `(B, C_in, L) → (B, C_out, L / stride / pooling)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let out = self
            .bn_1
            .forward_t(&self.conv_1.forward(x)?, train)?
            .relu()?;
        let out = self.bn_2.forward_t(&self.conv_2.forward(&out)?, train)?;
        let se = out.mean(D::Minus1)?;
        let se =
            candle_nn::ops::sigmoid(&self.dense2.forward(&self.dense1.forward(&se)?.relu()?)?)?
                .unsqueeze(2)?;
        let out = out.broadcast_mul(&se)?;
        let x = match &self.shortcut {
            Some((c, b)) => b.forward_t(&c.forward(x)?, train)?,
            None => x.clone(),
        };
        let y = (x + out)?.relu()?;
        if self.pooling > 1 {
            crate::pool::max_pool1d(&y, self.pooling, self.pooling, 0)
        } else {
            Ok(y)
        }
    }
}

/// Residual 2-D block.
pub struct Res2d {
    conv_1: Conv2d,
    bn_1: BatchNorm,
    conv_2: Conv2d,
    bn_2: BatchNorm,
    shortcut: Option<(Conv2d, BatchNorm)>,
}

impl Res2d {
    /// Loads (or creates) the block: 3×3 (`shape`) convolutions, first one strided.
    pub fn new(
        cin: usize,
        cout: usize,
        shape: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let c = |cin, stride, name: &str| {
            candle_nn::conv2d(
                cin,
                cout,
                shape,
                Conv2dConfig {
                    padding: shape / 2,
                    stride,
                    ..Default::default()
                },
                vb.pp(name),
            )
        };
        let shortcut = if stride != 1 || cin != cout {
            Some((
                c(cin, stride, "conv_3")?,
                candle_nn::batch_norm(cout, bn_cfg(), vb.pp("bn_3"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv_1: c(cin, stride, "conv_1")?,
            bn_1: candle_nn::batch_norm(cout, bn_cfg(), vb.pp("bn_1"))?,
            conv_2: c(cout, 1, "conv_2")?,
            bn_2: candle_nn::batch_norm(cout, bn_cfg(), vb.pp("bn_2"))?,
            shortcut,
        })
    }

    /// `(B, C_in, H, W) → (B, C_out, ⌈H/stride⌉, ⌈W/stride⌉)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let out = self
            .bn_1
            .forward_t(&self.conv_1.forward(x)?, train)?
            .relu()?;
        let out = self.bn_2.forward_t(&self.conv_2.forward(&out)?, train)?;
        let x = match &self.shortcut {
            Some((c, b)) => b.forward_t(&c.forward(x)?, train)?,
            None => x.clone(),
        };
        Ok((x + out)?.relu()?)
    }
}
