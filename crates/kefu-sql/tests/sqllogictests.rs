//! Runs the sqllogictest files of `tests/slt/` against a warehouse ingested from the
//! hand-written fixtures of `fixtures/sql/` (expected values are worked out by hand in
//! the files' comments), as DataFusion runs its own: a plain binary, not a libtest one.
//!
//! ```text
//! cargo test -p kefu-sql --test sqllogictests                  every file
//! cargo test -p kefu-sql --test sqllogictests -- functions     files whose name holds "functions"
//! cargo test -p kefu-sql --test sqllogictests -- --complete    rewrite the expected results
//! ```
//!
//! `--complete` writes what kefu answers into the files: check every changed line by hand
//! (`git diff`) before committing it, since an expected value copied from kefu's own
//! output tests nothing. A line `QUERY name key=value …` runs a named query. Column types
//! are checked: `I` integers, `R` floating point and decimals, `T` everything else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use kefu_sql::{Engine, EngineOptions, QueryLibrary, SqlError};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

#[path = "fixture_warehouse.rs"]
mod fixture_warehouse;

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

/// The column's sqllogictest letter.
fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
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
        let types = df
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let batches = df.collect().await.map_err(SqlError::from)?;
        let mut rows = Vec::new();
        for batch in &batches {
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

/// What the command line asks: file name filters, and whether to rewrite the files.
struct Options {
    filters: Vec<String>,
    complete: bool,
}

impl Options {
    fn from_args() -> Self {
        let mut options = Options {
            filters: Vec::new(),
            complete: false,
        };
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--complete" => options.complete = true,
                // libtest's flags (`cargo test -- --nocapture`) mean nothing here.
                flag if flag.starts_with('-') => {}
                filter => options.filters.push(filter.to_string()),
            }
        }
        options
    }

    fn wants(&self, file: &Path) -> bool {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

fn main() -> ExitCode {
    let options = Options::from_args();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt"))
            .expect("tests/slt")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "slt") && options.wants(p))
            .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("no .slt file matches {:?}", options.filters);
        return ExitCode::FAILURE;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Ingest runs its own runtime: the warehouse is built before this one starts.
    let warehouse = fixture_warehouse::fixture_warehouse(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let failed = runtime.block_on(run_files(&warehouse, &files, options.complete));
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{} of {} files failed: {}",
            failed.len(),
            files.len(),
            failed.join(", ")
        );
        ExitCode::FAILURE
    }
}

/// Runs (or with `complete`, rewrites) each file; returns the names of those that failed.
async fn run_files(
    warehouse: &kefu_storage::Warehouse,
    files: &[PathBuf],
    complete: bool,
) -> Vec<String> {
    let engine = Arc::new(
        Engine::open(warehouse, &EngineOptions::default())
            .await
            .expect("a session"),
    );
    let library = Arc::new(QueryLibrary::embedded().expect("the query library"));
    let mut failed = Vec::new();
    for file in files {
        let (engine, library) = (engine.clone(), library.clone());
        let mut runner = sqllogictest::Runner::new(move || {
            let (engine, library) = (engine.clone(), library.clone());
            async move { Ok(Kefu { engine, library }) }
        });
        runner.with_column_validator(sqllogictest::strict_column_validator);
        let name = file.display().to_string();
        let result = if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::strict_column_validator,
                )
                .await
                .map_err(|e| e.to_string())
        } else {
            runner
                .run_file_async(file)
                .await
                .map_err(|e| e.display(false).to_string())
        };
        match result {
            Ok(()) => println!("ok {name}"),
            Err(e) => {
                eprintln!("FAILED {name}: {e}");
                failed.push(name);
            }
        }
    }
    failed
}
