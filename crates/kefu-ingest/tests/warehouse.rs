//! Ingest into a warehouse: what lands, what is rejected, every record once in its newest
//! version, and that a failed batch leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use kefu_gen::{GenConfig, generate};
use kefu_ingest::ingest::IngestOptions;
use kefu_ingest::source::{expand, for_each_stream};
use kefu_ingest::{Collected, IngestError, Profile, TableCounts, convert_csv};
use kefu_model::Table;
use kefu_progress::NoProgress;
use kefu_storage::{AsOf, StoredTable, Warehouse, WarehouseLocation};

fn open(dir: &Path) -> Warehouse {
    Warehouse::open(&WarehouseLocation::parse_in(&dir.display().to_string(), dir).unwrap()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An ingest on a runtime of its own, as the CLI lends its one.
fn ingest(
    inputs: &[String],
    warehouse: &Warehouse,
    options: &IngestOptions,
    progress: &dyn kefu_progress::Progress,
) -> Result<kefu_ingest::IngestReport, IngestError> {
    kefu_ingest::ingest(runtime().handle(), inputs, warehouse, options, progress)
}

/// Every row of a table in the warehouse's newest state (the files its Delta log names).
pub fn read_table(warehouse: &Path, table: &str) -> Vec<RecordBatch> {
    let wh = open(warehouse);
    let table = StoredTable::from_name(table).unwrap();
    let rt = runtime();
    let cut = rt.block_on(wh.cut(AsOf::Latest)).unwrap();
    rt.block_on(wh.read_table(&cut, table)).unwrap()
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
    cfg.resend_rate = 0.1;
    generate(&cfg, &NoProgress).unwrap();
    cfg.out
}

/// Total rows of every table in a warehouse, by table.
fn counts(warehouse: &Path) -> BTreeMap<String, usize> {
    StoredTable::ALL
        .iter()
        .map(|t| {
            let n = rows(&read_table(warehouse, t.name()));
            (t.name().to_string(), n)
        })
        .collect()
}

fn assert_every_record_counted(counts: &BTreeMap<String, TableCounts>) {
    for (table, c) in counts {
        assert_eq!(
            c.records,
            c.new + c.updated + c.unchanged + c.stale + c.rejected,
            "{table}: {c:?}"
        );
    }
}

/// The rows of `table` in a plain export, read as ingest reads them.
fn plain_rows(plain: &Path, table: Table) -> RecordBatch {
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
    sorted(table, &want.batches)
}

fn assert_tables_equal_plain(wh_dir: &Path, plain: &Path) {
    for table in Table::ALL {
        let want = plain_rows(plain, table);
        let got = sorted(table, &read_table(wh_dir, table.name()));
        assert_eq!(want.num_rows(), got.num_rows(), "{table} rows");
        for (i, field) in table.schema().fields().iter().enumerate() {
            assert_eq!(
                want.column(i).as_ref(),
                got.column(i).as_ref(),
                "{table}.{} differs",
                field.name()
            );
        }
    }
}

/// Lifecycle exports in one batch: every ticket in several states, re-sent and re-exported
/// archives, monthly customer snapshots — the warehouse ends with the final truth (the
/// plain output), every bad row rejected as the manifest lists it, every record counted.
#[test]
fn lifecycle_exports_in_one_batch_land_the_final_truth_and_reject_exactly_the_manifest() {
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
    assert_every_record_counted(&report.counts);
    assert_eq!(batch.counts, report.counts, "the ledger records the counts");
    for table in Table::ALL {
        let c = report.counts[table.name()];
        let truth = plain_rows(&plain, table).num_rows() as u64;
        assert_eq!(c.new, truth, "{table}: one new row per record");
        assert_eq!(c.updated, 0, "{table}: nothing was there before");
        if matches!(
            table,
            Table::OrgUnits | Table::Staff | Table::Queues | Table::Categories
        ) {
            assert_eq!(c.records, truth, "{table}: the master data, sent once");
        } else {
            assert!(c.records > truth, "{table}: versions and repeats were read");
        }
    }
    assert!(report.counts["tickets"].stale > 0, "earlier ticket states");
    assert!(report.counts["calls"].unchanged > 0, "re-sent calls");
    for s in &batch.sources {
        assert!(s.records >= s.rejected, "{}", s.name);
    }

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
    let rejected: u64 = report.counts.values().map(|c| c.rejected).sum();
    assert_eq!(rows(&rejects) as u64, rejected);
    assert!(listed.len() >= 50, "{} bad rows", listed.len());

    // Rows: exactly the plain output's, column for column.
    assert_tables_equal_plain(&wh_dir, &plain);
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
    assert!(wh_dir.join("calls/_delta_log").is_dir());

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
}

const CUSTOMERS: &str =
    "customer_id,region,branch_id,segment,tier,opened_at,closed_at,close_reason,updated_at\n";

fn customer(id: &str, tier: &str, updated: &str) -> String {
    format!("{id},beijing,beijing-01,household,{tier},2020-01-01T00:00:00Z,,,{updated}\n")
}

/// A customers export of `rows` at `dir/name`.
fn customers_file(dir: &Path, name: &str, rows: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{CUSTOMERS}{}", rows.concat())).unwrap();
    path
}

/// The first day's customers: CU1 and CU2, basic.
fn day1_customers() -> [String; 2] {
    [
        customer("CU1", "basic", "2026-01-01T00:00:00Z"),
        customer("CU2", "basic", "2026-01-01T00:00:00Z"),
    ]
}

fn ingest_files(
    wh: &Warehouse,
    files: &[&Path],
    options: &IngestOptions,
) -> kefu_ingest::IngestReport {
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    ingest(&files, wh, options, &NoProgress).unwrap()
}

/// Ingests `file` into the warehouse in `wh_dir` with the default options, which must fail.
fn ingest_error(file: &Path, wh_dir: &Path) -> IngestError {
    ingest(
        &[file.display().to_string()],
        &open(wh_dir),
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap_err()
}

fn customer_tiers(wh_dir: &Path) -> BTreeMap<String, String> {
    let customers = read_table(wh_dir, "customers");
    let mut out = BTreeMap::new();
    for b in &customers {
        for i in 0..b.num_rows() {
            out.insert(
                strings(b, "customer_id").value(i).to_string(),
                strings(b, "tier").value(i).to_string(),
            );
        }
    }
    out
}

/// Several versions of one record in a batch: the newest stays, whatever their order;
/// an identical repeat is unchanged; an equal version with other content goes to the
/// later row.
#[test]
fn versions_within_a_batch_keep_the_newest_whatever_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("customers_a.csv");
    let b = dir.path().join("customers_b.csv");
    std::fs::write(
        &a,
        format!(
            "{CUSTOMERS}{}{}{}{}",
            customer("CU1", "basic", "2026-01-01T00:00:00Z"),
            customer("CU1", "gold", "2026-03-01T00:00:00Z"),
            customer("CU1", "silver", "2026-02-01T00:00:00Z"),
            customer("CU3", "basic", "2026-01-05T00:00:00Z"),
        ),
    )
    .unwrap();
    std::fs::write(
        &b,
        format!(
            "{CUSTOMERS}{}{}{}",
            customer("CU2", "basic", "2026-01-01T00:00:00Z"),
            customer("CU1", "gold", "2026-03-01T00:00:00Z"),
            customer("CU3", "diamond", "2026-01-05T00:00:00Z"),
        ),
    )
    .unwrap();
    let wh_dir = dir.path().join("wh");
    let report = ingest_files(&open(&wh_dir), &[&a, &b], &IngestOptions::default());
    let c = report.counts["customers"];
    assert_eq!(
        (
            c.records,
            c.new,
            c.updated,
            c.unchanged,
            c.stale,
            c.rejected
        ),
        (7, 3, 0, 1, 3, 0)
    );
    let tiers = customer_tiers(&wh_dir);
    assert_eq!(
        tiers["CU1"], "gold",
        "the newest version, though not the last row"
    );
    assert_eq!(tiers["CU2"], "basic");
    assert_eq!(
        tiers["CU3"], "diamond",
        "a tie with other content: the later row"
    );
    assert_eq!(tiers.len(), 3);
}

/// Across batches: a newer version replaces the stored row, an older one (a late export)
/// and an identical one (a re-send) change nothing, and are counted.
#[test]
fn later_batches_update_older_ones_are_stale_and_repeats_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, rows: &[String]| customers_file(dir.path(), name, rows);
    let wh_dir = dir.path().join("wh");
    let wh = open(&wh_dir);
    let day1 = file("customers_1.csv", &day1_customers());
    let day3 = file(
        "customers_3.csv",
        &[customer("CU1", "gold", "2026-01-03T00:00:00Z")],
    );
    let day2_late = file(
        "customers_2.csv",
        &[
            customer("CU1", "silver", "2026-01-02T00:00:00Z"),
            customer("CU3", "basic", "2026-01-02T00:00:00Z"),
        ],
    );
    // The same records as day 3 and 1 in another file (other bytes): a re-send.
    let resent = file(
        "customers_again.csv",
        &[
            customer("CU2", "basic", "2026-01-01T00:00:00Z"),
            customer("CU1", "gold", "2026-01-03T00:00:00Z"),
        ],
    );
    let counts_of = |r: &kefu_ingest::IngestReport| {
        let c = r.counts["customers"];
        (c.new, c.updated, c.unchanged, c.stale)
    };
    assert_eq!(
        counts_of(&ingest_files(&wh, &[&day1], &IngestOptions::default())),
        (2, 0, 0, 0)
    );
    assert_eq!(
        counts_of(&ingest_files(&wh, &[&day3], &IngestOptions::default())),
        (0, 1, 0, 0)
    );
    assert_eq!(
        counts_of(&ingest_files(&wh, &[&day2_late], &IngestOptions::default())),
        (1, 0, 0, 1)
    );
    let before = std::fs::read_dir(wh_dir.join("customers")).unwrap().count();
    let again = ingest_files(&wh, &[&resent], &IngestOptions::default());
    assert_eq!(counts_of(&again), (0, 0, 2, 0));
    assert!(again.batch.is_some(), "the source is recorded as ingested");
    assert!(again.batch.unwrap().changes.is_empty(), "no table changed");
    assert_eq!(
        std::fs::read_dir(wh_dir.join("customers")).unwrap().count(),
        before,
        "a re-send writes no file"
    );
    let tiers = customer_tiers(&wh_dir);
    assert_eq!(
        tiers,
        BTreeMap::from([
            ("CU1".to_string(), "gold".to_string()),
            ("CU2".to_string(), "basic".to_string()),
            ("CU3".to_string(), "basic".to_string()),
        ])
    );
}

/// A batch too large for its memory merges in chunks, each into the state the earlier
/// ones left: the tables and the counts are those of merging it at once.
#[test]
fn a_batch_merged_in_chunks_equals_one_merged_at_once() {
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
    assert!(
        lines.len() > 5_000,
        "enough rows for many chunks: {}",
        lines.len()
    );
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    std::fs::write(again.join("calls.csv"), second).unwrap();
    let sources = [plain.join("calls.csv"), again.join("calls.csv")];
    let sources: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();

    let whole = dir.path().join("whole");
    let chunked = dir.path().join("chunked");
    let at_once = ingest_files(&open(&whole), &sources, &IngestOptions::default());
    let in_chunks = ingest_files(
        &open(&chunked),
        &sources,
        &IngestOptions {
            // About 30 chunks.
            buffer_bytes: 64 * 1024,
            ..IngestOptions::default()
        },
    );
    let records = lines.len() + repeated.len() + fresh.len().min(repeated.len());
    let c = at_once.counts["calls"];
    assert_eq!(
        (c.records, c.new, c.updated, c.unchanged, c.stale),
        (
            records as u64,
            (records - repeated.len()) as u64,
            0,
            repeated.len() as u64,
            0
        )
    );
    assert_eq!(at_once.counts, in_chunks.counts);
    assert!(
        in_chunks.batch.as_ref().unwrap().changes["calls"].files_added > 1,
        "the chunks wrote several files"
    );
    assert_eq!(
        sorted(Table::Calls, &read_table(&whole, "calls")),
        sorted(Table::Calls, &read_table(&chunked, "calls"))
    );
}

fn assert_untouched(wh_dir: &Path) {
    assert_eq!(counts(wh_dir).values().sum::<usize>(), 0, "no rows visible");
    let ledger = wh_dir.join("_kefu/ledger");
    assert!(
        !ledger.exists() || std::fs::read_dir(&ledger).unwrap().next().is_none(),
        "no ledger record"
    );
    for table in StoredTable::ALL {
        let files = kefu_storage::parquet::local_files(&wh_dir.join(table.name())).unwrap();
        assert!(files.is_empty(), "{table}: files left behind: {files:?}");
    }
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
    assert_eq!(ok.totals().new, 1);
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
        landed.push((report.totals(), wh));
    }
    assert_eq!(landed[0].0.new, landed[1].0.new);
    assert_eq!(landed[1].0.rejected, 1);
    for table in Table::ALL {
        let csv = sorted(table, &read_table(&landed[0].1, table.name()));
        let json = sorted(table, &read_table(&landed[1].1, table.name()));
        assert_eq!(csv, json, "{table}");
    }
    let rejects = read_table(&landed[1].1, "_rejects");
    assert_eq!(strings(&rejects[0], "reason").value(0), "invalid_json");
}

