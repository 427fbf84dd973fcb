//! `kefu run`, `kefu schedule`, `kefu report` and `kefu demo`, end to end on generated
//! data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use predicates::prelude::PredicateBooleanExt;

use crate::common::{kefu, snapshot};

/// Messy exports for Jan–Feb 2026 (2,000 customers), generated once per test.
fn exports(dir: &Path) -> PathBuf {
    let out = dir.join("all-exports");
    kefu(dir)
        .args([
            "gen",
            "--messy",
            "--customers",
            "2000",
            "--days",
            "59",
            "-q",
            "--out",
        ])
        .arg(&out)
        .args(crate::common::DENSE_COMPLAINTS)
        .assert()
        .success();
    out
}

/// Every archive of `exports`, with the day (YYYYMMDD) in its name.
fn archives(exports: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = snapshot(exports)
        .into_keys()
        .filter(|p| !p.ends_with("manifest.json"))
        .map(|p| exports.join(p))
        .collect();
    files.sort();
    files
}

fn copy_into(files: &[PathBuf], exports: &Path, inbox: &Path) {
    for f in files {
        let to = inbox.join(f.strip_prefix(exports).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(f, to).unwrap();
    }
}

fn run_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = kefu(dir)
        .arg("run")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kefu run {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (period, status) of a step's units.
fn units(report: &serde_json::Value, step: &str) -> Vec<(String, String)> {
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {report}"));
    step["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["period"].as_str().unwrap().to_string(),
                u["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The job's outputs, without the run reports.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(&dir.join("kpi"))
        .into_iter()
        .filter(|(k, _)| !k.starts_with("_runs"))
        .collect()
}

const JOB: &str = r#"
name = "nightly"
warehouse = "wh"
output_dir = "kpi"

[[step]]
type = "ingest"
sources = ["inbox"]

[[step]]
type = "query"
query = "calls_kpis"
params = { from = "month_start - 2 months", to = "month_start", period = "month" }
partition = "month"
[[step.output]]
path = "calls/{period}.csv"
[[step.output]]
path = "calls_kpis.parquet"

[[step]]
type = "query"
name = "complaints"
query = "complaints_trend"
params = { from = "month_start - 2 months", to = "month_start", period = "month" }
partition = "month"
[[step.output]]
path = "complaints.csv"

[[step]]
type = "report"
month = "month_start - 1 month"
lang = "en"
out = "reports/{month}"

[[step]]
type = "query"
name = "churn"
query = "churn_monthly"
params = { from = "month_start - 2 months", to = "month_start" }
partition = "month"
[[step.output]]
path = "churn/{period}.csv"
"#;

/// Each month's churn_monthly as the job wrote it equals the query run over that month
/// alone (the job runs its stale months as one query and splits the rows).
fn churn_months_match_their_own_queries(dir: &Path, outputs: &BTreeMap<String, Vec<u8>>) {
    for (month, from, to) in [
        ("2026-01", "from=2026-01-01", "to=2026-02-01"),
        ("2026-02", "from=2026-02-01", "to=2026-03-01"),
    ] {
        let alone = query_csv(dir, "churn_monthly", &[from, to]);
        assert!(alone.lines().count() > 2, "{alone}");
        assert_eq!(
            String::from_utf8_lossy(&outputs[&format!("churn/{month}.csv")]),
            alone,
            "{month}"
        );
    }
}

fn step_message(report: &serde_json::Value, step: &str) -> String {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string()
}

fn query_csv(dir: &Path, name: &str, params: &[&str]) -> String {
    let mut cmd = kefu(dir);
    cmd.args(["query", name, "--warehouse", "wh", "--format", "csv"]);
    for p in params {
        cmd.args(["--param", p]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_job_runs_incrementally_and_survives_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exports = exports(dir);
    let (late, early): (Vec<PathBuf>, Vec<PathBuf>) = archives(&exports)
        .into_iter()
        .partition(|p| p.to_string_lossy().contains("20260227"));
    assert!(!late.is_empty() && !early.is_empty());
    copy_into(&early, &exports, &dir.join("inbox"));
    std::fs::write(dir.join("nightly.toml"), JOB).unwrap();

    // 1. The first run does everything.
    let first = run_json(dir, &["nightly.toml", "--date", "2026-03-01"]);
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(
        units(&first, "calls_kpis"),
        [
            ("2026-01".into(), "computed".into()),
            ("2026-02".into(), "computed".into())
        ]
    );
    for f in [
        "calls/2026-01.csv",
        "calls/2026-02.csv",
        "calls_kpis.parquet",
        "complaints.csv",
        "reports/2026-02/index.html",
        "reports/2026-02/tables/headline.csv",
    ] {
        assert!(dir.join("kpi").join(f).is_file(), "{f}");
    }
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("kpi/_runs/nightly-latest.json")).unwrap())
            .unwrap();
    assert_eq!(latest["status"], "ok");
    assert!(
        latest["steps"][0]["ingest"]["new"].as_u64().unwrap() > 10_000,
        "{latest}"
    );
    let before = outputs(dir);
    let churn = step_message(&first, "churn");
    assert!(
        churn.contains("in one run over 2026-01..2026-02"),
        "{churn}"
    );
    churn_months_match_their_own_queries(dir, &before);

    // 2. No new data: nothing is done, and the summary says so.
    let out = kefu(dir)
        .args(["run", "nightly.toml", "--date", "2026-03-01"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("nothing to do"), "{stdout}");
    assert_eq!(outputs(dir), before);

    // 3. One more day arrives; the run is killed right after its first output.
    copy_into(&late, &exports, &dir.join("inbox"));
    let killed = kefu(dir)
        .args(["run", "nightly.toml", "--date", "2026-03-01", "-q"])
        .env("KEFU_FAILPOINT", "after_output:1")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    assert!(String::from_utf8_lossy(&killed.stderr).contains("failpoint"));
    let after_kill = outputs(dir);
    assert!(
        after_kill.keys().all(|k| !k.contains(".partial")),
        "{:?}",
        after_kill.keys()
    );

    // 4. The next run completes, recomputing only February.
    let fourth = run_json(dir, &["nightly.toml", "--date", "2026-03-01"]);
    assert_eq!(fourth["status"], "ok", "{fourth}");
    assert_eq!(
        units(&fourth, "calls_kpis"),
        [
            ("2026-01".into(), "up_to_date".into()),
            ("2026-02".into(), "computed".into())
        ]
    );
    // January's complaints are recomputed only where the new day changed a ticket
    // created in January (an event of 27 February on it, local time).
    let january_tickets_changed = kefu(dir)
        .args(["sql", "--warehouse", "wh", "--format", "csv", "-e"])
        .arg(
            "SELECT count(*) AS n FROM tickets WHERE month = '2026-01' AND greatest(created_at, \
             dispatched_at, first_contact_at, resolved_at, closed_at) >= TIMESTAMP '2026-02-26T16:00:00Z'",
        )
        .output()
        .unwrap();
    assert!(january_tickets_changed.status.success());
    let january = match String::from_utf8_lossy(&january_tickets_changed.stdout).as_ref() {
        "n\n0\n" => "up_to_date",
        _ => "computed",
    };
    assert_eq!(
        units(&fourth, "complaints"),
        [
            ("2026-01".into(), january.into()),
            ("2026-02".into(), "computed".into())
        ]
    );
    assert_eq!(
        units(&fourth, "report-4"),
        [("2026-02".into(), "computed".into())]
    );
    let done = outputs(dir);
    // Churn looks ahead without end: the new day recomputes both months, in one run.
    assert_eq!(
        units(&fourth, "churn"),
        [
            ("2026-01".into(), "computed".into()),
            ("2026-02".into(), "computed".into())
        ]
    );
    churn_months_match_their_own_queries(dir, &done);
    // The kill left every output whole: the previous version or the finished one.
    for (k, v) in &after_kill {
        assert!(
            before.get(k) == Some(v) || done.get(k) == Some(v),
            "{k} is neither the old nor the new output"
        );
    }
    assert_eq!(done["calls/2026-01.csv"], before["calls/2026-01.csv"]);
    assert_ne!(done["calls/2026-02.csv"], before["calls/2026-02.csv"]);
    let february = query_csv(
        dir,
        "calls_kpis",
        &["from=2026-02-01", "to=2026-03-01", "period=month"],
    );
    assert_eq!(
        String::from_utf8_lossy(&done["calls/2026-02.csv"]),
        february
    );

    // 5. And then there is nothing to do again.
    let fifth = run_json(dir, &["nightly.toml", "--date", "2026-03-01"]);
    assert_eq!(fifth["status"], "nothing_to_do", "{fifth}");

    // A dry run says what a backfill would do and writes nothing.
    let dry = run_json(
        dir,
        &[
            "nightly.toml",
            "--date",
            "2026-03-01",
            "--from",
            "2025-12-01",
            "--to",
            "2026-03-01",
            "--dry-run",
        ],
    );
    assert_eq!(
        units(&dry, "calls_kpis"),
        [
            ("2025-12".into(), "would_compute".into()),
            ("2026-01".into(), "up_to_date".into()),
            ("2026-02".into(), "up_to_date".into())
        ]
    );
    let planned = &dry["steps"][1]["message"];
    assert!(
        planned
            .as_str()
            .unwrap()
            .contains("2025-12: never computed"),
        "{planned}"
    );
    assert_eq!(outputs(dir), done);

    // A backfill of January builds its report; its KPI period is already up to date,
    // and the whole-range output keeps both months.
    let backfill = run_json(
        dir,
        &["nightly.toml", "--from", "2026-01-01", "--to", "2026-02-01"],
    );
    assert_eq!(
        units(&backfill, "report-4"),
        [("2026-01".into(), "computed".into())]
    );
    assert_eq!(
        units(&backfill, "calls_kpis"),
        [("2026-01".into(), "up_to_date".into())]
    );
    assert!(dir.join("kpi/reports/2026-01/index.html").is_file());
    assert_eq!(
        outputs(dir)["calls_kpis.parquet"],
        done["calls_kpis.parquet"]
    );

    // A second run while one holds the lock is refused with its own exit code.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(".kefu-jobs/nightly/lock"))
        .unwrap();
    lock.lock().unwrap();
    kefu(dir)
        .args(["run", "nightly.toml"])
        .assert()
        .code(6)
        .stderr(predicates::str::contains("already running"));
}

/// A job over January to April 2026 of churn_monthly, whose lookahead is its `days` (90).
const CHURN_JOB: &str = r#"
name = "churn"
warehouse = "wh"
output_dir = "kpi"

[[step]]
type = "ingest"
sources = ["inbox"]

[[step]]
type = "query"
query = "churn_monthly"
params = { from = "2026-01-01", to = "2026-05-01" }
partition = "month"
[[step.output]]
path = "churn/{period}.csv"
"#;

/// What of a generated day is delivered.
#[derive(Clone, Copy, PartialEq)]
enum Delivery {
    /// Its calls, tickets, callbacks and visits.
    Everything,
    /// Its outbound calls alone: events, but no customer's activity.
    OutboundCallsOnly,
}

/// `days` days of 300 customers' exports from `start`, generated into `out`.
fn generate(dir: &Path, start: &str, days: u32, out: &Path) {
    kefu(dir)
        .args(["gen", "--customers", "300", "--days", &days.to_string()])
        .args(["--start", start, "-q", "--out"])
        .arg(out)
        .assert()
        .success();
}

/// `days` generated days of events from `day` (no dimension files), their record ids
/// made new with `tag` (CL000… → CL<tag>00…), put in `inbox`.
fn new_days(dir: &Path, day: &str, days: u32, tag: char, inbox: &Path, what: Delivery) {
    let raw = dir.join(format!("day-{day}"));
    generate(dir, day, days, &raw);
    let delivery = inbox.join(day);
    std::fs::create_dir_all(&delivery).unwrap();
    let tables: &[&str] = match what {
        Delivery::Everything => &["calls", "tickets", "callbacks", "visits"],
        Delivery::OutboundCallsOnly => &["calls"],
    };
    for table in tables {
        let mut text = std::fs::read_to_string(raw.join(format!("{table}.csv"))).unwrap();
        for prefix in ["CL", "TK", "CB", "VS"] {
            text = text.replace(&format!("{prefix}0"), &format!("{prefix}{tag}"));
        }
        if what == Delivery::OutboundCallsOnly {
            text = outbound_rows(&text);
        }
        std::fs::write(delivery.join(format!("{table}.csv")), text).unwrap();
    }
}

/// The calls CSV `text` with only its outbound calls (at least one).
fn outbound_rows(text: &str) -> String {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let direction = headers.iter().position(|h| h == "direction").unwrap();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&headers).unwrap();
    let mut kept = 0;
    for record in reader.records() {
        let record = record.unwrap();
        if &record[direction] == "outbound" {
            writer.write_record(&record).unwrap();
            kept += 1;
        }
    }
    assert!(kept > 0, "the generated day has no outbound call");
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}

/// The sum of `column` over a CSV's rows.
fn column_sum(csv_text: &str, column: &str) -> i64 {
    let mut lines = csv_text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == column).unwrap();
    lines
        .map(|l| l.split(',').nth(at).unwrap().parse::<i64>().unwrap())
        .sum()
}

/// Churn looks `days` ahead: newer data recomputes only the months within that reach,
/// and data past a month's reach recomputes it once, when the warehouse first holds any
/// (its unknown outcomes are judged against the newest event). Each month the job
/// keeps equals the query run over that month alone, after every run.
#[test]
fn churn_months_are_recomputed_within_their_lookahead_and_when_data_first_passes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inbox = dir.join("inbox");
    generate(dir, "2026-01-01", 120, &inbox);
    std::fs::write(dir.join("churn.toml"), CHURN_JOB).unwrap();
    let months = ["2026-01", "2026-02", "2026-03", "2026-04"];
    let each_month_matches_its_query = || {
        let written = outputs(dir);
        for (month, from, to) in [
            ("2026-01", "from=2026-01-01", "to=2026-02-01"),
            ("2026-02", "from=2026-02-01", "to=2026-03-01"),
            ("2026-03", "from=2026-03-01", "to=2026-04-01"),
            ("2026-04", "from=2026-04-01", "to=2026-05-01"),
        ] {
            let alone = query_csv(dir, "churn_monthly", &[from, to]);
            let kept = String::from_utf8_lossy(&written[&format!("churn/{month}.csv")]);
            assert_eq!(kept, alone, "{month}");
        }
        written
    };
    let all = |state: &str| -> Vec<(String, String)> {
        months
            .iter()
            .map(|m| (m.to_string(), state.to_string()))
            .collect()
    };

    // 1. January to April: every month computed. The newest event is of 30 April, so
    //    April's customers not seen again are unknown yet.
    let first = run_json(dir, &["churn.toml", "--date", "2026-05-01"]);
    assert_eq!(units(&first, "churn_monthly"), all("computed"));
    let before = each_month_matches_its_query();
    let april_unknown = column_sum(
        &String::from_utf8_lossy(&before["churn/2026-04.csv"]),
        "activity_unknown",
    );
    assert!(april_unknown > 0, "no unknown outcome in April");

    // 2. A day of September's outbound calls arrives after a gap: it is past every
    //    month's reach (January's ends on 2 May, April's on 30 July), but it is the
    //    first data past it. Though no customer's activity, it shows the outcomes are
    //    observed, deciding April's unknown ones: every month is computed again.
    new_days(
        dir,
        "2026-09-01",
        1,
        'D',
        &inbox,
        Delivery::OutboundCallsOnly,
    );
    let second = run_json(dir, &["churn.toml", "--date", "2026-09-02"]);
    assert_eq!(units(&second, "churn_monthly"), all("computed"));
    let after_gap = each_month_matches_its_query();
    assert_eq!(
        column_sum(
            &String::from_utf8_lossy(&after_gap["churn/2026-04.csv"]),
            "activity_unknown"
        ),
        0
    );

    // 3. The next day, all of it, changes none of them: each is kept, and still what the
    //    query says.
    new_days(dir, "2026-09-02", 1, 'E', &inbox, Delivery::Everything);
    let third = run_json(dir, &["churn.toml", "--date", "2026-09-03"]);
    assert!(
        third["steps"][0]["ingest"]["new"].as_u64().unwrap() > 0,
        "{third}"
    );
    assert_eq!(units(&third, "churn_monthly"), all("up_to_date"));
    assert_eq!(each_month_matches_its_query(), after_gap);
}

/// What jobs rely on to keep a period's result: a named query that declares no
/// lookahead gives the same answer for January once February's events have arrived
/// (`branch_scorecard` did not, and a rebuilt report kept a stale on-time rate).
/// Queries with a lookahead, and those whose dates are not a range ending with January
/// (`date`, a half year holding it), are left out.
#[test]
fn a_query_without_a_lookahead_ignores_events_after_its_period() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let january = dir.join("january");
    generate(dir, "2026-01-01", 31, &january);
    let ingest = |from: &Path| {
        kefu(dir)
            .args(["ingest", "--warehouse", "wh", "-q"])
            .arg(from)
            .assert()
            .success();
    };
    ingest(&january);
    let library = kefu_sql::queries::QueryLibrary::embedded().unwrap();
    let mut runs = Vec::new();
    for query in library.iter().filter(|q| q.lookahead.is_none()) {
        let mut params = Vec::new();
        let mut ends_with_january = true;
        for param in &query.params {
            if param.kind != kefu_sql::queries::ParamType::Date {
                continue;
            }
            match param.name.as_str() {
                "from" => params.push("from=2026-01-01".to_string()),
                "to" | "as_of" => params.push(format!("{}=2026-02-01", param.name)),
                _ => ends_with_january = false,
            }
        }
        if ends_with_january {
            runs.push((query.name.clone(), params));
        }
    }
    assert!(runs.len() >= 20, "{} queries", runs.len());
    let answers = |runs: &[(String, Vec<String>)]| -> Vec<String> {
        runs.iter()
            .map(|(name, params)| {
                let params: Vec<&str> = params.iter().map(String::as_str).collect();
                query_csv(dir, name, &params)
            })
            .collect()
    };
    let before = answers(&runs);
    let february = dir.join("february");
    new_days(dir, "2026-02-01", 10, 'F', &february, Delivery::Everything);
    ingest(&february);
    let held = kefu(dir)
        .args(["sql", "--warehouse", "wh", "--format", "csv", "-e"])
        .arg("SELECT count(*) AS n FROM tickets WHERE month = '2026-02'")
        .output()
        .unwrap();
    let held = String::from_utf8_lossy(&held.stdout).to_string();
    assert!(
        held.lines()
            .nth(1)
            .is_some_and(|n| n.parse::<u64>().unwrap_or(0) > 0),
        "February's tickets were not ingested: {held}"
    );
    for ((name, params), (was, is)) in runs.iter().zip(before.iter().zip(answers(&runs))) {
        assert!(
            *was == is,
            "{name} {params:?} changed with February's events but declares no lookahead"
        );
    }
}

/// A job whose churn step covers the report's thirteen months.
const REUSE_JOB: &str = r#"
name = "reuse"
warehouse = "wh"
output_dir = "kpi"

[[step]]
type = "ingest"
sources = ["inbox"]

[[step]]
type = "query"
name = "churn"
query = "churn_monthly"
params = { from = "month_start - 13 months", to = "month_start" }
partition = "month"
[[step.output]]
path = "churn.csv"

[[step]]
type = "report"
name = "report"
month = "month_start - 1 month"
lang = "en"
out = "reports/{month}"
"#;

/// How many query results a report step took without running them.
fn reused(report: &serde_json::Value) -> u64 {
    let message = step_message(report, "report");
    let n = message
        .split_once("reports (")
        .and_then(|(_, rest)| rest.split_once(" query results reused"))
        .unwrap_or_else(|| panic!("{message}"))
        .0;
    n.parse().unwrap()
}

#[test]
fn a_rebuilt_report_takes_what_did_not_change_and_matches_a_fresh_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exports = exports(dir);
    let (late, early): (Vec<PathBuf>, Vec<PathBuf>) = archives(&exports)
        .into_iter()
        .partition(|p| p.to_string_lossy().contains("20260227"));
    copy_into(&early, &exports, &dir.join("inbox"));
    std::fs::write(dir.join("reuse.toml"), REUSE_JOB).unwrap();

    // January's report; its churn_monthly is the churn step's run, taken as it is.
    let first = run_json(dir, &["reuse.toml", "--date", "2026-02-01"]);
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(reused(&first), 1, "{first}");

    // A later day arrives: churn (lookahead 90 days) changes January's report, which is
    // built again, taking the results whose data did not change from its last build.
    copy_into(&late, &exports, &dir.join("inbox"));
    let second = run_json(dir, &["reuse.toml", "--date", "2026-02-01"]);
    assert_eq!(
        units(&second, "report"),
        [("2026-01".into(), "computed".into())]
    );
    let taken = reused(&second);
    assert!(taken >= 3, "{second}");

    // What it shows is what a report built from scratch on the same warehouse shows.
    assert_report_matches_a_fresh_one(dir, "2026-01");
}

