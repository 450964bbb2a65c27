//! Fused inference blocks: convolution → bias → batch norm → ReLU → max-pooling in one
//! pass over cache-sized tiles.
//!
//! In eval mode every convolutional block of the zoo is a convolution followed by
//! per-channel element-wise steps and a non-overlapping max-pool. Composed from Candle
//! ops that is seven passes over the full activation (im2col, product, bias, the four
//! operations of Candle's eval batch norm, ReLU, pool), each one a freshly allocated,
//! zero-filled tensor — SampleCNN's second layer alone produces 160 MB per step at batch
//! 16, so the passes cost more than the arithmetic. Here each (item, tile of output
//! positions) task builds its own im2col tile (a few hundred kB), multiplies it by the
//! kernel with the `gemm` crate, applies the element-wise steps to the product while it
//! is in cache and writes only the pooled result. No intermediate of the full size is
//! ever allocated.
//!
//! **Same numbers as the composed ops, up to rounding.** Without a batch norm the
//! element-wise steps are the same f32 operations in the same order as the Candle ops
//! they replace (`y + b`, then `max(y, 0)`). An eval batch norm and the bias before it
//! are one per-channel `y · scale + shift`, folded in f64 and rounded once — two
//! operations per value instead of Candle's five (add, subtract, divide, multiply, add;
//! the division alone was ~10 % of a batch-1 SampleCNN+SE forward), the same map up to a
//! few 1e-7 relative. The product has the same inner order (channel-major, kernel offsets
//! inner) as [`crate::conv::conv1d_gemm`] / [`crate::conv2d::conv2d_gemm`]. Tested
//! ≤ 1e-5 relative against the composed path; the pretrained models keep their parity
//! (e.g. Won 2020 FCN 1.25e-6, CRNN 8.9e-8, Musicnn 1.9e-7 of PyTorch's scores). The
//! batch norm is not folded into the *kernel*: that would change the products' rounding
//! too, and a kernel copy per call would cost a pass over the weights. An ELU before a
//! max-pool is applied to the pooled values: it is non-decreasing, so the maximum of the
//! activated values is the activated maximum, at one exponential per window.
//!
//! **One exception, by measurement:** stride-1 3×3 convolutions with padding 1 and at
//! least 16 channels (the short-chunk CNN/ResNet, FCN, VGG layers) run by Winograd's
//! F(2×2, 3×3) ([`crate::winograd`], 2.25× less arithmetic) when a call has at least
//! 1024 output positions and an item at least 16 × 16. It is the same convolution
//! rounded differently: the pretrained models' scores stay within 1.3e-6 of their
//! originals (as before), the composed ops within 1e-5 relative (tested).
//! [`set_winograd`]`(`[`Winograd::Off`]`)` restores the im2col sums;
//! [`Winograd::F4x4`] is a faster opt-in with twice the rounding error. Likewise 1-D
//! convolutions of kernel 3, stride 1, padding 1 with at least 32 channels (SampleCNN's,
//! SampleCNN+SE's and ReSE-2's blocks) run by F(4, 3) or F(2, 3) (`wino1d`, 2× / 1.5× less
//! arithmetic; as accurate as the plain `f32` sum, tested against `f64`) from 1024 output
//! positions per call and 128 per item, in every mode but `Off`.
//!
//! Inference only: no gradient flows through [`conv_block_eval`]; [`conv_block`] (what
//! the models call) uses the composed, differentiable path in training mode, and in eval
//! mode too after [`set_fused_eval`]`(false)`. Off the CPU or for other dtypes it falls back to the composed Candle
//! ops, so the `cuda` feature keeps working.

use crate::error::{invalid, Result};
use candle_core::{DType, Tensor};
use candle_nn::BatchNorm;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Floats in one im2col tile and in one product tile (1 MiB each). The matrix product
/// blocks for the caches itself; what matters here is that a tile is wide enough for
/// its fast kernels (a 3×3 layer of 128 channels gets 227 output positions; at 64k
/// floats it was 56, and the short-chunk ResNet ran 1.5× PyTorch's time).
pub(crate) const TILE_FLOATS: usize = 256 * 1024;

/// A convolution for [`conv_block_eval`]: `weight` is `(O, C, K)` for a 1-D and
/// `(O, C, KH, KW)` for a 2-D convolution (dilation 1, one group).
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec<'a> {
    /// The kernel.
    pub weight: &'a Tensor,
    /// `(O,)`, added before the batch norm.
    pub bias: Option<&'a Tensor>,
    /// Stride (both axes for 2-D).
    pub stride: usize,
    /// Zero padding `(rows, columns)`; 1-D convolutions use the second value.
    pub padding: (usize, usize),
}

impl<'a> ConvSpec<'a> {
    /// The spec of a [`crate::conv::Conv1dGemm`].
    pub fn conv1d(c: &'a crate::conv::Conv1dGemm) -> Self {
        Self {
            weight: &c.weight,
            bias: c.bias.as_ref(),
            stride: c.stride,
            padding: (0, c.padding),
        }
    }
    /// The spec of a [`crate::conv2d::Conv2dGemm`].
    pub fn conv2d(c: &'a crate::conv2d::Conv2dGemm) -> Self {
        Self {
            weight: &c.weight,
            bias: c.bias.as_ref(),
            stride: c.stride,
            padding: (c.padding, c.padding),
        }
    }
}

/// The element-wise steps after the convolution, in the model's order.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Eval-mode batch norm (running statistics) after the bias.
    pub bn: Option<&'a BatchNorm>,
    /// The activation after the batch norm.
    pub act: Act,
    /// Non-overlapping max-pooling `(rows, columns)` (kernel = stride, no padding,
    /// remainder dropped as PyTorch's floor mode does); `(1, 1)` for none. 1-D blocks use
    /// the second value.
    pub pool: (usize, usize),
}

impl Default for Epilogue<'_> {
    /// The bare convolution (plus bias): no batch norm, no ReLU, no pooling.
    fn default() -> Self {
        Self {
            bn: None,
            act: Act::Identity,
            pool: (1, 1),
        }
    }
}

/// The activation of a block, computed as Candle computes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    /// None.
    Identity,
    /// `max(v, 0)` (Candle's `relu`, `f32::max`: NaN becomes 0).
    Relu,
    /// `v` for `v ≥ +0`, else `α·(exp(v) − 1)` (Candle's `elu(α)`, FCN-4's activation).
    Elu(f64),
}

/// Per-channel constants of the element-wise steps.
pub(crate) struct Steps {
    bias: Option<Vec<f32>>,
    /// The batch norm (and the bias before it) folded into `(scale, shift)` per
    /// channel: `v · scale + shift`.
    bn: Option<[Vec<f32>; 2]>,
    act: Act,
    /// `(scale, shift)` per channel after the activation.
    post: Option<[Vec<f32>; 2]>,
}

impl Steps {
    /// Only the bias (training: the convolution's output before its batch norm).
    pub(crate) fn bias_only(bias: Vec<f32>) -> Self {
        Self {
            bias: Some(bias),
            bn: None,
            act: Act::Identity,
            post: None,
        }
    }

    /// No step: the bare convolution.
    pub(crate) fn identity() -> Self {
        Self {
            bias: None,
            bn: None,
            act: Act::Identity,
            post: None,
        }
    }

    fn new(o: usize, bias: Option<&Tensor>, bn: Option<&BatchNorm>, act: Act) -> Result<Self> {
        Self::with_post(o, bias, bn, act, None)
    }

    /// [`Steps::new`] with a per-channel `(scale, shift)` after the activation.
    fn with_post(
        o: usize,
        bias: Option<&Tensor>,
        bn: Option<&BatchNorm>,
        act: Act,
        post: Option<(&Tensor, &Tensor)>,
    ) -> Result<Self> {
        let vec = |t: &Tensor, what: &str| -> Result<Vec<f32>> {
            let v: Vec<f32> = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            if v.len() != o {
                return Err(invalid(
                    "conv_block_eval",
                    format!("{what} of {} values", v.len()),
                    format!("the convolution has {o} output channels"),
                ));
            }
            Ok(v)
        };
        let mut bias = bias.map(|b| vec(b, "bias")).transpose()?;
        let bn = match bn {
            None => None,
            Some(bn) => {
                let mean = vec(bn.running_mean(), "batch-norm mean")?;
                let var = vec(bn.running_var(), "batch-norm variance")?;
                let (g, b) = match bn.weight_and_bias() {
                    Some((g, b)) => (vec(g, "batch-norm weight")?, vec(b, "batch-norm bias")?),
                    None => (vec![1.0; o], vec![0.0; o]),
                };
                // ((v + bias − mean) / √(var + ε))·γ + β = v·scale + shift, folded in
                // f64 and rounded once (one multiply and one add per value instead of
                // Candle's add, subtract, divide, multiply, add: the same map up to
                // rounding, a few 1e-7 relative)
                let bias = bias.take().unwrap_or_else(|| vec![0.0; o]);
                let (scale, shift): (Vec<f32>, Vec<f32>) = (0..o)
                    .map(|i| {
                        let scale = g[i] as f64 / (var[i] as f64 + bn.eps()).sqrt();
                        let shift = b[i] as f64 + (bias[i] as f64 - mean[i] as f64) * scale;
                        (scale as f32, shift as f32)
                    })
                    .unzip();
                Some([scale, shift])
            }
        };
        let post = match post {
            Some((s, t)) => Some([vec(s, "scale")?, vec(t, "shift")?]),
            None => None,
        };
        Ok(Self {
            bias,
            bn,
            act,
            post,
        })
    }

    /// Whether the activation waits until after a max-pool ([`Act::after_max_pool`]);
    /// not with a step after the activation.
    fn act_after_pool(&self) -> bool {
        self.act.after_max_pool() && self.post.is_none()
    }

    /// Applies the steps of channel `o` to `row` in place, with `act` in place of the
    /// steps' activation (the steps' own, or [`Act::Identity`] when the activation is
    /// left for after the pool: [`Self::act_after_pool`]).
    #[inline]
    fn apply_with(&self, o: usize, row: &mut [f32], act: Act) {
        if let Some(b) = &self.bias {
            let b = b[o];
            row.iter_mut().for_each(|v| *v += b);
        }
        match (&self.bn, act) {
            (Some([scale, shift]), Act::Relu) => {
                let (s, t) = (scale[o], shift[o]);
                row.iter_mut().for_each(|v| *v = (*v * s + t).max(0.0));
            }
            (Some([scale, shift]), act) => {
                let (s, t) = (scale[o], shift[o]);
                row.iter_mut().for_each(|v| *v = *v * s + t);
                activate(act, row);
            }
            (None, act) => activate(act, row),
        }
        if let Some([s, t]) = &self.post {
            // the composed ops' two roundings: `v · s`, then `+ t`
            let (s, t) = (s[o], t[o]);
            row.iter_mut().for_each(|v| *v = *v * s + t);
        }
    }
}

impl Act {
    /// Whether a max-pool may take the window maxima before the activation: an ELU
    /// (α ≥ 0) is non-decreasing, so the maximum of activated values is the activated
    /// maximum (the same value; NaN stays NaN), and pooling first evaluates its
    /// exponential once per window instead of once per value — FCN-4's exponentials were
    /// a quarter of its batch-1 forward, over windows of 8 to 32 values. Not for ReLU (a
    /// `max` per value, cheaper than moving it). Used by the fused eval path and the
    /// training block alike.
    pub(crate) fn after_max_pool(self) -> bool {
        matches!(self, Act::Elu(a) if a >= 0.0)
    }

    /// The activation of one value, as Candle's unary ops compute it.
    #[inline]
    pub fn apply(self, u: f32) -> f32 {
        match self {
            Act::Identity => u,
            Act::Relu => u.max(0.0),
            Act::Elu(a) => {
                if u.is_sign_positive() {
                    u
                } else {
                    (u.exp() - 1.0) * a as f32
                }
            }
        }
    }

    /// The derivative at `u` (ReLU: 1 for `u > 0`, PyTorch's rule at 0; ELU: `α·exp(u)`
    /// below 0).
    #[inline]
    pub(crate) fn derivative(self, u: f32) -> f64 {
        match self {
            Act::Identity => 1.0,
            Act::Relu => (u > 0.0) as u8 as f64,
            Act::Elu(a) => {
                if u.is_sign_positive() {
                    1.0
                } else {
                    a * u.exp() as f64
                }
            }
        }
    }
}

/// `act` in place.
pub(crate) fn activate(act: Act, row: &mut [f32]) {
    match act {
        Act::Identity => {}
        Act::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
        act => row.iter_mut().for_each(|v| *v = act.apply(*v)),
    }
}

/// Geometry of one block (1-D blocks are 2-D blocks of one row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geo {
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) stride: usize,
    pub(crate) ph: usize,
    pub(crate) pw: usize,
    /// Pooled output rows and columns.
    pub(crate) poh: usize,
    pub(crate) pow: usize,
    pub(crate) pool: (usize, usize),
}

impl Geo {
    pub(crate) fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
}

/// `maxpool(relu(bn(conv(x) + bias)))` in eval mode, as one fused pass (module docs).
/// `x` is `(N, C, L)` for a 1-D kernel `(O, C, K)` and `(N, C, H, W)` for a 2-D kernel
/// `(O, C, KH, KW)`; the result is `(N, O, L')` or `(N, O, H', W')` after pooling.
/// The steps named in `epi` are applied in the order bias → batch norm → ReLU → pool.
pub fn conv_block_eval(x: &Tensor, conv: ConvSpec<'_>, epi: Epilogue<'_>) -> Result<Tensor> {
    let steps = |o| Steps::new(o, conv.bias, epi.bn, epi.act);
    match conv_parts(x, conv, epi.pool, &[(conv.weight, &steps)])? {
        Some(mut v) => Ok(v.pop().expect("one part")),
        None => composed(x, conv, epi),
    }
}

