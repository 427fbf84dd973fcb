//! Scheduled batch jobs: what data teams run every night and every month.
//!
//! A job file ([`job`]) names a warehouse and steps: ingest sources, run named or inline
//! queries whose parameters are date expressions on the run date
//! ([`kefu_model::calendar`]), write their
//! results (Parquet, CSV, JSON; one file or one per period; local or object store), and
//! build the monthly report. [`run::run`] executes a job incrementally: a period is
//! recomputed only when the warehouse files it depends on changed (the ledger says which
//! batch wrote what), outputs are replaced atomically, a lock keeps two runs of one job
//! apart, and a JSON run report is written beside the outputs. [`schedule`] runs jobs on
//! their cron expressions, catching up a missed run once.

pub mod demo;
pub mod job;
pub mod run;
pub mod schedule;
mod state;

use std::path::PathBuf;

pub use job::Job;
pub use run::{RunOptions, RunReport, RunStatus, StepStatus, run};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job file is not valid; `line` is where.
    #[error("{}:{line}: {message}", path.display())]
    Config {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    /// Another run of the same job holds its lock.
    #[error("job {job} is already running ({holder}); runs of one job never overlap")]
    Locked { job: String, holder: String },
    #[error("{0}")]
    Run(String),
    #[error(transparent)]
    Generate(#[from] kefu_gen::GenError),
    #[error(transparent)]
    Ingest(#[from] kefu_ingest::IngestError),
    #[error(transparent)]
    Storage(#[from] kefu_storage::StorageError),
}

impl kefu_model::Classify for JobError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            JobError::Config { .. } => ErrorKind::Config,
            JobError::Io { .. } => ErrorKind::Io,
            JobError::Locked { .. } => ErrorKind::Locked,
            JobError::Run(_) => ErrorKind::Failure,
            JobError::Generate(e) => e.kind(),
            JobError::Ingest(e) => e.kind(),
            JobError::Storage(e) => e.kind(),
        }
    }
}

impl JobError {
    pub(crate) fn io(path: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        JobError::Io {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }
}
