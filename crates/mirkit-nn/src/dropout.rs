//! Seeded dropout (PyTorch semantics: zero with probability `p`, scale the rest by
//! `1/(1 − p)` in training; identity in evaluation).

use crate::error::{invalid, Result};
use candle_core::Tensor;
use mirkit_core::Rng;

/// Applies dropout; the mask is drawn from `rng`, so a seed reproduces it.
pub fn dropout(x: &Tensor, p: f64, train: bool, rng: &mut Rng) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        return Err(invalid("p", p, "must be in [0, 1)"));
    }
    if !train || p == 0.0 {
        return Ok(x.clone());
    }
    let mask = Tensor::from_vec(mask(x.elem_count(), p, rng), x.dims(), x.device())?;
    Ok(x.mul(&mask.to_dtype(x.dtype())?)?)
}

/// The mask of [`dropout`] for `n` values (`0 < p < 1`): 0 with probability `p`, else
/// `1/(1 − p)`, one draw from `rng` per value in order (so the training block of
/// [`crate::resblock`] draws the same mask from the same seed).
pub(crate) fn mask(n: usize, p: f64, rng: &mut Rng) -> Vec<f32> {
    let scale = (1.0 / (1.0 - p)) as f32;
    (0..n)
        .map(|_| if rng.uniform() < p { 0.0 } else { scale })
        .collect()
}
