//! Complete feature pipelines (spectrogram → mel → compression → MFCC) with presets.
//!
//! A [`FeatureConfig`] names every setting with librosa's vocabulary; the presets give
//! the defaults of librosa, torchaudio and the front ends the pretrained taggers were
//! trained with (Won et al. 2020's torchaudio settings; musicnn 0.1.0's librosa settings),
//! as docs/parity.md lists them. A [`FeatureExtractor`] prepares the
//! window, FFT plan, sparse filterbank and DCT once and then runs in one pass over the
//! frames: window → real FFT → power → mel → log, writing straight into the output.
//!
//! Work is split into two per-frame stages so that in-memory and streaming extraction
//! give bit-identical results: stage 1 (`power`, mel, `10·log10(max(amin, ·))` or
//! `log10(1 + C·)`) needs only the frame; stage 2 (subtracting a `ref=max` reference,
//! `top_db` flooring, the DCT of MFCC) needs the maximum over the whole signal, which the
//! streaming path obtains with a second pass over its temporary output.

use crate::cepstral::mfcc_basis;
use crate::db::{ln_fast, round_to_f16, DbConfig, DbRef};
use crate::error::{check_finite, check_finite_peak, invalid, DspError, Result};
use crate::lanes::{LanePlan, LANES};
pub use crate::mel::MelSettings;
use crate::mel::{MelArithmetic, MelConfig, MelFilterbank, MelNorm, MelScale};
use crate::paired::PairScratch;
use crate::stft::{padded_index, padded_segment, PadMode, Stft, StftConfig};
use mirkit_core::{FrequencyScale, TfMeta, TimeFrequency, ValueKind};
use ndarray::Array2;

/// The second stage of a streamed signal (reference, `top_db` floor, DCT), fixed by the
/// stage-1 maximum; made by [`FeatureExtractor::stage2`].
#[derive(Clone, Copy)]
pub struct Stage2<'a> {
    ex: &'a FeatureExtractor,
    params: (f32, f32),
}

impl Stage2<'_> {
    /// Turns one stage-1 frame ([`FeatureExtractor::stage1_rows`] values, overwritten)
    /// into a final frame ([`FeatureExtractor::output_rows`] values in `out`).
    pub fn apply(&self, frame: &mut [f32], out: &mut [f32]) {
        self.ex.stage2_frame(self.params, frame, out)
    }
}

/// Value compression applied after the (mel) power spectrogram.
#[derive(Debug, Clone, PartialEq)]
pub enum Compression {
    /// Keep power (or magnitude) values.
    None,
    /// Decibels, `librosa.power_to_db` (on whatever `power` produced).
    Db(DbConfig),
    /// `log10(1 + c·x)`; with `f16 = true` the input is first rounded to half precision
    /// as musicnn 0.1.0 does (`astype(np.float16)` before the log). The log itself is
    /// single precision: under the NumPy musicnn 0.1.0 pins (< 1.17, value-based casting)
    /// `10000 * x` promotes a float16 array to float32. (NumPy ≥ 2 keeps float16 and
    /// overflows to `inf` for mel power above 6.55 — not the trained behaviour.)
    Log1p {
        /// the constant (musicnn: 10000)
        c: f32,
        /// round the input to float16 first
        f16: bool,
    },
}

/// MFCC settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MfccSettings {
    /// Number of coefficients.
    pub n_mfcc: usize,
    /// Cepstral lifter (0: none).
    pub lifter: f32,
}

impl Default for MfccSettings {
    /// librosa's `feature.mfcc` defaults: 20 coefficients, no lifter.
    fn default() -> Self {
        Self {
            n_mfcc: 20,
            lifter: 0.0,
        }
    }
}

/// Everything that defines a spectral feature. Start from a preset (librosa's defaults,
/// torchaudio's, Won et al. 2020's or musicnn's front end) and change fields.
///
/// ```
/// use mirkit_dsp::{FeatureConfig, MfccSettings, Preset};
/// // librosa.feature.mfcc(y=y, sr=16000, n_mfcc=20, hop_length=256)
/// let mut cfg = FeatureConfig::librosa();
/// cfg.sample_rate = 16000;
/// cfg.stft.hop_length = 256;
/// cfg.mfcc = Some(MfccSettings { n_mfcc: 20, ..Default::default() });
/// let y = vec![0.1f32; 16000];
/// let m = mirkit_dsp::FeatureExtractor::new(cfg)?.compute(&y)?;
/// assert_eq!((m.n_bins(), m.n_frames()), (20, 63));
/// // the front end a pretrained model was trained with
/// let won = FeatureConfig::preset(Preset::Won2020);
/// assert_eq!((won.sample_rate, won.stft.n_fft, won.stft.hop_length), (16000, 512, 256));
/// # Ok::<(), mirkit_dsp::DspError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureConfig {
    /// Sample rate the signal must have.
    pub sample_rate: u32,
    /// Framing and FFT.
    pub stft: StftConfig,
    /// Exponent of the magnitude (2: power, 1: magnitude).
    pub power: f32,
    /// Mel stage, or a linear spectrogram when `None`.
    pub mel: Option<MelSettings>,
    /// Compression.
    pub compression: Compression,
    /// MFCC on top of the compressed mel (librosa applies `power_to_db` first).
    pub mfcc: Option<MfccSettings>,
}

/// Named presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// `librosa.feature.melspectrogram` defaults at 22.05 kHz.
    Librosa,
    /// `torchaudio.transforms.MelSpectrogram` defaults at 16 kHz.
    Torchaudio,
    /// Won et al. 2020 front end (torchaudio 0.3, then `AmplitudeToDB`).
    Won2020,
    /// musicnn 0.1.0 front end (librosa mel, float16, `log10(10000x + 1)`).
    Musicnn,
}

impl std::str::FromStr for Preset {
    type Err = DspError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "librosa" => Self::Librosa,
            "torchaudio" => Self::Torchaudio,
            "won2020" => Self::Won2020,
            "musicnn" => Self::Musicnn,
            _ => {
                return Err(invalid(
                    "preset",
                    s,
                    "one of librosa, torchaudio, won2020, musicnn",
                ))
            }
        })
    }
}

