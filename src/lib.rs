//! # mirkit — music information retrieval in Rust
//!
//! The facade of the mirkit workspace: it re-exports the crates under short names and
//! holds the file-level pipelines the `mirkit` command line uses: streamed features to
//! `.npy` ([`pipeline`]), tagging and embedding of files ([`tagger`]), embedding indexes
//! and similarity search ([`index`]), thumbnails ([`thumbnail`]), and the command's
//! one-thread setting ([`threads`]).
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
pub mod threads;
pub mod thumbnail;

pub use tagger::{TagResult, Tagger};

/// Errors of the facade: each crate's error with its source kept, or one naming the file
/// being processed. `?` converts every crate's error into it.
///
/// The message is complete on its own (`{e}` names the file, what failed and the
/// system's reason), and `source()` returns only causes the message does not already
/// spell out, so a chain printed by anyhow or eyre never repeats a line.
///
/// ```
/// fn features(path: &str) -> mirkit::Result<usize> {
///     let y = mirkit::io::load(path, &Default::default())?; // mirkit_io::IoError
///     let fx = mirkit::dsp::FeatureExtractor::new(mirkit::dsp::FeatureConfig::librosa())?; // DspError
///     Ok(fx.compute(y.samples())?.n_frames())
/// }
/// let e = features("no-such-file.wav").unwrap_err();
/// assert!(e.to_string().starts_with("no-such-file.wav: cannot read: No such file"));
/// assert!(matches!(e, mirkit::Error::Audio(mirkit::io::IoError::Open { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Decoding, resampling or writing audio (mirkit-io's error; `Io` variants elsewhere
    /// in the workspace mean a plain file-system error on a path).
    #[error(transparent)]
    Audio(#[from] mirkit_io::IoError),
    /// Feature extraction on a file.
    #[error("{path}: {cause}")]
    Dsp {
        /// the file being processed
        path: String,
        /// the cause, part of the message (not returned again by `source()`, so an
        /// error chain printed by anyhow/eyre does not repeat it)
        cause: mirkit_dsp::DspError,
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
    #[error("{path}: {cause}")]
    ModelOnFile {
        /// the file being processed
        path: String,
        /// the cause, part of the message (not returned again by `source()`, so an
        /// error chain printed by anyhow/eyre does not repeat it)
        cause: mirkit_models::ModelError,
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

#[cfg(test)]
mod tests {
    /// Every message of an error chain adds something: no cause's text is repeated by
    /// the message above it (what anyhow/eyre print as "Caused by:").
    fn assert_no_repeats(e: &(dyn std::error::Error + 'static)) -> String {
        let top = e.to_string();
        let mut above = top.clone();
        let mut src = e.source();
        while let Some(c) = src {
            let t = c.to_string();
            assert!(!above.contains(&t), "{above:?} repeats its cause {t:?}");
            above = t;
            src = c.source();
        }
        top
    }

    #[test]
    fn error_chains_do_not_repeat_their_causes() {
        fn load_missing() -> crate::Result<()> {
            // `?` from mirkit-io's error into the facade's
            mirkit_io::load("no-such-file.wav", &Default::default())?;
            Ok(())
        }
        let e = load_missing().unwrap_err();
        let text = assert_no_repeats(&e);
        // the whole story in the message itself: file, what failed, the system's reason
        assert!(text.contains("no-such-file.wav") && text.contains("cannot read"));
        assert!(text.contains("No such file"), "{text}");
        fn npy_missing() -> crate::Result<()> {
            mirkit_core::npy::read("no-such-file.npy")?;
            Ok(())
        }
        assert!(assert_no_repeats(&npy_missing().unwrap_err()).contains("no-such-file.npy"));
        let tagger = crate::Tagger::default().unwrap();
        let e = tagger.tag_file("no-such-file.ogg").unwrap_err();
        assert!(assert_no_repeats(&e).contains("no-such-file.ogg"));
        let e = crate::Tagger::new("no-such-model").err().unwrap();
        assert_no_repeats(&e);
        fn dsp() -> crate::Result<()> {
            let mut cfg = mirkit_dsp::FeatureConfig::librosa();
            cfg.stft.n_fft = 0;
            mirkit_dsp::FeatureExtractor::new(cfg)?;
            Ok(())
        }
        assert_no_repeats(&dsp().unwrap_err());
    }
}
