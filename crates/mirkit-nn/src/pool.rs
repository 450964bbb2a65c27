//! Pooling with correct gradients.
//!
//! Candle 0.11's `max_pool2d` backward scales gradients by 1/(kh·kw) and misplaces them
//! when the input is not divisible by the kernel. These poolings are built from
//! `index_select` (which gathers each kernel offset's strided positions) and, for max,
//! `argmax` + `gather`: the backward of those ops is a scatter-add, so each output's
//! gradient goes to exactly one input (PyTorch's rule, first maximum on ties), and
//! padding, strides and non-divisible sizes are handled. Average pooling counts the
//! padding (PyTorch's `count_include_pad=True`).

use crate::error::{invalid, NnError, Result};
use candle_core::{DType, Tensor, D};

fn out_len(n: usize, k: usize, s: usize, p: usize) -> usize {
    (n + 2 * p - k) / s + 1
}

fn check(name: &'static str, n: usize, k: usize, s: usize, p: usize) -> Result<()> {
    if k == 0 || s == 0 {
        return Err(invalid(
            name,
            format!("kernel {k}, stride {s}"),
            "kernel and stride must be positive",
        ));
    }
    if 2 * p > k {
        return Err(invalid(
            name,
            format!("padding {p}"),
            format!("must be at most half the kernel ({k})"),
        ));
    }
    if n + 2 * p < k {
        return Err(invalid(
            name,
            format!("size {n}"),
            format!("smaller than the kernel {k} (padding {p})"),
        ));
    }
    Ok(())
}

/// Pads dimension `dim` by `p` on both sides with `value`.
fn pad(x: &Tensor, dim: usize, p: usize, value: f64) -> Result<Tensor> {
    if p == 0 {
        return Ok(x.clone());
    }
    let mut shape = x.dims().to_vec();
    shape[dim] = p;
    let side = Tensor::full(value as f32, shape, x.device())?.to_dtype(x.dtype())?;
    Ok(Tensor::cat(&[&side, x, &side], dim)?)
}

/// Windows of `dim`: a tensor with a new last axis of size `k` holding each window.
fn windows(x: &Tensor, dim: usize, k: usize, s: usize, out: usize) -> Result<Tensor> {
    let mut parts = Vec::with_capacity(k);
    for i in 0..k {
        let idx: Vec<u32> = (0..out).map(|o| (o * s + i) as u32).collect();
        let idx = Tensor::from_vec(idx, out, x.device())?;
        parts.push(x.index_select(&idx, dim)?);
    }
    Ok(Tensor::stack(&parts, x.rank())?)
}

fn reduce(w: &Tensor, max: bool, k: usize) -> Result<Tensor> {
    if max && !w.track_op() {
        // no gradient needed: a plain maximum (same values, one pass)
        return Ok(w.max(D::Minus1)?);
    }
    if max {
        let idx = w.argmax_keepdim(D::Minus1)?;
        Ok(w.gather(&idx, D::Minus1)?.squeeze(D::Minus1)?)
    } else {
        Ok((w.sum(D::Minus1)? / k as f64)?)
    }
}

/// 2-D pooling of `(N, C, H, W)`.
pub fn pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    max: bool,
) -> Result<Tensor> {
    if x.rank() != 4 {
        return Err(NnError::Shape {
            got: x.dims().to_vec(),
            why: "pool2d expects (N, C, H, W)".into(),
        });
    }
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    check("pool2d", h, kernel.0, stride.0, padding.0)?;
    check("pool2d", w, kernel.1, stride.1, padding.1)?;
    let fill = if max { f64::NEG_INFINITY } else { 0.0 };
    let (oh, ow) = (
        out_len(h, kernel.0, stride.0, padding.0),
        out_len(w, kernel.1, stride.1, padding.1),
    );
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    if kernel == stride && padding == (0, 0) {
        // non-overlapping windows (every zoo model): a reshape instead of k gathers
        let b = x
            .narrow(2, 0, oh * kernel.0)?
            .narrow(3, 0, ow * kernel.1)?
            .reshape((n, c, oh, kernel.0, ow, kernel.1))?
            .permute((0, 1, 2, 4, 3, 5))?
            .contiguous()?
            .reshape((n, c, oh, ow, kernel.0 * kernel.1))?;
        return reduce(&b, max, kernel.0 * kernel.1);
    }
    let xp = pad(&pad(x, 2, padding.0, fill)?, 3, padding.1, fill)?;
    // windows over H then W: (N, C, OH, W', kh) -> (N, C, OH, OW, kh, kw) -> flatten
    let a = windows(&xp, 2, kernel.0, stride.0, oh)?; // (N,C,OH,Wp,kh)
    let a = a.transpose(3, 4)?.contiguous()?; // (N,C,OH,kh,Wp)
    let b = windows(&a, 4, kernel.1, stride.1, ow)?; // (N,C,OH,kh,OW,kw)
    let b = b.transpose(3, 4)?.contiguous()?; // (N,C,OH,OW,kh,kw)
    let b = b.reshape((n, c, oh, ow, kernel.0 * kernel.1))?;
    reduce(&b, max, kernel.0 * kernel.1)
}

