//! Runs the sqllogictest files of `tests/slt/` against a warehouse ingested from the
//! hand-written fixtures of `fixtures/sql/` (expected values are worked out by hand in
//! the files' comments). A line `QUERY name key=value …` runs a named query.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use kefu_sql::{Engine, EngineOptions, QueryLibrary, SqlError};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sql")
}

/// A warehouse in `dir` holding the SQL fixtures.
pub fn fixture_warehouse(dir: &Path) -> kefu_storage::Warehouse {
    let location = kefu_storage::WarehouseLocation::parse_in(&dir.display().to_string(), dir)
        .expect("location");
    let warehouse = kefu_storage::Warehouse::open(&location).expect("open");
    let mut sources: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .map(|p| p.display().to_string())
        .collect();
    sources.sort();
    let report = kefu_ingest::ingest(
        &sources,
        &warehouse,
        &kefu_ingest::IngestOptions {
            max_reject_ratio: 0.0,
            ..Default::default()
        },
        &kefu_progress::NoProgress,
    )
    .expect("the fixtures ingest without rejects");
    assert_eq!(report.totals().rejected, 0);
    warehouse
}

struct Kefu {
    engine: Arc<Engine>,
    library: Arc<QueryLibrary>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl From<SqlError> for Failure {
    fn from(e: SqlError) -> Self {
        Failure(e.to_string())
    }
}

/// Floats to 4 decimals (as the expected values are written), NULL for nulls.
fn cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    match array.data_type() {
        DataType::Float64 => format!("{:.4}", array.as_primitive::<Float64Type>().value(row)),
        _ => ArrayFormatter::try_new(array, &FormatOptions::default())
            .expect("formatter")
            .value(row)
            .to_string(),
    }
}

#[async_trait::async_trait]
impl AsyncDB for Kefu {
    type Error = Failure;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Failure> {
        let sql = match sql.trim().strip_prefix("QUERY ") {
            Some(call) => {
                let mut words = call.split_whitespace();
                let name = words.next().unwrap_or_default();
                let params: Vec<(String, String)> = words
                    .map(|w| {
                        let (k, v) = w.split_once('=').expect("key=value");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                self.library.get(name)?.render(&params)?
            }
            None => sql.to_string(),
        };
        let df = self.engine.sql(&sql).await?;
        let batches = df.collect().await.map_err(SqlError::from)?;
        let mut rows = Vec::new();
        let mut types = Vec::new();
        for batch in &batches {
            types = vec![DefaultColumnType::Any; batch.num_columns()];
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| cell(c.as_ref(), row))
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

/// `kefu gen` output of `customers` over `days` from 2026-01-01 (seed 42), in `dir/data`,
/// and the warehouse `dir/wh` it was ingested into. Complaints are dense (50 times the
/// realistic default) so that a few thousand customers give every region and month
/// complaints to count, compare and rank.
pub fn generated_warehouse(
    dir: &Path,
    customers: u32,
    days: u32,
) -> (PathBuf, kefu_storage::Warehouse) {
    ingested(dir, customers, days, Some(0.075))
}

/// As [`generated_warehouse`], with the generator's realistic defaults throughout.
pub fn realistic_warehouse(
    dir: &Path,
    customers: u32,
    days: u32,
) -> (PathBuf, kefu_storage::Warehouse) {
    ingested(dir, customers, days, None)
}

fn ingested(
    dir: &Path,
    customers: u32,
    days: u32,
    complaints_per_customer_month: Option<f64>,
) -> (PathBuf, kefu_storage::Warehouse) {
    let mut cfg = kefu_gen::GenConfig::new(dir.join("data"));
    cfg.customers = customers;
    cfg.days = days;
    if let Some(rate) = complaints_per_customer_month {
        cfg.complaints_per_customer_month = rate;
    }
    kefu_gen::generate(&cfg, &kefu_progress::NoProgress).unwrap();
    let location = kefu_storage::WarehouseLocation::parse_in("wh", dir).unwrap();
    let warehouse = kefu_storage::Warehouse::open(&location).unwrap();
    kefu_ingest::ingest(
        &[cfg.out.display().to_string()],
        &warehouse,
        &kefu_ingest::IngestOptions::default(),
        &kefu_progress::NoProgress,
    )
    .unwrap();
    (cfg.out, warehouse)
}

/// A multi-threaded runtime for a test (ingest runs its own, so tests start theirs
/// after building the warehouse).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sqllogictest_files() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = fixture_warehouse(dir.path());
    runtime().block_on(run_files(&warehouse));
}

async fn run_files(warehouse: &kefu_storage::Warehouse) {
    let engine = Arc::new(
        Engine::open(warehouse, &EngineOptions::default())
            .await
            .unwrap(),
    );
    let library = Arc::new(QueryLibrary::embedded().unwrap());
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "slt"))
            .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let (engine, library) = (engine.clone(), library.clone());
        let mut runner = sqllogictest::Runner::new(move || {
            let (engine, library) = (engine.clone(), library.clone());
            async move { Ok(Kefu { engine, library }) }
        });
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{}: {e}", file.display());
        }
    }
}
