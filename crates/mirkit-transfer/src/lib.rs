//! # mirkit-transfer — pretrained networks for new tasks
//!
//! Three ways to reuse a pretrained tagger (Choi et al. 2017; Won et al. 2020):
//! 1. **Embeddings** ([`embed`]): the penultimate layer, or every layer pooled and
//!    concatenated, averaged over the model's windows;
//! 2. **Heads on frozen embeddings** ([`heads`]): logistic regression, a small MLP,
//!    k-nearest neighbours — seconds to train;
//! 3. **Fine-tuning** ([`finetune`]): a new output layer, chosen layers frozen,
//!    separate learning rates, trained with mirkit-train's loop; the result is a tagger
//!    file `mirkit tag` loads.
//!
//! ```no_run
//! use mirkit_models::registry;
//! use mirkit_train::{audio::AudioSet, data::{CsvOptions, Dataset}};
//! use mirkit_transfer::{embed::{extract, Layers}, heads::{Head, HeadConfig}};
//! let ds = Dataset::csv_manifest("ballroom8/metadata.csv", &CsvOptions::default())?; // path,label,split
//! let model = registry::load_pretrained("musicnn-mtt")?; // or any registry model
//! let labels = |s: &AudioSet| s.items.iter().map(|i| i.labels.clone()).collect::<Vec<_>>();
//! let train = AudioSet::load(&ds.split("train")?, 16_000, None)?;
//! let x = extract(&model, &train, Layers::All)?;
//! let head = Head::fit(&x, &labels(&train), None, &ds.classes, ds.task, &HeadConfig::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Design decisions
//! * Embeddings follow each model's own windowing (Won 2020: non-overlapping windows,
//!   short files zero-padded; musicnn 0.1.0: 187-frame patches of the track's log-mel,
//!   short files repeat-padded) and are averaged per track, so a track's embedding is the one
//!   `mirkit embed` writes.
//! * Heads standardise features with training statistics stored in the head file, so a
//!   saved head is usable alone.
//! * Fine-tuning (Won 2020 models) keeps the original tensor names: the fine-tuned file is a regular
//!   Won 2020 tagger with a new tag list (and `arch` in its metadata).

#![warn(missing_docs)]

pub mod embed;
mod error;
pub mod finetune;
pub mod heads;

pub use error::{Result, TransferError};
