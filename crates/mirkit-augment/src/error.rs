use thiserror::Error;

/// Errors from augmentation: invalid parameters or signals, named.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AugmentError {
    /// A parameter outside its valid range (a rate ≤ 0, a NaN SNR...).
    #[error("invalid parameter {name} = {value}: {why}")]
    InvalidParameter {
        /// parameter name
        name: &'static str,
        /// value given
        value: String,
        /// requirement
        why: String,
    },
    /// A range whose minimum exceeds its maximum (or is not finite).
    #[error("invalid range for {name}: [{lo}, {hi}]: {why}")]
    InvalidRange {
        /// parameter name
        name: &'static str,
        /// minimum
        lo: f64,
        /// maximum
        hi: f64,
        /// problem
        why: String,
    },
    /// The signal holds no samples.
    #[error("empty audio: nothing to augment")]
    Empty,
    /// A NaN or infinite sample.
    #[error("non-finite sample ({value}) at index {index}")]
    NonFinite {
        /// index
        index: usize,
        /// value
        value: f32,
    },
    /// The signal is silent where a transform needs its level (an SNR is undefined).
    #[error("silent audio: {0} needs a signal with non-zero energy")]
    Silent(&'static str),
    /// A record that cannot be replayed (unknown transform or missing parameter).
    #[error("cannot replay record: {0}")]
    Replay(String),
    /// An error from the DSP layer (STFT parameters...).
    #[error(transparent)]
    Dsp(#[from] mirkit_dsp::DspError),
}

/// Result type of this crate.
pub type Result<T, E = AugmentError> = std::result::Result<T, E>;

pub(crate) fn invalid(
    name: &'static str,
    value: impl ToString,
    why: impl Into<String>,
) -> AugmentError {
    AugmentError::InvalidParameter {
        name,
        value: value.to_string(),
        why: why.into(),
    }
}

pub(crate) fn check_signal(y: &[f32]) -> Result<()> {
    if y.is_empty() {
        return Err(AugmentError::Empty);
    }
    mirkit_dsp::check_finite(y).map_err(|e| match e {
        mirkit_dsp::DspError::NonFinite { index, value } => {
            AugmentError::NonFinite { index, value }
        }
        e => AugmentError::Dsp(e),
    })
}

pub(crate) fn positive(name: &'static str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(invalid(name, v, "must be a positive finite number"))
    }
}

/// `v` finite and within `[lo, hi]`; the message names the range.
pub(crate) fn within(name: &'static str, v: f64, lo: f64, hi: f64) -> Result<f64> {
    finite(name, v)?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(name, v, format!("must be within [{lo}, {hi}]")))
    }
}

pub(crate) fn finite(name: &'static str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(invalid(name, v, "must be finite"))
    }
}
