//! A whole training-mode block — convolution + bias → batch norm (batch statistics) →
//! activation → max-pool — as one differentiable Candle op.
//!
//! Candle's backward pass accumulates every gradient edge as `zeros_like(arg) + grad`
//! (an allocation, a zero fill and an addition over the whole activation per edge), so
//! the number of graph nodes per block, not only the arithmetic, sets the cost of a
//! training step: conv, reshape, bias add, batch norm, activation and pooling are six
//! such edges per block at full activation size. Here the block is one node over
//! `(x, w, [bias, γ, β])`: the forward runs the tiled convolution of [`crate::fused`]
//! with the bias in its epilogue, the batch statistics in f64, normalisation, activation
//! and pooling (recording each window's argmax); it keeps only the convolution output `z`,
//! the statistics and the argmax. The backward routes the output gradient through the
//! argmax, multiplies by the activation's derivative (recomputed from `z`), applies batch
//! norm's gradient ([`crate::batchnorm`]'s formula), sums the bias gradient and hands
//! `dz` to the tiled convolution backward of [`crate::convop`]. A block without a batch
//! norm (the 1-D CNN's) is the same op over `(x, w, bias)`. An input that is data (no
//! variable behind it: a network's first layer) gets no input gradient, which would
//! cost as much as the kernel's.
//!
//! [`residual_train`] does the same for the end of a residual block,
//! `maxpool(relu(x + out · se))` over `(x, out, se)`: one node instead of four (multiply,
//! add, ReLU, pool); its forward keeps each window's argmax and its backward recomputes
//! the ReLU mask from `x` and `out`.
//!
//! Same results as the composed ops up to float rounding (tested on outputs, all five
//! gradients and the running statistics). CPU and f32, affine batch norm; anything else
//! returns `None` and the caller composes.

use crate::batchnorm::update_running;
use crate::conv2d::contiguous_f32;
use crate::fused::{activate, run, Act, ConvSpec, Epilogue, Geo, Steps};
use crate::pool::{argmax_fits, route_plane, scatter_argmax, window_argmax, window_offsets};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// What the forward keeps for the backward.
#[derive(Default)]
pub(crate) struct Saved {
    /// Convolution + bias output, `(N, O, OH, OW)` before pooling.
    z: Vec<f32>,
    pub(crate) mean: Vec<f64>,
    inv_std: Vec<f64>,
    /// Biased batch variances (running-statistics update).
    pub(crate) var: Vec<f64>,
    /// Offset in its pooling window of each pooled output's maximum in `z`
    /// ([`window_argmax`]; empty without pooling).
    argmax: Vec<u8>,
}

pub(crate) struct BlockOp {
    /// Full convolution geometry (`poh`, `pow` = the convolution's output, pool (1, 1)).
    pub(crate) g: Geo,
    pub(crate) n: usize,
    pool: (usize, usize),
    /// Pooled output rows and columns.
    pub(crate) out_hw: (usize, usize),
    one_d: bool,
    /// With a batch norm (parameters bias, γ, β) or without (bias only).
    bn: bool,
    eps: f64,
    act: Act,
    saved: Arc<Mutex<Saved>>,
}

impl BlockOp {
    fn plane(&self) -> usize {
        self.g.poh * self.g.pow
    }

    /// Per-channel batch mean, biased variance and `1/√(var + ε)` of the convolution
    /// output `z` `(N, O, plane)`, accumulated in f64.
    fn batch_stats(&self, z: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (o, plane, n) = (self.g.o, self.plane(), self.n);
        let m = (n * plane) as f64;
        // two passes per channel (mean, then the squared deviations from it), each in
        // f64 over eight lanes
        let (mean, var): (Vec<f64>, Vec<f64>) = (0..o)
            .into_par_iter()
            .map(|ch| {
                let rows = || (0..n).map(|i| &z[(i * o + ch) * plane..][..plane]);
                let mean = rows().map(|r| lanes_sum(r, |v| v)).sum::<f64>() / m;
                let var = rows()
                    .map(|r| {
                        lanes_sum(r, |v| {
                            let d = v - mean;
                            d * d
                        })
                    })
                    .sum::<f64>()
                    / m;
                (mean, var)
            })
            .unzip();
        let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        (mean, var, inv_std)
    }
}

impl CustomOp3 for BlockOp {
    fn name(&self) -> &'static str {
        "mirkit-conv-block-train"
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
        let (x, w, p) = (
            contiguous_f32(s1, l1, "input")?,
            contiguous_f32(s2, l2, "kernel")?,
            contiguous_f32(s3, l3, "parameters")?,
        );
        let (y, saved) = self.forward(x, w, p)?;
        *self.saved.lock().expect("saved lock") = saved;
        Ok((CpuStorage::F32(y), self.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // the saved values are used once and freed here, so the memory of the blocks
        // already differentiated is returned while the backward goes on (PyTorch frees
        // saved tensors the same way unless asked to retain the graph)
        let saved = std::mem::take(&mut *self.saved.lock().expect("saved lock"));
        if saved.z.is_empty() {
            candle_core::bail!(
                "conv block: a second backward pass through the same forward (its saved \
                 values are freed by the first; run the forward again)"
            )
        }
        // the output gradient, the stored input, kernel and parameters, read in place
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (ps, pl) = params.storage_and_layout();
        let gout = contiguous_f32(crate::convop::cpu(&gs)?, gl, "gradient")?;
        let xv = contiguous_f32(crate::convop::cpu(&xs)?, xl, "input")?;
        let wv = contiguous_f32(crate::convop::cpu(&ws)?, wl, "kernel")?;
        let pv = contiguous_f32(crate::convop::cpu(&ps)?, pl, "parameters")?;
        let need_dx = x.track_op();
        let (dx, dw, dp) = self.backward(saved, (xv, wv, pv), Src::Read(gout), need_dx);
        drop((gs, xs, ws, ps));
        Ok((
            need_dx
                .then(|| Tensor::from_vec(dx, x.shape(), x.device()))
                .transpose()?,
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            Some(Tensor::from_vec(dp, params.shape(), params.device())?),
        ))
    }
}

impl BlockOp {
    /// The output's shape: `(N, O, L')` or `(N, O, H', W')` after pooling.
    fn out_shape(&self) -> Shape {
        let (n, o, (oh, ow)) = (self.n, self.g.o, self.out_hw);
        if self.one_d {
            Shape::from((n, o, ow))
        } else {
            Shape::from((n, o, oh, ow))
        }
    }

