//! An open warehouse: its object store, its ledger of committed batches, and the commit
//! protocol that makes a batch land whole or not at all.
//!
//! Layout (paths relative to the warehouse root):
//!
//! ```text
//! calls/month=2026-01/part-<batch>-00000.parquet   tables, Hive-partitioned
//! _rejects/table=calls/part-<batch>-00000.parquet  rejected records
//! _kefu/ledger/0000000001.json                     one record per committed batch
//! _kefu/staging/<batch>/calls/month=…/part-….parquet  files of a batch being written
//! _kefu/lock                                       held by an ingest (local warehouses)
//! ```
//!
//! Commit protocol: a batch writes every file under `_kefu/staging/<batch>/` first. It
//! commits by creating the next ledger record with put-if-absent (so two writers can never
//! take the same sequence number), then publishes: each staged file is renamed to its place
//! in the table. A crash before the ledger record leaves only staged files, which the next
//! writer deletes; a crash after it leaves a committed batch whose remaining staged files
//! the next writer (or `recover`) renames into place. Either way the batch is seen whole
//! or not at all once recovery has run, and it never lands twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{StorageError, WarehouseLocation};

pub const LEDGER_DIR: &str = "_kefu/ledger";
pub const STAGING_DIR: &str = "_kefu/staging";
pub const REJECTS_TABLE: &str = "_rejects";
/// The Hive partition column of the event tables: `month=YYYY-MM`, the month of the
/// event time on the Asia/Shanghai calendar.
pub const MONTH_COLUMN: &str = "month";
/// The Hive partition column of `_rejects`: `table=<the table the record was meant for>`.
pub const REJECTS_TABLE_COLUMN: &str = "table";

/// The schema of `_rejects` (its `table` is the Hive partition).
pub fn rejects_schema() -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("batch_id", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("source", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("member", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("line", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("column", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("reason", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("detail", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("raw", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new(
            "rejected_at",
            arrow::datatypes::DataType::Timestamp(
                arrow::datatypes::TimeUnit::Microsecond,
                Some("UTC".into()),
            ),
            false,
        ),
    ]))
}

/// Event tables are partitioned by month; `customers` is a dimension (one row per
/// customer, opened over decades) and is not partitioned.
pub fn partitioned_by_month(table: kefu_model::Table) -> bool {
    table != kefu_model::Table::Customers
}

/// Staged files of an uncommitted batch on an object store are only deleted when older
/// than this (a local warehouse knows through its lock that no other writer is running).
const ABANDONED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// One source of a batch, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSource {
    /// As given on the command line (path or URL).
    pub name: String,
    /// BLAKE3 of the source's bytes, hex.
    pub content_hash: String,
    pub bytes: u64,
    pub records: u64,
    pub landed: u64,
    pub rejected: u64,
    pub duplicates: u64,
}

/// One file a batch wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFile {
    /// Relative to the warehouse root, e.g. `calls/month=2026-01/part-….parquet`.
    pub path: String,
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
}

/// A committed batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub seq: u64,
    pub batch_id: String,
    pub committed_at: chrono::DateTime<chrono::Utc>,
    pub kefu_version: String,
    pub profile: String,
    pub sources: Vec<LedgerSource>,
    pub files: Vec<LedgerFile>,
    pub records: u64,
    pub landed: u64,
    pub rejected: u64,
    pub duplicates: u64,
    /// Landed rows per table.
    pub tables: BTreeMap<String, u64>,
    pub seconds: f64,
}

/// What `recover` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Committed batches whose publishing was completed.
    pub completed: Vec<String>,
    /// Uncommitted batches whose staged files were deleted.
    pub discarded: Vec<String>,
}

/// The outcome of a commit attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Commit {
    Committed(BatchRecord),
    /// Some of the batch's sources were committed by another writer meanwhile; nothing of
    /// this batch was committed and its staged files were deleted.
    Conflict {
        already: Vec<String>,
    },
}

/// An open warehouse.
#[derive(Debug, Clone)]
pub struct Warehouse {
    location: WarehouseLocation,
    store: Arc<dyn ObjectStore>,
    /// The local directory, for `file://` warehouses (fsync, locking).
    local: Option<PathBuf>,
    root: Path,
}

fn io(location: &WarehouseLocation, e: impl std::fmt::Display) -> StorageError {
    StorageError::Io {
        location: location.to_string(),
        reason: e.to_string(),
    }
}

