//! Power spectra of two real frames from one complex FFT.
//!
//! Frames `a` and `b` go into the real and imaginary parts of one complex buffer,
//! `z = a + i·b`. With `Z = FFT(z)` and `W[k] = Z[(N − k) mod N]`, the spectra are
//! `A[k] = (Z[k] + conj W[k]) / 2` and `B[k] = (Z[k] − conj W[k]) / 2i` (the standard
//! "two real FFTs for the price of one complex FFT"; e.g. Press et al., *Numerical
//! Recipes*, 3rd ed., § 12.3, "FFT of real functions"). Writing `s = Z[k] + W[k]` and
//! `d = Z[k] − W[k]`,
//!
//! ```text
//! |A[k]|² = (s.re² + d.im²) / 4        |B[k]|² = (s.im² + d.re²) / 4
//! ```
//!
//! so the power of both frames costs two additions, two subtractions, four squares and
//! two sums per bin — no twiddle factors (realfft's post-processing step needs a
//! complex multiplication per bin and frame). The feature path uses this in double
//! precision; the arithmetic is the same as on the separate spectra up to rounding of
//! the order of `1e-16 · max|X|`, far below the librosa parity tolerance.
//!
//! The AVX2 version does the same IEEE operations in the same order (no FMA), so a frame
//! gets the same bits on every x86-64 CPU. Which frames share an FFT changes the last
//! bits of each, so callers pair frames by index (`2i`, `2i + 1`; a final odd frame with
//! zeros) wherever bit-identical results are promised (streaming equals batch).

use crate::stft::Stft;
use realfft::num_complex::Complex64;

/// Buffers for [`Stft::load_pair_frames`] and [`Stft::pair_power`].
pub struct PairScratch {
    buf: Vec<Complex64>,
    scratch: Vec<Complex64>,
}

impl PairScratch {
    /// Whether these buffers fit a plan of `n_fft` points.
    pub(crate) fn fits(&self, n_fft: usize) -> bool {
        self.buf.len() == n_fft
    }
}

impl Stft {
    /// Fresh buffers for paired transforms with this plan.
    pub fn pair_scratch(&self) -> PairScratch {
        let n = self.config().n_fft;
        PairScratch {
            buf: vec![Complex64::new(0.0, 0.0); n],
            scratch: vec![Complex64::new(0.0, 0.0); self.complex_fft().get_inplace_scratch_len()],
        }
    }

    /// Windows two frames given as their `n_fft` unwindowed samples (the second may be
    /// absent: zeros) into the pair buffer.
    pub fn load_pair_frames(&self, fa: &[f32], fb: Option<&[f32]>, s: &mut PairScratch) {
        let w = self.window();
        match fb {
            Some(fb) => interleave_window(fa, fb, w, self.window_doubled(), &mut s.buf),
            None => {
                for ((o, &a), &wk) in s.buf.iter_mut().zip(fa).zip(w) {
                    *o = Complex64::new(a as f64 * wk, 0.0);
                }
            }
        }
    }

    /// Transforms the loaded pair and writes `|A[k]|^power` to `out[k·stride]` and
    /// `|B[k]|^power` to `out[k·stride + 1]` for every bin `k` (`f32`). Returns `false`
    /// when a value was not finite (a NaN or infinite sample in either frame).
    ///
    /// # Panics
    /// If `stride < 2` or `out` is shorter than `(n_bins − 1)·stride + 2`.
    pub fn pair_power(
        &self,
        s: &mut PairScratch,
        power: f32,
        out: &mut [f32],
        stride: usize,
    ) -> bool {
        let n_bins = self.n_bins();
        assert!(
            stride >= 2 && out.len() >= (n_bins - 1) * stride + 2,
            "output too short"
        );
        self.complex_fft()
            .process_with_scratch(&mut s.buf, &mut s.scratch);
        #[cfg(target_arch = "x86_64")]
        if power == 2.0 && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked); bounds are asserted above and inside.
            return unsafe { pair_power2_avx2(&s.buf, n_bins, out, stride) };
        }
        pair_power_generic(&s.buf, n_bins, power, out, stride)
    }
}

/// `out[i] = (a[i]·w[i], b[i]·w[i])` in double precision (the products are exact
/// conversions times one rounding, so every path gives the same bits). `w2` is `w` with
/// every value twice.
#[inline(always)]
fn interleave_window(a: &[f32], b: &[f32], w: &[f64], w2: &[f64], out: &mut [Complex64]) {
    let n = out.len();
    assert!(a.len() >= n && b.len() >= n && w.len() >= n && w2.len() >= 2 * n);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available; lengths are asserted above.
        unsafe { interleave_window_avx2(a, b, w, w2, out) };
        return;
    }
    for (((o, &a), &b), &wk) in out.iter_mut().zip(a).zip(b).zip(w) {
        *o = Complex64::new(a as f64 * wk, b as f64 * wk);
    }
}