    /// The forward over the input `x`, kernel `w` and parameters `p` (bias[, γ, β]):
    /// the block's output and what its backward needs.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        w: &[f32],
        p: &[f32],
    ) -> candle_core::Result<(Vec<f32>, Saved)> {
        let bias = self.bias(p)?;
        let z = run(x, w, self.n, &self.g, &Steps::bias_only(bias));
        self.forward_from(z, p)
    }

    /// The bias of the parameters `p` (bias[, γ, β]), their count checked.
    pub(crate) fn bias(&self, p: &[f32]) -> candle_core::Result<Vec<f32>> {
        let o = self.g.o;
        let per_channel = if self.bn { 3 } else { 1 };
        if p.len() != per_channel * o {
            candle_core::bail!("conv block: {} parameters for {o} channels", p.len())
        }
        Ok(p[..o].to_vec())
    }

    /// [`Self::forward`] after the convolution: from its output plus bias `z`.
    pub(crate) fn forward_from(
        &self,
        z: Vec<f32>,
        p: &[f32],
    ) -> candle_core::Result<(Vec<f32>, Saved)> {
        let (g, o) = (&self.g, self.g.o);
        self.bias(p)?;
        let plane = self.plane();
        let (ph, pw) = self.pool;
        let (oh, ow) = self.out_hw;
        let pooled = (ph, pw) != (1, 1);
        let mut y = vec![0f32; self.n * o * oh * ow];
        let mut argmax = vec![0u8; if pooled { y.len() } else { 0 }];
        let width = g.pow;
        // per channel `u = z · scale + shift` before the activation: the batch norm's,
        // or the identity without one (then `u = z` exactly, as the composed ops have it)
        let (mut mean, mut var, mut inv_std) = (Vec::new(), Vec::new(), Vec::new());
        let mut affine = Vec::new();
        if self.bn {
            let (gamma, beta) = (&p[o..2 * o], &p[2 * o..]);
            (mean, var, inv_std) = self.batch_stats(&z);
            affine = (0..o)
                .map(|ch| {
                    let scale = (gamma[ch] as f64 * inv_std[ch]) as f32;
                    let shift =
                        (beta[ch] as f64 - mean[ch] * gamma[ch] as f64 * inv_std[ch]) as f32;
                    (scale, shift)
                })
                .collect();
        }
        // pooled with an ELU, each window's maximum is taken before the activation
        // (`Act::after_max_pool`: the exponentials were a sixth of FCN-4's training
        // step). The same outputs; the recorded position differs from the activated
        // values' first maximum only where the ELU rounds distinct inputs to one value
        // (below about −17, where its slope is under 1e-7).
        let act_last = pooled && self.act.after_max_pool();
        let body = |pi: usize, yo: &mut [f32], ao: Option<&mut [u8]>| {
            let base = pi * plane;
            let zp = &z[base..base + plane];
            let (act, affine) = (self.act, affine.get(pi % o).copied());
            // `u` of the plane's values from `at` on, a row at a time (vectorises)
            let u = |at: usize, row: &mut [f32]| {
                let src = &zp[at..][..row.len()];
                match affine {
                    Some((scale, shift)) => {
                        for (v, &z) in row.iter_mut().zip(src) {
                            *v = z * scale + shift;
                        }
                    }
                    None => row.copy_from_slice(src),
                }
            };
            match ao {
                None => {
                    u(0, yo);
                    activate(act, yo);
                }
                Some(ao) if act_last => {
                    window_argmax(u, width, (ph, pw), (oh, ow), yo, ao);
                    activate(act, yo);
                }
                Some(ao) => {
                    let fill = |at: usize, row: &mut [f32]| {
                        u(at, row);
                        activate(act, row);
                    };
                    window_argmax(fill, width, (ph, pw), (oh, ow), yo, ao)
                }
            }
        };
        let chunk = (oh * ow).max(1);
        if pooled {
            y.par_chunks_mut(chunk)
                .zip(argmax.par_chunks_mut(chunk))
                .enumerate()
                .for_each(|(pi, (yo, ao))| body(pi, yo, Some(ao)));
        } else {
            y.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(pi, yo)| body(pi, yo, None));
        }
        Ok((
            y,
            Saved {
                z,
                mean,
                inv_std,
                var,
                argmax,
            },
        ))
    }

    /// The backward from the output gradient `gout` (`Src::Read`: the block's output
    /// shape, read in place; `Src::Owned`: before pooling, overwritten): the gradients
    /// of the input (empty without `need_dx`), the kernel and the parameters, for the
    /// forward's input, kernel and parameters `(x, w, p)` and its `saved` values (used
    /// up: freed here).
    pub(crate) fn backward(
        &self,
        saved: Saved,
        (x, w, p): (&[f32], &[f32], &[f32]),
        gout: Src<'_>,
        need_dx: bool,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (dz, dp) = self.backward_z(saved, p, gout);
        let (dx, dw) = crate::convop::backward(x, w, &dz, self.n, &self.g, need_dx);
        (dx, dw, dp)
    }

    /// [`Self::backward`] up to the convolution: the gradient of its output plus bias
    /// and the parameters' gradients.
    pub(crate) fn backward_z(
        &self,
        saved: Saved,
        p: &[f32],
        gout: Src<'_>,
    ) -> (Vec<f32>, Vec<f32>) {
        // output gradient before pooling
        let dy = match gout {
            Src::Read(gout) if !saved.argmax.is_empty() => {
                let mut d = vec![0f32; saved.z.len()];
                let (h, w) = (self.g.poh, self.g.pow);
                scatter_argmax(gout, &saved.argmax, (h, w), self.pool, self.out_hw, &mut d);
                Src::Owned(d)
            }
            dy => dy,
        };
        // the convolution output's gradient and the parameters' (bias[, γ, β])
        let (dz, dp) = if self.bn {
            self.bn_backward(&saved, dy, p)
        } else {
            let dy = match dy {
                Src::Read(v) => v.to_vec(),
                Src::Owned(v) => v,
            };
            self.act_backward(&saved, dy)
        };
        (dz, dp)
    }

    /// Without a batch norm: `dz = dy · act'(z)` and the bias gradient `Σ dz` per
    /// channel.
    fn act_backward(&self, saved: &Saved, mut dz: Vec<f32>) -> (Vec<f32>, Vec<f32>) {
        let (o, plane, act, z) = (self.g.o, self.plane(), self.act, &saved.z);
        let dbp: Vec<f64> = dz
            .par_chunks_mut(plane.max(1))
            .enumerate()
            .map(|(pi, d)| {
                let zp = &z[pi * plane..][..plane];
                let mut acc = 0.0;
                for (v, &u) in d.iter_mut().zip(zp) {
                    *v *= act.derivative(u) as f32;
                    acc += *v as f64;
                }
                acc
            })
            .collect();
        (dz, per_channel_sum(&dbp, o))
    }

    /// With the batch norm (batch statistics): `dz` from `dy` through the activation and
    /// the normalisation ([`crate::batchnorm`]'s formula), and the gradients of the
    /// bias, γ and β, in that order. `dy` is the output gradient before pooling: read in
    /// place from the op's argument (`Src::Read`, then `dz` is a new buffer) or, after
    /// the pooling's scatter, an owned buffer overwritten with `dz` (`Src::Owned`).
    fn bn_backward(&self, saved: &Saved, dy: Src<'_>, pv: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (o, plane, act, n) = (self.g.o, self.plane().max(1), self.act, self.n);
        let (gamma, beta) = (&pv[o..2 * o], &pv[2 * o..]);
        let (z, mean, inv_std) = (&saved.z, &saved.mean, &saved.inv_std);
        // a few planes per task when they are small
        let min_planes = (4096 / plane).max(1);
        // per channel: the forward's `u = z·scale + shift` (the same f32 arithmetic, so
        // the activation's derivative sees the values the forward activated) and the
        // mean in f32, from which `z − mean` is taken
        let consts: Vec<BnPlane> = (0..o)
            .map(|ch| BnPlane {
                scale: (gamma[ch] as f64 * inv_std[ch]) as f32,
                shift: (beta[ch] as f64 - mean[ch] * gamma[ch] as f64 * inv_std[ch]) as f32,
                mean: mean[ch] as f32,
            })
            .collect();
        // pass 1: g = dy · act'(u) per plane, with the plane's Σ g and Σ g·(z − mean₃₂)
        let pass1 = |pi: usize, d: &mut [f32]| {
            let zp = &z[pi * plane..][..d.len()];
            let c = consts[pi % o];
            match act {
                Act::Relu => bn_pass1(d, zp, c, |d, u| if u > 0.0 { d } else { 0.0 }),
                Act::Identity => bn_pass1(d, zp, c, |d, _| d),
                // after a max-pool most of `dy` is zero: no exponential for those
                // (`0 · act'(u)` is that zero, the derivative being ≥ 0)
                Act::Elu(_) => bn_pass1(d, zp, c, |d, u| {
                    if d == 0.0 {
                        d
                    } else {
                        d * act.derivative(u) as f32
                    }
                }),
            }
        };
        let (mut dz, partial): (Vec<f32>, Vec<(f64, f64)>) = match dy {
            Src::Owned(mut d) => {
                let partial = d
                    .par_chunks_mut(plane)
                    .with_min_len(min_planes)
                    .enumerate()
                    .map(|(pi, d)| pass1(pi, d))
                    .collect();
                (d, partial)
            }
            // each plane copied into the new buffer and worked on while in cache
            Src::Read(dy) => {
                use crate::convop::{build_par, Init};
                build_par(dy.len(), plane, min_planes, Init::Copy(dy), pass1)
            }
        };
        // per channel Σ g and Σ g·x̂, x̂ = (z − mean)·inv_std, in f64 (the f32 mean's
        // rounding added back: Σ g·(z − mean) = Σ g·(z − mean₃₂) + (mean₃₂ − mean)·Σ g)
        let mut sums = vec![(0.0f64, 0.0f64); o];
        for (pi, (sg, sgc)) in partial.iter().enumerate() {
            sums[pi % o].0 += sg;
            sums[pi % o].1 += sgc;
        }
        for (ch, s) in sums.iter_mut().enumerate() {
            s.1 = (s.1 + (consts[ch].mean as f64 - mean[ch]) * s.0) * inv_std[ch];
        }
        // pass 2: dz = γ/σ · (g − mean(g) − x̂ · mean(g·x̂)) = a·g + b·(z − mean₃₂) + c,
        // and Σ dz per plane (the bias's gradient)
        let m = (n * plane) as f64;
        let coef: Vec<[f32; 3]> = (0..o)
            .map(|ch| {
                let (sg, sgx) = (sums[ch].0 / m, sums[ch].1 / m);
                let k = gamma[ch] as f64 * inv_std[ch];
                let b = -k * inv_std[ch] * sgx;
                let c = -k * sg + b * (consts[ch].mean as f64 - mean[ch]);
                [k as f32, b as f32, c as f32]
            })
            .collect();
        let dbp: Vec<f64> = dz
            .par_chunks_mut(plane)
            .with_min_len(min_planes)
            .enumerate()
            .map(|(pi, d)| {
                let zp = &z[pi * plane..][..d.len()];
                bn_pass2(d, zp, consts[pi % o].mean, coef[pi % o])
            })
            .collect();
        let mut dp = per_channel_sum(&dbp, o);
        dp.extend(sums.iter().map(|s| s.1 as f32)); // dγ = Σ g·x̂
        dp.extend(sums.iter().map(|s| s.0 as f32)); // dβ = Σ g
        (dz, dp)
    }
}

