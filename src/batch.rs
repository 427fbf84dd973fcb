//! `kefu batch list|revert`, `kefu compact`, `kefu vacuum` and `kefu convert`: argument
//! handling and printing over `kefu_storage::maintain`.

use std::time::Duration;

use clap::{Args, Subcommand};
use kefu_storage::maintain::{self, CompactOptions};
use kefu_storage::report::RevertReport;
use kefu_storage::{StoredTable, Warehouse};

use crate::cli::WarehouseArgs;
use crate::exit::{CliResult, Failure};
use kefu_model::ErrorKind;

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
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

fn parse_table(s: &str) -> Result<StoredTable, String> {
    StoredTable::from_name(s.trim()).ok_or_else(|| {
        format!("unknown table '{s}' (calls, tickets, callbacks, visits, customers, _rejects)")
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (e.g. 7d, 168h, 30min)"))
}

/// The warehouse locked for writing (local), with any interrupted operation finished.
fn open_for_writing(
    args: &WarehouseArgs,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Warehouse, Option<kefu_storage::warehouse::WriterLock>), Failure> {
    let warehouse = crate::sql::open_existing_warehouse(&args.warehouse)?;
    let lock = warehouse
        .lock(|| eprintln!("kefu: another writer is working on the warehouse; waiting for it"))?;
    let recovery = runtime.block_on(warehouse.recover())?;
    for seq in recovery.completed {
        eprintln!("kefu: finished committing operation {seq}, which an earlier run began");
    }
    Ok((warehouse, lock))
}

pub fn batch_command(args: &BatchArgs) -> CliResult {
    let runtime = crate::sql::runtime()?;
    match &args.command {
        BatchCommand::List {
            warehouse,
            last,
            json,
        } => {
            let warehouse = crate::sql::open_existing_warehouse(&warehouse.warehouse)?;
            crate::print(&runtime.block_on(warehouse.operation_list(*last))?, *json);
        }
        BatchCommand::Revert {
            seq,
            warehouse,
            cascade,
            note,
            json,
        } => {
            let (warehouse, _lock) = open_for_writing(warehouse, &runtime)?;
            let record =
                runtime.block_on(maintain::revert(&warehouse, *seq, *cascade, note.clone()))?;
            crate::print(
                &RevertReport {
                    asked: *seq,
                    record,
                },
                *json,
            );
        }
    }
    Ok(())
}

pub fn compact_command(args: &CompactArgs) -> CliResult {
    let runtime = crate::sql::runtime()?;
    let (warehouse, _lock) = open_for_writing(&args.warehouse, &runtime)?;
    let options = CompactOptions {
        tables: if args.table.is_empty() {
            StoredTable::ALL.to_vec()
        } else {
            args.table.clone()
        },
        partitions: args.partition.clone(),
        min_files: args.min_files,
        settled_rows: None,
    };
    crate::print(
        &runtime.block_on(maintain::compact(&warehouse, &options))?,
        args.json,
    );
    Ok(())
}

pub fn vacuum_command(args: &VacuumArgs) -> CliResult {
    if args.retain < Duration::from_secs(3600) && !args.force {
        return Err(Failure::new(
            ErrorKind::Config,
            format!(
                "--retain {} is under one hour: a reader of an older version could lose its files mid-query; add --force if no reader can be that old",
                humantime::format_duration(args.retain)
            ),
        ));
    }
    let runtime = crate::sql::runtime()?;
    let (warehouse, _lock) = open_for_writing(&args.warehouse, &runtime)?;
    let report = runtime.block_on(maintain::vacuum(&warehouse, args.retain, args.dry_run))?;
    crate::print(&report, args.json);
    Ok(())
}

pub fn convert_command(args: &WarehouseArgs) -> CliResult {
    let runtime = crate::sql::runtime()?;
    let warehouse = crate::sql::open_existing_warehouse(&args.warehouse)?;
    let _lock = warehouse
        .lock(|| eprintln!("kefu: another writer is working on the warehouse; waiting for it"))?;
    if !runtime.block_on(maintain::is_legacy(&warehouse))? {
        println!(
            "nothing to convert: {} already holds Delta tables",
            args.warehouse
        );
        return Ok(());
    }
    print!("{}", runtime.block_on(maintain::convert(&warehouse))?);
    Ok(())
}
