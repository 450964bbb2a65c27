//! Mel scale conversions and mel filterbanks.
//!
//! Formulas follow `librosa.filters.mel` / `librosa.mel_frequencies` (librosa 0.11) and
//! `torchaudio.functional.melscale_fbanks` (torchaudio 2.x); both build triangles between
//! `n_mels + 2` points equally spaced on the mel scale. Slaney's scale is linear below
//! 1 kHz (200/3 Hz per mel) and logarithmic above (step `ln(6.4)/27`); HTK's is
//! `2595 log10(1 + f/700)`. Slaney normalisation divides each triangle by its width in Hz
//! (`2 / (f[i+2] − f[i])`), giving constant energy per band.
//!
//! All computation is in `f64`, rounded once to `f32`. The filterbank is stored sparsely
//! (each band's first bin and its non-zero weights), which makes the mel product cost
//! about `2·n_bins` multiply-adds per frame instead of `n_bins·n_mels`.

use crate::error::{invalid, Result};
use ndarray::{Array2, ArrayView2};

/// Mel scale formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelScale {
    /// Slaney's Auditory Toolbox scale (librosa default).
    Slaney,
    /// HTK's `2595 log10(1 + f/700)` (torchaudio default).
    Htk,
}

/// Filter normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelNorm {
    /// Divide each filter by its bandwidth (librosa default, `norm="slaney"`).
    Slaney,
    /// Peak-one triangles (torchaudio default, `norm=None`).
    None,
}

/// Hz to mel.
pub fn hz_to_mel(f: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
        MelScale::Slaney => {
            let f_sp = 200.0 / 3.0;
            let min_log_hz = 1000.0;
            let min_log_mel = min_log_hz / f_sp;
            let logstep = 6.4f64.ln() / 27.0;
            if f >= min_log_hz {
                min_log_mel + (f / min_log_hz).ln() / logstep
            } else {
                f / f_sp
            }
        }
    }
}

/// Mel to Hz.
pub fn mel_to_hz(m: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
        MelScale::Slaney => {
            let f_sp = 200.0 / 3.0;
            let min_log_hz = 1000.0;
            let min_log_mel = min_log_hz / f_sp;
            let logstep = 6.4f64.ln() / 27.0;
            if m >= min_log_mel {
                min_log_hz * (logstep * (m - min_log_mel)).exp()
            } else {
                f_sp * m
            }
        }
    }
}

/// `n` frequencies equally spaced on the mel scale between `fmin` and `fmax` (librosa's
/// `mel_frequencies`).
pub fn mel_frequencies(n: usize, fmin: f64, fmax: f64, scale: MelScale) -> Vec<f64> {
    let (a, b) = (hz_to_mel(fmin, scale), hz_to_mel(fmax, scale));
    linspace(a, b, n)
        .into_iter()
        .map(|m| mel_to_hz(m, scale))
        .collect()
}

/// numpy's `linspace` (endpoint included; the last value is exactly `b`).
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![a],
        _ => {
            let step = (b - a) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| a + i as f64 * step).collect();
            v[n - 1] = b;
            v
        }
    }
}

/// Whose arithmetic builds the filterbank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelArithmetic {
    /// librosa: double precision, rounded once (the most accurate).
    Librosa,
    /// torchaudio `melscale_fbanks`: single precision step by step, with `torch.linspace`'s
    /// two-sided formula and a frequency grid `linspace(0, sr // 2, n_freqs)`. Differs from
    /// the double-precision bank by up to ~1e-5; use it to reproduce models trained with
    /// torchaudio to the last bit.
    TorchaudioF32,
}

/// The mel bands: how many, their edges, formula, normalisation and arithmetic. The one
/// mel configuration type of the workspace: a [`crate::FeatureConfig`] holds one, and
/// [`MelConfig`] adds the sample rate and FFT size a filterbank needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MelSettings {
    /// Number of bands.
    pub n_mels: usize,
    /// Lowest edge, Hz.
    pub fmin: f32,
    /// Highest edge, Hz (`None`: Nyquist).
    pub fmax: Option<f32>,
    /// Mel formula.
    pub scale: MelScale,
    /// Filter normalisation.
    pub norm: MelNorm,
    /// Whose arithmetic builds the bank (torchaudio presets reproduce torchaudio's `f32`).
    pub arithmetic: MelArithmetic,
}

impl Default for MelSettings {
    /// librosa's defaults: 128 bands, Slaney scale and norm, `fmin=0`, `fmax=sr/2`.
    fn default() -> Self {
        Self {
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            scale: MelScale::Slaney,
            norm: MelNorm::Slaney,
            arithmetic: MelArithmetic::Librosa,
        }
    }
}

