//! librosa-shaped free functions with librosa 0.11's defaults: `load`, `stft`,
//! `melspectrogram`, `mfcc`, `power_to_db`, `effects::time_stretch`,
//! `effects::pitch_shift`, `write_wav` — for code ported from Python line by line. Each
//! has a short form with librosa's defaults and a `_with` form taking option structs
//! whose `Default` is librosa's. The Python package's functions (`mirkit.feature.*`) run
//! through the same [`Spectrogram::config`].
//!
//! ```no_run
//! use mirkit::rosa;
//! // y, sr = librosa.load("song.mp3")
//! let (y, sr) = rosa::load("song.mp3", Some(22050))?;
//! // S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr), ref=np.max)
//! let s = rosa::power_to_db(&rosa::melspectrogram(&y, sr)?, rosa::Ref::Max, 1e-10, Some(80.0))?;
//! // mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
//! let m = rosa::mfcc(&y, sr, 13)?;
//! // y_fast = librosa.effects.time_stretch(y, rate=1.25); soundfile.write("fast.wav", y_fast, sr)
//! rosa::write_wav("fast.wav", &rosa::effects::time_stretch(&y, 1.25)?, sr)?;
//! # let _ = (s, m);
//! # Ok::<(), mirkit::Error>(())
//! ```
//!
//! Results are `f32` arrays of shape `(rows, frames)` (the STFT `Complex32`), equal to
//! librosa's within the tolerances of docs/parity.md.

use crate::Result;
use mirkit_dsp::{
    Compression, DbConfig, FeatureConfig, FeatureExtractor, MelNorm, MelScale, MelSettings,
    MfccSettings, PadMode, StftConfig, WindowKind,
};
use ndarray::Array2;
use std::path::Path;

pub use mirkit_dsp::{Complex32, DbRef as Ref};

/// Framing and magnitude of a spectrogram (`librosa.stft` / `melspectrogram` arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram {
    /// FFT size (default 2048).
    pub n_fft: usize,
    /// Hop between frames; `None`: `win_length / 4` (librosa's default).
    pub hop_length: Option<usize>,
    /// Window length, centred in `n_fft`; `None`: `n_fft`.
    pub win_length: Option<usize>,
    /// Window shape (default Hann).
    pub window: WindowKind,
    /// Centre frames by padding `n_fft / 2` on each side (default true).
    pub center: bool,
    /// Padding when centring (default constant, i.e. zeros).
    pub pad_mode: PadMode,
    /// Exponent of the magnitude (2: power, the default; 1: magnitude).
    pub power: f32,
}

impl Default for Spectrogram {
    fn default() -> Self {
        Self {
            n_fft: 2048,
            hop_length: None,
            win_length: None,
            window: WindowKind::Hann,
            center: true,
            pad_mode: PadMode::Constant,
            power: 2.0,
        }
    }
}

/// Mel bands (`librosa.filters.mel` arguments): 128 Slaney-normalised bands on the Slaney
/// scale from 0 Hz to Nyquist by default.
#[derive(Debug, Clone, PartialEq)]
pub struct Mel {
    /// Number of bands.
    pub n_mels: usize,
    /// Lowest edge, Hz.
    pub fmin: f32,
    /// Highest edge, Hz (`None`: Nyquist).
    pub fmax: Option<f32>,
    /// HTK formula instead of Slaney's.
    pub htk: bool,
    /// Slaney area normalisation (`norm="slaney"`, the default) or none (`norm=None`).
    pub slaney_norm: bool,
}

impl Default for Mel {
    fn default() -> Self {
        Self {
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            htk: false,
            slaney_norm: true,
        }
    }
}

impl Mel {
    /// The workspace's mel settings for these bands.
    pub fn settings(&self) -> MelSettings {
        MelSettings {
            n_mels: self.n_mels,
            fmin: self.fmin,
            fmax: self.fmax,
            scale: if self.htk {
                MelScale::Htk
            } else {
                MelScale::Slaney
            },
            norm: if self.slaney_norm {
                MelNorm::Slaney
            } else {
                MelNorm::None
            },
            ..MelSettings::default()
        }
    }
}

