//! The warehouse as records really arrive, end to end through the `kefu` binary:
//! lifecycle exports ingested day by day — in order, and shuffled with every re-send
//! twice — equal the final truth and give every named query the result of a one-shot
//! ingest; kill -9 at random moments of day-by-day ingests, compactions and reverts ends
//! as the uninterrupted run, and a job run in between never keeps a result it should
//! recompute; time travel and reverts; an old Hive-layout warehouse converts in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::ingest::warehouse_rows;

/// Every table a warehouse stores, `_rejects` included.
const STORED_TABLES: [&str; 6] = [
    "calls",
    "tickets",
    "callbacks",
    "visits",
    "customers",
    "_rejects",
];

fn kefu_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
    cmd.env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_ok(cmd: &mut Command, context: &str) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{context}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `kefu gen` output under `dir/name`: messy (lifecycle exports) or plain (the truth).
fn generate(dir: &Path, name: &str, messy: bool, customers: u32, days: u32) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = kefu_cmd();
    cmd.args(["gen", "-q", "--regions", "3", "--bad-row-rate", "0.005"])
        .args(crate::common::DENSE_COMPLAINTS)
        .args(["--customers", &customers.to_string()])
        .args(["--days", &days.to_string()])
        .args(["--resend-rate", "0.1"])
        .arg("--out")
        .arg(&out);
    if messy {
        cmd.arg("--messy");
    }
    run_ok(&mut cmd, "gen");
    out
}

/// The manifest's deliveries: per day, the files that arrived.
pub fn deliveries(exports: &Path) -> Vec<(String, Vec<PathBuf>)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exports.join("manifest.json")).unwrap()).unwrap();
    manifest["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_string(),
                d["paths"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| exports.join(p.as_str().unwrap()))
                    .collect(),
            )
        })
        .collect()
}

/// `kefu ingest` of `files` as one batch. A single small archive with a bad row or two
/// can exceed the default reject ratio (5%): these tests allow more.
fn ingest(files: &[PathBuf], wh: &Path, extra: &[&str]) -> Command {
    let mut cmd = kefu_cmd();
    cmd.args([
        "ingest",
        "-q",
        "--json",
        "--max-reject-ratio",
        "0.5",
        "--warehouse",
    ])
    .arg(wh)
    .args(extra)
    .args(files);
    cmd
}

/// Ingests what arrived each day as one batch, in delivery order.
pub fn ingest_by_delivery(exports: &Path, wh: &Path, extra: &[&str]) {
    for (date, files) in deliveries(exports) {
        run_ok(&mut ingest(&files, wh, extra), &format!("ingest of {date}"));
    }
}

fn named_queries() -> Vec<String> {
    let list = run_ok(kefu_cmd().args(["query", "--list"]), "query --list");
    list.lines()
        .filter(|l| !l.starts_with(' ') && !l.trim().is_empty())
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect()
}

fn query_csv(wh: &Path, name: &str, extra: &[&str]) -> String {
    run_ok(
        kefu_cmd()
            .args(["query", name, "--format", "csv", "--warehouse"])
            .arg(wh)
            .args(extra),
        &format!("query {name}"),
    )
}

