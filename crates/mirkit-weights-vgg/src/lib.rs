//! # mirkit-weights-vgg — musicnn 0.1.0's VGG baseline taggers as bytes
//!
//! The VGG models of musicnn 0.1.0 (Pons & Serra 2019, ISC licence; see `LICENSE`),
//! converted from the PyPI wheel's TensorFlow checkpoints by `tools/convert_musicnn.py`
//! in the mirkit repository (TensorFlow names and layouts kept, tag list in the
//! safetensors metadata). This crate only holds the bytes; `mirkit-models` reads them
//! (its `registry`, behind its default `pretrained` feature).
//!
//! ```
//! let n = u64::from_le_bytes(mirkit_weights_vgg::VGG_MTT[..8].try_into().unwrap());
//! assert!(n > 0 && (n as usize) < mirkit_weights_vgg::VGG_MTT.len());
//! ```
//!
//! ## Design decisions
//! * One crate per group of weights keeps each package under crates.io's 10 MB limit and
//!   lets a binary link only what it needs.

#![no_std]
#![warn(missing_docs)]

/// `vgg-mtt`: the VGG baseline trained on MagnaTagATune's top-50 tags.
pub const VGG_MTT: &[u8] = include_bytes!("../weights/vgg-mtt.safetensors");
/// `vgg-msd`: the VGG baseline trained on the Million Song Dataset's top-50 tags.
pub const VGG_MSD: &[u8] = include_bytes!("../weights/vgg-msd.safetensors");
