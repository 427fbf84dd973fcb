//! `kefu serve` and `kefu upload`: argument handling over `kefu-server`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::cli::WarehouseArgs;
use crate::exit::{CliResult, Failure};
use kefu_model::{Classify, ErrorKind};
use kefu_server::lifecycle::Listening;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// The server configuration (TOML): listen address, SQL limits, tokens and roles.
    #[arg(long, env = "KEFU_SERVER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Listen here instead of the configuration's `listen` (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Serve Flight SQL here (instead of the configuration's `flight`; port 0: any).
    #[arg(long, value_name = "ADDR")]
    pub flight: Option<String>,
    /// Serve the PostgreSQL protocol here, for psql, DBeaver, Metabase, Superset, Power
    /// BI, FineBI or Tableau (instead of the configuration's `postgres`; port 0: any). The
    /// password is a kefu token; any user name will do.
    #[arg(long, value_name = "ADDR")]
    pub postgres: Option<String>,
}

pub fn serve_command(args: &ServeArgs) -> CliResult {
    let mut config = kefu_server::ServerConfig::load(&args.config)?;
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if let Some(flight) = &args.flight {
        config.flight = Some(flight.clone());
    }
    if let Some(postgres) = &args.postgres {
        config.postgres = Some(postgres.clone());
    }
    let warehouse = kefu_storage::Warehouse::open(&args.warehouse.warehouse)?;
    let library =
        kefu_sql::QueryLibrary::embedded().map_err(|e| Failure::new(ErrorKind::Config, e))?;
    // The addresses on stdout, first, so that scripts (and tests) can find the ports.
    let stopped = kefu_server::lifecycle::run(&config, warehouse, library, |listening| {
        match listening {
            Listening::Http(at) => println!("kefu serve: listening on http://{at}"),
            Listening::Flight(at) => println!("kefu serve: flight sql on grpc://{at}"),
            Listening::Postgres(at) => println!("kefu serve: postgres on postgresql://{at}"),
        }
        let _ = std::io::stdout().flush();
    })?;
    match stopped.pending_uploads {
        0 => println!("kefu serve: stopped"),
        pending => {
            println!("kefu serve: stopped; {pending} uploads wait in the inbox for the next start")
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files to upload (exports or archives of them).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The server, e.g. http://head-office:8080
    #[arg(long, env = "KEFU_SERVER", value_name = "URL")]
    pub server: String,
    /// The office's token (better in the KEFU_TOKEN environment variable than on the
    /// command line, where other users of the machine can see it).
    #[arg(long, env = "KEFU_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: String,
    /// Restrict the upload to one region (admin tokens; an office's is always its own).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Wait until each upload is ingested, and print its counts.
    #[arg(long)]
    pub wait: bool,
    /// Retries after network errors, with exponential backoff from 0.5 s.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: usize,
    /// Print the server's records as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn upload_command(args: &UploadArgs) -> CliResult {
    let mut client = kefu_server::client::UploadClient::new(&args.server, args.token.clone())
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
    client.retries = args.retries;
    let runtime = crate::sql::runtime()?;
    let progress: Arc<dyn kefu_progress::Progress> =
        Arc::new(crate::progress::BarProgress::new(args.quiet));
    let mut failed = 0;
    runtime.block_on(async {
        for file in &args.files {
            let record = client
                .deliver(file, args.region.as_deref(), args.wait, progress.clone())
                .await
                .map_err(|e| Failure::new(e.kind(), format!("{}: {e}", file.display())))?;
            if record["status"] == "failed" {
                failed += 1;
            }
            if args.json {
                println!("{record}");
            } else {
                println!("{}", kefu_server::client::describe_upload(file, &record));
            }
        }
        Ok::<(), Failure>(())
    })?;
    if failed > 0 {
        return Err(Failure::new(
            ErrorKind::Failure,
            format!("uploads that failed to ingest: {failed}"),
        ));
    }
    Ok(())
}
