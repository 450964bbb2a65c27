//! A whole residual block in training — convolution, batch norm, ReLU, (dropout),
//! convolution, batch norm, (squeeze-and-excitation), (projected shortcut), residual
//! add, ReLU, (max-pool) — as one differentiable Candle op.
//!
//! Candle's backward pass adds each gradient into a fresh `zeros_like` of its target
//! (`GradStore::or_insert` + `add`): a zero fill and a three-array pass per gradient
//! edge, over the whole activation. [`crate::trainblock`]'s ops made each convolution's
//! steps one node, but a residual block still had six to eight full-size edges between
//! them (the block's input read by two convolutions, the first convolution's output,
//! the dropout's product and its input, the second convolution's output read by the
//! residual add and by the squeeze's mean, the shortcut's output): in ReSE-2's training
//! step about a fifth of the backward (its first block alone moves ~25 × its
//! activation's 160 MB through those adds). Here the block is one node over `(x, kernels,
//! parameters)`: the kernels (and the excitation's weight matrices) packed into one
//! tensor, the batch norms' `(bias, γ, β)` (and the excitation's biases) into another.
//! Inside, the parts are [`crate::trainblock`]'s block and residual-end ops run on
//! slices; the gradients between them are handed over as buffers (the residual end's
//! input gradient goes to the second convolution's batch norm and to the shortcut
//! without copies), and the two gradients of `x` are summed in place. The excitation
//! (`σ(W₂ ReLU(W₁ mean_t(out) + b₁) + b₂)`, `N × C` values) is computed here in full,
//! with its backward by the chain rule (its mean's gradient `dm / L` added to `out`'s).
//! A strided 2-D block's first convolution and projected shortcut read the same input
//! with the same geometry: they share each tile's im2col in the forward
//! ([`crate::fused`]'s `run_split`, the same bits as two runs) and in the backward
//! (`convop::backward_parts`: both kernel gradients from one im2col, the input gradient —
//! the two branches' sum — by one product over both kernels and one col2im, with no
//! second input-sized buffer to add).
//!
//! The dropout mask is drawn from the caller's generator before the op, value by value
//! as [`crate::dropout::dropout`] draws it, so a seed gives the same mask as the
//! composed block. Same results as the composed ops up to float rounding (tested: the
//! output, the input's and every parameter's gradient, the running statistics, with and
//! without each optional part, 1-D and 2-D). CPU and f32 with affine batch norms;
//! anything else returns `None` and the caller composes.

use crate::batchnorm::update_running;
use crate::conv2d::contiguous_f32;
use crate::fused::{run_split, Act, ConvSpec, Epilogue, Geo, Steps};
use crate::kernels::{gemm_into, MatRef};
use crate::trainblock::{plan_block, BlockOp, ResidualOp, Saved, Src};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use candle_nn::{BatchNorm, Linear};
use mirkit_core::Rng;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// The parts of a residual block for [`res_block_train`].
pub struct ResBlockParts<'a> {
    /// First convolution and its batch norm (then ReLU).
    pub conv1: (ConvSpec<'a>, &'a BatchNorm),
    /// Dropout after the first ReLU: probability and the generator the mask is drawn from.
    pub dropout: Option<(f64, &'a mut Rng)>,
    /// Second convolution and its batch norm (no activation).
    pub conv2: (ConvSpec<'a>, &'a BatchNorm),
    /// Squeeze-and-excitation: the two linear layers `(C → H, H → C)`.
    pub se: Option<(&'a Linear, &'a Linear)>,
    /// Projected shortcut (convolution and batch norm); `None`: the input itself.
    pub shortcut: Option<(ConvSpec<'a>, &'a BatchNorm)>,
    /// Max-pool after the final ReLU (kernel = stride; 1-D blocks use the second value).
    pub pool: (usize, usize),
}

