//! The command-line arguments of the warehouse's own commands (`kefu batch`, `compact`,
//! `vacuum`, `convert`) and the `--warehouse` flag every command shares, with their help
//! text. The `cli` feature builds them; the `kefu` binary parses them and calls this
//! crate, as Ballista's scheduler does with its config.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::maintain::CompactOptions;
use crate::{AsOf, StoredTable, WarehouseLocation};

/// Where the warehouse lives: every command that reads or writes one takes this.
///
/// A local directory (the embedded default; no server needed) or an object-store URL
/// (`file:///abs/path`, `s3://bucket/prefix`).
#[derive(Debug, Clone, Args)]
pub struct WarehouseArgs {
    /// Warehouse location: a directory or an object-store URL (file://, s3://).
    #[arg(
        long,
        env = "KEFU_WAREHOUSE",
        default_value = crate::DEFAULT_WAREHOUSE,
        value_name = "DIR_OR_URL"
    )]
    pub warehouse: WarehouseLocation,
}

/// `--as-of`'s parser: a batch number or a time.
pub fn parse_as_of(s: &str) -> Result<AsOf, String> {
    s.parse()
}

/// List the warehouse's batches and other operations; take a batch back.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu batch list\n  \
    kefu batch revert 42 --note \"wrong profile\"")]
pub struct BatchArgs {
    #[command(subcommand)]
    pub command: BatchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// List the warehouse's operations: ingest batches (with what became of their
    /// records, per table), compactions, reverts.
    List {
        #[command(flatten)]
        warehouse: WarehouseArgs,
        /// Operations to list, newest first (0: all).
        #[arg(long, default_value_t = 20)]
        last: usize,
        /// Print as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Take a batch back: every table returns to its state before it, and its sources
    /// count as never ingested (so corrected files, or the same ones with a corrected
    /// profile, can be ingested again).
    ///
    /// Later batches may hold newer versions of the same records, so reverting a batch
    /// that is not the newest is refused, naming them: revert them first (newest first),
    /// or all together with --cascade. Compactions in between are no obstacle. The files
    /// of the earlier state must still exist (`kefu vacuum` deletes them after its
    /// retention period). A revert is itself an operation of the ledger, and time travel
    /// to before it still works.
    #[command(after_help = "Examples:\n  \
        kefu batch list\n  \
        kefu batch revert 42 --note \"wrong profile for shenzhen\"\n  \
        kefu batch revert 40 --cascade   (40 and every batch after it)")]
    Revert {
        /// The batch number (`kefu batch list`).
        seq: u64,
        #[command(flatten)]
        warehouse: WarehouseArgs,
        /// Also revert every batch after it.
        #[arg(long)]
        cascade: bool,
        /// Why, recorded in the ledger.
        #[arg(long)]
        note: Option<String>,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Rewrite partitions of many small files (one per daily batch, plus upsert rewrites)
/// as few large ones, sorted by region and event time again.
///
/// The data does not change: readers at any version, and the jobs' cached results,
/// are unaffected. Ingest does this by itself for partitions over --compact-after files.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu compact\n  \
    kefu compact --table calls --partition 2026-11")]
pub struct CompactArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Only this table (repeatable; all by default): calls, tickets, callbacks, visits,
    /// customers, _rejects.
    #[arg(long, value_parser = parse_table)]
    pub table: Vec<StoredTable>,
    /// Only this partition: a month (YYYY-MM), or a table name for _rejects (repeatable).
    #[arg(long, value_name = "PARTITION")]
    pub partition: Vec<String>,
    /// Compact a partition holding at least this many files.
    #[arg(long, default_value_t = 2)]
    pub min_files: usize,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_table(s: &str) -> Result<StoredTable, String> {
    StoredTable::from_name(s.trim()).ok_or_else(|| {
        format!("unknown table '{s}' (calls, tickets, callbacks, visits, customers, _rejects)")
    })
}

impl From<&CompactArgs> for CompactOptions {
    fn from(args: &CompactArgs) -> Self {
        CompactOptions {
            tables: if args.table.is_empty() {
                StoredTable::ALL.to_vec()
            } else {
                args.table.clone()
            },
            partitions: args.partition.clone(),
            min_files: args.min_files,
            settled_rows: None,
        }
    }
}

/// Delete files no table version within the retention period names: those replaced by
/// upserts and compactions, and those an interrupted batch left. Time travel reaches
/// back as far as the retention period, no further.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu vacuum --dry-run\n  \
    kefu vacuum --retain 30d")]
pub struct VacuumArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Keep files removed from the tables less than this long ago (e.g. 7d, 168h,
    /// 30min): readers of those versions, and time travel to them, keep working. At
    /// least 1h unless --force.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub retain: Duration,
    /// Allow a retention under one hour (a query running longer than that on an older
    /// version may then find its files gone).
    #[arg(long)]
    pub force: bool,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (e.g. 7d, 168h, 30min)"))
}

impl VacuumArgs {
    /// Why this retention is refused (under an hour without --force), if it is.
    pub fn refusal(&self) -> Option<String> {
        (self.retain < Duration::from_secs(3600) && !self.force).then(|| {
            format!(
                "--retain {} is under one hour: a reader of an older version could lose its files mid-query; add --force if no reader can be that old",
                humantime::format_duration(self.retain)
            )
        })
    }
}

/// Convert a warehouse of an earlier kefu (Hive-partitioned Parquet with its own
/// ledger) into Delta tables, in place. Its batches' sources stay ingested. Run it
/// with no other kefu writing to the warehouse; if interrupted, run it again.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The convention every warehouse command shares: flag, env var, default, validation.
    #[test]
    fn warehouse_argument_convention() {
        #[derive(Debug, Parser)]
        struct Probe {
            #[command(flatten)]
            wh: WarehouseArgs,
        }
        let default = Probe::try_parse_from(["probe"]).unwrap();
        assert!(
            default
                .wh
                .warehouse
                .url()
                .as_str()
                .ends_with("/kefu-warehouse/")
        );
        let s3 = Probe::try_parse_from(["probe", "--warehouse", "s3://b/p"]).unwrap();
        assert_eq!(s3.wh.warehouse.url().as_str(), "s3://b/p/");
        let err = Probe::try_parse_from(["probe", "--warehouse", "ftp://x/y"]).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }
}
