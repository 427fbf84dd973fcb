//! The worked examples of the profile guide (`fixtures/profiles/`): ingested with no
//! preprocessing, their figures equal DuckDB's, computed over the raw files with its own
//! reading of the same rules.

use std::path::PathBuf;
use std::process::Command;

fn profiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/profiles")
}

/// DuckDB over the raw log: the hotline figures for January 1999 per queue, by the rules
/// the bank's profile states (PHANTOM is no call; a call queued when q_start is not
/// 0:00:00; HANG after queueing is an abandon; a time more than 12 hours before the entry
/// is the next day; the end is the service's, else the queue's, else the IVR's; an end up
/// to 2 s before the entry is the entry).
const BANK_DUCKDB: &str = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute("""CREATE TABLE raw AS SELECT * FROM read_csv(?, delim='\t', header=true,
               all_varchar=true)""", [sys.argv[1]])
def secs(col):
    return f"(split_part({col}, ':', 1)::INT * 3600 + split_part({col}, ':', 2)::INT * 60 + split_part({col}, ':', 3)::INT)"
rows = con.execute(f"""
WITH calls AS (
    SELECT lower(type) AS queue,
           q_start <> '0:00:00' AS queued,
           outcome = 'AGENT' AS answered,
           outcome = 'HANG' AND q_start <> '0:00:00' AS abandoned,
           q_time::INT AS wait, ser_time::INT AS talk,
           {secs('vru_entry')} AS entry,
           {secs("CASE WHEN ser_exit <> '0:00:00' THEN ser_exit WHEN q_exit <> '0:00:00' THEN q_exit ELSE vru_exit END")} AS ended
    FROM raw WHERE outcome <> 'PHANTOM'
)
SELECT queue,
       count(*) FILTER (WHERE queued) AS offered,
       count(*) FILTER (WHERE queued AND answered) AS answered,
       count(*) FILTER (WHERE queued AND abandoned) AS abandoned,
       count(*) FILTER (WHERE queued AND abandoned AND wait < 5) AS short_abandons,
       count(*) FILTER (WHERE queued AND answered AND wait <= 20) / count(*) FILTER (WHERE queued) AS service_level,
       sum(wait) FILTER (WHERE queued AND answered) / count(*) FILTER (WHERE queued AND answered) AS asa_s,
       sum(talk) FILTER (WHERE queued AND answered) / count(*) FILTER (WHERE queued AND answered) AS aht_s,
       count(*) AS calls,
       count(*) FILTER (WHERE NOT queued) AS ivr_only,
       sum(greatest(CASE WHEN ended < entry - 43200 THEN ended + 86400 ELSE ended END - entry, 0)) AS duration_s
FROM calls GROUP BY queue ORDER BY queue
""").fetchall()
cols = [d[0] for d in con.description]
print(json.dumps([dict(zip(cols, r)) for r in rows]))
"#;

