//! Running a job: its steps in order, incrementally.
//!
//! A query step's date range is cut into periods (`partition`); each period's result is
//! cached with a fingerprint of what it was computed from: its SQL and, for the tables it
//! reads in the months up to the period's end (plus the query's lookahead), the ledger's
//! operations that changed them. So after new data lands only the periods whose months it
//! changed are recomputed — a revert recomputes what it took back, a compaction nothing —
//! and a run with no new data computes nothing. A run reads one state of the warehouse
//! throughout (the newest when it starts, the newest again after each of its ingest
//! steps): what a period's result was computed from is exactly what its fingerprint
//! names, even while another process ingests. Outputs are written whole (temporary file
//! and rename, or one PUT) after their periods are cached, so a run killed at any point
//! leaves the previous outputs in place and the next run finishes the work.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{Days, Months, NaiveDate};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use kefu_progress::{Progress, Unit};
use kefu_sql::{Engine, EngineOptions, Format};
use kefu_storage::Warehouse;
use kefu_storage::publish::Target;
use serde::Serialize;

use crate::job::{IngestStep, Job, Lookahead, QueryStep, ReportStep, StepKind};
use crate::state::{State, StateDir, UnitState};
use crate::{JobError, StepError};
use kefu_model::calendar::today as local_today;
use kefu_model::calendar::{self as dates, Period};

/// Opens the SQL sessions of a run's query and report steps (`kefu run --cluster` gives
/// one that runs them on a Ballista cluster).
#[derive(Clone)]
pub struct EngineOpener(pub std::sync::Arc<OpenEngine>);

/// What an [`EngineOpener`] calls; its error is the opener's own (a cluster's).
pub type OpenEngine = dyn Fn(
        Warehouse,
        EngineOptions,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Engine, kefu_model::BoxError>> + Send>>
    + Send
    + Sync;

impl std::fmt::Debug for EngineOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineOpener")
    }
}

/// How to run a job.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// How to open SQL sessions; default a local [`Engine`].
    pub engine: Option<EngineOpener>,
    /// The day the run is for (date expressions are evaluated against it); default today
    /// on the warehouse's calendar.
    pub run_date: Option<NaiveDate>,
    /// Backfill: this `[from, to)` replaces every step's `from`/`to` parameters, and
    /// report steps report each month in it.
    pub range: Option<(NaiveDate, NaiveDate)>,
    /// Say what would run and why; write nothing.
    pub dry_run: bool,
    /// Recompute every period even when it is up to date.
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every step succeeded and some did work.
    Ok,
    /// Every step was already up to date.
    NothingToDo,
    /// Deliveries a step requires have not arrived: it did not run (others did).
    MissingDeliveries,
    /// An ingest refused its batch: too many rejected records (other steps ran).
    Rejected,
    /// Some steps failed, others succeeded.
    PartialFailure,
    /// Every step that ran failed.
    Failed,
}

impl RunStatus {
    /// The kind of failure a run with this status is; none when it succeeded.
    pub fn kind(self) -> Option<kefu_model::ErrorKind> {
        use kefu_model::ErrorKind;
        match self {
            RunStatus::Ok | RunStatus::NothingToDo => None,
            RunStatus::Rejected => Some(ErrorKind::Rejects),
            RunStatus::PartialFailure | RunStatus::MissingDeliveries => Some(ErrorKind::Incomplete),
            RunStatus::Failed => Some(ErrorKind::Failure),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Done,
    UpToDate,
    Failed,
    /// `--dry-run`: what would happen.
    Planned,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    pub period: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// computed, up_to_date, or (dry run) would_compute.
    pub status: &'static str,
    /// Why it is (or would be) computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub rows: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    pub batch: Option<u64>,
    pub sources_new: usize,
    pub sources_skipped: usize,
    /// Records read; every one is new, updated, unchanged, stale or rejected.
    pub records: u64,
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub stale: u64,
    pub rejected: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub line: usize,
    pub status: StepStatus,
    pub message: String,
    pub seconds: f64,
    pub rows: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitReport>,
    pub outputs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest: Option<IngestSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The deliveries the step required that have not arrived (`region day`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_deliveries: Vec<String>,
    #[serde(skip)]
    rejected: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub job: String,
    pub job_file: String,
    pub run_date: NaiveDate,
    pub range: Option<(NaiveDate, NaiveDate)>,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub seconds: f64,
    pub steps: Vec<StepReport>,
    pub outputs: Vec<String>,
    pub rejected: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
    /// Where this report was written (not in dry runs).
    pub report_file: Option<String>,
}

/// A run that did not fully succeed: its status, and each failed step with its error.
#[derive(Debug, thiserror::Error)]
#[error("{}", .steps.join("\n"))]
pub struct RunFailed {
    pub status: RunStatus,
    /// `step NAME (line N): ERROR` for each step that failed.
    pub steps: Vec<String>,
}

impl kefu_model::Classify for RunFailed {
    fn kind(&self) -> kefu_model::ErrorKind {
        self.status.kind().unwrap_or(kefu_model::ErrorKind::Failure)
    }
}

impl RunReport {
    /// Ok when every step succeeded (or had nothing to do).
    pub fn outcome(&self) -> Result<(), RunFailed> {
        if self.status.kind().is_none() {
            return Ok(());
        }
        Err(RunFailed {
            status: self.status,
            steps: self
                .steps
                .iter()
                .filter_map(|s| {
                    s.error
                        .as_ref()
                        .map(|e| format!("step {} (line {}): {e}", s.name, s.line))
                })
                .collect(),
        })
    }

    /// A few lines for the terminal: one per step, then the outcome.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let width = self
            .steps
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        for s in &self.steps {
            out.push_str(&format!(
                "{:<width$}  {:<6}  {:<10} {:>6.2} s  {}\n",
                s.name,
                s.kind,
                match s.status {
                    StepStatus::Done => "done",
                    StepStatus::UpToDate => "up to date",
                    StepStatus::Failed => "FAILED",
                    StepStatus::Planned => "planned",
                },
                s.seconds,
                s.error.as_deref().unwrap_or(&s.message)
            ));
        }
        let outcome = match self.status {
            RunStatus::Ok => "done",
            RunStatus::NothingToDo => "nothing to do: no new data and every output is up to date",
            RunStatus::Rejected => {
                "an ingest was refused (too many rejected records); the other steps ran"
            }
            RunStatus::PartialFailure => "some steps failed (see above); the others completed",
            RunStatus::MissingDeliveries => {
                "deliveries a step requires have not arrived: it did not run (see above)"
            }
            RunStatus::Failed => "failed",
        };
        out.push_str(&format!(
            "job {} for {}{}: {outcome} in {:.1} s",
            self.job,
            self.run_date,
            if self.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            },
            self.seconds
        ));
        if let Some(f) = &self.report_file {
            out.push_str(&format!("\nrun report: {f}"));
        }
        out
    }
}

/// Test hook: `KEFU_FAILPOINT=after_output:N` aborts the process right after the N-th
/// output of a run is written, as a kill at that moment would, so tests can check that a
/// killed run leaves whole outputs and the next run completes.
fn failpoint_after_output(written: &mut u64) {
    *written += 1;
    if let Ok(spec) = std::env::var("KEFU_FAILPOINT")
        && let Some(n) = spec.strip_prefix("after_output:")
        && n.parse::<u64>().ok() == Some(*written)
    {
        eprintln!("kefu: failpoint after_output:{n}: aborting");
        std::process::abort();
    }
}

struct Runner<'a> {
    job: &'a Job,
    options: &'a RunOptions,
    run_date: NaiveDate,
    state_dir: StateDir,
    state: State,
    warehouse: Warehouse,
    runtime: &'a tokio::runtime::Handle,
    progress: &'a dyn Progress,
    outputs_written: u64,
    /// The warehouse's state the run reads (pinned: every query and fingerprint of the run
    /// sees it), read once and again only after an ingest commits.
    inventory: Option<std::sync::Arc<Inventory>>,
    /// Results computed at that state, by their SQL (small ones only), so that a later
    /// step running the same SQL — the report, a year of `churn_monthly` — takes them.
    computed: Results,
}

