//! `kefu batch list|revert`: the warehouse's operations; a batch taken back.

use kefu_storage::cli::{BatchArgs, BatchCommand};
use kefu_storage::maintain::{self};
use kefu_storage::report::RevertReport;
use tokio::runtime::Runtime;

use crate::args::open_for_writing;
use crate::exit::CliResult;

pub fn batch_command(args: &BatchArgs, runtime: &Runtime) -> CliResult {
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
            let (warehouse, _lock) = open_for_writing(warehouse, runtime)?;
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
