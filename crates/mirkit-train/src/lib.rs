//! # mirkit-train — data sets, the training loop and metrics
//!
//! Train any mirkit model on a labelled collection: data-set loaders (folder per class,
//! CSV manifests, MagnaTagATune, GTZAN, MTG-Jamendo), audio decoded once and cached,
//! seeded random chunks with on-the-fly augmentation from a background loader, the
//! training loop with checkpoints that resume to the same result, and scikit-learn-exact
//! metrics.
//!
//! ```no_run
//! use mirkit_train::data::{CsvOptions, Dataset};
//! use mirkit_train::audio::AudioSet;
//! // a CSV manifest `path,label,split` (ballroom8's layout; `toy::write_toy_set` makes one)
//! let ds = Dataset::csv_manifest("ballroom8/metadata.csv", &CsvOptions::default())?;
//! let train = AudioSet::load(&ds.split("train")?, 16_000, None)?;
//! println!("{} clips, {} skipped, classes {:?}", train.len(), train.skipped.len(), ds.classes);
//! # Ok::<(), mirkit_train::TrainError>(())
//! ```
//!
//! ## Design decisions
//! * A model is anything implementing [`trainer::Trainable`] (audio chunk → input,
//!   input → logits, a `VarMap`, parameter groups): the zoo's models and fine-tuned
//!   pretrained networks use the same loop.
//! * Randomness comes from `(seed, epoch, item)` alone (mirkit-core's xoshiro256**), not
//!   from a generator's history, so a resumed run draws exactly what an uninterrupted
//!   run would; the checkpoint is one safetensors file (weights, optimiser moments, loop
//!   state in its metadata) renamed into place, so there is no moment at which a kill
//!   leaves a half-written or inconsistent checkpoint.
//! * The loader is one background thread per epoch (features computed in parallel with
//!   rayon inside a batch) feeding a bounded channel; results do not depend on thread
//!   count.
//! * Audio is decoded once per file at the model's rate; `AudioSet::load` can keep the
//!   decoded waveforms as `.npy` so later runs skip decoding. Waveforms, not features,
//!   are cached so augmentation can run on audio.
//! * Metrics follow scikit-learn's definitions exactly (average precision, not the
//!   trapezoidal PR area), tested to 1e-9 against its output.
//! * Regression networks learn standardised targets: the model carries the training
//!   split's [`data::TargetScaling`] ([`trainer::Trainable::target_scaling`]), the loop
//!   standardises each batch's values and `predict` restores the outputs, and the scaling
//!   is saved in the model file, so learning rates, weight decay and a Huber δ mean the
//!   same for any target's units.

#![warn(missing_docs)]

pub mod audio;
pub mod ckpt;
pub mod data;
mod error;
pub mod metrics;
pub mod toy;
pub mod trainer;
pub mod zoo;

pub use error::{Result, TrainError};
