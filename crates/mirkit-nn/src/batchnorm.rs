//! Training-mode batch norm (optionally followed by ReLU or ELU) as one op with its own
//! backward.
//!
//! `candle_nn::BatchNorm::forward_train` is composed of about ten tensor ops (transpose,
//! copy, mean, subtract, square, mean, add, sqrt, divide, multiply, add), each a full
//! pass over the activation with a fresh allocation, and its backward walks the same
//! graph in reverse; a ReLU or ELU after it is more passes again. Here the forward is two passes
//! (statistics, then normalise + affine + ReLU) and the backward two (the per-channel
//! sums, then the input gradient), with the textbook gradient of batch normalisation
//! (Ioffe & Szegedy 2015, §3):
//!
//! `dx = γ/σ · (g − mean(g) − x̂ · mean(g · x̂))`, `dγ = Σ g · x̂`, `dβ = Σ g`,
//!
//! where `g` is the incoming gradient (masked by `y > 0` after a ReLU), `x̂` the
//! normalised input and `σ = sqrt(var + eps)` with the biased batch variance, as PyTorch
//! and Candle use in training. The running statistics are updated in place exactly as
//! Candle updates them (momentum, unbiased variance `n/(n−1)`). Statistics are
//! accumulated in f64 (Candle sums in f32), so values differ from the composed path by
//! float rounding only (tested ≤ 1e-5 on outputs and gradients, and against central
//! differences).
//!
//! CPU and f32 only, for an affine batch norm that subtracts the mean (every batch norm
//! of the zoo, PyTorch's semantics); anything else takes the composed Candle path.

use crate::conv2d::contiguous_f32;
use crate::error::Result;
use crate::fused::Act;
use candle_core::{CpuStorage, CustomOp3, DType, InplaceOp1, Layout, Shape, Tensor};
use candle_nn::BatchNorm;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Per-channel batch statistics of one forward: mean and `1 / sqrt(var + eps)`.
#[derive(Debug, Clone, Default)]
struct Stats {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

/// Forward op over `(x, γ, β)`.
struct BnFwd {
    eps: f64,
    act: Act,
    stats: Arc<Mutex<Stats>>,
    /// The biased variances, for the running-statistics update.
    var: Arc<Mutex<Vec<f64>>>,
}

/// `(N, C, R)` view of a contiguous f32 tensor of rank ≥ 2.
fn dims(l: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let d = l.dims();
    if d.len() < 2 {
        candle_core::bail!("batch norm: input of rank {} (need ≥ 2)", d.len())
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// Per-channel sums over `(N, ·, R)` of `f(n, c, row)`, two values per channel.
fn channel_sums(
    n: usize,
    c: usize,
    r: usize,
    f: impl Fn(usize, usize, std::ops::Range<usize>) -> (f64, f64) + Sync,
) -> Vec<(f64, f64)> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n).fold((0.0, 0.0), |acc, i| {
                let start = (i * c + ch) * r;
                let (a, b) = f(i, ch, start..start + r);
                (acc.0 + a, acc.1 + b)
            })
        })
        .collect()
}

