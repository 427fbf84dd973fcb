//! `kefu sql`: ad hoc SQL, as scripts or in the interactive shell.

use std::io::IsTerminal;

use kefu_model::{Classify, ErrorKind};
use kefu_sql::cli::SqlArgs;
use kefu_sql::output::run_script;
use tokio::runtime::Runtime;

use crate::args::open_engine;
use crate::exit::{CliResult, Failure};

pub fn sql_command(args: &SqlArgs, runtime: &Runtime) -> CliResult {
    let engine = open_engine(runtime, &args.session)?;
    let destination = args.session.destination()?;
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