/// Query results by their SQL.
type Results = BTreeMap<String, (SchemaRef, Vec<RecordBatch>)>;

/// The largest result a run keeps in memory for later steps.
const KEPT_RESULT_BYTES: usize = 16 << 20;

/// Runs `job`. Configuration problems were caught when the job was loaded; failures of a
/// step are recorded in the report and the remaining steps still run. Queries, reports
/// and the warehouse's I/O run on `runtime`; call from a thread that may block.
pub fn run(
    runtime: &tokio::runtime::Handle,
    job: &Job,
    options: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunReport, JobError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let state_dir = StateDir::new(&job.state_dir);
    let _lock = if options.dry_run {
        None
    } else {
        Some(state_dir.lock(&job.name)?)
    };
    let state = state_dir.load()?;
    if let Some(dir) = job.warehouse.local_path()
        && !dir.is_dir()
        && !matches!(
            job.steps.first().map(|s| &s.kind),
            Some(StepKind::Ingest(_))
        )
    {
        // Opening would create an empty warehouse and every query would find no rows.
        return Err(JobError::io(
            dir.display(),
            "no warehouse there, and the job does not start with an ingest step to create one (check `warehouse`)",
        ));
    }
    let warehouse =
        Warehouse::open(&job.warehouse).map_err(|source| JobError::Warehouse { source })?;
    let zone = match job.time_zone {
        Some(zone) => zone,
        None => runtime
            .block_on(warehouse.time_zone())
            .map_err(|source| JobError::Warehouse { source })?,
    };
    let mut runner = Runner {
        job,
        options,
        run_date: options.run_date.unwrap_or_else(|| local_today(zone)),
        state_dir,
        state,
        warehouse,
        runtime,
        progress,
        outputs_written: 0,
        inventory: None,
        computed: Results::new(),
    };
    let mut steps = Vec::new();
    for step in &job.steps {
        let begun = Instant::now();
        let mut report = StepReport {
            name: step.name.clone(),
            kind: step.kind.name(),
            line: step.line,
            status: StepStatus::Done,
            message: String::new(),
            seconds: 0.0,
            rows: 0,
            units: Vec::new(),
            outputs: Vec::new(),
            ingest: None,
            error: None,
            missing_deliveries: Vec::new(),
            rejected: false,
        };
        tracing::info!(job = %job.name, step = %step.name, "step starts");
        let required = match &step.requires_deliveries {
            Some(days) if !options.dry_run => {
                runtime.block_on(runner.check_deliveries(days, &mut report))
            }
            _ => Ok(()),
        };
        let result = required.and_then(|()| match &step.kind {
            // Ingest blocks (it reads on threads of its own, driving the runtime).
            StepKind::Ingest(i) => runner.ingest(i, &mut report),
            StepKind::Query(q) => runtime.block_on(runner.query(&step.name, q, &mut report)),
            StepKind::Report(r) => runtime.block_on(runner.report(&step.name, r, &mut report)),
        });
        if let Err(e) = result {
            tracing::warn!(job = %job.name, step = %step.name, error = %e, "step failed");
            report.status = StepStatus::Failed;
            report.error = Some(e.to_string());
        }
        if !options.dry_run {
            runner.state_dir.save(&runner.state)?;
        }
        report.seconds = begun.elapsed().as_secs_f64();
        steps.push(report);
    }
    let failed = steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .count();
    let status = if failed == 0 {
        if steps.iter().all(|s| s.status == StepStatus::UpToDate) {
            RunStatus::NothingToDo
        } else {
            RunStatus::Ok
        }
    } else if steps.iter().any(|s| !s.missing_deliveries.is_empty()) {
        RunStatus::MissingDeliveries
    } else if steps.iter().any(|s| s.rejected) {
        RunStatus::Rejected
    } else if failed < steps.len() {
        RunStatus::PartialFailure
    } else {
        RunStatus::Failed
    };
    let mut rejects_by_reason = BTreeMap::new();
    for i in steps.iter().filter_map(|s| s.ingest.as_ref()) {
        for (k, v) in &i.rejects_by_reason {
            *rejects_by_reason.entry(k.clone()).or_insert(0) += v;
        }
    }
    let mut report = RunReport {
        job: job.name.clone(),
        job_file: job.path.display().to_string(),
        run_date: runner.run_date,
        range: options.range,
        dry_run: options.dry_run,
        status,
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        outputs: steps.iter().flat_map(|s| s.outputs.clone()).collect(),
        rejected: steps
            .iter()
            .filter_map(|s| s.ingest.as_ref())
            .map(|i| i.rejected)
            .sum(),
        rejects_by_reason,
        steps,
        report_file: None,
    };
    if !options.dry_run {
        let stamp = started_at.format("%Y%m%dT%H%M%SZ");
        let file = job
            .output_dir
            .join(&format!("_runs/{}-{stamp}.json", job.name));
        let latest = job
            .output_dir
            .join(&format!("_runs/{}-latest.json", job.name));
        report.report_file = Some(file.to_string());
        let bytes = serde_json::to_vec_pretty(&report).expect("report serialises");
        runtime
            .block_on(async {
                file.put_atomic(bytes.clone()).await?;
                latest.put_atomic(bytes).await
            })
            .map_err(|source| JobError::RunReport { source })?;
    }
    Ok(report)
}

