//! `kefu run`, `kefu schedule`, `kefu report` and `kefu demo`: argument handling and
//! terminal output over `kefu-jobs` and `kefu-report`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use clap::Args;
use kefu_jobs::{Job, RunOptions, RunReport};
use kefu_storage::publish::Target;

use crate::cli::WarehouseArgs;
use crate::exit::{self, CliResult, Failure};
use crate::progress::BarProgress;
use kefu_model::ErrorKind;

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

fn load_job(path: &Path) -> Result<Job, Failure> {
    Ok(Job::load(path)?)
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
        let tls = crate::cluster::load_tls(tls)?;
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
        return Err(Failure::new(
            ErrorKind::Config,
            format!("--from {from} is not before --to {to}"),
        ));
    }
    let progress = BarProgress::new(args.quiet || args.json);
    let report = kefu_jobs::run(&job, &options, &progress)?;
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
    match report.status.kind() {
        None => Ok(()),
        Some(kind) => {
            let failed: Vec<String> = report
                .steps
                .iter()
                .filter_map(|s| {
                    s.error
                        .as_ref()
                        .map(|e| format!("step {} (line {}): {e}", s.name, s.line))
                })
                .collect();
            Err(Failure::new(kind, failed.join("\n")))
        }
    }
}

pub fn schedule_command(args: &ScheduleArgs) -> CliResult {
    let jobs = kefu_jobs::schedule::load_dir(&args.dir)?;
    let scheduled = jobs.iter().filter(|j| j.schedule.is_some()).count();
    for j in jobs.iter().filter(|j| j.schedule.is_none()) {
        eprintln!(
            "kefu: {} has no `schedule`; it only runs with `kefu run`",
            j.path.display()
        );
    }
    if scheduled == 0 {
        return Err(Failure::new(
            ErrorKind::Config,
            format!("no job in {} has a `schedule`", args.dir.display()),
        ));
    }
    println!(
        "scheduling {scheduled} jobs from {} (times on each job's warehouse calendar)",
        args.dir.display()
    );
    let progress = BarProgress::new(true);
    let now = args.now.map(|t| t.with_timezone(&chrono::Utc));
    let failures = kefu_jobs::schedule::run(&jobs, args.once, now, &progress, |line| {
        println!("{line}");
    });
    // The worst failure decides the exit code: the highest code.
    match failures.into_iter().max_by_key(|kind| exit::code(*kind)) {
        None => Ok(()),
        Some(kind) => Err(Failure::new(kind, "some scheduled runs failed")),
    }
}

pub fn report_command(args: &ReportArgs) -> CliResult {
    let library = crate::sql::query_library(args.queries.as_deref())
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
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
    let cwd = std::env::current_dir().map_err(|e| Failure::new(ErrorKind::Io, e.to_string()))?;
    let out = Target::parse_in(&args.out, &cwd)
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
    let today = kefu_model::calendar::today(engine.time_zone());
    let request = kefu_report::ReportRequest {
        period: kefu_report::ReportPeriod::resolve(&args.month, today)?,
        region: args.region.clone(),
        lang: args.lang,
        targets: kefu_report::Targets::usual_with(&args.targets)?,
    };
    let progress = BarProgress::new(args.quiet);
    let started = Instant::now();
    let written = runtime.block_on(async {
        let report = kefu_report::build(&engine, &library, &request, &progress).await?;
        let written = report.publish(&out).await?;
        Ok::<_, kefu_report::ReportError>((report.summary.clone(), written))
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
pub fn demo_command(args: &DemoArgs) -> CliResult {
    let started = Instant::now();
    let options = kefu_jobs::demo::DemoOptions {
        dir: std::path::absolute(&args.dir).map_err(|e| Failure::new(ErrorKind::Io, e))?,
        customers: args.customers,
        days: args.days,
    };
    let progress = BarProgress::new(args.quiet);
    let demo = kefu_jobs::demo::run(&options, &progress, &mut |line| println!("{line}"))?;
    finish_run(&demo.run)?;
    println!("4/4 done in {:.0} s.\n", started.elapsed().as_secs_f64());
    println!("Open the monthly report:  {}", demo.report_page);
    println!("KPI tables:               {}", demo.kpi.display());
    println!("\nTry some SQL on the warehouse:");
    let w = demo.warehouse.display();
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
        "  {kefu} query churn_at_risk --warehouse {w} --param as_of={} --param top=10",
        demo.run_date
    );
    Ok(())
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