impl FeatureConfig {
    /// A preset's configuration.
    pub fn preset(p: Preset) -> Self {
        match p {
            Preset::Librosa => Self::librosa(),
            Preset::Torchaudio => Self::torchaudio(),
            Preset::Won2020 => Self::won2020(),
            Preset::Musicnn => Self::musicnn(),
        }
    }
    /// librosa 0.11 `melspectrogram` defaults: 22050 Hz, n_fft 2048, hop 512, Hann,
    /// centred with constant (zero) padding, power 2, 128 Slaney mels with Slaney norm.
    pub fn librosa() -> Self {
        Self {
            sample_rate: 22050,
            stft: StftConfig::new(2048).hop(512),
            power: 2.0,
            mel: Some(MelSettings {
                n_mels: 128,
                fmin: 0.0,
                fmax: None,
                scale: MelScale::Slaney,
                norm: MelNorm::Slaney,
                arithmetic: MelArithmetic::Librosa,
            }),
            compression: Compression::None,
            mfcc: None,
        }
    }
    /// torchaudio `MelSpectrogram()` defaults: 16 kHz, n_fft 400, hop 200, periodic Hann,
    /// centred with reflect padding, power 2, 128 HTK mels, no norm.
    pub fn torchaudio() -> Self {
        Self {
            sample_rate: 16000,
            stft: StftConfig::new(400).hop(200).pad_mode(PadMode::Reflect),
            power: 2.0,
            mel: Some(MelSettings {
                n_mels: 128,
                fmin: 0.0,
                fmax: None,
                scale: MelScale::Htk,
                norm: MelNorm::None,
                arithmetic: MelArithmetic::TorchaudioF32,
            }),
            compression: Compression::None,
            mfcc: None,
        }
    }
    /// Won et al. 2020: 16 kHz, n_fft 512, hop 256, 96 HTK mels 0–8000 Hz, no norm,
    /// reflect padding, `AmplitudeToDB(power, amin=1e-10, ref=1, top_db=None)`.
    pub fn won2020() -> Self {
        Self {
            sample_rate: 16000,
            stft: StftConfig::new(512).hop(256).pad_mode(PadMode::Reflect),
            power: 2.0,
            mel: Some(MelSettings {
                n_mels: 96,
                fmin: 0.0,
                fmax: Some(8000.0),
                scale: MelScale::Htk,
                norm: MelNorm::None,
                arithmetic: MelArithmetic::TorchaudioF32,
            }),
            compression: Compression::Db(DbConfig {
                reference: DbRef::Value(1.0),
                amin: 1e-10,
                top_db: None,
            }),
            mfcc: None,
        }
    }
    /// musicnn 0.1.0: 16 kHz, n_fft 512, hop 256, 96 Slaney mels (Slaney norm), reflect
    /// padding (librosa < 0.10), rounded to float16, `log10(10000·x + 1)` in float32
    /// (NumPy < 1.17 promotion, see [`Compression::Log1p`]).
    pub fn musicnn() -> Self {
        Self {
            sample_rate: 16000,
            stft: StftConfig::new(512).hop(256).pad_mode(PadMode::Reflect),
            power: 2.0,
            mel: Some(MelSettings {
                n_mels: 96,
                fmin: 0.0,
                fmax: None,
                scale: MelScale::Slaney,
                norm: MelNorm::Slaney,
                arithmetic: MelArithmetic::Librosa,
            }),
            compression: Compression::Log1p {
                c: 10000.0,
                f16: true,
            },
            mfcc: None,
        }
    }
    /// The mel filterbank configuration, if any.
    pub fn mel_config(&self) -> Option<MelConfig> {
        self.mel
            .as_ref()
            .map(|m| MelConfig::new(self.sample_rate, self.stft.n_fft, m.clone()))
    }
    /// Checks every parameter.
    pub fn validate(&self) -> Result<()> {
        if self.sample_rate == 0 {
            return Err(invalid("sr", 0, "must be positive"));
        }
        self.stft.validate()?;
        if !(self.power.is_finite() && self.power > 0.0) {
            return Err(invalid(
                "power",
                self.power,
                "must be a positive finite number",
            ));
        }
        if let Some(m) = self.mel_config() {
            m.validate()?;
        }
        if let Compression::Db(d) = &self.compression {
            d.validate()?;
        }
        if let Compression::Log1p { c, .. } = self.compression {
            if !(c.is_finite() && c > 0.0) {
                return Err(invalid("C", c, "must be positive and finite"));
            }
        }
        if let Some(m) = &self.mfcc {
            let rows = self
                .mel
                .as_ref()
                .map(|m| m.n_mels)
                .unwrap_or(self.stft.n_fft / 2 + 1);
            if m.n_mfcc == 0 || m.n_mfcc > rows {
                return Err(invalid(
                    "n_mfcc",
                    m.n_mfcc,
                    format!("must be in 1..={rows}"),
                ));
            }
            if !(m.lifter.is_finite() && m.lifter >= 0.0) {
                return Err(invalid("lifter", m.lifter, "must be >= 0"));
            }
        }
        Ok(())
    }
}

/// A prepared feature pipeline: window, FFT plan, filterbank and DCT made once, then
/// applied to any number of signals (`Sync`: share one across threads).
///
/// ```
/// use mirkit_dsp::{Compression, DbConfig, FeatureConfig, FeatureExtractor};
/// let sr = 22050;
/// let y: Vec<f32> = (0..2 * sr).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr as f32).sin()).collect();
/// // librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr))
/// let mut cfg = FeatureConfig::librosa();
/// cfg.compression = Compression::Db(DbConfig::default());
/// let fx = FeatureExtractor::new(cfg)?;
/// let s = fx.compute(&y)?;
/// assert_eq!((s.n_bins(), s.n_frames()), (128, 87));
/// // the 440 Hz tone sits in the mel band around 440 Hz
/// let col = s.view().column(40).to_vec();
/// let band = (0..128).max_by(|&a, &b| col[a].total_cmp(&col[b])).unwrap();
/// let centre = mirkit_dsp::mel_frequencies(130, 0.0, 11025.0, mirkit_dsp::MelScale::Slaney)[band + 1];
/// assert!((centre - 440.0).abs() < 40.0, "{centre}");
/// // parameters are checked when the extractor is made
/// let mut bad = FeatureConfig::librosa();
/// bad.stft.hop_length = 0;
/// assert!(FeatureExtractor::new(bad).is_err());
/// # Ok::<(), mirkit_dsp::DspError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FeatureExtractor {
    cfg: FeatureConfig,
    stft: Stft,
    mel: Option<MelFilterbank>,
    dct: Option<Array2<f32>>,
    /// the four-frame transform, for power-of-two `n_fft`
    lanes: Option<LanePlan>,
}

/// Frames processed together: the mel product and the log run across this many frames
/// at once, so their inner loops are contiguous and vectorise.
pub(crate) const BLOCK: usize = 16;

/// Buffers of the frame transform (one of the two engines).
enum TxScratch {
    Lanes(Vec<f64>),
    Pair(PairScratch),
}

/// Per-thread buffers of a [`FeatureExtractor`].
pub struct Scratch {
    /// transform buffers
    tx: TxScratch,
    /// power block, bins-major: `power[k * BLOCK + j]`
    power: Vec<f32>,
    /// stage-1 block, rows-major: `block[r * BLOCK + j]`
    block: Vec<f32>,
    /// frames that need padding (or, streaming, all frames) of one group,
    /// `group_size · n_fft`
    edge: Vec<f32>,
}