/// The training-mode residual block as one op (module docs): `maxpool(relu(shortcut(x) +
/// bn₂(conv₂(drop(relu(bn₁(conv₁(x)))))) · se))`, updating the three batch norms'
/// running statistics as Candle does. `None` when it does not apply (off the CPU, not
/// f32, a batch norm without affine parameters, linear layers without biases, shapes
/// that do not fit): the caller composes the block from single ops, which report shape
/// errors.
pub fn res_block_train(
    x: &Tensor,
    parts: ResBlockParts<'_>,
) -> crate::error::Result<Option<Tensor>> {
    let ResBlockParts {
        conv1,
        dropout,
        conv2,
        se,
        shortcut,
        pool,
    } = parts;
    if let Some((p, _)) = &dropout {
        if !(0.0..1.0).contains(p) {
            return Err(crate::error::invalid("p", *p, "must be in [0, 1)"));
        }
    }
    let epi = |bn, act| Epilogue {
        bn: Some(bn),
        act,
        pool: (1, 1),
    };
    let Some((op1, p1)) = plan_block(x, conv1.0, epi(conv1.1, Act::Relu))? else {
        return Ok(None);
    };
    // the second convolution's input: the first's output shape
    let one_d = x.rank() == 3;
    let (n, c1, (h1, w1)) = (op1.n, op1.g.o, op1.out_hw);
    // (a broadcast zero: only its shape, device and dtype are read)
    let zero = Tensor::zeros((), DType::F32, x.device())?;
    let mid = if one_d {
        zero.broadcast_as((n, c1, w1))?
    } else {
        zero.broadcast_as((n, c1, h1, w1))?
    };
    let Some((op2, p2)) = plan_block(&mid, conv2.0, epi(conv2.1, Act::Identity))? else {
        return Ok(None);
    };
    drop(mid);
    let (c, (h, w)) = (op2.g.o, op2.out_hw);
    let sc = match shortcut {
        Some((spec, bn)) => match plan_block(x, spec, epi(bn, Act::Identity))? {
            Some((op, p)) if op.g.o == c && op.out_hw == (h, w) => Some((op, p, spec, bn)),
            _ => return Ok(None),
        },
        None => {
            let same = if one_d {
                x.dims() == [n, c, w]
            } else {
                x.dims() == [n, c, h, w]
            };
            if !same {
                return Ok(None);
            }
            None
        }
    };
    let pool = if one_d { (1, pool.1) } else { pool };
    if pool.0 == 0
        || pool.1 == 0
        || !crate::pool::argmax_fits(pool)
        || h / pool.0 == 0
        || w / pool.1 == 0
    {
        return Ok(None);
    }
    // the excitation's weights `(H, C)`, `(C, H)` and biases
    let se_parts = match se {
        Some((l1, l2)) => {
            let (Some(b1), Some(b2)) = (l1.bias(), l2.bias()) else {
                return Ok(None);
            };
            let hidden = l1.weight().dim(0)?;
            if l1.weight().dims() != [hidden, c] || l2.weight().dims() != [c, hidden] {
                return Ok(None);
            }
            Some((hidden, [l1.weight(), l2.weight()], [b1, b2]))
        }
        None => None,
    };
    // worth it only where the activations outweigh the kernels: the packing costs the
    // kernels' gradients two more edges (the pack and each kernel's flattening, a zero
    // fill and an add each) and the forward a copy, while the edges saved are
    // activation-sized (the short-chunk ResNet's last blocks have 4.7 M weights for 8 K
    // outputs; its first 150 K for 8.4 M)
    let weights: usize = [Some(conv1.0.weight), Some(conv2.0.weight)]
        .into_iter()
        .chain([sc.as_ref().map(|s| s.2.weight)])
        .flatten()
        .map(|w| w.elem_count())
        .sum::<usize>()
        + se_parts.as_ref().map_or(0, |s| 2 * s.0 * c);
    if weights > n * c * h * w {
        return Ok(None);
    }
    let mask = match dropout {
        Some((p, rng)) if p > 0.0 => Some(crate::dropout::mask(n * c1 * h1 * w1, p, rng)),
        _ => None,
    };
    // the packed kernels and parameters, in the order of `Pack`
    let mut ws = vec![conv1.0.weight.flatten_all()?, conv2.0.weight.flatten_all()?];
    let mut ps = vec![p1, p2];
    if let Some((_, p, spec, _)) = &sc {
        ws.push(spec.weight.flatten_all()?);
        ps.push(p.clone());
    }
    if let Some((_, wm, bs)) = &se_parts {
        for (wi, bi) in wm.iter().zip(bs) {
            ws.push(wi.flatten_all()?);
            ps.push(bi.flatten_all()?);
        }
    }
    let pack = Pack::new(&ws, &ps);
    let wpack = Tensor::cat(&ws, 0)?;
    let ppack = Tensor::cat(&ps, 0)?;
    let counts = [
        op1.n * op1.g.poh * op1.g.pow,
        op2.n * op2.g.poh * op2.g.pow,
        op2.n * op2.g.poh * op2.g.pow,
    ];
    let (bn1, bn2) = (conv1.1, conv2.1);
    let bn3 = sc.as_ref().map(|s| s.3);
    let op = ResBlockOp {
        conv1: op1,
        conv2: op2,
        shortcut: sc.map(|s| s.0),
        mask,
        se: se_parts.map(|s| s.0),
        residual: ResidualOp::new((n, c, h, w), pool, se.is_none()),
        pack,
        one_d,
        saved: Mutex::new(None),
        stats: Arc::new(Mutex::new(Vec::new())),
    };
    let stats = op.stats.clone();
    let y = x.contiguous()?.apply_op3(&wpack, &ppack, op)?;
    // the running statistics, from the batch statistics the forward computed
    let st = std::mem::take(&mut *stats.lock().expect("stats lock"));
    for ((bn, (mean, var)), count) in [Some(bn1), Some(bn2), bn3]
        .into_iter()
        .flatten()
        .zip(st)
        .zip(counts)
    {
        update_running(bn, &mean, &var, count)?;
    }
    Ok(Some(y))
}