impl Spectrogram {
    /// The STFT configuration, with librosa's defaults filled in.
    pub fn stft_config(&self) -> StftConfig {
        let win = self.win_length.unwrap_or(self.n_fft);
        StftConfig {
            n_fft: self.n_fft,
            hop_length: self.hop_length.unwrap_or(win / 4),
            win_length: win,
            window: self.window,
            center: self.center,
            pad_mode: self.pad_mode,
        }
    }

    /// The whole feature configuration at `sr`: this spectrogram, optional mel bands, dB
    /// compression and MFCC (`n_mfcc`, `lifter`), as librosa composes them.
    pub fn config(
        &self,
        sr: u32,
        mel: Option<&Mel>,
        db: Option<DbConfig>,
        mfcc: Option<(usize, f32)>,
    ) -> FeatureConfig {
        FeatureConfig {
            sample_rate: sr,
            stft: self.stft_config(),
            power: self.power,
            mel: mel.map(Mel::settings),
            compression: db.map_or(Compression::None, Compression::Db),
            mfcc: mfcc.map(|(n_mfcc, lifter)| MfccSettings { n_mfcc, lifter }),
        }
    }
}

/// Any feature configuration (e.g. from [`Spectrogram::config`]) on a mono signal:
/// non-finite samples refused, then one pass of the extractor, `(rows, frames)`.
pub fn features(y: &[f32], cfg: FeatureConfig) -> Result<Array2<f32>> {
    mirkit_dsp::check_finite(y)?;
    Ok(FeatureExtractor::new(cfg)?.compute(y)?.into_array())
}

/// `librosa.load(path, sr=sr)`: mono samples and their rate (`sr = None`: the file's own).
///
/// ```
/// // y, sr = librosa.load("data/clips/brahms_hungarian_dance_5.hq.ogg")   (a clip committed in the repository)
/// let (y, sr) = mirkit::rosa::load("data/clips/brahms_hungarian_dance_5.hq.ogg", Some(22050))?;
/// assert_eq!(sr, 22050);
/// assert!(y.len() > 30 * 22050); // about 45 s, mono
/// // the file's own rate, as sr=None
/// let (_, native) = mirkit::rosa::load("data/clips/brahms_hungarian_dance_5.hq.ogg", None)?;
/// assert_eq!(native, 44100);
/// # Ok::<(), mirkit::Error>(())
/// ```
pub fn load(path: impl AsRef<Path>, sr: Option<u32>) -> Result<(Vec<f32>, u32)> {
    let b = mirkit_io::load(
        path,
        &mirkit_io::LoadOptions {
            sr,
            ..Default::default()
        },
    )?;
    let rate = b.sample_rate();
    Ok((b.into_mono_vec(), rate))
}

/// `librosa.stft(y, n_fft=n_fft)` with librosa's other defaults, `(1 + n_fft/2, frames)`.
///
/// ```
/// let sr = 22050;
/// let y: Vec<f32> = (0..sr).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr as f32).sin()).collect();
/// let d = mirkit::rosa::stft(&y, 2048)?; // hop 512, Hann, centred, constant padding
/// assert_eq!(d.dim(), (1025, 1 + 22050 / 512));
/// // the strongest bin of a middle frame is 440 Hz: bin 440 / (22050 / 2048) ≈ 41
/// let frame = d.column(20);
/// let peak = (0..1025).max_by(|&a, &b| frame[a].norm().total_cmp(&frame[b].norm())).unwrap();
/// assert_eq!(peak, 41);
/// # Ok::<(), mirkit::Error>(())
/// ```
pub fn stft(y: &[f32], n_fft: usize) -> Result<Array2<Complex32>> {
    stft_with(
        y,
        &Spectrogram {
            n_fft,
            ..Default::default()
        },
    )
}

/// `librosa.stft` with every framing option.
pub fn stft_with(y: &[f32], spec: &Spectrogram) -> Result<Array2<Complex32>> {
    mirkit_dsp::check_finite(y)?;
    Ok(mirkit_dsp::stft(y, &spec.stft_config())?)
}