/// Where a block's backward reads the output gradient (before pooling) from.
pub(crate) enum Src<'a> {
    /// The op's argument, read in place.
    Read(&'a [f32]),
    /// A buffer of the backward's own (the pooling's scatter), overwritten.
    Owned(Vec<f32>),
}

/// Per-channel constants of the batch norm's backward: the forward's `u = z·scale +
/// shift` and the mean in f32.
#[derive(Clone, Copy)]
struct BnPlane {
    scale: f32,
    shift: f32,
    mean: f32,
}

/// Lanes of the batch norm's backward loops: independent f32 sums, added into f64
/// every [`FLUSH`] values per lane, so that the loops vectorise and the sums keep f64's
/// accuracy over a plane (each f32 sum adds at most `FLUSH` terms).
const LANES: usize = 16;
const FLUSH: usize = 16;

/// Pass 1 of the batch norm's backward over one plane, in place: `d ← grad(d, u)` (`dy ·
/// act'(u)`) with `u = z·scale + shift` as the forward computed it; returns `(Σ d, Σ d·(z
/// − mean₃₂))`.
fn bn_pass1<F: Fn(f32, f32) -> f32>(d: &mut [f32], z: &[f32], c: BnPlane, grad: F) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::avx2_fma() {
        /// The loops compiled for AVX2.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn wide<F: Fn(f32, f32) -> f32>(
            d: &mut [f32],
            z: &[f32],
            c: BnPlane,
            grad: F,
        ) -> (f64, f64) {
            bn_pass1_body(d, z, c, grad)
        }
        // SAFETY: the CPU has the features `wide` is compiled for (checked above).
        return unsafe { wide(d, z, c, grad) };
    }
    bn_pass1_body(d, z, c, grad)
}