/// The tables of the job's report for `month` are, byte for byte, those of a report
/// built from scratch on the same warehouse.
fn assert_report_matches_a_fresh_one(dir: &Path, month: &str) {
    let fresh_dir = dir.join(format!("fresh-{month}"));
    kefu(dir)
        .args([
            "report",
            "--month",
            month,
            "--warehouse",
            "wh",
            "--lang",
            "en",
        ])
        .arg("--out")
        .arg(&fresh_dir)
        .arg("-q")
        .assert()
        .success();
    let rebuilt = snapshot(&dir.join(format!("kpi/reports/{month}/tables")));
    let fresh = snapshot(&fresh_dir.join("tables"));
    assert!(rebuilt.len() > 10, "{:?}", rebuilt.keys());
    assert_eq!(
        rebuilt.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>()
    );
    for (file, bytes) in &fresh {
        if file.ends_with(".csv") {
            assert!(rebuilt[file] == *bytes, "{file} differs from a fresh build");
        }
    }
}

/// Days after a month's end can change its report (a ticket of the month still open and
/// due after it counts against the on-time rate once the warehouse holds tickets past
/// its due time), so a report rebuilt later, taking what its queries' fingerprints say
/// did not change, must still be the one built from scratch: after the month, then
/// after each of two later deliveries of three days.
#[test]
fn a_report_rebuilt_day_after_day_matches_a_fresh_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inbox = dir.join("inbox");
    generate(dir, "2026-01-01", 31, &inbox);
    std::fs::write(dir.join("reuse.toml"), REUSE_JOB).unwrap();
    let first = run_json(dir, &["reuse.toml", "--date", "2026-02-01"]);
    assert_eq!(first["status"], "ok", "{first}");
    assert_report_matches_a_fresh_one(dir, "2026-01");
    for (day, tag) in [("2026-02-01", 'D'), ("2026-02-04", 'E')] {
        new_days(dir, day, 3, tag, &inbox, Delivery::Everything);
        let next = run_json(dir, &["reuse.toml", "--date", "2026-02-01"]);
        assert_eq!(next["status"], "ok", "{next}");
        // Only the churn months a new day reaches run again; the report's 13 months are
        // assembled from the step's caches.
        let recomputed = units(&next, "churn")
            .iter()
            .filter(|(_, state)| state == "computed")
            .count();
        assert!((1..13).contains(&recomputed), "{next}");
        assert!(reused(&next) >= 1, "{next}");
        assert_report_matches_a_fresh_one(dir, "2026-01");
    }
}

