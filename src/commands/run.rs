//! `kefu run`: a job file's steps, incrementally.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;
use kefu_jobs::{RunOptions, RunReport};
use kefu_model::ErrorKind;

use crate::args::OnCluster;
use crate::exit::{CliResult, Failure};
use crate::progress::BarProgress;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file (TOML; see fixtures/jobs/monthly.toml).
    #[arg(value_name = "JOB.toml")]
    pub job: PathBuf,
    /// The day the run is for: date expressions (yesterday, month_start - 1 month, …)
    /// are evaluated against it. Default: today in Asia/Shanghai.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
    /// Backfill from this day (inclusive): replaces every step's `from`, and reports
    /// each month of the range. Needs --to.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
    pub from: Option<NaiveDate>,
    /// Backfill up to this day (exclusive). Needs --from.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    pub to: Option<NaiveDate>,
    /// Say which steps and periods would run and why; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Recompute every period and output, even those up to date.
    #[arg(long)]
    pub force: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the run report as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cluster: OnCluster,
}

pub fn run_command(args: &RunArgs) -> CliResult {
    let job = kefu_jobs::Job::load(&args.job)?;
    let options = RunOptions {
        engine: args.cluster.opener()?,
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
    let report = kefu_jobs::run(&job, &options, &progress)?;
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
