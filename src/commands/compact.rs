//! `kefu compact`: partitions of many small files rewritten as few large ones.

use kefu_storage::cli::CompactArgs;
use kefu_storage::maintain::{self, CompactOptions};
use tokio::runtime::Runtime;

use crate::args::open_for_writing;
use crate::exit::CliResult;

pub fn compact_command(args: &CompactArgs, runtime: &Runtime) -> CliResult {
    let (warehouse, _lock) = open_for_writing(&args.warehouse, runtime)?;
    let options = CompactOptions::from(args);
    crate::print(
        &runtime.block_on(maintain::compact(&warehouse, &options))?,
        args.json,
    );
    Ok(())
}
