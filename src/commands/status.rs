//! `kefu status`: a warehouse's tables and operations, or its offices' deliveries.

use std::path::PathBuf;

use clap::Args;
use kefu_ingest::deliveries::{DayWindow, Schedule};
use kefu_model::ErrorKind;
use kefu_model::number::count;
use kefu_storage::WarehouseLocation;

use crate::exit::{CliResult, Failure};

/// `kefu status --deliveries`: which office has delivered which day.
#[derive(Debug, Clone, Args)]
pub struct DeliveriesArgs {
    /// Show per region and data day what arrived, when and how big, against the expected
    /// schedule: missing and late deliveries and volumes far from a region's usual level
    /// are flagged. Exits 5 when a delivery past its due time is missing.
    #[arg(long)]
    pub deliveries: bool,
    /// The expected schedule (TOML: regions, pattern, due, due_days_after, volume_low,
    /// volume_high, [region.NAME] due …). Default: every region that has delivered, one
    /// archive per day named REGION_YYYYMMDD.zip|tar.gz, due 06:00 the next morning.
    #[arg(long, value_name = "FILE", requires = "deliveries")]
    pub schedule: Option<PathBuf>,
    /// The last data day to show: a date or a date expression (yesterday, today - 2 days).
    #[arg(
        long,
        value_name = "DAY",
        default_value = "yesterday",
        requires = "deliveries"
    )]
    pub until: String,
    /// How many data days to show, ending with --until.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366), requires = "deliveries")]
    pub days: u32,
}

/// `kefu status`.
pub fn status_command(location: &WarehouseLocation, batches: usize, json: bool) -> CliResult {
    let warehouse = crate::args::open_existing_warehouse(location)?;
    let report = crate::args::runtime()?.block_on(warehouse.status_report(batches))?;
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
    args: &DeliveriesArgs,
    json: bool,
) -> CliResult {
    let schedule = read_schedule(args.schedule.as_deref())?;
    let warehouse = crate::args::open_existing_warehouse(location)?;
    let window = DayWindow::Ending {
        until: &args.until,
        days: args.days,
    };
    let report = crate::args::runtime()?
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
