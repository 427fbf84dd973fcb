//! Ingest: sources into the warehouse as one batch, exactly once.
//!
//! One `ingest` call is one batch. Sources whose content (BLAKE3 of their bytes) is in the
//! ledger are skipped and reported. The rest are read and converted on all cores; rows are
//! de-duplicated by event id within the batch, split by table and local month, buffered
//! within a memory budget, sorted by (region, event time) and written as staged Parquet
//! files by a separate encoder thread; rejects go to `_rejects`. The batch then commits
//! through the ledger ([`kefu_storage::warehouse`]) or, if anything failed or the rejects
//! exceed the threshold, its staged files are deleted and nothing of it is visible.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use chrono::{Datelike, TimeZone};
use kefu_model::{ColumnKind, Table};
use kefu_progress::{Progress, Unit};
use kefu_storage::parquet::Layout;
use kefu_storage::warehouse::REJECTS_TABLE;
use kefu_storage::{BatchRecord, Commit, LedgerFile, LedgerSource, Recovery, Warehouse};

use crate::convert::RejectReason;
use crate::seen::{DEFAULT_IDS_IN_MEMORY, SeenIds};
use crate::source::{Input, expand_inputs, for_each_input_stream};
use crate::{IngestError, Profile, RejectTally, RejectedRecord, RowSink, SourceName, convert_csv};

/// The time zone whose calendar months partition the tables (`month=YYYY-MM`): the
/// reporting calendar of the offices, not UTC.
pub const PARTITION_TIME_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// Rejected share of a batch's records above which the batch is refused, by default.
pub const DEFAULT_MAX_REJECT_RATIO: f64 = 0.05;

/// Rows buffered (all partitions together) before the largest partition is written out.
const BUFFER_BYTES: usize = 128 * 1024 * 1024;
/// Rows per Parquet file at most.
const FILE_ROWS: usize = 1024 * 1024;
/// Rejected records a batch report keeps as examples.
const REJECT_EXAMPLES: usize = 20;
/// Rejects buffered before a `_rejects` file is written.
const REJECT_FILE_ROWS: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub profile: Profile,
    /// Refuse the batch when rejected / records exceeds this (0 to 1).
    pub max_reject_ratio: f64,
    /// Event ids held in memory for finding duplicates; older ones spill to temporary
    /// files (beside the warehouse when it is local), so memory stays bounded.
    pub ids_in_memory: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            profile: Profile::builtin(),
            max_reject_ratio: DEFAULT_MAX_REJECT_RATIO,
            ids_in_memory: DEFAULT_IDS_IN_MEMORY,
        }
    }
}

/// A source left out because its content is already in the warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSource {
    pub name: String,
    /// The ledger number of the batch that has it, or `None` for a repeat within this call.
    pub committed_in: Option<u64>,
}

/// Counts of a batch or of one source: every record read is landed, rejected or a
/// duplicate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    pub landed: u64,
    pub rejected: u64,
    pub duplicates: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.records += o.records;
        self.landed += o.landed;
        self.rejected += o.rejected;
        self.duplicates += o.duplicates;
    }
}