/// One gzip member of `text`, `copies` times over (a gzip stream may hold many members,
/// and readers decompress them all): a tiny file that expands `copies`-fold.
fn repeated_gzip(text: &str, copies: usize) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(text.as_bytes()).unwrap();
    let member = encoder.finish().unwrap();
    member.repeat(copies)
}

/// A gzip of under 256 kB that expands to 64 MiB of lines (the adversarial test's 65 kB needed 2.5 GB
/// because small files were buffered whole): refused as it is read, nothing committed.
#[test]
fn a_gzip_bomb_is_refused_as_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!("{}\n", "X".repeat(1023));
    let mut text = String::from(CUSTOMERS);
    while text.len() < 1 << 20 {
        text.push_str(&line);
    }
    let bomb = dir.path().join("customers.csv.gz");
    std::fs::write(&bomb, repeated_gzip(&text, 64)).unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 256 << 10);
    let wh_dir = dir.path().join("wh");
    let err = ingest_error(&bomb, &wh_dir);
    assert!(
        err.to_string()
            .contains("decompresses to more than 16777216 bytes"),
        "{err}"
    );
    assert!(err.to_string().contains("customers.csv.gz"), "{err}");
    assert_untouched(&wh_dir);
}

/// A small compressed file that expands past what is buffered in memory is streamed
/// instead, every row landing once.
#[test]
fn a_small_file_expanding_past_the_buffer_is_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(CUSTOMERS);
    let customers = 40_000;
    for i in 0..customers {
        text.push_str(&customer(
            &format!("CU{i:06}"),
            "gold",
            "2026-01-01T00:00:00Z",
        ));
    }
    let file = dir.path().join("customers.csv.gz");
    std::fs::write(&file, repeated_gzip(&text, 1)).unwrap();
    let wh_dir = dir.path().join("wh");
    let options = IngestOptions {
        // Converted whole, the file would need more than twice this.
        buffer_bytes: 1 << 20,
        ..IngestOptions::default()
    };
    assert!(text.len() > 2 << 20);
    let report = ingest_files(&open(&wh_dir), &[&file], &options);
    assert_eq!(report.totals().records, customers);
    assert_eq!(rows(&read_table(&wh_dir, "customers")), customers as usize);
}