impl MelSettings {
    /// torchaudio's defaults (`n_mels=128`, HTK scale, no norm, its `f32` arithmetic).
    pub fn torchaudio() -> Self {
        Self {
            scale: MelScale::Htk,
            norm: MelNorm::None,
            arithmetic: MelArithmetic::TorchaudioF32,
            ..Self::default()
        }
    }
}

/// Mel filterbank parameters: the bands and the sample rate and FFT size they apply to.
#[derive(Debug, Clone, PartialEq)]
pub struct MelConfig {
    /// Sample rate of the signal, Hz.
    pub sample_rate: u32,
    /// FFT size (the bank has `1 + n_fft/2` columns).
    pub n_fft: usize,
    /// The bands.
    pub mel: MelSettings,
}

impl MelConfig {
    /// `mel` bands at this rate and FFT size.
    pub fn new(sample_rate: u32, n_fft: usize, mel: MelSettings) -> Self {
        Self {
            sample_rate,
            n_fft,
            mel,
        }
    }
    /// librosa's defaults (`n_mels=128`, Slaney scale and norm, `fmin=0`, `fmax=sr/2`).
    pub fn librosa(sample_rate: u32, n_fft: usize) -> Self {
        Self::new(sample_rate, n_fft, MelSettings::default())
    }
    /// torchaudio's defaults (`n_mels=128`, HTK scale, no norm).
    pub fn torchaudio(sample_rate: u32, n_fft: usize) -> Self {
        Self::new(sample_rate, n_fft, MelSettings::torchaudio())
    }
    /// The effective `fmax`.
    pub fn fmax_or_nyquist(&self) -> f32 {
        self.mel.fmax.unwrap_or(self.sample_rate as f32 / 2.0)
    }
    /// Checks the parameters: positive rate and sizes, `0 <= fmin < fmax <= sr/2`.
    pub fn validate(&self) -> Result<()> {
        if self.sample_rate == 0 {
            return Err(invalid("sr", 0, "must be positive"));
        }
        if self.n_fft < 2 {
            return Err(invalid("n_fft", self.n_fft, "must be at least 2"));
        }
        if self.mel.n_mels == 0 {
            return Err(invalid("n_mels", 0, "must be positive"));
        }
        if self.mel.n_mels > 4096 {
            return Err(invalid("n_mels", self.mel.n_mels, "must be at most 4096"));
        }
        let nyq = self.sample_rate as f32 / 2.0;
        let fmax = self.fmax_or_nyquist();
        if !(self.mel.fmin.is_finite() && self.mel.fmin >= 0.0) {
            return Err(invalid(
                "fmin",
                self.mel.fmin,
                "must be a finite number >= 0",
            ));
        }
        if !fmax.is_finite() || fmax > nyq {
            return Err(invalid(
                "fmax",
                fmax,
                format!("must not exceed the Nyquist frequency {nyq} Hz"),
            ));
        }
        if self.mel.fmin >= fmax {
            return Err(invalid(
                "fmin",
                self.mel.fmin,
                format!("must be below fmax = {fmax}"),
            ));
        }
        Ok(())
    }
}

/// A mel filterbank stored sparsely: per band, the first bin and the non-zero weights.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilterbank {
    n_bins: usize,
    bands: Vec<(usize, Vec<f32>)>,
}