impl FeatureExtractor {
    /// Validates `cfg` and prepares window, FFT, filterbank and DCT.
    pub fn new(cfg: FeatureConfig) -> Result<Self> {
        cfg.validate()?;
        let stft = Stft::new(cfg.stft.clone())?;
        let mel = cfg
            .mel_config()
            .map(|m| MelFilterbank::new(&m))
            .transpose()?;
        let dct = cfg.mfcc.as_ref().map(|m| {
            let rows = mel.as_ref().map(|f| f.n_mels()).unwrap_or(stft.n_bins());
            mfcc_basis(m.n_mfcc, rows, m.lifter)
        });
        let lanes = LanePlan::new(stft.window());
        Ok(Self {
            cfg,
            stft,
            mel,
            dct,
            lanes,
        })
    }
    /// The same extractor with the paired complex FFT (`paired.rs`) instead of the
    /// four-frame lane transform (`lanes.rs`) that power-of-two `n_fft` get by
    /// default: for benchmarks and cross-checks. The results differ by rounding only.
    pub fn without_lanes(mut self) -> Self {
        self.lanes = None;
        self
    }
    /// The configuration.
    pub fn config(&self) -> &FeatureConfig {
        &self.cfg
    }
    /// The STFT plan.
    pub fn stft(&self) -> &Stft {
        &self.stft
    }
    /// The filterbank, if any.
    pub fn filterbank(&self) -> Option<&MelFilterbank> {
        self.mel.as_ref()
    }
    /// Rows after stage 1 (mel bands or FFT bins).
    pub fn stage1_rows(&self) -> usize {
        self.mel
            .as_ref()
            .map(|m| m.n_mels())
            .unwrap_or(self.stft.n_bins())
    }
    /// Rows of the final output.
    pub fn output_rows(&self) -> usize {
        self.cfg
            .mfcc
            .as_ref()
            .map(|m| m.n_mfcc)
            .unwrap_or(self.stage1_rows())
    }
    /// Number of frames for a signal of `len` samples.
    pub fn n_frames(&self, len: usize) -> Result<usize> {
        self.cfg.stft.n_frames(len)
    }
    /// Fresh scratch buffers.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            tx: match &self.lanes {
                Some(p) => TxScratch::Lanes(p.buffer()),
                None => TxScratch::Pair(self.stft.pair_scratch()),
            },
            power: vec![0.0; self.stft.n_bins() * BLOCK],
            block: vec![0.0; self.stage1_rows() * BLOCK],
            edge: vec![0.0; self.group_size() * self.cfg.stft.n_fft],
        }
    }
    /// Whether `s` has the sizes and transform buffers of this extractor.
    fn fits(&self, s: &Scratch) -> bool {
        let n_fft = self.cfg.stft.n_fft;
        let tx = match (&self.lanes, &s.tx) {
            (Some(_), TxScratch::Lanes(b)) => b.len() == n_fft * LANES,
            (None, TxScratch::Pair(p)) => p.fits(n_fft),
            _ => false,
        };
        tx && s.power.len() == self.stft.n_bins() * BLOCK
            && s.block.len() == self.stage1_rows() * BLOCK
            && s.edge.len() == self.group_size() * n_fft
    }
    /// Whether stage 2 does anything (then it needs the global maximum of stage 1).
    pub fn needs_stage2(&self) -> bool {
        self.dct.is_some()
            || matches!(&self.cfg.compression, Compression::Db(d) if d.top_db.is_some() || d.reference != DbRef::Value(1.0))
    }

    #[inline(always)]
    /// Stage 1 on a block of frames: `power` holds `|X|^p` bins-major (`k * BLOCK + j`);
    /// writes mel (or linear) values, compressed, rows-major into `out` (`r * BLOCK + j`).
    /// Every lane is computed (unused lanes hold stale values of earlier frames of the same
    /// signal, or zeros, and are ignored), so a frame gives the same bits whatever block
    /// it is in. Returns whether every value before compression is finite (an overflow of
    /// `f32` otherwise: the power, or a mel band's sum, of finite samples far beyond full
    /// scale); `v * 0.0` is 0 for finite `v` and NaN otherwise, summed per lane so the
    /// check vectorises.
    fn stage1_block(&self, power: &[f32], out: &mut [f32]) -> bool {
        let mut z = [0.0f32; BLOCK];
        match &self.mel {
            Some(fb) => {
                for (m, row) in out.chunks_exact_mut(BLOCK).enumerate() {
                    // accumulate in a local (registers): through `row` the compiler
                    // cannot rule out aliasing with `power` and leaves the loop scalar
                    let mut acc = [0.0f32; BLOCK];
                    let (a, w) = fb.band(m);
                    for (i, &wk) in w.iter().enumerate() {
                        let p: &[f32; BLOCK] = power[(a + i) * BLOCK..(a + i + 1) * BLOCK]
                            .try_into()
                            .expect("block");
                        for j in 0..BLOCK {
                            acc[j] += wk * p[j];
                        }
                    }
                    row.copy_from_slice(&acc);
                }
            }
            None => out.copy_from_slice(power),
        }
        // the values before compression, in a separate pass (inside the band loop above it
        // slows the accumulation down); log1p checks its own argument below instead
        let scan = |out: &[f32], z: &mut [f32; BLOCK]| {
            for row in out.chunks_exact(BLOCK) {
                for j in 0..BLOCK {
                    z[j] += row[j] * 0.0;
                }
            }
        };
        match &self.cfg.compression {
            Compression::None => scan(out, &mut z),
            Compression::Db(d) => {
                scan(out, &mut z);
                let k = 10.0 * std::f32::consts::LOG10_E;
                if d.amin >= f32::MIN_POSITIVE {
                    let amin = d.amin;
                    for v in out.iter_mut() {
                        *v = k * ln_fast(v.max(amin));
                    }
                } else {
                    for v in out.iter_mut() {
                        *v = 10.0 * v.max(d.amin).log10();
                    }
                }
            }
            // the log's argument: infinite whenever the value is, and also when `c·v` or
            // float16's range of ±65504 (musicnn's front end) overflows — the one check
            Compression::Log1p { c, f16: false } => {
                let c = *c;
                for row in out.chunks_exact_mut(BLOCK) {
                    for j in 0..BLOCK {
                        let a = 1.0 + c * row[j];
                        z[j] += a * 0.0;
                        row[j] = std::f32::consts::LOG10_E * ln_fast(a);
                    }
                }
            }
            Compression::Log1p { c, f16: true } => {
                for row in out.chunks_exact_mut(BLOCK) {
                    for j in 0..BLOCK {
                        let a = c * round_to_f16(row[j]) + 1.0;
                        z[j] += a * 0.0;
                        row[j] = a.log10();
                    }
                }
            }
        }
        z.iter().all(|&v| v == 0.0)
    }

    /// Stage 2 for a signal whose stage-1 frames had this maximum (the second value
    /// [`FrameStreamer::finish`] returns): apply it to each stage-1 frame, in any order, to
    /// get the final frames, the same bits as [`Self::compute`]. This is how a caller that
    /// keeps stage-1 frames (in memory or on disk) finishes a streamed signal.
    pub fn stage2(&self, stage1_max: f32) -> Stage2<'_> {
        Stage2 {
            ex: self,
            params: self.stage2_params(stage1_max),
        }
    }

    /// Stage-2 parameters from the stage-1 maximum: `(offset, floor)` so that a stage-1
    /// value `v` becomes `max(v − offset, floor)`.
    pub(crate) fn stage2_params(&self, stage1_max: f32) -> (f32, f32) {
        match &self.cfg.compression {
            Compression::Db(d) => {
                let offset = match d.reference {
                    DbRef::Value(r) => 10.0 * (d.amin.max(r) as f64).log10() as f32,
                    DbRef::Max => stage1_max, // 10 log10(max(amin, max S)) is the stage-1 max
                };
                let floor = d
                    .top_db
                    .map(|t| stage1_max - offset - t)
                    .unwrap_or(f32::NEG_INFINITY);
                (offset, floor)
            }
            _ => (0.0, f32::NEG_INFINITY),
        }
    }

    /// Stage 2 on one frame: reference, `top_db` floor, DCT; writes `output_rows` values.
    pub(crate) fn stage2_frame(&self, params: (f32, f32), frame: &mut [f32], out: &mut [f32]) {
        let (offset, floor) = params;
        if offset != 0.0 || floor > f32::NEG_INFINITY {
            for v in frame.iter_mut() {
                *v = (*v - offset).max(floor);
            }
        }
        match &self.dct {
            Some(d) => {
                // the order of `dct_frames`: from −0.0, products added row by row
                for (o, row) in out.iter_mut().zip(d.outer_iter()) {
                    let r = row.as_slice().expect("contiguous");
                    *o = r.iter().zip(frame.iter()).fold(-0.0, |s, (a, b)| s + a * b);
                }
            }
            None => out.copy_from_slice(frame),
        }
    }

    /// The output's metadata.
    pub fn meta(&self) -> TfMeta {
        let scale = match (&self.cfg.mfcc, &self.cfg.mel) {
            (Some(m), _) => FrequencyScale::Cepstral { n_mfcc: m.n_mfcc },
            (None, Some(m)) => FrequencyScale::Mel {
                n_mels: m.n_mels,
                fmin: m.fmin,
                fmax: m.fmax.unwrap_or(self.cfg.sample_rate as f32 / 2.0),
                htk: m.scale == MelScale::Htk,
            },
            (None, None) => FrequencyScale::Linear,
        };
        let values = match (&self.cfg.mfcc, &self.cfg.compression) {
            (Some(_), _) => ValueKind::Other,
            (None, Compression::None) if self.cfg.power == 2.0 => ValueKind::Power,
            (None, Compression::None) if self.cfg.power == 1.0 => ValueKind::Magnitude,
            (None, Compression::None) => ValueKind::PowerOf(self.cfg.power),
            (None, Compression::Db(d)) => ValueKind::Decibel { top_db: d.top_db },
            (None, Compression::Log1p { c, .. }) => ValueKind::Log1p { c: *c },
        };
        TfMeta {
            sample_rate: self.cfg.sample_rate,
            hop_length: self.cfg.stft.hop_length,
            n_fft: self.cfg.stft.n_fft,
            center: self.cfg.stft.center,
            scale,
            values,
        }
    }

    /// Computes the features of a mono signal at `config().sample_rate`, shape
    /// `(rows, frames)`.
    pub fn compute(&self, x: &[f32]) -> Result<TimeFrequency> {
        let mut s = self.scratch();
        self.compute_with(x, &mut s)
    }

    /// [`compute`](Self::compute) reusing scratch buffers (made by
    /// [`scratch`](Self::scratch); buffers of another extractor are replaced).
    pub fn compute_with(&self, x: &[f32], s: &mut Scratch) -> Result<TimeFrequency> {
        if !self.fits(s) {
            *s = self.scratch();
        }
        let n_frames = self.n_frames(x.len())?;
        let rows = self.stage1_rows();
        #[cfg(target_arch = "x86_64")]
        let (mut out, mx) = if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above). The AVX2 build runs the same
            // IEEE operations lane by lane (no FMA contraction), so results are bit-identical.
            unsafe { self.stage1_all_avx2(x, s, n_frames)? }
        } else {
            self.stage1_all_generic(x, s, n_frames)?
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (mut out, mx) = self.stage1_all_generic(x, s, n_frames)?;
        let data = if self.needs_stage2() {
            let params = self.stage2_params(mx);
            let (offset, floor) = params;
            // skipped when it changes nothing (MFCC without ref or top_db), as stage2_frame
            if offset != 0.0 || floor > f32::NEG_INFINITY {
                for v in out.iter_mut() {
                    *v = (*v - offset).max(floor);
                }
            }
            match &self.dct {
                None => Array2::from_shape_vec((rows, n_frames), out).expect("sizes"),
                Some(d) => {
                    #[cfg(target_arch = "x86_64")]
                    let res = if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU supports AVX2 (checked above); same IEEE
                        // operations in the same order as the generic build.
                        unsafe { dct_frames_avx2(d, &out, n_frames) }
                    } else {
                        dct_frames(d, &out, n_frames)
                    };
                    #[cfg(not(target_arch = "x86_64"))]
                    let res = dct_frames(d, &out, n_frames);
                    Array2::from_shape_vec((d.nrows(), n_frames), res).expect("sizes")
                }
            }
        } else {
            Array2::from_shape_vec((rows, n_frames), out).expect("sizes")
        };
        TimeFrequency::new(data, self.meta()).map_err(|e| DspError::Shape(e.to_string()))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn stage1_all_avx2(
        &self,
        x: &[f32],
        s: &mut Scratch,
        n_frames: usize,
    ) -> Result<(Vec<f32>, f32)> {
        self.stage1_all(x, s, n_frames)
    }

    fn stage1_all_generic(
        &self,
        x: &[f32],
        s: &mut Scratch,
        n_frames: usize,
    ) -> Result<(Vec<f32>, f32)> {
        self.stage1_all(x, s, n_frames)
    }

    /// Stage 1 over the whole signal into a `(rows, frames)` buffer; returns it and its max.
    ///
    /// For power-of-two `n_fft` frames are transformed four at a time, one per lane
    /// ([`crate::lanes`]; lane `l` takes the `l`-th quarter of the frames), otherwise two
    /// at a time in order (frames `2i` and `2i + 1` share one complex FFT, see
    /// [`crate::paired`]). The non-finite sample check rides along (a NaN or infinite
    /// sample turns its frames' power non-finite), so the signal is read once.
    #[inline(always)]
    fn stage1_all(&self, x: &[f32], s: &mut Scratch, n_frames: usize) -> Result<(Vec<f32>, f32)> {
        let rows = self.stage1_rows();
        // not zero-filled: the blocks below write every element once (a 10-minute log-mel
        // is 26 MB, and zeroing it first costs a few per cent of the whole computation)
        let mut out: Vec<f32> = Vec::with_capacity(rows * n_frames);
        // running maximum kept per lane so the reduction vectorises
        let mut mx = [f32::NEG_INFINITY; BLOCK];
        let mut finite = true;
        let mut no_overflow = true;
        // stale lanes of a reused scratch must not hold another signal's values
        s.power.fill(0.0);
        let spare = &mut out.spare_capacity_mut()[..rows * n_frames];
        if self.lanes.is_some() {
            // lane l walks the l-th quarter of the frames: four long sequential streams
            // through the signal, which the hardware prefetchers follow (four adjacent
            // frames per group read 1 KiB-apart pieces of each new page, which they do
            // not; about 10 % of the whole time on the 10-minute benchmark)
            let q = n_frames.div_ceil(LANES);
            for gi in 0..q {
                let mut idx = [0; LANES];
                let mut n = 0;
                for l in 0..LANES {
                    if l * q + gi < n_frames {
                        idx[n] = l * q + gi;
                        n += 1;
                    }
                }
                let Scratch { edge, .. } = s;
                let frames = self.group_frames(x, &idx[..n], edge);
                let j = gi % (BLOCK / LANES) * LANES;
                finite &= self.transform_group(&frames[..n], j, &mut s.tx, &mut s.power);
                if j + LANES == BLOCK || gi + 1 == q {
                    let g0 = gi / (BLOCK / LANES) * (BLOCK / LANES);
                    no_overflow &= self.stage1_block(&s.power, &mut s.block);
                    copy_block_quarters(&s.block, spare, n_frames, q, g0, gi + 1 - g0, &mut mx);
                }
            }
        } else {
            let mut t = 0;
            while t < n_frames {
                let idx = [t, t + 1];
                let n = if t + 1 < n_frames { 2 } else { 1 };
                let Scratch { edge, .. } = s;
                let frames = self.group_frames(x, &idx[..n], edge);
                finite &= self.transform_group(&frames[..n], t % BLOCK, &mut s.tx, &mut s.power);
                t += 2;
                let done = t.min(n_frames);
                if done % BLOCK == 0 || done == n_frames {
                    let t0 = (done - 1) / BLOCK * BLOCK;
                    no_overflow &= self.stage1_block(&s.power, &mut s.block);
                    copy_block(&s.block, spare, n_frames, t0, done - t0, &mut mx);
                }
            }
        }
        // SAFETY: the loops above visit every frame below n_frames once (as `l·q + gi`
        // with `l = f / q`, `gi = f % q` in the lane path; in order in the paired path)
        // and flush it in a block, and the block copies write all `rows` values of each:
        // every element of `0..rows·n_frames` is set.
        unsafe { out.set_len(rows * n_frames) };
        // samples no frame reads (past the last frame without centring, or between
        // frames when hop > n_fft) are checked separately
        let st = &self.cfg.stft;
        let off = if st.center { st.n_fft / 2 } else { 0 };
        let covered_end = ((n_frames - 1) * st.hop_length + st.n_fft).saturating_sub(off);
        let gaps = st.hop_length > st.n_fft;
        if !finite || gaps || (covered_end < x.len() && check_finite(&x[covered_end..]).is_err()) {
            check_finite(x)?;
        }
        if !no_overflow {
            // where: at the largest sample
            let (i, peak) = x
                .iter()
                .map(|v| v.abs())
                .enumerate()
                .fold((0, 0.0f32), |a, (i, v)| if v > a.1 { (i, v) } else { a });
            return Err(DspError::Overflow {
                seconds: i as f64 / self.cfg.sample_rate as f64,
                peak,
            });
        }
        Ok((out, mx.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))))
    }

    /// Frames transformed together: four frames with the lane transform (power-of-two
    /// `n_fft`), else 2 (paired FFT).
    pub fn group_size(&self) -> usize {
        if self.lanes.is_some() {
            LANES
        } else {
            2
        }
    }

    /// The frames `idx` (at most [`LANES`]): interior frames straight from `x`, edge
    /// frames padded into `edge`.
    #[inline(always)]
    fn group_frames<'a>(
        &self,
        x: &'a [f32],
        idx: &[usize],
        edge: &'a mut [f32],
    ) -> [&'a [f32]; LANES] {
        let st = &self.cfg.stft;
        let n_fft = st.n_fft;
        let off = if st.center { (n_fft / 2) as isize } else { 0 };
        let start = |l: usize| idx[l] as isize * st.hop_length as isize - off;
        let inside = |l: usize| start(l) >= 0 && start(l) as usize + n_fft <= x.len();
        for (l, e) in edge.chunks_exact_mut(n_fft).enumerate().take(idx.len()) {
            if !inside(l) {
                padded_segment(x, start(l), st.pad_mode, e);
            }
        }
        let edge: &'a [f32] = edge;
        std::array::from_fn(|l| {
            if l >= idx.len() {
                &x[..0]
            } else if inside(l) {
                &x[start(l) as usize..start(l) as usize + n_fft]
            } else {
                &edge[l * n_fft..(l + 1) * n_fft]
            }
        })
    }

    /// Windows and transforms one group of frames (`n_fft` unwindowed samples each, at
    /// most [`group_size`](Self::group_size)) and writes their `|X|^power` to lanes
    /// `j..` of the bins-major `power` block. Returns `false` when a value was not
    /// finite. A frame gets the same bits whatever group or lane it is in.
    #[inline(always)]
    fn transform_group(
        &self,
        frames: &[&[f32]],
        j: usize,
        tx: &mut TxScratch,
        power: &mut [f32],
    ) -> bool {
        let p = self.cfg.power;
        match (&self.lanes, tx) {
            (Some(plan), TxScratch::Lanes(buf)) => {
                plan.load(frames, buf);
                plan.power(buf, p, &mut power[j..], BLOCK)
            }
            (None, TxScratch::Pair(pair)) => {
                self.stft
                    .load_pair_frames(frames[0], frames.get(1).copied(), pair);
                self.stft.pair_power(pair, p, &mut power[j..], BLOCK)
            }
            _ => unreachable!("scratch made by this extractor"),
        }
    }

    /// A streaming front end: push blocks of samples, receive stage-1 frames.
    pub fn streamer(&self) -> FrameStreamer<'_> {
        FrameStreamer {
            ex: self,
            scratch: self.scratch(),
            frame: vec![0.0; self.stage1_rows()],
            in_group: 0,
            lanes: 0,
            buf: Vec::new(),
            buf_start: 0,
            received: 0,
            next: 0,
            max: f32::NEG_INFINITY,
            flushed: 0,
            overflow_at: None,
            peak: 0.0,
        }
    }
}