impl CustomOp3 for BnFwd {
    fn name(&self) -> &'static str {
        "mirkit-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, r) = dims(l1)?;
        let x = contiguous_f32(s1, l1, "input")?;
        let (g, b) = (
            contiguous_f32(s2, l2, "weight")?,
            contiguous_f32(s3, l3, "bias")?,
        );
        if g.len() != c || b.len() != c {
            candle_core::bail!("batch norm: {c} channels but {} weights", g.len())
        }
        let m = (n * r) as f64;
        let sums = channel_sums(n, c, r, |_, _, rg| {
            (x[rg].iter().map(|&v| v as f64).sum::<f64>(), 0.0)
        });
        let mean: Vec<f64> = sums.iter().map(|s| s.0 / m).collect();
        let sq = channel_sums(n, c, r, |_, ch, rg| {
            let mu = mean[ch];
            (
                x[rg]
                    .iter()
                    .map(|&v| {
                        let d = v as f64 - mu;
                        d * d
                    })
                    .sum::<f64>(),
                0.0,
            )
        });
        let var: Vec<f64> = sq.iter().map(|s| s.0 / m).collect();
        let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(r.max(1))
            .zip(x.par_chunks(r.max(1)))
            .enumerate()
            .for_each(|(row, (yo, xi))| {
                let ch = row % c;
                // y = (x − μ)·(γ/σ) + β in f32
                let scale = (g[ch] as f64 * inv_std[ch]) as f32;
                let shift = (b[ch] as f64 - mean[ch] * g[ch] as f64 * inv_std[ch]) as f32;
                for (o, &v) in yo.iter_mut().zip(xi) {
                    *o = self.act.apply(v * scale + shift);
                }
            });
        *self.stats.lock().expect("stats lock") = Stats { mean, inv_std };
        *self.var.lock().expect("var lock") = var;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats.lock().expect("stats lock").clone();
        let c = x.dim(1)?;
        let total = x.elem_count();
        let packed = x.contiguous()?.apply_op3_no_bwd(
            &res.contiguous()?,
            &grad.contiguous()?,
            &BnBwd {
                stats,
                gamma: gamma.to_dtype(DType::F32)?.to_vec1()?,
                act: self.act,
            },
        )?;
        let dx = packed.narrow(0, 0, total)?.reshape(x.shape())?;
        let dg = packed.narrow(0, total, c)?;
        let db = packed.narrow(0, total + c, c)?;
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

/// Backward over `(x, y, dy)` → `[dx…, dγ…, dβ…]` flattened.
struct BnBwd {
    stats: Stats,
    gamma: Vec<f32>,
    act: Act,
}

impl CustomOp3 for BnBwd {
    fn name(&self) -> &'static str {
        "mirkit-batch-norm-train-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, r) = dims(l1)?;
        let x = contiguous_f32(s1, l1, "input")?;
        let y = contiguous_f32(s2, l2, "output")?;
        let dy = contiguous_f32(s3, l3, "gradient")?;
        let Stats { mean, inv_std } = &self.stats;
        if mean.len() != c {
            candle_core::bail!("batch norm backward: statistics of {} channels", mean.len())
        }
        // the activation's derivative from its output: ReLU 1 for y > 0 (PyTorch's
        // rule at 0), ELU 1 for y ≥ +0 and α·exp(u) = y + α below
        let act = self.act;
        let g = |i: usize| match act {
            Act::Identity => dy[i] as f64,
            Act::Relu if y[i] > 0.0 => dy[i] as f64,
            Act::Relu => 0.0,
            Act::Elu(_) if y[i].is_sign_positive() => dy[i] as f64,
            Act::Elu(alpha) => dy[i] as f64 * (y[i] as f64 + alpha),
        };
        // Σ g and Σ g·x̂ per channel
        let sums = channel_sums(n, c, r, |_, ch, rg| {
            let (mu, is) = (mean[ch], inv_std[ch]);
            rg.fold((0.0, 0.0), |(a, b), i| {
                let gi = g(i);
                (a + gi, b + gi * (x[i] as f64 - mu) * is)
            })
        });
        let m = (n * r) as f64;
        let total = x.len();
        let mut out = vec![0f32; total + 2 * c];
        let (dx, rest) = out.split_at_mut(total);
        dx.par_chunks_mut(r.max(1))
            .enumerate()
            .for_each(|(row, d)| {
                let ch = row % c;
                let (mu, is) = (mean[ch], inv_std[ch]);
                let (sg, sgx) = (sums[ch].0 / m, sums[ch].1 / m);
                let k = self.gamma[ch] as f64 * is;
                let base = row * r;
                for (j, o) in d.iter_mut().enumerate() {
                    let i = base + j;
                    let xh = (x[i] as f64 - mu) * is;
                    *o = (k * (g(i) - sg - xh * sgx)) as f32;
                }
            });
        for ch in 0..c {
            rest[ch] = sums[ch].1 as f32;
            rest[c + ch] = sums[ch].0 as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(total + 2 * c)))
    }
}