/// A period of a query step: its label, range and SQL.
struct PlannedUnit {
    period: String,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    sql: String,
}

/// The periods a query computed in one run over several of them.
struct Together {
    schema: SchemaRef,
    /// Period label → its rows (every stale period of the span, rows or none).
    periods: BTreeMap<String, Vec<RecordBatch>>,
    /// The run's time shared out among its periods.
    seconds_each: f64,
    /// `first..last` period of the run.
    span: String,
}

/// Splits rows by the date in `column` into the `periods` (label, from, to exclusive)
/// holding it, keeping their order; every period gets an entry. A row whose date is in
/// none of them (or null, or a column that is not a date) is an error: the query does not
/// keep the promise its `-- period column:` makes, and its rows must not be dropped.
fn split_by_period(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    column: &str,
    periods: &[(String, NaiveDate, NaiveDate)],
) -> Result<BTreeMap<String, Vec<RecordBatch>>, String> {
    use arrow::array::{Array, AsArray, UInt32Array};
    use arrow::datatypes::{DataType, Date32Type};
    let index = schema
        .index_of(column)
        .map_err(|_| "is not a column of its result".to_string())?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch");
    let days = |d: NaiveDate| (d - epoch).num_days();
    let mut out: BTreeMap<String, Vec<RecordBatch>> = periods
        .iter()
        .map(|(p, _, _)| (p.clone(), Vec::new()))
        .collect();
    for batch in batches {
        let dates = arrow::compute::cast(batch.column(index), &DataType::Date32)
            .map_err(|e| format!("is not a date: {e}"))?;
        let dates = dates.as_primitive::<Date32Type>();
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); periods.len()];
        for row in 0..dates.len() {
            let day = dates.is_valid(row).then(|| i64::from(dates.value(row)));
            let holder = day.and_then(|day| {
                periods
                    .iter()
                    .position(|(_, f, t)| days(*f) <= day && day < days(*t))
            });
            let Some(holder) = holder else {
                let shown = day.map_or("null".to_string(), |d| {
                    (epoch + chrono::Duration::days(d)).to_string()
                });
                return Err(format!(
                    "holds {shown} in row {}, outside the periods run together",
                    row + 1
                ));
            };
            rows[holder].push(row as u32);
        }
        for ((period, _, _), rows) in periods.iter().zip(rows) {
            if !rows.is_empty() {
                let taken = arrow::compute::take_record_batch(batch, &UInt32Array::from(rows))
                    .map_err(|e| e.to_string())?;
                out.get_mut(period).expect("every period").push(taken);
            }
        }
    }
    Ok(out)
}

/// One state of the warehouse (a cut: every table at the version one operation left it)
/// and, per table and partition, the operations that changed its data up to that cut.
///
/// A period's fingerprint is its SQL plus those operations for the partitions it reads:
/// an ingest or a revert that touched a month changes the fingerprints of the periods
/// reading it; a compaction (no data change) does not; the same operations mean the same
/// data, whatever the files.
struct Inventory {
    cut: kefu_storage::Cut,
    /// (table, partition — a month, `*` for an unpartitioned table) → operations.
    changes: BTreeMap<(String, String), Vec<u64>>,
    /// Per month-partitioned table, its newest month holding files at the cut.
    newest_month: BTreeMap<String, String>,
    /// Conversions of an earlier warehouse: they changed every partition.
    everywhere: Vec<u64>,
}

impl Inventory {
    async fn read(warehouse: &Warehouse) -> Result<Self, StepError> {
        let cut = warehouse.cut(kefu_storage::AsOf::Latest).await?;
        let ledger = warehouse.ledger().await?;
        let mut changes: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        let mut everywhere = Vec::new();
        for op in ledger.iter().filter(|op| op.seq <= cut.seq) {
            match op.kind {
                // No data change.
                kefu_storage::OperationKind::Compact | kefu_storage::OperationKind::AddColumns => {
                    continue;
                }
                kefu_storage::OperationKind::Convert => everywhere.push(op.seq),
                _ => {}
            }
            for (table, change) in &op.changes {
                if change.partitions.is_empty() {
                    changes
                        .entry((table.clone(), "*".to_string()))
                        .or_default()
                        .push(op.seq);
                }
                for partition in &change.partitions {
                    changes
                        .entry((table.clone(), partition.clone()))
                        .or_default()
                        .push(op.seq);
                }
            }
        }
        let mut newest_month = BTreeMap::new();
        let by_month = |t: &kefu_storage::StoredTable| {
            t.partition_column() == Some(kefu_storage::warehouse::MONTH_COLUMN)
        };
        for table in kefu_storage::StoredTable::ALL.into_iter().filter(by_month) {
            let files = warehouse.files_at(&cut, table).await?;
            if let Some(newest) = files.iter().filter_map(|f| f.partition.clone()).max() {
                newest_month.insert(table.name().to_string(), newest);
            }
        }
        Ok(Inventory {
            cut,
            changes,
            newest_month,
            everywhere,
        })
    }

    /// A fingerprint of `seed` and the data of `tables` in months up to `until`
    /// (`YYYY-MM`, inclusive; `None`: all), plus all of unpartitioned tables, plus, for a
    /// query with a finite lookahead, whether any of `tables` holds data past `until`: a
    /// period's result may depend on that alone (churn_monthly's unknown outcomes, judged
    /// against the newest event of any kind, are decided when the first data past their
    /// reach arrives, even after a gap).
    fn fingerprint(
        &self,
        seed: &str,
        tables: &BTreeSet<String>,
        until: Option<&str>,
        lookahead: Lookahead,
    ) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.update(seed.as_bytes());
        for seq in &self.everywhere {
            hasher.update(format!("\nconvert {seq}").as_bytes());
        }
        for ((table, partition), ops) in &self.changes {
            let wanted = tables.contains(table)
                && match until {
                    Some(u) if partition != "*" && table != kefu_storage::tables::REJECTS_TABLE => {
                        partition.as_str() <= u
                    }
                    _ => true,
                };
            if wanted {
                hasher.update(format!("\n{table}/{partition}:{ops:?}").as_bytes());
            }
        }
        if let (Some(until), Lookahead::Months(1..) | Lookahead::Days(1..)) = (until, lookahead) {
            let held_past = self
                .newest_month
                .iter()
                .any(|(table, newest)| tables.contains(table) && newest.as_str() > until);
            hasher.update(format!("\nheld past {until}: {held_past}").as_bytes());
        }
        hasher.finalize().to_hex()[..32].to_string()
    }
}

