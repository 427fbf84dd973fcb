//! `kefu sql` (ad hoc SQL: scripts and the interactive shell) and `kefu query` (named
//! queries): argument handling and terminal I/O over `kefu-sql`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use kefu_sql::output::{Destination, TableStyle, run_script};
use kefu_sql::udf::WorkingCalendar;
use kefu_sql::{Engine, EngineOptions, Format, QueryLibrary, SqlError};
use kefu_storage::{Warehouse, WarehouseLocation};

use crate::cli::WarehouseArgs;
use crate::exit::{CliResult, Failure};
use kefu_model::{Classify, ErrorKind};

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
    /// Run on a Ballista cluster: its scheduler's URL, df://HOST:PORT (see `kefu
    /// cluster`). The SQL is planned here and executed by the cluster's executors.
    #[arg(long, env = "KEFU_CLUSTER", value_name = "URL")]
    pub cluster: Option<String>,
    /// The cluster's TLS directory (`kefu cluster certs`), when its members take only
    /// TLS connections from holders of its certificate.
    #[arg(long, env = "KEFU_CLUSTER_TLS", value_name = "DIR")]
    pub cluster_tls: Option<PathBuf>,
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

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
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

/// A session over the existing warehouse at `location`, locally or on the cluster at
/// `cluster`.
pub(crate) fn open_engine_at(
    runtime: &tokio::runtime::Runtime,
    location: &WarehouseLocation,
    options: &EngineOptions,
    cluster: Option<&str>,
    cluster_tls: Option<&Path>,
) -> Result<Engine, Failure> {
    let warehouse = open_existing_warehouse(location)?;
    match cluster {
        None => runtime
            .block_on(Engine::open(&warehouse, options))
            .map_err(Failure::from),
        #[cfg(feature = "cluster")]
        Some(url) => {
            let tls = crate::cluster::load_tls(cluster_tls)?;
            runtime
                .block_on(kefu_cluster::open_engine(
                    &warehouse,
                    options,
                    url,
                    tls.as_ref(),
                ))
                .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))
        }
        #[cfg(not(feature = "cluster"))]
        Some(_) => {
            let _ = cluster_tls;
            Err(Failure::new(
                ErrorKind::Config,
                "this kefu was built without the `cluster` feature (Ballista)".to_string(),
            ))
        }
    }
}

/// The working calendar of `--calendar FILE`, or the default.
pub(crate) fn load_calendar(path: Option<&Path>) -> Result<WorkingCalendar, Failure> {
    let Some(path) = path else {
        return Ok(WorkingCalendar::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(ErrorKind::Config, format!("{}: {e}", path.display())))?;
    WorkingCalendar::from_toml(&text)
        .map_err(|e| Failure::new(ErrorKind::Config, format!("{}: {e}", path.display())))
}

fn open_engine(runtime: &tokio::runtime::Runtime, args: &SessionArgs) -> Result<Engine, Failure> {
    let options = EngineOptions {
        memory_limit: args.memory_limit.map(|b| b.as_u64() as usize),
        calendar: load_calendar(args.calendar.as_deref())?,
        as_of: args.as_of.unwrap_or_default(),
        // The analyst's own files, beside the warehouse (a local session only).
        side_files: args.cluster.is_none(),
        ..EngineOptions::default()
    };
    open_engine_at(
        runtime,
        &args.warehouse.warehouse,
        &options,
        args.cluster.as_deref(),
        args.cluster_tls.as_deref(),
    )
}

/// Where `kefu sql` and `kefu query` write: `--output` in `--format` (or the format its
/// name says), else stdout.
fn destination(args: &SessionArgs) -> Result<Destination, Failure> {
    let format = match (args.format, &args.output) {
        (Some(format), _) => format,
        (None, None) => Format::default(),
        (None, Some(path)) => Format::from_extension(&path.to_string_lossy()).ok_or_else(|| {
            Failure::new(
                ErrorKind::Config,
                format!(
                    "cannot tell a format from the name {}: give --format (table, csv, \
                     json, ndjson, parquet or xlsx) or end it in one of those",
                    path.display()
                ),
            )
        })?,
    };
    if format.is_binary() && args.output.is_none() && std::io::stdout().is_terminal() {
        return Err(Failure::new(
            ErrorKind::Config,
            format!("{format} is binary: write it to a file with --output result.{format}"),
        ));
    }
    let width = if args.output.is_none() && std::io::stdout().is_terminal() {
        kefu_sql::output::terminal_width()
    } else {
        None
    };
    let style = TableStyle {
        width,
        max_rows: args.max_rows,
        raw_csv: args.raw_csv,
        bom: args.bom,
    };
    Ok(Destination::to(args.output.clone(), format, style, false))
}

pub fn sql_command(args: &SqlArgs) -> CliResult {
    let runtime = runtime()?;
    let engine = open_engine(&runtime, &args.session)?;
    let destination = destination(&args.session)?;
    let mut scripts: Vec<(String, String)> = args
        .execute
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("-e #{}", i + 1), s.clone()))
        .collect();
    for path in &args.file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
        scripts.push((path.display().to_string(), text));
    }
    if scripts.is_empty() {
        if !args.interactive && !std::io::stdin().is_terminal() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::new(ErrorKind::Io, format!("stdin: {e}")))?;
            scripts.push(("stdin".into(), text));
        } else {
            // The shell prints to the terminal (--output applies to scripts).
            return Ok(runtime.block_on(kefu_sql::shell::run(&engine, &destination.on_stdout()))?);
        }
    }
    runtime.block_on(async {
        for (origin, script) in &scripts {
            run_script(&engine, script, &destination, |elapsed| {
                if args.timing {
                    eprintln!("Time: {:.3} s", elapsed.as_secs_f64());
                }
            })
            .await
            .map_err(|e| {
                Failure::new(
                    e.kind(),
                    format!("{origin}: {}", engine.explain(script, &e.to_string())),
                )
            })?;
        }
        Ok(())
    })
}

pub fn query_command(args: &QueryArgs) -> CliResult {
    let library = query_library(args.queries.as_deref())?;
    if args.list {
        let mut out = std::io::stdout().lock();
        for q in library.iter() {
            let _ = writeln!(out, "{q}");
        }
        return Ok(());
    }
    let name = args
        .name
        .as_deref()
        .expect("clap requires a name without --list");
    let query = library.get(name)?;
    let sql = query.render(&args.params)?;
    if args.show_sql {
        println!("{sql}");
        return Ok(());
    }
    let runtime = runtime()?;
    let engine = open_engine(&runtime, &args.session)?;
    let destination = destination(&args.session)?;
    runtime.block_on(async {
        let df = engine
            .sql(&sql)
            .await
            .map_err(|e| Failure::new(e.kind(), format!("query {name} ({}): {e}", query.origin)))?;
        destination.write(df).await?;
        Ok(())
    })
}
