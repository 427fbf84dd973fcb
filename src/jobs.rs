//! `kefu run`, `kefu schedule`, `kefu report` and `kefu demo`: argument handling and
//! terminal output over `kefu-jobs` and `kefu-report`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use clap::Args;
use kefu_jobs::schedule::Event;
use kefu_jobs::{Job, JobError, RunOptions, RunReport, RunStatus};
use kefu_storage::publish::Target;

use crate::cli::{CliResult, WarehouseArgs, exit};
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
    /// Run the query and report steps on a Ballista cluster: df://HOST:PORT (see `kefu
    /// cluster`); ingest steps still run here.
    #[arg(long, env = "KEFU_CLUSTER", value_name = "URL")]
    pub cluster: Option<String>,
    /// The cluster's TLS directory (`kefu cluster certs`), when its members take only
    /// TLS connections from holders of its certificate.
    #[arg(long, env = "KEFU_CLUSTER_TLS", value_name = "DIR")]
    pub cluster_tls: Option<PathBuf>,
}

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// What to report: a month (2026-11) for the monthly report, a half year (2026-H1,
    /// 2026-H2) for the half-year edition, a year (2026) for the annual one. Each compares
    /// with the period before (环比; not the annual one) and the same period a year
    /// earlier (同比), and its trends run from a year before its start.
    ///
    /// A date expression names the month holding that day, as in job files: last_month,
    /// "today - 1 month", month_start, 2026-11-15 (today in the warehouse's calendar).
    #[arg(
        long,
        visible_alias = "period",
        value_name = "YYYY-MM|YYYY-Hn|YYYY|DATE_EXPR"
    )]
    pub month: String,
    /// Only this region (its code, e.g. beijing); default all.
    #[arg(long)]
    pub region: Option<String>,
    /// Language of the page and summary: zh (中文) or en.
    #[arg(long, default_value = "zh", value_parser = parse_lang)]
    pub lang: kefu_report::Lang,
    /// Directory (or object-store URL) for index.html and tables/*.csv.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub out: String,
    /// A headline KPI's target, marked on the page where missed (repeatable): e.g.
    /// answer_rate=90%, on_time_rate=0.97, complaints=120, asa_s=15, satisfaction=none.
    /// The usual ones apply otherwise: answer_rate 85%, on_time_rate 95%, satisfaction
    /// 90%, asa_s 20.
    #[arg(long = "target", value_name = "KPI=VALUE")]
    pub targets: Vec<String>,
    /// Directory of .sql files that replace or add to the named queries.
    #[arg(long, env = "KEFU_QUERIES", value_name = "DIR")]
    pub queries: Option<PathBuf>,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Run the report's queries on a Ballista cluster: df://HOST:PORT (see `kefu cluster`).
    #[arg(long, env = "KEFU_CLUSTER", value_name = "URL")]
    pub cluster: Option<String>,
    /// The cluster's TLS directory (`kefu cluster certs`), when its members take only
    /// TLS connections from holders of its certificate.
    #[arg(long, env = "KEFU_CLUSTER_TLS", value_name = "DIR")]
    pub cluster_tls: Option<PathBuf>,
    /// Report from the warehouse as it was after batch N, or at a time (2026-12-01 is the
    /// end of that day): reproduces a report published then. The report records the batch
    /// and table versions it read (tables/_snapshot.json).
    #[arg(long, env = "KEFU_AS_OF", value_name = "BATCH|TIME", value_parser = crate::sql::parse_as_of)]
    pub as_of: Option<kefu_storage::AsOf>,
}

/// A period (`2026-11`, `2026-H1`, `2026`) or the month holding a date expression's day,
/// evaluated on `today`.
fn resolve_period(text: &str, today: NaiveDate) -> Result<kefu_report::ReportPeriod, String> {
    match text.parse::<kefu_report::ReportPeriod>() {
        Ok(period) => Ok(period),
        Err(not_a_period) => match kefu_jobs::dates::eval(text, today) {
            Ok(day) => Ok(kefu_report::ReportPeriod::month(day)),
            Err(not_a_date) => Err(format!(
                "{not_a_period}; nor a date expression: {not_a_date}"
            )),
        },
    }
}

fn parse_lang(s: &str) -> Result<kefu_report::Lang, String> {
    s.parse()
        .map_err(|e: kefu_report::ReportError| e.to_string())
}

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

fn job_error_code(e: &JobError) -> u8 {
    match e {
        JobError::Config { .. } => exit::BAD_CONFIG,
        JobError::Io { .. } => exit::IO,
        JobError::Locked { .. } => exit::LOCKED,
        JobError::Run(_) => exit::FAILURE,
    }
}

