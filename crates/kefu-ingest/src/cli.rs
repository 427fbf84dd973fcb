//! The command-line arguments of `kefu check`, `kefu ingest` and `kefu status`, with their
//! help text (the `cli` feature; the kefu binary parses them and calls this crate).

use std::path::PathBuf;

use clap::Args;
use kefu_model::Table;
use kefu_storage::cli::WarehouseArgs;

use crate::IngestError;
use crate::ingest::IngestOptions;
use crate::profile::Profile;
use crate::source::DecompressionLimits;

/// Check office exports against the model without ingesting them.
///
/// Every record is read, mapped and validated exactly as ingest will: files, directories,
/// globs, zip/tar/tar.gz archives and .gz/.zst files; UTF-8 (with or without BOM) or
/// GBK/GB18030, detected; English or Chinese headers, or a mapping profile. Problems are
/// reported with file, archive member, line, column and reason. Nothing is written.
///
/// Exit status: 0 all records valid, 3 some records would be rejected, 4 some sources
/// cannot be read at all.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu check exports/\n  \
    kefu check 'exports/beijing/*.zip' --examples 20\n  \
    kefu check baltimore_311_sample.csv --profile fixtures/profiles/baltimore_311.toml --json")]
pub struct CheckArgs {
    /// Files, directories, globs or archives to check.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Mapping profile (TOML) for sources the built-in profile does not understand.
    #[arg(long, env = "KEFU_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// The table every source feeds (default: from the file name or header).
    #[arg(long)]
    pub table: Option<Table>,
    /// Rejected records to show per source.
    #[arg(long, default_value_t = 5)]
    pub examples: usize,
    /// Mapped rows to show per source, as they would land (default: 5 with --profile, so
    /// that a profile can be written by trial; else 0). Times are shown in the profile's
    /// zone.
    #[arg(long, value_name = "N")]
    pub rows: Option<usize>,
    /// List every source, not only those with problems.
    #[arg(long)]
    pub all: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Ingest office exports into the warehouse as one batch, exactly once per record.
///
/// Sources are files, directories, globs, zip/tar/tar.gz archives, .gz/.zst files,
/// file:// URLs and s3://bucket/key or s3://bucket/prefix/ objects (AWS_* environment
/// variables), in CSV or TSV (delimiter sniffed), JSON Lines or Excel .xlsx (first
/// sheet), UTF-8 (with or without BOM) or GBK/GB18030 (detected), with English or
/// Chinese headers or a mapping profile. Sources already ingested (same content) are
/// skipped.
///
/// Every record is keyed (call_id, ticket_id, callback_id, visit_id, customer_id): the
/// warehouse holds each record's newest version, whatever file it came in and in
/// whatever order files arrive. A newer version (a later updated_at, else further in
/// its workflow) replaces the stored one; an identical one (a re-sent or overlapping
/// export) or an older one (a late export) is counted and dropped. Per table the batch
/// counts new, updated, unchanged, stale and rejected records, which add up to the
/// records read. Rejects land in `_rejects` with file, member, line, column, reason and
/// the raw record. The batch commits in every table at once, or not at all (if reading
/// fails, or the rejected share exceeds --max-reject-ratio); `kefu batch revert` takes
/// it back.
///
/// Tables are Delta Lake tables of zstd Parquet (sorted by region and event time, page
/// index on) under <warehouse>/<table>/, partitioned by month of the warehouse's calendar
/// (--time-zone when it is created; Asia/Shanghai by default). A
/// partition left with more than --compact-after small files is compacted after the
/// batch (the small files merge; large ones stay).
///
/// Exit status: 0 committed (or nothing new), 2 bad arguments or profile, 3 too many
/// rejects (nothing committed), 4 a source or the warehouse could not be read or written.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu ingest exports/ --warehouse wh\n  \
    kefu ingest 'exports/*/beijing_202601*.zip' --warehouse wh --json\n  \
    kefu ingest baltimore_311_sample.csv --profile fixtures/profiles/baltimore_311.toml")]
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
    #[arg(long, default_value_t = crate::ingest::DEFAULT_MAX_REJECT_RATIO, value_name = "R")]
    pub max_reject_ratio: f64,
    /// Refuse the whole batch when more than this share of its records (and more than 20)
    /// repeat a key their own source gave before: a key mapped from a column that is
    /// unique only together with another would otherwise keep one row of many, silently.
    #[arg(long, default_value_t = crate::ingest::DEFAULT_MAX_DUPLICATE_RATIO, value_name = "R")]
    pub max_duplicate_ratio: f64,
    /// Refuse a compressed source (gzip, zstd, zip, tar.gz) that expands to more than N
    /// times its size (past 16 MiB): an export compresses 5–20×; a "zip bomb" far more.
    #[arg(long, default_value_t = crate::source::DEFAULT_MAX_DECOMPRESSION_RATIO, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_decompression_ratio: u64,
    /// After the batch, compact each partition it touched that holds more than N small files
    /// (0: never). Files of 131,072 rows or more stay as they are unless deletion vectors
    /// removed a quarter of their rows; `kefu compact` rewrites them too.
    #[arg(long, env = "KEFU_COMPACT_AFTER", default_value_t = crate::ingest::DEFAULT_COMPACT_AFTER, value_name = "N")]
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

impl IngestArgs {
    /// The options these arguments ask for, with the profile loaded (`--profile`, else
    /// the built-in one for `--table`).
    pub fn options(&self) -> Result<IngestOptions, IngestError> {
        let profile = Profile::load_or_builtin(self.profile.as_deref(), self.table)?;
        Ok(IngestOptions {
            profile,
            max_reject_ratio: self.max_reject_ratio,
            compact_after: self.compact_after,
            time_zone: self.time_zone,
            max_duplicate_ratio: self.max_duplicate_ratio,
            decompression: DecompressionLimits {
                max_ratio: self.max_decompression_ratio,
                ..Default::default()
            },
            ..IngestOptions::default()
        })
    }
}

/// Show a warehouse: tables with their Delta version, rows, files, partitions and
/// bytes, and the last operations.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Operations to list, newest first.
    #[arg(long, default_value_t = 10)]
    pub batches: usize,
    /// Print as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub deliveries: DeliveriesArgs,
}

/// `kefu status --deliveries`: which office has delivered which day.
#[derive(Debug, Clone, Args)]
pub struct DeliveriesArgs {
    /// Show per region and data day what arrived, when and how big, against the expected
    /// schedule: missing and late deliveries and volumes far from a region's usual level
    /// are flagged. Exits 5 when a delivery past its due time is missing.
    #[arg(long)]
    pub deliveries: bool,
    /// The expected schedule (TOML: regions, pattern, due, due_days_after, volume_low,
    /// volume_high, [region.NAME] due …). Default: every region that has delivered, one
    /// archive per day named REGION_YYYYMMDD.zip|tar.gz, due 06:00 the next morning.
    #[arg(long, value_name = "FILE", requires = "deliveries")]
    pub schedule: Option<PathBuf>,
    /// The last data day to show: a date or a date expression (yesterday, today - 2 days).
    #[arg(
        long,
        value_name = "DAY",
        default_value = "yesterday",
        requires = "deliveries"
    )]
    pub until: String,
    /// How many data days to show, ending with --until.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366), requires = "deliveries")]
    pub days: u32,
}
