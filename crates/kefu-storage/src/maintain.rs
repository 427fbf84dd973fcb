//! Keeping a warehouse in shape, each an operation of the ledger (or, for vacuum, outside
//! any table's history):
//!
//! - [`compact`]: a partition's small files (one per daily batch, rewrites of upserts)
//!   become few large ones, sorted by region and event time again — the order row-group
//!   and page pruning rely on. Data does not change (`dataChange: false`), so readers at any
//!   version see the same rows, and jobs recompute nothing they would not otherwise. The
//!   automatic compaction after a batch merges only the small files
//!   ([`CompactOptions::settled_rows`]).
//! - [`vacuum`]: deletes files no table version within the retention period names (those
//!   replaced by upserts and compactions, or written by an interrupted batch). Readers of
//!   older versions lose them; readers of versions within the retention period do not.
//! - [`revert`]: takes back an ingest batch: every table returns to its state before it
//!   (re-adding the files it replaced, removing those it added), and its sources count as
//!   never ingested, so corrected files can be ingested again.
//! - [`convert`]: turns a warehouse of an earlier kefu (Hive-partitioned Parquet with its
//!   own ledger) into Delta tables, in place.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::RecordBatch;
use deltalake_core::kernel::Action;
use deltalake_core::protocol::DeltaOperation;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use crate::delta::DataFile;
use crate::ledger::{
    LedgerSource, LegacyBatch, OperationKind, OperationRecord, TableActions, TableChange,
};
use crate::merge::{FILE_ROWS, read_parquet, write_file};
use crate::parquet::{Layout, rejects_layout, sort_batches, table_layout};
use crate::tables::StoredTable;
use crate::warehouse::{AsOf, Commit, Cut, OperationPlan};
use crate::{StorageError, Warehouse};

/// A new operation id: the time and a random suffix.
pub fn new_operation_id() -> String {
    let suffix = uuid::Uuid::new_v4().as_u128() as u32;
    format!(
        "{}-{suffix:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    )
}

/// An empty record of an operation of `kind` (the commit fills in the rest).
pub fn new_record(kind: OperationKind, id: String) -> OperationRecord {
    OperationRecord {
        seq: 0,
        kind,
        id,
        committed_at: chrono::Utc::now(),
        kefu_version: env!("CARGO_PKG_VERSION").to_string(),
        profile: None,
        sources: Vec::new(),
        counts: BTreeMap::new(),
        changes: BTreeMap::new(),
        versions: BTreeMap::new(),
        reverts: Vec::new(),
        note: None,
        seconds: 0.0,
    }
}

fn layout_of(table: StoredTable) -> Layout {
    match table {
        StoredTable::Model(t) => table_layout(t),
        StoredTable::Rejects => rejects_layout(),
    }
}

/// What to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Only these tables (all by default).
    pub tables: Vec<StoredTable>,
    /// Only these partitions (months, or `_rejects`' tables; all by default).
    pub partitions: Vec<String>,
    /// A partition is compacted when it holds at least this many files (not counting
    /// settled ones).
    pub min_files: usize,
    /// Files holding at least this many rows, of which deletion vectors removed under a
    /// quarter, are settled: left as they are. The automatic compaction after a batch sets
    /// it ([`SETTLED_ROWS`]) so that it merges the small daily files among themselves
    /// instead of rewriting the whole partition every few days; `kefu compact` leaves it
    /// unset and rewrites every file of a partition it compacts.
    pub settled_rows: Option<u64>,
}

/// Rows from which the automatic compaction leaves a file alone: an eighth of a full file,
/// so a month of calls ends as a few files and each row is rewritten about twice at most.
pub const SETTLED_ROWS: u64 = FILE_ROWS as u64 / 8;

