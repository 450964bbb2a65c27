//! # mirkit-weights-won2020-msd — Won et al. 2020's Million Song Dataset taggers as bytes
//!
//! The pretrained models of "Evaluation of CNN-based automatic music tagging models"
//! (Won, Ferraro, Bogdanov, Serra; SMC 2020; MIT licence, Music Technology Group,
//! Universitat Pompeu Fabra — see `LICENSE`) trained on Million Song Dataset's top-50 tags,
//! converted from the authors' PyTorch state dicts by `tools/convert_won2020.py` in the
//! mirkit repository (state-dict names kept, tag list in the safetensors metadata). This
//! crate only holds the bytes; `mirkit-models` reads them (its `registry`, behind its
//! default `pretrained` feature).
//!
//! ```
//! let n = u64::from_le_bytes(mirkit_weights_won2020_msd::FCN[..8].try_into().unwrap());
//! assert!(n > 0 && (n as usize) < mirkit_weights_won2020_msd::FCN.len());
//! ```
//!
//! ## Design decisions
//! * One crate per data set keeps each package under crates.io's 10 MB limit and lets a
//!   binary link only what it needs.

#![no_std]
#![warn(missing_docs)]

/// FCN-5 (29 s windows).
pub const FCN: &[u8] = include_bytes!("../weights/fcn.safetensors");
/// CRNN (29 s windows).
pub const CRNN: &[u8] = include_bytes!("../weights/crnn.safetensors");