/// [`bn_pass1`]'s loops.
#[inline(always)]
fn bn_pass1_body<F: Fn(f32, f32) -> f32>(
    d: &mut [f32],
    z: &[f32],
    c: BnPlane,
    grad: F,
) -> (f64, f64) {
    let one = |dy: f32, z: f32| grad(dy, z * c.scale + c.shift);
    let (mut tg, mut tgc) = ([0f64; LANES], [0f64; LANES]);
    let block = LANES * FLUSH;
    let whole = d.len() / block * block;
    for at in (0..whole).step_by(block) {
        let (mut sg, mut sgc) = ([0f32; LANES], [0f32; LANES]);
        for at in (at..at + block).step_by(LANES) {
            let zb: &[f32; LANES] = z[at..at + LANES].try_into().expect("lanes");
            let db: &mut [f32; LANES] = (&mut d[at..at + LANES]).try_into().expect("lanes");
            for l in 0..LANES {
                let v = one(db[l], zb[l]);
                db[l] = v;
                sg[l] += v;
                sgc[l] += v * (zb[l] - c.mean);
            }
        }
        for l in 0..LANES {
            tg[l] += sg[l] as f64;
            tgc[l] += sgc[l] as f64;
        }
    }
    let (mut sg, mut sgc) = (0f64, 0f64);
    for i in whole..d.len() {
        let v = one(d[i], z[i]);
        d[i] = v;
        sg += v as f64;
        sgc += (v * (z[i] - c.mean)) as f64;
    }
    (tg.iter().sum::<f64>() + sg, tgc.iter().sum::<f64>() + sgc)
}

/// Pass 2 of the batch norm's backward over one plane, in place: `d ← a·d + (b·(z −
/// mean₃₂) + c)` for `[a, b, c] = coef`; returns `Σ d` (the bias's gradient).
fn bn_pass2(d: &mut [f32], z: &[f32], mean: f32, coef: [f32; 3]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::avx2_fma() {
        /// The loops compiled for AVX2.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn wide(d: &mut [f32], z: &[f32], mean: f32, coef: [f32; 3]) -> f64 {
            bn_pass2_body(d, z, mean, coef)
        }
        // SAFETY: the CPU has the features `wide` is compiled for (checked above).
        return unsafe { wide(d, z, mean, coef) };
    }
    bn_pass2_body(d, z, mean, coef)
}

/// [`bn_pass2`]'s loops.
#[inline(always)]
fn bn_pass2_body(d: &mut [f32], z: &[f32], mean: f32, [a, b, c]: [f32; 3]) -> f64 {
    let one = |v: f32, z: f32| a * v + (b * (z - mean) + c);
    let mut t = [0f64; LANES];
    let block = LANES * FLUSH;
    let whole = d.len() / block * block;
    for at in (0..whole).step_by(block) {
        let mut s = [0f32; LANES];
        for at in (at..at + block).step_by(LANES) {
            let zb: &[f32; LANES] = z[at..at + LANES].try_into().expect("lanes");
            let db: &mut [f32; LANES] = (&mut d[at..at + LANES]).try_into().expect("lanes");
            for l in 0..LANES {
                db[l] = one(db[l], zb[l]);
                s[l] += db[l];
            }
        }
        for l in 0..LANES {
            t[l] += s[l] as f64;
        }
    }
    let mut s = 0f64;
    for i in whole..d.len() {
        d[i] = one(d[i], z[i]);
        s += d[i] as f64;
    }
    t.iter().sum::<f64>() + s
}

/// `Σ f(v)` over `v` in f64, accumulated in eight lanes (so that it vectorises).
fn lanes_sum(v: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x as f64);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&x| f(x as f64)).sum();
    acc.iter().sum::<f64>() + tail
}

/// Per-channel totals of per-plane sums (planes in `(N, O)` order), as f32.
fn per_channel_sum(per_plane: &[f64], o: usize) -> Vec<f32> {
    let mut s = vec![0f64; o];
    for (pi, v) in per_plane.iter().enumerate() {
        s[pi % o] += v;
    }
    s.into_iter().map(|v| v as f32).collect()
}

