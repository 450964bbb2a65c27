use crate::{CoreError, Result};
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};

/// Multichannel audio: `f32` samples in a `(channels, samples)` array plus a sample rate.
///
/// All constructors reject a zero sample rate, zero channels and non-finite samples, so
/// code that receives an `AudioBuffer` may assume it is well formed.
///
/// ```
/// use mirkit_core::AudioBuffer;
/// // two channels, interleaved as a WAV stores them: L R L R ...
/// let stereo = AudioBuffer::from_interleaved(&[0.5, -0.5, 0.25, 0.75], 2, 44100)?;
/// assert_eq!((stereo.channels(), stereo.len(), stereo.sample_rate()), (2, 2, 44100));
/// assert_eq!(stereo.to_mono().samples(), &[0.0, 0.5]); // mean of the channels, as librosa
/// // malformed audio cannot be built
/// assert!(AudioBuffer::from_mono(vec![0.0, f32::NAN], 22050).is_err());
/// assert!(AudioBuffer::from_mono(vec![0.0; 4], 0).is_err());
/// # Ok::<(), mirkit_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBuffer {
    data: Array2<f32>,
    sample_rate: u32,
}

fn check_finite(data: &ArrayView2<f32>) -> Result<()> {
    for (c, row) in data.axis_iter(Axis(0)).enumerate() {
        // fast path: a sum of finite values that is finite is the common case
        if let Some(i) = row.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::NonFiniteSample {
                channel: c,
                index: i,
                value: row[i],
            });
        }
    }
    Ok(())
}

impl AudioBuffer {
    /// Wraps a `(channels, samples)` array. Fails on a zero rate, zero channels or NaN/Inf.
    pub fn new(data: Array2<f32>, sample_rate: u32) -> Result<Self> {
        if sample_rate == 0 {
            return Err(CoreError::ZeroSampleRate(sample_rate));
        }
        if data.nrows() == 0 {
            return Err(CoreError::NoChannels);
        }
        check_finite(&data.view())?;
        Ok(Self { data, sample_rate })
    }

    /// A one-channel buffer from a sample vector.
    pub fn from_mono(samples: Vec<f32>, sample_rate: u32) -> Result<Self> {
        let n = samples.len();
        let data = Array2::from_shape_vec((1, n), samples).expect("1 x n always fits");
        Self::new(data, sample_rate)
    }

    /// A buffer from interleaved samples (`L R L R ...`).
    pub fn from_interleaved(samples: &[f32], channels: usize, sample_rate: u32) -> Result<Self> {
        if channels == 0 {
            return Err(CoreError::NoChannels);
        }
        if !samples.len().is_multiple_of(channels) {
            return Err(CoreError::RaggedChannels {
                len: samples.len(),
                channels,
            });
        }
        let n = samples.len() / channels;
        let mut data = Array2::<f32>::zeros((channels, n));
        for (i, frame) in samples.chunks_exact(channels).enumerate() {
            for (c, &v) in frame.iter().enumerate() {
                data[[c, i]] = v;
            }
        }
        Self::new(data, sample_rate)
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.data.nrows()
    }
    /// Number of samples per channel.
    pub fn len(&self) -> usize {
        self.data.ncols()
    }
    /// True when the buffer holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.len() as f64 / self.sample_rate as f64
    }
    /// The `(channels, samples)` array.
    pub fn view(&self) -> ArrayView2<'_, f32> {
        self.data.view()
    }
    /// One channel's samples.
    ///
    /// # Panics
    /// If `c >= self.channels()`.
    pub fn channel(&self, c: usize) -> ArrayView1<'_, f32> {
        self.data.row(c)
    }
    /// Channel 0 as a contiguous slice (the whole signal for mono audio).
    pub fn samples(&self) -> &[f32] {
        self.data
            .row(0)
            .to_slice()
            .expect("rows of a standard-layout array are contiguous")
    }
    /// Consumes the buffer, returning its array.
    pub fn into_array(self) -> Array2<f32> {
        self.data
    }
    /// Consumes a buffer and returns channel 0 as a `Vec`.
    pub fn into_mono_vec(self) -> Vec<f32> {
        if self.channels() == 1 {
            self.data.into_raw_vec_and_offset().0
        } else {
            self.to_mono().data.into_raw_vec_and_offset().0
        }
    }
    /// Mean of the channels (librosa's `to_mono`); a mono buffer is returned as is.
    pub fn to_mono(&self) -> AudioBuffer {
        if self.channels() == 1 {
            return self.clone();
        }
        let mean = self.data.mean_axis(Axis(0)).expect("at least one channel");
        let n = mean.len();
        AudioBuffer {
            data: mean.into_shape_with_order((1, n)).expect("1 x n"),
            sample_rate: self.sample_rate,
        }
    }
    /// Peak absolute value over all channels.
    pub fn peak(&self) -> f32 {
        self.data.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    }
    /// Root-mean-square over all channels.
    pub fn rms(&self) -> f32 {
        if self.data.is_empty() {
            return 0.0;
        }
        let s: f64 = self.data.iter().map(|&v| (v as f64) * (v as f64)).sum();
        (s / self.data.len() as f64).sqrt() as f32
    }
}