impl CompactOptions {
    /// Whether compaction leaves `file` as it is (see [`CompactOptions::settled_rows`]).
    pub fn is_settled(&self, file: &DataFile) -> bool {
        let (Some(settled), Some(rows), Some(live)) =
            (self.settled_rows, file.rows, file.live_rows())
        else {
            return false;
        };
        live >= settled && (rows - live) * 4 < rows
    }
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            tables: StoredTable::ALL.to_vec(),
            partitions: Vec::new(),
            min_files: 2,
            settled_rows: None,
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default)]
pub struct CompactReport {
    /// The operation, or `None` when no partition needed compacting.
    pub record: Option<OperationRecord>,
    pub partitions: u64,
    pub files_before: u64,
    pub files_after: u64,
    pub rows: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The fewest files a partition needed to be compacted.
    pub min_files: usize,
}

/// Compacts the partitions `options` selects that hold at least `min_files` files. Call
/// it holding the writer lock (local warehouses).
pub async fn compact(
    warehouse: &Warehouse,
    options: &CompactOptions,
) -> Result<CompactReport, StorageError> {
    let started = std::time::Instant::now();
    // Files are rewritten in the model's schema: the tables take its new columns first.
    warehouse.ensure_tables().await?;
    loop {
        let cut = warehouse.cut(AsOf::Latest).await?;
        let mut report = CompactReport {
            min_files: options.min_files,
            ..CompactReport::default()
        };
        let mut tables = BTreeMap::new();
        let mut new_files = Vec::new();
        for &table in &options.tables {
            let Some(version) = cut.version(table) else {
                continue;
            };
            let files = warehouse.files(table, version).await?;
            let mut by_partition: BTreeMap<Option<String>, Vec<DataFile>> = BTreeMap::new();
            for f in files.iter().filter(|f| !options.is_settled(f)) {
                by_partition
                    .entry(f.partition.clone())
                    .or_default()
                    .push(f.clone());
            }
            let mut actions = Vec::new();
            let mut change = TableChange::default();
            for (partition, files) in by_partition {
                // A partition with one file is compacted when rows were deleted from it.
                let deletions = files.iter().any(|f| f.deletion.is_some());
                if (files.len() < options.min_files.max(2) && !deletions)
                    || (!options.partitions.is_empty()
                        && !partition
                            .as_ref()
                            .is_some_and(|p| options.partitions.contains(p)))
                {
                    continue;
                }
                let (removed, added) =
                    compact_partition(warehouse, table, partition.as_deref(), &files).await?;
                report.partitions += 1;
                report.files_before += removed.len() as u64;
                report.files_after += added.len() as u64;
                report.rows += added.iter().map(|f| f.rows.unwrap_or(0)).sum::<u64>();
                report.bytes_before += removed.iter().map(|f| f.size).sum::<u64>();
                report.bytes_after += added.iter().map(|f| f.size).sum::<u64>();
                change.files_removed += removed.len() as u64;
                change.files_added += added.len() as u64;
                change.rows_removed += removed
                    .iter()
                    .map(|f| f.live_rows().unwrap_or(0))
                    .sum::<u64>();
                change.rows_added += added.iter().map(|f| f.rows.unwrap_or(0)).sum::<u64>();
                change.partitions.extend(partition.clone());
                let column = table.partition_column();
                actions.extend(
                    removed
                        .iter()
                        .map(|f| Action::Remove(f.remove(column, false))),
                );
                actions.extend(added.iter().map(|f| Action::Add(f.add(column, false))));
                new_files.extend(added.iter().map(|f| format!("{}/{}", table.name(), f.path)));
            }
            if !actions.is_empty() {
                tables.insert(
                    table.name().to_string(),
                    (
                        TableActions {
                            base_version: version,
                            operation: DeltaOperation::Optimize {
                                predicate: None,
                                target_size: FILE_ROWS as i64,
                            },
                            actions,
                            info: Default::default(),
                        },
                        change,
                    ),
                );
            }
        }
        if tables.is_empty() {
            return Ok(report);
        }
        let mut record = new_record(OperationKind::Compact, new_operation_id());
        record.seconds = started.elapsed().as_secs_f64();
        record.note = Some(format!(
            "{} partitions: {} files into {}",
            report.partitions, report.files_before, report.files_after
        ));
        let plan = OperationPlan {
            record,
            base: cut,
            tables,
            new_files: new_files.clone(),
        };
        match warehouse.commit(plan).await? {
            Commit::Committed(record) => {
                report.record = Some(*record);
                return Ok(report);
            }
            Commit::Conflict { .. } => {
                delete_files(warehouse, &new_files).await;
            }
        }
    }
}