/// Lifecycle exports ingested one batch per delivery day — in order, and again shuffled
/// with every re-send twice and each file a batch of its own — hold exactly the final
/// truth, and every named query answers as on a one-shot ingest of the plain output.
#[test]
fn lifecycle_exports_day_by_day_equal_the_final_truth() {
    let dir = tempfile::tempdir().unwrap();
    let messy = generate(dir.path(), "messy", true, 600, 62);
    let plain = generate(dir.path(), "plain", false, 600, 62);
    let truth = dir.path().join("truth");
    run_ok(&mut ingest(&[plain], &truth, &[]), "one-shot ingest");
    let want = warehouse_rows(&truth);
    assert!(want["tickets"].len() > 300, "{}", want["tickets"].len());

    // In order: one batch per delivery day; small partitions get compacted on the way.
    let in_order = dir.path().join("in-order");
    ingest_by_delivery(&messy, &in_order, &["--compact-after", "8"]);
    // Shuffled: each file alone, every re-sent or re-exported file twice.
    let shuffled = dir.path().join("shuffled");
    let mut files: Vec<PathBuf> = deliveries(&messy)
        .into_iter()
        .flat_map(|(_, f)| f)
        .collect();
    let again: Vec<PathBuf> = files
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.contains("_r1.") || name.contains('-')
        })
        .cloned()
        .collect();
    assert!(!again.is_empty(), "the exports re-send some files");
    files.extend(again);
    files.shuffle(&mut rand_pcg::Pcg64::seed_from_u64(7));
    let mut counts: BTreeMap<String, [u64; 6]> = BTreeMap::new();
    for f in &files {
        let out = run_ok(
            &mut ingest(std::slice::from_ref(f), &shuffled, &[]),
            &f.display().to_string(),
        );
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        for (table, c) in report["tables"].as_object().unwrap() {
            let total = counts.entry(table.clone()).or_default();
            for (i, k) in [
                "records",
                "new",
                "updated",
                "unchanged",
                "stale",
                "rejected",
            ]
            .iter()
            .enumerate()
            {
                total[i] += c[k].as_u64().unwrap();
            }
        }
    }
    for (name, wh) in [("in order", &in_order), ("shuffled", &shuffled)] {
        let got = warehouse_rows(wh);
        for table in ["calls", "tickets", "callbacks", "visits", "customers"] {
            assert_eq!(want[table].len(), got[table].len(), "{name}: {table} rows");
            assert!(want[table] == got[table], "{name}: {table} rows differ");
        }
    }
    // Out of order, some versions arrive after newer ones: stale, and counted.
    assert!(
        counts["tickets"][4] > 0,
        "stale ticket versions: {counts:?}"
    );
    for (table, c) in &counts {
        assert_eq!(c[0], c[1..].iter().sum::<u64>(), "{table}: {c:?}");
        if table != "unknown" {
            assert_eq!(
                c[1],
                want[table.as_str()].len() as u64,
                "{table}: one new each"
            );
        }
    }

    // Every named query, with its default parameters, answers as on the one-shot ingest.
    let queries = named_queries();
    assert_eq!(queries.len(), 32, "{queries:?}");
    for q in &queries {
        let expected = query_csv(&truth, q, &[]);
        assert_eq!(query_csv(&in_order, q, &[]), expected, "{q} (in order)");
        assert_eq!(query_csv(&shuffled, q, &[]), expected, "{q} (shuffled)");
    }
}

/// Spawns `cmd` and kills it (SIGKILL) after `after`; returns whether it was still
/// running then.
fn kill_after(mut cmd: Command, after: Duration) -> bool {
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    child.kill().ok();
    child.wait().unwrap();
    running
}

const DAILY_JOB: &str = r#"
name = "daily"
warehouse = "WAREHOUSE"
output_dir = "kpi"

[[step]]
type = "query"
query = "calls_kpis"
partition = "day"
params = { from = "2026-01-01", to = "2026-02-01", period = "day" }
[[step.output]]
path = "calls_kpis.csv"

[[step]]
type = "query"
query = "complaints_trend"
partition = "month"
params = { from = "2026-01-01", to = "2026-02-01", period = "day" }
[[step.output]]
path = "complaints.csv"
"#;

fn job(dir: &Path, wh: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        DAILY_JOB
            .replace("WAREHOUSE", &wh.display().to_string())
            .replace("name = \"daily\"", &format!("name = \"{name}\"")),
    )
    .unwrap();
    path
}

fn run_job(job: &Path, force: bool) -> serde_json::Value {
    let mut cmd = kefu_cmd();
    cmd.args(["run", "--json", "-q", "--date", "2026-02-01"])
        .arg(job);
    if force {
        cmd.arg("--force");
    }
    serde_json::from_str(&run_ok(&mut cmd, "kefu run")).unwrap()
}

