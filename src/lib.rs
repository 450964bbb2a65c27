//! # mirkit — music information retrieval in Rust
//!
//! The facade of the mirkit workspace: it re-exports the crates under short names and
//! holds the file-level pipelines the `mirkit` command line uses: streamed features to
//! `.npy` ([`pipeline`]), tagging and embedding of files ([`tagger`]), embedding indexes
//! and similarity search ([`index`]), thumbnails ([`thumbnail`]).
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | mirkit-core | `AudioBuffer`, `TimeFrequency`, `.npy` |
//! | [`io`] | mirkit-io | decoding, resampling, streaming, WAV, PNG |
//! | [`dsp`] | mirkit-dsp | STFT, mel, dB, MFCC, presets |
//! | [`augment`] | mirkit-augment | time-stretch, pitch-shift, noise, filters, seeded chains |
//! | [`nn`] | mirkit-nn | Candle layers, losses, optimisers PyTorch-exact |
//! | [`models`] | mirkit-models | the zoo and twelve pretrained taggers (musicnn 0.1.0, Won et al. 2020) |
//! | [`train`] | mirkit-train | data sets, training loop, resumable checkpoints, metrics |
//! | [`transfer`] | mirkit-transfer | embeddings, heads on frozen features, fine-tuning |
//! | [`rosa`] | (facade) | librosa-shaped free functions: `load`, `stft`, `melspectrogram`, `mfcc`, `power_to_db`, `effects`, `write_wav` |
//!
//! ```no_run
//! use mirkit::dsp::{FeatureConfig, Preset};
//! // log-mel of a file with the Won et al. 2020 front end, streamed to .npy
//! let cfg = FeatureConfig::preset(Preset::Won2020);
//! mirkit::pipeline::features_to_npy("song.mp3", "song.npy", &cfg, &Default::default())?;
//! # Ok::<(), mirkit::Error>(())
//! ```
//!
//! ## Design decisions
//! * Data flow one way: io → dsp (→ augment → nn/models → train/transfer); the facade only
//!   composes them.
//! * File pipelines stream: memory does not grow with the length of the audio.

#![warn(missing_docs)]

/// Candle's core crate (`Tensor`, `Device`) as used by the models' signatures.
pub use candle_core as candle;
pub use mirkit_augment as augment;
pub use mirkit_core as core;
pub use mirkit_dsp as dsp;
pub use mirkit_io as io;
pub use mirkit_models as models;
pub use mirkit_nn as nn;
pub use mirkit_train as train;
pub use mirkit_transfer as transfer;
/// The ndarray version in mirkit's signatures (`TimeFrequency`, `.npy` arrays), so callers
/// need not pin the same one.
pub use ndarray;

pub mod index;
pub mod pipeline;
pub mod rosa;
pub mod tagger;
pub mod thumbnail;

pub use tagger::{TagResult, Tagger};

/// Errors of the facade: each crate's error with its source kept, or one naming the file
/// being processed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Decoding, resampling or writing audio (mirkit-io's error; `Io` variants elsewhere
    /// in the workspace mean a plain file-system error on a path).
    #[error(transparent)]
    Audio(#[from] mirkit_io::IoError),
    /// Feature extraction on a file.
    #[error("{path}: {source}")]
    Dsp {
        /// the file being processed
        path: String,
        /// the error
        #[source]
        source: mirkit_dsp::DspError,
    },
    /// Feature extraction (parameters, in-memory signals).
    #[error(transparent)]
    DspParams(#[from] mirkit_dsp::DspError),
    /// Shared types (npy writing...).
    #[error(transparent)]
    Core(#[from] mirkit_core::CoreError),
    /// Loading or running a model (an unknown name, a bad weights file, bad input).
    #[error(transparent)]
    Model(#[from] mirkit_models::ModelError),
    /// A model failed on a file.
    #[error("{path}: {source}")]
    ModelOnFile {
        /// the file being processed
        path: String,
        /// the error
        #[source]
        source: mirkit_models::ModelError,
    },
    /// Augmentation.
    #[error(transparent)]
    Augment(#[from] mirkit_augment::AugmentError),
    /// Data sets, training, checkpoints, metrics.
    #[error(transparent)]
    Train(#[from] mirkit_train::TrainError),
    /// Embeddings, heads, fine-tuning.
    #[error(transparent)]
    Transfer(#[from] mirkit_transfer::TransferError),
    /// A request that cannot be met (a query embedding of the wrong size, nothing that
    /// could be indexed).
    #[error("{0}")]
    Invalid(String),
    /// An embedding index that cannot be used (see [`index`]).
    #[error("{path}: {why}")]
    Index {
        /// the index folder or file
        path: String,
        /// the problem
        why: String,
    },
}

/// Result type of the facade.
pub type Result<T, E = Error> = std::result::Result<T, E>;
