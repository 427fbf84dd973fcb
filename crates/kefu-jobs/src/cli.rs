//! The command-line arguments of `kefu run`, `kefu schedule` and `kefu demo`, with their
//! help text (the `cli` feature; the kefu binary parses them and calls this crate).

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;
use kefu_sql::cli::OnCluster;

/// Run a job file: ingest, refresh KPI tables, build the monthly report.
///
/// Steps run in order. Incremental: a query step's range is cut into periods
/// (`partition`), and only periods whose warehouse data changed since the last run
/// are recomputed; a run with no new data does nothing and says so. Outputs are
/// replaced atomically (a reader never sees half a file), a lock keeps two runs of one
/// job apart, and a JSON run report goes to <output_dir>/_runs/.
///
/// Exit status: 0 success (or nothing to do), 1 every step failed, 2 bad job file or
/// arguments, 3 an ingest was refused for too many rejected records, 4 files could
/// not be read or written, 5 partial failure (some steps failed), 6 the job is
/// already running.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu run fixtures/jobs/monthly.toml\n  \
    kefu run nightly.toml --date 2026-12-01 --dry-run\n  \
    kefu run nightly.toml --from 2026-01-01 --to 2026-07-01   (backfill)\n  \
    kefu run nightly.toml --json > run.json")]
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

/// Run every job of a directory on its cron `schedule`, in the foreground.
///
/// For teams without cron or Airflow. Times are on each job's warehouse calendar (its
/// `time_zone`, else the warehouse's). After downtime, a job
/// whose scheduled runs were missed runs once (catch-up), not once per missed time.
/// Each run is logged on stdout and writes its run report.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu schedule jobs/\n  \
    kefu schedule jobs/ --once   (run what is due now, then exit)")]
pub struct ScheduleArgs {
    /// The directory of job files (*.toml); jobs with a `schedule` run on it.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Run what is due now (catching up once after downtime) and exit, instead of
    /// staying in the foreground.
    #[arg(long)]
    pub once: bool,
    /// Pretend the time is this (RFC 3339), for trying out a schedule.
    #[arg(long, hide = true, value_name = "TIME")]
    pub now: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// The tour: generate 25 months of office exports as they really arrive (December
/// 2024 to December 2026, so every 同比 has a value), ingest them day by day (one
/// batch per delivery day, as a scheduled job would), run the KPI job, write the
/// report.
///
/// In DIR (default ./kefu-demo): exports/ (office exports for 100,000 customers,
/// with manifest.json), warehouse/, monthly.toml (the example job),
/// kpi/ (KPI tables, run reports and reports/<month>/index.html).
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo's exports, warehouse, KPI tables and report go.
    #[arg(long, default_value = "kefu-demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Customers at the start.
    #[arg(long, default_value_t = 100_000)]
    pub customers: u32,
    /// Days of logs, ending on 2026-12-31: the default 761 start on 2024-12-01, 25
    /// months, so that the December 2026 report has its 13-month trend and every 同比
    /// (December 2025, January–December 2025 for the year to date) has a value.
    #[arg(long, default_value_t = 761, value_parser = clap::value_parser!(u32).range(31..=3660))]
    pub days: u32,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}
