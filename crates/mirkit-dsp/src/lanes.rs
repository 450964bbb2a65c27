//! Power spectra of four real frames at once, one frame per SIMD lane.
//!
//! For power-of-two `n_fft` the feature path does not call a general FFT library per
//! frame: it transforms [`LANES`] frames together with every arithmetic operation
//! working on a vector that holds the same element of each frame (the "vertical" or
//! "SIMD across transforms" layout; e.g. Frigo & Johnson, *The Design and Implementation
//! of FFTW3*, Proc. IEEE 93(2), 2005, § IV-B on SIMD across loop iterations). There are
//! no shuffles, no bit-reversal pass and no per-transform planning overhead, and the
//! frames land in the bins-major block layout the mel product reads
//! (`power[k·stride + lane]`).
//!
//! The transform of each frame (`N = n_fft` real samples) is the textbook one:
//! 1. pack `z[n] = x[2n] + i·x[2n + 1]`, `M = N/2` complex values;
//! 2. an `M`-point complex FFT, decimation in frequency, radix 4 (with one radix-2
//!    stage when `M` is not a power of 4), in place, output in digit-reversed order
//!    (only power spectra are needed, so the order is undone by indexing);
//! 3. split: with `Z` the `M`-point spectrum, `2F_e[k] = Z[k] + conj Z[M−k]`,
//!    `2F_o[k] = −i·(Z[k] − conj Z[M−k])` and `P = e^{−2πik/N}·2F_o[k]`, the real
//!    spectrum is `X[k] = (2F_e + P)/2` and `X[M−k] = conj(2F_e − P)/2`
//!    (e.g. Press et al., *Numerical Recipes*, 3rd ed., § 12.3.2). The halving is
//!    folded into the window (`w/2`, exact), so `2F_e ± P` computed from the halved
//!    samples is `X[k]` itself.
//!
//! All in `f64`, with twiddles from `f64` `sin`/`cos`: the result agrees with realfft's
//! to a few `1e-16 · max|X|`, far below the librosa parity tolerance. The code is
//! written once on `[f64; 4]` lane vectors with separate multiplies and adds (no FMA
//! contraction), so the AVX2 build and the plain build give the same bits, and a frame
//! gets the same bits whichever lane it is in.

use std::f64::consts::PI;

/// Frames transformed together.
pub const LANES: usize = 4;

/// Lane-vector arithmetic: one `f64` of each of the [`LANES`] frames. Implemented
/// plainly on arrays and with AVX intrinsics; both do the same IEEE operations.
trait Lane: Copy {
    fn splat(v: f64) -> Self;
    /// # Safety
    /// `p..p + LANES` must be readable.
    unsafe fn ld(p: *const f64) -> Self;
    /// # Safety
    /// `p..p + LANES` must be writable.
    unsafe fn st(self, p: *mut f64);
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// `self·a + b`, rounded once
    fn fmadd(self, a: Self, b: Self) -> Self;
    /// `self·a − b`, rounded once
    fn fmsub(self, a: Self, b: Self) -> Self;
    /// The lanes rounded to `f32`, stored at `p..p + LANES`.
    /// # Safety
    /// `p..p + LANES` must be writable.
    unsafe fn st_f32(self, p: *mut f32);
    fn lanes(self) -> [f64; LANES];
}

/// The portable lane vector.
#[derive(Clone, Copy)]
struct Plain([f64; LANES]);

impl Lane for Plain {
    #[inline(always)]
    fn splat(v: f64) -> Self {
        Plain([v; LANES])
    }
    #[inline(always)]
    unsafe fn ld(p: *const f64) -> Self {
        Plain(std::ptr::read_unaligned(p as *const [f64; LANES]))
    }
    #[inline(always)]
    unsafe fn st(self, p: *mut f64) {
        std::ptr::write_unaligned(p as *mut [f64; LANES], self.0)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Plain(std::array::from_fn(|l| self.0[l] + o.0[l]))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Plain(std::array::from_fn(|l| self.0[l] - o.0[l]))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Plain(std::array::from_fn(|l| self.0[l] * o.0[l]))
    }
    #[inline(always)]
    fn fmadd(self, a: Self, b: Self) -> Self {
        Plain(std::array::from_fn(|l| self.0[l].mul_add(a.0[l], b.0[l])))
    }
    #[inline(always)]
    fn fmsub(self, a: Self, b: Self) -> Self {
        Plain(std::array::from_fn(|l| self.0[l].mul_add(a.0[l], -b.0[l])))
    }
    #[inline(always)]
    unsafe fn st_f32(self, p: *mut f32) {
        for l in 0..LANES {
            *p.add(l) = self.0[l] as f32;
        }
    }
    #[inline(always)]
    fn lanes(self) -> [f64; LANES] {
        self.0
    }
}