/// `maxpool(act(conv(x) + bias) · scale + shift)` in eval mode as one fused pass: a
/// convolution followed by its activation and then an inference batch norm folded into a
/// per-channel `scale` and `shift` (TensorFlow models' conv → ReLU → batch norm order,
/// musicnn 0.1.0's VGG), `scale` and `shift` of `O` values in any shape. The same f32
/// operations as the composed ops (`v · scale`, then `+ shift`, then the window
/// maximum), so the same bits; other devices and dtypes run the composed ops.
pub fn conv_act_affine_eval(
    x: &Tensor,
    conv: ConvSpec<'_>,
    act: Act,
    (scale, shift): (&Tensor, &Tensor),
    pool: (usize, usize),
) -> Result<Tensor> {
    let steps = |o| Steps::with_post(o, conv.bias, None, act, Some((scale, shift)));
    if let Some(mut v) = conv_parts(x, conv, pool, &[(conv.weight, &steps)])? {
        return Ok(v.pop().expect("one part"));
    }
    let epi = Epilogue {
        act,
        ..Epilogue::default()
    };
    let y = composed(x, conv, epi)?;
    let mut shape = vec![1; y.rank()];
    shape[1] = scale.elem_count();
    let y = y
        .broadcast_mul(&scale.reshape(shape.clone())?)?
        .broadcast_add(&shift.reshape(shape)?)?;
    Ok(if conv.weight.rank() == 3 {
        match pool.1 {
            1 => y,
            p => crate::pool::max_pool1d(&y, p, p, 0)?,
        }
    } else if pool != (1, 1) {
        crate::pool::max_pool2d(&y, pool, pool, (0, 0))?
    } else {
        y
    })
}

/// Two eval-mode blocks on the same input whose convolutions have the same geometry
/// (kernel size, stride, padding, input channels; pooling): one im2col per tile shared
/// by both products, each part with its own bias, batch norm and activation — e.g. a
/// residual block's first convolution and its shortcut. The same bits as two
/// [`conv_block_eval`] calls (same tiles, same product sizes). `None` when it does not
/// apply (geometry differs, not CPU f32): the caller runs the two blocks.
pub fn conv_pair_eval(
    x: &Tensor,
    (ca, ea): (ConvSpec<'_>, Epilogue<'_>),
    (cb, eb): (ConvSpec<'_>, Epilogue<'_>),
) -> Result<Option<(Tensor, Tensor)>> {
    let (da, db) = (ca.weight.dims(), cb.weight.dims());
    let same = da.len() == db.len()
        && da.len() >= 3
        && da[1..] == db[1..]
        && ca.stride == cb.stride
        && ca.padding == cb.padding
        && ea.pool == eb.pool;
    if !same {
        return Ok(None); // (a kernel that is not CPU f32: conv_parts says None)
    }
    let sa = |o| Steps::new(o, ca.bias, ea.bn, ea.act);
    let sb = |o| Steps::new(o, cb.bias, eb.bn, eb.act);
    let parts: [Part; 2] = [(ca.weight, &sa), (cb.weight, &sb)];
    Ok(conv_parts(x, ca, ea.pool, &parts)?.map(|mut v| {
        let b = v.pop().expect("two parts");
        (v.pop().expect("two parts"), b)
    }))
}

/// One kernel of [`conv_parts`] and the steps for its channel count.
type Part<'a> = (&'a Tensor, &'a dyn Fn(usize) -> Result<Steps>);

