//! Stacked, optionally bidirectional GRU and LSTM with PyTorch's parameter names
//! (`weight_ih_l{k}[_reverse]`, `weight_hh_l…`, `bias_ih_l…`, `bias_hh_l…`) and gate
//! order (GRU: r, z, n; LSTM: i, f, g, o), so `torch.nn.GRU/LSTM` state dicts load as is
//! and outputs match (tests/fixtures/nn from tools/make_nn_fixtures.py).

use crate::error::{invalid, NnError, Result};
use crate::init::{seeded_var, Init};
use candle_core::{Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use mirkit_core::Rng;

/// Recurrent cell type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnKind {
    /// Gated recurrent unit (Cho et al. 2014).
    Gru,
    /// Long short-term memory.
    Lstm,
}

impl RnnKind {
    fn gates(self) -> usize {
        match self {
            RnnKind::Gru => 3,
            RnnKind::Lstm => 4,
        }
    }
}

/// Recurrent layer configuration (PyTorch's arguments; inputs are batch-first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RnnConfig {
    /// Features per time step.
    pub input_size: usize,
    /// Hidden units per direction.
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// Run a reverse direction too and concatenate.
    pub bidirectional: bool,
}

struct Dir {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

/// A stacked (bi)directional GRU or LSTM.
pub struct Rnn {
    kind: RnnKind,
    cfg: RnnConfig,
    dirs: Vec<Dir>, // layer-major: l0 fwd, l0 rev, l1 fwd, ...
}

/// What an [`Rnn`] returns.
pub struct RnnOutput {
    /// `(B, T, dirs·H)`: the last layer's hidden state at every step.
    pub output: Tensor,
    /// `(layers·dirs, B, H)`: final hidden state of every layer and direction.
    pub h_n: Tensor,
    /// LSTM only: final cell states, same shape as `h_n`.
    pub c_n: Option<Tensor>,
}

fn names(l: usize, reverse: bool) -> [String; 4] {
    let s = if reverse { "_reverse" } else { "" };
    [
        format!("weight_ih_l{l}{s}"),
        format!("weight_hh_l{l}{s}"),
        format!("bias_ih_l{l}{s}"),
        format!("bias_hh_l{l}{s}"),
    ]
}

impl Rnn {
    /// Loads parameters from `vb` under PyTorch's names; a missing or mis-shaped tensor
    /// is an error naming it.
    pub fn new(kind: RnnKind, cfg: RnnConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.input_size == 0 || cfg.hidden_size == 0 || cfg.num_layers == 0 {
            return Err(invalid(
                "rnn",
                format!("{cfg:?}"),
                "sizes and layer count must be positive",
            ));
        }
        let g = kind.gates() * cfg.hidden_size;
        let nd = if cfg.bidirectional { 2 } else { 1 };
        let mut dirs = Vec::new();
        for l in 0..cfg.num_layers {
            let inp = if l == 0 {
                cfg.input_size
            } else {
                nd * cfg.hidden_size
            };
            for d in 0..nd {
                let [wi, wh, bi, bh] = names(l, d == 1);
                dirs.push(Dir {
                    w_ih: vb.get((g, inp), &wi)?,
                    w_hh: vb.get((g, cfg.hidden_size), &wh)?,
                    b_ih: vb.get(g, &bi)?,
                    b_hh: vb.get(g, &bh)?,
                });
            }
        }
        Ok(Self { kind, cfg, dirs })
    }

