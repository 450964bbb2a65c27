use thiserror::Error;

/// Errors from feature extraction: every invalid parameter or signal is named.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DspError {
    /// A parameter outside its valid range (`hop_length = 0`, `n_mels = 0`, `fmax > sr/2`...).
    #[error("invalid parameter {name} = {value}: {why}")]
    InvalidParameter {
        /// parameter name, as librosa spells it
        name: &'static str,
        /// the value given
        value: String,
        /// what is required
        why: String,
    },
    /// The signal holds no samples.
    #[error("empty signal: nothing to analyse")]
    EmptySignal,
    /// A NaN or infinite sample.
    #[error("non-finite sample ({value}) at index {index}")]
    NonFinite {
        /// sample index
        index: usize,
        /// offending value
        value: f32,
    },
    /// Too short for the requested framing (librosa raises here too).
    #[error("input of {len} samples is too short for n_fft = {n_fft} without centering")]
    TooShort {
        /// signal length
        len: usize,
        /// frame length required
        n_fft: usize,
    },
    /// Finite samples so far beyond full scale (±1) that the spectrum overflows `f32`
    /// (|x| ≳ 10¹⁵ for a 2048-point FFT): the features would be infinite or saturated.
    #[error(
        "the spectrum overflows f32 near {seconds:.3} s: samples far beyond full scale \
         (±1, here up to {peak:e}); scale the signal down"
    )]
    Overflow {
        /// where (seconds from the start): the largest sample, or the first frame found
        seconds: f64,
        /// the largest sample magnitude seen (so far, when streaming)
        peak: f32,
    },
    /// Array shapes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

/// Result type of this crate.
pub type Result<T, E = DspError> = std::result::Result<T, E>;

pub(crate) fn invalid(
    name: &'static str,
    value: impl ToString,
    why: impl Into<String>,
) -> DspError {
    DspError::InvalidParameter {
        name,
        value: value.to_string(),
        why: why.into(),
    }
}

/// Fails on the first NaN/Inf sample.
pub fn check_finite(x: &[f32]) -> Result<()> {
    check_finite_peak(x).map(|_| ())
}

/// [`check_finite`] that also returns the largest magnitude (0 for no samples), in the
/// same pass.
pub(crate) fn check_finite_peak(x: &[f32]) -> Result<f32> {
    // `v * 0.0` is 0 for finite v and NaN for NaN/Inf; summing (and taking maxima) in 16
    // independent lanes lets the compiler vectorise, so the check costs a fraction of a
    // millisecond per minute of audio. Only when a lane turns NaN is the first bad index
    // searched for.
    let mut lanes = [0.0f32; 16];
    let mut peaks = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for ((l, p), &v) in lanes.iter_mut().zip(peaks.iter_mut()).zip(c) {
            *l += v * 0.0;
            *p = p.max(v.abs());
        }
    }
    let tail = chunks.remainder();
    let tail_ok = tail.iter().all(|v| v.is_finite());
    if tail_ok && lanes.iter().all(|l| *l == 0.0) {
        let tail_peak = tail.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        return Ok(peaks.iter().fold(tail_peak, |m, &p| m.max(p)));
    }
    match x.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(DspError::NonFinite {
            index: i,
            value: x[i],
        }),
        // (not reached: a lane sum turns NaN only at a non-finite sample)
        None => Ok(x.iter().fold(0.0f32, |m, v| m.max(v.abs()))),
    }
}