/// `librosa.feature.melspectrogram(y=y, sr=sr)`: 128 bands of the power spectrogram
/// (n_fft 2048, hop 512), `(128, frames)`.
///
/// ```
/// let sr = 22050;
/// let y: Vec<f32> = (0..sr).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr as f32).sin()).collect();
/// let s = mirkit::rosa::melspectrogram(&y, sr)?;
/// assert_eq!(s.dim(), (128, 44));
/// // more options: librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=256, n_mels=64)
/// use mirkit::rosa::{Mel, Spectrogram};
/// let spec = Spectrogram { n_fft: 1024, hop_length: Some(256), ..Default::default() };
/// let s = mirkit::rosa::melspectrogram_with(&y, sr, &spec, &Mel { n_mels: 64, ..Default::default() })?;
/// assert_eq!(s.dim(), (64, 87));
/// # Ok::<(), mirkit::Error>(())
/// ```
pub fn melspectrogram(y: &[f32], sr: u32) -> Result<Array2<f32>> {
    melspectrogram_with(y, sr, &Spectrogram::default(), &Mel::default())
}

/// `librosa.feature.melspectrogram` with every option.
pub fn melspectrogram_with(
    y: &[f32],
    sr: u32,
    spec: &Spectrogram,
    mel: &Mel,
) -> Result<Array2<f32>> {
    features(y, spec.config(sr, Some(mel), None, None))
}

/// `librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)`: DCT-II (orthonormal) of
/// `power_to_db(melspectrogram(y, sr))`, `(n_mfcc, frames)`.
///
/// ```
/// let sr = 22050;
/// let y: Vec<f32> = (0..sr).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr as f32).sin()).collect();
/// let m = mirkit::rosa::mfcc(&y, sr, 20)?;
/// assert_eq!(m.dim(), (20, 44));
/// # Ok::<(), mirkit::Error>(())
/// ```
pub fn mfcc(y: &[f32], sr: u32, n_mfcc: usize) -> Result<Array2<f32>> {
    mfcc_with(y, sr, n_mfcc, 0.0, &Spectrogram::default(), &Mel::default())
}

/// `librosa.feature.mfcc` with a lifter and every spectrogram and mel option.
pub fn mfcc_with(
    y: &[f32],
    sr: u32,
    n_mfcc: usize,
    lifter: f32,
    spec: &Spectrogram,
    mel: &Mel,
) -> Result<Array2<f32>> {
    features(
        y,
        spec.config(
            sr,
            Some(mel),
            Some(DbConfig::default()),
            Some((n_mfcc, lifter)),
        ),
    )
}

/// `librosa.power_to_db(s, ref=reference, amin=amin, top_db=top_db)` (librosa's
/// defaults: `Ref::Value(1.0)`, `1e-10`, `Some(80.0)`).
///
/// ```
/// use mirkit::ndarray::array;
/// use mirkit::rosa::{power_to_db, Ref};
/// let s = array![[1.0f32, 0.1], [0.01, 0.0]];
/// let db = power_to_db(&s, Ref::Value(1.0), 1e-10, Some(80.0))?;
/// // 10·log10(s), floored at max − 80 dB (float32 arithmetic, as librosa's on float32)
/// let want = array![[0.0f32, -10.0], [-20.0, -80.0]];
/// assert!(db.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
/// let db = power_to_db(&s, Ref::Max, 1e-10, None)?; // ref=np.max: the peak is 0 dB
/// assert_eq!(db[[0, 0]], 0.0);
/// # Ok::<(), mirkit::Error>(())
/// ```
pub fn power_to_db(
    s: &Array2<f32>,
    reference: Ref,
    amin: f32,
    top_db: Option<f32>,
) -> Result<Array2<f32>> {
    let cfg = DbConfig {
        reference,
        amin,
        top_db,
    };
    let flat = s.as_standard_layout();
    let v = mirkit_dsp::power_to_db(flat.as_slice().expect("standard layout"), &cfg)?;
    Ok(Array2::from_shape_vec(s.dim(), v).expect("same size"))
}

