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
    if max && kernel == stride && padding == (0, 0) && x.track_op() {
        if let Some(y) = max_pool_op(x, kernel)? {
            return Ok(y);
        }
    }
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
    if max && kernel == stride && padding == 0 && x.track_op() {
        let (n, c) = (x.dim(0)?, x.dim(1)?);
        if let Some(y) = max_pool_op(&x.reshape((n, c, 1, l))?, (1, kernel))? {
            return Ok(y.reshape((n, c, l / kernel))?);
        }
    }
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

/// Non-overlapping max-pooling of `(N, C, H, W)` (kernel = stride, no padding, floor)
/// as one op that records each window's argmax and routes the gradient there in its
/// backward (PyTorch's rule: the first maximum; a NaN wins). One pass each way, where
/// the composed `argmax` + `gather` path copies the permuted windows and scatters into
/// a zero tensor. `None` off the CPU or for other dtypes.
fn max_pool_op(x: &Tensor, kernel: (usize, usize)) -> Result<Option<Tensor>> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || !argmax_fits(kernel) {
        return Ok(None);
    }
    Ok(Some(x.contiguous()?.apply_op1(MaxPoolOp {
        kernel,
        argmax: std::sync::Mutex::new(Vec::new()),
    })?))
}

/// Whether each position in a `(ph, pw)` window fits the one byte a recorded argmax
/// takes ([`window_argmax`]): windows of up to 256 values (every pool of the zoo; larger
/// ones take the composed path).
pub(crate) fn argmax_fits((ph, pw): (usize, usize)) -> bool {
    ph * pw <= 256
}

/// The maximum and its position in each non-overlapping `(ph, pw)` window of one
/// plane of width `w` whose values from plane index `i` on `fill(i, row)` writes into
/// `row`: `yo[r·ow + q]` gets the
/// maximum of window `(r, q)` and `ao[r·ow + q]` its offset inside the window,
/// `i·pw + j` for row `i` and column `j` of the window — one byte per output where a
/// flat index took eight (training keeps these until the backward; windows of at most
/// 256 values, [`argmax_fits`]). [`window_offsets`] turns it back into the plane index.
/// The first maximum wins ties, and a NaN wins (PyTorch's rule). Shared by every
/// pooling op that records its argmax for the backward.
pub(crate) fn window_argmax(
    fill: impl Fn(usize, &mut [f32]),
    w: usize,
    (ph, pw): (usize, usize),
    (oh, ow): (usize, usize),
    yo: &mut [f32],
    ao: &mut [u8],
) {
    debug_assert!(argmax_fits((ph, pw)));
    // A band of `ph` rows at a time: the values into a buffer (`fill`, one call per
    // row, which vectorises), then the band's windows row by row, each over all of the
    // band's windows at once with the window width a constant (selects instead of
    // branches, and vector loads: a fifth of the short-chunk CNN's training step went
    // to a window-by-window loop).
    let span = ow * pw;
    let mut band = vec![0f32; ph * span];
    for r in 0..oh {
        for (i, row) in band.chunks_exact_mut(span.max(1)).enumerate() {
            fill((r * ph + i) * w, row);
        }
        let (yr, ar) = (&mut yo[r * ow..][..ow], &mut ao[r * ow..][..ow]);
        for (i, row) in band.chunks_exact(span.max(1)).enumerate() {
            match pw {
                1 => fold_row::<1>(row, i, yr, ar),
                2 => fold_row::<2>(row, i, yr, ar),
                3 => fold_row::<3>(row, i, yr, ar),
                4 => fold_row::<4>(row, i, yr, ar),
                5 => fold_row::<5>(row, i, yr, ar),
                8 => fold_row::<8>(row, i, yr, ar),
                _ => fold_row_any(row, pw, i, yr, ar),
            }
        }
    }
}

/// One row `i` of a band of windows `PW` wide into the running maxima `yr` and their
/// offsets `ar` ([`window_argmax`]); row 0 starts them at each window's first value.
#[inline(always)]
fn fold_row<const PW: usize>(row: &[f32], i: usize, yr: &mut [f32], ar: &mut [u8]) {
    let wins = yr.iter_mut().zip(ar.iter_mut()).zip(row.chunks_exact(PW));
    if i == 0 {
        for ((y, a), win) in wins {
            let (mut b, mut at) = (win[0], 0u8);
            for (j, &v) in win.iter().enumerate().skip(1) {
                let take = v > b || (v.is_nan() && !b.is_nan());
                b = if take { v } else { b };
                at = if take { j as u8 } else { at };
            }
            (*y, *a) = (b, at);
        }
    } else {
        for ((y, a), win) in wins {
            let (mut b, mut at) = (*y, *a);
            for (j, &v) in win.iter().enumerate() {
                let take = v > b || (v.is_nan() && !b.is_nan());
                b = if take { v } else { b };
                at = if take { (i * PW + j) as u8 } else { at };
            }
            (*y, *a) = (b, at);
        }
    }
}

