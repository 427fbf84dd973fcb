//! The command-line arguments of `kefu sql` and `kefu query`, and the session flags
//! (`--memory-limit`, `--format`, `--cluster`, `--as-of` …) they share with the commands
//! that run queries, with their help text (the `cli` feature; the kefu binary parses
//! them and calls this crate).

use std::path::PathBuf;

use clap::Args;
use kefu_storage::cli::WarehouseArgs;

use crate::output::{Destination, TableStyle};
use crate::udf::WorkingCalendar;
use crate::{EngineOptions, Format, SqlError};

/// The Ballista cluster a command's queries run on (see `kefu cluster`); none: here.
#[derive(Debug, Clone, Args)]
pub struct OnCluster {
    /// Run the queries on a Ballista cluster: its scheduler's URL, df://HOST:PORT. They
    /// are planned here and executed by the cluster's executors (a job's ingest steps
    /// still run here).
    #[arg(long = "cluster", env = "KEFU_CLUSTER", value_name = "URL")]
    pub url: Option<String>,
    /// The cluster's TLS directory (`kefu cluster certs`), when its members take only
    /// TLS connections from holders of its certificate.
    #[arg(long = "cluster-tls", env = "KEFU_CLUSTER_TLS", value_name = "DIR")]
    pub tls: Option<PathBuf>,
    /// Seconds to wait for an executor to register with the cluster's scheduler before
    /// failing (a scheduler without executors would hold the queries for ever).
    #[arg(
        long = "cluster-wait",
        env = "KEFU_CLUSTER_WAIT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub wait_seconds: u64,
}

/// How a session runs and where its results go (shared by `sql` and `query`).
#[derive(Debug, Args)]
pub struct SessionArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Memory for query execution, e.g. 2GB or 512MiB: sorts, joins and aggregates
    /// spill to disk beyond it; a query that cannot fits fails with a clear error.
    #[arg(long, env = "KEFU_MEMORY_LIMIT", value_name = "SIZE")]
    pub memory_limit: Option<bytesize::ByteSize>,
    /// Working calendar (TOML: time_zone, hours, weekdays, holidays, workdays) for
    /// business_seconds(); default Monday–Friday 09:00–12:00, 13:00–18:00 on the
    /// warehouse's calendar.
    #[arg(long, env = "KEFU_CALENDAR", value_name = "FILE")]
    pub calendar: Option<PathBuf>,
    /// Result format: table, csv, tsv, json, ndjson, markdown, vertical (one block per
    /// row, for wide rows), parquet or xlsx (an Excel workbook: typed cells, dates as
    /// dates, the header frozen). Default: from the --output file's extension (.txt, .csv,
    /// .tsv, .json, .ndjson/.jsonl, .md, .parquet, .xlsx), else table. Tables, markdown,
    /// vertical and workbooks show fractions rounded (0.7859); csv, json and parquet keep
    /// every digit.
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Write results to this file instead of stdout (replaced whole when done).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Table format: rows shown at most (the row count still covers all).
    #[arg(long, default_value_t = 1000)]
    pub max_rows: usize,
    /// CSV for machines: write text cells as they are. By default a text cell starting
    /// with =, +, -, @, a tab or a carriage return gets a leading ' so that Excel shows it
    /// instead of running it as a formula.
    #[arg(long)]
    pub raw_csv: bool,
    /// CSV for Excel: start with a UTF-8 byte-order mark, without which Excel on Chinese
    /// Windows shows Chinese text as mojibake.
    #[arg(long)]
    pub bom: bool,
    #[command(flatten)]
    pub cluster: OnCluster,
    /// Read the warehouse as it was: after batch N (`kefu batch list` numbers them), or
    /// at a time (2026-12-01 is the end of that day, 2026-12-01 08:00, or RFC 3339).
    /// Files removed by `kefu vacuum` are gone for good: time travel reaches back as far
    /// as its retention period.
    #[arg(long, env = "KEFU_AS_OF", value_name = "BATCH|TIME", value_parser = kefu_storage::cli::parse_as_of)]
    pub as_of: Option<kefu_storage::AsOf>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

