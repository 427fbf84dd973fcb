//! `kefu gen` output through the converter: plain output lands whole; messy office
//! exports — each record in several versions and repeats — hold the same records (the
//! newest version of each key is the plain row) and reject exactly the bad rows their
//! manifest lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use kefu_gen::{GenConfig, generate};
use kefu_ingest::source::{expand, for_each_stream};
use kefu_ingest::{Collected, FileOutcome, Profile, SourceName, TextEncoding, convert_csv};
use kefu_model::Table;
use kefu_progress::NoProgress;

/// Converts every source below `dir` through the real source layer (archives streamed),
/// giving each with its path relative to `dir`.
fn convert_all(dir: &Path) -> Vec<(SourceName, FileOutcome, Collected)> {
    let mut out = Vec::new();
    for file in expand(&[dir.display().to_string()]).unwrap() {
        for_each_stream(&file, |name, reader| {
            let mut got = Collected::default();
            let outcome = convert_csv(reader, &name, &Profile::builtin(), None, &mut got)?;
            let relative = SourceName {
                origin: file
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                member: name.member,
            };
            out.push((relative, outcome, got));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    out
}

/// All rows of a table, sorted by id, as one batch.
fn sorted(table: Table, batches: &[RecordBatch]) -> RecordBatch {
    let all = concat_batches(&table.schema(), batches).unwrap();
    let idx = sort_to_indices(all.column(0), None, None).unwrap();
    take_record_batch(&all, &idx).unwrap()
}

/// The newest version of each key (the latest `updated_at` where the table has it; repeats
/// of the other tables are identical), sorted by key.
fn newest(table: Table, batches: &[RecordBatch]) -> RecordBatch {
    use arrow::compute::{SortColumn, lexsort_to_indices};
    let all = concat_batches(&table.schema(), batches).unwrap();
    let mut columns = vec![SortColumn {
        values: all.column(0).clone(),
        options: None,
    }];
    if let Some(updated) = all.column_by_name("updated_at") {
        columns.push(SortColumn {
            values: updated.clone(),
            options: None,
        });
    }
    let idx = lexsort_to_indices(&columns, None).unwrap();
    let sorted = take_record_batch(&all, &idx).unwrap();
    let keys = sorted
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let last: Vec<u32> = (0..keys.len())
        .filter(|&i| i + 1 == keys.len() || keys.value(i) != keys.value(i + 1))
        .map(|i| i as u32)
        .collect();
    take_record_batch(&sorted, &arrow::array::UInt32Array::from(last)).unwrap()
}

#[test]
fn messy_exports_hold_the_plain_records_and_reject_exactly_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenConfig::new(dir.path().join("messy"));
    cfg.customers = 2_000;
    cfg.days = 10;
    cfg.regions = 4;
    cfg.messy = true;
    cfg.bad_row_rate = 0.01;
    generate(&cfg, &NoProgress).unwrap();
    let mut plain_cfg = cfg.clone();
    plain_cfg.messy = false;
    plain_cfg.out = dir.path().join("plain");
    generate(&plain_cfg, &NoProgress).unwrap();

    // Plain output: every record lands.
    let mut plain: BTreeMap<Table, Vec<RecordBatch>> = BTreeMap::new();
    for (name, out, got) in convert_all(&plain_cfg.out) {
        assert!(got.rejects.is_empty(), "{name}: {:?}", got.rejects.first());
        assert_eq!(out.encoding, TextEncoding::Utf8);
        plain.entry(out.table).or_default().extend(got.batches);
    }

    // Messy output: the same rows, and the manifest's bad rows rejected.
    let mut messy: BTreeMap<Table, Vec<RecordBatch>> = BTreeMap::new();
    let mut rejected: BTreeSet<(String, Option<String>, u64, String)> = BTreeSet::new();
    let mut encodings = BTreeSet::new();
    let mut records = 0;
    let mut landed_plus_rejected = 0;
    for (name, out, got) in convert_all(&cfg.out) {
        encodings.insert(out.encoding.name());
        records += out.records;
        landed_plus_rejected += out.rows + out.rejected;
        assert_eq!(out.rejected, got.rejects.len() as u64);
        for r in &got.rejects {
            rejected.insert((
                name.origin.clone(),
                name.member.clone(),
                r.line,
                r.reject.reason.code().to_string(),
            ));
        }
        messy.entry(out.table).or_default().extend(got.batches);
    }
    assert_eq!(
        records, landed_plus_rejected,
        "every record lands or is rejected"
    );
    assert_eq!(encodings.len(), 3, "{encodings:?}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.out.join("manifest.json")).unwrap()).unwrap();
    let listed: BTreeSet<(String, Option<String>, u64, String)> =
        crate::manifest_bad_rows(&cfg.out)
            .into_iter()
            .map(|(path, member, line, _, reason)| (path, member, line, reason))
            .collect();
    let missing: Vec<_> = listed.difference(&rejected).take(5).collect();
    let unexpected: Vec<_> = rejected.difference(&listed).take(5).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "listed but not rejected: {missing:#?}\nrejected but not listed: {unexpected:#?}"
    );
    assert!(listed.len() >= 30);
    assert!(manifest["blanked_durations"].as_u64().unwrap() > 0);

    for table in Table::ALL {
        let p = sorted(table, &plain[&table]);
        let m = newest(table, &messy[&table]);
        assert_eq!(p.num_rows(), m.num_rows(), "{table} rows");
        for (i, field) in table.schema().fields().iter().enumerate() {
            assert_eq!(
                p.column(i).as_ref(),
                m.column(i).as_ref(),
                "{table}.{} differs between plain and messy",
                field.name()
            );
        }
    }
    // Chinese text survives GBK: descriptions hold Chinese.
    let tickets = newest(Table::Tickets, &messy[&Table::Tickets]);
    let descriptions = tickets
        .column_by_name("description")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(descriptions.iter().flatten().any(|d| d.contains("客户")));
    assert!(
        descriptions.iter().flatten().any(|d| d.contains('\n')),
        "quoted line breaks kept"
    );
}
