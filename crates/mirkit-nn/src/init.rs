//! Seeded parameter initialisation with PyTorch's default schemes.
//!
//! Candle's CPU random generator cannot be seeded, so mirkit draws every initial value from
//! [`mirkit_core::Rng`] and inserts the tensors into a [`VarMap`] under their PyTorch
//! state-dict names. The same seed gives the same network on every machine.

use crate::error::Result;
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use mirkit_core::Rng;

/// Initialisation schemes (PyTorch's names and formulas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// U(−b, b).
    Uniform(f64),
    /// N(0, σ²).
    Normal(f64),
    /// PyTorch's default for `Linear`/`Conv` weights: `kaiming_uniform_(a=√5)`, i.e.
    /// U(−1/√fan_in, 1/√fan_in) (fan_in = product of all dims but the first).
    KaimingUniformDefault,
    /// `kaiming_normal_(mode="fan_in", nonlinearity="relu")`: N(0, 2/fan_in).
    KaimingNormalRelu,
    /// `xavier_uniform_`: U(−b, b), b = √(6/(fan_in + fan_out)).
    XavierUniform,
    /// A constant.
    Const(f64),
}

fn fans(shape: &[usize]) -> (usize, usize) {
    let receptive: usize = shape.iter().skip(2).product::<usize>().max(1);
    let fan_in = shape.get(1).copied().unwrap_or(1) * receptive;
    let fan_out = shape.first().copied().unwrap_or(1) * receptive;
    (fan_in, fan_out)
}

/// A tensor of `shape` drawn from `init` with `rng`.
pub fn tensor(shape: &[usize], init: Init, rng: &mut Rng, dev: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let (fan_in, fan_out) = fans(shape);
    let uni =
        |b: f64, rng: &mut Rng| -> Vec<f32> { (0..n).map(|_| rng.range(-b, b) as f32).collect() };
    let v: Vec<f32> = match init {
        Init::Uniform(b) => uni(b, rng),
        Init::Normal(s) => (0..n).map(|_| (rng.normal() * s) as f32).collect(),
        Init::KaimingUniformDefault => uni(1.0 / (fan_in as f64).sqrt(), rng),
        Init::KaimingNormalRelu => {
            let s = (2.0 / fan_in as f64).sqrt();
            (0..n).map(|_| (rng.normal() * s) as f32).collect()
        }
        Init::XavierUniform => uni((6.0 / (fan_in + fan_out) as f64).sqrt(), rng),
        Init::Const(c) => vec![c as f32; n],
    };
    Ok(Tensor::from_vec(v, shape, dev)?)
}

/// Creates (or replaces) variable `name` in `vm` with a seeded initial value.
pub fn seeded_var(
    vm: &VarMap,
    name: &str,
    shape: &[usize],
    init: Init,
    rng: &mut Rng,
    dev: &Device,
) -> Result<Var> {
    let var = Var::from_tensor(&tensor(shape, init, rng, dev)?)?;
    vm.data()
        .lock()
        .expect("VarMap lock poisoned")
        .insert(name.to_string(), var.clone());
    Ok(var)
}
