//! A differentiable 1-D/2-D convolution as one Candle op with its own tiled backward.
//!
//! [`crate::conv::conv1d_gemm`] and [`crate::conv2d::conv2d_gemm`] build the whole
//! batch's im2col matrix as a tensor, which the autograd graph then keeps until the
//! backward pass (three times the input for SampleCNN's kernel-3 layers, nine times for
//! a 3×3 layer), and their backward materialises the same size again for col2im. Here
//! the forward is the tiled kernel of [`crate::fused`] (im2col of a cache-sized tile,
//! product, write) and only the input and the kernel are kept; the backward visits the
//! same tiles again, rebuilding each im2col tile, and accumulates
//!
//! * `dW += dY_tile · cols_tileᵀ` (per thread, summed at the end), and
//! * `dX += col2im(Wᵀ · dY_tile)` (each item's input gradient by one task, so no two
//!   tasks add into the same value),
//!
//! the standard im2col formulation of a convolution's gradients (Chellapilla et al.
//! 2006). Stride-1 3×3 layers (padding 1, ≥ 16 channels) take Winograd's paths instead:
//! the input gradient as the convolution of `dY` with the turned kernel
//! ([`crate::winograd`]), the kernel gradient by F(3×3, 2×2) (`crate::wgrad`), and the
//! tiles then run only where one of them does not apply. 1-D layers with many channels
//! ([`crate::fused`]'s tap products) skip im2col: per kernel tap, `dW[:, :, j] += dY ·
//! X_jᵀ` and `dX_j += W[:, :, j]ᵀ · dY` on strided views of the input and of the input
//! gradient. An input that is data (no variable behind it) gets no gradient. Tested against the composed path and against central
//! differences.
//! CPU and f32 only; the callers fall back to the composed ops elsewhere.

use crate::conv2d::contiguous_f32;
use crate::fused::{
    by_taps, im2col_tile_ld, run, tile_grid, valid_cols, with_buffers, Geo, Steps, Tile,
    TILE_FLOATS,
};
use crate::kernels::{
    conv1d_tap_grads_into, gemm_into_on, gemm_into_strided, tap_grads_direct, MatRef, TapRange,
};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// The convolution op over `(x, w)`.
struct ConvOp {
    g: Geo,
    n: usize,
    one_d: bool,
}