fn status_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Ok | RunStatus::NothingToDo => exit::OK,
        RunStatus::Rejected => exit::REJECTS,
        RunStatus::PartialFailure | RunStatus::MissingDeliveries => exit::PARTIAL,
        RunStatus::Failed => exit::FAILURE,
    }
}

fn load_job(path: &Path) -> Result<Job, (u8, String)> {
    Job::load(path).map_err(|e| (job_error_code(&e), e.to_string()))
}

/// The sessions of `kefu run --cluster URL`: on that Ballista cluster.
fn cluster_engine(
    url: Option<&str>,
    tls: Option<&Path>,
) -> Result<Option<kefu_jobs::run::EngineOpener>, (u8, String)> {
    let Some(url) = url else {
        return Ok(None);
    };
    #[cfg(feature = "cluster")]
    {
        let url = url.to_string();
        let tls = crate::cluster::load_tls(tls)?;
        kefu_cluster::scheduler_address(&url).map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
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
        Err((
            exit::BAD_CONFIG,
            "this kefu was built without the `cluster` feature (Ballista)".to_string(),
        ))
    }
}

pub fn run_command(args: &RunArgs) -> CliResult {
    let job = load_job(&args.job)?;
    let options = RunOptions {
        engine: cluster_engine(args.cluster.as_deref(), args.cluster_tls.as_deref())?,
        run_date: args.date,
        range: args.from.zip(args.to),
        dry_run: args.dry_run,
        force: args.force,
    };
    if let Some((from, to)) = options.range
        && from >= to
    {
        return Err((
            exit::BAD_CONFIG,
            format!("--from {from} is not before --to {to}"),
        ));
    }
    let progress = BarProgress::new(args.quiet || args.json);
    let report = kefu_jobs::run(&job, &options, &progress)
        .map_err(|e| (job_error_code(&e), e.to_string()))?;
    print_run(&report, args.json);
    finish_run(&report)
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

fn finish_run(report: &RunReport) -> CliResult {
    match status_code(report.status) {
        exit::OK => Ok(()),
        code => {
            let failed: Vec<String> = report
                .steps
                .iter()
                .filter_map(|s| {
                    s.error
                        .as_ref()
                        .map(|e| format!("step {} (line {}): {e}", s.name, s.line))
                })
                .collect();
            Err((code, failed.join("\n")))
        }
    }
}

pub fn schedule_command(args: &ScheduleArgs) -> CliResult {
    let jobs = kefu_jobs::schedule::load_dir(&args.dir)
        .map_err(|e| (job_error_code(&e), e.to_string()))?;
    let scheduled = jobs.iter().filter(|j| j.schedule.is_some()).count();
    for j in jobs.iter().filter(|j| j.schedule.is_none()) {
        eprintln!(
            "kefu: {} has no `schedule`; it only runs with `kefu run`",
            j.path.display()
        );
    }
    if scheduled == 0 {
        return Err((
            exit::BAD_CONFIG,
            format!("no job in {} has a `schedule`", args.dir.display()),
        ));
    }
    println!(
        "scheduling {scheduled} jobs from {} (times on each job's warehouse calendar)",
        args.dir.display()
    );
    let progress = BarProgress::new(true);
    let mut worst = exit::OK;
    loop {
        let now = args
            .now
            .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
        for event in kefu_jobs::schedule::tick(&jobs, now, &progress) {
            let name = match &event {
                Event::Armed { job, .. } | Event::Waiting { job, .. } | Event::Ran { job, .. } => {
                    job
                }
            };
            let zone = jobs
                .iter()
                .find(|j| &j.name == name)
                .map_or(kefu_storage::DEFAULT_TIME_ZONE, |j| j.calendar());
            let stamp = now.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S");
            let next = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or_else(
                    || "never".into(),
                    |t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string(),
                )
            };
            match event {
                Event::Armed { job, next: n } => {
                    println!("[{stamp}] {job}: armed, first run at {}", next(n))
                }
                Event::Waiting { job, next: n } if args.once => {
                    println!("[{stamp}] {job}: not due, next run at {}", next(n))
                }
                Event::Waiting { .. } => {}
                Event::Ran {
                    job,
                    due,
                    missed,
                    result,
                } => {
                    let due = due.with_timezone(&zone).format("%Y-%m-%d %H:%M");
                    let catch_up = if missed > 0 {
                        format!(
                            " (catching up: {missed} earlier scheduled runs were missed; ran once)"
                        )
                    } else {
                        String::new()
                    };
                    match result {
                        Ok(report) => {
                            println!(
                                "[{stamp}] {job}: ran for {due}{catch_up}: {:?}",
                                report.status
                            );
                            for line in report.summary().lines() {
                                println!("    {line}");
                            }
                            worst = worst.max(status_code(report.status));
                        }
                        Err(e) => {
                            println!("[{stamp}] {job}: run for {due} failed: {e}");
                            worst = worst.max(job_error_code(&e));
                        }
                    }
                }
            }
        }
        if args.once {
            return if worst == exit::OK {
                Ok(())
            } else {
                Err((worst, "some scheduled runs failed".into()))
            };
        }
        let now = chrono::Utc::now();
        let wake = jobs
            .iter()
            .filter_map(|j| kefu_jobs::schedule::next_fire(j, now))
            .min()
            .map_or(Duration::from_secs(60), |t| {
                (t - now).to_std().unwrap_or_default()
            });
        // Wake at least once a minute, so a changed clock is noticed.
        std::thread::sleep(wake.min(Duration::from_secs(60)) + Duration::from_millis(200));
    }
}