/// 1-D pooling of `(N, C, L)`.
pub fn pool1d(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
    max: bool,
) -> Result<Tensor> {
    if x.rank() != 3 {
        return Err(NnError::Shape {
            got: x.dims().to_vec(),
            why: "pool1d expects (N, C, L)".into(),
        });
    }
    let l = x.dim(2)?;
    check("pool1d", l, kernel, stride, padding)?;
    if kernel == stride && padding == 0 {
        // non-overlapping windows: a reshape instead of k gathers
        let o = l / kernel;
        let w = x
            .narrow(2, 0, o * kernel)?
            .reshape((x.dim(0)?, x.dim(1)?, o, kernel))?;
        return reduce(&w, max, kernel);
    }
    let xp = pad(x, 2, padding, if max { f64::NEG_INFINITY } else { 0.0 })?;
    let w = windows(&xp, 2, kernel, stride, out_len(l, kernel, stride, padding))?;
    reduce(&w, max, kernel)
}

/// `F.max_pool2d(x, kernel, stride, padding)`.
pub fn max_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    pool2d(x, kernel, stride, padding, true)
}
/// `F.avg_pool2d(x, kernel, stride, padding)` (padding counted).
pub fn avg_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    pool2d(x, kernel, stride, padding, false)
}
/// `F.max_pool1d`.
pub fn max_pool1d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    pool1d(x, kernel, stride, padding, true)
}
/// `F.avg_pool1d`.
pub fn avg_pool1d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    pool1d(x, kernel, stride, padding, false)
}

/// Global average over all axes after the first two: `(N, C, ...) -> (N, C)`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    Ok(x.reshape((n, c, ()))?.mean(D::Minus1)?)
}

/// Global maximum over all axes after the first two (gradient to the argmax).
pub fn global_max_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    let f = x.reshape((n, c, ()))?;
    let idx = f.argmax_keepdim(D::Minus1)?;
    Ok(f.gather(&idx, D::Minus1)?.squeeze(D::Minus1)?)
}

/// `F.adaptive_avg_pool2d(x, (oh, ow))` with PyTorch's bin edges
/// `[floor(i·H/oh), ceil((i+1)·H/oh))`.
pub fn adaptive_avg_pool2d(x: &Tensor, out: (usize, usize)) -> Result<Tensor> {
    if x.rank() != 4 || out.0 == 0 || out.1 == 0 {
        return Err(NnError::Shape {
            got: x.dims().to_vec(),
            why: "adaptive_avg_pool2d expects (N, C, H, W) and a positive size".into(),
        });
    }
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    let mut rows = Vec::with_capacity(out.0);
    for i in 0..out.0 {
        let (a, b) = (i * h / out.0, ((i + 1) * h).div_ceil(out.0));
        let mut cols = Vec::with_capacity(out.1);
        for j in 0..out.1 {
            let (c, d) = (j * w / out.1, ((j + 1) * w).div_ceil(out.1));
            cols.push(
                x.narrow(2, a, b - a)?
                    .narrow(3, c, d - c)?
                    .mean_keepdim(2)?
                    .mean_keepdim(3)?,
            );
        }
        rows.push(Tensor::cat(&cols, 3)?);
    }
    Ok(Tensor::cat(&rows, 2)?.to_dtype(DType::F32)?)
}