/// `soundfile.write(path, y, sr)` for a mono signal: 32-bit float WAV, written atomically.
///
/// ```
/// let sr = 22050;
/// let y: Vec<f32> = (0..sr).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr as f32).sin()).collect();
/// let path = std::env::temp_dir().join(format!("mirkit-doc-{}.wav", std::process::id()));
/// mirkit::rosa::write_wav(&path, &y, sr)?;
/// let (back, rate) = mirkit::rosa::load(&path, None)?;
/// assert_eq!((back, rate), (y, sr)); // float WAV: the same samples
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), mirkit::Error>(())
/// ```
pub fn write_wav(path: impl AsRef<Path>, y: &[f32], sr: u32) -> Result<()> {
    let b = mirkit_core::AudioBuffer::from_mono(y.to_vec(), sr)?;
    Ok(mirkit_io::write_wav(
        path,
        &b,
        mirkit_io::WavFormat::Float32,
    )?)
}

/// `librosa.effects`: phase-vocoder time stretch and pitch shift (librosa's STFT
/// defaults, its vocoder).
pub mod effects {
    use crate::Result;
    use mirkit_augment::PhaseMode;

    /// `librosa.effects.time_stretch(y, rate=rate)`: `round(n / rate)` samples.
    ///
    /// ```
    /// let y: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.05).sin()).collect();
    /// let fast = mirkit::rosa::effects::time_stretch(&y, 1.25)?; // 25 % faster
    /// assert_eq!(fast.len(), 17640);
    /// # Ok::<(), mirkit::Error>(())
    /// ```
    pub fn time_stretch(y: &[f32], rate: f64) -> Result<Vec<f32>> {
        Ok(mirkit_augment::time_stretch(y, rate, PhaseMode::Librosa)?)
    }

    /// `librosa.effects.pitch_shift(y, sr=sr, n_steps=n_steps)` (12 steps per octave);
    /// the length is kept. `sr` is checked, as librosa does; the shift depends only on
    /// the ratio.
    ///
    /// ```
    /// let y: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.05).sin()).collect();
    /// let up = mirkit::rosa::effects::pitch_shift(&y, 22050, 2.0)?; // a whole tone up
    /// assert_eq!(up.len(), y.len());
    /// assert!(mirkit::rosa::effects::pitch_shift(&y, 0, 2.0).is_err()); // sr checked
    /// # Ok::<(), mirkit::Error>(())
    /// ```
    pub fn pitch_shift(y: &[f32], sr: u32, n_steps: f64) -> Result<Vec<f32>> {
        if sr == 0 {
            return Err(crate::Error::Invalid("sr = 0: must be positive".into()));
        }
        Ok(mirkit_augment::pitch_shift(
            y,
            n_steps,
            12,
            PhaseMode::Librosa,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(sr: u32, secs: f32) -> Vec<f32> {
        (0..(sr as f32 * secs) as usize)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr as f32).sin() * 0.5)
            .collect()
    }

    #[test]
    fn defaults_are_librosas() {
        let y = tone(22050, 2.0);
        let s = melspectrogram(&y, 22050).unwrap();
        // 1 + 44100 / 512 frames of 128 bands
        assert_eq!(s.dim(), (128, 1 + 44100 / 512));
        let same = features(&y, FeatureConfig::librosa()).unwrap();
        assert_eq!(s, same);
        assert_eq!(stft(&y, 2048).unwrap().dim(), (1025, 1 + 44100 / 512));
        let m = mfcc(&y, 22050, 13).unwrap();
        assert_eq!(m.dim(), (13, 1 + 44100 / 512));
        let db = power_to_db(&s, Ref::Max, 1e-10, Some(80.0)).unwrap();
        let top = db.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let low = db.iter().cloned().fold(f32::INFINITY, f32::min);
        assert!(
            top.abs() < 1e-4 && (low - -80.0).abs() < 1e-3,
            "{top} {low}"
        );
        assert_eq!(effects::time_stretch(&y, 2.0).unwrap().len(), 22050);
        assert_eq!(effects::pitch_shift(&y, 22050, 2.0).unwrap().len(), y.len());
        assert!(effects::pitch_shift(&y, 0, 2.0).is_err());
        let mut nan = y.clone();
        nan[7] = f32::NAN;
        assert!(melspectrogram(&nan, 22050).is_err());
    }

    #[test]
    fn wav_round_trip() {
        let d = std::env::temp_dir().join(format!("mirkit-rosa-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let y = tone(16000, 0.5);
        write_wav(d.join("t.wav"), &y, 16000).unwrap();
        let (back, sr) = load(d.join("t.wav"), None).unwrap();
        assert_eq!((back, sr), (y, 16000));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