pub fn report_command(args: &ReportArgs) -> CliResult {
    let library = crate::sql::query_library(args.queries.as_deref())
        .map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
    let runtime = crate::sql::runtime()?;
    let engine = crate::sql::open_engine_at(
        &runtime,
        &args.warehouse.warehouse,
        &kefu_sql::EngineOptions {
            as_of: args.as_of.unwrap_or_default(),
            ..kefu_sql::EngineOptions::default()
        },
        args.cluster.as_deref(),
        args.cluster_tls.as_deref(),
    )?;
    let cwd = std::env::current_dir().map_err(|e| (exit::IO, e.to_string()))?;
    let out = Target::parse_in(&args.out, &cwd).map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
    let mut targets = kefu_report::Targets::usual();
    for target in &args.targets {
        targets
            .set(target)
            .map_err(|e| (exit::BAD_CONFIG, e.to_string()))?;
    }
    let today = chrono::Utc::now()
        .with_timezone(&engine.time_zone())
        .date_naive();
    let period = resolve_period(&args.month, today).map_err(|e| (exit::BAD_CONFIG, e))?;
    let request = kefu_report::ReportRequest {
        period,
        region: args.region.clone(),
        lang: args.lang,
        targets,
    };
    let progress = BarProgress::new(args.quiet);
    let started = Instant::now();
    let written = runtime
        .block_on(async {
            let report = kefu_report::build(&engine, &library, &request, &progress).await?;
            let written = report.publish(&out).await?;
            Ok::<_, kefu_report::ReportError>((report.summary.clone(), written))
        })
        .map_err(|e| {
            let code = match e {
                kefu_report::ReportError::Write(_) => exit::IO,
                kefu_report::ReportError::NoData { .. } => exit::NO_DATA,
                _ => exit::FAILURE,
            };
            (code, e.to_string())
        })?;
    println!("{}\n", written.0);
    println!(
        "report for {} written in {:.1} s: {} ({} files; tables as CSV under tables/)",
        request.label(),
        started.elapsed().as_secs_f64(),
        out.join("index.html"),
        written.1.len()
    );
    Ok(())
}

/// The example job, run by the demo as it is documented.
const DEMO_JOB: &str = include_str!("../fixtures/jobs/monthly.toml");

