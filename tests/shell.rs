//! The analyst's side of `kefu sql` through the binary: the shell under a pseudo-terminal
//! (Ctrl-C cancels a query and keeps the shell, history is on disk after each statement,
//! Tab completes a table), its commands and output modes, `~/.kefurc`, errors with the
//! position and a suggestion, Excel-ready output (xlsx read back with calamine, CSV with
//! a byte-order mark, rounded fractions), quiet broken pipes, the analyst's own files
//! beside the warehouse, and reports that refuse a month without data.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::kefu;

/// Drives a program under a pseudo-terminal (Python's standard `pty` module): each step
/// sends text (`\x03` is Ctrl-C) and waits for a text in the output after what the step
/// before waited for, or is `kill` (the
/// program is killed, as a closed terminal window would). Prints the output as JSON.
const PTY: &str = r#"
import json, os, pty, select, signal, sys, time
argv, env, steps = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
pid, fd = pty.fork()
if pid == 0:
    os.execve(argv[0], argv, env)
out = b""
seen = 0  # each expectation is looked for after the previous one's match
def wait_for(text, timeout):
    global out, seen
    deadline = time.time() + timeout
    while text.encode() not in out[seen:]:
        left = deadline - time.time()
        if left <= 0:
            raise SystemExit("timed out waiting for %r; output so far:\n%s" % (text, out.decode(errors="replace")))
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                raise SystemExit("the program ended waiting for %r:\n%s" % (text, out.decode(errors="replace")))
    seen = out.index(text.encode(), seen) + len(text.encode())
status = None
for step in steps:
    if step.get("kill"):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = "killed"
        break
    if "send" in step:
        os.write(fd, step["send"].encode())
    if "expect" in step:
        wait_for(step["expect"], step.get("timeout", 30))
if status is None:
    deadline = time.time() + 30
    while True:
        try:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
        except OSError:
            break
    _, code = os.waitpid(pid, 0)
    status = os.waitstatus_to_exitcode(code)
print(json.dumps({"status": status, "output": out.decode(errors="replace")}))
"#;

/// Runs `kefu sql --warehouse wh` in `dir` under a pseudo-terminal with `HOME=dir`.
fn under_pty(dir: &Path, steps: &serde_json::Value) -> (serde_json::Value, String) {
    let argv = serde_json::json!([
        env!("CARGO_BIN_EXE_kefu"),
        "sql",
        "--warehouse",
        dir.join("wh").to_str().unwrap()
    ]);
    let env = serde_json::json!({
        "HOME": dir.to_str().unwrap(),
        "TERM": "xterm",
        "PATH": "/usr/bin:/bin",
    });
    let out = Command::new("python3")
        .arg("-c")
        .arg(PTY)
        .arg(argv.to_string())
        .arg(env.to_string())
        .arg(steps.to_string())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = result["output"].as_str().unwrap().to_string();
    (result, text)
}

fn history(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".local/state/kefu/sql_history")).unwrap_or_default()
}

#[test]
fn ctrl_c_cancels_the_query_and_keeps_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let (result, output) = under_pty(
        dir,
        &serde_json::json!([
            {"expect": "kefu> "},
            // Counts for hours: only Ctrl-C ends it. The spinner shows after a second.
            {"send": "SELECT count(*) FROM range(1000000000000000);\r", "expect": "Ctrl-C cancels"},
            {"send": "\u{3}", "expect": "cancelled"},
            {"expect": "kefu> "},
            // A value its own echo does not show (a cancelled query's time may read 1.42 s).
            {"send": "SELECT 'forty' || '-two' AS answer;\r", "expect": "forty-two"},
            {"expect": "kefu> "},
            // Killed as a closed window would: the history must already be on disk.
            {"kill": true}
        ]),
    );
    assert_eq!(result["status"], "killed", "{output}");
    let history = history(dir);
    assert!(
        history.contains("SELECT 'forty' || '-two' AS answer;"),
        "history after a kill: {history:?}"
    );
    assert!(history.contains("range(1000000000000000)"), "{history:?}");
}

#[test]
fn tab_completes_a_table_and_the_shell_quits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let (result, output) = under_pty(
        dir,
        &serde_json::json!([
            {"expect": "kefu> "},
            {"send": "SELECT count(*) AS n FROM _rej\t", "expect": "_rejects"},
            {"send": ";\r", "expect": "1 row"},
            {"send": "\\q\r"}
        ]),
    );
    assert_eq!(result["status"], 0, "{output}");
    assert!(output.contains("FROM _rejects"), "{output}");
}