/// [`conv_block_eval`] for several kernels of `conv`'s geometry (`conv.weight`'s shape
/// but for the output channels) over the same input: part `i` is `(kernel, steps for its
/// channel count)`; `None` when the input or a kernel is not CPU f32 (the caller
/// composes).
fn conv_parts(
    x: &Tensor,
    conv: ConvSpec<'_>,
    pool: (usize, usize),
    parts: &[Part],
) -> Result<Option<Vec<Tensor>>> {
    let epi = Epilogue {
        pool,
        ..Epilogue::default()
    };
    let one_d = conv.weight.rank() == 3;
    let bad = |why: &str| {
        invalid(
            "conv_block_eval",
            format!(
                "input {:?}, kernel {:?}, stride {}, padding {:?}, pool {:?}",
                x.dims(),
                conv.weight.dims(),
                conv.stride,
                conv.padding,
                epi.pool
            ),
            why.to_string(),
        )
    };
    let (n, c, h, w, o, cw, kh, kw, ph, pw, pool) = if one_d {
        let (n, c, l) = x.dims3()?;
        let (o, cw, k) = conv.weight.dims3()?;
        (n, c, 1, l, o, cw, 1, k, 0, conv.padding.1, (1, epi.pool.1))
    } else {
        let (n, c, h, w) = x.dims4()?;
        let (o, cw, kh, kw) = conv.weight.dims4()?;
        (
            n,
            c,
            h,
            w,
            o,
            cw,
            kh,
            kw,
            conv.padding.0,
            conv.padding.1,
            epi.pool,
        )
    };
    if cw != c || conv.stride == 0 || pool.0 == 0 || pool.1 == 0 {
        return Err(bad(
            "channels must agree; stride and pooling must be positive",
        ));
    }
    if h + 2 * ph < kh || w + 2 * pw < kw {
        return Err(bad("kernel larger than the padded input"));
    }
    let s = conv.stride;
    let (oh, ow) = ((h + 2 * ph - kh) / s + 1, (w + 2 * pw - kw) / s + 1);
    let (poh, pow) = (oh / pool.0, ow / pool.1);
    if poh == 0 || pow == 0 {
        return Err(bad("pooling window larger than the convolution's output"));
    }
    let o_parts: Vec<usize> = parts.iter().map(|(w, _)| w.dims()[0]).collect();
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !cpu_f32(x) || !parts.iter().all(|(w, _)| cpu_f32(w)) {
        return Ok(None);
    }
    let o = o_parts.iter().copied().max().unwrap_or(o);
    let g = Geo {
        c,
        h,
        w,
        o,
        kh,
        kw,
        stride: s,
        ph,
        pw,
        poh,
        pow,
        pool,
    };
    let steps: Vec<Steps> = o_parts
        .iter()
        .zip(parts)
        .map(|(&o, (_, s))| s(o))
        .collect::<Result<_>>()?;
    let x = x.contiguous()?;
    let kernels: Vec<Tensor> = parts
        .iter()
        .map(|(w, _)| w.contiguous())
        .collect::<candle_core::Result<_>>()?;
    let (xs, _) = x.storage_and_layout();
    let guards: Vec<_> = kernels.iter().map(|k| k.storage_and_layout().0).collect();
    fn cpu(s: &candle_core::Storage) -> Result<&[f32]> {
        match s {
            candle_core::Storage::Cpu(a) => Ok(a.as_slice::<f32>()?),
            _ => unreachable!("checked: CPU tensors"),
        }
    }
    let xoff = x.layout().start_offset();
    let xv = &cpu(&xs)?[xoff..xoff + n * c * h * w];
    let mut split: Vec<(&[f32], &Steps, usize)> = Vec::with_capacity(parts.len());
    for (((guard, kernel), steps), &o) in guards.iter().zip(&kernels).zip(&steps).zip(&o_parts) {
        let koff = kernel.layout().start_offset();
        split.push((&cpu(guard)?[koff..koff + o * g.k()], steps, o));
    }
    let outs = run_split(xv, n, &g, &split);
    outs.into_iter()
        .zip(o_parts)
        .map(|(out, o)| {
            let shape: Vec<usize> = if one_d {
                vec![n, o, pow]
            } else {
                vec![n, o, poh, pow]
            };
            Ok(Tensor::from_vec(out, shape, x.device())?)
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

static FUSED_EVAL: AtomicBool = AtomicBool::new(true);
static WINOGRAD: AtomicU8 = AtomicU8::new(Winograd::F2x2 as u8);

/// How the fused eval path (and the training backward's input gradient) computes
/// stride-1 3×3 convolutions with padding 1 and ≥ 16 channels ([`set_winograd`]). All
/// three are the same convolution rounded differently. Any mode but `Off` also computes
/// the training backward's kernel gradient of those layers by F(3×3, 2×2) (from 4096
/// output positions per call) and the fused eval path's 1-D kernel-3 convolutions by
/// F(4, 3) or F(2, 3) (module docs); `Off` all by im2col or tap products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Winograd {
    /// im2col and one matrix product (the outputs of builds before Winograd's path).
    Off = 0,
    /// F(2×2, 3×3) (the default) where an item has at least 16 × 16 outputs, im2col
    /// below: 2.25× less arithmetic than im2col, errors within ~1.3× of im2col's (a few
    /// 1e-7 of the outputs' scale). Tested within 1e-5 relative of the composed ops.
    F2x2 = 1,
    /// F(4×4, 3×3) where an item has at least 32 × 32 outputs (F(2×2, 3×3) or im2col
    /// below): 4× less arithmetic than im2col, ~15–20 % off the short-chunk CNN's
    /// forward, but 2–3× F(2×2)'s rounding error (~1e-6 of the outputs' scale, up to
    /// ~2e-5 relative on single outputs; [`crate::winograd`]'s notes) — outside the
    /// 1e-5 bar the fused path is held to, so opt-in. The pretrained models' parity
    /// (≤ 1e-4) holds with room to spare.
    F4x4 = 2,
}

/// Sets how stride-1 3×3 convolutions are computed, for the whole process (default
/// [`Winograd::F2x2`]); [`Winograd::Off`] reproduces the outputs of builds before
/// Winograd's path; [`Winograd::F4x4`] trades twice the rounding error for speed.
pub fn set_winograd(mode: Winograd) {
    WINOGRAD.store(mode as u8, Ordering::Relaxed);
}

/// See [`set_winograd`].
pub fn winograd() -> Winograd {
    match WINOGRAD.load(Ordering::Relaxed) {
        0 => Winograd::Off,
        1 => Winograd::F2x2,
        _ => Winograd::F4x4,
    }
}

/// The algorithm [`set_winograd`] chose, if any.
pub(crate) fn winograd_algo() -> Option<crate::winograd::Which> {
    match winograd() {
        Winograd::Off => None,
        Winograd::F2x2 => Some(crate::winograd::Which::F2),
        Winograd::F4x4 => Some(crate::winograd::Which::F4),
    }
}

/// Whether the zoo's models run their convolution blocks fused in eval mode (the
/// default, `true`), for the whole process; [`DifferentiableEval`] does the same for one
/// scope on one thread. Eval mode is inference: nothing computed through a fused block
/// receives a gradient. A program that needs gradients through an eval-mode forward
/// (input saliency maps, fine-tuning with frozen batch-norm statistics) turns fusion off
/// for the whole process with `set_fused_eval(false)`; the results are the same up to
/// float rounding.
pub fn set_fused_eval(on: bool) {
    FUSED_EVAL.store(on, Ordering::Relaxed);
}

thread_local! {
    static DIFFERENTIABLE_EVAL: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether eval-mode blocks run fused on this thread now: [`set_fused_eval`] is on and
/// no [`DifferentiableEval`] guard is alive on this thread.
pub fn fused_eval() -> bool {
    FUSED_EVAL.load(Ordering::Relaxed) && DIFFERENTIABLE_EVAL.with(|c| c.get() == 0)
}

/// While alive, eval-mode blocks on this thread use the composed, differentiable ops, so
/// gradients flow through an eval-mode forward (fine-tuning with frozen batch-norm
/// statistics, input saliency). Scoped to the thread that created it; guards nest.
///
/// ```
/// let _g = mirkit_nn::fused::DifferentiableEval::new();
/// assert!(!mirkit_nn::fused::fused_eval());
/// ```
#[must_use = "the guard acts only while it is alive"]
pub struct DifferentiableEval(std::marker::PhantomData<*const ()>);

impl DifferentiableEval {
    /// Starts a differentiable-eval scope on this thread.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        DIFFERENTIABLE_EVAL.with(|c| c.set(c.get() + 1));
        Self(std::marker::PhantomData)
    }
}

impl Drop for DifferentiableEval {
    fn drop(&mut self) {
        DIFFERENTIABLE_EVAL.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// The block in either mode, as the zoo's models call it: in training (`train`, batch
/// statistics in the batch norm) the composed, differentiable Candle ops; in eval mode
/// the fused [`conv_block_eval`] (no gradient: see [`set_fused_eval`]).
pub fn conv_block(
    x: &Tensor,
    conv: ConvSpec<'_>,
    epi: Epilogue<'_>,
    train: bool,
) -> Result<Tensor> {
    if train || !fused_eval() {
        composed_t(x, conv, epi, train)
    } else {
        conv_block_eval(x, conv, epi)
    }
}

/// `(N, C, H, W)`.
pub(crate) type Dims4 = (usize, usize, usize, usize);

/// Shape of a residual end `maxpool(relu(x + out · s))` both modes accept: CPU f32
/// `x` and `out` of one shape `(N, C, L)` or `(N, C, H, W)`, a non-overlapping pool that
/// fits. Returns `((N, C, H, W), pool)` with 1-D inputs as one row (pool `(1, p)`), or
/// `None` when the fused ops do not apply.
pub(crate) fn residual_geometry(
    x: &Tensor,
    out: &Tensor,
    pool: (usize, usize),
) -> Option<(Dims4, (usize, usize))> {
    if !x.device().is_cpu()
        || x.dtype() != DType::F32
        || out.dtype() != DType::F32
        || x.dims() != out.dims()
        || !(3..=4).contains(&x.rank())
        || pool.0 == 0
        || pool.1 == 0
        || !crate::pool::argmax_fits(pool)
    {
        return None;
    }
    let d = x.dims();
    let (dims, pool) = if d.len() == 3 {
        ((d[0], d[1], 1, d[2]), (1, pool.1))
    } else {
        ((d[0], d[1], d[2], d[3]), pool)
    };
    (dims.2 / pool.0 > 0 && dims.3 / pool.1 > 0).then_some((dims, pool))
}

/// `x.mean(D::Minus1)` of a contiguous `(N, C, L)` f32 CPU tensor in eval mode (the
/// squeeze of squeeze-and-excitation), its `N·C` rows summed in parallel: Candle's CPU
/// backend sums each row with the same kernel (`VecOps::vec_reduce_sum`) but on one
/// thread, which at two threads was a serial pass over every SE block's activation. The
/// sums are then scaled by the same Candle op as `mean` (`· (1/L)`), so the result has
/// the same bits. `None` when it does not apply (training, fusion off, other layouts,
/// devices or dtypes): the caller takes Candle's `mean`.
pub fn mean_last_eval(x: &Tensor, train: bool) -> Result<Option<Tensor>> {
    if train || !fused_eval() || x.dtype() != DType::F32 || x.rank() != 3 {
        return Ok(None);
    }
    let (n, c, l) = x.dims3()?;
    if l == 0 || !x.is_contiguous() {
        return Ok(None);
    }
    let (st, layout) = x.storage_and_layout();
    let v = match &*st {
        candle_core::Storage::Cpu(s) => s.as_slice::<f32>()?,
        _ => return Ok(None),
    };
    let v = &v[layout.start_offset()..][..n * c * l];
    let sums: Vec<f32> = v
        .par_chunks(l)
        .with_min_len((1 << 15) / l + 1)
        .map(|row| {
            use candle_core::cpu::kernels::VecOps;
            let mut s = 0f32;
            // SAFETY: `row` holds `l` > 0 floats and `s` is a valid place for the sum.
            unsafe { <f32 as VecOps>::vec_reduce_sum(row.as_ptr(), &mut s, l) };
            s
        })
        .collect();
    drop(st);
    let sums = Tensor::from_vec(sums, (n, c), x.device())?;
    Ok(Some((sums * (1f64 / l as f64))?))
}

/// `lin.forward(x)` as the zoo's models call a dense layer: in eval mode (fusion on) a
/// single row `(1, in)` of CPU f32 against a weight of at least 64 Ki values is split
/// over the rayon pool by output features. Candle computes a one-row product on one
/// thread (the `gemm` crate's matrix–vector product, or its "horizontal" kernels up to
/// 256 outputs) while the other threads idle: ReSE-2's squeeze-and-excitation gates
/// hold 22 M of its 27 M weights, read from memory once per batch-1 forward (two
/// threads: ReSE-2 0.049–0.051 → 0.043 s). Each piece is the
/// same `gemm` call on a block of the weight's rows, on the whole product's side of the
/// crate's 256-output line, and the bias is added after it as Candle's `broadcast_add`
/// does — Candle's bits on any number of threads (tested) — except between the two
/// methods (257–513 outputs), where the pieces are split on every thread count, one
/// included, and differ from Candle's call by rounding only (the same bits on each).
/// Anything else (training, more rows, small weights, one thread outside 257–513
/// outputs, other devices or dtypes) is `lin.forward(x)`.
pub fn linear(lin: &candle_nn::Linear, x: &Tensor, train: bool) -> Result<Tensor> {
    use candle_core::Module;
    match linear_row_eval(lin, x, train)? {
        Some(y) => Ok(y),
        None => Ok(lin.forward(x)?),
    }
}

fn linear_row_eval(lin: &candle_nn::Linear, x: &Tensor, train: bool) -> Result<Option<Tensor>> {
    let w = lin.weight();
    let threads = rayon::current_num_threads();
    if train
        || !fused_eval()
        || x.dtype() != DType::F32
        || w.dtype() != DType::F32
        || x.rank() != 2
        || x.dims()[0] != 1
        || w.rank() != 2
        || w.elem_count() < 1 << 16
        || !x.is_contiguous()
        || !w.is_contiguous()
    {
        return Ok(None);
    }
    let (o, k) = w.dims2()?;
    let pieces = linear_pieces(o, threads);
    if x.dims()[1] != k
        || (threads == 1 && !linear_always_split(o))
        || pieces.len() < 2
        || lin
            .bias()
            .is_some_and(|b| b.dims() != [o] || b.dtype() != DType::F32)
    {
        return Ok(None);
    }
    let bias = match lin.bias() {
        Some(b) => Some(b.contiguous()?.to_vec1::<f32>()?),
        None => None,
    };
    let (xs, xl) = x.storage_and_layout();
    let (ws, wl) = w.storage_and_layout();
    let Some((xv, wv)) = cpu_f32_pair(&xs, &ws)? else {
        return Ok(None);
    };
    let xv = &xv[xl.start_offset()..][..k];
    let wv = &wv[wl.start_offset()..][..o * k];
    let mut y = vec![0f32; o];
    let mut split = Vec::with_capacity(pieces.len());
    let mut rest = &mut y[..];
    for &(start, len) in &pieces {
        let (piece, tail) = rest.split_at_mut(len);
        split.push((start, piece));
        rest = tail;
    }
    let piece = |(start, yo): (usize, &mut [f32])| {
        let rows = yo.len();
        let a = crate::kernels::MatRef::row_major(xv, 1, k).expect("x view");
        // the piece's rows of `w`, transposed: (k, rows) with strides (1, k), as
        // Candle's `x.matmul(&w.t())` passes the whole weight
        let b = crate::kernels::MatRef::new(&wv[start * k..][..rows * k], k, rows, 1, k)
            .expect("weight view");
        crate::kernels::gemm_into(a, b, yo, false);
        if let Some(b) = &bias {
            for (y, b) in yo.iter_mut().zip(&b[start..]) {
                *y += b;
            }
        }
    };
    if threads == 1 {
        split.into_iter().for_each(piece);
    } else {
        split.into_par_iter().for_each(piece);
    }
    drop((xs, ws));
    Ok(Some(Tensor::from_vec(y, (1, o), x.device())?))
}

/// `(first output, outputs)` of each piece of [`linear`]'s split of `o` outputs over
/// `threads`, up to two pieces per thread (three for 513 outputs on one thread). The
/// `gemm` crate computes a one-row product of at most 256 outputs with its small
/// "horizontal" kernels, which compute each output
/// on its own whatever the block of outputs (multiples of 16 checked), and a larger one
/// as a matrix–vector product, which does too; a piece on the same side of that line as
/// the whole product computes every output as the whole product does. So: from 514
/// outputs, pieces of more than 256 (boundaries at `⌊i·o/p⌋`, every piece `⌊o/p⌋` or
/// `⌈o/p⌉` long); up to 256, multiples of 16; in between (257–513, ReSE-2's last gate,
/// 8192 → 512) no piece can stay on the whole product's side, so pieces of at most 256 on
/// any number of threads, one thread included ([`linear`] then differs from Candle's
/// call by rounding, the same on every thread count).
fn linear_pieces(o: usize, threads: usize) -> Vec<(usize, usize)> {
    let per16 = |p: usize| -> Vec<(usize, usize)> {
        let len = o.div_ceil(p.max(1)).next_multiple_of(16).clamp(16, 256);
        (0..o).step_by(len).map(|s| (s, len.min(o - s))).collect()
    };
    if o >= 514 {
        let p = (o / 257).clamp(1, 2 * threads);
        (0..p)
            .map(|i| (i * o / p, (i + 1) * o / p - i * o / p))
            .collect()
    } else if o > 256 {
        // at most 256 each: at least two pieces
        let v = per16((2 * threads).max(2));
        debug_assert!(v.iter().all(|p| p.1 <= 256));
        v
    } else {
        per16(2 * threads)
    }
}

/// Whether [`linear`] splits a product of `o` outputs even on one thread (the outputs
/// between the `gemm` crate's two methods, [`linear_pieces`]).
fn linear_always_split(o: usize) -> bool {
    (257..514).contains(&o)
}

/// The f32 values of two CPU storages, or `None` when either is on another device.
fn cpu_f32_pair<'a>(
    a: &'a candle_core::Storage,
    b: &'a candle_core::Storage,
) -> Result<Option<(&'a [f32], &'a [f32])>> {
    Ok(match (a, b) {
        (candle_core::Storage::Cpu(a), candle_core::Storage::Cpu(b)) => {
            Some((a.as_slice::<f32>()?, b.as_slice::<f32>()?))
        }
        _ => None,
    })
}

/// The end of a residual block in eval mode, one pass:
/// `maxpool(relu(x + out · scale))` for `x`, `out` `(N, C, …)` of the same shape and an
/// optional per-channel `scale` `(N, C)` (squeeze-and-excitation weights), with
/// non-overlapping pooling `(rows, columns)` over the trailing axes (1-D: the second
/// value). Same f32 operations as the composed ops (`out * s`, then `x + ·`, then
/// `max(·, 0)`, then the window maximum), so the same bits. `None` when it does not
/// apply (training, fusion off, not CPU f32, shapes that differ): the caller composes.
pub fn residual_eval(
    x: &Tensor,
    out: &Tensor,
    scale: Option<&Tensor>,
    pool: (usize, usize),
    train: bool,
) -> Result<Option<Tensor>> {
    if train || !fused_eval() {
        return Ok(None);
    }
    let Some(((n, c, h, w), pool)) = residual_geometry(x, out, pool) else {
        return Ok(None);
    };
    let (oh, ow) = (h / pool.0, w / pool.1);
    let d = x.dims();
    let scale: Option<Vec<f32>> = match scale {
        Some(s) if s.elem_count() == n * c => {
            Some(s.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
        }
        Some(_) => return Ok(None),
        None => None,
    };
    let (x, out) = (x.contiguous()?, out.contiguous()?);
    let (xs, _) = x.storage_and_layout();
    let (os, _) = out.storage_and_layout();
    let Some((xv, ov)) = cpu_f32_pair(&xs, &os)? else {
        return Ok(None);
    };
    let total = n * c * h * w;
    let (xo, oo) = (x.layout().start_offset(), out.layout().start_offset());
    let (xv, ov) = (&xv[xo..xo + total], &ov[oo..oo + total]);
    let plane = h * w;
    if pool == (1, 1) {
        // no pooling: the same operations element by element, without the window
        // bookkeeping (it was 5 % of the short-chunk ResNet's forward), into an output
        // that is not zero-filled first (the fill was 2 % of that forward)
        let mut y: Vec<f32> = Vec::with_capacity(total);
        y.spare_capacity_mut()[..total]
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, yo)| {
                let (xp, op) = (&xv[p * plane..][..plane], &ov[p * plane..][..plane]);
                match scale.as_ref().map(|s| s[p]) {
                    Some(s) => {
                        for ((y, x), o) in yo.iter_mut().zip(xp).zip(op) {
                            y.write((x + o * s).max(0.0));
                        }
                    }
                    None => {
                        for ((y, x), o) in yo.iter_mut().zip(xp).zip(op) {
                            y.write((x + o).max(0.0));
                        }
                    }
                }
            });
        // SAFETY: the planes partition the first `total` elements of the capacity and
        // each task wrote every element of its own plane.
        unsafe { y.set_len(total) };
        let shape = d.to_vec();
        return Ok(Some(Tensor::from_vec(y, shape, x.device())?));
    }
    // Pooled: each input row's used columns through `max(x + out·s, 0)` into a buffer
    // (a loop that vectorises), then the window maxima in window order (rows, then
    // columns), the first of equal values kept. No value is NaN after `max(·, 0)`
    // (`f32::max` returns the other operand), so these are the maxima the training path's
    // `window_argmax` picks, without its index bookkeeping (it was 10 % of ReSE-2's
    // batch-1 forward).
    let (ph, pw) = pool;
    let cols = ow * pw;
    let mut y = vec![0f32; n * c * oh * ow];
    y.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each_init(Vec::new, |z: &mut Vec<f32>, (p, yo)| {
            let s = scale.as_ref().map(|s| s[p]);
            let (xp, op) = (&xv[p * plane..][..plane], &ov[p * plane..][..plane]);
            for (r, yr) in yo.chunks_exact_mut(ow).enumerate() {
                for i in 0..ph {
                    let at = (r * ph + i) * w;
                    let (xr, or) = (&xp[at..at + cols], &op[at..at + cols]);
                    z.clear();
                    match s {
                        Some(s) => z.extend(xr.iter().zip(or).map(|(x, o)| (x + o * s).max(0.0))),
                        None => z.extend(xr.iter().zip(or).map(|(x, o)| (x + o).max(0.0))),
                    }
                    for (y, win) in yr.iter_mut().zip(z.chunks_exact(pw)) {
                        let mut best = if i == 0 { win[0] } else { *y };
                        for &v in &win[usize::from(i == 0)..] {
                            if v > best {
                                best = v;
                            }
                        }
                        *y = best;
                    }
                }
            }
        });
    let shape: Vec<usize> = if d.len() == 3 {
        vec![n, c, ow]
    } else {
        vec![n, c, oh, ow]
    };
    Ok(Some(Tensor::from_vec(y, shape, x.device())?))
}

/// The composed Candle ops in eval mode (other devices and dtypes, and the tests'
/// reference).
pub fn composed(x: &Tensor, conv: ConvSpec<'_>, epi: Epilogue<'_>) -> Result<Tensor> {
    composed_t(x, conv, epi, false)
}

/// The composed Candle ops; `train` selects batch statistics in the batch norm.
fn composed_t(x: &Tensor, conv: ConvSpec<'_>, epi: Epilogue<'_>, train: bool) -> Result<Tensor> {
    // training with a batch norm: the whole block as one op
    if train {
        if let Some(y) = crate::trainblock::conv_block_train(x, conv, epi)? {
            return Ok(y);
        }
    }
    // training: one convolution op with a tiled backward that keeps no im2col matrix
    let op = if train {
        crate::convop::conv(x, conv.weight, conv.stride, conv.padding)?
    } else {
        None
    };
    let mut y = if let Some(y) = op {
        match conv.bias {
            Some(b) => {
                let mut shape = vec![1; y.rank()];
                shape[1] = b.elem_count();
                y.broadcast_add(&b.reshape(shape)?)?
            }
            None => y,
        }
    } else if conv.weight.rank() == 3 {
        crate::conv::conv1d_gemm(x, conv.weight, conv.bias, conv.stride, conv.padding.1)?
    } else if conv.padding.0 == conv.padding.1 {
        crate::conv2d::conv2d_gemm(x, conv.weight, conv.bias, conv.stride, conv.padding.0)?
    } else {
        let xp = x
            .pad_with_zeros(2, conv.padding.0, conv.padding.0)?
            .pad_with_zeros(3, conv.padding.1, conv.padding.1)?;
        crate::conv2d::conv2d_gemm(&xp, conv.weight, conv.bias, conv.stride, 0)?
    };
    let mut act = epi.act;
    if let Some(bn) = epi.bn {
        y = if train {
            // one op with its own backward; takes the activation along
            let fused_act = act;
            act = Act::Identity;
            crate::batchnorm::batch_norm_train(&y, bn, fused_act)?
        } else {
            candle_core::ModuleT::forward_t(bn, &y, false)?
        };
    }
    match act {
        Act::Identity => {}
        Act::Relu => y = y.relu()?,
        Act::Elu(alpha) => y = y.elu(alpha)?,
    }
    if conv.weight.rank() == 3 {
        if epi.pool.1 > 1 {
            y = crate::pool::max_pool1d(&y, epi.pool.1, epi.pool.1, 0)?;
        }
    } else if epi.pool != (1, 1) {
        y = crate::pool::max_pool2d(&y, epi.pool, epi.pool, (0, 0))?;
    }
    Ok(y)
}

/// A tile of output positions: rows `r0..r1`, columns `c0..c1` (before pooling; whole
/// pooling windows).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tile {
    pub(crate) item: usize,
    pub(crate) r0: usize,
    pub(crate) r1: usize,
    pub(crate) c0: usize,
    pub(crate) c1: usize,
}

pub(crate) fn tiles(n: usize, g: &Geo) -> Vec<Tile> {
    tiles_with(n, g, TILE_FLOATS)
}

/// [`tiles`] with a budget of `tile_floats` per buffer.
pub(crate) fn tiles_with(n: usize, g: &Geo, tile_floats: usize) -> Vec<Tile> {
    let (rows, cols) = (g.poh * g.pool.0, g.pow * g.pool.1);
    let least = g.pool.0 * g.pool.1 * 16;
    let budget = tile_positions(g, tile_floats).max(least);
    let tiles = tile_grid(n, (rows, cols), g.pool, budget);
    if tiles.len() < 3 || tiles.len().is_multiple_of(2) {
        return tiles;
    }
    // an even number of tiles in all where it would be odd and over one (three tiles of
    // a batch-1 layer ran as two rounds on two threads, or split by rows with the input
    // packed twice: ReSE-2's 128 → 256 layer over 2187 positions 1.77 → 1.90 ms; the
    // short-chunk ResNet's second block made five): smaller tiles until the count is
    // even, the same tiles on any number of threads
    let per_item = tiles.len() / n;
    (per_item + 1..per_item + 5)
        .map(|t| {
            tile_grid(
                n,
                (rows, cols),
                g.pool,
                (rows * cols).div_ceil(t).max(least),
            )
        })
        .find(|v| v.len().is_multiple_of(2))
        .unwrap_or(tiles)
}

/// Output positions per tile of `g` for a budget of `tile_floats` per buffer: as many as
/// fit both the im2col tile (K × m) and the product (O × m; the tap products build no
/// im2col). [`tiles_with`] takes at least a few whole pooling windows even where fewer
/// fit; [`item_groups`] never exceeds it (FCN-4's last layer, 32 positions per item
/// over 6912 kernel rows, would otherwise stack 16 items in a 14 MB tile).
fn tile_positions(g: &Geo, tile_floats: usize) -> usize {
    let per_col = if by_taps(g) { g.o } else { g.k().max(g.o) }.max(1);
    tile_floats / per_col
}

/// Whole-plane tiles of consecutive items taken together: `(tile of the first item,
/// items)`. Where an item's outputs are fewer than half of `positions` (a batch's late
/// layers: the short-chunk ResNet's 4 × 4, 2 × 2 and 1 × 1 planes), the items' planes
/// are computed side by side as one product of up to `positions` columns, so that the
/// kernel is read once per group instead of once per item (its last block read 19 MB of
/// kernels per item: 13.7 ms at batch 16 on one thread, PyTorch 3.3 ms). The groups are
/// as even as the count allows, and an even number where over one; they depend on the
/// batch and the geometry only, never on the number of threads. `None` for one item or
/// larger planes (then [`tiles`]).
fn item_groups(n: usize, g: &Geo, positions: usize) -> Option<Vec<(Tile, usize)>> {
    let (rows, cols) = (g.poh * g.pool.0, g.pow * g.pool.1);
    let m = rows * cols;
    if n < 2 || m == 0 || 2 * m > positions {
        return None;
    }
    let t = Tile {
        item: 0,
        r0: 0,
        r1: rows,
        c0: 0,
        c1: cols,
    };
    let mut groups = n.div_ceil(positions / m);
    if groups > 1 && !groups.is_multiple_of(2) {
        groups += 1;
    }
    let per = n.div_ceil(groups.min(n));
    Some(
        (0..n)
            .step_by(per)
            .map(|item| (Tile { item, ..t }, per.min(n - item)))
            .collect(),
    )
}

/// The im2col of `items` consecutive items' tiles `t` side by side in one matrix of
/// `items · m` columns (item `j` in columns `j·m..(j + 1)·m` of every row), for the
/// input channels `c0..c0 + g.c` of inputs `plane` floats apart in `x`.
fn im2col_items(
    x: &[f32],
    plane: usize,
    c0: usize,
    g: &Geo,
    (t, items): (Tile, usize),
    cols: &mut [f32],
) {
    let m = (t.r1 - t.r0) * (t.c1 - t.c0);
    let hw = g.h * g.w;
    for j in 0..items {
        let xj = &x[(t.item + j) * plane + c0 * hw..][..g.c * hw];
        im2col_tile_ld(xj, g, &t, &mut cols[j * m..], items * m);
    }
}

/// Tiles of about `positions` output positions over `n` items of `rows × cols` outputs,
/// each tile's rows and columns whole multiples of `units` (the last row or column of
/// tiles may end short where `rows`/`cols` are not multiples).
pub(crate) fn tile_grid(
    n: usize,
    (rows, cols): (usize, usize),
    (ur, uc): (usize, usize),
    positions: usize,
) -> Vec<Tile> {
    // columns per tile, for a band of one unit's rows; the columns are split evenly (no
    // thin remainder tile: a narrow product runs the matrix kernel's slow edge cases)
    let tw = if cols * ur <= positions {
        cols
    } else {
        let most = ((positions / ur / uc).max(1) * uc).min(cols);
        let units = cols.div_ceil(uc);
        let pieces = cols.div_ceil(most);
        (units.div_ceil(pieces) * uc).clamp(uc.min(cols), cols)
    };
    // rows per tile: whole units, filling the rest of the budget
    let tr = if tw == cols {
        ((positions / cols.max(1) / ur).max(1) * ur).min(rows)
    } else {
        ur.min(rows)
    };
    let mut v = Vec::new();
    for item in 0..n {
        for r0 in (0..rows).step_by(tr) {
            for c0 in (0..cols).step_by(tw) {
                v.push(Tile {
                    item,
                    r0,
                    r1: (r0 + tr).min(rows),
                    c0,
                    c1: (c0 + tw).min(cols),
                });
            }
        }
    }
    v
}

/// Shareable pointer to the output (tasks write disjoint parts).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each task writes a disjoint set of output positions (its own tile's pooled
// rows/columns of every channel), and the buffer outlives the parallel loop.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Which of Winograd's paths [`run`] takes for a call, if any (never in
/// [`Winograd::Off`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WinoPath {
    /// Stride-1 3×3 convolutions by F(4×4, 3×3) or F(2×2, 3×3) ([`crate::winograd`]).
    TwoD(crate::winograd::Which),
    /// Stride-1 1-D convolutions of kernel 3 by F(4, 3) or F(2, 3) ([`crate::wino1d`]).
    OneD(crate::winograd::Which),
}

