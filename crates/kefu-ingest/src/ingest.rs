//! Ingest: sources into the warehouse as one batch, exactly once, every record keyed.
//!
//! One `ingest` call is one batch. Sources whose content (BLAKE3 of their bytes) is in the
//! ledger are skipped and reported. The rest are read and converted on all cores; each
//! table's rows are merged into it by key (`kefu_storage::merge`): a record already in the
//! warehouse is replaced only by a newer version, an identical or older one is counted and
//! dropped — whichever file it came in, in whatever order. Rejects go to `_rejects`. The
//! batch then commits through the ledger, in every table it touched at once
//! (`kefu_storage::warehouse`); if anything failed or the rejects exceed the threshold,
//! nothing of it is committed. Partitions left with many small files are compacted after.
//! Other writers are kept waiting only from the first merge on (`WriterTurn`), not while
//! sources are decoded.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use kefu_model::Table;
use kefu_progress::{Progress, Unit};
use kefu_storage::ledger::{LedgerSource, OperationKind, TableCounts};
use kefu_storage::maintain::{CompactOptions, CompactReport, new_operation_id, new_record};
use kefu_storage::merge::{Appender, MergeResult, TableMerge};
use kefu_storage::parquet::rejects_layout;
use kefu_storage::tables::StoredTable;
use kefu_storage::warehouse::WriterLock;
use kefu_storage::{AsOf, Commit, Cut, OperationPlan, OperationRecord, Recovery, Warehouse};
use tokio::runtime::Handle;

use crate::source::{
    DecompressionLimits, ExpansionLimit, Input, expand_inputs, for_each_input_stream_limited,
};
use crate::{IngestError, Profile, RejectTally, RejectedRecord, RowSink, SourceName, convert_csv};

pub use kefu_storage::tables::partitioned_by_month;

/// Rejected share of a batch's records above which the batch is refused, by default.
pub const DEFAULT_MAX_REJECT_RATIO: f64 = 0.05;
/// Share of a batch's records that may repeat a key of their own source, by default: an
/// export repeats a record now and then; a key mapped wrongly repeats thousands.
pub const DEFAULT_MAX_DUPLICATE_RATIO: f64 = 0.01;
/// Repeated keys a batch may hold whatever its size: a small file that sends a record's
/// versions together (three states of one customer) is no mapping error.
pub const MIN_DUPLICATES_REFUSED: u64 = 20;

/// A partition holding more files than this after a batch is compacted, by default.
pub const DEFAULT_COMPACT_AFTER: usize = 16;

/// Rows buffered (all tables together) before the largest table's rows are merged, by
/// default.
pub const DEFAULT_BUFFER_BYTES: usize = 128 * 1024 * 1024;
/// Rejected records a batch report keeps as examples.
const REJECT_EXAMPLES: usize = 20;
/// Rejects buffered before a `_rejects` file is written.
const REJECT_FILE_ROWS: usize = 64 * 1024;
/// How often a batch is planned again after other writers committed first.
const COMMIT_ATTEMPTS: usize = 5;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub profile: Profile,
    /// Refuse the batch when rejected / records exceeds this (0 to 1).
    pub max_reject_ratio: f64,
    /// Refuse the batch when the rows repeating a key their source gave before, over the
    /// records, exceed this (0 to 1): a key mapped wrongly loses most rows silently.
    pub max_duplicate_ratio: f64,
    /// Compact a partition the batch touched once it holds more than this many files
    /// (0: never).
    pub compact_after: usize,
    /// Memory for converted rows (all tables together): beyond it, the largest table's
    /// rows are merged into it as a chunk (a large batch merges in several chunks, with
    /// the same result as one).
    pub buffer_bytes: usize,
    /// How far a compressed source may expand.
    pub decompression: DecompressionLimits,
    /// The calendar of a warehouse this ingest creates (default Asia/Shanghai); an
    /// existing warehouse keeps its own, and another one here is refused.
    pub time_zone: Option<chrono_tz::Tz>,
}

impl IngestOptions {
    /// Refuses ratios outside 0..=1.
    pub fn validate(&self) -> Result<(), IngestError> {
        for (flag, ratio) in [
            ("--max-duplicate-ratio", self.max_duplicate_ratio),
            ("--max-reject-ratio", self.max_reject_ratio),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(IngestError::Options(format!(
                    "{flag} must be between 0 and 1, not {ratio}"
                )));
            }
        }
        Ok(())
    }
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            profile: Profile::builtin(),
            max_reject_ratio: DEFAULT_MAX_REJECT_RATIO,
            max_duplicate_ratio: DEFAULT_MAX_DUPLICATE_RATIO,
            compact_after: DEFAULT_COMPACT_AFTER,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            decompression: DecompressionLimits::default(),
            time_zone: None,
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

/// What an ingest did.
#[derive(Debug)]
pub struct IngestReport {
    /// The committed batch, or `None` when there was nothing new.
    pub batch: Option<OperationRecord>,
    pub skipped: Vec<SkippedSource>,
    pub recovery: Recovery,
    /// Per table (and `unknown` for records that never reached one): what became of the
    /// records read.
    pub counts: BTreeMap<String, TableCounts>,
    /// Rejects per reason code.
    pub rejects_by_reason: BTreeMap<&'static str, u64>,
    /// The first rejects, as examples.
    pub examples: Vec<(SourceName, RejectedRecord)>,
    pub sources: usize,
    pub bytes: u64,
    /// The compaction that followed, if a partition needed one.
    pub compaction: Option<CompactReport>,
    pub elapsed: Duration,
}

