//! # mirkit-models — the music-tagging model zoo on Candle
//!
//! Architectures of the review with their reference implementations' parameter names, so
//! converted PyTorch weights load unchanged, and the front ends they were trained with.
//! So far: Won et al. 2020's **FCN** (5-layer, Choi et al. 2016) and **CRNN** (Choi et
//! al. 2017, 2-layer GRU), with their torchaudio front end, loading the authors'
//! MagnaTagATune weights (converted by `tools/convert_won2020.py`) and reproducing the
//! original PyTorch outputs within 1e-4 (`tests/won2020.rs`).
//!
//! ```no_run
//! use mirkit_models::won2020::{Won2020, Arch};
//! let m = Won2020::load(Arch::Fcn, "weights/won2020/mtat/fcn.safetensors")?;
//! let audio = vec![0.0f32; m.input_len()];               // 29 s at 16 kHz
//! let scores = m.tag(&audio)?;                          // sigmoid scores, one per tag
//! println!("{:?}", m.top_k(&scores, 5));
//! # Ok::<(), mirkit_models::ModelError>(())
//! ```
//!
//! ## Design decisions
//! * The front end is computed with mirkit-dsp (torchaudio-compatible STFT), then the
//!   model's own saved mel filterbank (`spec.mel_scale.fb`) is applied, so the features
//!   are exactly those the network was trained on.
//! * Layers come from candle-nn where they are right (conv, batch norm in eval, linear,
//!   GRU cells via mirkit-nn) and from mirkit-nn where Candle's are not (max pooling).
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
pub mod short_chunk;
pub mod won2020;

pub use error::{ModelError, Result};
