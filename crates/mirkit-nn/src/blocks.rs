//! Convolutional building blocks of the music-tagging zoo, with the parameter names of
//! Won et al. 2020's `modules.py` (`conv_1`, `bn_1`, …, `dense1`, `dense2`) and a
//! train/eval switch for batch normalisation (batch statistics in training, running
//! statistics in evaluation, as PyTorch).
//!
//! * [`ResSe1d`]: residual 1-D block with squeeze-and-excitation (SampleCNN+SE, Kim et al.
//!   2018): conv–BN–ReLU–(dropout 0.2 in training)–conv–BN, channel gates
//!   `σ(W₂ ReLU(W₁ mean_t(x)))`, a projected shortcut when shape changes, ReLU, max-pool.
//!   [`ResSe1d::new`] is Won 2020's `ResSE_1d`; [`ResSe1d::rese2`] the ReSE-2 block of
//!   Kim, Lee & Nam's `resemul` (SE amplified α× instead of square, 1×1 shortcut, Keras'
//!   batch-norm ε 1e-3).
//! * [`Res2d`]: residual 2-D block (short-chunk ResNet, Won 2020).

use crate::conv::Conv1dGemm as Conv1d;
use crate::error::Result;
use crate::fused::{
    conv_block, conv_pair_eval, fused_eval, residual_eval, Act, ConvSpec, Epilogue,
};
use candle_core::{Tensor, D};
use candle_nn::{BatchNorm, BatchNormConfig, Conv1dConfig, Conv2dConfig, Linear, VarBuilder};
use mirkit_core::Rng;

fn bn_cfg() -> BatchNormConfig {
    bn_eps(1e-5)
}

