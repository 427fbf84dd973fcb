//! `kefu sql` and `kefu query` through the binary, over the hand-written SQL fixtures.

use std::path::Path;

use crate::common::kefu;

/// A warehouse `wh` in `dir` with fixtures/sql ingested.
pub(crate) fn fixture_warehouse(dir: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql");
    kefu(dir)
        .args([
            "ingest",
            "--warehouse",
            "wh",
            "-q",
            "--max-reject-ratio",
            "0",
        ])
        .arg(&fixtures)
        .assert()
        .success();
}

/// Runs kefu in `dir` with `args`, which must succeed; returns stdout.
fn run(dir: &Path, args: &[&str]) -> String {
    stdout_of(&kefu(dir).args(args).output().unwrap())
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn statements_run_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    fixture_warehouse(dir.path());
    let sql = "SELECT region, count(*) AS calls, max(wait_s) AS longest \
               FROM calls GROUP BY region ORDER BY region";
    let csv = run(
        dir.path(),
        &["sql", "--warehouse", "wh", "--format", "csv", "-e", sql],
    );
    // beijing: C01–C07, C11 and C12 (9 calls, longest wait C04's 60 s; C12 has none);
    // shanghai: C08–C10.
    assert_eq!(csv, "region,calls,longest\nbeijing,9,60\nshanghai,3,21\n");

    let ndjson = run(
        dir.path(),
        &["sql", "--warehouse", "wh", "--format", "ndjson", "-e", sql],
    );
    assert_eq!(
        ndjson,
        "{\"region\":\"beijing\",\"calls\":9,\"longest\":60}\n{\"region\":\"shanghai\",\"calls\":3,\"longest\":21}\n"
    );

    let table = run(dir.path(), &["sql", "--warehouse", "wh", "-e", sql]);
    assert!(
        table.contains("beijing") && table.ends_with("2 rows\n"),
        "{table}"
    );

    // --output: the format from the extension, the file replaced whole.
    kefu(dir.path())
        .args([
            "sql",
            "--warehouse",
            "wh",
            "--output",
            "out.json",
            "-e",
            sql,
        ])
        .assert()
        .success();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(json[1]["region"], "shanghai");
    let partials: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".partial"))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");

    kefu(dir.path())
        .args([
            "sql",
            "--warehouse",
            "wh",
            "--output",
            "out.parquet",
            "-e",
            sql,
        ])
        .assert()
        .success();
    let file = std::fs::File::open(dir.path().join("out.parquet")).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
}

#[test]
fn scripts_and_stdin_run_statement_by_statement() {
    let dir = tempfile::tempdir().unwrap();
    fixture_warehouse(dir.path());
    std::fs::write(
        dir.path().join("two.sql"),
        "-- two statements\nSELECT count(*) AS n FROM calls;\n\nSELECT count(*) AS n\nFROM calls\nWHERE region = 'shanghai';\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "sql",
            "--warehouse",
            "wh",
            "--format",
            "csv",
            "-f",
            "two.sql",
        ],
    );
    assert_eq!(out, "n\n12\nn\n3\n");
    let out = stdout_of(
        &kefu(dir.path())
            .args(["sql", "--warehouse", "wh", "--format", "csv"])
            .write_stdin("SELECT 1 + 1 AS two;")
            .output()
            .unwrap(),
    );
    assert_eq!(out, "two\n2\n");
}