/// A small zstd of 30 MB of blank-ish lines kept nine million rejects in memory (2 GB)
/// and the warehouse locked for 45 s; a source whose records are mostly rejected stops
/// after 100,000 rejects, and one with fewer rejects than rows is read to its end.
#[test]
fn a_source_of_mostly_rejects_stops_early() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("customers.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(CUSTOMERS.as_bytes()).unwrap();
    for _ in 0..300_000 {
        gz.write_all(b" \n").unwrap();
    }
    std::fs::write(&junk, gz.finish().unwrap()).unwrap();
    let wh_dir = dir.path().join("wh");
    let err = ingest_error(&junk, &wh_dir);
    assert!(
        err.to_string().contains("not an export of its table"),
        "{err}"
    );
    assert_untouched(&wh_dir);

    // Good rows and many (but fewer) rejects: read whole, the batch's ratio decides.
    let mixed = dir.path().join("customers.csv");
    let mut text = String::from(CUSTOMERS);
    for i in 0..110_000 {
        text.push_str(&customer(
            &format!("CU{i:06}"),
            "gold",
            "2026-01-01T00:00:00Z",
        ));
        text.push_str("bad\n");
    }
    std::fs::write(&mixed, text).unwrap();
    let report = ingest(
        &[mixed.display().to_string()],
        &open(&dir.path().join("wh2")),
        &IngestOptions {
            max_reject_ratio: 0.6,
            ..IngestOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.totals().records, 220_000);
    assert_eq!(report.totals().rejected, 110_000);
}

/// Progress that, while the sources are read, notes whether a writer holds the warehouse
/// and, the first time none does, lets another writer commit (as another office's upload
/// would while this one decodes).
struct AnotherWriterMeanwhile<F> {
    warehouse: Warehouse,
    reading: std::sync::atomic::AtomicBool,
    locked_while_reading: std::sync::atomic::AtomicBool,
    meanwhile: std::sync::Mutex<Option<F>>,
}

impl<F: FnOnce() + Send> AnotherWriterMeanwhile<F> {
    fn new(warehouse: &Warehouse, meanwhile: F) -> Self {
        AnotherWriterMeanwhile {
            warehouse: warehouse.clone(),
            reading: false.into(),
            locked_while_reading: false.into(),
            meanwhile: std::sync::Mutex::new(Some(meanwhile)),
        }
    }

    fn assert_ran_unlocked(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        assert!(
            !self.locked_while_reading.load(Relaxed),
            "the writer lock was held while the sources were read"
        );
        assert!(
            self.meanwhile.lock().unwrap().is_none(),
            "the other writer ran"
        );
    }
}

impl<F: FnOnce() + Send> kefu_progress::Progress for AnotherWriterMeanwhile<F> {
    fn start(&self, phase: &str, _: Option<u64>, _: kefu_progress::Unit) {
        self.reading
            .store(phase == "ingesting", std::sync::atomic::Ordering::Relaxed);
    }
    fn advance(&self, _: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.reading.load(Relaxed) {
            return;
        }
        if self.warehouse.writer_busy().unwrap() {
            self.locked_while_reading.store(true, Relaxed);
            return;
        }
        let meanwhile = self.meanwhile.lock().unwrap().take();
        if let Some(other_writer) = meanwhile {
            other_writer();
        }
    }
    fn finish(&self) {
        self.reading
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A hostile or slow source held the writer lock while it was decoded, and every other
/// office waited. Sources are now read without it; what another writer commits meanwhile
/// is merged onto (a newer version there wins over an older one here) and a source it
/// committed is not committed twice.
#[test]
fn sources_are_read_while_other_writers_commit() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, rows: &[String]| customers_file(dir.path(), name, rows);
    let wh_dir = dir.path().join("wh");
    let wh = open(&wh_dir);
    let day1 = file("customers_1.csv", &day1_customers());
    ingest_files(&wh, &[&day1], &IngestOptions::default());

    // Another writer commits a newer CU1 while an older one is being read here.
    let late = file(
        "customers_late.csv",
        &[
            customer("CU1", "silver", "2026-01-02T00:00:00Z"),
            customer("CU3", "basic", "2026-01-02T00:00:00Z"),
        ],
    );
    let newer = file(
        "customers_newer.csv",
        &[
            customer("CU1", "gold", "2026-01-03T00:00:00Z"),
            customer("CU4", "basic", "2026-01-03T00:00:00Z"),
        ],
    );
    let progress = AnotherWriterMeanwhile::new(&wh, || {
        let other = ingest_files(&open(&wh_dir), &[&newer], &IngestOptions::default());
        assert_eq!(other.batch.unwrap().seq, 2);
    });
    let report = ingest(
        &[late.display().to_string()],
        &wh,
        &IngestOptions::default(),
        &progress,
    )
    .unwrap();
    progress.assert_ran_unlocked();
    assert_eq!(report.batch.as_ref().unwrap().seq, 3);
    let c = report.counts["customers"];
    assert_eq!((c.new, c.updated, c.stale), (1, 0, 1), "{c:?}");
    assert_eq!(
        customer_tiers(&wh_dir),
        BTreeMap::from([
            ("CU1".to_string(), "gold".to_string()),
            ("CU2".to_string(), "basic".to_string()),
            ("CU3".to_string(), "basic".to_string()),
            ("CU4".to_string(), "basic".to_string()),
        ])
    );
    assert_eq!(rows(&read_table(&wh_dir, "customers")), 4);

    // Another writer commits the same content (a renamed copy) while it is read here.
    let cu5 = file(
        "customers_5.csv",
        &[customer("CU5", "basic", "2026-01-05T00:00:00Z")],
    );
    let copy = dir.path().join("customers_5_copy.csv");
    std::fs::copy(&cu5, &copy).unwrap();
    let progress = AnotherWriterMeanwhile::new(&wh, || {
        ingest_files(&open(&wh_dir), &[&copy], &IngestOptions::default());
    });
    let report = ingest(
        &[cu5.display().to_string()],
        &wh,
        &IngestOptions::default(),
        &progress,
    )
    .unwrap();
    progress.assert_ran_unlocked();
    assert!(report.batch.is_none(), "{:?}", report.batch);
    assert_eq!(report.skipped[0].committed_in, Some(4));
    assert_eq!(rows(&read_table(&wh_dir, "customers")), 5);
}

/// A warehouse an older kefu made, before the model gained `tickets.subject_staff_id`: the
/// next ingest adds the column as an operation of its own in the ledger (a Delta schema
/// change carrying kefu's transaction, so cuts and recovery see it), then the column's
/// values land; a later ingest changes no schema again.
#[test]
fn a_column_the_model_gained_is_added_to_an_older_table() {
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let wh_dir = tmp.path().join("wh");
    let wh = open(&wh_dir);
    let tickets = StoredTable::Model(Table::Tickets);
    let full = tickets.table_schema();
    let older = Arc::new(arrow::datatypes::Schema::new(
        full.fields()
            .iter()
            .filter(|f| f.name() != "subject_staff_id")
            .cloned()
            .collect::<Vec<_>>(),
    ));
    runtime()
        .block_on(wh.log(tickets).create(
            &older,
            &tickets.partition_column().into_iter().collect::<Vec<_>>(),
            &tickets.properties(),
        ))
        .unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sql/tickets.csv");
    ingest_files(&wh, &[&fixture], &IngestOptions::default());

    let ledger = runtime().block_on(wh.ledger()).unwrap();
    let kinds: Vec<&str> = ledger.iter().map(|r| r.kind.name()).collect();
    assert_eq!(kinds, ["add_columns", "ingest"], "{ledger:#?}");
    assert_eq!(
        ledger[0].note.as_deref(),
        Some("the model's new columns: tickets.subject_staff_id")
    );
    let all = sorted(Table::Tickets, &read_table(&wh_dir, "tickets"));
    let fixture_rows = std::fs::read_to_string(&fixture).unwrap().lines().count() - 1;
    assert_eq!(all.num_rows(), fixture_rows);
    let ids = strings(&all, "ticket_id");
    let subjects = strings(&all, "subject_staff_id");
    let of = |id: &str| {
        let i = (0..ids.len()).find(|&i| ids.value(i) == id).unwrap();
        subjects.is_valid(i).then(|| subjects.value(i).to_string())
    };
    assert_eq!(of("T02").as_deref(), Some("beijing-01-S01"));
    assert_eq!(of("T07").as_deref(), Some("shanghai-01-S01"));
    assert_eq!(of("T01"), None);

    // Nothing left to add: the next batch is an ingest alone.
    let text = std::fs::read_to_string(&fixture).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let t01 = lines.next().unwrap().replacen("T01", "T99", 1);
    let more = tmp.path().join("more_tickets.csv");
    std::fs::write(&more, format!("{header}\n{t01}\n")).unwrap();
    ingest_files(&wh, &[&more], &IngestOptions::default());
    let ledger = runtime().block_on(wh.ledger()).unwrap();
    assert_eq!(ledger.len(), 3);
    assert_eq!(ledger[2].kind.name(), "ingest");
}
