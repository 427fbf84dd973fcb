//! `kefu query`: a named KPI query of the library.

use std::io::Write;

use kefu_model::Classify;
use kefu_sql::QueryLibrary;
use kefu_sql::cli::QueryArgs;
use tokio::runtime::Runtime;

use crate::args::open_engine;
use crate::exit::{CliResult, Failure};

pub fn query_command(args: &QueryArgs, runtime: &Runtime) -> CliResult {
    let library = QueryLibrary::with_overrides_from(args.queries.as_deref())?;
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
    let engine = open_engine(runtime, &args.session)?;
    let destination = args.session.destination()?;
    runtime.block_on(async {
        let df = engine
            .sql(&sql)
            .await
            .map_err(|e| Failure::new(e.kind(), format!("query {name} ({}): {e}", query.origin)))?;
        destination.write(df).await?;
        Ok(())
    })
}
