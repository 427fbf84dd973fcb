//! Nothing lost without saying so: a stray quote costs its own line only, rejects keep
//! the line as the source wrote it, repeated keys are counted, contradictory records and
//! far-away dates are rejected with their reason.

use kefu_ingest::{Collected, FileOutcome, Profile, SourceName, convert_csv};

const CALLS_HEADER: &str = "call_id,region,branch_id,queue,direction,channel,ivr_entered_at,queued_at,answered_at,ended_at,outcome";

fn call(id: &str) -> String {
    format!(
        "{id},beijing,beijing-cc,billing,inbound,hotline,2026-03-02 09:00:00,2026-03-02 09:00:10,2026-03-02 09:00:30,2026-03-02 09:03:00,answered"
    )
}

fn convert_with(text: &str, profile: &Profile) -> (FileOutcome, Collected) {
    let mut sink = Collected::default();
    let outcome = convert_csv(
        text.as_bytes(),
        &SourceName::file("calls.csv"),
        profile,
        None,
        &mut sink,
    )
    .unwrap();
    assert_eq!(
        outcome.records,
        outcome.rows + outcome.rejected + outcome.filtered,
        "every record is a row, a reject or filtered"
    );
    (outcome, sink)
}

fn convert(text: &str) -> (FileOutcome, Collected) {
    convert_with(text, &Profile::builtin())
}

fn ids(sink: &Collected) -> Vec<String> {
    use arrow::array::AsArray;
    sink.batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_stray_quote_costs_its_own_line_only() {
    // Line 3 opens a quote it never closes; without recovery it would swallow lines 4-6.
    let lines = [
        CALLS_HEADER.to_string(),
        call("C1"),
        call("C2").replace("billing", "\"billing"),
        call("C3"),
        call("C4"),
        call("C5"),
    ];
    let (outcome, sink) = convert(&(lines.join("\n") + "\n"));
    assert_eq!((outcome.records, outcome.rows, outcome.rejected), (5, 4, 1));
    assert_eq!(ids(&sink), ["C1", "C3", "C4", "C5"]);
    let r = &sink.rejects[0];
    assert_eq!(r.line, 3);
    assert_eq!(r.reject.reason.code(), "wrong_column_count");
    assert_eq!(r.raw, lines[2], "the line as the source wrote it");
}

#[test]
fn a_stray_quote_in_a_long_file_is_given_up_after_a_thousand_lines() {
    // No other quote follows: the parser would read to the end of the file (or refuse
    // it at 16 MiB). After 1,000 lines the quote is taken as never closed.
    let mut lines = vec![CALLS_HEADER.to_string()];
    for i in 0..3000 {
        let mut line = call(&format!("C{i}"));
        if i == 10 {
            line = line.replace("beijing-cc", "\"beijing-cc");
        }
        lines.push(line);
    }
    let (outcome, sink) = convert(&(lines.join("\r\n") + "\r\n"));
    assert_eq!(
        (outcome.records, outcome.rows, outcome.rejected),
        (3000, 2999, 1)
    );
    assert_eq!(sink.rejects[0].line, 12);
    assert_eq!(sink.rejects[0].raw, lines[11]);
    assert_eq!(ids(&sink).len(), 2999);
}

#[test]
fn a_quoted_note_over_several_lines_stays_one_record() {
    let text = format!(
        "{CALLS_HEADER},category\n{},\"note\nover two lines\"\n{},plain\n",
        call("C1"),
        call("C2")
    );
    let (outcome, sink) = convert(&text);
    assert_eq!(
        (outcome.rows, outcome.rejected),
        (2, 0),
        "{:?}",
        sink.rejects
    );
}

#[test]
fn rejects_keep_the_line_as_the_source_wrote_it() {
    // Tab-separated, with a quoted field: the raw record is the line, not a CSV re-join.
    let tsv = format!(
        "{}\n{}\n{}\n",
        CALLS_HEADER.replace(',', "\t"),
        call("C1").replace(',', "\t").replace("answered", "hung up"),
        call("C2")
            .replace(',', "\t")
            .replace("billing", "\"bill\ting\"")
            .replace("answered", "??"),
    );
    let (outcome, sink) = convert(&tsv);
    assert_eq!((outcome.rows, outcome.rejected), (0, 2));
    let raw: Vec<&str> = sink.rejects.iter().map(|r| r.raw.as_str()).collect();
    let lines: Vec<&str> = tsv.lines().skip(1).collect();
    assert_eq!(raw, lines);
}

#[test]
fn keys_repeated_within_a_source_are_counted() {
    let text = [
        CALLS_HEADER.to_string(),
        call("C1"),
        call("C2"),
        call("C1"),
        call("C1"),
    ]
    .join("\n");
    let (outcome, _) = convert(&text);
    assert_eq!((outcome.rows, outcome.duplicate_keys), (4, 2));
}

#[test]
fn an_abandoned_call_with_an_answer_time_is_contradictory() {
    let text = format!(
        "{CALLS_HEADER}\n{}\n{}\n",
        call("C1").replace("answered", "abandoned"),
        call("C2")
            .replace("2026-03-02 09:00:30", "")
            .replace("answered", "abandoned")
    );
    let (outcome, sink) = convert(&text);
    assert_eq!((outcome.rows, outcome.rejected), (1, 1));
    assert_eq!(sink.rejects[0].reject.reason.code(), "contradictory");
    assert_eq!(
        sink.rejects[0].reject.column.as_deref(),
        Some("answered_at")
    );
}

#[test]
fn dates_far_from_the_events_are_rejected_not_partitioned() {
    let text = format!(
        "{CALLS_HEADER}\n{}\n{}\n{}\n",
        call("C1"),
        // A placeholder, and a typo forty years ahead.
        call("C2").replace("2026-03-02", "1900-01-01"),
        call("C3").replace("2026-03-02", "2066-03-02"),
    );
    let (outcome, sink) = convert(&text);
    assert_eq!((outcome.rows, outcome.rejected), (1, 2));
    assert!(
        sink.rejects
            .iter()
            .all(|r| r.reject.reason.code() == "implausible_timestamp")
    );
    assert!(
        sink.rejects[1]
            .reject
            .detail
            .contains("ivr_entered_at 2066-03-02 is outside"),
        "{}",
        sink.rejects[1].reject.detail
    );
    // A profile narrows the window to what its exports hold.
    let profile =
        Profile::from_toml("event_time_window = ['2026-03-01', '2026-03-31']", "p").unwrap();
    let text = format!(
        "{CALLS_HEADER}\n{}\n{}\n",
        call("C1"),
        call("C2").replace("2026-03-02", "2025-03-02")
    );
    let (outcome, sink) = convert_with(&text, &profile);
    assert_eq!((outcome.rows, outcome.rejected), (1, 1));
    assert!(
        sink.rejects[0]
            .reject
            .detail
            .contains("outside the plausible window"),
        "{}",
        sink.rejects[0].reject.detail
    );
}