/// The AVX lane vector (only used inside `#[target_feature(enable = "avx2")]`
/// functions, into which these wrappers are inlined).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx(std::arch::x86_64::__m256d);

#[cfg(target_arch = "x86_64")]
impl Lane for Avx {
    #[inline(always)]
    fn splat(v: f64) -> Self {
        // SAFETY: only reached from AVX2-enabled code (see the type's doc)
        unsafe { Avx(std::arch::x86_64::_mm256_set1_pd(v)) }
    }
    #[inline(always)]
    unsafe fn ld(p: *const f64) -> Self {
        Avx(std::arch::x86_64::_mm256_loadu_pd(p))
    }
    #[inline(always)]
    unsafe fn st(self, p: *mut f64) {
        std::arch::x86_64::_mm256_storeu_pd(p, self.0)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: as in `splat`
        unsafe { Avx(std::arch::x86_64::_mm256_add_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: as in `splat`
        unsafe { Avx(std::arch::x86_64::_mm256_sub_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: as in `splat`
        unsafe { Avx(std::arch::x86_64::_mm256_mul_pd(self.0, o.0)) }
    }
    #[inline(always)]
    fn fmadd(self, a: Self, b: Self) -> Self {
        // SAFETY: as in `splat` (the callers also enable FMA)
        unsafe { Avx(std::arch::x86_64::_mm256_fmadd_pd(self.0, a.0, b.0)) }
    }
    #[inline(always)]
    fn fmsub(self, a: Self, b: Self) -> Self {
        // SAFETY: as in `fmadd`
        unsafe { Avx(std::arch::x86_64::_mm256_fmsub_pd(self.0, a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn st_f32(self, p: *mut f32) {
        use std::arch::x86_64::*;
        _mm_storeu_ps(p, _mm256_cvtpd_ps(self.0))
    }
    #[inline(always)]
    fn lanes(self) -> [f64; LANES] {
        let mut r = [0.0; LANES];
        // SAFETY: as in `splat`; `r` holds LANES values
        unsafe { std::arch::x86_64::_mm256_storeu_pd(r.as_mut_ptr(), self.0) };
        r
    }
}

/// A complex value per lane.
#[derive(Clone, Copy)]
struct C<V> {
    re: V,
    im: V,
}

impl<V: Lane> C<V> {
    /// Element `n` of the buffer: real parts at `8n`, imaginary parts at `8n + 4`.
    /// # Safety
    /// `buf` must hold element `n`.
    #[inline(always)]
    unsafe fn at(buf: *const f64, n: usize) -> Self {
        C {
            re: V::ld(buf.add(2 * LANES * n)),
            im: V::ld(buf.add(2 * LANES * n + LANES)),
        }
    }
    /// # Safety
    /// `buf` must hold element `n`.
    #[inline(always)]
    unsafe fn put(self, buf: *mut f64, n: usize) {
        self.re.st(buf.add(2 * LANES * n));
        self.im.st(buf.add(2 * LANES * n + LANES));
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        C {
            re: self.re.add(o.re),
            im: self.im.add(o.im),
        }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        C {
            re: self.re.sub(o.re),
            im: self.im.sub(o.im),
        }
    }
    /// `self · (c + i·s)`
    #[inline(always)]
    fn rot(self, c: f64, s: f64) -> Self {
        let (c, s) = (V::splat(c), V::splat(s));
        C {
            re: self.re.fmsub(c, self.im.mul(s)),
            im: self.re.fmadd(s, self.im.mul(c)),
        }
    }
}

/// A prepared lane transform for one power-of-two `n_fft`.
#[derive(Clone, Debug)]
pub struct LanePlan {
    n_fft: usize,
    /// complex points, `n_fft / 2`
    m: usize,
    /// twiddles of each radix-4 stage, span `m, m/4, ...`: `[c1, s1, c2, s2, c3, s3]`
    /// for each `j < span/4` (`e^{−2πi·j·r/span}`, `r = 1, 2, 3`)
    stages: Vec<Vec<f64>>,
    /// a final radix-2 stage (when `m` is not a power of 4)
    radix2: bool,
    /// buffer position of `Z[k]`
    pos: Vec<usize>,
    /// `(cos, sin)` of `−2πk/n_fft` for `k ≤ m/2`
    split: Vec<(f64, f64)>,
    /// the analysis window times ½ (exact), which absorbs the ½ of the split step
    half_window: Vec<f64>,
}

impl LanePlan {
    /// A plan for frames windowed by `window` (`n_fft` values), or `None` unless
    /// `n_fft` is a power of two of at least 8.
    pub fn new(window: &[f64]) -> Option<Self> {
        let n_fft = window.len();
        if n_fft < 8 || !n_fft.is_power_of_two() {
            return None;
        }
        let m = n_fft / 2;
        let mut stages = vec![];
        let mut radices = vec![];
        let mut span = m;
        while span >= 4 {
            let q = span / 4;
            let mut tw = Vec::with_capacity(6 * q);
            for j in 0..q {
                for r in 1..=3 {
                    let a = -2.0 * PI * (j * r) as f64 / span as f64;
                    tw.push(a.cos());
                    tw.push(a.sin());
                }
            }
            stages.push(tw);
            radices.push(4);
            span /= 4;
        }
        let radix2 = span == 2;
        if radix2 {
            radices.push(2);
        }
        // position p = Σ r_i · m/(R_1⋯R_i) holds frequency k = Σ r_i · R_1⋯R_{i−1}
        let mut pos = vec![0; m];
        for p in 0..m {
            let (mut block, mut rest, mut k, mut kmul) = (m, p, 0, 1);
            for &r in &radices {
                block /= r;
                k += rest / block * kmul;
                rest %= block;
                kmul *= r;
            }
            pos[k] = p;
        }
        let split = (0..=m / 2)
            .map(|k| {
                let a = -2.0 * PI * k as f64 / n_fft as f64;
                (a.cos(), a.sin())
            })
            .collect();
        Some(Self {
            n_fft,
            m,
            stages,
            radix2,
            pos,
            split,
            half_window: window.iter().map(|w| 0.5 * w).collect(),
        })
    }

    /// A zeroed work buffer (`n_fft · LANES` values).
    pub fn buffer(&self) -> Vec<f64> {
        vec![0.0; self.n_fft * LANES]
    }

    /// Windows up to [`LANES`] frames (`n_fft` unwindowed samples each; missing lanes
    /// are zeros) into `buf`.
    ///
    /// # Panics
    /// If a frame is shorter than `n_fft` or the buffer has the wrong size.
    #[inline]
    pub fn load(&self, frames: &[&[f32]], buf: &mut [f64]) {
        let n = self.n_fft;
        let window = &self.half_window[..];
        assert!(frames.len() <= LANES && buf.len() == n * LANES);
        assert!(
            frames.iter().all(|f| f.len() >= n),
            "frame shorter than n_fft"
        );
        #[cfg(target_arch = "x86_64")]
        if frames.len() == LANES && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available; sizes are asserted above
            unsafe { load4_avx2(frames, window, buf) };
            return;
        }
        for (l, f) in frames.iter().enumerate() {
            for (i, (x, w)) in f[..n]
                .chunks_exact(2)
                .zip(window.chunks_exact(2))
                .enumerate()
            {
                buf[2 * LANES * i + l] = x[0] as f64 * w[0];
                buf[2 * LANES * i + LANES + l] = x[1] as f64 * w[1];
            }
        }
        for l in frames.len()..LANES {
            for i in 0..self.m {
                buf[2 * LANES * i + l] = 0.0;
                buf[2 * LANES * i + LANES + l] = 0.0;
            }
        }
    }

    /// Transforms the loaded frames and writes `|X_l[k]|^power` (as `f32`) to
    /// `out[k·stride + l]` for every bin `k ≤ n_fft/2` and lane `l`. Returns `false`
    /// when a value was not finite (a NaN or infinite sample in some lane).
    ///
    /// # Panics
    /// If `stride < LANES` or `out` is shorter than `(n_fft/2)·stride + LANES`.
    #[inline]
    pub fn power(&self, buf: &mut [f64], power: f32, out: &mut [f32], stride: usize) -> bool {
        assert!(buf.len() == self.n_fft * LANES);
        assert!(
            stride >= LANES && out.len() >= self.m * stride + LANES,
            "output too short"
        );
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA are available; sizes are asserted above
            return unsafe { self.power_avx2(buf, power, out, stride) };
        }
        // SAFETY: sizes are asserted above
        unsafe { self.power_impl::<Plain>(buf, power, out, stride) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn power_avx2(
        &self,
        buf: &mut [f64],
        power: f32,
        out: &mut [f32],
        stride: usize,
    ) -> bool {
        self.power_impl::<Avx>(buf, power, out, stride)
    }

    /// # Safety
    /// `buf` holds `n_fft · LANES` values, `out` at least `m·stride + LANES`, and
    /// `stride ≥ LANES`.
    #[inline(always)]
    unsafe fn power_impl<V: Lane>(
        &self,
        buf: &mut [f64],
        power: f32,
        out: &mut [f32],
        stride: usize,
    ) -> bool {
        let m = self.m;
        let b = buf.as_mut_ptr();
        let mut span = m;
        for tw in &self.stages {
            radix4_stage::<V>(b, m, span, tw);
            span /= 4;
        }
        if self.radix2 {
            for g in (0..m).step_by(2) {
                let (x, y) = (C::<V>::at(b, g), C::<V>::at(b, g + 1));
                x.add(y).put(b, g);
                x.sub(y).put(b, g + 1);
            }
        }
        // Z[0] is the sum of all samples (times the window): NaN or infinite as soon as
        // any sample is (NaN·0 and ∞·0 are NaN; ∞ − ∞ is NaN; nothing turns finite again)
        let z0 = C::<V>::at(b, 0);
        let finite = z0
            .re
            .add(z0.im)
            .mul(V::splat(0.0))
            .lanes()
            .iter()
            .all(|&v| v == 0.0);
        let o = out.as_mut_ptr();
        for (k, &(c, s)) in self.split.iter().enumerate() {
            let z = C::<V>::at(b, *self.pos.get_unchecked(k));
            let w = C::<V>::at(b, *self.pos.get_unchecked((m - k) % m));
            // 2F_e = Z + conj W,  2F_o = −i (Z − conj W)
            let fe = C {
                re: z.re.add(w.re),
                im: z.im.sub(w.im),
            };
            let fo = C {
                re: z.im.add(w.im),
                im: w.re.sub(z.re),
            };
            let p = fo.rot(c, s);
            // (from samples times w/2, these are X[k] and conj X[M−k])
            emit(o.add(k * stride), fe.add(p), power);
            if k != m - k {
                // the conjugate has the same power
                emit(o.add((m - k) * stride), fe.sub(p), power);
            }
        }
        finite
    }
}

/// Writes `|x|^power` of every lane to `dst[..LANES]` (`f32`).
///
/// # Safety
/// `dst..dst + LANES` must be writable.
#[inline(always)]
unsafe fn emit<V: Lane>(dst: *mut f32, x: C<V>, power: f32) {
    let p = x.re.fmadd(x.re, x.im.mul(x.im));
    if power == 2.0 {
        p.st_f32(dst);
    } else {
        for (l, v) in p.lanes().into_iter().enumerate() {
            *dst.add(l) = if power == 1.0 {
                v.sqrt() as f32
            } else {
                v.sqrt().powf(power as f64) as f32
            };
        }
    }
}

/// One radix-4 decimation-in-frequency stage over blocks of `span` points.
///
/// # Safety
/// `buf` holds `m` elements; `tw` holds `6·span/4` twiddles.
#[inline(always)]
unsafe fn radix4_stage<V: Lane>(buf: *mut f64, m: usize, span: usize, tw: &[f64]) {
    let q = span / 4;
    let tw = tw.as_ptr();
    for g in (0..m).step_by(span) {
        for j in 0..q {
            let (ia, ib, ic, id) = (g + j, g + j + q, g + j + 2 * q, g + j + 3 * q);
            let (a, b) = (C::<V>::at(buf, ia), C::<V>::at(buf, ib));
            let (c, d) = (C::<V>::at(buf, ic), C::<V>::at(buf, id));
            let (t0, t1, t2, t3) = (a.add(c), a.sub(c), b.add(d), b.sub(d));
            let y0 = t0.add(t2);
            let y2 = t0.sub(t2);
            // t1 ∓ i·t3
            let y1 = C {
                re: t1.re.add(t3.im),
                im: t1.im.sub(t3.re),
            };
            let y3 = C {
                re: t1.re.sub(t3.im),
                im: t1.im.add(t3.re),
            };
            y0.put(buf, ia);
            if q == 1 {
                y1.put(buf, ib);
                y2.put(buf, ic);
                y3.put(buf, id);
            } else {
                let t = tw.add(6 * j);
                y1.rot(*t, *t.add(1)).put(buf, ib);
                y2.rot(*t.add(2), *t.add(3)).put(buf, ic);
                y3.rot(*t.add(4), *t.add(5)).put(buf, id);
            }
        }
    }
}

/// [`LanePlan::load`] for a full set of frames: eight samples of each frame per step,
/// transposed so that each vector holds one sample of every frame, then widened and
/// windowed (exact conversions and one rounding per product, as in the plain loop).
///
/// # Safety
/// AVX2; four frames of at least `n` samples, `window` of `n`, `buf` of `n · LANES`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn load4_avx2(frames: &[&[f32]], window: &[f64], buf: &mut [f64]) {
    use std::arch::x86_64::*;
    let n = window.len();
    let (f0, f1, f2, f3) = (
        frames[0].as_ptr(),
        frames[1].as_ptr(),
        frames[2].as_ptr(),
        frames[3].as_ptr(),
    );
    let w = window.as_ptr();
    let b = buf.as_mut_ptr();
    let split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    let mut i = 0;
    while i + 8 <= n {
        // each row: (even, odd) sample pairs 0..3 of one frame, as four 64-bit units
        let r0 = _mm256_castps_pd(_mm256_loadu_ps(f0.add(i)));
        let r1 = _mm256_castps_pd(_mm256_loadu_ps(f1.add(i)));
        let r2 = _mm256_castps_pd(_mm256_loadu_ps(f2.add(i)));
        let r3 = _mm256_castps_pd(_mm256_loadu_ps(f3.add(i)));
        let t0 = _mm256_unpacklo_pd(r0, r1);
        let t1 = _mm256_unpackhi_pd(r0, r1);
        let t2 = _mm256_unpacklo_pd(r2, r3);
        let t3 = _mm256_unpackhi_pd(r2, r3);
        let cols = [
            _mm256_permute2f128_pd::<0x20>(t0, t2),
            _mm256_permute2f128_pd::<0x20>(t1, t3),
            _mm256_permute2f128_pd::<0x31>(t0, t2),
            _mm256_permute2f128_pd::<0x31>(t1, t3),
        ];
        for (u, c) in cols.into_iter().enumerate() {
            // pair u of every frame: e0 o0 e1 o1 e2 o2 e3 o3 → evens | odds
            let s = _mm256_permutevar8x32_ps(_mm256_castpd_ps(c), split);
            let k = i / 2 + u;
            let re = _mm256_mul_pd(
                _mm256_cvtps_pd(_mm256_castps256_ps128(s)),
                _mm256_set1_pd(*w.add(2 * k)),
            );
            let im = _mm256_mul_pd(
                _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(s)),
                _mm256_set1_pd(*w.add(2 * k + 1)),
            );
            _mm256_storeu_pd(b.add(2 * LANES * k), re);
            _mm256_storeu_pd(b.add(2 * LANES * k + LANES), im);
        }
        i += 8;
    }
    // n is a power of two ≥ 8, so nothing is left over
    debug_assert_eq!(i, n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use realfft::RealFftPlanner;

    fn signal(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) + (i as f32 * 0.05).sin()
            })
            .collect()
    }

    /// Every power-of-two size from 8 to 4096 (both radix-4-only and mixed plans) in
    /// every lane, for power 2, 1 and 1.5, against realfft in `f64` on the same windowed
    /// samples.
    #[test]
    fn lanes_match_realfft() {
        for bits in 3..=12 {
            let n = 1usize << bits;
            let w: Vec<f64> = (0..n)
                .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos())
                .collect();
            let plan = LanePlan::new(&w).unwrap();
            let frames: Vec<Vec<f32>> = (0..LANES as u64).map(|l| signal(n, l + bits)).collect();
            let refs: Vec<&[f32]> = frames.iter().map(|f| &f[..]).collect();
            let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
            for power in [2.0f32, 1.0, 1.5] {
                let mut buf = plan.buffer();
                plan.load(&refs, &mut buf);
                let nb = n / 2 + 1;
                let mut out = vec![f32::NAN; nb * 6];
                assert!(plan.power(&mut buf, power, &mut out, 6));
                for (l, f) in frames.iter().enumerate() {
                    let mut i: Vec<f64> = f.iter().zip(&w).map(|(&a, &b)| a as f64 * b).collect();
                    let mut o = fft.make_output_vec();
                    fft.process(&mut i, &mut o).unwrap();
                    let mx = o.iter().map(|c| c.norm()).fold(0.0, f64::max);
                    for k in 0..nb {
                        let want = o[k].norm().powf(power as f64);
                        let got = out[k * 6 + l] as f64;
                        let tol = 1e-12 * mx.powf(power as f64) + 1e-7 * want;
                        assert!(
                            (got - want).abs() <= tol,
                            "n {n} lane {l} bin {k} p {power}: {got} vs {want}"
                        );
                    }
                }
            }
        }
        for n in [4, 6, 48, 1000] {
            assert!(LanePlan::new(&vec![1.0; n]).is_none());
        }
    }

    /// Fewer frames than lanes: the missing lanes are zeros, the present ones are the
    /// same bits as in a full load (portable load against the AVX2 one); the portable
    /// arithmetic gives the same bits as the dispatched one; a NaN in one lane is flagged.
    #[test]
    fn partial_loads_and_non_finite() {
        let n = 512;
        let plan = LanePlan::new(&vec![1.0; n]).unwrap();
        let frames: Vec<Vec<f32>> = (0..LANES as u64).map(|l| signal(n, l)).collect();
        let refs: Vec<&[f32]> = frames.iter().map(|f| &f[..]).collect();
        let nb = n / 2 + 1;
        let mut full = vec![0.0; nb * LANES];
        let mut buf = plan.buffer();
        plan.load(&refs, &mut buf);
        assert!(plan.power(&mut buf, 2.0, &mut full, LANES));
        let mut one = vec![0.0; nb * LANES];
        plan.load(&[refs[2]], &mut buf);
        assert!(plan.power(&mut buf, 2.0, &mut one, LANES));
        for k in 0..nb {
            assert_eq!(one[k * LANES].to_bits(), full[k * LANES + 2].to_bits());
            assert_eq!(one[k * LANES + 1], 0.0);
        }
        // the portable arithmetic gives the bits of the dispatched (AVX2/FMA) one
        for power in [2.0f32, 1.0, 0.7] {
            plan.load(&refs, &mut buf);
            let mut plain_buf = buf.clone();
            let mut fast = vec![0.0; nb * LANES];
            let mut plain = vec![0.0; nb * LANES];
            assert!(plan.power(&mut buf, power, &mut fast, LANES));
            // SAFETY: sizes as asserted by `power`
            assert!(unsafe { plan.power_impl::<Plain>(&mut plain_buf, power, &mut plain, LANES) });
            assert!(
                fast.iter()
                    .zip(&plain)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "power {power}"
            );
        }
        let mut bad = frames[1].clone();
        bad[100] = f32::NAN;
        plan.load(&[refs[0], &bad], &mut buf);
        assert!(!plan.power(&mut buf, 2.0, &mut one, LANES));
    }
}