/// Gives every table the columns of the current model that it lacks, as one operation
/// of the ledger (its commits carry kefu's transaction like any other, so readers' cuts
/// and recovery see them); nothing when every table is current. Call it holding the
/// writer lock (local warehouses).
pub async fn add_model_columns(
    warehouse: &Warehouse,
) -> Result<Option<OperationRecord>, StorageError> {
    loop {
        let cut = warehouse.cut(AsOf::Latest).await?;
        let mut tables = BTreeMap::new();
        let mut added = Vec::new();
        for table in StoredTable::ALL {
            let Some(version) = cut.version(table) else {
                continue;
            };
            let log = warehouse.log(table);
            if log.latest_version().await? != version {
                // A commit past the cut: recovery's business, not this one's.
                continue;
            }
            let Some((actions, operation)) = log.missing_columns(&table.table_schema()).await?
            else {
                continue;
            };
            if let DeltaOperation::AddColumn { fields } = &operation {
                added.extend(fields.iter().map(|f| format!("{table}.{}", f.name())));
            }
            tables.insert(
                table.name().to_string(),
                (
                    TableActions {
                        base_version: version,
                        operation,
                        actions,
                        info: Default::default(),
                    },
                    TableChange::default(),
                ),
            );
        }
        if tables.is_empty() {
            return Ok(None);
        }
        let mut record = new_record(OperationKind::AddColumns, new_operation_id());
        record.note = Some(format!("the model's new columns: {}", added.join(", ")));
        let plan = OperationPlan {
            record,
            base: cut,
            tables,
            new_files: Vec::new(),
        };
        if let Commit::Committed(record) = warehouse.commit(plan).await? {
            tracing::info!(columns = ?added, "added the model's new columns to the tables");
            return Ok(Some(*record));
        }
    }
}

/// Rewrites one partition's files as sorted files of at most [`FILE_ROWS`] rows each,
/// reading groups of files up to that many rows at a time (so memory stays bounded).
/// Returns the files removed and added.
async fn compact_partition(
    warehouse: &Warehouse,
    table: StoredTable,
    partition: Option<&str>,
    files: &[DataFile],
) -> Result<(Vec<DataFile>, Vec<DataFile>), StorageError> {
    let schema = table.file_schema();
    let layout = layout_of(table);
    let writer = warehouse.log(table).file_writer().await?;
    let mut groups: Vec<Vec<DataFile>> = Vec::new();
    let mut rows = 0u64;
    let mut ordered = files.to_vec();
    ordered.sort_by_key(|f| f.modification_time);
    for f in ordered {
        let n = f.live_rows().unwrap_or(FILE_ROWS as u64);
        if groups.is_empty() || rows + n > FILE_ROWS as u64 {
            groups.push(Vec::new());
            rows = 0;
        }
        rows += n;
        groups.last_mut().expect("pushed").push(f);
    }
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for group in groups {
        if group.len() < 2 && group.iter().all(|f| f.deletion.is_none()) {
            continue;
        }
        let batches: Vec<RecordBatch> = futures::stream::iter(group.iter().map(|f| {
            let path = warehouse.path(&format!("{}/{}", table.name(), f.path));
            let schema = &schema;
            async move {
                let selection = f.selection(table.name())?;
                read_parquet(warehouse.store(), path, f.size, schema, None, selection).await
            }
        }))
        .buffered(4)
        .try_collect()
        .await?;
        let before: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let sorted = sort_batches(&schema, &batches, &layout.sort_columns)?;
        drop(batches);
        let add = write_file(&writer, table, partition, &sorted, &layout).await?;
        let file = DataFile::from_add(&add);
        if file.rows != Some(before as u64) {
            return Err(StorageError::Io {
                location: warehouse.location().to_string(),
                source: format!(
                    "compacting {table} {}: wrote {:?} rows of {before}",
                    partition.unwrap_or(""),
                    file.rows
                )
                .into(),
            });
        }
        removed.extend(group);
        added.push(file);
    }
    Ok((removed, added))
}

