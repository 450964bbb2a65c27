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
    let n = x.elem_count();
    let scale = (1.0 / (1.0 - p)) as f32;
    let m: Vec<f32> = (0..n)
        .map(|_| if rng.uniform() < p { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_vec(m, x.dims(), x.device())?.to_dtype(x.dtype())?;
    Ok(x.mul(&mask)?)
}