#[test]
fn writes_and_bad_sql_fail_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    fixture_warehouse(dir.path());
    let before = crate::common::snapshot(&dir.path().join("wh"));
    let out = kefu(dir.path())
        .args([
            "sql",
            "--warehouse",
            "wh",
            "-e",
            "INSERT INTO calls SELECT * FROM calls",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read-only") && err.contains("INSERT"), "{err}");
    assert_eq!(crate::common::snapshot(&dir.path().join("wh")), before);

    // A syntax error names the line and column.
    let out = kefu(dir.path())
        .args(["sql", "--warehouse", "wh", "-e", "SELECT region\nFRM calls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // (FRM reads as an alias of region; "calls" at line 2, column 5 is unexpected.)
    assert!(err.contains("Line: 2, Column: 5"), "{err}");

    // An unknown column says which.
    let out = kefu(dir.path())
        .args(["sql", "--warehouse", "wh", "-e", "SELECT colour FROM calls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));

    // A missing warehouse is an I/O error, and nothing is created.
    let out = kefu(dir.path())
        .args(["sql", "--warehouse", "nowhere", "-e", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn the_shell_lists_describes_and_runs_multi_line_statements() {
    let dir = tempfile::tempdir().unwrap();
    fixture_warehouse(dir.path());
    let out = kefu(dir.path())
        .env("HOME", dir.path())
        .args(["sql", "--warehouse", "wh", "--interactive", "--format", "csv"])
        .write_stdin("\\d\n\\d visits\nSELECT count(*) AS n\n  FROM calls\n  WHERE region = 'beijing';\nSELEC;\n\\q\n")
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("_rejects") && stdout.contains("customers"),
        "{stdout}"
    );
    assert!(
        stdout.contains("queue_ticket") && stdout.contains("(partition)"),
        "{stdout}"
    );
    assert!(stdout.contains("n\n9\n"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error:") && stderr.contains("SELEC"),
        "{stderr}"
    );
    assert!(stderr.contains("Time:"), "{stderr}");
}

#[test]
fn named_queries_list_run_and_check_their_parameters() {
    let dir = tempfile::tempdir().unwrap();
    fixture_warehouse(dir.path());
    let list = run(dir.path(), &["query", "--list"]);
    assert!(
        list.contains("calls_kpis") && list.contains("--param t=<int>"),
        "{list}"
    );

    // shanghai/vip on 2026-01-05: C09 and C10 (see crates/kefu-sql/tests/slt/calls_kpis.slt);
    // answered within 20 s: C09 = 1; total wait of the answered 20 + 21 = 41.
    let csv = run(
        dir.path(),
        &[
            "query",
            "calls_kpis",
            "--warehouse",
            "wh",
            "--format",
            "csv",
            "--param",
            "from=2026-01-05",
            "--param",
            "to=2026-01-06",
            "--param",
            "region=shanghai",
        ],
    );
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("period,region,queue,offered,answered")
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("2026-01-05,shanghai,vip,2,2,0,0,1,41,1.0,0.0,0.5,0.5,20,0.9,20.5,450.0"),
        "{csv}"
    );

    for bad in ["nope=1", "t=abc", "from=yesterday"] {
        let out = kefu(dir.path())
            .args(["query", "calls_kpis", "--warehouse", "wh", "--param", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
    let out = kefu(dir.path())
        .args(["query", "no_such_query", "--warehouse", "wh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // An override directory replaces a query by name.
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    std::fs::write(
        dir.path().join("mine/calls_kpis.sql"),
        "-- purpose: count calls\n-- param: region text % region\nSELECT count(*) AS n FROM calls WHERE region LIKE {{region}}\n",
    )
    .unwrap();
    let csv = run(
        dir.path(),
        &[
            "query",
            "calls_kpis",
            "--warehouse",
            "wh",
            "--format",
            "csv",
            "--queries",
            "mine",
            "--param",
            "region=bei%",
        ],
    );
    assert_eq!(csv, "n\n9\n");
}

/// On a terminal, table output fits its width and ends with the row count: util-linux
/// `script` gives kefu a pseudo-terminal of 60 columns (skipped, with a message, where
/// `script` is absent).
#[test]
fn table_output_fits_the_terminal_and_counts_rows() {
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        eprintln!("skipped: util-linux `script` (a pseudo-terminal) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fixture_warehouse(dir.path());
    let kefu_bin = assert_cmd::cargo::cargo_bin!("kefu");
    let command = format!(
        "stty cols 60 rows 40; '{}' sql --warehouse wh -e \"SELECT call_id, region, branch_id, \
         queue, agent_id, category, customer_tier, outcome FROM calls ORDER BY call_id\"",
        kefu_bin.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = stdout_of(&out).replace('\r', "");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() > 12, "{stdout}");
    for line in &lines {
        assert!(
            line.chars().count() <= 60,
            "wider than 60: {line:?}\n{stdout}"
        );
    }
    // Eight columns of up to 14 characters did not fit as they are: they were wrapped.
    assert!(lines.iter().any(|l| l.contains("ng-cc")), "{stdout}");
    assert!(stdout.contains("12 rows"), "{stdout}");
}
