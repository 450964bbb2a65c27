//! # mirkit-models — the music-tagging model zoo on Candle
//!
//! Architectures of the review with their reference implementations' parameter names, so
//! converted weights load unchanged, and the front ends they were trained with:
//! * pretrained, compiled into [`registry`]: musicnn 0.1.0's musicnn and VGG taggers
//!   ([`musicnn`], TensorFlow checkpoints converted by `tools/convert_musicnn.py`; the
//!   default tagger `musicnn-mtt`) and Won et al. 2020's FCN, CRNN and Musicnn
//!   ([`won2020`]), each matching its original within 1e-5 (`tests/musicnn.rs`,
//!   `tests/won2020.rs`);
//! * trainable from scratch, matching PyTorch with random weights: SampleCNN and
//!   SampleCNN+SE ([`sample_cnn`]), ReSE-2-Multi ([`rese2`]), FCN-4 ([`fcn4`]), the 1-D CNN
//!   of Dieleman & Schrauwen ([`cnn1d`]), short-chunk CNN/ResNet ([`short_chunk`]);
//!   [`create`] builds any of them from a seed or loads them with every tensor checked.
//!
//! Every model returns named intermediate features (`features`, or
//! `embed_layers_window` for Won 2020) for transfer learning. The pretrained taggers are
//! one type, [`registry::Pretrained`], whose whole-signal methods all run through one
//! streaming window driver ([`windows`]); weight files are read and checked in
//! [`weights`], scores and embeddings compared with [`scores`].
//!
//! ```no_run
//! use mirkit_models::{registry, scores::top_k};
//! let m = registry::load_pretrained("musicnn-mtt")?;    // compiled in, no files
//! let audio = vec![0.0f32; 16_000 * 10];                // 10 s at 16 kHz
//! let scores = m.tag(&audio)?;                          // mean sigmoid score per tag
//! println!("{:?}", top_k(m.tags(), &scores, 5));
//! # Ok::<(), mirkit_models::ModelError>(())
//! ```
//!
//! ## Design decisions
//! * Front ends are computed with mirkit-dsp in each model's original arithmetic
//!   (torchaudio-compatible STFT plus the model's own saved filterbank for Won 2020;
//!   librosa's Slaney mel rounded to float16 for musicnn 0.1.0), so the features are
//!   exactly those the network was trained on.
//! * Layers come from candle-nn where they are right (2-D convolution, batch norm,
//!   linear) and from mirkit-nn where Candle's are not (max pooling, recurrent layers,
//!   and 1-D convolution, whose kernel gradient Candle 0.11.1 gets wrong).
//! * Converted weights keep their original names and layouts (PyTorch state dicts,
//!   TensorFlow variables); layouts are adapted at load time.
//! * Every loading problem — a missing, extra or mis-shaped tensor — is a typed
//!   [`ModelError`] naming the tensor.

#![warn(missing_docs)]

pub mod cnn1d;
pub mod create;
mod error;
pub mod fcn4;
pub mod musicnn;
pub mod registry;
pub mod rese2;
pub mod sample_cnn;
pub mod scores;
pub mod short_chunk;
pub mod vocabulary;
pub mod weights;
pub mod windows;
pub mod won2020;

pub use error::{ModelError, Result};

/// Pooled intermediate features of one window, named by layer, in network order (what
/// the `embed_layers_windows` methods return per window).
pub type NamedFeatures = Vec<(String, Vec<f32>)>;

/// A concatenated embedding and the `(layer name, dimensions)` of its consecutive parts.
pub type BlockEmbedding = (Vec<f32>, Vec<(String, usize)>);