/// The DCT (`(n_out, rows)`) of every column of `a` (`(rows, n_frames)`, rows-major),
/// `(n_out, n_frames)` rows-major: [`BLOCK`] frames at a time, so the products vectorise
/// across frames while each frame's sum keeps [`FeatureExtractor::stage2_frame`]'s order
/// (from −0.0, rows in order): batch and streaming give the same bits.
#[inline(always)]
fn dct_frames(d: &Array2<f32>, a: &[f32], n_frames: usize) -> Vec<f32> {
    let (n_out, rows) = d.dim();
    let d = d.as_slice().expect("contiguous");
    let mut res = vec![0.0f32; n_out * n_frames];
    for t0 in (0..n_frames).step_by(BLOCK) {
        let nb = BLOCK.min(n_frames - t0);
        for (c, w) in d.chunks_exact(rows).enumerate() {
            let mut acc = [-0.0f32; BLOCK];
            if nb == BLOCK {
                // fixed-length rows: the compiler keeps `acc` in registers
                for (r, &wr) in w.iter().enumerate() {
                    let src: &[f32; BLOCK] =
                        a[r * n_frames + t0..][..BLOCK].try_into().expect("block");
                    for j in 0..BLOCK {
                        acc[j] += wr * src[j];
                    }
                }
            } else {
                for (r, &wr) in w.iter().enumerate() {
                    let src = &a[r * n_frames + t0..r * n_frames + t0 + nb];
                    for (s, &v) in acc.iter_mut().zip(src) {
                        *s += wr * v;
                    }
                }
            }
            res[c * n_frames + t0..c * n_frames + t0 + nb].copy_from_slice(&acc[..nb]);
        }
    }
    res
}