/// kill -9 at random moments of a day-by-day ingest, of compactions and of a revert, each
/// rerun until done: the warehouse ends exactly as the uninterrupted run's, readers never
/// see part of an operation, and a job run between the kills never keeps a result it
/// should recompute (its incremental outputs equal a forced recomputation's).
#[test]
fn killed_ingests_compactions_and_reverts_end_as_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let messy = generate(dir.path(), "messy", true, 300, 25);
    let days = deliveries(&messy);
    let compact = ["--compact-after", "4"];

    // The uninterrupted run: every delivery, a compaction, then batch 10 reverted.
    let clean = dir.path().join("clean");
    let started = Instant::now();
    ingest_by_delivery(&messy, &clean, &compact);
    let per_ingest = started.elapsed() / days.len() as u32;
    let started = Instant::now();
    run_ok(
        kefu_cmd().args(["compact", "--warehouse"]).arg(&clean),
        "compact",
    );
    let per_compaction = started.elapsed();
    let after_compaction = warehouse_rows(&clean);
    let last_ingest = newest_ingest(&clean);
    let started = Instant::now();
    run_ok(
        kefu_cmd()
            .args(["batch", "revert", &last_ingest.to_string(), "--warehouse"])
            .arg(&clean),
        "revert",
    );
    let per_revert = started.elapsed();
    let reverted = warehouse_rows(&clean);
    assert_ne!(reverted, after_compaction, "the revert took something back");

    let crashed = dir.path().join("crashed");
    let daily = job(dir.path(), &crashed, "daily");
    let mut rng = rand_pcg::Pcg64::seed_from_u64(20_261_203);
    let mut kills = 0;
    let mut kills_by_kind: BTreeMap<&str, u32> = BTreeMap::new();
    let mut kill =
        |cmd: Command, within: Duration, kind: &'static str, rng: &mut rand_pcg::Pcg64| {
            let at = within.mul_f64(rng.random_range(0.0..1.2));
            if kill_after(cmd, at) {
                kills += 1;
                *kills_by_kind.entry(kind).or_default() += 1;
            }
        };
    for (i, (date, files)) in days.iter().enumerate() {
        for _ in 0..rng.random_range(1..=2) {
            kill(
                ingest(files, &crashed, &compact),
                per_ingest * 2,
                "ingest",
                &mut rng,
            );
            // Whatever the kill left, readers see whole operations only: every row of the
            // tables is in some version the clean run had (checked in full at the end),
            // and the newest complete operation is at most this one.
        }
        // A job run right after a kill reads the state before the interrupted batch;
        // after the next writer finishes the batch it must recompute what changed.
        if i % 5 == 2 {
            run_job(&daily, false);
        }
        run_ok(
            &mut ingest(files, &crashed, &compact),
            &format!("ingest of {date}"),
        );
    }
    let jobs_incremental = run_job(&daily, false);
    let outputs = |name: &str| std::fs::read(dir.path().join("kpi").join(name)).unwrap();
    let (kpis, complaints) = (outputs("calls_kpis.csv"), outputs("complaints.csv"));
    run_job(&daily, true);
    assert_eq!(
        kpis,
        outputs("calls_kpis.csv"),
        "incremental = forced (calls_kpis)"
    );
    assert_eq!(
        complaints,
        outputs("complaints.csv"),
        "incremental = forced (complaints)"
    );
    assert_ne!(jobs_incremental["status"], "failed");

    // Compactions, killed.
    let compact_cmd = || {
        let mut cmd = kefu_cmd();
        cmd.args(["compact", "--warehouse"]).arg(&crashed);
        cmd
    };
    for _ in 0..8 {
        kill(compact_cmd(), per_compaction, "compact", &mut rng);
        let rows = warehouse_rows(&crashed);
        assert!(
            rows == after_compaction,
            "a compaction changed what readers see"
        );
    }
    run_ok(&mut compact_cmd(), "compact");
    assert!(warehouse_rows(&crashed) == after_compaction);
    // The revert of the newest batch (its number may differ from the clean run's: a kill
    // between a batch and its automatic compaction shifts the numbers), killed: rerun
    // until it is done (a second run finds it reverted).
    let last_ingest = newest_ingest(&crashed);
    let revert_cmd = || {
        let mut cmd = kefu_cmd();
        cmd.args(["batch", "revert", &last_ingest.to_string(), "--warehouse"])
            .arg(&crashed);
        cmd
    };
    for _ in 0..8 {
        kill(revert_cmd(), per_revert, "revert", &mut rng);
        let rows = warehouse_rows(&crashed);
        assert!(
            rows == after_compaction || rows == reverted,
            "readers see a revert whole or not at all"
        );
    }
    let out = revert_cmd().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("reverted already"),
        "{stderr}"
    );
    let got = warehouse_rows(&crashed);
    for (table, rows) in &reverted {
        assert_eq!(rows.len(), got[table].len(), "{table} rows");
        assert!(
            rows == &got[table],
            "{table} rows differ from the uninterrupted run"
        );
    }
    // After the revert the job recomputes what it took back.
    let kpis_before = outputs("calls_kpis.csv");
    run_job(&daily, false);
    let incremental = outputs("calls_kpis.csv");
    run_job(&daily, true);
    assert_eq!(incremental, outputs("calls_kpis.csv"), "after the revert");
    let _ = kpis_before;
    eprintln!(
        "{kills} kills while running ({kills_by_kind:?}); an ingest took about {per_ingest:?}, \
         a compaction {per_compaction:?}, a revert {per_revert:?}"
    );
    assert!(
        kills >= 20,
        "{kills} kills hit a running process: {kills_by_kind:?}"
    );
}

