//! The command-line arguments of `kefu gen`, with their help text (the `cli` feature;
//! the kefu binary parses them and calls [`crate::generate`]).

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, ValueEnum};

use crate::{GenConfig, OutputFormat};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// CSV with a header row, UTF-8, timestamps in RFC 3339 UTC.
    Csv,
    /// JSON Lines, one object per row, nulls explicit.
    Jsonl,
}

/// Generate realistic, deterministic customer-service logs (the five canonical tables).
///
/// Plain output is one file per table (calls, tickets, callbacks, visits, customers) in
/// canonical form: the world as known at the end of the period (the final truth).
///
/// With --messy, the files are office exports as they really arrive: one archive per
/// region and day holding only what was known that day (calls that ended, tickets
/// received or changed — in their state that day —, callbacks, visits, customers
/// opened, changed or closed), full customer snapshots monthly; GBK or UTF-8 with BOM,
/// Chinese headers, split date/time columns; some archives late, re-sent re-zipped,
/// or re-exported for the last week (--resend-rate); and a known set of bad rows.
/// manifest.json lists every file with its delivery day (`deliveries`: what a daily
/// ingest takes as one batch) and every bad row. The newest version of every record
/// over all files is exactly the plain output. The same arguments always produce
/// byte-identical files.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu gen --out data --customers 100000 --days 365\n  \
    kefu gen --out exports --messy --regions 8 --days 30\n  \
    kefu gen --out data --format jsonl --json > summary.json")]
pub struct GenArgs {
    /// Output directory (created if missing; generated files in it are replaced).
    #[arg(long, env = "KEFU_GEN_OUT", default_value = "./kefu-gen-out")]
    pub out: PathBuf,
    /// Customers at the start of the period (about 3 calls, 0.3 tickets and 1 branch visit
    /// per customer per month).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub customers: u32,
    /// Number of days to generate.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=7320))]
    pub days: u32,
    /// First day (local calendar day in Asia/Shanghai, the exports' local time), YYYY-MM-DD.
    #[arg(long, default_value = "2026-01-01")]
    pub start: NaiveDate,
    /// Number of regions (cities), 1 to 32.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub regions: u16,
    /// Random seed: the same seed and arguments give byte-identical output.
    #[arg(long, env = "KEFU_SEED", default_value_t = 42)]
    pub seed: u64,
    /// File format of plain output (ignored with --messy, which writes office CSV exports).
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FormatArg,
    /// Write office-style exports: archives per region and day, mixed encodings, bad rows.
    #[arg(long)]
    pub messy: bool,
    /// With --messy: share of extra, deliberately bad rows (0 to 0.2).
    #[arg(long, default_value_t = 0.002)]
    pub bad_row_rate: f64,
    /// With --messy: how often offices deliver at least once, not exactly once (0 to
    /// 0.5): the chance that a day's archive arrives 2–4 days late, that it is sent
    /// again (re-zipped) days later, and that an office re-exports its last seven days.
    /// 0: one archive per region and day, delivered the next morning.
    #[arg(long, default_value_t = 0.05, value_name = "RATE")]
    pub resend_rate: f64,
    /// Calls per customer per month.
    #[arg(long, default_value_t = 3.0)]
    pub calls_per_customer_month: f64,
    /// Work orders, inquiries and suggestions per customer per month.
    #[arg(long, default_value_t = 0.225)]
    pub tickets_per_customer_month: f64,
    /// First complaints per customer per month (0.0015: 15 per 10,000 customers, as
    /// service companies see; repeats and escalations come on top).
    #[arg(long, default_value_t = 0.0015)]
    pub complaints_per_customer_month: f64,
    /// Branch visits per customer per month.
    #[arg(long, default_value_t = 1.0)]
    pub visits_per_customer_month: f64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl From<&GenArgs> for GenConfig {
    fn from(a: &GenArgs) -> Self {
        GenConfig {
            out: a.out.clone(),
            customers: a.customers,
            days: a.days,
            start: a.start,
            regions: a.regions,
            seed: a.seed,
            format: match a.format {
                FormatArg::Csv => OutputFormat::Csv,
                FormatArg::Jsonl => OutputFormat::Jsonl,
            },
            messy: a.messy,
            bad_row_rate: a.bad_row_rate,
            resend_rate: a.resend_rate,
            calls_per_customer_month: a.calls_per_customer_month,
            tickets_per_customer_month: a.tickets_per_customer_month,
            complaints_per_customer_month: a.complaints_per_customer_month,
            visits_per_customer_month: a.visits_per_customer_month,
        }
    }
}
