use thiserror::Error;

/// Errors from embedding extraction, heads and fine-tuning.
#[derive(Debug, Error)]
pub enum TransferError {
    /// The pretrained model failed (loading, shapes, input).
    #[error(transparent)]
    Model(#[from] mirkit_models::ModelError),
    /// Data, training or metrics failed.
    #[error(transparent)]
    Train(#[from] mirkit_train::TrainError),
    /// A layer, loss or optimiser failed.
    #[error(transparent)]
    Nn(#[from] mirkit_nn::NnError),
    /// Candle failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Feature extraction failed.
    #[error(transparent)]
    Dsp(#[from] mirkit_dsp::DspError),
    /// Sizes that must agree do not (embedding width vs head, labels vs classes...).
    #[error("size mismatch: {what}: {got} vs {expected}")]
    Mismatch {
        /// what was compared
        what: String,
        /// size found
        got: usize,
        /// size required
        expected: usize,
    },
    /// A parameter outside its valid range or an unknown name.
    #[error("invalid {name} = {value}: {why}")]
    Invalid {
        /// parameter
        name: String,
        /// value
        value: String,
        /// requirement
        why: String,
    },
    /// A saved head that cannot be used.
    #[error("{file}: {why}")]
    Head {
        /// the file
        file: String,
        /// problem
        why: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = TransferError> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &str, value: impl std::fmt::Display, why: &str) -> TransferError {
    TransferError::Invalid {
        name: name.into(),
        value: value.to_string(),
        why: why.into(),
    }
}