/// [`interleave_window`] four samples at a time: the two frames are interleaved while
/// still `f32` (one shuffle for four complex values) and widened afterwards.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interleave_window_avx2(
    a: &[f32],
    b: &[f32],
    w: &[f64],
    w2: &[f64],
    out: &mut [Complex64],
) {
    use std::arch::x86_64::*;
    let n = out.len();
    let op = out.as_mut_ptr() as *mut f64;
    let mut i = 0;
    while i + 4 <= n {
        let va = _mm_loadu_ps(a.as_ptr().add(i));
        let vb = _mm_loadu_ps(b.as_ptr().add(i));
        let lo = _mm256_cvtps_pd(_mm_unpacklo_ps(va, vb)); // a0 b0 a1 b1
        let hi = _mm256_cvtps_pd(_mm_unpackhi_ps(va, vb)); // a2 b2 a3 b3
        let wlo = _mm256_loadu_pd(w2.as_ptr().add(2 * i)); // w0 w0 w1 w1
        let whi = _mm256_loadu_pd(w2.as_ptr().add(2 * i + 4)); // w2 w2 w3 w3
        _mm256_storeu_pd(op.add(2 * i), _mm256_mul_pd(lo, wlo));
        _mm256_storeu_pd(op.add(2 * i + 4), _mm256_mul_pd(hi, whi));
        i += 4;
    }
    while i < n {
        *out.get_unchecked_mut(i) = Complex64::new(a[i] as f64 * w[i], b[i] as f64 * w[i]);
        i += 1;
    }
}

/// `(|A|², |B|²)` of one bin from `z = Z[k]`, `w = Z[N − k]`.
#[inline(always)]
fn pair_bin(z: Complex64, w: Complex64) -> (f64, f64) {
    let (sr, si) = (z.re + w.re, z.im + w.im);
    let (dr, di) = (z.re - w.re, z.im - w.im);
    ((sr * sr + di * di) * 0.25, (dr * dr + si * si) * 0.25)
}

fn pair_power_generic(
    z: &[Complex64],
    n_bins: usize,
    power: f32,
    out: &mut [f32],
    stride: usize,
) -> bool {
    let n = z.len();
    let mut acc = 0.0f64;
    let p = power as f64;
    for k in 0..n_bins {
        let (a, b) = pair_bin(z[k], z[(n - k) % n]);
        acc += (a + b) * 0.0;
        let (a, b) = if power == 2.0 {
            (a, b)
        } else if power == 1.0 {
            (a.sqrt(), b.sqrt())
        } else {
            (a.sqrt().powf(p), b.sqrt().powf(p))
        };
        out[k * stride] = a as f32;
        out[k * stride + 1] = b as f32;
    }
    acc == 0.0
}

