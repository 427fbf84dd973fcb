//! `kefu sql`: ad hoc SQL, as scripts or in the interactive shell.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use kefu_model::{Classify, ErrorKind};
use kefu_sql::output::run_script;

use crate::args::{SessionArgs, destination, open_engine, runtime};
use crate::exit::{CliResult, Failure};

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

pub fn sql_command(args: &SqlArgs) -> CliResult {
    let runtime = runtime()?;
    let engine = open_engine(&runtime, &args.session)?;
    let destination = destination(&args.session)?;
    let mut scripts: Vec<(String, String)> = args
        .execute
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("-e #{}", i + 1), s.clone()))
        .collect();
    for path in &args.file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
        scripts.push((path.display().to_string(), text));
    }
    if scripts.is_empty() {
        if !args.interactive && !std::io::stdin().is_terminal() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::new(ErrorKind::Io, format!("stdin: {e}")))?;
            scripts.push(("stdin".into(), text));
        } else {
            // The shell prints to the terminal (--output applies to scripts).
            return Ok(runtime.block_on(kefu_sql::shell::run(&engine, &destination.on_stdout()))?);
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
                Failure::new(
                    e.kind(),
                    format!("{origin}: {}", engine.explain(script, &e.to_string())),
                )
            })?;
        }
        Ok(())
    })
}