/// `f(a[i], b[i])` for every `i`, in parallel pieces (the dropout's mask applied
/// forward and backward, the two input gradients summed).
fn zip_par(a: &mut [f32], b: &[f32], f: impl Fn(&mut f32, f32) + Sync) {
    a.par_chunks_mut(1 << 14)
        .zip(b.par_chunks(1 << 14))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(u, &v)| f(u, v)));
}

/// Where each part's kernel and parameters sit in the packed tensors: conv 1, conv 2,
/// (shortcut), (W₁, b₁ and W₂, b₂).
struct Pack {
    w: Vec<std::ops::Range<usize>>,
    p: Vec<std::ops::Range<usize>>,
}

impl Pack {
    fn new(ws: &[Tensor], ps: &[Tensor]) -> Self {
        let ranges = |v: &[Tensor]| {
            let mut at = 0;
            v.iter()
                .map(|t| {
                    let r = at..at + t.elem_count();
                    at = r.end;
                    r
                })
                .collect()
        };
        Self {
            w: ranges(ws),
            p: ranges(ps),
        }
    }
}

/// Each batch norm's batch mean and biased variance, in the order conv 1, conv 2,
/// (shortcut).
type BatchStats = Vec<(Vec<f64>, Vec<f64>)>;

/// What the forward keeps for the backward.
struct Kept {
    s1: Saved,
    /// The second convolution's input (after the dropout).
    y1: Vec<f32>,
    s2: Saved,
    /// The second batch norm's output.
    out: Vec<f32>,
    s3: Option<Saved>,
    /// The shortcut's output (`None`: the input itself).
    xs: Option<Vec<f32>>,
    /// The excitation's mean `(N, C)`, hidden activations `(N, H)` and gates `(N, C)`
    /// (all ones without an excitation).
    m: Vec<f32>,
    hid: Vec<f32>,
    gate: Vec<f32>,
    /// The residual end's argmax (empty without pooling).
    arg: Vec<u8>,
}

