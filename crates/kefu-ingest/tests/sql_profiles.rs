//! Profiles whose mapping is SQL, and the quirks of real exports they exist for: a date
//! shared by several times, sentinels meaning "no such event", calls past midnight,
//! fallbacks across columns, composite keys, rows dropped on purpose, clock skew. Expected
//! values are worked out by hand from each small fixture.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::TimestampMicrosecondType;
use kefu_ingest::{Collected, FileOutcome, IngestError, Profile, SourceName, convert_csv};
use kefu_model::Table;

/// A tab-separated hotline log in the layout of the bank example (fixtures/profiles).
const LOG: &str = "\
line\tid\tdate\tentry\tvru_exit\tq_start\tq_exit\tq_time\toutcome\tser_start\tser_exit\tserver
L1\t7\t990110\t8:03:12\t8:03:20\t8:03:20\t8:03:50\t30\tAGENT\t8:03:50\t8:06:00\tDORIT
L2\t7\t990110\t9:00:00\t9:00:05\t0:00:00\t0:00:00\t0\tHANG\t0:00:00\t0:00:00\tNO_SERVER
L1\t8\t990110\t23:59:50\t23:59:58\t23:59:58\t0:00:40\t42\tHANG\t0:00:00\t0:00:00\tNO_SERVER
L1\t9\t990110\t10:00:00\t10:00:01\t9:59:59\t10:00:30\t31\tAGENT\t10:00:30\t10:01:00\tANAT
L1\t10\t990110\t11:00:00\t11:00:04\t0:00:00\t0:00:00\t0\tPHANTOM\t0:00:00\t0:00:00\tNO_SERVER
L2\t8\t990110\t12:00:00\t12:00:03\t12:00:03\t12:00:03\t0\tAGENT\t12:00:03\t12:02:03\tAVI
";

const PROFILE: &str = r#"
table = "calls"
time_zone = "Asia/Jerusalem"
delimiter = "tab"
date_formats = ["%y%m%d"]
ordering_tolerance_s = 2
sql = """
SELECT line || '-' || id AS call_id,
       'bank' AS region, 'bank-cc' AS branch_id, 'ps' AS queue,
       'inbound' AS direction, 'hotline' AS channel,
       nullif(server, 'NO_SERVER') AS agent_id,
       date_time(date, entry) AS ivr_entered_at,
       roll_over_midnight(date_time(date, nullif(q_start, '0:00:00')),
                          date_time(date, entry)) AS queued_at,
       roll_over_midnight(date_time(date, nullif(ser_start, '0:00:00')),
                          date_time(date, entry)) AS answered_at,
       roll_over_midnight(date_time(date, coalesce(nullif(ser_exit, '0:00:00'),
                                                   nullif(q_exit, '0:00:00'), vru_exit)),
                          date_time(date, entry)) AS ended_at,
       CASE WHEN q_start <> '0:00:00' THEN q_time END AS wait_s,
       CASE WHEN outcome = 'AGENT' THEN 'answered'
            WHEN q_start <> '0:00:00' THEN 'abandoned'
            ELSE 'ivr_self_service' END AS outcome
FROM source
WHERE outcome <> 'PHANTOM'
"""
"#;

fn convert(
    text: &str,
    profile: &Profile,
    name: &str,
) -> Result<(FileOutcome, Collected), IngestError> {
    let mut sink = Collected::default();
    let outcome = convert_csv(
        text.as_bytes(),
        &SourceName::file(name),
        profile,
        None,
        &mut sink,
    )?;
    Ok((outcome, sink))
}

fn rows(sink: &Collected, table: Table) -> RecordBatch {
    concat_batches(&table.schema(), &sink.batches).unwrap()
}

fn text(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let c = batch.column_by_name(column).unwrap().as_string::<i32>();
    (0..c.len())
        .map(|i| c.is_valid(i).then(|| c.value(i).to_string()))
        .collect()
}

