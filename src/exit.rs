//! Exit codes: one per kind of failure, so schedulers can tell them apart. Library
//! errors say their [`ErrorKind`]; this is the one place kinds become codes.

use kefu_model::{Classify, ErrorKind};

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
/// Bad arguments or configuration (clap also uses 2 for usage errors).
pub const BAD_CONFIG: u8 = 2;
/// Some records were (or would be) rejected.
pub const REJECTS: u8 = 3;
/// Reading or writing files failed.
pub const IO: u8 = 4;
/// Some steps of a job failed, others succeeded; or deliveries a step requires (or
/// `kefu status --deliveries` looks at) have not arrived.
pub const PARTIAL: u8 = 5;
/// Another run of the same job is in progress.
pub const LOCKED: u8 = 6;
/// Nothing to report: the warehouse holds no events in the period asked for.
pub const NO_DATA: u8 = 7;

/// The exit code of a kind of failure.
pub fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Failure => FAILURE,
        ErrorKind::Config => BAD_CONFIG,
        ErrorKind::Rejects => REJECTS,
        ErrorKind::Io => IO,
        ErrorKind::Incomplete => PARTIAL,
        ErrorKind::Locked => LOCKED,
        ErrorKind::NoData => NO_DATA,
    }
}

/// Why a command failed: its kind (the exit code) and the message for stderr.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl std::fmt::Display) -> Self {
        Failure {
            kind,
            message: message.to_string(),
        }
    }

    /// The same failure, its message led by `context` (`--until: …`).
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        Failure {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }

    pub fn code(&self) -> u8 {
        code(self.kind)
    }
}

impl<E: Classify> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::new(error.kind(), error)
    }
}

/// What every command returns.
pub type CliResult<T = ()> = Result<T, Failure>;
