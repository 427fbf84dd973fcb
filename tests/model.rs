//! `kefu model` and the help texts.

use predicates::prelude::*;

use crate::common::kefu;

#[test]
fn model_documents_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = kefu(dir.path())
        .arg("model")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for table in ["calls", "tickets", "callbacks", "visits", "customers"] {
        assert!(text.contains(&format!("## `{table}`")), "{table} missing");
    }
    assert!(text.contains("| `wait_s` | Int32 (seconds) | yes | 等待时长 |"));
    assert!(text.contains("| `dissatisfied` | 不满意 |"));
}

#[test]
fn model_prints_one_table() {
    let dir = tempfile::tempdir().unwrap();
    kefu(dir.path())
        .args(["model", "--table", "tickets"])
        .assert()
        .success()
        .stdout(predicate::str::contains("## `tickets` (工单)"))
        .stdout(predicate::str::contains("## `calls`").not())
        .stdout(predicate::str::contains("### `ticket_status`").not());
}

#[test]
fn help_teaches_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    kefu(dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("gen"))
        .stdout(predicate::str::contains("model"));
    kefu(dir.path())
        .args(["gen", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--messy"))
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("KEFU_SEED"));
}

#[test]
fn unknown_table_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    kefu(dir.path())
        .args(["model", "--table", "orders"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("unknown table 'orders'"));
}
