//! `kefu serve`: the warehouse served to offices, analysts and BI tools.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use kefu_model::ErrorKind;

use kefu_server::lifecycle::Listening;

use crate::args::WarehouseArgs;
use crate::exit::{CliResult, Failure};

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
