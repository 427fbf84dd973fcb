//! `kefu sql` (ad hoc SQL: scripts and the interactive shell) and `kefu query` (named
//! queries): argument handling and terminal I/O over `kefu-sql`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Args;
use kefu_sql::output::{TableStyle, write_stream};
use kefu_sql::udf::WorkingCalendar;
use kefu_sql::{Engine, EngineOptions, Format, QueryLibrary, SqlError};
use kefu_storage::{Warehouse, WarehouseLocation};

use crate::cli::{CliResult, WarehouseArgs, exit};

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

fn error_code(e: &SqlError) -> u8 {
    match e {
        SqlError::Io { .. } | SqlError::Output { .. } | SqlError::Warehouse(_) => exit::IO,
        SqlError::QueryFile { .. } | SqlError::UnknownQuery(_) | SqlError::Query { .. } => {
            exit::BAD_CONFIG
        }
        _ => exit::FAILURE,
    }
}

fn fail(e: &SqlError) -> (u8, String) {
    (error_code(e), e.to_string())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, (u8, String)> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(kefu_sql::QUERY_THREAD_STACK)
        .build()
        .map_err(|e| (exit::FAILURE, format!("cannot start the runtime: {e}")))
}

/// The embedded query library, overridden by the `.sql` files of `dir`.
pub(crate) fn query_library(dir: Option<&Path>) -> Result<QueryLibrary, SqlError> {
    let library = QueryLibrary::embedded()?;
    match dir {
        Some(dir) => library.with_overrides(dir),
        None => Ok(library),
    }
}

/// The warehouse at `location`, which must exist: a missing local directory, or one that
/// holds no warehouse (a mistyped path, `.`), is an error, never a new empty warehouse.
pub(crate) fn open_existing_warehouse(
    location: &WarehouseLocation,
) -> Result<Warehouse, (u8, String)> {
    if let Some(dir) = location.local_path() {
        let holds_warehouse = dir.join("_kefu").is_dir()
            || kefu_storage::StoredTable::ALL
                .iter()
                .any(|t| dir.join(t.name()).join("_delta_log").is_dir());
        if !holds_warehouse {
            let what = if dir.is_dir() {
                "holds no warehouse"
            } else {
                "does not exist"
            };
            return Err((
                exit::IO,
                format!(
                    "no warehouse at {}: the directory {what} (create one with `kefu ingest SOURCE --warehouse {}`)",
                    dir.display(),
                    dir.display()
                ),
            ));
        }
    }
    Warehouse::open(location).map_err(|e| (exit::IO, e.to_string()))
}

/// A session over the existing warehouse at `location`, locally or on the cluster at
/// `cluster`.
pub(crate) fn open_engine_at(
    runtime: &tokio::runtime::Runtime,
    location: &WarehouseLocation,
    options: &EngineOptions,
    cluster: Option<&str>,
    cluster_tls: Option<&Path>,
) -> Result<Engine, (u8, String)> {
    let warehouse = open_existing_warehouse(location)?;
    match cluster {
        None => runtime
            .block_on(Engine::open(&warehouse, options))
            .map_err(|e| fail(&e)),
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
                .map_err(|e| (exit::BAD_CONFIG, e.to_string()))
        }
        #[cfg(not(feature = "cluster"))]
        Some(_) => {
            let _ = cluster_tls;
            Err((
                exit::BAD_CONFIG,
                "this kefu was built without the `cluster` feature (Ballista)".to_string(),
            ))
        }
    }
}

