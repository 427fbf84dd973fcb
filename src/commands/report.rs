//! `kefu report`: the monthly (half-year, annual) customer-service report.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use kefu_model::ErrorKind;
use kefu_storage::publish::Target;

use crate::args::{OnCluster, WarehouseArgs};
use crate::exit::{CliResult, Failure};
use crate::progress::BarProgress;

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
    #[command(flatten)]
    pub cluster: OnCluster,
    /// Report from the warehouse as it was after batch N, or at a time (2026-12-01 is the
    /// end of that day): reproduces a report published then. The report records the batch
    /// and table versions it read (tables/_snapshot.json).
    #[arg(long, env = "KEFU_AS_OF", value_name = "BATCH|TIME", value_parser = crate::args::parse_as_of)]
    pub as_of: Option<kefu_storage::AsOf>,
}

fn parse_lang(s: &str) -> Result<kefu_report::Lang, String> {
    s.parse()
        .map_err(|e: kefu_report::ReportError| e.to_string())
}

pub fn report_command(args: &ReportArgs) -> CliResult {
    let library = crate::args::query_library(args.queries.as_deref())
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
    let runtime = crate::args::runtime()?;
    let engine = crate::args::open_engine_at(
        &runtime,
        &args.warehouse.warehouse,
        &kefu_sql::EngineOptions {
            as_of: args.as_of.unwrap_or_default(),
            ..kefu_sql::EngineOptions::default()
        },
        &args.cluster,
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