/// What an ingest did.
#[derive(Debug)]
pub struct IngestReport {
    /// The committed batch, or `None` when there was nothing new.
    pub batch: Option<BatchRecord>,
    pub skipped: Vec<SkippedSource>,
    pub recovery: Recovery,
    pub counts: Counts,
    /// Rejects per reason code (duplicates under `duplicate_id`).
    pub rejects_by_reason: BTreeMap<&'static str, u64>,
    /// The first rejects, as examples.
    pub examples: Vec<(SourceName, RejectedRecord)>,
    pub sources: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Ingests `inputs` (files, directories, globs, archives) into `warehouse` as one batch.
pub fn ingest(
    inputs: &[String],
    warehouse: &Warehouse,
    options: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport, IngestError> {
    let started = Instant::now();
    if !(0.0..=1.0).contains(&options.max_reject_ratio) {
        return Err(IngestError::Options(format!(
            "--max-reject-ratio must be between 0 and 1, not {}",
            options.max_reject_ratio
        )));
    }
    let files = expand_inputs(inputs)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| IngestError::Options(format!("cannot start the I/O runtime: {e}")))?;
    let _lock = warehouse
        .lock(|| {
            tracing::warn!(
                "another ingest is writing to {}; waiting for it to finish",
                warehouse.location()
            )
        })
        .map_err(IngestError::Storage)?;
    let recovery = runtime
        .block_on(warehouse.recover())
        .map_err(IngestError::Storage)?;
    for id in &recovery.completed {
        tracing::warn!(batch = %id, "completed the publishing of a batch an earlier run committed");
    }
    let ledger = runtime
        .block_on(warehouse.ledger())
        .map_err(IngestError::Storage)?;
    let committed: BTreeMap<&str, u64> = ledger
        .iter()
        .flat_map(|b| {
            b.sources
                .iter()
                .map(move |s| (s.content_hash.as_str(), b.seq))
        })
        .collect();

    // Identify sources by content, so a renamed copy is still recognised. Large files that
    // are read front to back are hashed while they are ingested instead of in a pass of
    // their own (unless the ledger has a file of that name and size: then it is probably
    // a re-run, and hashing first saves the work).
    let same_name_and_size: HashSet<(&str, u64)> = ledger
        .iter()
        .flat_map(|b| b.sources.iter().map(|s| (s.name.as_str(), s.bytes)))
        .collect();
    let mut listed = Vec::new();
    for file in files {
        let bytes = file.size()?;
        let name = file.name();
        let late = bytes >= SMALL_FILE_BYTES
            && file.reads_sequentially()
            && !same_name_and_size.contains(&(name.as_str(), bytes));
        listed.push((file, late, bytes));
    }
    let early_bytes: u64 = listed.iter().filter(|f| !f.1).map(|f| f.2).sum();
    progress.start("hashing", Some(early_bytes), Unit::Bytes);
    let mut todo: Vec<(Input, Option<String>, u64)> = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    for (file, late, bytes) in listed {
        if late {
            todo.push((file, None, bytes));
            continue;
        }
        let hash = content_hash(&file, progress)?;
        let name = file.name();
        if let Some(&seq) = committed.get(hash.as_str()) {
            skipped.push(SkippedSource {
                name,
                committed_in: Some(seq),
            });
        } else if !seen.insert(hash.clone()) {
            skipped.push(SkippedSource {
                name,
                committed_in: None,
            });
        } else {
            todo.push((file, Some(hash), bytes));
        }
    }
    progress.finish();
    let mut report = IngestReport {
        batch: None,
        skipped,
        recovery,
        counts: Counts::default(),
        rejects_by_reason: BTreeMap::new(),
        examples: Vec::new(),
        sources: todo.len(),
        bytes: todo.iter().map(|t| t.2).sum(),
        elapsed: Duration::ZERO,
    };
    loop {
        if todo.is_empty() {
            report.elapsed = started.elapsed();
            return Ok(report);
        }
        let batch_id = new_batch_id();
        let record = match write_batch(
            &todo,
            &batch_id,
            warehouse,
            &runtime,
            options,
            progress,
            &mut report,
        ) {
            Ok(record) => record,
            Err(e) => {
                // Nothing of a failed batch may stay behind.
                if let Err(cleanup) = runtime.block_on(warehouse.discard(&batch_id)) {
                    tracing::error!(%cleanup, "could not delete the staged files of the failed batch");
                }
                return Err(e);
            }
        };
        // Sources hashed while they were read may turn out to be known after all (a
        // renamed copy): then the batch is dropped and read again without them.
        let mut known = Vec::new();
        let mut hashes = HashSet::new();
        for (i, source) in record.sources.iter().enumerate() {
            let repeat = !hashes.insert(source.content_hash.as_str());
            if let Some(&seq) = committed.get(source.content_hash.as_str()) {
                known.push((i, Some(seq)));
            } else if repeat {
                known.push((i, None));
            }
        }
        if !known.is_empty() {
            runtime
                .block_on(warehouse.discard(&batch_id))
                .map_err(IngestError::Storage)?;
            for &(i, committed_in) in known.iter().rev() {
                let (path, _, _) = todo.remove(i);
                report.skipped.push(SkippedSource {
                    name: path.name(),
                    committed_in,
                });
            }
            report.sources = todo.len();
            report.bytes = todo.iter().map(|t| t.2).sum();
            continue;
        }
        let mut record = record;
        record.seconds = started.elapsed().as_secs_f64();
        match runtime
            .block_on(warehouse.commit(record))
            .map_err(IngestError::Storage)?
        {
            Commit::Committed(record) => report.batch = Some(record),
            Commit::Conflict { already } => {
                // Another writer committed some of these sources meanwhile (object stores).
                report
                    .skipped
                    .extend(already.into_iter().map(|name| SkippedSource {
                        name,
                        committed_in: None,
                    }));
                report.counts = Counts::default();
            }
        }
        report.elapsed = started.elapsed();
        return Ok(report);
    }
}

fn new_batch_id() -> String {
    use rand::RngExt;
    let suffix: u32 = rand::rng().random();
    format!(
        "{}-{suffix:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    )
}

fn content_hash(input: &Input, progress: &dyn Progress) -> Result<String, IngestError> {
    let err = |error| IngestError::Read {
        source_name: input.name(),
        error,
    };
    let mut file = input.open()?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Reads every source into staged files; returns the ledger record to commit.
#[allow(clippy::too_many_arguments)]
fn write_batch(
    todo: &[(Input, Option<String>, u64)],
    batch_id: &str,
    warehouse: &Warehouse,
    runtime: &tokio::runtime::Runtime,
    options: &IngestOptions,
    progress: &dyn Progress,
    report: &mut IngestReport,
) -> Result<BatchRecord, IngestError> {
    let started = Instant::now();
    let (jobs, job_rx) = sync_channel::<EncodeJob>(1);
    // Encoding Parquet costs about as much as reading CSV: one encoder per core.
    let job_rx = Mutex::new(job_rx);
    let written: Mutex<Vec<LedgerFile>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let handle = runtime.handle().clone();
    std::thread::scope(|scope| {
        for _ in 0..encoder_count() {
            std::thread::Builder::new()
                .name("kefu-encode".into())
                .spawn_scoped(scope, || {
                    encoder(&job_rx, batch_id, warehouse, &handle, &written, &failure)
                })
                .map_err(|e| IngestError::Write(format!("cannot start an encoder: {e}")))?;
        }
        // Spilled ids go beside the warehouse (not to a /tmp that may be in memory).
        let spill_dir = match warehouse.local_dir() {
            Some(dir) => dir.join(Warehouse::staged(batch_id, "")),
            None => std::env::temp_dir(),
        };
        let seen = SeenIds::new(options.ids_in_memory, &spill_dir);
        let mut sink = BatchSink::new(batch_id, jobs, seen);
        progress.start("ingesting", Some(report.bytes), Unit::Bytes);
        let mut sources = Vec::new();
        let outcome = (|| -> Result<(), IngestError> {
            let on_read = |buf: &[u8]| progress.advance(buf.len() as u64);
            let mut finished_source =
                |sink: &mut BatchSink, path: &Input, hash: String, bytes: u64| {
                    let mut c = sink.source_counts;
                    c.landed = c.records - c.rejected - c.duplicates;
                    sink.batch_counts.add(c);
                    sources.push(LedgerSource {
                        name: path.name(),
                        content_hash: hash,
                        bytes,
                        records: c.records,
                        landed: c.landed,
                        rejected: c.rejected,
                        duplicates: c.duplicates,
                    });
                    progress.message(&format!(
                        "{} rows, {:.0} rows/s",
                        sink.batch_counts.records,
                        sink.batch_counts.records as f64
                            / started.elapsed().as_secs_f64().max(1e-3)
                    ));
                    sink.check_encoder(&failure)
                };
            let mut rest = todo;
            while let Some((path, hash, bytes)) = rest.first() {
                if *bytes >= SMALL_FILE_BYTES {
                    // A large file: read as one stream, its chunks converted on all cores,
                    // and hashed as it is read unless that was done already.
                    sink.begin_source();
                    let hasher = Mutex::new(blake3::Hasher::new());
                    let on_read_and_hash = |buf: &[u8]| {
                        progress.advance(buf.len() as u64);
                        if hash.is_none() {
                            hasher.lock().expect("lock").update(buf);
                        }
                    };
                    for_each_input_stream(path, &on_read_and_hash, |name, reader| {
                        sink.source = Some(name.clone());
                        sink.table = None;
                        let outcome =
                            convert_csv(reader, &name, &options.profile, None, &mut sink)?;
                        sink.finish_stream(&name, &outcome);
                        sink.check_encoder(&failure)
                    })?;
                    let hash = hash.clone().unwrap_or_else(|| {
                        hasher
                            .into_inner()
                            .expect("lock")
                            .finalize()
                            .to_hex()
                            .to_string()
                    });
                    finished_source(&mut sink, path, hash, *bytes)?;
                    rest = &rest[1..];
                    continue;
                }
                // A run of small files (archives of a day's exports): one file per core.
                let run = rest.iter().take_while(|t| t.2 < SMALL_FILE_BYTES).count();
                let (files, after) = rest.split_at(run);
                rest = after;
                read_files_in_parallel(files, &options.profile, &on_read, |i, streams| {
                    sink.begin_source();
                    for stream in streams {
                        sink.replay(stream)?;
                    }
                    let (path, hash, bytes) = &files[i];
                    let hash = hash.clone().expect("small files are hashed first");
                    finished_source(&mut sink, path, hash, *bytes)
                })?;
            }
            Ok(())
        })();
        progress.finish();
        let counts = sink.batch_counts;
        let ratio = counts.rejected as f64 / counts.records.max(1) as f64;
        let outcome = outcome.and_then(|()| {
            if ratio > options.max_reject_ratio {
                Err(IngestError::TooManyRejects {
                    records: counts.records,
                    rejected: counts.rejected,
                    max_ratio: options.max_reject_ratio,
                })
            } else {
                sink.flush_all()
            }
        });
        report.counts = counts;
        report.rejects_by_reason = std::mem::take(&mut sink.tally.by_reason);
        report.examples = std::mem::take(&mut sink.tally.examples);
        let tables = sink.landed_by_table();
        drop(sink); // closes the job channel: the encoder finishes and the scope joins it
        outcome.map(|()| (sources, tables))
    })
    .and_then(|(sources, tables)| {
        if let Some(reason) = failure.lock().expect("lock").take() {
            return Err(IngestError::Write(reason));
        }
        let mut files = written.into_inner().expect("lock");
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let c = report.counts;
        Ok(BatchRecord {
            seq: 0,
            batch_id: batch_id.to_string(),
            committed_at: chrono::Utc::now(),
            kefu_version: env!("CARGO_PKG_VERSION").to_string(),
            profile: options.profile.name.clone(),
            sources,
            files,
            records: c.records,
            landed: c.landed,
            rejected: c.rejected,
            duplicates: c.duplicates,
            tables,
            seconds: 0.0,
        })
    })
    .inspect_err(|_| {
        // The encoder's own error explains a failed hand-off best.
        if let Some(reason) = failure.lock().expect("lock").take() {
            tracing::error!(%reason, "writing Parquet failed");
        }
    })
}

/// How a table's files are written: sorted by region and event time; page statistics on
/// what queries filter by (the event id, times, region, branch); none on other ids, free
/// text and enum codes (every row group holds most values, so min/max would prune
/// nothing, and computing them costs a string comparison per value); no dictionary for
/// ids and times.
pub fn table_layout(table: Table) -> Layout {
    let columns = table.columns();
    let at = |name: &str| columns.iter().position(|c| c.name == name);
    let names = |keep: &dyn Fn(&kefu_model::Column) -> bool| {
        columns
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.name.to_string())
            .collect()
    };
    Layout {
        sort_columns: [at("region"), at(table.event_time_column())]
            .into_iter()
            .flatten()
            .collect(),
        unique_columns: names(&|c| matches!(c.kind, ColumnKind::Id | ColumnKind::Timestamp)),
        page_stats_columns: names(&|c| {
            c.kind == ColumnKind::Timestamp
                || c.name == table.id_column()
                || c.name == "region"
                || c.name == "branch_id"
        }),
        no_stats_columns: names(&|c| {
            matches!(
                c.kind,
                ColumnKind::Id | ColumnKind::Text | ColumnKind::Enum(_)
            ) && c.name != table.id_column()
                && c.name != "region"
                && c.name != "branch_id"
        }),
    }
}

/// Files smaller than this are read whole by one thread each, several at a time; larger
/// ones as one stream whose chunks are converted on all cores.
const SMALL_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// One stream of a file, converted and held in memory until its turn comes.
struct BufferedStream {
    name: SourceName,
    table: Option<Table>,
    items: Vec<Item>,
    outcome: crate::FileOutcome,
}

enum Item {
    Batch(RecordBatch, Vec<u64>),
    Reject(RejectedRecord),
}

#[derive(Default)]
struct StreamBuffer {
    table: Option<Table>,
    items: Vec<Item>,
}

impl RowSink for StreamBuffer {
    fn table(&mut self, table: Table) {
        self.table = Some(table);
    }
    fn batch(&mut self, batch: RecordBatch, lines: &[u64]) -> Result<(), IngestError> {
        self.items.push(Item::Batch(batch, lines.to_vec()));
        Ok(())
    }
    fn reject(&mut self, reject: RejectedRecord) -> Result<(), IngestError> {
        self.items.push(Item::Reject(reject));
        Ok(())
    }
}

fn read_file(
    path: &Input,
    profile: &Profile,
    on_read: &(dyn Fn(&[u8]) + Sync),
) -> Result<Vec<BufferedStream>, IngestError> {
    let mut streams = Vec::new();
    for_each_input_stream(path, on_read, |name, reader| {
        let mut buffer = StreamBuffer::default();
        let outcome = convert_csv(reader, &name, profile, None, &mut buffer)?;
        streams.push(BufferedStream {
            name,
            table: buffer.table,
            items: buffer.items,
            outcome,
        });
        Ok(())
    })?;
    Ok(streams)
}

/// Reads `files` on one thread per core and hands each file's streams to `each`, in the
/// order of `files`, on the calling thread. Stops at the first error, in file order.
fn read_files_in_parallel(
    files: &[(Input, Option<String>, u64)],
    profile: &Profile,
    on_read: &(dyn Fn(&[u8]) + Sync),
    mut each: impl FnMut(usize, Vec<BufferedStream>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let readers = crate::read::worker_count();
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<(usize, Result<Vec<BufferedStream>, IngestError>)>(readers);
        for _ in 0..readers {
            let tx = tx.clone();
            let next = &next;
            std::thread::Builder::new()
                .name("kefu-read".into())
                .spawn_scoped(scope, move || {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((path, _, _)) = files.get(i) else {
                            return;
                        };
                        if tx.send((i, read_file(path, profile, on_read))).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| IngestError::Write(format!("cannot start a reader: {e}")))?;
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut expected = 0;
        for (i, result) in rx.iter() {
            pending.insert(i, result);
            while let Some(result) = pending.remove(&expected) {
                each(expected, result?)?;
                expected += 1;
            }
        }
        Ok(())
    })
}

/// Rows to sort, encode and stage as one file.
struct EncodeJob {
    /// Final path relative to the warehouse root.
    path: String,
    table: String,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    layout: Layout,
}

fn encoder_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

fn encoder(
    jobs: &Mutex<Receiver<EncodeJob>>,
    batch_id: &str,
    warehouse: &Warehouse,
    runtime: &tokio::runtime::Handle,
    written: &Mutex<Vec<LedgerFile>>,
    failure: &Mutex<Option<String>>,
) {
    loop {
        let next = jobs.lock().expect("lock").recv();
        let Ok(job) = next else { return };
        let result = (|| -> Result<LedgerFile, String> {
            let (bytes, rows) =
                kefu_storage::parquet::write_sorted(&job.schema, job.batches, &job.layout)
                    .map_err(|e| format!("{}: {e}", job.path))?;
            let file = LedgerFile {
                path: job.path.clone(),
                table: job.table,
                rows,
                bytes: bytes.len() as u64,
            };
            runtime
                .block_on(warehouse.put(&Warehouse::staged(batch_id, &job.path), bytes))
                .map_err(|e| e.to_string())?;
            Ok(file)
        })();
        match result {
            Ok(file) => written.lock().expect("lock").push(file),
            Err(reason) => {
                *failure.lock().expect("lock") = Some(reason);
                return;
            }
        }
    }
}

/// A 64-bit fingerprint of a table's id (aHash with fixed seeds: fast, well mixed). A
/// false duplicate needs two of a batch's ids to collide in 64 bits: about 1 in 10^6
/// for 5 million rows.
fn fingerprint(hasher: &ahash::RandomState, table: Table, id: &str) -> u64 {
    // Tables get distinct salts, so equal ids of two tables are not duplicates.
    hasher.hash_one(id) ^ (table as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

struct Partition {
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
}

/// Receives converted rows: drops duplicates, splits by month, buffers, hands full
/// partitions to the encoder; collects rejects.
struct BatchSink {
    batch_id: String,
    jobs: SyncSender<EncodeJob>,
    source: Option<SourceName>,
    /// The table of the source being read.
    table: Option<Table>,
    seen: SeenIds,
    fingerprints: ahash::RandomState,
    /// Scratch space for one record batch's fingerprints and verdicts.
    batch_ids: Vec<u64>,
    batch_new: Vec<bool>,
    partitions: BTreeMap<(Table, String), Partition>,
    buffered_bytes: usize,
    files: usize,
    landed: BTreeMap<Table, u64>,
    rejects: RejectBuilder,
    tally: RejectTally<(SourceName, RejectedRecord)>,
    source_counts: Counts,
    batch_counts: Counts,
}

impl BatchSink {
    fn new(batch_id: &str, jobs: SyncSender<EncodeJob>, seen: SeenIds) -> Self {
        BatchSink {
            batch_id: batch_id.to_string(),
            jobs,
            source: None,
            table: None,
            seen,
            batch_ids: Vec::new(),
            batch_new: Vec::new(),
            fingerprints: ahash::RandomState::with_seeds(0x6b65_6675, 0x5ba2, 0x5ba3, 0x5ba4),
            partitions: BTreeMap::new(),
            buffered_bytes: 0,
            files: 0,
            landed: BTreeMap::new(),
            rejects: RejectBuilder::default(),
            tally: RejectTally::new(REJECT_EXAMPLES),
            source_counts: Counts::default(),
            batch_counts: Counts::default(),
        }
    }

    fn begin_source(&mut self) {
        self.source_counts = Counts::default();
    }

    /// Counts a stream once all its rows and rejects were received.
    fn finish_stream(&mut self, name: &SourceName, outcome: &crate::FileOutcome) {
        self.source_counts.records += outcome.records;
        self.source_counts.rejected += outcome.rejected;
        tracing::info!(source = %name, table = %outcome.table, encoding = outcome.encoding.name(),
            records = outcome.records, rejected = outcome.rejected, "read");
    }

    /// Receives a stream that was read on another thread.
    fn replay(&mut self, stream: BufferedStream) -> Result<(), IngestError> {
        self.source = Some(stream.name.clone());
        self.table = stream.table;
        for item in stream.items {
            match item {
                Item::Batch(batch, lines) => self.batch(batch, &lines)?,
                Item::Reject(reject) => self.reject(reject)?,
            }
        }
        self.finish_stream(&stream.name, &stream.outcome);
        Ok(())
    }

    fn check_encoder(&self, failure: &Mutex<Option<String>>) -> Result<(), IngestError> {
        match failure.lock().expect("lock").clone() {
            Some(reason) => Err(IngestError::Write(reason)),
            None => Ok(()),
        }
    }

    fn landed_by_table(&self) -> BTreeMap<String, u64> {
        self.landed
            .iter()
            .map(|(t, n)| (t.name().to_string(), *n))
            .collect()
    }

    fn note_reject(&mut self, reject: &RejectedRecord) {
        let source = &self.source;
        self.tally.note(reject, || {
            let source = source.clone().unwrap_or_else(|| SourceName::file(""));
            (source, reject.clone())
        });
    }

    fn add_reject(
        &mut self,
        table: Option<Table>,
        reject: &RejectedRecord,
    ) -> Result<(), IngestError> {
        self.note_reject(reject);
        let source = self.source.as_ref().expect("a source is being read");
        self.rejects.push(&self.batch_id, source, table, reject);
        if self.rejects.len() >= REJECT_FILE_ROWS {
            self.flush_rejects()?;
        }
        Ok(())
    }

    fn send(&mut self, job: EncodeJob) -> Result<(), IngestError> {
        self.files += 1;
        self.jobs
            .send(job)
            .map_err(|_| IngestError::Write("the Parquet encoder stopped".into()))
    }

    fn flush_rejects(&mut self) -> Result<(), IngestError> {
        for (table, batch) in self.rejects.finish() {
            let path = format!(
                "{REJECTS_TABLE}/table={table}/part-{}-{:05}.parquet",
                self.batch_id, self.files
            );
            let schema = batch.schema();
            self.send(EncodeJob {
                path,
                table: REJECTS_TABLE.to_string(),
                schema,
                batches: vec![batch],
                layout: Layout {
                    // Source, then member and line.
                    sort_columns: vec![1, 2, 3],
                    unique_columns: vec!["raw".into(), "line".into(), "detail".into()],
                    page_stats_columns: vec!["batch_id".into(), "source".into(), "reason".into()],
                    no_stats_columns: vec!["raw".into(), "detail".into()],
                },
            })?;
        }
        Ok(())
    }

    fn flush_partition(&mut self, key: (Table, String)) -> Result<(), IngestError> {
        let Some(part) = self.partitions.remove(&key) else {
            return Ok(());
        };
        self.buffered_bytes -= part.bytes;
        let (table, month) = key;
        let partition = if partitioned_by_month(table) {
            format!("month={month}/")
        } else {
            String::new()
        };
        let path = format!(
            "{}/{partition}part-{}-{:05}.parquet",
            table.name(),
            self.batch_id,
            self.files
        );
        self.send(EncodeJob {
            path,
            table: table.name().to_string(),
            schema: table.schema(),
            batches: part.batches,
            layout: table_layout(table),
        })
    }

    fn flush_all(&mut self) -> Result<(), IngestError> {
        let keys: Vec<(Table, String)> = self.partitions.keys().cloned().collect();
        for key in keys {
            self.flush_partition(key)?;
        }
        self.flush_rejects()
    }

    /// Drops rows whose event id was seen before in this batch, recording each as a
    /// duplicate.
    fn drop_duplicates(
        &mut self,
        table: Table,
        batch: RecordBatch,
        lines: &[u64],
    ) -> Result<RecordBatch, IngestError> {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("ids are text");
        self.batch_ids.clear();
        self.batch_ids.extend(
            ids.iter()
                .map(|id| fingerprint(&self.fingerprints, table, id.unwrap_or_default())),
        );
        self.seen
            .insert_all(&self.batch_ids, &mut self.batch_new)
            .map_err(|e| IngestError::Write(format!("spilling the duplicate index: {e}")))?;
        let mut duplicates = Vec::new();
        for (row, id) in ids.iter().enumerate() {
            if !self.batch_new[row] {
                let id = id.unwrap_or_default();
                duplicates.push(RejectedRecord {
                    line: lines.get(row).copied().unwrap_or(0),
                    reject: crate::Reject {
                        reason: RejectReason::DuplicateId,
                        column: Some(table.id_column().to_string()),
                        detail: format!(
                            "{} {id} appeared earlier in this batch",
                            table.id_column()
                        ),
                    },
                    raw: id.to_string(),
                });
            }
        }
        if duplicates.is_empty() {
            return Ok(batch);
        }
        self.source_counts.duplicates += duplicates.len() as u64;
        for d in &duplicates {
            self.add_reject(Some(table), d)?;
        }
        filter_record_batch(&batch, &BooleanArray::from(self.batch_new.clone()))
            .map_err(|e| IngestError::Write(e.to_string()))
    }
}

impl RowSink for BatchSink {
    fn batch(&mut self, batch: RecordBatch, lines: &[u64]) -> Result<(), IngestError> {
        let table = Table::ALL
            .into_iter()
            .find(|t| t.schema().fields() == batch.schema().fields())
            .expect("batches are in a model schema");
        let batch = self.drop_duplicates(table, batch, lines)?;
        *self.landed.entry(table).or_default() += batch.num_rows() as u64;
        let time_column = table
            .columns()
            .iter()
            .position(|c| c.name == table.event_time_column())
            .expect("event time column");
        let parts = if partitioned_by_month(table) {
            split_by_month(&batch, time_column)?
        } else {
            vec![(String::new(), batch)]
        };
        for (month, rows) in parts {
            let bytes = rows.get_array_memory_size();
            let key = (table, month);
            let part = self.partitions.entry(key.clone()).or_insert(Partition {
                batches: Vec::new(),
                rows: 0,
                bytes: 0,
            });
            part.rows += rows.num_rows();
            part.bytes += bytes;
            part.batches.push(rows);
            self.buffered_bytes += bytes;
            if part.rows >= FILE_ROWS {
                self.flush_partition(key)?;
            }
        }
        while self.buffered_bytes > BUFFER_BYTES {
            let largest = self
                .partitions
                .iter()
                .max_by_key(|(_, p)| p.bytes)
                .map(|(k, _)| k.clone())
                .expect("buffered bytes belong to partitions");
            self.flush_partition(largest)?;
        }
        Ok(())
    }

    fn reject(&mut self, reject: RejectedRecord) -> Result<(), IngestError> {
        self.add_reject(self.table, &reject)
    }

    fn table(&mut self, table: Table) {
        self.table = Some(table);
    }
}

pub use kefu_storage::warehouse::partitioned_by_month;

/// `YYYY-MM` of local time in [`PARTITION_TIME_ZONE`].
fn month_of(micros: i64) -> String {
    let utc = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let local = PARTITION_TIME_ZONE.from_utc_datetime(&utc.naive_utc());
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The first instant (µs UTC) of the local month after the one containing `micros`.
fn next_month_start(micros: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let local = PARTITION_TIME_ZONE.from_utc_datetime(&utc.naive_utc());
    let (y, m) = if local.month() == 12 {
        (local.year() + 1, 1)
    } else {
        (local.year(), local.month() + 1)
    };
    let start = chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .expect("valid month")
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    PARTITION_TIME_ZONE
        .from_local_datetime(&start)
        .earliest()
        .map_or(i64::MAX, |t| t.timestamp_micros())
}

/// Rows of `batch` per local month of the event time; null times go to Hive's default
/// partition.
fn split_by_month(
    batch: &RecordBatch,
    time_column: usize,
) -> Result<Vec<(String, RecordBatch)>, IngestError> {
    let times = batch
        .column(time_column)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("event times are timestamps");
    let (Some(min), Some(max)) = (arrow::compute::min(times), arrow::compute::max(times)) else {
        return Ok(vec![("__HIVE_DEFAULT_PARTITION__".into(), batch.clone())]);
    };
    if times.null_count() == 0 && max < next_month_start(min) {
        return Ok(vec![(month_of(min), batch.clone())]);
    }
    let mut out = Vec::new();
    if times.null_count() > 0 {
        let mask = arrow::compute::is_null(times).map_err(|e| IngestError::Write(e.to_string()))?;
        out.push((
            "__HIVE_DEFAULT_PARTITION__".to_string(),
            filter_record_batch(batch, &mask).map_err(|e| IngestError::Write(e.to_string()))?,
        ));
    }
    let mut month_start = min;
    while month_start <= max {
        let end = next_month_start(month_start);
        let mask: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t >= month_start && t < end)))
            .collect();
        let rows =
            filter_record_batch(batch, &mask).map_err(|e| IngestError::Write(e.to_string()))?;
        if rows.num_rows() > 0 {
            out.push((month_of(month_start), rows));
        }
        month_start = end;
    }
    Ok(out)
}

/// Builds `_rejects` rows, per table of origin (`unknown` when the record never reached a
/// table).
#[derive(Default)]
struct RejectBuilder {
    by_table: BTreeMap<String, RejectColumns>,
    len: usize,
}

struct RejectColumns {
    batch_id: StringBuilder,
    source: StringBuilder,
    member: StringBuilder,
    line: Int64Builder,
    column: StringBuilder,
    reason: StringBuilder,
    detail: StringBuilder,
    raw: StringBuilder,
    rejected_at: TimestampMicrosecondBuilder,
}

pub use kefu_storage::warehouse::rejects_schema;

impl RejectBuilder {
    fn len(&self) -> usize {
        self.len
    }

    fn push(
        &mut self,
        batch_id: &str,
        source: &SourceName,
        table: Option<Table>,
        r: &RejectedRecord,
    ) {
        let table = table.map_or("unknown", Table::name);
        let c = self
            .by_table
            .entry(table.to_string())
            .or_insert_with(|| RejectColumns {
                batch_id: StringBuilder::new(),
                source: StringBuilder::new(),
                member: StringBuilder::new(),
                line: Int64Builder::new(),
                column: StringBuilder::new(),
                reason: StringBuilder::new(),
                detail: StringBuilder::new(),
                raw: StringBuilder::new(),
                rejected_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            });
        c.batch_id.append_value(batch_id);
        c.source.append_value(&source.origin);
        c.member.append_option(source.member.as_deref());
        c.line.append_value(r.line as i64);
        c.column.append_option(r.reject.column.as_deref());
        c.reason.append_value(r.reject.reason.code());
        c.detail.append_value(&r.reject.detail);
        c.raw.append_value(&r.raw);
        c.rejected_at
            .append_value(chrono::Utc::now().timestamp_micros());
        self.len += 1;
    }

    fn finish(&mut self) -> Vec<(String, RecordBatch)> {
        self.len = 0;
        std::mem::take(&mut self.by_table)
            .into_iter()
            .map(|(table, mut c)| {
                let arrays: Vec<ArrayRef> = vec![
                    Arc::new(c.batch_id.finish()),
                    Arc::new(c.source.finish()),
                    Arc::new(c.member.finish()),
                    Arc::new(c.line.finish()),
                    Arc::new(c.column.finish()),
                    Arc::new(c.reason.finish()),
                    Arc::new(c.detail.finish()),
                    Arc::new(c.raw.finish()),
                    Arc::new(c.rejected_at.finish()),
                ];
                let batch = RecordBatch::try_new(rejects_schema(), arrays)
                    .expect("columns follow the schema");
                (table, batch)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_local_calendar() {
        // 2026-01-31T16:00:00Z is 2026-02-01 00:00 in Shanghai.
        let feb_start = 1_769_875_200_000_000;
        assert_eq!(month_of(feb_start), "2026-02");
        assert_eq!(month_of(feb_start - 1), "2026-01");
        assert_eq!(next_month_start(feb_start - 1), feb_start);
    }
}
