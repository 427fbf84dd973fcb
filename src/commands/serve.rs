//! `kefu serve`: the warehouse served to offices, analysts and BI tools.

use std::io::Write;

use kefu_model::ErrorKind;
use kefu_server::cli::ServeArgs;
use kefu_server::lifecycle::Listening;
use tokio::runtime::Runtime;

use crate::exit::{CliResult, Failure};

pub fn serve_command(args: &ServeArgs, runtime: &Runtime) -> CliResult {
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
    let stopped =
        kefu_server::lifecycle::run(runtime.handle(), &config, warehouse, library, |listening| {
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