#[test]
fn bad_job_files_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (text, needle) in [
        (
            "name = \"j\"\nwarehouse = \"wh\"\n\n[[step]]\ntype = \"export\"\n",
            "bad.toml:5: unknown step type 'export'",
        ),
        (
            "name = \"j\"\n\n[[step]]\ntype = \"report\"\nout = \"r\"\n",
            "bad.toml:1: missing field `warehouse`",
        ),
        (
            "name = \"j\"\nwarehouse = \"wh\"\nschedule = \"every night\"\n[[step]]\ntype = \"report\"\nout = \"r\"\n",
            "bad.toml:3: schedule 'every night' is not a cron expression",
        ),
        (
            "name = \"j\"\nwarehouse = \"wh\"\n[[step]]\ntype = \"query\"\n\nquery = \"calls_kpi\"\n",
            "bad.toml:6: unknown named query 'calls_kpi'",
        ),
        (
            "name = \"j\"\nwarehouse = \"wh\"\n[[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\nparams = { to = \"last friday\" }\n",
            "bad.toml:6: param to: 'last friday' is not a date expression",
        ),
    ] {
        std::fs::write(dir.join("bad.toml"), text).unwrap();
        kefu(dir)
            .args(["run", "bad.toml"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(needle));
    }
}

#[test]
fn the_scheduler_catches_up_a_missed_run_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::create_dir_all(dir.join("wh")).unwrap();
    std::fs::write(
        jobs.join("daily.toml"),
        "name = \"daily\"\nwarehouse = \"../wh\"\nschedule = \"0 3 * * *\"\noutput_dir = \"../out\"\n[[step]]\ntype = \"query\"\nsql = \"SELECT CAST({{day}} AS VARCHAR) AS day\"\nparams = { day = \"yesterday\" }\n[[step.output]]\npath = \"day.csv\"\n",
    )
    .unwrap();
    let tick = |now: &str| {
        let out = kefu(dir)
            .args(["schedule", "jobs", "--once", "--now", now])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let runs = || std::fs::read_dir(dir.join("out/_runs")).map_or(0, |d| d.count());
    let first = tick("2026-03-01T12:00:00+08:00");
    assert!(
        first.contains("daily: armed, first run at 2026-03-02 03:00"),
        "{first}"
    );
    assert_eq!(runs(), 0);
    // Down for three days: one run, for the latest scheduled time.
    let second = tick("2026-03-04T12:00:00+08:00");
    assert!(
        second.contains(
            "ran for 2026-03-04 03:00 (catching up: 2 earlier scheduled runs were missed; ran once)"
        ),
        "{second}"
    );
    assert_eq!(runs(), 2, "one run report and the latest copy");
    assert_eq!(
        std::fs::read_to_string(dir.join("out/day.csv")).unwrap(),
        "day\n2026-03-03\n"
    );
    let third = tick("2026-03-04T18:00:00+08:00");
    assert!(
        third.contains("not due, next run at 2026-03-05 03:00"),
        "{third}"
    );
    assert_eq!(runs(), 2);
}