/// Instants as RFC 3339 UTC text.
fn instants(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let c = batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    (0..c.len())
        .map(|i| {
            c.is_valid(i).then(|| {
                chrono::DateTime::from_timestamp_micros(c.value(i))
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            })
        })
        .collect()
}

fn ints(batch: &RecordBatch, column: &str) -> Vec<Option<i32>> {
    let c = batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<arrow::datatypes::Int32Type>();
    (0..c.len())
        .map(|i| c.is_valid(i).then(|| c.value(i)))
        .collect()
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values
        .iter()
        .map(|v| (!v.is_empty()).then(|| v.to_string()))
        .collect()
}

#[test]
fn a_sql_profile_maps_a_hotline_log_with_its_quirks() {
    let profile = Profile::from_toml(PROFILE, "bank").unwrap();
    let (outcome, sink) = convert(LOG, &profile, "log.tsv").unwrap();
    assert_eq!(
        (
            outcome.records,
            outcome.rows,
            outcome.rejected,
            outcome.filtered
        ),
        (6, 5, 0, 1),
        "{:?}",
        sink.rejects
    );
    let b = rows(&sink, Table::Calls);
    // The id is unique only with the line: L1-7 and L2-7 are two calls.
    assert_eq!(
        text(&b, "call_id"),
        some(&["L1-7", "L2-7", "L1-8", "L1-9", "L2-8"])
    );
    // Israel is UTC+2 in January.
    assert_eq!(
        instants(&b, "ivr_entered_at"),
        some(&[
            "1999-01-10T06:03:12Z",
            "1999-01-10T07:00:00Z",
            "1999-01-10T21:59:50Z",
            "1999-01-10T08:00:00Z",
            "1999-01-10T10:00:00Z",
        ])
    );
    // 0:00:00 is no queue (L2-7), not midnight; L1-9's queue start one second before
    // its entry (clock skew, within 2 s) is moved up to the entry.
    assert_eq!(
        instants(&b, "queued_at"),
        some(&[
            "1999-01-10T06:03:20Z",
            "",
            "1999-01-10T21:59:58Z",
            "1999-01-10T08:00:00Z",
            "1999-01-10T10:00:03Z",
        ])
    );
    // The end falls back from service to queue to IVR; L1-8 ended past midnight, on the
    // 11th, although the log gives the 10th.
    assert_eq!(
        instants(&b, "ended_at"),
        some(&[
            "1999-01-10T06:06:00Z",
            "1999-01-10T07:00:05Z",
            "1999-01-10T22:00:40Z",
            "1999-01-10T08:01:00Z",
            "1999-01-10T10:02:03Z",
        ])
    );
    // HANG is an IVR call or an abandon by whether it queued.
    assert_eq!(
        text(&b, "outcome"),
        some(&[
            "answered",
            "ivr_self_service",
            "abandoned",
            "answered",
            "answered"
        ])
    );
    // q_time 0 is null without a queue, and 0 s for a call answered at once.
    assert_eq!(
        ints(&b, "wait_s"),
        vec![Some(30), None, Some(42), Some(31), Some(0)]
    );
    assert_eq!(
        text(&b, "agent_id"),
        some(&["DORIT", "", "", "ANAT", "AVI"])
    );
    // Talk is derived from the times as for any source: answered to ended.
    assert_eq!(
        ints(&b, "talk_s"),
        vec![Some(130), None, None, Some(30), Some(120)]
    );
}

#[test]
fn past_midnight_is_read_on_the_next_day() {
    // 23:59:50 + ... 0:00:40 on the next day: the entry at 21:59:50Z, the end at 22:00:40Z.
    let profile = Profile::from_toml(PROFILE, "bank").unwrap();
    let (_, sink) = convert(LOG, &profile, "log.tsv").unwrap();
    let b = rows(&sink, Table::Calls);
    let ended = instants(&b, "ended_at")[2].clone().unwrap();
    let entered = instants(&b, "ivr_entered_at")[2].clone().unwrap();
    assert!(ended > entered, "{entered} {ended}");
}

