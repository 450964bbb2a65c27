//! Numerically stable losses.
//!
//! `bce_with_logits` uses PyTorch's formulation
//! `(1 − y)·x + (1 + (w − 1)·y)·(log(1 + e^{−|x|}) + max(−x, 0))`, finite for any logit
//! (Candle 0.11's `binary_cross_entropy_with_logit` returns inf for large logits).

use crate::error::{invalid, NnError, Result};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, D};

/// `softplus(x) = log(1 + e^x)`, computed as `max(x, 0) + log1p(e^{−|x|})` (finite for
/// every input) with the exact gradient `σ(x)` — also at `x = 0`, where composing
/// `relu` and `abs` would give a zero subgradient.
struct Softplus;

impl CustomOp1 for Softplus {
    fn name(&self) -> &'static str {
        "mirkit-softplus"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = l
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("softplus: non-contiguous input".into()))?;
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(
                v[a..b]
                    .iter()
                    .map(|&x| x.max(0.0) + (-x.abs()).exp().ln_1p())
                    .collect(),
            ),
            CpuStorage::F64(v) => CpuStorage::F64(
                v[a..b]
                    .iter()
                    .map(|&x| x.max(0.0) + (-x.abs()).exp().ln_1p())
                    .collect(),
            ),
            _ => {
                return Err(candle_core::Error::Msg(
                    "softplus: f32 or f64 input expected".into(),
                ))
            }
        };
        Ok((out, l.shape().clone()))
    }
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.mul(&candle_nn::ops::sigmoid(arg)?)?))
    }
}

/// Stable softplus with an exact gradient (CPU kernel; other devices use the composite
/// `relu(x) + log(1 + e^{−|x|})`).
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        Ok(x.contiguous()?.apply_op1(Softplus)?)
    } else {
        Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
    }
}

/// Mean binary cross-entropy on logits, with optional per-class `pos_weight` and label
/// smoothing (`y ← y·(1 − ε) + ε/2`).
///
/// ```
/// use candle_core::{Device, Tensor};
/// // torch.nn.BCEWithLogitsLoss()(logits, targets), stable for large |logits|
/// let logits = Tensor::new(&[[2.0f32, -1.0], [-100.0, 100.0]], &Device::Cpu)?;
/// let targets = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0]], &Device::Cpu)?;
/// let loss = mirkit_nn::loss::bce_with_logits(&logits, &targets, None, 0.0)?;
/// let want = ((1.0 + (-2.0f32).exp()).ln() + (1.0 + (-1.0f32).exp()).ln()) / 4.0;
/// assert!((loss.to_scalar::<f32>()? - want).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn bce_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    pos_weight: Option<&Tensor>,
    label_smoothing: f64,
) -> Result<Tensor> {
    if logits.dims() != targets.dims() {
        return Err(NnError::Shape {
            got: targets.dims().to_vec(),
            why: format!("targets must match logits {:?}", logits.dims()),
        });
    }
    if !(0.0..1.0).contains(&label_smoothing) {
        return Err(invalid(
            "label_smoothing",
            label_smoothing,
            "must be in [0, 1)",
        ));
    }
    let y = if label_smoothing > 0.0 {
        targets.affine(1.0 - label_smoothing, label_smoothing / 2.0)?
    } else {
        targets.clone()
    };
    let x = logits;
    // log(1 + e^{-|x|}) + max(-x, 0)  ==  softplus(-x), computed without overflow
    let sp = softplus(&x.neg()?)?;
    let l = match pos_weight {
        None => ((y.neg()? + 1.0)?.mul(x)? + &sp)?,
        Some(w) => {
            let coef = (y.broadcast_mul(&(w - 1.0)?)? + 1.0)?;
            ((y.neg()? + 1.0)?.mul(x)? + coef.mul(&sp)?)?
        }
    };
    Ok(l.mean_all()?)
}

/// Mean cross-entropy of `(N, C)` logits against class indices `(N,)` (u32), with label
/// smoothing as in PyTorch (`(1 − ε)·NLL + ε·mean over classes of −log p`).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    if logits.rank() != 2 || labels.rank() != 1 || labels.dim(0)? != logits.dim(0)? {
        return Err(NnError::Shape {
            got: labels.dims().to_vec(),
            why: format!("labels must be (N,) for logits {:?}", logits.dims()),
        });
    }
    if !(0.0..1.0).contains(&label_smoothing) {
        return Err(invalid(
            "label_smoothing",
            label_smoothing,
            "must be in [0, 1)",
        ));
    }
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = lp
        .gather(&labels.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?
        .mean_all()?;
    if label_smoothing == 0.0 {
        return Ok(nll);
    }
    let smooth = lp.mean(D::Minus1)?.neg()?.mean_all()?;
    Ok(((nll * (1.0 - label_smoothing))? + (smooth * label_smoothing)?)?)
}

fn same_shape(pred: &Tensor, target: &Tensor) -> Result<()> {
    if pred.dims() != target.dims() {
        return Err(NnError::Shape {
            got: target.dims().to_vec(),
            why: format!("targets must have the predictions' shape {:?}", pred.dims()),
        });
    }
    Ok(())
}

/// Mean squared error over every element (`torch.nn.functional.mse_loss`).
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape(pred, target)?;
    Ok((pred - target)?.sqr()?.mean_all()?)
}

/// Mean Huber loss (`torch.nn.functional.huber_loss`): `½d²` where `|d| < δ`, else
/// `δ(|d| − ½δ)`, with `d = pred − target`. Computed as `½q² + δ(|d| − q)` with
/// `q = min(|d|, δ)`, which is the same function and needs no branch.
pub fn huber(pred: &Tensor, target: &Tensor, delta: f64) -> Result<Tensor> {
    same_shape(pred, target)?;
    if !(delta > 0.0 && delta.is_finite()) {
        return Err(invalid("huber delta", delta, "must be finite and > 0"));
    }
    let a = (pred - target)?.abs()?;
    let q = a.clamp(0.0, delta)?;
    let quad = (q.sqr()? * 0.5)?;
    let lin = ((a - &q)? * delta)?;
    Ok((quad + lin)?.mean_all()?)
}

/// The loss of a regression: mean squared error or Huber.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RegressionLoss {
    /// [`mse`].
    Mse,
    /// [`huber`] with this δ.
    Huber {
        /// where the loss turns from quadratic to linear
        delta: f64,
    },
}

impl Default for RegressionLoss {
    /// Mean squared error.
    fn default() -> Self {
        RegressionLoss::Mse
    }
}

impl RegressionLoss {
    /// The mean loss of predictions against targets of the same shape.
    pub fn apply(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        match *self {
            RegressionLoss::Mse => mse(pred, target),
            RegressionLoss::Huber { delta } => huber(pred, target, delta),
        }
    }
}
