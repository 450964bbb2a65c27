//! Optimisers, learning-rate schedules and gradient clipping with PyTorch's update rules.

use crate::error::{invalid, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// `torch.optim.SGD`: momentum, dampening, Nesterov, (L2) weight decay.
pub struct Sgd {
    vars: Vec<Var>,
    bufs: Vec<Option<Tensor>>,
    /// learning rate
    pub lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
}

impl Sgd {
    /// A new optimiser over `vars`.
    pub fn new(
        vars: Vec<Var>,
        lr: f64,
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        weight_decay: f64,
    ) -> Result<Self> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(invalid("lr", lr, "must be >= 0"));
        }
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(momentum) || !ok(weight_decay) {
            return Err(invalid(
                "momentum/weight_decay",
                format!("{momentum}/{weight_decay}"),
                "must be >= 0",
            ));
        }
        if nesterov && (momentum <= 0.0 || dampening != 0.0) {
            return Err(invalid(
                "nesterov",
                true,
                "requires momentum > 0 and zero dampening",
            ));
        }
        let n = vars.len();
        Ok(Self {
            vars,
            bufs: vec![None; n],
            lr,
            momentum,
            dampening,
            nesterov,
            weight_decay,
        })
    }
    /// One step from the gradients in `grads` (variables without a gradient are skipped).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (v, buf) in self.vars.iter().zip(self.bufs.iter_mut()) {
            let Some(g) = grads.get(v.as_tensor()) else {
                continue;
            };
            let mut d = if self.weight_decay != 0.0 {
                (g + (v.as_tensor() * self.weight_decay)?)?
            } else {
                g.clone()
            };
            if self.momentum != 0.0 {
                let b = match buf.take() {
                    None => d.clone(),
                    Some(b) => ((b * self.momentum)? + (&d * (1.0 - self.dampening))?)?,
                };
                d = if self.nesterov {
                    (d + (&b * self.momentum)?)?
                } else {
                    b.clone()
                };
                *buf = Some(b.detach()); // no graph kept across steps
            }
            v.set(&(v.as_tensor() - (d * self.lr)?)?)?;
        }
        Ok(())
    }
}

/// `torch.optim.AdamW` (decoupled weight decay).
///
/// ```
/// use candle_core::{Device, Tensor, Var};
/// use mirkit_nn::optim::AdamW;
/// // minimise (w − 3)² from w = 0
/// let w = Var::new(&[0.0f32], &Device::Cpu)?;
/// let mut opt = AdamW::new(vec![w.clone()], 0.1, 0.0)?;
/// for _ in 0..200 {
///     let loss = (w.as_tensor() - 3.0)?.sqr()?.sum_all()?;
///     opt.step(&loss.backward()?)?;
/// }
/// assert!((w.as_tensor().to_vec1::<f32>()?[0] - 3.0).abs() < 0.05);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AdamW {
    vars: Vec<Var>,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
    t: i32,
    /// learning rate
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// coupled L2 (`torch.optim.Adam(weight_decay=…)`) instead of decoupled decay
    l2: bool,
}

/// An optimiser's internal state (step count and per-variable buffers), for checkpoints:
/// buffers are named `"<slot>.<index of the variable>"`.
#[derive(Debug, Clone, Default)]
pub struct OptState {
    /// Steps taken.
    pub step: u64,
    /// Named buffers.
    pub buffers: Vec<(String, Tensor)>,
}

fn export(slot: &str, bufs: &[Option<Tensor>], out: &mut Vec<(String, Tensor)>) {
    for (i, b) in bufs.iter().enumerate() {
        if let Some(b) = b {
            out.push((format!("{slot}.{i}"), b.clone()));
        }
    }
}

fn import(slot: &str, bufs: &mut [Option<Tensor>], vars: &[Var], st: &OptState) -> Result<()> {
    for b in bufs.iter_mut() {
        *b = None;
    }
    for (name, t) in &st.buffers {
        let Some(rest) = name.strip_prefix(slot).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let i: usize = rest
            .parse()
            .map_err(|_| invalid("optimiser buffer", name, "expected <slot>.<index>"))?;
        if i >= vars.len() || vars[i].dims() != t.dims() {
            return Err(invalid(
                "optimiser buffer",
                name,
                format!("does not fit variable {i} of {}", vars.len()),
            ));
        }
        bufs[i] = Some(t.clone());
    }
    Ok(())
}

impl Sgd {
    /// The momentum buffers (`momentum.<i>`), for checkpoints.
    pub fn state(&self) -> OptState {
        let mut buffers = Vec::new();
        export("momentum", &self.bufs, &mut buffers);
        OptState { step: 0, buffers }
    }
    /// Restores [`Sgd::state`]; buffers must fit the variables.
    pub fn set_state(&mut self, st: &OptState) -> Result<()> {
        import("momentum", &mut self.bufs, &self.vars, st)
    }
}

