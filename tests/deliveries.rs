//! Delivery monitoring: `kefu status --deliveries` and `requires_deliveries` in a job, on
//! generated office exports with one region's day removed and another's delivered late.

use std::path::Path;

use chrono::TimeZone;

use crate::common::kefu;

/// Arrival at `local` (Asia/Shanghai, `YYYY-MM-DD HH:MM`) as a file modification time.
fn set_arrival(path: &Path, local: &str) {
    let t = chrono_tz::Asia::Shanghai
        .from_local_datetime(
            &chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap(),
        )
        .unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.timestamp() as u64);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn a_missing_day_and_a_late_one_are_named_and_a_job_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    kefu(dir.path())
        .args(["gen", "--messy", "-q", "--out", "exports", "--regions", "3"])
        .args([
            "--customers",
            "300",
            "--days",
            "20",
            "--start",
            "2026-01-01",
        ])
        .args(["--resend-rate", "0", "--bad-row-rate", "0"])
        .assert()
        .success();
    let exports = dir.path().join("exports");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exports.join("manifest.json")).unwrap()).unwrap();
    let regions: Vec<String> = manifest["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(regions.len(), 3);
    let archive = |region: &str, day: &str| -> std::path::PathBuf {
        let entry = manifest["archives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["region"] == region && a["covers"][0] == day && a["kind"] == "daily")
            .unwrap_or_else(|| panic!("no daily archive of {region} {day}"));
        // The generator dates each archive's file by its arrival: 01:00–04:00 the next
        // morning, before the 06:00 due time.
        exports.join(entry["path"].as_str().unwrap())
    };
    // One region's 2026-01-16 never arrives; another's 2026-01-13 arrives at 09:30 the
    // next morning, three and a half hours after it was due.
    let (gone, late) = (&regions[1], &regions[2]);
    std::fs::remove_file(archive(gone, "2026-01-16")).unwrap();
    set_arrival(&archive(late, "2026-01-13"), "2026-01-14 09:30");
    kefu(dir.path())
        .args(["ingest", "exports", "--warehouse", "wh", "-q"])
        .assert()
        .success();

    let out = kefu(dir.path())
        .args(["status", "--warehouse", "wh", "--deliveries", "--json"])
        .args(["--until", "2026-01-20", "--days", "20"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "a missing delivery exits 5: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut got_regions: Vec<String> = report["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    got_regions.sort();
    let mut want = regions.clone();
    want.sort();
    assert_eq!(got_regions, want);
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 3 * 20);
    let of = |status: &str| -> Vec<(String, String)> {
        days.iter()
            .filter(|d| d["status"] == status)
            .map(|d| {
                (
                    d["region"].as_str().unwrap().to_string(),
                    d["day"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        of("missing"),
        vec![(gone.clone(), "2026-01-16".to_string())]
    );
    assert_eq!(of("late"), vec![(late.clone(), "2026-01-13".to_string())]);
    assert_eq!(of("on_time").len(), 58);
    let late_day = days.iter().find(|d| d["status"] == "late").unwrap();
    assert_eq!(late_day["late_by_s"], 3 * 3600 + 30 * 60);
    // Every day's volume is that region's archive: its records, as the ledger counted them.
    assert!(
        days.iter()
            .filter(|d| d["status"] == "on_time")
            .all(|d| d["records"].as_u64().unwrap() > 0)
    );
    assert_eq!(report["missing"], 1);
    // Master data and customer snapshots are ingested but are not deliveries of a day.
    assert!(report["unrecognised_count"].as_u64().unwrap() > 0);

    // The same as text, for people.
    let out = kefu(dir.path())
        .args(["status", "--warehouse", "wh", "--deliveries"])
        .args(["--until", "2026-01-20", "--days", "10"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{gone:<12} 2026-01-16  missing (due 2026-01-17 06:00)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{late:<12} 2026-01-13  late by 3 h 30 min (due 2026-01-14 06:00, arrived 2026-01-14 09:30)"
        )),
        "{text}"
    );
    assert!(text.contains("MISSING"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 delivery past the due time not arrived"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A schedule naming a region that never delivered: each of its days is missing.
    std::fs::write(
        dir.path().join("schedule.toml"),
        format!(
            "regions = ['{}', '{}', '{}', 'lhasa']\n[region.{late}]\ndue = '10:00'\n",
            regions[0], regions[1], regions[2]
        ),
    )
    .unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        &kefu(dir.path())
            .args(["status", "--warehouse", "wh", "--deliveries", "--json"])
            .args([
                "--schedule",
                "schedule.toml",
                "--until",
                "2026-01-20",
                "--days",
                "20",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(report["missing"], 21, "lhasa's 20 days and the removed one");
    assert!(
        report["days"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] != "late"),
        "due at 10:00, 09:30 is on time"
    );

    // A job step that needs the removed day does not run, and says why; one that needs
    // days that all arrived runs.
    std::fs::write(
        dir.path().join("job.toml"),
        r#"
name = "daily"
warehouse = "wh"
output_dir = "out"

[[step]]
type = "query"
name = "complete"
query = "calls_kpis"
params = { from = "2026-01-01", to = "2026-01-15", period = "month" }
requires_deliveries = "2026-01-01 .. 2026-01-15"
[[step.output]]
path = "complete.csv"

[[step]]
type = "query"
name = "waits"
query = "calls_kpis"
params = { from = "2026-01-01", to = "2026-01-20", period = "month" }
requires_deliveries = "yesterday - 4 days .. yesterday"
[[step.output]]
path = "waits.csv"
"#,
    )
    .unwrap();
    let out = kefu(dir.path())
        .args(["run", "job.toml", "--date", "2026-01-21"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains(&format!(
            "required deliveries have not arrived: {gone} 2026-01-16"
        )),
        "{all}"
    );
    assert!(dir.path().join("out/complete.csv").is_file());
    assert!(!dir.path().join("out/waits.csv").exists());

    // The job's own schedule can stop expecting the office: then the step runs.
    let job = std::fs::read_to_string(dir.path().join("job.toml")).unwrap();
    std::fs::write(
        dir.path().join("job.toml"),
        job.replace(
            "output_dir = \"out\"\n",
            &format!("output_dir = \"out\"\n\n[deliveries]\nregion.{gone}.expected = false\n"),
        ),
    )
    .unwrap();
    kefu(dir.path())
        .args(["run", "job.toml", "--date", "2026-01-21"])
        .assert()
        .success();
    assert!(dir.path().join("out/waits.csv").is_file());

    // The server shows the last seven data days (up to yesterday, long after these
    // exports): every region's are missing, in /metrics and for the console.
    const ANALYST: &str = "analyst-token-000000001";
    const OFFICE: &str = "office-token-region-0001";
    let server = crate::serve::Server::start(
        dir.path(),
        &format!(
            "[[token]]\nname = \"analysts\"\ntoken = \"{ANALYST}\"\nrole = \"analyst\"\n\n\
             [[token]]\nname = \"office\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\nregion = \"{gone}\"\n\n\
             [deliveries]\nregions = ['{}', '{}', '{}']\n",
            regions[0], regions[1], regions[2]
        ),
    );
    // Yesterday's archive is due at 06:00 today (Shanghai): before then it is not yet
    // missing, so 6 of the 7 days are; from then on, all 7.
    let missing_now = || {
        let hour = chrono::Utc::now()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%H")
            .to_string();
        if hour.as_str() < "06" { 6 } else { 7 }
    };
    let before = missing_now();
    let (status, _, body) = server.request("GET", "/metrics", &[], "");
    let after = missing_now();
    assert_eq!(status, 200);
    let metrics = String::from_utf8_lossy(&body);
    for region in &regions {
        assert!(
            [before, after].iter().any(|n| metrics.contains(&format!(
                "kefu_deliveries_missing{{region=\"{region}\"}} {n}\n"
            ))),
            "{metrics}"
        );
    }
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    let bearer = |token: &str| format!("Bearer {token}");
    let before = missing_now();
    let (status, _, body) = server.request(
        "GET",
        "/api/v1/deliveries?days=7",
        &[("Authorization", &bearer(ANALYST))],
        "",
    );
    let after = missing_now();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let missing = seen["missing"].as_u64().unwrap();
    assert!(missing == 3 * before || missing == 3 * after, "{seen}");
    assert_eq!(seen["days"].as_array().unwrap().len(), 21);
    // An office sees its own region only.
    let (status, _, body) = server.request(
        "GET",
        "/api/v1/deliveries",
        &[("Authorization", &bearer(OFFICE))],
        "",
    );
    assert_eq!(status, 200);
    let own: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(own["regions"], serde_json::json!([gone]));
    let (status, _, _) = server.request("GET", "/api/v1/deliveries", &[], "");
    assert_eq!(status, 401);
}