/// The training-mode block `maxpool(act(bn(conv(x) + bias)))` with batch statistics as
/// one op (module docs), updating the batch norm's running statistics as Candle does;
/// without a batch norm in `epi`, `maxpool(act(conv(x) + bias))` (the 1-D CNN's blocks).
/// `None` when it does not apply (a batch norm without affine parameters, not CPU f32,
/// shapes that do not fit): the caller composes the block from single ops.
pub fn conv_block_train(
    x: &Tensor,
    conv: ConvSpec<'_>,
    epi: Epilogue<'_>,
) -> crate::error::Result<Option<Tensor>> {
    let Some((op, params)) = plan_block(x, conv, epi)? else {
        return Ok(None);
    };
    let (saved, count) = (op.saved.clone(), op.n * op.g.poh * op.g.pow);
    let y = x
        .contiguous()?
        .apply_op3(&conv.weight.contiguous()?, &params, op)?;
    if let Some(bn) = epi.bn {
        let s = saved.lock().expect("saved lock");
        update_running(bn, &s.mean, &s.var, count)?;
    }
    Ok(Some(y))
}

/// The training block's op for `x` and its parameters `(bias[, γ, β])` as one tensor,
/// or `None` where the op does not apply ([`conv_block_train`]).
pub(crate) fn plan_block(
    x: &Tensor,
    conv: ConvSpec<'_>,
    epi: Epilogue<'_>,
) -> crate::error::Result<Option<(BlockOp, Tensor)>> {
    // the batch norm's affine parameters; a batch norm without them is composed
    let affine = match epi.bn {
        Some(bn) => match bn.weight_and_bias() {
            Some(gb) => Some((bn, gb)),
            None => return Ok(None),
        },
        None => None,
    };
    let w = conv.weight;
    if !x.device().is_cpu() || x.dtype() != DType::F32 || w.dtype() != DType::F32 {
        return Ok(None);
    }
    let one_d = w.rank() == 3;
    let (n, c, h, wd, o, cw, kh, kw, ph, pw, pool) = match (x.dims(), w.dims()) {
        (&[n, c, l], &[o, cw, k]) => (n, c, 1, l, o, cw, 1, k, 0, conv.padding.1, (1, epi.pool.1)),
        (&[n, c, h, wd], &[o, cw, kh, kw]) => (
            n,
            c,
            h,
            wd,
            o,
            cw,
            kh,
            kw,
            conv.padding.0,
            conv.padding.1,
            epi.pool,
        ),
        _ => return Ok(None),
    };
    let s = conv.stride;
    if cw != c
        || s == 0
        || h + 2 * ph < kh
        || wd + 2 * pw < kw
        || n == 0
        || pool.0 == 0
        || pool.1 == 0
        || !argmax_fits(pool)
    {
        return Ok(None);
    }
    let (oh, ow) = ((h + 2 * ph - kh) / s + 1, (wd + 2 * pw - kw) / s + 1);
    let out_hw = (oh / pool.0, ow / pool.1);
    if out_hw.0 == 0 || out_hw.1 == 0 {
        return Ok(None);
    }
    if let Some((bn, _)) = affine {
        if bn.running_mean().dim(0)? != o || n * oh * ow < 2 {
            return Ok(None);
        }
    }
    let g = Geo {
        c,
        h,
        w: wd,
        o,
        kh,
        kw,
        stride: s,
        ph,
        pw,
        poh: oh,
        pow: ow,
        pool: (1, 1),
    };
    let bias = match conv.bias {
        Some(b) => b.flatten_all()?,
        None => Tensor::zeros(o, DType::F32, x.device())?,
    };
    let params = match affine {
        Some((_, (gamma, beta))) => {
            Tensor::cat(&[&bias, &gamma.flatten_all()?, &beta.flatten_all()?], 0)?
        }
        None => bias,
    };
    let op = BlockOp {
        g,
        n,
        pool,
        out_hw,
        one_d,
        bn: affine.is_some(),
        eps: affine.map_or(0.0, |(bn, _)| bn.eps()),
        act: epi.act,
        saved: Arc::new(Mutex::new(Saved::default())),
    };
    Ok(Some((op, params)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use candle_nn::BatchNorm;

    use crate::conv::uniform_in as uniform;

    use crate::conv::max_abs;

    /// Output, the gradients of input, kernel, bias, γ and β, and the running statistics
    /// equal the composed single ops (convolution, Candle's training batch norm,
    /// activation, pooling) within float rounding, 1-D and 2-D, with and without pooling,
    /// bias and batch norm.
    #[test]
    fn equals_composed_block() {
        let mut rng = mirkit_core::Rng::new(41);
        // (x, w, stride, padding, pool, act, bias)
        type Case<'a> = (
            &'a [usize],
            &'a [usize],
            usize,
            (usize, usize),
            (usize, usize),
            Act,
            bool,
            bool,
        );
        let cases: [Case; 10] = [
            (
                &[3, 4, 60],
                &[5, 4, 3],
                1,
                (0, 1),
                (1, 3),
                Act::Relu,
                true,
                true,
            ),
            (
                &[2, 1, 81],
                &[4, 1, 3],
                3,
                (0, 0),
                (1, 1),
                Act::Relu,
                true,
                true,
            ),
            // without batch norm (the 1-D CNN's blocks), pooled and not
            (
                &[3, 6, 40],
                &[4, 6, 8],
                1,
                (0, 0),
                (1, 4),
                Act::Relu,
                true,
                false,
            ),
            (
                &[2, 5, 33],
                &[3, 5, 3],
                1,
                (0, 0),
                (1, 1),
                Act::Elu(1.0),
                true,
                false,
            ),
            (
                &[2, 3, 8, 12],
                &[4, 3, 3, 3],
                1,
                (1, 1),
                (2, 2),
                Act::Relu,
                true,
                true,
            ),
            (
                &[2, 2, 9, 10],
                &[3, 2, 3, 3],
                2,
                (1, 1),
                (1, 1),
                Act::Identity,
                false,
                true,
            ),
            (
                &[2, 2, 8, 20],
                &[3, 2, 3, 3],
                1,
                (1, 1),
                (2, 4),
                Act::Elu(1.0),
                true,
                true,
            ),
            // planes longer than the batch norm backward's blocks of lanes (256 values)
            // with a remainder: 20 × 17 = 340, read in place; pooled, 34 × 16 = 544
            // (the scatter's buffer overwritten); 1-D, 600
            (
                &[2, 3, 20, 17],
                &[4, 3, 3, 3],
                1,
                (1, 1),
                (1, 1),
                Act::Relu,
                true,
                true,
            ),
            (
                &[2, 2, 34, 16],
                &[3, 2, 3, 3],
                1,
                (1, 1),
                (2, 2),
                Act::Relu,
                false,
                true,
            ),
            (
                &[2, 3, 602],
                &[4, 3, 3],
                1,
                (0, 0),
                (1, 1),
                Act::Identity,
                true,
                true,
            ),
        ];
        for (xs, ws, stride, pad, pool, act, has_bias, with_bn) in cases {
            let x = Var::from_tensor(&uniform(&mut rng, xs, -1.0, 1.0)).unwrap();
            let w = Var::from_tensor(&uniform(&mut rng, ws, -0.5, 0.5)).unwrap();
            let o = ws[0];
            let b = Var::from_tensor(&uniform(&mut rng, &[o], -0.3, 0.3)).unwrap();
            let ga = Var::from_tensor(&uniform(&mut rng, &[o], 0.5, 1.5)).unwrap();
            let be = Var::from_tensor(&uniform(&mut rng, &[o], -0.5, 0.5)).unwrap();
            let rm = uniform(&mut rng, &[o], -0.1, 0.1);
            let rv = uniform(&mut rng, &[o], 0.5, 1.5);
            let mk = || {
                BatchNorm::new(
                    o,
                    rm.copy().unwrap(),
                    rv.copy().unwrap(),
                    ga.as_tensor().clone(),
                    be.as_tensor().clone(),
                    1e-5,
                )
                .unwrap()
            };
            let (bn1, bn2) = (mk(), mk());
            let spec = ConvSpec {
                weight: w.as_tensor(),
                bias: has_bias.then_some(b.as_tensor()),
                stride,
                padding: pad,
            };
            let e1 = Epilogue {
                bn: with_bn.then_some(&bn1),
                act,
                pool,
            };
            let got = conv_block_train(&x, spec, e1).unwrap().unwrap();
            // the composed reference: Candle's own batch norm (if any) and activation
            let z = if ws.len() == 3 {
                crate::conv::conv1d_gemm(&x, &w, spec.bias, stride, pad.1).unwrap()
            } else {
                crate::conv2d::conv2d_gemm(&x, &w, spec.bias, stride, pad.0).unwrap()
            };
            let u = if with_bn {
                candle_core::ModuleT::forward_t(&bn2, &z, true).unwrap()
            } else {
                z
            };
            let u = match act {
                Act::Identity => u,
                Act::Relu => u.relu().unwrap(),
                Act::Elu(a) => u.elu(a).unwrap(),
            };
            let want = if ws.len() == 3 {
                if pool.1 > 1 {
                    crate::pool::max_pool1d(&u, pool.1, pool.1, 0).unwrap()
                } else {
                    u
                }
            } else if pool != (1, 1) {
                crate::pool::max_pool2d(&u, pool, pool, (0, 0)).unwrap()
            } else {
                u
            };
            assert_eq!(got.dims(), want.dims());
            assert!(max_abs(&got, &want) < 1e-5, "forward {xs:?}");
            let gw = uniform(&mut rng, got.dims(), -1.0, 1.0);
            let g1 = (&got * &gw).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&want * &gw)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let mut vars = vec![(&x, "x"), (&w, "w")];
            if with_bn {
                vars.extend([(&ga, "gamma"), (&be, "beta")]);
            }
            if has_bias {
                vars.push((&b, "bias"));
            }
            for (v, what) in vars {
                let (a, c) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                let scale = c
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                let e = max_abs(a, c);
                assert!(
                    e <= 2e-5 * (1.0 + scale),
                    "d{what} {xs:?}: {e} (scale {scale})"
                );
            }
            if with_bn {
                assert!(max_abs(bn1.running_mean(), bn2.running_mean()) < 1e-6);
                assert!(max_abs(bn1.running_var(), bn2.running_var()) < 1e-6);
            } else {
                assert!(g1.get(&ga).is_none() && g1.get(&be).is_none());
            }
        }
    }

    /// The saved values are freed by the backward (as PyTorch frees saved tensors): a
    /// second backward through the same forward is an error naming the cause, not a
    /// panic or a wrong gradient.
    #[test]
    fn second_backward_is_an_error() {
        let mut rng = mirkit_core::Rng::new(45);
        let x = Var::from_tensor(&uniform(&mut rng, &[2, 3, 20], -1.0, 1.0)).unwrap();
        let w = Var::from_tensor(&uniform(&mut rng, &[4, 3, 3], -0.5, 0.5)).unwrap();
        let spec = ConvSpec {
            weight: w.as_tensor(),
            bias: None,
            stride: 1,
            padding: (0, 0),
        };
        let epi = Epilogue {
            bn: None,
            act: Act::Relu,
            pool: (1, 2),
        };
        let loss = conv_block_train(&x, spec, epi)
            .unwrap()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(loss.backward().is_ok());
        let e = loss.backward().unwrap_err().to_string();
        assert!(e.contains("second backward"), "{e}");
    }

    /// A first layer (input that is data, not a function of a variable) gets no input
    /// gradient, and its kernel gradient is the one computed with the input gradient.
    #[test]
    fn data_input_gets_no_gradient() {
        let mut rng = mirkit_core::Rng::new(44);
        let data = uniform(&mut rng, &[2, 3, 30], -1.0, 1.0);
        let w = Var::from_tensor(&uniform(&mut rng, &[4, 3, 5], -0.5, 0.5)).unwrap();
        let b = Var::from_tensor(&uniform(&mut rng, &[4], -0.3, 0.3)).unwrap();
        let x = Var::from_tensor(&data).unwrap();
        let gw = uniform(&mut rng, &[2, 4, 14], -1.0, 1.0);
        let grads = |input: &Tensor| {
            let spec = ConvSpec {
                weight: w.as_tensor(),
                bias: Some(b.as_tensor()),
                stride: 1,
                padding: (0, 1),
            };
            let epi = Epilogue {
                bn: None,
                act: Act::Relu,
                pool: (1, 2),
            };
            let y = conv_block_train(input, spec, epi).unwrap().unwrap();
            (&y * &gw).unwrap().sum_all().unwrap().backward().unwrap()
        };
        let (g_data, g_var) = (grads(&data), grads(x.as_tensor()));
        assert!(g_data.get(&data).is_none());
        assert!(g_var.get(&x).is_some());
        for v in [&w, &b] {
            assert!(max_abs(g_data.get(v).unwrap(), g_var.get(v).unwrap()) == 0.0);
        }
    }
}

