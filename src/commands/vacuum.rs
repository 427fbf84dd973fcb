//! `kefu vacuum`: files no table version within the retention period names, deleted.

use kefu_model::ErrorKind;
use kefu_storage::cli::VacuumArgs;
use kefu_storage::maintain::{self};
use tokio::runtime::Runtime;

use crate::args::open_for_writing;
use crate::exit::{CliResult, Failure};

pub fn vacuum_command(args: &VacuumArgs, runtime: &Runtime) -> CliResult {
    if let Some(refusal) = args.refusal() {
        return Err(Failure::new(ErrorKind::Config, refusal));
    }
    let (warehouse, _lock) = open_for_writing(&args.warehouse, runtime)?;
    let report = runtime.block_on(maintain::vacuum(&warehouse, args.retain, args.dry_run))?;
    crate::print(&report, args.json);
    Ok(())
}
