//! 2-D convolution as an explicit im2col + matrix product on the CPU.
//!
//! Candle 0.11.1's CPU `conv2d` builds its im2col tiles element by element (index
//! arithmetic and a strided scatter per value) and scatters the product back the same
//! way; for musicnn's 7×38 and 7×67 front-end filters that copying took longer than the
//! matrix products themselves. Here the patches are copied row by row (each kernel offset
//! `(c, i, j)` is a run of contiguous input samples per output row), the whole batch goes
//! through one batched matrix product, and the backward pass is the same two pieces:
//! `col2im` (the adjoint of im2col, a scatter-add by rows) and matrix products. Both
//! custom ops know their own gradient, so `conv2d_gemm` is differentiable to any order
//! Candle supports.
//!
//! Off the CPU (the `cuda` feature) and for other dtypes `conv2d_gemm` falls back to
//! Candle's `conv2d`.

use crate::error::{invalid, Result};
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Shape, Tensor};
use rayon::prelude::*;

/// Geometry of one convolution (dilation 1, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    /// For output column `o` and kernel offset `k` (both along one axis): the input
    /// index, when inside the input.
    #[inline(always)]
    fn src(&self, o: usize, k: usize, len: usize) -> Option<usize> {
        let i = (o * self.stride + k) as isize - self.pad as isize;
        (i >= 0 && (i as usize) < len).then_some(i as usize)
    }
    /// The output columns `ox` whose input column `ox·stride + j − pad` lies inside the
    /// input: `lo..hi`.
    fn valid_cols(&self, j: usize) -> (usize, usize) {
        let s = self.stride;
        // ox·s + j ≥ pad  and  ox·s + j − pad < w
        let lo = self.pad.saturating_sub(j).div_ceil(s).min(self.ow);
        let hi = if self.w + self.pad > j {
            (self.w + self.pad - j).div_ceil(s).min(self.ow)
        } else {
            0
        };
        (lo, hi.max(lo))
    }
    /// For kernel offset `(i, j)`: each output row `oy` whose input row `iy` lies inside
    /// the input, with the output columns `lo..hi` that read inside it and the input
    /// column `x0` that output column `lo` reads (the next ones step by `stride`).
    fn runs(&self, i: usize, j: usize) -> impl Iterator<Item = Run> + '_ {
        let (lo, hi) = self.valid_cols(j);
        // (lo < hi: then lo·stride + j ≥ pad by the choice of lo)
        let x0 = (lo * self.stride + j).saturating_sub(self.pad);
        let rows = if lo < hi { 0..self.oh } else { 0..0 };
        rows.filter_map(move |oy| self.src(oy, i, self.h).map(|iy| Run { oy, iy, lo, hi, x0 }))
    }
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn cols(&self) -> usize {
        self.oh * self.ow
    }
}

/// One stretch of an im2col row: see [`Geometry::runs`].
struct Run {
    oy: usize,
    iy: usize,
    lo: usize,
    hi: usize,
    x0: usize,
}

/// `(N, C, H, W)` → `(N, C·KH·KW, OH·OW)` patches, rows ordered like a `(O, C, KH, KW)`
/// kernel flattened to `(O, C·KH·KW)`.
struct Im2Col(Geometry);

/// The adjoint of [`Im2Col`]: `(N, C·KH·KW, OH·OW)` → `(N, C, H, W)`, overlapping
/// patches summed.
struct Col2Im(Geometry);