/// The bank hotline example: one profile, no preprocessing, and the month's KPIs per
/// queue equal DuckDB's over the raw log; the 52 PHANTOM test calls are counted as
/// filtered, not rejected.
#[test]
fn the_bank_hotline_example_equals_duckdb_over_the_raw_log() {
    let Some(python) = crate::common::duckdb_python_or_skip(
        "the_bank_hotline_example_equals_duckdb_over_the_raw_log",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = profiles_dir().join("bank_hotline.tsv");
    let profile = profiles_dir().join("bank_hotline.toml");
    let (log_s, profile_s) = (log.to_str().unwrap(), profile.to_str().unwrap());
    let report = crate::common::kefu_json(
        dir.path(),
        &[
            "ingest",
            log_s,
            "--warehouse",
            "wh",
            "--profile",
            profile_s,
            "-q",
            "--json",
        ],
    );
    assert_eq!(report["tables"]["calls"]["records"], 2600, "{report}");
    assert_eq!(report["tables"]["calls"]["new"], 2548, "{report}");
    assert_eq!(report["tables"]["calls"]["filtered"], 52, "{report}");
    assert_eq!(report["tables"]["calls"]["rejected"], 0, "{report}");
    assert_eq!(report["filtered"], 52, "{report}");

    let kpis = crate::common::kefu_json(
        dir.path(),
        &[
            "query",
            "calls_kpis",
            "--warehouse",
            "wh",
            "--format",
            "json",
            "--param",
            "from=1999-01-01",
            "--param",
            "to=1999-02-01",
            "--param",
            "period=month",
        ],
    );
    let extra = crate::common::kefu_json(
        dir.path(),
        &[
            "sql",
            "--warehouse",
            "wh",
            "--format",
            "json",
            "-e",
            "SELECT queue, count(*) AS calls, count(*) FILTER (WHERE queued_at IS NULL) AS ivr_only, \
             sum(date_diff('second', ivr_entered_at, ended_at)) AS duration_s \
             FROM calls GROUP BY queue ORDER BY queue",
        ],
    );
    let out = Command::new(&python)
        .args(["-c", BANK_DUCKDB])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duck: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let duck = duck.as_array().unwrap();
    let kpis = kpis.as_array().unwrap();
    let extra = extra.as_array().unwrap();
    assert_eq!(duck.len(), 6, "{duck:?}");
    assert_eq!(kpis.len(), duck.len(), "{kpis:?}");
    for ((d, k), e) in duck.iter().zip(kpis).zip(extra) {
        assert_eq!(k["queue"], d["queue"]);
        assert_eq!(k["period"], "1999-01-01");
        for count in ["offered", "answered", "abandoned", "short_abandons"] {
            assert_eq!(k[count], d[count], "{} {count}", d["queue"]);
        }
        for rate in ["service_level", "asa_s", "aht_s"] {
            let (ours, theirs) = (k[rate].as_f64().unwrap(), d[rate].as_f64().unwrap());
            assert!(
                (ours - theirs).abs() < 1e-9,
                "{} {rate}: {ours} {theirs}",
                d["queue"]
            );
        }
        assert_eq!(e["queue"], d["queue"]);
        for count in ["calls", "ivr_only", "duration_s"] {
            assert_eq!(e[count], d[count], "{} {count}", d["queue"]);
        }
    }
}

/// The bank log's call_id alone is no key (it repeats across VRU lines): a profile
/// mapping it so would keep one call of each repeated id. Check says so, and ingest
/// refuses the batch.
#[test]
fn a_key_that_is_no_key_is_refused_not_collapsed() {
    let dir = tempfile::tempdir().unwrap();
    let log = profiles_dir().join("bank_hotline.tsv");
    let text = std::fs::read_to_string(profiles_dir().join("bank_hotline.toml")).unwrap();
    let wrong = text.replace(
        "\"vru+line\" || '-' || call_id                           AS call_id",
        "call_id AS call_id",
    );
    assert_ne!(wrong, text);
    let profile = dir.path().join("wrong_key.toml");
    std::fs::write(&profile, wrong).unwrap();
    let (log_s, profile_s) = (log.to_str().unwrap(), profile.to_str().unwrap());

    let out = crate::common::kefu(dir.path())
        .args(["check", log_s, "--profile", profile_s, "--rows", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("DUPLICATES") && stdout.contains("repeating a key of the source"),
        "{stdout}"
    );

    let out = crate::common::kefu(dir.path())
        .args([
            "ingest",
            log_s,
            "--warehouse",
            "wh",
            "--profile",
            profile_s,
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("repeat a key their source gave before")
            && stderr.contains("--max-duplicate-ratio"),
        "{stderr}"
    );
    // Nothing landed; allowing the repeats lands one call per id, counted.
    let report = crate::common::kefu_json(
        dir.path(),
        &[
            "ingest",
            log_s,
            "--warehouse",
            "wh",
            "--profile",
            profile_s,
            "-q",
            "--json",
            "--max-duplicate-ratio",
            "1",
        ],
    );
    let calls = &report["tables"]["calls"];
    let duplicates = calls["duplicate_keys"].as_u64().unwrap();
    assert!(duplicates > 500, "{report}");
    assert_eq!(
        calls["new"].as_u64().unwrap() + duplicates,
        2548,
        "{report}"
    );
}

/// DuckDB over the raw incident log: each incident's last state (the row of its latest
/// update), then tickets, resolution seconds and reopenings per state and channel, by
/// the rules the profile states.
const INCIDENTS_DUCKDB: &str = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("""CREATE TABLE raw AS SELECT * FROM read_csv(?, header=true, all_varchar=true,
               nullstr='?')""", [sys.argv[1]])
rows = con.execute("""
WITH parsed AS (
    SELECT number, incident_state, contact_type, reopen_count::INT AS reopened,
           timezone('Europe/London', strptime(opened_at, '%d/%m/%Y %H:%M')) AS opened,
           timezone('Europe/London', strptime(resolved_at, '%d/%m/%Y %H:%M')) AS resolved,
           timezone('Europe/London', strptime(sys_updated_at, '%d/%m/%Y %H:%M')) AS updated
    FROM raw
),
last AS (
    SELECT number, arg_max(incident_state, updated) AS state,
           arg_max(contact_type, updated) AS contact, arg_max(reopened, updated) AS reopened,
           arg_max(opened, updated) AS opened, arg_max(resolved, updated) AS resolved
    FROM parsed GROUP BY number
)
SELECT CASE state WHEN 'New' THEN 'received' WHEN 'Resolved' THEN 'replied'
                  WHEN 'Closed' THEN 'closed' ELSE 'in_progress' END AS status,
       CASE contact WHEN 'Phone' THEN 'hotline' WHEN 'Email' THEN 'email'
                    WHEN 'Self service' THEN 'web' ELSE 'counter' END AS channel,
       count(*) AS tickets,
       sum(epoch(resolved) - epoch(opened))::BIGINT AS resolution_s,
       sum(reopened)::BIGINT AS reopened
FROM last GROUP BY ALL ORDER BY 1, 2
""").fetchall()
print(json.dumps([dict(zip(["status", "channel", "tickets", "resolution_s", "reopened"], r)) for r in rows]))
"#;

/// The incident event log example: many rows per incident fold into one ticket each (its
/// last state), also when the log arrives in two parts, the later part first; the
/// tickets per state and channel, their resolution time and reopenings equal DuckDB's
/// fold of the raw log.
#[test]
fn the_incident_log_example_folds_into_tickets_as_duckdb_does() {
    let Some(python) = crate::common::duckdb_python_or_skip(
        "the_incident_log_example_folds_into_tickets_as_duckdb_does",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = profiles_dir().join("incident_log.csv");
    let profile = profiles_dir().join("incident_log.toml");
    let profile_s = profile.to_str().unwrap();
    // Two deliveries: every other row, the second half first.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut first, mut second) = (vec![header], vec![header]);
    for (i, line) in lines.enumerate() {
        if i % 2 == 0 { &mut first } else { &mut second }.push(line);
    }
    for (name, part) in [("incidents_b.csv", &second), ("incidents_a.csv", &first)] {
        let path = dir.path().join(name);
        std::fs::write(&path, part.join("\n") + "\n").unwrap();
        let report = crate::common::kefu_json(
            dir.path(),
            &[
                "ingest",
                path.to_str().unwrap(),
                "--warehouse",
                "wh",
                "--profile",
                profile_s,
                "-q",
                "--json",
            ],
        );
        assert_eq!(report["rejected"], 0, "{report}");
    }
    let ours = crate::common::kefu_json(
        dir.path(),
        &[
            "sql",
            "--warehouse",
            "wh",
            "--format",
            "json",
            "-e",
            "SELECT status, channel, count(*) AS tickets, \
             sum(date_diff('second', created_at, resolved_at)) AS resolution_s, \
             sum(reopened_count) AS reopened FROM tickets GROUP BY 1, 2 ORDER BY 1, 2",
        ],
    );
    let out = Command::new(&python)
        .args(["-c", INCIDENTS_DUCKDB])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ours, theirs);
    let tickets: u64 = ours
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tickets"].as_u64().unwrap())
        .sum();
    assert_eq!(tickets, 300, "one ticket per incident");
}
