//! `kefu convert`: a warehouse of an earlier kefu converted into Delta tables.

use kefu_storage::cli::WarehouseArgs;
use kefu_storage::maintain::{self};
use tokio::runtime::Runtime;

use crate::exit::CliResult;

pub fn convert_command(args: &WarehouseArgs, runtime: &Runtime) -> CliResult {
    let warehouse = crate::args::open_existing_warehouse(&args.warehouse)?;
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
