use thiserror::Error;

/// Errors from the layers, losses and optimisers.
#[derive(Debug, Error)]
pub enum NnError {
    /// An error raised by Candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A parameter outside its valid range.
    #[error("invalid parameter {name} = {value}: {why}")]
    InvalidParameter {
        /// name
        name: &'static str,
        /// value
        value: String,
        /// requirement
        why: String,
    },
    /// An input of the wrong rank or size.
    #[error("input shape {got:?}: {why}")]
    Shape {
        /// shape received
        got: Vec<usize>,
        /// what was expected
        why: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = NnError> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &'static str, value: impl ToString, why: impl Into<String>) -> NnError {
    NnError::InvalidParameter {
        name,
        value: value.to_string(),
        why: why.into(),
    }
}
