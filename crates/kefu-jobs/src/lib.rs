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

#[cfg(feature = "cli")]
pub mod cli;
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
    /// A file or directory of the job cannot be read or written; `source` is the file
    /// system's error (or, where none, what is wrong).
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: kefu_model::BoxError,
    },
    /// Another run of the same job holds its lock.
    #[error("job {job} is already running ({holder}); runs of one job never overlap")]
    Locked { job: String, holder: String },
    /// The job's warehouse cannot be opened or its calendar read (a step failing does
    /// not fail the run; this does, before any step).
    #[error("{source}")]
    Warehouse {
        #[source]
        source: kefu_storage::StorageError,
    },
    /// The run ran, but its report could not be written.
    #[error("writing the run report: {source}")]
    RunReport {
        #[source]
        source: kefu_storage::StorageError,
    },
    #[error(transparent)]
    Generate(#[from] kefu_gen::GenError),
    #[error(transparent)]
    Ingest(#[from] kefu_ingest::IngestError),
    #[error(transparent)]
    Storage(#[from] kefu_storage::StorageError),
}

/// Why a step of a run failed. The run records it in the step's report and goes on with
/// the next step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Ingest(#[from] kefu_ingest::IngestError),
    #[error(transparent)]
    Storage(#[from] kefu_storage::StorageError),
    #[error(transparent)]
    Sql(#[from] kefu_sql::SqlError),
    #[error(transparent)]
    Report(#[from] kefu_report::ReportError),
    #[error(transparent)]
    Planning(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    DateExpression(#[from] kefu_model::calendar::BadDateExpression),
    /// Saving the job's state.
    #[error(transparent)]
    State(#[from] JobError),
    /// A parameter, lookahead or day range of the step that does not hold at this run's
    /// date.
    #[error("{0}")]
    Parameter(String),
    /// The session opener `kefu run --cluster` gave failed (its error).
    #[error(transparent)]
    Session(kefu_model::BoxError),
    #[error("query {query}: {source}")]
    Plan {
        query: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("query {query} for {period}: {source}")]
    Query {
        query: String,
        period: String,
        #[source]
        source: kefu_sql::SqlError,
    },
    #[error("report {label}: {source}")]
    Build {
        label: String,
        #[source]
        source: kefu_report::ReportError,
    },
    /// A period's cached result cannot be read or written.
    #[error("{}: {source}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: kefu_model::BoxError,
    },
    #[error("partition needs dates for `from` and `to`")]
    PartitionNeedsDates,
    /// A query declared `-- period column:` but its rows run over several periods could
    /// not be told apart by it.
    #[error("query {query} for {span}: its period column '{column}' {reason}")]
    PeriodColumn {
        query: String,
        span: String,
        column: String,
        reason: String,
    },
    #[error(
        "requires_deliveries {from}..{to}: no office has delivered anything the schedule recognises (set [deliveries] regions and pattern)"
    )]
    NoDeliveriesRecognised {
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    },
    /// Deliveries the step requires have not arrived ("REGION DAY" each).
    #[error("not run: {} required deliveries have not arrived: {}", .missing.len(), run::first_of(.missing, 10))]
    MissingDeliveries { missing: Vec<String> },
}

impl kefu_model::Classify for StepError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            StepError::Ingest(e) => e.kind(),
            StepError::Storage(e) => e.kind(),
            StepError::Sql(e) | StepError::Query { source: e, .. } => e.kind(),
            StepError::Report(e) | StepError::Build { source: e, .. } => e.kind(),
            StepError::State(e) => e.kind(),
            StepError::DateExpression(_)
            | StepError::Parameter(_)
            | StepError::PartitionNeedsDates
            | StepError::PeriodColumn { .. } => ErrorKind::Config,
            StepError::Cache { .. } => ErrorKind::Io,
            StepError::NoDeliveriesRecognised { .. } | StepError::MissingDeliveries { .. } => {
                ErrorKind::Incomplete
            }
            StepError::Planning(_) | StepError::Session(_) | StepError::Plan { .. } => {
                ErrorKind::Failure
            }
        }
    }
}

impl kefu_model::Classify for JobError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            JobError::Config { .. } => ErrorKind::Config,
            JobError::Io { .. } => ErrorKind::Io,
            JobError::Locked { .. } => ErrorKind::Locked,
            JobError::Warehouse { .. } | JobError::RunReport { .. } => ErrorKind::Failure,
            JobError::Generate(e) => e.kind(),
            JobError::Ingest(e) => e.kind(),
            JobError::Storage(e) => e.kind(),
        }
    }
}

impl JobError {
    pub(crate) fn io(
        path: impl std::fmt::Display,
        source: impl Into<kefu_model::BoxError>,
    ) -> Self {
        JobError::Io {
            path: path.to_string(),
            source: source.into(),
        }
    }
}