async fn delete_files(warehouse: &Warehouse, relatives: &[String]) {
    for f in relatives {
        let _ = warehouse.store().delete(&warehouse.path(f)).await;
    }
}

/// What a vacuum did.
#[derive(Debug, Clone, Default)]
pub struct VacuumReport {
    /// Per table: files deleted (or, in a dry run, that would be).
    pub files: BTreeMap<String, Vec<String>>,
    pub bytes: u64,
    pub dry_run: bool,
    /// How far back table versions were kept.
    pub retention: std::time::Duration,
}

/// Deletes the files of every table that no version within `retention` names, and files
/// no version ever named (left by interrupted batches) once older than `retention`.
/// Call it holding the writer lock (local warehouses).
pub async fn vacuum(
    warehouse: &Warehouse,
    retention: std::time::Duration,
    dry_run: bool,
) -> Result<VacuumReport, StorageError> {
    let cut = warehouse.cut(AsOf::Latest).await?;
    let mut report = VacuumReport {
        dry_run,
        retention,
        ..Default::default()
    };
    for table in StoredTable::ALL {
        let Some(version) = cut.version(table) else {
            continue;
        };
        let log = warehouse.log(table);
        let mut delta = deltalake_core::DeltaTable::new(log.log_store());
        delta
            .load_version(version)
            .await
            .map_err(|e| StorageError::Delta(crate::DeltaError::delta(table.name(), e)))?;
        // The plan only: deleting the files is all vacuum does, and committing its
        // start and end records would take versions kefu's next operation expects.
        let (_, metrics) = delta
            .vacuum()
            .with_retention_period(
                chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX),
            )
            .with_enforce_retention_duration(false)
            .with_mode(deltalake_core::operations::vacuum::VacuumMode::Full)
            .with_dry_run(true)
            .await
            .map_err(|e| StorageError::Delta(crate::DeltaError::delta(table.name(), e)))?;
        let files: Vec<String> = metrics
            .files_deleted
            .into_iter()
            .filter(|f| f.ends_with(".parquet") || f.contains(".parquet#"))
            .collect();
        let sizes: BTreeMap<String, u64> =
            warehouse.stored_files(table).await?.into_iter().collect();
        report.bytes += files.iter().filter_map(|f| sizes.get(f)).sum::<u64>();
        if !dry_run {
            let store = log.log_store().object_store(None);
            for f in &files {
                match store
                    .delete(&object_store::path::Path::from(f.as_str()))
                    .await
                {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        return Err(StorageError::Io {
                            location: warehouse.location().to_string(),
                            source: format!("{table}/{f}: {e}").into(),
                        });
                    }
                }
            }
        }
        if !files.is_empty() {
            report.files.insert(table.name().to_string(), files);
        }
    }
    Ok(report)
}

/// The operations reverted by later revert records.
pub fn reverted(ledger: &[OperationRecord]) -> BTreeSet<u64> {
    ledger
        .iter()
        .filter(|r| r.kind == OperationKind::Revert)
        .flat_map(|r| r.reverts.iter().copied())
        .collect()
}

