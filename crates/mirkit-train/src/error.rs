use thiserror::Error;

/// Errors from data sets, training, checkpoints and metrics.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// the file
        path: String,
        /// the cause, part of the message (not returned again by `source()`, so an
        /// error chain printed by anyhow/eyre does not repeat it)
        cause: std::io::Error,
    },
    /// A label or manifest file is malformed.
    #[error("{file}:{line}: {why}")]
    Parse {
        /// the file
        file: String,
        /// 1-based line number
        line: usize,
        /// problem
        why: String,
    },
    /// A label that is not one of the data set's classes.
    #[error("{file}:{line}: unknown class {class:?} (known: {known})")]
    UnknownClass {
        /// the file
        file: String,
        /// 1-based line number
        line: usize,
        /// the label
        class: String,
        /// the known classes, comma-separated
        known: String,
    },
    /// A split has no (readable) items.
    #[error("split {split:?} is empty{why}")]
    EmptySplit {
        /// split name
        split: String,
        /// extra detail
        why: String,
    },
    /// Sizes that must agree do not (head vs. tag set, predictions vs. labels...).
    #[error("size mismatch: {what}: {got} vs {expected}")]
    Mismatch {
        /// what was compared
        what: String,
        /// size found
        got: usize,
        /// size required
        expected: usize,
    },
    /// A parameter outside its valid range.
    #[error("invalid {name} = {value}: {why}")]
    Invalid {
        /// parameter
        name: String,
        /// value given
        value: String,
        /// what is required
        why: String,
    },
    /// A metric that is undefined on the given labels (e.g. ROC-AUC of a tag with no
    /// positives).
    #[error("metric {metric} undefined for {what}: {why}")]
    Undefined {
        /// metric
        metric: String,
        /// the tag or class
        what: String,
        /// why
        why: String,
    },
    /// A checkpoint that cannot be used.
    #[error("checkpoint {file}: {why}")]
    Checkpoint {
        /// the file
        file: String,
        /// problem
        why: String,
    },
    /// Training was stopped on request (the last checkpoint is intact).
    #[error("training interrupted after {steps} step(s) of epoch {epoch}")]
    Interrupted {
        /// epoch (0-based) that was running
        epoch: usize,
        /// steps done in it
        steps: usize,
    },
    /// Non-finite loss.
    #[error("loss became {value} at epoch {epoch}, step {step}")]
    Diverged {
        /// epoch
        epoch: usize,
        /// step
        step: usize,
        /// the loss
        value: f64,
    },
    /// Audio decoding failed.
    #[error(transparent)]
    Audio(#[from] mirkit_io::IoError),
    /// Feature extraction failed.
    #[error(transparent)]
    Dsp(#[from] mirkit_dsp::DspError),
    /// Augmentation failed.
    #[error(transparent)]
    Augment(#[from] mirkit_augment::AugmentError),
    /// A layer, loss or optimiser failed.
    #[error(transparent)]
    Nn(#[from] mirkit_nn::NnError),
    /// Candle failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// npy reading/writing failed.
    #[error(transparent)]
    Core(#[from] mirkit_core::CoreError),
}

/// Result type of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &str, value: impl std::fmt::Display, why: &str) -> TrainError {
    TrainError::Invalid {
        name: name.into(),
        value: value.to_string(),
        why: why.into(),
    }
}

pub(crate) fn io_err(path: &std::path::Path, source: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.display().to_string(),
        cause: source,
    }
}