impl AdamW {
    /// The step count and moment buffers (`m.<i>`, `v.<i>`), for checkpoints.
    pub fn state(&self) -> OptState {
        let mut buffers = Vec::new();
        export("m", &self.m, &mut buffers);
        export("v", &self.v, &mut buffers);
        OptState {
            step: self.t as u64,
            buffers,
        }
    }
    /// Restores [`AdamW::state`]; buffers must fit the variables.
    pub fn set_state(&mut self, st: &OptState) -> Result<()> {
        import("m", &mut self.m, &self.vars, st)?;
        import("v", &mut self.v, &self.vars, st)?;
        self.t = st.step as i32;
        Ok(())
    }
    /// `torch.optim.Adam` with (coupled, L2) `weight_decay`: the decay is added to the
    /// gradient before the moments, as Won et al. 2020's recipe uses.
    pub fn adam_l2(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self> {
        let mut o = Self::new(vars, lr, 0.0)?;
        o.weight_decay = weight_decay;
        o.l2 = true;
        Ok(o)
    }

    /// PyTorch defaults: betas (0.9, 0.999), eps 1e-8.
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self> {
        Self::with_betas(vars, lr, (0.9, 0.999), 1e-8, weight_decay)
    }
    /// Full control.
    pub fn with_betas(
        vars: Vec<Var>,
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(invalid("lr", lr, "must be >= 0"));
        }
        if !(0.0..1.0).contains(&betas.0) || !(0.0..1.0).contains(&betas.1) {
            return Err(invalid("betas", format!("{betas:?}"), "must be in [0, 1)"));
        }
        let n = vars.len();
        Ok(Self {
            vars,
            m: vec![None; n],
            v: vec![None; n],
            t: 0,
            lr,
            beta1: betas.0,
            beta2: betas.1,
            eps,
            weight_decay,
            l2: false,
        })
    }
    /// One step.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t);
        let bc2 = 1.0 - self.beta2.powi(self.t);
        for ((var, m), v) in self
            .vars
            .iter()
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let c = AdamConsts {
                lr: self.lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                l2: self.l2,
                bc1,
                bc2,
            };
            let fused = !cfg!(test) || !COMPOSED_ONLY.load(std::sync::atomic::Ordering::Relaxed);
            if let Some((mn, vn)) = fused
                .then(|| adam_cpu(var, g, m.as_ref(), v.as_ref(), &c))
                .transpose()?
                .flatten()
            {
                *m = Some(mn);
                *v = Some(vn);
                continue;
            }
            let g_l2;
            let (p, g) = if self.l2 {
                g_l2 = (g + (var.as_tensor() * self.weight_decay)?)?;
                (var.as_tensor().clone(), &g_l2)
            } else {
                ((var.as_tensor() * (1.0 - self.lr * self.weight_decay))?, g)
            };
            let mn = match m.take() {
                None => (g * (1.0 - self.beta1))?,
                Some(m) => ((m * self.beta1)? + (g * (1.0 - self.beta1))?)?,
            };
            let vn = match v.take() {
                None => (g.sqr()? * (1.0 - self.beta2))?,
                Some(v) => ((v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?,
            };
            let denom = ((vn.sqrt()? / bc2.sqrt())? + self.eps)?;
            var.set(&(p - (mn.div(&denom)? * (self.lr / bc1))?)?)?;
            // detached: gradients carry the graph of the backward pass, which would otherwise
            // be kept alive (with every activation) from one step to the next
            *m = Some(mn.detach());
            *v = Some(vn.detach());
        }
        Ok(())
    }
}

/// Tests: the composed Candle ops only (the reference for [`adam_cpu`]'s bits).
static COMPOSED_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The constants of one [`AdamW::step`].
struct AdamConsts {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    l2: bool,
    bc1: f64,
    bc2: f64,
}