/// The f32 values of a contiguous CPU storage (the custom ops' input check).
pub(crate) fn contiguous_f32<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{what}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "mirkit-im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let x = contiguous_f32(s, l, "im2col")?;
        let (rows, cols) = (g.rows(), g.cols());
        let mut out = vec![0.0f32; g.n * rows * cols];
        let plane = g.h * g.w;
        // one task per patch row (a kernel offset of one item), in parallel
        out.par_chunks_mut(cols).enumerate().for_each(|(br, row)| {
            let (b, r) = (br / rows, br % rows);
            let (c, i, j) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
            let xp = &x[(b * g.c + c) * plane..(b * g.c + c + 1) * plane];
            // rows outside the input are padding: left at zero
            for run in g.runs(i, j) {
                let dst = &mut row[run.oy * g.ow..][run.lo..run.hi];
                let src = &xp[run.iy * g.w..(run.iy + 1) * g.w][run.x0..];
                if g.stride == 1 {
                    dst.copy_from_slice(&src[..dst.len()]);
                } else {
                    for (d, v) in dst.iter_mut().zip(src.iter().step_by(g.stride)) {
                        *d = *v;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((g.n, rows, cols))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "mirkit-col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let cols_in = contiguous_f32(s, l, "col2im")?;
        let (rows, cols) = (g.rows(), g.cols());
        let plane = g.h * g.w;
        let mut out = vec![0.0f32; g.n * g.c * plane];
        // one task per input plane (item, channel): no two tasks write the same value
        out.par_chunks_mut(plane).enumerate().for_each(|(bc, xp)| {
            let (b, c) = (bc / g.c, bc % g.c);
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let r = (c * g.kh + i) * g.kw + j;
                    let row = &cols_in[(b * rows + r) * cols..(b * rows + r + 1) * cols];
                    for run in g.runs(i, j) {
                        let src = &row[run.oy * g.ow..][run.lo..run.hi];
                        let dst = &mut xp[run.iy * g.w..(run.iy + 1) * g.w][run.x0..];
                        if g.stride == 1 {
                            for (d, v) in dst.iter_mut().zip(src) {
                                *d += v;
                            }
                        } else {
                            for (d, v) in dst.iter_mut().step_by(g.stride).zip(src) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((g.n, g.c, g.h, g.w))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col(self.0))?))
    }
}

/// `F.conv2d(x, w, b, stride, padding)` for `x` `(N, C, H, W)` and `w` `(O, C, KH, KW)`
/// (square stride and padding, dilation 1, one group): im2col patches
/// `(N, C·KH·KW, OH·OW)` multiplied by `w` reshaped to `(O, C·KH·KW)`. Same results as
/// Candle's `conv2d` up to float rounding; gradients through both pieces.
pub fn conv2d_gemm(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (o, cw, kh, kw) = w.dims4()?;
    if cw != c || stride == 0 || h + 2 * padding < kh || wd + 2 * padding < kw {
        return Err(invalid(
            "conv2d",
            format!(
                "input {:?}, kernel {:?}, stride {stride}",
                x.dims(),
                w.dims()
            ),
            "channels must agree, stride > 0, kernel no larger than the padded input",
        ));
    }
    let (oh, ow) = (
        (h + 2 * padding - kh) / stride + 1,
        (wd + 2 * padding - kw) / stride + 1,
    );
    let y = if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        let g = Geometry {
            n,
            c,
            h,
            w: wd,
            kh,
            kw,
            stride,
            pad: padding,
            oh,
            ow,
        };
        let cols = x.contiguous()?.apply_op1(Im2Col(g))?;
        w.reshape((o, c * kh * kw))?
            .broadcast_matmul(&cols)?
            .reshape((n, o, oh, ow))?
    } else {
        x.conv2d(w, padding, stride, 1, 1)?
    };
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, o, 1, 1))?)?,
        None => y,
    })
}

/// `candle_nn::conv2d` with the same variables, names and initialisation, computed by
/// [`conv2d_gemm`] (dilation 1, one group).
pub fn conv2d(
    cin: usize,
    cout: usize,
    kernel: usize,
    cfg: candle_nn::Conv2dConfig,
    vb: candle_nn::VarBuilder,
) -> Result<Conv2dGemm> {
    Conv2dGemm::from_candle(&candle_nn::conv2d(cin, cout, kernel, cfg, vb)?)
}

/// A `candle_nn::Conv2d` (same parameters and names) computed by [`conv2d_gemm`].
#[derive(Debug, Clone)]
pub struct Conv2dGemm {
    /// `(O, C, KH, KW)`.
    pub weight: Tensor,
    /// `(O,)`.
    pub bias: Option<Tensor>,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding on all four sides.
    pub padding: usize,
}

