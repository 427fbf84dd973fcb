//! Ingest into a warehouse: what lands, what is rejected, exactly once, and that a failed
//! batch leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use kefu_gen::{GenConfig, generate};
use kefu_ingest::ingest::{IngestOptions, ingest};
use kefu_ingest::source::{expand, for_each_stream};
use kefu_ingest::{Collected, IngestError, Profile, convert_csv};
use kefu_model::Table;
use kefu_progress::NoProgress;
use kefu_storage::{Warehouse, WarehouseLocation};

fn open(dir: &Path) -> Warehouse {
    Warehouse::open(&WarehouseLocation::parse_in(&dir.display().to_string(), dir).unwrap()).unwrap()
}

/// Every row of `<warehouse>/<table>/`, read back from Parquet.
pub fn read_table(warehouse: &Path, table: &str) -> Vec<RecordBatch> {
    kefu_storage::parquet::read_local(&warehouse.join(table)).unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn sorted(table: Table, batches: &[RecordBatch]) -> RecordBatch {
    let all = concat_batches(&table.schema(), batches).unwrap();
    let idx = sort_to_indices(all.column(0), None, None).unwrap();
    take_record_batch(&all, &idx).unwrap()
}

fn strings<'a>(batch: &'a RecordBatch, column: &str) -> &'a StringArray {
    batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
}

fn generated(dir: &Path, messy: bool, bad_row_rate: f64) -> PathBuf {
    let mut cfg = GenConfig::new(dir.join(if messy { "messy" } else { "plain" }));
    cfg.customers = 2_000;
    cfg.days = 40;
    cfg.regions = 4;
    cfg.messy = messy;
    cfg.bad_row_rate = bad_row_rate;
    generate(&cfg, &NoProgress).unwrap();
    cfg.out
}

/// Total rows of every table in a warehouse, by table.
fn counts(warehouse: &Path) -> BTreeMap<String, usize> {
    Table::ALL
        .iter()
        .map(|t| t.name().to_string())
        .chain(["_rejects".to_string()])
        .map(|t| {
            let n = rows(&read_table(warehouse, &t));
            (t, n)
        })
        .collect()
}

#[test]
fn messy_exports_land_the_plain_rows_and_reject_exactly_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let messy = generated(dir.path(), true, 0.01);
    let plain = generated(dir.path(), false, 0.0);
    let wh_dir = dir.path().join("wh");
    let warehouse = open(&wh_dir);

    let report = ingest(
        &[messy.display().to_string()],
        &warehouse,
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let batch = report.batch.clone().expect("committed");
    let c = report.counts;
    assert_eq!(c.records, c.landed + c.rejected + c.duplicates);
    assert_eq!(
        (
            batch.records,
            batch.landed,
            batch.rejected,
            batch.duplicates
        ),
        (c.records, c.landed, c.rejected, c.duplicates)
    );
    for s in &batch.sources {
        assert_eq!(
            s.records,
            s.landed + s.rejected + s.duplicates,
            "{}",
            s.name
        );
    }
    assert_eq!(c.duplicates, 0, "generated ids are unique");

    // Rejects: exactly the manifest's bad rows, by file, member, line, column and reason.
    type Key = crate::BadRow;
    let listed: BTreeSet<Key> = crate::manifest_bad_rows(&messy);
    let rejects = read_table(&wh_dir, "_rejects");
    let mut landed_rejects: BTreeSet<Key> = BTreeSet::new();
    for b in &rejects {
        let lines = b
            .column_by_name("line")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            let source = strings(b, "source").value(i);
            let relative = Path::new(source)
                .strip_prefix(&messy)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let member = strings(b, "member");
            let column = strings(b, "column");
            assert!(!strings(b, "raw").value(i).is_empty(), "raw record kept");
            landed_rejects.insert((
                relative,
                member.is_valid(i).then(|| member.value(i).to_string()),
                lines.value(i) as u64,
                column.is_valid(i).then(|| column.value(i).to_string()),
                strings(b, "reason").value(i).to_string(),
            ));
        }
    }
    let missing: Vec<_> = listed.difference(&landed_rejects).take(5).collect();
    let unexpected: Vec<_> = landed_rejects.difference(&listed).take(5).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "listed but not rejected: {missing:#?}\nrejected but not listed: {unexpected:#?}"
    );
    assert_eq!(rows(&rejects) as u64, c.rejected);
    assert!(listed.len() >= 50, "{} bad rows", listed.len());

    // Rows: exactly the plain output's, column for column.
    for table in Table::ALL {
        let mut want = Collected::default();
        for file in expand(&[plain
            .join(format!("{}.csv", table.name()))
            .display()
            .to_string()])
        .unwrap()
        {
            for_each_stream(&file, |name, reader| {
                convert_csv(reader, &name, &Profile::builtin(), None, &mut want).map(|_| ())
            })
            .unwrap();
        }
        let want = sorted(table, &want.batches);
        let got = sorted(table, &read_table(&wh_dir, table.name()));
        assert_eq!(want.num_rows(), got.num_rows(), "{table} rows");
        assert_eq!(
            batch.tables.get(table.name()).copied(),
            Some(got.num_rows() as u64)
        );
        for (i, field) in table.schema().fields().iter().enumerate() {
            assert_eq!(
                want.column(i).as_ref(),
                got.column(i).as_ref(),
                "{table}.{} differs",
                field.name()
            );
        }
    }
    // Chinese text from GBK exports survives into Parquet.
    let tickets = sorted(Table::Tickets, &read_table(&wh_dir, "tickets"));
    assert!(
        strings(&tickets, "description")
            .iter()
            .flatten()
            .any(|d| d.contains("客户"))
    );
    // Event tables are partitioned by local month.
    assert!(wh_dir.join("calls/month=2026-01").is_dir());
    assert!(wh_dir.join("calls/month=2026-02").is_dir());

    // Again: nothing new, nothing changes.
    let before = counts(&wh_dir);
    let again = ingest(
        &[messy.display().to_string()],
        &warehouse,
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(again.batch.is_none());
    assert_eq!(again.skipped.len(), batch.sources.len());
    assert!(again.skipped.iter().all(|s| s.committed_in == Some(1)));
    // A renamed copy of an archive is recognised by its content.
    let archive = expand(&[messy.display().to_string()])
        .unwrap()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "zip"))
        .unwrap();
    let copy = dir.path().join("renamed_copy.zip");
    std::fs::copy(&archive, &copy).unwrap();
    let renamed = ingest(
        &[copy.display().to_string()],
        &warehouse,
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(renamed.batch.is_none());
    assert_eq!(counts(&wh_dir), before);
    assert!(
        !wh_dir.join("_kefu/staging").exists()
            || std::fs::read_dir(wh_dir.join("_kefu/staging"))
                .unwrap()
                .next()
                .is_none(),
        "no staged files left"
    );
}

