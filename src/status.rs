//! `kefu status`: a warehouse's tables and operations, or its offices' deliveries.

use kefu_ingest::deliveries::{DayWindow, Schedule};
use kefu_model::ErrorKind;
use kefu_model::number::count;
use kefu_storage::WarehouseLocation;

use crate::exit::{CliResult, Failure};

/// `kefu status`.
pub fn status_command(location: &WarehouseLocation, batches: usize, json: bool) -> CliResult {
    let warehouse = crate::sql::open_existing_warehouse(location)?;
    let report = crate::sql::runtime()?.block_on(warehouse.status_report(batches))?;
    crate::print(&report, json);
    Ok(())
}

/// Reads `--schedule FILE`, or the default schedule.
pub fn read_schedule(path: Option<&std::path::Path>) -> Result<Schedule, Failure> {
    let Some(path) = path else {
        return Ok(Schedule::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            ErrorKind::Io,
            format!("{}: cannot read: {e}", path.display()),
        )
    })?;
    Ok(Schedule::from_toml(&text, &path.display().to_string())?)
}

/// `kefu status --deliveries`.
pub fn deliveries_command(
    location: &WarehouseLocation,
    args: &crate::cli::DeliveriesArgs,
    json: bool,
) -> CliResult {
    let schedule = read_schedule(args.schedule.as_deref())?;
    let warehouse = crate::sql::open_existing_warehouse(location)?;
    let window = DayWindow::Ending {
        until: &args.until,
        days: args.days,
    };
    let report = crate::sql::runtime()?
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