/// [`dct_frames`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dct_frames_avx2(d: &Array2<f32>, a: &[f32], n_frames: usize) -> Vec<f32> {
    dct_frames(d, a, n_frames)
}

/// [`copy_block`] for the lane order of the batch path: lane `LANES·gi + l` of the
/// block holds frame `l·q + g0 + gi` (`gi < nb`); frames at or past `n_frames` are
/// skipped.
#[inline(always)]
fn copy_block_quarters(
    block: &[f32],
    out: &mut [std::mem::MaybeUninit<f32>],
    n_frames: usize,
    q: usize,
    g0: usize,
    nb: usize,
    mx: &mut [f32; BLOCK],
) {
    const G: usize = BLOCK / LANES;
    let full = nb == G && (LANES - 1) * q + g0 + G <= n_frames;
    for (r, src) in block.chunks_exact(BLOCK).enumerate() {
        let row = &mut out[r * n_frames..(r + 1) * n_frames];
        if full {
            // (l, gi) order: one contiguous run per quarter
            let t: [f32; BLOCK] = std::array::from_fn(|i| src[LANES * (i % G) + i / G]);
            for (l, run) in t.chunks_exact(G).enumerate() {
                for (d, &v) in row[l * q + g0..l * q + g0 + G].iter_mut().zip(run) {
                    d.write(v);
                }
            }
            for (m, &v) in mx.iter_mut().zip(&t) {
                *m = m.max(v);
            }
        } else {
            for l in 0..LANES {
                for gi in 0..nb {
                    let f = l * q + g0 + gi;
                    if f < n_frames {
                        let v = src[LANES * gi + l];
                        row[f].write(v);
                        mx[0] = mx[0].max(v);
                    }
                }
            }
        }
    }
}