/// Takes back batch `seq` (and, with `cascade`, every batch after it): each table returns
/// to its state before the batch, and the batches' sources count as never ingested.
/// Refuses, naming them, when later batches exist and `cascade` is off, or when the files
/// of the earlier state were vacuumed. Call it holding the writer lock (local warehouses).
pub async fn revert(
    warehouse: &Warehouse,
    seq: u64,
    cascade: bool,
    note: Option<String>,
) -> Result<OperationRecord, StorageError> {
    let started = std::time::Instant::now();
    let refuse = |reason: String| StorageError::Refused {
        location: warehouse.location().to_string(),
        reason,
    };
    loop {
        let ledger = warehouse.ledger().await?;
        let cut = warehouse.cut(AsOf::Latest).await?;
        let already = reverted(&ledger);
        let target = ledger
            .iter()
            .find(|r| r.seq == seq && r.seq <= cut.seq)
            .ok_or_else(|| refuse(format!("there is no committed batch {seq}")))?;
        if target.kind != OperationKind::Ingest {
            return Err(refuse(format!(
                "operation {seq} is a {}, not an ingest batch: only batches can be reverted",
                target.kind.name()
            )));
        }
        if already.contains(&seq) {
            return Err(refuse(format!("batch {seq} was reverted already")));
        }
        // Later batches may hold newer versions of the same records: they block a revert
        // (or go with it, with --cascade). Compactions and reverts after it do not: the
        // tables return to their state before the batch either way.
        let later: Vec<u64> = ledger
            .iter()
            .filter(|r| r.seq > seq && r.seq <= cut.seq && !already.contains(&r.seq))
            .filter(|r| r.kind == OperationKind::Ingest)
            .map(|r| r.seq)
            .collect();
        if !later.is_empty() && !cascade {
            let list: Vec<String> = later.iter().map(u64::to_string).collect();
            return Err(refuse(format!(
                "batches {} came after batch {seq} and may hold newer versions of its records; revert them first (newest first), or all of them with it with --cascade (their sources can then be ingested again, in any order)",
                list.join(", ")
            )));
        }
        let before = warehouse.cut(AsOf::Operation(seq - 1)).await?;
        let mut tables = BTreeMap::new();
        for table in StoredTable::ALL {
            let now = warehouse.files_at(&cut, table).await?;
            let then = warehouse.files_at(&before, table).await?;
            // A file is the same only with the same deletion vector: one that lost rows
            // since goes back to the vector it had.
            let identity = |f: &DataFile| {
                let dv = f.deletion.as_ref().map(|d| d.path_or_inline_dv.clone());
                (f.path.clone(), dv)
            };
            let now_ids: BTreeSet<_> = now.iter().map(identity).collect();
            let then_ids: BTreeSet<_> = then.iter().map(identity).collect();
            let readd: Vec<&DataFile> = then
                .iter()
                .filter(|f| !now_ids.contains(&identity(f)))
                .collect();
            let drop: Vec<&DataFile> = now
                .iter()
                .filter(|f| !then_ids.contains(&identity(f)))
                .collect();
            if readd.is_empty() && drop.is_empty() {
                continue;
            }
            for f in &readd {
                let path = warehouse.path(&format!("{}/{}", table.name(), f.path));
                if let Err(e) = warehouse.store().head(&path).await {
                    return Err(refuse(format!(
                        "the state before batch {seq} cannot be restored: {table}/{} is gone ({e}); kefu vacuum removed it",
                        f.path
                    )));
                }
            }
            let column = table.partition_column();
            let mut actions: Vec<Action> = drop
                .iter()
                .map(|f| Action::Remove(f.remove(column, true)))
                .collect();
            actions.extend(readd.iter().map(|f| Action::Add(f.add(column, true))));
            let partitions: BTreeSet<String> = drop
                .iter()
                .chain(readd.iter())
                .filter_map(|f| f.partition.clone())
                .collect();
            let version = cut.version(table).unwrap_or(0);
            tables.insert(
                table.name().to_string(),
                (
                    TableActions {
                        base_version: version,
                        operation: DeltaOperation::Restore {
                            version: before.version(table),
                            datetime: None,
                        },
                        actions,
                        info: Default::default(),
                    },
                    TableChange {
                        version: 0,
                        files_added: readd.len() as u64,
                        files_removed: drop.len() as u64,
                        rows_added: readd.iter().map(|f| f.live_rows().unwrap_or(0)).sum(),
                        rows_removed: drop.iter().map(|f| f.live_rows().unwrap_or(0)).sum(),
                        partitions: partitions.into_iter().collect(),
                    },
                ),
            );
        }
        let mut record = new_record(OperationKind::Revert, new_operation_id());
        record.reverts = std::iter::once(seq).chain(later.iter().copied()).collect();
        record.note = note.clone();
        record.seconds = started.elapsed().as_secs_f64();
        let plan = OperationPlan {
            record,
            base: cut,
            tables,
            new_files: Vec::new(),
        };
        match warehouse.commit(plan).await? {
            Commit::Committed(record) => return Ok(*record),
            Commit::Conflict { .. } => continue,
        }
    }
}