/// The end of a residual block in training, `maxpool(relu(x + out · se))`, as one op
/// over `(x, out, se)` (`se` `(N, C)` per-channel weights; ones for a plain residual):
/// one graph node instead of four full-size gradient edges (multiply, add, ReLU, pool).
/// The forward keeps the argmax of each window; the backward recomputes the ReLU mask
/// from `x` and `out`.
pub(crate) struct ResidualOp {
    /// `(N, C, H, W)` (1-D: `H = 1`).
    dims: (usize, usize, usize, usize),
    pool: (usize, usize),
    /// No channel scale (`se` is all ones): the gradient of `out` is that of `x`.
    plain: bool,
    /// Each output's offset in its window ([`window_argmax`]; empty without pooling).
    argmax: Mutex<Vec<u8>>,
}

impl ResidualOp {
    /// The op over `(N, C, H, W)` values (1-D: `H = 1`), pooled by `pool` (kernel =
    /// stride), with a channel scale or `plain` (the scale all ones).
    pub(crate) fn new(
        dims: (usize, usize, usize, usize),
        pool: (usize, usize),
        plain: bool,
    ) -> Self {
        Self {
            dims,
            pool,
            plain,
            argmax: Mutex::new(Vec::new()),
        }
    }

    /// Pooled output rows and columns.
    pub(crate) fn out_hw(&self) -> (usize, usize) {
        (self.dims.2 / self.pool.0, self.dims.3 / self.pool.1)
    }

