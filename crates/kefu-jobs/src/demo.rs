//! `kefu demo`, the tour: generate office exports as they really arrive, ingest them day
//! by day as a scheduled job would, run the example KPI job and write its report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use kefu_model::number::thousands;
use kefu_progress::{NoProgress, Progress, Unit};
use kefu_storage::ledger::TableCounts;

use crate::run::{RunOptions, RunReport};
use crate::{Job, JobError};

/// The example job the demo runs (`fixtures/jobs/monthly.toml`).
pub const DEMO_JOB: &str = include_str!("../../../fixtures/jobs/monthly.toml");

/// The last day the demo generates is the day before this (the report is for December
/// 2026, the months before give it its trends and 同比).
const END: (i32, u32, u32) = (2027, 1, 1);

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the exports, warehouse, job, KPI tables and report go (absolute).
    pub dir: PathBuf,
    pub customers: u32,
    pub days: u32,
}

/// What the demo made.
#[derive(Debug)]
pub struct DemoOutcome {
    pub warehouse: PathBuf,
    pub kpi: PathBuf,
    /// The report page written.
    pub report_page: String,
    /// The day the job ran for (the day after the last generated day).
    pub run_date: NaiveDate,
    /// The job's run, whose status says whether every step succeeded.
    pub run: RunReport,
}

/// Runs the tour; `say` hears each step as it begins and what it did.
pub fn run(
    runtime: &tokio::runtime::Handle,
    options: &DemoOptions,
    progress: &dyn Progress,
    say: &mut dyn FnMut(&str),
) -> Result<DemoOutcome, JobError> {
    let dir = &options.dir;
    std::fs::create_dir_all(dir).map_err(|e| JobError::io(dir.display(), e))?;
    let exports = dir.join("exports");
    let end = NaiveDate::from_ymd_opt(END.0, END.1, END.2).expect("a date");
    let config = kefu_gen::GenConfig {
        customers: options.customers,
        days: options.days,
        start: end - chrono::Days::new(u64::from(options.days)),
        messy: true,
        ..kefu_gen::GenConfig::new(&exports)
    };
    say(&format!(
        "1/4 generating {} days of office exports for {} customers, as offices send them (one archive per region and day, GBK and UTF-8, Chinese headers, tickets in every state, re-sends, late archives, some bad rows) …",
        config.days,
        thousands(config.customers)
    ));
    let summary = kefu_gen::generate(&config, progress)?;
    say(&format!(
        "    {} records in {} files under {}",
        thousands(summary.total_rows()),
        summary.files.len(),
        exports.display()
    ));
    let deliveries = kefu_gen::messy::read_deliveries(&exports.join("manifest.json"))?;
    say(&format!(
        "2/4 ingesting them day by day as they arrived: {} batches, one per delivery day …",
        deliveries.len()
    ));
    let totals = ingest_day_by_day(runtime, dir, &exports, &deliveries, progress)?;
    say(&format!(
        "    {} records in {totals}",
        thousands(totals.0.records),
    ));
    let job_path = dir.join("monthly.toml");
    kefu_storage::atomic::write(&job_path, DEMO_JOB.as_bytes())
        .map_err(|e| JobError::io(job_path.display(), e))?;
    let job = Job::load(&job_path)?;
    // Run as on the day after the last generated day: the report is for the last month.
    let run_date = config.start + chrono::Days::new(u64::from(config.days));
    say(&format!(
        "3/4 running the job {} for {run_date}: its ingest (nothing new), the KPI tables, the monthly report …",
        job_path.display()
    ));
    let run_options = RunOptions {
        run_date: Some(run_date),
        ..RunOptions::default()
    };
    let run = crate::run(runtime, &job, &run_options, progress)?;
    for line in run.summary().lines() {
        say(&format!("    {line}"));
    }
    let report_page = run
        .steps
        .iter()
        .filter(|s| s.kind == "report")
        .flat_map(|s| s.outputs.clone())
        .next_back()
        .unwrap_or_else(|| {
            let month = kefu_model::calendar::Period::Month
                .shift(kefu_model::calendar::Period::Month.start(run_date), -1)
                .unwrap_or(run_date);
            dir.join("kpi/reports")
                .join(month.format("%Y-%m").to_string())
                .join("index.html")
                .display()
                .to_string()
        });
    Ok(DemoOutcome {
        warehouse: dir.join("warehouse"),
        kpi: dir.join("kpi"),
        report_page,
        run_date,
        run,
    })
}

/// The counts of the ingests and the seconds they took, as "…: N new, …".
struct Ingested(TableCounts, f64);

impl std::fmt::Display for Ingested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} s: {}", self.1, self.0)
    }
}

/// One ingest batch per delivery day, in date order, as a nightly job would take them.
fn ingest_day_by_day(
    runtime: &tokio::runtime::Handle,
    dir: &Path,
    exports: &Path,
    deliveries: &[kefu_gen::Delivery],
    progress: &dyn Progress,
) -> Result<Ingested, JobError> {
    let started = Instant::now();
    let location = kefu_storage::WarehouseLocation::parse_in("warehouse", dir)?;
    let warehouse = kefu_storage::Warehouse::open(&location)?;
    let mut totals = TableCounts::default();
    progress.start(
        "batches",
        Some(deliveries.len() as u64),
        Unit::Items("days"),
    );
    // The exports hold 0.2% bad rows; a small demo's day is a few dozen records, where
    // one bad row is over the usual 5%: the refusal is for a wrong profile, not for that.
    let options = kefu_ingest::IngestOptions {
        max_reject_ratio: 0.2,
        ..kefu_ingest::IngestOptions::default()
    };
    for day in deliveries {
        let paths: Vec<String> = day
            .paths
            .iter()
            .map(|p| exports.join(p).display().to_string())
            .collect();
        let report = kefu_ingest::ingest(runtime, &paths, &warehouse, &options, &NoProgress)?;
        totals.add(&report.totals());
        progress.advance(1);
    }
    progress.finish();
    Ok(Ingested(totals, started.elapsed().as_secs_f64()))
}