struct ResBlockOp {
    conv1: BlockOp,
    conv2: BlockOp,
    shortcut: Option<BlockOp>,
    /// The dropout's mask (0 or `1/(1 − p)` per value of the first convolution's output).
    mask: Option<Vec<f32>>,
    /// The excitation's hidden width.
    se: Option<usize>,
    residual: ResidualOp,
    pack: Pack,
    one_d: bool,
    saved: Mutex<Option<Kept>>,
    /// Each batch norm's batch mean and biased variance, for the running statistics.
    stats: Arc<Mutex<BatchStats>>,
}

impl ResBlockOp {
    /// The first convolution's and the shortcut's geometry with their output channels
    /// stacked, when the two can share their im2col tiles (forward and backward: the same
    /// input, kernel size, stride and padding; 2-D and strided, as every projected
    /// shortcut of the zoo's 2-D blocks — a stride-1 3×3 pair keeps Winograd's paths,
    /// which take one kernel at a time).
    fn pair(&self) -> Option<Geo> {
        let (a, b) = (&self.conv1.g, &self.shortcut.as_ref()?.g);
        let same = Geo { o: a.o, ..*b } == *a;
        (same && !self.one_d && a.stride != 1).then_some(Geo { o: a.o + b.o, ..*a })
    }

    /// `(N, C, L)`: channels and length of the second convolution's output.
    fn dims(&self) -> (usize, usize, usize) {
        let (n, c, (h, w)) = (self.conv2.n, self.conv2.g.o, self.conv2.out_hw);
        (n, c, h * w)
    }