/// The number of the newest ingest batch.
fn newest_ingest(wh: &Path) -> u64 {
    let batches: serde_json::Value = serde_json::from_str(&run_ok(
        kefu_cmd()
            .args(["batch", "list", "--json", "--last", "0", "--warehouse"])
            .arg(wh),
        "batch list",
    ))
    .unwrap();
    batches
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "ingest")
        .unwrap()["seq"]
        .as_u64()
        .unwrap()
}

fn sql_count(wh: &Path, sql: &str, extra: &[&str]) -> u64 {
    let out = run_ok(
        kefu_cmd()
            .args(["sql", "--format", "csv", "--warehouse"])
            .arg(wh)
            .args(extra)
            .args(["-e", sql]),
        sql,
    );
    out.lines().nth(1).unwrap().parse().unwrap()
}

/// Batches numbered; `--as-of` reads any of them; a report reproduces byte for byte; a
/// revert takes a batch back (refused while later batches exist, unless --cascade), its
/// sources can be ingested again, and time travel still reaches the state before it.
#[test]
fn time_travel_and_reverting_batches() {
    let dir = tempfile::tempdir().unwrap();
    let messy = generate(dir.path(), "messy", true, 400, 12);
    let days = deliveries(&messy);
    let wh = dir.path().join("wh");
    let count = "SELECT (SELECT count(*) FROM calls) + (SELECT count(*) FROM tickets WHERE status = 'closed') AS n";
    let mut after = Vec::new();
    for (_, files) in days.iter().take(6) {
        run_ok(&mut ingest(files, &wh, &["--compact-after", "0"]), "ingest");
        after.push(sql_count(&wh, count, &[]));
    }
    // --as-of N is the state right after batch N.
    for (i, n) in after.iter().enumerate() {
        let seq = (i + 1).to_string();
        assert_eq!(sql_count(&wh, count, &["--as-of", &seq]), *n, "as of {seq}");
    }
    assert_eq!(sql_count(&wh, count, &["--as-of", "0"]), 0);
    // A time: the newest batch committed by then.
    let list: serde_json::Value = serde_json::from_str(&run_ok(
        kefu_cmd()
            .args(["batch", "list", "--json", "--warehouse"])
            .arg(&wh),
        "batch list",
    ))
    .unwrap();
    let third = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["seq"] == 3)
        .unwrap();
    let when = third["committed_at"].as_str().unwrap();
    assert_eq!(sql_count(&wh, count, &["--as-of", when]), after[2]);
    let bad = kefu_cmd()
        .args(["sql", "--warehouse"])
        .arg(&wh)
        .args(["--as-of", "99", "-e", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("batch 99 does not exist"));

    // A report as of batch 4, made twice (the second after more batches): the same bytes,
    // and it names the batch and table versions it read.
    let report = |out: &str| {
        run_ok(
            kefu_cmd()
                .args([
                    "report", "--month", "2026-01", "-q", "--as-of", "4", "--out",
                ])
                .arg(dir.path().join(out))
                .arg("--warehouse")
                .arg(&wh),
            "report",
        );
        crate::common::snapshot(&dir.path().join(out))
    };
    let first = report("r1");
    for (_, files) in days.iter().skip(6) {
        run_ok(&mut ingest(files, &wh, &["--compact-after", "0"]), "ingest");
    }
    let second = report("r2");
    assert_eq!(first, second, "a report as of batch 4 reproduces");
    let snapshot: serde_json::Value =
        serde_json::from_slice(&first["tables/_snapshot.json"]).unwrap();
    assert_eq!(snapshot["batch"], 4);
    assert!(snapshot["versions"]["calls"].as_u64().unwrap() >= 1);

    // Reverting: not under later batches, unless --cascade.
    let newest = days.len() as u64;
    let refused = kefu_cmd()
        .args(["batch", "revert", "2", "--warehouse"])
        .arg(&wh)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("came after batch 2") && why.contains("--cascade"),
        "{why}"
    );
    let before_last = sql_count(&wh, count, &["--as-of", &(newest - 1).to_string()]);
    let at_last = sql_count(&wh, count, &[]);
    run_ok(
        kefu_cmd()
            .args(["batch", "revert", &newest.to_string(), "--warehouse"])
            .arg(&wh),
        "revert the newest",
    );
    assert_eq!(sql_count(&wh, count, &[]), before_last);
    // Time travel to before the revert still works.
    assert_eq!(
        sql_count(&wh, count, &["--as-of", &newest.to_string()]),
        at_last
    );
    // Its sources can be ingested again.
    let out = run_ok(
        &mut ingest(&days.last().unwrap().1, &wh, &[]),
        "re-ingest the reverted batch",
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["batch"].is_object(), "not skipped: {report}");
    assert_eq!(sql_count(&wh, count, &[]), at_last);
    // --cascade takes batch 2 and everything after it.
    run_ok(
        kefu_cmd()
            .args(["batch", "revert", "2", "--cascade", "--warehouse"])
            .arg(&wh),
        "revert --cascade",
    );
    assert_eq!(sql_count(&wh, count, &[]), after[0]);
    let status = run_ok(
        kefu_cmd().args(["batch", "list", "--warehouse"]).arg(&wh),
        "batch list",
    );
    assert!(
        status.contains("[reverted]") && status.contains("revert"),
        "{status}"
    );
}