/// Sums of `column` over the rows of a CSV whose `key` column starts with `prefix`.
fn sum(csv_text: &str, key: &str, prefix: &str, column: &str) -> f64 {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let k = headers.iter().position(|h| h == key).unwrap();
    let c = headers.iter().position(|h| h == column).unwrap();
    reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| r[k].starts_with(prefix))
        .map(|r| r[c].parse::<f64>().unwrap_or(0.0))
        .sum()
}

/// The report's copy of a named query's result is that result, byte for byte, after the
/// byte-order mark that Excel needs.
fn same_table(report: &Path, name: &str, csv_text: &str) {
    let path = report.join(format!("tables/{name}.csv"));
    let text = std::fs::read_to_string(path).unwrap();
    let text = text
        .strip_prefix('\u{FEFF}')
        .unwrap_or_else(|| panic!("{name}: no BOM"));
    assert_eq!(text, csv_text, "{name}");
    // And as a workbook: the same header and rows, numbers as numbers of the same value.
    use calamine::{Data, Reader};
    let mut book =
        calamine::open_workbook_auto(report.join(format!("tables/{name}.xlsx"))).unwrap();
    let sheet = book.worksheet_range("result").unwrap();
    let mut csv = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<Data> = csv
        .headers()
        .unwrap()
        .iter()
        .map(|h| Data::String(h.into()))
        .collect();
    let mut rows = sheet.rows();
    assert_eq!(
        rows.next().unwrap(),
        header.as_slice(),
        "{name}.xlsx header"
    );
    let records: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(sheet.height() - 1, records.len(), "{name}.xlsx rows");
    for (row, record) in rows.zip(&records) {
        for (cell, text) in row.iter().zip(record.iter()) {
            match cell {
                Data::Float(x) => {
                    let want: f64 = text.parse().unwrap();
                    assert!(
                        (x - want).abs() <= 1e-9 * want.abs().max(1.0),
                        "{name}: {x} vs {text}"
                    );
                }
                Data::Int(i) => assert_eq!(i.to_string(), text, "{name}"),
                Data::String(s) => assert_eq!(s, text, "{name}"),
                Data::Empty => assert_eq!(text, "", "{name}"),
                _ => {}
            }
        }
    }
}