/// One variable's Adam update on the CPU in one pass over contiguous f32 slices, with the
/// same f32 operations in the same order as the composed Candle ops of [`AdamW::step`]
/// (each `tensor * f64` is Candle's affine `x · (c as f32) + 0`, `+ eps` is
/// `x · 1 + (eps as f32)`), so the same bits (tested) — without the composed version's
/// ten full-size temporaries per variable. Writes the variable and returns the new
/// moments; `None` when a tensor is not a contiguous CPU f32 one (the caller composes).
fn adam_cpu(
    var: &Var,
    g: &Tensor,
    m: Option<&Tensor>,
    v: Option<&Tensor>,
    c: &AdamConsts,
) -> Result<Option<(Tensor, Tensor)>> {
    use crate::conv2d::contiguous_f32;
    use candle_core::{DType, Storage};
    let p = var.as_tensor();
    let usable = |t: &Tensor| {
        t.device().is_cpu()
            && t.dtype() == DType::F32
            && t.is_contiguous()
            && t.shape() == p.shape()
    };
    if !usable(p) || !usable(g) || !m.is_none_or(usable) || !v.is_none_or(usable) {
        return Ok(None);
    }
    fn slice<'a>(s: &'a Storage, t: &Tensor) -> Result<&'a [f32]> {
        match s {
            Storage::Cpu(cs) => Ok(contiguous_f32(cs, t.layout(), "adam")?),
            _ => unreachable!("checked: CPU tensors"),
        }
    }
    let f = |x: f64| x as f32;
    let (decay, wd) = (f(1.0 - c.lr * c.weight_decay), f(c.weight_decay));
    let (b1, a1, b2, a2) = (f(c.beta1), f(1.0 - c.beta1), f(c.beta2), f(1.0 - c.beta2));
    let (rs, eps, step) = (f(1.0 / c.bc2.sqrt()), f(c.eps), f(c.lr / c.bc1));
    let n = p.elem_count();
    // the new parameters and moments, every element written once below (no zero fill:
    // three passes over the parameters' size per step)
    let (mut pn, mut mn, mut vn): (Vec<f32>, Vec<f32>, Vec<f32>) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    {
        let (ps, _) = p.storage_and_layout();
        let (gs, _) = g.storage_and_layout();
        let ms = m.map(|t| t.storage_and_layout().0);
        let vs = v.map(|t| t.storage_and_layout().0);
        let pv = slice(&ps, p)?;
        let gv = slice(&gs, g)?;
        let mv = match (&ms, m) {
            (Some(s), Some(t)) => Some(slice(s, t)?),
            _ => None,
        };
        let vv = match (&vs, v) {
            (Some(s), Some(t)) => Some(slice(s, t)?),
            _ => None,
        };
        // the first step's missing moments as zeros: `(0·β + 0) + y` is `y` exactly (`y`,
        // a product plus +0, is never −0), so the same bits as leaving the terms out
        let zeros;
        let (mv, vv) = match (mv, vv) {
            (Some(m), Some(v)) => (m, v),
            (m, v) => {
                zeros = vec![0f32; n];
                (m.unwrap_or(&zeros), v.unwrap_or(&zeros))
            }
        };
        // one element; branch-free over slices (`L2` fixed per loop) so that the loops
        // vectorise — with the moments' branches inside they ran at ~7 ns per element
        #[inline(always)]
        fn one<const L2: bool>(x: f32, gi: f32, m: f32, v: f32, k: &[f32; 9]) -> [f32; 3] {
            let [decay, wd, b1, a1, b2, a2, rs, eps, step] = *k;
            // L2 (coupled): g + p·wd, p as is; decoupled: p·(1 − lr·wd), g as is
            let (x, gi) = if L2 {
                (x, gi + (x * wd + 0.0))
            } else {
                (x * decay + 0.0, gi)
            };
            let mi = (m * b1 + 0.0) + (gi * a1 + 0.0);
            let vi = (v * b2 + 0.0) + ((gi * gi) * a2 + 0.0);
            let denom = (vi.sqrt() * rs + 0.0) * 1.0 + eps;
            [x - ((mi / denom) * step + 0.0), mi, vi]
        }
        type Out<'a> = &'a mut [std::mem::MaybeUninit<f32>];
        fn chunk<const L2: bool>(ins: [&[f32]; 4], outs: [Out<'_>; 3], k: &[f32; 9]) {
            let [pv, gv, mv, vv] = ins;
            let [po, mo, vo] = outs;
            let inputs = pv.iter().zip(gv).zip(mv).zip(vv);
            for (((p, m), v), (((&x, &g), &mm), &vv)) in po.iter_mut().zip(mo).zip(vo).zip(inputs) {
                let [a, b, c] = one::<L2>(x, g, mm, vv, k);
                p.write(a);
                m.write(b);
                v.write(c);
            }
        }
        let k = [decay, wd, b1, a1, b2, a2, rs, eps, step];
        const CHUNK: usize = 1 << 14;
        use rayon::prelude::*;
        let (po, mo, vo) = (
            &mut pn.spare_capacity_mut()[..n],
            &mut mn.spare_capacity_mut()[..n],
            &mut vn.spare_capacity_mut()[..n],
        );
        po.par_chunks_mut(CHUNK)
            .zip(mo.par_chunks_mut(CHUNK))
            .zip(vo.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(i, ((po, mo), vo))| {
                let r = i * CHUNK..i * CHUNK + po.len();
                let ins = [&pv[r.clone()], &gv[r.clone()], &mv[r.clone()], &vv[r]];
                match c.l2 {
                    true => chunk::<true>(ins, [po, mo, vo], &k),
                    false => chunk::<false>(ins, [po, mo, vo], &k),
                }
            });
    }
    // SAFETY: the chunks above cover all `n` elements of the three vectors' capacity and
    // `chunk` writes each of its elements (its inputs are as long as its outputs).
    unsafe {
        pn.set_len(n);
        mn.set_len(n);
        vn.set_len(n);
    }
    let (shape, dev) = (p.shape().clone(), p.device().clone());
    var.set(&Tensor::from_vec(pn, shape.clone(), &dev)?)?;
    Ok(Some((
        Tensor::from_vec(mn, shape.clone(), &dev)?,
        Tensor::from_vec(vn, shape, &dev)?,
    )))
}

