//! The warehouse of the hand-written SQL fixtures (`fixtures/sql/`), shared by the
//! integration tests and the sqllogictest runner.

use std::path::{Path, PathBuf};

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
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = kefu_ingest::ingest(
        runtime.handle(),
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