    fn pooled(&self) -> bool {
        self.pool != (1, 1)
    }
}

impl CustomOp3 for ResidualOp {
    fn name(&self) -> &'static str {
        "mirkit-residual-train"
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
        let (x, out, se) = (
            contiguous_f32(s1, l1, "input")?,
            contiguous_f32(s2, l2, "residual")?,
            contiguous_f32(s3, l3, "scale")?,
        );
        let (y, arg) = self.forward(x, out, se);
        *self.argmax.lock().expect("argmax lock") = arg;
        let (n, c, h, _) = self.dims;
        let (oh, ow) = self.out_hw();
        let shape = if h == 1 && l1.dims().len() == 3 {
            Shape::from((n, c, ow))
        } else {
            Shape::from((n, c, oh, ow))
        };
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        out: &Tensor,
        se: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // the op's (contiguous) arguments and the output gradient, read in place
        let (gs, gl) = grad.storage_and_layout();
        let (xs, xl) = x.storage_and_layout();
        let (os, ol) = out.storage_and_layout();
        let (ss, sl) = se.storage_and_layout();
        let gv = contiguous_f32(crate::convop::cpu(&gs)?, gl, "gradient")?;
        let xv = contiguous_f32(crate::convop::cpu(&xs)?, xl, "input")?;
        let ov = contiguous_f32(crate::convop::cpu(&os)?, ol, "residual")?;
        let sv = contiguous_f32(crate::convop::cpu(&ss)?, sl, "scale")?;
        // used once and freed, as the conv block's saved values
        let arg = std::mem::take(&mut *self.argmax.lock().expect("argmax lock"));
        if self.pooled() && arg.is_empty() {
            candle_core::bail!(
                "residual end: a second backward pass through the same forward (its \
                 argmax is freed by the first; run the forward again)"
            )
        }
        let (g, dout, dse) = self.backward(gv, (xv, ov, sv), &arg, (!self.plain, se.track_op()));
        drop((gs, xs, os, ss));
        let g = Tensor::from_vec(g, x.shape(), x.device())?;
        // without a scale, `out`'s gradient is `x`'s: the same (immutable) tensor
        let dout = match dout {
            Some(d) => Tensor::from_vec(d, out.shape(), out.device())?,
            None => g.reshape(out.shape())?,
        };
        Ok((
            Some(g),
            Some(dout),
            dse.map(|d| Tensor::from_vec(d, se.shape(), se.device()))
                .transpose()?,
        ))
    }
}

impl ResidualOp {
    /// `maxpool(relu(x + out · se))` over slices: the output and each pooled output's
    /// offset in its window (empty without pooling).
    pub(crate) fn forward(&self, x: &[f32], out: &[f32], se: &[f32]) -> (Vec<f32>, Vec<u8>) {
        let (n, c, h, w) = self.dims;
        let (oh, ow) = self.out_hw();
        let plane = h * w;
        let mut y = vec![0f32; n * c * oh * ow];
        let chunk = (oh * ow).max(1);
        // the composed ops' order: out · s, then x + ·, then max(·, 0)
        if self.pooled() {
            let mut arg = vec![0u8; y.len()];
            y.par_chunks_mut(chunk)
                .zip(arg.par_chunks_mut(chunk))
                .enumerate()
                .for_each(|(p, (yo, ao))| {
                    let s = se[p];
                    let base = p * plane;
                    let fill = |at: usize, row: &mut [f32]| {
                        let (xs, os) = (&x[base + at..], &out[base + at..]);
                        for ((v, &a), &b) in row.iter_mut().zip(xs).zip(os) {
                            *v = (a + b * s).max(0.0);
                        }
                    };
                    window_argmax(fill, w, self.pool, (oh, ow), yo, ao);
                });
            (y, arg)
        } else {
            y.par_chunks_mut(chunk).enumerate().for_each(|(p, yo)| {
                let s = se[p];
                let (xp, op) = (&x[p * plane..][..plane], &out[p * plane..][..plane]);
                for ((v, &a), &b) in yo.iter_mut().zip(xp).zip(op) {
                    *v = (a + b * s).max(0.0);
                }
            });
            (y, Vec::new())
        }
    }

