//! Phase-vocoder time-stretch, pitch-shift and arbitrary-ratio resampling.
//!
//! [`time_stretch`] is `librosa.effects.time_stretch` (librosa 0.11): STFT (n_fft 2048,
//! hop 512, Hann, centred, zero padding) → phase vocoder → iSTFT of length
//! `round(n / rate)`. The vocoder advances each bin's phase by the measured phase
//! difference between neighbouring analysis frames, `φ₁ − φ₀` (librosa's
//! `φ_adv + princarg(φ₁ − φ₀ − φ_adv)` is the same angle modulo 2π), and interpolates
//! magnitudes linearly between frames. It works on unit phasors
//! `e^{iφ} = X/|X|`, so no `atan2`, `sin` or `cos` is evaluated: this is what makes it
//! an order of magnitude faster than librosa while computing the same thing.
//!
//! [`PhaseMode::IdentityLocking`] adds Laroche & Dolson's identity phase locking
//! ("Improved phase vocoder time-scale modification of audio", IEEE TSAP 7(3), 1999):
//! spectral peaks are propagated as above and every other bin keeps its analysis phase
//! offset to the peak of its region, which preserves the vertical phase coherence of each
//! partial and audibly reduces phasiness.
//!
//! [`pitch_shift`] is `librosa.effects.pitch_shift`: stretch by `2^(−steps/bins_per_octave)`,
//! then resample by the same factor back to the original length, with
//! [`resample_ratio`], a Kaiser-windowed sinc interpolator (24 zero crossings, β = 8.6,
//! 512 phases) for arbitrary real ratios.

use crate::error::{check_signal, invalid, positive, Result};
use mirkit_dsp::{istft, Complex32, Stft, StftConfig, WindowKind};
use ndarray::Array2;

/// Phase handling of the vocoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhaseMode {
    /// `librosa.effects.time_stretch`'s vocoder (each bin independent).
    #[default]
    Librosa,
    /// Identity phase locking around spectral peaks (Laroche & Dolson 1999).
    IdentityLocking,
}

impl std::str::FromStr for PhaseMode {
    type Err = crate::AugmentError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "librosa" | "standard" => Ok(Self::Librosa),
            "lock" | "locked" | "identity" | "phase-lock" => Ok(Self::IdentityLocking),
            _ => Err(invalid("phase mode", s, "librosa or lock")),
        }
    }
}

/// STFT size used by the stretch (librosa's default).
pub const N_FFT: usize = 2048;
/// Hop used by the stretch (librosa's default, `n_fft / 4`).
pub const HOP: usize = 512;

/// One analysis frame: magnitudes and unit phasors (`e^{iφ} = X/|X|`).
#[derive(Clone)]
struct Frame {
    mag: Vec<f32>,
    uph: Vec<Complex32>,
}

impl Frame {
    fn silent(n: usize) -> Self {
        Self {
            mag: vec![0.0; n],
            uph: vec![Complex32::new(1.0, 0.0); n],
        }
    }
    /// Fills from a spectrum, rounding each bin to complex64 first as librosa stores it.
    fn set<T: Copy>(&mut self, spec: &[T], re_im: impl Fn(T) -> (f32, f32)) {
        for ((mv, uv), &c) in self.mag.iter_mut().zip(self.uph.iter_mut()).zip(spec) {
            let (r, i) = re_im(c);
            let n = (r * r + i * i).sqrt();
            *mv = n;
            // numpy: angle(0) = 0
            *uv = if n > 0.0 {
                Complex32::new(r / n, i / n)
            } else {
                Complex32::new(1.0, 0.0)
            };
        }
    }
}

/// The vocoder's state: the running output phasor of every bin.
struct Vocoder {
    mode: PhaseMode,
    acc: Vec<Complex32>,
    m: Vec<f32>,
    phase_out: Vec<Complex32>,
    peaks: Vec<usize>,
}

