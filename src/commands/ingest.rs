//! `kefu ingest`: office exports into the warehouse as one batch.

use kefu_ingest::cli::IngestArgs;
use tokio::runtime::Runtime;

use crate::exit::CliResult;
use crate::progress::BarProgress;

pub fn ingest_command(args: &IngestArgs, runtime: &Runtime) -> CliResult {
    let progress = BarProgress::new(args.quiet || args.json);
    let report = kefu_ingest::ingest_at(
        runtime.handle(),
        &args.sources,
        &args.warehouse.warehouse,
        &args.options()?,
        &progress,
    )?;
    crate::print(&report, args.json);
    Ok(())
}