/// The working calendar of `--calendar FILE`, or the default.
pub(crate) fn load_calendar(path: Option<&Path>) -> Result<WorkingCalendar, (u8, String)> {
    let Some(path) = path else {
        return Ok(WorkingCalendar::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| (exit::BAD_CONFIG, format!("{}: {e}", path.display())))?;
    WorkingCalendar::from_toml(&text)
        .map_err(|e| (exit::BAD_CONFIG, format!("{}: {e}", path.display())))
}

fn open_engine(
    runtime: &tokio::runtime::Runtime,
    args: &SessionArgs,
) -> Result<Engine, (u8, String)> {
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

/// Where results go: stdout, or a file written beside its destination and renamed over
/// it when complete (a reader never sees half a result).
pub(crate) struct Destination {
    path: Option<PathBuf>,
    format: Format,
    pub(crate) style: TableStyle,
    /// Text results are added to the end of `path` (the shell's `.output`), not put in
    /// its place.
    append: bool,
    /// Rows written so far, for a spinner.
    rows: Option<Arc<AtomicU64>>,
}

impl Destination {
    fn new(args: &SessionArgs) -> Result<Self, (u8, String)> {
        let format = match (args.format, &args.output) {
            (Some(format), _) => format,
            (None, None) => Format::default(),
            (None, Some(path)) => {
                Format::from_extension(&path.to_string_lossy()).ok_or_else(|| {
                    (
                        exit::BAD_CONFIG,
                        format!(
                            "cannot tell a format from the name {}: give --format (table, csv, \
                         json, ndjson, parquet or xlsx) or end it in one of those",
                            path.display()
                        ),
                    )
                })?
            }
        };
        if format.is_binary() && args.output.is_none() && std::io::stdout().is_terminal() {
            return Err((
                exit::BAD_CONFIG,
                format!("{format} is binary: write it to a file with --output result.{format}"),
            ));
        }
        let width = if args.output.is_none() && std::io::stdout().is_terminal() {
            comfy_table_width()
        } else {
            None
        };
        Ok(Destination {
            path: args.output.clone(),
            format,
            style: TableStyle {
                width,
                max_rows: args.max_rows,
                raw_csv: args.raw_csv,
                bom: args.bom,
            },
            append: false,
            rows: None,
        })
    }

    /// Results in `format` to `path` (stdout without one); text appended to the file when
    /// `append` (binary formats always replace it).
    pub(crate) fn to(
        path: Option<PathBuf>,
        format: Format,
        style: TableStyle,
        append: bool,
    ) -> Self {
        Destination {
            path,
            format,
            style,
            append,
            rows: None,
        }
    }

    /// The same, counting the rows it writes into `rows`.
    pub(crate) fn counting(self, rows: Arc<AtomicU64>) -> Self {
        Destination {
            rows: Some(rows),
            ..self
        }
    }

    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// The same format and layout, on stdout.
    fn on_stdout(self) -> Self {
        Destination { path: None, ..self }
    }

    async fn write(&self, df: datafusion::prelude::DataFrame) -> Result<u64, SqlError> {
        // Cancellable: the shell's Ctrl-C drops this, and joins must stop promptly.
        let mut stream = kefu_sql::execute_cancellable(df).await?;
        if let Some(rows) = &self.rows {
            let rows = rows.clone();
            let schema = stream.schema();
            stream = Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    schema,
                    futures::StreamExt::inspect(stream, move |batch| {
                        if let Ok(batch) = batch {
                            rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        }
                    }),
                ),
            );
        }
        match &self.path {
            Some(path) if self.append && !self.format.is_binary() => {
                let io = |error| SqlError::Io {
                    path: path.display().to_string(),
                    error,
                };
                let mut file = std::io::BufWriter::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(io)?,
                );
                let rows = write_stream(stream, self.format, &mut file, self.style).await?;
                file.flush().map_err(io)?;
                Ok(rows)
            }
            None => {
                let mut stdout = std::io::BufWriter::new(std::io::stdout());
                let rows = write_stream(stream, self.format, &mut stdout, self.style).await?;
                stdout.flush().map_err(|error| SqlError::Io {
                    path: "stdout".into(),
                    error,
                })?;
                Ok(rows)
            }
            Some(path) => {
                let io = |error| SqlError::Io {
                    path: path.display().to_string(),
                    error,
                };
                let partial = partial_path(path);
                let mut file =
                    std::io::BufWriter::new(std::fs::File::create(&partial).map_err(io)?);
                let result = write_stream(stream, self.format, &mut file, self.style).await;
                let rows = match result {
                    Ok(rows) => rows,
                    Err(e) => {
                        drop(file);
                        let _ = std::fs::remove_file(&partial);
                        return Err(e);
                    }
                };
                file.into_inner()
                    .map_err(|e| io(e.into_error()))?
                    .sync_all()
                    .map_err(io)?;
                std::fs::rename(&partial, path).map_err(io)?;
                Ok(rows)
            }
        }
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// The terminal's width; none where it reports a size no table fits in (a pseudo-terminal
/// whose size was never set says 0 columns).
fn comfy_table_width() -> Option<u16> {
    comfy_table::Table::new().width().filter(|w| *w >= 20)
}

/// Plans and runs the statements of `script` one by one (all parsed first, so a syntax
/// error runs nothing), writing each result to `destination`; `ran` gets each
/// statement's time.
pub(crate) async fn run_script(
    engine: &Engine,
    script: &str,
    destination: &Destination,
    mut ran: impl FnMut(std::time::Duration),
) -> Result<(), SqlError> {
    for statement in engine.parse(script)? {
        let started = Instant::now();
        let df = engine.plan(statement).await?;
        destination.write(df).await?;
        ran(started.elapsed());
    }
    Ok(())
}

pub fn sql_command(args: &SqlArgs) -> CliResult {
    let runtime = runtime()?;
    let engine = open_engine(&runtime, &args.session)?;
    let destination = Destination::new(&args.session)?;
    let mut scripts: Vec<(String, String)> = args
        .execute
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("-e #{}", i + 1), s.clone()))
        .collect();
    for path in &args.file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| (exit::IO, format!("{}: {e}", path.display())))?;
        scripts.push((path.display().to_string(), text));
    }
    if scripts.is_empty() {
        if !args.interactive && !std::io::stdin().is_terminal() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| (exit::IO, format!("stdin: {e}")))?;
            scripts.push(("stdin".into(), text));
        } else {
            // The shell prints to the terminal (--output applies to scripts).
            return runtime.block_on(crate::shell::run(&engine, &destination.on_stdout()));
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
                (
                    error_code(&e),
                    format!(
                        "{origin}: {}",
                        crate::shell::explain(&engine, script, &e.to_string())
                    ),
                )
            })?;
        }
        Ok(())
    })
}

pub fn query_command(args: &QueryArgs) -> CliResult {
    let library = query_library(args.queries.as_deref()).map_err(|e| fail(&e))?;
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
    let query = library.get(name).map_err(|e| fail(&e))?;
    let sql = query.render(&args.params).map_err(|e| fail(&e))?;
    if args.show_sql {
        println!("{sql}");
        return Ok(());
    }
    let runtime = runtime()?;
    let engine = open_engine(&runtime, &args.session)?;
    let destination = Destination::new(&args.session)?;
    runtime.block_on(async {
        let df = engine.sql(&sql).await.map_err(|e| {
            (
                error_code(&e),
                format!("query {name} ({}): {e}", query.origin),
            )
        })?;
        destination.write(df).await.map_err(|e| fail(&e))?;
        Ok(())
    })
}
