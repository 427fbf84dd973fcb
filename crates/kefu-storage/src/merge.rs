//! Keyed upserts: records land in their table one row per key, the newest version winning,
//! whatever order and however often they arrive.
//!
//! An operation merges a table's incoming rows in chunks (all of a daily batch at once;
//! a large batch in chunks of bounded memory, each merged into the state the previous ones
//! left). For a chunk:
//!
//! 1. Rows of one key within the chunk are reduced to the newest version (the model's
//!    [`version_rule`](kefu_model::Table::version_rule)); an equal version with other
//!    content goes to the later row, an identical one is a duplicate.
//! 2. The table's files whose key range (from Delta's per-file statistics) holds one of
//!    the chunk's keys are read — only their key and version columns. Keys that grow with
//!    time (sequence numbers, date-prefixed work-order numbers) make this read nothing for
//!    new records and only the recent files for updates.
//! 3. A newer incoming version replaces the stored row (its file is rewritten without it:
//!    copy-on-write), an older one is dropped as stale, an equal one is compared by
//!    content: identical is dropped, different replaces (the later batch wins).
//! 4. The surviving rows are written, sorted, to new files of their partitions (with the
//!    rewritten file of that partition when there is one, so updates do not multiply
//!    files).
//!
//! Every incoming record is counted once as new, updated, unchanged or stale. A record
//! superseded by a newer version of the same operation counts as stale and the newer one
//! takes its place, so the counts do not depend on how the operation was chunked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DynComparator, RecordBatch, UInt8Array, make_comparator,
};
use arrow::compute::{SortOptions, concat_batches};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use deltalake_core::kernel::{Action, Add};
use deltalake_core::protocol::{DeltaOperation, MergePredicate, SaveMode};
use futures::{StreamExt, TryStreamExt};
use kefu_model::{Table, VersionPart};
use object_store::ObjectStore;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection};
use parquet::file::metadata::PageIndexPolicy;
use roaring::RoaringTreemap;

use crate::delta::{DataFile, FileWriter};
use crate::ledger::{TableActions, TableChange, TableCounts};
use crate::parquet::{Layout, sort_batches, sort_selection, table_layout, writer_properties};
use crate::tables::{StoredTable, partition_rows};
use crate::{StorageError, Warehouse};

/// Rows per Parquet file at most.
pub const FILE_ROWS: usize = 1024 * 1024;
/// Rows handed to the Parquet writer at a time.
const WRITE_ROWS: usize = 64 * 1024;

/// A row's standing within an operation: stored before it, or landed by it as new or as
/// an update.
const BASE: u8 = 0;
const LANDED_NEW: u8 = 1;
const LANDED_UPDATE: u8 = 2;

/// A file of the table as the operation goes.
#[derive(Debug, Clone)]
struct ActiveFile {
    file: DataFile,
    /// Written by this operation (replacing it deletes it instead of removing it from
    /// the log).
    written: bool,
    /// For files this operation wrote: each row's standing (`BASE`, `LANDED_*`).
    standing: Option<Arc<Vec<u8>>>,
    /// The file's key range, from its statistics.
    keys: Option<(String, String)>,
    /// The rows deleted from a stored file so far (as of the base version, plus this
    /// operation's), once looked at.
    deleted: Option<RoaringTreemap>,
    /// A stored file whose deletion vector this operation changed: the file as the base
    /// version names it (removed from the log, then added back with the new vector).
    original: Option<DataFile>,
}

impl ActiveFile {
    fn new(file: DataFile, key_name: &str, written: bool, standing: Option<Arc<Vec<u8>>>) -> Self {
        ActiveFile {
            keys: file.text_range(key_name),
            file,
            written,
            standing,
            deleted: None,
            original: None,
        }
    }

    /// The rows deleted from this file (as written) so far.
    fn deleted(&mut self, table: Table) -> Result<&RoaringTreemap, StorageError> {
        if self.deleted.is_none() {
            self.deleted = Some(self.file.deleted_rows(table.name())?);
        }
        Ok(self.deleted.as_ref().expect("just set"))
    }
}

/// Orders versions of a table's records: each record's version parts as comparable bytes
/// (nulls lowest).
struct Versions {
    parts: &'static [VersionPart],
    converter: RowConverter,
}

impl Versions {
    fn new(table: Table) -> Result<Self, StorageError> {
        let parts = table.version_rule();
        let schema = table.schema();
        let fields = parts
            .iter()
            .map(|p| {
                let data_type = match p {
                    VersionPart::Latest(c) => schema
                        .field_with_name(c)
                        .expect("version columns exist")
                        .data_type()
                        .clone(),
                    VersionPart::Present(_) => DataType::Boolean,
                    VersionPart::Workflow(_) => DataType::UInt8,
                };
                SortField::new(data_type)
            })
            .collect();
        Ok(Versions {
            parts,
            converter: RowConverter::new(fields)?,
        })
    }