impl IngestReport {
    /// Every table's counts together.
    pub fn totals(&self) -> TableCounts {
        let mut t = TableCounts::default();
        for c in self.counts.values() {
            t.add(c);
        }
        t
    }
}

/// The content hashes of sources in the ledger (of batches not reverted), with the batch
/// that has each.
pub fn committed_sources(ledger: &[OperationRecord]) -> BTreeMap<String, u64> {
    let reverted = kefu_storage::maintain::reverted(ledger);
    ledger
        .iter()
        .filter(|b| !reverted.contains(&b.seq))
        .flat_map(|b| {
            b.sources
                .iter()
                .map(move |s| (s.content_hash.clone(), b.seq))
        })
        .collect()
}

/// Ingests `inputs` into the warehouse at `location`, creating it on a first ingest; a
/// first ingest that fails leaves no warehouse behind (the directory it created goes
/// again: kefu alone wrote in it). `runtime` as for [`ingest`].
pub fn ingest_at(
    runtime: &Handle,
    inputs: &[String],
    location: &kefu_storage::WarehouseLocation,
    options: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport, IngestError> {
    let created = location.local_path().filter(|dir| !dir.exists());
    let warehouse = Warehouse::open(location)?;
    ingest(runtime, inputs, &warehouse, options, progress).inspect_err(|_| {
        if let Some(dir) = &created
            && let Err(e) = std::fs::remove_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the warehouse directory of a failed first ingest");
        }
    })
}