pub fn demo_command(args: &DemoArgs) -> CliResult {
    let started = Instant::now();
    let dir = std::path::absolute(&args.dir).map_err(|e| (exit::IO, e.to_string()))?;
    std::fs::create_dir_all(&dir).map_err(|e| (exit::IO, format!("{}: {e}", dir.display())))?;
    let progress = BarProgress::new(args.quiet);
    let exports = dir.join("exports");
    let end = NaiveDate::from_ymd_opt(2027, 1, 1).expect("a date");
    let config = kefu_gen::GenConfig {
        customers: args.customers,
        days: args.days,
        start: end - chrono::Days::new(u64::from(args.days)),
        messy: true,
        ..kefu_gen::GenConfig::new(&exports)
    };
    println!(
        "1/4 generating {} days of office exports for {} customers, as offices send them (one archive per region and day, GBK and UTF-8, Chinese headers, tickets in every state, re-sends, late archives, some bad rows) …",
        config.days,
        crate::cli::thousands(u64::from(config.customers))
    );
    let summary = kefu_gen::generate(&config, &progress).map_err(|e| (exit::IO, e.to_string()))?;
    println!(
        "    {} records in {} files under {}",
        crate::cli::thousands(summary.total_rows()),
        summary.files.len(),
        exports.display()
    );
    let deliveries = demo_deliveries(&exports)?;
    println!(
        "2/4 ingesting them day by day as they arrived: {} batches, one per delivery day …",
        deliveries.len()
    );
    let ingest_started = Instant::now();
    let location = kefu_storage::WarehouseLocation::parse_in("warehouse", &dir)
        .map_err(|e| (exit::IO, e.to_string()))?;
    let warehouse =
        kefu_storage::Warehouse::open(&location).map_err(|e| (exit::IO, e.to_string()))?;
    let mut totals = kefu_storage::TableCounts::default();
    use kefu_progress::Progress;
    progress.start(
        "batches",
        Some(deliveries.len() as u64),
        kefu_progress::Unit::Items("days"),
    );
    // The exports hold 0.2% bad rows; a small demo's day is a few dozen records, where
    // one bad row is over the usual 5%: the refusal is for a wrong profile, not for that.
    let options = kefu_ingest::IngestOptions {
        max_reject_ratio: 0.2,
        ..kefu_ingest::IngestOptions::default()
    };
    for paths in &deliveries {
        let report = kefu_ingest::ingest(paths, &warehouse, &options, &kefu_progress::NoProgress)
            .map_err(|e| (exit::IO, e.to_string()))?;
        totals.add(&report.totals());
        progress.advance(1);
    }
    progress.finish();
    println!(
        "    {} records in {:.0} s: {}",
        crate::cli::thousands(totals.records),
        ingest_started.elapsed().as_secs_f64(),
        crate::status::counts_text(&totals)
    );
    let job_path = dir.join("monthly.toml");
    kefu_storage::publish::write_local(&job_path, DEMO_JOB.as_bytes())
        .map_err(|e| (exit::IO, format!("{}: {e}", job_path.display())))?;
    let job = load_job(&job_path)?;
    // Run as on the day after the last generated day: the report is for the last month.
    let run_date = config.start + chrono::Days::new(u64::from(config.days));
    println!(
        "3/4 running the job {} for {run_date}: its ingest (nothing new), the KPI tables, the monthly report …",
        job_path.display()
    );
    let options = RunOptions {
        run_date: Some(run_date),
        ..RunOptions::default()
    };
    let report = kefu_jobs::run(&job, &options, &progress)
        .map_err(|e| (job_error_code(&e), e.to_string()))?;
    for line in report.summary().lines() {
        println!("    {line}");
    }
    finish_run(&report)?;
    let page = report
        .steps
        .iter()
        .filter(|s| s.kind == "report")
        .flat_map(|s| s.outputs.clone())
        .next_back()
        .unwrap_or_else(|| {
            let month =
                kefu_jobs::dates::eval("month_start - 1 month", run_date).unwrap_or(run_date);
            dir.join("kpi/reports")
                .join(month.format("%Y-%m").to_string())
                .join("index.html")
                .display()
                .to_string()
        });
    let warehouse = dir.join("warehouse");
    println!("4/4 done in {:.0} s.\n", started.elapsed().as_secs_f64());
    println!("Open the monthly report:  {page}");
    println!("KPI tables:               {}", dir.join("kpi").display());
    println!("\nTry some SQL on the warehouse:");
    let w = warehouse.display();
    let kefu = command_name();
    println!(
        "  {kefu} sql --warehouse {w} -e \"SELECT region, count(*) AS offered, round(CAST(count(answered_at) AS DOUBLE) / count(*), 4) AS answer_rate FROM calls WHERE direction = 'inbound' AND queued_at IS NOT NULL GROUP BY region ORDER BY region\""
    );
    println!(
        "  {kefu} sql --warehouse {w} -e \"SELECT local_trunc('month', created_at) AS month, count(*) AS complaints FROM tickets WHERE kind = 'complaint' GROUP BY 1 ORDER BY 1\""
    );
    println!(
        "  {kefu} sql --warehouse {w} -e \"SELECT branch_id, round(avg(date_diff('second', arrived_at, called_at)) / 60, 1) AS avg_wait_min FROM visits WHERE called_at IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 5\""
    );
    let named = kefu_sql::QueryLibrary::embedded().map_or(0, |l| l.iter().count());
    println!("\nOr a named KPI query (kefu query --list shows all {named}):");
    println!(
        "  {kefu} query churn_at_risk --warehouse {w} --param as_of={run_date} --param top=10"
    );
    Ok(())
}

/// The files of each delivery day of a `kefu gen --messy` output, in date order.
fn demo_deliveries(exports: &Path) -> Result<Vec<Vec<String>>, (u8, String)> {
    let path = exports.join("manifest.json");
    let manifest: serde_json::Value = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| (exit::IO, format!("{}: {e}", path.display())))?;
    Ok(manifest["deliveries"]
        .as_array()
        .map(|days| {
            days.iter()
                .map(|d| {
                    d["paths"]
                        .as_array()
                        .map(|p| {
                            p.iter()
                                .filter_map(|p| p.as_str())
                                .map(|p| exports.join(p).display().to_string())
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default())
}

/// How to call this binary in printed examples: `kefu` when that is what PATH finds,
/// else its full path (e.g. after `cargo run`).
fn command_name() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "kefu".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::canonicalize(dir.join("kefu")).is_ok_and(|p| p == exe))
    });
    if on_path {
        "kefu".into()
    } else {
        exe.display().to_string()
    }
}
