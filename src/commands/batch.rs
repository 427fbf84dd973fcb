//! `kefu batch list|revert`: the warehouse's operations; a batch taken back.

use clap::{Args, Subcommand};
use kefu_storage::maintain::{self};
use kefu_storage::report::RevertReport;

use crate::args::{WarehouseArgs, open_for_writing};
use crate::exit::CliResult;

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

pub fn batch_command(args: &BatchArgs) -> CliResult {
    let runtime = crate::args::runtime()?;
    match &args.command {
        BatchCommand::List {
            warehouse,
            last,
            json,
        } => {
            let warehouse = crate::args::open_existing_warehouse(&warehouse.warehouse)?;
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