#[test]
fn clock_skew_beyond_the_tolerance_is_rejected_with_its_size() {
    let strict = PROFILE.replace("ordering_tolerance_s = 2", "ordering_tolerance_s = 0");
    let profile = Profile::from_toml(&strict, "bank").unwrap();
    let (outcome, sink) = convert(LOG, &profile, "log.tsv").unwrap();
    assert_eq!(
        (outcome.rows, outcome.rejected, outcome.filtered),
        (4, 1, 1)
    );
    let r = &sink.rejects[0];
    assert_eq!(r.line, 5);
    assert_eq!(r.reject.reason.code(), "end_before_start");
    assert_eq!(r.reject.detail, "queued_at is 1 s before ivr_entered_at");
}

#[test]
fn a_value_a_helper_cannot_read_rejects_only_its_record() {
    let log = LOG.replace("10:00:00\t10:00:01", "10:61:00\t10:00:01");
    let profile = Profile::from_toml(PROFILE, "bank").unwrap();
    let (outcome, sink) = convert(&log, &profile, "log.tsv").unwrap();
    assert_eq!(
        (
            outcome.records,
            outcome.rows,
            outcome.rejected,
            outcome.filtered
        ),
        (6, 4, 1, 1)
    );
    let r = &sink.rejects[0];
    assert_eq!(r.line, 5);
    assert_eq!(r.reject.reason.code(), "unparseable_timestamp");
    assert!(
        r.reject.detail.contains("'990110' '10:61:00'"),
        "{}",
        r.reject.detail
    );
    // The raw record is the source's, not the transform's output.
    assert!(
        r.raw.contains("L1") && r.raw.contains("10:61:00"),
        "{}",
        r.raw
    );
}

#[test]
fn records_with_too_few_fields_are_rejected_before_the_transform() {
    let log = format!("{LOG}L3\t1\t990110\n");
    let profile = Profile::from_toml(PROFILE, "bank").unwrap();
    let (outcome, sink) = convert(&log, &profile, "log.tsv").unwrap();
    assert_eq!((outcome.records, outcome.rows, outcome.rejected), (7, 5, 1));
    assert_eq!(sink.rejects[0].reject.reason.code(), "wrong_column_count");
    assert_eq!(sink.rejects[0].line, 8);
}

fn profile_error(sql: &str) -> String {
    let text = format!("table = \"calls\"\ndelimiter = \"tab\"\nsql = \"\"\"\n{sql}\n\"\"\"\n");
    match Profile::from_toml(&text, "bank.toml") {
        Err(e) => e.to_string(),
        Ok(profile) => convert(LOG, &profile, "log.tsv").unwrap_err().to_string(),
    }
}

