//! `kefu status`: a warehouse's tables and operations, or its offices' deliveries.

use kefu_ingest::cli::DeliveriesArgs;
use kefu_ingest::deliveries::{DayWindow, Schedule};
use kefu_model::ErrorKind;
use kefu_model::number::count;
use kefu_storage::WarehouseLocation;
use tokio::runtime::Runtime;

use crate::exit::{CliResult, Failure};

/// `kefu status`.
pub fn status_command(
    location: &WarehouseLocation,
    batches: usize,
    json: bool,
    runtime: &Runtime,
) -> CliResult {
    let warehouse = crate::args::open_existing_warehouse(location)?;
    let report = runtime.block_on(warehouse.status_report(batches))?;
    crate::print(&report, json);
    Ok(())
}

/// `kefu status --deliveries`.
pub fn deliveries_command(
    location: &WarehouseLocation,
    args: &DeliveriesArgs,
    json: bool,
    runtime: &Runtime,
) -> CliResult {
    let schedule = Schedule::load(args.schedule.as_deref())?;
    let warehouse = crate::args::open_existing_warehouse(location)?;
    let window = DayWindow::Ending {
        until: &args.until,
        days: args.days,
    };
    let report = runtime
        .block_on(kefu_ingest::deliveries::in_warehouse(
            &warehouse, &schedule, window,
        ))
        .map_err(|e| match e {
            kefu_ingest::IngestError::DateExpression(_) => Failure::from(e).context("--until"),
            e => Failure::from(e),
        })?;
    crate::print(&report, json);
    if report.missing > 0 {
        return Err(Failure::new(
            ErrorKind::Incomplete,
            format!(
                "{} past the due time not arrived",
                count(report.missing as u64, "delivery")
            ),
        ));
    }
    Ok(())
}
