//! Helpers shared by the CLI tests.

use std::collections::BTreeMap;
use std::path::Path;

/// The `kefu` binary with an empty environment (no KEFU_* leaks in from the caller),
/// run in `dir`.
pub fn kefu(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("kefu");
    cmd.env_clear().current_dir(dir);
    cmd
}

/// `kefu gen`'s setting for dense complaints: 50 times the realistic default, so that the
/// few hundred or thousand customers of a test give every region and month complaints,
/// repeats and escalations to count (at the default a test's data would hold a handful).
pub const DENSE_COMPLAINTS: [&str; 2] = ["--complaints-per-customer-month", "0.075"];

/// `kefu gen` plain output (one CSV per table) for `customers`, `days` and the first
/// `regions` regions, under `dir/gen`, with dense complaints.
pub fn generate(dir: &Path, customers: u32, days: u32, regions: u32) {
    kefu(dir)
        .args(["gen", "--out", "gen", "-q"])
        .args(DENSE_COMPLAINTS)
        .args(["--customers", &customers.to_string()])
        .args(["--days", &days.to_string()])
        .args(["--regions", &regions.to_string()])
        .assert()
        .success();
}

/// Every file below `dir`, by relative path, with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A Python that can import `module`: $KEFU_PYTHON (set by .ci/run), else python3.
pub fn python_with(module: &str) -> Option<String> {
    let candidates = std::env::var("KEFU_PYTHON")
        .into_iter()
        .chain(["python3".to_string()]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(python);
        }
    }
    None
}

/// A Python with DuckDB for a comparison test, or `None` after saying the test is skipped
/// (an error where CI requires DuckDB: KEFU_REQUIRE_DUCKDB).
pub fn duckdb_python_or_skip(test: &str) -> Option<String> {
    python_or_skip(test, "duckdb", "KEFU_REQUIRE_DUCKDB")
}

/// A Python that imports `module`, or `None` after saying `test` is skipped (an error
/// where the variable `require` is set, as `.ci/run` sets it).
pub fn python_or_skip(test: &str, module: &str, require: &str) -> Option<String> {
    let python = python_with(module);
    if python.is_none() {
        assert!(
            std::env::var_os(require).is_none(),
            "{require} is set but no Python with {module} was found"
        );
        eprintln!(
            "SKIPPED {test}: no Python with {module} (set KEFU_PYTHON; .ci/run installs one)"
        );
    }
    python
}

/// `kefu ARGS` in `dir`, which must succeed, its stdout read as JSON.
pub fn kefu_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = kefu(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kefu {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Every row of a table in the warehouse's newest complete state (the files its Delta log
/// names at that version), read through kefu's storage crate.
pub fn read_table(warehouse: &Path, table: &str) -> Vec<arrow::array::RecordBatch> {
    let location =
        kefu_storage::WarehouseLocation::parse_in(&warehouse.display().to_string(), Path::new("/"))
            .unwrap();
    let wh = kefu_storage::Warehouse::open(&location).unwrap();
    let table = kefu_storage::StoredTable::from_name(table).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cut = rt.block_on(wh.cut(kefu_storage::AsOf::Latest)).unwrap();
    rt.block_on(wh.read_table(&cut, table)).unwrap()
}