/// Whether the warehouse holds an earlier kefu's layout (or a conversion interrupted
/// half way).
pub async fn is_legacy(warehouse: &Warehouse) -> Result<bool, StorageError> {
    if !warehouse.list_relative(LEGACY_LEDGER_DIR).await?.is_empty() {
        return Ok(!warehouse.log(StoredTable::Rejects).exists().await?
            || warehouse.ledger_numbers().await?.is_empty());
    }
    match warehouse.ledger_numbers().await?.first() {
        Some(&first) => Ok(matches!(
            warehouse.record(first).await,
            Err(StorageError::Legacy { .. })
        )),
        None => Ok(false),
    }
}

/// Where `convert` keeps the earlier kefu's ledger records.
pub const LEGACY_LEDGER_DIR: &str = "_kefu/legacy-ledger";
/// Where `convert` moves Parquet files no earlier batch recorded.
pub const UNRECORDED_DIR: &str = "_kefu/unrecorded";

/// What a conversion did.
#[derive(Debug, Clone, Default)]
pub struct ConvertReport {
    pub record: Option<OperationRecord>,
    pub batches: u64,
    /// Per table: files and rows converted.
    pub tables: BTreeMap<String, (u64, u64)>,
    /// Files in table directories that no batch recorded, moved to `_kefu/unrecorded/`.
    pub unrecorded: Vec<String>,
    /// The warehouse converted.
    pub warehouse: String,
}

