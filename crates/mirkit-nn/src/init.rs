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

/// Re-initialises every variable of `vm` with PyTorch's default scheme for its layer,
/// drawing from one [`Rng`] seeded with `seed` in sorted name order, so a whole model
/// built on a [`VarMap`] is reproducible (Candle's own initialisers draw from an
/// unseedable generator). Rules, by PyTorch state-dict name:
/// * batch norm (a `P.weight` / `P.bias` beside a `P.running_mean`): weight 1, bias 0,
///   running mean 0, running variance 1;
/// * recurrent `weight_ih_l*`, `weight_hh_l*`, `bias_ih_l*`, `bias_hh_l*` (and `_reverse`):
///   U(±1/√hidden), hidden = the second dimension of the layer's `weight_hh`;
/// * other `*.weight` (conv, linear): `kaiming_uniform_(a=√5)`, U(±1/√fan_in);
/// * other `*.bias`: U(±1/√fan_in) with the fan-in of the sibling weight;
/// * anything else (e.g. a buffer such as a filterbank) is left as it is.
pub fn reinit_pytorch_default(vm: &VarMap, seed: u64) -> Result<()> {
    let data = vm.data().lock().expect("VarMap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let dims = |n: &str| data.get(n).map(|v| v.dims().to_vec());
    let mut rng = Rng::new(seed);
    for name in names {
        let var = &data[name];
        let (prefix, leaf) = name.rsplit_once('.').unwrap_or(("", name.as_str()));
        let sib = |l: &str| {
            if prefix.is_empty() {
                l.to_string()
            } else {
                format!("{prefix}.{l}")
            }
        };
        let is_bn = data.contains_key(&sib("running_mean"));
        let init = if is_bn {
            match leaf {
                "weight" | "running_var" => Some(Init::Const(1.0)),
                "bias" | "running_mean" => Some(Init::Const(0.0)),
                _ => None,
            }
        } else if let Some(rest) = ["weight_ih_", "weight_hh_", "bias_ih_", "bias_hh_"]
            .iter()
            .find_map(|p| leaf.strip_prefix(p))
        {
            let hidden = dims(&sib(&format!("weight_hh_{rest}")))
                .and_then(|d| d.get(1).copied())
                .unwrap_or(1);
            Some(Init::Uniform(1.0 / (hidden as f64).sqrt()))
        } else if leaf == "weight" {
            Some(Init::KaimingUniformDefault)
        } else if leaf == "bias" {
            let fan_in: usize = dims(&sib("weight"))
                .map(|d| d.iter().skip(1).product())
                .unwrap_or(1);
            Some(Init::Uniform(1.0 / (fan_in.max(1) as f64).sqrt()))
        } else {
            None
        };
        if let Some(init) = init {
            var.set(&tensor(var.dims(), init, &mut rng, var.device())?)?;
        }
    }
    Ok(())
}
