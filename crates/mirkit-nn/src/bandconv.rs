//! Musicnn's "vertical"/"timbral" filters for inference: a one-channel convolution that
//! is *valid* along the mel-band axis, followed by the max over all bands, computed in the
//! frequency domain along the band axis.
//!
//! Pons et al.'s musicnn front end (and Won et al. 2020's PyTorch port of it) convolves
//! the log-mel with 7-frame × 38- and 67-band filters (204 each) and keeps, per channel and
//! frame, only the max over the bands of a per-channel monotone map of the result
//! (bias, ReLU, batch norm in either order). Two facts make that cheap:
//!
//! * A length-`N` circular cross-correlation equals the valid one for its first
//!   `N − width + 1` outputs (no wrap-around reaches them), and in the DFT domain it is a
//!   product per bin: `Y_k = Σ_dt conj(K_k[dt]) · X_k[t + dt]`, `taps` small complex
//!   products per bin, then a real inverse DFT restricted to the valid outputs. For the
//!   7×38 and 7×67 filters over 96 bands that is about 2.6× fewer multiply-adds than the
//!   direct convolution (1.14 G per 3 s patch), with f32 round-off of the order of 1e-6
//!   of the values (tested against the direct form).
//! * A per-channel monotone map `f` (bias, ReLU, batch norm — whose scale may be
//!   negative) commutes with the max up to direction: `max_f f(y_f) = max(f(max_f y_f),
//!   f(min_f y_f))`. So only the raw convolution's max and min over the bands are
//!   needed ([`BandConv::max_min`]); the caller applies its own `f` to both.
//!
//! After the forward DFT everything runs fused, a few output channels of one item at a
//! time: the per-bin products, the inverse DFT and the reduction stay in cache. (Through
//! whole Candle tensors the two intermediates were 15 MB and 9 MB per patch, written
//! zero-filled and read back: 70 % of musicnn's tagging time.) The inverse DFT is an FFT
//! over lane vectors of columns that folds its outputs straight into the max and min
//! ([`crate::colfft`]: ~37 ns per column against ~100 ns for the dense product it
//! replaced, which stays as the path for CPUs without AVX2/FMA and for band counts the FFT
//! does not plan).
//!
//! Used by `mirkit-models` for musicnn 0.1.0's timbral filters and Won 2020's Musicnn
//! vertical filters in eval mode; training uses the differentiable im2col path.

use crate::colfft::ColumnIrfft;
use crate::error::{invalid, NnError, Result};
use crate::kernels::{column_max_min, gemm_into, MatRef};
use candle_core::{Device, Tensor};

/// Output channels per fused piece: the per-bin products of 4 channels × 187 frames
/// (290 KB) and their inverse DFT (≤ 180 KB) stay in the L2 cache.
const CHANNELS_PER_PIECE: usize = 4;

/// A one-input-channel convolution, `taps` frames × `width` bands, valid along `bands`
/// bands, reduced to its max and min over the bands (see the [module docs](self)).
pub struct BandConv {
    /// `(bands, 2·bins)`: `x (.., bands) @ fwd` = `[Re X_0, Im X_0, Re X_1, …]`.
    fwd: Tensor,
    /// `(bins, 2·O, 2·taps)`: per bin, rows (real O | imaginary O) of the output, columns
    /// (real/imaginary part of X, time tap): `[[Wr, −Wi], [Wi, Wr]]` with
    /// `W = conj(DFT(kernel row))`.
    w: Vec<f32>,
    /// `(F_out, 2·bins)`: the real inverse DFT at the valid outputs, unscaled (the `1/N`
    /// is in `w`); the path for band counts without a [`ColumnIrfft`] plan.
    inv: Vec<f32>,
    /// The same inverse DFT as an FFT over lane vectors of columns, reduced to the max
    /// and min on the fly, where the CPU and `bands` allow (AVX2 and FMA; even, `bands/2` a
    /// product of 2s and 3s).
    irfft: Option<ColumnIrfft>,
    bands: usize,
    bins: usize,
    f_out: usize,
    taps: usize,
    out_ch: usize,
}