/// Converts an earlier kefu's warehouse in place: finishes or discards its staged batches,
/// keeps its ledger under `_kefu/legacy-ledger/`, makes each table a Delta table of the
/// files its batches recorded (other Parquet files are moved aside), and writes one ledger
/// record whose sources are every source of the earlier batches (so they stay ingested).
/// Running it again after an interruption finishes the job. Call it holding the writer
/// lock (local warehouses).
pub async fn convert(warehouse: &Warehouse) -> Result<ConvertReport, StorageError> {
    let started = std::time::Instant::now();
    let io = |reason: String| StorageError::Io {
        location: warehouse.location().to_string(),
        source: reason.into(),
    };
    let mut report = ConvertReport {
        warehouse: warehouse.location().to_string(),
        ..ConvertReport::default()
    };
    // 1. The earlier ledger, kept aside.
    let mut legacy: Vec<LegacyBatch> = Vec::new();
    let kept = warehouse.list_relative(LEGACY_LEDGER_DIR).await?;
    let sources: Vec<String> = if kept.is_empty() {
        warehouse
            .list_relative(crate::warehouse::LEDGER_DIR)
            .await?
    } else {
        kept
    };
    for relative in &sources {
        let bytes = warehouse
            .get_relative(relative)
            .await?
            .ok_or_else(|| io(format!("{relative} vanished")))?;
        let batch: LegacyBatch = serde_json::from_slice(&bytes).map_err(|e| {
            io(format!(
                "{relative} is not a ledger record of an earlier kefu: {e}"
            ))
        })?;
        legacy.push(batch);
    }
    legacy.sort_by_key(|b| b.seq);
    report.batches = legacy.len() as u64;
    for b in &legacy {
        let relative = format!("{LEGACY_LEDGER_DIR}/{:010}.json", b.seq);
        if warehouse.get_relative(&relative).await?.is_none() {
            let bytes = warehouse
                .get_relative(&format!(
                    "{}/{:010}.json",
                    crate::warehouse::LEDGER_DIR,
                    b.seq
                ))
                .await?
                .ok_or_else(|| io(format!("ledger record {} vanished", b.seq)))?;
            warehouse.put(&relative, bytes.to_vec()).await?;
        }
    }
    // 2. Batches a crash left staged: committed ones are published, others dropped.
    let staged = warehouse.list_relative("_kefu/staging").await?;
    let committed: BTreeMap<&str, &LegacyBatch> =
        legacy.iter().map(|b| (b.batch_id.as_str(), b)).collect();
    for relative in staged {
        let rest = relative.trim_start_matches("_kefu/staging/");
        let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
        if committed.contains_key(id) && !path.is_empty() {
            warehouse.rename_relative(&relative, path).await?;
        } else {
            warehouse.delete_relative(&relative).await?;
        }
    }
    // 3. Each table: the recorded files as its first version.
    let recorded: BTreeSet<String> = legacy
        .iter()
        .flat_map(|b| b.files.iter().map(|f| f.path.clone()))
        .collect();
    for table in StoredTable::ALL {
        let log = warehouse.log(table);
        let present = warehouse.stored_files(table).await?;
        if !log.exists().await? {
            for (path, _) in &present {
                let full = format!("{}/{path}", table.name());
                if !recorded.contains(&full) {
                    let aside = format!("{UNRECORDED_DIR}/{full}");
                    warehouse.rename_relative(&full, &aside).await?;
                    report.unrecorded.push(full);
                }
            }
            convert_table(warehouse, table).await?;
        }
        let version = log.latest_version().await?;
        let files = warehouse.files(table, version).await?;
        report.tables.insert(
            table.name().to_string(),
            (
                files.len() as u64,
                files.iter().map(|f| f.live_rows().unwrap_or(0)).sum(),
            ),
        );
    }
    // 4. The new ledger: one record standing for every earlier batch.
    for b in &legacy {
        warehouse
            .delete_relative(&format!(
                "{}/{:010}.json",
                crate::warehouse::LEDGER_DIR,
                b.seq
            ))
            .await?;
    }
    if warehouse.ledger_numbers().await?.is_empty() {
        let mut versions = BTreeMap::new();
        let mut changes = BTreeMap::new();
        for table in StoredTable::ALL {
            let version = warehouse.log(table).latest_version().await?;
            versions.insert(table.name().to_string(), version);
            if version > 0 {
                let (files, rows) = report.tables[table.name()];
                changes.insert(
                    table.name().to_string(),
                    TableChange {
                        version,
                        files_added: files,
                        rows_added: rows,
                        ..Default::default()
                    },
                );
            }
        }
        let mut record = new_record(OperationKind::Convert, new_operation_id());
        record.seq = 1;
        record.sources = legacy
            .iter()
            .flat_map(|b| {
                b.sources.iter().map(|s| LedgerSource {
                    name: s.name.clone(),
                    content_hash: s.content_hash.clone(),
                    bytes: s.bytes,
                    records: s.records,
                    rejected: s.rejected,
                    filtered: 0,
                    modified: Some(b.committed_at),
                })
            })
            .collect();
        record.versions = versions;
        record.changes = changes;
        record.note = Some(format!(
            "converted {} batches of an earlier kefu (Hive layout) to Delta tables; their records are under {LEGACY_LEDGER_DIR}/",
            legacy.len()
        ));
        record.seconds = started.elapsed().as_secs_f64();
        let json = serde_json::to_vec_pretty(&record).map_err(|e| io(e.to_string()))?;
        warehouse.put(&crate::ledger::record_path(1), json).await?;
        report.record = Some(record);
    }
    Ok(report)
}