/// Ingests `inputs` (files, directories, globs, archives) into `warehouse` as one batch.
///
/// Sources are read and converted on threads of ingest's own, while the warehouse's I/O
/// (reading the log, merging, writing, committing) runs on `runtime`, the caller's. Call
/// it where a thread may block (the main thread, `spawn_blocking`), not from an async task.
pub fn ingest(
    runtime: &Handle,
    inputs: &[String],
    warehouse: &Warehouse,
    options: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport, IngestError> {
    let started = Instant::now();
    options.validate()?;
    let files = expand_inputs(runtime, inputs)?;
    let mut turn = WriterTurn::new(warehouse, runtime);
    // Tables are created, and an interrupted writer's operation finished, in a turn of
    // their own: the sources are then read without holding up other writers.
    turn.wait_and_recover()?;
    let zone = runtime
        .block_on(warehouse.settle_time_zone(options.time_zone))
        .map_err(IngestError::Storage)?;
    runtime
        .block_on(warehouse.ensure_tables())
        .map_err(IngestError::Storage)?;
    turn.release();
    // Sources whose profile names no zone are in the warehouse's.
    let zoned;
    let options = if options.profile.time_zone_given {
        options
    } else {
        let mut with_zone = options.clone();
        with_zone.profile.time_zone = zone;
        zoned = with_zone;
        &zoned
    };
    tracing::debug!(ms = started.elapsed().as_millis(), "opened, recovered");

    let mut report = IngestReport {
        batch: None,
        skipped: Vec::new(),
        recovery: Recovery::default(),
        counts: BTreeMap::new(),
        rejects_by_reason: BTreeMap::new(),
        examples: Vec::new(),
        sources: 0,
        bytes: 0,
        compaction: None,
        elapsed: Duration::ZERO,
    };
    let mut listed = Vec::new();
    for file in files {
        let bytes = file.size()?;
        listed.push((file, bytes));
    }
    for _attempt in 0..COMMIT_ATTEMPTS {
        turn.read()?;
        let committed = committed_sources(&turn.ledger);
        report.skipped.clear();
        let todo = select_sources(
            &listed,
            &turn.ledger,
            &committed,
            &options.profile,
            progress,
            &mut report,
        )?;
        tracing::debug!(
            ms = started.elapsed().as_millis(),
            operations = turn.ledger.len(),
            "ledger read, sources hashed"
        );
        report.sources = todo.len();
        report.bytes = todo.iter().map(|t| t.2).sum();
        if todo.is_empty() {
            turn.close(&mut report, started);
            return Ok(report);
        }
        let Some((plan, discarded)) =
            write_new_sources(todo, &mut turn, runtime, options, progress, &mut report)?
        else {
            report.counts.clear();
            turn.close(&mut report, started);
            return Ok(report);
        };
        delete_files(warehouse, runtime, discarded.iter());
        tracing::debug!(
            ms = started.elapsed().as_millis(),
            files = plan.new_files.len(),
            "read and merged"
        );
        let new_files = plan.new_files.clone();
        let mut plan = plan;
        plan.record.seconds = started.elapsed().as_secs_f64();
        match runtime
            .block_on(warehouse.commit(plan))
            .map_err(IngestError::Storage)?
        {
            Commit::Committed(record) => {
                tracing::debug!(
                    ms = started.elapsed().as_millis(),
                    seq = record.seq,
                    "committed"
                );
                let touched: Vec<(String, Vec<String>)> = record
                    .changes
                    .iter()
                    .map(|(t, c)| (t.clone(), c.partitions.clone()))
                    .collect();
                report.batch = Some(*record);
                if options.compact_after > 0 {
                    report.compaction =
                        compact_touched(warehouse, runtime, &touched, options.compact_after)?;
                }
                turn.close(&mut report, started);
                return Ok(report);
            }
            Commit::Conflict { newest } => {
                // Another writer (on an object store) committed meanwhile: plan again on
                // what it left.
                tracing::warn!(
                    newest,
                    "another writer committed first; planning the batch again"
                );
                delete_files(warehouse, runtime, new_files.iter());
                turn.release();
            }
        }
    }
    Err(IngestError::Write(format!(
        "other writers kept committing first ({COMMIT_ATTEMPTS} attempts); nothing of this batch was committed"
    )))
}

/// Reads `todo` into a batch, written but not committed. Sources hashed while they were
/// read may turn out to be known after all (a renamed copy, or committed meanwhile by
/// another writer): then the batch is dropped and read again without them. `None`: no
/// source was left.
fn write_new_sources(
    mut todo: Vec<(Input, Option<String>, u64)>,
    turn: &mut WriterTurn,
    runtime: &Handle,
    options: &IngestOptions,
    progress: &dyn Progress,
    report: &mut IngestReport,
) -> Result<Option<(OperationPlan, Vec<String>)>, IngestError> {
    let warehouse = &turn.warehouse.clone();
    loop {
        let batch_id = new_operation_id();
        let (plan, discarded) =
            write_batch(&todo, &batch_id, turn, runtime, options, progress, report)?;
        // The turn was taken to merge: the ledger is as of then, and another writer
        // may have committed some of these sources while they were read.
        let committed = committed_sources(&turn.ledger);
        let mut known = Vec::new();
        let mut hashes = HashSet::new();
        for (i, source) in plan.record.sources.iter().enumerate() {
            let repeat = !hashes.insert(source.content_hash.clone());
            if let Some(&seq) = committed.get(&source.content_hash) {
                known.push((i, Some(seq)));
            } else if repeat {
                known.push((i, None));
            }
        }
        if known.is_empty() {
            return Ok(Some((plan, discarded)));
        }
        delete_files(warehouse, runtime, plan.new_files.iter().chain(&discarded));
        for &(i, committed_in) in known.iter().rev() {
            let (path, _, _) = todo.remove(i);
            report.skipped.push(SkippedSource {
                name: path.name(),
                committed_in,
            });
        }
        report.sources = todo.len();
        report.bytes = todo.iter().map(|t| t.2).sum();
        if todo.is_empty() {
            return Ok(None);
        }
    }
}

/// Hashes the sources that need it and leaves out those already ingested (or repeated in
/// this call). Large files read front to back are hashed while they are ingested instead
/// of in a pass of their own (unless the ledger has a file of that name and size: then it
/// is probably a re-run, and hashing first saves the work).
fn select_sources(
    listed: &[(Input, u64)],
    ledger: &[OperationRecord],
    committed: &BTreeMap<String, u64>,
    profile: &Profile,
    progress: &dyn Progress,
    report: &mut IngestReport,
) -> Result<Vec<(Input, Option<String>, u64)>, IngestError> {
    let same_name_and_size: HashSet<(&str, u64)> = ledger
        .iter()
        .flat_map(|b| b.sources.iter().map(|s| (s.name.as_str(), s.bytes)))
        .collect();
    let mut plan = Vec::new();
    for (file, bytes) in listed {
        let name = file.name();
        let late = *bytes >= SMALL_FILE_BYTES
            && file.reads_sequentially()
            && !same_name_and_size.contains(&(name.as_str(), *bytes));
        plan.push((file.clone(), late, *bytes));
    }
    let early_bytes: u64 = plan.iter().filter(|f| !f.1).map(|f| f.2).sum();
    progress.start("hashing", Some(early_bytes), Unit::Bytes);
    let mut todo = Vec::new();
    let mut seen = HashSet::new();
    for (file, late, bytes) in plan {
        if late {
            todo.push((file, None, bytes));
            continue;
        }
        let hash = source_fingerprint(
            &content_hash(&file, progress)?,
            profile.only_region.as_deref(),
        );
        let name = file.name();
        if let Some(&seq) = committed.get(&hash) {
            report.skipped.push(SkippedSource {
                name,
                committed_in: Some(seq),
            });
        } else if !seen.insert(hash.clone()) {
            report.skipped.push(SkippedSource {
                name,
                committed_in: None,
            });
        } else {
            todo.push((file, Some(hash), bytes));
        }
    }
    progress.finish();
    Ok(todo)
}

/// Deletes files a batch wrote but will not commit (best effort: `kefu vacuum` removes
/// what is left).
fn delete_files<'a>(
    warehouse: &Warehouse,
    runtime: &Handle,
    files: impl Iterator<Item = &'a String>,
) {
    for f in files {
        if let Err(e) = runtime.block_on(warehouse.delete_relative(f)) {
            tracing::warn!(file = %f, error = %e, "could not delete a file of an uncommitted batch");
        }
    }
}