impl Conv2dGemm {
    /// Wraps a Candle convolution; an error for dilation or groups other than 1.
    pub fn from_candle(c: &candle_nn::Conv2d) -> Result<Self> {
        let cfg = c.config();
        crate::conv::check_plain("conv2d", cfg.dilation, cfg.groups)?;
        Ok(Self {
            weight: c.weight().clone(),
            bias: c.bias().cloned(),
            stride: cfg.stride,
            padding: cfg.padding,
        })
    }
}

impl Module for Conv2dGemm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv2d_gemm(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
        )
        .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::check_conv_grads;
    use candle_core::{Device, Var};

    fn uniform(rng: &mut mirkit_core::Rng, shape: &[usize]) -> Tensor {
        crate::conv::uniform(rng, shape, &Device::Cpu)
    }

    #[test]
    fn equals_candle_forward_and_finite_difference_gradients() {
        let mut rng = mirkit_core::Rng::new(4);
        for (c, o, kh, kw, h, w, stride, pad) in [
            (2, 3, 3, 3, 7, 6, 1, 1),
            (1, 4, 3, 5, 8, 9, 1, 0),
            (3, 2, 3, 3, 9, 8, 2, 1),
            (2, 2, 1, 1, 4, 5, 1, 0),
            (1, 2, 4, 2, 6, 7, 3, 2),
        ] {
            let x = Var::from_tensor(&uniform(&mut rng, &[2, c, h, w])).unwrap();
            let k = Var::from_tensor(&uniform(&mut rng, &[o, c, kh, kw])).unwrap();
            let b = uniform(&mut rng, &[o]);
            let want = x
                .conv2d(&k, pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, o, 1, 1)).unwrap())
                .unwrap();
            let got = conv2d_gemm(&x, &k, Some(&b), stride, pad).unwrap();
            assert_eq!(got.dims(), want.dims());
            let d = (&got - &want).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
            let g = uniform(&mut rng, got.dims());
            check_conv_grads(
                |xx, kk| conv2d_gemm(xx, kk, Some(&b), stride, pad).unwrap(),
                &x,
                &k,
                &g,
                2,
                &format!("c {c} o {o} k {kh}x{kw} in {h}x{w} s {stride} p {pad}"),
            );
        }
    }

    /// `⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩` for random `x`, `y` (col2im is the adjoint),
    /// with and without stride and padding.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let mut rng = mirkit_core::Rng::new(9);
        for (stride, pad, kh, kw) in [(1, 1, 3, 3), (2, 0, 3, 2), (3, 2, 4, 4)] {
            let (n, c, h, w) = (2, 3, 9, 8);
            let g = Geometry {
                n,
                c,
                h,
                w,
                kh,
                kw,
                stride,
                pad,
                oh: (h + 2 * pad - kh) / stride + 1,
                ow: (w + 2 * pad - kw) / stride + 1,
            };
            let x = uniform(&mut rng, &[n, c, h, w]);
            let y = uniform(&mut rng, &[n, g.rows(), g.cols()]);
            let dot = |a: &Tensor, b: &Tensor| -> f64 {
                (a * b)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64
            };
            let lhs = dot(&x.apply_op1(Im2Col(g)).unwrap(), &y);
            let rhs = dot(&x, &y.apply_op1(Col2Im(g)).unwrap());
            assert!(
                (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
                "{lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut rng = mirkit_core::Rng::new(1);
        let x = uniform(&mut rng, &[1, 3, 5, 5]);
        assert!(conv2d_gemm(&x, &uniform(&mut rng, &[2, 4, 3, 3]), None, 1, 0).is_err());
        assert!(conv2d_gemm(&x, &uniform(&mut rng, &[2, 3, 7, 3]), None, 1, 0).is_err());
        assert!(conv2d_gemm(&x, &uniform(&mut rng, &[2, 3, 3, 3]), None, 0, 0).is_err());
    }
}
