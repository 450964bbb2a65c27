use crate::{CoreError, Result};
use ndarray::{Array2, ArrayView2};

/// What the rows (first axis) of a [`TimeFrequency`] array are.
#[derive(Debug, Clone, PartialEq)]
pub enum FrequencyScale {
    /// Linear FFT bins `0, sr/n_fft, ..., sr/2`.
    Linear,
    /// Mel bands.
    Mel {
        /// number of bands
        n_mels: usize,
        /// lowest filter edge in Hz
        fmin: f32,
        /// highest filter edge in Hz
        fmax: f32,
        /// HTK formula (true) or Slaney's (false)
        htk: bool,
    },
    /// Cepstral coefficients (MFCC).
    Cepstral {
        /// number of coefficients
        n_mfcc: usize,
    },
    /// Anything else (e.g. deltas, learnt features).
    Other(String),
}

/// What the values of a [`TimeFrequency`] array are.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// `|X|`
    Magnitude,
    /// `|X|^2`
    Power,
    /// `|X|^p` for another exponent.
    PowerOf(f32),
    /// Decibels: `10 log10(S/ref)` of power or `20 log10(S/ref)` of magnitude.
    Decibel {
        /// clip floor below the maximum, if any
        top_db: Option<f32>,
    },
    /// `log10(1 + c·x)` compression (musicnn).
    Log1p {
        /// the constant `c`
        c: f32,
    },
    /// Per-band standardised values.
    Standardised,
    /// Other (MFCC, deltas...).
    Other,
}

/// Metadata describing a [`TimeFrequency`] array.
#[derive(Debug, Clone, PartialEq)]
pub struct TfMeta {
    /// Sample rate of the analysed signal, Hz.
    pub sample_rate: u32,
    /// Hop between frames, samples.
    pub hop_length: usize,
    /// FFT size.
    pub n_fft: usize,
    /// Whether frames are centred (frame `t` is centred on sample `t·hop`).
    pub center: bool,
    /// What the rows are.
    pub scale: FrequencyScale,
    /// What the values are.
    pub values: ValueKind,
}

impl TfMeta {
    /// Time in seconds of frame `t` (librosa's `frames_to_time`: `t·hop/sr`, plus
    /// `n_fft/2` when frames are not centred).
    pub fn frame_time(&self, t: usize) -> f64 {
        let offset = if self.center { 0 } else { self.n_fft / 2 };
        (t * self.hop_length + offset) as f64 / self.sample_rate as f64
    }
    /// Frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_length as f64
    }
}

/// A `(bins, frames)` array with its [`TfMeta`].
///
/// The type mirkit-dsp's feature extractor returns: the values and what they mean, so a
/// plot or a model can label axes and check they got the front end they expect.
///
/// ```
/// use mirkit_core::{FrequencyScale, TfMeta, TimeFrequency, ValueKind};
/// use ndarray::Array2;
/// let meta = TfMeta {
///     sample_rate: 16000, hop_length: 256, n_fft: 512, center: true,
///     scale: FrequencyScale::Mel { n_mels: 96, fmin: 0.0, fmax: 8000.0, htk: true },
///     values: ValueKind::Power,
/// };
/// let tf = TimeFrequency::new(Array2::zeros((96, 100)), meta.clone())?;
/// assert_eq!((tf.n_bins(), tf.n_frames()), (96, 100));
/// assert_eq!(tf.meta().frame_time(10), 0.16); // 10 · 256 / 16000 s
/// // the row count must match the scale
/// assert!(TimeFrequency::new(Array2::zeros((40, 100)), meta).is_err());
/// # Ok::<(), mirkit_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TimeFrequency {
    data: Array2<f32>,
    meta: TfMeta,
}

impl TimeFrequency {
    /// Wraps data with its metadata. Checks the row count against the scale where it is known.
    pub fn new(data: Array2<f32>, meta: TfMeta) -> Result<Self> {
        let expect = match &meta.scale {
            FrequencyScale::Linear => Some(meta.n_fft / 2 + 1),
            FrequencyScale::Mel { n_mels, .. } => Some(*n_mels),
            FrequencyScale::Cepstral { n_mfcc } => Some(*n_mfcc),
            FrequencyScale::Other(_) => None,
        };
        if let Some(e) = expect {
            if e != data.nrows() {
                return Err(CoreError::Shape(format!(
                    "{:?} implies {e} rows, data has {}",
                    meta.scale,
                    data.nrows()
                )));
            }
        }
        Ok(Self { data, meta })
    }
    /// The metadata.
    pub fn meta(&self) -> &TfMeta {
        &self.meta
    }
    /// The `(bins, frames)` array.
    pub fn view(&self) -> ArrayView2<'_, f32> {
        self.data.view()
    }
    /// Number of rows (bins, bands or coefficients).
    pub fn n_bins(&self) -> usize {
        self.data.nrows()
    }
    /// Number of frames.
    pub fn n_frames(&self) -> usize {
        self.data.ncols()
    }
    /// Consumes self, returning the array.
    pub fn into_array(self) -> Array2<f32> {
        self.data
    }
    /// Consumes self, returning array and metadata.
    pub fn into_parts(self) -> (Array2<f32>, TfMeta) {
        (self.data, self.meta)
    }
    /// Mutable access to the values (shape is fixed).
    pub fn values_mut(&mut self) -> ndarray::ArrayViewMut2<'_, f32> {
        self.data.view_mut()
    }
}
