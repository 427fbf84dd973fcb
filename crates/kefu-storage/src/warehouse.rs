//! An open warehouse: its tables (Delta tables), its ledger of operations, and the commit
//! protocol that makes an operation land in every table it touches, whole, exactly once.
//!
//! Layout (paths relative to the warehouse root):
//!
//! ```text
//! calls/_delta_log/…                         each table's Delta log
//! calls/month=2026-01/part-….parquet         its files (partitioned by local month)
//! tickets/ callbacks/ visits/ customers/ _rejects/
//! _kefu/ledger/0000000001.json               one record per operation (the commit point)
//! _kefu/ledger-checkpoints/0000000050.json   records 1–50 in one file (a cache of them)
//! _kefu/actions/<id>.json                    an operation's actions for each table's log
//! _kefu/lock                                 held by a writer (local warehouses)
//! ```
//!
//! Commit protocol. An operation writes its new Parquet files into the tables (no reader
//! sees them: Delta readers read only files the log names), then its actions file, then
//! creates the next ledger record with put-if-absent — the commit point: two writers can
//! never take the same number, and a writer that lost the race has committed nothing. Then
//! it commits each touched table's version `v + 1` with the transaction `(kefu, seq)`.
//! Readers take the newest record whose table versions all exist (and otherwise the one
//! before it), so they see every table as of one operation, never half of one. A crash
//! after the commit point is finished by the next writer from the actions file (a table
//! already holding its version is recognised by the transaction and left alone); a crash
//! before it leaves only files no log names, which `kefu vacuum` removes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;

use crate::delta::{DataFile, TableLog};
use crate::ledger::{
    OperationActions, OperationRecord, TableActions, TableChange, actions_path, record_path,
};
use crate::tables::{CHECKPOINT_INTERVAL, StoredTable};
use crate::{StorageError, WarehouseLocation};

pub const LEDGER_DIR: &str = "_kefu/ledger";
pub const LEDGER_CHECKPOINT_DIR: &str = "_kefu/ledger-checkpoints";
/// Every this many operations the writer that commits one also writes the ledger so far
/// as one file, so that a batch (which needs every earlier source's hash) reads a few files
/// instead of one per earlier operation. Records never change once written, so a
/// checkpoint stays true; one that cannot be read is passed over.
pub const LEDGER_CHECKPOINT_INTERVAL: u64 = 50;

fn ledger_checkpoint_path(seq: u64) -> String {
    format!("{LEDGER_CHECKPOINT_DIR}/{seq:010}.json")
}

/// Whether `records` are ledger records 1 to `n`, in order: what a checkpoint must hold.
fn are_records_one_to(records: &[OperationRecord], n: u64) -> bool {
    records.len() as u64 == n && records.iter().zip(1..).all(|(r, seq)| r.seq == seq)
}

/// The number a ledger file is named by (`0000000050.json`, a record's seq or the last
/// record a checkpoint holds), from its name or path.
fn ledger_file_number(relative: &str) -> Option<u64> {
    relative
        .rsplit('/')
        .next()?
        .strip_suffix(".json")?
        .parse()
        .ok()
}
pub const ACTIONS_DIR: &str = "_kefu/actions";

pub use crate::tables::{
    MONTH_COLUMN, REJECTS_TABLE, REJECTS_TABLE_COLUMN, partitioned_by_month, rejects_schema,
};

/// Which state of the warehouse to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsOf {
    /// The newest committed operation.
    #[default]
    Latest,
    /// The state right after operation (batch) `seq`.
    Operation(u64),
    /// The newest operation committed at or before this instant.
    Time(chrono::DateTime<chrono::Utc>),
    /// The same at a local date and time, on the warehouse's calendar.
    LocalTime(chrono::NaiveDateTime),
}

impl std::str::FromStr for AsOf {
    type Err = String;

    /// A batch number (`12`), or an instant: RFC 3339 (`2026-12-01T08:00:00+08:00`), or a
    /// local date or date and time on the warehouse's calendar (`2026-12-01`,
    /// `2026-12-01 08:00`), meaning the end of that day or that minute.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(seq) = s.parse::<u64>() {
            return Ok(AsOf::Operation(seq));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(AsOf::Time(t.with_timezone(&chrono::Utc)));
        }
        let local = if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            d.succ_opt()
                .and_then(|n| n.and_hms_opt(0, 0, 0))
                .map(|t| t - chrono::TimeDelta::microseconds(1))
        } else {
            ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        };
        local.map(AsOf::LocalTime).ok_or_else(|| {
            format!(
                "'{s}' is neither a batch number nor a time (2026-12-01, 2026-12-01 08:00, or RFC 3339)"
            )
        })
    }
}

impl AsOf {
    /// A local time as the instant it is in `zone` (the earlier one in an ambiguous hour);
    /// other forms as they are.
    pub fn in_zone(self, zone: chrono_tz::Tz) -> AsOf {
        use chrono::TimeZone;
        match self {
            AsOf::LocalTime(t) => zone
                .from_local_datetime(&t)
                .earliest()
                .or_else(|| {
                    zone.from_local_datetime(&(t + chrono::TimeDelta::hours(1)))
                        .earliest()
                })
                .map_or(AsOf::Latest, |t| AsOf::Time(t.with_timezone(&chrono::Utc))),
            other => other,
        }
    }
}