    /// The backward from the output gradient `gout` for the forward's `(x, out, se)` and
    /// argmax: the gradient `g` at the ReLU's input (which is `x`'s), and, as asked by
    /// `need = (dout, dse)`, `out`'s (`g · s`) and the scale's (`Σ g · out` per plane).
    /// One pass per plane writes all three while the plane is in cache.
    #[allow(clippy::type_complexity)]
    pub(crate) fn backward(
        &self,
        gout: &[f32],
        (x, out, se): (&[f32], &[f32], &[f32]),
        arg: &[u8],
        (need_dout, need_dse): (bool, bool),
    ) -> (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>) {
        let (n, c, h, w) = self.dims;
        let plane = (h * w).max(1);
        let (oh, ow) = self.out_hw();
        let plane_out = (oh * ow).max(1);
        let offsets = window_offsets(w, self.pool);
        // one plane of g (PyTorch's rule at 0: no gradient), from zeros (pooled: only the
        // windows' maxima get a value) or from a copy of the output gradient, and the
        // plane's Σ g · out
        let one = |p: usize, gp: &mut [f32]| -> f64 {
            let (xp, op, s) = (plane_of(x, p, plane), plane_of(out, p, plane), se[p]);
            let live = |i: usize| xp[i] + op[i] * s > 0.0;
            if self.pooled() {
                let go = &gout[p * plane_out..][..plane_out];
                let ap = &arg[p * plane_out..][..plane_out];
                route_plane(go, ap, &offsets, (w, ow), self.pool, |i, v| {
                    if live(i) {
                        gp[i] += v;
                    }
                });
            } else {
                for (i, d) in gp.iter_mut().enumerate() {
                    if !live(i) {
                        *d = 0.0;
                    }
                }
            }
            if need_dse {
                gp.iter()
                    .zip(op)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
            } else {
                0.0
            }
        };
        use crate::convop::{build_par, Init};
        let len = n * c * h * w;
        let init = if self.pooled() {
            Init::Zeros
        } else {
            Init::Copy(gout)
        };
        let (g, sums) = build_par(len, plane, 1, init, one);
        // out's gradient g · s, plane by plane from a copy of g
        let dout = need_dout.then(|| {
            let scale = |p: usize, d: &mut [f32]| d.iter_mut().for_each(|v| *v *= se[p]);
            build_par(len, plane, 1, Init::Copy(&g), scale).0
        });
        let dse = need_dse.then(|| sums.iter().map(|&v| v as f32).collect());
        (g, dout, dse)
    }
}

/// Plane `p` of `(planes, plane)` values.
fn plane_of(v: &[f32], p: usize, plane: usize) -> &[f32] {
    &v[p * plane..][..plane]
}

/// Training-mode `maxpool(relu(x + out · se))` as one op (module docs) for `x`, `out`
/// `(N, C, L)` or `(N, C, H, W)` and `se` `(N, C)` (`None`: a plain residual), with
/// non-overlapping pooling (1-D: the second value). `None` when it does not apply (not
/// CPU f32, shapes that differ, a window larger than the input).
pub fn residual_train(
    x: &Tensor,
    out: &Tensor,
    se: Option<&Tensor>,
    pool: (usize, usize),
) -> crate::error::Result<Option<Tensor>> {
    let Some(((n, c, h, w), pool)) = crate::fused::residual_geometry(x, out, pool) else {
        return Ok(None);
    };
    let se_none = se.is_none();
    let se = match se {
        Some(s) if s.elem_count() == n * c && s.dtype() == DType::F32 => s.reshape((n, c))?,
        Some(_) => return Ok(None),
        None => Tensor::ones((n, c), DType::F32, x.device())?,
    };
    Ok(Some(x.contiguous()?.apply_op3(
        &out.contiguous()?,
        &se.contiguous()?,
        ResidualOp::new((n, c, h, w), pool, se_none),
    )?))
}

#[cfg(test)]
mod residual_tests {
    use super::*;
    use candle_core::Var;

    use crate::conv::uniform_in as uniform;

    /// Output and the three gradients equal the composed multiply → add → ReLU → pool.
    #[test]
    fn residual_train_equals_composed() {
        let mut rng = mirkit_core::Rng::new(51);
        for (shape, pool, scaled) in [
            (vec![2usize, 3, 20], (1usize, 3usize), true),
            (vec![2, 3, 6, 8], (1, 1), false),
            (vec![1, 2, 6, 8], (2, 2), true),
            (vec![2, 3, 5, 7], (1, 1), true),
            (vec![2, 4, 21], (1, 3), false),
        ] {
            let x = Var::from_tensor(&uniform(&mut rng, &shape, -1.0, 1.0)).unwrap();
            let o = Var::from_tensor(&uniform(&mut rng, &shape, -1.0, 1.0)).unwrap();
            let s = Var::from_tensor(&uniform(&mut rng, &shape[..2], 0.0, 1.0)).unwrap();
            let got = residual_train(&x, &o, scaled.then_some(s.as_tensor()), pool)
                .unwrap()
                .unwrap();
            let mut se_shape = shape[..2].to_vec();
            se_shape.resize(shape.len(), 1);
            let scaled_out = if scaled {
                o.broadcast_mul(&s.reshape(se_shape).unwrap()).unwrap()
            } else {
                o.as_tensor().clone()
            };
            let y = (x.as_tensor() + scaled_out).unwrap().relu().unwrap();
            let want = if shape.len() == 3 {
                crate::pool::max_pool1d(&y, pool.1, pool.1, 0).unwrap()
            } else if pool != (1, 1) {
                crate::pool::max_pool2d(&y, pool, pool, (0, 0)).unwrap()
            } else {
                y
            };
            assert_eq!(got.dims(), want.dims());
            let d = (&got - &want).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
            let gw = uniform(&mut rng, got.dims(), -1.0, 1.0);
            let g1 = (&got * &gw).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&want * &gw)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let mut vars = vec![&x, &o];
            if scaled {
                vars.push(&s);
            }
            for v in vars {
                let d = (g1.get(v).unwrap() - g2.get(v).unwrap())
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(d < 1e-5, "{shape:?}: {d}");
            }
        }
    }
}