    /// The columns the version needs.
    fn columns(&self) -> BTreeSet<&'static str> {
        self.parts
            .iter()
            .map(|p| match *p {
                VersionPart::Latest(c) | VersionPart::Present(c) | VersionPart::Workflow(c) => c,
            })
            .collect()
    }

    fn encode(&self, batch: &RecordBatch) -> Result<Rows, StorageError> {
        let arrays: Vec<ArrayRef> = self
            .parts
            .iter()
            .map(|p| -> Result<ArrayRef, StorageError> {
                Ok(match *p {
                    VersionPart::Latest(c) => column(batch, c)?.clone(),
                    VersionPart::Present(c) => {
                        let a = column(batch, c)?;
                        Arc::new(BooleanArray::from_iter(
                            (0..a.len()).map(|i| Some(a.is_valid(i))),
                        ))
                    }
                    VersionPart::Workflow(c) => {
                        let a = column(batch, c)?.as_string::<i32>();
                        Arc::new(UInt8Array::from_iter(a.iter().map(|v| {
                            v.and_then(|v| {
                                v.parse::<kefu_model::vocab::TicketStatus>()
                                    .ok()
                                    .map(|s| s.workflow_rank())
                            })
                        })))
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        self.converter
            .convert_columns(&arrays)
            .map_err(StorageError::from)
    }
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, StorageError> {
    batch.column_by_name(name).ok_or_else(|| StorageError::Io {
        location: String::new(),
        source: format!("column {name} is missing from a file of the table").into(),
    })
}

/// Tells whether a row of one batch equals a row of another in every column (two nulls
/// are equal). Built per pair of batches; compares only the rows asked about, so a few
/// repeats in a large chunk cost a few comparisons, not an encoding of every row.
struct SameContents {
    columns: Vec<DynComparator>,
}

impl SameContents {
    fn new(left: &RecordBatch, right: &RecordBatch) -> Result<Self, StorageError> {
        let columns = left
            .columns()
            .iter()
            .zip(right.columns())
            .map(|(l, r)| make_comparator(l, r, SortOptions::default()))
            .collect::<Result<_, _>>()?;
        Ok(SameContents { columns })
    }

    fn same(&self, left: usize, right: usize) -> bool {
        self.columns
            .iter()
            .all(|c| c(left, right) == std::cmp::Ordering::Equal)
    }
}

/// The merge of one canonical table within an operation.
pub struct TableMerge {
    warehouse: Warehouse,
    table: Table,
    stored: StoredTable,
    schema: SchemaRef,
    layout: Layout,
    key: usize,
    versions: Versions,
    base_version: u64,
    files: Vec<ActiveFile>,
    /// Files of the table before the operation that it removed.
    removed: Vec<DataFile>,
    /// Files the operation wrote and then replaced itself (deleted at the end).
    discarded: Vec<String>,
    partitions: BTreeSet<String>,
    counts: TableCounts,
    writer: Option<FileWriter>,
    workers: usize,
    /// The warehouse's calendar, whose months partition the table.
    time_zone: chrono_tz::Tz,
}

impl TableMerge {
    /// Starts merging into `table` as of `version` (whose files are `files`), partitioning
    /// by the months of `time_zone` (the warehouse's).
    pub fn new(
        warehouse: &Warehouse,
        table: Table,
        time_zone: chrono_tz::Tz,
        version: u64,
        files: &[DataFile],
    ) -> Result<Self, StorageError> {
        let stored = StoredTable::Model(table);
        let schema = table.schema();
        let key_name = table.key_column();
        Ok(TableMerge {
            warehouse: warehouse.clone(),
            table,
            stored,
            layout: table_layout(table),
            key: schema.index_of(key_name).expect("key column"),
            versions: Versions::new(table)?,
            schema,
            base_version: version,
            files: files
                .iter()
                .map(|f| ActiveFile::new(f.clone(), key_name, false, None))
                .collect(),
            removed: Vec::new(),
            discarded: Vec::new(),
            partitions: BTreeSet::new(),
            counts: TableCounts::default(),
            writer: None,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            time_zone,
        })
    }

    /// Writes new files with `writer` (made ahead of time) instead of making one.
    pub fn with_writer(mut self, writer: FileWriter) -> Self {
        self.writer = Some(writer);
        self
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// What became of the rows merged so far.
    pub fn counts(&self) -> TableCounts {
        self.counts
    }

    /// Counts records of this table that were rejected before reaching it.
    pub fn count_rejected(&mut self, n: u64) {
        self.counts.records += n;
        self.counts.rejected += n;
    }

    /// Merges a chunk of incoming rows (in the table's schema, in arrival order).
    pub async fn merge(&mut self, batches: Vec<RecordBatch>) -> Result<(), StorageError> {
        let timer = std::time::Instant::now();
        let chunk = concat_batches(&self.schema, &batches)?;
        drop(batches);
        let n = chunk.num_rows();
        if n == 0 {
            return Ok(());
        }
        // The writer says whether the table takes deletion vectors (see `marks`).
        self.writer().await?;
        self.counts.records += n as u64;
        let keys = chunk.column(self.key).as_string::<i32>().clone();
        // Versions and contents are compared only where keys repeat: encoded on first use.
        let mut versions: Option<Rows> = None;
        let mut contents: Option<SameContents> = None;

        // 1. The newest version of each key within the chunk.
        let mut winner_of: HashMap<&str, usize, ahash::RandomState> =
            HashMap::with_capacity_and_hasher(n, ahash::RandomState::new());
        let mut keep = vec![false; n];
        for i in 0..n {
            let key = keys.value(i);
            match winner_of.entry(key) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                    keep[i] = true;
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let j = *e.get();
                    let v = match &versions {
                        Some(v) => v,
                        None => versions.insert(self.versions.encode(&chunk)?),
                    };
                    let newer = match v.row(i).cmp(&v.row(j)) {
                        std::cmp::Ordering::Greater => true,
                        std::cmp::Ordering::Less => false,
                        std::cmp::Ordering::Equal => {
                            let c = match &contents {
                                Some(c) => c,
                                None => contents.insert(SameContents::new(&chunk, &chunk)?),
                            };
                            if c.same(i, j) {
                                self.counts.unchanged += 1;
                                continue;
                            }
                            true
                        }
                    };
                    self.counts.stale += 1;
                    if newer {
                        keep[j] = false;
                        keep[i] = true;
                        e.insert(i);
                    }
                }
            }
        }

        // 2. Files that may hold one of the keys: those whose key range overlaps the
        // chunk's, then (only if there are any) those holding one of its keys in range.
        let low = winner_of.keys().min().copied().unwrap_or_default();
        let high = winner_of.keys().max().copied().unwrap_or_default();
        let overlapping: Vec<usize> = self
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| match &f.keys {
                Some((lo, hi)) => lo.as_str() <= high && low <= hi.as_str(),
                None => true,
            })
            .map(|(i, _)| i)
            .collect();
        let candidates: Vec<usize> = if overlapping.is_empty() {
            overlapping
        } else {
            let mut sorted: Vec<&str> = winner_of.keys().copied().collect();
            sorted.sort_unstable();
            overlapping
                .into_iter()
                .filter(|&i| match &self.files[i].keys {
                    Some((lo, hi)) => {
                        let at = sorted.partition_point(|k| *k < lo.as_str());
                        sorted.get(at).is_some_and(|k| *k <= hi.as_str())
                    }
                    None => true,
                })
                .collect()
        };
        let mut wanted: Vec<&str> = vec![self.table.key_column()];
        wanted.extend(self.versions.columns());
        let deduped = timer.elapsed();
        let projected = self.read(&candidates, Some(&wanted)).await?;
        let read_keys = timer.elapsed();

        // 3. Stored rows of the same keys.
        struct Stored {
            file: usize,
            row: usize,
            version: arrow::row::OwnedRow,
        }
        let mut stored: HashMap<usize, Vec<Stored>> = HashMap::new();
        for (file, batch) in &projected {
            let file_keys = column(batch, self.table.key_column())?.as_string::<i32>();
            let mut file_versions = None;
            // Files are read as written: rows a deletion vector removed are skipped here.
            let deleted = self.files[*file].deleted(self.table)?;
            for row in 0..batch.num_rows() {
                if deleted.contains(row as u64) {
                    continue;
                }
                if let Some(&w) = winner_of.get(file_keys.value(row)) {
                    let v = match &file_versions {
                        Some(v) => v,
                        None => file_versions.insert(self.versions.encode(batch)?),
                    };
                    stored.entry(w).or_default().push(Stored {
                        file: *file,
                        row,
                        version: v.row(row).owned(),
                    });
                }
            }
        }
        drop(projected);

        // 4. Decide: replace, drop, or compare contents.
        if !stored.is_empty() && versions.is_none() {
            versions = Some(self.versions.encode(&chunk)?);
        }
        let mut standing = vec![BASE; n];
        let mut removals: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut ties: Vec<(usize, usize, usize)> = Vec::new();
        let mut replaced: Vec<(usize, usize, usize)> = Vec::new();
        for (&w, matches) in &stored {
            // One row per key is the rule; more (a table written otherwise) keep the newest.
            let current = (0..matches.len())
                .max_by(|&a, &b| matches[a].version.cmp(&matches[b].version).then(b.cmp(&a)))
                .expect("at least one match");
            for (i, m) in matches.iter().enumerate() {
                if i != current {
                    tracing::warn!(table = %self.table, key = keys.value(w), "the table held two rows of one key; keeping the newest");
                    removals.entry(m.file).or_default().insert(m.row);
                }
            }
            let m = &matches[current];
            let v = versions.as_ref().expect("encoded above");
            match v.row(w).cmp(&m.version.row()) {
                std::cmp::Ordering::Greater => replaced.push((w, m.file, m.row)),
                std::cmp::Ordering::Less => {
                    keep[w] = false;
                    self.counts.stale += 1;
                }
                std::cmp::Ordering::Equal => ties.push((w, m.file, m.row)),
            }
        }
        // Files losing rows without a deletion vector are read whole (to be rewritten);
        // of the others, only the rows whose contents an equal version is compared with.
        let full_needed: BTreeSet<usize> = removals
            .keys()
            .copied()
            .chain(replaced.iter().map(|r| r.1))
            .filter(|&f| !self.marks(f))
            .collect();
        let mut tie_rows: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &(_, file, row) in &ties {
            if !full_needed.contains(&file) {
                tie_rows.entry(file).or_default().push(row);
            }
        }
        for rows in tie_rows.values_mut() {
            rows.sort_unstable();
            rows.dedup();
        }
        let full: HashMap<usize, RecordBatch> = self
            .read(&full_needed.iter().copied().collect::<Vec<_>>(), None)
            .await?
            .into_iter()
            .collect();
        let tie_batches = self.read_rows(&tie_rows).await?;
        let read_full = timer.elapsed();
        if !ties.is_empty() {
            let mut file_contents: HashMap<usize, SameContents> = HashMap::new();
            for (w, file, row) in ties {
                // The stored row's index in what was read of its file.
                let (batch, at) = match (full.get(&file), tie_rows.get(&file)) {
                    (Some(batch), _) => (batch, row),
                    (None, Some(rows)) => (
                        &tie_batches[&file],
                        rows.binary_search(&row)
                            .expect("the tie's row was selected"),
                    ),
                    (None, None) => unreachable!("every tie's file is read"),
                };
                if let std::collections::hash_map::Entry::Vacant(e) = file_contents.entry(file) {
                    e.insert(SameContents::new(&chunk, batch)?);
                }
                if file_contents[&file].same(w, at) {
                    keep[w] = false;
                    self.counts.unchanged += 1;
                } else {
                    replaced.push((w, file, row));
                }
            }
        }
        for (w, file, row) in replaced {
            removals.entry(file).or_default().insert(row);
            match self.files[file].standing.as_ref().map_or(BASE, |s| s[row]) {
                BASE => {
                    self.counts.updated += 1;
                    standing[w] = LANDED_UPDATE;
                }
                earlier => {
                    // A version landed earlier in this operation gives way: it is stale
                    // now, and this one takes its place.
                    self.counts.stale += 1;
                    standing[w] = earlier;
                }
            }
        }
        for (w, s) in standing.iter_mut().enumerate() {
            if keep[w] && *s == BASE {
                *s = LANDED_NEW;
                self.counts.new += 1;
            }
        }

        // 5. Rewrite the files that lost rows; write the kept rows, with the rewritten file
        // of their partition where there is one. Rows are named, not copied, until they
        // are gathered in sorted order for writing.
        let mut by_partition: BTreeMap<Option<String>, Vec<Part>> = BTreeMap::new();
        let mut gone: Vec<usize> = Vec::new();
        let mut marked = 0usize;
        let mut rewritten = 0usize;
        for (file, rows) in &removals {
            if self.marks(*file) {
                let active = &mut self.files[*file];
                let mut deleted = active.deleted(self.table)?.clone();
                deleted.extend(rows.iter().map(|&r| r as u64));
                marked += rows.len();
                if Some(deleted.len()) >= active.file.rows {
                    gone.push(*file);
                } else {
                    let original = active.original.get_or_insert_with(|| active.file.clone());
                    active.file = original.with_deleted_rows(&deleted);
                    active.deleted = Some(deleted);
                    self.partitions.extend(active.file.partition.clone());
                }
                continue;
            }
            rewritten += 1;
            let batch = &full[file];
            let rest: Vec<u32> = (0..batch.num_rows() as u32)
                .filter(|r| !rows.contains(&(*r as usize)))
                .collect();
            let standing = match &self.files[*file].standing {
                Some(s) => rest.iter().map(|&r| s[r as usize]).collect(),
                None => vec![BASE; rest.len()],
            };
            gone.push(*file);
            if !rest.is_empty() {
                by_partition
                    .entry(self.files[*file].file.partition.clone())
                    .or_default()
                    .push(Part {
                        batch: batch.clone(),
                        rows: rest,
                        standing,
                    });
            }
        }
        drop(full);
        let kept = (0..n as u32).filter(|&r| keep[r as usize]);
        for (partition, rows) in partition_rows(self.table, self.time_zone, &chunk, kept)? {
            let standing = rows.iter().map(|&r| standing[r as usize]).collect();
            by_partition.entry(partition).or_default().push(Part {
                batch: chunk.clone(),
                rows,
                standing,
            });
        }
        drop(chunk);
        // Files replaced by their rewrite leave the state.
        gone.sort_unstable();
        for &file in gone.iter().rev() {
            let f = self.files.remove(file);
            self.partitions.extend(f.file.partition.clone());
            if f.written {
                self.discarded.push(f.file.path);
            } else {
                // The log names the file with the deletion vector it had then.
                self.removed.push(f.original.unwrap_or(f.file));
            }
        }
        let decided = timer.elapsed();
        self.write(by_partition).await?;
        tracing::debug!(
            table = %self.table,
            rows = n,
            candidates = candidates.len(),
            rewritten,
            marked,
            dedupe_ms = deduped.as_secs_f64() * 1e3,
            keys_ms = (read_keys - deduped).as_secs_f64() * 1e3,
            full_ms = (read_full - read_keys).as_secs_f64() * 1e3,
            decide_ms = (decided - read_full).as_secs_f64() * 1e3,
            write_ms = (timer.elapsed() - decided).as_secs_f64() * 1e3,
            "merged a chunk"
        );
        Ok(())
    }

    /// Whether `file` loses replaced rows to its deletion vector: a stored file of a table
    /// that takes them. Files this operation wrote (not yet in the log) are rewritten.
    fn marks(&self, file: usize) -> bool {
        !self.files[file].written
            && self
                .writer
                .as_ref()
                .is_some_and(FileWriter::deletion_vectors)
    }

    /// Reads files of the state (all columns, or `columns`), concurrently.
    async fn read(
        &self,
        files: &[usize],
        columns: Option<&[&str]>,
    ) -> Result<Vec<(usize, RecordBatch)>, StorageError> {
        let store = self.warehouse.store();
        let columns: Option<Vec<String>> =
            columns.map(|c| c.iter().map(|s| s.to_string()).collect());
        let jobs = files.iter().map(|&i| {
            let path = self.warehouse.path(&format!(
                "{}/{}",
                self.stored.name(),
                self.files[i].file.path
            ));
            let size = self.files[i].file.size;
            let store = store.clone();
            let schema = self.schema.clone();
            let columns = columns.clone();
            async move {
                // As written: row numbers are what deletion vectors name.
                let batch =
                    read_parquet(store, path, size, &schema, columns.as_deref(), None).await?;
                Ok::<_, StorageError>((i, batch))
            }
        });
        futures::stream::iter(jobs)
            .buffer_unordered(self.workers)
            .try_collect()
            .await
    }

    /// Reads some rows (sorted row numbers as written) of files of the state, all
    /// columns, concurrently: each file's batch holds its rows in that order.
    async fn read_rows(
        &self,
        rows: &BTreeMap<usize, Vec<usize>>,
    ) -> Result<HashMap<usize, RecordBatch>, StorageError> {
        let store = self.warehouse.store();
        let jobs = rows.iter().map(|(&i, rows)| {
            let file = &self.files[i].file;
            let path = self
                .warehouse
                .path(&format!("{}/{}", self.stored.name(), file.path));
            // Without a row count the file is read whole and the rows taken from it.
            let selection = file.rows.map(|total| {
                RowSelection::from_consecutive_ranges(
                    rows.iter().map(|&r| r..r + 1),
                    total as usize,
                )
            });
            let (store, schema, size) = (store.clone(), self.schema.clone(), file.size);
            async move {
                let whole = selection.is_none();
                let batch = read_parquet(store, path, size, &schema, None, selection).await?;
                let batch = if whole {
                    let indices =
                        arrow::array::UInt32Array::from_iter_values(rows.iter().map(|&r| r as u32));
                    arrow::compute::take_record_batch(&batch, &indices)?
                } else {
                    batch
                };
                Ok::<_, StorageError>((i, batch))
            }
        });
        futures::stream::iter(jobs)
            .buffer_unordered(self.workers)
            .try_collect()
            .await
    }

    async fn writer(&mut self) -> Result<FileWriter, StorageError> {
        if self.writer.is_none() {
            self.writer = Some(self.warehouse.log(self.stored).file_writer().await?);
        }
        Ok(self.writer.clone().expect("just set"))
    }

    /// Writes rows per partition as sorted files of at most [`FILE_ROWS`] rows.
    async fn write(
        &mut self,
        by_partition: BTreeMap<Option<String>, Vec<Part>>,
    ) -> Result<(), StorageError> {
        let writer = self.writer().await?;
        let mut jobs = Vec::new();
        for (partition, parts) in by_partition {
            let rows: usize = parts.iter().map(|p| p.rows.len()).sum();
            if rows == 0 {
                continue;
            }
            if let Some(p) = &partition {
                self.partitions.insert(p.clone());
            }
            let selection: Vec<(u32, u32)> = parts
                .iter()
                .enumerate()
                .flat_map(|(b, p)| p.rows.iter().map(move |&r| (b as u32, r)))
                .collect();
            let standing: Vec<u8> = parts
                .iter()
                .flat_map(|p| p.standing.iter().copied())
                .collect();
            let batches: Arc<Vec<RecordBatch>> =
                Arc::new(parts.into_iter().map(|p| p.batch).collect());
            // Sorted: the selection in sorted order, each row with its standing.
            let (selection, standing) =
                match sort_selection(&batches, &selection, &self.layout.sort_columns)? {
                    None => (selection, standing),
                    Some(order) => (
                        order.iter().map(|&i| selection[i as usize]).collect(),
                        order.iter().map(|&i| standing[i as usize]).collect(),
                    ),
                };
            let pieces = rows.div_ceil(FILE_ROWS);
            let per = rows.div_ceil(pieces);
            for k in 0..pieces {
                let start = k * per;
                let len = per.min(rows - start);
                jobs.push((
                    partition.clone(),
                    batches.clone(),
                    selection[start..start + len].to_vec(),
                    standing[start..start + len].to_vec(),
                ));
            }
        }
        let stored = self.stored;
        let layout = self.layout.clone();
        let key_name = self.table.key_column();
        let written = futures::stream::iter(jobs.into_iter().map(
            |(partition, batches, rows, standing)| {
                let writer = writer.clone();
                let layout = layout.clone();
                // A task of its own per file (the writes run in parallel), owned by a set
                // this future holds: a batch given up (an error elsewhere, a cancelled
                // ingest) stops its writers instead of leaving them running.
                let mut task = tokio::task::JoinSet::new();
                task.spawn(async move {
                    // The copy into sorted order happens here, on the writing worker.
                    let batch = gather(&batches, &rows)?;
                    drop(batches);
                    let add =
                        write_file(&writer, stored, partition.as_deref(), &batch, &layout).await?;
                    Ok::<_, StorageError>((add, standing))
                });
                async move { task.join_next().await.expect("one task") }
            },
        ))
        .buffer_unordered(self.workers)
        .map(|joined| {
            joined.map_err(|e| StorageError::Io {
                location: String::new(),
                source: format!("writing a file: {e}").into(),
            })?
        })
        .try_collect::<Vec<_>>()
        .await?;
        for (add, standing) in written {
            self.files.push(ActiveFile::new(
                DataFile::from_add(&add),
                key_name,
                true,
                Some(Arc::new(standing)),
            ));
        }
        Ok(())
    }

    /// The operation's actions on this table, what they change, the files written (to
    /// make durable), and the files it wrote and replaced (to delete).
    pub fn finish(self) -> MergeResult {
        let partition_column = self.stored.partition_column();
        let adds: Vec<&ActiveFile> = self.files.iter().filter(|f| f.written).collect();
        // Stored files that lost rows to their deletion vector: out with the old vector,
        // back in with the new one.
        let marked: Vec<(&DataFile, &DataFile)> = self
            .files
            .iter()
            .filter_map(|f| f.original.as_ref().map(|o| (o, &f.file)))
            .collect();
        let mut actions: Vec<Action> = self
            .removed
            .iter()
            .chain(marked.iter().map(|m| m.0))
            .map(|f| Action::Remove(f.remove(partition_column, true)))
            .collect();
        actions.extend(
            adds.iter()
                .map(|f| &f.file)
                .chain(marked.iter().map(|m| m.1))
                .map(|f| Action::Add(f.add(partition_column, true))),
        );
        let live = |f: &DataFile| f.live_rows().unwrap_or(0);
        let change = TableChange {
            version: 0,
            files_added: adds.len() as u64,
            files_removed: self.removed.len() as u64,
            rows_added: adds.iter().map(|f| live(&f.file)).sum(),
            rows_removed: self.removed.iter().map(live).sum::<u64>()
                + marked.iter().map(|(o, f)| live(o) - live(f)).sum::<u64>(),
            partitions: self.partitions.into_iter().collect(),
        };
        let rewrote = !self.removed.is_empty() || !marked.is_empty();
        let key = self.table.key_column();
        let operation = if !rewrote {
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: partition_column.map(|c| vec![c.to_string()]),
                predicate: None,
            }
        } else {
            DeltaOperation::Merge {
                predicate: None,
                merge_predicate: Some(format!("target.{key} = source.{key}")),
                matched_predicates: vec![MergePredicate {
                    action_type: "update".into(),
                    predicate: Some("the source version is newer".into()),
                }],
                not_matched_predicates: vec![MergePredicate {
                    action_type: "insert".into(),
                    predicate: None,
                }],
                not_matched_by_source_predicates: Vec::new(),
            }
        };
        let table_dir = self.stored.name();
        MergeResult {
            new_files: adds
                .iter()
                .map(|f| format!("{table_dir}/{}", f.file.path))
                .collect(),
            discarded: self
                .discarded
                .iter()
                .map(|p| format!("{table_dir}/{p}"))
                .collect(),
            actions: (!actions.is_empty()).then(|| TableActions {
                base_version: self.base_version,
                operation,
                actions,
                info: Default::default(),
            }),
            change,
            counts: self.counts,
        }
    }
}

/// What merging into one table produced.
#[derive(Debug)]
pub struct MergeResult {
    /// `None` when nothing changed in the table.
    pub actions: Option<TableActions>,
    pub change: TableChange,
    pub counts: TableCounts,
    /// Files written and named by the actions (relative to the warehouse).
    pub new_files: Vec<String>,
    /// Files written and replaced within the operation (relative to the warehouse).
    pub discarded: Vec<String>,
}

/// Rows of one partition to write: some rows of a batch, each with its standing.
struct Part {
    batch: RecordBatch,
    rows: Vec<u32>,
    standing: Vec<u8>,
}

/// The rows `(batch, row)` of `batches`, in that order, as one batch: the only copy of
/// the rows between the chunk and the Parquet writer.
fn gather(batches: &[RecordBatch], rows: &[(u32, u32)]) -> Result<RecordBatch, StorageError> {
    if let [batch] = batches {
        let whole = rows.len() == batch.num_rows()
            && rows.iter().enumerate().all(|(i, &(_, r))| i == r as usize);
        if whole {
            return Ok(batch.clone());
        }
        let indices = arrow::array::UInt32Array::from_iter_values(rows.iter().map(|&(_, r)| r));
        return Ok(arrow::compute::take_record_batch(batch, &indices)?);
    }
    let indices: Vec<(usize, usize)> = rows
        .iter()
        .map(|&(b, r)| (b as usize, r as usize))
        .collect();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    Ok(arrow::compute::interleave_record_batch(&refs, &indices)?)
}

/// Writes sorted rows of one partition as one file.
pub async fn write_file(
    writer: &FileWriter,
    table: StoredTable,
    partition: Option<&str>,
    rows: &RecordBatch,
    layout: &Layout,
) -> Result<Add, StorageError> {
    let slices = (0..rows.num_rows())
        .step_by(WRITE_ROWS)
        .map(|start| rows.slice(start, WRITE_ROWS.min(rows.num_rows() - start)));
    let partition = table.partition_column().map(|column| (column, partition));
    Ok(writer
        .write(partition, slices, writer_properties(layout))
        .await?)
}

/// Reads a Parquet file of a table (all its columns, or `columns`), cast to the table's
/// schema.
pub async fn read_parquet(
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    size: u64,
    schema: &SchemaRef,
    columns: Option<&[String]>,
    selection: Option<RowSelection>,
) -> Result<RecordBatch, StorageError> {
    let err = |e: parquet::errors::ParquetError| StorageError::Io {
        location: path.to_string(),
        source: e.into(),
    };
    let reader = crate::parquet::ObjectReader::new(store, path.clone(), size);
    // With a selection, the offset index lets the reader fetch only the pages it needs.
    let policy = match selection {
        Some(_) => PageIndexPolicy::Optional,
        None => PageIndexPolicy::Skip,
    };
    let options = ArrowReaderOptions::new().with_offset_index_policy(policy);
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, options)
        .await
        .map_err(err)?;
    let file_schema = builder.schema().clone();
    // The columns wanted, as the table types them; a column older files lack (added to
    // the model since) reads as nulls.
    let names: Vec<String> = match columns {
        Some(cols) => cols.to_vec(),
        None => schema.fields().iter().map(|f| f.name().clone()).collect(),
    };
    let present: Vec<usize> = names
        .iter()
        .filter_map(|c| file_schema.index_of(c).ok())
        .collect();
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), present);
    let builder = match selection {
        Some(selection) => builder.with_row_selection(selection),
        None => builder,
    };
    let stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(err)?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(err)?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let read = concat_batches(
        &batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty())),
        &batches,
    )?;
    drop(batches);
    let mut fields = Vec::with_capacity(names.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(names.len());
    for name in &names {
        let field = match schema.field_with_name(name) {
            Ok(f) => Arc::new(f.clone()),
            Err(_) => match file_schema.field_with_name(name) {
                Ok(f) => Arc::new(f.clone()),
                Err(_) => continue,
            },
        };
        let array = match read.column_by_name(name) {
            Some(a) if a.data_type() == field.data_type() => a.clone(),
            Some(a) => arrow::compute::cast(a, field.data_type())?,
            None => arrow::array::new_null_array(field.data_type(), rows),
        };
        fields.push(Arc::new(field.as_ref().clone().with_nullable(true)));
        arrays.push(array);
    }
    RecordBatch::try_new_with_options(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        arrays,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(StorageError::from)
}

/// Appends rows to an append-only table (`_rejects`): one file per partition per call.
/// Appending does not read the table, so the version it commits onto is given last, at
/// [`Appender::finish`].
pub struct Appender {
    warehouse: Warehouse,
    table: StoredTable,
    layout: Layout,
    adds: Vec<Add>,
    partitions: BTreeSet<String>,
    writer: Option<FileWriter>,
}

impl Appender {
    pub fn new(warehouse: &Warehouse, table: StoredTable, layout: Layout) -> Self {
        Appender {
            warehouse: warehouse.clone(),
            table,
            layout,
            adds: Vec::new(),
            partitions: BTreeSet::new(),
            writer: None,
        }
    }

    /// Writes `rows` (sorted as the layout says) as a file of `partition`.
    pub async fn append(
        &mut self,
        partition: Option<&str>,
        rows: &RecordBatch,
    ) -> Result<(), StorageError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = Some(self.warehouse.log(self.table).file_writer().await?);
        }
        let sorted = sort_batches(
            &rows.schema(),
            std::slice::from_ref(rows),
            &self.layout.sort_columns,
        )?;
        let writer = self.writer.as_ref().expect("just set");
        let add = write_file(writer, self.table, partition, &sorted, &self.layout).await?;
        self.partitions.extend(partition.map(str::to_string));
        self.adds.push(add);
        Ok(())
    }

    /// The files appended, as a change of the table at `base_version`.
    pub fn finish(self, base_version: u64) -> MergeResult {
        let partition_column = self.table.partition_column();
        let files: Vec<DataFile> = self.adds.iter().map(DataFile::from_add).collect();
        let change = TableChange {
            version: 0,
            files_added: files.len() as u64,
            files_removed: 0,
            rows_added: files.iter().map(|f| f.rows.unwrap_or(0)).sum(),
            rows_removed: 0,
            partitions: self.partitions.into_iter().collect(),
        };
        MergeResult {
            new_files: files
                .iter()
                .map(|f| format!("{}/{}", self.table.name(), f.path))
                .collect(),
            discarded: Vec::new(),
            actions: (!self.adds.is_empty()).then(|| TableActions {
                base_version,
                operation: DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: partition_column.map(|c| vec![c.to_string()]),
                    predicate: None,
                },
                actions: self
                    .adds
                    .into_iter()
                    .map(|a| {
                        Action::Add(Add {
                            data_change: true,
                            ..a
                        })
                    })
                    .collect(),
                info: Default::default(),
            }),
            change,
            counts: TableCounts::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int32Array, StringArray, TimestampMicrosecondArray};

    /// A ticket's version columns: updated_at, reopen_count, status, closed_at.
    type TicketVersion<'a> = (Option<i64>, i32, &'a str, Option<i64>);

    /// Tickets with only the version columns set (the rest null or empty).
    fn tickets(rows: &[TicketVersion]) -> RecordBatch {
        let schema = Table::Tickets.schema();
        let n = rows.len();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                let ts = |get: &dyn Fn(&TicketVersion) -> Option<i64>| {
                    Arc::new(
                        TimestampMicrosecondArray::from(rows.iter().map(get).collect::<Vec<_>>())
                            .with_timezone("UTC"),
                    ) as ArrayRef
                };
                match f.name().as_str() {
                    "updated_at" => ts(&|r| r.0),
                    "closed_at" => ts(&|r| r.3),
                    "created_at" => ts(&|_| Some(0)),
                    "reopened_count" => Arc::new(Int32Array::from(
                        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                    "status" => Arc::new(StringArray::from(
                        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    )),
                    _ => arrow::array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        let nullable: Vec<arrow::datatypes::FieldRef> = schema
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
            .collect();
        RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(nullable)), columns).unwrap()
    }

    #[test]
    fn versions_order_by_the_table_rule() {
        let v = Versions::new(Table::Tickets).unwrap();
        let batch = tickets(&[
            // 0: received, no export time
            (None, 0, "received", None),
            // 1: closed, no export time: further in the workflow than 0
            (None, 0, "closed", Some(10)),
            // 2: received again with an export time: newer than any without
            (Some(5), 0, "received", None),
            // 3: reopened once, in progress: newer than closed (same export time absent)
            (None, 1, "in_progress", None),
            // 4: a later export time beats everything
            (Some(6), 0, "dispatched", None),
        ]);
        let rows = v.encode(&batch).unwrap();
        let order = |a: usize, b: usize| rows.row(a).cmp(&rows.row(b));
        use std::cmp::Ordering::*;
        assert_eq!(order(1, 0), Greater, "workflow progress");
        assert_eq!(order(2, 1), Greater, "an export time beats none");
        assert_eq!(order(3, 1), Greater, "a reopening beats a closing");
        assert_eq!(order(4, 2), Greater, "the later export time");
        assert_eq!(order(0, 0), Equal);
    }
}