/// [`pair_power_generic`] for `power = 2`, two bins per 256-bit vector.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pair_power2_avx2(z: &[Complex64], n_bins: usize, out: &mut [f32], stride: usize) -> bool {
    use std::arch::x86_64::*;
    let n = z.len();
    let mut ok = true;
    // bin 0 pairs with itself (W[0] = Z[0])
    let (a, b) = pair_bin(z[0], z[0]);
    ok &= (a + b).is_finite();
    out[0] = a as f32;
    out[1] = b as f32;
    let zp = z.as_ptr() as *const f64;
    let quarter = _mm256_set1_pd(0.25);
    let zero = _mm256_setzero_pd();
    let mut acc = _mm256_setzero_pd();
    let mut k = 1;
    // bins k, k+1 with partners N−k, N−k−1 (loaded as one vector, halves swapped)
    while k + 1 < n_bins {
        let zv = _mm256_loadu_pd(zp.add(2 * k));
        let wr = _mm256_loadu_pd(zp.add(2 * (n - k - 1)));
        let wv = _mm256_permute2f128_pd::<1>(wr, wr);
        let sv = _mm256_add_pd(zv, wv);
        let dv = _mm256_sub_pd(zv, wv);
        let s2 = _mm256_mul_pd(sv, sv); // sr², si², sr'², si'²
        let d2 = _mm256_mul_pd(dv, dv); // dr², di², ...
        let pa = _mm256_blend_pd::<0b1010>(s2, d2); // sr², di²
        let pb = _mm256_blend_pd::<0b0101>(s2, d2); // dr², si²
        let r = _mm256_mul_pd(_mm256_hadd_pd(pa, pb), quarter); // |A_k|², |B_k|², |A_k+1|², |B_k+1|²
        acc = _mm256_add_pd(acc, _mm256_mul_pd(r, zero));
        let f = _mm256_cvtpd_ps(r);
        let o0 = out.as_mut_ptr().add(k * stride) as *mut f64;
        let o1 = out.as_mut_ptr().add((k + 1) * stride) as *mut f64;
        _mm_storel_pd(o0, _mm_castps_pd(f));
        _mm_storeh_pd(o1, _mm_castps_pd(f));
        k += 2;
    }
    while k < n_bins {
        let (a, b) = pair_bin(z[k], z[(n - k) % n]);
        ok &= (a + b).is_finite();
        out[k * stride] = a as f32;
        out[k * stride + 1] = b as f32;
        k += 1;
    }
    let mut lanes = [0.0f64; 4];
    _mm256_storeu_pd(lanes.as_mut_ptr(), acc);
    ok && lanes.iter().all(|&v| v == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stft::StftConfig;

    /// Loads frames `t` and `t + 1` (if `both`) of `x`, padded as configured.
    fn load_pair(st: &Stft, x: &[f32], t: usize, both: bool, s: &mut PairScratch) {
        let c = st.config();
        let off = if c.center { (c.n_fft / 2) as isize } else { 0 };
        let start = t as isize * c.hop_length as isize - off;
        let (mut fa, mut fb) = (vec![0.0; c.n_fft], vec![0.0; c.n_fft]);
        crate::stft::padded_segment(x, start, c.pad_mode, &mut fa);
        crate::stft::padded_segment(x, start + c.hop_length as isize, c.pad_mode, &mut fb);
        st.load_pair_frames(&fa, both.then_some(&fb[..]), s);
    }

    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 22050.0;
                (2.0 * std::f32::consts::PI * 440.0 * t).sin() * 0.5
                    + 0.3 * (2.0 * std::f32::consts::PI * 3111.0 * t).cos()
                    + 1e-3 * ((i * 7919 % 1000) as f32 / 1000.0 - 0.5)
            })
            .collect()
    }

    /// Both halves of a pair match the separate real FFTs (`frame_at`) within 1e-13 of
    /// the frame's peak power (f64 rounding), for even and odd sizes, centred or not,
    /// and the generic and AVX2 paths give the same bits.
    #[test]
    fn pair_power_matches_separate_ffts() {
        let x = signal(9000);
        for (n_fft, hop, center) in [
            (512, 256, true),
            (400, 160, false),
            (255, 100, true),
            (2048, 512, true),
        ] {
            let st = Stft::new(StftConfig::new(n_fft).hop(hop).center(center)).unwrap();
            let n_frames = st.config().n_frames(x.len()).unwrap();
            let nb = st.n_bins();
            let mut ps = st.pair_scratch();
            let mut ss = st.scratch();
            let mut out = vec![0.0f32; nb * 2];
            let mut t = 0;
            while t < n_frames {
                let both = t + 1 < n_frames;
                load_pair(&st, &x, t, both, &mut ps);
                let buf = ps.buf.clone();
                assert!(st.pair_power(&mut ps, 2.0, &mut out, 2));
                let mut gen = vec![0.0f32; nb * 2];
                let mut z = buf.clone();
                st.complex_fft().process(&mut z);
                assert!(pair_power_generic(&z, nb, 2.0, &mut gen, 2));
                assert_eq!(out, gen, "AVX2 and generic differ (n_fft {n_fft}, t {t})");
                for (lane, tt) in [(0, t), (1, t + 1)] {
                    if lane == 1 && !both {
                        continue;
                    }
                    let spec = st.frame_at(&x, tt, &mut ss).to_vec();
                    let want: Vec<f64> = spec.iter().map(|c| c.norm_sqr()).collect();
                    let peak = want.iter().cloned().fold(0.0, f64::max);
                    for k in 0..nb {
                        let got = out[2 * k + lane] as f64;
                        let err = (got - want[k]).abs();
                        // f32 storage rounds to 6e-8 relative; the pairing adds ~1e-16·peak
                        assert!(
                            err <= 6e-8 * want[k] + 1e-13 * peak,
                            "n_fft {n_fft} frame {tt} bin {k}: {got} vs {}",
                            want[k]
                        );
                    }
                }
                t += 2;
            }
        }
    }

    /// A NaN or infinite sample is reported, whichever frame of the pair holds it.
    #[test]
    fn non_finite_samples_are_flagged() {
        let st = Stft::new(StftConfig::new(512).hop(256)).unwrap();
        let mut ps = st.pair_scratch();
        let mut out = vec![0.0f32; st.n_bins() * 2];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for pos in [0usize, 255, 600] {
                let mut x = signal(2000);
                x[pos] = bad;
                let mut flagged = false;
                let n = st.config().n_frames(x.len()).unwrap();
                let mut t = 0;
                while t < n {
                    load_pair(&st, &x, t, t + 1 < n, &mut ps);
                    flagged |= !st.pair_power(&mut ps, 2.0, &mut out, 2);
                    t += 2;
                }
                assert!(flagged, "{bad} at {pos} not flagged");
            }
        }
    }
}
