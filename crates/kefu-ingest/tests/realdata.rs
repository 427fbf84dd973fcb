//! Real data: the Baltimore 311 sample through `fixtures/profiles/baltimore_311.toml`.
//! Expected figures were computed independently with Python's csv and zoneinfo modules
//! (see fixtures/README.md), not with kefu.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::TimestampMicrosecondType;
use kefu_ingest::{Collected, Profile, SourceName, convert_csv};
use kefu_model::Table;

use crate::{fixtures_dir, realdata_dir};

#[test]
fn baltimore_311_lands_as_tickets() {
    let Some(dir) = realdata_dir() else {
        eprintln!(
            "skipping: ../shared/realdata/baltimore_311_sample.csv is not beside the checkout"
        );
        return;
    };
    let profile = Profile::load(&fixtures_dir().join("profiles/baltimore_311.toml")).unwrap();
    let file = std::fs::File::open(dir.join("baltimore_311_sample.csv")).unwrap();
    let name = SourceName::file("baltimore_311_sample.csv");
    let mut got = Collected::default();
    let out = convert_csv(file, &name, &profile, None, &mut got).unwrap();
    assert_eq!(out.table, Table::Tickets);
    assert_eq!(out.records, 10_000);
    assert!(got.rejects.is_empty(), "{:?}", got.rejects.first());
    let t: RecordBatch = concat_batches(&Table::Tickets.schema(), &got.batches).unwrap();
    assert_eq!(t.num_rows(), 10_000);

    let ts = |name: &str| {
        t.column_by_name(name)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .clone()
    };
    let text = |name: &str| t.column_by_name(name).unwrap().as_string::<i32>().clone();
    let ids = text("ticket_id");
    let row = |id: &str| ids.iter().position(|v| v == Some(id)).unwrap();

    // 04/12/2018 11:11:26 AM in Baltimore (EDT, UTC−4).
    assert_eq!(
        ts("created_at").value(row("18-00269879")),
        1_523_545_886_000_000
    );
    // A due date in the spring-forward gap, 03/11/2018 02:43:56 AM, read as EST.
    assert_eq!(
        ts("due_at").value(row("17-00762364")),
        1_520_754_236_000_000
    );

    let (created, due, resolved) = (ts("created_at"), ts("due_at"), ts("resolved_at"));
    assert_eq!(resolved.len() - resolved.null_count(), 9_792);
    let (mut with_due, mut on_time) = (0, 0);
    for i in 0..t.num_rows() {
        if resolved.is_valid(i) && due.is_valid(i) {
            with_due += 1;
            if resolved.value(i) <= due.value(i) {
                on_time += 1;
            }
        }
        assert!(created.is_valid(i));
    }
    assert_eq!(
        (with_due, on_time),
        (9_555, 7_988),
        "on-time: 83.6% of closed requests with a due date"
    );

    let count =
        |column: &str, value: &str| text(column).iter().filter(|v| *v == Some(value)).count();
    assert_eq!(count("status", "rejected"), 207 + 8 + 2, "the duplicates");
    assert_eq!(count("channel", "hotline"), 4_995);
    assert_eq!(count("channel", "other"), 2_194 + 19 + 10);
    assert_eq!(count("category", "SW-Rat Rubout Proactive"), 1_696);
    assert_eq!(count("responsible_dept", "Solid Waste"), 4_760);
    assert_eq!(count("region", "baltimore"), 10_000);
    assert_eq!(
        t.column_by_name("customer_id").unwrap().null_count(),
        10_000
    );
}