/// [`fold_row`] for a window width without its own copy.
fn fold_row_any(row: &[f32], pw: usize, i: usize, yr: &mut [f32], ar: &mut [u8]) {
    for ((y, a), win) in yr.iter_mut().zip(ar.iter_mut()).zip(row.chunks_exact(pw)) {
        let (mut b, mut at) = if i == 0 { (win[0], 0u8) } else { (*y, *a) };
        for (j, &v) in win.iter().enumerate() {
            let take = v > b || (v.is_nan() && !b.is_nan());
            b = if take { v } else { b };
            at = if take { (i * pw + j) as u8 } else { at };
        }
        (*y, *a) = (b, at);
    }
}

/// Each window offset's place in the input plane relative to the window's first value:
/// `offsets[i·pw + j] = i·w + j` ([`window_argmax`]'s codes, without a division per
/// output).
pub(crate) fn window_offsets(w: usize, (ph, pw): (usize, usize)) -> Vec<usize> {
    (0..ph * pw).map(|at| (at / pw) * w + at % pw).collect()
}

/// Routes the gradient `g` of pooled outputs (planes of `(oh, ow)`, in order) to the
/// recorded maxima `arg` of input planes `(h, w)`: adds into `dx` (planes of `h·w`).
pub(crate) fn scatter_argmax(
    g: &[f32],
    arg: &[u8],
    (h, w): (usize, usize),
    pool: (usize, usize),
    (oh, ow): (usize, usize),
    dx: &mut [f32],
) {
    let (plane_in, plane_out) = (h * w, (oh * ow).max(1));
    let offsets = window_offsets(w, pool);
    for (p, (gp, ap)) in g.chunks(plane_out).zip(arg.chunks(plane_out)).enumerate() {
        let dxp = &mut dx[p * plane_in..][..plane_in];
        route_plane(gp, ap, &offsets, (w, ow), pool, |i, v| dxp[i] += v);
    }
}

/// Calls `f(i, v)` for each output `v` of one pooled plane `g` (rows of `ow`) with the
/// plane index `i` of its recorded maximum `arg` in the input plane of width `w`
/// (`offsets` from [`window_offsets`]), outputs in order.
pub(crate) fn route_plane(
    g: &[f32],
    arg: &[u8],
    offsets: &[usize],
    (w, ow): (usize, usize),
    (ph, pw): (usize, usize),
    mut f: impl FnMut(usize, f32),
) {
    for (r, (gr, ar)) in g.chunks(ow.max(1)).zip(arg.chunks(ow.max(1))).enumerate() {
        let first = r * ph * w;
        for (q, (&v, &at)) in gr.iter().zip(ar).enumerate() {
            f(first + q * pw + offsets[at as usize], v);
        }
    }
}

/// See [`max_pool_op`]; `argmax` holds each output's offset in its window
/// ([`window_argmax`]).
struct MaxPoolOp {
    kernel: (usize, usize),
    argmax: std::sync::Mutex<Vec<u8>>,
}