/// `stat ← stat·keep + values·weight`, in place (Candle's running-statistics update:
/// `stat * (1 − momentum) + values * w` in f32).
struct RunningUpdate {
    values: Vec<f32>,
    keep: f64,
    weight: f64,
}

impl InplaceOp1 for RunningUpdate {
    fn name(&self) -> &'static str {
        "mirkit-batch-norm-running-update"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let v = match s {
            CpuStorage::F32(v) => v,
            _ => candle_core::bail!("running statistics must be f32"),
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("running statistics must be contiguous")
        };
        if b - a != self.values.len() {
            candle_core::bail!("running statistics of {} values", b - a)
        }
        let (keep, w) = (self.keep as f32, self.weight as f32);
        for (s, &x) in v[a..b].iter_mut().zip(&self.values) {
            *s = *s * keep + x * w;
        }
        Ok(())
    }
}

/// Updates `bn`'s running statistics from one batch's mean and biased variance over
/// `count` values per channel, as Candle does: `stat·(1 − momentum) + value·momentum`,
/// the variance made unbiased (`count / (count − 1)`).
pub(crate) fn update_running(
    bn: &BatchNorm,
    mean: &[f64],
    var: &[f64],
    count: usize,
) -> Result<()> {
    let m = bn.momentum();
    let count = count as f64;
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    bn.running_mean().inplace_op1(&RunningUpdate {
        values: f32s(mean),
        keep: 1.0 - m,
        weight: m,
    })?;
    bn.running_var().inplace_op1(&RunningUpdate {
        values: f32s(var),
        keep: 1.0 - m,
        weight: m * count / (count - 1.0),
    })?;
    Ok(())
}

