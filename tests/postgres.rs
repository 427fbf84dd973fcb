//! The PostgreSQL protocol through real clients: Debian's `psql` and the `psycopg` Python
//! driver against `kefu serve --postgres`. A named query's SQL returns exactly the rows
//! `kefu query` gives; psql's own catalog queries (`\dt`, `\d calls`) list the tables and
//! columns; a parameter binds through the extended protocol; writes are refused; the
//! password must be a token whose role may query.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::kefu;
use crate::serve::Server;

const ANALYST: &str = "analyst-token-000000001";
const OFFICE: &str = "office-token-beijing-0001";

fn config() -> String {
    format!(
        "[[token]]\nname = \"analysts\"\ntoken = \"{ANALYST}\"\nrole = \"analyst\"\n\n\
         [[token]]\nname = \"beijing\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\nregion = \"beijing\"\n"
    )
}

/// `psql` with `args`, connecting to `port` with `token` as the password.
fn psql(port: u16, token: &str, args: &[&str]) -> Output {
    Command::new("psql")
        .env_clear()
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .arg(format!(
            "host=127.0.0.1 port={port} user=analyst dbname=kefu sslmode=disable"
        ))
        .args(["--no-psqlrc", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The fixture warehouse served with a PostgreSQL port; the named query's SQL written to
/// `named.sql` and its rows, as `kefu query` gives them in `format`.
fn served(dir: &Path, format: &str) -> (Server, u16, String) {
    crate::sql::fixture_warehouse(dir);
    let server = Server::start_args(dir, &config(), &[], &["--postgres", "127.0.0.1:0"]);
    let port = server.postgres.expect("a PostgreSQL port");
    let named = |extra: &[&str]| {
        let out = kefu(dir)
            .args(["query", "calls_kpis", "--warehouse", "wh"])
            .args(["-p", "from=2026-01-01", "-p", "to=2026-03-01"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    std::fs::write(dir.join("named.sql"), named(&["--show-sql"])).unwrap();
    let expected = named(&["--format", format]);
    (server, port, expected)
}

#[test]
fn psql_lists_tables_runs_named_queries_and_cannot_write() {
    if Command::new("psql").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("KEFU_REQUIRE_PSQL").is_none(),
            "KEFU_REQUIRE_PSQL is set but psql was not found"
        );
        eprintln!(
            "SKIPPED psql_lists_tables_runs_named_queries_and_cannot_write: no psql \
             (Debian's postgresql-client; .ci/run installs it)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (server, port, expected) = served(dir, "json");

    // psql's \dt and \d are its own catalog queries (pg_class, pg_namespace, pg_attribute).
    let tables = psql(port, ANALYST, &["-A", "-t", "-F", ",", "-c", "\\dt"]);
    assert!(tables.status.success(), "{}", text(&tables));
    let names: Vec<String> = String::from_utf8_lossy(&tables.stdout)
        .lines()
        .filter_map(|l| l.split(',').nth(1).map(str::to_string))
        .collect();
    for table in [
        "calls",
        "tickets",
        "visits",
        "callbacks",
        "customers",
        "staff",
    ] {
        assert!(names.iter().any(|n| n == table), "{table} not in {names:?}");
    }
    let columns = psql(port, ANALYST, &["-A", "-t", "-F", ",", "-c", "\\d calls"]);
    assert!(columns.status.success(), "{}", text(&columns));
    let columns = String::from_utf8_lossy(&columns.stdout).to_string();
    assert!(
        columns.lines().next().unwrap_or("").starts_with("call_id,"),
        "{columns}"
    );
    assert!(columns.contains("region,"), "{columns}");

    // The named query's SQL, unchanged, gives kefu query's rows (psql's CSV against
    // kefu's JSON: numbers by value, times by instant).
    let sql = std::fs::read_to_string(dir.join("named.sql")).unwrap();
    let rows = psql(port, ANALYST, &["--csv", "-c", sql.trim()]);
    assert!(rows.status.success(), "{}", text(&rows));
    let expected: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&expected).unwrap();
    let got = csv_rows(&String::from_utf8_lossy(&rows.stdout));
    assert_eq!(got.len(), expected.len(), "{}", text(&rows));
    assert!(!got.is_empty());
    for (row, want) in got.iter().zip(&expected) {
        for (column, value) in want {
            let cell = row
                .get(column)
                .unwrap_or_else(|| panic!("no column {column} in {row:?}"));
            assert!(
                same_value(cell, value),
                "{column}: psql {cell:?}, kefu query {value}"
            );
        }
    }

    // Writes are refused as for every other endpoint.
    let dropped = psql(port, ANALYST, &["-c", "DROP TABLE calls"]);
    assert!(!dropped.status.success());
    assert!(text(&dropped).contains("read-only"), "{}", text(&dropped));
    let copy = psql(
        port,
        ANALYST,
        &["-c", "COPY (SELECT 1) TO '/tmp/kefu-pg-copy.csv'"],
    );
    assert!(!copy.status.success(), "{}", text(&copy));
    assert!(!Path::new("/tmp/kefu-pg-copy.csv").exists());
    // Side files are the local CLI's: the server reads no file a client names.
    let secret = dir.join("secret.csv");
    std::fs::write(&secret, "a\n1\n").unwrap();
    let secret = secret.display().to_string();
    for sql in [
        format!("SELECT * FROM read_csv('{secret}')"),
        format!("SELECT * FROM '{secret}'"),
        format!("CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '{secret}'"),
        "CREATE VIEW v AS SELECT 1".to_string(),
    ] {
        let out = psql(port, ANALYST, &["-c", &sql]);
        assert!(!out.status.success(), "{sql}: {}", text(&out));
        assert!(text(&out).contains("ERROR"), "{sql}: {}", text(&out));
    }

    // The password is a token that may query.
    let unknown = psql(port, "not-a-configured-token-00", &["-c", "SELECT 1"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("password authentication failed"),
        "{}",
        text(&unknown)
    );
    let office = psql(port, OFFICE, &["-c", "SELECT 1"]);
    assert!(!office.status.success());
    assert!(text(&office).contains("may not query"), "{}", text(&office));
    drop(server);
}

/// psql's `--csv` output as rows of column → text (fields with commas or quotes are
/// quoted, as in RFC 4180).
fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

/// Whether psql's text for a value is kefu's JSON value: numbers by value, times by the
/// instant they name, NULL as empty.
fn same_value(cell: &str, value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => cell.is_empty(),
        serde_json::Value::Number(n) => cell.parse::<f64>().is_ok_and(|c| c == n.as_f64().unwrap()),
        serde_json::Value::Bool(b) => cell == if *b { "t" } else { "f" },
        serde_json::Value::String(s) => {
            cell == s || instant(cell).is_some_and(|c| Some(c) == instant(s))
        }
        other => serde_json::from_str::<serde_json::Value>(cell).is_ok_and(|c| &c == other),
    }
}

/// A date or timestamp text (PostgreSQL's `2026-01-05 01:00:00+00` or Arrow's
/// `2026-01-05T01:00:00Z`) as seconds since the epoch.
fn instant(text: &str) -> Option<i64> {
    let t = text.replace('T', " ");
    let t = t.trim_end_matches('Z');
    let t = t.strip_suffix("+00").unwrap_or(t);
    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|d| d.and_utc().timestamp())
}

const PSYCOPG: &str = r#"
import json, sys, datetime, decimal
import psycopg

port, token, office, sql_file = sys.argv[1:5]

def connect(token):
    return psycopg.connect(
        host="127.0.0.1", port=int(port), user="bi", dbname="kefu", password=token,
        sslmode="disable", connect_timeout=10, autocommit=True,
    )

def plain(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v

result = {}
with connect(token) as conn:
    cur = conn.cursor()
    cur.execute(open(sql_file, encoding="utf-8").read())
    result["columns"] = [d.name for d in cur.description]
    result["named"] = [[plain(v) for v in row] for row in cur.fetchall()]
    # A server-side bound parameter (the extended protocol: Parse, Bind, Execute).
    cur.execute(
        "SELECT call_id, region FROM calls WHERE region = %s ORDER BY call_id",
        ("shanghai",),
    )
    result["prepared"] = cur.fetchall()
    cur.execute("SELECT count(*) FROM calls WHERE talk_s > %s", (100,))
    result["count"] = cur.fetchone()[0]
    # What BI tools ask on connect.
    cur.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' ORDER BY table_name"
    )
    result["tables"] = [r[0] for r in cur.fetchall()]
    cur.execute("SELECT current_database(), version()")
    result["database"] = list(cur.fetchone())
    try:
        cur.execute("INSERT INTO calls (call_id) VALUES ('X')")
        result["insert"] = "allowed"
    except Exception as e:
        result["insert"] = str(e)
    # The connection still works after a refused statement.
    cur.execute("SELECT 1")
    result["after"] = cur.fetchone()[0]

for name, bad in [("unknown", "not-a-configured-token-00"), ("office", office)]:
    try:
        with connect(bad) as conn:
            conn.execute("SELECT 1")
        result[name] = "allowed"
    except Exception as e:
        result[name] = str(e)

print(json.dumps(result))
"#;

#[test]
fn psycopg_binds_parameters_and_gets_the_named_querys_rows() {
    let Some(python) = crate::common::python_or_skip(
        "psycopg_binds_parameters_and_gets_the_named_querys_rows",
        "psycopg",
        "KEFU_REQUIRE_PSYCOPG",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (server, port, expected) = served(dir, "json");
    let out = Command::new(&python)
        .arg("-c")
        .arg(PSYCOPG)
        .arg(port.to_string())
        .args([ANALYST, OFFICE])
        .arg(dir.join("named.sql"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let expected: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&expected).unwrap();
    let columns: Vec<String> = serde_json::from_value(result["columns"].clone()).unwrap();
    let rows = result["named"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len());
    assert!(!rows.is_empty());
    for (row, want) in rows.iter().zip(&expected) {
        for (column, got) in columns.iter().zip(row.as_array().unwrap()) {
            let want = &want[column];
            let equal = match (got, want) {
                (serde_json::Value::Number(a), serde_json::Value::Number(b)) => {
                    a.as_f64() == b.as_f64()
                }
                (serde_json::Value::String(a), serde_json::Value::String(b)) => {
                    a == b || instant(a).is_some_and(|a| Some(a) == instant(b))
                }
                (a, b) => a == b,
            };
            assert!(equal, "{column}: psycopg {got}, kefu query {want}");
        }
    }
    // The fixtures' shanghai calls, by hand (fixtures/sql/calls.csv): C08, C09 and C10.
    assert_eq!(
        result["prepared"],
        serde_json::json!([
            ["C08", "shanghai"],
            ["C09", "shanghai"],
            ["C10", "shanghai"]
        ])
    );
    let by_hand = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql/calls.csv"),
    )
    .unwrap()
    .lines()
    .skip(1)
    .filter(|l| {
        l.split(',')
            .nth(14)
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|t| t > 100)
    })
    .count();
    assert_eq!(result["count"], by_hand);
    for table in ["calls", "tickets", "visits"] {
        assert!(
            result["tables"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == table),
            "{result}"
        );
    }
    assert!(
        result["insert"].as_str().unwrap().contains("read-only"),
        "{result}"
    );
    assert_eq!(result["after"], 1);
    assert!(
        result["unknown"]
            .as_str()
            .unwrap()
            .contains("password authentication failed"),
        "{result}"
    );
    assert!(
        result["office"].as_str().unwrap().contains("may not query"),
        "{result}"
    );
    drop(server);
}