/// One state of the warehouse: every table at the version an operation left it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Cut {
    /// The operation (0: none yet).
    pub seq: u64,
    pub committed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Each table's Delta version; tables not created yet are absent.
    pub versions: BTreeMap<String, u64>,
}

impl Cut {
    pub fn version(&self, table: StoredTable) -> Option<u64> {
        self.versions.get(table.name()).copied()
    }
}

/// What `recover` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Operations committed by an earlier, interrupted writer whose tables were finished.
    pub completed: Vec<u64>,
}

/// An operation ready to commit: what it writes to each table's log and what it records.
#[derive(Debug, Clone)]
pub struct OperationPlan {
    /// The record (its `seq`, `versions`, `changes[..].version` and `committed_at` are
    /// filled in by [`Warehouse::commit`]).
    pub record: OperationRecord,
    /// The cut the actions were planned against.
    pub base: Cut,
    /// Per touched table: its actions and what they change.
    pub tables: BTreeMap<String, (TableActions, TableChange)>,
    /// Files the operation wrote (relative to the warehouse), made durable before the
    /// commit point.
    pub new_files: Vec<String>,
}

/// The outcome of a commit attempt.
#[derive(Debug, Clone)]
pub enum Commit {
    Committed(Box<OperationRecord>),
    /// Another writer committed operation `newest` after the plan's base: nothing of this
    /// one was committed; plan it again on the new state.
    Conflict {
        newest: u64,
    },
}

/// Each table's files by version.
type FilesCache = HashMap<(StoredTable, u64), Arc<Vec<DataFile>>>;

/// An open warehouse.
#[derive(Clone)]
pub struct Warehouse {
    location: WarehouseLocation,
    /// The location's URL, resolved (a local directory canonicalised).
    url: url::Url,
    /// Rooted at the warehouse (kefu's own files).
    store: Arc<dyn ObjectStore>,
    /// The local directory, for `file://` warehouses (fsync, locking).
    local: Option<PathBuf>,
    root: Path,
    logs: BTreeMap<StoredTable, TableLog>,
    /// Each table's files at the versions read or committed in this process.
    files: Arc<Mutex<FilesCache>>,
    /// Ledger records read in this process (a record never changes once written).
    records: Arc<Mutex<HashMap<u64, OperationRecord>>>,
    /// The warehouse's calendar, once read.
    time_zone: Arc<std::sync::OnceLock<chrono_tz::Tz>>,
}

/// The warehouse's own settings, fixed when it is created (`_kefu/warehouse.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Settings {
    /// The IANA zone of the warehouse's calendar: its months partition the tables, and
    /// reports, `local_*` functions and schedules count its days, hours and weekdays.
    pub time_zone: String,
}

/// Where a warehouse keeps its [`Settings`].
pub const SETTINGS_FILE: &str = "_kefu/warehouse.json";

// The calendar of a warehouse created without one (and of every warehouse created
// before warehouses had their own).
use kefu_model::calendar::DEFAULT_TIME_ZONE;

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("location", &self.location.to_string())
            .finish()
    }
}

fn io(location: &WarehouseLocation, e: impl Into<kefu_model::BoxError>) -> StorageError {
    StorageError::Io {
        location: location.to_string(),
        source: e.into(),
    }
}

