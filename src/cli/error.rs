//! The binary's one error type: a usage error (exit status 2) or a failure (exit 1),
//! each printed as `error: …` with the library error's text.

use std::process::ExitCode;

/// What went wrong in a subcommand.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Options that cannot work together or values out of range: exit status 2.
    #[error("{0}")]
    Usage(String),
    /// Anything else, already worded for the user: exit status 1.
    #[error("{0}")]
    Failed(String),
    /// A library error (boxed: it is large and errors are rare): exit status 1.
    #[error(transparent)]
    Lib(Box<mirkit::Error>),
}

macro_rules! from_lib {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError::Lib(Box::new(e.into()))
            }
        }
    )*};
}
from_lib!(
    mirkit::Error,
    mirkit::io::IoError,
    mirkit::dsp::DspError,
    mirkit::core::CoreError,
    mirkit::models::ModelError,
    mirkit::augment::AugmentError,
    mirkit::train::TrainError,
    mirkit::transfer::TransferError
);

impl CliError {
    /// The exit status.
    pub fn code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// The result of a subcommand: its exit status (success, or failure when some files of
/// a folder failed), or an error.
pub type CliResult = Result<ExitCode, CliError>;

/// Exit status after a folder run: failure when any file failed.
pub fn status(failed: usize) -> ExitCode {
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::Failed(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> Self {
        CliError::Failed(s.to_string())
    }
}
