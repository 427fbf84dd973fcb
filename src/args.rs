//! What several commands share: where the warehouse is, how a SQL session runs and where
//! its results go, the cluster to run on, the runtime, and the loading of the files they
//! name (profiles, working calendars, TLS directories).

use std::path::{Path, PathBuf};

use clap::Args;
use kefu_model::ErrorKind;
use kefu_sql::output::{Destination, TableStyle};
use kefu_sql::udf::WorkingCalendar;
use kefu_sql::{Engine, EngineOptions, Format, QueryLibrary, SqlError};
use kefu_storage::{Warehouse, WarehouseLocation};

use crate::exit::Failure;

/// Where the warehouse lives: every command that reads or writes one takes this.
///
/// A local directory (the embedded default; no server needed) or an object-store URL
/// (`file:///abs/path`, `s3://bucket/prefix`).
#[derive(Debug, Clone, Args)]
pub struct WarehouseArgs {
    /// Warehouse location: a directory or an object-store URL (file://, s3://).
    #[arg(
        long,
        env = "KEFU_WAREHOUSE",
        default_value = kefu_storage::DEFAULT_WAREHOUSE,
        value_name = "DIR_OR_URL"
    )]
    pub warehouse: WarehouseLocation,
}

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
    #[arg(long, env = "KEFU_AS_OF", value_name = "BATCH|TIME", value_parser = parse_as_of)]
    pub as_of: Option<kefu_storage::AsOf>,
}

pub(crate) fn parse_as_of(s: &str) -> Result<kefu_storage::AsOf, String> {
    s.parse()
}

pub(crate) fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(kefu_sql::QUERY_THREAD_STACK)
        .build()
        .map_err(|e| Failure::new(ErrorKind::Failure, format!("cannot start the runtime: {e}")))
}

/// The embedded query library, overridden by the `.sql` files of `dir`.
pub(crate) fn query_library(dir: Option<&Path>) -> Result<QueryLibrary, SqlError> {
    let library = QueryLibrary::embedded()?;
    match dir {
        Some(dir) => library.with_overrides(dir),
        None => Ok(library),
    }
}

/// The warehouse at `location`, which must exist.
pub(crate) fn open_existing_warehouse(location: &WarehouseLocation) -> Result<Warehouse, Failure> {
    Ok(Warehouse::open_existing(location)?)
}

impl OnCluster {
    /// How to open sessions on the cluster (`None` without `--cluster`): the one way
    /// `kefu sql`, `query`, `report` and `run` reach a cluster.
    pub(crate) fn opener(&self) -> Result<Option<kefu_jobs::run::EngineOpener>, Failure> {
        let Some(url) = self.url.clone() else {
            return Ok(None);
        };
        #[cfg(feature = "cluster")]
        {
            let tls = load_tls(self.tls.as_deref())?;
            kefu_cluster::scheduler_address(&url)
                .map_err(|e| Failure::new(ErrorKind::Config, e))?;
            Ok(Some(kefu_jobs::run::EngineOpener(std::sync::Arc::new(
                move |warehouse, options| {
                    let (url, tls) = (url.clone(), tls.clone());
                    Box::pin(async move {
                        kefu_cluster::open_engine(&warehouse, &options, &url, tls.as_ref())
                            .await
                            .map_err(|e| e.to_string())
                    })
                },
            ))))
        }
        #[cfg(not(feature = "cluster"))]
        {
            let _ = (url, &self.tls);
            Err(Failure::new(
                ErrorKind::Config,
                "this kefu was built without the `cluster` feature (Ballista)",
            ))
        }
    }
}

/// A session over the existing warehouse at `location`, locally or on the cluster at
/// `cluster`.
pub(crate) fn open_engine_at(
    runtime: &tokio::runtime::Runtime,
    location: &WarehouseLocation,
    options: &EngineOptions,
    cluster: &OnCluster,
) -> Result<Engine, Failure> {
    let warehouse = open_existing_warehouse(location)?;
    match cluster.opener()? {
        None => Ok(runtime.block_on(Engine::open(&warehouse, options))?),
        Some(opener) => runtime
            .block_on((opener.0)(warehouse, options.clone()))
            .map_err(|e| Failure::new(ErrorKind::Config, e)),
    }
}

pub(crate) fn open_engine(
    runtime: &tokio::runtime::Runtime,
    args: &SessionArgs,
) -> Result<Engine, Failure> {
    let options = EngineOptions {
        memory_limit: args.memory_limit.map(|b| b.as_u64() as usize),
        calendar: WorkingCalendar::load(args.calendar.as_deref())?,
        as_of: args.as_of.unwrap_or_default(),
        // The analyst's own files, beside the warehouse (a local session only).
        side_files: args.cluster.url.is_none(),
        ..EngineOptions::default()
    };
    open_engine_at(runtime, &args.warehouse.warehouse, &options, &args.cluster)
}

/// Where `kefu sql` and `kefu query` write: `--output` in `--format` (or the format its
/// name says), else stdout.
pub(crate) fn destination(args: &SessionArgs) -> Result<Destination, SqlError> {
    let style = TableStyle {
        width: None,
        max_rows: args.max_rows,
        raw_csv: args.raw_csv,
        bom: args.bom,
    };
    Destination::for_output(args.output.clone(), args.format, style)
}

/// The cluster's TLS directory, loaded (`None` without one).
#[cfg(feature = "cluster")]
pub(crate) fn load_tls(
    dir: Option<&Path>,
) -> Result<Option<kefu_cluster::tls::ClusterTls>, Failure> {
    dir.map(kefu_cluster::tls::ClusterTls::load)
        .transpose()
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))
}

/// The warehouse locked for writing (local), with any interrupted operation finished.
pub(crate) fn open_for_writing(
    args: &WarehouseArgs,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Warehouse, Option<kefu_storage::warehouse::WriterLock>), Failure> {
    let warehouse = open_existing_warehouse(&args.warehouse)?;
    let lock = warehouse
        .lock(|| eprintln!("kefu: another writer is working on the warehouse; waiting for it"))?;
    let recovery = runtime.block_on(warehouse.recover())?;
    for seq in recovery.completed {
        eprintln!("kefu: finished committing operation {seq}, which an earlier run began");
    }
    Ok((warehouse, lock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The convention every warehouse command shares: flag, env var, default, validation.
    #[test]
    fn warehouse_argument_convention() {
        #[derive(Debug, Parser)]
        struct Probe {
            #[command(flatten)]
            wh: WarehouseArgs,
        }
        let default = Probe::try_parse_from(["probe"]).unwrap();
        assert!(
            default
                .wh
                .warehouse
                .url()
                .as_str()
                .ends_with("/kefu-warehouse/")
        );
        let s3 = Probe::try_parse_from(["probe", "--warehouse", "s3://b/p"]).unwrap();
        assert_eq!(s3.wh.warehouse.url().as_str(), "s3://b/p/");
        let err = Probe::try_parse_from(["probe", "--warehouse", "ftp://x/y"]).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }
}