impl WinoPath {
    /// The path for `n` items of geometry `g`: the mode's algorithm where the geometry,
    /// the positions per call and per item allow (each module's `applies`, `worth_it`,
    /// `fit`).
    pub(crate) fn of(n: usize, g: &Geo) -> Option<Self> {
        let mode = winograd_algo()?;
        if crate::winograd::applies(g) && crate::winograd::worth_it(n, g) {
            return crate::winograd::fit(mode, g).map(WinoPath::TwoD);
        }
        if crate::wino1d::applies(g) && crate::wino1d::worth_it(n, g) {
            return crate::wino1d::fit(g).map(WinoPath::OneD);
        }
        None
    }

    /// The transformed kernel of `(o, c, …)` `kernel`, as the path's tiles read it.
    fn transform_kernel(self, kernel: &[f32], o: usize, c: usize) -> Vec<f32> {
        match self {
            WinoPath::TwoD(which) => crate::winograd::transform_kernel(kernel, o, c, which),
            WinoPath::OneD(which) => crate::wino1d::transform_kernel(kernel, o, c, which),
        }
    }

    /// The path's tiles of whole blocks for `n` items of `g`.
    fn tiles(self, n: usize, g: &Geo) -> Vec<Tile> {
        match self {
            WinoPath::TwoD(which) => crate::winograd::tiles(n, g, TILE_FLOATS, which),
            WinoPath::OneD(which) => crate::wino1d::tiles(n, g, TILE_FLOATS, which),
        }
    }
}

pub(crate) fn run(x: &[f32], kernel: &[f32], n: usize, g: &Geo, steps: &Steps) -> Vec<f32> {
    run_split(x, n, g, &[(kernel, steps, g.o)])
        .pop()
        .expect("one part")
}