    /// The excitation forward: the mean over the length of `out`, the hidden layer
    /// (ReLU) and the gates (sigmoid), with `w = [W₁, W₂]`, `b = [b₁, b₂]`.
    fn se_forward(
        &self,
        out: &[f32],
        hidden: usize,
        w: [&[f32]; 2],
        b: [&[f32]; 2],
    ) -> [Vec<f32>; 3] {
        let (n, c, l) = self.dims();
        let m: Vec<f32> = out
            .par_chunks(l.max(1))
            .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / l as f64) as f32)
            .collect();
        // x · Wᵀ + b for a weight `(rows, k)`
        let affine = |x: &[f32], wt: &[f32], bias: &[f32], (rows, k): (usize, usize)| {
            let mut y = vec![0f32; n * rows];
            let a = MatRef::row_major(x, n, k).expect("input");
            let bt = MatRef::new(wt, k, rows, 1, k).expect("weight transposed");
            gemm_into(a, bt, &mut y, false);
            for r in y.chunks_exact_mut(rows) {
                for (v, &bv) in r.iter_mut().zip(bias) {
                    *v += bv;
                }
            }
            y
        };
        let mut hid = affine(&m, w[0], b[0], (hidden, c));
        hid.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut gate = affine(&hid, w[1], b[1], (c, hidden));
        gate.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
        [m, hid, gate]
    }

    /// The excitation backward from the gates' gradient `dg` `(N, C)`, for the
    /// forward's mean, hidden values and gates `[m, hid, gate]`: the mean's gradient
    /// `(N, C)` and the gradients of `W₁, b₁, W₂, b₂`.
    fn se_backward(
        &self,
        dg: &[f32],
        [m, hid, gate]: [&[f32]; 3],
        hidden: usize,
        w: [&[f32]; 2],
    ) -> (Vec<f32>, [Vec<f32>; 4]) {
        let (n, c, _) = self.dims();
        // through the sigmoid: dz₂ = dg · σ · (1 − σ)
        let dz2: Vec<f32> = dg
            .iter()
            .zip(gate)
            .map(|(&d, &s)| d * (s * (1.0 - s)))
            .collect();
        let col_sums = |v: &[f32], cols: usize| {
            let mut s = vec![0f32; cols];
            for r in v.chunks_exact(cols) {
                for (a, &b) in s.iter_mut().zip(r) {
                    *a += b;
                }
            }
            s
        };
        // dW₂ = dz₂ᵀ · hid `(C, H)`, db₂ = Σₙ dz₂, dhid = dz₂ · W₂ `(N, H)`
        let mut dw2 = vec![0f32; c * hidden];
        let dz2t = MatRef::new(&dz2, c, n, 1, c).expect("dz2 transposed");
        gemm_into(
            dz2t,
            MatRef::row_major(hid, n, hidden).expect("hid"),
            &mut dw2,
            false,
        );
        let db2 = col_sums(&dz2, c);
        let mut dh = vec![0f32; n * hidden];
        let w2 = MatRef::row_major(w[1], c, hidden).expect("W2");
        gemm_into(
            MatRef::row_major(&dz2, n, c).expect("dz2"),
            w2,
            &mut dh,
            false,
        );
        // through the ReLU (the hidden values are its output: > 0 where it passed)
        for (d, &hv) in dh.iter_mut().zip(hid) {
            if hv <= 0.0 {
                *d = 0.0;
            }
        }
        // dW₁ = dhᵀ · m `(H, C)`, db₁ = Σₙ dh, dm = dh · W₁ `(N, C)`
        let mut dw1 = vec![0f32; hidden * c];
        let dht = MatRef::new(&dh, hidden, n, 1, hidden).expect("dh transposed");
        gemm_into(dht, MatRef::row_major(m, n, c).expect("m"), &mut dw1, false);
        let db1 = col_sums(&dh, hidden);
        let mut dm = vec![0f32; n * c];
        let w1 = MatRef::row_major(w[0], hidden, c).expect("W1");
        gemm_into(
            MatRef::row_major(&dh, n, hidden).expect("dh"),
            w1,
            &mut dm,
            false,
        );
        (dm, [dw1, db1, dw2, db2])
    }

    /// The output's shape.
    fn out_shape(&self) -> Shape {
        let (n, c, _) = self.dims();
        let (oh, ow) = self.residual.out_hw();
        if self.one_d {
            Shape::from((n, c, ow))
        } else {
            Shape::from((n, c, oh, ow))
        }
    }
}

