//! SQL over a kefu warehouse. [`Engine`] opens a DataFusion session with every table of
//! the warehouse registered at one consistent cut ([`snapshot`]: the files each Delta
//! table's log names at the cut's version; schemas from the model; memory bounded with
//! spilling), read-only for ad hoc SQL; [`output`] writes results as a
//! terminal table, CSV, JSON, NDJSON or Parquet; [`queries`] is the library of named,
//! parameterised KPI queries from `queries/`; [`udf`] adds the functions they need that
//! SQL lacks, such as business-time durations under a working calendar.

pub mod band_join;
pub mod by_key;
#[cfg(feature = "cli")]
pub mod cli;
pub mod describe;
pub mod destination;
pub mod engine;
pub mod last_next;
pub mod limits;
pub mod output;
pub mod percentiles;
pub mod queries;
pub mod rules;
pub mod shared_keys;
pub mod shell;
pub mod shift_window;
pub mod side_files;
pub mod snapshot;
pub mod udf;
pub mod xlsx;

pub use engine::{
    Engine, EngineOptions, QUERY_THREAD_STACK, SqlBounds, TableInfo, execute_cancellable,
    parse_bounded,
};
pub use output::Format;
pub use queries::{NamedQuery, QueryLibrary};

use datafusion::error::DataFusionError;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// A statement that would change something, refused by the read-only session.
    #[error("{statement}: refused, kefu sql is read-only ({reason}); write through `kefu ingest`")]
    ReadOnly { statement: String, reason: String },
    /// The query did not plan or failed while running.
    #[error("{0}")]
    DataFusion(DataFusionError),
    /// Execution needed more memory than `--memory-limit` allows.
    #[error(
        "the query needs more memory than --memory-limit allows and could not spill: {0}\n(raise --memory-limit, or narrow the query's date range or columns)"
    )]
    ResourcesExhausted(String),
    #[error("warehouse: {0}")]
    Warehouse(String),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("writing {format} output: {source}")]
    Output {
        format: String,
        #[source]
        source: kefu_model::BoxError,
    },
    #[error("query {query}: {reason}")]
    Query { query: String, reason: String },
    #[error("{file}: line {line}: {reason}")]
    QueryFile {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("unknown named query '{0}' (kefu query --list shows them)")]
    UnknownQuery(String),
    /// SQL text longer than the session allows.
    #[error("the SQL is {bytes} bytes long, more than the {limit} bytes allowed")]
    TooLong { bytes: usize, limit: usize },
    /// Expressions or subqueries nested deeper than the session allows.
    #[error(
        "the SQL has expressions or subqueries nested more than {limit} deep (e.g. a chain of more than {limit} ORs or +); use IN (…) for long lists of values"
    )]
    TooDeep { limit: usize },
    #[error("internal error: {0}")]
    Internal(String),
    /// An output file whose name says no format, and no format given.
    #[error(
        "cannot tell a format from the name {}: give --format (table, csv, json, ndjson, parquet or xlsx) or end it in one of those",
        path.display()
    )]
    UnknownOutputFormat { path: std::path::PathBuf },
    /// A binary format asked for on a terminal.
    #[error("{format} is binary: write it to a file with --output result.{format}")]
    BinaryToTerminal { format: Format },
    /// A working calendar (`--calendar`) that cannot be read or is not valid.
    #[error("{path}: {reason}")]
    Calendar { path: String, reason: String },
    #[error("cannot start the shell: {0}")]
    ShellStart(#[source] rustyline::error::ReadlineError),
    #[error("reading input: {0}")]
    Input(#[source] rustyline::error::ReadlineError),
}

impl kefu_model::Classify for SqlError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            SqlError::Io { .. }
            | SqlError::Output { .. }
            | SqlError::Warehouse(_)
            | SqlError::Input(_) => ErrorKind::Io,
            SqlError::QueryFile { .. }
            | SqlError::UnknownQuery(_)
            | SqlError::Query { .. }
            | SqlError::Calendar { .. }
            | SqlError::UnknownOutputFormat { .. }
            | SqlError::BinaryToTerminal { .. } => ErrorKind::Config,
            // kefu's own errors cross DataFusion as `External`: their kind is theirs (a
            // warehouse file that cannot be read is an I/O failure, not the query's).
            SqlError::DataFusion(e) => kind_within(e).unwrap_or(ErrorKind::Failure),
            SqlError::ReadOnly { .. }
            | SqlError::ResourcesExhausted(_)
            | SqlError::TooLong { .. }
            | SqlError::TooDeep { .. }
            | SqlError::Internal(_)
            | SqlError::ShellStart(_) => ErrorKind::Failure,
        }
    }
}

impl SqlError {
    /// Classifies a DataFusion error: refused writes and memory exhaustion get their own
    /// messages.
    pub fn from_planning(sql: &str, error: DataFusionError) -> Self {
        let text = error.to_string();
        let refused = [
            "DDL not supported",
            "DML not supported",
            "Statement not supported",
        ];
        if refused.iter().any(|r| text.contains(r)) {
            let statement = sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
            return SqlError::ReadOnly {
                statement,
                reason: text
                    .trim_start_matches("Error during planning: ")
                    .to_string(),
            };
        }
        SqlError::from(error)
    }
}

/// The kind of the first kefu error in `error`'s chain of sources (recovered by downcast
/// from DataFusion's `External`).
fn kind_within(error: &DataFusionError) -> Option<kefu_model::ErrorKind> {
    use kefu_model::Classify;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<kefu_storage::StorageError>() {
            return Some(e.kind());
        }
        if let Some(e) = e.downcast_ref::<SqlError>() {
            return Some(e.kind());
        }
        source = e.source();
    }
    None
}

impl From<DataFusionError> for SqlError {
    fn from(error: DataFusionError) -> Self {
        match error.find_root() {
            // The whole chain, not only the root: the contexts say which operator gave
            // up and in which phase (reading, spilling, merging its spills).
            DataFusionError::ResourcesExhausted(_) => {
                SqlError::ResourcesExhausted(error.to_string().replace("Resources exhausted: ", ""))
            }
            _ => SqlError::DataFusion(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_model::{Classify, ErrorKind};

    /// A warehouse error raised inside a query keeps its kind through DataFusion.
    #[test]
    fn kefu_errors_keep_their_kind_through_datafusion() {
        let unreadable = kefu_storage::StorageError::Io {
            location: "wh".into(),
            source: "file gone".into(),
        };
        let wrapped = DataFusionError::Context(
            "scanning calls".into(),
            Box::new(DataFusionError::External(Box::new(unreadable))),
        );
        let error = SqlError::from(wrapped);
        assert_eq!(error.kind(), ErrorKind::Io);
        assert!(error.to_string().contains("file gone"), "{error}");
        let plain = SqlError::from(DataFusionError::Plan("no such column".into()));
        assert_eq!(plain.kind(), ErrorKind::Failure);
    }
}