impl Vocoder {
    fn new(first: &Frame, mode: PhaseMode) -> Self {
        let n = first.mag.len();
        Self {
            mode,
            acc: first.uph.clone(),
            m: vec![0.0; n],
            phase_out: vec![Complex32::new(1.0, 0.0); n],
            peaks: Vec::new(),
        }
    }

    /// One output frame between analysis frames `f0` and `f1` at fraction `alpha`.
    fn step(&mut self, f0: &Frame, f1: &Frame, alpha: f32, out: &mut [Complex32]) {
        let n_bins = self.m.len();
        let m = &mut self.m;
        for ((mv, a), b) in m.iter_mut().zip(&f0.mag).zip(&f1.mag) {
            *mv = (1.0 - alpha) * a + alpha * b;
        }
        let (u0, u1) = (&f0.uph, &f1.uph);
        if self.mode == PhaseMode::IdentityLocking {
            // peaks: larger than the two neighbours on each side
            let peaks = &mut self.peaks;
            peaks.clear();
            for k in 0..n_bins {
                let v = m[k];
                if v <= 0.0 {
                    continue;
                }
                let l1 = k < 1 || m[k - 1] < v;
                let l2 = k < 2 || m[k - 2] < v;
                let r1 = k + 1 >= n_bins || m[k + 1] <= v;
                let r2 = k + 2 >= n_bins || m[k + 2] <= v;
                if l1 && l2 && r1 && r2 {
                    peaks.push(k);
                }
            }
            if !peaks.is_empty() {
                // each bin keeps its analysis phase offset to the peak of its region
                let mut pi = 0usize;
                for k in 0..n_bins {
                    while pi + 1 < peaks.len() && k > (peaks[pi] + peaks[pi + 1]) / 2 {
                        pi += 1;
                    }
                    let p = peaks[pi];
                    self.phase_out[k] = if k == p {
                        self.acc[p]
                    } else {
                        self.acc[p] * u0[k] * u0[p].conj()
                    };
                }
                self.acc.copy_from_slice(&self.phase_out);
            }
        }
        for ((ov, p), mv) in out.iter_mut().zip(&self.acc).zip(m.iter()) {
            *ov = *p * *mv;
        }
        // advance every bin by e^{i(φ1 − φ0)}, renormalised so rounding cannot drift
        for (p, (a, b)) in self.acc.iter_mut().zip(u0.iter().zip(u1)) {
            let r = *p * (*b * a.conj());
            let n = (r.re * r.re + r.im * r.im).sqrt();
            *p = if n > 0.0 {
                Complex32::new(r.re / n, r.im / n)
            } else {
                Complex32::new(1.0, 0.0)
            };
        }
    }
}

/// Number of output frames for `n_frames` analysis frames: `len(np.arange(0, n, rate))`.
fn n_steps(n_frames: usize, rate: f64) -> usize {
    (0..)
        .map(|i| i as f64 * rate)
        .take_while(|&s| s < n_frames as f64)
        .count()
}

/// The phase vocoder on an STFT `(bins, frames)`: `librosa.phase_vocoder(D, rate)`
/// (or with identity phase locking). Output has `ceil(frames / rate)` frames.
pub fn phase_vocoder(
    d: &Array2<Complex32>,
    rate: f64,
    mode: PhaseMode,
) -> Result<Array2<Complex32>> {
    positive("rate", rate)?;
    let (n_bins, n_frames) = d.dim();
    if n_frames == 0 || n_bins == 0 {
        return Err(crate::AugmentError::Empty);
    }
    let frame = |t: usize| -> Frame {
        let mut f = Frame::silent(n_bins);
        if t < n_frames {
            let col: Vec<Complex32> = d.column(t).to_vec();
            f.set(&col, |c: Complex32| (c.re, c.im));
        }
        f
    };
    let n_out = n_steps(n_frames, rate);
    let mut out = Array2::<Complex32>::zeros((n_bins, n_out));
    let (mut i_cur, mut f0, mut f1) = (0usize, frame(0), frame(1));
    let mut voc = Vocoder::new(&f0, mode);
    let mut col = vec![Complex32::new(0.0, 0.0); n_bins];
    for t in 0..n_out {
        let step = t as f64 * rate;
        let i = step.floor() as usize;
        while i_cur < i {
            i_cur += 1;
            f0 = std::mem::replace(&mut f1, frame(i_cur + 1));
        }
        voc.step(&f0, &f1, (step - i as f64) as f32, &mut col);
        for (k, v) in col.iter().enumerate() {
            out[[k, t]] = *v;
        }
    }
    Ok(out)
}