/// " (2026-01: never computed, 2026-02: its data or SQL changed)" for up to six periods.
fn stale_list(units: &[UnitReport]) -> String {
    let stale: Vec<String> = units
        .iter()
        .filter_map(|u| u.reason.map(|r| format!("{}: {r}", u.period)))
        .collect();
    match stale.len() {
        0 => String::new(),
        n if n <= 6 => format!(" ({})", stale.join(", ")),
        n => format!(" ({}, … {} more)", stale[..6].join(", "), n - 6),
    }
}

/// Why a period must be computed, or `None` when its result is up to date.
fn why_stale(
    force: bool,
    previous: Option<&UnitState>,
    fingerprint: &str,
    result_present: bool,
) -> Option<&'static str> {
    match previous {
        _ if force => Some("--force"),
        None => Some("never computed"),
        Some(p) if p.fingerprint != fingerprint => Some("its data or SQL changed"),
        Some(_) if !result_present => Some("its result is missing"),
        Some(_) => None,
    }
}

/// The last month (`YYYY-MM`) whose data can change a period ending (exclusively) at `to`.
fn last_month(to: Option<NaiveDate>, lookahead: Lookahead) -> Option<String> {
    let last_day = to?.pred_opt()?;
    let month = match lookahead {
        Lookahead::None => last_day,
        Lookahead::Months(n) => last_day.checked_add_months(Months::new(n))?,
        // Events before `to` + n days; the day itself too, for a clock change's hour.
        Lookahead::Days(n) => to?.checked_add_days(Days::new(n.into()))?,
        Lookahead::All => return None,
    };
    Some(Period::Month.label(month))
}

