//! `kefu check` through the real binary.

use predicates::prelude::*;

use crate::common::kefu;

#[test]
fn messy_exports_report_exactly_the_manifest_rejects() {
    let dir = tempfile::tempdir().unwrap();
    kefu(dir.path())
        .args([
            "gen",
            "--out",
            "ex",
            "--messy",
            "--customers",
            "800",
            "--days",
            "6",
            "--regions",
            "4",
        ])
        .args(["--bad-row-rate", "0.01", "--quiet"])
        .assert()
        .success();
    let out = kefu(dir.path())
        .args(["check", "ex", "--json"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("records would be rejected"))
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ex/manifest.json")).unwrap())
            .unwrap();
    let bad = manifest["bad_rows"].as_array().unwrap().len() as u64;
    let good: u64 = manifest["records"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let totals = &report["totals"];
    assert!(bad > 0);
    assert_eq!(totals["rejected"].as_u64().unwrap(), bad);
    assert_eq!(totals["rows"].as_u64().unwrap(), good);
    assert_eq!(
        totals["unreadable"].as_u64().unwrap(),
        0,
        "manifest.json is not a data file"
    );
}

#[test]
fn plain_output_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    kefu(dir.path())
        .args([
            "gen",
            "--out",
            "p",
            "--customers",
            "300",
            "--days",
            "5",
            "--quiet",
        ])
        .assert()
        .success();
    kefu(dir.path())
        .args(["check", "p", "--quiet"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("checked 9 sources")
                .and(predicate::str::contains("0 rejected")),
        );
}

#[test]
fn unreadable_sources_and_bad_profiles_have_their_own_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.zip"), b"PK\x03\x04 not really").unwrap();
    kefu(dir.path())
        .args(["check", "broken.zip", "--quiet"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains("UNREADABLE broken.zip"));
    std::fs::write(dir.path().join("p.toml"), "tabel = 'calls'").unwrap();
    kefu(dir.path())
        .args(["check", "broken.zip", "--profile", "p.toml"])
        .assert()
        .code(2)
        .stderr(
            // The profile's file, as given.
            predicate::str::contains("invalid profile 'p.toml'")
                .and(predicate::str::contains("tabel")),
        );
    kefu(dir.path())
        .args(["check", "missing.csv"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("missing.csv"));
}
