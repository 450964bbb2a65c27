use thiserror::Error;

/// Errors from constructing or reading the shared types.
#[derive(Debug, Error)]
pub enum CoreError {
    /// A sample rate of zero was given.
    #[error("sample rate must be positive, got {0}")]
    ZeroSampleRate(u32),
    /// Zero channels were given.
    #[error("an audio buffer needs at least one channel")]
    NoChannels,
    /// Interleaved data whose length is not a multiple of the channel count.
    #[error("{len} interleaved samples do not divide into {channels} channels")]
    RaggedChannels {
        /// number of samples supplied
        len: usize,
        /// declared channel count
        channels: usize,
    },
    /// A NaN or infinite sample.
    #[error("non-finite sample ({value}) at channel {channel}, index {index}")]
    NonFiniteSample {
        /// channel of the sample
        channel: usize,
        /// index within the channel
        index: usize,
        /// the offending value
        value: f32,
    },
    /// Shape mismatch between data and metadata.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A malformed or unsupported `.npy` file.
    #[error("npy: {0}")]
    Npy(String),
    /// An I/O error while reading or writing a file.
    #[error("{path}: {cause}")]
    Io {
        /// the file concerned
        path: String,
        /// the cause, part of the message (not returned again by `source()`, so an
        /// error chain printed by anyhow/eyre does not repeat it)
        cause: std::io::Error,
    },
}
