//! The commands, defined and dispatched: each is a module of [`crate::commands`], a thin
//! wrapper over a library function the server and the scheduled jobs call too.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kefu_model::Table;

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

/// The commands. Each one's arguments and help text live in the library crate it calls
/// (`kefu_*::cli`, the `cli` feature), beside the options they become.
#[derive(Debug, Subcommand)]
pub enum Command {
    Gen(kefu_gen::cli::GenArgs),
    Check(kefu_ingest::cli::CheckArgs),
    Ingest(kefu_ingest::cli::IngestArgs),
    Sql(kefu_sql::cli::SqlArgs),
    Query(kefu_sql::cli::QueryArgs),
    Run(kefu_jobs::cli::RunArgs),
    Schedule(kefu_jobs::cli::ScheduleArgs),
    Report(kefu_report::cli::ReportArgs),
    Demo(kefu_jobs::cli::DemoArgs),
    Serve(kefu_server::cli::ServeArgs),
    Upload(kefu_server::cli::UploadArgs),
    #[cfg(feature = "cluster")]
    Cluster(kefu_cluster::cli::ClusterArgs),
    Batch(kefu_storage::cli::BatchArgs),
    Compact(kefu_storage::cli::CompactArgs),
    Vacuum(kefu_storage::cli::VacuumArgs),
    Convert(kefu_storage::cli::ConvertArgs),
    Status(kefu_ingest::cli::StatusArgs),

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
    // The one runtime, built by the arm that runs (`gen` and `model` need none).
    let runtime = crate::args::runtime;
    match cli.command {
        Command::Gen(args) => commands::generate::gen_command(&args),
        Command::Check(args) => commands::check::check_command(&args, &runtime()?),
        Command::Ingest(args) => commands::ingest::ingest_command(&args, &runtime()?),
        Command::Sql(args) => commands::sql::sql_command(&args, &runtime()?),
        Command::Query(args) => commands::query::query_command(&args, &runtime()?),
        Command::Run(args) => commands::run::run_command(&args, &runtime()?),
        Command::Schedule(args) => commands::schedule::schedule_command(&args, &runtime()?),
        Command::Report(args) => commands::report::report_command(&args, &runtime()?),
        Command::Demo(args) => commands::demo::demo_command(&args, &runtime()?),
        Command::Serve(args) => commands::serve::serve_command(&args, &runtime()?),
        Command::Upload(args) => commands::upload::upload_command(&args, &runtime()?),
        #[cfg(feature = "cluster")]
        Command::Cluster(args) => commands::cluster::cluster_command(&args, &runtime()?),
        Command::Batch(args) => commands::batch::batch_command(&args, &runtime()?),
        Command::Compact(args) => commands::compact::compact_command(&args, &runtime()?),
        Command::Vacuum(args) => commands::vacuum::vacuum_command(&args, &runtime()?),
        Command::Convert(args) => commands::convert::convert_command(&args.warehouse, &runtime()?),
        Command::Status(args) if args.deliveries.deliveries => {
            commands::status::deliveries_command(
                &args.warehouse.warehouse,
                &args.deliveries,
                args.json,
                &runtime()?,
            )
        }
        Command::Status(args) => commands::status::status_command(
            &args.warehouse.warehouse,
            args.batches,
            args.json,
            &runtime()?,
        ),
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