impl ConvOp {
    fn out_shape(&self) -> Shape {
        let g = &self.g;
        if self.one_d {
            Shape::from((self.n, g.o, g.pow))
        } else {
            Shape::from((self.n, g.o, g.poh, g.pow))
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "mirkit-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "input")?;
        let w = contiguous_f32(s2, l2, "kernel")?;
        let y = run(x, w, self.n, &self.g, &Steps::identity());
        Ok((CpuStorage::F32(y), self.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let xv = contiguous_f32(cpu(&xs)?, xl, "input")?;
        let wv = contiguous_f32(cpu(&ws)?, wl, "kernel")?;
        let gv = contiguous_f32(cpu(&gs)?, gl, "gradient")?;
        let need_dx = x.track_op();
        let (dx, dw) = backward(xv, wv, gv, self.n, &self.g, need_dx);
        drop((xs, ws, gs));
        Ok((
            need_dx
                .then(|| Tensor::from_vec(dx, x.shape(), x.device()))
                .transpose()?,
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
        ))
    }
}

pub(crate) fn cpu(s: &candle_core::Storage) -> candle_core::Result<&CpuStorage> {
    match s {
        candle_core::Storage::Cpu(c) => Ok(c),
        _ => Err(candle_core::Error::Msg(
            "convolution backward: CPU tensors only".into(),
        )),
    }
}

/// Input and kernel gradients from the output gradient `dy` `(N, O, OH, OW)`. Without
/// `need_dx` (the input is data, not a function of any variable: a network's first
/// layer) the input gradient is not computed — it would cost as much as the kernel
/// gradient — and comes back empty.
pub(crate) fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    g: &Geo,
    need_dx: bool,
) -> (Vec<f32>, Vec<f32>) {
    backward_parts(x, w, &[dy], n, g, need_dx)
}

/// [`backward`] for several convolutions of one geometry over the same input (a
/// residual block's first convolution and its projected shortcut): `w` is their kernels
/// stacked `(Σ O_i, K)` (`g.o = Σ O_i`), `dys` their output gradients `(N, O_i, OH, OW)`.
/// One im2col per tile serves every part's kernel gradient (one product for all, `dW`
/// stacked as `w`), and the input gradient is one product over all parts' channels and
/// one col2im: the sum of the parts' input gradients, in one pass. Several parts take
/// the tiles' path only (not 1-D tap products, not Winograd's paths).
pub(crate) fn backward_parts(
    x: &[f32],
    w: &[f32],
    dys: &[&[f32]],
    n: usize,
    g: &Geo,
    need_dx: bool,
) -> (Vec<f32>, Vec<f32>) {
    let k = g.k();
    let single = dys.len() == 1;
    let dy = dys[0]; // the single part's, where only one is allowed
    assert!(
        single || !by_taps(g),
        "several parts on the tiles' path only"
    );
    // (gradient, channel, channels) of each stacked output channel
    let plane_out = g.poh * g.pow;
    let chans: Vec<(&[f32], usize, usize)> = dys
        .iter()
        .flat_map(|d| {
            let oi = d.len() / (n * plane_out).max(1);
            assert_eq!(d.len(), n * oi * plane_out, "output gradient length");
            (0..oi).map(move |oc| (*d, oc, oi))
        })
        .collect();
    assert_eq!(
        chans.len(),
        g.o,
        "the parts' channels add up to the kernels'"
    );
    let plane_in = g.c * g.h * g.w;
    let (oh, ow) = (g.poh, g.pow);
    // a stride-1 3×3 (or 1-D kernel-3) convolution with padding 1 has as input gradient
    // the same convolution of dY with the kernel turned 180° and its channels swapped,
    // which Winograd's paths compute with fewer products (fused::WinoPath); the tiles
    // below then only add the kernel gradient
    let wino_dx = (need_dx && single)
        .then(|| dx_as_convolution(g))
        .flatten()
        .filter(|gt| crate::fused::WinoPath::of(n, gt).is_some());
    let need_dx = need_dx && wino_dx.is_none();
    // the kernel gradient of the same convolutions by F(3×3, 2×2) (crate::wgrad): the
    // tiles below then run only for an input gradient Winograd's path does not compute
    let wino_dw = single && crate::fused::winograd_algo().is_some() && crate::wgrad::applies(n, g);
    // and of 1-D kernel-3 layers by F(3, 2) (crate::wino1d)
    let wino1_dw =
        single && crate::fused::winograd_algo().is_some() && crate::wino1d::grad_applies(n, g);
    let wino_dw = wino_dw || wino1_dw;
    // the items in a fixed number of groups, each with its own kernel-gradient sum,
    // added in group order at the end: the same sums in the same order, so the same
    // bits, whatever the thread count or the scheduling
    let per = n.div_ceil(n.clamp(1, GROUPS));
    let groups = n.div_ceil(per);
    let gemm_threads = (rayon::current_num_threads() / groups).max(1);
    let mut dx = if need_dx {
        zeros_par(n * plane_in, per * plane_in)
    } else {
        Vec::new()
    };
    let dx_parts: Vec<&mut [f32]> = if need_dx {
        dx.chunks_mut(per * plane_in).collect()
    } else {
        (0..groups).map(|_| Default::default()).collect()
    };
    // larger tiles than the forward's: each tile adds a product of inner size m into the
    // (O, K) kernel gradient, which is read and written whole every time
    let positions = (4 * TILE_FLOATS / k.max(g.o).max(1)).max(16);
    let wt = MatRef::new(w, k, g.o, 1, k).expect("kernel transposed (K, O)");
    // 1-D by taps: each tap's columns inside the input, once per call
    let taps = if by_taps(g) {
        tap_ranges(g)
    } else {
        Vec::new()
    };
    let sums: Vec<Vec<f32>> = dx_parts
        .into_par_iter()
        .enumerate()
        .map(|(gi, dxg)| {
            let items = gi * per..((gi + 1) * per).min(n);
            let wsums = wino_dw.then(|| match wino1_dw {
                true => crate::wino1d::grad_sums(x, dy, items.clone(), g, gemm_threads),
                false => crate::wgrad::sums(x, dy, items.clone(), g, gemm_threads),
            });
            if wino_dw && dxg.is_empty() {
                return wsums.expect("computed above");
            }
            // zeros written, not `calloc`'s untouched pages: the products below read
            // before they write, and a fresh page read first maps the shared zero page,
            // whose copy-on-write at the first write flushes the other CPUs' TLBs (7.5 %
            // of the short-chunk ResNet's training step, in the kernel's IPIs)
            let mut dw = if wino_dw {
                Vec::new()
            } else {
                zeros_par(g.o * k, g.o * k)
            };
            if by_taps(g) {
                // the kernel gradient directly from each item's transposed input where
                // the CPU allows (kernels::conv1d_tap_grads_into), summed over the
                // group's items as (taps, O, C) and put in the kernel's (O, C, taps)
                // order at the end; else by products per tap
                let direct = !wino_dw && tap_grads_direct(g.c);
                with_buffers(|b| {
                    let (xt, dwt) = (&mut b.cols, &mut b.prod);
                    if direct {
                        dwt.clear();
                        dwt.resize(g.kw * g.o * g.c, 0.0);
                    }
                    for item in items.clone() {
                        let dxi = match dxg.is_empty() {
                            true => &mut [][..],
                            false => &mut dxg[(item - items.start) * plane_in..][..plane_in],
                        };
                        let xi = &x[item * plane_in..][..plane_in];
                        let dyi = &dy[item * g.o * ow..][..g.o * ow];
                        if direct {
                            transpose_into(xi, (g.c, g.w), xt);
                            let s = g.stride;
                            conv1d_tap_grads_into(xt, g.c, dyi, (g.o, ow), &taps, s, dwt);
                        }
                        let dwi = (!direct && !wino_dw).then_some(&mut dw[..]);
                        tap_backward(xi, w, dyi, g, &taps, dwi, dxi);
                    }
                    if direct {
                        for (j, dwj) in dwt.chunks_exact(g.o * g.c).enumerate() {
                            for (d, v) in dw[j..].iter_mut().step_by(g.kw).zip(dwj) {
                                *d = *v;
                            }
                        }
                    }
                });
                return wsums.unwrap_or(dw);
            }
            // small planes: several whole items side by side in one product, so that
            // the kernel gradient is read and written once per stack, not per item
            let stack = if 2 * plane_out <= positions {
                positions / plane_out.max(1)
            } else {
                1
            };
            let work: Vec<(std::ops::Range<usize>, Tile)> = if stack > 1 {
                items
                    .clone()
                    .step_by(stack)
                    .map(|i| (i..(i + stack).min(items.end), whole(g, i)))
                    .collect()
            } else {
                tile_grid(items.len(), (oh, ow), (1, 1), positions)
                    .into_iter()
                    .map(|mut t| {
                        t.item += items.start;
                        (t.item..t.item + 1, t)
                    })
                    .collect()
            };
            with_buffers(|b| {
                let (cols, dcols, dyt) = (&mut b.cols, &mut b.prod, &mut b.best);
                for (its, t) in work {
                    let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
                    let m = tr * tw; // per item
                    let mm = m * its.len();
                    if !wino_dw {
                        cols.resize(k * mm, 0f32); // every element written below
                        for (b, item) in its.clone().enumerate() {
                            let xi = &x[item * plane_in..][..plane_in];
                            im2col_tile_ld(xi, g, &t, &mut cols[b * m..], mm);
                        }
                    }
                    // the tile's output gradient, (O, items × m)
                    dyt.clear();
                    dyt.reserve(g.o * mm);
                    for &(dyp, oc, oi) in &chans {
                        for item in its.clone() {
                            let base = (item * oi + oc) * plane_out;
                            for r in t.r0..t.r1 {
                                dyt.extend_from_slice(&dyp[base + r * ow + t.c0..][..tw]);
                            }
                        }
                    }
                    let dyr = MatRef::row_major(dyt, g.o, mm).expect("dy tile");
                    if !wino_dw {
                        // dW += dY · colsᵀ
                        let colst = MatRef::new(cols, mm, k, 1, mm).expect("cols transposed");
                        gemm_into_on(dyr, colst, &mut dw, true, gemm_threads);
                    }
                    if dxg.is_empty() {
                        continue;
                    }
                    // dcols = Wᵀ · dY, scattered back onto each item's input
                    dcols.resize(k * mm, 0f32); // overwritten by the product
                    gemm_into_on(wt, dyr, dcols, false, gemm_threads);
                    for (b, item) in its.clone().enumerate() {
                        let dxi = &mut dxg[(item - items.start) * plane_in..][..plane_in];
                        col2im_tile(&dcols[b * m..], mm, g, &t, dxi);
                    }
                }
            });
            wsums.unwrap_or(dw)
        })
        .collect();
    // the groups' kernel gradients, added in group order into the first one
    let mut sums = sums.into_iter();
    let mut dw = sums.next().expect("at least one group");
    let rest: Vec<Vec<f32>> = sums.collect();
    dw.par_chunks_mut(1 << 14).enumerate().for_each(|(i, d)| {
        for s in &rest {
            for (a, b) in d.iter_mut().zip(&s[i << 14..]) {
                *a += b;
            }
        }
    });
    if wino1_dw {
        dw = crate::wino1d::grad_finish(&dw, g.o, g.c);
    } else if wino_dw {
        dw = crate::wgrad::finish(&dw, g.o, g.c);
    }
    if let Some(gt) = wino_dx {
        // W'[c][o][i][j] = W[o][c][2 − i][2 − j] (1-D: W'[c][o][j] = W[o][c][2 − j])
        let taps = g.kh * g.kw;
        let mut wt = vec![0f32; w.len()];
        for (o, wo) in w.chunks_exact(g.c * taps).enumerate() {
            for (c, taps_oc) in wo.chunks_exact(taps).enumerate() {
                let dst = &mut wt[(c * g.o + o) * taps..][..taps];
                for (d, &v) in dst.iter_mut().zip(taps_oc.iter().rev()) {
                    *d = v;
                }
            }
        }
        dx = run(dy, &wt, n, &gt, &Steps::identity());
    }
    (dx, dw)
}

/// Groups of items in [`backward`], each with its own kernel-gradient sum (enough for
/// the threads of a small machine to share the work; more groups only add sums).
const GROUPS: usize = 4;

/// A zero-filled vector of `len` floats, written in parallel pieces of `chunk` (so the
/// pages of a large buffer are first touched, and faulted in, by writes on every thread
/// rather than zeroed by one).
pub(crate) fn zeros_par(len: usize, chunk: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    v.spare_capacity_mut()
        .par_chunks_mut(chunk.max(1))
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: every one of the `len` elements of the reserved capacity was written above.
    unsafe { v.set_len(len) };
    v
}

/// How [`build_par`] first sets each piece.
pub(crate) enum Init<'a> {
    /// Zeros.
    Zeros,
    /// The same piece of this slice (of the vector's length).
    Copy(&'a [f32]),
}

/// A vector of `len` floats built in parallel pieces of `chunk` (the last one shorter,
/// at least `min_pieces` per task): each piece is set as `init` says and then handed to
/// `then(i, piece)` on the same task, while it is in cache; the results come back in
/// piece order. One write per value, no separate fill pass.
pub(crate) fn build_par<R: Send>(
    len: usize,
    chunk: usize,
    min_pieces: usize,
    init: Init<'_>,
    then: impl Fn(usize, &mut [f32]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    use std::mem::MaybeUninit;
    let chunk = chunk.max(1);
    if let Init::Copy(src) = init {
        assert_eq!(src.len(), len, "source length");
    }
    let mut v: Vec<f32> = Vec::with_capacity(len);
    let results = v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk)
        .with_min_len(min_pieces.max(1))
        .enumerate()
        .map(|(i, piece)| {
            match init {
                Init::Zeros => piece.fill(MaybeUninit::new(0.0)),
                Init::Copy(src) => {
                    for (d, &s) in piece.iter_mut().zip(&src[i * chunk..]) {
                        d.write(s);
                    }
                }
            }
            // SAFETY: every element of `piece` was written just above (`fill`, or one
            // write per element of a source piece of the same length), so it may be
            // viewed as initialised floats.
            let piece = unsafe { &mut *(piece as *mut [MaybeUninit<f32>] as *mut [f32]) };
            then(i, piece)
        })
        .collect();
    // SAFETY: the pieces cover all `len` elements, each written above.
    unsafe { v.set_len(len) };
    (v, results)
}

/// Item `item`'s whole output plane as one tile.
fn whole(g: &Geo, item: usize) -> Tile {
    Tile {
        item,
        r0: 0,
        r1: g.poh,
        c0: 0,
        c1: g.pow,
    }
}

/// The geometry of the input gradient as a convolution of the output gradient, for a
/// stride-1, same-size ("padding 1") 3×3 or 1-D kernel-3 convolution without pooling:
/// `dY` `(O, H, W)` → `dX` `(C, H, W)`. `None` for other geometries.
fn dx_as_convolution(g: &Geo) -> Option<Geo> {
    let kernel = match (g.kh, g.kw, g.ph, g.pw) {
        (3, 3, 1, 1) => true,
        (1, 3, 0, 1) => g.h == 1,
        _ => false,
    };
    let same = kernel && g.stride == 1 && g.pool == (1, 1) && (g.poh, g.pow) == (g.h, g.w);
    same.then_some(Geo {
        c: g.o,
        o: g.c,
        ..*g
    })
}

/// One item's share of a [`by_taps`] convolution's gradients, tap by tap ([`tap_ranges`])
/// and without im2col: `dW[:, :, j] += dY · X_jᵀ` when `dw` is given (else the caller
/// computes it directly) and, when `dxi` is not empty, `dX_j += W[:, :, j]ᵀ · dY`,
/// where `X_j` is the `(C, columns)` view of the input that tap `j` reads (column
/// stride = the convolution's stride), written in place through strided views.
fn tap_backward(
    xi: &[f32],
    w: &[f32],
    dyi: &[f32],
    g: &Geo,
    taps: &[TapRange],
    mut dw: Option<&mut [f32]>,
    dxi: &mut [f32],
) {
    let (k, s, ow) = (g.k(), g.stride, g.pow);
    for t in taps {
        let (j, lo, hi, x0) = (t.j, t.q0, t.q1, t.x0);
        let dyv = MatRef::new(&dyi[lo..], g.o, hi - lo, ow, 1).expect("dy (O, columns)");
        if let Some(dw) = dw.as_deref_mut() {
            let xt = MatRef::new(&xi[x0..], hi - lo, g.c, s, g.w).expect("input tap, transposed");
            gemm_into_strided(dyv, xt, &mut dw[j..], (k, g.kw), true, 1);
        }
        if !dxi.is_empty() {
            let wt = MatRef::new(&w[j..], g.c, g.o, g.kw, k).expect("kernel tap, transposed");
            gemm_into_strided(wt, dyv, &mut dxi[x0..], (g.w, s), true, 1);
        }
    }
}

/// A 1-D convolution's kernel taps with the output columns each reads inside the input
/// (taps that read only padding left out).
fn tap_ranges(g: &Geo) -> Vec<TapRange> {
    let whole = whole(g, 0);
    (0..g.kw)
        .filter_map(|j| {
            let (lo, hi) = valid_cols(g, &whole, j);
            (lo < hi).then(|| TapRange {
                j,
                q0: lo,
                q1: hi,
                x0: lo * g.stride + j - g.pw,
            })
        })
        .collect()
}

/// `xt` (resized to `c·w`) = the transpose of `x` `(c, w)`, by blocks of 16 rows. Every
/// element is written, so a reused buffer needs no clearing.
fn transpose_into(x: &[f32], (c, w): (usize, usize), xt: &mut Vec<f32>) {
    xt.resize(c * w, 0.0);
    for c0 in (0..c).step_by(16) {
        let c1 = (c0 + 16).min(c);
        for p in 0..w {
            let row = &mut xt[p * c + c0..p * c + c1];
            for (i, d) in row.iter_mut().enumerate() {
                *d = x[(c0 + i) * w + p];
            }
        }
    }
}

/// The adjoint of [`crate::fused::im2col_tile_ld`]: adds the tile's im2col rows (`ld`
/// apart) back onto one item's input planes `(C, H, W)`.
fn col2im_tile(cols: &[f32], ld: usize, g: &Geo, t: &Tile, x: &mut [f32]) {
    let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
    let s = g.stride;
    let valid = |j: usize| crate::fused::valid_cols(g, t, j);
    for c in 0..g.c {
        let plane = &mut x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((c * g.kh + i) * g.kw + j) * ld..][..tr * tw];
                let (lo, hi) = valid(j);
                for r in 0..tr {
                    let iy = ((t.r0 + r) * s + i) as isize - g.ph as isize;
                    if iy < 0 || iy as usize >= g.h || lo >= hi {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let src = &row[r * tw + (lo - t.c0)..r * tw + (hi - t.c0)];
                    let x0 = lo * s + j - g.pw;
                    match s {
                        1 => {
                            for (d, v) in dst[x0..x0 + src.len()].iter_mut().zip(src) {
                                *d += v;
                            }
                        }
                        2 => {
                            // by pairs, so that it vectorises (`step_by` does not)
                            let dst = &mut dst[x0..];
                            let pairs = src.len().min(dst.len() / 2);
                            for (d, v) in dst.chunks_exact_mut(2).zip(&src[..pairs]) {
                                d[0] += v;
                            }
                            for (i, v) in src.iter().enumerate().skip(pairs) {
                                dst[2 * i] += v;
                            }
                        }
                        _ => {
                            for (d, v) in dst[x0..].iter_mut().step_by(s).zip(src) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `conv(x, w)` (no bias; dilation 1, one group) as one differentiable op: `x`
/// `(N, C, L)` with `w` `(O, C, K)`, or `(N, C, H, W)` with `(O, C, KH, KW)`; stride on
/// both axes, zero padding `(rows, columns)` (1-D: the second). `None` when the op does
/// not apply (not CPU, not f32, or shapes that do not fit): the caller takes the
/// composed path, which reports shape errors.
pub fn conv(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: (usize, usize),
) -> candle_core::Result<Option<Tensor>> {
    if !x.device().is_cpu()
        || x.dtype() != candle_core::DType::F32
        || w.dtype() != candle_core::DType::F32
        || stride == 0
    {
        return Ok(None);
    }
    let one_d = w.rank() == 3;
    let (n, c, h, wd, o, cw, kh, kw, ph, pw) = match (x.dims(), w.dims()) {
        (&[n, c, l], &[o, cw, k]) => (n, c, 1, l, o, cw, 1, k, 0, padding.1),
        (&[n, c, h, wd], &[o, cw, kh, kw]) => (n, c, h, wd, o, cw, kh, kw, padding.0, padding.1),
        _ => return Ok(None),
    };
    if cw != c || h + 2 * ph < kh || wd + 2 * pw < kw || n == 0 {
        return Ok(None);
    }
    let (oh, ow) = (
        (h + 2 * ph - kh) / stride + 1,
        (wd + 2 * pw - kw) / stride + 1,
    );
    let g = Geo {
        c,
        h,
        w: wd,
        o,
        kh,
        kw,
        stride,
        ph,
        pw,
        poh: oh,
        pow: ow,
        pool: (1, 1),
    };
    Ok(Some(
        x.contiguous()?
            .apply_op2(&w.contiguous()?, ConvOp { g, n, one_d })?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn uniform(rng: &mut mirkit_core::Rng, shape: &[usize]) -> Tensor {
        crate::conv::uniform(rng, shape, &Device::Cpu)
    }

    use crate::conv::max_abs;

    /// Every piece set as asked (zeros, or a copy of the source), handed to `then` with
    /// its index, the results in piece order; pieces of `chunk` values and a shorter
    /// last one.
    #[test]
    fn build_par_sets_and_visits_every_piece() {
        let src: Vec<f32> = (0..1003).map(|i| i as f32 * 0.5 - 7.0).collect();
        for (chunk, min) in [(100, 1), (7, 3), (2000, 1)] {
            let (v, r) = build_par(src.len(), chunk, min, Init::Copy(&src), |i, p| {
                p.iter_mut().for_each(|x| *x *= 2.0);
                (i, p.len())
            });
            let want: Vec<f32> = src.iter().map(|x| x * 2.0).collect();
            assert_eq!(v, want);
            let lens: Vec<(usize, usize)> = (0..src.len().div_ceil(chunk))
                .map(|i| (i, chunk.min(src.len() - i * chunk)))
                .collect();
            assert_eq!(r, lens);
            let (z, s) = build_par(50, chunk, min, Init::Zeros, |_, p| p.iter().sum::<f32>());
            assert!(z.iter().all(|&x| x == 0.0) && z.len() == 50);
            assert!(s.iter().all(|&x| x == 0.0));
        }
    }

    /// Output and both gradients equal the composed im2col + GEMM path (1-D and 2-D,
    /// strides, padding, batch 1 and 3, long enough for several tiles per item).
    #[test]
    fn equals_composed_path() {
        let mut rng = mirkit_core::Rng::new(31);
        // (x shape, w shape, stride, padding)
        type Case<'a> = (&'a [usize], &'a [usize], usize, (usize, usize));
        let cases: [Case; 18] = [
            (&[3, 4, 50], &[5, 4, 3], 1, (0, 1)),
            // tap products (≥ 32 channels) with stride and padding
            (&[2, 40, 101], &[6, 40, 5], 2, (0, 2)),
            // channels a multiple of 16: the kernel gradient directly (AVX-512), with
            // stride and padding, the 1-D CNN's first layer, more columns than a pass
            (&[2, 48, 101], &[6, 48, 5], 2, (0, 2)),
            (&[3, 128, 94], &[32, 128, 8], 1, (0, 0)),
            (&[2, 32, 300], &[13, 32, 3], 3, (0, 1)),
            (&[1, 1, 243], &[6, 1, 3], 3, (0, 0)),
            (&[2, 3, 40], &[2, 3, 7], 2, (0, 3)),
            // kernel 3, padding 1, ≥ 32 channels: forward and input gradient by F(4, 3)
            // (crate::wino1d; 3000 positions per item) and by F(2, 3) (200), the kernel
            // gradient by F(3, 2) (9000 positions in all; 1200: by taps)
            (&[3, 64, 3000], &[32, 64, 3], 1, (0, 1)),
            (&[6, 32, 200], &[48, 32, 3], 1, (0, 1)),
            (&[2, 3, 9, 11], &[4, 3, 3, 3], 1, (1, 1)),
            (&[2, 3, 9, 11], &[4, 3, 3, 3], 2, (1, 1)),
            (&[1, 2, 12, 30], &[3, 2, 5, 1], 1, (2, 0)),
            // stride-1 3×3 with ≥ 16 channels and ≥ 4096 positions: forward, input
            // gradient (F(2×2, 3×3)) and kernel gradient (F(3×3, 2×2), crate::wgrad) by
            // Winograd's paths (odd sizes: half-used blocks at the edges)
            (&[1, 16, 65, 67], &[20, 16, 3, 3], 1, (1, 1)),
            (&[2, 24, 47, 45], &[16, 24, 3, 3], 1, (1, 1)),
            // planes too small for the input gradient's Winograd path: its tiles run for
            // the input gradient alone, the kernel gradient by F(3×3, 2×2)
            (&[80, 16, 7, 8], &[17, 16, 3, 3], 1, (1, 1)),
            // more items than groups, unevenly (7 = 2 + 2 + 2 + 1); small planes, so
            // several items side by side in one product (stride 2, and a 1×1 output)
            (&[7, 5, 4, 3], &[6, 5, 3, 3], 2, (1, 1)),
            (&[9, 6, 2, 2], &[4, 6, 3, 3], 2, (1, 1)),
            (&[5, 3, 6, 7], &[4, 3, 3, 3], 1, (1, 1)),
        ];
        for (xs, ws, stride, pad) in cases {
            let x = Var::from_tensor(&uniform(&mut rng, xs)).unwrap();
            let w = Var::from_tensor(&uniform(&mut rng, ws)).unwrap();
            let got = conv(&x, &w, stride, pad).unwrap().unwrap();
            let want = if ws.len() == 3 {
                crate::conv::conv1d_gemm(&x, &w, None, stride, pad.1).unwrap()
            } else {
                let xp = x
                    .pad_with_zeros(2, pad.0, pad.0)
                    .unwrap()
                    .pad_with_zeros(3, pad.1, pad.1)
                    .unwrap();
                crate::conv2d::conv2d_gemm(&xp, &w, None, stride, 0).unwrap()
            };
            assert_eq!(got.dims(), want.dims());
            // both within f32's rounding bound of the exact convolution (the tap
            // products of 1-D layers with many channels sum in another order than
            // im2col's single product, so the two differ by rounding: 1.2e-5 on outputs
            // near 15 for 64 channels × 3 taps)
            let what = format!("forward {xs:?} {ws:?}");
            crate::conv::assert_conv_rounding(&got, &x, &w, stride, pad, &what);
            crate::conv::assert_conv_rounding(&want, &x, &w, stride, pad, &what);
            let g = uniform(&mut rng, got.dims());
            let ga = (&got * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&want * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let scale = 1e-5 * (xs.iter().product::<usize>() as f32).sqrt();
            for v in [&x, &w] {
                let e = max_abs(ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(e < scale.max(1e-4), "gradient {xs:?} {ws:?}: {e}");
            }
        }
    }

    /// The gradients have the same bits whatever the number of threads (the items'
    /// kernel-gradient sums are grouped and added in a fixed order).
    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        let mut rng = mirkit_core::Rng::new(34);
        for (xs, ws, stride) in [
            (&[10usize, 6, 9, 11][..], &[8usize, 6, 3, 3][..], 2usize),
            (&[6, 4, 3, 3], &[5, 4, 3, 3], 1),
            // 1-D, by taps, the kernel gradient directly where the CPU allows
            (&[9, 32, 40], &[8, 32, 3], 1),
            // 1-D, the forward and input gradient by F(4, 3), the kernel gradient by
            // F(3, 2) (crate::wino1d)
            (&[14, 32, 300], &[40, 32, 3], 1),
            // the kernel gradient by F(3×3, 2×2) (crate::wgrad), items in groups
            (&[5, 16, 29, 30], &[16, 16, 3, 3], 1),
        ] {
            let x = Var::from_tensor(&uniform(&mut rng, xs)).unwrap();
            let w = Var::from_tensor(&uniform(&mut rng, ws)).unwrap();
            let mut out = vec![xs[0], ws[0]];
            out.extend(xs[2..].iter().map(|d| d.div_ceil(stride)));
            let gw = uniform(&mut rng, &out);
            let grads = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let y = conv(&x, &w, stride, (1, 1)).unwrap().unwrap();
                    let g = (&y * &gw).unwrap().sum_all().unwrap().backward().unwrap();
                    [&x, &w].map(|v| {
                        g.get(v)
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f32>()
                            .unwrap()
                    })
                })
            };
            let one = grads(1);
            for t in [2, 3, 5] {
                assert!(grads(t) == one, "{xs:?} with {t} threads");
            }
        }
    }

    /// Both gradients against central differences (the sum is linear in each argument,
    /// so the quotient is exact up to rounding).
    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = mirkit_core::Rng::new(32);
        for (xs, ws, stride, pad, step) in [
            (
                vec![2usize, 3, 17],
                vec![4usize, 3, 3],
                1usize,
                (0usize, 1usize),
                2usize,
            ),
            (vec![2, 2, 7, 8], vec![3, 2, 3, 3], 2, (1, 1), 2),
            // tap products (≥ 32 channels), stride and padding
            (vec![2, 33, 20], vec![3, 33, 4], 2, (0, 1), 2),
            // and the direct kernel gradient (channels a multiple of 16)
            (vec![2, 32, 20], vec![3, 32, 4], 2, (0, 1), 2),
            // 1-D, the input gradient by F(4, 3) (crate::wino1d): every 89th value
            (vec![1, 32, 1100], vec![32, 32, 3], 1, (0, 1), 89),
            // and the kernel gradient by F(3, 2) (4400 positions; the output gradient
            // sparse, below)
            (vec![4, 32, 1100], vec![32, 32, 3], 1, (0, 1), 89),
            // the kernel gradient by F(3×3, 2×2) (crate::wgrad; the input's by F(2×2,
            // 3×3)): 4160 positions, every 97th value of each argument
            (vec![1, 16, 64, 65], vec![16, 16, 3, 3], 1, (1, 1), 97),
        ] {
            let x = Var::from_tensor(&uniform(&mut rng, &xs)).unwrap();
            let w = Var::from_tensor(&uniform(&mut rng, &ws)).unwrap();
            let y = conv(&x, &w, stride, pad).unwrap().unwrap();
            let mut g = uniform(&mut rng, y.dims());
            if y.elem_count() > 100_000 {
                // every 31st output's gradient only: the loss then sums ~4000 terms, whose
                // f32 rounding stays below the quotients' tolerance (with all 140 800 it
                // moved them by ~1e-3); the kernel gradient still runs over every block
                let mask: Vec<f32> = (0..y.elem_count())
                    .map(|i| f32::from(u8::from(i % 31 == 0)))
                    .collect();
                let mask = Tensor::from_vec(mask, y.dims(), y.device()).unwrap();
                g = (g * mask).unwrap();
            }
            crate::conv::check_conv_grads(
                |xx, ww| conv(xx, ww, stride, pad).unwrap().unwrap(),
                &x,
                &w,
                &g,
                step,
                &format!("{xs:?} {ws:?}"),
            );
        }
    }

    /// Shapes the op does not handle are left to the caller.
    #[test]
    fn unsupported_shapes_are_declined() {
        let mut rng = mirkit_core::Rng::new(33);
        let x = uniform(&mut rng, &[1, 3, 10]);
        assert!(conv(&x, &uniform(&mut rng, &[2, 4, 3]), 1, (0, 0))
            .unwrap()
            .is_none());
        assert!(conv(&x, &uniform(&mut rng, &[2, 3, 30]), 1, (0, 0))
            .unwrap()
            .is_none());
        assert!(conv(&x, &uniform(&mut rng, &[2, 3, 3]), 0, (0, 0))
            .unwrap()
            .is_none());
    }
}