/// A job's periods are recomputed when an ingest or a revert changes their months, not
/// after a compaction (no data change).
#[test]
fn jobs_recompute_what_changed_and_not_after_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let messy = generate(dir.path(), "messy", true, 300, 50);
    let days = deliveries(&messy);
    let wh = dir.path().join("wh");
    let (january, february): (Vec<_>, Vec<_>) = days
        .iter()
        .partition(|(date, _)| date.as_str() <= "2026-01-31");
    for (_, files) in &january {
        run_ok(&mut ingest(files, &wh, &["--compact-after", "0"]), "ingest");
    }
    let path = dir.path().join("monthly.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"monthly\"\nwarehouse = \"{}\"\noutput_dir = \"kpi\"\n\
             [[step]]\ntype = \"query\"\nquery = \"calls_kpis\"\npartition = \"month\"\n\
             params = {{ from = \"2026-01-01\", to = \"2026-03-01\", period = \"month\" }}\n\
             [[step.output]]\npath = \"kpis.csv\"\n",
            wh.display()
        ),
    )
    .unwrap();
    let computed = |report: &serde_json::Value| -> Vec<String> {
        report["steps"][0]["units"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["status"] == "computed")
            .map(|u| u["period"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(computed(&run_job(&path, false)), ["2026-01", "2026-02"]);
    run_ok(
        kefu_cmd().args(["compact", "--warehouse"]).arg(&wh),
        "compact",
    );
    let after_compaction = run_job(&path, false);
    assert_eq!(
        after_compaction["status"], "nothing_to_do",
        "{after_compaction}"
    );
    // A February batch recomputes February only. (Deliveries of early February still
    // bring January's last calls; by the 12th every file covers February only.)
    let (_, mid_february) = february
        .iter()
        .find(|(date, _)| date.as_str() >= "2026-02-12")
        .unwrap();
    run_ok(&mut ingest(mid_february, &wh, &[]), "a February batch");
    assert_eq!(computed(&run_job(&path, false)), ["2026-02"]);
    // Reverting it recomputes February again, to what it was.
    let before = std::fs::read(dir.path().join("kpi/kpis.csv")).unwrap();
    let seq = january.len() + 2; // the batches, the compaction, the February batch
    run_ok(
        kefu_cmd()
            .args(["batch", "revert", &seq.to_string(), "--warehouse"])
            .arg(&wh),
        "revert",
    );
    assert_eq!(computed(&run_job(&path, false)), ["2026-02"]);
    let after_revert = std::fs::read(dir.path().join("kpi/kpis.csv")).unwrap();
    run_job(&path, true);
    assert_eq!(
        after_revert,
        std::fs::read(dir.path().join("kpi/kpis.csv")).unwrap()
    );
    assert_ne!(before, after_revert, "February changed and changed back");
}

/// The files of a table in a warehouse's newest state, relative to the table.
fn table_files(wh: &Path, table: &str) -> Vec<String> {
    let location =
        kefu_storage::WarehouseLocation::parse_in(&wh.display().to_string(), Path::new("/"))
            .unwrap();
    let warehouse = kefu_storage::Warehouse::open(&location).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cut = rt
        .block_on(warehouse.cut(kefu_storage::AsOf::Latest))
        .unwrap();
    let files = rt
        .block_on(warehouse.files_at(&cut, kefu_storage::StoredTable::from_name(table).unwrap()))
        .unwrap();
    files.iter().map(|f| f.path.clone()).collect()
}

/// `kefu vacuum` deletes what no version within the retention names — never a file the
/// newest version reads; afterwards, time travel and reverts to before it say clearly
/// that the files are gone.
#[test]
fn vacuum_deletes_only_what_no_kept_version_names() {
    let dir = tempfile::tempdir().unwrap();
    let messy = generate(dir.path(), "messy", true, 300, 20);
    let wh = dir.path().join("wh");
    ingest_by_delivery(&messy, &wh, &["--compact-after", "3"]);
    let before = warehouse_rows(&wh);
    // Data files on disk (the log's checkpoints are Parquet too).
    let on_disk = |t: &str| {
        kefu_storage::parquet::local_files(&wh.join(t))
            .unwrap()
            .iter()
            .filter(|p| !p.to_string_lossy().contains("_delta_log"))
            .count()
    };
    assert!(
        on_disk("tickets") > table_files(&wh, "tickets").len(),
        "replaced files exist"
    );
    // The default retention keeps everything this young.
    let kept = run_ok(
        kefu_cmd()
            .args(["vacuum", "--json", "--warehouse"])
            .arg(&wh),
        "vacuum",
    );
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept["files"], serde_json::json!({}), "{kept}");
    // Under an hour is refused unless forced.
    let refused = kefu_cmd()
        .args(["vacuum", "--retain", "0s", "--warehouse"])
        .arg(&wh)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let dry = run_ok(
        kefu_cmd()
            .args([
                "vacuum",
                "--retain",
                "0s",
                "--force",
                "--dry-run",
                "--json",
                "--warehouse",
            ])
            .arg(&wh),
        "vacuum --dry-run",
    );
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert!(
        dry["files"]["tickets"].as_array().unwrap().len() > 1,
        "{dry}"
    );
    assert!(
        on_disk("tickets") > table_files(&wh, "tickets").len(),
        "a dry run deletes nothing"
    );
    run_ok(
        kefu_cmd()
            .args(["vacuum", "--retain", "0s", "--force", "--warehouse"])
            .arg(&wh),
        "vacuum",
    );
    for table in STORED_TABLES {
        assert_eq!(on_disk(table), table_files(&wh, table).len(), "{table}");
    }
    assert_eq!(
        warehouse_rows(&wh),
        before,
        "nothing readers read was deleted"
    );
    // The state of batch 2 read files that are gone now.
    let old = kefu_cmd()
        .args(["sql", "--as-of", "2", "--warehouse"])
        .arg(&wh)
        .args(["-e", "SELECT count(*) FROM tickets"])
        .output()
        .unwrap();
    assert!(!old.status.success());
    assert!(
        String::from_utf8_lossy(&old.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );
    // Batch 1's files were rewritten by later batches and compactions, then vacuumed: the
    // state before batch 2 cannot come back.
    let revert = kefu_cmd()
        .args(["batch", "revert", "2", "--cascade", "--warehouse"])
        .arg(&wh)
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&revert.stderr);
    assert!(!revert.status.success() && why.contains("vacuum"), "{why}");
}

/// Rewrites a Parquet file without `column`, as an earlier kefu (before the column was in
/// the model) wrote it.
fn drop_column(from: &Path, to: &Path, column: &str) {
    let file = std::fs::File::open(from).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut writer = None;
    for batch in reader {
        let batch = batch.unwrap();
        let keep: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| batch.schema().field(i).name() != column)
            .collect();
        let batch = batch.project(&keep).unwrap();
        let w = writer.get_or_insert_with(|| {
            parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(to).unwrap(),
                batch.schema(),
                None,
            )
            .unwrap()
        });
        w.write(&batch).unwrap();
    }
    writer.unwrap().close().unwrap();
}