/// Copies `b` frames of a stage-1 block (rows-major, `BLOCK` lanes) into columns
/// `t0..t0 + b` of the `(rows, n_frames)` output (not yet initialised: every element is
/// written exactly once over the whole signal) and folds them into the lane maxima.
#[inline(always)]
fn copy_block(
    block: &[f32],
    out: &mut [std::mem::MaybeUninit<f32>],
    n_frames: usize,
    t0: usize,
    b: usize,
    mx: &mut [f32; BLOCK],
) {
    for (r, src) in block.chunks_exact(BLOCK).enumerate() {
        let dst = &mut out[r * n_frames + t0..r * n_frames + t0 + b];
        for (d, &v) in dst.iter_mut().zip(&src[..b]) {
            d.write(v);
        }
        if b == BLOCK {
            for (m, &v) in mx.iter_mut().zip(src) {
                *m = m.max(v);
            }
        } else {
            for (m, &v) in mx.iter_mut().zip(&src[..b]) {
                *m = m.max(v);
            }
        }
    }
}

/// Incremental framing for signals that do not fit in memory.
///
/// Frames are emitted as soon as the samples they cover have arrived; the edge frames
/// of a centred STFT wait for [`finish`](Self::finish), which knows the signal length.
/// Memory is `O(n_fft + block size)` whatever the signal length.
pub struct FrameStreamer<'a> {
    ex: &'a FeatureExtractor,
    scratch: Scratch,
    frame: Vec<f32>,
    /// frames collected in `scratch.edge` for the next group transform
    in_group: usize,
    /// frames transformed into the current block
    lanes: usize,
    buf: Vec<f32>,
    buf_start: usize,
    received: usize,
    next: usize,
    max: f32,
    /// frames handed out so far
    flushed: usize,
    /// the first frame of the first block whose stage 1 overflowed `f32`
    overflow_at: Option<usize>,
    /// the largest sample magnitude pushed so far (for the overflow error only)
    peak: f32,
}