/// Compacts the partitions a batch touched that now hold more than `after` files that are
/// not settled (see [`CompactOptions::settled_rows`]): the small files merge among
/// themselves, the large ones stay.
fn compact_touched(
    warehouse: &Warehouse,
    runtime: &Handle,
    touched: &[(String, Vec<String>)],
    after: usize,
) -> Result<Option<CompactReport>, IngestError> {
    let mut options = CompactOptions {
        tables: Vec::new(),
        partitions: Vec::new(),
        min_files: after + 1,
        settled_rows: Some(kefu_storage::maintain::SETTLED_ROWS),
    };
    let cut = runtime
        .block_on(warehouse.cut(AsOf::Latest))
        .map_err(IngestError::Storage)?;
    for (name, touched_partitions) in touched {
        let Some(table) = StoredTable::from_name(name) else {
            continue;
        };
        let files = runtime
            .block_on(warehouse.files_at(&cut, table))
            .map_err(IngestError::Storage)?;
        let mut per: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        for f in files.iter().filter(|f| !options.is_settled(f)) {
            *per.entry(f.partition.as_deref()).or_default() += 1;
        }
        let crowded: Vec<String> = per
            .iter()
            .filter(|(p, n)| {
                **n > after
                    && (p.is_none() || touched_partitions.iter().any(|t| Some(t.as_str()) == **p))
            })
            .map(|(p, _)| p.unwrap_or_default().to_string())
            .collect();
        if !crowded.is_empty() {
            options.tables.push(table);
            options.partitions.extend(crowded);
        }
    }
    if options.tables.is_empty() {
        return Ok(None);
    }
    // An unpartitioned table's only partition has no value: select it by table alone.
    if options.partitions.iter().any(String::is_empty) {
        options.partitions.clear();
    }
    let report = runtime
        .block_on(kefu_storage::maintain::compact(warehouse, &options))
        .map_err(IngestError::Storage)?;
    Ok(Some(report))
}

