use thiserror::Error;

/// Errors from reading, decoding, resampling or writing audio. Each names the file.
#[derive(Debug, Error)]
pub enum IoError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {cause}")]
    Open {
        /// the file
        path: String,
        /// the cause, part of the message (not returned again by `source()`, so an
        /// error chain printed by anyhow/eyre does not repeat it)
        cause: std::io::Error,
    },
    /// The file has zero bytes.
    #[error("{path}: empty file (0 bytes)")]
    EmptyFile {
        /// the file
        path: String,
    },
    /// No decoder recognises the container or codec.
    #[error("{path}: {reason}")]
    Unsupported {
        /// the file
        path: String,
        /// decoder message
        reason: String,
    },
    /// The file has no audio track.
    #[error("{path}: no audio track")]
    NoAudioTrack {
        /// the file
        path: String,
    },
    /// The stream ended before the length its header announces.
    #[error(
        "{path}: truncated: header announces {expected} frames, only {decoded} could be decoded"
    )]
    Truncated {
        /// the file
        path: String,
        /// frames announced
        expected: u64,
        /// frames decoded
        decoded: u64,
    },
    /// A packet failed to decode.
    #[error("{path}: corrupt audio data near {seconds:.3} s: {reason}")]
    Corrupt {
        /// the file
        path: String,
        /// position of the failure
        seconds: f64,
        /// decoder message
        reason: String,
    },
    /// The file decodes to no samples.
    #[error("{path}: contains no audio samples")]
    NoSamples {
        /// the file
        path: String,
    },
    /// A decoded sample is NaN or infinite (float formats).
    #[error("{path}: non-finite sample ({value}) at frame {frame}")]
    NonFinite {
        /// the file
        path: String,
        /// frame index
        frame: u64,
        /// offending value
        value: f32,
    },
    /// An invalid argument (offset, duration, sample rate...).
    #[error("invalid parameter {name} = {value}: {why}")]
    InvalidParameter {
        /// parameter name
        name: &'static str,
        /// value given
        value: String,
        /// requirement
        why: String,
    },
    /// The resampler failed.
    #[error("resampling {from} Hz -> {to} Hz failed: {reason}")]
    Resample {
        /// input rate
        from: u32,
        /// output rate
        to: u32,
        /// message
        reason: String,
    },
    /// Writing a file failed (nothing is left under the final name).
    #[error("{path}: cannot write: {reason}")]
    Write {
        /// the file
        path: String,
        /// message
        reason: String,
    },
    /// An error from the shared types.
    #[error(transparent)]
    Core(#[from] mirkit_core::CoreError),
}

/// Result type of this crate.
pub type Result<T, E = IoError> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &'static str, value: impl ToString, why: impl Into<String>) -> IoError {
    IoError::InvalidParameter {
        name,
        value: value.to_string(),
        why: why.into(),
    }
}