/// [`run`] for several kernels of one geometry over the same input (`g.o` is the largest
/// part's channels): part `i` is `(kernel (o_i, K), steps, o_i)` and gets its own output
/// `(n, o_i, …)`. Each tile's im2col is computed once for all parts; each part's product
/// and steps are those [`run`] computes for it alone (same tiles, same matrix sizes), so
/// the same bits as separate runs.
pub(crate) fn run_split(
    x: &[f32],
    n: usize,
    g: &Geo,
    parts: &[(&[f32], &Steps, usize)],
) -> Vec<Vec<f32>> {
    let plane_out = g.poh * g.pow;
    assert_eq!(
        parts.iter().map(|p| p.2).max(),
        Some(g.o),
        "g.o is the widest part"
    );
    // the outputs are not zero-filled: the tiles partition every part's pooled positions
    // and each task writes all of its own (the lengths are set after the loop)
    let mut outs: Vec<Vec<f32>> = parts
        .iter()
        .map(|&(_, _, o)| Vec::with_capacity(n * o * plane_out))
        .collect();
    // (output, first channel of the part in the product, channels of the part, steps)
    let mut first = 0;
    let targets: Vec<(OutPtr, usize, usize, &Steps)> = outs
        .iter_mut()
        .zip(parts)
        .map(|(out, &(_, steps, o))| {
            first += o;
            (OutPtr(out.as_mut_ptr()), first - o, o, steps)
        })
        .collect();
    let total_o = first;
    let part_of = |o: usize| {
        let &(ptr, f, oc, steps) = targets.iter().find(|t| o < t.1 + t.2).expect("o < g.o");
        (ptr, o - f, oc, steps)
    };
    let k = g.k();
    // Winograd's paths ([`WinoPath`]): the kernels' transforms once per call, tiles of
    // whole blocks
    let path = WinoPath::of(n, g);
    let wino: Option<Vec<Vec<f32>>> = path.map(|path| {
        parts
            .iter()
            .map(|&(kernel, _, o)| path.transform_kernel(&kernel[..o * k], o, g.c))
            .collect()
    });
    // (transformed kernel, channels) of each part, built once rather than per tile
    let wino_parts: Option<Vec<(&[f32], usize)>> = wino
        .as_ref()
        .map(|us| us.iter().zip(parts).map(|(u, p)| (&u[..], p.2)).collect());
    let tiles = match path {
        Some(path) => path.tiles(n, g),
        None => tiles(n, g),
    };
    let pool = rayon::current_num_threads();
    // Products with the epilogue applied: row `o` of the tile `t`'s product (all parts'
    // channels in order) through the part's steps and pooling into its output.
    let write_row = |t: &Tile, o: usize, row: &mut [f32], best: &mut Vec<f32>| {
        let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
        let (p0, p1) = g.pool;
        let (pr0, pc0) = (t.r0 / p0, t.c0 / p1);
        let (ptr_rows, ptr_cols) = (tr / p0, tw / p1);
        let (ptr, o, oc, steps) = part_of(o);
        let act_last = (p0, p1) != (1, 1) && steps.act_after_pool();
        steps.apply_with(o, row, if act_last { Act::Identity } else { steps.act });
        let base = (t.item * oc + o) * plane_out;
        if (p0, p1) == (1, 1) {
            // no pooling: each tile row is a run of output columns
            for r in 0..tr {
                let at = base + (t.r0 + r) * g.pow + t.c0;
                // SAFETY: `at + tw` ≤ n·o·plane_out (this part's output), and no other
                // task writes these positions (tiles partition each item's outputs, and
                // a tile's rows of products are split between tasks by channel).
                unsafe { std::ptr::copy_nonoverlapping(row[r * tw..].as_ptr(), ptr.at(at), tw) };
            }
            return;
        }
        if p1 == 1 {
            // pooling over rows only (Musicnn's vertical filters pool a whole column): an
            // element-wise running maximum of whole rows, which vectorises, then one run
            // of output columns per pooled row
            for pr in 0..ptr_rows {
                best.clear();
                best.extend_from_slice(&row[pr * p0 * tw..][..tw]);
                for i in 1..p0 {
                    let r = &row[(pr * p0 + i) * tw..][..tw];
                    for (b, &v) in best.iter_mut().zip(r) {
                        if v > *b || v.is_nan() {
                            *b = v;
                        }
                    }
                }
                if act_last {
                    activate(steps.act, best);
                }
                let at = base + (pr0 + pr) * g.pow + pc0;
                // SAFETY: as above — `at + tw` stays inside this item and channel's
                // pooled plane, written by this task only.
                unsafe { std::ptr::copy_nonoverlapping(best.as_ptr(), ptr.at(at), tw) };
            }
            return;
        }
        for pr in 0..ptr_rows {
            for pc in 0..ptr_cols {
                let mut best = row[(pr * p0) * tw + pc * p1];
                for i in 0..p0 {
                    let r = &row[(pr * p0 + i) * tw + pc * p1..][..p1];
                    for &v in r {
                        if v > best || v.is_nan() {
                            best = v;
                        }
                    }
                }
                if act_last {
                    best = steps.act.apply(best);
                }
                let at = base + (pr0 + pr) * g.pow + pc0 + pc;
                // SAFETY: `at` < n·o·plane_out (this part's output), and no other task
                // writes it (tiles partition the pooled positions of each item).
                unsafe { *ptr.at(at) = best };
            }
        }
    };
    // a row of a group of items' tiles ([`item_groups`]): each item's `mt` columns alone
    let write_items = |t: Tile, o: usize, row: &mut [f32], mt: usize, best: &mut Vec<f32>| {
        for (j, seg) in row.chunks_exact_mut(mt).enumerate() {
            write_row(
                &Tile {
                    item: t.item + j,
                    ..t
                },
                o,
                seg,
                best,
            );
        }
    };
    // im2col products: small planes of several items side by side ([`item_groups`])
    let im2col = wino_parts.is_none() && !by_taps(g);
    let alone = |tiles: &[Tile]| tiles.iter().map(|&t| (t, 1)).collect::<Vec<_>>();
    let groups = im2col
        .then(|| item_groups(n, g, tile_positions(g, TILE_FLOATS)))
        .flatten()
        .unwrap_or_else(|| alone(&tiles));
    // few tiles for the threads (a small batch's late layers): the tiles one after the
    // other, each tile's products in blocks of kernel rows across the threads (the
    // `gemm` crate's own threading is slower than one thread on these shapes)
    let by_rows = (im2col && pool > 1 && groups.len() < 2 * pool)
        .then(|| {
            // larger tiles, so that the kernel is packed fewer times, where the product's
            // method does not depend on the tile's width (every part over 64 rows:
            // [`row_blocks`])
            if parts.iter().all(|p| p.2 > 64) {
                let positions = 4 * TILE_FLOATS / k.max(1);
                let least = g.pool.0 * g.pool.1 * 16;
                let (rows, cols) = (g.poh * g.pool.0, g.pow * g.pool.1);
                item_groups(n, g, positions).unwrap_or_else(|| {
                    alone(&tile_grid(n, (rows, cols), g.pool, positions.max(least)))
                })
            } else {
                groups.clone()
            }
        })
        .filter(|tl| {
            // enough blocks to share among the threads
            let m = tl
                .first()
                .map_or(0, |&(t, items)| items * (t.r1 - t.r0) * (t.c1 - t.c0));
            parts
                .iter()
                .map(|p| row_blocks(p.2, m).count())
                .sum::<usize>()
                >= pool
        });
    // the same for the tap products of 1-D layers (ReSE-2's and SampleCNN's late
    // layers at batch 1: one tile of 243 positions or fewer took the `gemm` crate's own
    // threading, three of 243 ran two rounds on two threads)
    let taps_by_rows = wino_parts.is_none()
        && by_taps(g)
        && pool > 1
        && tiles.len() < 2 * pool
        && tiles.first().is_some_and(|t| {
            let m = (t.r1 - t.r0) * (t.c1 - t.c0);
            parts
                .iter()
                .map(|p| tap_row_blocks(p.2, m, g).len())
                .sum::<usize>()
                >= pool
        });
    if taps_by_rows {
        for t in &tiles {
            let m = t.c1 - t.c0;
            let xi = &x[t.item * g.c * g.w..][..g.c * g.w];
            let blocks: Vec<(usize, usize, usize)> = parts
                .iter()
                .enumerate()
                .flat_map(|(pi, &(_, _, o))| {
                    tap_row_blocks(o, m, g)
                        .into_iter()
                        .map(move |(r0, r1)| (pi, r0, r1))
                })
                .collect();
            blocks.par_iter().for_each(|&(pi, r0, r1)| {
                with_buffers(|TileBuffers { prod, best, .. }| {
                    // the tap products accumulate: from zero
                    prod.clear();
                    prod.resize((r1 - r0) * m, 0f32);
                    tap_products(xi, g, t, &parts[pi].0[r0 * k..r1 * k], r1 - r0, prod, 1);
                    let first = targets[pi].1;
                    for (r, row) in prod.chunks_exact_mut(m).enumerate() {
                        write_row(t, first + r0 + r, row, best);
                    }
                })
            });
        }
    } else if let Some(tiles) = by_rows {
        // Row blocks of more than 64 rows keep the crate's method and blocking of the
        // whole product, so each output has the same sum as on one thread
        let mut cols = Vec::new();
        let plane_in = g.c * g.h * g.w;
        let per_c = g.c.div_ceil(2 * pool);
        for &(t, items) in &tiles {
            let mt = (t.r1 - t.r0) * (t.c1 - t.c0);
            let m = items * mt;
            let blocks: Vec<(usize, usize, usize)> = parts
                .iter()
                .enumerate()
                .flat_map(|(pi, &(_, _, o))| row_blocks(o, m).map(move |(r0, r1)| (pi, r0, r1)))
                .collect();
            // every element written; the im2col by groups of input channels (each its own
            // rows of `cols`)
            cols.resize(k * m, 0f32);
            cols.par_chunks_mut(per_c * g.kh * g.kw * m)
                .enumerate()
                .for_each(|(i, part)| {
                    let gc = Geo {
                        c: part.len() / (g.kh * g.kw * m),
                        ..*g
                    };
                    im2col_items(x, plane_in, i * per_c, &gc, (t, items), part);
                });
            let b = crate::kernels::MatRef::row_major(&cols, k, m).expect("tile");
            blocks.par_iter().for_each(|&(pi, r0, r1)| {
                with_buffers(|TileBuffers { prod, best, .. }| {
                    let a =
                        crate::kernels::MatRef::row_major(&parts[pi].0[r0 * k..r1 * k], r1 - r0, k)
                            .expect("kernel rows");
                    prod.resize((r1 - r0) * m, 0f32); // overwritten by the product
                    crate::kernels::gemm_into(a, b, prod, false);
                    let first = targets[pi].1;
                    for (r, row) in prod.chunks_exact_mut(m).enumerate() {
                        write_items(t, first + r0 + r, row, mt, best);
                    }
                })
            });
        }
    } else {
        // the tiles in parallel; with fewer tiles than threads (Winograd's or the tap
        // products, or too few row blocks above) the products use the idle threads
        // instead (same bits: the `gemm` crate splits over output blocks)
        let gemm_threads = if groups.len() < pool {
            pool / groups.len().max(1)
        } else {
            1
        };
        for_each_init(
            groups,
            || (),
            |_, (t, items)| {
                with_buffers(
                    |TileBuffers {
                         cols,
                         prod,
                         best,
                         wino: scratch,
                         wino1d,
                     }| {
                        let mt = (t.r1 - t.r0) * (t.c1 - t.c0);
                        let m = items * mt;
                        let plane_in = g.c * g.h * g.w;
                        let xi = &x[t.item * plane_in..][..plane_in];
                        if let (Some(path), Some(us)) = (path, &wino_parts) {
                            // every element written
                            prod.resize(total_o * m, 0f32);
                            match path {
                                WinoPath::TwoD(which) => crate::winograd::tile_product(
                                    xi,
                                    g,
                                    &t,
                                    us,
                                    scratch,
                                    prod,
                                    gemm_threads,
                                    which,
                                ),
                                WinoPath::OneD(which) => crate::wino1d::tile_product(
                                    xi,
                                    g,
                                    &t,
                                    us,
                                    wino1d,
                                    prod,
                                    gemm_threads,
                                    which,
                                ),
                            }
                        } else if by_taps(g) {
                            // the tap products accumulate: from zero
                            prod.clear();
                            prod.resize(total_o * m, 0f32);
                            let mut rest: &mut [f32] = prod;
                            for &(kernel, _, o) in parts {
                                let (part, tail) = rest.split_at_mut(o * m);
                                tap_products(xi, g, &t, kernel, o, part, gemm_threads);
                                rest = tail;
                            }
                        } else {
                            // the im2col and the products (not accumulating) write every element:
                            // no clearing
                            cols.resize(k * m, 0f32);
                            prod.resize(total_o * m, 0f32);
                            im2col_items(x, plane_in, 0, g, (t, items), cols);
                            let b = crate::kernels::MatRef::row_major(cols, k, m).expect("tile");
                            let mut rest: &mut [f32] = prod;
                            for &(kernel, _, o) in parts {
                                let (part, tail) = rest.split_at_mut(o * m);
                                products_into(kernel, o, b, part, gemm_threads);
                                rest = tail;
                            }
                        }
                        for (o, row) in prod.chunks_exact_mut(m).enumerate() {
                            write_items(t, o, row, mt, best);
                        }
                    },
                )
            },
        );
    }
    for (out, &(_, _, o)) in outs.iter_mut().zip(parts) {
        // SAFETY: every one of the n·o·plane_out elements was written by exactly one tile
        // task above (the tiles partition each item's pooled positions; every task
        // writes all of its positions for every channel of every part), and the
        // capacity was reserved.
        unsafe { out.set_len(n * o * plane_out) };
    }
    outs
}

/// Blocks of kernel rows for a product of `o` rows and `m` columns split by channel:
/// `⌊o / 128⌋` blocks (at least one) of whole multiples of 16 rows, one block when
/// `m` is 2 or 3, and blocks of 256 rows for one column. The `gemm` crate picks its
/// method by shape — "horizontal" kernels up to 256 outputs, a matrix-vector product
/// for one column beyond that, a fixed inner block up to 64 × 64, the cache-sized
/// blocking otherwise — and the blocks of two or more columns (over 64 rows, over 256
/// outputs) stay in the whole product's regime, so that each output has the same sum,
/// in the same order, as in one product. One column is the exception: its matrix–vector
/// product cannot be split into blocks over 256 outputs both ways, so every product of
/// one column is computed in blocks of 256 rows (horizontal kernels) on any number of
/// threads ([`products_into`]) — the short-chunk ResNet's last block (1 × 1 outputs,
/// 512 channels, 19 MB of kernels read per call) ran on one thread of two.
fn row_blocks(o: usize, m: usize) -> impl Iterator<Item = (usize, usize)> {
    let per = match m {
        1 => 256,
        2 | 3 => o.max(1),
        _ => o.div_ceil((o / 128).max(1)).next_multiple_of(16),
    };
    (0..o).step_by(per).map(move |r0| (r0, (r0 + per).min(o)))
}

/// `prod = a · b` for a row-major kernel `a` `(o, K)` and a tile `b` `(K, m)`, split
/// over `threads` as [`crate::kernels::gemm_into_on`] — except one column (`m = 1`), computed in the
/// blocks of 256 rows of [`row_blocks`] whatever `threads` (in parallel when over one),
/// so that the row-split paths give the same bits.
fn products_into(
    kernel: &[f32],
    o: usize,
    b: crate::kernels::MatRef<'_>,
    prod: &mut [f32],
    threads: usize,
) {
    let k = b.rows();
    let a = crate::kernels::MatRef::row_major(&kernel[..o * k], o, k).expect("kernel (O, K)");
    if b.cols() != 1 || o <= 256 {
        crate::kernels::gemm_into_on(a, b, prod, false, threads);
        return;
    }
    let run = |(r0, part): (usize, &mut [f32])| {
        let rows = part.len();
        let a = crate::kernels::MatRef::row_major(&kernel[r0 * k..][..rows * k], rows, k)
            .expect("kernel rows");
        crate::kernels::gemm_into(a, b, part, false);
    };
    if threads > 1 {
        prod.par_chunks_mut(256)
            .enumerate()
            .for_each(|(i, p)| run((i * 256, p)));
    } else {
        prod.chunks_mut(256)
            .enumerate()
            .for_each(|(i, p)| run((i * 256, p)));
    }
}

/// [`row_blocks`] for the tap products of a 1-D tile of `m` columns ([`tap_products`]):
/// with more than one tap, blocks of kernel rows whatever `m`. The `gemm` crate's
/// matrix–vector and "horizontal" methods need unit strides the tap's kernel view does
/// not have (its columns are `kw` apart), so every block takes the general method with
/// the blocking of more than 64 rows, as the whole product does — the reason
/// [`row_blocks`] keeps one block under 4 columns does not arise (ReSE-2's last block,
/// 3 columns: 0.46 → 0.19 ms for its 512 → 512 layer on two threads; tested). A 1×1
/// kernel's view has unit strides, so under 4 columns it stays one block (the tiles'
/// own path computes it whole).
fn tap_row_blocks(o: usize, m: usize, g: &Geo) -> Vec<(usize, usize)> {
    if g.kw == 1 && m < 4 {
        vec![(0, o)]
    } else {
        row_blocks(o, m.max(4)).collect()
    }
}

/// The reusable buffers of one tile task ([`with_buffers`]).
#[derive(Default)]
pub(crate) struct TileBuffers {
    /// The im2col tile.
    pub(crate) cols: Vec<f32>,
    /// The products (all parts); the backward's `Wᵀ · dY` tile.
    pub(crate) prod: Vec<f32>,
    /// One pooled row; the backward's output-gradient tile.
    pub(crate) best: Vec<f32>,
    /// Winograd's transformed input and products.
    wino: crate::winograd::Scratch,
    /// [`crate::wino1d`]'s buffers.
    wino1d: crate::wino1d::Scratch,
}

