//! A real inverse DFT of many columns at once, reduced to its max and min: the last step
//! of [`crate::bandconv`] (musicnn's timbral filters).
//!
//! [`crate::bandconv::BandConv`] holds, for every output channel and frame (a *column*),
//! the half spectrum of one band-axis convolution, and needs the max and min over the
//! first `f_out` values of its real inverse DFT. As a dense matrix product that costs
//! `f_out · (N + 2)` multiply-adds per column (5,782 for the 7×38 filter over 96 bands),
//! two thirds of the whole layer. A fast Fourier transform needs ~1,300 operations per
//! column, but one transform at a time is too short (48 points) to keep vector units
//! busy; here one transform runs over [`LANES`] columns together, every arithmetic
//! operation acting on a lane vector of 8 columns (one AVX register):
//! the transform is the same straight-line code as for one column, and the vectors stay
//! in the L1 cache.
//!
//! The algorithm (textbook; e.g. Van Loan, *Computational Frameworks for the Fast Fourier
//! Transform*, 1992, §1.7 and §4.3):
//! * a length-`N` real inverse DFT from a length-`M = N/2` complex one: with the half
//!   spectrum `X_0 … X_M` (imaginary parts of `X_0` and `X_M` taken as 0),
//!   `E_k = X_k + conj(X_{M−k})`, `O_k = (X_k − conj(X_{M−k}))·e^{2πik/N}` and
//!   `U_k = E_k + i·O_k`; then `u = IDFT_M(U)` holds `N·x[2m] + i·N·x[2m+1]` in `u[m]`;
//! * `IDFT_M` as a self-sorting (Stockham) mixed-radix Cooley–Tukey transform with
//!   radices 4, 3 and 2, in natural order at both ends.
//!
//! The kernel is written with AVX2/FMA intrinsics (the lane vectors must stay in
//! registers; as plain arrays the compiler spilled them and the transform was slower than
//! the dense product). Without AVX2 and FMA, or for lengths whose half has a prime factor
//! above 3, there is no plan and callers keep the dense product.
//!
//! Scaling (the `1/N`) is left to the caller (`BandConv` folds it into its weights).
//! Twiddles are computed in `f64` and rounded once; the transform's round-off is that of
//! an FFT, `O(log M)` ulps of the largest value, below the dense product's `O(N)` sums.

/// Columns transformed together: one 256-bit register of `f32`.
pub const LANES: usize = 8;

/// One Stockham pass of radix `p`: the input holds `p·s` interleaved transforms of
/// length `l`, the output `s` transforms of length `p·l`. (Read by the x86-64 kernel only;
/// elsewhere no plan is made and the callers take the dense product.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Pass {
    p: usize,
    l: usize,
    s: usize,
    /// `e^{2πi·r·k/(p·l)}` for `k < l`, `r = 1..p`, at `k·(p − 1) + r − 1`.
    tw: Vec<(f32, f32)>,
}

/// The plan of a real inverse DFT of length `n`, keeping outputs `0..f_out`
/// ([`ColumnIrfft::max_min`]).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct ColumnIrfft {
    m: usize,
    f_out: usize,
    /// `e^{2πik/n}`, `k < m`.
    pre: Vec<(f32, f32)>,
    passes: Vec<Pass>,
}

fn cis(num: usize, den: usize) -> (f32, f32) {
    let a = 2.0 * std::f64::consts::PI * (num % den) as f64 / den as f64;
    (a.cos() as f32, a.sin() as f32)
}