impl Warehouse {
    /// Opens (creating a local directory if needed) the warehouse at `location`. S3 takes
    /// its credentials, region and endpoint from the usual `AWS_*` environment variables.
    pub fn open(location: &WarehouseLocation) -> Result<Self, StorageError> {
        let mut url = location.url().clone();
        let (store, url_root, local, root): (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, _, _) =
            match location.local_path() {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).map_err(|e| io(location, e))?;
                    // Delta's paths take no `..`: the directory as the file system resolves
                    // it (symbolic links and `..` included).
                    let dir = std::fs::canonicalize(&dir).map_err(|e| io(location, e))?;
                    url = url::Url::from_directory_path(&dir)
                        .map_err(|()| io(location, format!("{} is not absolute", dir.display())))?;
                    let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| io(location, e))?;
                    (
                        Arc::new(fs),
                        Arc::new(LocalFileSystem::new()),
                        Some(dir),
                        Path::default(),
                    )
                }
                None => {
                    let s3 = crate::store::bucket_store(&url).map_err(|e| io(location, e))?;
                    let root = Path::from(url.path().trim_matches('/'));
                    (s3.clone(), s3, None, root)
                }
            };
        let mut logs = BTreeMap::new();
        for table in StoredTable::ALL {
            let table_url = url
                .join(&format!("{}/", table.name()))
                .map_err(|e| io(location, e))?;
            let log = TableLog::new(table.name(), url_root.clone(), table_url)
                .map_err(|e| io(location, e))?;
            logs.insert(table, log);
        }
        Ok(Warehouse {
            location: location.clone(),
            url,
            store,
            local,
            root,
            logs,
            files: Arc::default(),
            records: Arc::default(),
            time_zone: Arc::default(),
        })
    }

    /// The warehouse's calendar: the zone set when it was created, or
    /// [`DEFAULT_TIME_ZONE`] for one created without (or before there were settings).
    pub async fn time_zone(&self) -> Result<chrono_tz::Tz, StorageError> {
        if let Some(zone) = self.time_zone.get() {
            return Ok(*zone);
        }
        let zone = match self.get_relative(SETTINGS_FILE).await? {
            Some(bytes) => self.parse_settings(&bytes)?,
            None => DEFAULT_TIME_ZONE,
        };
        Ok(*self.time_zone.get_or_init(|| zone))
    }

    fn parse_settings(&self, bytes: &[u8]) -> Result<chrono_tz::Tz, StorageError> {
        let bad = |reason: String| StorageError::Io {
            location: self.location.to_string(),
            source: format!("{SETTINGS_FILE}: {reason}").into(),
        };
        let settings: Settings = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        settings
            .time_zone
            .parse()
            .map_err(|_| bad(format!("unknown time zone '{}'", settings.time_zone)))
    }

    /// Fixes the warehouse's calendar when it is new: `requested`, else the default. An
    /// existing warehouse keeps its own, and asking for another is refused (its months
    /// and reports are cut on it). Call it holding the writer lock.
    pub async fn settle_time_zone(
        &self,
        requested: Option<chrono_tz::Tz>,
    ) -> Result<chrono_tz::Tz, StorageError> {
        let stored = self.get_relative(SETTINGS_FILE).await?;
        let has_file = stored.is_some();
        let existing = match stored {
            Some(bytes) => Some(self.parse_settings(&bytes)?),
            // Written before warehouses had settings: its calendar is the default.
            None if !self.ledger_numbers().await?.is_empty() => Some(DEFAULT_TIME_ZONE),
            None => None,
        };
        let zone = match (existing, requested) {
            (Some(zone), Some(asked)) if zone != asked => {
                return Err(StorageError::CalendarMismatch {
                    location: self.location.to_string(),
                    stored: zone,
                    asked,
                });
            }
            (Some(zone), _) => zone,
            (None, asked) => asked.unwrap_or(DEFAULT_TIME_ZONE),
        };
        if !has_file {
            let settings = Settings {
                time_zone: zone.name().to_string(),
            };
            let json = serde_json::to_vec_pretty(&settings).map_err(|e| StorageError::Io {
                location: self.location.to_string(),
                source: e.into(),
            })?;
            self.put(SETTINGS_FILE, json).await?;
        }
        let _ = self.time_zone.set(zone);
        Ok(zone)
    }

    /// The warehouse at `location`, which must exist: a missing local directory, or one
    /// that holds no warehouse (a mistyped path, `.`), is an error, never a new empty
    /// warehouse as [`Warehouse::open`] makes.
    pub fn open_existing(location: &WarehouseLocation) -> Result<Warehouse, StorageError> {
        if let Some(dir) = location.local_path() {
            let holds_warehouse = dir.join("_kefu").is_dir()
                || StoredTable::ALL
                    .iter()
                    .any(|t| dir.join(t.name()).join("_delta_log").is_dir());
            if !holds_warehouse {
                return Err(StorageError::NoWarehouse {
                    exists: dir.is_dir(),
                    dir,
                });
            }
        }
        Warehouse::open(location)
    }

    pub fn location(&self) -> &WarehouseLocation {
        &self.location
    }

    /// The warehouse's root URL, resolved: a local directory canonicalised (no `..`, no
    /// symbolic links), an object-store URL as given. Tables live at `<url>/<table>/`.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The store rooted at the warehouse.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    /// A table's log.
    pub fn log(&self, table: StoredTable) -> &TableLog {
        &self.logs[&table]
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

    fn err(&self, e: impl Into<kefu_model::BoxError>) -> StorageError {
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

    /// Whether another writer holds the writer lock now (never, on object stores).
    pub fn writer_busy(&self) -> Result<bool, StorageError> {
        let Some(dir) = &self.local else {
            return Ok(false);
        };
        let file = match std::fs::File::open(dir.join("_kefu").join("lock")) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.err(e)),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(self.err(e)),
        }
    }

    /// Writes `bytes` at `relative` (kefu's own files).
    pub async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.store
            .put(&self.path(relative), PutPayload::from(bytes))
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every object under `relative` (relative paths, sorted).
    pub async fn list_relative(&self, relative: &str) -> Result<Vec<String>, StorageError> {
        let mut out: Vec<String> = self
            .store
            .list(Some(&self.path(relative)))
            .map_ok(|m| self.relative(&m.location))
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        out.sort();
        Ok(out)
    }

    /// The object at `relative`, if any.
    pub async fn get_relative(&self, relative: &str) -> Result<Option<bytes::Bytes>, StorageError> {
        self.get(relative).await
    }

    /// Moves an object (a rename on a local disk).
    pub async fn rename_relative(&self, from: &str, to: &str) -> Result<(), StorageError> {
        self.store
            .rename(&self.path(from), &self.path(to))
            .await
            .map_err(|e| self.err(format!("moving {from} to {to}: {e}")))
    }

    /// Deletes an object if it exists.
    pub async fn delete_relative(&self, relative: &str) -> Result<(), StorageError> {
        match self.store.delete(&self.path(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn get(&self, relative: &str) -> Result<Option<bytes::Bytes>, StorageError> {
        match self.store.get(&self.path(relative)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.err(e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Flushes `relative` (and its directory) to the disk, on a local warehouse.
    pub fn sync(&self, relative: &str) -> Result<(), StorageError> {
        if let Some(dir) = &self.local {
            let file = dir.join(relative);
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(|e| self.err(format!("{}: {e}", file.display())))?;
        }
        Ok(())
    }

    fn sync_dirs<'a>(
        &self,
        relatives: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StorageError> {
        if let Some(dir) = &self.local {
            let parents: BTreeSet<PathBuf> = relatives
                .into_iter()
                .filter_map(|r| dir.join(r).parent().map(std::path::Path::to_path_buf))
                .collect();
            for parent in parents {
                // The directory entry too, so the file survives a power cut.
                std::fs::File::open(&parent)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| self.err(format!("{}: {e}", parent.display())))?;
            }
        }
        Ok(())
    }

    /// Creates every table that does not exist yet (empty, version 0), and adds to the
    /// existing ones the columns the model gained since they were created. Call it
    /// holding the writer lock, recovered (local warehouses).
    pub async fn ensure_tables(&self) -> Result<(), StorageError> {
        for (table, log) in &self.logs {
            let schema = table.table_schema();
            log.create(
                &schema,
                &table.partition_column().into_iter().collect::<Vec<_>>(),
                &table.properties().into_iter().collect::<Vec<_>>(),
            )
            .await?;
        }
        crate::maintain::add_model_columns(self).await?;
        Ok(())
    }

    /// The numbers of the ledger's records, ascending.
    pub async fn ledger_numbers(&self) -> Result<Vec<u64>, StorageError> {
        let mut seqs: Vec<u64> = match &self.local {
            // Names only: the object store's listing looks up every file's metadata, a
            // cost that grows with the ledger and is paid several times per batch.
            Some(dir) => {
                let dir = dir.join(LEDGER_DIR);
                match std::fs::read_dir(&dir) {
                    Ok(entries) => entries
                        .map(|e| {
                            e.map(|e| ledger_file_number(&e.file_name().to_string_lossy()))
                                .map_err(|e| self.err(format!("{}: {e}", dir.display())))
                        })
                        .filter_map(Result::transpose)
                        .collect::<Result<_, _>>()?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(self.err(format!("{}: {e}", dir.display()))),
                }
            }
            None => {
                self.store
                    .list(Some(&self.path(LEDGER_DIR)))
                    .map_err(|e| self.err(e))
                    .try_filter_map(
                        |meta| async move { Ok(ledger_file_number(meta.location.as_ref())) },
                    )
                    .try_collect()
                    .await?
            }
        };
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Ledger record `seq`.
    pub async fn record(&self, seq: u64) -> Result<OperationRecord, StorageError> {
        if let Some(record) = self.records.lock().expect("lock").get(&seq) {
            return Ok(record.clone());
        }
        let relative = record_path(seq);
        let bytes = self
            .get(&relative)
            .await?
            .ok_or_else(|| self.err(format!("ledger record {relative} is missing")))?;
        let record: OperationRecord = serde_json::from_slice(&bytes).map_err(|e| {
            if serde_json::from_slice::<crate::ledger::LegacyBatch>(&bytes).is_ok() {
                StorageError::Legacy {
                    location: self.location.to_string(),
                }
            } else {
                self.err(format!("ledger record {relative}: {e}"))
            }
        })?;
        if record.seq != seq {
            return Err(self.err(format!("ledger record {relative} says seq {}", record.seq)));
        }
        self.records
            .lock()
            .expect("lock")
            .insert(seq, record.clone());
        Ok(record)
    }

    /// Every ledger record, oldest first: the newest ledger checkpoint, then the records
    /// after it.
    pub async fn ledger(&self) -> Result<Vec<OperationRecord>, StorageError> {
        let seqs = self.ledger_numbers().await?;
        let mut records = self
            .ledger_checkpoint(seqs.last().copied().unwrap_or(0))
            .await?;
        let known = records.len() as u64;
        let rest = seqs.into_iter().filter(|&s| s > known);
        let tail: Vec<OperationRecord> = futures::stream::iter(rest.map(|s| self.record(s)))
            .buffered(16)
            .try_collect()
            .await?;
        records.extend(tail);
        Ok(records)
    }

    /// Records 1 to n of the newest ledger checkpoint not past `newest`; none when there
    /// is no usable one (then the records are read one by one).
    async fn ledger_checkpoint(&self, newest: u64) -> Result<Vec<OperationRecord>, StorageError> {
        let mut numbers: Vec<u64> = self
            .list_relative(LEDGER_CHECKPOINT_DIR)
            .await?
            .iter()
            .filter_map(|r| ledger_file_number(r))
            .filter(|&n| n <= newest)
            .collect();
        numbers.sort_unstable();
        let Some(&n) = numbers.last() else {
            return Ok(Vec::new());
        };
        let relative = ledger_checkpoint_path(n);
        let Some(bytes) = self.get(&relative).await? else {
            return Ok(Vec::new());
        };
        match serde_json::from_slice::<Vec<OperationRecord>>(&bytes) {
            Ok(records) if are_records_one_to(&records, n) => Ok(records),
            Ok(_) => {
                tracing::warn!(
                    file = relative,
                    "ledger checkpoint does not hold records 1 to {n}; reading the records one by one"
                );
                Ok(Vec::new())
            }
            Err(e) => {
                tracing::warn!(file = relative, error = %e, "unreadable ledger checkpoint; reading the records one by one");
                Ok(Vec::new())
            }
        }
    }

    /// Writes records 1 to `seq` as one ledger checkpoint and deletes the checkpoints
    /// before the previous one.
    pub(crate) async fn write_ledger_checkpoint(&self, seq: u64) -> Result<(), StorageError> {
        let records: Vec<OperationRecord> = self
            .ledger()
            .await?
            .into_iter()
            .take_while(|r| r.seq <= seq)
            .collect();
        if !are_records_one_to(&records, seq) {
            return Err(self.err(format!(
                "the ledger does not hold records 1 to {seq} without gaps; no checkpoint written"
            )));
        }
        let json = serde_json::to_vec(&records).map_err(|e| self.err(e))?;
        self.put(&ledger_checkpoint_path(seq), json).await?;
        for older in self.list_relative(LEDGER_CHECKPOINT_DIR).await? {
            if ledger_file_number(&older).is_some_and(|n| n + LEDGER_CHECKPOINT_INTERVAL < seq) {
                self.delete_relative(&older).await?;
            }
        }
        Ok(())
    }

    /// Whether every table an operation touched holds the version it committed.
    pub async fn is_complete(&self, record: &OperationRecord) -> Result<bool, StorageError> {
        for (name, change) in &record.changes {
            let table = self.table_named(name)?;
            if !self.logs[&table].has_version(change.version).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn table_named(&self, name: &str) -> Result<StoredTable, StorageError> {
        StoredTable::from_name(name).ok_or_else(|| self.err(format!("unknown table '{name}'")))
    }

    /// The state readers see: the newest operation that is complete (every table it
    /// touched committed), or the one `as_of` names.
    pub async fn cut(&self, as_of: AsOf) -> Result<Cut, StorageError> {
        let as_of = match as_of {
            AsOf::LocalTime(_) => as_of.in_zone(self.time_zone().await?),
            other => other,
        };
        let seqs = self.ledger_numbers().await?;
        let Some(&newest) = seqs.last() else {
            return self.initial_cut().await;
        };
        let newest_record = self.record(newest).await?;
        let latest = if self.is_complete(&newest_record).await? {
            newest_record
        } else if newest > 1 {
            self.record(newest - 1).await?
        } else {
            return self.initial_cut().await;
        };
        let record = match as_of {
            AsOf::Latest => latest,
            AsOf::Operation(seq) if seq == latest.seq => latest,
            AsOf::Operation(0) => return self.initial_cut().await,
            AsOf::Operation(seq) if seq < latest.seq => self.record(seq).await?,
            AsOf::Operation(seq) => {
                return Err(StorageError::NoSuchState {
                    location: self.location.to_string(),
                    reason: format!(
                        "batch {seq} does not exist (the newest committed operation is {})",
                        latest.seq
                    ),
                });
            }
            // Resolved above: a local time is an instant on the warehouse's calendar.
            AsOf::LocalTime(_) => latest,
            AsOf::Time(t) => {
                let mut found = None;
                for seq in seqs.iter().rev().filter(|&&s| s <= latest.seq) {
                    let r = self.record(*seq).await?;
                    if r.committed_at <= t {
                        found = Some(r);
                        break;
                    }
                }
                match found {
                    Some(r) => r,
                    None => return self.initial_cut().await,
                }
            }
        };
        Ok(Cut {
            seq: record.seq,
            committed_at: Some(record.committed_at),
            versions: record.versions,
        })
    }

    /// The state before any operation: every table that exists, empty.
    async fn initial_cut(&self) -> Result<Cut, StorageError> {
        let mut versions = BTreeMap::new();
        for (table, log) in &self.logs {
            if log.exists().await? {
                versions.insert(table.name().to_string(), 0);
            }
        }
        Ok(Cut {
            seq: 0,
            committed_at: None,
            versions,
        })
    }

    /// A table's files at `version` (from its log; kept for the next caller).
    pub async fn files(
        &self,
        table: StoredTable,
        version: u64,
    ) -> Result<Arc<Vec<DataFile>>, StorageError> {
        if let Some(files) = self.files.lock().expect("lock").get(&(table, version)) {
            return Ok(files.clone());
        }
        // Version 0 is empty for tables kefu created, not for converted ones.
        let files = Arc::new(self.logs[&table].files(version).await?);
        self.remember(table, version, files.clone());
        Ok(files)
    }

    fn remember(&self, table: StoredTable, version: u64, files: Arc<Vec<DataFile>>) {
        let mut cache = self.files.lock().expect("lock");
        // Only the newest two versions of a table are kept.
        let mut versions: Vec<u64> = cache
            .keys()
            .filter(|(t, _)| *t == table)
            .map(|(_, v)| *v)
            .collect();
        versions.sort_unstable();
        if versions.len() >= 2 {
            for v in &versions[..versions.len() - 1] {
                if *v < version {
                    cache.remove(&(table, *v));
                }
            }
        }
        cache.insert((table, version), files);
    }

    /// A table's files in a cut (none if the table does not exist in it).
    pub async fn files_at(
        &self,
        cut: &Cut,
        table: StoredTable,
    ) -> Result<Arc<Vec<DataFile>>, StorageError> {
        match cut.version(table) {
            Some(v) => self.files(table, v).await,
            None => Ok(Arc::new(Vec::new())),
        }
    }

    /// Finishes an operation an interrupted writer committed (ledger record written, some
    /// tables' versions not). Call it holding the writer lock (local warehouses).
    pub async fn recover(&self) -> Result<Recovery, StorageError> {
        let mut recovery = Recovery::default();
        let Some(&newest) = self.ledger_numbers().await?.last() else {
            return Ok(recovery);
        };
        let record = self.record(newest).await?;
        if self.is_complete(&record).await? {
            return Ok(recovery);
        }
        let actions = self.actions(&record.id).await?.ok_or_else(|| {
            self.err(format!(
                "operation {} is committed but its actions file {} is missing",
                record.seq,
                actions_path(&record.id)
            ))
        })?;
        self.apply(&record, &actions).await?;
        recovery.completed.push(record.seq);
        Ok(recovery)
    }

    async fn actions(&self, id: &str) -> Result<Option<OperationActions>, StorageError> {
        let Some(bytes) = self.get(&actions_path(id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.err(format!("{}: {e}", actions_path(id))))
    }

    /// Commits a planned operation (see the module's protocol).
    pub async fn commit(&self, plan: OperationPlan) -> Result<Commit, StorageError> {
        let OperationPlan {
            mut record,
            base,
            tables,
            new_files,
        } = plan;
        // The data must be on disk before the record that makes it visible.
        for f in &new_files {
            self.sync(f)?;
        }
        self.sync_dirs(new_files.iter().map(String::as_str))?;
        record.seq = base.seq + 1;
        record.committed_at = chrono::Utc::now();
        record.versions = base.versions.clone();
        let mut actions = OperationActions::default();
        for (name, (table_actions, mut change)) in tables {
            change.version = table_actions.base_version + 1;
            record.versions.insert(name.clone(), change.version);
            record.changes.insert(name.clone(), change);
            actions.tables.insert(name, table_actions);
        }
        let actions_relative = actions_path(&record.id);
        let json = serde_json::to_vec(&actions).map_err(|e| self.err(e))?;
        self.put(&actions_relative, json).await?;
        self.sync(&actions_relative)?;
        let relative = record_path(record.seq);
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
                self.sync_dirs([relative.as_str()])?;
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                let _ = self.store.delete(&self.path(&actions_relative)).await;
                let newest = self.ledger_numbers().await?.last().copied().unwrap_or(0);
                return Ok(Commit::Conflict { newest });
            }
            Err(e) => return Err(self.err(e)),
        }
        self.apply(&record, &actions).await?;
        if record.seq % LEDGER_CHECKPOINT_INTERVAL == 0
            && let Err(e) = self.write_ledger_checkpoint(record.seq).await
        {
            // A missing checkpoint only makes readers read more records.
            tracing::warn!(seq = record.seq, error = %e, "could not write a ledger checkpoint");
        }
        Ok(Commit::Committed(Box::new(record)))
    }

    /// Writes each table's version of a committed operation (those not written yet).
    async fn apply(
        &self,
        record: &OperationRecord,
        actions: &OperationActions,
    ) -> Result<(), StorageError> {
        for (name, table_actions) in &actions.tables {
            let table = self.table_named(name)?;
            let log = &self.logs[&table];
            let version = table_actions.base_version + 1;
            let mut info = table_actions.info.clone();
            info.insert("kefuOperation".into(), record.seq.into());
            info.insert("kefuKind".into(), record.kind.name().into());
            log.commit(
                version,
                table_actions.actions.clone(),
                table_actions.operation.clone(),
                record.seq,
                info,
            )
            .await?;
            if version % CHECKPOINT_INTERVAL == 0
                && let Err(e) = log.checkpoint(version).await
            {
                // A missing checkpoint only makes readers replay more of the log.
                tracing::warn!(table = name, version, error = %e, "could not write a checkpoint");
            }
            let base = self
                .files
                .lock()
                .expect("lock")
                .get(&(table, table_actions.base_version))
                .cloned();
            if let Some(base) = base {
                self.remember(
                    table,
                    version,
                    Arc::new(apply_actions(&base, &table_actions.actions)),
                );
            }
        }
        Ok(())
    }

    /// Every Parquet file under a table's directory (relative to the table) with its size:
    /// those the current version names and any others (written by an interrupted batch,
    /// or removed by a compaction and not yet vacuumed).
    pub async fn stored_files(
        &self,
        table: StoredTable,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let prefix = self.path(table.name());
        let mut files: Vec<(String, u64)> = self
            .store
            .list(Some(&prefix))
            .map_err(|e| self.err(e))
            .try_filter_map(|meta| async move {
                Ok((meta.location.extension() == Some("parquet"))
                    .then_some((meta.location, meta.size)))
            })
            .map_ok(|(p, size)| {
                let relative = self.relative(&p);
                let within = relative
                    .strip_prefix(&format!("{}/", table.name()))
                    .unwrap_or(&relative)
                    .to_string();
                (within, size)
            })
            // The log's checkpoints are Parquet too, but not data.
            .try_filter(|(within, _)| futures::future::ready(!within.starts_with("_delta_log/")))
            .try_collect()
            .await?;
        files.sort();
        Ok(files)
    }
}

impl Warehouse {
    /// Every row of a table in a cut (for checks and small tables; queries go through
    /// DataFusion).
    pub async fn read_table(
        &self,
        cut: &Cut,
        table: StoredTable,
    ) -> Result<Vec<arrow::array::RecordBatch>, StorageError> {
        let files = self.files_at(cut, table).await?;
        let schema = table.file_schema();
        let mut out = Vec::new();
        for f in files.iter() {
            let path = self.path(&format!("{}/{}", table.name(), f.path));
            let batch = crate::merge::read_parquet(
                self.store(),
                path,
                f.size,
                &schema,
                None,
                f.selection(table.name())?,
            )
            .await?;
            // Read back in the table's own (non-null where required) schema.
            let batch =
                arrow::array::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .map_err(|e| self.err(e))?;
            out.push(batch);
        }
        Ok(out)
    }
}

/// A table's files after `actions`: the removed ones out, the added ones in.
pub fn apply_actions(
    base: &[DataFile],
    actions: &[deltalake_core::kernel::Action],
) -> Vec<DataFile> {
    use deltalake_core::kernel::Action;
    let removed: BTreeSet<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Remove(r) => Some(r.path.as_str()),
            _ => None,
        })
        .collect();
    let mut files: Vec<DataFile> = base
        .iter()
        .filter(|f| !removed.contains(f.path.as_str()))
        .cloned()
        .collect();
    files.extend(actions.iter().filter_map(|a| match a {
        Action::Add(add) => Some(DataFile::from_add(add)),
        _ => None,
    }));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
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
    /// The table's Delta version in the cut.
    pub version: u64,
    pub rows: u64,
    pub files: u64,
    pub partitions: u64,
    pub bytes: u64,
    /// Partitions holding more than one file (what `kefu compact` would rewrite).
    pub partitions_to_compact: u64,
    /// Parquet files in the table's directory that its current version does not name:
    /// replaced by upserts or compaction, or left by an interrupted batch (`kefu vacuum`
    /// removes them once they are older than the retention period).
    pub unreferenced_files: u64,
    pub unreferenced_bytes: u64,
    /// Files the current version names that are missing from the directory.
    pub missing_files: u64,
}

/// A warehouse's tables and operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WarehouseStatus {
    pub cut: Cut,
    pub tables: Vec<TableStatus>,
    pub operations: Vec<OperationRecord>,
}

impl Warehouse {
    /// The tables in the newest cut (checked against the files present) and every
    /// operation.
    pub async fn status(&self) -> Result<WarehouseStatus, StorageError> {
        let operations = self.ledger().await?;
        let cut = self.cut(AsOf::Latest).await?;
        let mut tables = Vec::new();
        for table in StoredTable::ALL {
            let files = self.files_at(&cut, table).await?;
            let present: BTreeMap<String, u64> =
                self.stored_files(table).await?.into_iter().collect();
            let mut status = TableStatus {
                table: table.name().to_string(),
                version: cut.version(table).unwrap_or(0),
                ..TableStatus::default()
            };
            let mut per_partition: BTreeMap<Option<&str>, u64> = BTreeMap::new();
            let mut named = BTreeSet::new();
            for f in files.iter() {
                named.insert(f.path.as_str());
                if present.contains_key(&f.path) {
                    status.rows += f.live_rows().unwrap_or(0);
                    status.files += 1;
                    status.bytes += f.size;
                    *per_partition.entry(f.partition.as_deref()).or_default() += 1;
                } else {
                    status.missing_files += 1;
                }
            }
            status.partitions = per_partition.len() as u64;
            status.partitions_to_compact =
                per_partition.values().filter(|&&n| n > 1).count() as u64;
            for (path, size) in &present {
                if !named.contains(path.as_str()) {
                    status.unreferenced_files += 1;
                    status.unreferenced_bytes += size;
                }
            }
            tables.push(status);
        }
        Ok(WarehouseStatus {
            cut,
            tables,
            operations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_reads_batches_and_local_times() {
        assert_eq!("12".parse::<AsOf>(), Ok(AsOf::Operation(12)));
        // The end of a local day: 2026-12-01 23:59:59.999999 in Shanghai, or London.
        let day = "2026-12-01".parse::<AsOf>().unwrap();
        assert_eq!(
            day.in_zone(DEFAULT_TIME_ZONE),
            AsOf::Time("2026-12-01T15:59:59.999999Z".parse().unwrap())
        );
        assert_eq!(
            day.in_zone(chrono_tz::Europe::London),
            AsOf::Time("2026-12-01T23:59:59.999999Z".parse().unwrap())
        );
        let minute = "2026-12-01 08:00"
            .parse::<AsOf>()
            .unwrap()
            .in_zone(DEFAULT_TIME_ZONE);
        assert_eq!(minute, AsOf::Time("2026-12-01T00:00:00Z".parse().unwrap()));
        let rfc = "2026-12-01T08:00:00+08:00".parse::<AsOf>().unwrap();
        assert_eq!(rfc, minute);
        let err = "last tuesday".parse::<AsOf>().unwrap_err();
        assert!(err.contains("neither a batch number nor a time"), "{err}");
    }

    /// A batch reads the ledger from its checkpoint plus the records after it; a
    /// checkpoint that is damaged or claims records that are not there is passed over.
    #[tokio::test]
    async fn ledger_reads_through_its_checkpoint_and_survives_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let location = WarehouseLocation::parse_in("wh", dir.path()).unwrap();
        let warehouse = Warehouse::open(&location).unwrap();
        let mut written = Vec::new();
        for seq in 1..=60 {
            let mut record = crate::maintain::new_record(
                crate::ledger::OperationKind::Ingest,
                format!("op-{seq}"),
            );
            record.seq = seq;
            let json = serde_json::to_vec(&record).unwrap();
            warehouse.put(&record_path(seq), json).await.unwrap();
            written.push(record);
        }
        let seqs =
            |records: Vec<OperationRecord>| -> Vec<u64> { records.iter().map(|r| r.seq).collect() };
        warehouse.write_ledger_checkpoint(5).await.unwrap();
        // Records 1 to 5 now come from the checkpoint: their own files are not read (the
        // listing still has to name them for the checkpoint to apply).
        warehouse
            .put(&record_path(3), b"not read".to_vec())
            .await
            .unwrap();
        let ledger = Warehouse::open(&location).unwrap().ledger().await.unwrap();
        assert_eq!(ledger, written);

        // A damaged checkpoint: the records are read one by one (record 3 is unreadable
        // now, which proves it).
        warehouse
            .put(&ledger_checkpoint_path(5), b"{".to_vec())
            .await
            .unwrap();
        let err = Warehouse::open(&location)
            .unwrap()
            .ledger()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("0000000003.json"), "{err}");
        let json = serde_json::to_vec(&written[2]).unwrap();
        warehouse.put(&record_path(3), json).await.unwrap();
        let ledger = Warehouse::open(&location).unwrap().ledger().await.unwrap();
        assert_eq!(seqs(ledger), (1..=60).collect::<Vec<u64>>());

        // One that does not hold what its name says is passed over too.
        let short = serde_json::to_vec(&written[..4]).unwrap();
        warehouse
            .put(&ledger_checkpoint_path(5), short)
            .await
            .unwrap();
        let ledger = Warehouse::open(&location).unwrap().ledger().await.unwrap();
        assert_eq!(ledger, written);

        // Writing a checkpoint removes those before the previous one.
        warehouse.write_ledger_checkpoint(55).await.unwrap();
        warehouse.write_ledger_checkpoint(60).await.unwrap();
        let kept = warehouse
            .list_relative(LEDGER_CHECKPOINT_DIR)
            .await
            .unwrap();
        assert_eq!(
            kept,
            [ledger_checkpoint_path(55), ledger_checkpoint_path(60)]
        );
        assert_eq!(
            Warehouse::open(&location).unwrap().ledger().await.unwrap(),
            written
        );
        assert!(warehouse.write_ledger_checkpoint(61).await.is_err());
    }

    #[test]
    fn actions_replace_files() {
        let file = |path: &str| DataFile {
            path: path.into(),
            size: 1,
            partition: Some("2026-01".into()),
            rows: Some(1),
            stats: None,
            modification_time: 0,
            deletion: None,
        };
        let base = vec![file("a"), file("b")];
        let actions = vec![
            deltalake_core::kernel::Action::Remove(file("a").remove(Some("month"), true)),
            deltalake_core::kernel::Action::Add(file("c").add(Some("month"), true)),
        ];
        let after: Vec<String> = apply_actions(&base, &actions)
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(after, ["b", "c"]);
    }
}
