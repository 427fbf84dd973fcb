//! `kefu batch list|revert`, `kefu compact`, `kefu vacuum` and `kefu convert`: argument
//! handling and printing over `kefu_storage::maintain`.

use std::time::Duration;

use clap::{Args, Subcommand};
use kefu_storage::maintain::{self, CompactOptions};
use kefu_storage::{StoredTable, Warehouse};

use crate::cli::{CliResult, WarehouseArgs, exit, thousands};
use crate::status::{counts_json, operation_line};

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

#[expect(clippy::needless_pass_by_value, reason = "a map_err adapter")]
fn storage_error(e: kefu_storage::StorageError) -> (u8, String) {
    let code = match e {
        kefu_storage::StorageError::Refused { .. }
        | kefu_storage::StorageError::NoSuchState { .. } => exit::FAILURE,
        kefu_storage::StorageError::Legacy { .. } => exit::BAD_CONFIG,
        _ => exit::IO,
    };
    (code, e.to_string())
}

/// The warehouse locked for writing (local), with any interrupted operation finished.
fn open_for_writing(
    args: &WarehouseArgs,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Warehouse, Option<kefu_storage::warehouse::WriterLock>), (u8, String)> {
    let warehouse = crate::sql::open_existing_warehouse(&args.warehouse)?;
    let lock = warehouse
        .lock(|| eprintln!("kefu: another writer is working on the warehouse; waiting for it"))
        .map_err(storage_error)?;
    let recovery = runtime
        .block_on(warehouse.recover())
        .map_err(storage_error)?;
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
            let ledger = runtime
                .block_on(warehouse.ledger())
                .map_err(storage_error)?;
            let cut = runtime
                .block_on(warehouse.cut(kefu_storage::AsOf::Latest))
                .map_err(storage_error)?;
            let reverted = maintain::reverted(&ledger);
            let take = if *last == 0 { ledger.len() } else { *last };
            let shown: Vec<_> = ledger.iter().rev().take(take).collect();
            if *json {
                let items: Vec<serde_json::Value> = shown
                    .iter()
                    .map(|op| {
                        serde_json::json!({
                            "seq": op.seq,
                            "kind": op.kind.name(),
                            "id": op.id,
                            "committed_at": op.committed_at,
                            "complete": op.seq <= cut.seq,
                            "reverted": reverted.contains(&op.seq),
                            "sources": op.sources,
                            "counts": op.counts.iter().map(|(t, c)| (t.clone(), counts_json(c))).collect::<serde_json::Map<_, _>>(),
                            "changes": op.changes,
                            "versions": op.versions,
                            "reverts": op.reverts,
                            "note": op.note,
                            "seconds": op.seconds,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
                return Ok(());
            }
            if ledger.is_empty() {
                println!("no operations yet");
                return Ok(());
            }
            for op in shown {
                println!("{}", operation_line(op, reverted.contains(&op.seq)));
                if op.seq > cut.seq {
                    println!("        (being committed: readers do not see it yet)");
                }
            }
            Ok(())
        }
        BatchCommand::Revert {
            seq,
            warehouse,
            cascade,
            note,
            json,
        } => {
            let (warehouse, _lock) = open_for_writing(warehouse, &runtime)?;
            let record = runtime
                .block_on(maintain::revert(&warehouse, *seq, *cascade, note.clone()))
                .map_err(storage_error)?;
            if *json {
                println!(
                    "{}",
                    serde_json::json!({
                        "seq": record.seq,
                        "reverts": record.reverts,
                        "changes": record.changes,
                        "versions": record.versions,
                    })
                );
            } else {
                let list: Vec<String> = record.reverts.iter().map(u64::to_string).collect();
                println!(
                    "reverted batch{} {} (operation {}): the tables are as before batch {seq}; their sources can be ingested again",
                    if record.reverts.len() == 1 { "" } else { "es" },
                    list.join(", "),
                    record.seq
                );
                for (table, c) in &record.changes {
                    println!(
                        "  {table:<10} version {}: {} files back, {} files out ({} rows back, {} rows out)",
                        c.version,
                        c.files_added,
                        c.files_removed,
                        thousands(c.rows_added),
                        thousands(c.rows_removed)
                    );
                }
            }
            Ok(())
        }
    }
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
    let report = runtime
        .block_on(maintain::compact(&warehouse, &options))
        .map_err(storage_error)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "operation": report.record.as_ref().map(|r| r.seq),
                "partitions": report.partitions,
                "files_before": report.files_before,
                "files_after": report.files_after,
                "rows": report.rows,
                "bytes_before": report.bytes_before,
                "bytes_after": report.bytes_after,
                "changes": report.record.as_ref().map(|r| &r.changes),
            })
        );
        return Ok(());
    }
    match &report.record {
        None => println!(
            "nothing to compact: no partition holds {} files or more",
            args.min_files.max(2)
        ),
        Some(r) => println!(
            "compacted (operation {}): {} partitions, {} files into {} ({} rows, {:.1} MB into {:.1} MB)",
            r.seq,
            report.partitions,
            report.files_before,
            report.files_after,
            thousands(report.rows),
            report.bytes_before as f64 / 1e6,
            report.bytes_after as f64 / 1e6
        ),
    }
    Ok(())
}

pub fn vacuum_command(args: &VacuumArgs) -> CliResult {
    if args.retain < Duration::from_secs(3600) && !args.force {
        return Err((
            exit::BAD_CONFIG,
            format!(
                "--retain {} is under one hour: a reader of an older version could lose its files mid-query; add --force if no reader can be that old",
                humantime::format_duration(args.retain)
            ),
        ));
    }
    let runtime = crate::sql::runtime()?;
    let (warehouse, _lock) = open_for_writing(&args.warehouse, &runtime)?;
    let report = runtime
        .block_on(maintain::vacuum(&warehouse, args.retain, args.dry_run))
        .map_err(storage_error)?;
    let files: usize = report.files.values().map(Vec::len).sum();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "dry_run": report.dry_run,
                "files": report.files,
                "bytes": report.bytes,
            })
        );
        return Ok(());
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "{verb} {} ({:.1} MB) no table version of the last {} names",
        crate::cli::count(files as u64, "file"),
        report.bytes as f64 / 1e6,
        humantime::format_duration(args.retain)
    );
    for (table, list) in &report.files {
        println!("  {table}: {}", list.len());
    }
    Ok(())
}

pub fn convert_command(args: &WarehouseArgs) -> CliResult {
    let runtime = crate::sql::runtime()?;
    let warehouse = crate::sql::open_existing_warehouse(&args.warehouse)?;
    let _lock = warehouse
        .lock(|| eprintln!("kefu: another writer is working on the warehouse; waiting for it"))
        .map_err(storage_error)?;
    if !runtime
        .block_on(maintain::is_legacy(&warehouse))
        .map_err(storage_error)?
    {
        println!(
            "nothing to convert: {} already holds Delta tables",
            args.warehouse
        );
        return Ok(());
    }
    let report = runtime
        .block_on(maintain::convert(&warehouse))
        .map_err(storage_error)?;
    println!(
        "converted {} to Delta tables: {} earlier batches (kept under {})",
        args.warehouse,
        report.batches,
        maintain::LEGACY_LEDGER_DIR
    );
    for (table, (files, rows)) in &report.tables {
        println!("  {table:<10} {files} files, {} rows", thousands(*rows));
    }
    if !report.unrecorded.is_empty() {
        println!(
            "  {} Parquet files no batch had recorded were moved to {}/",
            report.unrecorded.len(),
            maintain::UNRECORDED_DIR
        );
    }
    Ok(())
}