    /// Seeded PyTorch-default initialisation (all U(−1/√H, 1/√H)) of the variables of a
    /// new layer under `prefix` in `vm`.
    pub fn init(
        kind: RnnKind,
        cfg: RnnConfig,
        vm: &VarMap,
        prefix: &str,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<()> {
        let g = kind.gates() * cfg.hidden_size;
        let nd = if cfg.bidirectional { 2 } else { 1 };
        let b = 1.0 / (cfg.hidden_size as f64).sqrt();
        for l in 0..cfg.num_layers {
            let inp = if l == 0 {
                cfg.input_size
            } else {
                nd * cfg.hidden_size
            };
            for d in 0..nd {
                let [wi, wh, bi, bh] = names(l, d == 1);
                let p = |n: &str| {
                    if prefix.is_empty() {
                        n.to_string()
                    } else {
                        format!("{prefix}.{n}")
                    }
                };
                seeded_var(vm, &p(&wi), &[g, inp], Init::Uniform(b), rng, dev)?;
                seeded_var(
                    vm,
                    &p(&wh),
                    &[g, cfg.hidden_size],
                    Init::Uniform(b),
                    rng,
                    dev,
                )?;
                seeded_var(vm, &p(&bi), &[g], Init::Uniform(b), rng, dev)?;
                seeded_var(vm, &p(&bh), &[g], Init::Uniform(b), rng, dev)?;
            }
        }
        Ok(())
    }

    fn run_dir(
        &self,
        d: &Dir,
        x: &Tensor,
        reverse: bool,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let (b, t, _) = x.dims3()?;
        let h_sz = self.cfg.hidden_size;
        // input projections for all steps at once: (B, T, G)
        let xw = x.broadcast_matmul(&d.w_ih.t()?)?.broadcast_add(&d.b_ih)?;
        let w_hh_t = d.w_hh.t()?;
        let mut h = Tensor::zeros((b, h_sz), x.dtype(), x.device())?;
        let mut c = Tensor::zeros((b, h_sz), x.dtype(), x.device())?;
        let mut outs = vec![None; t];
        for step in 0..t {
            let ti = if reverse { t - 1 - step } else { step };
            let gi = xw.narrow(1, ti, 1)?.squeeze(1)?;
            let gh = h.matmul(&w_hh_t)?.broadcast_add(&d.b_hh)?;
            match self.kind {
                RnnKind::Gru => {
                    let gi = gi.chunk(3, D::Minus1)?;
                    let gh = gh.chunk(3, D::Minus1)?;
                    let r = candle_nn::ops::sigmoid(&(&gi[0] + &gh[0])?)?;
                    let z = candle_nn::ops::sigmoid(&(&gi[1] + &gh[1])?)?;
                    let n = (&gi[2] + r.mul(&gh[2])?)?.tanh()?;
                    // h' = (1 − z)·n + z·h
                    h = ((z.neg()? + 1.0)?.mul(&n)? + z.mul(&h)?)?;
                }
                RnnKind::Lstm => {
                    let g = (gi + gh)?.chunk(4, D::Minus1)?;
                    let i = candle_nn::ops::sigmoid(&g[0])?;
                    let f = candle_nn::ops::sigmoid(&g[1])?;
                    let gg = g[2].tanh()?;
                    let o = candle_nn::ops::sigmoid(&g[3])?;
                    c = (f.mul(&c)? + i.mul(&gg)?)?;
                    h = o.mul(&c.tanh()?)?;
                }
            }
            outs[ti] = Some(h.clone());
        }
        let outs: Vec<Tensor> = outs
            .into_iter()
            .map(|o| o.expect("every step visited"))
            .collect();
        let c_last = if self.kind == RnnKind::Lstm {
            Some(c)
        } else {
            None
        };
        Ok((Tensor::stack(&outs, 1)?, h, c_last))
    }

    /// Runs the layers over `x` of shape `(B, T, input_size)` from zero initial states.
    pub fn forward(&self, x: &Tensor) -> Result<RnnOutput> {
        let dims = x.dims();
        if dims.len() != 3 || dims[2] != self.cfg.input_size || dims[1] == 0 {
            return Err(NnError::Shape {
                got: dims.to_vec(),
                why: format!("expected (B, T>0, {})", self.cfg.input_size),
            });
        }
        let nd = if self.cfg.bidirectional { 2 } else { 1 };
        let mut inp = x.clone();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for l in 0..self.cfg.num_layers {
            let mut outs = Vec::new();
            for d in 0..nd {
                let (o, h, c) = self.run_dir(&self.dirs[l * nd + d], &inp, d == 1)?;
                outs.push(o);
                hs.push(h);
                if let Some(c) = c {
                    cs.push(c);
                }
            }
            inp = if nd == 1 {
                outs.pop().expect("one direction")
            } else {
                Tensor::cat(&outs, D::Minus1)?
            };
        }
        Ok(RnnOutput {
            output: inp,
            h_n: Tensor::stack(&hs, 0)?,
            c_n: if cs.is_empty() {
                None
            } else {
                Some(Tensor::stack(&cs, 0)?)
            },
        })
    }
}
