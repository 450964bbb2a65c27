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

/// One analysis frame, structure of arrays: magnitudes and the unit phasor
/// `e^{iφ} = X/|X|` split into real and imaginary parts (so the per-bin loops vectorise).
#[derive(Clone)]
struct Frame {
    mag: Vec<f32>,
    re: Vec<f32>,
    im: Vec<f32>,
}

impl Frame {
    fn silent(n: usize) -> Self {
        Self {
            mag: vec![0.0; n],
            re: vec![1.0; n],
            im: vec![0.0; n],
        }
    }

    /// Fills from a complex64 spectrum (as librosa stores it); AVX2 where available
    /// (same operations, same bits).
    fn set(&mut self, spec: &[Complex32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked).
            return unsafe { self.set_avx2(spec) };
        }
        self.set_generic(spec)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn set_avx2(&mut self, spec: &[Complex32]) {
        self.set_generic(spec)
    }

    #[inline(always)]
    fn set_generic(&mut self, spec: &[Complex32]) {
        let n = self.mag.len();
        let (mag, re, im) = (&mut self.mag[..n], &mut self.re[..n], &mut self.im[..n]);
        let spec = &spec[..n];
        for k in 0..n {
            let (r, i) = (spec[k].re, spec[k].im);
            let a = (r * r + i * i).sqrt();
            mag[k] = a;
            // numpy: angle(0) = 0
            let nz = a > 0.0;
            let inv = 1.0 / a;
            re[k] = if nz { r * inv } else { 1.0 };
            im[k] = if nz { i * inv } else { 0.0 };
        }
    }
}

/// The vocoder's state: the running output phasor of every bin.
struct Vocoder {
    mode: PhaseMode,
    acc_re: Vec<f32>,
    acc_im: Vec<f32>,
    m: Vec<f32>,
    lock_re: Vec<f32>,
    lock_im: Vec<f32>,
    peaks: Vec<usize>,
}

impl Vocoder {
    fn new(first: &Frame, mode: PhaseMode) -> Self {
        let n = first.mag.len();
        Self {
            mode,
            acc_re: first.re.clone(),
            acc_im: first.im.clone(),
            m: vec![0.0; n],
            lock_re: vec![1.0; n],
            lock_im: vec![0.0; n],
            peaks: Vec::new(),
        }
    }