/// Training-mode `act(bn(x))` with batch statistics, as one
/// op with its own backward (module docs); updates `bn`'s running statistics like
/// `candle_nn::BatchNorm::forward_t(x, true)`. Falls back to Candle's ops off the CPU,
/// for other dtypes and for a batch norm without affine parameters.
pub fn batch_norm_train(x: &Tensor, bn: &BatchNorm, act: Act) -> Result<Tensor> {
    let fallback = || -> Result<Tensor> {
        let y = candle_core::ModuleT::forward_t(bn, x, true)?;
        Ok(match act {
            Act::Identity => y,
            Act::Relu => y.relu()?,
            Act::Elu(alpha) => y.elu(alpha)?,
        })
    };
    let Some((gamma, beta)) = bn.weight_and_bias() else {
        return fallback();
    };
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.rank() < 2 {
        return fallback();
    }
    let c = x.dim(1)?;
    if bn.running_mean().dim(0)? != c {
        return Err(crate::error::invalid(
            "batch_norm_train",
            format!("input {:?}", x.dims()),
            format!("the batch norm has {} channels", bn.running_mean().dim(0)?),
        ));
    }
    let stats = Arc::new(Mutex::new(Stats::default()));
    let var = Arc::new(Mutex::new(Vec::new()));
    let y = x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BnFwd {
            eps: bn.eps(),
            act,
            stats: stats.clone(),
            var: var.clone(),
        },
    )?;
    let count = x.elem_count() / c;
    let mean = stats.lock().expect("stats lock").mean.clone();
    let var = var.lock().expect("var lock").clone();
    update_running(bn, &mean, &var, count)?;
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::conv::uniform_in as uniform;

    fn bn_with(rng: &mut mirkit_core::Rng, c: usize) -> (BatchNorm, Var, Var) {
        let g = Var::from_tensor(&uniform(rng, &[c], 0.5, 1.5)).unwrap();
        let b = Var::from_tensor(&uniform(rng, &[c], -0.5, 0.5)).unwrap();
        let bn = BatchNorm::new(
            c,
            uniform(rng, &[c], -0.1, 0.1),
            uniform(rng, &[c], 0.5, 1.5),
            g.as_tensor().clone(),
            b.as_tensor().clone(),
            1e-5,
        )
        .unwrap();
        (bn, g, b)
    }

    use crate::conv::max_abs;

    /// Output, input/γ/β gradients and the running statistics equal Candle's composed
    /// batch norm (+ ReLU) within f32 rounding, for 3-D and 4-D inputs.
    #[test]
    fn equals_candle_composed() {
        let mut rng = mirkit_core::Rng::new(21);
        for (shape, act) in [
            (vec![4, 3, 50], Act::Relu),
            (vec![2, 5, 7, 9], Act::Identity),
            (vec![3, 4, 1], Act::Relu),
            (vec![2, 3, 5, 6], Act::Elu(1.0)),
        ] {
            let c = shape[1];
            let x = Var::from_tensor(&uniform(&mut rng, &shape, -2.0, 3.0)).unwrap();
            let w = uniform(&mut rng, &shape, -1.0, 1.0);
            let mut seed = rng.clone();
            let (bn1, g1, b1) = bn_with(&mut rng, c);
            let (bn2, g2, b2) = bn_with(&mut seed, c);
            let y1 = batch_norm_train(&x, &bn1, act).unwrap();
            let y2 = candle_core::ModuleT::forward_t(&bn2, &x, true).unwrap();
            let y2 = match act {
                Act::Identity => y2,
                Act::Relu => y2.relu().unwrap(),
                Act::Elu(a) => y2.elu(a).unwrap(),
            };
            assert!(max_abs(&y1, &y2) < 1e-5, "output");
            let gr1 = (&y1 * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gr2 = (&y2 * &w).unwrap().sum_all().unwrap().backward().unwrap();
            for (v1, v2, what) in [(&g1, &g2, "γ"), (&b1, &b2, "β")] {
                let e = max_abs(gr1.get(v1).unwrap(), gr2.get(v2).unwrap());
                assert!(e < 1e-4, "d{what}: {e}");
            }
            let e = max_abs(gr1.get(&x).unwrap(), gr2.get(&x).unwrap());
            assert!(e < 1e-5, "dx: {e}");
            assert!(max_abs(bn1.running_mean(), bn2.running_mean()) < 1e-6);
            assert!(max_abs(bn1.running_var(), bn2.running_var()) < 1e-6);
        }
    }

    /// The input gradient against central differences of `sum(elu(bn(x)) · w)`.
    #[test]
    fn input_gradient_matches_finite_differences() {
        let mut rng = mirkit_core::Rng::new(22);
        let shape = [3, 2, 6];
        let x0: Vec<f32> = (0..36).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        let w = uniform(&mut rng, &shape, -1.0, 1.0);
        let (bn, _, _) = bn_with(&mut rng, 2);
        let f = |v: &[f32]| -> f64 {
            let x = Tensor::from_vec(v.to_vec(), &shape, &Device::Cpu).unwrap();
            let y = batch_norm_train(&x, &bn, Act::Elu(0.7)).unwrap();
            (y * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let x = Var::from_vec(x0.clone(), &shape, &Device::Cpu).unwrap();
        let y = batch_norm_train(&x, &bn, Act::Elu(0.7)).unwrap();
        let g = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let an: Vec<f32> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for i in 0..x0.len() {
            let h = 1e-2f32;
            let (mut p, mut q) = (x0.clone(), x0.clone());
            p[i] += h;
            q[i] -= h;
            let num = (f(&p) - f(&q)) / (2.0 * h as f64);
            assert!(
                (num - an[i] as f64).abs() < 5e-3 * (1.0 + num.abs()),
                "dx[{i}]: {} vs {num}",
                an[i]
            );
        }
    }
}