/// Scales all gradients so their global L2 norm is at most `max_norm`
/// (`torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(vars: &[Var], grads: &mut GradStore, max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(invalid("max_norm", max_norm, "must be positive"));
    }
    let mut total = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(norm)
}

/// Learning-rate schedules (PyTorch's formulas), queried once per epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `StepLR`: `lr0 · gamma^(epoch / step)`.
    Step {
        /// epochs between decays
        step: usize,
        /// decay factor
        gamma: f64,
    },
    /// `CosineAnnealingLR`: `eta_min + (lr0 − eta_min)(1 + cos(π·epoch/t_max))/2`.
    Cosine {
        /// half period in epochs
        t_max: usize,
        /// floor
        eta_min: f64,
    },
}

impl Schedule {
    /// Learning rate at `epoch` from the initial `lr0`.
    pub fn lr(&self, lr0: f64, epoch: usize) -> f64 {
        match *self {
            Schedule::Step { step, gamma } => lr0 * gamma.powi((epoch / step.max(1)) as i32),
            Schedule::Cosine { t_max, eta_min } => {
                eta_min
                    + (lr0 - eta_min)
                        * (1.0 + (std::f64::consts::PI * epoch as f64 / t_max.max(1) as f64).cos())
                        / 2.0
            }
        }
    }
}

/// `ReduceLROnPlateau(mode="min", threshold_mode="rel")`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceOnPlateau {
    /// multiplicative decay
    pub factor: f64,
    /// epochs without improvement tolerated
    pub patience: usize,
    /// relative improvement that counts
    pub threshold: f64,
    /// lower bound on the rate
    pub min_lr: f64,
    best: f64,
    bad: usize,
}

impl ReduceOnPlateau {
    /// PyTorch's defaults are factor 0.1, patience 10, threshold 1e-4.
    pub fn new(factor: f64, patience: usize, threshold: f64, min_lr: f64) -> Self {
        Self {
            factor,
            patience,
            threshold,
            min_lr,
            best: f64::INFINITY,
            bad: 0,
        }
    }
    /// Feeds the epoch's metric; returns the new learning rate.
    pub fn step(&mut self, metric: f64, lr: f64) -> f64 {
        if metric < self.best * (1.0 - self.threshold) {
            self.best = metric;
            self.bad = 0;
            lr
        } else {
            self.bad += 1;
            if self.bad > self.patience {
                self.bad = 0;
                (lr * self.factor).max(self.min_lr)
            } else {
                lr
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The one-pass CPU update gives the composed Candle ops' bits, for AdamW (decoupled
    /// decay) and Adam with L2 decay, over several steps (moments present and absent).
    #[test]
    fn one_pass_adam_equals_the_composed_ops_bit_for_bit() {
        use std::sync::atomic::Ordering;
        let dev = Device::Cpu;
        let mut rng = mirkit_core::Rng::new(9);
        let mut data = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let (w0, grads): (Vec<f32>, Vec<Vec<f32>>) =
            (data(40_000), (0..4).map(|_| data(40_000)).collect());
        let run = |l2: bool, composed: bool| -> Vec<u32> {
            COMPOSED_ONLY.store(composed, Ordering::Relaxed);
            let w = Var::from_vec(w0.clone(), (200, 200), &dev).unwrap();
            let mut opt = if l2 {
                AdamW::adam_l2(vec![w.clone()], 1e-3, 1e-4).unwrap()
            } else {
                AdamW::new(vec![w.clone()], 1e-3, 0.01).unwrap()
            };
            for g in &grads {
                // a gradient of exactly g: d/dw sum(w * g)
                let gt = Tensor::from_vec(g.clone(), (200, 200), &dev).unwrap();
                let store = (w.as_tensor() * &gt)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                opt.step(&store).unwrap();
            }
            COMPOSED_ONLY.store(false, Ordering::Relaxed);
            let out: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            out.iter().map(|x| x.to_bits()).collect()
        };
        for l2 in [false, true] {
            let (a, b) = (run(l2, false), run(l2, true));
            assert_eq!(a, b, "l2 {l2}");
            assert_ne!(a, w0.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }
    }
}