/// Makes a table directory of recorded Parquet files a Delta table (delta-rs's
/// CONVERT TO DELTA reads each file's footer for its statistics), with kefu's properties
/// and the columns of the current model that the old files lack.
async fn convert_table(warehouse: &Warehouse, table: StoredTable) -> Result<(), StorageError> {
    use deltalake_core::kernel::{DataType, StructField};
    use deltalake_core::operations::convert_to_delta::ConvertToDeltaBuilder;
    let log = warehouse.log(table);
    let delta_err = |e: deltalake_core::DeltaTableError| {
        StorageError::Delta(crate::DeltaError::delta(table.name(), e))
    };
    if warehouse.stored_files(table).await?.is_empty() {
        return log
            .create(
                &table.table_schema(),
                &table.partition_column().into_iter().collect::<Vec<_>>(),
                &table.properties(),
            )
            .await
            .map_err(StorageError::from);
    }
    let mut builder = ConvertToDeltaBuilder::new()
        .with_log_store(log.log_store())
        .with_table_name(table.name())
        .with_partition_schema(
            table
                .partition_column()
                .map(|c| StructField::new(c, DataType::STRING, true)),
        );
    // Without deletion vectors: the converted table is then altered (added columns), and
    // deltalake-core without its DataFusion feature refuses to alter a table whose
    // protocol the feature raised to writer version 7 (it lists `invariants`). Such a
    // table replaces rows by copy-on-write.
    for (key, value) in table.properties() {
        if key == "delta.enableDeletionVectors" {
            continue;
        }
        builder = builder.with_configuration_property(key.parse().map_err(delta_err)?, Some(value));
    }
    let converted = builder.await.map_err(delta_err)?;
    // Columns the model gained since (e.g. `updated_at`): added, null in the old files.
    let present: BTreeSet<String> = converted
        .snapshot()
        .map_err(delta_err)?
        .schema()
        .fields()
        .map(|f| f.name().clone())
        .collect();
    let missing: Vec<StructField> = table
        .table_schema()
        .fields()
        .iter()
        .filter(|f| !present.contains(f.name()))
        .map(|f| {
            use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
            let nullable = f.as_ref().clone().with_nullable(true);
            let field: Result<StructField, _> = (&nullable).try_into_kernel();
            field
        })
        .collect::<Result<_, _>>()
        .map_err(|e| delta_err(e.into()))?;
    if !missing.is_empty() {
        converted
            .add_columns()
            .with_fields(missing)
            .await
            .map_err(delta_err)?;
    }
    Ok(())
}

/// A cut's table files, for readers that need them all at once.
pub async fn cut_files(
    warehouse: &Warehouse,
    cut: &Cut,
) -> Result<BTreeMap<StoredTable, Arc<Vec<DataFile>>>, StorageError> {
    let mut out = BTreeMap::new();
    for table in StoredTable::ALL {
        out.insert(table, warehouse.files_at(cut, table).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The automatic compaction leaves large files alone unless deletion vectors removed
    /// a quarter of their rows; `kefu compact` settles nothing.
    #[test]
    fn large_files_are_settled_until_a_quarter_is_deleted() {
        let file = |rows: u64| DataFile {
            path: "part.parquet".into(),
            size: 1,
            partition: Some("2026-01".into()),
            rows: Some(rows),
            stats: None,
            modification_time: 0,
            deletion: None,
        };
        let deleted = |f: DataFile, n: u64| f.with_deleted_rows(&(0..n).collect());
        let automatic = CompactOptions {
            settled_rows: Some(SETTLED_ROWS),
            ..CompactOptions::default()
        };
        let big = file(4 * SETTLED_ROWS);
        assert!(automatic.is_settled(&big));
        assert!(automatic.is_settled(&deleted(big.clone(), SETTLED_ROWS - 1)));
        assert!(!automatic.is_settled(&deleted(big.clone(), SETTLED_ROWS)));
        assert!(!automatic.is_settled(&file(SETTLED_ROWS - 1)));
        assert!(!automatic.is_settled(&deleted(file(SETTLED_ROWS + 10), 11)));
        assert!(!CompactOptions::default().is_settled(&big));
    }
}