/// The tables a query reads (its plan's scans, subqueries included).
async fn tables_read(
    engine: &Engine,
    sql: &str,
) -> Result<BTreeSet<String>, datafusion::error::DataFusionError> {
    let plan = engine.context().state().create_logical_plan(sql).await?;
    let mut tables = BTreeSet::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            tables.insert(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(tables)
}

fn read_cache(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), StepError> {
    let cache = |source: kefu_model::BoxError| StepError::Cache {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| cache(e.into()))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| cache(e.into()))?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .map_err(|e| cache(e.into()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cache(e.into()))?;
    Ok((schema, batches))
}

fn write_cache(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<(), StepError> {
    let bytes = kefu_sql::output::encode(Format::Parquet, schema.clone(), batches)?;
    kefu_storage::atomic::write(path, &bytes).map_err(|e| StepError::Cache {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// The first `n` of `items`, comma-separated, with how many more there are.
pub(crate) fn first_of(items: &[String], n: usize) -> String {
    let shown = items[..items.len().min(n)].join(", ");
    match items.len().saturating_sub(n) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// Whether an output is there; an object store that cannot answer counts as "not there",
/// so the output is written again.
async fn exists(target: &Target) -> bool {
    target.exists().await.unwrap_or(false)
}

impl Runner<'_> {
    /// Keeps a small result of this run's state for later steps that run the same SQL.
    fn keep(&mut self, sql: &str, result: &(SchemaRef, Vec<RecordBatch>)) {
        let bytes: usize = result.1.iter().map(|b| b.get_array_memory_size()).sum();
        if bytes <= KEPT_RESULT_BYTES {
            self.computed.insert(sql.to_string(), result.clone());
        }
    }

    async fn inventory(&mut self) -> Result<std::sync::Arc<Inventory>, StepError> {
        if let Some(inventory) = &self.inventory {
            return Ok(inventory.clone());
        }
        let inventory = std::sync::Arc::new(Inventory::read(&self.warehouse).await?);
        self.inventory = Some(inventory.clone());
        Ok(inventory)
    }

    /// A session at the inventory's cut, so that what a query reads is what its
    /// fingerprint names.
    async fn engine(&self, inventory: &Inventory) -> Result<Engine, StepError> {
        let options = EngineOptions {
            as_of: kefu_storage::AsOf::Operation(inventory.cut.seq),
            ..EngineOptions::default()
        };
        match &self.options.engine {
            Some(open) => (open.0)(self.warehouse.clone(), options)
                .await
                .map_err(StepError::Session),
            None => Ok(Engine::open(&self.warehouse, &options).await?),
        }
    }

    fn ingest(&mut self, step: &IngestStep, report: &mut StepReport) -> Result<(), StepError> {
        if self.options.dry_run {
            report.status = StepStatus::Planned;
            report.message = format!(
                "would ingest {} (sources already in the warehouse are skipped)",
                step.sources.join(", ")
            );
            return Ok(());
        }
        let options = kefu_ingest::IngestOptions {
            profile: step.profile.clone(),
            max_reject_ratio: step.max_reject_ratio,
            time_zone: self.job.time_zone,
            ..kefu_ingest::IngestOptions::default()
        };
        match kefu_ingest::ingest(
            self.runtime,
            &step.sources,
            &self.warehouse,
            &options,
            self.progress,
        ) {
            Ok(r) => {
                let totals = r.totals();
                let summary = IngestSummary {
                    batch: r.batch.as_ref().map(|b| b.seq),
                    sources_new: r.sources,
                    sources_skipped: r.skipped.len(),
                    records: totals.records,
                    new: totals.new,
                    updated: totals.updated,
                    unchanged: totals.unchanged,
                    stale: totals.stale,
                    rejected: totals.rejected,
                    rejects_by_reason: r
                        .rejects_by_reason
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                };
                report.rows = totals.new + totals.updated;
                if r.batch.is_none() {
                    report.status = StepStatus::UpToDate;
                    report.message =
                        format!("no new sources ({} already ingested)", r.skipped.len());
                } else {
                    // A new batch: the state the fingerprints see changed.
                    self.inventory = None;
                    self.computed.clear();
                    report.message = format!(
                        "batch {}: {} new, {} updated, {} unchanged, {} stale, {} rejected from {} new sources",
                        summary.batch.unwrap_or_default(),
                        totals.new,
                        totals.updated,
                        totals.unchanged,
                        totals.stale,
                        totals.rejected,
                        r.sources,
                    );
                }
                report.ingest = Some(summary);
                Ok(())
            }
            Err(e) => {
                if let kefu_ingest::IngestError::TooManyRejects {
                    records, rejected, ..
                } = &e
                {
                    report.rejected = true;
                    report.ingest = Some(IngestSummary {
                        records: *records,
                        rejected: *rejected,
                        ..IngestSummary::default()
                    });
                }
                Err(e.into())
            }
        }
    }

    /// The step's parameter values at this run's date (`range` replaces `from` and `to`).
    fn param_values(
        &self,
        step: &QueryStep,
        range: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<BTreeMap<String, String>, StepError> {
        let mut values: BTreeMap<String, String> = step
            .query
            .params
            .iter()
            .map(|p| (p.name.clone(), p.default.clone()))
            .collect();
        for (name, value) in &step.params {
            values.insert(
                name.clone(),
                value.resolve(self.run_date).map_err(StepError::Parameter)?,
            );
        }
        let takes = |n: &str| step.query.params.iter().any(|p| p.name == n);
        if let Some((from, to)) = range
            && takes("from")
            && takes("to")
        {
            values.insert("from".into(), from.to_string());
            values.insert("to".into(), to.to_string());
        }
        Ok(values)
    }

    /// The step's periods with their SQL.
    fn plan_units(
        &self,
        step: &QueryStep,
        range: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Vec<PlannedUnit>, StepError> {
        let values = self.param_values(step, range)?;
        let date = |n: &str| values.get(n).and_then(|v| v.parse::<NaiveDate>().ok());
        let ranges: Vec<(String, Option<NaiveDate>, Option<NaiveDate>)> = match step.partition {
            Some(period) => {
                let (Some(from), Some(to)) = (date("from"), date("to")) else {
                    return Err(StepError::PartitionNeedsDates);
                };
                period
                    .split(from, to)
                    .into_iter()
                    .map(|(label, f, t)| (label, Some(f), Some(t)))
                    .collect()
            }
            None => vec![("all".to_string(), date("from"), date("to"))],
        };
        ranges
            .into_iter()
            .map(|(period, from, to)| {
                let mut v = values.clone();
                if step.partition.is_some() {
                    v.insert("from".into(), from.expect("partitioned").to_string());
                    v.insert("to".into(), to.expect("partitioned").to_string());
                }
                let pairs: Vec<(String, String)> = v.into_iter().collect();
                let sql = step.query.render(&pairs)?;
                Ok(PlannedUnit {
                    period,
                    from,
                    to,
                    sql,
                })
            })
            .collect()
    }

    async fn write_output(
        &mut self,
        target: &Target,
        format: Format,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), StepError> {
        let bytes = kefu_sql::output::encode(format, schema, batches)?;
        target.put_atomic(bytes).await?;
        failpoint_after_output(&mut self.outputs_written);
        Ok(())
    }

    async fn query(
        &mut self,
        name: &str,
        step: &QueryStep,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let units = self.plan_units(step, self.options.range)?;
        let (computed, together) = self.refresh_periods(name, step, &units, report).await?;
        let (rewritten, note) = self.write_whole_outputs(name, step, &units, report).await?;
        let total = units.len();
        report.message = if self.options.dry_run {
            let would = report
                .units
                .iter()
                .filter(|u| u.status == "would_compute")
                .count();
            report.status = StepStatus::Planned;
            format!(
                "would compute {would} of {total} periods{}, rewrite {rewritten} whole-range outputs",
                stale_list(&report.units)
            )
        } else if computed == 0 && report.outputs.is_empty() {
            report.status = StepStatus::UpToDate;
            format!("{total} periods up to date")
        } else {
            let changed: Vec<&str> = report
                .units
                .iter()
                .filter(|u| u.status == "computed")
                .map(|u| u.period.as_str())
                .collect();
            format!(
                "computed {computed} of {total} periods{}{}, {} rows; wrote {} outputs",
                if changed.is_empty() || changed.len() > 6 {
                    String::new()
                } else {
                    format!(" ({})", changed.join(", "))
                },
                together.map_or(String::new(), |span| format!(" in one run over {span}")),
                report.rows,
                report.outputs.len()
            )
        };
        if let Some(note) = note {
            report.message.push_str(&format!("; {note}"));
        }
        Ok(())
    }

    /// Computes the periods of `units` whose data changed (or whose cache is gone), caching
    /// each result and writing its per-period outputs; returns how many it computed and,
    /// where several ran as one query, over which span.
    async fn refresh_periods(
        &mut self,
        name: &str,
        step: &QueryStep,
        units: &[PlannedUnit],
        report: &mut StepReport,
    ) -> Result<(usize, Option<String>), StepError> {
        let inventory = self.inventory().await?;
        let engine = self.engine(&inventory).await?;
        let tables = match units.first() {
            Some(u) => tables_read(&engine, &u.sql)
                .await
                .map_err(|source| StepError::Plan {
                    query: step.query.name.clone(),
                    source,
                })?,
            None => BTreeSet::new(),
        };
        self.progress
            .start(name, Some(units.len() as u64), Unit::Items("periods"));
        let per_period: Vec<_> = step.outputs.iter().filter(|o| o.per_period()).collect();
        let mut computed = 0;
        let staleness: Vec<(String, Option<&'static str>)> = units
            .iter()
            .map(|unit| {
                let until = if step.partition.is_some() || unit.to.is_some() {
                    last_month(unit.to, step.lookahead)
                } else {
                    None
                };
                let fingerprint =
                    inventory.fingerprint(&unit.sql, &tables, until.as_deref(), step.lookahead);
                let reason = why_stale(
                    self.options.force,
                    self.state.units.get(&format!("{name}/{}", unit.period)),
                    &fingerprint,
                    self.state_dir.cache(name, &unit.period).exists(),
                );
                (fingerprint, reason)
            })
            .collect();
        let stale: Vec<&PlannedUnit> = units
            .iter()
            .zip(&staleness)
            .filter(|(_, (_, reason))| reason.is_some())
            .map(|(unit, _)| unit)
            .collect();
        let mut together = if self.options.dry_run {
            None
        } else {
            self.compute_together(step, &engine, units, &stale).await?
        };
        for (unit, (fingerprint, reason)) in units.iter().zip(staleness) {
            let begun = Instant::now();
            let key = format!("{name}/{}", unit.period);
            let cache = self.state_dir.cache(name, &unit.period);
            let fresh = reason.is_none();
            let mut unit_report = UnitReport {
                period: unit.period.clone(),
                from: unit.from,
                to: unit.to,
                status: "up_to_date",
                reason,
                rows: self.state.units.get(&key).map_or(0, |u| u.rows),
                seconds: 0.0,
            };
            if fresh {
                // Put back a per-period output someone deleted.
                for o in &per_period {
                    let target = self.target(&o.path.replace("{period}", &unit.period))?;
                    if !self.options.dry_run && !exists(&target).await {
                        let (schema, batches) = read_cache(&cache)?;
                        self.write_output(&target, o.format, schema, &batches)
                            .await?;
                        report.outputs.push(target.to_string());
                    }
                }
            } else if self.options.dry_run {
                unit_report.status = "would_compute";
            } else {
                let (schema, batches) =
                    match together
                        .as_mut()
                        .and_then(|t| Some((t.schema.clone(), t.periods.remove(&unit.period)?)))
                    {
                        Some(result) => result,
                        None => {
                            let result = engine.collect(&unit.sql).await.map_err(|source| {
                                StepError::Query {
                                    query: step.query.name.clone(),
                                    period: unit.period.clone(),
                                    source,
                                }
                            })?;
                            self.keep(&unit.sql, &result);
                            result
                        }
                    };
                let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                write_cache(&cache, &schema, &batches)?;
                for o in &per_period {
                    let target = self.target(&o.path.replace("{period}", &unit.period))?;
                    self.write_output(&target, o.format, schema.clone(), &batches)
                        .await?;
                    report.outputs.push(target.to_string());
                }
                self.state.units.insert(
                    key,
                    UnitState {
                        fingerprint,
                        rows,
                        computed_at: chrono::Utc::now(),
                    },
                );
                self.state_dir.save(&self.state)?;
                unit_report.status = "computed";
                unit_report.rows = rows;
                computed += 1;
            }
            unit_report.seconds = begun.elapsed().as_secs_f64();
            if let Some(t) = &together
                && unit_report.status == "computed"
            {
                unit_report.seconds += t.seconds_each;
            }
            report.rows += unit_report.rows;
            report.units.push(unit_report);
            self.progress.advance(1);
        }
        self.progress.finish();
        if !self.options.dry_run {
            self.keep_whole_range(name, step, units)?;
        }
        Ok((computed, together.map(|t| t.span)))
    }

    /// For a query with a period column, keeps its result over the step's whole range,
    /// assembled from the periods' caches (all current now), for a later step running
    /// that range's SQL — the report's thirteen months of `churn_monthly` when only the
    /// last few were stale. The header's promise makes it the query's own result: each
    /// period's rows as run alone, and the rows ordered by the period first.
    fn keep_whole_range(
        &mut self,
        name: &str,
        step: &QueryStep,
        units: &[PlannedUnit],
    ) -> Result<(), StepError> {
        let whole_months = matches!(
            step.partition,
            Some(Period::Month | Period::Quarter | Period::Half | Period::Year)
        );
        let (Some(_), true, [first, .., last]) = (&step.query.period_column, whole_months, units)
        else {
            return Ok(());
        };
        let (Some(from), Some(to)) = (first.from, last.to) else {
            return Ok(());
        };
        let values = self.param_values(step, Some((from, to)))?;
        let pairs: Vec<(String, String)> = values.into_iter().collect();
        let sql = step.query.render(&pairs)?;
        if self.computed.contains_key(&sql) {
            return Ok(());
        }
        let mut schema: Option<SchemaRef> = None;
        let mut batches = Vec::new();
        for unit in units {
            let (own, mut rows) = read_cache(&self.state_dir.cache(name, &unit.period))?;
            match &schema {
                Some(s) if *s != own => return Ok(()),
                Some(_) => {}
                None => schema = Some(own),
            }
            batches.append(&mut rows);
        }
        if let Some(schema) = schema {
            self.keep(&sql, &(schema, batches));
        }
        Ok(())
    }

    /// The results a report's `queries` (name, SQL, fingerprint) can take without running:
    /// those this run computed, and those cached by the last build of the same report
    /// from data that has not changed since. `--force` takes none.
    fn known_results(
        &self,
        step: &str,
        label: &str,
        queries: &[(&str, String, String)],
    ) -> Result<kefu_report::Known, StepError> {
        let mut known = kefu_report::Known::new();
        if self.options.force {
            return Ok(known);
        }
        for (query, sql, fingerprint) in queries {
            if let Some(result) = self.computed.get(sql) {
                known.insert(sql.clone(), result.clone());
                continue;
            }
            let (_, cache, current) = self.report_query_cache(step, label, query, fingerprint);
            if current {
                known.insert(sql.clone(), read_cache(&cache)?);
            }
        }
        Ok(known)
    }

    /// A report query's state key, its cached result, and whether that was computed from
    /// the data `fingerprint` names.
    fn report_query_cache(
        &self,
        step: &str,
        label: &str,
        query: &str,
        fingerprint: &str,
    ) -> (String, PathBuf, bool) {
        let key = format!("{step}/{label}/{query}");
        let cache = self.state_dir.cache(step, &format!("{label}.{query}"));
        let current = why_stale(
            false,
            self.state.units.get(&key),
            fingerprint,
            cache.exists(),
        )
        .is_none();
        (key, cache, current)
    }

    /// Caches the results of a report's queries whose cache is not up to date.
    fn cache_results(
        &mut self,
        step: &str,
        label: &str,
        queries: &[(&str, String, String)],
        results: &[kefu_report::QueryResult],
    ) -> Result<(), StepError> {
        for (query, _, fingerprint) in queries {
            let (key, cache, current) = self.report_query_cache(step, label, query, fingerprint);
            if current {
                continue;
            }
            let Some(result) = results.iter().find(|r| r.name == *query) else {
                continue;
            };
            write_cache(&cache, &result.schema, &result.batches)?;
            self.state.units.insert(
                key,
                UnitState {
                    fingerprint: fingerprint.clone(),
                    rows: result.batches.iter().map(|b| b.num_rows() as u64).sum(),
                    computed_at: chrono::Utc::now(),
                },
            );
        }
        Ok(())
    }

    /// Runs a query that declares a period column once over the span of its `stale`
    /// periods (when there are several) and splits the rows into theirs; otherwise (or
    /// for a partition finer than a month) `None`, and each period runs alone.
    async fn compute_together(
        &mut self,
        step: &QueryStep,
        engine: &Engine,
        units: &[PlannedUnit],
        stale: &[&PlannedUnit],
    ) -> Result<Option<Together>, StepError> {
        let whole_months = matches!(
            step.partition,
            Some(Period::Month | Period::Quarter | Period::Half | Period::Year)
        );
        let (Some(column), true, [first, .., last]) =
            (&step.query.period_column, whole_months, stale)
        else {
            return Ok(None);
        };
        let (Some(from), Some(to)) = (first.from, last.to) else {
            return Ok(None);
        };
        let begun = Instant::now();
        let span = format!("{}..{}", first.period, last.period);
        // The query takes `from` and `to` (its header was refused otherwise).
        let values = self.param_values(step, Some((from, to)))?;
        let pairs: Vec<(String, String)> = values.into_iter().collect();
        let sql = step.query.render(&pairs)?;
        let result = engine
            .collect(&sql)
            .await
            .map_err(|source| StepError::Query {
                query: step.query.name.clone(),
                period: span.clone(),
                source,
            })?;
        self.keep(&sql, &result);
        let (schema, batches) = result;
        // Every period inside the span, fresh ones too: a row must fall in one of them.
        let inside: Vec<(String, NaiveDate, NaiveDate)> = units
            .iter()
            .filter_map(|u| Some((u.period.clone(), u.from?, u.to?)))
            .filter(|(_, f, t)| *f >= from && *t <= to)
            .collect();
        let mut periods =
            split_by_period(&schema, &batches, column, &inside).map_err(|reason| {
                StepError::PeriodColumn {
                    query: step.query.name.clone(),
                    span: span.clone(),
                    column: column.clone(),
                    reason,
                }
            })?;
        periods.retain(|period, _| stale.iter().any(|u| &u.period == period));
        Ok(Some(Together {
            seconds_each: begun.elapsed().as_secs_f64() / stale.len() as f64,
            schema,
            periods,
            span,
        }))
    }

    /// Writes the step's whole-range outputs from the cached periods, where one of them
    /// changed; returns how many it (would) rewrite and a note on those it left.
    async fn write_whole_outputs(
        &mut self,
        name: &str,
        step: &QueryStep,
        units: &[PlannedUnit],
        report: &mut StepReport,
    ) -> Result<(usize, Option<String>), StepError> {
        // Whole-range outputs hold the step's own range (a backfill never narrows them),
        // assembled from the cached periods whenever one of them changed.
        let whole: Vec<String> = if self.options.range.is_some() && step.partition.is_some() {
            self.plan_units(step, None)?
                .into_iter()
                .map(|u| u.period)
                .collect()
        } else {
            units.iter().map(|u| u.period.clone()).collect()
        };
        let fingerprints: Vec<&str> = whole
            .iter()
            .map(|p| {
                self.state
                    .units
                    .get(&format!("{name}/{p}"))
                    .map_or("-", |u| u.fingerprint.as_str())
            })
            .collect();
        let combined = blake3::hash(fingerprints.join(",").as_bytes()).to_hex()[..32].to_string();
        let not_cached: Vec<&str> = whole
            .iter()
            .filter(|p| !self.state_dir.cache(name, p).exists())
            .map(String::as_str)
            .collect();
        let mut rewritten = 0;
        let mut note = None;
        // A dry run has not recorded the periods it would compute: they change it too.
        let would_change = report.units.iter().any(|u| u.status == "would_compute");
        for o in step.outputs.iter().filter(|o| !o.per_period()) {
            let target = self.target(&o.path)?;
            let key = target.to_string();
            if !self.options.force
                && !would_change
                && self.state.outputs.get(&key) == Some(&combined)
                && exists(&target).await
            {
                continue;
            }
            if !not_cached.is_empty() && !self.options.dry_run {
                note = Some(format!(
                    "{target} left as it was: period {} not computed yet (run without --from/--to)",
                    not_cached.join(", ")
                ));
                continue;
            }
            rewritten += 1;
            if self.options.dry_run {
                continue;
            }
            let mut schema = None;
            let mut all = Vec::new();
            for period in &whole {
                let (s, batches) = read_cache(&self.state_dir.cache(name, period))?;
                schema.get_or_insert(s);
                all.extend(batches);
            }
            let Some(schema) = schema else { continue };
            self.write_output(&target, o.format, schema, &all).await?;
            self.state.outputs.insert(key, combined.clone());
            report.outputs.push(target.to_string());
        }
        Ok((rewritten, note))
    }

    fn target(&self, path: &str) -> Result<Target, StepError> {
        if path.contains("://") || Path::new(path).is_absolute() {
            Ok(Target::parse_in(path, Path::new("/"))?)
        } else {
            Ok(self.job.output_dir.join(path))
        }
    }

    /// Fails unless every office expected has delivered every data day `days` names.
    async fn check_deliveries(
        &mut self,
        days: &crate::job::DaysRequired,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let (from, to) = days.resolve(self.run_date).map_err(StepError::Parameter)?;
        let window = kefu_ingest::deliveries::DayWindow::Days(from, to);
        let deliveries =
            kefu_ingest::deliveries::in_warehouse(&self.warehouse, &self.job.deliveries, window)
                .await?;
        if deliveries.regions.is_empty() {
            return Err(StepError::NoDeliveriesRecognised { from, to });
        }
        report.missing_deliveries = deliveries
            .days
            .iter()
            .filter(|d| d.arrived.is_none())
            .map(|d| format!("{} {}", d.region, d.day))
            .collect();
        if report.missing_deliveries.is_empty() {
            return Ok(());
        }
        Err(StepError::MissingDeliveries {
            missing: report.missing_deliveries.clone(),
        })
    }

    async fn report(
        &mut self,
        name: &str,
        step: &ReportStep,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let edition = match step.edition {
            kefu_report::Edition::Month => Period::Month,
            kefu_report::Edition::Half => Period::Half,
            kefu_report::Edition::Year => Period::Year,
        };
        let starts: Vec<NaiveDate> = match self.options.range {
            Some((from, to)) => edition
                .split(from, to)
                .into_iter()
                .map(|(_, f, _)| edition.start(f))
                .collect(),
            None => vec![edition.start(dates::eval(&step.month, self.run_date)?)],
        };
        let inventory = self.inventory().await?;
        let engine = self.engine(&inventory).await?;
        let mut built = 0;
        let mut reused = 0;
        for start in starts {
            let period = kefu_report::ReportPeriod::containing(step.edition, start);
            let label = period.label();
            let key = format!("{name}/{label}");
            let request = kefu_report::ReportRequest {
                period,
                region: step.region.clone(),
                lang: step.lang,
                targets: step.targets.clone(),
            };
            // The report is its queries' results, so its fingerprint is theirs together:
            // each query's SQL and the tables its plan reads, up to the month plus its
            // own lookahead. A rebuild takes the result of a query whose own fingerprint
            // did not change from the last build's cache.
            let mut seed = format!(
                "report {:?} {} {:?}",
                step.region,
                step.lang.code(),
                step.targets
            );
            let mut queries = Vec::new();
            for (query, params) in kefu_report::query_plan(&request) {
                let q = self.job.library.get(query)?;
                let sql = q.render(&params)?;
                let read = tables_read(&engine, &sql).await?;
                let own = Lookahead::declared_by(q, &params).map_err(StepError::Parameter)?;
                let own_until = last_month(Some(period.end()), own);
                let own_fingerprint = inventory.fingerprint(&sql, &read, own_until.as_deref(), own);
                seed.push_str(&own_fingerprint);
                queries.push((query, sql, own_fingerprint));
            }
            let fingerprint = blake3::hash(seed.as_bytes()).to_hex()[..32].to_string();
            let dir = self.target(
                &step
                    .out
                    .replace("{month}", &label)
                    .replace("{period}", &label),
            )?;
            let reason = why_stale(
                self.options.force,
                self.state.units.get(&key),
                &fingerprint,
                exists(&dir.join("index.html")).await,
            );
            let begun = Instant::now();
            let status = match reason {
                None => "up_to_date",
                Some(_) if self.options.dry_run => "would_compute",
                Some(_) => {
                    let known = self.known_results(name, &label, &queries)?;
                    reused += known.len();
                    let built_report = kefu_report::build_reusing(
                        &engine,
                        &self.job.library,
                        &request,
                        self.progress,
                        &known,
                    )
                    .await
                    .map_err(|source| StepError::Build {
                        label: label.clone(),
                        source,
                    })?;
                    self.cache_results(name, &label, &queries, &built_report.queries)?;
                    let written = built_report.publish(&dir).await?;
                    failpoint_after_output(&mut self.outputs_written);
                    report.outputs.push(dir.join("index.html").to_string());
                    self.state.units.insert(
                        key,
                        UnitState {
                            fingerprint,
                            rows: written.len() as u64,
                            computed_at: chrono::Utc::now(),
                        },
                    );
                    built += 1;
                    "computed"
                }
            };
            report.units.push(UnitReport {
                period: label,
                from: Some(start),
                to: None,
                status,
                reason,
                rows: 0,
                seconds: begun.elapsed().as_secs_f64(),
            });
        }
        let total = report.units.len();
        if self.options.dry_run {
            report.status = StepStatus::Planned;
            report.message = format!(
                "would build {} of {total} reports{}",
                report
                    .units
                    .iter()
                    .filter(|u| u.status == "would_compute")
                    .count(),
                stale_list(&report.units)
            );
        } else if built == 0 {
            report.status = StepStatus::UpToDate;
            report.message = format!("{total} reports up to date");
        } else {
            report.message = format!(
                "built {built} of {total} reports ({reused} query results reused): {}",
                report.outputs.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn batch(months: &[Option<&str>], values: &[i64]) -> RecordBatch {
        let epoch = day("1970-01-01");
        let schema = Schema::new(vec![
            Field::new("month", DataType::Date32, true),
            Field::new("n", DataType::Int64, false),
        ]);
        let months: Date32Array = months
            .iter()
            .map(|m| m.map(|m| (day(m) - epoch).num_days() as i32))
            .collect();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(months),
                Arc::new(Int64Array::from(values.to_vec())),
            ],
        )
        .unwrap()
    }

    fn periods() -> Vec<(String, NaiveDate, NaiveDate)> {
        ["2026-01", "2026-02", "2026-03"]
            .iter()
            .map(|p| {
                let from = day(&format!("{p}-01"));
                (
                    p.to_string(),
                    from,
                    from.checked_add_months(Months::new(1)).unwrap(),
                )
            })
            .collect()
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let n: &Int64Array = b.column(1).as_any().downcast_ref().unwrap();
                n.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn rows_run_together_go_to_their_periods_in_order() {
        let batches = [
            batch(
                &[Some("2026-01-01"), Some("2026-03-01"), Some("2026-01-01")],
                &[1, 2, 3],
            ),
            batch(&[Some("2026-03-01"), Some("2026-01-01")], &[4, 5]),
        ];
        let split = split_by_period(&batches[0].schema(), &batches, "month", &periods()).unwrap();
        assert_eq!(values(&split["2026-01"]), [1, 3, 5]);
        assert!(split["2026-02"].is_empty());
        assert_eq!(values(&split["2026-03"]), [2, 4]);
    }

    #[test]
    fn a_row_outside_the_periods_is_an_error_not_a_loss() {
        let schema = batch(&[], &[]).schema();
        for (month, shown) in [(Some("2026-04-01"), "2026-04-01"), (None, "null")] {
            let batches = [batch(&[Some("2026-02-01"), month], &[1, 2])];
            let e = split_by_period(&schema, &batches, "month", &periods()).unwrap_err();
            assert!(e.contains(shown) && e.contains("row 2"), "{e}");
        }
        let e = split_by_period(&schema, &[], "region", &periods()).unwrap_err();
        assert!(e.contains("not a column"), "{e}");
    }

    #[test]
    fn a_lookahead_in_days_reaches_the_month_of_its_last_day() {
        let end = |d: &str| Some(d.parse::<NaiveDate>().unwrap());
        // January's contacts are followed until 1 May (31 January + 90 days).
        assert_eq!(
            last_month(end("2026-02-01"), Lookahead::Days(90)).as_deref(),
            Some("2026-05")
        );
        // February's until 30 May; a month's own data alone without a lookahead.
        assert_eq!(
            last_month(end("2026-03-01"), Lookahead::Days(90)).as_deref(),
            Some("2026-05")
        );
        assert_eq!(
            last_month(end("2026-03-01"), Lookahead::None).as_deref(),
            Some("2026-02")
        );
        assert_eq!(
            last_month(end("2026-03-01"), Lookahead::Months(3)).as_deref(),
            Some("2026-05")
        );
        assert_eq!(last_month(end("2026-03-01"), Lookahead::All), None);
        assert_eq!("0 days".parse(), Ok(Lookahead::None));
        assert!("3 weeks".parse::<Lookahead>().is_err());
    }
}
