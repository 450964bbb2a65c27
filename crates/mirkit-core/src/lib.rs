//! # mirkit-core — the shared types every mirkit crate composes through
//!
//! mirkit is split into crates that each own one stage of a music-information-retrieval
//! pipeline (decoding, features, augmentation, models, training). They hand data to one
//! another through the two types defined here:
//!
//! * [`AudioBuffer`] — `f32` samples laid out as `(channels, samples)` with their sample
//!   rate. Constructors validate: a sample rate of zero, a ragged channel layout or a
//!   NaN/Inf sample is a typed [`CoreError`], never a panic later on.
//! * [`TimeFrequency`] — a `(bins, frames)` array (librosa's orientation) that carries
//!   what its axes and values mean ([`TfMeta`]): sample rate, hop, FFT size, the frequency
//!   scale (linear, mel, cepstral) and the value kind (magnitude, power, dB, log1p).
//!
//! It also holds the `.npy` reader/writer ([`npy`]) used for fixtures and feature files,
//! because every crate needs it and it has no dependencies, and one process-wide
//! allocator setting for network work ([`alloc::keep_freed_memory`], which the `mirkit`
//! command calls at start-up).
//!
//! ```
//! use mirkit_core::AudioBuffer;
//! let stereo = AudioBuffer::from_interleaved(&[0.5, -0.5, 1.0, 0.0], 2, 44_100).unwrap();
//! let mono = stereo.to_mono();
//! assert_eq!(mono.channel(0).to_vec(), vec![0.0, 0.5]);
//! assert_eq!(mono.duration_secs(), 2.0 / 44_100.0);
//! ```
//!
//! ## Design decisions
//! * Planar `(channels, samples)` storage, as `librosa.load(mono=False)` returns; mono
//!   downmix is the arithmetic mean of channels (librosa's `to_mono`).
//! * Samples are `f32` throughout: it is what decoders produce, what models consume,
//!   and what librosa uses by default (`dtype=np.float32`).
//! * Metadata is carried, not inferred: a [`TimeFrequency`] knows its hop and rate, so a
//!   frame index converts to seconds without the caller remembering the settings.

#![warn(missing_docs)]

pub mod alloc;
mod audio;
mod error;
pub mod npy;
pub mod rng;
#[cfg(feature = "testing")]
pub mod testing;
mod tf;

pub use audio::AudioBuffer;
pub use error::CoreError;
pub use rng::Rng;
pub use tf::{FrequencyScale, TfMeta, TimeFrequency, ValueKind};

/// Result type of this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