impl Warehouse {
    /// Opens (creating a local directory if needed) the warehouse at `location`. S3 takes
    /// its credentials, region and endpoint from the usual `AWS_*` environment variables.
    pub fn open(location: &WarehouseLocation) -> Result<Self, StorageError> {
        let (store, local, root): (Arc<dyn ObjectStore>, _, _) = match location.local_path() {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| io(location, e))?;
                let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| io(location, e))?;
                (Arc::new(fs), Some(dir), Path::default())
            }
            None => {
                let url = location.url();
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| io(location, e))?;
                let root = Path::from(url.path().trim_matches('/'));
                (Arc::new(s3), None, root)
            }
        };
        Ok(Warehouse {
            location: location.clone(),
            store,
            local,
            root,
        })
    }

    pub fn location(&self) -> &WarehouseLocation {
        &self.location
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    /// The store path of `relative` (a `/`-separated path inside the warehouse).
    pub fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    fn relative(&self, path: &Path) -> String {
        path.prefix_match(&self.root)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
            .unwrap_or_default()
            .join("/")
    }

    fn err(&self, e: impl std::fmt::Display) -> StorageError {
        io(&self.location, e)
    }

    /// Takes the warehouse's writer lock, waiting for another writer to finish; `None` for
    /// object stores, where commits are safe without it (put-if-absent on the ledger).
    pub fn lock(&self, on_wait: impl FnOnce()) -> Result<Option<WriterLock>, StorageError> {
        let Some(dir) = &self.local else {
            return Ok(None);
        };
        let kefu = dir.join("_kefu");
        std::fs::create_dir_all(&kefu).map_err(|e| self.err(e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(kefu.join("lock"))
            .map_err(|e| self.err(e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(|e| self.err(e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(self.err(e)),
        }
        Ok(Some(WriterLock { _file: file }))
    }

    /// Writes `bytes` at `relative`. On a local disk the file is flushed to the disk in
    /// the background, so that the disk writes overlap with the work still to do;
    /// [`Warehouse::commit`] then waits for every file of the batch to be durable before
    /// its ledger record.
    pub async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let path = self.path(relative);
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| self.err(e))?;
        if let Some(dir) = &self.local {
            let file = dir.join(relative);
            // Best effort: a failure here shows again in the commit's own sync.
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::File::open(file).and_then(|f| f.sync_data());
            });
        }
        Ok(())
    }

    fn sync(&self, relative: &str) -> Result<(), StorageError> {
        if let Some(dir) = &self.local {
            let file = dir.join(relative);
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(|e| self.err(format!("{}: {e}", file.display())))?;
            if let Some(parent) = file.parent() {
                // The directory entry too, so the file survives a power cut.
                std::fs::File::open(parent)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| self.err(format!("{}: {e}", parent.display())))?;
            }
        }
        Ok(())
    }

    /// Every committed batch, oldest first.
    pub async fn ledger(&self) -> Result<Vec<BatchRecord>, StorageError> {
        let mut entries: Vec<(u64, Path)> = self
            .store
            .list(Some(&self.path(LEDGER_DIR)))
            .map_err(|e| self.err(e))
            .try_filter_map(|meta| async move {
                let seq = meta
                    .location
                    .filename()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u64>().ok());
                Ok(seq.map(|s| (s, meta.location)))
            })
            .try_collect()
            .await?;
        entries.sort();
        let mut records = Vec::with_capacity(entries.len());
        for (seq, path) in entries {
            let bytes = self
                .store
                .get(&path)
                .await
                .map_err(|e| self.err(e))?
                .bytes()
                .await
                .map_err(|e| self.err(e))?;
            let record: BatchRecord = serde_json::from_slice(&bytes)
                .map_err(|e| self.err(format!("ledger record {path}: {e}")))?;
            if record.seq != seq {
                return Err(self.err(format!("ledger record {path} says seq {}", record.seq)));
            }
            records.push(record);
        }
        Ok(records)
    }

    /// Where a batch stages a file that will live at `relative`.
    pub fn staged(batch_id: &str, relative: &str) -> String {
        format!("{STAGING_DIR}/{batch_id}/{relative}")
    }

    /// Commits a batch whose files are staged: takes the next ledger number unless one of
    /// `record.sources` was committed meanwhile, then publishes the files.
    pub async fn commit(&self, mut record: BatchRecord) -> Result<Commit, StorageError> {
        loop {
            let ledger = self.ledger().await?;
            let committed: BTreeSet<&str> = ledger
                .iter()
                .flat_map(|b| b.sources.iter().map(|s| s.content_hash.as_str()))
                .collect();
            let already: Vec<String> = record
                .sources
                .iter()
                .filter(|s| committed.contains(s.content_hash.as_str()))
                .map(|s| s.name.clone())
                .collect();
            if !already.is_empty() {
                self.discard(&record.batch_id).await?;
                return Ok(Commit::Conflict { already });
            }
            // The data must be on disk before the record that makes it visible.
            for file in &record.files {
                self.sync(&Self::staged(&record.batch_id, &file.path))?;
            }
            record.seq = ledger.last().map_or(1, |b| b.seq + 1);
            record.committed_at = chrono::Utc::now();
            let relative = format!("{LEDGER_DIR}/{:010}.json", record.seq);
            let json = serde_json::to_vec_pretty(&record).map_err(|e| self.err(e))?;
            let put = self
                .store
                .put_opts(
                    &self.path(&relative),
                    PutPayload::from(json),
                    PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    },
                )
                .await;
            match put {
                Ok(_) => {
                    self.sync(&relative)?;
                    self.publish(&record).await?;
                    return Ok(Commit::Committed(record));
                }
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    /// Moves a committed batch's staged files into place (idempotent).
    async fn publish(&self, record: &BatchRecord) -> Result<(), StorageError> {
        for file in &record.files {
            let staged = self.path(&Self::staged(&record.batch_id, &file.path));
            let target = self.path(&file.path);
            match self.store.rename(&staged, &target).await {
                Ok(()) => {}
                // Already moved (by an earlier, interrupted publish).
                Err(object_store::Error::NotFound { .. }) => {
                    self.store.head(&target).await.map_err(|e| {
                        self.err(format!(
                            "committed batch {} lost its file {}: {e}",
                            record.batch_id, file.path
                        ))
                    })?;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        self.discard(&record.batch_id).await
    }

    /// Deletes whatever is staged for `batch_id`.
    pub async fn discard(&self, batch_id: &str) -> Result<(), StorageError> {
        let prefix = self.path(&format!("{STAGING_DIR}/{batch_id}"));
        let staged: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        for path in staged {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        if let Some(dir) = &self.local {
            // LocalFileSystem leaves empty directories behind.
            let staging = dir.join(STAGING_DIR).join(batch_id);
            if staging.exists() {
                std::fs::remove_dir_all(&staging).map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// Completes committed batches a crash interrupted and deletes abandoned staged files.
    /// Call it holding the writer lock (local warehouses).
    pub async fn recover(&self) -> Result<Recovery, StorageError> {
        let staged: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.path(STAGING_DIR)))
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        let mut batches: BTreeMap<String, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
        for meta in &staged {
            let relative = self.relative(&meta.location);
            if let Some(id) = relative
                .strip_prefix(STAGING_DIR)
                .and_then(|r| r.trim_start_matches('/').split('/').next())
            {
                let newest = batches.entry(id.to_string()).or_insert(meta.last_modified);
                *newest = (*newest).max(meta.last_modified);
            }
        }
        if let Some(dir) = &self.local {
            // Directories left empty by a crash.
            if let Ok(entries) = std::fs::read_dir(dir.join(STAGING_DIR)) {
                for e in entries.flatten() {
                    let id = e.file_name().to_string_lossy().into_owned();
                    batches.entry(id).or_insert(chrono::DateTime::UNIX_EPOCH);
                }
            }
        }
        let mut recovery = Recovery::default();
        if batches.is_empty() {
            return Ok(recovery);
        }
        let ledger = self.ledger().await?;
        let now = chrono::Utc::now();
        for (id, newest) in batches {
            if let Some(record) = ledger.iter().find(|b| b.batch_id == id) {
                self.publish(record).await?;
                recovery.completed.push(id);
            } else if self.local.is_some() || now - newest > ABANDONED_AFTER {
                self.discard(&id).await?;
                recovery.discarded.push(id);
            }
        }
        Ok(recovery)
    }

    /// Parquet files under `<table>/` (relative paths and sizes), sorted.
    pub async fn table_files(&self, table: &str) -> Result<Vec<(String, u64)>, StorageError> {
        let mut files: Vec<(String, u64)> = self
            .store
            .list(Some(&self.path(table)))
            .map_err(|e| self.err(e))
            .try_filter_map(|meta| async move {
                Ok((meta.location.extension() == Some("parquet"))
                    .then_some((meta.location, meta.size)))
            })
            .map_ok(|(p, size)| (self.relative(&p), size))
            .try_collect()
            .await?;
        files.sort();
        Ok(files)
    }
}

/// Held while a writer works on a local warehouse; released on drop (or process death).
#[derive(Debug)]
pub struct WriterLock {
    _file: std::fs::File,
}

/// One table of a warehouse, as `kefu status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableStatus {
    pub table: String,
    /// Rows in committed files (from the ledger).
    pub rows: u64,
    pub files: u64,
    pub partitions: u64,
    pub bytes: u64,
    /// Parquet files in the table's directory that no committed batch wrote (copied in by
    /// hand, or left by a crash mid-publish before recovery ran).
    pub unrecorded_files: u64,
    /// Files the ledger lists that are missing from the directory.
    pub missing_files: u64,
}

/// A warehouse's tables and batches.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WarehouseStatus {
    pub tables: Vec<TableStatus>,
    pub batches: Vec<BatchRecord>,
}

impl Warehouse {
    /// Tables (the ledger's view, checked against the files present) and every batch.
    pub async fn status(&self, tables: &[&str]) -> Result<WarehouseStatus, StorageError> {
        let batches = self.ledger().await?;
        let mut out = Vec::new();
        for &table in tables {
            let present: BTreeMap<String, u64> =
                self.table_files(table).await?.into_iter().collect();
            let recorded: BTreeMap<&str, &LedgerFile> = batches
                .iter()
                .flat_map(|b| b.files.iter())
                .filter(|f| f.path.starts_with(&format!("{table}/")))
                .map(|f| (f.path.as_str(), f))
                .collect();
            let mut status = TableStatus {
                table: table.to_string(),
                ..TableStatus::default()
            };
            let mut partitions = BTreeSet::new();
            for (path, file) in &recorded {
                if present.contains_key(*path) {
                    status.rows += file.rows;
                    status.files += 1;
                    status.bytes += file.bytes;
                    if let Some((dir, _)) = path.rsplit_once('/') {
                        partitions.insert(dir.to_string());
                    }
                } else {
                    status.missing_files += 1;
                }
            }
            status.partitions = partitions.len() as u64;
            status.unrecorded_files = present
                .keys()
                .filter(|p| !recorded.contains_key(p.as_str()))
                .count() as u64;
            out.push(status);
        }
        Ok(WarehouseStatus {
            tables: out,
            batches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(batch_id: &str, seq: u64, files: &[&str]) -> BatchRecord {
        BatchRecord {
            seq,
            batch_id: batch_id.into(),
            committed_at: chrono::Utc::now(),
            kefu_version: "test".into(),
            profile: "builtin".into(),
            sources: vec![LedgerSource {
                name: "s.csv".into(),
                content_hash: format!("hash-{batch_id}"),
                bytes: 1,
                records: 1,
                landed: 1,
                rejected: 0,
                duplicates: 0,
            }],
            files: files
                .iter()
                .map(|p| LedgerFile {
                    path: p.to_string(),
                    table: "calls".into(),
                    rows: 1,
                    bytes: 1,
                })
                .collect(),
            records: 1,
            landed: 1,
            rejected: 0,
            duplicates: 0,
            tables: BTreeMap::new(),
            seconds: 0.0,
        }
    }

    /// A crash after the ledger record but mid-publish is completed by `recover`; an
    /// uncommitted batch's staged files are deleted; committing the same source twice is
    /// refused.
    #[tokio::test]
    async fn recovery_completes_committed_batches_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let location = WarehouseLocation::parse_in("wh", dir.path()).unwrap();
        let wh = Warehouse::open(&location).unwrap();
        let files = [
            "calls/month=2026-01/part-a-0.parquet",
            "calls/month=2026-02/part-a-1.parquet",
        ];
        for f in files {
            wh.put(&Warehouse::staged("a", f), b"x".to_vec())
                .await
                .unwrap();
        }
        wh.put(
            &Warehouse::staged("b", "calls/month=2026-01/part-b-0.parquet"),
            b"y".to_vec(),
        )
        .await
        .unwrap();
        // Batch a: ledger record written, one file published, then the crash.
        let json = serde_json::to_vec(&record("a", 1, &files)).unwrap();
        wh.put(&format!("{LEDGER_DIR}/{:010}.json", 1), json)
            .await
            .unwrap();
        let root = dir.path().join("wh");
        std::fs::create_dir_all(root.join("calls/month=2026-01")).unwrap();
        std::fs::rename(
            root.join(Warehouse::staged("a", files[0])),
            root.join(files[0]),
        )
        .unwrap();

        let recovery = wh.recover().await.unwrap();
        assert_eq!(recovery.completed, vec!["a".to_string()]);
        assert_eq!(recovery.discarded, vec!["b".to_string()]);
        let present: Vec<String> = wh
            .table_files("calls")
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(present, files);
        assert!(
            std::fs::read_dir(root.join(STAGING_DIR))
                .unwrap()
                .next()
                .is_none()
        );

        // The same source again: refused, its staged file deleted.
        wh.put(
            &Warehouse::staged("c", "calls/month=2026-03/part-c-0.parquet"),
            b"z".to_vec(),
        )
        .await
        .unwrap();
        let mut again = record("c", 0, &["calls/month=2026-03/part-c-0.parquet"]);
        again.sources[0].content_hash = "hash-a".into();
        let outcome = wh.commit(again).await.unwrap();
        assert!(matches!(outcome, Commit::Conflict { .. }));
        assert_eq!(wh.table_files("calls").await.unwrap().len(), 2);
        assert_eq!(wh.ledger().await.unwrap().len(), 1);
    }
}