impl ColumnIrfft {
    /// A plan for length `n`, keeping outputs `0..f_out`; `None` unless the CPU has
    /// AVX2 and FMA (x86-64), `n ≥ 4` is even, `n/2` has no prime factor above 3 and
    /// `1 ≤ f_out ≤ n`. (Callers keep a dense inverse DFT for the other cases.)
    pub fn new(n: usize, f_out: usize) -> Option<Self> {
        if !Self::supported_cpu() || n < 4 || !n.is_multiple_of(2) || f_out == 0 || f_out > n {
            return None;
        }
        let m = n / 2;
        let mut radices = Vec::new();
        let mut rest = m;
        while rest.is_multiple_of(4) {
            radices.push(4);
            rest /= 4;
        }
        for p in [2, 3] {
            while rest.is_multiple_of(p) {
                radices.push(p);
                rest /= p;
            }
        }
        if rest != 1 {
            return None;
        }
        let mut passes = Vec::new();
        let mut l = 1;
        for &p in &radices {
            let s = m / (l * p);
            let tw = (0..l)
                .flat_map(|k| (1..p).map(move |r| cis(r * k, p * l)))
                .collect();
            passes.push(Pass { p, l, s, tw });
            l *= p;
        }
        Some(Self {
            m,
            f_out,
            pre: (0..m).map(|k| cis(k, n)).collect(),
            passes,
        })
    }

    /// Whether this CPU runs the transform (AVX2 and FMA).
    fn supported_cpu() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Outputs kept.
    pub fn f_out(&self) -> usize {
        self.f_out
    }

