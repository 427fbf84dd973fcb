//! Flight SQL through a real client: the `adbc-driver-flightsql` Python package (ADBC's
//! Go driver, as BI tools use it) against `kefu serve --flight`. A named query's SQL
//! returns exactly the rows `kefu query` prints; a prepared statement binds a parameter;
//! the catalog lists the tables; tokens are checked.

use std::path::Path;
use std::process::Command;

use crate::common::kefu;
use crate::serve::Server;

const ANALYST: &str = "analyst-token-000000001";
const OFFICE: &str = "office-token-beijing-0001";

const CLIENT: &str = r#"
import json, sys
import pyarrow as pa
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions

uri, token, office, sql_file, out = sys.argv[1:6]

def connect(token):
    return flight_sql.connect(
        uri,
        db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + token},
        autocommit=True,
    )

def write(table, path):
    with pa.OSFile(path, "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table)

result = {}
with connect(token) as conn:
    cur = conn.cursor()
    cur.execute(open(sql_file, encoding="utf-8").read())
    write(cur.fetch_arrow_table(), out + "/named.arrows")
    cur.execute(
        "SELECT call_id, region FROM calls WHERE region = $1 ORDER BY call_id",
        parameters=("shanghai",),
    )
    result["prepared"] = cur.fetchall()
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    result["tables"] = sorted(
        t["table_name"]
        for c in objects
        for s in c["catalog_db_schemas"]
        for t in s["db_schema_tables"]
    )
    result["calls_columns"] = conn.adbc_get_table_schema("calls").names
    try:
        cur.execute("DROP TABLE calls")
        result["drop"] = "allowed"
    except Exception as e:
        result["drop"] = str(e)

for name, bad in [("unknown", "not-a-configured-token-00"), ("office", office)]:
    try:
        with connect(bad) as conn:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
        result[name] = "allowed"
    except Exception as e:
        result[name] = str(e)

print(json.dumps(result))
"#;

fn config() -> String {
    format!(
        "[[token]]\nname = \"analysts\"\ntoken = \"{ANALYST}\"\nrole = \"analyst\"\n\n\
         [[token]]\nname = \"beijing\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\nregion = \"beijing\"\n"
    )
}

fn csv_of_ipc(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap();
    let reader = arrow::ipc::reader::StreamReader::try_new(file, None).unwrap();
    let schema = reader.schema();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    String::from_utf8(kefu_sql::output::encode(kefu_sql::Format::Csv, schema, &batches).unwrap())
        .unwrap()
}

#[test]
fn flight_sql_answers_an_adbc_client() {
    let Some(python) = crate::common::python_with("adbc_driver_flightsql") else {
        assert!(
            std::env::var_os("KEFU_REQUIRE_ADBC").is_none(),
            "KEFU_REQUIRE_ADBC is set but no Python with adbc_driver_flightsql was found"
        );
        eprintln!(
            "SKIPPED flight_sql_answers_an_adbc_client: no Python with adbc-driver-flightsql \
             (set KEFU_PYTHON; .ci/run installs one)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let server = Server::start_args(dir, &config(), &[], &["--flight", "127.0.0.1:0"]);
    let flight = server.flight.expect("a Flight SQL port");

    // The named query's SQL, as `kefu query --show-sql` renders it, and its rows.
    let named = |extra: &[&str]| {
        let out = kefu(dir)
            .args(["query", "complaints_trend", "--warehouse", "wh"])
            .args(["-p", "from=2026-01-01", "-p", "to=2026-03-01"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    std::fs::write(dir.join("named.sql"), named(&["--show-sql"])).unwrap();
    let expected = named(&["--format", "csv"]);
    assert!(expected.lines().count() > 2, "{expected}");

    let out = Command::new(&python)
        .arg("-c")
        .arg(CLIENT)
        .arg(format!("grpc://127.0.0.1:{flight}"))
        .args([ANALYST, OFFICE])
        .arg(dir.join("named.sql"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(csv_of_ipc(&dir.join("named.arrows")), expected);
    // The fixtures' shanghai calls, by hand: C10, C11 and C12.
    let prepared: Vec<(String, String)> =
        serde_json::from_value(result["prepared"].clone()).unwrap();
    let shanghai: Vec<String> = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql/calls.csv"),
    )
    .unwrap()
    .lines()
    .filter(|l| l.split(',').nth(1) == Some("shanghai"))
    .map(|l| l.split(',').next().unwrap().to_string())
    .collect();
    assert_eq!(
        prepared,
        shanghai
            .iter()
            .map(|id| (id.clone(), "shanghai".to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        result["tables"],
        serde_json::json!([
            "_rejects",
            "callbacks",
            "calls",
            "categories",
            "customers",
            "org_units",
            "queues",
            "staff",
            "tickets",
            "visits"
        ])
    );
    assert_eq!(result["calls_columns"][0], "call_id");
    assert!(
        result["drop"].as_str().unwrap().contains("read-only"),
        "{result}"
    );
    assert!(
        result["unknown"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("unauthenticated"),
        "{result}"
    );
    assert!(
        result["office"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("permission"),
        "{result}"
    );
}