impl MelFilterbank {
    /// Builds the filterbank of `cfg` (librosa's `filters.mel`, or torchaudio's
    /// `melscale_fbanks` transposed, which is the same formula).
    pub fn new(cfg: &MelConfig) -> Result<Self> {
        cfg.validate()?;
        let dense = match cfg.mel.arithmetic {
            MelArithmetic::Librosa => mel_filterbank_f64(cfg),
            MelArithmetic::TorchaudioF32 => torchaudio_filterbank_f32(cfg).mapv(|v| v as f64),
        };
        let n_bins = cfg.n_fft / 2 + 1;
        let bands = dense
            .outer_iter()
            .map(|row| {
                let first = row.iter().position(|&v| v != 0.0);
                match first {
                    None => (0, vec![]),
                    Some(a) => {
                        let b = row.iter().rposition(|&v| v != 0.0).unwrap() + 1;
                        (
                            a,
                            row.iter().skip(a).take(b - a).map(|&v| v as f32).collect(),
                        )
                    }
                }
            })
            .collect();
        Ok(Self { n_bins, bands })
    }
    /// Number of bands.
    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }
    /// Number of FFT bins expected.
    pub fn n_bins(&self) -> usize {
        self.n_bins
    }
    /// Band `m`'s first bin and non-zero weights.
    #[inline]
    pub fn band(&self, m: usize) -> (usize, &[f32]) {
        let (a, w) = &self.bands[m];
        (*a, w)
    }
    /// Indices of bands with no non-zero weight (librosa warns about these: "Empty
    /// filters detected in mel frequency basis"); their rows are always zero. They appear
    /// when `n_mels` is large for `n_fft` and the rate.
    ///
    /// ```
    /// use mirkit_dsp::{MelConfig, MelFilterbank, MelSettings};
    /// let many = MelSettings { n_mels: 1000, ..Default::default() };
    /// let fb = MelFilterbank::new(&MelConfig::new(22050, 2048, many))?;
    /// assert!(!fb.empty_bands().is_empty());
    /// let fine = MelFilterbank::new(&MelConfig::new(22050, 2048, MelSettings::default()))?;
    /// assert!(fine.empty_bands().is_empty());
    /// # Ok::<(), mirkit_dsp::DspError>(())
    /// ```
    pub fn empty_bands(&self) -> Vec<usize> {
        self.bands
            .iter()
            .enumerate()
            .filter(|(_, b)| b.1.is_empty())
            .map(|(i, _)| i)
            .collect()
    }
    /// The dense `(n_mels, n_bins)` matrix, as `librosa.filters.mel` returns it.
    pub fn to_dense(&self) -> Array2<f32> {
        let mut m = Array2::zeros((self.bands.len(), self.n_bins));
        for (i, (a, w)) in self.bands.iter().enumerate() {
            for (k, &v) in w.iter().enumerate() {
                m[[i, a + k]] = v;
            }
        }
        m
    }
    /// Applies the bank to one spectrum (`n_bins` values) into `out` (`n_mels` values).
    #[inline]
    pub fn apply_frame(&self, spec: &[f32], out: &mut [f32]) {
        debug_assert_eq!(spec.len(), self.n_bins);
        for (o, (a, w)) in out.iter_mut().zip(&self.bands) {
            let s = &spec[*a..*a + w.len()];
            let mut acc = 0.0f32;
            for (x, y) in s.iter().zip(w) {
                acc += x * y;
            }
            *o = acc;
        }
    }
    /// Applies the bank to a `(n_bins, frames)` spectrogram, giving `(n_mels, frames)`.
    pub fn apply(&self, spec: ArrayView2<f32>) -> Result<Array2<f32>> {
        if spec.nrows() != self.n_bins {
            return Err(crate::DspError::Shape(format!(
                "spectrogram has {} bins, filterbank expects {}",
                spec.nrows(),
                self.n_bins
            )));
        }
        let mut out = Array2::zeros((self.n_mels(), spec.ncols()));
        let mut col = vec![0.0; self.n_bins];
        let mut res = vec![0.0; self.n_mels()];
        for t in 0..spec.ncols() {
            for (k, c) in col.iter_mut().enumerate() {
                *c = spec[[k, t]];
            }
            self.apply_frame(&col, &mut res);
            for (m, &v) in res.iter().enumerate() {
                out[[m, t]] = v;
            }
        }
        Ok(out)
    }
}

/// The dense filterbank in `f64`, shape `(n_mels, 1 + n_fft/2)`.
pub fn mel_filterbank_f64(cfg: &MelConfig) -> Array2<f64> {
    let n_bins = cfg.n_fft / 2 + 1;
    let sr = cfg.sample_rate as f64;
    let fftfreqs: Vec<f64> = (0..n_bins)
        .map(|k| k as f64 * sr / cfg.n_fft as f64)
        .collect();
    let mel_f = mel_frequencies(
        cfg.mel.n_mels + 2,
        cfg.mel.fmin as f64,
        cfg.fmax_or_nyquist() as f64,
        cfg.mel.scale,
    );
    let mut w = Array2::<f64>::zeros((cfg.mel.n_mels, n_bins));
    for i in 0..cfg.mel.n_mels {
        let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
        let enorm = match cfg.mel.norm {
            MelNorm::Slaney => 2.0 / (f2 - f0),
            MelNorm::None => 1.0,
        };
        for (k, &f) in fftfreqs.iter().enumerate() {
            let lower = (f - f0) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            w[[i, k]] = 0f64.max(lower.min(upper)) * enorm;
        }
    }
    w
}

/// `torch.linspace` for `float32`: `start + i·step` for the first half and
/// `end − (n − 1 − i)·step` for the second, in single precision, as torch 2.5's portable
/// CPU kernel (`ATEN_CPU_CAPABILITY=default`) computes it. Its AVX2/AVX512 kernels fuse
/// the multiply-add and use SLEEF's `powf`, which moves filter weights by up to 1e-5:
/// torchaudio's own filterbank differs by that much between CPU capabilities
/// (see docs/parity.md).
pub fn torch_linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (n - 1 - i) as f32
            }
        })
        .collect()
}

