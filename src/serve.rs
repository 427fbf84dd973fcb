//! `kefu serve`: argument handling over `kefu-server`.

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
}

pub fn serve_command(args: &ServeArgs) -> CliResult {
    let mut config = kefu_server::ServerConfig::load(&args.config)
        .map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    let warehouse = kefu_storage::Warehouse::open(&args.warehouse.warehouse)
        .map_err(|e| (exit::IO, e.to_string()))?;
    let library =
        kefu_sql::QueryLibrary::embedded().map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
    let queries = tokio::runtime::Builder::new_multi_thread()
        .thread_name("kefu-query")
        .enable_all()
        .build()
        .map_err(|e| (exit::FAILURE, e.to_string()))?;
    let state = Arc::new(kefu_server::http::AppState {
        warehouse,
        tokens: kefu_server::auth::Tokens::new(config.tokens.clone()),
        sql: config.sql.clone(),
        library,
        queries: queries.handle().clone(),
        metrics: kefu_server::metrics::Metrics::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("kefu-http")
        .enable_all()
        .build()
        .map_err(|e| (exit::FAILURE, e.to_string()))?;
    runtime.block_on(async {
        let listener = kefu_server::bind(&config.listen)
            .await
            .map_err(|e| (exit::IO, e.to_string()))?;
        let address = listener
            .local_addr()
            .map_err(|e| (exit::IO, e.to_string()))?;
        let stop = kefu_server::termination();
        // The address on stdout, first, so that scripts (and tests) can find the port.
        println!("kefu serve: listening on http://{address}");
        let _ = std::io::stdout().flush();
        kefu_server::serve(listener, state, stop)
            .await
            .map_err(|e| (exit::IO, e.to_string()))?;
        Ok(())
    })?;
    // Queries still running after the timeout's cancellation get a moment to stop.
    queries.shutdown_timeout(std::time::Duration::from_secs(5));
    println!("kefu serve: stopped");
    Ok(())
}
