//! `kefu query`: a named KPI query of the library.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use kefu_model::Classify;

use crate::args::{SessionArgs, destination, open_engine, query_library, runtime};
use crate::exit::{CliResult, Failure};

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