impl BandConv {
    /// From the kernel `(O, 1, taps, width)` laid out (time, band), for inputs of `bands`
    /// bands (`width ≤ bands`).
    pub fn new(kernel: &Tensor, bands: usize) -> Result<Self> {
        let (o, cin, kh, kw) = kernel.dims4()?;
        if cin != 1 || o == 0 || kh == 0 || kw == 0 {
            return Err(NnError::Shape {
                got: kernel.dims().to_vec(),
                why: "band convolution kernel must be (out > 0, 1, taps > 0, width > 0)".into(),
            });
        }
        if kw > bands {
            return Err(invalid(
                "bands",
                bands,
                format!("fewer than the kernel width {kw}"),
            ));
        }
        let (n, bins) = (bands, bands / 2 + 1);
        let tau = 2.0 * std::f64::consts::PI / n as f64;
        // every angle is a multiple of 2π/n: one table
        let (cos, sin): (Vec<f64>, Vec<f64>) = (0..n)
            .map(|m| ((tau * m as f64).cos(), (tau * m as f64).sin()))
            .unzip();
        let mut fwd = vec![0f32; n * 2 * bins];
        for t in 0..n {
            for k in 0..bins {
                let m = (k * t) % n;
                fwd[t * 2 * bins + 2 * k] = cos[m] as f32;
                fwd[t * 2 * bins + 2 * k + 1] = -sin[m] as f32;
            }
        }
        let kv: Vec<f32> = kernel
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let mut w = vec![0f32; bins * 2 * o * 2 * kh];
        for k in 0..bins {
            for oc in 0..o {
                for dt in 0..kh {
                    let (mut wr, mut wi) = (0f64, 0f64);
                    for j in 0..kw {
                        let v = kv[(oc * kh + dt) * kw + j] as f64;
                        let m = (k * j) % n;
                        wr += v * cos[m];
                        wi += v * sin[m]; // conj of Σ v·e^{−iθ}
                    }
                    // the inverse DFT's 1/N, folded in
                    let (wr, wi) = (wr / n as f64, wi / n as f64);
                    let row_r = (k * 2 * o + oc) * 2 * kh;
                    let row_i = (k * 2 * o + o + oc) * 2 * kh;
                    w[row_r + dt] = wr as f32;
                    w[row_r + kh + dt] = -wi as f32;
                    w[row_i + dt] = wi as f32;
                    w[row_i + kh + dt] = wr as f32;
                }
            }
        }
        let f_out = n - kw + 1;
        let mut inv = vec![0f32; f_out * 2 * bins];
        for f in 0..f_out {
            for k in 0..bins {
                let s = if k == 0 || 2 * k == n { 1.0 } else { 2.0 };
                let m = (k * f) % n;
                inv[f * 2 * bins + 2 * k] = (s * cos[m]) as f32;
                inv[f * 2 * bins + 2 * k + 1] = (-s * sin[m]) as f32;
            }
        }
        Ok(Self {
            fwd: Tensor::from_vec(fwd, (n, 2 * bins), &Device::Cpu)?,
            w,
            inv,
            irfft: ColumnIrfft::new(n, f_out),
            bands: n,
            bins,
            f_out,
            taps: kh,
            out_ch: o,
        })
    }

    /// The same convolution computing its inverse DFT as a dense matrix product (the path
    /// for band counts without an FFT plan), to test one path against the other.
    #[cfg(test)]
    fn dense_inverse(mut self) -> Self {
        self.irfft = None;
        self
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_ch
    }

    /// Time taps of the kernel (the input is padded in time by the caller).
    pub fn taps(&self) -> usize {
        self.taps
    }