thread_local! {
    /// Each worker thread's tile buffers, kept between calls: allocating and
    /// zero-filling a few MiB of fresh buffers per call and worker was 7 % of a batch-1
    /// forward of the short-chunk ResNet.
    static TILE_BUFFERS: std::cell::Cell<Option<Box<TileBuffers>>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` with this thread's [`TileBuffers`]. They are taken out for the call and put
/// back after it, so a task that starts inside another on the same thread (a product
/// split over threads waits by running other tasks) gets fresh buffers instead of
/// sharing them.
pub(crate) fn with_buffers<R>(f: impl FnOnce(&mut TileBuffers) -> R) -> R {
    let mut b = TILE_BUFFERS.with(|c| c.take()).unwrap_or_default();
    let r = f(&mut b);
    TILE_BUFFERS.with(|c| c.set(Some(b)));
    r
}

/// Channels from which a 1-D convolution runs as one product per kernel tap instead of
/// through an im2col copy: each tap's `(O, C)` slice of the kernel times a strided view
/// of the input, `K = C` per product (below this the products are too thin).
const TAP_MIN_CHANNELS: usize = 32;

/// `items.into_par_iter().for_each_init(init, f)`, except that a one-thread pool runs the
/// items here, on the calling thread: handing each call to the pool's only worker and
/// waiting for it costs two thread switches (~7 % of the 1-D CNN's forward at one thread,
/// where PyTorch's OpenMP runs inline). Every item is computed the same way either way.
pub(crate) fn for_each_init<T, S, I, F>(items: Vec<T>, init: I, f: F)
where
    T: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, T) + Sync + Send,
{
    if rayon::current_num_threads() == 1 {
        let mut state = init();
        for t in items {
            f(&mut state, t);
        }
    } else {
        items.into_par_iter().for_each_init(init, f);
    }
}

/// Whether [`tap_products`] does this geometry's convolution (1-D, enough channels).
pub(crate) fn by_taps(g: &Geo) -> bool {
    g.h == 1 && g.kh == 1 && g.c >= TAP_MIN_CHANNELS
}

/// Output columns `q` in the tile's `c0..c1` whose input column `q·s + j − pw` lies
/// inside the input, for kernel column `j`: `lo..hi` (empty when `lo ≥ hi`).
pub(crate) fn valid_cols(g: &Geo, t: &Tile, j: usize) -> (usize, usize) {
    let s = g.stride;
    let lo = g.pw.saturating_sub(j).div_ceil(s);
    let hi = if g.w + g.pw > j {
        (g.w + g.pw - j).div_ceil(s)
    } else {
        0
    };
    (lo.clamp(t.c0, t.c1), hi.clamp(t.c0, t.c1))
}

/// Narrowest tile the direct valid convolution takes: below a vector of 8 columns it
/// runs one column at a time (ReSE-2's last 1×1 shortcut, 256 → 512 channels over 3
/// columns, took 0.53 ms that way and 0.06 ms as a tap product).
const DIRECT_MIN_COLS: usize = 8;

/// A 1-D tile's convolution without im2col ([`by_taps`] geometries): for each kernel
/// tap `j`, `prod[:, q] += W[:, :, j] · x[:, q·s + j − pw]` over the tile's valid columns,
/// the input read in place as a `(C, columns)` view with column stride `s`. `kernel` is
/// `(o, C·KW)` row-major; `prod` `(o, tile columns)` starts zeroed. The same sums as the
/// im2col product, grouped by tap. Valid stride-1 convolutions (no padding: every tap
/// reads inside the input) go to [`crate::kernels::conv1d_valid_into`] instead, a direct
/// kernel that skips the products' packing, where the CPU has AVX2/FMA and the tile has
/// at least [`DIRECT_MIN_COLS`] columns.
pub(crate) fn tap_products(
    xi: &[f32],
    g: &Geo,
    t: &Tile,
    kernel: &[f32],
    o: usize,
    prod: &mut [f32],
    threads: usize,
) {
    use crate::kernels::{conv1d_valid_into, gemm_into_strided, MatRef};
    let (k, s, m) = (g.k(), g.stride, t.c1 - t.c0);
    if s == 1
        && g.pw == 0
        && m >= DIRECT_MIN_COLS
        && conv1d_valid_into(
            xi,
            (g.c, g.w),
            &kernel[..o * k],
            g.kw,
            t.c0,
            m,
            prod,
            threads,
        )
    {
        return;
    }
    for j in 0..g.kw {
        let (lo, hi) = valid_cols(g, t, j);
        if lo >= hi {
            continue;
        }
        let a = MatRef::new(&kernel[j..], o, g.c, k, g.kw).expect("kernel tap (O, C)");
        let b = MatRef::new(&xi[lo * s + j - g.pw..], g.c, hi - lo, g.w, s).expect("input view");
        gemm_into_strided(a, b, &mut prod[lo - t.c0..], (m, 1), true, threads);
    }
}

/// `dst[i] = src[2i]`: the even elements, by pairs so that the copy vectorises (a
/// `step_by(2)` iterator does not); `src` holds at least `2·dst.len() − 1` values.
fn gather_even(dst: &mut [f32], src: &[f32]) {
    let pairs = dst.len().min(src.len() / 2);
    for (d, p) in dst[..pairs].iter_mut().zip(src.chunks_exact(2)) {
        *d = p[0];
    }
    for (i, d) in dst.iter_mut().enumerate().skip(pairs) {
        *d = src[2 * i];
    }
}

/// The im2col rows of one tile, rows `ld` apart (`ld` ≥ the tile's positions `m`): row
/// `(c, i, j)` is `cols[(c·KH·KW + i·KW + j)·ld..][..m]`, its column `(r, q)` the input
/// at `(c, r·s + i − ph, q·s + j − pw)` (zero outside), for the tile's output rows and
/// columns. Every element of those runs is written (the zeros too), so a reused buffer
/// needs no clearing first; the rest of each row is left alone (several items' tiles
/// side by side in one matrix: [`im2col_items`]).
pub(crate) fn im2col_tile_ld(x: &[f32], g: &Geo, t: &Tile, cols: &mut [f32], ld: usize) {
    let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
    let m = tr * tw;
    debug_assert!(ld >= m);
    if tw < PADDED_BELOW {
        im2col_padded(x, g, t, cols, ld);
    } else {
        im2col_rows(x, g, t, cols, ld);
    }
}

/// [`im2col_tile_ld`] for wide tiles: each row's valid run copied from the input, the
/// padding zeroed around it.
fn im2col_rows(x: &[f32], g: &Geo, t: &Tile, cols: &mut [f32], ld: usize) {
    let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
    let m = tr * tw;
    let s = g.stride;
    let valid = |j: usize| valid_cols(g, t, j);
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[((c * g.kh + i) * g.kw + j) * ld..][..m];
                let (lo, hi) = valid(j);
                for r in 0..tr {
                    let iy = ((t.r0 + r) * s + i) as isize - g.ph as isize;
                    let out = &mut row[r * tw..(r + 1) * tw];
                    if iy < 0 || iy as usize >= g.h || lo >= hi {
                        out.fill(0.0); // the window lies in the padding
                        continue;
                    }
                    out[..lo - t.c0].fill(0.0);
                    out[hi - t.c0..].fill(0.0);
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let dst = &mut out[lo - t.c0..hi - t.c0];
                    let x0 = lo * s + j - g.pw;
                    match s {
                        1 => dst.copy_from_slice(&src[x0..x0 + dst.len()]),
                        2 => gather_even(dst, &src[x0..]),
                        _ => {
                            for (d, v) in dst.iter_mut().zip(src[x0..].iter().step_by(s)) {
                                *d = *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Tile widths below which [`im2col_tile_ld`] reads each input channel through a padded
/// copy ([`im2col_padded`]): a row of 8 outputs cost three calls to the C library (zero
/// the left padding, copy, zero the right) — 14 % of the short-chunk ResNet's 8 × 8
/// block at batch 16.
const PADDED_BELOW: usize = 32;

/// [`im2col_tile_ld`] for narrow tiles: each input channel's part that the tile reads
/// is first copied with its padding as zeros into a small buffer, so that every im2col
/// row is a plain run (stride 1) or every other element (stride 2) of it, copied inline.
/// The same values as the general path.
fn im2col_padded(x: &[f32], g: &Geo, t: &Tile, cols: &mut [f32], ld: usize) {
    let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
    let m = tr * tw;
    let s = g.stride;
    // the buffer: the padded input's rows y0..y0 + bh and columns x0..x0 + bw, those
    // the tile reads
    let (y0, x0) = (t.r0 * s, t.c0 * s);
    let (bh, bw) = ((tr - 1) * s + g.kh, (tw - 1) * s + g.kw);
    // input columns inside a buffer row: buffer columns lo..hi, from input column
    // x0 + lo − g.pw (zeros left of them for the left padding, right for the right)
    let lo = g.pw.saturating_sub(x0).min(bw);
    let hi = (g.w + g.pw).saturating_sub(x0).clamp(lo, bw);
    let mut p = vec![0f32; bh * bw];
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..][..g.h * g.w];
        for (py, prow) in p.chunks_exact_mut(bw).enumerate() {
            let iy = (y0 + py).checked_sub(g.ph).filter(|&iy| iy < g.h);
            match iy {
                Some(iy) if lo < hi => {
                    let ix = x0 + lo - g.pw;
                    crate::winograd::copy_run(
                        &mut prow[lo..hi],
                        &plane[iy * g.w + ix..][..hi - lo],
                    );
                }
                // the row lies in the padding: zeros already (rows of zeros stay so)
                _ => {}
            }
        }
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[((c * g.kh + i) * g.kw + j) * ld..][..m];
                for (r, out) in row.chunks_exact_mut(tw).enumerate() {
                    let src = &p[(r * s + i) * bw + j..];
                    match s {
                        1 => crate::winograd::copy_run(out, &src[..tw]),
                        2 => gather_even(out, src),
                        _ => {
                            for (d, v) in out.iter_mut().zip(src.iter().step_by(s)) {
                                *d = *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    use crate::conv::uniform_in as uniform;

    /// A batch norm with random running statistics and affine parameters (negative
    /// scales included, so ReLU and pooling see sign changes).
    fn random_bn(rng: &mut mirkit_core::Rng, o: usize) -> BatchNorm {
        BatchNorm::new(
            o,
            uniform(rng, &[o], -0.5, 0.5),
            uniform(rng, &[o], 0.2, 2.0),
            uniform(rng, &[o], -1.5, 1.5),
            uniform(rng, &[o], -0.5, 0.5),
            1e-5,
        )
        .unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0f32, f32::max)
    }

    /// 1-D blocks (SampleCNN's strided first layer and pooled layers, the 1-D CNN's
    /// pool 4, odd lengths with a remainder, batch 1 and 3) equal the composed ops.
    /// The narrow tiles' im2col through a padded copy equals the general path's, for
    /// strides 1–3, paddings 0–2, kernels 1–5 and tiles at every edge.
    #[test]
    fn padded_im2col_equals_the_rows_path() {
        let mut rng = mirkit_core::Rng::new(5);
        for &(c, h, w, kh, kw, s, ph, pw) in &[
            (
                3usize, 16usize, 16usize, 3usize, 3usize, 1usize, 1usize, 1usize,
            ),
            (2, 16, 16, 3, 3, 2, 1, 1),
            (2, 9, 7, 3, 3, 2, 1, 1),
            (2, 2, 2, 3, 3, 2, 1, 1),
            (1, 1, 1, 3, 3, 1, 1, 1),
            (2, 11, 13, 5, 4, 3, 2, 0),
            (2, 6, 10, 1, 1, 1, 0, 0),
            (1, 7, 30, 2, 5, 1, 0, 2),
        ] {
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.normal() as f32).collect();
            let (oh, ow) = ((h + 2 * ph - kh) / s + 1, (w + 2 * pw - kw) / s + 1);
            let g = Geo {
                c,
                h,
                w,
                o: 1,
                kh,
                kw,
                stride: s,
                ph,
                pw,
                poh: oh,
                pow: ow,
                pool: (1, 1),
            };
            for t in tile_grid(1, (oh, ow), (1, 1), 5)
                .into_iter()
                .chain(tile_grid(1, (oh, ow), (1, 1), oh * ow))
            {
                let m = (t.r1 - t.r0) * (t.c1 - t.c0);
                let ld = m + 3;
                let k = c * kh * kw;
                let (mut a, mut b) = (vec![7f32; k * ld], vec![7f32; k * ld]);
                im2col_padded(&x, &g, &t, &mut a, ld);
                im2col_rows(&x, &g, &t, &mut b, ld);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&a),
                    bits(&b),
                    "{:?} {t:?}",
                    (c, h, w, kh, kw, s, ph, pw)
                );
            }
        }
    }

    #[test]
    fn one_d_equals_composed() {
        let mut rng = mirkit_core::Rng::new(11);
        // (c, o, k, l, stride, pad, pool, bias, bn, activation)
        let cases = [
            (1, 8, 3, 243, 3, 0, 1, true, true, Act::Relu),
            (8, 8, 3, 81, 1, 1, 3, true, true, Act::Relu),
            (5, 7, 3, 100, 1, 1, 3, false, true, Act::Identity),
            (4, 6, 8, 95, 1, 0, 4, true, false, Act::Relu),
            (6, 5, 1, 40, 1, 0, 1, true, true, Act::Elu(1.0)),
            (3, 4, 7, 50, 2, 3, 2, true, true, Act::Elu(0.5)),
            // long enough for several tiles per item
            (64, 32, 3, 9000, 1, 1, 3, true, true, Act::Relu),
            // tap products (≥ 32 channels): stride, padding, the 1-D CNN's pool 4
            (48, 6, 5, 97, 2, 2, 2, true, true, Act::Relu),
            // F(2, 3) (crate::wino1d; the case of 9000 above too): an odd length
            // unpooled; 700 positions by F(2, 3) at n = 3, by tap products at n = 1
            // (under the path's floor)
            (32, 40, 3, 1101, 1, 1, 1, false, true, Act::Identity),
            (96, 64, 3, 700, 1, 1, 2, true, true, Act::Relu),
            (128, 32, 8, 94, 1, 0, 4, true, false, Act::Relu),
        ];
        for (c, o, k, l, stride, pad, pool, bias, bn, act) in cases {
            for n in [1, 3] {
                let x = uniform(&mut rng, &[n, c, l], -1.0, 1.0);
                let w = uniform(&mut rng, &[o, c, k], -0.5, 0.5);
                let b = uniform(&mut rng, &[o], -0.3, 0.3);
                let norm = random_bn(&mut rng, o);
                let spec = ConvSpec {
                    weight: &w,
                    bias: bias.then_some(&b),
                    stride,
                    padding: (0, pad),
                };
                let epi = Epilogue {
                    bn: bn.then_some(&norm),
                    act,
                    pool: (1, pool),
                };
                let got = conv_block_eval(&x, spec, epi).unwrap();
                let want = composed(&x, spec, epi).unwrap();
                let e = max_rel(&got, &want);
                assert!(
                    e <= 1e-5,
                    "{e} for {:?}",
                    (c, o, k, l, stride, pad, pool, n)
                );
            }
        }
    }

    /// 2-D blocks (the short-chunk CNN's 3×3 + 2×2 pool, FCN-4's uneven pools, a stride,
    /// asymmetric padding, one large input channel count) equal the composed ops.
    #[test]
    fn two_d_equals_composed() {
        let mut rng = mirkit_core::Rng::new(12);
        // (c, o, kh, kw, h, w, stride, pad, pool, activation)
        let cases = [
            (1, 8, 3, 3, 20, 22, 1, (1, 1), (2, 2), Act::Relu),
            (6, 9, 3, 3, 17, 31, 1, (1, 1), (2, 4), Act::Elu(1.0)),
            // pooling over rows only, the ELU after the pool
            (5, 7, 3, 3, 12, 10, 1, (1, 1), (3, 1), Act::Elu(1.0)),
            (4, 5, 3, 3, 16, 16, 2, (1, 1), (1, 1), Act::Identity),
            (3, 4, 7, 1, 30, 12, 1, (3, 0), (3, 1), Act::Relu),
            (2, 3, 1, 5, 9, 40, 1, (0, 2), (1, 5), Act::Relu),
            (32, 16, 3, 3, 40, 64, 1, (1, 1), (2, 2), Act::Relu),
            // Winograd's path (stride-1 3×3, ≥ 16 channels): odd sizes, uneven pools,
            // no pool, one wide layer split into several tiles
            (16, 24, 3, 3, 13, 15, 1, (1, 1), (1, 1), Act::Identity),
            (20, 16, 3, 3, 18, 41, 1, (1, 1), (3, 5), Act::Elu(1.0)),
            (64, 128, 3, 3, 34, 30, 1, (1, 1), (2, 2), Act::Relu),
        ];
        for (c, o, kh, kw, h, w, stride, pad, pool, act) in cases {
            for n in [1, 2] {
                let x = uniform(&mut rng, &[n, c, h, w], -1.0, 1.0);
                let wt = uniform(&mut rng, &[o, c, kh, kw], -0.5, 0.5);
                let b = uniform(&mut rng, &[o], -0.3, 0.3);
                let norm = random_bn(&mut rng, o);
                let spec = ConvSpec {
                    weight: &wt,
                    bias: Some(&b),
                    stride,
                    padding: pad,
                };
                let epi = Epilogue {
                    bn: Some(&norm),
                    act,
                    pool,
                };
                let got = conv_block_eval(&x, spec, epi).unwrap();
                let want = composed(&x, spec, epi).unwrap();
                let e = max_rel(&got, &want);
                assert!(
                    e <= 1e-5,
                    "{e} for {:?}",
                    (c, o, kh, kw, h, w, stride, pad, pool)
                );
            }
        }
    }

    /// A random 3×3 block (padding 1, bias, random batch norm, ReLU) and its input.
    struct Case3x3 {
        x: Tensor,
        wt: Tensor,
        b: Tensor,
        norm: BatchNorm,
        stride: usize,
        pool: (usize, usize),
    }

    impl Case3x3 {
        fn new(
            rng: &mut mirkit_core::Rng,
            (n, c, h, w): (usize, usize, usize, usize),
            o: usize,
            stride: usize,
            pool: (usize, usize),
        ) -> Self {
            Self {
                x: uniform(rng, &[n, c, h, w], -1.0, 1.0),
                wt: uniform(rng, &[o, c, 3, 3], -0.5, 0.5),
                b: uniform(rng, &[o], -0.3, 0.3),
                norm: random_bn(rng, o),
                stride,
                pool,
            }
        }

        fn spec(&self) -> ConvSpec<'_> {
            ConvSpec {
                weight: &self.wt,
                bias: Some(&self.b),
                stride: self.stride,
                padding: (1, 1),
            }
        }

        fn epi(&self) -> Epilogue<'_> {
            Epilogue {
                bn: Some(&self.norm),
                act: Act::Relu,
                pool: self.pool,
            }
        }
    }

    /// Small planes of several items computed side by side ([`item_groups`]: one group,
    /// several, uneven, pooled, strided) equal the composed ops item by item.
    #[test]
    fn item_groups_equal_composed() {
        let mut rng = mirkit_core::Rng::new(16);
        // (c, o, h, w, stride, pool, batch)
        for (c, o, h, w, stride, pool, n) in [
            (256, 64, 2, 2, 2, (1, 1), 16),
            (128, 96, 4, 4, 2, (1, 1), 5),
            (256, 32, 8, 8, 2, (1, 1), 9),
            (8, 16, 6, 6, 1, (2, 2), 7),
            (8, 16, 8, 8, 1, (1, 1), 3),
        ] {
            let (oh, ow) = ((h + 2 - 3) / stride + 1, (w + 2 - 3) / stride + 1);
            let g = Geo {
                c,
                h,
                w,
                o,
                kh: 3,
                kw: 3,
                stride,
                ph: 1,
                pw: 1,
                poh: oh / pool.0,
                pow: ow / pool.1,
                pool,
            };
            let groups = item_groups(n, &g, tile_positions(&g, TILE_FLOATS));
            assert!(groups.is_some_and(|v| v.len() < n), "items side by side");
            let case = Case3x3::new(&mut rng, (n, c, h, w), o, stride, pool);
            let got = conv_block_eval(&case.x, case.spec(), case.epi()).unwrap();
            let e = max_rel(&got, &composed(&case.x, case.spec(), case.epi()).unwrap());
            assert!(e <= 1e-5, "{e} for {:?}", (c, o, h, w, stride, pool, n));
        }
    }

    /// The parallel mean over the last axis has the bits of Candle's `mean`, on one
    /// and on two threads; training and other ranks are left to Candle.
    #[test]
    fn mean_last_is_candles_mean() {
        let mut rng = mirkit_core::Rng::new(21);
        for (n, c, l) in [(3, 5, 1000), (2, 64, 37), (1, 1, 1)] {
            let x = uniform(&mut rng, &[n, c, l], -2.0, 3.0);
            let want = bits(&x.mean(D::Minus1).unwrap());
            for threads in [1, 2] {
                let got = on_threads(threads, || mean_last_eval(&x, false))
                    .unwrap()
                    .expect("applies");
                assert_eq!(got.dims(), &[n, c]);
                assert_eq!(bits(&got), want, "{n} {c} {l} on {threads} thread(s)");
            }
        }
        let x = uniform(&mut rng, &[2, 3, 10], -1.0, 1.0);
        assert!(mean_last_eval(&x, true).unwrap().is_none());
        let x4 = uniform(&mut rng, &[2, 3, 4, 5], -1.0, 1.0);
        assert!(mean_last_eval(&x4, false).unwrap().is_none());
    }

    /// The batch-1 dense layer split over threads has the bits of Candle's `Linear` on
    /// two to four threads, with and without a bias (ReSE-2's SE shapes among them, both
    /// of the `gemm` crate's methods, pieces that do not divide the outputs); training,
    /// two rows, one thread and small weights are Candle's own call.
    #[test]
    fn linear_row_is_candles_linear() {
        use candle_core::Module;
        let mut rng = mirkit_core::Rng::new(22);
        for (k, o, bias) in [
            (128, 2048, true),
            (256, 4096, false),
            (512, 8192, true),
            (300, 1029, true),
            (128, 514, true),
            (2048, 128, true),
            (4096, 256, false),
            (1100, 100, true),
        ] {
            let w = uniform(&mut rng, &[o, k], -0.1, 0.1);
            let b = bias.then(|| uniform(&mut rng, &[o], -1.0, 1.0));
            let lin = candle_nn::Linear::new(w, b);
            let x = uniform(&mut rng, &[1, k], -2.0, 2.0);
            let want = bits(&lin.forward(&x).unwrap());
            for threads in [2, 3, 4] {
                let got = on_threads(threads, || linear_row_eval(&lin, &x, false))
                    .unwrap()
                    .expect("applies");
                assert_eq!(got.dims(), &[1, o]);
                assert_eq!(bits(&got), want, "{k} → {o} on {threads} threads");
            }
        }
        let lin = candle_nn::Linear::new(uniform(&mut rng, &[1024, 512], -0.1, 0.1), None);
        let small = candle_nn::Linear::new(uniform(&mut rng, &[600, 64], -0.1, 0.1), None);
        let x2 = uniform(&mut rng, &[2, 512], -1.0, 1.0);
        let x1 = uniform(&mut rng, &[1, 512], -1.0, 1.0);
        let x64 = uniform(&mut rng, &[1, 64], -1.0, 1.0);
        on_threads(2, || {
            assert!(linear_row_eval(&lin, &x1, false).unwrap().is_some());
            assert!(linear_row_eval(&lin, &x1, true).unwrap().is_none());
            assert!(linear_row_eval(&lin, &x2, false).unwrap().is_none());
            assert!(linear_row_eval(&small, &x64, false).unwrap().is_none());
        });
        on_threads(1, || {
            assert!(linear_row_eval(&lin, &x1, false).unwrap().is_none())
        });
    }

    /// Between the `gemm` crate's two methods (257–513 outputs) the split applies on
    /// every thread count, one included, with the same bits on each, within f32 rounding
    /// of Candle's call (1e-5 of the largest output; sums of up to 8192 terms).
    #[test]
    fn linear_between_the_methods_keeps_its_bits() {
        use candle_core::Module;
        let mut rng = mirkit_core::Rng::new(23);
        for (k, o) in [(8192, 512), (300, 300), (257, 513)] {
            let lin = candle_nn::Linear::new(
                uniform(&mut rng, &[o, k], -0.1, 0.1),
                Some(uniform(&mut rng, &[o], -1.0, 1.0)),
            );
            let x = uniform(&mut rng, &[1, k], -2.0, 2.0);
            let want: Vec<f32> = lin
                .forward(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let mut first: Option<Vec<u32>> = None;
            for threads in [1, 2, 3, 4] {
                let got = on_threads(threads, || linear_row_eval(&lin, &x, false))
                    .unwrap()
                    .expect("applies");
                let got_bits = bits(&got);
                let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
                let err = got
                    .iter()
                    .zip(&want)
                    .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
                assert!(err <= 1e-5 * scale, "{k} → {o}: {err} of {scale}");
                match &first {
                    Some(f) => assert_eq!(f, &got_bits, "{k} → {o} on {threads} threads"),
                    None => first = Some(got_bits),
                }
            }
        }
    }

    /// The pieces partition the outputs, at most two per thread (at least two between
    /// the methods), each on its side of the 256-output line: over 256 from 514 outputs,
    /// at most 256 below, multiples of 16 but the last up to 513.
    #[test]
    fn linear_pieces_cover_the_outputs() {
        for o in 1..5000 {
            for threads in [1, 2, 3, 8] {
                let p = linear_pieces(o, threads);
                assert!(!p.is_empty() && p.len() <= (2 * threads).max(3));
                assert_eq!(linear_always_split(o), (257..514).contains(&o));
                if linear_always_split(o) {
                    assert!(p.len() >= 2);
                }
                let mut next = 0;
                for (i, &(s, len)) in p.iter().enumerate() {
                    assert_eq!(s, next, "{o} {threads}");
                    assert!(len > 0);
                    if o >= 514 {
                        assert!(len > 256 || p.len() == 1, "{o} {threads}: {p:?}");
                    } else {
                        assert!(len <= 256, "{o} {threads}: {p:?}");
                        assert!(len % 16 == 0 || i + 1 == p.len());
                    }
                    next = s + len;
                }
                assert_eq!(next, o);
            }
        }
    }

    /// The pairwise gather of even elements equals `step_by(2)`, with `src` one short of
    /// whole pairs or longer.
    #[test]
    fn gather_even_equals_step_by() {
        for n in 0..12usize {
            for extra in 0..3 {
                let len = (2 * n).saturating_sub(1) + extra;
                let src: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
                let mut got = vec![f32::NAN; n];
                gather_even(&mut got, &src);
                let want: Vec<f32> = src.iter().step_by(2).take(n).copied().collect();
                assert_eq!(got, want, "n {n}, src {len}");
            }
        }
    }

    /// Convolution → ReLU → per-channel affine → pool (VGG's order) in one pass equals
    /// the composed ops (negative scales included, so the pool sees the affine's sign
    /// changes), im2col and Winograd paths, 1-D and 2-D, with and without pooling.
    #[test]
    fn act_then_affine_equals_composed() {
        let mut rng = mirkit_core::Rng::new(15);
        // (x shape, w shape, padding, pool)
        type Case<'a> = (&'a [usize], &'a [usize], (usize, usize), (usize, usize));
        let cases: [Case; 4] = [
            (&[2, 3, 11, 13], &[5, 3, 3, 3], (1, 1), (2, 2)),
            (&[1, 16, 40, 36], &[24, 16, 3, 3], (1, 1), (2, 1)),
            (&[2, 4, 9, 8], &[6, 4, 3, 3], (1, 1), (1, 1)),
            (&[2, 5, 30], &[4, 5, 3], (0, 1), (1, 3)),
        ];
        for (xs, ws, padding, pool) in cases {
            let x = uniform(&mut rng, xs, -1.0, 1.0);
            let w = uniform(&mut rng, ws, -0.5, 0.5);
            let o = ws[0];
            let b = uniform(&mut rng, &[o], -0.3, 0.3);
            let scale = uniform(&mut rng, &[o], -1.5, 1.5);
            let shift = uniform(&mut rng, &[o], -0.5, 0.5);
            let spec = ConvSpec {
                weight: &w,
                bias: Some(&b),
                stride: 1,
                padding,
            };
            let got = conv_act_affine_eval(&x, spec, Act::Relu, (&scale, &shift), pool).unwrap();
            let epi = Epilogue {
                act: Act::Relu,
                ..Epilogue::default()
            };
            let mut shape = vec![1; xs.len()];
            shape[1] = o;
            let y = composed(&x, spec, epi)
                .unwrap()
                .broadcast_mul(&scale.reshape(shape.clone()).unwrap())
                .unwrap()
                .broadcast_add(&shift.reshape(shape).unwrap())
                .unwrap();
            let want = if xs.len() == 3 {
                crate::pool::max_pool1d(&y, pool.1, pool.1, 0).unwrap()
            } else if pool != (1, 1) {
                crate::pool::max_pool2d(&y, pool, pool, (0, 0)).unwrap()
            } else {
                y
            };
            let e = max_rel(&got, &want);
            assert!(e <= 1e-5, "{e} for {xs:?} {ws:?} {pool:?}");
        }
    }

    /// `f()` on a rayon pool of `threads` threads.
    fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    /// The bits of every value of `t`.
    fn bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// `conv_block_eval(x, spec, epi)` on a pool of `threads` threads, flattened.
    fn eval_on(threads: usize, x: &Tensor, spec: ConvSpec<'_>, epi: Epilogue<'_>) -> Vec<f32> {
        on_threads(threads, || conv_block_eval(x, spec, epi).unwrap())
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    /// Few tiles for the threads (batch 1, small planes): the products split by kernel
    /// rows across the threads give the bits of one thread's single product, pooled or
    /// not, for one position (a matrix-vector product), a few, and more than 64, and with
    /// larger tiles than one thread's.
    #[test]
    fn row_split_products_do_not_change_bits() {
        let mut rng = mirkit_core::Rng::new(14);
        // (c, o, h, w, stride, pool, batch)
        for (c, o, h, w, stride, pool, n) in [
            (24, 320, 2, 2, 2, (1, 1), 1),
            // one output position, blocks of 256 rows (the short-chunk ResNet's end)
            (16, 600, 1, 1, 1, (1, 1), 1),
            (40, 512, 2, 2, 2, (1, 1), 1),
            (16, 300, 1, 3, 2, (1, 1), 1),
            (24, 320, 2, 2, 1, (1, 1), 1),
            (16, 256, 4, 4, 2, (1, 1), 1),
            (8, 512, 6, 6, 1, (2, 2), 1),
            (32, 384, 9, 10, 1, (1, 1), 1),
            // two tiles of one thread's tiling, one larger tile when split by rows
            (64, 256, 24, 24, 1, (1, 1), 1),
            (64, 256, 24, 22, 1, (2, 2), 1),
            // several items side by side (`item_groups`): one group of one position
            // each, one of a few, groups of another size when split by rows, pooled
            (256, 512, 2, 2, 2, (1, 1), 16),
            (16, 600, 1, 1, 1, (1, 1), 3),
            (64, 320, 4, 4, 2, (1, 1), 5),
            (256, 256, 8, 8, 2, (1, 1), 16),
            (32, 96, 6, 6, 1, (2, 2), 7),
        ] {
            let case = Case3x3::new(&mut rng, (n, c, h, w), o, stride, pool);
            let run_on = |threads: usize| eval_on(threads, &case.x, case.spec(), case.epi());
            let one = run_on(1);
            for t in [2, 3, 4] {
                assert!(run_on(t) == one, "{:?} on {t} threads", (c, o, h, w, n));
            }
        }
    }

    /// The same for 1-D layers computed by tap products (ReSE-2's late layers at batch
    /// 1): kernel rows split across the threads give one thread's bits — one tile and
    /// several, pooled or not, 'same' padding and a valid 1×1 (the direct kernel), a
    /// product deeper than 256 channels, columns too few to split.
    #[test]
    fn tap_products_split_by_rows_keep_bits() {
        let mut rng = mirkit_core::Rng::new(15);
        // (c, o, l, kw, pool)
        for (c, o, l, kw, pool) in [
            (256, 256, 243, 3, 3),
            (128, 256, 729, 3, 1),
            (256, 256, 9, 3, 3),
            (512, 512, 5, 3, 1),
            (256, 512, 3, 3, 1),
            (256, 512, 2, 3, 1),
            (256, 512, 1, 3, 1),
            (256, 512, 1, 1, 1),
            (256, 512, 3, 1, 1),
            (64, 320, 50, 1, 1),
            (32, 160, 27, 3, 3),
            // F(2, 3) (crate::wino1d): one tile, its products on the idle threads
            (64, 64, 1500, 3, 3),
            (256, 256, 1101, 3, 1),
        ] {
            let x = uniform(&mut rng, &[1, c, l], -1.0, 1.0);
            let wt = uniform(&mut rng, &[o, c, kw], -0.2, 0.2);
            let b = uniform(&mut rng, &[o], -0.3, 0.3);
            let norm = random_bn(&mut rng, o);
            let run_on = |threads: usize| {
                let spec = ConvSpec {
                    weight: &wt,
                    bias: Some(&b),
                    stride: 1,
                    padding: (0, kw / 2),
                };
                let epi = Epilogue {
                    bn: Some(&norm),
                    act: Act::Relu,
                    pool: (1, pool),
                };
                eval_on(threads, &x, spec, epi)
            };
            let one = run_on(1);
            for t in [2, 3, 4] {
                let got = run_on(t);
                assert!(
                    got.iter()
                        .zip(&one)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{:?} on {t} threads",
                    (c, o, l, kw)
                );
            }
        }
    }

    /// Two blocks of one input (a residual block's first convolution with ReLU and its
    /// shortcut without) sharing the im2col give the bits of the two blocks computed
    /// alone, and the composed ops within rounding; other geometries are left to the
    /// caller.
    #[test]
    fn pair_equals_two_blocks() {
        let mut rng = mirkit_core::Rng::new(13);
        for (n, c, o, h, w, stride) in [
            (2, 4, 6, 16, 18, 2),
            (1, 1, 8, 9, 12, 1),
            (2, 16, 20, 9, 12, 1), // Winograd's path
        ] {
            let x = uniform(&mut rng, &[n, c, h, w], -1.0, 1.0);
            let (wa, wb) = (
                uniform(&mut rng, &[o, c, 3, 3], -0.5, 0.5),
                uniform(&mut rng, &[o, c, 3, 3], -0.5, 0.5),
            );
            let ba = uniform(&mut rng, &[o], -0.3, 0.3);
            let (na, nb) = (random_bn(&mut rng, o), random_bn(&mut rng, o));
            let spec = |weight, bias| ConvSpec {
                weight,
                bias,
                stride,
                padding: (1, 1),
            };
            let epi = |bn, act| Epilogue {
                bn: Some(bn),
                act,
                pool: (1, 1),
            };
            let a = (spec(&wa, Some(&ba)), epi(&na, Act::Relu));
            let b = (spec(&wb, None), epi(&nb, Act::Identity));
            let (ga, gb) = conv_pair_eval(&x, a, b).unwrap().unwrap();
            for ((got, (s, e)), what) in [(ga, a), (gb, b)].into_iter().zip(["first", "shortcut"]) {
                let alone = conv_block_eval(&x, s, e).unwrap();
                assert_eq!(bits(&got), bits(&alone), "{what}");
                assert!(
                    max_rel(&got, &composed(&x, s, e).unwrap()) <= 1e-5,
                    "{what}"
                );
            }
            // another stride or kernel size: not a pair
            let other = (
                ConvSpec {
                    stride: stride + 1,
                    ..spec(&wb, None)
                },
                epi(&nb, Act::Identity),
            );
            assert!(conv_pair_eval(&x, a, other).unwrap().is_none());
        }
    }

    /// NaN in the input reaches the output through the pool's max (a NaN is never
    /// hidden by a larger neighbour); ReLU maps it to 0 exactly as Candle's `relu`
    /// (`f32::max`) does in the composed path.
    #[test]
    fn nan_propagates() {
        let mut rng = mirkit_core::Rng::new(2);
        let mut v: Vec<f32> = (0..2 * 30).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        v[7] = f32::NAN;
        let x = Tensor::from_vec(v, (1, 2, 30), &Device::Cpu).unwrap();
        let w = uniform(&mut rng, &[3, 2, 3], -0.5, 0.5);
        let spec = ConvSpec {
            weight: &w,
            bias: None,
            stride: 1,
            padding: (0, 1),
        };
        let y = conv_block_eval(
            &x,
            spec,
            Epilogue {
                bn: None,
                act: Act::Identity,
                pool: (1, 3),
            },
        )
        .unwrap();
        let with_relu = Epilogue {
            bn: None,
            act: Act::Relu,
            pool: (1, 3),
        };
        let r = conv_block_eval(&x, spec, with_relu).unwrap();
        let want = composed(&x, spec, with_relu).unwrap();
        let (r, want): (Vec<f32>, Vec<f32>) = (
            r.flatten_all().unwrap().to_vec1().unwrap(),
            want.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(
            r.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let y: Vec<Vec<f32>> = y.squeeze(0).unwrap().to_vec2().unwrap();
        for row in y {
            assert!(row[2].is_nan(), "window 6..9 holds the NaN: {row:?}");
            assert!(row[0].is_finite() && row[5].is_finite());
        }
    }

    /// Shape errors name the problem instead of panicking.
    #[test]
    fn bad_shapes_are_errors() {
        let mut rng = mirkit_core::Rng::new(3);
        let x = uniform(&mut rng, &[1, 3, 10], -1.0, 1.0);
        let w = uniform(&mut rng, &[4, 2, 3], -1.0, 1.0);
        let w3 = uniform(&mut rng, &[4, 3, 3], -1.0, 1.0);
        let spec = |w| ConvSpec {
            weight: w,
            bias: None,
            stride: 1,
            padding: (0, 0),
        };
        let e = conv_block_eval(&x, spec(&w), Epilogue::default()).unwrap_err();
        assert!(e.to_string().contains("channels"), "{e}");
        let big = Epilogue {
            pool: (1, 20),
            ..Default::default()
        };
        let e = conv_block_eval(&x, spec(&w3), big).unwrap_err();
        assert!(e.to_string().contains("pooling"), "{e}");
        let zero = Epilogue {
            pool: (1, 0),
            ..Default::default()
        };
        assert!(conv_block_eval(&x, spec(&w3), zero).is_err());
        let b = uniform(&mut rng, &[5], -1.0, 1.0);
        let e = conv_block_eval(
            &x,
            ConvSpec {
                bias: Some(&b),
                ..spec(&w3)
            },
            Epilogue::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("bias"), "{e}");
    }

    /// `conv_block` is differentiable in training mode, and in eval mode once fusion is
    /// turned off; in eval mode with fusion on its result is a leaf (no gradient).
    #[test]
    fn conv_block_modes() {
        let mut rng = mirkit_core::Rng::new(5);
        let x = uniform(&mut rng, &[2, 3, 12], -1.0, 1.0);
        let w = Var::from_tensor(&uniform(&mut rng, &[4, 3, 3], -1.0, 1.0)).unwrap();
        let norm = random_bn(&mut rng, 4);
        let spec = ConvSpec {
            weight: w.as_tensor(),
            bias: None,
            stride: 1,
            padding: (0, 1),
        };
        let epi = Epilogue {
            bn: Some(&norm),
            act: Act::Relu,
            pool: (1, 2),
        };
        let grad_of = |y: Tensor| y.sum_all().unwrap().backward().unwrap().get(&w).is_some();
        assert!(grad_of(conv_block(&x, spec, epi, true).unwrap()));
        let fused = conv_block(&x, spec, epi, false).unwrap();
        assert!(!fused.track_op());
        let plain = {
            let _g = DifferentiableEval::new();
            conv_block(&x, spec, epi, false).unwrap()
        };
        assert!(fused_eval());
        assert!(max_rel(&fused, &plain) <= 1e-6);
        assert!(grad_of(plain));
    }

    /// The residual end `maxpool(relu(x + out · s))` equals the composed ops bit for bit
    /// (3-D with squeeze-and-excitation weights and pool 3 over a remainder, 4-D without
    /// scale or pool), and declines training mode and mismatched shapes.
    #[test]
    fn residual_eval_equals_composed_bits() {
        let mut rng = mirkit_core::Rng::new(6);
        let x = uniform(&mut rng, &[2, 3, 20], -1.0, 1.0);
        let out = uniform(&mut rng, &[2, 3, 20], -1.0, 1.0);
        let se = uniform(&mut rng, &[2, 3], 0.0, 1.0);
        let got = residual_eval(&x, &out, Some(&se), (1, 3), false)
            .unwrap()
            .unwrap();
        let y = (&x + out.broadcast_mul(&se.unsqueeze(2).unwrap()).unwrap())
            .unwrap()
            .relu()
            .unwrap();
        let want = crate::pool::max_pool1d(&y, 3, 3, 0).unwrap();
        assert_eq!(bits(&got), bits(&want));
        let x4 = uniform(&mut rng, &[2, 3, 4, 5], -1.0, 1.0);
        let o4 = uniform(&mut rng, &[2, 3, 4, 5], -1.0, 1.0);
        let got = residual_eval(&x4, &o4, None, (1, 1), false)
            .unwrap()
            .unwrap();
        assert_eq!(bits(&got), bits(&(&x4 + &o4).unwrap().relu().unwrap()));
        // pooled over rows and columns, with a scale and remainders both ways
        let x5 = uniform(&mut rng, &[2, 3, 7, 11], -1.0, 1.0);
        let o5 = uniform(&mut rng, &[2, 3, 7, 11], -1.0, 1.0);
        let got = residual_eval(&x5, &o5, Some(&se), (2, 3), false)
            .unwrap()
            .unwrap();
        let y5 = (&x5
            + o5.broadcast_mul(&se.unsqueeze(2).unwrap().unsqueeze(3).unwrap())
                .unwrap())
        .unwrap()
        .relu()
        .unwrap();
        let want = crate::pool::max_pool2d(&y5, (2, 3), (2, 3), (0, 0)).unwrap();
        assert_eq!(got.dims(), &[2, 3, 3, 3]);
        assert_eq!(bits(&got), bits(&want));
        // the unpooled path with squeeze-and-excitation weights
        let got = residual_eval(&x, &out, Some(&se), (1, 1), false)
            .unwrap()
            .unwrap();
        assert_eq!(bits(&got), bits(&y));
        assert!(residual_eval(&x4, &o4, None, (1, 1), true)
            .unwrap()
            .is_none());
        assert!(residual_eval(&x, &o4, None, (1, 1), false)
            .unwrap()
            .is_none());
    }

    /// Nothing is tracked for gradients: the fused result is a new leaf.
    #[test]
    fn result_is_not_tracked() {
        let mut rng = mirkit_core::Rng::new(4);
        let x = Var::from_tensor(&uniform(&mut rng, &[1, 2, 12], -1.0, 1.0)).unwrap();
        let w = uniform(&mut rng, &[3, 2, 3], -1.0, 1.0);
        let y = conv_block_eval(
            &x,
            ConvSpec {
                weight: &w,
                bias: None,
                stride: 1,
                padding: (0, 1),
            },
            Epilogue::default(),
        )
        .unwrap();
        assert!(!y.track_op());
    }
}