/// An earlier kefu's warehouse — Hive-partitioned Parquet, its own ledger, a batch a crash
/// left staged, a file no batch recorded — converts in place: the recorded files become
/// the tables, columns the model gained since read as null, its sources stay ingested.
#[test]
fn an_earlier_hive_warehouse_converts_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let plain = generate(dir.path(), "plain", false, 300, 20);
    let reference = dir.path().join("reference");
    let out = run_ok(
        &mut ingest(std::slice::from_ref(&plain), &reference, &[]),
        "ingest",
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ledger: serde_json::Value = serde_json::from_slice(
        &std::fs::read(reference.join("_kefu/ledger/0000000001.json")).unwrap(),
    )
    .unwrap();

    // The earlier layout: the same files under <table>/month=…/, a ledger record listing
    // them, tickets and customers without `updated_at`.
    let legacy = dir.path().join("legacy");
    let mut files = Vec::new();
    for table in STORED_TABLES {
        for f in table_files(&reference, table) {
            let to = legacy.join(table).join(&f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            let from = reference.join(table).join(&f);
            if matches!(table, "tickets" | "customers") {
                drop_column(&from, &to, "updated_at");
            } else {
                std::fs::copy(&from, &to).unwrap();
            }
            files.push(serde_json::json!({
                "path": format!("{table}/{f}"),
                "table": table,
                "rows": 0,
                "bytes": std::fs::metadata(&to).unwrap().len(),
            }));
        }
    }
    let record = serde_json::json!({
        "seq": 1,
        "batch_id": "20260101T020000-0000abcd",
        "committed_at": "2026-01-02T02:00:00Z",
        "kefu_version": "0.1.0",
        "profile": "builtin",
        "sources": ledger["sources"],
        "files": files,
        "records": report["records"],
        "landed": report["new"],
        "rejected": report["rejected"],
        "duplicates": 0,
        "tables": {},
        "seconds": 1.0,
    });
    std::fs::create_dir_all(legacy.join("_kefu/ledger")).unwrap();
    std::fs::write(
        legacy.join("_kefu/ledger/0000000001.json"),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
    // A stray file, and a batch a crash left staged before its ledger record.
    let some_calls = table_files(&reference, "calls")[0].clone();
    let stray = legacy.join("calls/month=2026-01/part-copied-by-hand.parquet");
    std::fs::copy(reference.join("calls").join(&some_calls), &stray).unwrap();
    let staged = legacy.join("_kefu/staging/20260103T020000-ffffffff/calls/month=2026-01");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::copy(
        reference.join("calls").join(&some_calls),
        staged.join("part-x.parquet"),
    )
    .unwrap();

    // Until converted, kefu says what to do.
    let refused = kefu_cmd()
        .args(["sql", "--warehouse"])
        .arg(&legacy)
        .args(["-e", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("kefu convert"));

    let out = run_ok(
        kefu_cmd().args(["convert", "--warehouse"]).arg(&legacy),
        "convert",
    );
    assert!(
        out.contains("1 Parquet files no batch had recorded"),
        "{out}"
    );
    assert!(
        legacy
            .join("_kefu/unrecorded/calls/month=2026-01/part-copied-by-hand.parquet")
            .is_file()
    );
    assert!(legacy.join("_kefu/legacy-ledger/0000000001.json").is_file());
    let skip = ["updated_at"];
    for table in ["calls", "tickets", "callbacks", "visits", "customers"] {
        assert_eq!(
            crate::ingest::table_rows(&legacy, table, &skip),
            crate::ingest::table_rows(&reference, table, &skip),
            "{table}"
        );
    }
    let nulls = sql_count(
        &legacy,
        "SELECT count(*) FROM tickets WHERE updated_at IS NULL",
        &[],
    );
    assert_eq!(
        nulls as usize,
        crate::ingest::table_rows(&legacy, "tickets", &[]).len()
    );
    // The earlier batches' sources are still ingested; a second conversion is a no-op.
    let again = run_ok(
        &mut ingest(std::slice::from_ref(&plain), &legacy, &[]),
        "ingest again",
    );
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert!(again["batch"].is_null(), "{again}");
    let out = run_ok(
        kefu_cmd().args(["convert", "--warehouse"]).arg(&legacy),
        "convert again",
    );
    assert!(out.contains("nothing to convert"), "{out}");
    // New data lands on top, merged by key.
    let messy = generate(dir.path(), "messy", true, 300, 20);
    ingest_by_delivery(&messy, &legacy, &[]);
    ingest_by_delivery(&messy, &reference, &[]);
    assert_eq!(
        crate::ingest::table_rows(&legacy, "calls", &[]),
        crate::ingest::table_rows(&reference, "calls", &[])
    );
}