/// How the ledger knows a source: the BLAKE3 of its bytes, or, when only one region's
/// rows are taken from it (an office's upload), of those bytes and that region. The same
/// file from another office, an admin or `kefu ingest` then lands the rows this one left.
pub fn source_fingerprint(content_hash: &str, only_region: Option<&str>) -> String {
    match only_region {
        None => content_hash.to_string(),
        Some(region) => {
            let mut hasher = blake3::Hasher::new();
            hasher.update(b"kefu source, one region\0");
            hasher.update(content_hash.as_bytes());
            hasher.update(b"\0");
            hasher.update(region.as_bytes());
            hasher.finalize().to_hex().to_string()
        }
    }
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

/// Reads every source and merges its records into the tables (new files, not yet
/// committed); returns the operation to commit and the files written and replaced within
/// it (to delete).
#[allow(clippy::too_many_arguments)]
fn write_batch(
    todo: &[(Input, Option<String>, u64)],
    batch_id: &str,
    turn: &mut WriterTurn,
    runtime: &Handle,
    options: &IngestOptions,
    progress: &dyn Progress,
    report: &mut IngestReport,
) -> Result<(OperationPlan, Vec<String>), IngestError> {
    let started = Instant::now();
    let warehouse = &turn.warehouse.clone();
    let mut sink = BatchSink::new(batch_id, turn, runtime, options.buffer_bytes);
    progress.start("ingesting", Some(report.bytes), Unit::Bytes);
    let mut sources = Vec::new();
    let outcome = (|| -> Result<(), IngestError> {
        let on_read = |buf: &[u8]| progress.advance(buf.len() as u64);
        let mut finished_source = |sink: &mut BatchSink, path: &Input, hash: String, bytes: u64| {
            let c = sink.source_counts;
            sources.push(LedgerSource {
                name: path.name(),
                content_hash: hash,
                bytes,
                records: c.records,
                rejected: c.rejected,
                filtered: c.filtered,
                modified: path.modified(),
            });
            progress.message(&format!(
                "{} records, {:.0} records/s",
                sink.records,
                sink.records as f64 / started.elapsed().as_secs_f64().max(1e-3)
            ));
        };
        let mut rest = todo;
        // Set when a small file expanded past what is buffered: it is streamed instead.
        let mut stream_next = false;
        while let Some((path, hash, bytes)) = rest.first() {
            if *bytes >= SMALL_FILE_BYTES || std::mem::take(&mut stream_next) {
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
                let limits = &options.decompression;
                for_each_input_stream_limited(path, limits, &on_read_and_hash, |name, reader| {
                    sink.source = Some(name.clone());
                    sink.table = None;
                    let outcome = convert_csv(reader, &name, &options.profile, None, &mut sink)?;
                    sink.finish_stream(&name, &outcome);
                    Ok(())
                })?;
                let hash = hash.clone().unwrap_or_else(|| {
                    let content = hasher.into_inner().expect("lock").finalize();
                    source_fingerprint(&content.to_hex(), options.profile.only_region.as_deref())
                });
                finished_source(&mut sink, path, hash, *bytes);
                rest = &rest[1..];
                continue;
            }
            // A run of small files (archives of a day's exports): one file per core.
            let run = rest.iter().take_while(|t| t.2 < SMALL_FILE_BYTES).count();
            let (files, after) = rest.split_at(run);
            rest = after;
            // Small files are converted whole in memory, so what they may expand to is
            // bounded further (twice the row buffer); one that goes beyond is streamed like
            // a large file.
            let buffered = DecompressionLimits {
                max_bytes: (options.buffer_bytes as u64)
                    .saturating_mul(2)
                    .min(options.decompression.max_bytes),
                ..options.decompression
            };
            let stopped = read_files_in_parallel(
                files,
                &options.profile,
                &buffered,
                &on_read,
                |i, streams| {
                    sink.begin_source();
                    for stream in streams {
                        sink.replay(stream)?;
                    }
                    let (path, hash, bytes) = &files[i];
                    let hash = hash.clone().expect("small files are hashed first");
                    finished_source(&mut sink, path, hash, *bytes);
                    Ok(())
                },
            )?;
            if let Some(i) = stopped {
                rest = &files[i..];
                stream_next = true;
            }
        }
        Ok(())
    })();
    progress.finish();
    let rejected: u64 = sink.rejected.values().sum();
    let ratio = rejected as f64 / sink.records.max(1) as f64;
    let duplicates: u64 = sink.duplicate_keys.values().sum();
    let outcome = outcome.and_then(|()| {
        if ratio > options.max_reject_ratio {
            Err(IngestError::TooManyRejects {
                records: sink.records,
                rejected,
                max_ratio: options.max_reject_ratio,
            })
        } else if duplicates > MIN_DUPLICATES_REFUSED
            && duplicates as f64 / sink.records.max(1) as f64 > options.max_duplicate_ratio
        {
            Err(IngestError::TooManyDuplicates {
                records: sink.records,
                duplicates,
                max_ratio: options.max_duplicate_ratio,
            })
        } else {
            Ok(())
        }
    });
    report.rejects_by_reason = std::mem::take(&mut sink.tally.by_reason);
    report.examples = std::mem::take(&mut sink.tally.examples);
    if let Err(e) = outcome {
        let written = sink.abandon();
        delete_files(warehouse, runtime, written.iter());
        return Err(e);
    }
    progress.start("merging", None, Unit::Items("tables"));
    let finished = sink.finish();
    progress.finish();
    let (results, counts, base) = match finished {
        Ok(done) => done,
        Err((e, written)) => {
            delete_files(warehouse, runtime, written.iter());
            return Err(e);
        }
    };
    report.counts = counts.clone();
    let mut record = new_record(OperationKind::Ingest, batch_id.to_string());
    record.profile = Some(options.profile.name.clone());
    record.sources = sources;
    record.counts = counts;
    let mut tables = BTreeMap::new();
    let mut new_files = Vec::new();
    let mut discarded = Vec::new();
    for (table, result) in results {
        new_files.extend(result.new_files);
        discarded.extend(result.discarded);
        if let Some(actions) = result.actions {
            tables.insert(table.name().to_string(), (actions, result.change));
        }
    }
    Ok((
        OperationPlan {
            record,
            base,
            tables,
            new_files,
        },
        discarded,
    ))
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
    limits: &DecompressionLimits,
    on_read: &(dyn Fn(&[u8]) + Sync),
) -> Result<Vec<BufferedStream>, IngestError> {
    let mut streams = Vec::new();
    for_each_input_stream_limited(path, limits, on_read, |name, reader| {
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
/// order of `files`, on the calling thread. Stops at the first error, in file order, or
/// before the first file that expands beyond `limits` (returning its index).
fn read_files_in_parallel(
    files: &[(Input, Option<String>, u64)],
    profile: &Profile,
    limits: &DecompressionLimits,
    on_read: &(dyn Fn(&[u8]) + Sync),
    mut each: impl FnMut(usize, Vec<BufferedStream>) -> Result<(), IngestError>,
) -> Result<Option<usize>, IngestError> {
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
                        if tx
                            .send((i, read_file(path, profile, limits, on_read)))
                            .is_err()
                        {
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
                match result {
                    Err(e) if ExpansionLimit::is_cause_of(&e) => return Ok(Some(expected)),
                    result => each(expected, result?)?,
                }
                expected += 1;
            }
        }
        Ok(None)
    })
}

/// A writer's turn at the warehouse: its lock (local warehouses) with any interrupted
/// operation finished, and the ledger and cut as of then. Sources are read and converted
/// before the turn is taken, so a slow or hostile source does not hold up other writers;
/// the turn comes when the first rows merge (when the row buffer fills, or at the end).
struct WriterTurn {
    warehouse: Warehouse,
    runtime: Handle,
    /// `Some` while the turn is held (the lock is `None` on object stores).
    lock: Option<Option<WriterLock>>,
    ledger: Vec<OperationRecord>,
    cut: Cut,
    /// Operations of interrupted writers this turn finished.
    recovered: Vec<u64>,
}

impl WriterTurn {
    fn new(warehouse: &Warehouse, runtime: &Handle) -> Self {
        WriterTurn {
            warehouse: warehouse.clone(),
            runtime: runtime.clone(),
            lock: None,
            ledger: Vec::new(),
            cut: Cut::default(),
            recovered: Vec::new(),
        }
    }

    fn is_taken(&self) -> bool {
        self.lock.is_some()
    }

    /// Reads the ledger and the cut (held or not).
    fn read(&mut self) -> Result<(), IngestError> {
        self.ledger = self
            .runtime
            .block_on(self.warehouse.ledger())
            .map_err(IngestError::Storage)?;
        self.cut = self
            .runtime
            .block_on(self.warehouse.cut(AsOf::Latest))
            .map_err(IngestError::Storage)?;
        Ok(())
    }

    /// Waits for other writers, finishes an operation an interrupted one began, and reads
    /// the ledger and the cut.
    fn take(&mut self) -> Result<(), IngestError> {
        if self.is_taken() {
            return Ok(());
        }
        self.wait_and_recover()?;
        self.read()
    }

    /// Waits for other writers and finishes an operation an interrupted one began.
    fn wait_and_recover(&mut self) -> Result<(), IngestError> {
        let warehouse = &self.warehouse;
        let lock = warehouse
            .lock(|| {
                tracing::warn!(
                    "another writer is working on {}; waiting for it to finish",
                    warehouse.location()
                )
            })
            .map_err(IngestError::Storage)?;
        let recovery = self
            .runtime
            .block_on(warehouse.recover())
            .map_err(IngestError::Storage)?;
        for seq in &recovery.completed {
            tracing::warn!(
                operation = seq,
                "finished committing an operation an earlier run began"
            );
        }
        self.recovered.extend(recovery.completed);
        self.lock = Some(lock);
        Ok(())
    }

    fn release(&mut self) {
        self.lock = None;
    }

    /// Completes `report` of an ingest that began at `started`: what this turn recovered,
    /// and the time taken.
    fn close(&mut self, report: &mut IngestReport, started: Instant) {
        report.recovery.completed = std::mem::take(&mut self.recovered);
        report.elapsed = started.elapsed();
    }
}

/// Receives converted rows: buffers them per table and merges them into their table a
/// chunk at a time (the largest table's rows first when memory runs short); collects
/// rejects into `_rejects`. A chunk merges on the I/O runtime while the next one is read;
/// one table's chunks merge one after the other, in arrival order.
struct BatchSink<'a> {
    batch_id: String,
    warehouse: Warehouse,
    /// Taken before the first rows merge; the cut they merge onto is the turn's.
    turn: &'a mut WriterTurn,
    runtime: &'a Handle,
    source: Option<SourceName>,
    /// The table of the source being read.
    table: Option<Table>,
    merges: BTreeMap<Table, TableMerge>,
    /// Merges under way, each with the bytes of rows it holds.
    running: BTreeMap<Table, (RunningMerge, usize)>,
    running_bytes: usize,
    /// Each table's files and file writer, being loaded (from its Delta log) while the
    /// sources are read.
    prefetched: BTreeMap<Table, tokio::task::JoinHandle<Prefetched>>,
    buffers: BTreeMap<Table, (Vec<RecordBatch>, usize)>,
    buffered_bytes: usize,
    buffer_limit: usize,
    rejects: RejectBuilder,
    appender: Option<Appender>,
    /// Rejected records per table meant (`unknown` when none).
    rejected: BTreeMap<String, u64>,
    /// Records per table a SQL profile's `WHERE` dropped.
    filtered: BTreeMap<String, u64>,
    /// Rows per table repeating a key of their own source.
    duplicate_keys: BTreeMap<String, u64>,
    tally: RejectTally<(SourceName, RejectedRecord)>,
    source_counts: SourceCounts,
    /// Records read in the batch.
    records: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct SourceCounts {
    records: u64,
    rejected: u64,
    filtered: u64,
}

/// Each table's merge, the counts, and the cut they merged onto.
type Finished = (
    Vec<(StoredTable, MergeResult)>,
    BTreeMap<String, TableCounts>,
    Cut,
);

/// A table's merge, merging a chunk on a thread of its own (driving the I/O runtime): it
/// comes back with the outcome.
type RunningMerge = std::thread::JoinHandle<(TableMerge, Result<(), kefu_storage::StorageError>)>;

type Prefetched = Result<
    (
        Arc<Vec<kefu_storage::DataFile>>,
        kefu_storage::delta::FileWriter,
    ),
    kefu_storage::StorageError,
>;

impl Drop for BatchSink<'_> {
    /// Waits for the log reads no merge took: the runtime must not shut down under them
    /// (the Delta kernel panics in its worker when its task is dropped).
    fn drop(&mut self) {
        for (_, task) in std::mem::take(&mut self.prefetched) {
            let _ = self.runtime.block_on(task);
        }
        for (_, (task, _)) in std::mem::take(&mut self.running) {
            let _ = task.join();
        }
    }
}