#[test]
fn duplicate_ids_within_a_batch_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let header = "customer_id,region,branch_id,segment,tier,opened_at,closed_at,close_reason\n";
    let row =
        |id: &str| format!("{id},beijing,beijing-01,household,basic,2020-01-01T00:00:00Z,,\n");
    std::fs::write(
        dir.path().join("customers_a.csv"),
        format!("{header}{}{}{}", row("CU1"), row("CU2"), row("CU1")),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("customers_b.csv"),
        format!("{header}{}{}", row("CU2"), row("CU3")),
    )
    .unwrap();
    let wh_dir = dir.path().join("wh");
    let report = ingest(
        &[
            dir.path().join("customers_a.csv").display().to_string(),
            dir.path().join("customers_b.csv").display().to_string(),
        ],
        &open(&wh_dir),
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let c = report.counts;
    assert_eq!(
        (c.records, c.landed, c.rejected, c.duplicates),
        (5, 3, 0, 2)
    );
    let customers = sorted(Table::Customers, &read_table(&wh_dir, "customers"));
    let ids: Vec<&str> = strings(&customers, "customer_id")
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids, ["CU1", "CU2", "CU3"]);
    let rejects = read_table(&wh_dir, "_rejects");
    let reasons: Vec<&str> = rejects
        .iter()
        .flat_map(|b| strings(b, "reason").iter().flatten().collect::<Vec<_>>())
        .collect();
    assert_eq!(reasons, ["duplicate_id", "duplicate_id"]);
}

