//! `kefu ingest` and `kefu status` end to end: exactly once under kill -9, and the
//! warehouse's Delta tables read by independent engines (Python's deltalake, DuckDB).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use rand::{RngExt, SeedableRng};

use crate::common::kefu;

const TABLES: [&str; 9] = [
    "calls",
    "tickets",
    "callbacks",
    "visits",
    "customers",
    "org_units",
    "staff",
    "queues",
    "categories",
];

fn generate_messy(dir: &Path, customers: u32, days: u32) -> PathBuf {
    let out = dir.join("exports");
    kefu(dir)
        .args(["gen", "--messy", "-q", "--bad-row-rate", "0.01"])
        .args(crate::common::DENSE_COMPLAINTS)
        .args([
            "--customers",
            &customers.to_string(),
            "--days",
            &days.to_string(),
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    out
}

/// Data files below `dir` (a table's log holds Parquet checkpoints too: not data).
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = kefu_storage::parquet::local_files(dir).unwrap();
    files.retain(|p| !p.components().any(|c| c.as_os_str() == "_delta_log"));
    files
}

/// A table's rows in the warehouse's newest state as sorted lines of text (all columns but
/// those named in `skip`), so two warehouses can be compared row for row.
pub(crate) fn table_rows(warehouse: &Path, table: &str, skip: &[&str]) -> Vec<String> {
    let batches: Vec<RecordBatch> = crate::common::read_table(warehouse, table);
    let mut rows = Vec::new();
    for b in &batches {
        // Timestamps as their µs values (displaying a zone needs arrow's chrono-tz).
        let columns: Vec<(usize, ArrayRef)> = b
            .columns()
            .iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(&b.schema().field(*i).name().as_str()))
            .map(|(i, c)| match c.data_type() {
                DataType::Timestamp(..) => (i, cast(c, &DataType::Int64).unwrap()),
                _ => (i, c.clone()),
            })
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = columns
                .iter()
                .map(|(_, c)| {
                    if c.is_null(r) {
                        "∅".to_string()
                    } else {
                        array_value_to_string(c, r).unwrap()
                    }
                })
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

pub(crate) fn warehouse_rows(warehouse: &Path) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = TABLES
        .iter()
        .map(|t| (*t, table_rows(warehouse, t, &[])))
        .collect();
    out.insert(
        "_rejects",
        table_rows(warehouse, "_rejects", &["batch_id", "rejected_at"]),
    );
    out
}

fn ledger_records(warehouse: &Path) -> Vec<serde_json::Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(warehouse.join("_kefu/ledger"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "json"));
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// What a killed ingest may leave: readers see nothing of the batch, or all of it (the
/// warehouse's newest complete state is empty, or exactly the clean ingest). Returns
/// whether the kill came after the commit point (a ledger record) but before every
/// table's log had its version: the next writer finishes it.
fn assert_before_or_whole(warehouse: &Path, clean: &BTreeMap<&'static str, Vec<String>>) -> bool {
    let ledger = ledger_records(warehouse);
    let rows = warehouse_rows(warehouse);
    let visible: usize = rows.values().map(Vec::len).sum();
    if visible > 0 {
        assert_eq!(&rows, clean, "a reader sees part of a batch");
    }
    match ledger.as_slice() {
        [] => {
            assert_eq!(visible, 0, "rows visible without a commit");
            false
        }
        [_batch] => visible == 0,
        more => panic!("{} ledger records for one batch", more.len()),
    }
}

/// Runs `cmd`, which must succeed (its stderr is shown if not), and returns its output.
fn run_ok(cmd: &mut Command, context: &str) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{context}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ingest_cmd(exports: &Path, warehouse: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
    cmd.env_clear()
        .arg("ingest")
        .arg(exports)
        .arg("--warehouse")
        .arg(warehouse)
        .args(["-q", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// kill -9 at random moments of an ingest, then rerun: the result is always exactly the
/// warehouse of one clean ingest.
#[test]
fn killed_ingests_rerun_to_exactly_one_clean_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let exports = generate_messy(dir.path(), 1_500, 20);

    let clean = dir.path().join("clean");
    let started = Instant::now();
    run_ok(&mut ingest_cmd(&exports, &clean), "clean ingest");
    let clean_time = started.elapsed();
    let want = warehouse_rows(&clean);
    assert!(want["calls"].len() > 1_000 && !want["_rejects"].is_empty());

    let mut rng = rand_pcg::Pcg64::seed_from_u64(20261122);
    let mut killed_mid_run = 0;
    let mut killed_mid_publish = 0;
    // Rounds go on until 20 kills have hit a running ingest (the machine's speed varies).
    let mut round = 0;
    while killed_mid_run < 20 {
        round += 1;
        assert!(round <= 100, "kills keep missing the ingest");
        let wh = dir.path().join(format!("wh{round}"));
        // One to three kills in a row, each at a random moment of the run.
        for _ in 0..rng.random_range(1..=3) {
            let mut child = ingest_cmd(&exports, &wh).spawn().unwrap();
            let at = clean_time.mul_f64(rng.random_range(0.0..1.0));
            std::thread::sleep(at);
            if child.try_wait().unwrap().is_none() {
                killed_mid_run += 1;
            }
            child.kill().ok(); // SIGKILL
            child.wait().unwrap();
            if wh.exists() && assert_before_or_whole(&wh, &want) {
                killed_mid_publish += 1;
            }
        }
        run_ok(&mut ingest_cmd(&exports, &wh), &format!("round {round}"));
        let got = warehouse_rows(&wh);
        for (table, rows) in &want {
            assert_eq!(
                rows.len(),
                got[table].len(),
                "round {round}: {table} row count"
            );
            assert!(rows == &got[table], "round {round}: {table} rows differ");
        }
        assert_eq!(ledger_records(&wh).len(), 1, "round {round}: one batch");
    }
    eprintln!(
        "{round} rounds; {killed_mid_run} kills while the ingest ran, {killed_mid_publish} of \
         them after the commit point and before every table had its version (clean ingest \
         {clean_time:?})"
    );
}

#[test]
fn reingesting_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let exports = generate_messy(dir.path(), 500, 5);
    let wh = dir.path().join("wh");
    let first = kefu(dir.path())
        .arg("ingest")
        .arg(&exports)
        .args(["--warehouse", "wh", "--json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&first.get_output().stdout).unwrap();
    let records = report["records"].as_u64().unwrap();
    let sum: u64 = ["new", "updated", "unchanged", "stale", "rejected"]
        .iter()
        .map(|k| report[k].as_u64().unwrap())
        .sum();
    assert_eq!(records, sum, "{report}");
    for (table, c) in report["tables"].as_object().unwrap() {
        let sum: u64 = ["new", "updated", "unchanged", "stale", "rejected"]
            .iter()
            .map(|k| c[k].as_u64().unwrap())
            .sum();
        assert_eq!(c["records"].as_u64().unwrap(), sum, "{table}: {c}");
    }
    let before = warehouse_rows(&wh);
    kefu(dir.path())
        .arg("ingest")
        .arg(&exports)
        .args(["--warehouse", "wh"])
        .assert()
        .success()
        .stdout(predicates::str::contains("nothing to ingest"));
    assert_eq!(warehouse_rows(&wh), before);

    let status = kefu(dir.path())
        .args(["status", "--warehouse", "wh", "--json"])
        .assert()
        .success();
    let status: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    for t in status["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        let rows = before[name].len() as u64;
        assert_eq!(t["rows"].as_u64().unwrap(), rows, "{name}");
        assert_eq!(t["missing_files"].as_u64().unwrap(), 0);
    }
    assert_eq!(status["operations"].as_array().unwrap().len(), 1);
    kefu(dir.path())
        .args(["status", "--warehouse", "wh"])
        .assert()
        .success()
        .stdout(predicates::str::contains("calls"));

    // Too many rejects: exit 3, nothing committed.
    let strict = kefu(dir.path())
        .arg("ingest")
        .arg(&exports)
        .args(["--warehouse", "strict", "--max-reject-ratio", "0.0001"])
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&strict.get_output().stderr).into_owned();
    assert!(
        stderr.contains("nothing of this batch was committed"),
        "{stderr}"
    );
    assert!(parquet_files(&dir.path().join("strict")).is_empty());
}

/// Counts and sums per table, by kefu.
const KEFU_SUMS: &str = "SELECT \
    (SELECT count(*) FROM calls) AS calls, \
    (SELECT sum(talk_s) FROM calls) AS calls_talk_s, \
    (SELECT count(*) FROM tickets) AS tickets, \
    (SELECT sum(reopened_count) FROM tickets) AS tickets_reopened, \
    (SELECT count(*) FROM tickets WHERE status = 'closed') AS tickets_closed, \
    (SELECT count(*) FROM callbacks) AS callbacks, \
    (SELECT sum(attempt) FROM callbacks) AS callbacks_attempts, \
    (SELECT count(*) FROM visits) AS visits, \
    (SELECT sum(score) FROM visits) AS visits_score, \
    (SELECT count(*) FROM customers) AS customers, \
    (SELECT count(*) FROM customers WHERE closed_at IS NOT NULL) AS customers_closed, \
    (SELECT count(*) FROM _rejects) AS rejects";

const DELTA_READ: &str = r#"
import duckdb, json, sys
from deltalake import DeltaTable, QueryBuilder
wh = sys.argv[1]
tables = {t: DeltaTable(f"{wh}/{t}") for t in ["calls", "tickets", "callbacks", "visits", "customers", "_rejects"]}
# Through deltalake's own scan, which applies deletion vectors (its pyarrow dataset
# refuses tables that have them).
import pyarrow as pa
def plain(t):  # deltalake's engine gives string views; pyarrow.compute wants strings
    return t.cast(pa.schema([pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type) for f in t.schema]))
data = {t: plain(pa.RecordBatchReader.from_stream(QueryBuilder().register("t", dt).execute("SELECT * FROM t")).read_all()) for t, dt in tables.items()}
def py(t, f):
    return f(data[t])
import pyarrow.compute as pc
d = {
    "calls": py("calls", len),
    "calls_talk_s": py("calls", lambda a: pc.sum(a["talk_s"]).as_py()),
    "tickets": py("tickets", len),
    "tickets_reopened": py("tickets", lambda a: pc.sum(a["reopened_count"]).as_py()),
    "tickets_closed": py("tickets", lambda a: pc.sum(pc.equal(a["status"], "closed")).as_py()),
    "callbacks": py("callbacks", len),
    "callbacks_attempts": py("callbacks", lambda a: pc.sum(a["attempt"]).as_py()),
    "visits": py("visits", len),
    "visits_score": py("visits", lambda a: pc.sum(a["score"]).as_py()),
    "customers": py("customers", len),
    "customers_closed": py("customers", lambda a: pc.sum(pc.is_valid(a["closed_at"])).as_py()),
    "rejects": py("_rejects", len),
}
con = duckdb.connect()
for t, arrow in data.items():
    con.register(t if t != "_rejects" else "rejects_t", arrow)
q = lambda sql: con.execute(sql).fetchone()[0]
k = {
    "calls": q("SELECT count(*) FROM calls"),
    "calls_talk_s": q("SELECT sum(talk_s) FROM calls"),
    "tickets": q("SELECT count(*) FROM tickets"),
    "tickets_reopened": q("SELECT sum(reopened_count) FROM tickets"),
    "tickets_closed": q("SELECT count(*) FROM tickets WHERE status = 'closed'"),
    "callbacks": q("SELECT count(*) FROM callbacks"),
    "callbacks_attempts": q("SELECT sum(attempt) FROM callbacks"),
    "visits": q("SELECT count(*) FROM visits"),
    "visits_score": q("SELECT sum(score) FROM visits"),
    "customers": q("SELECT count(*) FROM customers"),
    "customers_closed": q("SELECT count(*) FROM customers WHERE closed_at IS NOT NULL"),
    "rejects": q("SELECT count(*) FROM rejects_t"),
}
out = {
    "deltalake": d,
    "duckdb": {key: int(v) if v is not None else None for key, v in k.items()},
    "tickets_files": len(tables["tickets"].file_uris()),
    "deletion_vectors": sorted(t for t, dt in tables.items() if "deletionVectors" in (dt.protocol().reader_features or [])),
    "descriptions_zh": q("SELECT count(*) FROM tickets WHERE description LIKE '%客户%'"),
    "months": [r[0] for r in con.execute("SELECT DISTINCT month FROM calls ORDER BY 1").fetchall()],
    "raw_zh": q("SELECT count(*) FROM rejects_t WHERE raw LIKE '%呼%' OR raw LIKE '%客%'"),
}
print(json.dumps(out, ensure_ascii=False))
"#;

/// Python's `deltalake` reads every table (its newest version, through the Delta log,
/// deletion vectors applied) with the rows kefu reads, and DuckDB over the Arrow data
/// `deltalake` gives agrees on counts and sums.
#[test]
fn deltalake_and_duckdb_read_the_tables_and_agree() {
    let Some(python) = crate::common::python_with("deltalake, duckdb") else {
        assert!(
            std::env::var_os("KEFU_REQUIRE_DUCKDB").is_none(),
            "KEFU_REQUIRE_DUCKDB is set but no Python with deltalake and duckdb was found"
        );
        eprintln!(
            "SKIPPED deltalake_and_duckdb_read_the_tables_and_agree: no Python with deltalake \
             and duckdb (set KEFU_PYTHON; .ci/run installs one)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let exports = generate_messy(dir.path(), 1_000, 40);
    let wh = dir.path().join("wh");
    // Day by day, so tables hold replaced files (upserts) and compactions that a reader of
    // the Parquet files alone would count twice.
    crate::delta::ingest_by_delivery(&exports, &wh, &[]);
    let out = run_ok(
        Command::new(&python).args(["-c", DELTA_READ]).arg(&wh),
        "python deltalake",
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours: serde_json::Value = serde_json::from_slice(
        &run_ok(
            Command::new(env!("CARGO_BIN_EXE_kefu"))
                .env_clear()
                .args(["sql", "--format", "json", "--warehouse"])
                .arg(&wh)
                .args(["-e", KEFU_SUMS]),
            "kefu sql",
        )
        .stdout,
    )
    .unwrap();
    let ours = &ours[0];
    for (key, value) in ours.as_object().unwrap() {
        assert_eq!(&theirs["deltalake"][key], value, "deltalake: {key}");
        assert_eq!(&theirs["duckdb"][key], value, "duckdb: {key}");
    }
    let rows = warehouse_rows(&wh);
    assert_eq!(ours["calls"].as_u64().unwrap(), rows["calls"].len() as u64);
    // Files outside the newest version exist (replaced by upserts or compacted): a plain
    // Parquet glob would overcount; the Delta log does not.
    let files = parquet_files(&wh.join("tickets")).len();
    assert!(
        files > theirs["tickets_files"].as_u64().unwrap() as usize,
        "{files}"
    );
    // Tickets and customers take deletion vectors, and updates wrote some.
    assert_eq!(
        theirs["deletion_vectors"],
        serde_json::json!(["customers", "tickets"])
    );
    let logged_deletions = ["tickets", "customers"].map(|t| {
        std::fs::read_dir(wh.join(t).join("_delta_log"))
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .filter(|text| text.contains("\"deletionVector\":{"))
            .count()
    });
    assert!(
        logged_deletions.iter().all(|&n| n > 0),
        "{logged_deletions:?}"
    );
    // The same Chinese text, read by arrow-rs and by deltalake.
    assert!(theirs["descriptions_zh"].as_u64().unwrap() > 10);
    assert_eq!(theirs["months"], serde_json::json!(["2026-01", "2026-02"]));
    assert!(
        theirs["raw_zh"].as_u64().unwrap() > 0,
        "GBK rejects keep Chinese"
    );
}

#[test]
fn ingest_waits_for_a_concurrent_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let exports = generate_messy(dir.path(), 800, 10);
    let wh = dir.path().join("wh");
    let a = ingest_cmd(&exports, &wh).spawn().unwrap();
    let b = ingest_cmd(&exports, &wh).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let reports: Vec<serde_json::Value> = [a, b]
        .iter()
        .map(|o| serde_json::from_slice(&o.stdout).unwrap())
        .collect();
    let committed = reports.iter().filter(|r| !r["batch"].is_null()).count();
    assert_eq!(committed, 1, "one ingest commits, the other finds it done");
    assert_eq!(ledger_records(&wh).len(), 1);
    let clean = dir.path().join("clean");
    assert!(ingest_cmd(&exports, &clean).status().unwrap().success());
    assert_eq!(warehouse_rows(&wh), warehouse_rows(&clean));
}

/// An S3-compatible server (moto) on 127.0.0.1, stopped on drop.
pub(crate) struct Moto {
    child: std::process::Child,
    port: u16,
    program: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// `$KEFU_MOTO_SERVER` (set by .ci/run), else `moto_server` on the PATH; None if absent.
    pub(crate) fn start() -> Option<Moto> {
        let program = std::env::var("KEFU_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let moto = Moto {
            child,
            port,
            program,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(moto);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A plain HTTP PUT (moto accepts unsigned requests); `path` is already escaped.
    pub(crate) fn put(&self, path: &str, body: &[u8]) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "PUT {path}: {response}"
        );
    }

    /// An object's bytes, read with boto3 from moto's own Python (moto refuses unsigned
    /// GETs); `None` when it does not exist.
    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let python = Path::new(&self.program).with_file_name("python");
        let python = if python.is_file() {
            python
        } else {
            "python3".into()
        };
        let script = "import sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', \
            aws_secret_access_key='test', region_name='us-east-1')\n\
            try:\n    sys.stdout.buffer.write(s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])['Body'].read())\n\
            except s3.exceptions.NoSuchKey:\n    sys.exit(3)\n";
        let out = Command::new(python)
            .args(["-c", script, &self.endpoint(), bucket, key])
            .output()
            .unwrap();
        match out.status.code() {
            Some(0) => Some(out.stdout),
            Some(3) => None,
            _ => panic!("boto3 get {key}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// Runs `kefu ARGS…` with the credentials and endpoint of this server.
    pub(crate) fn kefu(&self, args: &[&std::ffi::OsStr]) -> std::process::Output {
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_kefu"))
                .env_clear()
                .args(args)
                .env("AWS_ENDPOINT", self.endpoint())
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ALLOW_HTTP", "true"),
            "kefu against moto",
        )
    }
}

fn escape_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Exports in an S3 bucket ingest exactly as the same files on disk; and a warehouse can
/// itself live in the bucket.
#[test]
fn s3_sources_and_an_s3_warehouse() {
    let Some(moto) = Moto::start() else {
        assert!(
            std::env::var_os("KEFU_REQUIRE_MOTO").is_none(),
            "KEFU_REQUIRE_MOTO is set but moto_server could not be started"
        );
        eprintln!(
            "SKIPPED s3_sources_and_an_s3_warehouse: no moto_server \
             (set KEFU_MOTO_SERVER; .ci/run installs one)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let exports = generate_messy(dir.path(), 400, 6);
    moto.put("/kefu-test", b"");
    let mut uploaded = 0;
    let mut stack = vec![exports.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let key = p
                    .strip_prefix(&exports)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                moto.put(
                    &format!("/kefu-test/exports/{}", escape_key(&key)),
                    &std::fs::read(&p).unwrap(),
                );
                uploaded += 1;
            }
        }
    }
    assert!(uploaded > 20);

    let local = dir.path().join("local");
    assert!(ingest_cmd(&exports, &local).status().unwrap().success());
    let from_s3 = dir.path().join("from-s3");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    moto.kefu(&[
        os("ingest"),
        os("s3://kefu-test/exports/"),
        os("--warehouse"),
        from_s3.as_os_str(),
        os("-q"),
    ]);
    for table in TABLES {
        assert_eq!(
            table_rows(&local, table, &[]),
            table_rows(&from_s3, table, &[]),
            "{table}"
        );
    }
    let skip = ["batch_id", "rejected_at", "source"];
    assert_eq!(
        table_rows(&local, "_rejects", &skip),
        table_rows(&from_s3, "_rejects", &skip)
    );

    // The warehouse in the bucket: ingest, then status reads it back.
    let warehouse = os("s3://kefu-test/warehouse");
    moto.kefu(&[
        os("ingest"),
        exports.as_os_str(),
        os("--warehouse"),
        warehouse,
        os("-q"),
    ]);
    let out = moto.kefu(&[os("status"), os("--warehouse"), warehouse, os("--json")]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let local_rows = warehouse_rows(&local);
    for t in status["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        assert_eq!(
            t["rows"].as_u64().unwrap(),
            local_rows[name].len() as u64,
            "{name} in the S3 warehouse"
        );
    }

    // SQL over the warehouse in the bucket: the same rows as on disk.
    let out = moto.kefu(&[
        os("sql"),
        os("--warehouse"),
        warehouse,
        os("--format"),
        os("csv"),
        os("-e"),
        os("SELECT count(*) AS n FROM calls WHERE month >= '2026-01'"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("n\n{}\n", local_rows["calls"].len())
    );
    let out = moto.kefu(&[
        os("query"),
        os("complaints_breakdown"),
        os("--warehouse"),
        warehouse,
        os("--format"),
        os("csv"),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("region,category,complaints"));

    // A job over the warehouse in the bucket, writing its outputs and report there too.
    let job = dir.path().join("s3job.toml");
    std::fs::write(
        &job,
        "name = \"s3job\"\nwarehouse = \"s3://kefu-test/warehouse\"\noutput_dir = \"s3://kefu-test/kpi\"\n\
         [[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\npartition = \"day\"\n\
         params = { from = \"month_start\", to = \"today\", period = \"day\" }\n\
         [[step.output]]\npath = \"calls/{period}.csv\"\n\
         [[step]]\ntype = \"report\"\nmonth = \"month_start\"\nout = \"reports/{month}\"\n",
    )
    .unwrap();
    let run = |expect: &str| {
        let out = moto.kefu(&[
            os("run"),
            job.as_os_str(),
            os("--date"),
            os("2026-01-07"),
            os("--json"),
            os("-q"),
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["status"], expect, "{report}");
    };
    run("ok");
    let day = moto
        .get("kefu-test", "kpi/calls/2026-01-03.csv")
        .expect("the day's output in the bucket");
    let out = moto.kefu(&[
        os("query"),
        os("calls_kpis"),
        os("--warehouse"),
        warehouse,
        os("--format"),
        os("csv"),
        os("--param"),
        os("from=2026-01-03"),
        os("--param"),
        os("to=2026-01-04"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&day),
        String::from_utf8_lossy(&out.stdout)
    );
    let page = moto
        .get("kefu-test", "kpi/reports/2026-01/index.html")
        .expect("the report in the bucket");
    assert!(page.starts_with(b"<!DOCTYPE html>"));
    assert!(
        moto.get("kefu-test", "kpi/reports/2026-01/tables/headline.csv")
            .is_some()
    );
    assert!(
        moto.get("kefu-test", "kpi/_runs/s3job-latest.json")
            .is_some()
    );
    run("nothing_to_do");
}