impl candle_core::CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "mirkit-max-pool"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let candle_core::CpuStorage::F32(v) = s else {
            candle_core::bail!("max pool: f32 only")
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("max pool: contiguous input only")
        };
        let x = &v[a..b];
        let &[n, c, h, w] = l.dims() else {
            candle_core::bail!("max pool: (N, C, H, W) input")
        };
        let (kh, kw) = self.kernel;
        let (oh, ow) = (h / kh, w / kw);
        let plane = oh * ow;
        let mut y = vec![0f32; n * c * plane];
        let mut idx = vec![0u8; n * c * plane];
        y.par_chunks_mut(plane.max(1))
            .zip(idx.par_chunks_mut(plane.max(1)))
            .enumerate()
            .for_each(|(p, (yo, io))| {
                let base = p * h * w;
                let fill = |at: usize, row: &mut [f32]| {
                    row.copy_from_slice(&x[base + at..][..row.len()]);
                };
                window_argmax(fill, w, (kh, kw), (oh, ow), yo, io);
            });
        *self.argmax.lock().expect("argmax lock") = idx;
        Ok((
            candle_core::CpuStorage::F32(y),
            candle_core::Shape::from((n, c, oh, ow)),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g: Vec<f32> = grad.flatten_all()?.to_vec1()?;
        let idx = self.argmax.lock().expect("argmax lock");
        let (_, _, h, w) = arg.dims4()?;
        let (kh, kw) = self.kernel;
        let mut dx = vec![0f32; arg.elem_count()];
        scatter_argmax(&g, &idx, (h, w), self.kernel, (h / kh, w / kw), &mut dx);
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// [`window_argmax`] written window by window: the maximum and its offset, the first
    /// of equals, a NaN winning.
    fn argmax_plain(
        x: &[f32],
        w: usize,
        (ph, pw): (usize, usize),
        (oh, ow): (usize, usize),
    ) -> (Vec<f32>, Vec<u8>) {
        let (mut y, mut a) = (vec![0f32; oh * ow], vec![0u8; oh * ow]);
        for r in 0..oh {
            for q in 0..ow {
                let first = r * ph * w + q * pw;
                let (mut best, mut at) = (x[first], 0);
                for i in 0..ph {
                    for j in 0..pw {
                        let v = x[first + i * w + j];
                        if v > best || (v.is_nan() && !best.is_nan()) {
                            (best, at) = (v, i * pw + j);
                        }
                    }
                }
                y[r * ow + q] = best;
                a[r * ow + q] = at as u8;
            }
        }
        (y, a)
    }

    /// The band-wise argmax and the offset table give the window-by-window results bit
    /// for bit: ties (values from a few levels, zeros as after a ReLU), NaNs, signed
    /// zeros, windows of 1 × 1 up to 4 × 8 (every width with its own loop and one
    /// without), remainders that fill no window.
    #[test]
    fn banded_argmax_equals_window_by_window() {
        let mut rng = mirkit_core::Rng::new(3);
        for &(h, w, ph, pw) in &[
            (8usize, 8usize, 2usize, 2usize),
            (9, 11, 2, 2),
            (12, 40, 3, 8),
            (16, 33, 4, 8),
            (5, 7, 1, 1),
            (6, 20, 3, 1),
            (4, 30, 1, 5),
            (8, 12, 2, 3),
            (8, 16, 4, 4),
            // a width without its own copy of the loop
            (6, 21, 2, 7),
        ] {
            let x: Vec<f32> = (0..h * w)
                .map(|i| match rng.below(20) {
                    0 => f32::NAN,
                    1 => -0.0,
                    2..=6 => 0.0,
                    _ => (rng.below(4) as f32) - 1.5 + if i % 7 == 0 { 0.25 } else { 0.0 },
                })
                .collect();
            let (oh, ow) = (h / ph, w / pw);
            let (want_y, want_a) = argmax_plain(&x, w, (ph, pw), (oh, ow));
            let (mut y, mut a) = (vec![0f32; oh * ow], vec![9u8; oh * ow]);
            let fill = |at: usize, row: &mut [f32]| row.copy_from_slice(&x[at..][..row.len()]);
            window_argmax(fill, w, (ph, pw), (oh, ow), &mut y, &mut a);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want_y), "{:?}", (h, w, ph, pw));
            assert_eq!(a, want_a, "{:?}", (h, w, ph, pw));
            // the gradient goes back to the recorded places
            let g: Vec<f32> = (0..oh * ow).map(|i| i as f32 + 1.0).collect();
            let mut dx = vec![0f32; h * w];
            scatter_argmax(&g, &a, (h, w), (ph, pw), (oh, ow), &mut dx);
            let mut want = vec![0f32; h * w];
            for (o, (&v, &at)) in g.iter().zip(&a).enumerate() {
                let (r, q, i, j) = (o / ow, o % ow, at as usize / pw, at as usize % pw);
                want[(r * ph + i) * w + q * pw + j] += v;
            }
            assert_eq!(dx, want, "{:?}", (h, w, ph, pw));
        }
    }

    /// The pooling op routes each window's gradient to its first maximum (ties, as after
    /// a ReLU, included), like the composed argmax + gather path and PyTorch, and drops
    /// the remainder that does not fill a window.
    #[test]
    fn max_pool_op_routes_gradients_to_the_first_maximum() {
        let v: Vec<f32> = vec![
            0.0, 0.0, 1.0, 1.0, 5.0, // row 0
            0.0, 0.0, 2.0, 0.5, 9.0, // row 1
            3.0, 3.0, 3.0, 3.0, 9.0, // row 2 (dropped: 3 rows, kernel 2)
        ];
        let x = Var::from_vec(v, (1, 1, 3, 5), &Device::Cpu).unwrap();
        let y = max_pool2d(&x, (2, 2), (2, 2), (0, 0)).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0.0, 2.0]
        );
        let g = Tensor::new(&[[[[10f32, 20.0]]]], &Device::Cpu).unwrap();
        let grads = (y * g).unwrap().sum_all().unwrap().backward().unwrap();
        let dx: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut want = vec![0f32; 15];
        want[0] = 10.0; // first of four zeros
        want[7] = 20.0;
        assert_eq!(dx, want);
        // 1-D through the same op
        let x = Var::from_vec(
            vec![1f32, 4.0, 4.0, 2.0, 0.0, 7.0, 5.0],
            (1, 1, 7),
            &Device::Cpu,
        )
        .unwrap();
        let y = max_pool1d(&x, 3, 3, 0).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![4.0, 7.0]
        );
        let grads = y.sum_all().unwrap().backward().unwrap();
        let dx: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(dx, vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }
}