impl SessionArgs {
    /// The options of a session these arguments ask for (the working calendar loaded).
    pub fn engine_options(&self) -> Result<EngineOptions, SqlError> {
        Ok(EngineOptions {
            memory_limit: self.memory_limit.map(|b| b.as_u64() as usize),
            calendar: WorkingCalendar::load(self.calendar.as_deref())?,
            as_of: self.as_of.unwrap_or_default(),
            // The analyst's own files, beside the warehouse (a local session only).
            side_files: self.cluster.url.is_none(),
            ..EngineOptions::default()
        })
    }

    /// Where results go: `--output` in `--format` (or the format its name says), else
    /// stdout.
    pub fn destination(&self) -> Result<Destination, SqlError> {
        let style = TableStyle {
            width: None,
            max_rows: self.max_rows,
            raw_csv: self.raw_csv,
            bom: self.bom,
        };
        Destination::for_output(self.output.clone(), self.format, style)
    }
}

/// Run SQL over the warehouse: an interactive shell, or scripts with -e / -f.
///
/// Every table is registered: calls, tickets, callbacks, visits, customers and
/// _rejects, with the partition columns `month` (YYYY-MM, the warehouse's calendar) and, for
/// _rejects, `table`. Filters on event times, `month` and region prune files and row
/// groups. Functions beyond DataFusion's: local_date(ts), local_hour(ts),
/// local_weekday(ts) on the warehouse's calendar, and business_seconds(start, end)
/// under the working calendar (--calendar). The warehouse is read-only (INSERT, COPY,
/// DROP of its tables are refused); your own files join it: read_csv('targets.csv'),
/// read_parquet, read_json, SELECT … FROM 'file.csv', CREATE EXTERNAL TABLE and
/// CREATE VIEW over local files or object-store URLs, for this session (the server
/// refuses all of them). Without -e or -f, statements are read from stdin when it is
/// not a terminal, else the shell starts: Tab completes tables, columns, functions and
/// keywords; Ctrl-C cancels the running query and keeps the shell; history is saved
/// after every statement; ~/.kefurc runs first; \? or .help lists the commands
/// (\d/.tables, .schema, .mode/\x, .output, .timer).
///
/// Exit status: 0 success, 1 a statement failed (the error names it), 2 bad
/// arguments, 4 the warehouse or an output file could not be read or written.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu sql --warehouse wh\n  \
    kefu sql -e \"SELECT region, count(*) FROM calls GROUP BY region ORDER BY region\"\n  \
    kefu sql -f monthly.sql --format csv --output monthly.csv\n  \
    kefu sql --memory-limit 2GB -e \"SELECT customer_id, count(*) FROM calls GROUP BY 1 ORDER BY 2 DESC LIMIT 20\"")]
pub struct SqlArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Run these statements and exit (repeatable; several statements separated by ;).
    /// -c, as psql and DuckDB spell it, is the same.
    #[arg(long, short, short_alias = 'c', value_name = "SQL")]
    pub execute: Vec<String>,
    /// Run the statements of this file and exit.
    #[arg(long, short, value_name = "FILE")]
    pub file: Vec<PathBuf>,
    /// Print each statement's time on stderr (always on in the shell; \timing toggles).
    #[arg(long)]
    pub timing: bool,
    /// Start the shell even when stdin is not a terminal (statements are then read from
    /// it line by line, as typed).
    #[arg(long, short, conflicts_with_all = ["execute", "file"])]
    pub interactive: bool,
}

/// Run a named KPI query (the library in queries/, embedded in kefu).
///
/// Each query states its purpose, the KPI's formula, its output grain and its
/// parameters with defaults (see --list). Parameters are validated and typed (date,
/// int, float, text) before they reach SQL.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu query --list\n  \
    kefu query calls_kpis --param from=2026-01-01 --param to=2026-02-01 --param period=week\n  \
    kefu query calls_kpis --param region=beijing --format csv --output calls.csv\n  \
    kefu query calls_kpis --queries my-queries/ --show-sql")]
pub struct QueryArgs {
    /// The named query to run (see --list).
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// List the named queries with their parameters.
    #[arg(long)]
    pub list: bool,
    /// A parameter, NAME=VALUE (repeatable); unset ones take their defaults.
    #[arg(long = "param", short, value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Directory of .sql files that replace or add to the built-in queries.
    #[arg(long, env = "KEFU_QUERIES", value_name = "DIR")]
    pub queries: Option<PathBuf>,
    /// Print the query's SQL with the parameters filled in, and do not run it.
    #[arg(long)]
    pub show_sql: bool,
    #[command(flatten)]
    pub session: SessionArgs,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}
