//! `kefu serve` and `kefu upload`: argument handling over `kefu-server`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::cli::{CliResult, WarehouseArgs, exit};

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
    let mut config = kefu_server::ServerConfig::load(&args.config)
        .map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if let Some(flight) = &args.flight {
        config.flight = Some(flight.clone());
    }
    if let Some(postgres) = &args.postgres {
        config.postgres = Some(postgres.clone());
    }
    let warehouse = kefu_storage::Warehouse::open(&args.warehouse.warehouse)
        .map_err(|e| (exit::IO, e.to_string()))?;
    let library =
        kefu_sql::QueryLibrary::embedded().map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
    let queries = tokio::runtime::Builder::new_multi_thread()
        .thread_name("kefu-query")
        .enable_all()
        .thread_stack_size(kefu_sql::QUERY_THREAD_STACK)
        .build()
        .map_err(|e| (exit::FAILURE, e.to_string()))?;
    let (state, resume) = kefu_server::open(&config, warehouse, library, queries.handle().clone())
        .map_err(|e| (exit::IO, e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("kefu-http")
        .enable_all()
        .thread_stack_size(kefu_sql::QUERY_THREAD_STACK)
        .build()
        .map_err(|e| (exit::FAILURE, e.to_string()))?;
    runtime.block_on(async {
        let listener = kefu_server::bind(&config.listen)
            .await
            .map_err(|e| (exit::IO, e.to_string()))?;
        let address = listener
            .local_addr()
            .map_err(|e| (exit::IO, e.to_string()))?;
        let flight = bind_optional(config.flight.as_deref()).await?;
        let postgres = bind_optional(config.postgres.as_deref()).await?;
        let stop = kefu_server::termination();
        kefu_server::resume(&state, &resume);
        // The addresses on stdout, first, so that scripts (and tests) can find the ports.
        println!("kefu serve: listening on http://{address}");
        let stopping = tokio_util::sync::CancellationToken::new();
        let flight_task = match flight {
            Some(listener) => {
                let at = listener
                    .local_addr()
                    .map_err(|e| (exit::IO, e.to_string()))?;
                println!("kefu serve: flight sql on grpc://{at}");
                let stopped = stopping.clone();
                Some(tokio::spawn(kefu_server::flight::serve(
                    listener,
                    state.clone(),
                    async move { stopped.cancelled().await },
                )))
            }
            None => None,
        };
        let postgres_task = match postgres {
            Some(listener) => {
                let at = listener
                    .local_addr()
                    .map_err(|e| (exit::IO, e.to_string()))?;
                println!("kefu serve: postgres on postgresql://{at}");
                let stopped = stopping.clone();
                Some(tokio::spawn(kefu_server::postgres::serve(
                    listener,
                    state.clone(),
                    async move { stopped.cancelled().await },
                )))
            }
            None => None,
        };
        let _ = std::io::stdout().flush();
        let stopped = stopping.clone();
        tokio::spawn(async move {
            stop.await;
            stopped.cancel();
        });
        kefu_server::serve(listener, state.clone(), async move {
            stopping.cancelled().await
        })
        .await
        .map_err(|e| (exit::IO, e.to_string()))?;
        for task in [flight_task, postgres_task].into_iter().flatten() {
            match task.await {
                Ok(result) => result.map_err(|e| (exit::IO, e.to_string()))?,
                Err(e) => return Err((exit::FAILURE, e.to_string())),
            }
        }
        Ok(())
    })?;
    // An ingest still running is not waited for: the ledger either has its batch or not,
    // and the next start finishes the upload from the inbox.
    let pending = state.ingest.uploads.inbox.pending();
    runtime.shutdown_background();
    // Queries still running after the timeout's cancellation get a moment to stop.
    queries.shutdown_timeout(std::time::Duration::from_secs(5));
    if pending > 0 {
        println!("kefu serve: stopped; {pending} uploads wait in the inbox for the next start");
    } else {
        println!("kefu serve: stopped");
    }
    Ok(())
}

/// Binds `address` when one is configured.
async fn bind_optional(
    address: Option<&str>,
) -> Result<Option<tokio::net::TcpListener>, (u8, String)> {
    match address {
        Some(address) => kefu_server::bind(address)
            .await
            .map(Some)
            .map_err(|e| (exit::IO, e.to_string())),
        None => Ok(None),
    }
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
        .map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
    client.retries = args.retries;
    let runtime = crate::sql::runtime()?;
    let progress: Arc<dyn kefu_progress::Progress> =
        Arc::new(crate::progress::BarProgress::new(args.quiet));
    let mut failed = 0;
    runtime.block_on(async {
        for file in &args.files {
            let answer = client
                .upload(file, args.region.as_deref(), progress.clone())
                .await
                .map_err(|e| upload_error(file, &e))?;
            let record = match (args.wait, answer["id"].as_str()) {
                (true, Some(id)) if answer["duplicate"] != true => client
                    .wait(id, std::time::Duration::from_millis(500))
                    .await
                    .map_err(|e| upload_error(file, &e))?,
                _ => answer,
            };
            if record["status"] == "failed" {
                failed += 1;
            }
            if args.json {
                println!("{record}");
            } else {
                println!("{}", describe(file, &record));
            }
        }
        Ok::<(), (u8, String)>(())
    })?;
    if failed > 0 {
        return Err((
            exit::FAILURE,
            format!("uploads that failed to ingest: {failed}"),
        ));
    }
    Ok(())
}

fn upload_error(file: &std::path::Path, e: &kefu_server::ServerError) -> (u8, String) {
    let code = match e {
        kefu_server::ServerError::Refused { .. } => exit::BAD_CONFIG,
        _ => exit::IO,
    };
    (code, format!("{}: {e}", file.display()))
}

/// One line about an upload: its id and status, or what it duplicates; counts when done.
fn describe(file: &std::path::Path, r: &serde_json::Value) -> String {
    let name = file.display();
    if r["duplicate"] == true {
        let of = &r["duplicate_of"];
        let what = match (of["upload"].as_str(), of["batch"].as_u64()) {
            (Some(u), _) => format!("upload {u}"),
            (None, Some(b)) => format!("batch {b} of the warehouse"),
            _ => "an earlier upload".to_string(),
        };
        return format!("{name}: duplicate of {what}; not ingested again");
    }
    let id = r["id"].as_str().unwrap_or("?");
    let status = r["status"].as_str().unwrap_or("?");
    match status {
        "done" => {
            let c = &r["counts"];
            format!(
                "{name}: {id} done: {} landed, {} rejected, {} duplicates{}",
                c["landed"],
                c["rejected"],
                c["duplicates"],
                if c["rejected"].as_u64().unwrap_or(0) > 0 {
                    format!(
                        " (rejects: {})",
                        r["links"]["rejects"].as_str().unwrap_or("")
                    )
                } else {
                    String::new()
                }
            )
        }
        "failed" => format!(
            "{name}: {id} failed: {}",
            r["error"].as_str().unwrap_or("no reason given")
        ),
        other => format!(
            "{name}: {id} {other} ({} bytes, sha256 {})",
            r["bytes"],
            r["sha256"].as_str().unwrap_or("")
        ),
    }
}
