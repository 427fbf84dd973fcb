//! The kinds of failure kefu's callers act on. Every library error says which kind it is
//! ([`Classify::kind`]); the CLI maps kinds to exit codes, the server to HTTP statuses,
//! the jobs to a step's status, each in one place.

/// What a caller can do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad arguments, configuration, job file, profile or query text: fix them and retry.
    Config,
    /// Records were (or would be) rejected, or keys repeated, beyond what is allowed.
    Rejects,
    /// A file, the warehouse, the network or a server could not be read or written.
    Io,
    /// Something expected has not arrived (deliveries), or only part of the work was done.
    Incomplete,
    /// Another run holds the lock.
    Locked,
    /// Nothing to work on: no events in the period asked for.
    NoData,
    /// The work itself failed (a statement, a step, the runtime).
    Failure,
}

/// Another library's error kept as a variant's `#[source]` (the store's, the file
/// system's, a codec's), or a reason where there is none; as DataFusion's `GenericError`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error that knows its [`ErrorKind`].
pub trait Classify: std::error::Error {
    fn kind(&self) -> ErrorKind;
}