/// `kefu sql -i` with the shell's input piped (no terminal needed for its commands).
fn shell(dir: &Path, input: &str) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .env_clear()
        .env("HOME", dir)
        .current_dir(dir)
        .args(["sql", "-i", "--warehouse", "wh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const VALUES: &str = "SELECT 'beijing' AS region, 0.7858664927158078 AS rate, 12 AS n;";

#[test]
fn dot_commands_modes_and_the_rc_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    std::fs::write(dir.join(".kefurc"), ".mode csv\n.timer off\n").unwrap();
    let input = format!(
        ".tables\n.schema calls\n{VALUES}\n.mode tsv\n{VALUES}\n.mode markdown\n{VALUES}\n\
         .mode vertical\n{VALUES}\n.mode table\n{VALUES}\n\\x\n{VALUES}\n\\x\n.mode json\n\
         {VALUES}\n.output out.xlsx\n{VALUES}\n.output\n.mode ndjson\n{VALUES}\n.mode \
         parquet\n.nonsense\n.quit\n"
    );
    let (stdout, stderr) = shell(dir, &input);
    // .tables and .schema
    assert!(
        stdout.contains("_rejects") && stdout.contains("callbacks"),
        "{stdout}"
    );
    assert!(stdout.contains("call_id"), "{stdout}");
    // ~/.kefurc set csv and turned the timer off.
    assert!(
        stdout.contains("region,rate,n\nbeijing,0.7858664927158078,12\n"),
        "{stdout}"
    );
    assert!(!stderr.contains("Time:"), "{stderr}");
    assert!(stdout.contains("region\trate\tn\nbeijing\t0.7858664927158078\t12\n"));
    // People-facing layouts round the rate; machine formats keep every digit.
    assert!(
        stdout.contains("| region | rate | n |\n| --- | --- | --- |\n| beijing | 0.7859 | 12 |"),
        "{stdout}"
    );
    assert!(stdout.contains("-[ RECORD 1 ]-\nregion | beijing\nrate   | 0.7859\nn      | 12\n"));
    assert!(stdout.contains("│ beijing ┆ 0.7859 ┆ 12 │"), "{stdout}");
    assert_eq!(
        stdout.matches("-[ RECORD 1 ]-").count(),
        2,
        "\\x toggles vertical"
    );
    assert!(
        stdout.contains(r#"[{"region":"beijing","rate":0.7858664927158078,"n":12}]"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"{"region":"beijing","rate":0.7858664927158078,"n":12}"#),
        "{stdout}"
    );
    // .output wrote a workbook; parquet without a file is refused; unknown commands named.
    assert!(dir.join("out.xlsx").is_file());
    assert!(stderr.contains("parquet is binary"), "{stderr}");
    assert!(stderr.contains("unknown command .nonsense"), "{stderr}");
}

#[test]
fn errors_point_at_the_position_and_suggest_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let out = kefu(dir)
        .args(["sql", "--warehouse", "wh", "-c", "SELECT * FROM cals"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Did you mean 'calls'?"), "{stderr}");
    let out = kefu(dir)
        .args(["sql", "--warehouse", "wh", "-e"])
        .arg("SELECT call_id\nFROM calls WHERE = 1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\n  FROM calls WHERE = 1\n                   ^"),
        "{stderr}"
    );
}

#[test]
fn excel_ready_output_and_quiet_broken_pipes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let sql = "SELECT call_id, region, talk_s, talk_s / 7.0 AS ratio, \
               CAST(ivr_entered_at AS DATE) AS day, ivr_entered_at \
               FROM calls ORDER BY call_id";
    kefu(dir)
        .args([
            "sql",
            "--warehouse",
            "wh",
            "-e",
            sql,
            "--output",
            "calls.xlsx",
        ])
        .assert()
        .success();
    // Read back with calamine: typed cells and the header.
    use calamine::{Data, Reader};
    let mut book = calamine::open_workbook_auto(dir.join("calls.xlsx")).unwrap();
    let sheet = book.worksheet_range("result").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    assert_eq!(
        rows[0],
        [
            "call_id",
            "region",
            "talk_s",
            "ratio",
            "day",
            "ivr_entered_at"
        ]
        .map(|h| Data::String(h.into()))
    );
    // The fixture's first call, by hand: C01, beijing, 280 s, 2026-01-05T01:00:00Z.
    assert_eq!(rows[1][0], Data::String("C01".into()));
    assert_eq!(rows[1][2], Data::Float(280.0));
    assert_eq!(rows[1][3], Data::Float(40.0));
    match (&rows[1][4], &rows[1][5]) {
        (Data::DateTime(day), Data::DateTime(at)) => {
            assert_eq!(
                day.as_datetime().unwrap().to_string(),
                "2026-01-05 00:00:00"
            );
            assert_eq!(at.as_datetime().unwrap().to_string(), "2026-01-05 01:00:00");
        }
        other => panic!("dates as dates: {other:?}"),
    }
    let calls = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql/calls.csv"),
    )
    .unwrap();
    assert_eq!(
        rows.len(),
        calls.lines().count(),
        "the header and every call"
    );

    // CSV for Excel starts with a byte-order mark; without --bom it does not.
    let bom = kefu(dir)
        .args(["sql", "--warehouse", "wh", "--format", "csv", "--bom", "-e"])
        .arg("SELECT '北京' AS 地区")
        .output()
        .unwrap();
    assert_eq!(bom.stdout, "\u{FEFF}地区\n北京\n".as_bytes());
    // An unknown extension is refused rather than written as a text table.
    let xls = kefu(dir)
        .args([
            "sql",
            "--warehouse",
            "wh",
            "-e",
            "SELECT 1",
            "--output",
            "out.xls",
        ])
        .output()
        .unwrap();
    assert_eq!(xls.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&xls.stderr).contains("--format"));
    assert!(!dir.join("out.xls").exists());

    // `| head -1`: the reader goes away after one line; kefu ends quietly with 0.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .env_clear()
        .current_dir(dir)
        .args(["sql", "--warehouse", "wh", "--format", "csv", "-e"])
        .arg("SELECT * FROM range(5000000)")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn analysts_join_their_own_files_locally_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    std::fs::write(
        dir.join("targets.csv"),
        "region,answer_target\nbeijing,0.9\nshanghai,0.85\n",
    )
    .unwrap();
    // Calls per region in the fixture, counted by hand from fixtures/sql/calls.csv.
    let calls = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql/calls.csv"),
    )
    .unwrap();
    let count = |region: &str| {
        calls
            .lines()
            .filter(|l| l.split(',').nth(1) == Some(region))
            .count()
    };
    let expected = format!(
        "region,answer_target,calls\nbeijing,0.9,{}\nshanghai,0.85,{}\n",
        count("beijing"),
        count("shanghai")
    );
    let run = |sql: &str| {
        let out = kefu(dir)
            .args(["sql", "--warehouse", "wh", "--format", "csv", "-e", sql])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let join = |from: &str| {
        format!(
            "SELECT t.region, t.answer_target, count(*) AS calls FROM calls c \
             JOIN {from} t ON c.region = t.region GROUP BY 1, 2 ORDER BY 1"
        )
    };
    for from in ["'targets.csv'", "read_csv('targets.csv')"] {
        let (code, out, err) = run(&join(from));
        assert_eq!(code, Some(0), "{from}: {err}");
        assert_eq!(out, expected, "{from}");
    }
    let (code, out, err) = run(&format!(
        "CREATE EXTERNAL TABLE targets STORED AS CSV LOCATION 'targets.csv' \
         OPTIONS ('format.has_header' 'true'); CREATE VIEW goals AS SELECT * FROM targets; {}",
        join("goals")
    ));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, expected);
    // Writing stays refused, and the warehouse's names cannot be taken.
    let (code, _, err) = run("COPY (SELECT 1) TO 'copy.csv'");
    assert_ne!(code, Some(0));
    assert!(err.contains("read-only"), "{err}");
    assert!(!dir.join("copy.csv").exists());
    let (code, _, err) = run(
        "CREATE EXTERNAL TABLE calls STORED AS CSV LOCATION 'targets.csv' \
         OPTIONS ('format.has_header' 'true')",
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("read-only"), "{err}");

    // The server reads the warehouse only.
    let server = crate::serve::Server::start(
        dir,
        "[[token]]\nname = \"a\"\ntoken = \"analyst-token-000000001\"\nrole = \"analyst\"\n",
    );
    for sql in [
        "SELECT * FROM 'targets.csv'",
        "SELECT * FROM read_csv('targets.csv')",
        "CREATE VIEW v AS SELECT 1",
    ] {
        let body = serde_json::json!({ "sql": sql }).to_string();
        let (status, _, answer) = server.request(
            "POST",
            "/api/v1/sql",
            &[("Authorization", "Bearer analyst-token-000000001")],
            &body,
        );
        assert_eq!(status, 400, "{sql}: {}", String::from_utf8_lossy(&answer));
    }
}