/// `librosa.effects.time_stretch(y, rate=rate)`: faster for `rate > 1`, output length
/// `round(n / rate)`, pitch unchanged.
pub fn time_stretch(y: &[f32], rate: f64, mode: PhaseMode) -> Result<Vec<f32>> {
    check_signal(y)?;
    positive("rate", rate)?;
    if !(1.0 / 64.0..=64.0).contains(&rate) {
        return Err(invalid("rate", rate, "must be between 1/64 and 64"));
    }
    let len = (y.len() as f64 / rate).round_ties_even() as usize;
    if len == 0 {
        return Err(invalid(
            "rate",
            rate,
            format!("leaves no samples of a {}-sample signal", y.len()),
        ));
    }
    // Analysis frames are computed on demand and each output frame goes straight into the
    // overlap-add: memory is the output signal plus a few frames.
    let stft = Stft::new(StftConfig::new(N_FFT).hop(HOP))?;
    let n_frames = stft.config().n_frames(y.len())?;
    let n_bins = stft.n_bins();
    let mut scratch = stft.scratch();
    let mut analyse = |t: usize, f: &mut Frame| {
        if t < n_frames {
            let spec = stft.frame_at(y, t, &mut scratch);
            f.set(spec, |c: realfft::num_complex::Complex64| {
                (c.re as f32, c.im as f32)
            });
        } else {
            *f = Frame::silent(n_bins);
        }
    };
    let mut f0 = Frame::silent(n_bins);
    let mut f1 = Frame::silent(n_bins);
    analyse(0, &mut f0);
    analyse(1, &mut f1);
    let mut i_cur = 0usize;
    let mut voc = Vocoder::new(&f0, mode);
    let mut ola = mirkit_dsp::OverlapAdd::new(n_bins, HOP, None, WindowKind::Hann, true)?;
    let mut col = vec![Complex32::new(0.0, 0.0); n_bins];
    // librosa's istft(length=...) only uses the frames that reach into the output
    let n_out = n_steps(n_frames, rate).min((len + 2 * (N_FFT / 2)).div_ceil(HOP));
    for t in 0..n_out {
        let step = t as f64 * rate;
        let i = step.floor() as usize;
        while i_cur < i {
            i_cur += 1;
            std::mem::swap(&mut f0, &mut f1);
            analyse(i_cur + 1, &mut f1);
        }
        voc.step(&f0, &f1, (step - i as f64) as f32, &mut col);
        ola.push(&col);
    }
    Ok(ola.finish(Some(len))?)
}

/// `librosa.effects.pitch_shift(y, sr=sr, n_steps=steps, bins_per_octave=bpo)`: same
/// length, pitch moved by `steps / bins_per_octave` octaves (fractional steps allowed).
pub fn pitch_shift(
    y: &[f32],
    steps: f64,
    bins_per_octave: u32,
    mode: PhaseMode,
) -> Result<Vec<f32>> {
    check_signal(y)?;
    if !steps.is_finite() {
        return Err(invalid("n_steps", steps, "must be finite"));
    }
    if bins_per_octave == 0 {
        return Err(invalid("bins_per_octave", 0, "must be positive"));
    }
    let rate = 2f64.powf(-steps / bins_per_octave as f64);
    if !(0.25..=4.0).contains(&rate) {
        return Err(invalid(
            "n_steps",
            steps,
            "shifts of more than two octaves are not supported",
        ));
    }
    let stretched = time_stretch(y, rate, mode)?;
    // resample from sr / rate to sr: output j sits at input time j / rate
    Ok(resample_ratio(&stretched, rate, y.len()))
}