    /// For every column `c < cols` of `y` — `N + 2` rows of `cols` values, row `2k` the
    /// real part and row `2k + 1` the imaginary part of bin `k ≤ N/2` — the max and min
    /// over `f < f_out` of the column's unscaled real inverse DFT
    /// `Σ_{k<N} X_k e^{2πikf/N}` (`X_{N−k} = conj(X_k)`), into `hi[c]` and `lo[c]`. The
    /// max and min fold as [`crate::kernels::column_max_min`] does (NaN-free input
    /// assumed).
    ///
    /// # Panics
    /// If `y` is not `(N + 2)·cols` long or `hi`/`lo` not `cols`.
    pub fn max_min(&self, y: &[f32], cols: usize, hi: &mut [f32], lo: &mut [f32]) {
        assert!(y.len() == (2 * self.m + 2) * cols, "spectrum rows");
        assert!(hi.len() == cols && lo.len() == cols, "output length");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a plan exists only where the CPU has AVX2 and FMA (`new`); lengths are
        // asserted above.
        unsafe {
            avx2::max_min(self, y, cols, hi, lo)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no plan without AVX2")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{ColumnIrfft, Pass, LANES};
    use std::arch::x86_64::*;

    /// A complex lane vector.
    #[derive(Clone, Copy)]
    struct C {
        re: __m256,
        im: __m256,
    }

    #[inline(always)]
    unsafe fn add(a: C, b: C) -> C {
        C {
            re: _mm256_add_ps(a.re, b.re),
            im: _mm256_add_ps(a.im, b.im),
        }
    }

    #[inline(always)]
    unsafe fn sub(a: C, b: C) -> C {
        C {
            re: _mm256_sub_ps(a.re, b.re),
            im: _mm256_sub_ps(a.im, b.im),
        }
    }

    /// `a·(wr + i·wi)`.
    #[inline(always)]
    unsafe fn cmul(a: C, (wr, wi): (f32, f32)) -> C {
        let (wr, wi) = (_mm256_set1_ps(wr), _mm256_set1_ps(wi));
        C {
            re: _mm256_fmsub_ps(a.re, wr, _mm256_mul_ps(a.im, wi)),
            im: _mm256_fmadd_ps(a.re, wi, _mm256_mul_ps(a.im, wr)),
        }
    }

    /// `i·a`.
    #[inline(always)]
    unsafe fn mul_i(a: C) -> C {
        C {
            re: _mm256_sub_ps(_mm256_setzero_ps(), a.im),
            im: a.re,
        }
    }

    /// `a·s` for a real `s`.
    #[inline(always)]
    unsafe fn scale(a: C, s: f32) -> C {
        let s = _mm256_set1_ps(s);
        C {
            re: _mm256_mul_ps(a.re, s),
            im: _mm256_mul_ps(a.im, s),
        }
    }

    /// See [`ColumnIrfft::max_min`]; needs AVX2, FMA and its length checks.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn max_min(
        plan: &ColumnIrfft,
        y: &[f32],
        cols: usize,
        hi: &mut [f32],
        lo: &mut [f32],
    ) {
        let m = plan.m;
        let zero = C {
            re: _mm256_setzero_ps(),
            im: _mm256_setzero_ps(),
        };
        let mut a = vec![zero; m];
        let mut b = vec![zero; m];
        let mut bins = vec![zero; m + 1];
        for c0 in (0..cols).step_by(LANES) {
            let w = LANES.min(cols - c0);
            // SAFETY (all pointer reads and writes below): rows `r ≤ 2m + 1` of `cols`
            // values and lanes `c0..c0 + w` lie inside `y`, `hi` and `lo` (asserted by
            // the caller); masked-off lanes are not touched.
            let row = |r: usize| {
                let at = r * cols + c0;
                if w == LANES {
                    _mm256_loadu_ps(y.as_ptr().add(at))
                } else {
                    let mut v = [0f32; LANES];
                    v[..w].copy_from_slice(&y[at..at + w]);
                    _mm256_loadu_ps(v.as_ptr())
                }
            };
            // X_k (the imaginary parts of the DC and Nyquist bins do not reach a real
            // output), then U_k = E_k + i·O_k with E_k = X_k + conj(X_{m−k}) and
            // O_k = (X_k − conj(X_{m−k}))·e^{2πik/n}, computed as the first pass reads it
            for (k, x) in bins.iter_mut().enumerate() {
                x.re = row(2 * k);
                x.im = if k == 0 || k == m {
                    _mm256_setzero_ps()
                } else {
                    row(2 * k + 1)
                };
            }
            let bins = &bins;
            let load_u = |k: usize| {
                let (p, q) = (bins[k], bins[m - k]);
                let e = C {
                    re: _mm256_add_ps(p.re, q.re),
                    im: _mm256_sub_ps(p.im, q.im),
                };
                let d = C {
                    re: _mm256_sub_ps(p.re, q.re),
                    im: _mm256_add_ps(p.im, q.im),
                };
                add(e, mul_i(cmul(d, plan.pre[k])))
            };
            // the last pass folds u[i] = (x[2i], x[2i + 1]) into the max and min for
            // outputs below f_out instead of storing it
            let (mut h, mut l) = (
                _mm256_set1_ps(f32::NEG_INFINITY),
                _mm256_set1_ps(f32::INFINITY),
            );
            let f_out = plan.f_out;
            let mut fold = |i: usize, c: C| {
                if 2 * i < f_out {
                    h = _mm256_max_ps(c.re, h);
                    l = _mm256_min_ps(c.re, l);
                }
                if 2 * i + 1 < f_out {
                    h = _mm256_max_ps(c.im, h);
                    l = _mm256_min_ps(c.im, l);
                }
            };
            let (mut src, mut dst) = (&mut a, &mut b);
            let last = plan.passes.len() - 1;
            for (i, pass) in plan.passes.iter().enumerate() {
                match (i == 0, i == last) {
                    (true, true) => run_pass(pass, load_u, &mut fold),
                    (true, false) => run_pass(pass, load_u, |j, c| dst[j] = c),
                    (false, true) => run_pass(pass, |j| src[j], &mut fold),
                    (false, false) => run_pass(pass, |j| src[j], |j, c| dst[j] = c),
                }
                std::mem::swap(&mut src, &mut dst);
            }
            if w == LANES {
                _mm256_storeu_ps(hi.as_mut_ptr().add(c0), h);
                _mm256_storeu_ps(lo.as_mut_ptr().add(c0), l);
            } else {
                let mut v = [0f32; LANES];
                _mm256_storeu_ps(v.as_mut_ptr(), h);
                hi[c0..c0 + w].copy_from_slice(&v[..w]);
                _mm256_storeu_ps(v.as_mut_ptr(), l);
                lo[c0..c0 + w].copy_from_slice(&v[..w]);
            }
        }
    }

    /// One Stockham pass: for `k < l` and `j < s`, the `p` inputs
    /// `src(j + s·r + s·p·k)` are twiddled by `e^{2πi·r·k/(p·l)}` and transformed by a
    /// `p`-point inverse DFT into `dst(j + s·(k + l·q), ·)`, `q < p`. (`src` and `dst`
    /// are closures so that the first pass can read the bins and the last one reduce its
    /// outputs in registers.)
    #[inline(always)]
    unsafe fn run_pass(pass: &Pass, src: impl Fn(usize) -> C, dst: impl FnMut(usize, C)) {
        // the passes of musicnn's 96 bands (48 = 4·4·3) with constant loop bounds and
        // strides, so that the compiler unrolls them and keeps indices out of registers
        match (pass.p, pass.l, pass.s) {
            (4, 1, 12) => pass_shape(pass, 4, 1, 12, src, dst),
            (4, 4, 3) => pass_shape(pass, 4, 4, 3, src, dst),
            (3, 16, 1) => pass_shape(pass, 3, 16, 1, src, dst),
            (p, l, s) => pass_shape(pass, p, l, s, src, dst),
        }
    }

    /// [`run_pass`] with its radix and loop bounds as arguments (constants where inlined).
    #[inline(always)]
    unsafe fn pass_shape(
        pass: &Pass,
        p: usize,
        l: usize,
        s: usize,
        src: impl Fn(usize) -> C,
        mut dst: impl FnMut(usize, C),
    ) {
        match p {
            2 => {
                for k in 0..l {
                    let tw = &pass.tw[k..k + 1];
                    for j in 0..s {
                        let base = j + 2 * s * k;
                        let (x0, mut x1) = (src(base), src(base + s));
                        if k != 0 {
                            x1 = cmul(x1, tw[0]);
                        }
                        dst(j + s * k, add(x0, x1));
                        dst(j + s * (k + l), sub(x0, x1));
                    }
                }
            }
            3 => {
                for k in 0..l {
                    let tw = &pass.tw[2 * k..2 * k + 2];
                    for j in 0..s {
                        let base = j + 3 * s * k;
                        let (x0, mut x1, mut x2) = (src(base), src(base + s), src(base + 2 * s));
                        if k != 0 {
                            x1 = cmul(x1, tw[0]);
                            x2 = cmul(x2, tw[1]);
                        }
                        // e^{±2πi/3} = −1/2 ± i·√3/2
                        let (sum, dif) = (add(x1, x2), sub(x1, x2));
                        let mid = sub(x0, scale(sum, 0.5));
                        let rot = mul_i(scale(dif, 0.866_025_4));
                        dst(j + s * k, add(x0, sum));
                        dst(j + s * (k + l), add(mid, rot));
                        dst(j + s * (k + 2 * l), sub(mid, rot));
                    }
                }
            }
            4 => {
                for k in 0..l {
                    let tw = &pass.tw[3 * k..3 * k + 3];
                    for j in 0..s {
                        let base = j + 4 * s * k;
                        let x0 = src(base);
                        let (mut x1, mut x2, mut x3) =
                            (src(base + s), src(base + 2 * s), src(base + 3 * s));
                        if k != 0 {
                            x1 = cmul(x1, tw[0]);
                            x2 = cmul(x2, tw[1]);
                            x3 = cmul(x3, tw[2]);
                        }
                        let (t0, t1) = (add(x0, x2), sub(x0, x2));
                        let (t2, t3) = (add(x1, x3), mul_i(sub(x1, x3)));
                        dst(j + s * k, add(t0, t2));
                        dst(j + s * (k + l), add(t1, t3));
                        dst(j + s * (k + 2 * l), sub(t0, t2));
                        dst(j + s * (k + 3 * l), sub(t1, t3));
                    }
                }
            }
            p => unreachable!("radix {p} is never planned"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unscaled real inverse DFT in `f64`, directly.
    fn direct(spec: &[(f64, f64)], n: usize, f: usize) -> f64 {
        let m = n / 2;
        (0..=m)
            .map(|k| {
                let c = if k == 0 || k == m { 1.0 } else { 2.0 };
                let a = 2.0 * std::f64::consts::PI * (k * f % n) as f64 / n as f64;
                let (re, im) = spec[k];
                let im = if k == 0 || k == m { 0.0 } else { im };
                c * (re * a.cos() - im * a.sin())
            })
            .sum()
    }

    /// Every radix (4, 2, 3; 128 bands = 4·4·4, 24 = 4·3, 8 = 4, 12 = 2·3), odd column counts (partial lane
    /// vectors) and a kept range shorter than `n`: max and min against a direct `f64`
    /// sum, within a few f32 ulps of the largest term sum (`Σ|X_k|`).
    #[test]
    fn max_min_matches_the_direct_inverse_dft() {
        let mut rng = mirkit_core::Rng::new(11);
        for (n, f_out, cols) in [
            (96, 59, 37),
            (96, 30, 16),
            (128, 128, 5),
            (24, 17, 33),
            (12, 12, 1),
            (8, 5, 40),
        ] {
            let Some(plan) = ColumnIrfft::new(n, f_out) else {
                assert!(!ColumnIrfft::supported_cpu(), "{n} has a plan");
                eprintln!("no AVX2/FMA on this CPU: the column FFT is not used or tested");
                return;
            };
            let rows = n + 2;
            let y: Vec<f32> = (0..rows * cols)
                .map(|_| rng.range(-1.0, 1.0) as f32)
                .collect();
            let (mut hi, mut lo) = (vec![0f32; cols], vec![0f32; cols]);
            plan.max_min(&y, cols, &mut hi, &mut lo);
            for c in 0..cols {
                let spec: Vec<(f64, f64)> = (0..=n / 2)
                    .map(|k| (y[2 * k * cols + c] as f64, y[(2 * k + 1) * cols + c] as f64))
                    .collect();
                let vals: Vec<f64> = (0..f_out).map(|f| direct(&spec, n, f)).collect();
                let want_hi = vals.iter().cloned().fold(f64::MIN, f64::max);
                let want_lo = vals.iter().cloned().fold(f64::MAX, f64::min);
                let bound: f64 = spec.iter().map(|(r, i)| 2.0 * (r.abs() + i.abs())).sum();
                let tol = 8.0 * (n as f64).log2() * f32::EPSILON as f64 * bound;
                assert!(
                    (hi[c] as f64 - want_hi).abs() <= tol && (lo[c] as f64 - want_lo).abs() <= tol,
                    "n {n} column {c}: ({}, {}) vs ({want_hi}, {want_lo}), tol {tol}",
                    hi[c],
                    lo[c]
                );
            }
        }
    }

    #[test]
    fn unsupported_lengths_have_no_plan() {
        assert!(
            ColumnIrfft::new(22, 5).is_none(),
            "11 is not a supported radix"
        );
        assert!(ColumnIrfft::new(20, 5).is_none(), "nor 5");
        assert!(ColumnIrfft::new(95, 5).is_none(), "odd");
        assert!(ColumnIrfft::new(96, 0).is_none());
        assert!(ColumnIrfft::new(96, 97).is_none());
        assert!(ColumnIrfft::new(2, 1).is_none());
        assert_eq!(
            ColumnIrfft::new(96, 59).is_some(),
            ColumnIrfft::supported_cpu(),
            "96 = 2·(4·4·3)"
        );
    }
}
