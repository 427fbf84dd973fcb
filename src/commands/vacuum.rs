//! `kefu vacuum`: files no table version within the retention period names, deleted.

use std::time::Duration;

use clap::Args;
use kefu_model::ErrorKind;
use kefu_storage::maintain::{self};

use crate::args::{WarehouseArgs, open_for_writing};
use crate::exit::{CliResult, Failure};

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

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (e.g. 7d, 168h, 30min)"))
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
    let runtime = crate::args::runtime()?;
    let (warehouse, _lock) = open_for_writing(&args.warehouse, &runtime)?;
    let report = runtime.block_on(maintain::vacuum(&warehouse, args.retain, args.dry_run))?;
    crate::print(&report, args.json);
    Ok(())
}