/// Resamples `x` by `ratio` (output rate / input rate) into exactly `n_out` samples;
/// output `j` is the band-limited value at input time `j / ratio` (zero outside).
pub fn resample_ratio(x: &[f32], ratio: f64, n_out: usize) -> Vec<f32> {
    let k = SincKernel::new(ratio);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked); same operations, same order, same bits.
        return unsafe { resample_avx2(&k, x, ratio, n_out) };
    }
    resample_generic(&k, x, ratio, n_out)
}

struct SincKernel {
    half: usize,
    taps: usize, // padded to a multiple of 16
    table: Vec<f32>,
}

const PHASES: usize = 512;

impl SincKernel {
    fn new(ratio: f64) -> Self {
        const Z: f64 = 24.0; // zero crossings each side
        const BETA: f64 = 8.6; // Kaiser window, ~90 dB stop band
        let fc = 0.96 * ratio.min(1.0);
        let w = Z / fc; // half width in input samples
        let half = w.ceil() as usize;
        let taps = (2 * half + 1).div_ceil(16) * 16;
        let bessel_i0 = |x: f64| {
            let (mut s, mut t) = (1.0, 1.0);
            for k in 1..60 {
                t *= (x / (2.0 * k as f64)).powi(2);
                s += t;
                if t < 1e-17 * s {
                    break;
                }
            }
            s
        };
        let i0b = bessel_i0(BETA);
        // table[p · taps + m] = h(p/L + half − m), zero beyond 2·half
        let mut table = vec![0.0f32; (PHASES + 1) * taps];
        for p in 0..=PHASES {
            for m in 0..=2 * half {
                let t = p as f64 / PHASES as f64 + half as f64 - m as f64;
                if t.abs() < w {
                    let s = if t == 0.0 {
                        1.0
                    } else {
                        (std::f64::consts::PI * fc * t).sin() / (std::f64::consts::PI * fc * t)
                    };
                    let r = t / w;
                    table[p * taps + m] =
                        (fc * s * bessel_i0(BETA * (1.0 - r * r).sqrt()) / i0b) as f32;
                }
            }
        }
        Self { half, taps, table }
    }
}