/// torchaudio's `melscale_fbanks` (transposed to `(n_mels, n_freqs)`), in its `f32` steps.
pub fn torchaudio_filterbank_f32(cfg: &MelConfig) -> Array2<f32> {
    let n_freqs = cfg.n_fft / 2 + 1;
    let all_freqs = torch_linspace_f32(0.0, (cfg.sample_rate / 2) as f32, n_freqs);
    let m_min = hz_to_mel(cfg.mel.fmin as f64, cfg.mel.scale) as f32;
    let m_max = hz_to_mel(cfg.fmax_or_nyquist() as f64, cfg.mel.scale) as f32;
    let m_pts = torch_linspace_f32(m_min, m_max, cfg.mel.n_mels + 2);
    let f_pts: Vec<f32> = m_pts
        .iter()
        .map(|&m| match cfg.mel.scale {
            MelScale::Htk => 700.0f32 * (10.0f32.powf(m / 2595.0f32) - 1.0f32),
            MelScale::Slaney => {
                let f_sp = (200.0f64 / 3.0) as f32;
                let min_log_mel = (1000.0f64 / (200.0 / 3.0)) as f32;
                let logstep = (6.4f64.ln() / 27.0) as f32;
                if m >= min_log_mel {
                    1000.0f32 * (logstep * (m - min_log_mel)).exp()
                } else {
                    f_sp * m
                }
            }
        })
        .collect();
    let f_diff: Vec<f32> = f_pts.windows(2).map(|w| w[1] - w[0]).collect();
    let mut fb = Array2::<f32>::zeros((cfg.mel.n_mels, n_freqs));
    for (k, &f) in all_freqs.iter().enumerate() {
        for m in 0..cfg.mel.n_mels {
            let down = -(f_pts[m] - f) / f_diff[m];
            let up = (f_pts[m + 2] - f) / f_diff[m + 1];
            let mut v = 0f32.max(down.min(up));
            if cfg.mel.norm == MelNorm::Slaney {
                v *= 2.0f32 / (f_pts[m + 2] - f_pts[m]);
            }
            fb[[m, k]] = v;
        }
    }
    fb
}

/// The dense `f32` filterbank, as `librosa.filters.mel` returns it.
///
/// ```
/// use mirkit_dsp::{mel_filterbank, MelConfig, MelScale, MelSettings};
/// // librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128)
/// let fb = mel_filterbank(&MelConfig::new(22050, 2048, MelSettings::default()))?;
/// assert_eq!(fb.dim(), (128, 1025));
/// // HTK mels without normalisation, 0–8 kHz (torchaudio's MelSpectrogram in Won et al. 2020)
/// let htk = MelSettings { n_mels: 96, fmax: Some(8000.0), scale: MelScale::Htk, norm: mirkit_dsp::MelNorm::None, ..Default::default() };
/// let fb = mel_filterbank(&MelConfig::new(16000, 512, htk))?;
/// assert!(fb.iter().all(|&w| (0.0..=1.0).contains(&w))); // unnormalised triangles peak at 1
/// # Ok::<(), mirkit_dsp::DspError>(())
/// ```
pub fn mel_filterbank(cfg: &MelConfig) -> Result<Array2<f32>> {
    Ok(MelFilterbank::new(cfg)?.to_dense())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn scales_round_trip() {
        for &s in &[MelScale::Slaney, MelScale::Htk] {
            for &f in &[0.0, 100.0, 999.0, 1000.0, 4000.0, 11025.0] {
                assert!((mel_to_hz(hz_to_mel(f, s), s) - f).abs() < 1e-9);
            }
        }
        assert!((hz_to_mel(1000.0, MelScale::Slaney) - 15.0).abs() < 1e-12);
    }
    #[test]
    fn bad_parameters() {
        let mut c = MelConfig::librosa(22050, 2048);
        c.mel.fmax = Some(12000.0);
        assert!(matches!(
            MelFilterbank::new(&c),
            Err(crate::DspError::InvalidParameter { name: "fmax", .. })
        ));
        c.mel.fmax = None;
        c.mel.n_mels = 0;
        assert!(matches!(
            MelFilterbank::new(&c),
            Err(crate::DspError::InvalidParameter { name: "n_mels", .. })
        ));
        c.mel.n_mels = 10;
        c.sample_rate = 0;
        assert!(matches!(
            MelFilterbank::new(&c),
            Err(crate::DspError::InvalidParameter { name: "sr", .. })
        ));
    }
    #[test]
    fn sparse_equals_dense() {
        let c = MelConfig::librosa(22050, 512);
        let fb = MelFilterbank::new(&c).unwrap();
        let d = mel_filterbank_f64(&c);
        let spec: Vec<f32> = (0..257).map(|k| (k as f32 * 0.37).sin().abs()).collect();
        let mut out = vec![0.0; 128];
        fb.apply_frame(&spec, &mut out);
        for m in 0..128 {
            let r: f64 = (0..257).map(|k| d[[m, k]] * spec[k] as f64).sum();
            assert!((out[m] as f64 - r).abs() < 1e-6 * (1.0 + r.abs()));
        }
    }
}
