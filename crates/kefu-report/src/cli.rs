//! The command-line arguments of `kefu report`, with their help text (the `cli` feature;
//! the kefu binary parses them and calls [`crate::build`]).

use std::path::PathBuf;

use clap::Args;
use kefu_sql::cli::OnCluster;
use kefu_storage::cli::WarehouseArgs;

/// Write the monthly customer-service report (月度客服报告) for one month.
///
/// One self-contained HTML page (inline SVG charts; opens without a network) with the
/// headline KPIs beside the previous month (环比) and the same month last year (同比),
/// 13-month trends, the branch ranking (top 5 / bottom 5), the complaint mix and hot
/// spots, waits by hour, churn and its pre-churn signals, and a generated summary;
/// plus every table behind it as CSV under tables/. Every figure comes from the
/// named queries (tables/_queries.csv lists their parameters).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu report --month 2026-12 --out report-2026-12\n  \
    kefu report --month 2026-12 --region beijing --lang en --out beijing-2026-12")]
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
    pub lang: crate::Lang,
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
    #[arg(long, env = "KEFU_AS_OF", value_name = "BATCH|TIME", value_parser = kefu_storage::cli::parse_as_of)]
    pub as_of: Option<kefu_storage::AsOf>,
}

fn parse_lang(s: &str) -> Result<crate::Lang, String> {
    s.parse().map_err(|e: crate::ReportError| e.to_string())
}