impl CustomOp3 for ResBlockOp {
    fn name(&self) -> &'static str {
        "mirkit-res-block-train"
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
        let x = contiguous_f32(s1, l1, "input")?;
        let wp = contiguous_f32(s2, l2, "kernels")?;
        let pp = contiguous_f32(s3, l3, "parameters")?;
        let (wr, pr) = (&self.pack.w, &self.pack.p);
        // the first convolution and the shortcut over one im2col per tile where they
        // can (`run_split`: the same bits as two runs)
        let mut z3 = None;
        let (mut y1, s1) = match (self.pair(), &self.shortcut) {
            (Some(_), Some(op3)) => {
                let (b1, b3) = (
                    Steps::bias_only(self.conv1.bias(&pp[pr[0].clone()])?),
                    Steps::bias_only(op3.bias(&pp[pr[2].clone()])?),
                );
                let (o1, o3) = (self.conv1.g.o, op3.g.o);
                let g = Geo {
                    o: o1.max(o3),
                    ..self.conv1.g
                };
                let parts = [(&wp[wr[0].clone()], &b1, o1), (&wp[wr[2].clone()], &b3, o3)];
                let mut zs = run_split(x, self.conv1.n, &g, &parts);
                z3 = zs.pop();
                let z1 = zs.pop().expect("two parts");
                self.conv1.forward_from(z1, &pp[pr[0].clone()])?
            }
            _ => self
                .conv1
                .forward(x, &wp[wr[0].clone()], &pp[pr[0].clone()])?,
        };
        if let Some(mask) = &self.mask {
            zip_par(&mut y1, mask, |v, k| *v *= k);
        }
        let (out, s2) = self
            .conv2
            .forward(&y1, &wp[wr[1].clone()], &pp[pr[1].clone()])?;
        let mut next = 2;
        let (xs, s3) = match &self.shortcut {
            Some(op) => {
                let (v, s) = match z3 {
                    Some(z3) => op.forward_from(z3, &pp[pr[2].clone()])?,
                    None => op.forward(x, &wp[wr[2].clone()], &pp[pr[2].clone()])?,
                };
                next = 3;
                (Some(v), Some(s))
            }
            None => (None, None),
        };
        let (n, c, _) = self.dims();
        let [m, hid, gate] = match self.se {
            Some(hidden) => {
                let w = [&wp[wr[next].clone()], &wp[wr[next + 1].clone()]];
                let b = [&pp[pr[next].clone()], &pp[pr[next + 1].clone()]];
                self.se_forward(&out, hidden, w, b)
            }
            None => [Vec::new(), Vec::new(), vec![1.0; n * c]],
        };
        let (y, arg) = self
            .residual
            .forward(xs.as_deref().unwrap_or(x), &out, &gate);
        *self.stats.lock().expect("stats lock") = [Some(&s1), Some(&s2), s3.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| (s.mean.clone(), s.var.clone()))
            .collect();
        *self.saved.lock().expect("saved lock") = Some(Kept {
            s1,
            y1,
            s2,
            out,
            s3,
            xs,
            m,
            hid,
            gate,
            arg,
        });
        Ok((CpuStorage::F32(y), self.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wpack: &Tensor,
        ppack: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // used once and freed, as the single blocks' saved values
        let Some(kept) = self.saved.lock().expect("saved lock").take() else {
            candle_core::bail!(
                "residual block: a second backward pass through the same forward (its \
                 saved values are freed by the first; run the forward again)"
            )
        };
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let (xs_, xl) = x.storage_and_layout();
        let (ws, wl) = wpack.storage_and_layout();
        let (ps, pl) = ppack.storage_and_layout();
        let gout = contiguous_f32(crate::convop::cpu(&gs)?, gl, "gradient")?;
        let xv = contiguous_f32(crate::convop::cpu(&xs_)?, xl, "input")?;
        let wp = contiguous_f32(crate::convop::cpu(&ws)?, wl, "kernels")?;
        let pp = contiguous_f32(crate::convop::cpu(&ps)?, pl, "parameters")?;
        let (wr, pr) = (&self.pack.w, &self.pack.p);
        let need_dx = x.track_op();
        let mut dw = vec![0f32; wp.len()];
        let mut dp = vec![0f32; pp.len()];
        let Kept {
            s1,
            y1,
            s2,
            out,
            s3,
            xs,
            m,
            hid,
            gate,
            arg,
        } = kept;
        // the residual end: g at the final ReLU's input (the shortcut's gradient), the
        // second batch norm's output gradient g · gate, the gates' Σ g · out
        let xr = xs.as_deref().unwrap_or(xv);
        let has_se = self.se.is_some();
        let (g, dout, dgate) =
            self.residual
                .backward(gout, (xr, &out, &gate), &arg, (has_se, has_se));
        drop((xs, arg, gs));
        let (n, c, l) = self.dims();
        let next = if self.shortcut.is_some() { 3 } else { 2 };
        let dout = match (self.se, dout, dgate) {
            (Some(hidden), Some(mut dout), Some(dgate)) => {
                let w = [&wp[wr[next].clone()], &wp[wr[next + 1].clone()]];
                let (dm, [dw1, db1, dw2, db2]) =
                    self.se_backward(&dgate, [&m, &hid, &gate], hidden, w);
                // the mean's gradient, dm / L, to every value of its plane
                dout.par_chunks_mut(l.max(1))
                    .zip(dm.par_iter())
                    .for_each(|(d, &v)| {
                        let v = v / l as f32;
                        d.iter_mut().for_each(|a| *a += v);
                    });
                dw[wr[next].clone()].copy_from_slice(&dw1);
                dp[pr[next].clone()].copy_from_slice(&db1);
                dw[wr[next + 1].clone()].copy_from_slice(&dw2);
                dp[pr[next + 1].clone()].copy_from_slice(&db2);
                Src::Owned(dout)
            }
            _ => Src::Read(&g),
        };
        debug_assert_eq!(g.len(), n * c * l);
        drop(out);
        // the second convolution (its input is the dropout's output)
        let (mut dy1, dw2, dp2) = self.conv2.backward(
            s2,
            (&y1, &wp[wr[1].clone()], &pp[pr[1].clone()]),
            dout,
            true,
        );
        drop(y1);
        dw[wr[1].clone()].copy_from_slice(&dw2);
        dp[pr[1].clone()].copy_from_slice(&dp2);
        if let Some(mask) = &self.mask {
            zip_par(&mut dy1, mask, |v, k| *v *= k);
        }
        let dx = match (self.pair().zip(self.shortcut.as_ref()), s3) {
            // the first convolution and the shortcut: each back to its convolution's
            // output, then one pass over the tiles for both (one im2col for the two
            // kernel gradients; the input gradient, their sum, by one product and one
            // col2im)
            (Some((gp, op3)), Some(s3)) => {
                let (dz1, dp1) = self
                    .conv1
                    .backward_z(s1, &pp[pr[0].clone()], Src::Owned(dy1));
                let (dz3, dp3) = op3.backward_z(s3, &pp[pr[2].clone()], Src::Read(&g));
                let w13 = [&wp[wr[0].clone()], &wp[wr[2].clone()]].concat();
                let (dx, dw13) = crate::convop::backward_parts(
                    xv,
                    &w13,
                    &[&dz1, &dz3],
                    self.conv1.n,
                    &gp,
                    need_dx,
                );
                let k1 = wr[0].len();
                dw[wr[0].clone()].copy_from_slice(&dw13[..k1]);
                dw[wr[2].clone()].copy_from_slice(&dw13[k1..]);
                dp[pr[0].clone()].copy_from_slice(&dp1);
                dp[pr[2].clone()].copy_from_slice(&dp3);
                dx
            }
            (_, s3) => {
                let (mut dx, dw1, dp1) = self.conv1.backward(
                    s1,
                    (xv, &wp[wr[0].clone()], &pp[pr[0].clone()]),
                    Src::Owned(dy1),
                    need_dx,
                );
                dw[wr[0].clone()].copy_from_slice(&dw1);
                dp[pr[0].clone()].copy_from_slice(&dp1);
                // the shortcut: its own backward from g, or g itself; added into dx
                let dxs = match (&self.shortcut, s3) {
                    (Some(op), Some(s3)) => {
                        let (dxs, dws, dps) = op.backward(
                            s3,
                            (xv, &wp[wr[2].clone()], &pp[pr[2].clone()]),
                            Src::Read(&g),
                            need_dx,
                        );
                        dw[wr[2].clone()].copy_from_slice(&dws);
                        dp[pr[2].clone()].copy_from_slice(&dps);
                        dxs
                    }
                    _ => g,
                };
                if need_dx {
                    zip_par(&mut dx, &dxs, |u, v| *u += v);
                }
                dx
            }
        };
        drop((xs_, ws, ps));
        Ok((
            need_dx
                .then(|| Tensor::from_vec(dx, x.shape(), x.device()))
                .transpose()?,
            Some(Tensor::from_vec(dw, wpack.shape(), wpack.device())?),
            Some(Tensor::from_vec(dp, ppack.shape(), ppack.device())?),
        ))
    }
}
