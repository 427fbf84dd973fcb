//! `kefu run`: a job file's steps, incrementally.

use std::path::{Path, PathBuf};

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

/// The sessions of `kefu run --cluster URL`: on that Ballista cluster.
fn cluster_engine(
    url: Option<&str>,
    tls: Option<&Path>,
) -> Result<Option<kefu_jobs::run::EngineOpener>, Failure> {
    let Some(url) = url else {
        return Ok(None);
    };
    #[cfg(feature = "cluster")]
    {
        let url = url.to_string();
        let tls = crate::args::load_tls(tls)?;
        kefu_cluster::scheduler_address(&url)
            .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
        Ok(Some(kefu_jobs::run::EngineOpener(std::sync::Arc::new(
            move |warehouse, options| {
                let (url, tls) = (url.clone(), tls.clone());
                Box::pin(async move {
                    kefu_cluster::open_engine(&warehouse, &options, &url, tls.as_ref())
                        .await
                        .map_err(|e| e.to_string())
                })
            },
        ))))
    }
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (url, tls);
        Err(Failure::new(
            ErrorKind::Config,
            "this kefu was built without the `cluster` feature (Ballista)".to_string(),
        ))
    }
}

pub fn run_command(args: &RunArgs) -> CliResult {
    let job = kefu_jobs::Job::load(&args.job)?;
    let options = RunOptions {
        engine: cluster_engine(args.cluster.url.as_deref(), args.cluster.tls.as_deref())?,
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