    /// One output frame between analysis frames `f0` and `f1` at fraction `alpha`,
    /// written to `out`. Uses AVX2 where the CPU has it: the loops only add, multiply,
    /// divide and take square roots (never fused), so both paths give the same bits.
    fn step(&mut self, f0: &Frame, f1: &Frame, alpha: f32, out: &mut [Complex32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked).
            return unsafe { self.step_avx2(f0, f1, alpha, out) };
        }
        self.step_generic(f0, f1, alpha, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn step_avx2(&mut self, f0: &Frame, f1: &Frame, alpha: f32, out: &mut [Complex32]) {
        self.step_generic(f0, f1, alpha, out)
    }

    #[inline(always)]
    fn step_generic(&mut self, f0: &Frame, f1: &Frame, alpha: f32, out: &mut [Complex32]) {
        let n = self.m.len();
        let (a0, a1) = (&f0.mag[..n], &f1.mag[..n]);
        let (u0r, u0i, u1r, u1i) = (&f0.re[..n], &f0.im[..n], &f1.re[..n], &f1.im[..n]);
        let lerp = |k: usize| (1.0 - alpha) * a0[k] + alpha * a1[k];
        // advance bin k by e^{i(φ1 − φ0)} = u1·conj(u0). All three factors are unit
        // phasors up to rounding, so |r|² = 1 + δ with δ ~ 1e-7, and one Newton step for
        // 1/√(1 + δ), r · (3 − |r|²)/2, brings |r| back to 1 within O(δ²): rounding cannot
        // drift over thousands of frames, without a square root or a division.
        let advance = |k: usize, ar: &mut f32, ai: &mut f32| {
            let dr = u1r[k] * u0r[k] + u1i[k] * u0i[k];
            let di = u1i[k] * u0r[k] - u1r[k] * u0i[k];
            let rr = *ar * dr - *ai * di;
            let ri = *ar * di + *ai * dr;
            let g = 0.5 * (3.0 - (rr * rr + ri * ri));
            (*ar, *ai) = (rr * g, ri * g);
        };
        let out = &mut out[..n];
        if self.mode == PhaseMode::Librosa {
            // output and advance fused into one pass over the bins
            let (ar, ai) = (&mut self.acc_re[..n], &mut self.acc_im[..n]);
            for k in 0..n {
                let m = lerp(k);
                out[k] = Complex32::new(ar[k] * m, ai[k] * m);
                advance(k, &mut ar[k], &mut ai[k]);
            }
            return;
        }
        // phase locking needs every interpolated magnitude first (to find the peaks)
        for (k, m) in self.m.iter_mut().enumerate() {
            *m = lerp(k);
        }
        self.lock_phases(f0);
        let (ar, ai) = (&mut self.acc_re[..n], &mut self.acc_im[..n]);
        for k in 0..n {
            out[k] = Complex32::new(ar[k] * self.m[k], ai[k] * self.m[k]);
            advance(k, &mut ar[k], &mut ai[k]);
        }
    }

    /// Identity phase locking: peaks (larger than the two neighbours on each side) keep
    /// their propagated phase; every other bin keeps its analysis phase offset to the peak
    /// of its region.
    #[inline(always)]
    fn lock_phases(&mut self, f0: &Frame) {
        let n = self.m.len();
        let m = &self.m;
        let peaks = &mut self.peaks;
        peaks.clear();
        for k in 0..n {
            let v = m[k];
            if v <= 0.0 {
                continue;
            }
            let l1 = k < 1 || m[k - 1] < v;
            let l2 = k < 2 || m[k - 2] < v;
            let r1 = k + 1 >= n || m[k + 1] <= v;
            let r2 = k + 2 >= n || m[k + 2] <= v;
            if l1 && l2 && r1 && r2 {
                peaks.push(k);
            }
        }
        if peaks.is_empty() {
            return;
        }
        let (ur, ui) = (&f0.re, &f0.im);
        let mut pi = 0usize;
        for k in 0..n {
            while pi + 1 < peaks.len() && k > (peaks[pi] + peaks[pi + 1]) / 2 {
                pi += 1;
            }
            let p = peaks[pi];
            let acc = Complex32::new(self.acc_re[p], self.acc_im[p]);
            let v = if k == p {
                acc
            } else {
                acc * Complex32::new(ur[k], ui[k]) * Complex32::new(ur[p], -ui[p])
            };
            self.lock_re[k] = v.re;
            self.lock_im[k] = v.im;
        }
        self.acc_re.copy_from_slice(&self.lock_re);
        self.acc_im.copy_from_slice(&self.lock_im);
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
            f.set(&col);
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

/// Centred, zero-padded, periodic-Hann analysis frames of `N_FFT` samples every `HOP`
/// (librosa 0.11 pads with zeros here), in single precision. Frames are requested in
/// increasing order and transformed two at a time: frame `t` as the real part and `t + 1`
/// as the imaginary part of one complex FFT, separated by Hermitian symmetry
/// (`A[k] = (Z[k] + conj Z[N−k]) / 2`, `B[k] = (Z[k] − conj Z[N−k]) / 2i`), which is
/// cheaper than two real FFTs with their post-processing.
struct Analysis {
    fft: std::sync::Arc<dyn rustfft::Fft<f32>>,
    win: Vec<f32>,
    buf: Vec<Complex32>,
    /// One unwindowed edge frame.
    edge: Vec<f32>,
    scratch: Vec<Complex32>,
    spec: Vec<Complex32>,
    /// The spectrum of frame `next` (the odd one of the last pair).
    held: Vec<Complex32>,
    next: Option<usize>,
}

impl Analysis {
    fn new() -> Self {
        let fft = rustfft::FftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        let zero = Complex32::new(0.0, 0.0);
        Self {
            win: mirkit_dsp::get_window(WindowKind::Hann, N_FFT, true),
            buf: vec![zero; N_FFT],
            edge: vec![0.0; N_FFT],
            scratch: vec![zero; fft.get_inplace_scratch_len()],
            spec: vec![zero; N_FFT / 2 + 1],
            held: vec![zero; N_FFT / 2 + 1],
            next: None,
            fft,
        }
    }

    /// Windowed samples of frame `t` into the real (`im == false`) or imaginary part,
    /// zero-padded where the frame reaches past either end (only the first and last few
    /// frames come here).
    fn load(&mut self, y: &[f32], t: usize, im: bool) {
        let start = (t * HOP) as isize - (N_FFT / 2) as isize;
        mirkit_dsp::padded_segment(y, start, mirkit_dsp::PadMode::Constant, &mut self.edge);
        for ((c, &v), &w) in self.buf.iter_mut().zip(&self.edge).zip(&self.win) {
            if im {
                c.im = v * w
            } else {
                c.re = v * w
            }
        }
    }

    /// Frame `t` of `y` into `f` (AVX2 where available; same operations, same bits).
    fn frame(&mut self, y: &[f32], t: usize, f: &mut Frame) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked).
            return unsafe { self.frame_avx2(y, t, f) };
        }
        self.frame_generic(y, t, f)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn frame_avx2(&mut self, y: &[f32], t: usize, f: &mut Frame) {
        self.frame_generic(y, t, f)
    }

    #[inline(always)]
    fn frame_generic(&mut self, y: &[f32], t: usize, f: &mut Frame) {
        if self.next == Some(t) {
            f.set_generic(&self.held);
            return;
        }
        let start = (t * HOP) as isize - (N_FFT / 2) as isize;
        if start >= 0 && start as usize + HOP + N_FFT <= y.len() {
            // both frames inside the signal: one interleaving pass
            let ya = &y[start as usize..start as usize + N_FFT];
            let yb = &y[start as usize + HOP..start as usize + HOP + N_FFT];
            for (((c, &a), &b), &w) in self.buf.iter_mut().zip(ya).zip(yb).zip(&self.win) {
                *c = Complex32::new(a * w, b * w);
            }
        } else {
            self.load(y, t, false);
            self.load(y, t + 1, true);
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let z = &self.buf;
        let h = N_FFT / 2;
        let sep = |p: Complex32, q: Complex32| {
            let q = q.conj();
            (
                Complex32::new(0.5 * (p.re + q.re), 0.5 * (p.im + q.im)),
                // (p − q) / 2i
                Complex32::new(0.5 * (p.im - q.im), -0.5 * (p.re - q.re)),
            )
        };
        (self.spec[0], self.held[0]) = sep(z[0], z[0]);
        let (spec, held) = (&mut self.spec[1..=h], &mut self.held[1..=h]);
        for (((a, b), &p), &q) in spec
            .iter_mut()
            .zip(held.iter_mut())
            .zip(&z[1..=h])
            .zip(z[h..].iter().rev())
        {
            (*a, *b) = sep(p, q);
        }
        self.next = Some(t + 1);
        f.set_generic(&self.spec);
    }
}

/// `librosa.effects.time_stretch(y, rate=rate)`: faster for `rate > 1`, output length
/// `round(n / rate)`, pitch unchanged.
///
/// ```
/// use mirkit_augment::{time_stretch, PhaseMode};
/// let y: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.0627).sin()).collect(); // 220 Hz, 1 s
/// let slow = time_stretch(&y, 0.8, PhaseMode::Librosa)?; // librosa's vocoder: 1.25 s
/// assert_eq!(slow.len(), 27562); // Python's round(27562.5), half to even
/// // identity phase locking (Laroche & Dolson): less phasiness, same length
/// assert_eq!(time_stretch(&y, 0.8, PhaseMode::IdentityLocking)?.len(), 27562);
/// assert!(time_stretch(&y, 0.0, PhaseMode::Librosa).is_err()); // typed error, no panic
/// # Ok::<(), mirkit_augment::AugmentError>(())
/// ```
///
/// (The per-frame pieces — analysis, vocoder, overlap-add — each pick their AVX2 build
/// at run time.)
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
    let n_frames = StftConfig::new(N_FFT).hop(HOP).n_frames(y.len())?;
    let n_bins = N_FFT / 2 + 1;
    let mut an = Analysis::new();
    let mut analyse = |t: usize, f: &mut Frame| {
        if t < n_frames {
            an.frame(y, t, f);
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
    // librosa's istft(length=...) only uses the frames that reach into the output
    let n_out = n_steps(n_frames, rate).min((len + 2 * (N_FFT / 2)).div_ceil(HOP));
    ola.reserve_frames(n_out);
    for t in 0..n_out {
        let step = t as f64 * rate;
        let i = step.floor() as usize;
        while i_cur < i {
            i_cur += 1;
            std::mem::swap(&mut f0, &mut f1);
            analyse(i_cur + 1, &mut f1);
        }
        let alpha = (step - i as f64) as f32;
        ola.push_with(|col| voc.step(&f0, &f1, alpha, col));
    }
    Ok(ola.finish(Some(len))?)
}

/// `librosa.effects.pitch_shift(y, sr=sr, n_steps=steps, bins_per_octave=bpo)`: same
/// length, pitch moved by `steps / bins_per_octave` octaves (fractional steps allowed).
///
/// ```
/// use mirkit_augment::{pitch_shift, PhaseMode};
/// let y: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.0627).sin()).collect();
/// let up = pitch_shift(&y, 1.5, 24, PhaseMode::Librosa)?; // 1.5 quarter tones up
/// assert_eq!(up.len(), y.len());
/// # Ok::<(), mirkit_augment::AugmentError>(())
/// ```
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
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA are available (checked); same operations, same order, same
        // bits as the generic version.
        return unsafe { resample_avx2(&k, x, ratio, n_out) };
    }
    resample_generic(&k, x, ratio, n_out)
}

/// The interpolation filter: a Kaiser-windowed sinc tabulated at `PHASES` fractional
/// offsets, `taps` coefficients each (padded with zeros to a multiple of 8).
struct SincKernel {
    half: usize,
    taps: usize,
    table: Vec<f32>,
}

const PHASES: usize = 512; // a power of two (see `position`)

impl SincKernel {
    fn new(ratio: f64) -> Self {
        const Z: f64 = 24.0; // zero crossings each side
        const BETA: f64 = 8.6; // Kaiser window, ~90 dB stop band
        let fc = 0.96 * ratio.min(1.0);
        let w = Z / fc; // half width in input samples
        let half = w.ceil() as usize;
        let taps = (2 * half + 1).div_ceil(8) * 8;
        // Every entry is h(i / PHASES) for an integer i, and h is even: tabulate
        // g[i] = h(i / PHASES) once for i ≥ 0 (half the evaluations), with
        // sin(π·fc·i/PHASES) from a rotation recurrence (one sin/cos in all) and the
        // Kaiser window's I0(β·√(1 − r²)) = Σₖ (x²/4)ᵏ / (k!)² from 32 terms (the 26th
        // is already below 1e-19 of the sum for x ≤ 8.6), evaluated by Horner's rule
        // for all i at once so the loop vectorises.
        const TERMS: usize = 32;
        let mut coef = [0.0f64; TERMS];
        coef[0] = 1.0;
        for k in 1..TERMS {
            coef[k] = coef[k - 1] / (k * k) as f64;
        }
        let n_g = (w * PHASES as f64).ceil() as usize + 1;
        let y: Vec<f64> = (0..n_g)
            .map(|i| {
                let r = (i as f64 / PHASES as f64 / w).min(1.0);
                BETA * BETA * (1.0 - r * r) / 4.0
            })
            .collect();
        let mut i0 = vec![coef[TERMS - 1]; n_g];
        for &c in coef[..TERMS - 1].iter().rev() {
            for (v, &yv) in i0.iter_mut().zip(&y) {
                *v = *v * yv + c;
            }
        }
        let i0b = coef
            .iter()
            .rev()
            .fold(0.0, |acc, &c| acc * (BETA * BETA / 4.0) + c);
        let (ds, dc) = (std::f64::consts::PI * fc / PHASES as f64).sin_cos();
        let (mut s, mut c) = (0.0f64, 1.0f64);
        let mut g = vec![0.0f64; n_g];
        for (i, gv) in g.iter_mut().enumerate() {
            let t = i as f64 / PHASES as f64;
            if t < w {
                let sinc = if i == 0 {
                    1.0
                } else {
                    s / (std::f64::consts::PI * fc * t)
                };
                *gv = fc * sinc * i0[i] / i0b;
            }
            (s, c) = (s * dc + c * ds, c * dc - s * ds);
        }
        // table[p · taps + m] = h(p/L + half − m), zero beyond 2·half
        let mut table = vec![0.0f32; (PHASES + 1) * taps];
        for p in 0..=PHASES {
            for m in 0..=2 * half {
                let i =
                    (p as isize + (half as isize - m as isize) * PHASES as isize).unsigned_abs();
                if let Some(&v) = g.get(i) {
                    table[p * taps + m] = v as f32;
                }
            }
        }
        Self { half, taps, table }
    }
}

/// One output: eight lane accumulators `acc[l] = fma(x[8c + l], h[8c + l], acc[l])` over
/// the blocks `c`, combined as `((0+1)+(2+3)) + ((4+5)+(6+7))`. The AVX2 version performs
/// exactly these operations, so both give the same bits.
#[inline(always)]
fn dot_generic(xs: &[f32], h: &[f32]) -> f32 {
    let mut a = [0.0f32; 8];
    for (xc, hc) in xs.chunks_exact(8).zip(h.chunks_exact(8)) {
        for l in 0..8 {
            a[l] = xc[l].mul_add(hc[l], a[l]);
        }
    }
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// For output `j`: the first input index under the filter (may be negative) and the
/// table phase. `step512` is `PHASES / ratio`; output `j` sits at input time
/// `j / ratio`, rounded to the nearest `1 / PHASES` (ties to even).
#[inline(always)]
fn position(k: &SincKernel, j: usize, step512: f64) -> (isize, usize) {
    let q = (j as f64 * step512).round_ties_even();
    debug_assert!(q.is_finite() && q.abs() < 9e15);
    // SAFETY: q is finite and far inside i64's range (j < 2^53 samples, ratio ≥ 1/4).
    let q = unsafe { q.to_int_unchecked::<i64>() };
    let base = q >> PHASES.trailing_zeros();
    let p = (q & (PHASES as i64 - 1)) as usize;
    (base as isize - k.half as isize, p)
}

/// The `taps` input samples from `s` on, zeros outside `x`; `None` when the filter does
/// not reach `x` at all.
#[inline(always)]
fn window<'a>(k: &SincKernel, x: &'a [f32], s: isize, edge: &'a mut [f32]) -> Option<&'a [f32]> {
    let taps = k.taps as isize;
    let n = x.len() as isize;
    if s >= 0 && s + taps <= n {
        return Some(&x[s as usize..(s + taps) as usize]);
    }
    if s + taps <= 0 || s >= n {
        return None;
    }
    for (i, e) in edge.iter_mut().enumerate() {
        let t = s + i as isize;
        *e = if (0..n).contains(&t) {
            x[t as usize]
        } else {
            0.0
        };
    }
    Some(edge)
}

fn resample_generic(k: &SincKernel, x: &[f32], ratio: f64, n_out: usize) -> Vec<f32> {
    let step512 = PHASES as f64 / ratio;
    let mut edge = vec![0.0f32; k.taps];
    (0..n_out)
        .map(|j| {
            let (s, p) = position(k, j, step512);
            match window(k, x, s, &mut edge) {
                Some(xs) => dot_generic(xs, &k.table[p * k.taps..(p + 1) * k.taps]),
                None => 0.0,
            }
        })
        .collect()
}

/// Eight outputs at a time: one FMA chain per output, the eight sums reduced together
/// with horizontal adds (same order as [`dot_generic`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn resample_avx2(k: &SincKernel, x: &[f32], ratio: f64, n_out: usize) -> Vec<f32> {
    use std::arch::x86_64::*;
    let step512 = PHASES as f64 / ratio;
    let taps = k.taps;
    let zeros = vec![0.0f32; taps];
    let mut edges = vec![0.0f32; 8 * taps];
    let mut out = vec![0.0f32; n_out];
    for (g, chunk) in out.chunks_mut(8).enumerate() {
        let mut xp = [zeros.as_ptr(); 8];
        let mut hp = [zeros.as_ptr(); 8];
        let mut live = [false; 8];
        let mut pos = [(0isize, 0usize); 8];
        for (l, v) in pos.iter_mut().enumerate() {
            *v = position(k, g * 8 + l, step512);
        }
        if chunk.len() == 8 && pos[0].0 >= 0 && pos[7].0 + taps as isize <= x.len() as isize {
            // the whole group inside the signal (window starts increase with j)
            for l in 0..8 {
                xp[l] = x.as_ptr().add(pos[l].0 as usize);
                hp[l] = k.table.as_ptr().add(pos[l].1 * taps);
            }
            live = [true; 8];
        } else {
            for (l, e) in edges.chunks_exact_mut(taps).enumerate().take(chunk.len()) {
                let (s, p) = pos[l];
                if let Some(xs) = window(k, x, s, e) {
                    xp[l] = xs.as_ptr();
                    hp[l] = k.table.as_ptr().add(p * taps);
                    live[l] = true;
                }
            }
        }
        // one chain per output; out-of-order execution overlaps the eight chains (plain
        // loops, not closures, which would not inherit the AVX2/FMA target features)
        let mut a = [_mm256_setzero_ps(); 8];
        for l in 0..8 {
            let mut acc = _mm256_setzero_ps();
            for c in (0..taps).step_by(8) {
                // SAFETY: every pointer has `taps` readable values.
                acc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(xp[l].add(c)),
                    _mm256_loadu_ps(hp[l].add(c)),
                    acc,
                );
            }
            a[l] = acc;
        }
        let s01 = _mm256_hadd_ps(a[0], a[1]);
        let s23 = _mm256_hadd_ps(a[2], a[3]);
        let s45 = _mm256_hadd_ps(a[4], a[5]);
        let s67 = _mm256_hadd_ps(a[6], a[7]);
        let s0123 = _mm256_hadd_ps(s01, s23);
        let s4567 = _mm256_hadd_ps(s45, s67);
        let sums = _mm256_add_ps(
            _mm256_permute2f128_ps(s0123, s4567, 0x20),
            _mm256_permute2f128_ps(s0123, s4567, 0x31),
        );
        let mut v = [0.0f32; 8];
        _mm256_storeu_ps(v.as_mut_ptr(), sums);
        for (l, o) in chunk.iter_mut().enumerate() {
            *o = if live[l] { v[l] } else { 0.0 };
        }
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

    /// The tabulated filter against the Kaiser-windowed sinc evaluated directly (series
    /// Bessel function, `sin` per entry), for up- and down-sampling ratios.
    #[test]
    fn kernel_table_matches_the_direct_formula() {
        for ratio in [0.25, 0.8909, 1.0, 1.5] {
            let k = SincKernel::new(ratio);
            let fc = 0.96 * f64::min(ratio, 1.0);
            let w = 24.0 / fc;
            let i0 = |x: f64| {
                let (mut s, mut t) = (1.0f64, 1.0f64);
                for j in 1..100 {
                    t *= (x / (2.0 * j as f64)).powi(2);
                    s += t;
                }
                s
            };
            let mut worst = 0.0f64;
            for p in (0..=PHASES).step_by(37) {
                for m in 0..k.taps {
                    let t = p as f64 / PHASES as f64 + k.half as f64 - m as f64;
                    let want = if m > 2 * k.half || t.abs() >= w {
                        0.0
                    } else {
                        let x = std::f64::consts::PI * fc * t;
                        let sinc = if t == 0.0 { 1.0 } else { x.sin() / x };
                        fc * sinc * i0(8.6 * (1.0 - (t / w).powi(2)).sqrt()) / i0(8.6)
                    };
                    worst = worst.max((k.table[p * k.taps + m] as f64 - want).abs());
                }
            }
            assert!(worst < 1e-7, "ratio {ratio}: {worst:e}");
        }
    }

    /// The vocoder's running phasors stay on the unit circle over many frames (the
    /// Newton renormalisation does not drift).
    #[test]
    fn vocoder_phasors_stay_unit_over_long_runs() {
        let n = 64;
        let mut rng = mirkit_core::Rng::new(5);
        let mut frame = || {
            let spec: Vec<Complex32> = (0..n)
                .map(|_| Complex32::new(rng.range(-1.0, 1.0) as f32, rng.range(-1.0, 1.0) as f32))
                .collect();
            let mut f = Frame::silent(n);
            f.set(&spec);
            f
        };
        let (mut f0, mut f1) = (frame(), frame());
        let mut voc = Vocoder::new(&f0, PhaseMode::Librosa);
        let mut out = vec![Complex32::new(0.0, 0.0); n];
        for _ in 0..20_000 {
            voc.step(&f0, &f1, 0.5, &mut out);
            f0 = std::mem::replace(&mut f1, frame());
        }
        for (r, i) in voc.acc_re.iter().zip(&voc.acc_im) {
            let a = (r * r + i * i).sqrt();
            assert!((a - 1.0).abs() < 1e-6, "{a}");
        }
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
