//! The commands, defined and dispatched: each is a module of [`crate::commands`], a thin
//! wrapper over a library function the server and the scheduled jobs call too.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kefu_model::Table;

use crate::args::WarehouseArgs;
use crate::commands;
use crate::exit::{self, CliResult};

/// kefu (客服): batch analytics for customer-service event logs — hotline calls,
/// complaint and work-order tickets, callbacks, branch visits and churn.
#[derive(Debug, Parser)]
#[command(name = "kefu", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace): kefu's own
    /// at that level, the libraries it uses (Delta, DataFusion) at warn. A filter with
    /// targets (e.g. `info,deltalake_core=debug`) is taken as written.
    #[arg(long, global = true, env = "KEFU_LOG", default_value = "warn")]
    pub log: String,

    /// Log format on stderr: text for people, json (one object per line, with the
    /// request id and fields of each span) for log collectors.
    #[arg(long, global = true, env = "KEFU_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate realistic, deterministic customer-service logs (the five canonical tables).
    ///
    /// Plain output is one file per table (calls, tickets, callbacks, visits, customers) in
    /// canonical form: the world as known at the end of the period (the final truth).
    ///
    /// With --messy, the files are office exports as they really arrive: one archive per
    /// region and day holding only what was known that day (calls that ended, tickets
    /// received or changed — in their state that day —, callbacks, visits, customers
    /// opened, changed or closed), full customer snapshots monthly; GBK or UTF-8 with BOM,
    /// Chinese headers, split date/time columns; some archives late, re-sent re-zipped,
    /// or re-exported for the last week (--resend-rate); and a known set of bad rows.
    /// manifest.json lists every file with its delivery day (`deliveries`: what a daily
    /// ingest takes as one batch) and every bad row. The newest version of every record
    /// over all files is exactly the plain output. The same arguments always produce
    /// byte-identical files.
    #[command(after_help = "Examples:\n  \
        kefu gen --out data --customers 100000 --days 365\n  \
        kefu gen --out exports --messy --regions 8 --days 30\n  \
        kefu gen --out data --format jsonl --json > summary.json")]
    Gen(commands::generate::GenArgs),

    /// Check office exports against the model without ingesting them.
    ///
    /// Every record is read, mapped and validated exactly as ingest will: files, directories,
    /// globs, zip/tar/tar.gz archives and .gz/.zst files; UTF-8 (with or without BOM) or
    /// GBK/GB18030, detected; English or Chinese headers, or a mapping profile. Problems are
    /// reported with file, archive member, line, column and reason. Nothing is written.
    ///
    /// Exit status: 0 all records valid, 3 some records would be rejected, 4 some sources
    /// cannot be read at all.
    #[command(after_help = "Examples:\n  \
        kefu check exports/\n  \
        kefu check 'exports/beijing/*.zip' --examples 20\n  \
        kefu check baltimore_311_sample.csv --profile fixtures/profiles/baltimore_311.toml --json")]
    Check(commands::check::CheckArgs),

    /// Ingest office exports into the warehouse as one batch, exactly once per record.
    ///
    /// Sources are files, directories, globs, zip/tar/tar.gz archives, .gz/.zst files,
    /// file:// URLs and s3://bucket/key or s3://bucket/prefix/ objects (AWS_* environment
    /// variables), in CSV or TSV (delimiter sniffed), JSON Lines or Excel .xlsx (first
    /// sheet), UTF-8 (with or without BOM) or GBK/GB18030 (detected), with English or
    /// Chinese headers or a mapping profile. Sources already ingested (same content) are
    /// skipped.
    ///
    /// Every record is keyed (call_id, ticket_id, callback_id, visit_id, customer_id): the
    /// warehouse holds each record's newest version, whatever file it came in and in
    /// whatever order files arrive. A newer version (a later updated_at, else further in
    /// its workflow) replaces the stored one; an identical one (a re-sent or overlapping
    /// export) or an older one (a late export) is counted and dropped. Per table the batch
    /// counts new, updated, unchanged, stale and rejected records, which add up to the
    /// records read. Rejects land in `_rejects` with file, member, line, column, reason and
    /// the raw record. The batch commits in every table at once, or not at all (if reading
    /// fails, or the rejected share exceeds --max-reject-ratio); `kefu batch revert` takes
    /// it back.
    ///
    /// Tables are Delta Lake tables of zstd Parquet (sorted by region and event time, page
    /// index on) under <warehouse>/<table>/, partitioned by month of the warehouse's calendar
    /// (--time-zone when it is created; Asia/Shanghai by default). A
    /// partition left with more than --compact-after small files is compacted after the
    /// batch (the small files merge; large ones stay).
    ///
    /// Exit status: 0 committed (or nothing new), 2 bad arguments or profile, 3 too many
    /// rejects (nothing committed), 4 a source or the warehouse could not be read or written.
    #[command(after_help = "Examples:\n  \
        kefu ingest exports/ --warehouse wh\n  \
        kefu ingest 'exports/*/beijing_202601*.zip' --warehouse wh --json\n  \
        kefu ingest baltimore_311_sample.csv --profile fixtures/profiles/baltimore_311.toml")]
    Ingest(commands::ingest::IngestArgs),

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
    #[command(after_help = "Examples:\n  \
        kefu sql --warehouse wh\n  \
        kefu sql -e \"SELECT region, count(*) FROM calls GROUP BY region ORDER BY region\"\n  \
        kefu sql -f monthly.sql --format csv --output monthly.csv\n  \
        kefu sql --memory-limit 2GB -e \"SELECT customer_id, count(*) FROM calls GROUP BY 1 ORDER BY 2 DESC LIMIT 20\"")]
    Sql(commands::sql::SqlArgs),

    /// Run a named KPI query (the library in queries/, embedded in kefu).
    ///
    /// Each query states its purpose, the KPI's formula, its output grain and its
    /// parameters with defaults (see --list). Parameters are validated and typed (date,
    /// int, float, text) before they reach SQL.
    #[command(after_help = "Examples:\n  \
        kefu query --list\n  \
        kefu query calls_kpis --param from=2026-01-01 --param to=2026-02-01 --param period=week\n  \
        kefu query calls_kpis --param region=beijing --format csv --output calls.csv\n  \
        kefu query calls_kpis --queries my-queries/ --show-sql")]
    Query(commands::query::QueryArgs),

    /// Run a job file: ingest, refresh KPI tables, build the monthly report.
    ///
    /// Steps run in order. Incremental: a query step's range is cut into periods
    /// (`partition`), and only periods whose warehouse data changed since the last run
    /// are recomputed; a run with no new data does nothing and says so. Outputs are
    /// replaced atomically (a reader never sees half a file), a lock keeps two runs of one
    /// job apart, and a JSON run report goes to <output_dir>/_runs/.
    ///
    /// Exit status: 0 success (or nothing to do), 1 every step failed, 2 bad job file or
    /// arguments, 3 an ingest was refused for too many rejected records, 4 files could
    /// not be read or written, 5 partial failure (some steps failed), 6 the job is
    /// already running.
    #[command(after_help = "Examples:\n  \
        kefu run fixtures/jobs/monthly.toml\n  \
        kefu run nightly.toml --date 2026-12-01 --dry-run\n  \
        kefu run nightly.toml --from 2026-01-01 --to 2026-07-01   (backfill)\n  \
        kefu run nightly.toml --json > run.json")]
    Run(commands::run::RunArgs),

    /// Run every job of a directory on its cron `schedule`, in the foreground.
    ///
    /// For teams without cron or Airflow. Times are on each job's warehouse calendar (its
    /// `time_zone`, else the warehouse's). After downtime, a job
    /// whose scheduled runs were missed runs once (catch-up), not once per missed time.
    /// Each run is logged on stdout and writes its run report.
    #[command(after_help = "Examples:\n  \
        kefu schedule jobs/\n  \
        kefu schedule jobs/ --once   (run what is due now, then exit)")]
    Schedule(commands::schedule::ScheduleArgs),

    /// Write the monthly customer-service report (月度客服报告) for one month.
    ///
    /// One self-contained HTML page (inline SVG charts; opens without a network) with the
    /// headline KPIs beside the previous month (环比) and the same month last year (同比),
    /// 13-month trends, the branch ranking (top 5 / bottom 5), the complaint mix and hot
    /// spots, waits by hour, churn and its pre-churn signals, and a generated summary;
    /// plus every table behind it as CSV under tables/. Every figure comes from the
    /// named queries (tables/_queries.csv lists their parameters).
    #[command(after_help = "Examples:\n  \
        kefu report --month 2026-12 --out report-2026-12\n  \
        kefu report --month 2026-12 --region beijing --lang en --out beijing-2026-12")]
    Report(commands::report::ReportArgs),

    /// The tour: generate 25 months of office exports as they really arrive (December
    /// 2024 to December 2026, so every 同比 has a value), ingest them day by day (one
    /// batch per delivery day, as a scheduled job would), run the KPI job, write the
    /// report.
    ///
    /// In DIR (default ./kefu-demo): exports/ (office exports for 100,000 customers,
    /// with manifest.json), warehouse/, monthly.toml (the example job),
    /// kpi/ (KPI tables, run reports and reports/<month>/index.html).
    Demo(commands::demo::DemoArgs),

    /// Serve the warehouse: uploads from regional offices, SQL over HTTP, metrics.
    ///
    /// Offices `POST /api/v1/uploads?name=FILE` (or use `kefu upload`): the file is
    /// stored in the inbox (fsynced) and answered 202 with an upload id, then ingested by a
    /// queue (in order per region) with the office's profile; rows of another region are
    /// rejected. `GET /api/v1/uploads/{id}` gives the status and counts, and
    /// `/api/v1/uploads/{id}/rejects.csv` the rejected records. Content uploaded or
    /// ingested before is answered as a duplicate. A stop (SIGTERM) loses nothing: the next
    /// start resumes the inbox, and every upload commits exactly once.
    ///
    /// Analysts `POST /api/v1/sql` with `{"sql": …}` or `{"query": NAME, "params": …}`:
    /// JSON, CSV or Arrow IPC (`format` or the Accept header), read-only, with the row
    /// limit, timeout and memory limit of the configuration. `GET /healthz`, `GET /metrics`
    /// (Prometheus text); every response carries an X-Request-Id.
    ///
    /// BI tools connect over the PostgreSQL protocol (--postgres or `postgres`: psql,
    /// DBeaver, Metabase, Superset, Power BI, FineBI, Tableau; the password is a token)
    /// or Flight SQL (--flight or `flight`: statements, prepared statements with $1
    /// parameters, catalogs, schemas and tables); same tokens, read-only. The web console
    /// is at http://ADDR/: uploads, SQL and named queries, the KPI dashboard and the
    /// offices' deliveries, in Chinese and English (`[deliveries]` sets what is expected;
    /// also in /metrics and GET /api/v1/deliveries). TLS: put the server behind a reverse
    /// proxy (nginx, Caddy, Envoy) that terminates it.
    #[command(after_help = "Example server.toml:\n  \
        listen = \"127.0.0.1:8080\"\n  \
        flight = \"127.0.0.1:50051\"\n  \
        postgres = \"127.0.0.1:5433\"\n  \
        [sql]\n  \
        max_rows = 100000\n  \
        timeout_seconds = 60\n  \
        memory_limit = \"2GB\"\n  \
        [uploads]\n  \
        max_bytes = \"1GiB\"\n  \
        concurrency = 2\n  \
        [[token]]\n  \
        name = \"beijing-office\"\n  \
        token_env = \"KEFU_TOKEN_BEIJING\"\n  \
        role = \"office\"   # office (with region), analyst or admin\n  \
        region = \"beijing\"")]
    Serve(commands::serve::ServeArgs),

    /// Upload exports to a kefu server (the regional offices' client).
    ///
    /// Each file is streamed with a progress bar; network errors and 502/503/504 are
    /// retried with exponential backoff. Prints each upload's id and status; with --wait,
    /// waits until each is ingested and prints the rows landed, rejected and duplicated.
    /// Exit status: 0 all accepted (or done), 1 an ingest failed, 2 refused by the server
    /// (token, size, name), 4 the server could not be reached.
    #[command(after_help = "Examples:\n  \
        kefu upload exports/beijing/beijing_20260301.zip --server http://head-office:8080 --token $KEFU_TOKEN\n  \
        kefu upload exports/beijing/*.zip --server http://head-office:8080 --wait")]
    Upload(commands::upload::UploadArgs),

    /// Run a Ballista scheduler or executor (kefu's functions built in), for
    /// `--cluster df://HOST:PORT` on `kefu sql`, `kefu query`, `kefu report` and `kefu run`;
    /// check a cluster.
    #[cfg(feature = "cluster")]
    #[command(after_help = "A cluster on one machine:\n  \
        kefu cluster scheduler --bind 127.0.0.1:50050 &\n  \
        kefu cluster executor --scheduler 127.0.0.1:50050 --port 50051 --grpc-port 50052 --warehouse \"$PWD/warehouse\" &\n  \
        kefu cluster executor --scheduler 127.0.0.1:50050 --port 50061 --grpc-port 50062 --warehouse \"$PWD/warehouse\" &\n  \
        kefu cluster check df://127.0.0.1:50050\n  \
        kefu query calls_kpis --cluster df://127.0.0.1:50050\n\n\
        The warehouse must be where every executor sees it under the same name: s3:// (with \
        the same AWS_* environment everywhere) or a shared filesystem at the same absolute \
        path. Executors read only the warehouses given with --warehouse and write nothing, \
        whatever plan a client sends. See the README's \"On a cluster\" for systemd units \
        and sizing.")]
    Cluster(commands::cluster::ClusterArgs),

    /// List the warehouse's batches and other operations; take a batch back.
    #[command(after_help = "Examples:\n  \
        kefu batch list\n  \
        kefu batch revert 42 --note \"wrong profile\"")]
    Batch(commands::batch::BatchArgs),

    /// Rewrite partitions of many small files (one per daily batch, plus upsert rewrites)
    /// as few large ones, sorted by region and event time again.
    ///
    /// The data does not change: readers at any version, and the jobs' cached results,
    /// are unaffected. Ingest does this by itself for partitions over --compact-after files.
    #[command(after_help = "Examples:\n  \
        kefu compact\n  \
        kefu compact --table calls --partition 2026-11")]
    Compact(commands::compact::CompactArgs),

    /// Delete files no table version within the retention period names: those replaced by
    /// upserts and compactions, and those an interrupted batch left. Time travel reaches
    /// back as far as the retention period, no further.
    #[command(after_help = "Examples:\n  \
        kefu vacuum --dry-run\n  \
        kefu vacuum --retain 30d")]
    Vacuum(commands::vacuum::VacuumArgs),

    /// Convert a warehouse of an earlier kefu (Hive-partitioned Parquet with its own
    /// ledger) into Delta tables, in place. Its batches' sources stay ingested. Run it
    /// with no other kefu writing to the warehouse; if interrupted, run it again.
    Convert {
        #[command(flatten)]
        warehouse: WarehouseArgs,
    },

    /// Show a warehouse: tables with their Delta version, rows, files, partitions and
    /// bytes, and the last operations.
    Status {
        #[command(flatten)]
        warehouse: WarehouseArgs,
        /// Operations to list, newest first.
        #[arg(long, default_value_t = 10)]
        batches: usize,
        /// Print as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        deliveries: commands::status::DeliveriesArgs,
    },

    /// Print the canonical model: every table, column (type, nullability, unit, Chinese
    /// header, meaning) and vocabulary, as Markdown.
    Model {
        /// Print only this table's section.
        #[arg(long)]
        table: Option<Table>,
    },
}

/// Parses the arguments, runs the command, prints errors on stderr, returns the exit code.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format == "json");
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        // `kefu sql … | head`: the reader has what it wanted.
        Err(failure) if failure.message.contains("Broken pipe") => ExitCode::from(exit::OK),
        Err(failure) => {
            eprintln!("kefu: error: {}", failure.message);
            ExitCode::from(failure.code())
        }
    }
}

/// `kefu status | head` closes stdout early; `println!` then panics. Exit quietly, with 0:
/// the reader took what it wanted (a script's `set -o pipefail` must not fail on it).
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info)
    }));
}

fn init_logging(level: &str, json: bool) {
    // A bare level is kefu's: the Delta kernel, for one, logs every snapshot at info.
    let directives = match level.trim() {
        bare @ ("info" | "debug" | "trace") => format!("warn,kefu={bare}"),
        other => other.to_string(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().with_current_span(true).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Gen(args) => commands::generate::gen_command(&args),
        Command::Check(args) => commands::check::check_command(&args),
        Command::Ingest(args) => commands::ingest::ingest_command(&args),
        Command::Sql(args) => commands::sql::sql_command(&args),
        Command::Query(args) => commands::query::query_command(&args),
        Command::Run(args) => commands::run::run_command(&args),
        Command::Schedule(args) => commands::schedule::schedule_command(&args),
        Command::Report(args) => commands::report::report_command(&args),
        Command::Demo(args) => commands::demo::demo_command(&args),
        Command::Serve(args) => commands::serve::serve_command(&args),
        Command::Upload(args) => commands::upload::upload_command(&args),
        #[cfg(feature = "cluster")]
        Command::Cluster(args) => commands::cluster::cluster_command(&args),
        Command::Batch(args) => commands::batch::batch_command(&args),
        Command::Compact(args) => commands::compact::compact_command(&args),
        Command::Vacuum(args) => commands::vacuum::vacuum_command(&args),
        Command::Convert { warehouse } => commands::convert::convert_command(&warehouse),
        Command::Status {
            warehouse,
            json,
            deliveries,
            ..
        } if deliveries.deliveries => {
            commands::status::deliveries_command(&warehouse.warehouse, &deliveries, json)
        }
        Command::Status {
            warehouse,
            batches,
            json,
            ..
        } => commands::status::status_command(&warehouse.warehouse, batches, json),
        Command::Model { table } => {
            print!("{}", kefu_model::doc::model_markdown_of(table));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