#[test]
fn mistakes_in_the_sql_name_the_profile_and_the_place() {
    // Syntax: found when the profile is read, with line and column.
    let e = profile_error("SELECT line AS call_id\nFROM source WHERE line = = 'x'");
    assert!(
        e.contains("bank.toml") && e.contains("found: = at Line: 2, Column: 26"),
        "{e}"
    );
    // A column the source lacks: the profile, the source and the position.
    let e = profile_error("SELECT lin AS call_id FROM source");
    assert!(
        e.contains("log.tsv") && e.contains("bank.toml") && e.contains("line 1 column 8"),
        "{e}"
    );
    assert!(e.contains("lin"), "{e}");
    // An output that is no column of the table.
    let e = profile_error("SELECT line AS caller FROM source");
    assert!(
        e.contains("'caller', which is not a column of calls"),
        "{e}"
    );
    // Required columns the output leaves out.
    let e = profile_error("SELECT line AS call_id FROM source");
    assert!(
        e.contains("required calls columns") && e.contains("region"),
        "{e}"
    );
    // Anything but one row per record.
    let e = profile_error("SELECT line AS call_id FROM source GROUP BY line");
    assert!(e.contains("one SELECT … FROM source"), "{e}");
    // A profile with sql names its table.
    let e = Profile::from_toml("sql = 'SELECT 1 AS call_id FROM source'", "p.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("must name its table"), "{e}");
}

#[test]
fn a_declarative_profile_reads_a_null_token_in_the_time_half_as_null() {
    // A split timestamp whose time is the sentinel 0:00:00: no queue, not midnight (it was
    // read as midnight and the call rejected as "queued before entry").
    let profile = Profile::from_toml(
        r#"
        table = "calls"
        [column_null_values]
        queued_at = ["0:00:00"]
        "#,
        "p",
    )
    .unwrap();
    let csv = "call_id,region,branch_id,queue,direction,channel,来电日期,来电时间,排队日期,排队时间,ended_at,outcome\n\
               C1,r,r-cc,q,inbound,hotline,2026-01-05,9:00:00,2026-01-05,0:00:00,2026-01-05 09:01:00,ivr_self_service\n\
               C2,r,r-cc,q,inbound,hotline,2026-01-05,9:00:00,2026-01-05,9:00:10,2026-01-05 09:01:00,abandoned\n";
    let (outcome, sink) = convert(csv, &profile, "calls.csv").unwrap();
    assert_eq!(
        (outcome.rows, outcome.rejected),
        (2, 0),
        "{:?}",
        sink.rejects
    );
    let b = rows(&sink, Table::Calls);
    assert_eq!(
        instants(&b, "queued_at"),
        some(&["", "2026-01-05T01:00:10Z"])
    );
    // An empty time still means midnight of the date (date-only exports).
    let csv = csv.replace("2026-01-05,9:00:10", "2026-01-06,");
    let (_, sink) = convert(&csv, &profile, "calls.csv").unwrap();
    assert_eq!(
        instants(&rows(&sink, Table::Calls), "queued_at"),
        some(&["", "2026-01-05T16:00:00Z"])
    );
}

#[test]
fn the_bank_example_reads_without_rejects() {
    let dir = crate::fixtures_dir().join("profiles");
    let profile = Profile::load(&dir.join("bank_hotline.toml")).unwrap();
    let text = std::fs::read_to_string(dir.join("bank_hotline.tsv")).unwrap();
    let (outcome, sink) = convert(&text, &profile, "bank_hotline.tsv").unwrap();
    // 2,600 records: 52 PHANTOM test calls filtered, every other one a row.
    assert_eq!(
        (
            outcome.records,
            outcome.rows,
            outcome.rejected,
            outcome.filtered
        ),
        (2600, 2548, 0, 52),
        "{:?}",
        sink.rejects.first()
    );
    let phantoms = text.lines().filter(|l| l.contains("\tPHANTOM\t")).count();
    assert_eq!(phantoms, 52);
}

#[test]
fn a_sql_profile_maps_json_lines_as_it_maps_text() {
    // The single-threaded readers (JSON Lines, workbooks) map records in groups.
    let profile = Profile::from_toml(PROFILE, "bank").unwrap();
    let log = LOG.replace("10:00:00\t10:00:01", "10:61:00\t10:00:01");
    let mut lines = log.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let jsonl: String = lines
        .map(|l| {
            let object: serde_json::Map<String, serde_json::Value> = header
                .iter()
                .zip(l.split('\t'))
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            serde_json::Value::Object(object).to_string() + "\n"
        })
        .collect();
    let (text, text_sink) = convert(&log, &profile, "log.tsv").unwrap();
    let (json, json_sink) = convert(&jsonl, &profile, "log.jsonl").unwrap();
    assert_eq!(
        (json.records, json.rows, json.rejected, json.filtered),
        (text.records, text.rows, text.rejected, text.filtered)
    );
    assert_eq!((json.rows, json.rejected, json.filtered), (4, 1, 1));
    assert_eq!(
        rows(&json_sink, Table::Calls),
        rows(&text_sink, Table::Calls)
    );
    let reject = &json_sink.rejects[0];
    assert_eq!(reject.reject.reason.code(), "unparseable_timestamp");
    assert!(reject.raw.contains("10:61:00"), "{}", reject.raw);
}