impl FrameStreamer<'_> {
    /// Samples pushed so far.
    pub fn samples(&self) -> usize {
        self.received
    }
    /// Frames transformed so far (the last few may still wait in the block).
    pub fn frames(&self) -> usize {
        self.next
    }
    /// Maximum stage-1 value so far (for [`FeatureExtractor::stage2`]).
    pub fn stage1_max(&self) -> f32 {
        self.max
    }

    fn emit(&mut self, t: usize, total: Option<usize>, on_frame: &mut dyn FnMut(&[f32])) {
        let cfg = &self.ex.cfg.stft;
        let n_fft = cfg.n_fft;
        let off = if cfg.center { (n_fft / 2) as isize } else { 0 };
        let start = t as isize * cfg.hop_length as isize - off;
        let bs = self.buf_start as isize;
        let n = total.map(|v| v as isize);
        let inside = start >= bs
            && (start + n_fft as isize) <= bs + self.buf.len() as isize
            && n.is_none_or(|n| start + n_fft as isize <= n);
        let slot = &mut self.scratch.edge[self.in_group * n_fft..(self.in_group + 1) * n_fft];
        if inside {
            let a = (start - bs) as usize;
            slot.copy_from_slice(&self.buf[a..a + n_fft]);
        } else {
            // the end is unknown until `finish`: until then only the head can be padded
            let len = n.unwrap_or(isize::MAX / 4);
            let (buf, mode) = (&self.buf, cfg.pad_mode);
            let get = |i: isize| padded_index(i, len, mode).map_or(0.0, |j| buf[(j - bs) as usize]);
            for (k, v) in slot.iter_mut().enumerate() {
                *v = get(start + k as isize);
            }
        }
        // frames are grouped by index, as in the batch path
        self.in_group += 1;
        if self.in_group == self.ex.group_size() {
            self.transform_group(on_frame);
        }
    }

    /// Transforms the collected frames into the next lanes of the block and flushes a
    /// full block.
    fn transform_group(&mut self, on_frame: &mut dyn FnMut(&[f32])) {
        if self.in_group == 0 {
            return;
        }
        let n_fft = self.ex.cfg.stft.n_fft;
        let Scratch {
            tx, power, edge, ..
        } = &mut self.scratch;
        let frames: [&[f32]; LANES] = std::array::from_fn(|l| {
            if l < self.in_group {
                &edge[l * n_fft..(l + 1) * n_fft]
            } else {
                &edge[..0]
            }
        });
        // the samples were checked in `push`
        let _ = self
            .ex
            .transform_group(&frames[..self.in_group], self.lanes, tx, power);
        self.lanes += self.in_group;
        self.in_group = 0;
        if self.lanes == BLOCK {
            self.flush(on_frame);
        }
    }

    /// Runs stage 1 on the pending lanes and hands each frame out, in order.
    fn flush(&mut self, on_frame: &mut dyn FnMut(&[f32])) {
        if self.lanes == 0 {
            return;
        }
        let Scratch { power, block, .. } = &mut self.scratch;
        if !self.ex.stage1_block(power, block) && self.overflow_at.is_none() {
            self.overflow_at = Some(self.flushed);
        }
        self.flushed += self.lanes;
        for j in 0..self.lanes {
            for (r, v) in self.frame.iter_mut().enumerate() {
                *v = block[r * BLOCK + j];
                self.max = self.max.max(*v);
            }
            on_frame(&self.frame);
        }
        self.lanes = 0;
    }

    /// Pushes samples; calls `on_frame` with each completed stage-1 frame.
    pub fn push(&mut self, x: &[f32], on_frame: &mut dyn FnMut(&[f32])) -> Result<()> {
        let peak = check_finite_peak(x).map_err(|e| match e {
            DspError::NonFinite { index, value } => DspError::NonFinite {
                index: index + self.received,
                value,
            },
            e => e,
        })?;
        self.peak = self.peak.max(peak);
        self.buf.extend_from_slice(x);
        self.received += x.len();
        let cfg = self.ex.cfg.stft.clone();
        let off = if cfg.center {
            (cfg.n_fft / 2) as isize
        } else {
            0
        };
        loop {
            let start = self.next as isize * cfg.hop_length as isize - off;
            let end = start + cfg.n_fft as isize;
            let ready = end <= self.received as isize
                && (start >= 0
                    || cfg.pad_mode != PadMode::Reflect
                    || -start < self.received as isize);
            if !ready {
                break;
            }
            let t = self.next;
            self.emit(t, None, on_frame);
            self.next += 1;
        }
        self.trim();
        self.overflow_check()
    }

    /// The overflow error once a block has overflowed (frames already handed out stay
    /// handed out: a caller writing them discards its output on the error).
    fn overflow_check(&self) -> Result<()> {
        match self.overflow_at {
            None => Ok(()),
            Some(frame) => {
                let cfg = &self.ex.cfg;
                let off = if cfg.stft.center {
                    0.0
                } else {
                    cfg.stft.n_fft as f64 / 2.0
                };
                Err(DspError::Overflow {
                    seconds: (frame as f64 * cfg.stft.hop_length as f64 + off)
                        / cfg.sample_rate as f64,
                    peak: self.peak,
                })
            }
        }
    }

    fn trim(&mut self) {
        let cfg = &self.ex.cfg.stft;
        let off = if cfg.center {
            (cfg.n_fft / 2) as isize
        } else {
            0
        };
        let next_start = (self.next as isize * cfg.hop_length as isize - off).max(0) as usize;
        // keep the last n_fft samples too: the reflected tail may reach back that far
        let keep_from = next_start.min(self.received.saturating_sub(cfg.n_fft + 1));
        // keep the head while reflect-padded start frames are pending
        let keep_from = if (self.next as isize * cfg.hop_length as isize) < off {
            0
        } else {
            keep_from
        };
        if keep_from > self.buf_start + 65536 {
            self.buf.drain(..keep_from - self.buf_start);
            self.buf_start = keep_from;
        }
    }

    /// Ends the signal: emits the remaining (edge) frames; returns the total frame count.
    pub fn finish(mut self, on_frame: &mut dyn FnMut(&[f32])) -> Result<(usize, f32)> {
        let n = self.received;
        let n_frames = self.ex.n_frames(n)?;
        if self.buf_start > 0 && n < self.ex.cfg.stft.n_fft {
            return Err(DspError::Shape("stream buffer trimmed too early".into()));
        }
        for t in self.next..n_frames {
            self.emit(t, Some(n), on_frame);
        }
        self.transform_group(on_frame);
        self.flush(on_frame);
        self.overflow_check()?;
        Ok((n_frames, self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The non-finite check folded into the transforms (lane and paired) reports the
    /// first bad sample wherever it is: inside frames, at either end, in the tail no
    /// frame reads (no centring) and between frames (hop > n_fft); a clean signal passes.
    #[test]
    fn non_finite_samples_are_reported_with_their_index() {
        let n = 5000;
        let clean: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
        let configs = [
            (StftConfig::new(512).hop(256), "centred"),
            (StftConfig::new(512).hop(256).center(false), "not centred"),
            (StftConfig::new(256).hop(400).center(false), "hop > n_fft"),
            (StftConfig::new(400).hop(160), "n_fft 400 (paired)"),
        ];
        for ((stft, label), lanes) in configs
            .into_iter()
            .flat_map(|c| [(c.clone(), true), (c, false)])
        {
            let mut cfg = FeatureConfig::librosa();
            cfg.stft = stft;
            cfg.compression = Compression::Db(DbConfig::default());
            let ex = FeatureExtractor::new(cfg).unwrap();
            let ex = if lanes { ex } else { ex.without_lanes() };
            assert!(ex.compute(&clean).is_ok(), "{label}");
            // 4999 lies past the last frame without centring (frames end at 4864 / 4656);
            // 300 lies between two frames when hop > n_fft
            for pos in [0usize, 300, 2500, n - 1] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut x = clean.clone();
                    x[pos] = bad;
                    match ex.compute(&x) {
                        Err(DspError::NonFinite { index, .. }) => {
                            assert_eq!(index, pos, "{label}: {bad} at {pos}")
                        }
                        other => panic!("{label}: {bad} at {pos} gave {other:?}"),
                    }
                }
            }
        }
    }

    /// Issue #19 item 11: finite samples so large that the spectrum overflows `f32` (a
    /// float WAV holding 1e30) are an `Overflow` error on the batch and the streamed path
    /// alike, for every stage 1 (mel + dB, linear power, log1p, MFCC) and both transforms;
    /// large samples that do not overflow still compute, and a scratch reused after an
    /// overflow gives a clean signal's exact result.
    #[test]
    fn overflowing_samples_are_an_error_on_both_paths() {
        let n = 6000;
        let clean: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
        let mut loud = clean.clone();
        loud[3000] = 1e30;
        let mut big = clean.clone();
        big[3000] = 1e6; // power ~1e12·n_fft²: finite (but beyond musicnn's float16 range)
        let mut configs = Vec::new();
        for (n_fft, lanes) in [(512, true), (400, false)] {
            let mut db = FeatureConfig::librosa();
            db.stft = StftConfig::new(n_fft).hop(160);
            db.compression = Compression::Db(DbConfig::default());
            let mut linear = db.clone();
            linear.mel = None;
            linear.compression = Compression::None;
            let mut log1p = FeatureConfig::musicnn();
            log1p.stft = StftConfig::new(n_fft).hop(160);
            let mut mfcc = db.clone();
            mfcc.mfcc = Some(MfccSettings::default());
            for c in [db, linear, log1p, mfcc] {
                configs.push((c, lanes));
            }
        }
        for (cfg, lanes) in configs {
            let label = format!("{:?} n_fft {}", cfg.compression, cfg.stft.n_fft);
            let ex = FeatureExtractor::new(cfg).unwrap();
            let ex = if lanes { ex } else { ex.without_lanes() };
            let mut s = ex.scratch();
            match ex.compute_with(&loud, &mut s) {
                Err(DspError::Overflow { seconds, peak }) => {
                    assert_eq!(peak, 1e30, "{label}");
                    let at = 3000.0 / ex.config().sample_rate as f64;
                    assert!((seconds - at).abs() < 1e-9, "{label} {seconds}");
                }
                other => panic!("{label}: batch gave {other:?}"),
            }
            let want = ex.compute(&clean).unwrap();
            let again = ex.compute_with(&clean, &mut s).unwrap();
            assert_eq!(again.view(), want.view(), "{label}: reused scratch");
            match ex.compute(&big) {
                Ok(tf) => assert!(tf.view().iter().all(|v| v.is_finite()), "{label}"),
                Err(DspError::Overflow { .. }) => assert!(
                    matches!(
                        ex.config().compression,
                        Compression::Log1p { f16: true, .. }
                    ),
                    "{label}: 1e6 overflowed"
                ),
                Err(e) => panic!("{label}: {e}"),
            }
            // streamed, in pushes of 1000 samples: the error comes once the overflowing
            // block is flushed, and names the time of that block
            let mut st = ex.streamer();
            let mut r = Ok(());
            for c in loud.chunks(1000) {
                r = st.push(c, &mut |_| {});
                if r.is_err() {
                    break;
                }
            }
            let r = r.and_then(|()| st.finish(&mut |_| {}).map(|_| ()));
            match r {
                Err(DspError::Overflow { seconds, peak }) => {
                    assert_eq!(peak, 1e30, "{label}");
                    let at = 3000.0 / ex.config().sample_rate as f64;
                    assert!(seconds <= at + 1e-9, "{label} {seconds}");
                }
                other => panic!("{label}: streamed gave {other:?}"),
            }
        }
    }

    fn tone_noise(n: usize) -> Vec<f32> {
        let mut r = 12345u32;
        (0..n)
            .map(|i| {
                r = r.wrapping_mul(1664525).wrapping_add(1013904223);
                0.5 * (i as f32 * 0.031).sin() + 0.1 * ((r >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
            })
            .collect()
    }

    /// The streamer gives the batch result bit for bit, for both transforms (lanes for
    /// power-of-two `n_fft`, pairs otherwise), centred or not, each pad mode, signal
    /// lengths that leave partial groups, blocks and quarters, and pushes of awkward
    /// sizes.
    #[test]
    fn streaming_equals_batch_bit_for_bit() {
        for (n_fft, hop) in [(512, 256), (400, 160), (256, 300)] {
            for center in [true, false] {
                for pad in [PadMode::Constant, PadMode::Reflect, PadMode::Edge] {
                    for len in [n_fft + 1, 3001, 9000, 20000, 22050] {
                        let x = tone_noise(len);
                        let mut cfg = FeatureConfig::librosa();
                        cfg.stft = StftConfig::new(n_fft).hop(hop).center(center).pad_mode(pad);
                        for ex in [
                            FeatureExtractor::new(cfg.clone()).unwrap(),
                            FeatureExtractor::new(cfg.clone()).unwrap().without_lanes(),
                        ] {
                            let want = ex.compute(&x).unwrap().into_array();
                            let mut got = vec![];
                            let mut st = ex.streamer();
                            for chunk in x.chunks(777) {
                                st.push(chunk, &mut |f| got.push(f.to_vec())).unwrap();
                            }
                            let (n, _) = st.finish(&mut |f| got.push(f.to_vec())).unwrap();
                            assert_eq!(n, want.ncols());
                            assert_eq!(got.len(), n);
                            for (t, f) in got.iter().enumerate() {
                                for (r, v) in f.iter().enumerate() {
                                    assert_eq!(
                                        v.to_bits(),
                                        want[[r, t]].to_bits(),
                                        "n_fft {n_fft} centre {center} {pad:?} len {len} group {}: frame {t} row {r}",
                                        ex.group_size()
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Stage 2 over the whole array (floor pass, DCT blocked across frames) gives the
    /// bits of the streaming path's per-frame [`FeatureExtractor::stage2_frame`], for
    /// log-mel with `top_db` and `ref=max`, and MFCC with and without a lifter, with a
    /// frame count that leaves a partial block.
    #[test]
    fn stage2_batch_equals_per_frame_bits() {
        let x = tone_noise(22050 + 300);
        for (reference, mfcc) in [
            (DbRef::Value(1.0), None),
            (DbRef::Max, None),
            (DbRef::Value(1.0), Some((20, 0.0))),
            (DbRef::Max, Some((13, 22.0))),
        ] {
            let mut cfg = FeatureConfig::librosa();
            cfg.stft = StftConfig::new(512).hop(256);
            cfg.compression = Compression::Db(DbConfig {
                reference,
                ..DbConfig::default()
            });
            cfg.mfcc = mfcc.map(|(n_mfcc, lifter)| MfccSettings { n_mfcc, lifter });
            let ex = FeatureExtractor::new(cfg).unwrap();
            let want = ex.compute(&x).unwrap().into_array();
            assert!(!want.ncols().is_multiple_of(BLOCK));
            let mut frames = vec![];
            let mut st = ex.streamer();
            st.push(&x, &mut |f| frames.push(f.to_vec())).unwrap();
            let (_, mx) = st.finish(&mut |f| frames.push(f.to_vec())).unwrap();
            let params = ex.stage2_params(mx);
            let mut o = vec![0.0f32; ex.output_rows()];
            assert_eq!(want.dim(), (ex.output_rows(), frames.len()));
            for (t, f) in frames.iter_mut().enumerate() {
                ex.stage2_frame(params, f, &mut o);
                for (r, v) in o.iter().enumerate() {
                    assert_eq!(
                        v.to_bits(),
                        want[[r, t]].to_bits(),
                        "{mfcc:?} frame {t} row {r}"
                    );
                }
            }
        }
    }

    /// The lane transform and the paired FFT agree to rounding (power within 1e-6
    /// relative to each frame's peak), and `compute_with` accepts the scratch buffers of
    /// another extractor (it replaces them) instead of panicking.
    #[test]
    fn lanes_agree_with_pairs_and_foreign_scratch_is_replaced() {
        let x = tone_noise(20000);
        let mut cfg = FeatureConfig::librosa();
        cfg.mel = None;
        let lanes = FeatureExtractor::new(cfg.clone()).unwrap();
        let pairs = FeatureExtractor::new(cfg).unwrap().without_lanes();
        assert_eq!((lanes.group_size(), pairs.group_size()), (LANES, 2));
        let mut foreign = FeatureExtractor::new(FeatureConfig::torchaudio())
            .unwrap()
            .scratch();
        let a = lanes.compute_with(&x, &mut foreign).unwrap().into_array();
        let b = pairs.compute_with(&x, &mut foreign).unwrap().into_array();
        assert_eq!(a.dim(), b.dim());
        for (ca, cb) in a.columns().into_iter().zip(b.columns()) {
            let peak = cb.iter().fold(0.0f32, |m, &v| m.max(v));
            for (&u, &v) in ca.iter().zip(cb) {
                assert!((u - v).abs() <= 1e-6 * peak, "{u} vs {v} (peak {peak})");
            }
        }
    }
}