    /// The raw (bias-free) convolution's max and min over the valid bands, for an input
    /// `(B, 1, T + taps − 1, bands)` already padded in time as the model pads it: `(B, O,
    /// T, 1)` each. CPU, f32.
    pub fn max_min(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        use rayon::prelude::*;
        let (b, c, tp, n) = x.dims4()?;
        let (bins, kh, o) = (self.bins, self.taps, self.out_ch);
        if c != 1 || tp < kh || n != self.bands || b == 0 {
            return Err(NnError::Shape {
                got: x.dims().to_vec(),
                why: format!("band convolution needs (B > 0, 1, ≥ {kh}, {})", self.bands),
            });
        }
        let t = tp + 1 - kh;
        // DFT of every frame along the bands, laid out (B, bins, 2, T') so that each
        // (bin, part) is a row over time
        let xf: Vec<f32> = x
            .to_dtype(candle_core::DType::F32)?
            .reshape((b * tp, n))?
            .matmul(&self.fwd)?
            .reshape((b, tp, bins, 2))?
            .permute((0, 2, 3, 1))?
            .flatten_all()?
            .to_vec1()?;
        let mut mx = vec![0f32; b * o * t];
        let mut mn = vec![0f32; b * o * t];
        let piece = CHANNELS_PER_PIECE * t;
        mx.par_chunks_mut(o * t)
            .zip(mn.par_chunks_mut(o * t))
            .zip(xf.par_chunks(bins * 2 * tp))
            .for_each(|((mxb, mnb), xb)| {
                mxb.par_chunks_mut(piece)
                    .zip(mnb.par_chunks_mut(piece))
                    .enumerate()
                    .for_each_init(
                        || (Vec::new(), Vec::new()),
                        |(y, out), (i, (mxc, mnc))| {
                            let o0 = i * CHANNELS_PER_PIECE;
                            let p = Piece {
                                xb,
                                tp,
                                t,
                                o0,
                                ob: mxc.len() / t,
                            };
                            self.piece(p, y, out, mxc, mnc);
                        },
                    );
            });
        let pack = |v: Vec<f32>| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, (b, o, t, 1), &Device::Cpu)?)
        };
        Ok((pack(mx)?, pack(mn)?))
    }

    /// Channels `o0..o0 + ob` of one item: per-bin products into `y` `(2·bins, ob·t)`,
    /// inverse DFT into `out` `(F_out, ob·t)`, max and min down the columns into
    /// `mx`/`mn` `(ob, t)`.
    fn piece(
        &self,
        p: Piece<'_>,
        y: &mut Vec<f32>,
        out: &mut Vec<f32>,
        mx: &mut [f32],
        mn: &mut [f32],
    ) {
        let (bins, kh, o) = (self.bins, self.taps, self.out_ch);
        let Piece { xb, tp, t, o0, ob } = p;
        let n = ob * t;
        y.resize(2 * bins * n, 0.0);
        for k in 0..bins {
            let xk = &xb[k * 2 * tp..(k + 1) * 2 * tp];
            let wk = &self.w[k * 2 * o * 2 * kh..(k + 1) * 2 * o * 2 * kh];
            let (re, im) = y[2 * k * n..(2 * k + 2) * n].split_at_mut(n);
            for ol in 0..ob {
                let rows = TapRows {
                    x: xk,
                    tp,
                    kh,
                    wr: &wk[(o0 + ol) * 2 * kh..(o0 + ol + 1) * 2 * kh],
                    wi: &wk[(o + o0 + ol) * 2 * kh..(o + o0 + ol + 1) * 2 * kh],
                };
                taps_two_rows(
                    rows,
                    &mut re[ol * t..(ol + 1) * t],
                    &mut im[ol * t..(ol + 1) * t],
                );
            }
        }
        match &self.irfft {
            Some(fft) => fft.max_min(y, n, mx, mn),
            None => {
                out.resize(self.f_out * n, 0.0);
                let inv = MatRef::row_major(&self.inv, self.f_out, 2 * bins).expect("inverse DFT");
                let ym = MatRef::row_major(y, 2 * bins, n).expect("per-bin products");
                gemm_into(inv, ym, out, false);
                column_max_min(out, n, mx, mn);
            }
        }
    }
}

/// One fused piece of [`BandConv::max_min`]: `xb` holds one item's spectra `(bins, 2,
/// tp)`, `t` output frames, output channels `o0..o0 + ob`.
#[derive(Clone, Copy)]
struct Piece<'a> {
    xb: &'a [f32],
    tp: usize,
    t: usize,
    o0: usize,
    ob: usize,
}

/// The inputs of the per-bin products of one bin and one output channel: `x` holds the
/// bin's real and imaginary rows over time (`2 × tp`), `wr`/`wi` the weights of the
/// channel's real and imaginary output rows (`2·kh`: part of `x`, time tap).
#[derive(Clone, Copy)]
struct TapRows<'a> {
    x: &'a [f32],
    tp: usize,
    kh: usize,
    wr: &'a [f32],
    wi: &'a [f32],
}

/// `re[t] = Σ_{p, dt} wr[p·kh + dt] · x[p·tp + dt + t]` and the same with `wi` into `im`,
/// for `t < re.len()`: the 2·kh time taps over the real and imaginary rows of one bin,
/// for one output channel's real and imaginary rows (sharing the loads).
fn taps_two_rows(r: TapRows<'_>, re: &mut [f32], im: &mut [f32]) {
    let t = re.len();
    assert!(im.len() == t && r.x.len() >= 2 * r.tp && r.tp + 1 >= t + r.kh);
    assert!(r.wr.len() == 2 * r.kh && r.wi.len() == 2 * r.kh);
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA; bounds are asserted above.
        unsafe { taps_two_rows_fma(r, re, im) };
        return;
    }
    taps_two_rows_body::<false>(r, re, im);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn taps_two_rows_fma(r: TapRows<'_>, re: &mut [f32], im: &mut [f32]) {
    taps_two_rows_body::<true>(r, re, im);
}