/// PyTorch-semantics batch norm configuration with epsilon `eps` (momentum 0.1).
pub fn bn_eps(eps: f64) -> BatchNormConfig {
    BatchNormConfig {
        eps,
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

/// The layout of a [`ResSe1d`].
struct ResSeLayout {
    shape: usize,
    stride: usize,
    pooling: usize,
    se_hidden: usize,
    shortcut_shape: usize,
    eps: f64,
    se_names: (&'static str, &'static str),
}

impl ResSe1d {
    /// Loads (or, from a `VarMap`-backed builder, creates) Won 2020's `ResSE_1d`.
    pub fn new(
        cin: usize,
        cout: usize,
        shape: usize,
        stride: usize,
        pooling: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::build(
            cin,
            cout,
            ResSeLayout {
                shape,
                stride,
                pooling,
                se_hidden: cout,
                shortcut_shape: shape,
                eps: 1e-5,
                se_names: ("dense1", "dense2"),
            },
            vb,
        )
    }

    /// The ReSE-2 block of Kim et al. 2018 (kernel 3, max-pool 3, SE hidden width
    /// `alpha · cout`, 1×1 projected shortcut when the width changes, ε 1e-3; SE layers
    /// named `se_1`, `se_2`).
    pub fn rese2(cin: usize, cout: usize, alpha: usize, vb: VarBuilder) -> Result<Self> {
        Self::build(
            cin,
            cout,
            ResSeLayout {
                shape: 3,
                stride: 1,
                pooling: 3,
                se_hidden: alpha * cout,
                shortcut_shape: 1,
                eps: 1e-3,
                se_names: ("se_1", "se_2"),
            },
            vb,
        )
    }

    fn build(cin: usize, cout: usize, l: ResSeLayout, vb: VarBuilder) -> Result<Self> {
        let c = |cin, shape: usize, stride, name: &str| {
            crate::conv::conv1d(
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
        let bn = |name: &str| candle_nn::batch_norm(cout, bn_eps(l.eps), vb.pp(name));
        let shortcut = if l.stride != 1 || cin != cout {
            Some((c(cin, l.shortcut_shape, l.stride, "conv_3")?, bn("bn_3")?))
        } else {
            None
        };
        Ok(Self {
            conv_1: c(cin, l.shape, l.stride, "conv_1")?,
            bn_1: bn("bn_1")?,
            conv_2: c(cout, l.shape, 1, "conv_2")?,
            bn_2: bn("bn_2")?,
            dense1: candle_nn::linear(cout, l.se_hidden, vb.pp(l.se_names.0))?,
            dense2: candle_nn::linear(l.se_hidden, cout, vb.pp(l.se_names.1))?,
            shortcut,
            pooling: l.pooling,
        })
    }

    /// [`Self::forward_t`] with the block's dropout (p = 0.2 after the first ReLU) drawn
    /// from `rng` when training.
    pub fn forward_drop(
        &self,
        x: &Tensor,
        train: bool,
        mut rng: Option<&mut Rng>,
    ) -> Result<Tensor> {
        if train {
            // the whole block as one op (crate::resblock); the dropout's mask is drawn
            // only when it applies, so the composed path below gets the same draws
            let parts = crate::resblock::ResBlockParts {
                conv1: (ConvSpec::conv1d(&self.conv_1), &self.bn_1),
                dropout: rng.as_deref_mut().map(|r| (0.2, r)),
                conv2: (ConvSpec::conv1d(&self.conv_2), &self.bn_2),
                se: Some((&self.dense1, &self.dense2)),
                shortcut: self
                    .shortcut
                    .as_ref()
                    .map(|(c, b)| (ConvSpec::conv1d(c), b)),
                pool: (1, self.pooling),
            };
            if let Some(y) = crate::resblock::res_block_train(x, parts)? {
                return Ok(y);
            }
        }
        self.forward_composed(x, train, rng)
    }

    /// [`Self::forward_drop`] from single ops (and the fused ones of
    /// [`crate::trainblock`] in training).
    fn forward_composed(&self, x: &Tensor, train: bool, rng: Option<&mut Rng>) -> Result<Tensor> {
        let out = conv_block(
            x,
            ConvSpec::conv1d(&self.conv_1),
            bn_relu(&self.bn_1, true),
            train,
        )?;
        let out = match rng {
            Some(r) if train => crate::dropout::dropout(&out, 0.2, true, r)?,
            _ => out,
        };
        self.finish(x, out, train)
    }

    /// `(B, C_in, L) → (B, C_out, L / stride / pooling)` (no dropout; see
    /// [`Self::forward_drop`]).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_drop(x, train, None)
    }

    fn finish(&self, x: &Tensor, out: Tensor, train: bool) -> Result<Tensor> {
        let out = conv_block(
            &out,
            ConvSpec::conv1d(&self.conv_2),
            bn_relu(&self.bn_2, false),
            train,
        )?;
        let se = match crate::fused::mean_last_eval(&out, train)? {
            Some(m) => m,
            None => out.mean(D::Minus1)?,
        };
        let hidden = crate::fused::linear(&self.dense1, &se, train)?.relu()?;
        let se = candle_nn::ops::sigmoid(&crate::fused::linear(&self.dense2, &hidden, train)?)?
            .unsqueeze(2)?;
        let x = match &self.shortcut {
            Some((c, b)) => conv_block(x, ConvSpec::conv1d(c), bn_relu(b, false), train)?,
            None => x.clone(),
        };
        let se = se.squeeze(2)?;
        if let Some(y) = residual_eval(&x, &out, Some(&se), (1, self.pooling), train)? {
            return Ok(y);
        }
        if train {
            if let Some(y) =
                crate::trainblock::residual_train(&x, &out, Some(&se), (1, self.pooling))?
            {
                return Ok(y);
            }
        }
        let out = out.broadcast_mul(&se.unsqueeze(2)?)?;
        let y = (x + out)?.relu()?;
        if self.pooling > 1 {
            crate::pool::max_pool1d(&y, self.pooling, self.pooling, 0)
        } else {
            Ok(y)
        }
    }
}

/// Batch norm, then ReLU or not, no pooling: the steps after a block's convolution.
fn bn_relu(bn: &BatchNorm, relu: bool) -> Epilogue<'_> {
    Epilogue {
        bn: Some(bn),
        act: if relu { Act::Relu } else { Act::Identity },
        pool: (1, 1),
    }
}

/// Residual 2-D block.
pub struct Res2d {
    conv_1: crate::conv2d::Conv2dGemm,
    bn_1: BatchNorm,
    conv_2: crate::conv2d::Conv2dGemm,
    bn_2: BatchNorm,
    shortcut: Option<(crate::conv2d::Conv2dGemm, BatchNorm)>,
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
            crate::conv2d::conv2d(
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
        if train {
            // the whole block as one op (crate::resblock)
            let parts = crate::resblock::ResBlockParts {
                conv1: (ConvSpec::conv2d(&self.conv_1), &self.bn_1),
                dropout: None,
                conv2: (ConvSpec::conv2d(&self.conv_2), &self.bn_2),
                se: None,
                shortcut: self
                    .shortcut
                    .as_ref()
                    .map(|(c, b)| (ConvSpec::conv2d(c), b)),
                pool: (1, 1),
            };
            if let Some(y) = crate::resblock::res_block_train(x, parts)? {
                return Ok(y);
            }
        }
        self.forward_composed(x, train)
    }

    /// [`Self::forward_t`] from single ops (and the fused ones of [`crate::fused`] and
    /// [`crate::trainblock`]).
    fn forward_composed(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let first = (ConvSpec::conv2d(&self.conv_1), bn_relu(&self.bn_1, true));
        // inference: the first convolution and the shortcut read the same input with the
        // same geometry, so they share each tile's im2col
        let pair = match &self.shortcut {
            Some((c, b)) if !train && fused_eval() => {
                conv_pair_eval(x, first, (ConvSpec::conv2d(c), bn_relu(b, false)))?
            }
            _ => None,
        };
        let (out, shortcut) = match pair {
            Some((out, s)) => (out, Some(s)),
            None => (conv_block(x, first.0, first.1, train)?, None),
        };
        let out = conv_block(
            &out,
            ConvSpec::conv2d(&self.conv_2),
            bn_relu(&self.bn_2, false),
            train,
        )?;
        let x = match (shortcut, &self.shortcut) {
            (Some(s), _) => s,
            (None, Some((c, b))) => conv_block(x, ConvSpec::conv2d(c), bn_relu(b, false), train)?,
            (None, None) => x.clone(),
        };
        if let Some(y) = residual_eval(&x, &out, None, (1, 1), train)? {
            return Ok(y);
        }
        if train {
            if let Some(y) = crate::trainblock::residual_train(&x, &out, None, (1, 1))? {
                return Ok(y);
            }
        }
        Ok((x + out)?.relu()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{max_abs, uniform_in as uniform};
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    /// Two blocks with the same parameters (the second's variables set to the first's).
    fn twin<B>(make: impl Fn(VarBuilder) -> Result<B>) -> ((B, VarMap), (B, VarMap)) {
        let (v1, mut v2) = (VarMap::new(), VarMap::new());
        let b1 = make(VarBuilder::from_varmap(&v1, DType::F32, &Device::Cpu)).unwrap();
        let b2 = make(VarBuilder::from_varmap(&v2, DType::F32, &Device::Cpu)).unwrap();
        for (name, var) in v1.data().lock().unwrap().iter() {
            v2.set_one(name, var.as_tensor()).unwrap();
        }
        ((b1, v1), (b2, v2))
    }

    /// The whole-block op (`crate::resblock`) against the composed ops on the same
    /// input and parameters: the output, the input's and every variable's gradient (by
    /// name: kernels, biases, γ, β, the excitation's weights) and the running statistics
    /// after the step, for ReSE-2's, Won 2020's and the short-chunk ResNet's blocks,
    /// with and without dropout, projected and identity shortcuts, data and variable
    /// inputs. Different float sums (f64 means, product orders) bound the differences,
    /// relative to each gradient's largest value.
    #[test]
    fn whole_block_equals_composed() {
        let mut rng = Rng::new(61);
        type Run<'a> = &'a dyn Fn(&Tensor, Option<&mut Rng>, bool) -> Tensor;
        // the largest difference and the reference's largest magnitude
        let rel = |a: &Tensor, b: &Tensor| {
            let scale = b.abs().unwrap().max_all().unwrap();
            (max_abs(a, b), scale.to_scalar::<f32>().unwrap())
        };
        let check = |name: &str,
                     (v1, v2): (&VarMap, &VarMap),
                     x: &Tensor,
                     whole: Run,
                     composed: Run,
                     drop: bool| {
            for var_input in [true, false] {
                let xv = Var::from_tensor(x).unwrap();
                let xin = if var_input {
                    xv.as_tensor().clone()
                } else {
                    x.clone()
                };
                let (mut r1, mut r2) = (Rng::new(5), Rng::new(5));
                let (d1, d2) = if drop {
                    (Some(&mut r1), Some(&mut r2))
                } else {
                    (None, None)
                };
                let y1 = whole(&xin, d1, true);
                let y2 = composed(&xin, d2, true);
                assert_eq!(y1.dims(), y2.dims(), "{name}");
                let e = max_abs(&y1, &y2);
                assert!(e < 1e-5, "{name}: output differs by {e}");
                let gw = uniform(&mut Rng::new(9), y1.dims(), -1.0, 1.0);
                let g1 = (&y1 * &gw).unwrap().sum_all().unwrap().backward().unwrap();
                let g2 = (&y2 * &gw).unwrap().sum_all().unwrap().backward().unwrap();
                let (m1, m2) = (v1.data().lock().unwrap(), v2.data().lock().unwrap());
                let mut seen = 0;
                for (key, a) in m1.iter() {
                    let b = &m2[key];
                    if key.contains("running") {
                        let e = max_abs(a.as_tensor(), b.as_tensor());
                        assert!(e < 1e-6, "{name} {key}: {e}");
                        continue;
                    }
                    let (e, scale) = rel(g1.get(a).unwrap(), g2.get(b).unwrap());
                    assert!(
                        e <= 1e-5 * (1.0 + scale),
                        "{name} d{key}: {e} (scale {scale})"
                    );
                    seen += 1;
                }
                assert!(seen >= 8, "{name}: {seen} parameters");
                if var_input {
                    let (e, scale) = rel(g1.get(&xv).unwrap(), g2.get(&xv).unwrap());
                    assert!(e <= 1e-5 * (1.0 + scale), "{name} dx: {e} (scale {scale})");
                } else {
                    assert!(g1.get(&xv).is_none());
                }
            }
        };
        // ReSE-2 (1×1 projected shortcut, pool 3, dropout) and its identity-shortcut block
        for (cin, cout, len, drop) in [
            (3usize, 4usize, 300usize, true),
            (4, 4, 270, true),
            (4, 4, 90, false),
        ] {
            let ((b1, v1), (b2, v2)) = twin(|vb| ResSe1d::rese2(cin, cout, 2, vb));
            let x = uniform(&mut rng, &[2, cin, len], -1.0, 1.0);
            check(
                &format!("rese2 {cin}->{cout}"),
                (&v1, &v2),
                &x,
                &|x, r, t| b1.forward_drop(x, t, r).unwrap(),
                &|x, r, t| b2.forward_composed(x, t, r).unwrap(),
                drop,
            );
        }
        // Won 2020's block with a strided kernel-3 shortcut
        let ((b1, v1), (b2, v2)) = twin(|vb| ResSe1d::new(3, 5, 3, 2, 2, vb));
        let x = uniform(&mut rng, &[3, 3, 101], -1.0, 1.0);
        check(
            "won2020 resse",
            (&v1, &v2),
            &x,
            &|x, r, t| b1.forward_drop(x, t, r).unwrap(),
            &|x, r, t| b2.forward_composed(x, t, r).unwrap(),
            false,
        );
        // a second backward through the same forward is an error naming the cause
        let ((b, _), _) = twin(|vb| ResSe1d::rese2(4, 4, 2, vb));
        let x = Var::from_tensor(&uniform(&mut rng, &[2, 4, 90], -1.0, 1.0)).unwrap();
        let loss = b.forward_t(x.as_tensor(), true).unwrap().sum_all().unwrap();
        loss.backward().unwrap();
        let e = loss.backward().unwrap_err().to_string();
        assert!(e.contains("second backward"), "{e}");
        // the short-chunk ResNet's blocks: strided with a shortcut, and stride 1
        for (cin, cout, stride, hw) in [(2usize, 4usize, 2usize, 17usize), (4, 4, 1, 12)] {
            let ((b1, v1), (b2, v2)) = twin(|vb| Res2d::new(cin, cout, 3, stride, vb));
            let x = uniform(&mut rng, &[2, cin, hw, hw + 3], -1.0, 1.0);
            check(
                &format!("res2d {cin}->{cout} stride {stride}"),
                (&v1, &v2),
                &x,
                &|x, _, t| b1.forward_t(x, t).unwrap(),
                &|x, _, t| b2.forward_composed(x, t).unwrap(),
                false,
            );
        }
    }
}
