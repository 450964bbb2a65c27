//! Numerically stable losses.
//!
//! `bce_with_logits` uses PyTorch's formulation
//! `(1 − y)·x + (1 + (w − 1)·y)·(log(1 + e^{−|x|}) + max(−x, 0))`, finite for any logit
//! (Candle 0.11's `binary_cross_entropy_with_logit` returns inf for large logits).

use crate::error::{invalid, NnError, Result};
use candle_core::{Tensor, D};

/// Mean binary cross-entropy on logits, with optional per-class `pos_weight` and label
/// smoothing (`y ← y·(1 − ε) + ε/2`).
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor, pos_weight: Option<&Tensor>, label_smoothing: f64) -> Result<Tensor> {
    if logits.dims() != targets.dims() {
        return Err(NnError::Shape { got: targets.dims().to_vec(), why: format!("targets must match logits {:?}", logits.dims()) });
    }
    if !(0.0..1.0).contains(&label_smoothing) {
        return Err(invalid("label_smoothing", label_smoothing, "must be in [0, 1)"));
    }
    let y = if label_smoothing > 0.0 { targets.affine(1.0 - label_smoothing, label_smoothing / 2.0)? } else { targets.clone() };
    let x = logits;
    // log(1 + e^{-|x|}) + max(-x, 0)  ==  softplus(-x), computed without overflow
    let sp = ((x.abs()?.neg()?.exp()? + 1.0)?.log()? + x.neg()?.relu()?)?;
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
        return Err(NnError::Shape { got: labels.dims().to_vec(), why: format!("labels must be (N,) for logits {:?}", logits.dims()) });
    }
    if !(0.0..1.0).contains(&label_smoothing) {
        return Err(invalid("label_smoothing", label_smoothing, "must be in [0, 1)"));
    }
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = lp.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?.mean_all()?;
    if label_smoothing == 0.0 {
        return Ok(nll);
    }
    let smooth = lp.mean(D::Minus1)?.neg()?.mean_all()?;
    Ok(((nll * (1.0 - label_smoothing))? + (smooth * label_smoothing)?)?)
}