#[test]
fn duplicates_are_found_when_the_id_index_spills_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let plain = generated(dir.path(), false, 0.0);
    let calls = std::fs::read_to_string(plain.join("calls.csv")).unwrap();
    let (header, body) = calls.split_once('\n').unwrap();
    let lines: Vec<&str> = body.lines().collect();
    // A second export repeating every third call, plus calls of its own: different
    // bytes, so it is not skipped as a copy.
    let repeated: Vec<&str> = lines.iter().copied().step_by(3).collect();
    let fresh: Vec<String> = (0..500)
        .map(|i| lines[i].replacen(',', &format!("-NEW{i},"), 1))
        .collect();
    let mut second = format!("{header}\n");
    for (i, row) in repeated.iter().enumerate() {
        second.push_str(row);
        second.push('\n');
        if let Some(f) = fresh.get(i) {
            second.push_str(f);
            second.push('\n');
        }
    }
    assert!(lines.len() > 5_000, "enough rows to spill: {}", lines.len());
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    std::fs::write(again.join("calls.csv"), second).unwrap();

    let wh_dir = dir.path().join("wh");
    let report = ingest(
        &[
            plain.join("calls.csv").display().to_string(),
            again.join("calls.csv").display().to_string(),
        ],
        &open(&wh_dir),
        &IngestOptions {
            // Spill every 500 ids: the test's calls make many runs, merged.
            ids_in_memory: 500,
            ..IngestOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    let c = report.counts;
    let records = lines.len() + repeated.len() + fresh.len().min(repeated.len());
    assert_eq!(
        (c.records, c.landed, c.rejected, c.duplicates),
        (
            records as u64,
            (records - repeated.len()) as u64,
            0,
            repeated.len() as u64
        )
    );
    assert_eq!(
        rows(&read_table(&wh_dir, "calls")),
        records - repeated.len()
    );
}

fn assert_untouched(wh_dir: &Path) {
    assert_eq!(counts(wh_dir).values().sum::<usize>(), 0, "no rows visible");
    let ledger = wh_dir.join("_kefu/ledger");
    assert!(
        !ledger.exists() || std::fs::read_dir(&ledger).unwrap().next().is_none(),
        "no ledger record"
    );
    let staging = wh_dir.join("_kefu/staging");
    assert!(
        !staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none(),
        "no staged files left"
    );
}

#[test]
fn a_batch_over_the_reject_threshold_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let messy = generated(dir.path(), true, 0.05);
    let wh_dir = dir.path().join("wh");
    let err = ingest(
        &[messy.display().to_string()],
        &open(&wh_dir),
        &IngestOptions {
            max_reject_ratio: 0.01,
            ..IngestOptions::default()
        },
        &NoProgress,
    )
    .unwrap_err();
    match &err {
        IngestError::TooManyRejects {
            records, rejected, ..
        } => assert!(*rejected as f64 / *records as f64 > 0.01),
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .contains("nothing of this batch was committed")
    );
    assert_untouched(&wh_dir);
}

#[test]
fn a_batch_with_an_unreadable_source_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("customers.csv");
    std::fs::write(
        &good,
        "customer_id,region,branch_id,segment,tier,opened_at,closed_at,close_reason\n\
         CU1,beijing,beijing-01,household,basic,2020-01-01T00:00:00Z,,\n",
    )
    .unwrap();
    let bad = dir.path().join("binary_customers.csv");
    std::fs::write(&bad, [0x89, b'P', b'N', b'G', 0, 0, 0, 13]).unwrap();
    let wh_dir = dir.path().join("wh");
    let warehouse = open(&wh_dir);
    let err = ingest(
        &[good.display().to_string(), bad.display().to_string()],
        &warehouse,
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("binary_customers.csv"), "{err}");
    assert_untouched(&wh_dir);
    // Without the bad file the batch commits.
    let ok = ingest(
        &[good.display().to_string()],
        &warehouse,
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(ok.counts.landed, 1);
}

#[test]
fn json_lines_land_the_same_rows_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenConfig::new(dir.path().join("csv"));
    cfg.customers = 1_000;
    cfg.days = 10;
    generate(&cfg, &NoProgress).unwrap();
    let mut jsonl = cfg.clone();
    jsonl.out = dir.path().join("jsonl");
    jsonl.format = kefu_gen::OutputFormat::Jsonl;
    generate(&jsonl, &NoProgress).unwrap();
    // A broken line among the JSON records is a reject, not an error.
    let calls = jsonl.out.join("calls.jsonl");
    let mut text = std::fs::read_to_string(&calls).unwrap();
    text.push_str("{\"call_id\": \"CL-broken\", \n");
    std::fs::write(&calls, text).unwrap();

    let mut landed = Vec::new();
    for source in [&cfg.out, &jsonl.out] {
        let wh = dir.path().join(format!(
            "wh-{}",
            source.file_name().unwrap().to_string_lossy()
        ));
        let report = ingest(
            &[source.display().to_string()],
            &open(&wh),
            &IngestOptions::default(),
            &NoProgress,
        )
        .unwrap();
        landed.push((report.counts, wh));
    }
    assert_eq!(landed[0].0.landed, landed[1].0.landed);
    assert_eq!(landed[1].0.rejected, 1);
    for table in Table::ALL {
        let csv = sorted(table, &read_table(&landed[0].1, table.name()));
        let json = sorted(table, &read_table(&landed[1].1, table.name()));
        assert_eq!(csv, json, "{table}");
    }
    let rejects = read_table(&landed[1].1, "_rejects");
    assert_eq!(strings(&rejects[0], "reason").value(0), "invalid_json");
}
