use thiserror::Error;

/// Errors from loading or running a model.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Candle failed (shapes inside the network, I/O of safetensors...).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A layer helper failed.
    #[error(transparent)]
    Nn(#[from] mirkit_nn::NnError),
    /// Feature extraction failed.
    #[error(transparent)]
    Dsp(#[from] mirkit_dsp::DspError),
    /// A weights file lacks a tensor the model needs.
    #[error("{file}: missing tensor {name}")]
    MissingTensor {
        /// weights file
        file: String,
        /// tensor name
        name: String,
    },
    /// A tensor has the wrong shape.
    #[error("{file}: tensor {name} has shape {got:?}, expected {expected:?}")]
    WrongShape {
        /// weights file
        file: String,
        /// tensor name
        name: String,
        /// shape found
        got: Vec<usize>,
        /// shape required
        expected: Vec<usize>,
    },
    /// A weights file has tensors the model does not use.
    #[error("{file}: unexpected tensor(s) {names:?}")]
    UnexpectedTensors {
        /// weights file
        file: String,
        /// names
        names: Vec<String>,
    },
    /// Input of the wrong length, rank, or with NaN.
    #[error("bad input: {0}")]
    Input(String),
    /// Unreadable weights file or metadata.
    #[error("{file}: {why}")]
    Weights {
        /// weights file
        file: String,
        /// problem
        why: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