#[test]
fn a_report_for_a_month_without_data_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let out = kefu(dir)
        .args([
            "report",
            "--warehouse",
            "wh",
            "--month",
            "2030-01",
            "--out",
            "r",
        ])
        .args(["-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing to report for 2030-01")
            && stderr.contains("the warehouse holds 2023-03 to 2026-02"),
        "{stderr}"
    );
    assert!(!dir.join("r").exists(), "no report of dashes is written");
    // A date expression names the month holding its day.
    let out = kefu(dir)
        .args([
            "report",
            "--warehouse",
            "wh",
            "--month",
            "2030-01-15 + 1 month",
        ])
        .args(["--out", "r", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to report for 2030-02"));
    let out = kefu(dir)
        .args([
            "report",
            "--warehouse",
            "wh",
            "--month",
            "2026-01",
            "--out",
            "r",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A region is held to its own rows: none in a month others have data for is refused,
    // and one with calls that month is reported.
    let region_report = |region: &str, out: &str| {
        kefu(dir)
            .args(["report", "--warehouse", "wh", "--month", "2026-01"])
            .args(["--region", region, "--out", out, "-q"])
            .output()
            .unwrap()
    };
    let out = region_report("nowhere", "r-nowhere");
    assert_eq!(out.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing to report for 2026-01 (region nowhere)"),
        "{stderr}"
    );
    let out = region_report("beijing", "r-beijing");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("r-beijing/index.html").exists());
}
