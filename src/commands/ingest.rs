//! `kefu ingest`: office exports into the warehouse as one batch.

use std::path::PathBuf;

use clap::Args;
use kefu_model::Table;

use crate::args::WarehouseArgs;
use crate::exit::CliResult;
use crate::progress::BarProgress;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files, directories, globs or archives to ingest.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Mapping profile (TOML) for sources the built-in profile does not understand.
    #[arg(long, env = "KEFU_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// The table every source feeds (default: from the file name or header).
    #[arg(long)]
    pub table: Option<Table>,
    /// Refuse the whole batch when more than this share of its records is rejected.
    #[arg(long, default_value_t = kefu_ingest::ingest::DEFAULT_MAX_REJECT_RATIO, value_name = "R")]
    pub max_reject_ratio: f64,
    /// Refuse the whole batch when more than this share of its records (and more than 20)
    /// repeat a key their own source gave before: a key mapped from a column that is
    /// unique only together with another would otherwise keep one row of many, silently.
    #[arg(long, default_value_t = kefu_ingest::ingest::DEFAULT_MAX_DUPLICATE_RATIO, value_name = "R")]
    pub max_duplicate_ratio: f64,
    /// Refuse a compressed source (gzip, zstd, zip, tar.gz) that expands to more than N
    /// times its size (past 16 MiB): an export compresses 5–20×; a "zip bomb" far more.
    #[arg(long, default_value_t = kefu_ingest::source::DEFAULT_MAX_DECOMPRESSION_RATIO, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_decompression_ratio: u64,
    /// After the batch, compact each partition it touched that holds more than N small files
    /// (0: never). Files of 131,072 rows or more stay as they are unless deletion vectors
    /// removed a quarter of their rows; `kefu compact` rewrites them too.
    #[arg(long, env = "KEFU_COMPACT_AFTER", default_value_t = kefu_ingest::ingest::DEFAULT_COMPACT_AFTER, value_name = "N")]
    pub compact_after: usize,
    /// The calendar of a warehouse this ingest creates: an IANA zone such as Europe/London.
    /// Its months partition the tables; reports, the local_* functions and schedules count
    /// its days, hours and weekdays (DST included). Fixed at creation (default
    /// Asia/Shanghai); an existing warehouse on another zone is refused. Sources whose
    /// profile names no time_zone are read as local times of this zone.
    #[arg(long, value_name = "ZONE", value_parser = parse_time_zone)]
    pub time_zone: Option<chrono_tz::Tz>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_time_zone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not an IANA time zone (e.g. Asia/Shanghai, Europe/London)"))
}

pub fn ingest_command(args: &IngestArgs) -> CliResult {
    let profile = kefu_ingest::Profile::load_or_builtin(args.profile.as_deref(), args.table)?;
    let options = kefu_ingest::IngestOptions {
        profile,
        max_reject_ratio: args.max_reject_ratio,
        compact_after: args.compact_after,
        time_zone: args.time_zone,
        max_duplicate_ratio: args.max_duplicate_ratio,
        decompression: kefu_ingest::DecompressionLimits {
            max_ratio: args.max_decompression_ratio,
            ..Default::default()
        },
        ..kefu_ingest::IngestOptions::default()
    };
    let progress = BarProgress::new(args.quiet || args.json);
    let report = kefu_ingest::ingest_at(
        &args.sources,
        &args.warehouse.warehouse,
        &options,
        &progress,
    )?;
    crate::print(&report, args.json);
    Ok(())
}
