//! `kefu run`: a job file's steps, incrementally.

use kefu_jobs::cli::RunArgs;
use kefu_jobs::{RunOptions, RunReport};
use kefu_model::ErrorKind;
use tokio::runtime::Runtime;

use crate::args::cluster_opener;
use crate::exit::{CliResult, Failure};
use crate::progress::BarProgress;

pub fn run_command(args: &RunArgs, runtime: &Runtime) -> CliResult {
    let job = kefu_jobs::Job::load(&args.job)?;
    let options = RunOptions {
        engine: cluster_opener(&args.cluster)?,
        run_date: args.date,
        range: args.from.zip(args.to),
        dry_run: args.dry_run,
        force: args.force,
    };
    if let Some((from, to)) = options.range
        && from >= to
    {
        return Err(Failure::new(
            ErrorKind::Config,
            format!("--from {from} is not before --to {to}"),
        ));
    }
    let progress = BarProgress::new(args.quiet || args.json);
    let report = kefu_jobs::run(runtime.handle(), &job, &options, &progress)?;
    print_run(&report, args.json);
    Ok(report.outcome()?)
}

fn print_run(report: &RunReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serialises")
        );
    } else {
        println!("{}", report.summary());
    }
}