/// 32 frames at a time in two sets of accumulators (eight 256-bit registers), then 8 at
/// a time; a last partial tile is recomputed from `t − 8` (every output is summed in the
/// same order whichever tile computes it, so overlapping tiles write the same bits).
#[inline(always)]
fn taps_two_rows_body<const FMA: bool>(r: TapRows<'_>, re: &mut [f32], im: &mut [f32]) {
    let t = re.len();
    let mut t0 = 0;
    while t0 + 32 <= t {
        tile::<32, FMA>(r, re, im, t0);
        t0 += 32;
    }
    while t0 + 8 <= t {
        tile::<8, FMA>(r, re, im, t0);
        t0 += 8;
    }
    if t0 < t && t >= 8 {
        tile::<8, FMA>(r, re, im, t - 8);
    } else {
        for tt in t0..t {
            tile::<1, FMA>(r, re, im, tt);
        }
    }
}

/// Frames `t0..t0 + W` of [`taps_two_rows`].
#[inline(always)]
fn tile<const W: usize, const FMA: bool>(
    r: TapRows<'_>,
    re: &mut [f32],
    im: &mut [f32],
    t0: usize,
) {
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let (mut ar, mut ai) = ([0f32; W], [0f32; W]);
    for p in 0..2 {
        for dt in 0..r.kh {
            let (a, b) = (r.wr[p * r.kh + dt], r.wi[p * r.kh + dt]);
            let at = p * r.tp + dt + t0;
            let s: &[f32; W] = r.x[at..at + W].try_into().expect("tile");
            for j in 0..W {
                ar[j] = madd(a, s[j], ar[j]);
                ai[j] = madd(b, s[j], ai[j]);
            }
        }
    }
    re[t0..t0 + W].copy_from_slice(&ar);
    im[t0..t0 + W].copy_from_slice(&ai);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct valid convolution's max and min over bands, in f64.
    fn direct(x: &[f32], b: usize, tp: usize, n: usize, k: &[f32], dims: [usize; 3]) -> Vec<f64> {
        let [o, kh, kw] = dims;
        let t = tp + 1 - kh;
        let mut out = Vec::new();
        for bi in 0..b {
            for oc in 0..o {
                for tt in 0..t {
                    let (mut hi, mut lo) = (f64::MIN, f64::MAX);
                    for f in 0..=n - kw {
                        let mut s = 0f64;
                        for dt in 0..kh {
                            for j in 0..kw {
                                s += k[(oc * kh + dt) * kw + j] as f64
                                    * x[(bi * tp + tt + dt) * n + f + j] as f64;
                            }
                        }
                        hi = hi.max(s);
                        lo = lo.min(s);
                    }
                    out.push(hi);
                    out.push(lo);
                }
            }
        }
        out
    }

    /// The per-bin tap kernel, both builds (plain multiply-add and FMA), against a direct
    /// `f64` sum, for lengths that exercise the 32- and 8-frame tiles, the recomputed last
    /// tile and the one-frame path; overlapping tiles must agree with a plain pass.
    #[test]
    fn tap_kernel_matches_the_direct_sum() {
        let mut rng = mirkit_core::Rng::new(3);
        let kh = 7;
        for t in [1usize, 5, 8, 13, 37, 187] {
            let tp = t + kh - 1;
            let x: Vec<f32> = (0..2 * tp).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            let w: Vec<f32> = (0..4 * kh).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            let r = TapRows {
                x: &x,
                tp,
                kh,
                wr: &w[..2 * kh],
                wi: &w[2 * kh..],
            };
            let want = |wv: &[f32]| -> Vec<f64> {
                (0..t)
                    .map(|tt| {
                        (0..2)
                            .flat_map(|p| (0..kh).map(move |dt| (p, dt)))
                            .map(|(p, dt)| wv[p * kh + dt] as f64 * x[p * tp + dt + tt] as f64)
                            .sum()
                    })
                    .collect()
            };
            let (wre, wim) = (want(r.wr), want(r.wi));
            let mut outs = vec![];
            for fma in [false, true] {
                let (mut re, mut im) = (vec![0f32; t], vec![0f32; t]);
                if fma {
                    taps_two_rows(r, &mut re, &mut im);
                } else {
                    taps_two_rows_body::<false>(r, &mut re, &mut im);
                }
                for (got, want) in [(&re, &wre), (&im, &wim)] {
                    for (g, w) in got.iter().zip(want.iter()) {
                        assert!((*g as f64 - w).abs() < 1e-5, "t {t}: {g} vs {w}");
                    }
                }
                outs.push((re, im));
            }
            // one frame at a time gives the same bits as the tiles
            let (mut re1, mut im1) = (vec![0f32; t], vec![0f32; t]);
            for tt in 0..t {
                tile::<1, false>(r, &mut re1, &mut im1, tt);
            }
            assert_eq!((re1, im1), outs[0], "t {t}");
        }
    }

    #[test]
    fn equals_the_direct_convolution_for_even_and_odd_band_counts() {
        let mut rng = mirkit_core::Rng::new(7);
        // (batch, padded frames, bands, out, taps, width): musicnn's 96 bands with both
        // filter widths, an odd band count, a one-band-wide filter, a full-width one,
        // frames that are not a multiple of the 8/32-frame tiles, and fewer than 8 frames
        for (b, tp, n, o, kh, kw) in [
            (2, 46, 96, 9, 7, 38),
            (1, 52, 96, 5, 7, 67),
            (2, 19, 33, 6, 3, 5),
            (1, 12, 20, 4, 2, 1),
            (1, 9, 16, 3, 4, 16),
            (1, 6, 24, 2, 1, 9),
        ] {
            let x: Vec<f32> = (0..b * tp * n).map(|_| rng.normal() as f32).collect();
            let k: Vec<f32> = (0..o * kh * kw)
                .map(|_| rng.normal() as f32 * 0.2)
                .collect();
            let kt = Tensor::from_vec(k.clone(), (o, 1, kh, kw), &Device::Cpu).unwrap();
            let xt = Tensor::from_vec(x.clone(), (b, 1, tp, n), &Device::Cpu).unwrap();
            let want = direct(&x, b, tp, n, &k, [o, kh, kw]);
            let fft = BandConv::new(&kt, n).unwrap();
            let planned = ColumnIrfft::new(96, 1).is_some() && n % 2 == 0 && n != 20;
            assert_eq!(
                fft.irfft.is_some(),
                planned,
                "{n} bands (20 = 2·2·5: no plan)"
            );
            for (path, bc) in [
                ("fft", fft),
                ("dense", BandConv::new(&kt, n).unwrap().dense_inverse()),
            ] {
                let (mx, mn) = bc.max_min(&xt).unwrap();
                let t = tp + 1 - kh;
                assert_eq!(mx.dims(), &[b, o, t, 1]);
                let mx: Vec<f32> = mx.flatten_all().unwrap().to_vec1().unwrap();
                let mn: Vec<f32> = mn.flatten_all().unwrap().to_vec1().unwrap();
                // f32 DFT round-off: a few 1e-6 of the values' scale (|y| ~ sqrt(kh·kw)·0.2)
                let scale = (kh as f64 * kw as f64).sqrt() * 0.2;
                for i in 0..mx.len() {
                    let (e_hi, e_lo) = (
                        (mx[i] as f64 - want[2 * i]).abs(),
                        (mn[i] as f64 - want[2 * i + 1]).abs(),
                    );
                    assert!(
                        e_hi <= 1e-5 * scale && e_lo <= 1e-5 * scale,
                        "{path}: {n} bands, {kh}×{kw}, item {i}: {e_hi} {e_lo}"
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let k = Tensor::zeros((4, 1, 7, 38), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(
            BandConv::new(&k, 30).is_err(),
            "kernel wider than the bands"
        );
        let two_in = Tensor::zeros((4, 2, 7, 38), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(BandConv::new(&two_in, 96).is_err(), "two input channels");
        let bc = BandConv::new(&k, 96).unwrap();
        for dims in [
            (1, 1, 6, 96),
            (1, 1, 20, 95),
            (1, 2, 20, 96),
            (0, 1, 20, 96),
        ] {
            let x = Tensor::zeros(dims, candle_core::DType::F32, &Device::Cpu).unwrap();
            let e = bc
                .max_min(&x)
                .err()
                .unwrap_or_else(|| panic!("{dims:?} accepted"));
            assert!(e.to_string().contains("band convolution"), "{e}");
        }
    }
}