/// Dot product over blocks of 16: two 8-lane accumulators (even and odd 8-blocks), summed
/// lane-wise, then the lanes combined as ((0+4)+(1+5))+((2+6)+(3+7)). The AVX2 version
/// performs exactly these operations, so both give the same bits.
#[inline(always)]
fn dot8_generic(xs: &[f32], h: &[f32]) -> f32 {
    let mut e = [0.0f32; 8];
    let mut o = [0.0f32; 8];
    for c in 0..xs.len() / 16 {
        let a: &[f32; 16] = xs[c * 16..c * 16 + 16].try_into().expect("16 lanes");
        let b: &[f32; 16] = h[c * 16..c * 16 + 16].try_into().expect("16 lanes");
        for l in 0..8 {
            e[l] += a[l] * b[l];
            o[l] += a[l + 8] * b[l + 8];
        }
    }
    let acc: [f32; 8] = std::array::from_fn(|l| e[l] + o[l]);
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Padded input and, for output `j`, the window start in it and the table phase.
#[inline(always)]
fn padded(k: &SincKernel, x: &[f32]) -> Vec<f32> {
    let mut xp = vec![0.0f32; x.len() + 2 * k.half + k.taps + 2];
    xp[k.half + 1..k.half + 1 + x.len()].copy_from_slice(x);
    xp
}

#[inline(always)]
fn position(j: usize, step: f64) -> (isize, usize) {
    let tau = j as f64 * step;
    let fl = tau.floor();
    let mut p = ((tau - fl) * PHASES as f64).round() as usize;
    let mut base = fl as isize;
    if p == PHASES {
        p = 0;
        base += 1;
    }
    // taps cover input indices base − half .. → padded offset + half + 1
    (base + 1, p)
}

fn resample_generic(k: &SincKernel, x: &[f32], ratio: f64, n_out: usize) -> Vec<f32> {
    let xp = padded(k, x);
    let step = 1.0 / ratio;
    (0..n_out)
        .map(|j| {
            let (start, p) = position(j, step);
            if start < 0 || start as usize + k.taps > xp.len() {
                return 0.0;
            }
            dot8_generic(
                &xp[start as usize..start as usize + k.taps],
                &k.table[p * k.taps..(p + 1) * k.taps],
            )
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resample_avx2(k: &SincKernel, x: &[f32], ratio: f64, n_out: usize) -> Vec<f32> {
    use std::arch::x86_64::*;
    let xp = padded(k, x);
    let step = 1.0 / ratio;
    let taps = k.taps;
    let mut out = Vec::with_capacity(n_out);
    for j in 0..n_out {
        let (start, p) = position(j, step);
        if start < 0 || start as usize + taps > xp.len() {
            out.push(0.0);
            continue;
        }
        // SAFETY: start + taps <= xp.len() (checked) and (p + 1)·taps <= table.len().
        let pa = xp.as_ptr().add(start as usize);
        let pb = k.table.as_ptr().add(p * taps);
        let mut e = _mm256_setzero_ps();
        let mut o = _mm256_setzero_ps();
        for c in 0..taps / 16 {
            let (a, b) = (pa.add(c * 16), pb.add(c * 16));
            e = _mm256_add_ps(e, _mm256_mul_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b)));
            o = _mm256_add_ps(
                o,
                _mm256_mul_ps(_mm256_loadu_ps(a.add(8)), _mm256_loadu_ps(b.add(8))),
            );
        }
        let mut l = [0.0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), _mm256_add_ps(e, o));
        out.push(((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])));
    }
    out
}