impl<'a> BatchSink<'a> {
    fn new(
        batch_id: &str,
        turn: &'a mut WriterTurn,
        runtime: &'a Handle,
        buffer_limit: usize,
    ) -> Self {
        let mut sink = BatchSink {
            buffer_limit,
            prefetched: BTreeMap::new(),
            batch_id: batch_id.to_string(),
            warehouse: turn.warehouse.clone(),
            turn,
            runtime,
            source: None,
            table: None,
            merges: BTreeMap::new(),
            running: BTreeMap::new(),
            running_bytes: 0,
            buffers: BTreeMap::new(),
            buffered_bytes: 0,
            rejects: RejectBuilder::default(),
            appender: None,
            rejected: BTreeMap::new(),
            filtered: BTreeMap::new(),
            duplicate_keys: BTreeMap::new(),
            tally: RejectTally::new(REJECT_EXAMPLES),
            source_counts: SourceCounts::default(),
            records: 0,
        };
        // Reading a table's log costs milliseconds a table: do it while the sources are
        // read (at the versions then; again for a table another writer changes before
        // the turn comes).
        for table in Table::ALL {
            sink.prefetch(table);
        }
        sink
    }

    /// Starts reading `table`'s files and file writer at its version in the turn's cut.
    fn prefetch(&mut self, table: Table) {
        let stored = StoredTable::Model(table);
        let version = self.turn.cut.version(stored).unwrap_or(0);
        let warehouse = self.warehouse.clone();
        let task = self.runtime.spawn(async move {
            let files = warehouse.files(stored, version).await?;
            let writer = warehouse.log(stored).file_writer().await?;
            Ok((files, writer))
        });
        if let Some(stale) = self.prefetched.insert(table, task) {
            let _ = self.runtime.block_on(stale);
        }
    }