/// One field of a KPI's row in the report's headline table, as text.
fn headline_field(report: &Path, kpi: &str, column: &str) -> String {
    let text = std::fs::read_to_string(report.join("tables/headline.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let c = headers.iter().position(|h| h == column).unwrap();
    let row = reader
        .records()
        .map(|r| r.unwrap())
        .find(|r| &r[0] == kpi)
        .unwrap();
    row[c].to_string()
}

fn headline(report: &Path, kpi: &str) -> f64 {
    let text = std::fs::read_to_string(report.join("tables/headline.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let row = reader
        .records()
        .map(|r| r.unwrap())
        .find(|r| &r[0] == kpi)
        .unwrap();
    row[3].parse().unwrap()
}

#[test]
fn the_report_matches_the_named_queries_and_renders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exports = exports(dir);
    kefu(dir)
        .args(["ingest", "-q", "--warehouse", "wh"])
        .arg(&exports)
        .assert()
        .success();
    kefu(dir)
        .args([
            "report",
            "--month",
            "2026-02",
            "--warehouse",
            "wh",
            "--lang",
            "en",
            "--out",
            "rep",
            "-q",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "In February 2026 the hotline received",
        ));
    let rep = dir.join("rep");

    // The tables are the named queries' results, byte for byte.
    let trend = ["from=2025-02-01", "to=2026-03-01", "period=month"];
    let calls = query_csv(dir, "calls_kpis", &trend);
    same_table(&rep, "calls_kpis", &calls);
    let complaints = query_csv(dir, "complaints_trend", &trend);
    same_table(&rep, "complaints_trend", &complaints);
    let callbacks = query_csv(dir, "callbacks_kpis", &trend);
    same_table(&rep, "callbacks_kpis", &callbacks);
    let scorecard = query_csv(
        dir,
        "branch_scorecard",
        &["from=2026-02-01", "to=2026-03-01"],
    );
    same_table(&rep, "branch_scorecard", &scorecard);

    // The headline figures are those results summed, rates re-weighted.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
    let offered = sum(&calls, "period", "2026-02", "offered");
    let answered = sum(&calls, "period", "2026-02", "answered");
    assert!(offered > 1000.0);
    assert!(close(headline(&rep, "calls_offered"), offered));
    assert!(close(headline(&rep, "answer_rate"), answered / offered));
    assert!(close(
        headline(&rep, "complaints"),
        sum(&complaints, "period", "2026-02", "complaints")
    ));
    let satisfied = sum(&callbacks, "period", "2026-02", "satisfied");
    let dissatisfied = sum(&callbacks, "period", "2026-02", "dissatisfied");
    assert!(close(
        headline(&rep, "satisfaction"),
        satisfied / (satisfied + dissatisfied)
    ));

    // Year to date: the named query's result, and the derived table through 28 February.
    let ytd = query_csv(dir, "complaints_ytd", &["to=2026-03-01"]);
    same_table(&rep, "complaints_ytd", &ytd);
    let derived = std::fs::read_to_string(rep.join("tables/year_to_date.csv")).unwrap();
    assert!(derived.contains(",2026-02-28,"), "{derived}");
    let ytd_total = sum(&ytd, "level", "region", "complaints");
    let complaints_jan_feb = sum(&complaints, "period", "2026-01", "complaints")
        + sum(&complaints, "period", "2026-02", "complaints");
    assert!(
        close(ytd_total, complaints_jan_feb),
        "{ytd_total} vs {complaints_jan_feb}"
    );

    // The service figures: the same tables, re-weighted by their denominators.
    let service = |kpi: &str| -> f64 {
        let text = std::fs::read_to_string(rep.join("tables/service.csv")).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let row = reader
            .records()
            .map(|r| r.unwrap())
            .find(|r| &r[0] == kpi)
            .unwrap_or_else(|| panic!("{kpi} in service.csv"));
        row[3].parse().unwrap()
    };
    let products = |csv_text: &str, a: &str, b: &str| -> f64 {
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let at = |c: &str| headers.iter().position(|h| h == c).unwrap();
        let (p, x, y) = (at("period"), at(a), at(b));
        reader
            .records()
            .map(|r| r.unwrap())
            .filter(|r| r[p].starts_with("2026-02"))
            .map(|r| r[x].parse::<f64>().unwrap_or(0.0) * r[y].parse::<f64>().unwrap_or(0.0))
            .sum()
    };
    assert!(close(
        service("service_level"),
        products(&calls, "service_level", "offered") / offered
    ));
    assert!(close(
        service("abandon_rate"),
        sum(&calls, "period", "2026-02", "abandoned") / offered
    ));
    let sla_csv = std::fs::read_to_string(rep.join("tables/tickets_sla.csv")).unwrap();
    assert!(close(
        service("first_contact_rate"),
        sum(&sla_csv, "period", "2026-02", "contacted_in_time")
            / sum(&sla_csv, "period", "2026-02", "dispatched")
    ));
    let called_back = sum(&callbacks, "period", "2026-02", "called_back");
    assert!(close(
        service("callback_coverage"),
        called_back / sum(&callbacks, "period", "2026-02", "completed")
    ));
    assert!(close(
        service("callback_within_3_days"),
        products(&callbacks, "within_days_rate", "called_back") / called_back
    ));
    let breakdown = query_csv(
        dir,
        "complaints_breakdown",
        &["from=2026-02-01", "to=2026-03-01", "top=1000000"],
    );
    same_table(&rep, "complaints_breakdown", &breakdown);
    let over_level = sum(&breakdown, "region", "", "over_level");
    assert!(close(service("over_level_complaints"), over_level));
    // Work orders year to date as items and households: the query's 'all' row.
    let households = query_csv(
        dir,
        "tickets_households",
        &["from=2026-01-01", "to=2026-03-01", "kind=work_order"],
    );
    same_table(&rep, "tickets_households", &households);
    let (items, homes) = (
        sum(&households, "level", "all", "items"),
        sum(&households, "level", "all", "households"),
    );
    assert!(
        items > homes && homes > 0.0,
        "{items} items, {homes} households"
    );

    // A month is provisional where one of the query's rows is (tickets not yet due).
    let mut sla = csv::Reader::from_path(rep.join("tables/tickets_sla.csv")).unwrap();
    let headers = sla.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (period, provisional) = (column("period"), column("provisional"));
    let pending_in_february = sla
        .records()
        .map(|r| r.unwrap())
        .any(|r| r[period].starts_with("2026-02") && &r[provisional] == "true");
    assert_eq!(
        headline_field(&rep, "on_time_rate", "provisional"),
        pending_in_february.to_string()
    );
    // The usual targets apply: answer rate 85%.
    assert_eq!(headline_field(&rep, "answer_rate", "target"), "0.85");
    let answer_missed = answered / offered < 0.85;
    assert_eq!(
        headline_field(&rep, "answer_rate", "target_missed"),
        answer_missed.to_string()
    );

    // The page is self-contained: no script, no external resource (the embedded font of
    // the Chinese names it shows is a data: URL).
    let html = std::fs::read_to_string(rep.join("index.html")).unwrap();
    let outside_namespaces = html
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("url(data:font/otf;base64,", "");
    for external in ["<script", "http:", "https:", "src=", "<link", "url("] {
        assert!(
            !outside_namespaces.contains(external),
            "the page has {external}"
        );
    }
    assert!(html.contains("Customer service report, February 2026"));
    assert!(html.contains("Complaints year to date (1 January to 28 February"));
    assert!(
        html.contains("Year to date (to 28 February)"),
        "the summary's YTD sentence"
    );

    // Chinese labels with --lang zh.
    kefu(dir)
        .args([
            "report",
            "--month",
            "2026-02",
            "--warehouse",
            "wh",
            "--out",
            "rep-zh",
            "-q",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains("本月共受理投诉"))
        .stdout(predicates::str::contains(format!(
            "本年累计受理工单 {} 条，涉及 {} 户",
            kefu_report::charts::thousands(items as i64),
            kefu_report::charts::thousands(homes as i64)
        )))
        .stdout(predicates::str::contains("本月重复投诉"));
    let zh = std::fs::read_to_string(dir.join("rep-zh/index.html")).unwrap();
    assert!(
        zh.contains("2026年2月 客户服务月度报告") && zh.contains("环比") && zh.contains("同比")
    );
    assert!(
        zh.contains("本年累计投诉（1月1日至2月28日")
            && zh.contains("截至2月28日，本年累计受理投诉")
    );
    let data_urls = zh.matches("url(").count();
    assert_eq!(data_urls, zh.matches("url(data:font/otf;base64,").count());
    assert_eq!(data_urls, 1, "one embedded font");
    assert!(zh.contains("<h2>服务过程</h2>") && zh.contains("2小时内首次联系率"));

    // Targets from the command line, marked where missed, in both languages.
    kefu(dir)
        .args([
            "report",
            "--month",
            "2026-02",
            "--warehouse",
            "wh",
            "--out",
            "rep-targets",
            "-q",
            "--target",
            "answer_rate=100%",
            "--target",
            "complaints=0",
            "--target",
            "asa_s=none",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains("未达目标：接通率"));
    let targets = dir.join("rep-targets");
    assert_eq!(headline_field(&targets, "answer_rate", "target"), "1");
    assert_eq!(
        headline_field(&targets, "answer_rate", "target_missed"),
        "true"
    );
    assert_eq!(
        headline_field(&targets, "complaints", "target_missed"),
        "true"
    );
    assert_eq!(headline_field(&targets, "asa_s", "target"), "");
    let page = std::fs::read_to_string(targets.join("index.html")).unwrap();
    assert!(page.contains("class=\"kpi missed\" data-kpi=\"answer_rate\""));
    assert!(page.contains("<span class=\"mark missed\">未达标</span>"));
    kefu(dir)
        .args([
            "report",
            "--month",
            "2026-02",
            "--warehouse",
            "wh",
            "--out",
            "rep-bad",
            "-q",
            "--target",
            "answr_rate=0.9",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "'answr_rate=0.9' is not a target",
        ));

    // The half-year and annual editions: the same tables, summed over the period's
    // months (the data covers January and February 2026), compared with the period
    // before (not the annual one) and a year earlier.
    let offered_jan_feb = sum(&calls, "period", "2026-01", "offered") + offered;
    let answered_jan_feb = sum(&calls, "period", "2026-01", "answered") + answered;
    for (period, title) in [
        ("2026-H1", "2026年上半年 客户服务半年度报告"),
        ("2026", "2026年度 客户服务年度报告"),
    ] {
        let out = format!("rep-{period}");
        kefu(dir)
            .args(["report", "--period", period, "--warehouse", "wh", "-q"])
            .args(["--out", &out])
            .assert()
            .success()
            .stdout(predicates::str::contains(if period == "2026" {
                "全年共受理投诉"
            } else {
                "上半年共受理投诉"
            }));
        let edition = dir.join(&out);
        assert_eq!(headline_field(&edition, "calls_offered", "period"), period);
        assert!(close(headline(&edition, "calls_offered"), offered_jan_feb));
        assert!(close(
            headline(&edition, "answer_rate"),
            answered_jan_feb / offered_jan_feb
        ));
        assert!(close(headline(&edition, "complaints"), complaints_jan_feb));
        // Nothing before 2026: no 环比 or 同比 figure.
        assert_eq!(
            headline_field(&edition, "calls_offered", "previous_period"),
            ""
        );
        assert_eq!(
            headline_field(&edition, "calls_offered", "same_period_last_year"),
            ""
        );
        let page = std::fs::read_to_string(edition.join("index.html")).unwrap();
        assert!(page.contains(title), "{period}");
        // The trend runs from a year before the start: 18 and 24 months.
        let months = if period == "2026" { 24 } else { 18 };
        assert!(page.contains(&format!("{months} 个月趋势")), "{period}");
        assert_eq!(
            page.contains("<span class=\"\">环比"),
            period != "2026",
            "{period}: 环比 only beside the period before"
        );
        let churn = query_csv(
            dir,
            "churn_monthly",
            &[
                "from=2025-01-01",
                &format!(
                    "to={}",
                    if period == "2026" {
                        "2027-01-01"
                    } else {
                        "2026-07-01"
                    }
                ),
            ],
        );
        // Churn over a half year: its closures against the customers at its start.
        let closed = sum(&churn, "month", "2026", "closed");
        let at_start = sum(&churn, "month", "2026-01", "at_start");
        assert!(close(headline(&edition, "churn_rate"), closed / at_start));
    }
    // A job's report step with `edition = "half"` builds the same half-year report.
    std::fs::write(
        dir.join("half.toml"),
        "name = \"half\"\nwarehouse = \"wh\"\noutput_dir = \"kpi\"\n[[step]]\ntype = \"report\"\nedition = \"half\"\nmonth = \"2026-02-01\"\nout = \"reports/{period}\"\n",
    )
    .unwrap();
    kefu(dir)
        .args(["run", "half.toml", "-q"])
        .assert()
        .success();
    let from_job = dir.join("kpi/reports/2026-H1");
    for kpi in ["calls_offered", "complaints", "satisfaction", "churn_rate"] {
        assert_eq!(
            headline_field(&from_job, kpi, "value"),
            headline_field(&dir.join("rep-2026-H1"), kpi, "value"),
            "{kpi}"
        );
    }
    kefu(dir)
        .args(["report", "--period", "2026-H3", "--warehouse", "wh", "-q"])
        .args(["--out", "rep-bad"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "'2026-H3' is not a report period",
        ));

    crate::browser::renders_with_charts(&rep.join("index.html"), dir);
    crate::browser::renders_with_charts(&dir.join("rep-zh/index.html"), &dir.join("rep-zh"));
    crate::browser::renders_chinese_without_cjk_fonts(&dir.join("rep-zh/index.html"), dir);
    crate::browser::fits_a_phone_and_prints(&dir.join("rep-zh/index.html"), dir);
}

#[test]
fn the_demo_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = kefu(dir)
        .args([
            "demo",
            "--dir",
            "d",
            "--customers",
            "300",
            "--days",
            "35",
            "-q",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Open the monthly report:"), "{stdout}");
    // Three SQL examples to try, each of which runs.
    let examples: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once(" sql --warehouse ").map(|(_, rest)| rest))
        .collect();
    assert_eq!(examples.len(), 3, "{stdout}");
    for e in examples {
        let (_, rest) = e.split_once("-e \"").unwrap();
        let sql = rest.strip_suffix('"').unwrap();
        kefu(dir)
            .args(["sql", "--warehouse", "d/warehouse", "-e", sql])
            .assert()
            .success();
    }
    assert!(
        dir.join("d/kpi/reports/2026-12/index.html").is_file(),
        "{stdout}"
    );
    assert!(dir.join("d/kpi/calls_kpis.csv").is_file());
}

#[test]
fn failed_steps_give_their_exit_codes_and_the_rest_still_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    kefu(dir)
        .args([
            "gen",
            "--messy",
            "--customers",
            "200",
            "--days",
            "2",
            "--bad-row-rate",
            "0.05",
            "-q",
            "--out",
            "inbox",
        ])
        .assert()
        .success();
    let ok_step = "[[step]]\ntype = \"query\"\nname = \"one\"\nsql = \"SELECT 1 AS one\"\n[[step.output]]\npath = \"one.csv\"\n";
    // An ingest refused for its rejects: exit 3, and the next step ran.
    std::fs::write(
        dir.join("strict.toml"),
        format!("name = \"strict\"\nwarehouse = \"wh\"\n[[step]]\ntype = \"ingest\"\nsources = [\"inbox\"]\nmax_reject_ratio = 0.0\n{ok_step}"),
    )
    .unwrap();
    let out = kefu(dir)
        .args(["run", "strict.toml", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "rejected");
    assert_eq!(report["steps"][0]["status"], "failed");
    assert!(report["steps"][0]["ingest"]["rejected"].as_u64().unwrap() > 0);
    assert_eq!(report["steps"][1]["status"], "done");
    assert!(String::from_utf8_lossy(&out.stderr).contains("step ingest-1 (line 3)"));
    assert_eq!(
        std::fs::read_to_string(dir.join("one.csv")).unwrap(),
        "one\n1\n"
    );

    // A query job over a warehouse that is not there: an error, not empty tables.
    std::fs::write(
        dir.join("typo.toml"),
        format!("name = \"typo\"\nwarehouse = \"whh\"\n{ok_step}"),
    )
    .unwrap();
    kefu(dir)
        .args(["run", "typo.toml"])
        .assert()
        .code(4)
        .stderr(predicates::str::contains("whh/: no warehouse there"));
    assert!(!dir.join("whh").exists());

    // A step failing at run time, another succeeding: partial failure, exit 5.
    std::fs::write(
        dir.join("partial.toml"),
        format!("name = \"partial\"\nwarehouse = \"wh\"\n[[step]]\ntype = \"query\"\nname = \"broken\"\nsql = \"SELECT no_such_column FROM calls\"\n{ok_step}"),
    )
    .unwrap();
    kefu(dir)
        .args(["run", "partial.toml"])
        .assert()
        .code(5)
        .stderr(
            predicates::str::contains("step broken (line 3)")
                .and(predicates::str::contains("no_such_column")),
        );
}