/// Spectral inconsistency of a modified STFT: `‖ |STFT(iSTFT(D))| − |D| ‖_F / ‖D‖_F`.
/// A vocoder whose phases do not agree across overlapping frames produces a spectrogram
/// no signal has; re-analysis then smears it (the audible "phasiness"). Lower is better;
/// used in docs/augment.md to compare [`PhaseMode`]s.
pub fn spectral_inconsistency(d: &Array2<Complex32>) -> Result<f64> {
    let y = istft(d, HOP, None, WindowKind::Hann, true, None)?;
    let d2 = Stft::new(StftConfig::new(N_FFT).hop(HOP))?.stft(&y)?;
    let frames = d.ncols().min(d2.ncols());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for t in 0..frames {
        for k in 0..d.nrows() {
            let a = d[[k, t]].norm() as f64;
            let b = d2[[k, t]].norm() as f64;
            num += (b - a).powi(2);
            den += a * a;
        }
    }
    Ok((num / den.max(f64::MIN_POSITIVE)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frequency of the strongest partial (FFT peak with parabolic interpolation).
    pub(crate) fn dominant_hz(y: &[f32], sr: f64) -> f64 {
        let n = y.len().next_power_of_two() * 4;
        let mut buf = vec![0.0f64; n];
        let w = mirkit_dsp::window::get_window_f64(WindowKind::Hann, y.len(), false);
        for (i, v) in y.iter().enumerate() {
            buf[i] = *v as f64 * w[i];
        }
        let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut out = fft.make_output_vec();
        fft.process(&mut buf, &mut out).unwrap();
        let mags: Vec<f64> = out.iter().map(|c| c.norm()).collect();
        let k = (1..mags.len() - 1)
            .max_by(|&a, &b| mags[a].total_cmp(&mags[b]))
            .unwrap();
        let (a, b, c) = (mags[k - 1].ln(), mags[k].ln(), mags[k + 1].ln());
        let d = 0.5 * (a - c) / (a - 2.0 * b + c);
        (k as f64 + d) * sr / n as f64
    }

    fn tone(f: f64, sr: f64, secs: f64) -> Vec<f32> {
        (0..(sr * secs) as usize)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / sr).sin()) as f32)
            .collect()
    }

    #[test]
    fn pitch_shift_moves_a_tone_by_two_semitones() {
        let sr = 22050.0;
        let y = tone(440.0, sr, 2.0);
        for mode in [PhaseMode::Librosa, PhaseMode::IdentityLocking] {
            let s = pitch_shift(&y, 2.0, 12, mode).unwrap();
            assert_eq!(s.len(), y.len());
            let f = dominant_hz(&s[4096..s.len() - 4096], sr);
            let want = 440.0 * 2f64.powf(2.0 / 12.0); // 493.88 Hz
            assert!(
                (f - want).abs() / want < 0.005,
                "{mode:?}: {f:.2} Hz, want {want:.2}"
            );
        }
        // microtonal: a quarter tone with 24 bins per octave
        let s = pitch_shift(&y, 1.0, 24, PhaseMode::Librosa).unwrap();
        let f = dominant_hz(&s[4096..s.len() - 4096], sr);
        assert!(
            (f - 440.0 * 2f64.powf(1.0 / 24.0)).abs() < 0.005 * 453.0,
            "{f}"
        );
    }

    #[test]
    fn time_stretch_keeps_pitch_and_sets_length() {
        let sr = 22050.0;
        let y = tone(440.0, sr, 2.0);
        for mode in [PhaseMode::Librosa, PhaseMode::IdentityLocking] {
            let s = time_stretch(&y, 1.25, mode).unwrap();
            assert_eq!(s.len(), (y.len() as f64 / 1.25).round() as usize);
            let f = dominant_hz(&s[4096..s.len() - 4096], sr);
            assert!((f - 440.0).abs() / 440.0 < 0.005, "{mode:?}: {f:.2} Hz");
            let slow = time_stretch(&y, 0.81, mode).unwrap();
            assert_eq!(slow.len(), (y.len() as f64 / 0.81).round() as usize);
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        let y = tone(440.0, 22050.0, 0.5);
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(time_stretch(&y, r, PhaseMode::Librosa).is_err(), "rate {r}");
        }
        assert!(matches!(
            time_stretch(&[], 1.1, PhaseMode::Librosa),
            Err(crate::AugmentError::Empty)
        ));
        let mut bad = y.clone();
        bad[10] = f32::NAN;
        assert!(matches!(
            pitch_shift(&bad, 1.0, 12, PhaseMode::Librosa),
            Err(crate::AugmentError::NonFinite { index: 10, .. })
        ));
        assert!(pitch_shift(&y, f64::NAN, 12, PhaseMode::Librosa).is_err());
        assert!(pitch_shift(&y, 1.0, 0, PhaseMode::Librosa).is_err());
    }

    #[test]
    fn simd_and_generic_resamplers_agree_bit_for_bit() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i as f32) * 0.37).sin() * ((i as f32) * 0.011).cos())
            .collect();
        let k = SincKernel::new(0.8909);
        let g = resample_generic(&k, &x, 0.8909, 4400);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let a = unsafe { resample_avx2(&k, &x, 0.8909, 4400) };
            assert_eq!(a, g);
        }
        assert_eq!(resample_ratio(&x, 0.8909, 4400), g);
    }

    #[test]
    fn fractional_resampler_is_aligned() {
        let sr = 22050.0;
        let x = tone(1000.0, sr, 1.0);
        let ratio = 0.8909; // ~ 2 semitones up
        let n = (x.len() as f64 * ratio) as usize;
        let y = resample_ratio(&x, ratio, n);
        let err = (n / 4..3 * n / 4)
            .map(|j| {
                (y[j] as f64
                    - 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * j as f64 / (sr * ratio)).sin())
                .abs()
            })
            .fold(0.0, f64::max);
        assert!(err < 2e-3, "{err}");
    }
}