    /// Takes the writer's turn, if not yet taken, before the first write into a table:
    /// the tables another writer changed since the sources began to be read are read
    /// again.
    fn take_turn(&mut self) -> Result<(), IngestError> {
        if self.turn.is_taken() {
            return Ok(());
        }
        let before = self.turn.cut.clone();
        self.turn.take()?;
        for table in Table::ALL {
            let stored = StoredTable::Model(table);
            if before.version(stored) != self.turn.cut.version(stored) {
                self.prefetch(table);
            }
        }
        Ok(())
    }

    fn begin_source(&mut self) {
        self.source_counts = SourceCounts::default();
    }

    /// Counts a stream once all its rows and rejects were received.
    fn finish_stream(&mut self, name: &SourceName, outcome: &crate::FileOutcome) {
        self.source_counts.records += outcome.records;
        self.source_counts.rejected += outcome.rejected;
        self.source_counts.filtered += outcome.filtered;
        self.records += outcome.records;
        if outcome.filtered > 0 {
            *self
                .filtered
                .entry(outcome.table.name().to_string())
                .or_default() += outcome.filtered;
        }
        if outcome.duplicate_keys > 0 {
            *self
                .duplicate_keys
                .entry(outcome.table.name().to_string())
                .or_default() += outcome.duplicate_keys;
        }
        tracing::info!(source = %name, table = %outcome.table, encoding = outcome.encoding.name(),
            records = outcome.records, rejected = outcome.rejected, filtered = outcome.filtered,
            "read");
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

    fn storage(e: kefu_storage::StorageError) -> IngestError {
        IngestError::Storage(e)
    }

    /// The merge of `table` (started on first use), once its running chunk is merged.
    fn take_merge(&mut self, table: Table) -> Result<TableMerge, IngestError> {
        self.join(table)?;
        if let Some(merge) = self.merges.remove(&table) {
            return Ok(merge);
        }
        self.take_turn()?;
        let stored = StoredTable::Model(table);
        let version = self.turn.cut.version(stored).unwrap_or(0);
        let task = self
            .prefetched
            .remove(&table)
            .expect("every table is prefetched once");
        let (files, writer) = self
            .runtime
            .block_on(task)
            .map_err(|e| IngestError::Write(format!("reading the {table} log: {e}")))?
            .map_err(Self::storage)?;
        let zone = self
            .runtime
            .block_on(self.warehouse.time_zone())
            .map_err(Self::storage)?;
        Ok(
            TableMerge::new(&self.warehouse, table, zone, version, &files)
                .map_err(Self::storage)?
                .with_writer(writer),
        )
    }

    /// Waits for `table`'s running merge, if any.
    fn join(&mut self, table: Table) -> Result<(), IngestError> {
        let Some((task, bytes)) = self.running.remove(&table) else {
            return Ok(());
        };
        self.running_bytes -= bytes;
        let (merge, outcome) = task
            .join()
            .map_err(|_| IngestError::Write(format!("merging into {table} failed unexpectedly")))?;
        self.merges.insert(table, merge);
        outcome.map_err(Self::storage)
    }

    /// Waits for every running merge; the first error wins.
    fn join_all(&mut self) -> Result<(), IngestError> {
        let tables: Vec<Table> = self.running.keys().copied().collect();
        let mut outcome = Ok(());
        for table in tables {
            let joined = self.join(table);
            if outcome.is_ok() {
                outcome = joined;
            }
        }
        outcome
    }

    /// Starts merging `table`'s buffered rows into it. Rows held by running merges and
    /// by the buffers stay within twice the buffer limit.
    fn merge_buffered(&mut self, table: Table) -> Result<(), IngestError> {
        let Some((batches, bytes)) = self.buffers.remove(&table) else {
            return Ok(());
        };
        self.buffered_bytes -= bytes;
        if self.running_bytes + bytes > self.buffer_limit {
            self.join_all()?;
        }
        let mut merge = self.take_merge(table)?;
        let runtime = self.runtime.clone();
        let task = std::thread::Builder::new()
            .name("kefu-merge".into())
            .spawn(move || {
                let outcome = runtime.block_on(merge.merge(batches));
                (merge, outcome)
            })
            .map_err(|e| IngestError::Write(format!("cannot start a merge: {e}")))?;
        self.running.insert(table, (task, bytes));
        self.running_bytes += bytes;
        Ok(())
    }

    fn note_reject(&mut self, reject: &RejectedRecord) {
        let source = &self.source;
        self.tally.note(reject, || {
            let source = source.clone().unwrap_or_else(|| SourceName::file(""));
            (source, reject.clone())
        });
    }

    fn flush_rejects(&mut self) -> Result<(), IngestError> {
        if self.rejects.len() == 0 {
            return Ok(());
        }
        if self.appender.is_none() {
            self.appender = Some(Appender::new(
                &self.warehouse,
                StoredTable::Rejects,
                rejects_layout(),
            ));
        }
        let appender = self.appender.as_mut().expect("just set");
        for (table, batch) in self.rejects.finish() {
            self.runtime
                .block_on(appender.append(Some(&table), &batch))
                .map_err(Self::storage)?;
        }
        Ok(())
    }

    /// Merges everything still buffered and returns each table's result with the counts.
    fn finish(mut self) -> Result<Finished, (IngestError, Vec<String>)> {
        let outcome = (|| -> Result<(), IngestError> {
            // A batch with nothing to merge still commits its sources.
            self.take_turn()?;
            let tables: Vec<Table> = self.buffers.keys().copied().collect();
            for table in tables {
                self.merge_buffered(table)?;
            }
            self.join_all()?;
            self.flush_rejects()
        })();
        if let Err(e) = outcome {
            return Err((e, self.abandon()));
        }
        let mut counts: BTreeMap<String, TableCounts> = BTreeMap::new();
        let mut results = Vec::new();
        for (table, merge) in std::mem::take(&mut self.merges) {
            let result = merge.finish();
            counts.insert(table.name().to_string(), result.counts);
            results.push((StoredTable::Model(table), result));
        }
        for (table, n) in &self.rejected {
            let c = counts.entry(table.clone()).or_default();
            c.records += n;
            c.rejected += n;
        }
        for (table, n) in &self.filtered {
            let c = counts.entry(table.clone()).or_default();
            c.records += n;
            c.filtered += n;
        }
        for (table, n) in &self.duplicate_keys {
            counts.entry(table.clone()).or_default().duplicate_keys += n;
        }
        if let Some(appender) = self.appender.take() {
            let version = self.turn.cut.version(StoredTable::Rejects).unwrap_or(0);
            results.push((StoredTable::Rejects, appender.finish(version)));
        }
        Ok((results, counts, self.turn.cut.clone()))
    }

    /// Files written so far, for deleting when the batch is not committed.
    fn abandon(&mut self) -> Vec<String> {
        // A failed merge still names the files it wrote.
        let _ = self.join_all();
        let mut files = Vec::new();
        for (_, merge) in std::mem::take(&mut self.merges) {
            let result = merge.finish();
            files.extend(result.new_files);
            files.extend(result.discarded);
        }
        if let Some(appender) = self.appender.take() {
            files.extend(appender.finish(0).new_files);
        }
        files
    }
}

impl RowSink for BatchSink<'_> {
    fn batch(&mut self, batch: RecordBatch, _lines: &[u64]) -> Result<(), IngestError> {
        let table = Table::ALL
            .into_iter()
            .find(|t| t.schema().fields() == batch.schema().fields())
            .expect("batches are in a model schema");
        let bytes = batch.get_array_memory_size();
        let buffer = self.buffers.entry(table).or_default();
        buffer.0.push(batch);
        buffer.1 += bytes;
        self.buffered_bytes += bytes;
        while self.buffered_bytes > self.buffer_limit {
            let largest = self
                .buffers
                .iter()
                .max_by_key(|(_, b)| b.1)
                .map(|(t, _)| *t)
                .expect("buffered bytes belong to tables");
            self.merge_buffered(largest)?;
        }
        Ok(())
    }

    fn reject(&mut self, reject: RejectedRecord) -> Result<(), IngestError> {
        self.note_reject(&reject);
        let table = self.table;
        *self
            .rejected
            .entry(table.map_or("unknown", Table::name).to_string())
            .or_default() += 1;
        let source = self.source.as_ref().expect("a source is being read");
        self.rejects.push(&self.batch_id, source, table, &reject);
        if self.rejects.len() >= REJECT_FILE_ROWS {
            self.flush_rejects()?;
        }
        Ok(())
    }

    fn table(&mut self, table: Table) {
        self.table = Some(table);
    }
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

pub use kefu_storage::tables::rejects_schema;

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
    fn reject_table_names_match_storage() {
        assert_eq!(kefu_storage::tables::REJECTS_TABLE, "_rejects");
        assert_eq!(rejects_schema().fields().len(), 9);
    }
}
